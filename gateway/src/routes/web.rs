//! The UI (static files compiled into the binary; no build step), health
//! endpoints, and the fallback.

use axum::{
    Router,
    extract::{Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, Method, StatusCode, header};

use crate::{context::AppState, error::ApiError};

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const FAVICON: &str = include_str!("../../web/favicon.svg");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
        .fallback(fallback)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Ready while not draining: on SIGTERM it answers 503 at once so the load
/// balancer stops sending new requests, while in-flight ones finish.
async fn ready(State(app): State<AppState>) -> Response {
    if app.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        "ready".into_response()
    }
}

/// Every other GET outside `/api/` is a page of the single-page UI (the
/// script routes it); anything else is a JSON 404.
async fn fallback(request: Request) -> Response {
    let path = request.uri().path();
    if request.method() == Method::GET && !path.starts_with("/api/") && path != "/api" {
        return (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            INDEX,
        )
            .into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "ROUTE_NOT_FOUND",
        "No such route.",
    )
    .into_response()
}
