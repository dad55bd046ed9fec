//! The Users page in real headless Chromium: `tests/browser/users.mjs`
//! (playwright-core driving Debian's /usr/bin/chromium) against the real
//! gateway and services. The invitation links come from the emails the SMTP
//! sink received. Screenshots land in `target/browser-artifacts/<backend>/`.
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci --prefix tests/browser`;
//! without them the test says SKIPPED, except under CI (`CI` set) or with
//! `RECAPP_TEST_BROWSER=1`, where their absence is a failure.

use std::{io::Write, path::PathBuf, process::Stdio, time::Duration};

use recapp_tests::{
    Backend, backend_test,
    gateway::{Browser, TestGateway},
    membership::PASSWORD,
};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Whether the browser tests can run here (or must, under CI).
fn browser_available() -> bool {
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("RECAPP_TEST_BROWSER").is_some();
    let missing: Vec<&str> = [
        (
            std::process::Command::new("node")
                .arg("--version")
                .output()
                .is_err(),
            "node",
        ),
        (!PathBuf::from(CHROMIUM).exists(), CHROMIUM),
        (
            !browser_dir().join("node_modules/playwright-core").exists(),
            "tests/browser/node_modules (npm ci --prefix tests/browser)",
        ),
    ]
    .into_iter()
    .filter_map(|(missing, what)| missing.then_some(what))
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !required,
        "browser tests must run under CI, but these are missing: {missing:?}"
    );
    eprintln!("SKIPPED: browser test needs {missing:?}");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

async fn the_users_page_flow_works_in_chromium(backend: Backend) {
    if !browser_available() {
        return;
    }
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let gw = TestGateway::spawn_with(backend, |s| {
        s.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.public_origin = origin.clone();
        s.insecure_http = true;
    })
    .await;
    // The browser computes TOTP codes from the wall clock: let the services'
    // clock follow it.
    let clock = gw.system.identity.clock.clone();
    let ticker = tokio::spawn(async move {
        loop {
            clock.set(chrono::Utc::now());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // The owner and the workspace exist; everything else happens in the page.
    let mut owner = Browser::new(&origin);
    owner.origin = Some(origin.clone());
    let signed_up = owner
        .post(
            "/api/v1/accounts",
            json!({"email": "admin@example.com", "password": PASSWORD, "display_name": "Avery Admin"}),
        )
        .await;
    assert_eq!(signed_up.status, 201, "{}", signed_up.text);
    let workspace = owner
        .post("/api/v1/workspaces", json!({"name": "Acme MSP"}))
        .await;
    assert_eq!(workspace.status, 201, "{}", workspace.text);

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/browser-artifacts")
        .join(format!("{backend:?}").to_lowercase());
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let links = artifacts.join("links.txt");
    std::fs::write(&links, "").unwrap();

    // Each delivered invitation email's link, for the page script to open.
    let relay = async {
        let mut seen = 0;
        loop {
            let messages = gw.system.mail.messages();
            for message in &messages[seen..] {
                let body = message.text_body().unwrap_or_else(|| message.data.clone());
                if let Some(start) = body.find("https://") {
                    let link: String = body[start..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let to = message.to.first().cloned().unwrap_or_default();
                    let mut file = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&links)
                        .unwrap();
                    writeln!(file, "{to} {link}").unwrap();
                }
            }
            seen = messages.len();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let run = tokio::process::Command::new("node")
        .arg(browser_dir().join("users.mjs"))
        .env("BASE_URL", &origin)
        .env("ADMIN_EMAIL", "admin@example.com")
        .env("PASSWORD", PASSWORD)
        .env("LINKS_FILE", &links)
        .env("ARTIFACTS", &artifacts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::select! {
        output = tokio::time::timeout(Duration::from_secs(240), run) => output,
        () = relay => unreachable!("the relay loop never ends"),
    }
    .expect("the browser test finishes within 4 minutes")
    .expect("node runs");
    ticker.abort();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser test failed ({}):\n{stdout}\n{stderr}\nartifacts: {}",
        output.status,
        artifacts.display()
    );
    assert!(stdout.contains("step: done"), "{stdout}");
    for shot in [
        "users-active.png",
        "users-pending.png",
        "users-disabled.png",
    ] {
        let size = std::fs::metadata(artifacts.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 1000, "screenshot {shot} missing");
    }
}
backend_test!(the_users_page_flow_works_in_chromium);
