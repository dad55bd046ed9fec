//! Builds the server: binds its own listener (port 0 works), connects the
//! database, and serves gRPC (the API, health, reflection) until told to
//! stop. `main` and the tests share this; nothing is global.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use recapp_migrations::{MigratorTrait, identity::Migrator};
use recapp_proto::identity::v1::identity_service_server::IdentityServiceServer;
use recapp_service_kit::health::{DatabaseHealth, serve_with_grace};
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::{
    clock::{Clock, SystemClock},
    config::Settings,
    grpc::IdentityGrpc,
    service::Identity,
    store,
};

/// The gRPC service name health reports on (besides the server-wide "").
pub const SERVICE_NAME: &str = "recapp.identity.v1.IdentityService";

pub struct Application {
    local_addr: SocketAddr,
    listener: TcpListener,
    identity: Identity,
    clock: Arc<dyn Clock>,
    settings: Settings,
    stop: watch::Sender<bool>,
}

/// Stops a running [`Application`] (what SIGTERM does).
#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    pub fn stop(&self) {
        // send_replace: a stop sent before serving subscribed must not be lost.
        self.0.send_replace(true);
    }
}

/// Test and benchmark knobs that production never sets.
#[derive(Clone)]
pub struct BuildOptions {
    pub clock: Arc<dyn Clock>,
    /// Permit argon2 parameters below OWASP's floor (fast tests only).
    pub allow_weak_argon2: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            allow_weak_argon2: false,
        }
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, BuildOptions::default()).await
    }

    pub async fn build_with(settings: Settings, options: BuildOptions) -> anyhow::Result<Self> {
        let db = store::connect(&settings.database_url, settings.database_max_connections).await?;
        if settings.migrate_on_start {
            Migrator::up(&db, None)
                .await
                .context("applying migrations")?;
        }
        let identity = Identity::new(
            db,
            settings.clone(),
            options.allow_weak_argon2,
            options.clock.now(),
        )
        .await
        .context("preparing the identity service (are migrations applied?)")?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let (stop, _) = watch::channel(false);
        Ok(Self {
            local_addr,
            listener,
            identity,
            clock: options.clock,
            settings,
            stop,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Serves until the stop handle fires or the process gets SIGTERM or
    /// Ctrl-C; then reports NOT_SERVING, lets in-flight calls finish (up to
    /// the grace period) and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            identity,
            clock,
            settings,
            stop,
            local_addr,
        } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = DatabaseHealth::new(reporter, SERVICE_NAME);
        health.set(ServingStatus::NotServing).await;
        let db = identity.db().clone();
        let mut stopped = stop.subscribe();

        let health_task = tokio::spawn(health.clone().watch(db.clone(), stop.subscribe()));

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(recapp_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building gRPC reflection")?;
        let api = IdentityServiceServer::new(IdentityGrpc::new(identity, clock))
            // Large enough that an oversized field gets a clear INVALID_ARGUMENT
            // from the handler rather than a transport error.
            .max_decoding_message_size(2 * 1024 * 1024);

        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let shutdown_health = health.clone();
        let stop_on_signal = stop.clone();
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
        tracing::info!(address = %local_addr, "Identity service listening.");
        let server = Server::builder()
            .trace_fn(recapp_telemetry::grpc_server_span)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(api)
            .serve_with_incoming_shutdown(incoming, signal);
        let result = serve_with_grace(server, stop.subscribe(), settings.shutdown_grace).await;
        stop.send_replace(true);
        health_task.abort();
        db.close().await.ok();
        tracing::info!("Identity service stopped.");
        result
    }
}
