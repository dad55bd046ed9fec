//! Configuration: flags with `MEMBERSHIP_*` environment fallbacks, secrets
//! also from `*_FILE`, turned once into [`Settings`].

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use recapp_service_kit::ServiceCredentials;
use recapp_service_kit::config::{read_file, read_secret};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    outbox::{RelayPolicy, SmtpSettings, SmtpTls},
    service::Policy,
};

#[derive(Debug, Parser)]
#[command(
    name = "membership-service",
    version,
    about = "recapp membership service (gRPC)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API and deliver the email outbox.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `postgres://...` or `sqlite://path?mode=rwc`; defaults to
    /// `<data-dir>/membership.db`.
    #[arg(long, env = "MEMBERSHIP_DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long, env = "MEMBERSHIP_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    #[arg(long, env = "MEMBERSHIP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[arg(long, env = "MEMBERSHIP_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,
    #[arg(long, env = "MEMBERSHIP_MIGRATE_ON_START", default_value_t = false)]
    pub migrate_on_start: bool,
    /// Database connections of this process in all. On PostgreSQL a
    /// quarter of them (at least one) is reserved for `CheckPermission`.
    #[arg(
        long,
        env = "MEMBERSHIP_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub database_max_connections: u32,
    /// The identity service, e.g. `http://identity:50051`.
    #[arg(
        long,
        env = "MEMBERSHIP_IDENTITY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub identity_url: String,
    /// This service's credential for calling identity.
    #[arg(long, env = "MEMBERSHIP_IDENTITY_TOKEN", hide_env_values = true)]
    pub identity_token: Option<SecretString>,
    #[arg(long, env = "MEMBERSHIP_IDENTITY_TOKEN_FILE")]
    pub identity_token_file: Option<PathBuf>,
    /// Deadline of each call to identity, in milliseconds.
    #[arg(long, env = "MEMBERSHIP_IDENTITY_TIMEOUT_MS", default_value_t = 3000)]
    pub identity_timeout_ms: u64,
    /// Service principals allowed to call: `name:sha256hex[,...]`.
    #[arg(long, env = "MEMBERSHIP_SERVICE_CREDENTIALS", hide_env_values = true)]
    pub service_credentials: Option<String>,
    #[arg(long, env = "MEMBERSHIP_SERVICE_CREDENTIALS_FILE")]
    pub service_credentials_file: Option<PathBuf>,
    /// Where invitation links point: `<base>/invite/<token>`.
    #[arg(
        long,
        env = "MEMBERSHIP_PUBLIC_BASE_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_base_url: String,
    /// Secret that signs page tokens (any length; all replicas share it).
    /// Generated under the data directory for SQLite when unset.
    #[arg(long, env = "MEMBERSHIP_PAGE_TOKEN_SECRET", hide_env_values = true)]
    pub page_token_secret: Option<SecretString>,
    #[arg(long, env = "MEMBERSHIP_PAGE_TOKEN_SECRET_FILE")]
    pub page_token_secret_file: Option<PathBuf>,
    /// SMTP relay host; without it, emails are written as .eml files under
    /// `<data-dir>/mail`.
    #[arg(long, env = "MEMBERSHIP_SMTP_HOST")]
    pub smtp_host: Option<String>,
    #[arg(long, env = "MEMBERSHIP_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,
    /// `starttls` (default), `implicit` (SMTPS) or `none` (local relays).
    #[arg(long, env = "MEMBERSHIP_SMTP_TLS", default_value = "starttls")]
    pub smtp_tls: String,
    #[arg(long, env = "MEMBERSHIP_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "MEMBERSHIP_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<SecretString>,
    #[arg(long, env = "MEMBERSHIP_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,
    #[arg(
        long,
        env = "MEMBERSHIP_MAIL_FROM",
        default_value = "MSP Recapp <no-reply@localhost>"
    )]
    pub mail_from: String,
    #[arg(long, env = "MEMBERSHIP_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    #[arg(long, env = "MEMBERSHIP_LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

/// Where emails go.
#[derive(Debug, Clone)]
pub enum MailSettings {
    Smtp(SmtpSettings),
    Files(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub migrate_on_start: bool,
    pub identity_url: String,
    pub identity_token: SecretString,
    pub identity_timeout: Duration,
    pub service_credentials: ServiceCredentials,
    pub page_token_secret: SecretString,
    pub mail: MailSettings,
    pub mail_from: String,
    pub policy: Policy,
    pub relay: RelayPolicy,
    pub shutdown_grace: Duration,
}

impl Settings {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let database_url = args.database.resolve_url()?;
        let sqlite = database_url.starts_with("sqlite:");
        let identity_token = read_secret(args.identity_token, args.identity_token_file.as_deref())?
            .context("MEMBERSHIP_IDENTITY_TOKEN (or _FILE) is required: membership calls identity as a service")?;
        let credentials = match (args.service_credentials, args.service_credentials_file) {
            (Some(text), _) => text,
            (None, Some(path)) => read_file(&path)?,
            (None, None) => String::new(),
        };
        let service_credentials =
            ServiceCredentials::parse(&credentials).context("MEMBERSHIP_SERVICE_CREDENTIALS")?;
        let page_token_secret = match read_secret(
            args.page_token_secret,
            args.page_token_secret_file.as_deref(),
        )? {
            Some(secret) => secret,
            None if sqlite => local_secret(&args.database.data_dir)?,
            None => {
                bail!("MEMBERSHIP_PAGE_TOKEN_SECRET (or _FILE) is required with a database server")
            }
        };
        let mail = match args.smtp_host {
            Some(host) => MailSettings::Smtp(SmtpSettings {
                host,
                port: args.smtp_port,
                tls: match args.smtp_tls.as_str() {
                    "starttls" => SmtpTls::StartTls,
                    "implicit" => SmtpTls::Implicit,
                    "none" => SmtpTls::None,
                    other => bail!(
                        "MEMBERSHIP_SMTP_TLS must be starttls, implicit or none, not {other:?}"
                    ),
                },
                username: args.smtp_username,
                password: read_secret(args.smtp_password, args.smtp_password_file.as_deref())?,
                from: args.mail_from.clone(),
                timeout: Duration::from_secs(10),
            }),
            None => MailSettings::Files(args.database.data_dir.join("mail")),
        };
        let url = args.public_base_url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("MEMBERSHIP_PUBLIC_BASE_URL must be an http(s) URL");
        }
        Ok(Settings {
            listen: args.listen,
            database_url,
            database_max_connections: args.database_max_connections.max(1),
            migrate_on_start: args.migrate_on_start,
            identity_url: args.identity_url,
            identity_token,
            identity_timeout: Duration::from_millis(args.identity_timeout_ms.max(100)),
            service_credentials,
            page_token_secret,
            mail,
            mail_from: args.mail_from,
            policy: Policy {
                public_base_url: url,
                ..Policy::default()
            },
            relay: RelayPolicy::default(),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        })
    }
}

impl DatabaseArgs {
    pub fn resolve_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        if let Some(path) = &self.database_url_file {
            return Ok(read_file(path)?.trim().to_owned());
        }
        Ok(format!(
            "sqlite://{}?mode=rwc",
            self.data_dir.join("membership.db").display()
        ))
    }
}

fn local_secret(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join("membership-page-token.secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(text.trim().to_owned()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random source failed: {e}"))?;
    let secret = hex::encode(bytes);
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "Generated a local page-token secret. Set MEMBERSHIP_PAGE_TOKEN_SECRET in production.");
    Ok(SecretString::from(secret))
}

impl Settings {
    pub fn page_token_bytes(&self) -> Vec<u8> {
        self.page_token_secret.expose_secret().as_bytes().to_vec()
    }
}
