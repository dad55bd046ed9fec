//! Graceful shutdown of the real `identity-service` binary, as Kubernetes
//! stops a pod: SIGTERM while logins are in flight.
//!
//! What `serve` promises (startup.rs, service-kit's `serve_with_grace`): on
//! SIGTERM, health turns NOT_SERVING, the listener closes (new connections
//! are refused), open connections get an HTTP/2 GOAWAY (no new calls on
//! them), the calls already in flight finish, and the process exits 0 once
//! they have, or when the grace period has passed, whichever comes first.
//!
//! The health flip is observed on a `Watch` stream opened before the signal:
//! a `Check` after it would need a new connection or a new stream, and both
//! are refused by then (which is the point).

// Signals come from rustix, a Linux-only dependency of this crate.
#![cfg(target_os = "linux")]

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use recapp_proto::identity::v1::{
    self as pb, authenticate_response, identity_service_client::IdentityServiceClient,
};
use recapp_service_kit::ServiceCredentials;
use tokio::sync::Notify;
use tonic::{
    Request,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SERVICE_SECRET: &str = "shutdown-test-service-secret";
const PASSWORD: &str = "correct horse battery staple";
/// The service's SQLite start-up and migrations, on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// "At once": how soon after SIGTERM health must say NOT_SERVING and the
/// listener must refuse connections.
const PROMPTLY: Duration = Duration::from_secs(1);

/// An identity-service process of our own, killed if a test fails.
struct Service {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Service {
    /// Starts `identity-service serve` on a free port, SQLite in `dir`, one
    /// hashing thread and a slower argon2 cost (still above OWASP's floor),
    /// so that a handful of logins queue for seconds.
    fn start(dir: &Path, grace_secs: u64) -> Result<Self> {
        let addr = free_port()?;
        let log = dir.join("identity-service.log");
        let credentials = ServiceCredentials::config_entry("shutdown-test", SERVICE_SECRET);
        let child = Command::new(env!("CARGO_BIN_EXE_identity-service"))
            .env_clear()
            .env("RUST_LOG", "info")
            .args(["serve", "--migrate-on-start", "--log-format", "text"])
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--service-credentials", &credentials])
            .args(["--hash-concurrency", "1", "--argon2-iterations", "24"])
            .args(["--shutdown-grace-secs", &grace_secs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).context("creating the log file")?)
            .spawn()
            .context("starting identity-service")?;
        Ok(Self { child, addr, log })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sigterm(&self) -> Result<()> {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .context("sending SIGTERM")
    }

    /// Waits for the process to exit, at most `limit`.
    async fn exit_within(&mut self, limit: Duration) -> Result<(ExitStatus, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status, start.elapsed()));
            }
            if start.elapsed() > limit {
                bail!(
                    "identity-service still running {limit:?} after SIGTERM\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A channel to the service once its health says SERVING.
    async fn connect_when_serving(&mut self) -> Result<Channel> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("identity-service exited early ({status})\n{}", self.logs());
            }
            if let Ok(channel) = connect(&self.url()).await {
                let serving = HealthClient::new(channel.clone())
                    .check(HealthCheckRequest::default())
                    .await
                    .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
                if serving {
                    return Ok(channel);
                }
            }
            if start.elapsed() > START_TIMEOUT {
                bail!("identity-service never became SERVING\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

async fn connect(url: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?)
}

fn with_credential<T>(message: T) -> Result<Request<T>> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "x-recapp-service-token",
        MetadataValue::try_from(SERVICE_SECRET)?,
    );
    Ok(request)
}

fn email(i: usize) -> String {
    format!("drain-{i}@example.com")
}

/// One account per login: the throttle lets only a few attempts per account
/// be in flight at once, and these must all be real, successful logins.
async fn create_accounts(channel: &Channel, count: usize) -> Result<()> {
    let mut client = IdentityServiceClient::new(channel.clone());
    for i in 0..count {
        client
            .create_account(with_credential(pb::CreateAccountRequest {
                email: email(i),
                password: PASSWORD.into(),
                ..Default::default()
            })?)
            .await
            .with_context(|| format!("creating account {i}"))?;
    }
    Ok(())
}

/// What became of one login started before SIGTERM.
struct Login {
    result: Result<pb::AuthenticateResponse, tonic::Status>,
    finished: Instant,
}

/// Starts `count` logins at once on `channel`; `first_done` is notified
/// when the first one finishes (then the others are queued behind the
/// single hashing thread, in flight on the server).
fn start_logins(
    channel: &Channel,
    count: usize,
    first_done: Arc<Notify>,
) -> Result<Vec<tokio::task::JoinHandle<Login>>> {
    (0..count)
        .map(|i| {
            let mut client = IdentityServiceClient::new(channel.clone());
            let request = with_credential(pb::AuthenticateRequest {
                email: email(i),
                password: PASSWORD.into(),
                ..Default::default()
            })?;
            let first_done = first_done.clone();
            Ok(tokio::spawn(async move {
                let result = client.authenticate(request).await.map(|r| r.into_inner());
                let finished = Instant::now();
                first_done.notify_one();
                Login { result, finished }
            }))
        })
        .collect()
}

/// Waits until connecting to `addr` is refused, at most `limit`.
async fn refused_within(addr: SocketAddr, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Ok(start.elapsed());
            }
            _ if start.elapsed() > limit => {
                bail!("{addr} still accepted connections {limit:?} after SIGTERM")
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_logins_refuses_new_calls_and_exits_cleanly() -> Result<()> {
    // Arrange
    const LOGINS: usize = 6;
    const GRACE_SECS: u64 = 20;
    let dir = tempfile::tempdir()?;
    let mut service = Service::start(dir.path(), GRACE_SECS)?;
    let channel = service.connect_when_serving().await?;
    create_accounts(&channel, LOGINS).await?;
    // Health is watched on a connection of its own.
    let mut health = HealthClient::new(connect(&service.url()).await?)
        .watch(HealthCheckRequest::default())
        .await?
        .into_inner();
    let first = health.message().await?.context("the health watch ended")?;
    ensure!(
        first.status == ServingStatus::Serving as i32,
        "not SERVING before the signal"
    );
    let first_done = Arc::new(Notify::new());
    let logins = start_logins(&channel, LOGINS, first_done.clone())?;
    tokio::time::timeout(Duration::from_secs(30), first_done.notified())
        .await
        .context("no login finished within 30 s")?;

    // Act
    let signalled = Instant::now();
    service.sigterm()?;

    // Assert: health says NOT_SERVING at once.
    let update = tokio::time::timeout(PROMPTLY, health.message())
        .await
        .context("health did not change within 1 s of SIGTERM")??
        .context("the health watch ended without NOT_SERVING")?;
    ensure!(
        update.status == ServingStatus::NotServing as i32,
        "health after SIGTERM is {:?}, not NOT_SERVING",
        ServingStatus::try_from(update.status)
    );
    let not_serving_after = signalled.elapsed();
    // A watch is a call in flight too: end it, as a prober would.
    drop(health);

    // Assert: new connections are refused at once.
    let refused_after = refused_within(service.addr, PROMPTLY).await?;

    // Assert: a new call on a connection opened before the signal (the one
    // carrying the logins) is refused, or, if its stream raced the server's
    // GOAWAY (HTTP/2 lets streams the client opened before it saw GOAWAY
    // through), it hears NOT_SERVING: never SERVING.
    let late = tokio::time::timeout(
        Duration::from_secs(5),
        HealthClient::new(channel.clone()).check(HealthCheckRequest::default()),
    )
    .await
    .context("a call started after SIGTERM neither failed nor finished within 5 s")?;
    let late = match late {
        Ok(response) => {
            let status = response.into_inner().status;
            ensure!(
                status == ServingStatus::NotServing as i32,
                "a call started after SIGTERM heard {:?}, not NOT_SERVING",
                ServingStatus::try_from(status)
            );
            None
        }
        Err(status) => Some(status),
    };

    // Assert: every login in flight at SIGTERM finished, successfully.
    let mut after_signal = 0;
    for (i, login) in logins.into_iter().enumerate() {
        let login = login.await?;
        let response = login
            .result
            .with_context(|| format!("login {i} in flight at SIGTERM failed"))?;
        ensure!(
            matches!(
                response.result,
                Some(authenticate_response::Result::Session(_))
            ),
            "login {i} did not sign in: {response:?}"
        );
        if login.finished > signalled {
            after_signal += 1;
        }
    }
    ensure!(
        after_signal >= LOGINS / 2,
        "only {after_signal} of {LOGINS} logins were still in flight at SIGTERM: the test proves nothing"
    );

    // Assert: the process exits 0, by itself, well inside the grace period.
    let (status, _) = service
        .exit_within(Duration::from_secs(GRACE_SECS + 5))
        .await?;
    let exited_after = signalled.elapsed();
    let logs = service.logs();
    ensure!(
        status.success(),
        "identity-service exited with {status}\n{logs}"
    );
    ensure!(
        exited_after < Duration::from_secs(GRACE_SECS),
        "identity-service took {exited_after:?}, the whole grace period, to exit\n{logs}"
    );
    ensure!(
        !logs.contains("did not finish within the grace period"),
        "the drain was cut off by the grace period\n{logs}"
    );
    eprintln!(
        "NOT_SERVING after {not_serving_after:?}, refusing connections after {refused_after:?}, \
         a new call on an old connection: {}, {after_signal}/{LOGINS} logins \
         finished during the drain, exit 0 after {exited_after:?}",
        late.map_or_else(
            || "raced GOAWAY, answered NOT_SERVING".to_owned(),
            |s| format!("refused with {:?}", s.code())
        )
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_longer_than_the_grace_period_is_cut_off_at_the_grace_period() -> Result<()> {
    // Arrange: more queued logins than one second of hashing can finish.
    const LOGINS: usize = 8;
    const GRACE_SECS: u64 = 1;
    let dir = tempfile::tempdir()?;
    let mut service = Service::start(dir.path(), GRACE_SECS)?;
    let channel = service.connect_when_serving().await?;
    create_accounts(&channel, LOGINS).await?;
    let first_done = Arc::new(Notify::new());
    let logins = start_logins(&channel, LOGINS, first_done.clone())?;
    tokio::time::timeout(Duration::from_secs(30), first_done.notified())
        .await
        .context("no login finished within 30 s")?;

    // Act
    let signalled = Instant::now();
    service.sigterm()?;
    let (status, _) = service.exit_within(Duration::from_secs(10)).await?;
    let exited_after = signalled.elapsed();

    // Assert: it stopped at the grace period, not when the work ran out.
    let logs = service.logs();
    ensure!(
        status.success(),
        "identity-service exited with {status}\n{logs}"
    );
    ensure!(
        exited_after >= Duration::from_secs(GRACE_SECS),
        "identity-service exited after {exited_after:?}, before its grace period\n{logs}"
    );
    ensure!(
        exited_after < Duration::from_secs(GRACE_SECS + 3),
        "identity-service took {exited_after:?} to exit with a {GRACE_SECS} s grace period\n{logs}"
    );
    ensure!(
        logs.contains("did not finish within the grace period"),
        "no warning that the drain was cut off\n{logs}"
    );
    let mut unfinished = 0;
    for login in logins {
        if login.await?.result.is_err() {
            unfinished += 1;
        }
    }
    ensure!(
        unfinished > 0,
        "every login finished within {GRACE_SECS} s: the test proves nothing"
    );
    eprintln!(
        "exit 0 after {exited_after:?} with a {GRACE_SECS} s grace; {unfinished}/{LOGINS} logins cut off"
    );
    Ok(())
}
