//! Signing up, in (with TOTP or a recovery code) and out through the
//! gateway; the session cookie, CSRF, refresh and client addresses.

use recapp_tests::{
    Backend, backend_test,
    gateway::{Browser, TestGateway},
    identity::{secret_from_base32, totp_code},
    membership::PASSWORD,
};
use serde_json::json;

async fn sign_up_sets_a_host_prefixed_http_only_secure_cookie_and_no_token_in_the_body(
    backend: Backend,
) {
    let gw = TestGateway::spawn(backend).await;
    let browser = gw.browser();
    let reply = browser
        .post(
            "/api/v1/accounts",
            json!({"email": "ada@example.com", "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "signed_in");
    assert_eq!(reply.body["account"]["email"], "ada@example.com");
    let cookie = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-recapp-session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Domain="),
        "__Host- cookies carry no Domain"
    );
    // The page never sees identity's tokens: not in the body, and the cookie
    // value is sealed (no JWT inside).
    assert!(!reply.text.contains("eyJ"), "{}", reply.text);
    let value = browser.cookie("__Host-recapp-session").unwrap();
    assert!(!value.contains("eyJ") && !value.contains('.'));

    let me = browser.get("/api/v1/session").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["account"]["email"], "ada@example.com");
    assert_eq!(me.body["account"]["display_name"], "Ada");
    assert_eq!(me.body["second_factor"], false);
    // The CSRF cookie is readable by the page but strict.
    let page = gw.browser().get("/").await;
    let csrf = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-recapp-csrf="))
        .expect("a CSRF cookie on the first page load");
    assert!(csrf.contains("SameSite=Strict") && csrf.contains("Secure"));
    assert!(!csrf.contains("HttpOnly"));
}
backend_test!(sign_up_sets_a_host_prefixed_http_only_secure_cookie_and_no_token_in_the_body);

async fn state_changing_requests_without_the_csrf_token_or_from_another_origin_are_refused(
    backend: Backend,
) {
    let gw = TestGateway::spawn(backend).await;
    let signed_in = gw.signed_up("ada@example.com").await;

    let mut no_token = signed_in.fork();
    no_token.send_csrf = false;
    let reply = no_token
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.reason(), "CSRF_FAILED");

    let mut wrong_token = signed_in.fork();
    wrong_token.send_csrf = false;
    wrong_token.extra = vec![("x-csrf-token".into(), "a".repeat(43))];
    let reply = wrong_token
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    assert_eq!(reply.reason(), "CSRF_FAILED");

    let mut evil = signed_in.fork();
    evil.origin = Some("https://evil.example".into());
    let reply = evil
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.reason(), "CSRF_FAILED");

    let mut cross_site = signed_in.fork();
    cross_site.extra = vec![("sec-fetch-site".into(), "cross-site".into())];
    let reply = cross_site
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    assert_eq!(reply.reason(), "CSRF_FAILED");

    // Sign-in is protected too (login CSRF).
    let mut anonymous = gw.browser();
    anonymous.send_csrf = false;
    let reply = anonymous.sign_in("ada@example.com").await;
    assert_eq!(reply.reason(), "CSRF_FAILED");

    // Nothing was created by the refused requests; the real page can.
    let list = signed_in.get("/api/v1/workspaces").await;
    assert_eq!(list.body["workspaces"].as_array().unwrap().len(), 0);
    let reply = signed_in
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // State changes are never GETs.
    let reply = signed_in
        .get("/api/v1/workspaces/x/members/y/disable")
        .await;
    assert_eq!(reply.status, 405);
}
backend_test!(state_changing_requests_without_the_csrf_token_or_from_another_origin_are_refused);

async fn a_wrong_password_and_an_unknown_email_get_the_same_answer(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    gw.signed_up("ada@example.com").await;
    let browser = gw.browser();
    let wrong = browser
        .post(
            "/api/v1/session",
            json!({"email": "ada@example.com", "password": "not the password at all"}),
        )
        .await;
    let unknown = browser
        .post(
            "/api/v1/session",
            json!({"email": "nobody@example.com", "password": "not the password at all"}),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.reason(), "INVALID_CREDENTIALS");
    assert_eq!(wrong.body, unknown.body);
    assert!(browser.cookie("__Host-recapp-session").is_none());
    let me = browser.get("/api/v1/session").await;
    assert_eq!(me.status, 401);
    assert_eq!(me.reason(), "SIGNED_OUT");
}
backend_test!(a_wrong_password_and_an_unknown_email_get_the_same_answer);

async fn signing_in_with_totp_takes_the_code_step_and_a_recovery_code_works_once(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let clock = gw.system.identity.clock.clone();
    let browser = gw.signed_up("ada@example.com").await;

    let setup = browser.post_empty("/api/v1/account/totp").await;
    assert_eq!(setup.status, 200, "{}", setup.text);
    assert!(
        setup.body["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    assert!(
        setup.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let secret = secret_from_base32(setup.body["secret"].as_str().unwrap());
    let bad = browser
        .post("/api/v1/account/totp/confirm", json!({"code": "000000"}))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.reason(), "TOTP_INVALID");
    let confirmed = browser
        .post(
            "/api/v1/account/totp/confirm",
            json!({"code": totp_code(&secret, gw.system.identity.now())}),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let codes: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let me = browser.get("/api/v1/session").await;
    assert_eq!(me.body["account"]["totp_enrolled"], true);
    assert_eq!(me.body["second_factor"], true);

    let out = browser.delete("/api/v1/session").await;
    assert_eq!(out.status, 204);
    assert!(browser.cookie("__Host-recapp-session").is_none());

    // Password first: no session yet, only the MFA step.
    let step = browser.sign_in("ada@example.com").await;
    assert_eq!(step.status, 200, "{}", step.text);
    assert_eq!(step.body["status"], "mfa_required");
    assert!(browser.cookie("__Host-recapp-session").is_none());
    assert!(browser.cookie("__Host-recapp-mfa").is_some());
    assert_eq!(browser.get("/api/v1/session").await.status, 401);
    let wrong = browser
        .post("/api/v1/session/mfa", json!({"totp_code": "123456"}))
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.reason(), "TOTP_INVALID");
    clock.advance(chrono::Duration::seconds(30));
    let done = browser
        .post(
            "/api/v1/session/mfa",
            json!({"totp_code": totp_code(&secret, gw.system.identity.now())}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "signed_in");
    assert!(browser.cookie("__Host-recapp-mfa").is_none());
    assert_eq!(browser.get("/api/v1/session").await.status, 200);

    // A second browser uses a recovery code, once.
    let other = gw.browser();
    other.sign_in("ada@example.com").await;
    let used = other
        .post("/api/v1/session/mfa", json!({"recovery_code": codes[0]}))
        .await;
    assert_eq!(used.status, 200, "{}", used.text);
    let third = gw.browser();
    third.sign_in("ada@example.com").await;
    let again = third
        .post("/api/v1/session/mfa", json!({"recovery_code": codes[0]}))
        .await;
    assert_eq!(again.status, 401);
    assert_eq!(again.reason(), "RECOVERY_CODE_INVALID");
    // The code step without the password step is refused.
    let skipped = gw
        .browser()
        .post("/api/v1/session/mfa", json!({"recovery_code": codes[1]}))
        .await;
    assert_eq!(skipped.reason(), "MFA_STEP_MISSING");

    // Removing the app needs a code.
    let removed = browser
        .post(
            "/api/v1/account/totp/remove",
            json!({"recovery_code": codes[2]}),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let me = browser.get("/api/v1/session").await;
    assert_eq!(me.body["account"]["totp_enrolled"], false);
}
backend_test!(signing_in_with_totp_takes_the_code_step_and_a_recovery_code_works_once);

async fn an_expired_access_token_is_refreshed_once_for_parallel_requests(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let browser = gw.signed_up("ada@example.com").await;
    let before = browser.cookie("__Host-recapp-session").unwrap();
    gw.system
        .identity
        .clock
        .advance(chrono::Duration::seconds(10 * 60));

    // Eight requests at once carry the same expired cookie: one refresh is
    // shared, so the rotated refresh token is never presented twice (which
    // would revoke the session).
    let replies = futures::future::join_all((0..8).map(|_| {
        let b = browser.fork();
        async move { b.get("/api/v1/workspaces").await }
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            reply
                .set_cookies()
                .iter()
                .any(|c| c.starts_with("__Host-recapp-session=")),
            "each answer carries the refreshed cookie"
        );
    }
    let reply = browser.get("/api/v1/workspaces").await;
    assert_eq!(reply.status, 200);
    let after = browser.cookie("__Host-recapp-session").unwrap();
    assert_ne!(before, after);
    // The refreshed session keeps working.
    gw.system
        .identity
        .clock
        .advance(chrono::Duration::seconds(10 * 60));
    assert_eq!(browser.get("/api/v1/workspaces").await.status, 200);
}
backend_test!(an_expired_access_token_is_refreshed_once_for_parallel_requests);

async fn after_sign_out_a_copied_cookie_stops_working(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let browser = gw.signed_up("ada@example.com").await;
    let stolen = browser.fork();
    let out = browser.delete("/api/v1/session").await;
    assert_eq!(out.status, 204);
    assert!(
        out.set_cookies()
            .iter()
            .any(|c| c.starts_with("__Host-recapp-session=;") && c.contains("Max-Age=0"))
    );
    // Once its access token has expired, the copy cannot refresh: the
    // session was revoked in identity.
    gw.system
        .identity
        .clock
        .advance(chrono::Duration::seconds(10 * 60));
    let reply = stolen.get("/api/v1/workspaces").await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.reason(), "SIGNED_OUT");
}
backend_test!(after_sign_out_a_copied_cookie_stops_working);

/// The audit log records the client address the gateway passed on.
async fn last_audited_ip(browser: &Browser, workspace: &str) -> String {
    let events = browser
        .get(&format!("/api/v1/workspaces/{workspace}/audit-events"))
        .await;
    assert_eq!(events.status, 200, "{}", events.text);
    events.body["events"][0]["client_ip"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn the_client_address_comes_only_from_a_trusted_proxy_hop(backend: Backend) {
    // Not behind a trusted proxy: a forged X-Forwarded-For is ignored.
    let gw = TestGateway::spawn(backend).await;
    let mut browser = gw.signed_up("ada@example.com").await;
    browser.extra = vec![("x-forwarded-for".into(), "1.2.3.4".into())];
    let w = browser
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    let id = w.body["id"].as_str().unwrap().to_owned();
    assert_eq!(last_audited_ip(&browser, &id).await, "127.0.0.1");
    drop(gw);

    // Behind a trusted proxy (loopback here): the hop it appended counts,
    // never what the client put in front of it.
    let gw = TestGateway::spawn_with(backend, |s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let mut browser = gw.signed_up("ada@example.com").await;
    browser.extra = vec![("x-forwarded-for".into(), "1.2.3.4, 198.51.100.7".into())];
    let w = browser
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    let id = w.body["id"].as_str().unwrap().to_owned();
    assert_eq!(last_audited_ip(&browser, &id).await, "198.51.100.7");
}
backend_test!(the_client_address_comes_only_from_a_trusted_proxy_hop);

async fn the_trace_context_of_the_browser_request_reaches_the_audit_log(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let mut browser = gw.signed_up("ada@example.com").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    browser.extra = vec![(
        "traceparent".into(),
        format!("00-{trace_id}-00f067aa0ba902b7-01"),
    )];
    let w = browser
        .post("/api/v1/workspaces", json!({"name": "Acme"}))
        .await;
    assert_eq!(w.status, 201, "{}", w.text);
    let id = w.body["id"].as_str().unwrap();
    let events = browser
        .get(&format!("/api/v1/workspaces/{id}/audit-events"))
        .await;
    assert_eq!(events.body["events"][0]["trace_id"], trace_id);
}
backend_test!(the_trace_context_of_the_browser_request_reaches_the_audit_log);
