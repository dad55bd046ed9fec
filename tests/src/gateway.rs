//! The whole system for a test: identity, membership (with its SMTP sink)
//! and the gateway on random ports, and a small cookie-keeping HTTP client
//! that behaves like the browser page (it echoes the CSRF cookie and sends
//! the page's Origin).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine;
use gateway::{
    Application, StopHandle,
    config::{Settings, parse_proxies},
    session::CookieKeys,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::{
    Backend,
    identity::SERVICE_SECRET,
    membership::{PASSWORD, TestSystem},
};

/// The origin the test "browser" page runs on (membership's links use it too).
pub const ORIGIN: &str = "https://recapp.test";

pub fn gateway_settings(identity: SocketAddr, membership: SocketAddr) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        identity_url: format!("http://{identity}"),
        membership_url: format!("http://{membership}"),
        service_token: SecretString::from(SERVICE_SECRET.to_owned()),
        cookie_keys: CookieKeys::parse(
            &base64::engine::general_purpose::STANDARD.encode([5u8; 32]),
        )
        .unwrap_or_else(|e| panic!("{e}")),
        public_origin: ORIGIN.into(),
        trusted_proxies: parse_proxies("").unwrap_or_default(),
        insecure_http: false,
        call_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
    }
}

pub struct TestGateway {
    pub system: TestSystem,
    pub addr: SocketAddr,
    pub url: String,
    pub stop: StopHandle,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    pub async fn spawn(backend: Backend) -> TestGateway {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> TestGateway {
        let system = TestSystem::spawn(backend).await;
        let mut settings = gateway_settings(system.identity.addr, system.addr);
        configure(&mut settings);
        let app = Application::build_with(settings, system.identity.clock.clone())
            .await
            .unwrap_or_else(|e| panic!("gateway: {e:#}"));
        let addr = app.local_addr();
        let stop = app.stop_handle();
        let task = tokio::spawn(app.run_until_stopped());
        TestGateway {
            system,
            addr,
            url: format!("http://{addr}"),
            stop,
            task: Some(task),
        }
    }

    /// A new browser (its own cookie jar).
    pub fn browser(&self) -> Browser {
        Browser::new(&self.url)
    }

    /// A browser signed up and signed in as `email` (no TOTP).
    pub async fn signed_up(&self, email: &str) -> Browser {
        let browser = self.browser();
        let reply = browser
            .post(
                "/api/v1/accounts",
                json!({"email": email, "password": PASSWORD, "display_name": ""}),
            )
            .await;
        assert_eq!(reply.status, 201, "sign up {email}: {}", reply.body);
        browser
    }

    /// The token of the next invitation email (waits for it).
    pub async fn next_invitation_token(&self, before: usize) -> String {
        self.system.invitation_token_after(before).await
    }

    pub async fn stop(mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error body's `reason`.
    pub fn reason(&self) -> &str {
        self.body["error"]["reason"].as_str().unwrap_or("")
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A cookie jar over reqwest that sends what a page of [`ORIGIN`] would.
#[derive(Clone)]
pub struct Browser {
    http: reqwest::Client,
    base: String,
    jar: Arc<Mutex<BTreeMap<String, String>>>,
    /// `Origin` on state-changing requests (`None`: send none).
    pub origin: Option<String>,
    /// Echo the CSRF cookie in `X-CSRF-Token`.
    pub send_csrf: bool,
    /// Extra headers on every request.
    pub extra: Vec<(String, String)>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            base: base.to_owned(),
            jar: Arc::default(),
            origin: Some(ORIGIN.to_owned()),
            send_csrf: true,
            extra: Vec::new(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The CSRF cookie (`__Host-` prefixed, or plain under the dev flag).
    pub fn csrf_cookie(&self) -> Option<String> {
        self.cookie("__Host-recapp-csrf")
            .or_else(|| self.cookie("recapp-csrf"))
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), value.to_owned());
    }

    /// A browser with a copy of this one's cookies (a stolen cookie jar).
    pub fn fork(&self) -> Browser {
        let copy = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Browser {
            jar: Arc::new(Mutex::new(copy)),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(reqwest::Method::POST, path, None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        // A page load first, as a browser would have: it sets the CSRF cookie.
        if self.csrf_cookie().is_none() && method != reqwest::Method::GET {
            Box::pin(self.get("/")).await;
        }
        let safe = method == reqwest::Method::GET;
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        let cookies = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !cookies.is_empty() {
            request = request.header(reqwest::header::COOKIE, cookies);
        }
        if !safe {
            if let Some(origin) = &self.origin {
                request = request.header(reqwest::header::ORIGIN, origin);
            }
            if self.send_csrf
                && let Some(token) = self.csrf_cookie()
            {
                request = request.header("x-csrf-token", token);
            }
        }
        for (name, value) in &self.extra {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("HTTP {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(set) = set.to_str() else { continue };
            let pair = set.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let mut jar = self
                .jar
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if value.is_empty() || set.contains("Max-Age=0") {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// Signs in with the password (asserting no second factor is asked).
    pub async fn sign_in(&self, email: &str) -> Reply {
        self.post(
            "/api/v1/session",
            json!({"email": email, "password": PASSWORD}),
        )
        .await
    }
}
