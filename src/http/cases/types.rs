//! The request and response types of the case routes (what `/openapi.json` describes).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subdesk_aggregates::support_case::{CaseStatus, RequestType, SupportCase, Visibility};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::sla::Sla;
use crate::http::command::Receipt;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "org_id": "acme",
    "product": "jira-software",
    "entitlement_number": "E-1A2B-3C4D-5E6F",
    "summary": "Board does not load",
    "description": "Since this morning the board spins forever.",
    "impact": 2,
    "participants": ["carl@acme.example"],
    "on_behalf_of": null,
    "product_version": "9.12.4",
    "phone": "+81 3 1234 5678",
    "data_access_consent": true
}))]
pub struct OpenCaseRequest {
    /// The customer org. Customers may leave it out (their own org); for staff it defaults to
    /// the entitlement's org.
    #[schema(max_length = 128)]
    pub org_id: Option<String>,
    /// Defaults to the entitlement's product.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub product: String,
    /// The support entitlement number (`E-XXXX-XXXX-XXXX`) of a subscription or app of the
    /// org, active or non-renewing. Give this or `subscription_id`.
    #[schema(max_length = 64)]
    pub entitlement_number: Option<String>,
    /// The subscription whose entitlement the case is opened under.
    pub subscription_id: Option<Uuid>,
    /// 1 to 255 characters.
    #[schema(max_length = 255)]
    pub summary: String,
    #[serde(default)]
    #[schema(max_length = 32768)]
    pub description: String,
    /// Business impact, 1 (critical) to 4 (low); sets the first-response target
    /// (1 h, 4 h, 8 h, 16 h by default).
    pub impact: u8,
    /// E-mail addresses that follow the case (at most 48).
    #[serde(default)]
    #[schema(max_items = 48, inline, value_type = Vec<crate::schema::EmailAddress>)]
    pub participants: Vec<String>,
    /// Reporting for someone else: their e-mail. They become the requester; a customer-side
    /// caller keeps following the case as a participant.
    #[schema(max_length = 254)]
    pub on_behalf_of: Option<String>,
    #[schema(max_length = 255)]
    pub product_version: Option<String>,
    #[schema(max_length = 64)]
    pub phone: Option<String>,
    /// Consent for support to access the org's data while investigating (revocable).
    #[serde(default)]
    pub data_access_consent: bool,
    /// An earlier case of the org, visible to the caller, that this one follows up (a closed
    /// case cannot be reopened: a later reply goes into a new case linked to it).
    pub follow_up_of: Option<Uuid>,
    /// What the case is about: `technical` (default), `billing` or `account`.
    #[schema(schema_with = crate::schema::request_type)]
    pub request_type: Option<RequestType>,
}

/// The answer to a case command.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "key": "CASE-1001",
    "status": "open", "version": 1, "position": 42
}))]
pub struct CaseReceipt {
    pub id: String,
    pub key: String,
    #[schema(schema_with = crate::schema::case_status)]
    pub status: CaseStatus,
    /// The case's stream version after the command (unchanged when it changed nothing).
    pub version: i64,
    /// Pass as `min_position` to a read to see this write.
    pub position: i64,
    /// Set when the case follows up an earlier one (a reply to a closed case answers with
    /// the new case it opened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<Uuid>,
}

pub(crate) fn case_receipt(case: &SupportCase, receipt: Receipt) -> CaseReceipt {
    CaseReceipt {
        id: receipt.id,
        key: case.key.clone(),
        status: case.status,
        version: receipt.version,
        position: receipt.position,
        follow_up_of: case.follow_up_of,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Attached the browser console log.", "visibility": "public"}))]
pub struct CommentRequest {
    #[schema(max_length = 32768)]
    pub body: String,
    /// `internal` comments are for support staff only.
    #[serde(default)]
    #[schema(schema_with = crate::schema::visibility)]
    pub visibility: Visibility,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Which browser and version do you use?"}))]
pub struct RequestInfoRequest {
    /// The question, posted as a public comment.
    #[schema(max_length = 32768)]
    pub body: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"assignee": "sam@support.example"}))]
pub struct AssignRequest {
    /// The support engineer; defaults to the caller.
    #[schema(max_length = 254)]
    pub assignee: Option<String>,
}

/// Resolve: nothing, `{}`, or a resolution note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"resolution": "The proxy setting was wrong; fixed in the admin console."}))]
pub struct ResolveRequest {
    /// What solved it: shown in the timeline as a public comment by whoever resolves (a
    /// reply from support, which also counts as the first response; the customer side's own
    /// note when it marks the case solved).
    #[schema(min_length = 1, max_length = 32768)]
    pub resolution: Option<String>,
}

/// A command without parameters: `{}` or no body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct EmptyRequest {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"priority": 1}))]
pub struct PriorityRequest {
    /// 1 (critical) to 4 (low).
    pub priority: u8,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "dora@acme.example"}))]
pub struct ParticipantRequest {
    #[schema(max_length = 254)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Production is down for 200 users"}))]
pub struct EscalationRequest {
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"granted": false}))]
pub struct DataAccessRequest {
    /// `true` grants support access to the org's data for this case, `false` revokes it.
    pub granted: bool,
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
    /// `data_access_granted`, `data_access_revoked`, `resolved`, `auto_resolved`, `closed`;
    /// for staff also `sla_warning`, `sla_breached`.
    pub kind: String,
    pub actor: String,
    pub actor_role: String,
    /// `public`, or `internal` (internal comments; shown to staff only).
    #[schema(schema_with = crate::schema::visibility)]
    pub visibility: String,
    pub body: Option<String>,
    /// The facts of the entry's kind (new status, priority, participant, attachment, SLA).
    pub detail: Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"state": "requested", "reason": "Production is down",
                         "requested_at": "2026-03-02T11:00:00Z", "escalated_at": null}))]
pub struct EscalationView {
    /// `none`, `requested` (by the customer side) or `escalated` (accepted by support).
    #[schema(schema_with = crate::schema::escalation)]
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
    "data_access": true, "follow_up_of": null, "request_type": "technical", "assignee": "sam@support.example",
    "participants": ["carl@acme.example"],
    "escalation": {"state": "none", "reason": null, "requested_at": null, "escalated_at": null},
    "sla": {"first_response": {"target_minutes": 240, "due": null,
                               "elapsed_business_minutes": 60, "paused": false,
                               "met_at": "2026-03-02T10:00:00Z", "breached": false},
            "next_reply": null,
            "resolution": {"target_minutes": 4320, "due": null,
                           "elapsed_business_minutes": 60, "paused": true,
                           "met_at": null, "breached": false}},
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
    #[schema(schema_with = crate::schema::case_status)]
    pub status: String,
    pub phone: Option<String>,
    /// Whether support may access the org's data for this case.
    pub data_access: bool,
    /// The earlier case this one follows up.
    pub follow_up_of: Option<Uuid>,
    #[schema(schema_with = crate::schema::request_type)]
    pub request_type: String,
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
    "impact": 2, "request_type": "technical", "assignee": "sam@support.example", "participants": ["carl@acme.example"],
    "escalation": "none",
    "sla": {"first_response": {"target_minutes": 240, "due": null,
                               "elapsed_business_minutes": 60, "paused": false,
                               "met_at": "2026-03-02T10:00:00Z", "breached": false},
            "next_reply": null,
            "resolution": {"target_minutes": 4320, "due": null,
                           "elapsed_business_minutes": 60, "paused": true,
                           "met_at": null, "breached": false}},
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
    #[schema(schema_with = crate::schema::case_status)]
    pub status: String,
    pub priority: i16,
    pub impact: i16,
    #[schema(schema_with = crate::schema::request_type)]
    pub request_type: String,
    pub assignee: Option<String>,
    pub participants: Vec<String>,
    #[schema(schema_with = crate::schema::escalation)]
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
    /// Cases of this request type.
    #[param(schema_with = crate::schema::request_type)]
    pub request_type: Option<RequestType>,
    /// `true`: escalated cases (an accepted escalation); `false`: the others.
    pub escalated: Option<bool>,
    /// SLA clocks: `breached` (the first response came late or is overdue, the last next
    /// reply came late or is overdue, or the resolution clock used up its target), `at_risk`
    /// (staff only: a running clock is past its warning time, not yet due).
    #[param(example = "at_risk", pattern = "^(breached|at_risk)$")]
    pub sla: Option<String>,
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
