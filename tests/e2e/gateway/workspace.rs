//! The Users page's API through the gateway: invite -> accept -> change role
//! -> disable -> enable -> remove, the Pending tab, settings, the audit log,
//! a User refused admin routes, and the shared error table.

use std::time::Duration;

use recapp_tests::{
    Backend, backend_test,
    gateway::{Browser, TestGateway},
    identity::{secret_from_base32, totp_code},
};
use serde_json::{Value, json};

struct Admin {
    browser: Browser,
    workspace: String,
}

async fn admin_with_workspace(gw: &TestGateway) -> Admin {
    let browser = gw.signed_up("owner@example.com").await;
    let reply = browser
        .post("/api/v1/workspaces", json!({"name": "Acme MSP"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    Admin {
        workspace: reply.body["id"].as_str().unwrap().to_owned(),
        browser,
    }
}

/// Invites `email` with `role` and returns the invitation and link token.
async fn invite(gw: &TestGateway, admin: &Admin, email: &str, role: &str) -> (Value, String) {
    let before = gw.system.mail.messages().len();
    let reply = admin
        .browser
        .post(
            &format!("/api/v1/workspaces/{}/invitations", admin.workspace),
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let token = gw.next_invitation_token(before).await;
    (reply.body, token)
}

/// A member who signed up through the invitation link.
async fn member(gw: &TestGateway, admin: &Admin, email: &str, role: &str) -> (Browser, String) {
    let (_, token) = invite(gw, admin, email, role).await;
    let browser = gw.signed_up(email).await;
    let accepted = browser
        .post_empty(&format!("/api/v1/invitations/{token}/accept"))
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let id = accepted.body["member"]["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (browser, id)
}

fn emails(reply: &Value, key: &str) -> Vec<String> {
    reply[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {reply}"))
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_whole_member_lifecycle_goes_through_the_gateway(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let admin = admin_with_workspace(&gw).await;
    let w = &admin.workspace;
    let (invitation, token) = invite(&gw, &admin, "new@example.com", "user").await;
    assert_eq!(invitation["role"], "user");
    assert_eq!(invitation["status"], "pending");
    assert!(invitation["expires_at"].as_str().unwrap() > invitation["sent_at"].as_str().unwrap());

    let pending = admin
        .browser
        .get(&format!("/api/v1/workspaces/{w}/invitations"))
        .await;
    assert_eq!(emails(&pending.body, "invitations"), ["new@example.com"]);

    // Opening the link (the page and the preview) consumes nothing.
    let invitee = gw.browser();
    let page = invitee.get(&format!("/invite/{token}")).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<script src=\"/assets/app.js\""));
    for _ in 0..2 {
        let preview = invitee.get(&format!("/api/v1/invitations/{token}")).await;
        assert_eq!(preview.status, 200, "{}", preview.text);
        assert_eq!(preview.body["workspace_name"], "Acme MSP");
        assert_eq!(preview.body["email"], "new@example.com");
        assert_eq!(preview.body["role"], "user");
        assert_eq!(preview.body["invited_by_email"], "owner@example.com");
    }
    // Accepting needs a signed-in account with the invited email.
    let anonymous = invitee
        .post_empty(&format!("/api/v1/invitations/{token}/accept"))
        .await;
    assert_eq!(anonymous.status, 401);
    let stranger = gw.signed_up("stranger@example.com").await;
    let mismatch = stranger
        .post_empty(&format!("/api/v1/invitations/{token}/accept"))
        .await;
    assert_eq!(mismatch.status, 403);
    assert_eq!(mismatch.reason(), "INVITATION_EMAIL_MISMATCH");

    let invitee = gw.signed_up("new@example.com").await;
    let accepted = invitee
        .post_empty(&format!("/api/v1/invitations/{token}/accept"))
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["workspace"]["name"], "Acme MSP");
    assert_eq!(accepted.body["member"]["role"], "user");
    let id = accepted.body["member"]["account_id"].as_str().unwrap();
    let used = invitee.get(&format!("/api/v1/invitations/{token}")).await;
    assert_eq!(used.status, 400);
    assert_eq!(used.reason(), "INVITATION_USED");

    let active = admin
        .browser
        .get(&format!("/api/v1/workspaces/{w}/members?status=active"))
        .await;
    assert_eq!(
        emails(&active.body, "members"),
        ["owner@example.com", "new@example.com"]
    );
    let card = &active.body["members"][1];
    assert_eq!(card["status"], "active");
    assert_eq!(card["mfa_enrolled"], false);
    assert!(card["joined_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(active.body["members"][0]["is_owner"], true);

    // Change role, takes effect on the very next call.
    let changed = admin
        .browser
        .patch(
            &format!("/api/v1/workspaces/{w}/members/{id}"),
            json!({"role": "tenant_admin"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["role"], "tenant_admin");
    let perms = invitee
        .get(&format!("/api/v1/workspaces/{w}/permissions"))
        .await;
    assert_eq!(perms.body["role"], "tenant_admin");
    assert!(
        perms.body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("manage_users"))
    );
    admin
        .browser
        .patch(
            &format!("/api/v1/workspaces/{w}/members/{id}"),
            json!({"role": "user"}),
        )
        .await;

    // Disable: the member moves to the Disabled tab and is refused at once.
    let disabled = admin
        .browser
        .post_empty(&format!("/api/v1/workspaces/{w}/members/{id}/disable"))
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(disabled.body["status"], "disabled");
    let tab = admin
        .browser
        .get(&format!("/api/v1/workspaces/{w}/members?status=disabled"))
        .await;
    assert_eq!(emails(&tab.body, "members"), ["new@example.com"]);
    let refused = invitee
        .get(&format!("/api/v1/workspaces/{w}/members"))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.reason(), "MEMBER_DISABLED");

    let enabled = admin
        .browser
        .post_empty(&format!("/api/v1/workspaces/{w}/members/{id}/enable"))
        .await;
    assert_eq!(enabled.status, 200);
    assert_eq!(
        invitee
            .get(&format!("/api/v1/workspaces/{w}/members"))
            .await
            .status,
        200
    );

    let removed = admin
        .browser
        .delete(&format!("/api/v1/workspaces/{w}/members/{id}"))
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let gone = invitee
        .get(&format!("/api/v1/workspaces/{w}/members"))
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.reason(), "WORKSPACE_NOT_FOUND");

    // Every change is in the audit log, newest first.
    let audit = admin
        .browser
        .get(&format!("/api/v1/workspaces/{w}/audit-events?page_size=50"))
        .await;
    let actions: Vec<&str> = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"member.removed"), "{actions:?}");
    for action in [
        "member.disabled",
        "member.enabled",
        "member.role_changed",
        "invitation.accepted",
        "member.invited",
    ] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
}
backend_test!(the_whole_member_lifecycle_goes_through_the_gateway);

async fn resend_and_cancel_work_from_the_pending_tab(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let admin = admin_with_workspace(&gw).await;
    let w = &admin.workspace;
    let (invitation, old_token) = invite(&gw, &admin, "new@example.com", "tenant_admin").await;
    let iid = invitation["id"].as_str().unwrap();

    let too_soon = admin
        .browser
        .post_empty(&format!("/api/v1/workspaces/{w}/invitations/{iid}/resend"))
        .await;
    assert_eq!(too_soon.status, 429, "{}", too_soon.text);
    assert_eq!(too_soon.reason(), "RESEND_TOO_SOON");
    assert!(too_soon.header("retry-after").is_some());

    gw.system
        .identity
        .clock
        .advance(chrono::Duration::seconds(61));
    let before = gw.system.mail.messages().len();
    let resent = admin
        .browser
        .post_empty(&format!("/api/v1/workspaces/{w}/invitations/{iid}/resend"))
        .await;
    assert_eq!(resent.status, 200, "{}", resent.text);
    let new_token = gw.next_invitation_token(before).await;
    assert_ne!(new_token, old_token);
    let old = gw
        .browser()
        .get(&format!("/api/v1/invitations/{old_token}"))
        .await;
    assert_eq!(old.status, 404);
    assert_eq!(old.reason(), "INVITATION_INVALID");

    let cancelled = admin
        .browser
        .delete(&format!("/api/v1/workspaces/{w}/invitations/{iid}"))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");
    let pending = admin
        .browser
        .get(&format!("/api/v1/workspaces/{w}/invitations"))
        .await;
    assert!(emails(&pending.body, "invitations").is_empty());
    let dead = gw
        .browser()
        .get(&format!("/api/v1/invitations/{new_token}"))
        .await;
    assert_eq!(dead.status, 400);
    assert_eq!(dead.reason(), "INVITATION_CANCELLED");
}
backend_test!(resend_and_cancel_work_from_the_pending_tab);

async fn a_user_is_refused_every_admin_route(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let admin = admin_with_workspace(&gw).await;
    let w = admin.workspace.clone();
    let (user, _) = member(&gw, &admin, "user@example.com", "user").await;
    let (_, other_id) = member(&gw, &admin, "other@example.com", "user").await;
    let (pending, _) = invite(&gw, &admin, "pending@example.com", "user").await;
    let iid = pending["id"].as_str().unwrap();

    let members = user.get(&format!("/api/v1/workspaces/{w}/members")).await;
    assert_eq!(members.status, 200, "members are visible read-only");
    let perms = user
        .get(&format!("/api/v1/workspaces/{w}/permissions"))
        .await;
    assert_eq!(perms.body["role"], "user");
    assert!(
        !perms.body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("manage_users"))
    );

    let refused = [
        user.post(
            &format!("/api/v1/workspaces/{w}/invitations"),
            json!({"email": "x@example.com", "role": "user"}),
        )
        .await,
        user.get(&format!("/api/v1/workspaces/{w}/invitations"))
            .await,
        user.post_empty(&format!("/api/v1/workspaces/{w}/invitations/{iid}/resend"))
            .await,
        user.delete(&format!("/api/v1/workspaces/{w}/invitations/{iid}"))
            .await,
        user.patch(
            &format!("/api/v1/workspaces/{w}/members/{other_id}"),
            json!({"role": "tenant_admin"}),
        )
        .await,
        user.post_empty(&format!(
            "/api/v1/workspaces/{w}/members/{other_id}/disable"
        ))
        .await,
        user.post_empty(&format!("/api/v1/workspaces/{w}/members/{other_id}/enable"))
            .await,
        user.delete(&format!("/api/v1/workspaces/{w}/members/{other_id}"))
            .await,
        user.patch(
            &format!("/api/v1/workspaces/{w}/settings"),
            json!({"require_mfa": false}),
        )
        .await,
        user.get(&format!("/api/v1/workspaces/{w}/audit-events"))
            .await,
    ];
    for reply in &refused {
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.reason(), "PERMISSION_DENIED", "{}", reply.text);
    }
    // Nothing changed.
    let pending = admin
        .browser
        .get(&format!("/api/v1/workspaces/{w}/invitations"))
        .await;
    assert_eq!(
        emails(&pending.body, "invitations"),
        ["pending@example.com"]
    );

    // Another workspace's ids answer NOT_FOUND, like missing ones.
    let outsider = admin_with_workspace_named(&gw, "outsider@example.com").await;
    let probe = outsider
        .browser
        .get(&format!("/api/v1/workspaces/{w}/members"))
        .await;
    assert_eq!(probe.status, 404);
    let missing = outsider
        .browser
        .get(&format!(
            "/api/v1/workspaces/{}/members?status=bogus",
            outsider.workspace
        ))
        .await;
    assert_eq!(missing.status, 400);
}
backend_test!(a_user_is_refused_every_admin_route);

async fn admin_with_workspace_named(gw: &TestGateway, email: &str) -> Admin {
    let browser = gw.signed_up(email).await;
    let reply = browser
        .post("/api/v1/workspaces", json!({"name": "Elsewhere"}))
        .await;
    Admin {
        workspace: reply.body["id"].as_str().unwrap().to_owned(),
        browser,
    }
}

async fn service_errors_map_to_http_with_their_stable_reason(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let admin = admin_with_workspace(&gw).await;
    let w = &admin.workspace;
    let me = admin.browser.get("/api/v1/session").await;
    let owner_id = me.body["account"]["id"].as_str().unwrap().to_owned();
    let (_, _) = member(&gw, &admin, "user@example.com", "user").await;

    let cases = [
        (
            admin
                .browser
                .post_empty(&format!(
                    "/api/v1/workspaces/{w}/members/{owner_id}/disable"
                ))
                .await,
            400,
            "OWNER_PROTECTED",
        ),
        (
            admin
                .browser
                .patch(
                    &format!("/api/v1/workspaces/{w}/members/{owner_id}"),
                    json!({"role": "user"}),
                )
                .await,
            400,
            "SELF_ROLE_CHANGE",
        ),
        (
            admin
                .browser
                .post(
                    &format!("/api/v1/workspaces/{w}/invitations"),
                    json!({"email": "user@example.com", "role": "user"}),
                )
                .await,
            409,
            "ALREADY_MEMBER",
        ),
        (
            admin
                .browser
                .post(
                    &format!("/api/v1/workspaces/{w}/invitations"),
                    json!({"email": "not an email", "role": "user"}),
                )
                .await,
            400,
            "INVALID_EMAIL",
        ),
        (
            admin
                .browser
                .post(
                    &format!("/api/v1/workspaces/{w}/invitations"),
                    json!({"email": "x@example.com", "role": "superuser"}),
                )
                .await,
            400,
            "INVALID_ARGUMENT",
        ),
        (
            admin
                .browser
                .patch(
                    &format!("/api/v1/workspaces/{w}/settings"),
                    json!({"invitation_lifetime_hours": 10_000}),
                )
                .await,
            400,
            "INVALID_INVITATION_LIFETIME",
        ),
        (
            admin
                .browser
                .get("/api/v1/workspaces/00000000-0000-0000-0000-000000000000")
                .await,
            404,
            "WORKSPACE_NOT_FOUND",
        ),
        (
            admin.browser.get("/api/v1/no-such-route").await,
            404,
            "ROUTE_NOT_FOUND",
        ),
    ];
    for (reply, status, reason) in &cases {
        assert_eq!(reply.status, *status, "{reason}: {}", reply.text);
        assert_eq!(reply.reason(), *reason, "{}", reply.text);
        let error = &reply.body["error"];
        assert_eq!(error["code"], *status);
        assert!(error["status"].is_string() && error["message"].is_string());
    }
    // A body that is not JSON.
    let mut raw = admin.browser.clone();
    raw.extra = vec![("content-type".into(), "application/json".into())];
    let reply = raw
        .send(reqwest::Method::POST, "/api/v1/session", None)
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);

    // A service that is down is a 503 with a readable message.
    gw.system.identity.stop_now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = gw
        .browser()
        .post(
            "/api/v1/session",
            json!({"email": "owner@example.com", "password": "whatever it is"}),
        )
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
}
backend_test!(service_errors_map_to_http_with_their_stable_reason);

async fn require_mfa_sends_members_without_an_authenticator_to_set_up(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let admin = admin_with_workspace(&gw).await;
    let w = &admin.workspace;
    let (user, _) = member(&gw, &admin, "user@example.com", "user").await;

    // An admin without TOTP may not turn it on.
    let refused = admin
        .browser
        .patch(
            &format!("/api/v1/workspaces/{w}/settings"),
            json!({"require_mfa": true}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.reason(), "MFA_ENROLLMENT_REQUIRED");

    let setup = admin.browser.post_empty("/api/v1/account/totp").await;
    let secret = secret_from_base32(setup.body["secret"].as_str().unwrap());
    let confirmed = admin
        .browser
        .post(
            "/api/v1/account/totp/confirm",
            json!({"code": totp_code(&secret, gw.system.identity.now())}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let on = admin
        .browser
        .patch(
            &format!("/api/v1/workspaces/{w}/settings"),
            json!({"require_mfa": true, "invitation_lifetime_hours": 48}),
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(on.body["require_mfa"], true);
    assert_eq!(on.body["invitation_lifetime_hours"], 48);

    // The member without an authenticator is told to set one up...
    let blocked = user.get(&format!("/api/v1/workspaces/{w}/members")).await;
    assert_eq!(blocked.status, 400, "{}", blocked.text);
    assert_eq!(blocked.reason(), "MFA_ENROLLMENT_REQUIRED");
    // ...does so, and gets in with the same session.
    let setup = user.post_empty("/api/v1/account/totp").await;
    let secret = secret_from_base32(setup.body["secret"].as_str().unwrap());
    let confirmed = user
        .post(
            "/api/v1/account/totp/confirm",
            json!({"code": totp_code(&secret, gw.system.identity.now())}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let members = user.get(&format!("/api/v1/workspaces/{w}/members")).await;
    assert_eq!(members.status, 200, "{}", members.text);
}
backend_test!(require_mfa_sends_members_without_an_authenticator_to_set_up);
