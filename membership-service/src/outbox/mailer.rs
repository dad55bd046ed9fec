//! How an email leaves: over SMTP (lettre) or, for local runs, into `.eml`
//! files. A failure says whether trying again can help.

use std::{fmt, path::PathBuf, time::Duration};

use anyhow::Context;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox,
    transport::smtp::authentication::Credentials,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a relay on localhost or in the cluster, a test sink).
    None,
    /// Plain text upgraded with STARTTLS, which is then required (port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// Where and how to send email. Certificates are checked against the
/// system's roots (rustls, ring).
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The `From` header, e.g. `MSP Recapp <no-reply@localhost>`.
    pub from: String,
    /// For one whole delivery: connecting, the commands and the data.
    pub timeout: Duration,
}

/// Sends a built message.
///
/// SMTP opens one connection per message (lettre's pool is not used): the
/// volume is small, and a delivery cut off by its timeout then takes its
/// half-spoken connection with it instead of handing it to the next one.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// lettre bounds only the connect; this bounds the whole delivery.
        timeout: Duration,
    },
    /// Writes each message to `<dir>/<outbox id>.eml` and logs the path.
    Files { dir: PathBuf },
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mailer::Smtp { timeout, .. } => f
                .debug_struct("Mailer::Smtp")
                .field("timeout", timeout)
                .finish_non_exhaustive(),
            Mailer::Files { dir } => f.debug_struct("Mailer::Files").field("dir", dir).finish(),
        }
    }
}

/// Why a delivery failed, as a short text fit for `last_error` (it never
/// holds the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeliveryError {
    /// The next attempt may succeed: the server said 4xx, could not be
    /// reached or timed out, or TLS or authentication failed (configuration
    /// that an operator can fix without losing the email).
    Temporary(String),
    /// No attempt will succeed: the server refused this message or
    /// recipient (5xx), or the address is not valid.
    Permanent(String),
}

impl DeliveryError {
    pub(crate) fn text(&self) -> &str {
        match self {
            DeliveryError::Temporary(t) | DeliveryError::Permanent(t) => t,
        }
    }
}

/// The longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 300;

impl Mailer {
    /// An SMTP mailer; nothing connects until the first message.
    pub fn smtp(settings: &SmtpSettings) -> anyhow::Result<Mailer> {
        settings
            .from
            .parse::<Mailbox>()
            .with_context(|| format!("the sender address {:?} is not valid", settings.from))?;
        let host = settings.host.as_str();
        let builder = match settings.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .with_context(|| format!("setting up STARTTLS for {host}"))?,
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .with_context(|| format!("setting up TLS for {host}"))?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(settings.timeout));
        if let Some(username) = &settings.username {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Mailer::Smtp {
            transport: builder.build(),
            timeout: settings.timeout,
        })
    }

    /// A mailer that writes files into `dir`, created if missing.
    pub fn files(dir: impl Into<PathBuf>) -> anyhow::Result<Mailer> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the mail directory {}", dir.display()))?;
        Ok(Mailer::Files { dir })
    }

    /// Hands `message` over. `Ok` means the server accepted it (or the file
    /// was written).
    pub(crate) async fn send(
        &self,
        outbox_id: Uuid,
        message: Message,
    ) -> Result<(), DeliveryError> {
        match self {
            Mailer::Smtp { transport, timeout } => {
                match tokio::time::timeout(*timeout, transport.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(classify(&e)),
                    Err(_) => Err(DeliveryError::Temporary(format!(
                        "the SMTP server did not finish within {} ms",
                        timeout.as_millis()
                    ))),
                }
            }
            Mailer::Files { dir } => {
                let path = dir.join(format!("{outbox_id}.eml"));
                let partial = dir.join(format!("{outbox_id}.eml.partial"));
                let bytes = message.formatted();
                let written = path.clone();
                // Written then renamed, so a reader never sees half a file.
                tokio::task::spawn_blocking(move || {
                    std::fs::write(&partial, bytes)?;
                    std::fs::rename(&partial, &written)
                })
                .await
                .map_err(|e| DeliveryError::Temporary(short(&format!("writing the file: {e}"))))?
                .map_err(|e| DeliveryError::Temporary(short(&format!("writing the file: {e}"))))?;
                tracing::info!(path = %path.display(), "Wrote the email to a file.");
                Ok(())
            }
        }
    }
}

/// Sorts an SMTP failure into temporary or permanent.
pub(crate) fn classify(error: &lettre::transport::smtp::Error) -> DeliveryError {
    let text = short(&error.to_string());
    match error.status().map(u16::from) {
        Some(code) if is_permanent_reply(code) => DeliveryError::Permanent(text),
        // 4xx, and everything without a reply code: refused or dropped
        // connections, timeouts, TLS, unparsable replies.
        _ => DeliveryError::Temporary(text),
    }
}

/// True for the 5xx replies that refuse this message or recipient. The
/// authentication replies (530 required, 534 mechanism too weak, 535 bad
/// credentials, 538 encryption required) are about the relay's own
/// configuration and would fail every email alike: those wait for an
/// operator instead of discarding the queue.
pub(crate) fn is_permanent_reply(code: u16) -> bool {
    (500..600).contains(&code) && !matches!(code, 530 | 534 | 535 | 538)
}

/// One line of at most [`MAX_ERROR_CHARS`] characters.
pub(crate) fn short(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    match line.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_the_message_are_permanent() {
        for code in [550, 551, 552, 553, 554, 501] {
            assert!(is_permanent_reply(code), "{code}");
        }
    }

    #[test]
    fn transient_replies_and_relay_configuration_errors_are_retried() {
        for code in [421, 450, 451, 452, 454, 530, 534, 535, 538] {
            assert!(!is_permanent_reply(code), "{code}");
        }
    }

    #[test]
    fn errors_are_cut_to_one_short_line() {
        assert_eq!(short("451 try\r\nlater"), "451 try  later");
        let long = "é".repeat(1_000);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 3);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn an_invalid_sender_is_refused_when_the_mailer_is_built() {
        let settings = SmtpSettings {
            host: "localhost".into(),
            port: 25,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "not an address".into(),
            timeout: Duration::from_secs(5),
        };
        assert!(Mailer::smtp(&settings).is_err());
        let good = SmtpSettings {
            from: "MSP Recapp <no-reply@localhost>".into(),
            ..settings
        };
        assert!(Mailer::smtp(&good).is_ok());
    }

    #[test]
    fn tls_mailers_build_without_connecting() {
        for tls in [SmtpTls::StartTls, SmtpTls::Implicit] {
            let settings = SmtpSettings {
                host: "smtp.example.com".into(),
                port: 587,
                tls,
                username: Some("relay".into()),
                password: Some(SecretString::from("hunter2")),
                from: "no-reply@example.com".into(),
                timeout: Duration::from_secs(5),
            };
            assert!(Mailer::smtp(&settings).is_ok(), "{tls:?}");
        }
    }
}
