//! The one error table shared with the services: a gRPC status (and its
//! `google.rpc.ErrorInfo` reason) becomes an HTTP status and the body
//! `{"error":{"code":..,"status":..,"reason":..,"message":..}}`.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub http: StatusCode,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// Headers to send with the error (e.g. clearing a dead session cookie).
    pub set_cookies: Vec<String>,
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status code.
    #[schema(example = 403)]
    pub code: u16,
    /// The gRPC status name, e.g. `PERMISSION_DENIED`.
    #[schema(example = "FAILED_PRECONDITION")]
    pub status: &'static str,
    /// Stable machine-readable reason, e.g. `LAST_ADMIN`.
    #[schema(example = "LAST_ADMIN")]
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// When to try again (rate limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// gRPC code -> (HTTP status, status name).
pub fn http_status(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "FAILED_PRECONDITION"),
        Code::OutOfRange => (StatusCode::BAD_REQUEST, "OUT_OF_RANGE"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        Code::Aborted => (StatusCode::CONFLICT, "ABORTED"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Code::DeadlineExceeded => (StatusCode::SERVICE_UNAVAILABLE, "DEADLINE_EXCEEDED"),
        Code::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "CANCELLED"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

impl ApiError {
    pub fn new(
        http: StatusCode,
        status: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            http,
            status,
            reason: reason.to_owned(),
            message: message.into(),
            retry_after_secs: None,
            set_cookies: Vec::new(),
        }
    }

    pub fn invalid(reason: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", reason, message)
    }

    pub fn signed_out() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "SIGNED_OUT",
            "You are not signed in.",
        )
    }

    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "CSRF_FAILED",
            "This request did not come from the recapp page. Reload the page and try again.",
        )
    }

    pub fn internal(error: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "Gateway error.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "INTERNAL",
            "Something went wrong on our side.",
        )
    }

    pub fn with_cookie(mut self, cookie: String) -> Self {
        self.set_cookies.push(cookie);
        self
    }

    /// A failed call to a service.
    pub fn from_status(status: &tonic::Status) -> Self {
        let (http, name) = http_status(status.code());
        let reason = status
            .get_details_error_info()
            .map(|info| info.reason)
            .filter(|r| !r.is_empty());
        let retry_after_secs = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .map(|d| d.as_secs().max(1));
        let (reason, message) = match (http, reason) {
            // Never pass internal text on.
            (StatusCode::INTERNAL_SERVER_ERROR, _) => {
                tracing::error!(code = ?status.code(), message = status.message(), "A service failed.");
                (
                    "INTERNAL".to_owned(),
                    "Something went wrong on our side.".to_owned(),
                )
            }
            (StatusCode::SERVICE_UNAVAILABLE, reason) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "A service is unavailable.");
                (
                    reason.unwrap_or_else(|| "UNAVAILABLE".to_owned()),
                    "The service is unavailable right now. Try again in a moment.".to_owned(),
                )
            }
            (_, reason) => (
                reason.unwrap_or_else(|| name.to_owned()),
                status.message().to_owned(),
            ),
        };
        ApiError {
            http,
            status: name,
            reason,
            message,
            retry_after_secs,
            set_cookies: Vec::new(),
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::internal(&error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.http.as_u16(),
                status: self.status,
                reason: self.reason,
                message: self.message,
                retry_after_seconds: self.retry_after_secs,
            },
        };
        let mut response = (self.http, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        for cookie in self.set_cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_maps_each_code_to_its_http_status() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code).0.as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn internal_text_is_not_passed_on() {
        let error = ApiError::from_status(&tonic::Status::internal("db password is hunter2"));
        assert_eq!(error.reason, "INTERNAL");
        assert!(!error.message.contains("hunter2"));
    }
}
