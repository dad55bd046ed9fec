//! Configuration: flags with `GATEWAY_*` environment fallbacks, secrets also
//! from `*_FILE`, turned once into [`Settings`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use recapp_service_kit::config::read_secret;
use secrecy::{ExposeSecret, SecretString};

use crate::session::CookieKeys;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "recapp gateway: the browser UI and its JSON API (HTTP)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the UI and the JSON API.
    Serve(Box<ServeArgs>),
    /// Print a new random cookie key (base64 of 32 bytes) for GATEWAY_COOKIE_KEY.
    GenerateCookieKey,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The identity service, e.g. `http://identity:50051`.
    #[arg(
        long,
        env = "GATEWAY_IDENTITY_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub identity_url: String,
    /// The membership service, e.g. `http://membership:50052`.
    #[arg(
        long,
        env = "GATEWAY_MEMBERSHIP_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub membership_url: String,
    /// The gateway's service credential, presented to both services.
    #[arg(long, env = "GATEWAY_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<SecretString>,
    #[arg(long, env = "GATEWAY_SERVICE_TOKEN_FILE")]
    pub service_token_file: Option<PathBuf>,
    /// Keys sealing the session cookie: base64 of 32 bytes each, comma
    /// separated; the first seals, all open (rotation). Replicas share them.
    #[arg(long, env = "GATEWAY_COOKIE_KEY", hide_env_values = true)]
    pub cookie_key: Option<SecretString>,
    #[arg(long, env = "GATEWAY_COOKIE_KEY_FILE")]
    pub cookie_key_file: Option<PathBuf>,
    /// The origin browsers see, e.g. `https://recapp.example.com`; state-changing
    /// requests from any other origin are refused.
    #[arg(
        long,
        env = "GATEWAY_PUBLIC_ORIGIN",
        default_value = "http://localhost:8080"
    )]
    pub public_origin: String,
    /// Peers whose `X-Forwarded-For` is believed (the ingress hop): CIDRs,
    /// comma separated. Empty: the client address is the TCP peer.
    #[arg(long, env = "GATEWAY_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Development only: cookies without `Secure` and the `__Host-` prefix so
    /// that plain http://localhost works.
    #[arg(long, env = "GATEWAY_INSECURE_HTTP", default_value_t = false)]
    pub insecure_http: bool,
    /// Deadline of each call to a service, in milliseconds.
    #[arg(long, env = "GATEWAY_CALL_TIMEOUT_MS", default_value_t = 5000)]
    pub call_timeout_ms: u64,
    #[arg(long, env = "GATEWAY_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// `json` or `text`.
    #[arg(long, env = "GATEWAY_LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub identity_url: String,
    pub membership_url: String,
    pub service_token: SecretString,
    pub cookie_keys: CookieKeys,
    /// `scheme://host[:port]`, no trailing slash.
    pub public_origin: String,
    pub trusted_proxies: Vec<IpNet>,
    pub insecure_http: bool,
    pub call_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Settings {
    pub fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let service_token = read_secret(args.service_token, args.service_token_file.as_deref())?
            .context("GATEWAY_SERVICE_TOKEN (or _FILE) is required: the gateway calls both services as a service")?;
        let cookie_key = read_secret(args.cookie_key, args.cookie_key_file.as_deref())?.context(
            "GATEWAY_COOKIE_KEY (or _FILE) is required; `gateway generate-cookie-key` makes one",
        )?;
        let cookie_keys =
            CookieKeys::parse(cookie_key.expose_secret()).context("GATEWAY_COOKIE_KEY")?;
        let public_origin = parse_origin(&args.public_origin).context("GATEWAY_PUBLIC_ORIGIN")?;
        if !args.insecure_http && public_origin.starts_with("http://") {
            bail!(
                "GATEWAY_PUBLIC_ORIGIN is plain http: serve it over https, or set GATEWAY_INSECURE_HTTP for local development"
            );
        }
        Ok(Settings {
            listen: args.listen,
            identity_url: args.identity_url,
            membership_url: args.membership_url,
            service_token,
            cookie_keys,
            public_origin,
            trusted_proxies: parse_proxies(&args.trusted_proxies)
                .context("GATEWAY_TRUSTED_PROXIES")?,
            insecure_http: args.insecure_http,
            call_timeout: Duration::from_millis(args.call_timeout_ms.clamp(100, 60_000)),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        })
    }
}

/// `https://host[:port]` (a path, query or trailing slash is refused).
pub fn parse_origin(text: &str) -> anyhow::Result<String> {
    let text = text.trim().trim_end_matches('/');
    let Some((scheme, rest)) = text.split_once("://") else {
        bail!("{text:?} is not an origin like https://recapp.example.com");
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#']) {
        bail!("{text:?} is not an origin like https://recapp.example.com");
    }
    Ok(text.to_ascii_lowercase())
}

/// `10.0.0.0/8, 192.168.1.10` (a bare address is a /32 or /128).
pub fn parse_proxies(text: &str) -> anyhow::Result<Vec<IpNet>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .with_context(|| format!("{s:?} is not a CIDR or an IP address"))
        })
        .collect()
}

/// A new random cookie key, base64 of 32 bytes.
pub fn generate_cookie_key() -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_keeps_scheme_host_and_port_only() {
        assert_eq!(
            parse_origin("https://Recapp.Example.com/").unwrap(),
            "https://recapp.example.com"
        );
        assert_eq!(
            parse_origin("http://localhost:8080").unwrap(),
            "http://localhost:8080"
        );
        assert!(parse_origin("recapp.example.com").is_err());
        assert!(parse_origin("https://recapp.example.com/app").is_err());
        assert!(parse_origin("ftp://x").is_err());
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_bare_addresses() {
        let nets = parse_proxies("10.0.0.0/8, 192.168.1.10,::1").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[1].contains(&"192.168.1.10".parse::<std::net::IpAddr>().unwrap()));
        assert!(parse_proxies("").unwrap().is_empty());
        assert!(parse_proxies("10.0.0.0/99").is_err());
    }
}
