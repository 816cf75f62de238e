//! `/v1/audit`: the whole log for auditors, and verification of its hash chains.

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subdesk_aggregates::ActorRole;
use subdesk_projections::Checkpoint;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Ctx;
use crate::audit::export::{page, Filter};
use crate::audit::verify::{verify, Scope, VerifyReport};
use crate::audit::AuditEvent;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(verify_log))
}

/// Auditors and admins read the audit log; everyone else is refused.
fn ensure_auditor(ctx: &Ctx) -> Result<(), ApiError> {
    match ctx.principal.role {
        ActorRole::Auditor | ActorRole::Admin => Ok(()),
        _ => Err(ApiError::Forbidden(
            "the audit log is for auditors and admins".into(),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Continue after this point (`next` of the previous page). Leave out to start at the
    /// beginning of the log.
    #[param(max_length = 40, pattern = r"^([0-9]+\.[0-9]+)?$")]
    pub after: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Only events of this aggregate type (`SupportCase`, `Subscription`,
    /// `PartnerRelationship`).
    #[param(max_length = 64)]
    pub aggregate_type: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only events recorded before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `after` to read on. Stable: the log is read in `(tx_id, position)` order and
    /// only from finished transactions, so nothing can later appear before it.
    pub next: String,
    /// Whether the page was full (more events may follow right away).
    pub has_more: bool,
}

/// The event log in its gap-free order, page by page.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(EventsParams),
    responses(
        (status = 200, body = EventsPage),
        (status = 400, body = Problem, description = "Bad `after` token or limit"),
        (status = 403, body = Problem),
    ))]
async fn events(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(params): Query<EventsParams>,
) -> Result<Json<EventsPage>, ApiError> {
    ensure_auditor(&ctx)?;
    let after = match params.after.as_deref() {
        None | Some("") => Checkpoint::START,
        Some(token) => Checkpoint::parse_token(token).ok_or_else(|| ApiError::Unprocessable {
            code: "invalid_after",
            detail: "`after` is a `next` value from a previous page".into(),
        })?,
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_limit",
            detail: "limit must be 1 to 1000".into(),
        });
    }
    if [params.from, params.to]
        .iter()
        .flatten()
        .any(|at| !super::storable(at))
    {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            detail: "from and to are instants between the years 1 and 9999".into(),
        });
    }
    let filter = Filter {
        aggregate_type: params.aggregate_type,
        from: params.from,
        to: params.to,
    };
    let client = state.read_pool.get().await?;
    let events = page(&**client, after, &filter, limit).await?;
    let next = events
        .last()
        .map_or(after, |e| Checkpoint {
            tx_id: e.tx_id,
            position: e.position,
        })
        .token();
    Ok(Json(EventsPage {
        has_more: events.len() as i64 == limit,
        events,
        next,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// Only streams of this aggregate type.
    #[param(max_length = 64)]
    pub aggregate_type: Option<String>,
    /// Only this stream (an aggregate id).
    #[param(max_length = 128)]
    pub id: Option<String>,
}

/// Recomputes the hash chains and names the first broken link (`ok` is false then).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", params(VerifyParams),
    responses((status = 200, body = VerifyReport), (status = 403, body = Problem)))]
async fn verify_log(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(params): Query<VerifyParams>,
) -> Result<Json<VerifyReport>, ApiError> {
    ensure_auditor(&ctx)?;
    let client = state.read_pool.get().await?;
    let scope = Scope {
        aggregate_type: params.aggregate_type,
        aggregate_id: params.id,
    };
    Ok(Json(verify(&client, &scope, |_| {}).await?))
}
