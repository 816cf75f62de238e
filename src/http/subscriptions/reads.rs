//! Subscription reads: the portal tabs' list and the detail (and time travel) from the
//! `subscriptions` read model through [`crate::read::subscriptions`], the history from the log.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use subdesk_aggregates::partner_relationship::PartnerScope;
use subdesk_aggregates::subscription::{Subscription, AGGREGATE_TYPE};
use subdesk_aggregates::ActorRole;
use subdesk_projections::subscriptions::SubscriptionProjection;
use subdesk_projections::Projection;
use tokio_postgres::GenericClient;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::types::*;
use crate::access::{sees_subscription, SubscriptionAudience};
use crate::auth::Principal;
use crate::history::HistoryEntry;
use crate::http::consistency::wait_for;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{list_cursor, Ctx, Params};
use crate::http::timetravel::{detail, Detail, ReadParams};
use crate::read::cursor::page;
use crate::read::subscriptions::{self as read, SubscriptionFilter};
use crate::state::AppState;

/// Name of the projection behind subscription reads.
const PROJECTION: &str = "subscriptions";
const DEFAULT_PAGE: i64 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(subscription_history))
}

fn days_until(term_end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let seconds = (term_end - now).num_seconds();
    if seconds <= 0 {
        0
    } else {
        (seconds + 86_399) / 86_400
    }
}

/// Days until the bill date while the subscription is in force or upcoming; none once ended.
fn renewal_in(status: &str, term_end: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
    matches!(status, "upcoming" | "active" | "non_renewing").then(|| days_until(term_end, now))
}

/// The caller's subscriptions on one portal tab: customers their org's, partners those they
/// sold and manage in the orgs whose relationship allows `view_customers`, staff everyone's.
/// Keyset pagination: pass `next_cursor` back as `cursor`.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions",
    params(ListParams),
    responses(
        (status = 200, body = SubscriptionList),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 422, body = Problem, description = "`invalid_cursor`: not a cursor this server issued"),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time"),
    ))]
async fn list_subscriptions(
    State(state): State<AppState>,
    ctx: Ctx,
    Params(params): Params<ListParams>,
) -> Result<Json<SubscriptionList>, ApiError> {
    if let Some(position) = params.min_position {
        wait_for(&state, PROJECTION, position).await?;
    }
    let principal = &ctx.principal;
    let empty = || {
        Json(SubscriptionList {
            items: Vec::new(),
            next_cursor: None,
        })
    };
    let statuses = params.tab.unwrap_or_default().statuses();
    let filter = match principal.role {
        ActorRole::Customer => {
            if params.org_id.is_some() && params.org_id != principal.org_id {
                return Ok(empty());
            }
            SubscriptionFilter {
                statuses,
                org: principal.org_id.clone(),
                ..Default::default()
            }
        }
        ActorRole::Partner => {
            let reached = principal.reach.orgs(PartnerScope::ViewCustomers);
            if reached.is_empty() {
                return Ok(empty());
            }
            SubscriptionFilter {
                statuses,
                org: params.org_id,
                partner: principal.partner_id.clone(),
                orgs: Some(reached),
            }
        }
        _ => SubscriptionFilter {
            statuses,
            org: params.org_id,
            ..Default::default()
        },
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    let cursor = list_cursor(params.cursor.as_deref(), "subscription")?;
    let client = state.read_pool.get().await?;
    let rows = read::list(&**client, &filter, limit, cursor).await?;
    let (rows, next_cursor) = page(rows, limit, |last| (last.term_end, last.id));
    let now = state.clock.now();
    let items = rows
        .into_iter()
        .map(|row| SubscriptionSummary {
            days_until_renewal: renewal_in(&row.status, row.term_end, now),
            id: row.id,
            entitlement_number: row.entitlement_number,
            org_id: row.org_id,
            product: row.product,
            plan: row.plan,
            seats: row.seats,
            status: row.status,
            term_end: row.term_end,
            auto_renew: row.auto_renew,
            channel: row.channel,
            partner_id: row.partner_id,
            app_count: row.app_count,
            collection: row.collection,
        })
        .collect();
    Ok(Json(SubscriptionList { items, next_cursor }))
}

/// A subscription with its apps and contacts.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = Uuid, Path), ReadParams),
    responses(
        (status = 200, body = SubscriptionDetail),
        (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`conflicting_cut`: `as_of` and `at_version` together"),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time"),
    ))]
async fn get_subscription(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Params(params): Params<ReadParams>,
) -> Result<Json<SubscriptionDetail>, ApiError> {
    Ok(Json(detail(&state, &ctx.principal, id, &params).await?))
}

impl Detail for SubscriptionDetail {
    const PROJECTION: &'static dyn Projection = &SubscriptionProjection;
    const AGGREGATE_TYPE: &'static str = AGGREGATE_TYPE;
    const WHAT: &'static str = "subscription";

    async fn visible_now(
        state: &AppState,
        principal: &Principal,
        id: Uuid,
    ) -> Result<(), ApiError> {
        visible_stream(state, principal, id).await.map(drop)
    }

    async fn render(
        _state: &AppState,
        client: &impl GenericClient,
        id: Uuid,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let row = read::find(client, id)
            .await?
            .ok_or_else(|| ApiError::not_found("subscription"))?;
        let audience = SubscriptionAudience {
            org_id: &row.org_id,
            partner_id: row.partner_id.as_deref(),
            collection: !row.included_products.is_empty(),
        };
        if !sees_subscription(principal, audience) {
            return Err(ApiError::not_found("subscription"));
        }
        Ok(SubscriptionDetail {
            days_until_renewal: renewal_in(&row.status, row.term_end, now),
            bill_date: row.term_end,
            apps: read::apps(client, id).await?,
            subscription: row,
        })
    }
}

/// The events of subscription `id`, read from the log (on the primary, so never behind), if
/// `principal` sees it as it is now; 404 otherwise.
async fn visible_stream(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<Vec<subdesk_projections::StoredEvent>, ApiError> {
    let client = state.pool.get().await?;
    let events = crate::history::stream(&**client, AGGREGATE_TYPE, &id.to_string()).await?;
    // Who sees it is decided by the subscription as it is now (its org, and the partner that
    // manages it: one it passed from no longer sees it, not even its past).
    let mut subscription = Subscription::default();
    for event in &events {
        cqrs_es::Aggregate::apply(&mut subscription, event.decode::<Subscription>()?);
    }
    if !subscription.exists() {
        return Err(ApiError::not_found("subscription"));
    }
    if !sees_subscription(principal, SubscriptionAudience::from(&subscription)) {
        return Err(ApiError::not_found("subscription"));
    }
    Ok(events)
}

/// Every event of the subscription with its metadata, read from the log (never stale), for
/// whoever may see the subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}/history", tag = "subscriptions",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<HistoryEntry>),
        (status = 404, body = Problem),
    ))]
async fn subscription_history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let events = visible_stream(&state, &ctx.principal, id).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|event| HistoryEntry::for_viewer(event, &ctx.principal))
            .collect(),
    ))
}
