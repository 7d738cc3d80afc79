//! Errors of the server, in two layers: [`ServerError`] for starting and running the process (bad
//! configuration, a database that cannot be opened, a port in use), and [`ApiError`] for one HTTP
//! request, which always becomes the protocol's JSON error body. Keeping the mapping to status
//! codes in one place is what guarantees that client input never turns into a 500.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chatsync_protocol::{error_code, ErrorBody};

use crate::store::StoreError;

/// Why the server could not start or stopped running. Each variant renders as one line that says
/// what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be bound (port in use, address not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The database file could not be opened, created or migrated.
    #[error("cannot open database {}: {source}", path.display())]
    Database {
        /// The database path asked for.
        path: PathBuf,
        /// What went wrong.
        source: StoreError,
    },
    /// The token secret file beside the database could not be read or created.
    #[error("cannot read or create the token secret file {}: {source}", path.display())]
    TokenSecret {
        /// The secret file path.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A configuration value is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The signal handlers for SIGINT/SIGTERM could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

/// A failed request: an HTTP status plus the protocol's `{"error", "error_description"}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// snake_case code from [`chatsync_protocol::error_code`].
    pub code: &'static str,
    /// Human-readable description (never contains a token or a secret).
    pub description: String,
    /// Seconds to wait before trying again (`Retry-After`), for a 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            description: description.into(),
            retry_after: None,
        }
    }
    /// 400: malformed input.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            error_code::BAD_REQUEST,
            description,
        )
    }
    /// 401: missing, invalid or expired token.
    pub fn unauthorized(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            error_code::UNAUTHORIZED,
            description,
        )
    }
    /// 403: authenticated but not allowed (not a member, not yourself).
    pub fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, error_code::FORBIDDEN, description)
    }
    /// 404: unknown route or resource.
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error_code::NOT_FOUND, description)
    }
    /// 405: the route exists but not with this method.
    pub fn method_not_allowed(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            error_code::METHOD_NOT_ALLOWED,
            description,
        )
    }
    /// 408: the request body did not arrive within the body timeout. The connection is closed.
    pub fn request_timeout(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            error_code::REQUEST_TIMEOUT,
            description,
        )
    }
    /// 409: the write conflicts with the state of what it writes to (a deleted message).
    pub fn conflict(description: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error_code::CONFLICT, description)
    }
    /// 429: too many requests of this kind; try again after `retry_after` seconds.
    pub fn too_many_requests(description: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                error_code::TOO_MANY_REQUESTS,
                description,
            )
        }
    }
    /// 413: body or text part too large.
    pub fn payload_too_large(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            error_code::PAYLOAD_TOO_LARGE,
            description,
        )
    }
    /// 503: the server is shutting down (the database is closed).
    pub fn unavailable(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error_code::UNAVAILABLE,
            description,
        )
    }
    /// 500: a fault of the server itself (database I/O). The details go to the log, not the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_code::INTERNAL,
            "internal server error",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => ApiError::unavailable("the server is shutting down"),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            error_description: self.description,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // What the rest of a timed-out request would be is unknown: do not read on.
            StatusCode::REQUEST_TIMEOUT => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            // docs/protocol.md promises it: come back in a second.
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let secs = self.retry_after.unwrap_or(1).max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_carries_a_bearer_challenge() {
        let r = ApiError::unauthorized("no").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn timeouts_close_and_unavailable_says_when_to_come_back() {
        let r = ApiError::request_timeout("slow").into_response();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let r = ApiError::unavailable("busy").into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::too_many_requests("slow down", 3).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn closed_store_is_unavailable_not_internal() {
        assert_eq!(
            ApiError::from(StoreError::Closed).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
