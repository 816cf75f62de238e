//! What can be asked of a support case, and the facts a command brings from outside
//! (the entitlement looked up, the case it follows up).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::{RequestType, SlaClock, Visibility};
use crate::Actor;

/// Everything a caller may ask of a support case. Every command names who issues it: the
/// domain's rules depend on the role (staff, customer side, system).
// One command lives for one request; boxing the opening would buy nothing but noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SupportCaseCommand {
    Open(OpenCase),
    Assign(AssignCase),
    StartInvestigation(StartInvestigation),
    Comment(AddComment),
    RequestInfo(RequestInfo),
    ChangePriority(ChangePriority),
    AddParticipant(AddParticipant),
    RemoveParticipant(RemoveParticipant),
    AddAttachment(AddAttachment),
    RequestEscalation(RequestEscalation),
    AcceptEscalation(AcceptEscalation),
    SetDataAccess(SetDataAccess),
    Resolve(ResolveCase),
    AutoResolve(AutoResolve),
    /// Issued by the scheduler at a clock's warning time.
    RaiseSlaWarning(SlaCheck),
    /// Issued by the scheduler at a clock's due time.
    RecordSlaBreach(SlaCheck),
    Close(CloseCase),
}

/// Open a case. The id (UUID v7) and the human key (`CASE-1042`, from a database sequence)
/// are allocated by the caller so the domain stays free of IO; so is the entitlement, which
/// the caller looks up and hands over as [`EntitlementFacts`] for the rules to judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenCase {
    pub case_id: Uuid,
    pub key: String,
    pub org_id: String,
    /// The caller (or the customer that staff open the case for).
    pub requester: String,
    /// The reporter when the caller opens the case for someone else: they become the
    /// requester, and a customer-side caller follows the case as a participant.
    pub on_behalf_of: Option<String>,
    /// Empty means "the entitlement's product".
    pub product: String,
    pub product_version: Option<String>,
    /// The entitlement the caller named, as the caller found it.
    pub entitlement: EntitlementLookup,
    pub summary: String,
    pub description: String,
    /// 1 (critical) to 4 (low).
    pub impact: u8,
    pub participants: Vec<String>,
    pub phone: Option<String>,
    pub data_access_consent: bool,
    /// The earlier case this one follows up (a closed case cannot be reopened), as the caller
    /// found it among the cases it sees.
    pub follow_up_of: Option<EarlierCase>,
    /// What the case is about.
    #[serde(default)]
    pub request_type: RequestType,
    pub opened_by: Actor,
}

/// A case that a new one follows up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierCase {
    pub case_id: Uuid,
    pub org_id: String,
}

/// Whether the entitlement lookup found anything (the caller looks it up; the rules judge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntitlementLookup {
    /// The caller named neither an entitlement number nor a subscription id.
    NotGiven,
    /// Nothing has the number or subscription id the caller named.
    NotFound,
    Found(EntitlementFacts),
}

/// What the entitlement contract (read side of the subscriptions) says about the
/// entitlement named at opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementFacts {
    pub number: String,
    pub subscription_id: Uuid,
    pub org_id: String,
    pub product: String,
    /// `upcoming`, `active`, `non_renewing`, `cancelled` or `expired`.
    pub status: String,
}

/// Give the case to a support engineer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignCase {
    pub assignee: String,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartInvestigation {
    pub by: Actor,
}

/// Add a comment, public (seen by the customer side) or internal (staff only). A customer-side
/// comment on a waiting case is the customer's answer; on a resolved case it reopens it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddComment {
    pub comment_id: Uuid,
    pub author: Actor,
    pub body: String,
    pub visibility: Visibility,
}

/// Ask the customer something (a public comment) and wait for the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInfo {
    pub comment_id: Uuid,
    pub body: String,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePriority {
    /// 1 (critical) to 4 (low).
    pub priority: u8,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddParticipant {
    pub email: String,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoveParticipant {
    pub email: String,
    pub by: Actor,
}

/// Record a file whose bytes the caller has already stored under `attachment_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddAttachment {
    pub attachment_id: Uuid,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEscalation {
    pub reason: String,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptEscalation {
    pub by: Actor,
}

/// Grant (`granted: true`) or revoke the consent to access the customer's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetDataAccess {
    pub granted: bool,
    pub by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolveCase {
    pub by: Actor,
    /// What solved it, posted as a public comment by the resolver just before the case is
    /// resolved (a staff reply, or the customer side's own note when it marks the case
    /// solved).
    #[serde(default)]
    pub resolution: Option<ResolutionNote>,
}

/// The resolution note of [`ResolveCase`]: the id of the comment it becomes (from the caller)
/// and its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolutionNote {
    pub comment_id: Uuid,
    pub body: String,
}

/// Issued by the scheduler at the auto-resolve due time. The aggregate decides whether the
/// case is due; a late, early or repeated timer is refused with `not_due`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoResolve {
    pub by: Actor,
}

/// A clock the scheduler found at its warning or due time. The aggregate decides: a clock
/// that stopped, a time not reached yet, or one already recorded is refused with `not_due`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaCheck {
    pub clock: SlaClock,
    pub by: Actor,
}

/// Issued by the scheduler once a case has been resolved for the close policy's duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseCase {
    pub by: Actor,
}
