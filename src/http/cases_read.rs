//! Case reads: the list, the detail and the history.
//!
//! List and detail come from the `cases` read model (pass `min_position` to read a write of
//! your own); the history comes straight from the log. Whatever a viewer reads, internal
//! comments are left out unless they are staff: from the timeline, from the history (and the
//! metadata that only staff need), from the comment counts, and from the activity time the
//! customer side's list is sorted by.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subdesk_aggregates::support_case::{CaseStatus, SupportCase, SupportCaseEvent, AGGREGATE_TYPE};
use subdesk_projections::cases::{CaseProjection, CaseRow};
use subdesk_projections::StoredEvent;
use tokio_postgres::types::{Json as SqlJson, ToSql};
use tokio_postgres::GenericClient;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::consistency::wait_for;
use super::error::{ApiError, Problem};
use super::extract::Ctx;
use super::timetravel;
use crate::access::{case_scope, sees_case, sees_internal, CaseAudience, CaseScope};
use crate::app::AppState;
use crate::auth::Principal;
use crate::history::HistoryEntry;

/// Name of the projection behind case reads.
const PROJECTION: &str = "cases";
const DEFAULT_PAGE: i64 = 25;
const MAX_PAGE: i64 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_cases))
        .routes(routes!(get_case))
        .routes(routes!(case_history))
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| ApiError::BadRequest {
        code: "invalid_query",
        detail: e.body_text(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Answer only once the read model has applied this position (from a command response).
    pub min_position: Option<i64>,
    /// Time travel: the case as it was at this instant (RFC 3339), rebuilt from its events.
    pub as_of: Option<DateTime<Utc>>,
    /// Time travel: the case as it was after its first N events.
    #[param(minimum = 1)]
    pub at_version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "sequence": 4, "kind": "comment", "actor": "sam@support.example", "actor_role": "agent",
    "visibility": "public", "body": "Which browser do you use?",
    "detail": {"comment_id": "0193a8f2-7000-7000-8000-000000000001"},
    "at": "2026-03-02T10:00:00Z"
}))]
pub struct TimelineEntry {
    /// The event's sequence in the case's stream.
    pub sequence: i64,
    /// The event type in snake case: `opened`, `comment`, `info_requested`,
    /// `customer_responded`, `reopened`, `first_response`, `assigned`,
    /// `investigation_started`, `priority_changed`, `participant_added`,
    /// `participant_removed`, `attachment_added`, `escalation_requested`, `escalated`,
    /// `data_access_granted`, `data_access_revoked`, `resolved`, `auto_resolved`, `closed`.
    pub kind: String,
    pub actor: String,
    pub actor_role: String,
    /// `public`, or `internal` (internal comments; shown to staff only).
    #[schema(schema_with = super::schema::visibility)]
    pub visibility: String,
    pub body: Option<String>,
    /// The facts of the entry's kind (new status, priority, participant, attachment, SLA).
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// The first-response SLA.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"first_response_due": "2026-03-02T13:00:00Z",
                         "first_responded_at": null, "breached": false}))]
pub struct Sla {
    /// Opening time + the target of the current priority.
    pub first_response_due: DateTime<Utc>,
    /// Support's first public answer.
    pub first_responded_at: Option<DateTime<Utc>>,
    /// Answered late, or not answered and the due time has passed (the clock stops when the
    /// case is resolved).
    pub breached: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"state": "requested", "reason": "Production is down",
                         "requested_at": "2026-03-02T11:00:00Z", "escalated_at": null}))]
pub struct EscalationView {
    /// `none`, `requested` (by the customer side) or `escalated` (accepted by support).
    #[schema(schema_with = super::schema::escalation)]
    pub state: String,
    pub reason: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-8b00-7c3e-9d0a-3f1f6a1b2c3d", "name": "console.log", "size": 4711,
    "content_type": "text/plain",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "added_by": "ann@acme.example", "at": "2026-03-02T10:30:00Z",
    "url": "/v1/cases/0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d/attachments/0193a8f2-8b00-7c3e-9d0a-3f1f6a1b2c3d"
}))]
pub struct AttachmentView {
    pub id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    /// Lower-case hex sha256 of the bytes.
    pub sha256: String,
    pub added_by: String,
    pub at: DateTime<Utc>,
    /// Where to download it.
    pub url: String,
}

/// A case as its read model shows it to the caller.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "key": "CASE-1001", "org_id": "acme",
    "requester": "ann@acme.example", "opened_by": "ann@acme.example", "product": "jira-software",
    "product_version": "9.12.4", "entitlement_number": "E-1A2B-3C4D-5E6F",
    "subscription_id": null, "summary": "Board does not load", "description": "Spins forever",
    "impact": 2, "priority": 2, "status": "waiting_for_customer", "phone": null,
    "data_access": true, "follow_up_of": null, "assignee": "sam@support.example",
    "participants": ["carl@acme.example"],
    "escalation": {"state": "none", "reason": null, "requested_at": null, "escalated_at": null},
    "sla": {"first_response_due": "2026-03-02T13:00:00Z",
            "first_responded_at": "2026-03-02T10:00:00Z", "breached": false},
    "waiting_since": "2026-03-02T10:00:00Z", "auto_resolve_due": "2026-03-07T10:00:00Z",
    "resolved_at": null, "resolved_by": null, "auto_resolved": false, "auto_close_due": null,
    "closed_at": null, "reopened": 0, "opened_at": "2026-03-02T09:00:00Z",
    "last_activity_at": "2026-03-02T10:00:00Z", "public_comments": 1, "version": 5,
    "attachments": [], "timeline": []
}))]
pub struct CaseDetail {
    pub id: Uuid,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub opened_by: String,
    pub product: String,
    pub product_version: Option<String>,
    pub entitlement_number: Option<String>,
    pub subscription_id: Option<Uuid>,
    pub summary: String,
    pub description: String,
    /// Business impact at opening, 1 (critical) to 4 (low).
    pub impact: i16,
    /// The level support works the case at, 1 to 4.
    pub priority: i16,
    #[schema(schema_with = super::schema::case_status)]
    pub status: String,
    pub phone: Option<String>,
    /// Whether support may access the org's data for this case.
    pub data_access: bool,
    /// The earlier case this one follows up.
    pub follow_up_of: Option<Uuid>,
    pub assignee: Option<String>,
    pub participants: Vec<String>,
    pub escalation: EscalationView,
    pub sla: Sla,
    /// While `waiting_for_customer`: since when.
    pub waiting_since: Option<DateTime<Utc>>,
    /// While `waiting_for_customer`: when the system resolves the case unless the customer
    /// side replies (`waiting_since` + the auto-resolve policy in force).
    pub auto_resolve_due: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// A user, or `system` for an automatic resolution.
    pub resolved_by: Option<String>,
    pub auto_resolved: bool,
    /// While `resolved`: when the system closes the case (`resolved_at` + the close policy).
    pub auto_close_due: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// How many times a customer reply reopened the case.
    pub reopened: i32,
    pub opened_at: DateTime<Utc>,
    /// The last change the caller can see.
    pub last_activity_at: DateTime<Utc>,
    pub public_comments: i32,
    /// Staff only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_comments: Option<i32>,
    /// The case's stream version the read model reflects.
    pub version: i64,
    pub attachments: Vec<AttachmentView>,
    /// Oldest first. Internal comments only for staff.
    pub timeline: Vec<TimelineEntry>,
}

/// One case of a list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "key": "CASE-1001", "org_id": "acme",
    "requester": "ann@acme.example", "product": "jira-software",
    "summary": "Board does not load", "status": "waiting_for_customer", "priority": 2,
    "impact": 2, "assignee": "sam@support.example", "participants": ["carl@acme.example"],
    "escalation": "none",
    "sla": {"first_response_due": "2026-03-02T13:00:00Z",
            "first_responded_at": "2026-03-02T10:00:00Z", "breached": false},
    "auto_resolve_due": "2026-03-07T10:00:00Z", "opened_at": "2026-03-02T09:00:00Z",
    "last_activity_at": "2026-03-02T10:00:00Z"
}))]
pub struct CaseSummary {
    pub id: Uuid,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub product: String,
    pub summary: String,
    #[schema(schema_with = super::schema::case_status)]
    pub status: String,
    pub priority: i16,
    pub impact: i16,
    pub assignee: Option<String>,
    pub participants: Vec<String>,
    #[schema(schema_with = super::schema::escalation)]
    pub escalation: String,
    pub sla: Sla,
    pub auto_resolve_due: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
}

/// A page of cases, most recently active first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_cursor": "MTc3MjQ0MjAwMDAwMDAwMC4wMTkz"}))]
pub struct CaseList {
    pub items: Vec<CaseSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// One status or several, comma-separated: `open,investigating`.
    #[param(
        example = "waiting_for_customer",
        pattern = r"^(open|investigating|waiting_for_customer|resolved|closed)(,(open|investigating|waiting_for_customer|resolved|closed))*$"
    )]
    pub status: Option<String>,
    /// 1 to 4.
    #[param(minimum = 1, maximum = 4)]
    pub priority: Option<i16>,
    /// Cases of this customer org.
    #[param(max_length = 128)]
    pub org: Option<String>,
    /// Cases assigned to this e-mail; `none` for unassigned cases.
    #[param(max_length = 254)]
    pub assignee: Option<String>,
    /// Cases requested by this e-mail.
    #[param(max_length = 254)]
    pub requester: Option<String>,
    /// Cases this e-mail follows as a participant.
    #[param(max_length = 254)]
    pub participant: Option<String>,
    /// `requested`: cases the caller requested; `participating`: cases they follow
    /// ("requests I'm cc'd on").
    #[param(example = "requested", pattern = "^(requested|participating)$")]
    pub mine: Option<String>,
    /// Text the summary contains (case-insensitive).
    #[param(max_length = 255)]
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 25).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (422 `invalid_cursor` for one this server did not
    /// issue).
    #[param(max_length = 256, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Answer only once the read model has applied this position.
    pub min_position: Option<i64>,
}

/// The activity column the caller's lists are ordered by: the customer side never sees
/// internal activity, not even as a change of order.
fn activity_column(principal: &Principal) -> &'static str {
    if sees_internal(principal) {
        "last_activity_at"
    } else {
        "last_public_activity_at"
    }
}

fn activity_of(row: &CaseRow, principal: &Principal) -> DateTime<Utc> {
    if sees_internal(principal) {
        row.last_activity_at
    } else {
        row.last_public_activity_at
    }
}

fn sla(row: &CaseRow, now: DateTime<Utc>) -> Sla {
    let breached = row.first_response_breached.unwrap_or_else(|| {
        // Not answered (yet): the clock runs until now, or stopped at the resolution.
        let until = row.resolved_at.or(row.closed_at).unwrap_or(now);
        until > row.first_response_due
    });
    Sla {
        first_response_due: row.first_response_due,
        first_responded_at: row.first_responded_at,
        breached,
    }
}

fn auto_resolve_due(state: &AppState, row: &CaseRow) -> Option<DateTime<Utc>> {
    (row.status == CaseStatus::WaitingForCustomer.as_str())
        .then_some(row.waiting_since)
        .flatten()
        .map(|since| since + state.settings.case_policy.auto_resolve_after)
}

fn summary_of(state: &AppState, row: CaseRow, principal: &Principal) -> CaseSummary {
    let now = state.clock.now();
    CaseSummary {
        sla: sla(&row, now),
        auto_resolve_due: auto_resolve_due(state, &row),
        last_activity_at: activity_of(&row, principal),
        id: row.id,
        key: row.key,
        org_id: row.org_id,
        requester: row.requester,
        product: row.product,
        summary: row.summary,
        status: row.status,
        priority: row.priority,
        impact: row.impact,
        assignee: row.assignee,
        participants: row.participants,
        escalation: row.escalation,
        opened_at: row.opened_at,
    }
}

/// A SQL statement being built, with its parameters.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder.
    fn bind<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn and(&mut self, condition: String) {
        self.text.push_str(" AND ");
        self.text.push_str(&condition);
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}.{}",
        at.timestamp_micros(),
        id
    ))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || {
        ApiError::unprocessable(
            "invalid_cursor",
            "the cursor is not one a case list returned",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(super::storable)
        .ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((at, id))
}

fn bad_filter(detail: String) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail,
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// List the cases the caller sees, most recently active first.
///
/// Customers see the cases they requested or follow (all of their org's as org admins),
/// partners with `access_cases` those of their assigned orgs, staff and auditors all. Keyset
/// pagination: pass `next_cursor` back as `cursor`.
#[utoipa::path(get, path = "/v1/cases", tag = "cases",
    params(ListParams),
    responses(
        (status = 200, body = CaseList),
        (status = 400, body = Problem, description = "`invalid_query`, `invalid_cursor`"),
        (status = 401, body = Problem),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time"),
    ))]
async fn list_cases(
    State(state): State<AppState>,
    ctx: Ctx,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<CaseList>, ApiError> {
    let params = query(params)?;
    if let Some(position) = params.min_position {
        wait_for(&state, PROJECTION, position).await?;
    }
    let principal = &ctx.principal;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_filter(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let column = activity_column(principal);
    let mut sql = Sql {
        text: "SELECT to_jsonb(c) FROM case_view c WHERE true".into(),
        ..Sql::default()
    };
    match case_scope(principal) {
        CaseScope::All => {}
        CaseScope::Nothing => {
            return Ok(Json(CaseList {
                items: Vec::new(),
                next_cursor: None,
            }))
        }
        CaseScope::Orgs(orgs) => {
            let orgs = sql.bind(orgs);
            sql.and(format!("org_id = ANY({orgs})"));
        }
        CaseScope::Customer {
            org,
            user,
            org_admin,
        } => {
            let org = sql.bind(org);
            let user = sql.bind(user.trim().to_lowercase());
            let admin = sql.bind(org_admin);
            sql.and(format!(
                "org_id = {org} AND ({admin} OR lower(requester) = {user} \
                 OR {user} = ANY(participants))"
            ));
        }
    }
    if let Some(statuses) = &params.status {
        let mut wanted = Vec::new();
        for status in statuses.split(',') {
            let status = CaseStatus::parse(status)
                .ok_or_else(|| bad_filter(format!("`{status}` is not a case status")))?;
            wanted.push(status.as_str().to_string());
        }
        let wanted = sql.bind(wanted);
        sql.and(format!("status = ANY({wanted})"));
    }
    if let Some(priority) = params.priority {
        if !(1..=4).contains(&priority) {
            return Err(bad_filter("priority must be 1, 2, 3 or 4".into()));
        }
        let priority = sql.bind(priority);
        sql.and(format!("priority = {priority}"));
    }
    if let Some(org) = params.org {
        let org = sql.bind(org);
        sql.and(format!("org_id = {org}"));
    }
    match params.assignee.as_deref().map(str::trim) {
        None => {}
        Some("none") => sql.and("assignee IS NULL".into()),
        Some(assignee) => {
            let assignee = sql.bind(assignee.to_lowercase());
            sql.and(format!("assignee = {assignee}"));
        }
    }
    if let Some(requester) = params.requester {
        let requester = sql.bind(requester.trim().to_lowercase());
        sql.and(format!("lower(requester) = {requester}"));
    }
    if let Some(participant) = params.participant {
        let participant = sql.bind(participant.trim().to_lowercase());
        sql.and(format!("{participant} = ANY(participants)"));
    }
    match params.mine.as_deref() {
        None => {}
        Some("requested") => {
            let me = sql.bind(principal.user.trim().to_lowercase());
            sql.and(format!("lower(requester) = {me}"));
        }
        Some("participating") => {
            let me = sql.bind(principal.user.trim().to_lowercase());
            sql.and(format!("{me} = ANY(participants)"));
        }
        Some(other) => {
            return Err(bad_filter(format!(
                "mine is `requested` or `participating`, not `{other}`"
            )))
        }
    }
    if let Some(text) = params.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = sql.bind(format!("%{}%", like_escape(text)));
        sql.and(format!("summary ILIKE {pattern}"));
    }
    if let Some(cursor) = &params.cursor {
        let (at, id) = decode_cursor(cursor)?;
        let at = sql.bind(at);
        let id = sql.bind(id);
        sql.and(format!("({column}, id) < ({at}, {id})"));
    }
    let fetch = sql.bind(limit + 1);
    sql.text
        .push_str(&format!(" ORDER BY {column} DESC, id DESC LIMIT {fetch}"));

    let client = state.read_pool.get().await?;
    let rows = client.query(&sql.text, &sql.params()).await?;
    let mut cases = Vec::with_capacity(rows.len());
    for row in &rows {
        let SqlJson(case) = row.try_get::<_, SqlJson<CaseRow>>(0)?;
        cases.push(case);
    }
    let more = cases.len() as i64 > limit;
    cases.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| cases.last())
        .flatten()
        .map(|last| encode_cursor(activity_of(last, principal), last.id));
    let items = cases
        .into_iter()
        .map(|row| summary_of(&state, row, principal))
        .collect();
    Ok(Json(CaseList { items, next_cursor }))
}

/// A case with its participants, attachments, SLA and timeline.
#[utoipa::path(get, path = "/v1/cases/{id}", tag = "cases",
    params(("id" = Uuid, Path), ReadParams),
    responses(
        (status = 200, body = CaseDetail),
        (status = 404, body = Problem),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time"),
    ))]
async fn get_case(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    params: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Json<CaseDetail>, ApiError> {
    let params = query(params)?;
    let Some(cut) = timetravel::cut(params.as_of, params.at_version)? else {
        if let Some(position) = params.min_position {
            wait_for(&state, PROJECTION, position).await?;
        }
        let client = state.read_pool.get().await?;
        let now = state.clock.now();
        return Ok(Json(
            render_case(&state, &**client, id, &ctx.principal, now).await?,
        ));
    };
    // Who may see the case is decided by the case as it is now, then by the case as it was.
    visible_case_from_log(&state, &ctx.principal, id).await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let then = timetravel::replay(
        &tx,
        &CaseProjection,
        AGGREGATE_TYPE,
        &id.to_string(),
        cut,
        "case",
    )
    .await?;
    let detail = render_case(&state, &*tx, id, &ctx.principal, then).await;
    tx.rollback().await?;
    Ok(Json(detail?))
}

/// The detail of case `id` from the read-model tables `client` sees (the live ones, or a
/// time-travel replay's), as `principal` may see it, with SLA figures as of `now`.
async fn render_case(
    state: &AppState,
    client: &impl GenericClient,
    id: Uuid,
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<CaseDetail, ApiError> {
    let row = client
        .query_opt("SELECT to_jsonb(c) FROM case_view c WHERE id = $1", &[&id])
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let SqlJson(case) = row.try_get::<_, SqlJson<CaseRow>>(0)?;
    let audience = CaseAudience {
        org_id: &case.org_id,
        requester: &case.requester,
        participants: &case.participants,
    };
    if !sees_case(principal, audience) {
        return Err(ApiError::not_found("case"));
    }
    let staff = sees_internal(principal);
    let timeline = client
        .query(
            "SELECT sequence, kind, actor_id, actor_role, visibility, body, detail, at \
               FROM case_timeline WHERE case_id = $1 AND ($2 OR visibility = 'public') \
              ORDER BY sequence",
            &[&id, &staff],
        )
        .await?
        .iter()
        .map(|r| TimelineEntry {
            sequence: r.get(0),
            kind: r.get(1),
            actor: r.get(2),
            actor_role: r.get(3),
            visibility: r.get(4),
            body: r.get(5),
            detail: r.get(6),
            at: r.get(7),
        })
        .collect();
    let attachments = client
        .query(
            "SELECT id, name, size, content_type, sha256, added_by, at \
               FROM case_attachments WHERE case_id = $1 ORDER BY at, id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            let attachment: Uuid = r.get(0);
            AttachmentView {
                url: format!("/v1/cases/{id}/attachments/{attachment}"),
                id: attachment,
                name: r.get(1),
                size: r.get(2),
                content_type: r.get(3),
                sha256: r.get(4),
                added_by: r.get(5),
                at: r.get(6),
            }
        })
        .collect();
    let policy = &state.settings.case_policy;
    Ok(CaseDetail {
        sla: sla(&case, now),
        auto_resolve_due: auto_resolve_due(state, &case),
        auto_close_due: (case.status == CaseStatus::Resolved.as_str())
            .then_some(case.resolved_at)
            .flatten()
            .map(|at| at + policy.close_after),
        last_activity_at: activity_of(&case, principal),
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

/// A case rebuilt from its own events, with those events, if the caller sees it. Reads the
/// log, not the read model, so it is never behind.
pub(crate) async fn visible_case_from_log(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<(SupportCase, Vec<(StoredEvent, SupportCaseEvent)>), ApiError> {
    let events = {
        let client = state.pool.get().await?;
        crate::history::stream(&**client, AGGREGATE_TYPE, &id.to_string()).await?
    };
    let mut case = SupportCase::default();
    let mut decoded = Vec::with_capacity(events.len());
    for stored in events {
        let event = stored.decode::<SupportCase>()?;
        case.apply(event.clone());
        decoded.push((stored, event));
    }
    let audience = CaseAudience {
        org_id: &case.org_id,
        requester: &case.requester,
        participants: &case.participants,
    };
    if !case.exists() || !sees_case(principal, audience) {
        return Err(ApiError::not_found("case"));
    }
    Ok((case, decoded))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_772_442_000_123_456).expect("instant");
        let id = Uuid::from_u128(42);
        assert_eq!(
            decode_cursor(&encode_cursor(at, id)).expect("cursor"),
            (at, id)
        );
        for bad in ["", "not-base64!", "bm9wZQ"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(like_escape(r"100% _done\"), r"100\% \_done\\");
    }
}
