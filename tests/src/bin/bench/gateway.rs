//! Gateway benchmarks, each side by side with its baseline in one run:
//! - ListMembers as JSON through the gateway vs the same call made directly
//!   over gRPC to membership, 64 concurrent clients (throughput and p50);
//! - a sign-in through the gateway vs a direct `Authenticate` (the hash
//!   dominates both);
//! - the launcher's first page after start (warm release build).
//!
//! identity, membership and the gateway run as their release binaries on
//! SQLite, each in its own process; the load comes from this process.

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use recapp_proto::{
    identity::v1 as ipb,
    membership::v1::{self as pb, membership_service_client::MembershipServiceClient},
};
use recapp_tests::identity::bearer;

use super::{PASSWORD, Row, Server, free_port, ms, percentile, workspace_root};
use crate::membership::{Membership, wait_listening};

const MEMBERSHIP_SECRET: &str = "bench-membership-secret-19af3c";
const GATEWAY_SECRET: &str = "bench-gateway-secret-6a02ee";
const CLIENTS: usize = 64;

/// One load run: requests per second and the latencies.
struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn run<F, Fut>(callers: usize, duration: Duration, make: F) -> anyhow::Result<Run>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let make = Arc::new(make);
    // Warm-up: connections open, caches fill.
    for _ in 0..callers {
        make().await?;
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let make = make.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while start.elapsed() < duration {
                    let t = Instant::now();
                    make().await?;
                    samples.push(t.elapsed());
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = start.elapsed();
    Ok(Run {
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&mut all, 0.5),
        p99: percentile(&mut all, 0.99),
    })
}

struct Gateway {
    child: std::process::Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(identity: &str, membership: &str) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let binary = workspace_root().join("target/release/gateway");
    let child = Command::new(&binary)
        .args(["serve"])
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY_IDENTITY_URL", format!("http://{identity}"))
        .env("GATEWAY_MEMBERSHIP_URL", format!("http://{membership}"))
        .env("GATEWAY_SERVICE_TOKEN", GATEWAY_SECRET)
        .env(
            "GATEWAY_COOKIE_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .env("GATEWAY_PUBLIC_ORIGIN", &url)
        .env("GATEWAY_INSECURE_HTTP", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Gateway { child, url })
}

fn start_membership(identity: &str, dir: &std::path::Path) -> anyhow::Result<Membership> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let credentials =
        identity_service::service::ServiceCredentials::config_entry("gateway", GATEWAY_SECRET);
    let binary = workspace_root().join("target/release/membership-service");
    let child = Command::new(&binary)
        .args(["serve", "--migrate-on-start", "--log-format", "text"])
        .env("MEMBERSHIP_LISTEN", &addr)
        .env("MEMBERSHIP_DATA_DIR", dir)
        .env("MEMBERSHIP_IDENTITY_URL", format!("http://{identity}"))
        .env("MEMBERSHIP_IDENTITY_TOKEN", MEMBERSHIP_SECRET)
        .env("MEMBERSHIP_SERVICE_CREDENTIALS", credentials)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Membership { child, addr })
}

/// A signed-in `Cookie` header from the gateway (page load, then sign-in).
async fn gateway_session(http: &reqwest::Client, gateway: &str) -> anyhow::Result<String> {
    let page = http.get(format!("{gateway}/")).send().await?;
    let csrf = page
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("recapp-csrf="))
        .and_then(|c| c.split(';').next())
        .context("no CSRF cookie")?
        .to_owned();
    let signed_in = http
        .post(format!("{gateway}/api/v1/session"))
        .header("cookie", format!("recapp-csrf={csrf}"))
        .header("x-csrf-token", &csrf)
        .header("origin", gateway)
        .json(&serde_json::json!({"email": "owner@bench.test", "password": PASSWORD}))
        .send()
        .await?;
    if !signed_in.status().is_success() {
        bail!("sign-in through the gateway: {}", signed_in.status());
    }
    let session = signed_in
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("recapp-session="))
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_owned();
    Ok(format!("recapp-csrf={csrf}; recapp-session={session}"))
}

pub async fn benchmarks(rows: &mut Vec<Row>, duration: Duration) -> anyhow::Result<()> {
    let identity = Server::start_with_principals(&[
        ("membership", MEMBERSHIP_SECRET),
        ("gateway", GATEWAY_SECRET),
    ])
    .await?;
    let dir = tempfile::tempdir()?;
    let membership = start_membership(&identity.addr, dir.path())?;
    wait_listening(&membership.addr).await?;
    let gateway = start_gateway(&identity.addr, &membership.addr)?;
    wait_listening(gateway.url.trim_start_matches("http://")).await?;

    // The owner and their workspace: the list holds one member card.
    let mut identity_client = identity.client().await?;
    let token = super::owner_token(&mut identity_client).await?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", membership.addr))?
        .connect()
        .await?;
    let direct = MembershipServiceClient::new(channel);
    let workspace = direct
        .clone()
        .create_workspace(bearer(
            pb::CreateWorkspaceRequest {
                name: "Bench".into(),
                owner_account_id: String::new(),
                request_id: String::new(),
            },
            &token,
        ))
        .await?
        .into_inner()
        .workspace
        .context("no workspace")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let cookie = gateway_session(&http, &gateway.url).await?;

    // Direct gRPC first, then the gateway, then direct again: the better
    // of the two direct runs is the baseline (noise only slows a run down).
    let direct_run = |token: String, id: String| {
        let client = direct.clone();
        move || {
            let mut client = client.clone();
            let request = bearer(
                pb::ListMembersRequest {
                    workspace_id: id.clone(),
                    status: pb::MemberStatus::Active as i32,
                    page_size: 50,
                    page_token: String::new(),
                },
                &token,
            );
            async move {
                client.list_members(request).await?;
                anyhow::Ok(())
            }
        }
    };
    let first = run(
        CLIENTS,
        duration,
        direct_run(token.clone(), workspace.id.clone()),
    )
    .await?;
    let url = format!(
        "{}/api/v1/workspaces/{}/members?status=active&page_size=50",
        gateway.url, workspace.id
    );
    let through = {
        let http = http.clone();
        let cookie = cookie.clone();
        run(CLIENTS, duration, move || {
            let request = http.get(&url).header("cookie", &cookie);
            async move {
                let response = request.send().await?;
                if !response.status().is_success() {
                    bail!("gateway answered {}", response.status());
                }
                response.bytes().await?;
                anyhow::Ok(())
            }
        })
        .await?
    };
    let second = run(
        CLIENTS,
        duration,
        direct_run(token.clone(), workspace.id.clone()),
    )
    .await?;
    let baseline = if second.rate > first.rate {
        second
    } else {
        first
    };
    let throughput = through.rate / baseline.rate;
    let p50 = through.p50.as_secs_f64() / baseline.p50.as_secs_f64();
    rows.push(Row {
        name: format!(
            "ListMembers via gateway (JSON) vs direct gRPC, {CLIENTS} clients: throughput"
        ),
        value: format!(
            "{:.0}/s vs {:.0}/s = {throughput:.2}x",
            through.rate, baseline.rate
        ),
        target: ">= 0.45x".into(),
        ok: throughput >= 0.45,
    });
    rows.push(Row {
        name: format!("ListMembers via gateway vs direct gRPC, {CLIENTS} clients: p50 (p99)"),
        value: format!(
            "{} vs {} = {p50:.2}x (p99 {} vs {})",
            ms(through.p50),
            ms(baseline.p50),
            ms(through.p99),
            ms(baseline.p99)
        ),
        target: "<= 1.6x".into(),
        ok: p50 <= 1.6,
    });

    // Sign-in: the gateway's POST /api/v1/session vs Authenticate, two
    // callers each (the hash pool has one thread per core).
    let signins = (duration.as_secs() as usize).max(3) * 2;
    let mut direct_times = Vec::new();
    let mut gateway_times = Vec::new();
    for round in 0..signins {
        // Alternate, so drift hits both alike.
        if round % 2 == 0 {
            let t = Instant::now();
            identity_client
                .authenticate(ipb::AuthenticateRequest {
                    email: "owner@bench.test".into(),
                    password: PASSWORD.into(),
                    client_info: None,
                })
                .await?;
            direct_times.push(t.elapsed());
        } else {
            let t = Instant::now();
            gateway_session(&http, &gateway.url).await?;
            gateway_times.push(t.elapsed());
        }
    }
    let (d, g) = (
        percentile(&mut direct_times, 0.5),
        percentile(&mut gateway_times, 0.5),
    );
    // The gateway sign-in also loads the page once (for the CSRF cookie).
    let ratio = g.as_secs_f64() / d.as_secs_f64();
    rows.push(Row {
        name: "Sign-in through the gateway (page load + POST /api/v1/session) vs direct Authenticate (p50)".into(),
        value: format!("{} vs {} = {ratio:.3}x", ms(g), ms(d)),
        target: "<= 1.05x".into(),
        ok: ratio <= 1.05,
    });
    drop(gateway);
    drop(membership);
    drop(identity);

    launcher_first_page(rows).await
}

/// `recapp-dev` from a warm release build: time from spawn to the first
/// 200 for `/`, on a fresh data directory and on a second start.
async fn launcher_first_page(rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut times = Vec::new();
    for _ in 0..2 {
        let port = free_port()?;
        let binary = workspace_root().join("target/release/recapp-dev");
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .args(["--data-dir"])
            .arg(dir.path())
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let url = format!("http://127.0.0.1:{port}/");
        let mut served = None;
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                served = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // SIGTERM, as Ctrl-C would: a clean stop.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        times.push(served.context("the launcher never served its first page")?);
    }
    let worst = times.iter().max().copied().unwrap_or_default();
    rows.push(Row {
        name: "recapp-dev: first page after start (first start / second start)".into(),
        value: format!("{} / {}", ms(times[0]), ms(times[1])),
        target: "<= 2 s".into(),
        ok: worst <= Duration::from_secs(2),
    });
    Ok(())
}
