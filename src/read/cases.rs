//! Reads of the `cases` read model: the list (filtered, scoped, keyset-paged), one case, its
//! timeline and its attachments.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::cursor::Cursor;
use super::sql::{like_escape, Sql};
use super::{json_one, json_rows};
use crate::access::CaseScope;

pub use subdesk_projections::cases::CaseRow;

/// Whose assignment a list asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Nobody,
    Email(String),
}

/// The caller's own relation to the cases a list asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mine {
    Requested,
    Participating,
}

/// What a case list asks for, within the caller's scope. Every filter only narrows it.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Any of these statuses (empty: any).
    pub statuses: Vec<String>,
    pub priority: Option<i16>,
    pub org: Option<String>,
    pub assignee: Option<Assignee>,
    pub requester: Option<String>,
    pub participant: Option<String>,
    /// With the caller's user.
    pub mine: Option<(Mine, String)>,
    /// Text the summary contains.
    pub text: Option<String>,
    /// `technical`, `billing` or `account`.
    pub request_type: Option<String>,
    /// Escalated (accepted escalations) or not.
    pub escalated: Option<bool>,
    /// Where the SLA clocks stand, as of the instant given.
    pub sla: Option<(SlaState, DateTime<Utc>)>,
}

/// Where a case's SLA clocks stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaState {
    /// The first response came late, or has not come by its due time (until the resolution,
    /// or now); or a next reply is overdue now.
    Breached,
    /// A clock runs past its warning time and is not yet due.
    AtRisk,
}

/// Which activity time orders a list: the staff's (every event) or the customer side's
/// (never an internal comment, not even as a change of order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    All,
    Public,
}

impl Activity {
    fn column(self) -> &'static str {
        match self {
            Self::All => "last_activity_at",
            Self::Public => "last_public_activity_at",
        }
    }

    /// The activity time of `row` as this order sees it.
    pub fn of(self, row: &CaseRow) -> DateTime<Utc> {
        match self {
            Self::All => row.last_activity_at,
            Self::Public => row.last_public_activity_at,
        }
    }
}

/// Up to `limit` + 1 cases of `scope` matching `filter`, most recently active first, after
/// `cursor` (the extra one tells the caller there is a next page).
pub async fn list(
    client: &impl GenericClient,
    scope: &CaseScope,
    filter: &CaseFilter,
    activity: Activity,
    limit: i64,
    cursor: Option<Cursor>,
) -> Result<Vec<CaseRow>, tokio_postgres::Error> {
    let column = activity.column();
    let mut sql = Sql::new("SELECT to_jsonb(c) FROM case_view c WHERE true");
    match scope {
        CaseScope::All => {}
        CaseScope::Nothing => return Ok(Vec::new()),
        CaseScope::Orgs(orgs) => {
            let orgs = sql.bind(orgs.clone());
            sql.and(format!("org_id = ANY({orgs})"));
        }
        CaseScope::Customer {
            org,
            user,
            org_admin,
        } => {
            let org = sql.bind(org.clone());
            let user = sql.bind(user.trim().to_lowercase());
            let admin = sql.bind(*org_admin);
            sql.and(format!(
                "org_id = {org} AND ({admin} OR lower(requester) = {user} \
                 OR {user} = ANY(participants))"
            ));
        }
    }
    if !filter.statuses.is_empty() {
        let wanted = sql.bind(filter.statuses.clone());
        sql.and(format!("status = ANY({wanted})"));
    }
    if let Some(priority) = filter.priority {
        let priority = sql.bind(priority);
        sql.and(format!("priority = {priority}"));
    }
    if let Some(request_type) = &filter.request_type {
        let request_type = sql.bind(request_type.clone());
        sql.and(format!("request_type = {request_type}"));
    }
    if let Some((state, now)) = filter.sla {
        let now = sql.bind(now);
        sql.and(match state {
            SlaState::Breached => format!(
                "(first_response_breached IS TRUE OR (first_responded_at IS NULL \
                  AND coalesce(resolved_at, closed_at, {now}) > first_response_due) \
                  OR coalesce(next_reply_met_at, {now}) > next_reply_due \
                  OR next_reply_breached_at IS NOT NULL \
                  OR resolution_breached_at IS NOT NULL \
                  OR resolution_elapsed_seconds > resolution_target_seconds \
                  OR (resolution_running_since IS NOT NULL AND resolution_due < {now}))"
            ),
            SlaState::AtRisk => format!(
                "((first_responded_at IS NULL AND status NOT IN ('resolved', 'closed') \
                  AND first_response_warning_at <= {now} AND first_response_due >= {now}) \
                  OR (next_reply_met_at IS NULL AND next_reply_warning_at <= {now} \
                      AND next_reply_due >= {now}) \
                  OR (resolution_running_since IS NOT NULL AND resolution_warning_at <= {now} \
                      AND resolution_due >= {now}))"
            ),
        });
    }
    match filter.escalated {
        Some(true) => sql.and("escalation = 'escalated'"),
        Some(false) => sql.and("escalation <> 'escalated'"),
        None => {}
    }
    if let Some(org) = &filter.org {
        let org = sql.bind(org.clone());
        sql.and(format!("org_id = {org}"));
    }
    match &filter.assignee {
        None => {}
        Some(Assignee::Nobody) => sql.and("assignee IS NULL"),
        Some(Assignee::Email(assignee)) => {
            let assignee = sql.bind(assignee.to_lowercase());
            sql.and(format!("assignee = {assignee}"));
        }
    }
    if let Some(requester) = &filter.requester {
        let requester = sql.bind(requester.trim().to_lowercase());
        sql.and(format!("lower(requester) = {requester}"));
    }
    if let Some(participant) = &filter.participant {
        let participant = sql.bind(participant.trim().to_lowercase());
        sql.and(format!("{participant} = ANY(participants)"));
    }
    match &filter.mine {
        None => {}
        Some((Mine::Requested, me)) => {
            let me = sql.bind(me.trim().to_lowercase());
            sql.and(format!("lower(requester) = {me}"));
        }
        Some((Mine::Participating, me)) => {
            let me = sql.bind(me.trim().to_lowercase());
            sql.and(format!("{me} = ANY(participants)"));
        }
    }
    if let Some(text) = filter
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let pattern = sql.bind(format!("%{}%", like_escape(text)));
        sql.and(format!("summary ILIKE {pattern}"));
    }
    if let Some(cursor) = cursor {
        let at = sql.bind(cursor.at);
        let id = sql.bind(cursor.id);
        sql.and(format!("({column}, id) < ({at}, {id})"));
    }
    let fetch = sql.bind(limit + 1);
    sql.push(format!(" ORDER BY {column} DESC, id DESC LIMIT {fetch}"));
    let rows = client.query(&sql.text, &sql.params()).await?;
    json_rows(&rows)
}

/// One case of the read model.
pub async fn find(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<CaseRow>, tokio_postgres::Error> {
    json_one(
        client,
        "SELECT to_jsonb(c) FROM case_view c WHERE id = $1",
        &[&id],
    )
    .await
}

/// One entry of a case's timeline.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TimelineRow {
    pub sequence: i64,
    pub kind: String,
    pub actor_id: String,
    pub actor_role: String,
    pub visibility: String,
    pub body: Option<String>,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// The timeline of case `id`, oldest first; internal entries only when `internal`.
pub async fn timeline(
    client: &impl GenericClient,
    id: Uuid,
    internal: bool,
) -> Result<Vec<TimelineRow>, tokio_postgres::Error> {
    client
        .query(
            "SELECT to_jsonb(t) FROM (SELECT sequence, kind, actor_id, actor_role, visibility, \
                    body, detail, at FROM case_timeline \
              WHERE case_id = $1 AND ($2 OR visibility = 'public') ORDER BY sequence) t",
            &[&id, &internal],
        )
        .await
        .and_then(|rows| json_rows(&rows))
}

/// One attachment of a case.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
    pub added_by: String,
    pub at: DateTime<Utc>,
}

/// The attachments of case `id`, in the order they were added.
pub async fn attachments(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Vec<AttachmentRow>, tokio_postgres::Error> {
    client
        .query(
            "SELECT to_jsonb(a) FROM (SELECT id, name, size, content_type, sha256, added_by, at \
               FROM case_attachments WHERE case_id = $1 ORDER BY at, id) a",
            &[&id],
        )
        .await
        .and_then(|rows| json_rows(&rows))
}
