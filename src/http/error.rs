//! The one error type of the HTTP edge. Every variant becomes an `application/problem+json`
//! response (RFC 9457) with a stable machine `code`. Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use subdesk_aggregates::DomainError;

use crate::command::CommandError;
use crate::store::Denied;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read at all (malformed JSON, bad query string).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// 401: no token, or one that is unknown or revoked.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller sees the resource but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 413: the body is larger than the route accepts.
    #[error("{0}")]
    TooLarge(String),
    /// 404: the resource does not exist, or the caller may not see it.
    #[error("{0}")]
    NotFound(String),
    /// 409: concurrent writers kept winning; the request may be retried.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 422: the request is well-formed but breaks a rule (domain or validation).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// 429 with `Retry-After`: the caller holds too much at once (open event streams).
    #[error("{detail}")]
    TooMany { code: &'static str, detail: String },
    /// 503 with `Retry-After`: the database cannot be reached, or a read model has not caught
    /// up within the read wait.
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    /// 500: a bug or an unexpected state; logged with its cause.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            detail: detail.into(),
        }
    }

    /// The database cannot be reached. The cause is logged; the client gets a fixed text
    /// (causes name hosts and socket paths).
    pub fn database(error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, "database unavailable");
        Self::Unavailable {
            code: "database_unavailable",
            detail: "the database is unavailable; retry shortly".into(),
        }
    }

    /// The database asked for the request to be tried again (`code` from
    /// [`crate::db::retryable_code`]): 503 with `Retry-After`. The cause is logged.
    pub fn retry(code: &'static str, error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, code, "database asked to retry");
        let detail = match code {
            "statement_timeout" => "the request's database work ran past its time limit",
            "database_read_only" => "the database accepts no writes right now (a failover?)",
            "too_many_connections" | "insufficient_resources" => "the database is overloaded",
            _ => "the request collided with concurrent work in the database",
        };
        Self::Unavailable {
            code,
            detail: format!("{detail}; retry shortly"),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::TooMany { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "/problems/invalid_impact",
    "title": "Unprocessable Entity",
    "status": 422,
    "code": "invalid_impact",
    "detail": "the impact level must be 1, 2, 3 or 4"
}))]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable machine code; clients switch on it.
    pub code: String,
    /// What went wrong, in words.
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "an internal error occurred; it has been logged".to_string()
            }
            Self::Unavailable { detail, .. } => {
                tracing::warn!(%detail, "service unavailable");
                detail.clone()
            }
            other => other.to_string(),
        };
        let mut response = problem(status, code, detail);
        let headers = response.headers_mut();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// A problem document response.
pub fn problem(status: StatusCode, code: &str, detail: String) -> Response {
    let problem = Problem {
        kind: format!("/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        code: code.to_string(),
        detail,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl<E: DomainError> From<CommandError<E>> for ApiError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(e) if e.is_outage() => Self::retry(e.code(), e.to_string()),
            CommandError::Rejected(e) => Self::Unprocessable {
                code: e.code(),
                detail: e.to_string(),
            },
            CommandError::Denied(Denied::NotFound) => Self::NotFound("not found".into()),
            CommandError::Denied(Denied::Forbidden(why)) => Self::Forbidden(why),
            CommandError::Conflict(what) => Self::Conflict {
                code: "concurrency_conflict",
                detail: format!(
                    "the {what} was changed by concurrent requests while this one was applied; \
                     retry it"
                ),
            },
            CommandError::AlreadyAccepted(_) => Self::Conflict {
                code: "idempotency_key_in_use",
                detail: "another request with this Idempotency-Key was accepted".into(),
            },
            CommandError::Unavailable(e) => Self::database(e),
            CommandError::Retry { code, detail } => Self::retry(code, detail),
            CommandError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<crate::calendars::LoadError> for ApiError {
    fn from(error: crate::calendars::LoadError) -> Self {
        match error {
            crate::calendars::LoadError::Database(e) => e.into(),
            crate::calendars::LoadError::Event(e) => e.into(),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::database(error)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        if crate::store::is_connection_error(&error) {
            return Self::database(error);
        }
        if let Some(code) = crate::db::retryable_code(&error) {
            return Self::retry(code, error);
        }
        if crate::db::is_data_exception(&error) {
            tracing::warn!(%error, "the database refused a value of the request");
            return Self::unprocessable(
                "invalid_value",
                "a value of the request is outside what can be stored (a number or date out of \
                 range, or text with a NUL character)",
            );
        }
        match error.as_db_error() {
            Some(db) => Self::Internal(format!("{}: {}", db.code().code(), db.message())),
            None => Self::Internal(error.to_string()),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(error: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        match error {
            AuthError::InvalidSpec(why) => Self::unprocessable("invalid_token_spec", why),
            AuthError::Database(e) => e.into(),
            AuthError::Pool(e) => e.into(),
        }
    }
}

impl From<crate::idempotency::IdempotencyError> for ApiError {
    fn from(error: crate::idempotency::IdempotencyError) -> Self {
        use crate::idempotency::IdempotencyError;
        match error {
            IdempotencyError::Database(e) => e.into(),
            IdempotencyError::Pool(e) => e.into(),
        }
    }
}

impl From<subdesk_projections::ProjectionError> for ApiError {
    fn from(error: subdesk_projections::ProjectionError) -> Self {
        use subdesk_projections::ProjectionError;
        match error {
            ProjectionError::Database(e) => e.into(),
            ProjectionError::Pool(e) => e.into(),
            // Sealed data that does not open: this process has the wrong master key (an
            // operator's fix), not a bad request.
            sealed @ ProjectionError::Sealed { .. } => Self::Unavailable {
                code: "keys_unavailable",
                detail: sealed.to_string(),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}
