//! The local launcher: identity, membership and the gateway in one process
//! on SQLite under a data directory, the same code the three binaries run in
//! production. Emails are written as files and each invitation link is
//! printed. On first start it creates a workspace and its owner.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use recapp_proto::{
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    membership::v1::{self as mpb, membership_service_client::MembershipServiceClient},
};
use recapp_service_kit::ServiceCredentials;
use tokio::task::JoinHandle;
use tonic::{Request, metadata::MetadataValue, transport::Channel};

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    /// The gateway's port on 127.0.0.1 (0 picks one).
    pub port: u16,
    pub owner_email: String,
    pub workspace_name: String,
    /// Print invitation links found in new emails.
    pub print_links: bool,
}

/// What first start created.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub email: String,
    pub password: String,
    pub workspace_id: String,
}

pub struct DevSystem {
    /// `http://localhost:<port>`.
    pub url: String,
    pub gateway_addr: SocketAddr,
    /// Set on the first start only.
    pub bootstrap: Option<Bootstrap>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    stops: Stops,
    mail_task: Option<JoinHandle<()>>,
}

struct Stops {
    identity: identity_service::startup::StopHandle,
    membership: membership_service::startup::StopHandle,
    gateway: gateway::StopHandle,
}

trait Stop: Send {
    fn stop(&self);
}

impl Stop for identity_service::startup::StopHandle {
    fn stop(&self) {
        identity_service::startup::StopHandle::stop(self);
    }
}

impl Stop for membership_service::startup::StopHandle {
    fn stop(&self) {
        membership_service::startup::StopHandle::stop(self);
    }
}

struct StopOnError(Vec<Box<dyn Stop>>);

impl Drop for StopOnError {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.stop();
        }
    }
}

fn secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A strong random password in groups, easy to type from the console.
fn password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 15];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let text = hex::encode(bytes);
    Ok(text
        .as_bytes()
        .chunks(6)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The gateway's cookie key, kept under the data directory so sessions
/// survive a restart.
fn cookie_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("gateway-cookie.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_owned());
    }
    let key = gateway::config::generate_cookie_key()?;
    std::fs::write(&path, &key).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

fn path_arg(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .context("the data directory path must be valid UTF-8")
}

impl DevSystem {
    pub async fn start(options: DevOptions) -> anyhow::Result<DevSystem> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let data = path_arg(&options.data_dir)?;
        let membership_secret = secret()?;
        let gateway_secret = secret()?;
        let launcher_secret = secret()?;

        // Identity first: membership and the gateway need its address.
        let identity_credentials = [
            ServiceCredentials::config_entry("membership", &membership_secret),
            ServiceCredentials::config_entry("gateway", &gateway_secret),
            ServiceCredentials::config_entry("dev-launcher", &launcher_secret),
        ]
        .join(",");
        let identity_cli = <identity_service::config::Cli as clap::Parser>::try_parse_from([
            "identity-service",
            "serve",
            "--listen=127.0.0.1:0",
            &format!("--data-dir={}", data),
            "--migrate-on-start",
            &format!("--service-credentials={identity_credentials}"),
        ])?;
        let identity_service::config::Command::Serve(args) = identity_cli.command else {
            bail!("identity arguments did not parse as serve");
        };
        let identity = identity_service::Application::build(
            identity_service::config::Settings::from_args(*args)?,
        )
        .await
        .context("starting identity")?;
        let identity_url = format!("http://{}", identity.local_addr());
        // Running before membership starts: membership fetches its signing keys.
        let identity_stop = identity.stop_handle();
        let identity_task = tokio::spawn(identity.run_until_stopped());
        // If a later step fails, what already runs is stopped again.
        let mut started = StopOnError(vec![Box::new(identity_stop.clone())]);

        // The gateway's address goes into invitation links, so bind it next.
        let cookie_key = cookie_key(&options.data_dir)?;
        let gateway_listen = format!("127.0.0.1:{}", options.port);
        let origin_for = |port: u16| format!("http://localhost:{port}");
        let membership_credentials = [
            ServiceCredentials::config_entry("gateway", &gateway_secret),
            ServiceCredentials::config_entry("dev-launcher", &launcher_secret),
        ]
        .join(",");
        let gateway_listener = std::net::TcpListener::bind(&gateway_listen)
            .with_context(|| format!("port {} is taken (use --port)", options.port))?;
        let gateway_addr = gateway_listener.local_addr()?;
        drop(gateway_listener);
        let url = origin_for(gateway_addr.port());

        let membership_cli = <membership_service::config::Cli as clap::Parser>::try_parse_from([
            "membership-service",
            "serve",
            "--listen=127.0.0.1:0",
            &format!("--data-dir={}", data),
            "--migrate-on-start",
            &format!("--identity-url={identity_url}"),
            &format!("--identity-token={}", membership_secret),
            &format!("--service-credentials={}", membership_credentials),
            &format!("--public-base-url={}", url),
        ])?;
        let membership_service::config::Command::Serve(args) = membership_cli.command else {
            bail!("membership arguments did not parse as serve");
        };
        let membership = membership_service::Application::build(
            membership_service::config::Settings::from_args(*args)?,
        )
        .await
        .context("starting membership")?;
        let membership_url = format!("http://{}", membership.local_addr());
        let membership_stop = membership.stop_handle();
        let membership_task = tokio::spawn(membership.run_until_stopped());
        started.0.push(Box::new(membership_stop.clone()));

        let gateway_addr_text = gateway_addr.to_string();
        let gateway_cli = <gateway::config::Cli as clap::Parser>::try_parse_from([
            "gateway",
            "serve",
            &format!("--listen={}", gateway_addr_text),
            &format!("--identity-url={}", identity_url),
            &format!("--membership-url={}", membership_url),
            &format!("--service-token={}", gateway_secret),
            &format!("--cookie-key={}", cookie_key),
            &format!("--public-origin={}", url),
            "--insecure-http",
        ])?;
        let gateway::config::Command::Serve(args) = gateway_cli.command else {
            bail!("gateway arguments did not parse as serve");
        };
        let gateway = gateway::Application::build(gateway::config::Settings::from_args(*args)?)
            .await
            .context("starting the gateway")?;

        let stops = Stops {
            identity: identity_stop,
            membership: membership_stop,
            gateway: gateway.stop_handle(),
        };
        let tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)> = vec![
            ("identity", identity_task),
            ("membership", membership_task),
            ("gateway", tokio::spawn(gateway.run_until_stopped())),
        ];
        let mut system = DevSystem {
            url,
            gateway_addr,
            bootstrap: None,
            tasks,
            stops,
            mail_task: None,
        };
        let marker = options.data_dir.join("bootstrap.done");
        if !marker.exists() {
            let bootstrap = bootstrap(
                &identity_url,
                &membership_url,
                &launcher_secret,
                &options.owner_email,
                &options.workspace_name,
            )
            .await
            .context("creating the first workspace")?;
            std::fs::write(
                &marker,
                format!(
                    "owner={}\nworkspace={}\n",
                    bootstrap.email, bootstrap.workspace_id
                ),
            )
            .with_context(|| format!("writing {}", marker.display()))?;
            system.bootstrap = Some(bootstrap);
        }
        started.0.clear();
        if options.print_links {
            system.mail_task = Some(tokio::spawn(print_invitation_links(
                options.data_dir.join("mail"),
            )));
        }
        Ok(system)
    }

    /// Stops all three and waits for them.
    pub fn stop(&self) {
        self.stops.gateway.stop();
        self.stops.membership.stop();
        self.stops.identity.stop();
    }

    /// Waits until all three have stopped (Ctrl-C or SIGTERM stops each of
    /// them); if one fails, the others are stopped too.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut failure = None;
        let mut pending: Vec<_> = std::mem::take(&mut self.tasks)
            .into_iter()
            .map(|(name, task)| Box::pin(async move { (name, task.await) }))
            .collect();
        while !pending.is_empty() {
            let ((name, joined), _, rest) = futures::future::select_all(pending).await;
            pending = rest;
            let result = match joined {
                Ok(result) => result.with_context(|| format!("{name} failed")),
                Err(e) => Err(anyhow::anyhow!("{name} panicked or was cancelled: {e}")),
            };
            if let Err(e) = result {
                failure.get_or_insert(e);
                self.stop();
            }
        }
        if let Some(task) = self.mail_task.take() {
            task.abort();
        }
        failure.map_or(Ok(()), Err)
    }
}

async fn connect(url: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(url.to_owned())?.connect().await?)
}

fn service_request<T>(message: T, secret: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-recapp-service-token", MetadataValue::try_from(secret)?);
    Ok(request)
}

/// Creates the owner's account and the first workspace.
async fn bootstrap(
    identity_url: &str,
    membership_url: &str,
    secret: &str,
    email: &str,
    workspace_name: &str,
) -> anyhow::Result<Bootstrap> {
    let mut identity = IdentityServiceClient::new(connect(identity_url).await?);
    let mut membership = MembershipServiceClient::new(connect(membership_url).await?);
    let password = password()?;
    let account = identity
        .create_account(service_request(
            ipb::CreateAccountRequest {
                email: email.to_owned(),
                password: password.clone(),
                display_name: "Workspace owner".into(),
                client_info: Some(ipb::ClientInfo {
                    ip_address: "127.0.0.1".into(),
                    user_agent: "recapp-dev".into(),
                }),
            },
            secret,
        )?)
        .await
        .map_err(|s| anyhow::anyhow!("creating {email}: {}", s.message()))?
        .into_inner()
        .account
        .context("no account returned")?;
    let workspace = membership
        .create_workspace(service_request(
            mpb::CreateWorkspaceRequest {
                name: workspace_name.to_owned(),
                owner_account_id: account.id,
                request_id: String::new(),
            },
            secret,
        )?)
        .await
        .map_err(|s| anyhow::anyhow!("creating the workspace: {}", s.message()))?
        .into_inner()
        .workspace
        .context("no workspace returned")?;
    Ok(Bootstrap {
        email: email.to_owned(),
        password,
        workspace_id: workspace.id,
    })
}

/// Prints the invitation link of each new email written under `dir`.
async fn print_invitation_links(dir: PathBuf) {
    let mut seen: HashSet<PathBuf> = list_emails(&dir).into_iter().collect();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for path in list_emails(&dir) {
            if !seen.insert(path.clone()) {
                continue;
            }
            let Ok(raw) = std::fs::read(&path) else {
                continue;
            };
            if let Some((to, link)) = invitation_link(&raw) {
                println!("\n  Invitation email to {to}: {link}\n");
            }
        }
    }
}

fn list_emails(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default()
}

/// The recipient and the `/invite/` link of an email, if it has one.
pub fn invitation_link(raw: &[u8]) -> Option<(String, String)> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    let to = message
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    let text = message.body_text(0)?;
    let link = text
        .split_whitespace()
        .find(|word| word.contains("/invite/") && word.starts_with("http"))?
        .trim_end_matches(['.', ',', ')', '>'])
        .to_owned();
    Some((to, link))
}
