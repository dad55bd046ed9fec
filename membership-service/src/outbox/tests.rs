//! The relay against a real (tiny) SMTP server and an in-memory SQLite
//! database with the membership migrations applied.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use recapp_migrations::{MigratorTrait, membership::Migrator};
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use tokio::sync::{Notify, watch};

use super::{
    entity::{self, Status},
    mailer::{DeliveryError, classify},
    *,
};

const NOW: i64 = 1_800_000_000_000;
const FROM: &str = "MSP Recapp <no-reply@recapp.test>";

async fn database() -> DatabaseConnection {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

fn email(n: usize) -> NewEmail {
    NewEmail {
        workspace_id: Some(Uuid::now_v7()),
        kind: "invitation".into(),
        to: format!("user{n}@example.com"),
        subject: format!("Invitation {n}"),
        text: format!("Hello {n}, open https://recapp.test/accept?token=secret{n}"),
        html: format!("<p>Hello {n}</p>"),
    }
}

fn policy() -> RelayPolicy {
    RelayPolicy {
        base_backoff: Duration::from_secs(2),
        max_attempts: 3,
        ..RelayPolicy::default()
    }
}

fn smtp_mailer(addr: SocketAddr) -> Mailer {
    Mailer::smtp(&SmtpSettings {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: FROM.into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

async fn rows(db: &DatabaseConnection) -> Vec<entity::Model> {
    entity::Entity::find()
        .order_by_asc(entity::Column::Recipient)
        .all(db)
        .await
        .unwrap()
}

/// A small SMTP server on plain threads: it speaks enough RFC 5321 for
/// lettre, keeps each accepted message, and answers the end of each message
/// with the next scripted reply code (250 once the script is used up).
struct TinySmtp {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<String>>>,
}

impl TinySmtp {
    fn start(script: &[u16]) -> TinySmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (kept, replies) = (accepted.clone(), script);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, replies) = (kept.clone(), replies.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &kept, &replies);
                });
            }
        });
        TinySmtp { addr, accepted }
    }

    fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    kept: &Mutex<Vec<String>>,
    replies: &Mutex<VecDeque<u16>>,
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    out.write_all(b"220 tiny ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => out.write_all(b"250-tiny\r\n250 8BITMIME\r\n")?,
            "QUIT" => return out.write_all(b"221 bye\r\n"),
            "DATA" => {
                out.write_all(b"354 go on\r\n")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let code = replies.lock().unwrap().pop_front().unwrap_or(250);
                if code == 250 {
                    kept.lock().unwrap().push(data);
                }
                out.write_all(format!("{code} scripted reply\r\n").as_bytes())?;
            }
            _ => out.write_all(b"250 ok\r\n")?,
        }
    }
}

#[tokio::test]
async fn three_emails_are_delivered_over_smtp_once_each() {
    let db = database().await;
    let smtp = TinySmtp::start(&[]);
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(enqueue(&db, email(n), NOW).await.unwrap());
    }
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(smtp.addr), FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW).await.unwrap(), 3);
    assert_eq!(relay.drain_once(NOW + 1).await.unwrap(), 0);

    let accepted = smtp.accepted();
    assert_eq!(accepted.len(), 3);
    for message in &accepted {
        assert!(
            message.contains("From: \"MSP Recapp\" <no-reply@recapp.test>"),
            "{message}"
        );
        assert!(message.contains("multipart/alternative"));
        assert!(message.contains("text/plain"));
        assert!(message.contains("text/html"));
    }
    for (n, id) in ids.iter().enumerate() {
        let message = accepted
            .iter()
            .find(|m| m.contains(&format!("To: user{n}@example.com")))
            .unwrap();
        assert!(message.contains(&format!("Subject: Invitation {n}")));
        assert!(message.contains(&format!("Message-ID: <{id}@recapp.test>")));
    }
    for row in rows(&db).await {
        assert_eq!(row.status, Status::Sent);
        assert_eq!(row.attempts, 0);
        assert_eq!(row.locked_until, None);
        assert!(row.sent_at.unwrap() >= NOW);
    }
}

#[tokio::test]
async fn the_files_mailer_writes_each_email_as_an_eml_file() {
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let ids = [
        enqueue(&db, email(0), NOW).await.unwrap(),
        enqueue(&db, email(1), NOW).await.unwrap(),
    ];
    let mailer = Mailer::files(dir.path().join("mail")).unwrap();
    let relay = OutboxRelay::new(db.clone(), mailer, FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW).await.unwrap(), 2);

    for id in ids {
        let file =
            std::fs::read_to_string(dir.path().join("mail").join(format!("{id}.eml"))).unwrap();
        assert!(file.contains("multipart/alternative"));
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("mail")).unwrap().count(),
        2
    );
}

#[tokio::test]
async fn a_temporary_refusal_is_retried_after_the_backoff() {
    let db = database().await;
    let smtp = TinySmtp::start(&[451]);
    enqueue(&db, email(0), NOW).await.unwrap();
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(smtp.addr), FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW).await.unwrap(), 0);
    let row = rows(&db).await.remove(0);
    assert_eq!(row.status, Status::Pending);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.locked_until, None);
    assert!(
        row.last_error.as_deref().unwrap().contains("451"),
        "{:?}",
        row.last_error
    );
    assert!(!row.last_error.as_deref().unwrap().contains("token"));
    // 50-100 % of the 2 s base (plus the few ms the attempt took).
    let wait = row.next_attempt_at - NOW;
    assert!((1_000..=2_500).contains(&wait), "{wait}");

    assert_eq!(relay.drain_once(NOW + 999).await.unwrap(), 0);
    assert_eq!(relay.drain_once(row.next_attempt_at).await.unwrap(), 1);
    assert_eq!(rows(&db).await[0].status, Status::Sent);
    assert_eq!(smtp.accepted().len(), 1);
}

#[tokio::test]
async fn a_refused_mailbox_fails_for_good() {
    let db = database().await;
    let smtp = TinySmtp::start(&[550]);
    enqueue(&db, email(0), NOW).await.unwrap();
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(smtp.addr), FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW).await.unwrap(), 0);

    let row = rows(&db).await.remove(0);
    assert_eq!(row.status, Status::Failed);
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.unwrap().contains("550"));
    assert_eq!(relay.drain_once(NOW + 3_600_000).await.unwrap(), 0);
}

#[tokio::test]
async fn smtp_errors_are_classified_from_real_replies_and_sockets() {
    let temporary = TinySmtp::start(&[451]);
    let permanent = TinySmtp::start(&[550]);
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let id = Uuid::now_v7();
    let from: lettre::message::Mailbox = FROM.parse().unwrap();
    let row = entity::Model {
        id,
        workspace_id: None,
        kind: "test".into(),
        recipient: "a@example.com".into(),
        subject: "s".into(),
        body_text: "t".into(),
        body_html: "h".into(),
        status: Status::Pending,
        attempts: 0,
        next_attempt_at: NOW,
        locked_until: None,
        last_error: None,
        sent_at: None,
        created_at: NOW,
        updated_at: NOW,
    };
    let send = |addr| {
        let message = relay::build_message(&from, &row, NOW).unwrap();
        async move {
            match smtp_mailer(addr) {
                Mailer::Smtp { transport, .. } => lettre::AsyncTransport::send(&transport, message)
                    .await
                    .unwrap_err(),
                Mailer::Files { .. } => unreachable!(),
            }
        }
    };

    assert!(
        matches!(classify(&send(temporary.addr).await), DeliveryError::Temporary(t) if t.contains("451"))
    );
    assert!(
        matches!(classify(&send(permanent.addr).await), DeliveryError::Permanent(t) if t.contains("550"))
    );
    assert!(matches!(
        classify(&send(closed).await),
        DeliveryError::Temporary(_)
    ));
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_temporary_failure() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let db = database().await;
    enqueue(&db, email(0), NOW).await.unwrap();
    let mailer = Mailer::smtp(&SmtpSettings {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: FROM.into(),
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let relay = OutboxRelay::new(db.clone(), mailer, FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW).await.unwrap(), 0);

    let row = rows(&db).await.remove(0);
    assert_eq!((row.status, row.attempts), (Status::Pending, 1));
    assert!(
        row.last_error
            .unwrap()
            .contains("did not finish within 300 ms")
    );
    drop(silent);
}

#[tokio::test]
async fn an_unreachable_server_keeps_the_email_until_the_last_attempt() {
    let db = database().await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    enqueue(&db, email(0), NOW).await.unwrap();
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(closed), FROM.into(), policy());

    let mut now = NOW;
    for attempt in 1..=3 {
        assert_eq!(relay.drain_once(now).await.unwrap(), 0);
        let row = rows(&db).await.remove(0);
        assert_eq!(row.attempts, attempt);
        let expected = if attempt < 3 {
            Status::Pending
        } else {
            Status::Failed
        };
        assert_eq!(row.status, expected);
        now = row.next_attempt_at;
    }
    // The backoff grew: the second wait is at least the first's lower bound doubled.
    assert!(now - NOW >= 1_000 + 2_000);
}

#[tokio::test]
async fn an_invalid_recipient_fails_without_trying_the_server() {
    let db = database().await;
    let smtp = TinySmtp::start(&[]);
    enqueue(
        &db,
        NewEmail {
            to: "not an address".into(),
            ..email(0)
        },
        NOW,
    )
    .await
    .unwrap();
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(smtp.addr), FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW).await.unwrap(), 0);

    let row = rows(&db).await.remove(0);
    assert_eq!(row.status, Status::Failed);
    assert!(row.last_error.unwrap().contains("recipient"));
    assert!(smtp.accepted().is_empty());
}

#[tokio::test]
async fn a_leased_row_waits_for_the_lease_to_end_then_is_sent() {
    let db = database().await;
    let smtp = TinySmtp::start(&[]);
    let id = enqueue(&db, email(0), NOW).await.unwrap();
    // Another relay claimed the row and died mid-send.
    let lease_end = NOW + 60_000;
    entity::Entity::update_many()
        .col_expr(entity::Column::LockedUntil, Expr::value(Some(lease_end)))
        .filter(entity::Column::Id.eq(id))
        .exec(&db)
        .await
        .unwrap();
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(smtp.addr), FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW + 59_999).await.unwrap(), 0);
    assert!(smtp.accepted().is_empty());
    assert_eq!(relay.drain_once(lease_end).await.unwrap(), 1);
    assert_eq!(smtp.accepted().len(), 1);
}

/// Four relays, each claiming small batches, drain 40 emails at once.
async fn assert_relays_share_the_outbox(db: &DatabaseConnection) {
    let smtp = TinySmtp::start(&[]);
    for n in 0..40 {
        enqueue(db, email(n), NOW).await.unwrap();
    }
    let relays: Vec<_> = (0..4)
        .map(|_| {
            let policy = RelayPolicy {
                batch_size: 7,
                concurrency: 3,
                ..policy()
            };
            let mailer = smtp_mailer(smtp.addr);
            Arc::new(OutboxRelay::new(db.clone(), mailer, FROM.into(), policy))
        })
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(relays.len()));

    let tasks: Vec<_> = relays
        .iter()
        .map(|relay| {
            let (relay, barrier) = (relay.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut sent = 0;
                for _ in 0..10 {
                    sent += relay.drain_once(NOW).await.unwrap();
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }

    assert_eq!(sent, 40);
    let accepted = smtp.accepted();
    let mut recipients: Vec<&str> = accepted
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("To: ")))
        .collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(accepted.len(), 40);
    assert_eq!(recipients.len(), 40);
    assert!(rows(db).await.iter().all(|r| r.status == Status::Sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_draining_together_send_each_email_exactly_once_on_sqlite() {
    // A file in WAL mode with a busy timeout, as the service opens it.
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("outbox.db").display()
    );
    let mut options = sea_orm::ConnectOptions::new(url);
    options
        .max_connections(4)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
        });
    let db = Database::connect(options).await.unwrap();
    Migrator::up(&db, None).await.unwrap();

    assert_relays_share_the_outbox(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_draining_together_send_each_email_exactly_once_on_postgres() {
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    assert_relays_share_the_outbox(&pg.db).await;
}

#[tokio::test]
async fn a_retried_email_is_delivered_on_postgres() {
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    let smtp = TinySmtp::start(&[451]);
    let id = enqueue(&pg.db, email(0), NOW).await.unwrap();
    let relay = OutboxRelay::new(pg.db.clone(), smtp_mailer(smtp.addr), FROM.into(), policy());

    assert_eq!(relay.drain_once(NOW).await.unwrap(), 0);
    let row = rows(&pg.db).await.remove(0);
    assert_eq!((row.id, row.status, row.attempts), (id, Status::Pending, 1));
    assert_eq!(relay.drain_once(row.next_attempt_at).await.unwrap(), 1);
    assert_eq!(rows(&pg.db).await[0].status, Status::Sent);
}

const POSTGRES_URL_VAR: &str = "RECAPP_TEST_POSTGRES_URL";

/// A PostgreSQL database named by a UUID, migrated, dropped afterwards.
struct TestPostgres {
    db: DatabaseConnection,
    admin_url: String,
    name: String,
}

impl TestPostgres {
    /// `None` (with a note) when no server is configured, except under CI.
    async fn create() -> Option<TestPostgres> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{POSTGRES_URL_VAR} must be set in CI"
            );
            eprintln!("SKIPPED on PostgreSQL: set {POSTGRES_URL_VAR} to run this test there too");
            return None;
        };
        let name = format!("outbox_test_{}", Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = match query {
            "" => format!("{server}/{name}"),
            q => format!("{server}/{name}?{q}"),
        };
        let db = Database::connect(&url).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        Some(TestPostgres {
            db,
            admin_url,
            name,
        })
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // No async in Drop: a runtime of its own on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = admin.execute_unprepared(&drop).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn the_running_relay_wakes_on_notify_and_stops_when_told() {
    let db = database().await;
    let smtp = TinySmtp::start(&[]);
    let policy = RelayPolicy {
        poll_interval: Duration::from_secs(3600),
        ..policy()
    };
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(smtp.addr), FROM.into(), policy);
    let notify = Arc::new(Notify::new());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(relay.run(notify.clone(), stopped));

    // Let the first (empty) round pass, so only the notification can wake it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    enqueue(&db, email(0), chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    notify.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while smtp.accepted().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(smtp.accepted().len(), 1);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_invalid_sender_stops_the_round_before_claiming() {
    let db = database().await;
    let smtp = TinySmtp::start(&[]);
    enqueue(&db, email(0), NOW).await.unwrap();
    let relay = OutboxRelay::new(db.clone(), smtp_mailer(smtp.addr), "nope".into(), policy());

    assert!(relay.drain_once(NOW).await.is_err());
    let row = rows(&db).await.remove(0);
    assert_eq!(
        (row.status, row.attempts, row.locked_until),
        (Status::Pending, 0, None)
    );
}

#[tokio::test]
async fn enqueue_commits_and_rolls_back_with_the_callers_transaction() {
    use sea_orm::TransactionTrait;
    let db = database().await;

    let txn = db.begin().await.unwrap();
    enqueue(&txn, email(0), NOW).await.unwrap();
    txn.rollback().await.unwrap();
    assert!(rows(&db).await.is_empty());

    let txn = db.begin().await.unwrap();
    let id = enqueue(&txn, email(1), NOW).await.unwrap();
    txn.commit().await.unwrap();
    let row = rows(&db).await.remove(0);
    assert_eq!(
        (row.id, row.status, row.next_attempt_at),
        (id, Status::Pending, NOW)
    );
}
