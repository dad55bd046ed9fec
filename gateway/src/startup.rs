//! Binds the listener (port 0 works) and serves the UI and the API until
//! told to stop; then answers `/readyz` with 503 and drains in-flight
//! requests for up to the grace period. `main`, the launcher and the tests
//! share this.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use recapp_service_kit::clock::{Clock, SystemClock};
use tokio::{net::TcpListener, sync::watch};

use crate::{config::Settings, context::AppState, routes};

pub struct Application {
    local_addr: SocketAddr,
    listener: TcpListener,
    state: AppState,
    grace: Duration,
    stop: watch::Sender<bool>,
}

/// Stops a running [`Application`] (what SIGTERM does).
#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Arc::new(SystemClock)).await
    }

    /// With an injected clock (tests move time to expire access tokens).
    pub async fn build_with(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let state = AppState::new(&settings, clock)?;
        let (stop, _) = watch::channel(false);
        Ok(Application {
            local_addr,
            listener,
            state,
            grace: settings.shutdown_grace,
            stop,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Serves until the stop handle fires, SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            local_addr,
            listener,
            state,
            grace,
            stop,
        } = self;
        let app = routes::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let mut stopped = stop.subscribe();
        let draining = state.clone();
        let stop_on_signal = stop.clone();
        let signal = async move {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => {}
                _ = recapp_service_kit::shutdown::terminate_signal() => {}
            }
            stop_on_signal.send_replace(true);
            draining.set_draining();
            tracing::info!("Shutting down: draining in-flight requests.");
        };
        tracing::info!(address = %local_addr, "Gateway listening.");
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        let result = recapp_service_kit::health::serve_with_grace(
            std::future::IntoFuture::into_future(server),
            stop.subscribe(),
            grace,
        )
        .await;
        tracing::info!("Gateway stopped.");
        result
    }
}
