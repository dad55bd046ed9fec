//! gRPC health that follows the database, and serving with a grace period.

use std::{future::Future, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tonic_health::{ServingStatus, server::HealthReporter};

/// How often the database is checked.
const INTERVAL: Duration = Duration::from_secs(5);

/// Reports one gRPC service (and the server as a whole, "") as serving or
/// not: NOT_SERVING until the database answers, whenever it stops
/// answering, and from the moment shutdown begins.
#[derive(Clone)]
pub struct DatabaseHealth {
    reporter: HealthReporter,
    service: &'static str,
}

impl DatabaseHealth {
    pub fn new(reporter: HealthReporter, service: &'static str) -> Self {
        Self { reporter, service }
    }

    pub async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(self.service, status).await;
    }

    /// Checks the database every few seconds until `stop` turns true.
    pub async fn watch(self, db: DatabaseConnection, mut stop: watch::Receiver<bool>) {
        let mut last = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let status = if crate::db::ping(&db).await {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            if last != Some(status) {
                if status == ServingStatus::Serving {
                    tracing::info!("Database reachable: serving.");
                } else {
                    tracing::warn!("Database unreachable: not serving.");
                }
                self.set(status).await;
                last = Some(status);
            }
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Runs a server future until it ends by itself (after its graceful
/// shutdown drained the in-flight calls) or until `grace` has passed since
/// `stop` turned true.
pub async fn serve_with_grace<F, E>(
    server: F,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()>
where
    F: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.map_err(|e| anyhow::Error::new(e).context("gRPC server failed")),
        _ = async {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("In-flight calls did not finish within the grace period.");
            Ok(())
        }
    }
}
