//! The benchmark harness: `cargo run --release -p recapp-tests --bin bench`.
//!
//! Every figure is a ratio against a baseline measured side by side in the
//! same run (these machines are noisy), and the services run as their real
//! release binaries in their own processes. Results go to stdout and to
//! `bench-results/results.md`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use recapp_proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use recapp_tests::identity::{ServiceToken, bearer, secret_from_base32, totp_code};
use tonic::{
    metadata::MetadataValue, service::interceptor::InterceptedService, transport::Channel,
};

mod gateway;
mod membership;

type Client = IdentityServiceClient<InterceptedService<Channel, ServiceToken>>;

const SECRET: &str = "bench-service-secret-7d1e9c0b3a5f";
const PASSWORD: &str = "correct horse battery staple";

struct Row {
    name: String,
    value: String,
    target: String,
    ok: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let duration = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);

    build_release_binaries()?;
    let mut rows = Vec::new();
    // `--only identity|membership|gateway` runs one part.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if only.as_deref().is_none_or(|o| o == "identity") {
        identity_benchmarks(&mut rows, duration, cores).await?;
    }
    if only.as_deref().is_none_or(|o| o == "membership") {
        membership::benchmarks(&mut rows, duration).await?;
    }
    if only.as_deref().is_none_or(|o| o == "gateway") {
        gateway::benchmarks(&mut rows, duration).await?;
    }

    let mut table = String::from("| benchmark | measured | target | ok |\n|---|---|---|---|\n");
    for row in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.name,
            row.value,
            row.target,
            if row.ok { "yes" } else { "NO" }
        ));
    }
    let machine = format!(
        "{} cores, {}, {}",
        cores,
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_else(|| "unknown CPU".into()),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
    );
    let report = format!("Machine: {machine}\n\n{table}");
    println!("\n{report}");
    std::fs::create_dir_all("bench-results")?;
    std::fs::write("bench-results/results.md", &report)?;
    Ok(())
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build_release_binaries() -> anyhow::Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "identity-service",
            "-p",
            "membership-service",
            "-p",
            "gateway",
            "-p",
            "recapp-dev",
        ])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building the release binaries failed");
    }
    Ok(())
}

/// An identity-service process on a fresh SQLite database.
struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> anyhow::Result<Server> {
        Self::start_with_principals(&[]).await
    }

    /// With more service principals allowed (name, secret).
    async fn start_with_principals(extra: &[(&str, &str)]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let binary = workspace_root().join("target/release/identity-service");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("identity.db").display()
        );
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut credential =
            identity_service::service::ServiceCredentials::config_entry("bench", SECRET);
        for (name, secret) in extra {
            credential.push(',');
            credential.push_str(
                &identity_service::service::ServiceCredentials::config_entry(name, secret),
            );
        }
        let child = Command::new(&binary)
            .args(["serve", "--migrate-on-start", "--log-format", "text"])
            .env("IDENTITY_LISTEN", &addr)
            .env("IDENTITY_DATABASE_URL", &url)
            .env("IDENTITY_DATA_DIR", dir.path())
            .env("IDENTITY_SERVICE_CREDENTIALS", credential)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = Server {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&server.addr).await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("the identity service did not start listening")
    }

    async fn client(&self) -> anyhow::Result<Client> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?;
        Ok(IdentityServiceClient::with_interceptor(
            channel,
            ServiceToken::new(MetadataValue::try_from(SECRET)?),
        ))
    }

    /// (current RSS, peak RSS) in KiB from /proc.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `owner@bench.test` and returns an access token of theirs.
async fn owner_token(client: &mut Client) -> anyhow::Result<String> {
    client
        .create_account(pb::CreateAccountRequest {
            email: "owner@bench.test".into(),
            password: PASSWORD.into(),
            display_name: "Owner".into(),
            client_info: None,
        })
        .await?;
    match client
        .authenticate(pb::AuthenticateRequest {
            email: "owner@bench.test".into(),
            password: PASSWORD.into(),
            client_info: None,
        })
        .await?
        .into_inner()
        .result
    {
        Some(pb::authenticate_response::Result::Session(s)) => Ok(s.access_token),
        _ => bail!("expected a session"),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Raw argon2id verifies per second on `threads` OS threads.
fn raw_argon2_rate(threads: usize, duration: Duration) -> anyhow::Result<f64> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = argon2::password_hash::SaltString::encode_b64(b"0123456789abcdef")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let hash = Arc::new(hash);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&hash).ok();
                let mut n = 0u64;
                while start.elapsed() < duration {
                    if let Some(parsed) = &parsed {
                        let _ = Argon2::default().verify_password(PASSWORD.as_bytes(), parsed);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn identity_benchmarks(
    rows: &mut Vec<Row>,
    duration: Duration,
    cores: usize,
) -> anyhow::Result<()> {
    let server = Server::start().await?;
    let client = server.client().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (idle_rss, _) = server.memory_kib();

    // Accounts to sign in with: one per caller so throttling never interferes.
    let callers = cores * 2;
    let mut emails = Vec::new();
    for i in 0..callers {
        let email = format!("bench{i}@example.com");
        client
            .clone()
            .create_account(pb::CreateAccountRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                display_name: String::new(),
                client_info: None,
            })
            .await?;
        emails.push(email);
    }

    // 1. Authenticate throughput vs the raw argon2id verify rate.
    let raw = raw_argon2_rate(cores, duration)?;
    let (logins, elapsed) = authenticate_load(&server, &emails, duration).await?;
    let login_rate = logins as f64 / elapsed.as_secs_f64();
    let ratio = login_rate / raw;
    rows.push(Row {
        name: format!(
            "Authenticate at {callers} concurrent vs raw argon2id verify on {cores} threads"
        ),
        value: format!("{login_rate:.1}/s vs {raw:.1}/s = {ratio:.2}x"),
        target: ">= 0.85x".into(),
        ok: ratio >= 0.85,
    });

    // 2. GetSigningKeys p99 idle vs while logins saturate the CPU.
    let idle_p99 = signing_keys_p99(&server, duration / 2).await?;
    let load = {
        let emails = emails.clone();
        let server_addr = server.addr.clone();
        tokio::spawn(async move {
            let s = ServerRef { addr: server_addr };
            authenticate_load_addr(&s, &emails, duration).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy_p99 = signing_keys_p99(&server, duration / 2).await?;
    let _ = load.await;
    let (_, peak_rss) = server.memory_kib();
    let ratio = busy_p99.as_secs_f64() / idle_p99.as_secs_f64().max(1e-9);
    rows.push(Row {
        name: "GetSigningKeys p99 while logins saturate the CPU vs idle".into(),
        value: format!("{} vs {} = {ratio:.2}x", ms(busy_p99), ms(idle_p99)),
        target: "<= 3x".into(),
        ok: ratio <= 3.0,
    });

    // 3. CompleteMfaChallenge latency (each iteration needs a fresh time
    //    step, so each account is used once per 30 s step).
    let mfa = complete_mfa_latency(&server, if duration.as_secs() > 5 { 200 } else { 60 }).await?;
    rows.push(Row {
        name: "CompleteMfaChallenge p99 (p50)".into(),
        value: format!("{} ({})", ms(mfa.0), ms(mfa.1)),
        target: "p99 <= 5 ms".into(),
        ok: mfa.0 <= Duration::from_millis(5),
    });

    // 4. Memory.
    let hashes_in_flight = cores as u64;
    let argon_kib = 19_456u64;
    let budget = idle_rss + (1.25 * (hashes_in_flight * argon_kib) as f64) as u64;
    rows.push(Row {
        name: "identity-service idle RSS".into(),
        value: format!("{:.1} MiB", idle_rss as f64 / 1024.0),
        target: "<= 32 MiB".into(),
        ok: idle_rss <= 32 * 1024,
    });
    rows.push(Row {
        name: format!(
            "identity-service peak RSS under login load ({hashes_in_flight} hashes in flight)"
        ),
        value: format!(
            "{:.1} MiB (budget {:.1} MiB)",
            peak_rss as f64 / 1024.0,
            budget as f64 / 1024.0
        ),
        target: "<= idle + 1.25 x hashes x 19 MiB".into(),
        ok: peak_rss <= budget,
    });
    Ok(())
}

/// What the gateway would pass: each simulated person has an address.
fn client_info(email: &str) -> pb::ClientInfo {
    let n = email.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    pb::ClientInfo {
        ip_address: format!("198.51.100.{n}"),
        user_agent: "recapp-bench".into(),
    }
}

struct ServerRef {
    addr: String,
}

async fn connect(addr: &str) -> anyhow::Result<Client> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok(IdentityServiceClient::with_interceptor(
        channel,
        ServiceToken::new(MetadataValue::try_from(SECRET)?),
    ))
}

async fn authenticate_load(
    server: &Server,
    emails: &[String],
    duration: Duration,
) -> anyhow::Result<(u64, Duration)> {
    authenticate_load_addr(
        &ServerRef {
            addr: server.addr.clone(),
        },
        emails,
        duration,
    )
    .await
}

async fn authenticate_load_addr(
    server: &ServerRef,
    emails: &[String],
    duration: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for email in emails {
        let mut client = connect(&server.addr).await?;
        let email = email.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < duration {
                let ok = client
                    .authenticate(pb::AuthenticateRequest {
                        email: email.clone(),
                        password: PASSWORD.into(),
                        client_info: Some(client_info(&email)),
                    })
                    .await
                    .is_ok();
                if ok {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap_or(0);
    }
    Ok((total, start.elapsed()))
}

async fn signing_keys_p99(server: &Server, duration: Duration) -> anyhow::Result<Duration> {
    let mut client = server.client().await?;
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        client
            .get_signing_keys(pb::GetSigningKeysRequest {})
            .await?;
        samples.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(percentile(&mut samples, 0.99))
}

/// (p99, p50) of CompleteMfaChallenge over `n` sign-ins.
async fn complete_mfa_latency(server: &Server, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let mut client = server.client().await?;
    // Accounts enough that each is used once per time step.
    let accounts = n.min(200);
    let mut enrolled = Vec::new();
    for i in 0..accounts {
        let email = format!("mfa{i}@example.com");
        client
            .create_account(pb::CreateAccountRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                display_name: String::new(),
                client_info: None,
            })
            .await?;
        let session = match client
            .authenticate(pb::AuthenticateRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                client_info: None,
            })
            .await?
            .into_inner()
            .result
        {
            Some(pb::authenticate_response::Result::Session(s)) => s,
            _ => bail!("expected a session"),
        };
        let begun = client
            .begin_totp_enrollment(bearer(
                pb::BeginTotpEnrollmentRequest {},
                &session.access_token,
            ))
            .await?
            .into_inner();
        let secret = secret_from_base32(&begun.secret_base32);
        client
            .confirm_totp_enrollment(bearer(
                pb::ConfirmTotpEnrollmentRequest {
                    totp_code: totp_code(&secret, chrono::Utc::now()),
                    client_info: None,
                },
                &session.access_token,
            ))
            .await?;
        enrolled.push((email, secret));
    }
    // Wait for the next step so the enrollment codes are not replays.
    let now = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs((30 - now % 30) as u64 + 1)).await;
    let mut samples = Vec::new();
    for (email, secret) in enrolled.iter().take(n) {
        let challenge = match client
            .authenticate(pb::AuthenticateRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                client_info: Some(client_info(email)),
            })
            .await?
            .into_inner()
            .result
        {
            Some(pb::authenticate_response::Result::MfaChallenge(c)) => c,
            _ => bail!("expected a challenge"),
        };
        let code = totp_code(secret, chrono::Utc::now());
        let t = Instant::now();
        let result = client
            .complete_mfa_challenge(pb::CompleteMfaChallengeRequest {
                challenge_token: challenge.challenge_token,
                code: Some(pb::complete_mfa_challenge_request::Code::TotpCode(code)),
                client_info: Some(client_info(email)),
            })
            .await;
        let elapsed = t.elapsed();
        if result.is_ok() {
            samples.push(elapsed);
        }
    }
    if samples.len() < n / 2 {
        bail!(
            "too few MFA completions succeeded ({} of {n})",
            samples.len()
        );
    }
    let p50 = percentile(&mut samples, 0.5);
    Ok((percentile(&mut samples, 0.99), p50))
}
