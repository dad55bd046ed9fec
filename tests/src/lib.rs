//! Test and benchmark harness: real services on random ports, each on a
//! fresh database (a new SQLite file, or a new PostgreSQL database named by a
//! UUID), driven over real gRPC.
//!
//! PostgreSQL runs when `RECAPP_TEST_POSTGRES_URL` names a server (any
//! database on it; each test creates and drops its own). Under CI (`CI` set)
//! a missing URL fails the PostgreSQL tests instead of skipping them.

pub mod gateway;
pub mod identity;
pub mod membership;
pub mod smtp;

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectionTrait, Database};

pub use identity::{IdentityClient, TestIdentity};

/// Where a test keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const POSTGRES_URL_VAR: &str = "RECAPP_TEST_POSTGRES_URL";

impl Backend {
    /// The PostgreSQL backend if configured; `None` (with a loud note) when
    /// not, except under CI where that is a failure.
    pub fn postgres() -> Option<Backend> {
        if std::env::var_os(POSTGRES_URL_VAR).is_some() {
            return Some(Backend::Postgres);
        }
        if std::env::var_os("CI").is_some() {
            panic!("{POSTGRES_URL_VAR} must be set in CI: PostgreSQL tests may not be skipped");
        }
        eprintln!("SKIPPED on PostgreSQL: set {POSTGRES_URL_VAR} to run this test there too");
        None
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Ok(Self {
                    url,
                    backend,
                    postgres: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_URL_VAR).context(POSTGRES_URL_VAR)?;
                let name = format!("recapp_test_{}", uuid::Uuid::new_v4().simple());
                let db = Database::connect(&admin)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {POSTGRES_URL_VAR}"))?;
                db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await?;
                db.close().await?;
                let url = replace_database(&admin, &name)?;
                Ok(Self {
                    url,
                    backend,
                    postgres: Some((admin, name)),
                    _dir: None,
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Async work cannot run in Drop; a short-lived runtime on its own
        // thread drops the database even when the test panicked.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(db) = Database::connect(&admin).await {
                    let _ = db
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = db.close().await;
                }
            });
        })
        .join();
    }
}

/// `postgres://u@h:p/db?x` with the database replaced.
fn replace_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .context("a PostgreSQL URL needs a scheme")?
        + 3;
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// Logs stay silent unless `TEST_LOG` is set.
pub fn init_test_logs() {
    recapp_telemetry::init_for_tests();
}

/// Waits until `check` holds, polling; for asynchronous effects only.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Declares a test that runs once on SQLite and once on PostgreSQL:
/// `backend_test!(name);` for `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::Backend::postgres() {
                    super::$name(backend).await
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_in_a_postgres_url() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "y").unwrap(),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://h:1", "z").unwrap(),
            "postgres://h:1/z"
        );
    }
}
