//! Configuration: command-line flags with `IDENTITY_*` environment fallbacks,
//! secrets also from `*_FILE`, turned once into a typed [`Settings`] that is
//! passed down. Tests build [`Settings`] directly.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use recapp_service_kit::config::{read_file, read_secret};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    crypto::{Argon2Params, EncryptionKey},
    domain::PasswordPolicy,
    service::{ServiceCredentials, ThrottlePolicy},
};

#[derive(Debug, Parser)]
#[command(
    name = "identity-service",
    version,
    about = "recapp identity service (gRPC)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the hash to configure for a service credential (reads the
    /// secret from standard input).
    HashCredential,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://...` or `sqlite://path?mode=rwc`. Defaults to
    /// `<data-dir>/identity.db` (SQLite).
    #[arg(long, env = "IDENTITY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// File holding the database URL (for Kubernetes Secrets).
    #[arg(long, env = "IDENTITY_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Directory for the embedded SQLite database and the generated local
    /// encryption key.
    #[arg(long, env = "IDENTITY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "IDENTITY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Apply migrations before serving (local use; production runs
    /// `migrate` as its own step).
    #[arg(long, env = "IDENTITY_MIGRATE_ON_START", default_value_t = false)]
    pub migrate_on_start: bool,
    /// Maximum database connections of this replica.
    #[arg(long, env = "IDENTITY_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// Encryption key ring for TOTP secrets and signing keys at rest:
    /// `id:base64(32 bytes)[,id:base64...]`, the first is active. Without it,
    /// a key is generated under the data directory (SQLite only).
    #[arg(long, env = "IDENTITY_ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: Option<SecretString>,
    #[arg(long, env = "IDENTITY_ENCRYPTION_KEYS_FILE")]
    pub encryption_keys_file: Option<PathBuf>,
    /// Service principals allowed to call: `name:sha256hex[,name:sha256hex]`
    /// (see `hash-credential`). Only hashes are configured.
    #[arg(long, env = "IDENTITY_SERVICE_CREDENTIALS", hide_env_values = true)]
    pub service_credentials: Option<String>,
    #[arg(long, env = "IDENTITY_SERVICE_CREDENTIALS_FILE")]
    pub service_credentials_file: Option<PathBuf>,
    /// argon2id memory cost in KiB (at least 19456).
    #[arg(long, env = "IDENTITY_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations (at least 2).
    #[arg(long, env = "IDENTITY_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes (at least 1).
    #[arg(long, env = "IDENTITY_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Hashes computed at once; defaults to the number of cores.
    #[arg(long, env = "IDENTITY_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Issuer shown in authenticator apps.
    #[arg(long, env = "IDENTITY_TOTP_ISSUER", default_value = "MSP Recapp")]
    pub totp_issuer: String,
    /// Access-token lifetime in seconds.
    #[arg(long, env = "IDENTITY_ACCESS_TOKEN_TTL_SECS", default_value_t = 300)]
    pub access_token_ttl_secs: u64,
    /// A session ends after this many seconds without a refresh.
    #[arg(long, env = "IDENTITY_SESSION_IDLE_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_idle_ttl_secs: u64,
    /// A session ends this many seconds after sign-in, however active.
    #[arg(long, env = "IDENTITY_SESSION_ABSOLUTE_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub session_absolute_ttl_secs: u64,
    /// Seconds to finish in-flight calls after SIGTERM.
    #[arg(long, env = "IDENTITY_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// Log as JSON lines (default) or human-readable text.
    #[arg(long, env = "IDENTITY_LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Everything the service needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub migrate_on_start: bool,
    pub encryption_keys: Vec<EncryptionKey>,
    pub service_credentials: ServiceCredentials,
    pub argon2: Argon2Params,
    pub hash_concurrency: usize,
    pub password_policy: PasswordPolicy,
    pub totp_issuer: String,
    pub access_token_ttl: Duration,
    pub session_idle_ttl: Duration,
    pub session_absolute_ttl: Duration,
    pub mfa_challenge_ttl: Duration,
    pub mfa_challenge_max_attempts: i32,
    pub totp_enrollment_ttl: Duration,
    pub throttle: ThrottlePolicy,
    pub shutdown_grace: Duration,
}

impl Settings {
    /// Defaults for everything but the parts every deployment must choose.
    pub fn new(
        listen: SocketAddr,
        database_url: String,
        encryption_keys: Vec<EncryptionKey>,
        service_credentials: ServiceCredentials,
    ) -> Self {
        Self {
            listen,
            database_url,
            database_max_connections: 16,
            migrate_on_start: false,
            encryption_keys,
            service_credentials,
            argon2: Argon2Params::default(),
            hash_concurrency: default_hash_concurrency(),
            password_policy: PasswordPolicy::default(),
            totp_issuer: "MSP Recapp".into(),
            access_token_ttl: Duration::from_secs(300),
            session_idle_ttl: Duration::from_secs(7 * 24 * 3600),
            session_absolute_ttl: Duration::from_secs(30 * 24 * 3600),
            mfa_challenge_ttl: Duration::from_secs(300),
            mfa_challenge_max_attempts: 5,
            totp_enrollment_ttl: Duration::from_secs(15 * 60),
            throttle: ThrottlePolicy::default(),
            shutdown_grace: Duration::from_secs(20),
        }
    }

    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let database_url = args.database.resolve_url()?;
        let encryption_keys = match read_secret(
            args.encryption_keys,
            args.encryption_keys_file.as_deref(),
        )? {
            Some(ring) => EncryptionKey::parse_ring(ring.expose_secret())
                .context("IDENTITY_ENCRYPTION_KEYS")?,
            None if database_url.starts_with("sqlite:") => {
                vec![local_encryption_key(&args.database.data_dir)?]
            }
            None => bail!(
                "IDENTITY_ENCRYPTION_KEYS (or IDENTITY_ENCRYPTION_KEYS_FILE) is required with a database server"
            ),
        };
        let credentials = match (args.service_credentials, args.service_credentials_file) {
            (Some(text), _) => text,
            (None, Some(path)) => read_file(&path)?,
            (None, None) => String::new(),
        };
        let service_credentials =
            ServiceCredentials::parse(&credentials).context("IDENTITY_SERVICE_CREDENTIALS")?;
        let argon2 = Argon2Params {
            memory_kib: args.argon2_memory_kib,
            iterations: args.argon2_iterations,
            parallelism: args.argon2_parallelism,
        };
        argon2.validate(false)?;
        if args.session_absolute_ttl_secs < args.session_idle_ttl_secs {
            bail!("the absolute session lifetime must not be shorter than the idle lifetime");
        }
        if !(30..=3600).contains(&args.access_token_ttl_secs) {
            bail!("the access-token lifetime must be between 30 and 3600 seconds");
        }
        let mut settings = Settings::new(
            args.listen,
            database_url,
            encryption_keys,
            service_credentials,
        );
        settings.database_max_connections = args.database_max_connections.max(1);
        settings.migrate_on_start = args.migrate_on_start;
        settings.argon2 = argon2;
        if let Some(n) = args.hash_concurrency {
            settings.hash_concurrency = n.max(1);
        }
        settings.totp_issuer = args.totp_issuer;
        settings.access_token_ttl = Duration::from_secs(args.access_token_ttl_secs);
        settings.session_idle_ttl = Duration::from_secs(args.session_idle_ttl_secs);
        settings.session_absolute_ttl = Duration::from_secs(args.session_absolute_ttl_secs);
        settings.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
        Ok(settings)
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
            self.data_dir.join("identity.db").display()
        ))
    }
}

pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The local development key: generated once under the data directory.
fn local_encryption_key(data_dir: &Path) -> anyhow::Result<EncryptionKey> {
    let path = data_dir.join("identity-encryption.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut ring = EncryptionKey::parse_ring(&text)
            .with_context(|| format!("reading the local key {}", path.display()))?;
        return ring.pop().context("the local key file is empty");
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key = EncryptionKey::generate("local")?;
    write_private_file(&path, &key.to_ring_entry())?;
    tracing::warn!(
        path = %path.display(),
        "Generated a local encryption key. Set IDENTITY_ENCRYPTION_KEYS in production."
    );
    Ok(key)
}

fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
