//! The UI's files and headers, the OpenAPI document, health, and the
//! launcher.

use std::{collections::BTreeSet, time::Duration};

use recapp_dev::{DevOptions, DevSystem};
use recapp_tests::{
    Backend, backend_test,
    gateway::{Browser, TestGateway},
};
use serde_json::{Value, json};

async fn pages_carry_a_strict_content_security_policy_and_the_other_headers(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let browser = gw.browser();
    for path in [
        "/",
        "/signin",
        "/w/x/users",
        "/invite/abc",
        "/api/v1/session",
    ] {
        let reply = browser.get(path).await;
        let csp = reply.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(
            reply.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            reply.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert_eq!(reply.header("x-frame-options").as_deref(), Some("DENY"));
        assert!(reply.header("strict-transport-security").is_some());
    }
    let page = browser.get("/w/x/users").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<main id=\"main\""));
    // No inline script: every <script> has a src.
    for script in page.text.split("<script").skip(1) {
        assert!(
            script.trim_start().starts_with("src="),
            "inline script: {script}"
        );
    }
    let js = browser.get("/assets/app.js").await;
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let css = browser.get("/assets/app.css").await;
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(browser.get("/healthz").await.status, 200);
    assert_eq!(browser.get("/readyz").await.status, 200);
    let post_page = browser.post("/signin", json!({})).await;
    assert_eq!(post_page.status, 404);
}
backend_test!(pages_carry_a_strict_content_security_policy_and_the_other_headers);

/// Every `$ref` in the document points at a schema it defines.
fn refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.insert(r.to_owned());
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

async fn the_openapi_document_describes_every_route_and_validates(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let reply = gw.browser().get("/api/openapi.json").await;
    assert_eq!(reply.status, 200);
    // A strict OpenAPI 3.1 parser accepts it.
    let spec = oas3::from_json(&reply.text).expect("a valid OpenAPI 3.1 document");
    assert!(reply.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec.paths.expect("paths");
    // The document and the router come from one list of handlers; check the
    // flows of the Users page are all there with their methods.
    let expected = [
        ("post", "/api/v1/accounts"),
        ("post", "/api/v1/session"),
        ("get", "/api/v1/session"),
        ("delete", "/api/v1/session"),
        ("post", "/api/v1/session/mfa"),
        ("post", "/api/v1/session/refresh"),
        ("post", "/api/v1/account/totp"),
        ("post", "/api/v1/account/totp/confirm"),
        ("post", "/api/v1/account/totp/remove"),
        ("get", "/api/v1/workspaces"),
        ("post", "/api/v1/workspaces"),
        ("get", "/api/v1/workspaces/{workspace_id}"),
        ("patch", "/api/v1/workspaces/{workspace_id}/settings"),
        ("get", "/api/v1/workspaces/{workspace_id}/permissions"),
        ("get", "/api/v1/workspaces/{workspace_id}/members"),
        (
            "patch",
            "/api/v1/workspaces/{workspace_id}/members/{account_id}",
        ),
        (
            "delete",
            "/api/v1/workspaces/{workspace_id}/members/{account_id}",
        ),
        (
            "post",
            "/api/v1/workspaces/{workspace_id}/members/{account_id}/disable",
        ),
        (
            "post",
            "/api/v1/workspaces/{workspace_id}/members/{account_id}/enable",
        ),
        ("get", "/api/v1/workspaces/{workspace_id}/invitations"),
        ("post", "/api/v1/workspaces/{workspace_id}/invitations"),
        (
            "post",
            "/api/v1/workspaces/{workspace_id}/invitations/{invitation_id}/resend",
        ),
        (
            "delete",
            "/api/v1/workspaces/{workspace_id}/invitations/{invitation_id}",
        ),
        ("get", "/api/v1/invitations/{token}"),
        ("post", "/api/v1/invitations/{token}/accept"),
        ("get", "/api/v1/workspaces/{workspace_id}/audit-events"),
    ];
    let documented: usize = reply.body["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, expected.len(), "{}", reply.body["paths"]);
    for (method, path) in expected {
        let op = &reply.body["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        assert!(paths.contains_key(path));
    }
    // Every reference resolves.
    let mut found = BTreeSet::new();
    refs(&reply.body, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            reply.body["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // Documented paths are served (not the UI fallback).
    let probe = gw.browser().get("/api/v1/workspaces").await;
    assert_eq!(probe.reason(), "SIGNED_OUT");
}
backend_test!(the_openapi_document_describes_every_route_and_validates);

async fn on_stop_readiness_fails_and_in_flight_requests_finish(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let browser = gw.signed_up("ada@example.com").await;
    // A sign-in (one argon2 hash) is in flight when the stop comes.
    let slow = {
        let b = gw.browser();
        tokio::spawn(async move { b.sign_in("ada@example.com").await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    gw.stop.stop();
    let finished = slow.await.unwrap();
    assert_eq!(finished.status, 200, "{}", finished.text);
    // New connections are refused once it has drained.
    let mut refused = false;
    for _ in 0..50 {
        let result = reqwest::get(format!("{}/healthz", gw.url)).await;
        if result.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the gateway still accepts connections after stopping"
    );
    drop(browser);
}
backend_test!(on_stop_readiness_fails_and_in_flight_requests_finish);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_starts_everything_and_serves_the_users_page() {
    recapp_tests::init_test_logs();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let system = DevSystem::start(DevOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        owner_email: "admin@example.com".into(),
        workspace_name: "My workspace".into(),
        print_links: false,
    })
    .await
    .expect("the launcher starts");
    let bootstrap = system
        .bootstrap
        .clone()
        .expect("first start creates the owner");
    let mut browser = Browser::new(&format!("http://{}", system.gateway_addr));
    browser.origin = Some(system.url.clone());
    let page = browser
        .get(&format!("/w/{}/users", bootstrap.workspace_id))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("MSP Recapp"));
    eprintln!("first page after {} ms", started.elapsed().as_millis());

    // Dev cookies: no __Host- prefix, no Secure (plain http on localhost).
    let csrf = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("recapp-csrf="))
        .expect("csrf cookie");
    assert!(!csrf.contains("Secure"));
    let dev = browser;
    let signed_in = dev
        .post(
            "/api/v1/session",
            json!({"email": bootstrap.email, "password": bootstrap.password}),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    let members = dev
        .get(&format!(
            "/api/v1/workspaces/{}/members",
            bootstrap.workspace_id
        ))
        .await;
    assert_eq!(members.status, 200, "{}", members.text);
    assert_eq!(members.body["members"][0]["email"], "admin@example.com");
    assert_eq!(members.body["members"][0]["is_owner"], true);

    system.stop();
    tokio::time::timeout(Duration::from_secs(30), system.wait())
        .await
        .expect("stops within 30 s")
        .expect("stops cleanly");

    // A second start keeps the data and does not bootstrap again.
    let again = DevSystem::start(DevOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        owner_email: "admin@example.com".into(),
        workspace_name: "My workspace".into(),
        print_links: false,
    })
    .await
    .expect("restarts");
    assert!(again.bootstrap.is_none());
    again.stop();
    eprintln!("second stop sent");
    again.wait().await.expect("stops cleanly");
    eprintln!("second wait done");
}

#[test]
fn the_launcher_finds_the_invitation_link_in_an_email_file() {
    let raw = "From: MSP Recapp <no-reply@localhost>\r\nTo: new@example.com\r\nSubject: Join\r\n\
               MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\r\n\
               Open http://localhost:8080/invite/abc=\r\ndef to join.\r\n";
    let (to, link) = recapp_dev::invitation_link(raw.as_bytes()).expect("a link");
    assert_eq!(to, "new@example.com");
    assert_eq!(link, "http://localhost:8080/invite/abcdef");
}
