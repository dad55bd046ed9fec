//! Spawning a real identity service for a test.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use identity_service::{
    Application,
    clock::ManualClock,
    config::Settings,
    crypto::EncryptionKey,
    domain::{TotpCode, TotpSecret, TotpVerifier},
    service::ServiceCredentials,
    startup::{BuildOptions, StopHandle},
};
use recapp_proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use tonic::{
    Request,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use crate::{Backend, TestDatabase};

/// The gateway's service credential in tests.
pub const SERVICE_SECRET: &str = "test-service-secret-3f9a1c2e7b5d4a6f8e0c";

/// Adds the service credential to every call.
#[derive(Clone)]
pub struct ServiceToken(MetadataValue<tonic::metadata::Ascii>);

impl ServiceToken {
    pub fn new(secret: MetadataValue<tonic::metadata::Ascii>) -> Self {
        Self(secret)
    }
}

impl Interceptor for ServiceToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("x-recapp-service-token", self.0.clone());
        recapp_telemetry::inject_trace_context(request.metadata_mut());
        Ok(request)
    }
}

pub type IdentityClient = IdentityServiceClient<InterceptedService<Channel, ServiceToken>>;

/// A running identity service.
pub struct TestIdentity {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub client: IdentityClient,
    pub database: Arc<TestDatabase>,
    pub settings: Settings,
    stop: StopHandle,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The settings every test starts from: real argon2 parameters (OWASP
/// floor), a fresh encryption key, the test service credential.
pub fn test_settings(database_url: &str) -> Settings {
    let key = EncryptionKey::new("test", [42u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    let mut settings = Settings::new(
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        database_url.to_owned(),
        vec![key],
        ServiceCredentials::default().with_secret("gateway", SERVICE_SECRET),
    );
    settings.migrate_on_start = true;
    settings.hash_concurrency = 2;
    settings.database_max_connections = 10;
    settings
}

impl TestIdentity {
    /// A service on a fresh database with default settings.
    pub async fn spawn(backend: Backend) -> TestIdentity {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A service on a fresh database; `configure` adjusts the settings.
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> TestIdentity {
        crate::init_test_logs();
        let database = Arc::new(
            TestDatabase::create(backend)
                .await
                .unwrap_or_else(|e| panic!("test database: {e:#}")),
        );
        let mut settings = test_settings(&database.url);
        configure(&mut settings);
        let clock = Arc::new(ManualClock::new(Utc::now()));
        Self::start(database, settings, clock)
            .await
            .unwrap_or_else(|e| panic!("spawn identity: {e:#}"))
    }

    /// Starts another service on the same database and clock (a restart,
    /// or a second replica).
    pub async fn spawn_replica(&self) -> TestIdentity {
        Self::start(
            self.database.clone(),
            self.settings.clone(),
            self.clock.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("spawn replica: {e:#}"))
    }

    async fn start(
        database: Arc<TestDatabase>,
        settings: Settings,
        clock: Arc<ManualClock>,
    ) -> anyhow::Result<TestIdentity> {
        let app = Application::build_with(
            settings.clone(),
            BuildOptions {
                clock: clock.clone(),
                allow_weak_argon2: true,
            },
        )
        .await?;
        let addr = app.local_addr();
        let stop = app.stop_handle();
        let task = tokio::spawn(app.run_until_stopped());
        let client = connect(addr).await?;
        Ok(TestIdentity {
            addr,
            clock,
            client,
            database,
            settings,
            stop,
            task: Some(task),
        })
    }

    /// A fresh client (each has its own HTTP/2 connection).
    pub async fn new_client(&self) -> IdentityClient {
        connect(self.addr).await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// A client without the service credential.
    pub async fn anonymous_client(&self) -> IdentityServiceClient<Channel> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        IdentityServiceClient::new(channel)
    }

    /// Tells the service to stop, without waiting (it keeps its database).
    pub fn stop_now(&self) {
        self.stop.stop();
    }

    /// Stops the service and waits for it to finish.
    pub async fn stop(mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        use identity_service::clock::Clock;
        self.clock.now()
    }

    /// Creates an account and returns its id.
    pub async fn create_account(&self, email: &str, password: &str) -> pb::Account {
        self.client
            .clone()
            .create_account(pb::CreateAccountRequest {
                email: email.into(),
                password: password.into(),
                display_name: String::new(),
                client_info: Some(client_info("192.0.2.10")),
            })
            .await
            .unwrap_or_else(|e| panic!("create_account: {e:?}"))
            .into_inner()
            .account
            .unwrap_or_else(|| panic!("no account"))
    }

    /// Signs in an account without TOTP and returns its session.
    pub async fn sign_in(&self, email: &str, password: &str) -> pb::Session {
        match self.authenticate(email, password).await {
            pb::authenticate_response::Result::Session(s) => s,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    pub async fn authenticate(
        &self,
        email: &str,
        password: &str,
    ) -> pb::authenticate_response::Result {
        self.client
            .clone()
            .authenticate(pb::AuthenticateRequest {
                email: email.into(),
                password: password.into(),
                client_info: Some(client_info("192.0.2.10")),
            })
            .await
            .unwrap_or_else(|e| panic!("authenticate: {e:?}"))
            .into_inner()
            .result
            .unwrap_or_else(|| panic!("no result"))
    }

    /// Enrolls TOTP for the session's account; returns the secret, the
    /// recovery codes and the upgraded access token.
    pub async fn enroll_totp(&self, access_token: &str) -> (TotpSecret, Vec<String>, String) {
        let begun = self
            .client
            .clone()
            .begin_totp_enrollment(bearer(pb::BeginTotpEnrollmentRequest {}, access_token))
            .await
            .unwrap_or_else(|e| panic!("begin: {e:?}"))
            .into_inner();
        let secret = secret_from_base32(&begun.secret_base32);
        let code = totp_code(&secret, self.now());
        let confirmed = self
            .client
            .clone()
            .confirm_totp_enrollment(bearer(
                pb::ConfirmTotpEnrollmentRequest {
                    totp_code: code,
                    client_info: None,
                },
                access_token,
            ))
            .await
            .unwrap_or_else(|e| panic!("confirm: {e:?}"))
            .into_inner();
        (secret, confirmed.recovery_codes, confirmed.access_token)
    }
}

impl Drop for TestIdentity {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<IdentityClient> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .context("connecting to the identity service")?;
    let token = MetadataValue::try_from(SERVICE_SECRET)?;
    Ok(IdentityServiceClient::with_interceptor(
        channel,
        ServiceToken(token),
    ))
}

pub fn client_info(ip: &str) -> pb::ClientInfo {
    pb::ClientInfo {
        ip_address: ip.into(),
        user_agent: "recapp-tests".into(),
    }
}

/// Wraps a message with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, access_token: &str) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(format!("Bearer {access_token}")) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

pub fn secret_from_base32(text: &str) -> TotpSecret {
    let bytes = base32_decode(text).unwrap_or_else(|| panic!("bad base32 secret"));
    TotpSecret::from_bytes(bytes)
}

/// The 6-digit code at `now`, as an authenticator app computes it.
pub fn totp_code(secret: &TotpSecret, now: DateTime<Utc>) -> String {
    TotpVerifier::standard().generate(secret, u64::try_from(now.timestamp()).unwrap_or(0))
}

/// Checks a code is well-formed (used by tests that craft codes).
pub fn is_code(text: &str) -> bool {
    TotpCode::parse(text).is_ok()
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u32;
    let mut count = 0u32;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// The `ErrorInfo.reason` of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}
