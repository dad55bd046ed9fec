//! Membership benchmarks: CheckPermission against the server's own trivial
//! RPC (health `Check`) at 64 concurrent callers on PostgreSQL with 10,000
//! workspaces and 100,000 memberships; a deep ListMembers page against the
//! first; the outbox relay against a bare lettre client into the same SMTP
//! sink.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use membership_service::outbox::{
    self, Mailer, NewEmail, OutboxRelay, RelayPolicy, SmtpSettings, SmtpTls,
};
use recapp_proto::{
    identity::v1 as ipb,
    membership::v1::{self as pb, membership_service_client::MembershipServiceClient},
};
use recapp_tests::{identity::bearer, smtp::SmtpSink};
use sea_orm::{ConnectionTrait, Database};
use tonic::metadata::MetadataValue;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::{PASSWORD, Row, Server, free_port, ms, percentile, workspace_root};

const MEMBERSHIP_SECRET: &str = "bench-membership-secret-19af3c";
const SUITE_SECRET: &str = "bench-suite-secret-82bd01";
const WORKSPACES: i64 = 10_000;
const MEMBERSHIPS: i64 = 100_000;
const BIG_WORKSPACE_MEMBERS: i64 = 10_000;

pub(crate) struct Membership {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn wait_listening(addr: &str) -> anyhow::Result<()> {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("{addr} did not start listening")
}

pub async fn benchmarks(rows: &mut Vec<Row>, duration: Duration) -> anyhow::Result<()> {
    outbox_relay(rows).await?;
    let admin = std::env::var("RECAPP_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Ok(admin_db) = Database::connect(&admin).await else {
        rows.push(Row {
            name: "membership on PostgreSQL".into(),
            value: "skipped: no PostgreSQL at RECAPP_BENCH_POSTGRES_URL".into(),
            target: "-".into(),
            ok: false,
        });
        return Ok(());
    };
    let name = format!("recapp_bench_{}", uuid::Uuid::new_v4().simple());
    admin_db
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => bail!("RECAPP_BENCH_POSTGRES_URL has no database part"),
    };
    let result = on_postgres(rows, duration, &url).await;
    admin_db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .ok();
    result
}

async fn on_postgres(rows: &mut Vec<Row>, duration: Duration, url: &str) -> anyhow::Result<()> {
    let identity = Server::start_with_principals(&[("membership", MEMBERSHIP_SECRET)]).await?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir()?;
    let suite = identity_service::service::ServiceCredentials::config_entry("suite", SUITE_SECRET);
    let binary = workspace_root().join("target/release/membership-service");
    let child = Command::new(&binary)
        .args(["serve", "--migrate-on-start", "--log-format", "text"])
        .env("MEMBERSHIP_LISTEN", &addr)
        .env("MEMBERSHIP_DATABASE_URL", url)
        .env("MEMBERSHIP_DATA_DIR", dir.path())
        .env(
            "MEMBERSHIP_IDENTITY_URL",
            format!("http://{}", identity.addr),
        )
        .env("MEMBERSHIP_IDENTITY_TOKEN", MEMBERSHIP_SECRET)
        .env("MEMBERSHIP_SERVICE_CREDENTIALS", suite)
        .env("MEMBERSHIP_PAGE_TOKEN_SECRET", "bench-page-secret")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let membership = Membership { child, addr };
    wait_listening(&membership.addr).await?;

    // An owner with a real account and token; the big workspace is theirs.
    let mut identity_client = identity.client().await?;
    identity_client
        .create_account(ipb::CreateAccountRequest {
            email: "owner@bench.test".into(),
            password: PASSWORD.into(),
            display_name: "Owner".into(),
            client_info: None,
        })
        .await?;
    let token = match identity_client
        .authenticate(ipb::AuthenticateRequest {
            email: "owner@bench.test".into(),
            password: PASSWORD.into(),
            client_info: None,
        })
        .await?
        .into_inner()
        .result
    {
        Some(ipb::authenticate_response::Result::Session(s)) => s.access_token,
        _ => bail!("expected a session"),
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", membership.addr))?
        .connect()
        .await?;
    let mut client = MembershipServiceClient::new(channel.clone());
    let big = client
        .create_workspace(bearer(
            pb::CreateWorkspaceRequest {
                name: "Big".into(),
                owner_account_id: String::new(),
                request_id: String::new(),
            },
            &token,
        ))
        .await?
        .into_inner()
        .workspace
        .context("no workspace")?;

    // Bulk data straight into the database (the service's own schema).
    let db = Database::connect(url).await?;
    db.execute_unprepared(&format!(
        "INSERT INTO workspaces (id, name, owner_account_id, require_mfa, invitation_lifetime_secs, audit_seq, audit_head, created_at, updated_at) \
         SELECT md5('w' || g)::uuid, 'Workspace ' || g, md5('o' || g)::uuid, false, 604800, 0, repeat('0', 64), 0, 0 \
         FROM generate_series(1, {WORKSPACES}) g"
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO memberships (workspace_id, account_id, email, role, status, joined_at, created_at, updated_at) \
         SELECT md5('w' || (g % {WORKSPACES} + 1))::uuid, md5('a' || g)::uuid, 'm' || g || '@bench.test', \
                CASE WHEN g % 10 = 0 THEN 'tenant_admin' ELSE 'user' END, 'active', 0, 0, 0 \
         FROM generate_series(1, {MEMBERSHIPS}) g"
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO memberships (workspace_id, account_id, email, role, status, joined_at, created_at, updated_at) \
         SELECT '{}'::uuid, md5('big' || g)::uuid, 'big' || g || '@bench.test', 'user', 'active', 0, 0, 0 \
         FROM generate_series(1, {BIG_WORKSPACE_MEMBERS}) g",
        big.id
    ))
    .await?;
    db.execute_unprepared("ANALYZE").await?;
    // Members to ask about, spread over the data.
    let sample: Vec<(String, String)> = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT workspace_id::text AS w, account_id::text AS a FROM memberships TABLESAMPLE SYSTEM (5) LIMIT 5000",
        ))
        .await?
        .into_iter()
        .filter_map(|row| Some((row.try_get::<String>("", "w").ok()?, row.try_get::<String>("", "a").ok()?)))
        .collect();
    if sample.is_empty() {
        bail!("no memberships to sample");
    }
    let sample = Arc::new(sample);

    // CheckPermission vs the same server's health Check, 64 callers each,
    // alternating in rounds so that a change in the machine's speed falls
    // on both (a quarter of the time each round, the figures over all).
    let callers = 64;
    let check_load = {
        let channel = channel.clone();
        let sample = sample.clone();
        move |i: usize| {
            let mut client = MembershipServiceClient::new(channel.clone());
            let (workspace_id, account_id) = sample[i % sample.len()].clone();
            async move {
                let mut request = tonic::Request::new(pb::CheckPermissionRequest {
                    workspace_id,
                    account_id,
                    permission: pb::Permission::ViewDashboard as i32,
                    second_factor: false,
                });
                if let Ok(v) = MetadataValue::try_from(SUITE_SECRET) {
                    request.metadata_mut().insert("x-recapp-service-token", v);
                }
                match client.check_permission(request).await {
                    Ok(r) if r.get_ref().allowed => Ok(()),
                    Ok(r) => bail!("denied: {}", r.get_ref().denial_reason),
                    Err(e) => Err(e.into()),
                }
            }
        }
    };
    let echo_load = {
        let channel = channel.clone();
        move |_: usize| {
            let mut client = HealthClient::new(channel.clone());
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                Ok(())
            }
        }
    };
    const ROUNDS: u32 = 4;
    let round = duration / ROUNDS;
    let (mut checks, mut echoes) = (Load::default(), Load::default());
    for r in 1..=ROUNDS {
        eprintln!(
            "membership: round {r}/{ROUNDS}: CheckPermission, then health Check, {round:?} each"
        );
        checks.add(load(callers, round, check_load.clone()).await?);
        echoes.add(load(callers, round, echo_load.clone()).await?);
    }
    let (checks, echoes) = (checks.summary(), echoes.summary());
    let ratio = checks.rate / echoes.rate;
    rows.push(Row {
        name: format!("CheckPermission at {callers} callers (PostgreSQL, 10k workspaces, 100k memberships) vs health Check on the same server"),
        value: format!("{:.0}/s vs {:.0}/s = {ratio:.2}x", checks.rate, echoes.rate),
        target: ">= 0.3x".into(),
        ok: ratio >= 0.3,
    });
    rows.push(Row {
        name: "CheckPermission p99 at 64 callers".into(),
        value: format!("{} (echo p99 {})", ms(checks.p99), ms(echoes.p99)),
        target: "<= 5 ms".into(),
        ok: checks.p99 <= Duration::from_millis(5),
    });

    // ListMembers: a page of 50 near position 9,900 vs the first page.
    let lister = client.clone();
    let list = |page_token: String| {
        let mut client = lister.clone();
        let token = token.clone();
        let workspace_id = big.id.clone();
        async move {
            client
                .list_members(bearer(
                    pb::ListMembersRequest {
                        workspace_id,
                        status: 0,
                        page_size: 50,
                        page_token,
                    },
                    &token,
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let mut deep_token = String::new();
    let mut position = 0;
    while position < 9_900 {
        let size = if position < 9_800 { 200 } else { 50 };
        let page = client
            .list_members(bearer(
                pb::ListMembersRequest {
                    workspace_id: big.id.clone(),
                    status: 0,
                    page_size: size,
                    page_token: deep_token.clone(),
                },
                &token,
            ))
            .await?
            .into_inner();
        position += page.members.len();
        deep_token = page.next_page_token;
    }
    let mut first = Vec::new();
    let mut deep = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        list(String::new()).await?;
        first.push(t.elapsed());
        let t = Instant::now();
        let page = list(deep_token.clone()).await?;
        deep.push(t.elapsed());
        if page.members.len() != 50 {
            bail!("the deep page had {} members", page.members.len());
        }
    }
    let (first_p50, deep_p50) = (percentile(&mut first, 0.5), percentile(&mut deep, 0.5));
    let ratio = deep_p50.as_secs_f64() / first_p50.as_secs_f64();
    rows.push(Row {
        name: "ListMembers page of 50 at position ~9,900 of 10,000 vs the first page (p50)".into(),
        value: format!("{} vs {} = {ratio:.2}x", ms(deep_p50), ms(first_p50)),
        target: "<= 1.3x".into(),
        ok: ratio <= 1.3,
    });
    drop(membership);
    drop(identity);
    Ok(())
}

#[derive(Default)]
struct Load {
    samples: Vec<Duration>,
    elapsed: Duration,
}

struct Summary {
    rate: f64,
    p99: Duration,
}

impl Load {
    fn add(&mut self, other: Load) {
        self.samples.extend(other.samples);
        self.elapsed += other.elapsed;
    }

    fn summary(mut self) -> Summary {
        Summary {
            rate: self.samples.len() as f64 / self.elapsed.as_secs_f64(),
            p99: percentile(&mut self.samples, 0.99),
        }
    }
}

async fn load<F, Fut>(callers: usize, duration: Duration, make: F) -> anyhow::Result<Load>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let make = Arc::new(make);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = c;
            while start.elapsed() < duration {
                let t = Instant::now();
                make(i).await?;
                samples.push(t.elapsed());
                i += callers;
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok(Load {
        samples,
        elapsed: start.elapsed(),
    })
}

/// The relay draining 2,000 queued emails into a local SMTP sink, against a
/// bare lettre client sending the same number with the same concurrency.
async fn outbox_relay(rows: &mut Vec<Row>) -> anyhow::Result<()> {
    const N: usize = 2_000;
    let sink = SmtpSink::start().await;
    let settings = SmtpSettings {
        host: sink.addr.ip().to_string(),
        port: sink.addr.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Bench <bench@bench.test>".into(),
        timeout: Duration::from_secs(10),
    };
    let policy = RelayPolicy::default();

    // Baseline: lettre alone, `policy.concurrency` sends in flight.
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
            .port(settings.port)
            .build();
    let start = Instant::now();
    let concurrency = policy.concurrency.max(1);
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c..N).step_by(concurrency) {
                let message = Message::builder()
                    .from("Bench <bench@bench.test>".parse()?)
                    .to(format!("to{i}@bench.test").parse()?)
                    .subject("Bench")
                    .body(String::from("Hello"))?;
                transport.send(message).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let bare = N as f64 / start.elapsed().as_secs_f64();
    sink.wait_for(N, Duration::from_secs(60)).await;

    // The relay, on its own SQLite database.
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("outbox.db").display()
    );
    let db = recapp_service_kit::db::connect(&url, 4).await?;
    {
        use recapp_migrations::MigratorTrait;
        recapp_migrations::membership::Migrator::up(&db, None).await?;
    }
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..N {
        outbox::enqueue(
            &db,
            NewEmail {
                workspace_id: None,
                kind: "bench".into(),
                to: format!("relay{i}@bench.test"),
                subject: "Bench".into(),
                text: "Hello".into(),
                html: "<p>Hello</p>".into(),
            },
            now,
        )
        .await?;
    }
    let relay = OutboxRelay::new(
        db.clone(),
        Mailer::smtp(&settings)?,
        settings.from.clone(),
        policy,
    );
    let start = Instant::now();
    let mut sent = 0;
    while sent < N && start.elapsed() < Duration::from_secs(120) {
        sent += relay
            .drain_once(chrono::Utc::now().timestamp_millis())
            .await?;
    }
    let relay_rate = sent as f64 / start.elapsed().as_secs_f64();
    let ratio = relay_rate / bare;
    rows.push(Row {
        name: format!("Outbox relay draining {N} emails into a local SMTP sink"),
        value: format!("{relay_rate:.0}/s"),
        target: ">= 200/s".into(),
        ok: relay_rate >= 200.0,
    });
    rows.push(Row {
        name: "Outbox relay vs a bare lettre client, same sink and concurrency".into(),
        value: format!("{relay_rate:.0}/s vs {bare:.0}/s = {ratio:.2}x"),
        target: ">= 0.5x".into(),
        ok: ratio >= 0.5,
    });
    Ok(())
}
