//! Spawning identity and membership together for a test: both on fresh
//! databases of the same backend, one manual clock, a real SMTP server.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use membership_service::{
    Application,
    config::{MailSettings, Settings},
    outbox::{RelayPolicy, SmtpSettings, SmtpTls},
    service::Policy,
    startup::{BuildOptions, StopHandle},
};
use recapp_proto::{
    identity::v1 as ipb,
    membership::v1::{self as pb, membership_service_client::MembershipServiceClient},
};
use recapp_service_kit::ServiceCredentials;
use secrecy::SecretString;
use tonic::{
    Request,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

use crate::{
    Backend, TestDatabase, TestIdentity,
    identity::{SERVICE_SECRET, bearer, secret_from_base32, totp_code},
    smtp::SmtpSink,
};

/// Membership's credential for calling identity.
pub const MEMBERSHIP_SECRET: &str = "test-membership-secret-5c0ffee9d2b14e77";
/// A service principal allowed to call membership (CheckPermission).
pub const SUITE_SECRET: &str = "test-suite-service-secret-a1b2c3d4e5f6";
pub const PASSWORD: &str = "correct horse battery staple";

pub type MembershipClient = MembershipServiceClient<Channel>;

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Person {
    pub account_id: String,
    pub email: String,
    pub access_token: String,
}

pub struct TestSystem {
    pub identity: TestIdentity,
    pub addr: SocketAddr,
    pub client: MembershipClient,
    pub mail: SmtpSink,
    pub database: Arc<TestDatabase>,
    pub settings: Settings,
    stop: StopHandle,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn membership_settings(database_url: &str, identity_url: &str, smtp: SocketAddr) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        database_url: database_url.to_owned(),
        database_max_connections: 10,
        migrate_on_start: true,
        identity_url: identity_url.to_owned(),
        identity_token: SecretString::from(MEMBERSHIP_SECRET.to_owned()),
        identity_timeout: Duration::from_secs(5),
        service_credentials: ServiceCredentials::default()
            .with_secret("gateway", SERVICE_SECRET)
            .with_secret("suite", SUITE_SECRET),
        page_token_secret: SecretString::from("test-page-token-secret".to_owned()),
        mail: MailSettings::Smtp(SmtpSettings {
            host: smtp.ip().to_string(),
            port: smtp.port(),
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "MSP Recapp <no-reply@recapp.test>".into(),
            timeout: Duration::from_secs(5),
        }),
        mail_from: "MSP Recapp <no-reply@recapp.test>".into(),
        policy: Policy {
            public_base_url: "https://recapp.test".into(),
            ..Policy::default()
        },
        relay: RelayPolicy {
            poll_interval: Duration::from_millis(50),
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..RelayPolicy::default()
        },
        shutdown_grace: Duration::from_secs(5),
    }
}

impl TestSystem {
    pub async fn spawn(backend: Backend) -> TestSystem {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestSystem {
        let identity = TestIdentity::spawn_with(backend, |s| {
            s.service_credentials = s
                .service_credentials
                .clone()
                .with_secret("membership", MEMBERSHIP_SECRET);
        })
        .await;
        let mail = SmtpSink::start().await;
        let database = Arc::new(
            TestDatabase::create(backend)
                .await
                .unwrap_or_else(|e| panic!("test database: {e:#}")),
        );
        let mut settings = membership_settings(
            &database.url,
            &format!("http://{}", identity.addr),
            mail.addr,
        );
        configure(&mut settings);
        Self::start(identity, mail, database, settings)
            .await
            .unwrap_or_else(|e| panic!("spawn membership: {e:#}"))
    }

    async fn start(
        identity: TestIdentity,
        mail: SmtpSink,
        database: Arc<TestDatabase>,
        settings: Settings,
    ) -> anyhow::Result<TestSystem> {
        let app = Application::build_with(
            settings.clone(),
            BuildOptions {
                clock: identity.clock.clone(),
            },
        )
        .await?;
        let addr = app.local_addr();
        let stop = app.stop_handle();
        let task = tokio::spawn(app.run_until_stopped());
        let client = connect(addr).await?;
        Ok(TestSystem {
            identity,
            addr,
            client,
            mail,
            database,
            settings,
            stop,
            task: Some(task),
        })
    }

    /// Another membership replica on the same database and identity.
    pub async fn replica(&self) -> (SocketAddr, MembershipClient, StopHandle) {
        let app = Application::build_with(
            self.settings.clone(),
            BuildOptions {
                clock: self.identity.clock.clone(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("replica: {e:#}"));
        let addr = app.local_addr();
        let stop = app.stop_handle();
        tokio::spawn(app.run_until_stopped());
        (
            addr,
            connect(addr).await.unwrap_or_else(|e| panic!("{e:#}")),
            stop,
        )
    }

    pub async fn new_client(&self) -> MembershipClient {
        connect(self.addr).await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub async fn stop(mut self) {
        self.stop.stop();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Signs up and signs in a person (no TOTP).
    pub async fn person(&self, email: &str) -> Person {
        let account = self.identity.create_account(email, PASSWORD).await;
        let session = self.identity.sign_in(email, PASSWORD).await;
        Person {
            account_id: account.id,
            email: account.email,
            access_token: session.access_token,
        }
    }

    /// A person with TOTP enrolled, signed in with both factors.
    pub async fn person_with_mfa(&self, email: &str) -> Person {
        let mut person = self.person(email).await;
        let (_, _, token) = self.identity.enroll_totp(&person.access_token).await;
        person.access_token = token;
        person
    }

    /// Enrolls TOTP for a person and returns the secret's next-step code
    /// function's input (the base32 secret).
    pub async fn begin_and_confirm_totp(&self, person: &mut Person) {
        let begun = self
            .identity
            .client
            .clone()
            .begin_totp_enrollment(bearer(
                ipb::BeginTotpEnrollmentRequest {},
                &person.access_token,
            ))
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_inner();
        let secret = secret_from_base32(&begun.secret_base32);
        let confirmed = self
            .identity
            .client
            .clone()
            .confirm_totp_enrollment(bearer(
                ipb::ConfirmTotpEnrollmentRequest {
                    totp_code: totp_code(&secret, self.identity.now()),
                    client_info: None,
                },
                &person.access_token,
            ))
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
            .into_inner();
        person.access_token = confirmed.access_token;
    }

    /// Creates a workspace owned by `owner`.
    pub async fn workspace(&self, owner: &Person, name: &str) -> pb::Workspace {
        self.client
            .clone()
            .create_workspace(bearer(
                pb::CreateWorkspaceRequest {
                    name: name.into(),
                    owner_account_id: String::new(),
                    request_id: String::new(),
                },
                &owner.access_token,
            ))
            .await
            .unwrap_or_else(|e| panic!("create_workspace: {e:?}"))
            .into_inner()
            .workspace
            .unwrap_or_else(|| panic!("no workspace"))
    }

    /// Invites `email` and returns the invitation and the link token read
    /// from the delivered email.
    pub async fn invite(
        &self,
        admin: &Person,
        workspace_id: &str,
        email: &str,
        role: pb::Role,
    ) -> (pb::Invitation, String) {
        let before = self.mail.messages().len();
        let invitation = self
            .client
            .clone()
            .invite_member(bearer(
                pb::InviteMemberRequest {
                    workspace_id: workspace_id.into(),
                    email: email.into(),
                    role: role as i32,
                    request_id: String::new(),
                },
                &admin.access_token,
            ))
            .await
            .unwrap_or_else(|e| panic!("invite_member: {e:?}"))
            .into_inner()
            .invitation
            .unwrap_or_else(|| panic!("no invitation"));
        (invitation, self.invitation_token_after(before).await)
    }

    /// The link token of the email after the first `before` (waits for it).
    pub async fn invitation_token_after(&self, before: usize) -> String {
        let messages = self
            .mail
            .wait_for(before + 1, Duration::from_secs(10))
            .await;
        let message = messages
            .get(before)
            .unwrap_or_else(|| panic!("no invitation email arrived"));
        let body = message.text_body().unwrap_or_else(|| message.data.clone());
        invitation_token(&body)
    }

    /// Invites and accepts: `email` becomes a member with `role`.
    pub async fn member(
        &self,
        admin: &Person,
        workspace_id: &str,
        email: &str,
        role: pb::Role,
    ) -> Person {
        let (_, token) = self.invite(admin, workspace_id, email, role).await;
        let person = self.person(email).await;
        self.client
            .clone()
            .accept_invitation(bearer(
                pb::AcceptInvitationRequest {
                    token,
                    request_id: String::new(),
                },
                &person.access_token,
            ))
            .await
            .unwrap_or_else(|e| panic!("accept_invitation: {e:?}"));
        person
    }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<MembershipClient> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
        .context("connecting to the membership service")?;
    Ok(MembershipServiceClient::new(channel))
}

/// The token of the first `/invite/<token>` link in a message.
pub fn invitation_token(message: &str) -> String {
    let start = message
        .find("/invite/")
        .unwrap_or_else(|| panic!("no invitation link in:\n{message}"))
        + "/invite/".len();
    message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// A request as a service principal (with the suite's credential).
pub fn as_service<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(SUITE_SECRET) {
        request
            .metadata_mut()
            .insert("x-recapp-service-token", value);
    }
    request
}
