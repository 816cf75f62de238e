//! `GET /v1/projections`: how each read model and process manager is doing, for operators
//! (admins and auditors): state, checkpoint, lag, heartbeat, what blocks it, restarts, the
//! transaction holding the read horizon, and the events set aside. `/readyz` shows only the
//! names and states, to anyone.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use subdesk_aggregates::ActorRole;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Ctx;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(projections))
}

/// The event a projection is blocked at: written by a newer release, unknown to this binary.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedAt {
    pub position: i64,
    pub aggregate_type: String,
    pub event_type: String,
    pub event_version: String,
    pub reason: String,
}

/// Counts of a projection's set-aside events.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DeadLetterCounts {
    pub failed: i64,
    pub parked: i64,
    pub skipped: i64,
}

/// One projection.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionView {
    pub name: String,
    /// `running`, `catching_up`, `stalled`, `blocked` or `failed`.
    #[schema(pattern = "^(running|catching_up|stalled|blocked|failed)$")]
    pub state: String,
    /// The checkpoint: the last event applied, in catch-up order.
    pub tx_id: i64,
    pub position: i64,
    /// Committed events wait after the checkpoint.
    pub waiting: bool,
    /// Age of the oldest waiting event, in seconds.
    pub lag_seconds: f64,
    /// When this process last saw the checkpoint move.
    pub advanced_at: DateTime<Utc>,
    /// The last turn of this process's runner for it (null: it runs elsewhere).
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub blocked: Option<BlockedAt>,
    /// The last failure while failing.
    pub failure: Option<String>,
    /// Restarts after a panic since this process started.
    pub restarts: u32,
    pub dead_letters: DeadLetterCounts,
}

/// The oldest transaction with a transaction id: readers of the log wait behind it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HorizonView {
    pub age_seconds: f64,
    /// Its backend process, when the database role may see it.
    pub pid: Option<i32>,
}

/// One event a projection set aside.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub projection: String,
    pub position: i64,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: String,
    /// `failed`, `parked` or `skipped`.
    #[schema(pattern = "^(failed|parked|skipped)$")]
    pub state: String,
    pub error: String,
    pub reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// The projections' health.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionsReport {
    /// `current`, or `outdated` when the database carries newer migrations (a rolling upgrade:
    /// this process runs no projection).
    #[schema(pattern = "^(current|outdated)$")]
    pub binary: String,
    pub horizon: HorizonView,
    pub projections: Vec<ProjectionView>,
    /// The first 200 set-aside events, in log order.
    pub dead_letters: Vec<DeadLetterView>,
}

/// Every projection's state, checkpoint, lag, heartbeat and failures, the read horizon, and
/// the events set aside (admins and auditors).
#[utoipa::path(get, path = "/v1/projections", tag = "operations",
    responses(
        (status = 200, body = ProjectionsReport),
        (status = 403, body = Problem, description = "Not an admin or auditor"),
    ))]
async fn projections(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<ProjectionsReport>, ApiError> {
    if !matches!(ctx.principal.role, ActorRole::Admin | ActorRole::Auditor) {
        return Err(ApiError::Forbidden(
            "projection health is for admins and auditors".into(),
        ));
    }
    let health = state.runner.health();
    let client = state.pool.get().await?;
    let letters = subdesk_projections::dead_letters::list(&**client, None).await?;
    let count = |name: &str, which: &str| {
        letters
            .iter()
            .filter(|l| l.projection == name && l.state == which)
            .count() as i64
    };
    let projections = health
        .projections
        .iter()
        .map(|p| ProjectionView {
            name: p.name.clone(),
            state: p.state.as_str().into(),
            tx_id: p.checkpoint.tx_id,
            position: p.checkpoint.position,
            waiting: p.waiting,
            lag_seconds: p.lag_seconds,
            advanced_at: p.advanced_at,
            heartbeat_at: p.heartbeat_at,
            blocked: p.blocked.as_ref().map(|b| BlockedAt {
                position: b.position,
                aggregate_type: b.aggregate_type.clone(),
                event_type: b.event_type.clone(),
                event_version: b.event_version.clone(),
                reason: b.reason.clone(),
            }),
            failure: p.failure.clone(),
            restarts: p.restarts,
            dead_letters: DeadLetterCounts {
                failed: count(&p.name, "failed"),
                parked: count(&p.name, "parked"),
                skipped: count(&p.name, "skipped"),
            },
        })
        .collect();
    Ok(Json(ProjectionsReport {
        binary: if health.outdated {
            "outdated"
        } else {
            "current"
        }
        .into(),
        horizon: HorizonView {
            age_seconds: health.horizon.age_seconds,
            pid: health.horizon.pid,
        },
        projections,
        dead_letters: letters
            .into_iter()
            .take(200)
            .map(|l| DeadLetterView {
                projection: l.projection,
                position: l.position,
                aggregate_type: l.aggregate_type,
                aggregate_id: l.aggregate_id,
                event_type: l.event_type,
                state: l.state,
                error: l.error,
                reason: l.reason,
                recorded_at: l.recorded_at,
            })
            .collect(),
    }))
}
