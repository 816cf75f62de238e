//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness, with each projection's state (names and states only: positions, reasons and
/// processes are on the authenticated `GET /v1/projections`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "status": "ready", "binary": "current",
    "projections": {"cases": "running", "reports": "catching_up", "timers": "stalled"}
}))]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `current`, or `outdated` when the database carries migrations newer than this binary (a
    /// rolling upgrade): it serves the API but runs neither projections nor the scheduler.
    #[schema(pattern = "^(current|outdated)$")]
    pub binary: &'static str,
    /// Each projection's state as this process last sampled it: `running`, `catching_up`,
    /// `stalled`, `blocked` or `failed`.
    pub projections: std::collections::BTreeMap<String, String>,
}

/// The database is reachable and every migration this binary carries is applied. Answers 200
/// whatever the projections' states, which the body lists.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, body = Readiness),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json",
         description = "`migrations_pending`, or the database is unreachable"),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let client = state.pool.get().await?;
    if crate::db::migrations_current(&client).await? {
        let health = state.runner.health();
        Ok(Json(Readiness {
            status: "ready",
            binary: if health.outdated {
                "outdated"
            } else {
                "current"
            },
            projections: health
                .projections
                .iter()
                .map(|p| (p.name.clone(), p.state.as_str().to_string()))
                .collect(),
        }))
    } else {
        Err(ApiError::Unavailable {
            code: "migrations_pending",
            detail: "the database lacks migrations this server needs; run `subdesk migrate`".into(),
        })
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
