//! Database plumbing both services share: the pool (SQLite tuned for
//! concurrent writers), times stored as UTC milliseconds, and constraint
//! names read out of errors.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, SqlErr,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// Opens the pool. SQLite files are created on first use, in WAL mode with a
/// busy timeout so concurrent writers wait instead of failing.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let sqlite = url.starts_with("sqlite:");
    // SQLite serializes writers anyway; a few connections suffice and each
    // one costs a thread and a page cache.
    let max_connections = if sqlite {
        max_connections.min(4)
    } else {
        max_connections
    };
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings a pooled connection on every checkout by default: a
        // second round trip per query. Only a connection that sat idle long
        // enough for a proxy or the server to drop it is tested.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Checkpoints (which fsync) run in the background task
                // below, not inside whichever request crosses the threshold.
                .pragma("wal_autocheckpoint", "0")
        });
    if url.starts_with("sqlite:")
        && let Some(dir) = sqlite_parent_dir(url)
    {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the database directory {}", dir.display()))?;
    }
    let db = Database::connect(options)
        .await
        .context("connecting to the database")?;
    if sqlite {
        tokio::spawn(checkpoint_in_background(db.clone()));
    }
    Ok(db)
}

/// Folds the SQLite write-ahead log into the database once a second, off
/// the request path. Ends when the pool is closed.
async fn checkpoint_in_background(db: DatabaseConnection) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            if matches!(e, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
                return;
            }
            tracing::debug!(error = %e, "WAL checkpoint failed.");
        }
    }
}

fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .map(|p| p.to_path_buf())
        .filter(|p| !p.as_os_str().is_empty())
}

/// Answers whether the database responds (for health).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// UTC milliseconds since the epoch, the stored form of a time.
pub fn ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// The time a stored value names.
pub fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// True when the error is a violation of the unique constraint `name`.
pub fn is_unique_violation(error: &DbErr, name: &str) -> bool {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) => {
            // PostgreSQL names the constraint; SQLite names the columns.
            message.contains(name) || name_matches_sqlite_columns(&message, name)
        }
        _ => false,
    }
}

fn name_matches_sqlite_columns(message: &str, name: &str) -> bool {
    // "UNIQUE constraint failed: accounts.email" for index accounts_email_key.
    match name.strip_suffix("_key") {
        Some(stem) => message.replace('.', "_").contains(stem),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_survives_the_round_trip_to_milliseconds() {
        let t = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
        assert_eq!(time(ms(t)), t);
    }

    #[test]
    fn the_sqlite_directory_is_found_in_the_url() {
        assert_eq!(
            sqlite_parent_dir("sqlite://data/identity.db?mode=rwc"),
            Some(std::path::PathBuf::from("data"))
        );
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_parent_dir("sqlite://x.db"), None);
    }

    #[test]
    fn sqlite_unique_messages_match_the_constraint_name() {
        assert!(name_matches_sqlite_columns(
            "UNIQUE constraint failed: accounts.email",
            "accounts_email_key"
        ));
        assert!(!name_matches_sqlite_columns(
            "UNIQUE constraint failed: sessions.id",
            "accounts_email_key"
        ));
    }
}
