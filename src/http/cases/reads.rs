//! Case reads: the list, the detail and the history.
//!
//! List and detail come from the `cases` read model through [`crate::read::cases`] (pass
//! `min_position` to read a write of your own); the history comes straight from the log.
//! Whatever a viewer reads, internal comments are left out unless they are staff: from the
//! timeline, from the history (and the metadata only staff need), from the comment counts, and
//! from the activity time the customer side's list is sorted by.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use subdesk_aggregates::calendar::Calendar;
use subdesk_aggregates::support_case::{CaseStatus, AGGREGATE_TYPE};
use subdesk_projections::cases::CaseProjection;
use subdesk_projections::Projection;
use tokio_postgres::GenericClient;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::run::visible_case_from_log;
use super::sla::{sla, Sla};
use super::types::*;
use crate::access::{case_scope, sees_case, sees_internal, CaseAudience};
use crate::auth::Principal;
use crate::history::HistoryEntry;
use crate::http::consistency::wait_for;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{list_cursor, Ctx, Params};
use crate::http::timetravel::{detail, Detail, ReadParams};
use crate::read::cases::{self as read, Activity, Assignee, CaseFilter, CaseRow, Mine, SlaState};
use crate::read::cursor::page;
use crate::state::AppState;

/// Name of the projection behind case reads.
const PROJECTION: &str = "cases";
const DEFAULT_PAGE: i64 = 25;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_cases))
        .routes(routes!(get_case))
        .routes(routes!(case_history))
}

/// The order the caller's lists follow: the customer side never sees internal activity, not
/// even as a change of order.
fn activity(principal: &Principal) -> Activity {
    if sees_internal(principal) {
        Activity::All
    } else {
        Activity::Public
    }
}

/// The calendar in force for each org of `rows`, read once per org (a page holds a few).
async fn calendars_of<'a>(
    state: &AppState,
    rows: impl IntoIterator<Item = &'a CaseRow>,
) -> Result<HashMap<String, Calendar>, ApiError> {
    let mut calendars = HashMap::new();
    for row in rows {
        if !calendars.contains_key(&row.org_id) {
            let calendar = state
                .business_calendars
                .calendar_of(&row.org_id)
                .await
                .map_err(|e| ApiError::Unavailable {
                    code: "calendar_unavailable",
                    detail: format!("{e}; retry shortly"),
                })?;
            calendars.insert(row.org_id.clone(), calendar);
        }
    }
    Ok(calendars)
}

/// The SLA of `row` for `principal` on its org's calendar (from [`calendars_of`]).
fn sla_of(
    state: &AppState,
    row: &CaseRow,
    principal: &Principal,
    calendars: &HashMap<String, Calendar>,
    now: DateTime<Utc>,
) -> Sla {
    let fallback = &state.settings.default_calendar;
    let calendar = calendars.get(&row.org_id).unwrap_or(fallback);
    let policy = &state.settings.case_policy;
    sla(row, now, sees_internal(principal), policy, calendar)
}

fn auto_resolve_due(state: &AppState, row: &CaseRow) -> Option<DateTime<Utc>> {
    (row.status == CaseStatus::WaitingForCustomer.as_str())
        .then_some(row.waiting_since)
        .flatten()
        .map(|since| since + state.settings.case_policy.auto_resolve_after)
}

fn summary_of(
    state: &AppState,
    row: CaseRow,
    principal: &Principal,
    calendars: &HashMap<String, Calendar>,
) -> CaseSummary {
    let now = state.clock.now();
    CaseSummary {
        sla: sla_of(state, &row, principal, calendars, now),
        auto_resolve_due: auto_resolve_due(state, &row),
        last_activity_at: activity(principal).of(&row),
        id: row.id,
        key: row.key,
        org_id: row.org_id,
        requester: row.requester,
        product: row.product,
        summary: row.summary,
        status: row.status,
        priority: row.priority,
        impact: row.impact,
        request_type: row.request_type,
        assignee: row.assignee,
        participants: row.participants,
        escalation: row.escalation,
        opened_at: row.opened_at,
    }
}

fn bad_filter(detail: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail,
    }
}

/// The filter a list's parameters ask for (their shapes are held by the document's bounds).
fn filter_of(
    params: ListParams,
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<CaseFilter, ApiError> {
    let sla = match params.sla.as_deref() {
        None => None,
        Some("breached") => Some((SlaState::Breached, now)),
        Some("at_risk") if sees_internal(principal) => Some((SlaState::AtRisk, now)),
        Some("at_risk") => {
            return Err(ApiError::Forbidden(
                "`sla=at_risk` is for support staff: warnings are theirs".into(),
            ))
        }
        Some(other) => {
            return Err(bad_filter(format!(
                "sla is `breached` or `at_risk`, not `{other}`"
            )))
        }
    };
    let mut statuses = Vec::new();
    for status in params.status.iter().flat_map(|s| s.split(',')) {
        let status = CaseStatus::parse(status)
            .ok_or_else(|| bad_filter(format!("`{status}` is not a case status")))?;
        statuses.push(status.as_str().to_string());
    }
    if let Some(priority) = params.priority {
        if !(1..=4).contains(&priority) {
            return Err(bad_filter("priority must be 1, 2, 3 or 4".into()));
        }
    }
    let mine = match params.mine.as_deref() {
        None => None,
        Some("requested") => Some((Mine::Requested, principal.user.clone())),
        Some("participating") => Some((Mine::Participating, principal.user.clone())),
        Some(other) => {
            return Err(bad_filter(format!(
                "mine is `requested` or `participating`, not `{other}`"
            )))
        }
    };
    Ok(CaseFilter {
        statuses,
        priority: params.priority,
        org: params.org,
        assignee: params.assignee.map(|a| match a.trim() {
            "none" => Assignee::Nobody,
            email => Assignee::Email(email.to_string()),
        }),
        requester: params.requester,
        participant: params.participant,
        mine,
        text: params.q,
        request_type: params.request_type.map(|t| t.as_str().to_string()),
        escalated: params.escalated,
        sla,
    })
}

/// List the cases the caller sees, most recently active first.
///
/// Customers see the cases they requested or follow (all of their org's as org admins),
/// partners those of the orgs whose relationship allows `access_cases`, staff and auditors
/// all. Keyset pagination: pass `next_cursor` back as `cursor`.
#[utoipa::path(get, path = "/v1/cases", tag = "cases",
    params(ListParams),
    responses(
        (status = 200, body = CaseList),
        (status = 400, body = Problem, description = "`invalid_query`"),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "`sla=at_risk` from the customer side"),
        (status = 422, body = Problem, description = "`invalid_cursor`: not a cursor this server issued"),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time; `calendar_unavailable`: the org's business calendar (for the SLA clocks) cannot be read now"),
    ))]
async fn list_cases(
    State(state): State<AppState>,
    ctx: Ctx,
    Params(params): Params<ListParams>,
) -> Result<Json<CaseList>, ApiError> {
    if let Some(position) = params.min_position {
        wait_for(&state, PROJECTION, position).await?;
    }
    let principal = &ctx.principal;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    let cursor = list_cursor(params.cursor.as_deref(), "case")?;
    let order = activity(principal);
    let filter = filter_of(params, principal, state.clock.now())?;
    let client = state.read_pool.get().await?;
    let cases = read::list(
        &**client,
        &case_scope(principal),
        &filter,
        order,
        limit,
        cursor,
    )
    .await?;
    let (cases, next_cursor) = page(cases, limit, |last| (order.of(last), last.id));
    let calendars = calendars_of(&state, &cases).await?;
    let items = cases
        .into_iter()
        .map(|row| summary_of(&state, row, principal, &calendars))
        .collect();
    Ok(Json(CaseList { items, next_cursor }))
}

/// A case with its participants, attachments, SLA and timeline.
#[utoipa::path(get, path = "/v1/cases/{id}", tag = "cases",
    params(("id" = Uuid, Path), ReadParams),
    responses(
        (status = 200, body = CaseDetail),
        (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`conflicting_cut`: `as_of` and `at_version` together"),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time; `calendar_unavailable`: the org's business calendar (for the SLA clocks) cannot be read now"),
    ))]
async fn get_case(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Params(params): Params<ReadParams>,
) -> Result<Json<CaseDetail>, ApiError> {
    Ok(Json(detail(&state, &ctx.principal, id, &params).await?))
}

impl Detail for CaseDetail {
    const PROJECTION: &'static dyn Projection = &CaseProjection;
    const AGGREGATE_TYPE: &'static str = AGGREGATE_TYPE;
    const WHAT: &'static str = "case";

    async fn visible_now(
        state: &AppState,
        principal: &Principal,
        id: Uuid,
    ) -> Result<(), ApiError> {
        // Who may see the case is decided by the case as it is now, then by the case as it was.
        visible_case_from_log(state, principal, id).await.map(drop)
    }

    async fn render(
        state: &AppState,
        client: &impl GenericClient,
        id: Uuid,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let case = read::find(client, id)
            .await?
            .ok_or_else(|| ApiError::not_found("case"))?;
        let audience = CaseAudience {
            org_id: &case.org_id,
            requester: &case.requester,
            participants: &case.participants,
        };
        if !sees_case(principal, audience) {
            return Err(ApiError::not_found("case"));
        }
        let staff = sees_internal(principal);
        let timeline = read::timeline(client, id, staff)
            .await?
            .into_iter()
            .map(|r| TimelineEntry {
                sequence: r.sequence,
                kind: r.kind,
                actor: r.actor_id,
                actor_role: r.actor_role,
                visibility: r.visibility,
                body: r.body,
                detail: r.detail,
                at: r.at,
            })
            .collect();
        let attachments = read::attachments(client, id)
            .await?
            .into_iter()
            .map(|r| AttachmentView {
                url: format!("/v1/cases/{id}/attachments/{}", r.id),
                id: r.id,
                name: r.name,
                size: r.size,
                content_type: r.content_type,
                sha256: r.sha256,
                added_by: r.added_by,
                at: r.at,
            })
            .collect();
        let policy = &state.settings.case_policy;
        let calendars = calendars_of(state, [&case]).await?;
        Ok(CaseDetail {
            sla: sla_of(state, &case, principal, &calendars, now),
            auto_resolve_due: auto_resolve_due(state, &case),
            auto_close_due: (case.status == CaseStatus::Resolved.as_str())
                .then_some(case.resolved_at)
                .flatten()
                .map(|at| at + policy.close_after),
            last_activity_at: activity(principal).of(&case),
            internal_comments: staff.then_some(case.internal_comments),
            escalation: EscalationView {
                state: case.escalation,
                reason: case.escalation_reason,
                requested_at: case.escalation_requested_at,
                escalated_at: case.escalated_at,
            },
            id: case.id,
            key: case.key,
            org_id: case.org_id,
            requester: case.requester,
            opened_by: case.opened_by,
            product: case.product,
            product_version: case.product_version,
            entitlement_number: case.entitlement_number,
            subscription_id: case.subscription_id,
            summary: case.summary,
            description: case.description,
            impact: case.impact,
            priority: case.priority,
            status: case.status,
            phone: case.phone,
            data_access: case.data_access,
            follow_up_of: case.follow_up_of,
            request_type: case.request_type,
            assignee: case.assignee,
            participants: case.participants,
            waiting_since: case.waiting_since,
            resolved_at: case.resolved_at,
            resolved_by: case.resolved_by,
            auto_resolved: case.auto_resolved,
            closed_at: case.closed_at,
            reopened: case.reopened,
            opened_at: case.opened_at,
            public_comments: case.public_comments,
            version: case.version,
            attachments,
            timeline,
        })
    }
}

/// Every event of a case with its sequence, position, time, type, version, payload and
/// metadata.
///
/// For the customer side, internal comments are left out and metadata is limited to actor
/// and request ids; staff and auditors see everything.
#[utoipa::path(get, path = "/v1/cases/{id}/history", tag = "cases",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<HistoryEntry>),
        (status = 404, body = Problem),
    ))]
async fn case_history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let (_, events) = visible_case_from_log(&state, &ctx.principal, id).await?;
    let staff = sees_internal(&ctx.principal);
    let entries = events
        .into_iter()
        .filter(|(_, event)| staff || !event.is_internal())
        .map(|(stored, _)| HistoryEntry::for_viewer(stored, &ctx.principal))
        .collect();
    Ok(Json(entries))
}
