//! `/v1/webhooks`: endpoints that receive events as their owner may see them, signed, at least
//! once and in order (see `crate::webhooks`). Admins register staff endpoints, an org's admin
//! the org's, a partner its own; an endpoint belongs to the owner, not to the token that
//! registered it, and only its owner (or a staff admin) sees it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use crate::feed::TypeFilter;
use crate::state::AppState;
use crate::webhooks::{self, target, Delivery, Endpoint, NewEndpoint, Owner};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, remove))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
        .routes(routes!(enable))
        .routes(routes!(rotate_secret))
}

/// Longest overlap of a rotated secret (7 days).
const MAX_OVERLAP_SECONDS: i64 = 7 * 24 * 3600;

/// An endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193...", "owner": "partner:p-cloudwise", "url": "https://hooks.cloudwise.example/subdesk",
    "events": ["case.*"], "description": "ticket sync", "status": "enabled",
    "disabled_reason": null, "cursor": "1207.42", "failing_since": null, "attempts": 0,
    "next_attempt_at": null, "previous_secret_expires_at": null,
    "created_by": "pat@cloudwise.example", "created_at": "2026-11-29T10:00:00Z"
}))]
pub struct WebhookEndpoint {
    pub id: Uuid,
    /// `staff`, `org:<org id>` or `partner:<partner id>`.
    pub owner: String,
    pub url: String,
    /// Event names and prefixes it receives (empty: every event its owner may see).
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `enabled` or `disabled` (after failing for the give-up time, 3 days by default).
    pub status: String,
    pub disabled_reason: Option<String>,
    /// The feed cursor of the last event it acknowledged.
    pub cursor: String,
    pub failing_since: Option<DateTime<Utc>>,
    /// Failed attempts at the event it is stuck on.
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// While a rotated-out secret still signs deliveries.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The signing secret: in the answer that creates or rotates it only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookEndpoint {
    fn of(endpoint: Endpoint, with_secret: bool) -> Self {
        Self {
            id: endpoint.id,
            owner: endpoint.owner.label(),
            url: endpoint.url,
            events: endpoint.events.patterns().to_vec(),
            description: endpoint.description,
            status: endpoint.status,
            disabled_reason: endpoint.disabled_reason,
            cursor: endpoint.cursor.token(),
            failing_since: endpoint.failing_since,
            attempts: endpoint.attempts,
            next_attempt_at: endpoint.next_attempt_at,
            previous_secret_expires_at: endpoint.previous_secret_expires_at,
            created_by: endpoint.created_by,
            created_at: endpoint.created_at,
            secret: with_secret.then_some(endpoint.secret),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.cloudwise.example/subdesk", "events": ["case.*", "subscription.renewed"]}))]
pub struct CreateWebhook {
    /// Where to POST events: an absolute http(s) URL to a public address.
    #[schema(max_length = 2048)]
    pub url: String,
    /// Event names (`case.comment_added`) or prefixes ending in `*` (`case.*`); empty or left
    /// out: every event the owner may see.
    #[serde(default)]
    #[schema(max_items = 64, inline, value_type = Vec<crate::schema::EventTypePattern>)]
    pub events: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookEndpoint>,
}

fn owner_of(ctx: &Ctx) -> Result<Owner, ApiError> {
    Owner::of(&ctx.principal).ok_or_else(|| {
        ApiError::Forbidden(
            "webhooks are registered by staff admins, an org's admin and partners".into(),
        )
    })
}

/// The endpoint `id`, if the caller manages it (404 otherwise: ids do not leak).
async fn managed(state: &AppState, ctx: &Ctx, id: Uuid) -> Result<Endpoint, ApiError> {
    let client = state.pool.get().await?;
    match webhooks::get(&**client, id).await? {
        Some(endpoint) if endpoint.owner.managed_by(&ctx.principal) => Ok(endpoint),
        _ => Err(ApiError::not_found("webhook")),
    }
}

/// Registers an endpoint for the caller's org (an org admin), partner (a partner) or for staff
/// (a staff admin). It receives the events that come after it (replay for earlier ones), each
/// signed with the `secret` of this answer, which is not shown again.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, body = WebhookEndpoint, description = "Registered; `secret` is shown this once"),
        (status = 403, body = Problem, description = "Not a staff admin, an org's admin nor a partner"),
        (status = 422, body = Problem, description = "`invalid_url`, `private_target`, `unknown_event_type`, `too_many_webhooks` (16 per owner)"),
    ))]
async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: JsonBody<CreateWebhook>,
) -> Result<Response, ApiError> {
    let owner = owner_of(&ctx)?;
    let request = body.value;
    let url =
        target::check(&request.url, state.settings.webhooks.allow_private).map_err(|error| {
            match error {
                target::TargetError::Private => {
                    ApiError::unprocessable("private_target", error.to_string())
                }
                _ => ApiError::unprocessable("invalid_url", error.to_string()),
            }
        })?;
    let events = TypeFilter::parse(&request.events)
        .map_err(|e| ApiError::unprocessable("unknown_event_type", e.to_string()))?;
    let client = state.pool.get().await?;
    let endpoint = webhooks::create(
        &**client,
        &NewEndpoint {
            owner,
            url: url.to_string(),
            events,
            description: request.description,
            created_by: ctx.principal.user.clone(),
        },
    )
    .await?
    .ok_or_else(|| {
        ApiError::unprocessable(
            "too_many_webhooks",
            format!(
                "an owner has at most {} webhook endpoints; delete one first",
                webhooks::MAX_ENDPOINTS_PER_OWNER
            ),
        )
    })?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookEndpoint::of(endpoint, true)),
    )
        .into_response())
}

/// The caller's endpoints (a staff admin: every endpoint), oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, body = WebhookList),
        (status = 403, body = Problem, description = "Not a staff admin, an org's admin nor a partner"),
    ))]
async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<WebhookList>, ApiError> {
    let owner = owner_of(&ctx)?;
    let client = state.pool.get().await?;
    let scope = (owner != Owner::Staff).then_some(&owner);
    let endpoints = webhooks::list(&**client, scope).await?;
    Ok(Json(WebhookList {
        webhooks: endpoints
            .into_iter()
            .map(|e| WebhookEndpoint::of(e, false))
            .collect(),
    }))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = Problem)))]
async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    Ok(Json(WebhookEndpoint::of(
        managed(&state, &ctx, id).await?,
        false,
    )))
}

/// Deletes an endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    managed(&state, &ctx, id).await?;
    let client = state.pool.get().await?;
    if webhooks::delete(&**client, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Attempts to show, newest first: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

/// The endpoint's latest delivery attempts, newest first: event, attempt, answer, latency.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), DeliveriesParams),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem)))]
async fn deliveries(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Query(params): Query<DeliveriesParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    managed(&state, &ctx, id).await?;
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let client = state.pool.get().await?;
    Ok(Json(DeliveryList {
        deliveries: webhooks::deliveries(&**client, id, limit).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from_position": 0}))]
pub struct ReplayRequest {
    /// Deliver again from the event at this position (its place in the log's order); 0: from
    /// the beginning of the log.
    #[schema(minimum = 0)]
    pub from_position: i64,
}

/// Delivers again, from an event on (what the owner may see of it now). The endpoint's
/// failures are forgotten and the next delivery goes at once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks",
    params(("id" = Uuid, Path)), request_body = ReplayRequest,
    responses(
        (status = 200, body = WebhookEndpoint),
        (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`unknown_position`: no event at that position"),
    ))]
async fn replay(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<ReplayRequest>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    managed(&state, &ctx, id).await?;
    let position = body.value.from_position;
    if position < 0 {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "from_position is 0 or an event's position",
        ));
    }
    let client = state.pool.get().await?;
    let from = webhooks::before_position(&**client, position)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable(
                "unknown_position",
                format!("no event has position {position}"),
            )
        })?;
    let endpoint = webhooks::replay(&**client, id, from)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(WebhookEndpoint::of(endpoint, false)))
}

/// Enables an endpoint again (after it was disabled for failing); it goes on from the event
/// it stopped at.
#[utoipa::path(post, path = "/v1/webhooks/{id}/enable", tag = "webhooks",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = Problem)))]
async fn enable(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    managed(&state, &ctx, id).await?;
    let client = state.pool.get().await?;
    let endpoint = webhooks::enable(&**client, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(WebhookEndpoint::of(endpoint, false)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"overlap_seconds": 86400}))]
pub struct RotateRequest {
    /// How long the old secret keeps signing deliveries beside the new one, in seconds: 0 to
    /// 604800 (7 days); default 86400 (a day).
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_seconds: Option<i64>,
}

/// Gives the endpoint a new signing secret (in this answer only). During the overlap every
/// delivery carries a signature with each secret, so the receiver can switch at its pace.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = Uuid, Path)), request_body = Option<RotateRequest>,
    responses(
        (status = 200, body = WebhookEndpoint, description = "Rotated; `secret` is the new one, shown this once"),
        (status = 404, body = Problem),
    ))]
async fn rotate_secret(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<Option<RotateRequest>>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    managed(&state, &ctx, id).await?;
    let overlap = body.value.and_then(|r| r.overlap_seconds).unwrap_or(86_400);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "overlap_seconds is 0 to 604800",
        ));
    }
    let client = state.pool.get().await?;
    let endpoint = webhooks::rotate(&**client, id, overlap)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(WebhookEndpoint::of(endpoint, true)))
}
