//! The HTTP surface: `/api/v1/...` (JSON), `/api/openapi.json`, health, and
//! the UI. Middleware: trace context, security headers, CSRF, session.

pub mod auth;
pub mod web;
pub mod workspaces;

use axum::{
    Json, Router,
    extract::{FromRequest, Request, State, rejection::JsonRejection},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, Method, header};
use serde::de::DeserializeOwned;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    context::{AppState, Client, Person},
    error::ApiError,
    session::{CSRF_HEADER, SESSION, tokens_equal},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "recapp gateway API",
        description = "The browser's JSON API. Sessions live in an HttpOnly cookie; state-changing requests need the `X-CSRF-Token` header echoing the `recapp-csrf` cookie. Errors: `{\"error\":{\"code\",\"status\",\"reason\",\"message\"}}` with a stable `reason`.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "session", description = "Sign up, sign in, sign out"),
        (name = "account", description = "The signed-in person's authenticator app"),
        (name = "workspaces", description = "Workspaces, settings, permissions, audit log"),
        (name = "members", description = "The Users page: Active and Disabled tabs"),
        (name = "invitations", description = "The Pending tab and invitation links"),
    )
)]
struct ApiDoc;

/// The API router and its OpenAPI document, from the same handler list.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::sign_up))
        .routes(routes!(auth::sign_in, auth::current, auth::sign_out))
        .routes(routes!(auth::complete_mfa))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::begin_totp))
        .routes(routes!(auth::confirm_totp))
        .routes(routes!(auth::remove_totp))
        .routes(routes!(
            workspaces::list_workspaces,
            workspaces::create_workspace
        ))
        .routes(routes!(workspaces::get_workspace))
        .routes(routes!(workspaces::update_settings))
        .routes(routes!(workspaces::permissions))
        .routes(routes!(workspaces::list_members))
        .routes(routes!(workspaces::change_role, workspaces::remove_member))
        .routes(routes!(workspaces::disable_member))
        .routes(routes!(workspaces::enable_member))
        .routes(routes!(workspaces::list_invitations, workspaces::invite))
        .routes(routes!(workspaces::resend_invitation))
        .routes(routes!(workspaces::cancel_invitation))
        .routes(routes!(workspaces::preview_invitation))
        .routes(routes!(workspaces::accept_invitation))
        .routes(routes!(workspaces::audit_events))
        .split_for_parts()
}

pub fn router(app: AppState) -> Router {
    let (api, openapi) = api();
    let openapi = std::sync::Arc::new(openapi);
    let api = api
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .layer(middleware::from_fn_with_state(app.clone(), session))
        .layer(middleware::from_fn_with_state(app.clone(), csrf));
    Router::new()
        .merge(api)
        .merge(web::router())
        .layer(middleware::from_fn_with_state(app.clone(), headers))
        .layer(middleware::from_fn(trace))
        .with_state(app)
}

/// `Json<T>` whose rejection is the API's error body.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
    }
}

fn json_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("JSON_REQUIRED", "Send the body as application/json.")
        }
        JsonRejection::JsonDataError(e) => ApiError::invalid("INVALID_ARGUMENT", e.body_text()),
        _ => ApiError::invalid("INVALID_JSON", "The body is not valid JSON."),
    }
}

/// RFC 3339 in UTC, or empty.
pub fn rfc3339(time: Option<prost_types::Timestamp>) -> String {
    time.and_then(|t| {
        chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
    })
    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    .unwrap_or_default()
}

/// Starts the request's span, continuing the caller's W3C trace context;
/// the service clients carry it on.
async fn trace(request: Request, next: Next) -> Response {
    let span = recapp_telemetry::http_server_span(
        request.method().as_str(),
        request.uri().path(),
        request.headers(),
    );
    next.run(request).instrument(span).await
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every response; a CSRF cookie for pages that have none.
async fn headers(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let needs_csrf = app.cookies().csrf(request.headers()).is_none();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Invitation links carry their token in the path: never leak it.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if app.0.secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if needs_csrf
        && let Ok((_, cookie)) = app.cookies().new_csrf()
        && let Ok(value) = HeaderValue::from_str(&cookie)
    {
        h.append(header::SET_COOKIE, value);
    }
    response
}

/// State-changing requests must come from our page: the `Origin` (when sent)
/// is ours, and `X-CSRF-Token` echoes the CSRF cookie, which other sites can
/// neither read nor set.
async fn csrf(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        let headers = request.headers();
        let origin_ok = match headers.get(header::ORIGIN).map(|o| o.to_str()) {
            None => true,
            Some(Ok(origin)) => origin.eq_ignore_ascii_case(&app.0.public_origin),
            Some(Err(_)) => false,
        };
        let site_ok = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|site| site == "same-origin" || site == "none");
        let token_ok = match (
            app.cookies().csrf(headers),
            headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
        ) {
            (Some(cookie), Some(header)) => tokens_equal(&cookie, header),
            _ => false,
        };
        if !(origin_ok && site_ok && token_ok) {
            tracing::info!(
                origin_ok,
                site_ok,
                token_ok,
                "Refused a cross-site request."
            );
            return ApiError::csrf().into_response();
        }
    }
    next.run(request).await
}

/// Opens the session cookie, refreshes the access token when it is about to
/// expire (the new cookie goes out with the response), and drops a dead
/// session's cookie.
async fn session(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let now = app.now_ms();
    let mut set_cookie = None;
    if let Some(state) = app.cookies().session(request.headers()) {
        if state.refresh_expires_ms <= now {
            set_cookie = Some(app.cookies().clear_session());
        } else {
            let current = if state.access_expires_ms - 30_000 <= now {
                let (parts, body) = request.into_parts();
                let client = Client::from_parts(&parts, &app.0.trusted_proxies);
                request = Request::from_parts(parts, body);
                match app.refresh(&state, &client).await {
                    Ok(fresh) => {
                        match app.cookies().set_session(&fresh, now) {
                            Ok(cookie) => set_cookie = Some(cookie),
                            Err(e) => return ApiError::internal(&e).into_response(),
                        }
                        Some(fresh)
                    }
                    Err(status) if status.code() == tonic::Code::Unauthenticated => {
                        set_cookie = Some(app.cookies().clear_session());
                        None
                    }
                    Err(status) => return ApiError::from(status).into_response(),
                }
            } else {
                Some(state)
            };
            if let Some(state) = current {
                request.extensions_mut().insert(Person { state });
            }
        }
    }
    let mut response = next.run(request).await;
    let name = app.cookies().name(SESSION);
    let handler_set_session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(format!("{name}=").as_bytes()));
    if !handler_set_session
        && let Some(cookie) = set_cookie
        && let Ok(value) = HeaderValue::from_str(&cookie)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
