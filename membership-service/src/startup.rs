//! Builds the server: its own listener (port 0 works), the database, the
//! identity client, the email relay, and gRPC (API, health, reflection).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use recapp_migrations::{MigratorTrait, membership::Migrator};
use recapp_proto::membership::v1::membership_service_server::MembershipServiceServer;
use recapp_service_kit::health::{DatabaseHealth, serve_with_grace};
use recapp_service_kit::{Clock, PageTokens, SystemClock};
use tokio::{
    net::TcpListener,
    sync::{Notify, watch},
};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::{
    auth::Authenticator,
    config::{MailSettings, Settings},
    grpc::MembershipGrpc,
    identity::IdentityClient,
    outbox::{Mailer, OutboxRelay},
    service::{CheckBatcher, Membership},
    store,
};

pub const SERVICE_NAME: &str = "recapp.membership.v1.MembershipService";

pub struct Application {
    local_addr: SocketAddr,
    listener: TcpListener,
    membership: Membership,
    auth: Authenticator,
    relay: OutboxRelay,
    outbox: Arc<Notify>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    stop: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    pub fn stop(&self) {
        // send_replace: a stop sent before serving subscribed must not be lost.
        self.0.send_replace(true);
    }
}

/// Knobs for tests and benchmarks.
#[derive(Clone)]
pub struct BuildOptions {
    pub clock: Arc<dyn Clock>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
        }
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, BuildOptions::default()).await
    }

    pub async fn build_with(settings: Settings, options: BuildOptions) -> anyhow::Result<Self> {
        let (db, checks) =
            open_pools(&settings.database_url, settings.database_max_connections).await?;
        if settings.migrate_on_start {
            Migrator::up(&db, None)
                .await
                .context("applying migrations")?;
        }
        let identity = IdentityClient::new(
            &settings.identity_url,
            &settings.identity_token,
            settings.identity_timeout,
        )?;
        let auth = Authenticator::new(identity.clone(), settings.service_credentials.clone());
        // Warm the key cache; if identity is not up yet, the first token
        // with an unknown key fetches again.
        auth.refetch_keys().await;
        let outbox = Arc::new(Notify::new());
        let membership = Membership::new(
            db.clone(),
            checks,
            identity,
            settings.policy.clone(),
            PageTokens::new(&settings.page_token_bytes()),
            outbox.clone(),
        );
        let mailer = match &settings.mail {
            MailSettings::Smtp(smtp) => Mailer::smtp(smtp)?,
            MailSettings::Files(dir) => Mailer::files(dir.clone())?,
        };
        let relay = OutboxRelay::new(
            db,
            mailer,
            settings.mail_from.clone(),
            settings.relay.clone(),
        );
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let (stop, _) = watch::channel(false);
        Ok(Self {
            local_addr,
            listener,
            membership,
            auth,
            relay,
            outbox,
            clock: options.clock,
            settings,
            stop,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Serves until stopped (the handle, SIGTERM or Ctrl-C): then reports
    /// NOT_SERVING, finishes in-flight calls within the grace period, stops
    /// the relay and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            membership,
            auth,
            relay,
            outbox,
            clock,
            settings,
            stop,
            local_addr,
        } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = DatabaseHealth::new(reporter, SERVICE_NAME);
        health.set(ServingStatus::NotServing).await;
        let db = membership.db().clone();
        let health_task = tokio::spawn(health.clone().watch(db.clone(), stop.subscribe()));
        let relay_task = tokio::spawn(relay.run(outbox, stop.subscribe()));

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(recapp_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building gRPC reflection")?;
        let api = MembershipServiceServer::new(MembershipGrpc::new(membership, auth, clock))
            .max_decoding_message_size(1024 * 1024);

        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut stopped = stop.subscribe();
        let stop_on_signal = stop.clone();
        let shutdown_health = health.clone();
        let health_abort = health_task.abort_handle();
        let signal = async move {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => {}
                _ = recapp_service_kit::shutdown::terminate_signal() => {}
            }
            stop_on_signal.send_replace(true);
            health_abort.abort();
            tracing::info!("Shutting down: draining in-flight calls.");
            shutdown_health.set(ServingStatus::NotServing).await;
        };
        tracing::info!(address = %local_addr, "Membership service listening.");
        let server = Server::builder()
            .trace_fn(recapp_telemetry::grpc_server_span)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(api)
            .serve_with_incoming_shutdown(incoming, signal);
        let result = serve_with_grace(server, stop.subscribe(), settings.shutdown_grace).await;
        stop.send_replace(true);
        let _ = tokio::time::timeout(settings.shutdown_grace, relay_task).await;
        health_task.abort();
        db.close().await.ok();
        tracing::info!("Membership service stopped.");
        result
    }
}

/// The service's pool and, on PostgreSQL, the permission checks' own
/// connections: a quarter of `max_connections` (at least one).
async fn open_pools(
    url: &str,
    max_connections: u32,
) -> anyhow::Result<(sea_orm::DatabaseConnection, Option<CheckBatcher>)> {
    if !url.starts_with("postgres") {
        return Ok((store::connect(url, max_connections).await?, None));
    }
    let for_checks = (max_connections / 4).max(1);
    let db = store::connect(url, max_connections.saturating_sub(for_checks).max(1)).await?;
    let checks = CheckBatcher::start(url, for_checks).context("starting the permission checks")?;
    Ok((db, Some(checks)))
}
