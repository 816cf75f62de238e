//! The events of a support case: the stored public contract, its type names and versions.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Actor;

/// Facts of a support case's life. A public contract: past tense, never renamed; a change
/// of shape bumps `event_version` and comes with an upcaster (see [`super::upcasters`]).
///
/// Every event carries the time it happened (from the clock in Services) and, except
/// `CaseOpened` whose `opened_by` says it, who caused it: timed rules (auto-resolve, close,
/// reopen window) are decided from these timestamps, never from the database's clock.
// Events live briefly in memory (a command's few, a projection batch); boxing the opening would
// only add noise to every match on it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SupportCaseEvent {
    CaseOpened(CaseOpened),
    CaseAssigned(CaseAssigned),
    InvestigationStarted(InvestigationStarted),
    CommentAdded(CommentAdded),
    CustomerInfoRequested(CustomerInfoRequested),
    CustomerResponded(CustomerResponded),
    CaseReopened(CaseReopened),
    FirstResponseGiven(FirstResponseGiven),
    PriorityChanged(PriorityChanged),
    ParticipantAdded(ParticipantAdded),
    ParticipantRemoved(ParticipantRemoved),
    AttachmentAdded(AttachmentAdded),
    EscalationRequested(EscalationRequested),
    CaseEscalated(CaseEscalated),
    DataAccessGranted(DataAccessChanged),
    DataAccessRevoked(DataAccessChanged),
    CaseResolved(CaseResolved),
    CaseAutoResolved(CaseAutoResolved),
    CaseClosed(CaseClosed),
    SlaWarningRaised(SlaReached),
    SlaBreached(SlaReached),
}

/// Version 2.0: version 1.0 (the foundation's thin slice) had neither the entitlement, nor
/// priority, participants, product version, phone, data-access consent or follow-up link; the
/// upcaster fills them with what a 1.0 opening meant (priority = impact, nobody else, no
/// consent, no link).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseOpened {
    pub case_id: Uuid,
    pub key: String,
    pub org_id: String,
    /// Who the case is for (sees it, gets its e-mails). The caller, or the person named as
    /// reporter when someone opens it on their behalf.
    pub requester: String,
    pub product: String,
    pub product_version: Option<String>,
    /// The support entitlement the case is opened under (`E-XXXX-XXXX-XXXX`).
    pub entitlement_number: Option<String>,
    pub subscription_id: Option<Uuid>,
    pub summary: String,
    pub description: String,
    /// Business impact chosen by the customer, 1 (critical) to 4 (low).
    pub impact: u8,
    /// The level support works the case at; starts at the impact level.
    pub priority: u8,
    /// E-mail addresses that follow the case (lower case, at most the policy's maximum).
    pub participants: Vec<String>,
    pub phone: Option<String>,
    /// Consent for support to access the customer's data while investigating.
    pub data_access_consent: bool,
    /// The earlier case of the same org that this one follows up.
    pub follow_up_of: Option<Uuid>,
    /// What the case is about (technical by default; since 2.1).
    #[serde(default)]
    pub request_type: RequestType,
    pub opened_by: Actor,
    pub opened_at: DateTime<Utc>,
    /// When the first response is due under the SLA policy in force at opening.
    pub first_response_due: DateTime<Utc>,
    /// Version 2.2: when support is warned that the first response is due soon (the policy's
    /// share of the target, in business time); null for cases opened before 2.2.
    #[serde(default)]
    pub first_response_warning_at: Option<DateTime<Utc>>,
    /// Version 2.3: the resolution clock, started at the opening (null for older cases, which
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionClock>,
}

/// The resolution clock as an event leaves it: it runs from the opening to the resolution,
/// paused while the case waits for the customer (and while it is resolved, resuming when it is
/// reopened). Every event that starts, pauses, resumes or re-targets it carries the whole
/// clock, computed on the calendar in force at that moment, so that a rebuild (and every
/// reader) finds the same due times without a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionClock {
    /// The target of the priority in force, in seconds of business time.
    pub target_seconds: i64,
    /// Business time counted before `running_since` (or up to the pause), in seconds.
    pub elapsed_seconds: i64,
    /// Counting since this instant; null while paused or stopped.
    pub running_since: Option<DateTime<Utc>>,
    /// While running: when the whole target is used up, and when support is warned.
    pub due: Option<DateTime<Utc>>,
    pub warning_at: Option<DateTime<Utc>>,
}

impl ResolutionClock {
    pub fn running(&self) -> bool {
        self.running_since.is_some()
    }
}

/// What a case is about, asked first when it is opened (seed 004).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestType {
    #[default]
    Technical,
    Billing,
    Account,
}

impl RequestType {
    pub const ALL: [RequestType; 3] = [Self::Technical, Self::Billing, Self::Account];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Technical => "technical",
            Self::Billing => "billing",
            Self::Account => "account",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseAssigned {
    /// The support engineer now working the case.
    pub assignee: String,
    pub previous: Option<String>,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// Support is working on it (from `open` or `waiting_for_customer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvestigationStarted {
    pub by: Actor,
    pub at: DateTime<Utc>,
    /// Version 1.1: the resolution clock resumed (when the case waited for the customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionClock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Public,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentAdded {
    pub comment_id: Uuid,
    pub author: Actor,
    pub body: String,
    pub visibility: Visibility,
    pub at: DateTime<Utc>,
    /// Version 1.1: set when this customer-side comment starts the next-reply clock (it
    /// follows a public staff reply and no such clock runs): its due and warning times in
    /// business time on the org's calendar. 1.0 comments started none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reply: Option<ClockStart>,
}

/// A clock started by an event: when it is due and when support is warned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStart {
    pub due: DateTime<Utc>,
    pub warning_at: DateTime<Utc>,
}

/// Support asked the customer something (the question is the public comment `comment_id`,
/// appended just before). The case waits for the customer from `at`; after the policy's
/// auto-resolve duration without a customer reply it may be resolved automatically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerInfoRequested {
    pub comment_id: Uuid,
    pub by: Actor,
    pub at: DateTime<Utc>,
    /// Version 1.1: the resolution clock paused (when it ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionClock>,
}

/// The customer side replied while the case waited for it: back to `investigating`, and the
/// automatic resolution is off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerResponded {
    pub comment_id: Uuid,
    pub by: Actor,
    pub waiting_since: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// Version 1.1: the resolution clock resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionClock>,
}

/// The customer side commented on a resolved case within the reopen window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReopened {
    pub comment_id: Uuid,
    pub by: Actor,
    pub resolved_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// Version 1.1: the resolution clock resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionClock>,
}

/// An SLA clock of the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    /// From the opening to support's first public reply.
    FirstResponse,
    /// From a customer-side public comment that follows a public staff reply to the next
    /// public staff reply.
    NextReply,
    /// From the opening to the resolution, paused while waiting for the customer (since
    /// `SlaWarningRaised` and `SlaBreached` 1.1).
    Resolution,
}

impl SlaClock {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstResponse => "first_response",
            Self::NextReply => "next_reply",
            Self::Resolution => "resolution",
        }
    }
}

/// A running clock reached its warning time (`SlaWarningRaised`) or its due time
/// (`SlaBreached`); appended once per target, by the system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaReached {
    pub clock: SlaClock,
    pub due: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Support's first public answer: stops the first-response SLA clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstResponseGiven {
    pub comment_id: Uuid,
    pub by: Actor,
    /// The due time in force when the response was given.
    pub due: DateTime<Utc>,
    /// Whether the response came after `due`.
    pub breached: bool,
    pub at: DateTime<Utc>,
}

/// Support changed the level the case is worked at; the first-response due time is
/// recomputed from the opening time with the new level's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorityChanged {
    pub from: u8,
    pub to: u8,
    pub first_response_due: DateTime<Utc>,
    /// Version 1.1: when support is warned that the due time nears, while the first-response
    /// clock runs (null once support answered or the case was resolved; 1.0 had none).
    #[serde(default)]
    pub first_response_warning_at: Option<DateTime<Utc>>,
    pub by: Actor,
    pub at: DateTime<Utc>,
    /// Version 1.2: the resolution clock with the new priority's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionClock>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantAdded {
    pub email: String,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantRemoved {
    pub email: String,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// A file attached to the case. The bytes are stored outside the log, keyed by
/// `attachment_id`; `sha256` lets anyone check that the stored bytes are the ones attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentAdded {
    pub attachment_id: Uuid,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    /// Lower-case hex.
    pub sha256: String,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// The customer side asked for the case to be escalated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationRequested {
    pub reason: String,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// Support accepted the pending escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseEscalated {
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// `DataAccessGranted` / `DataAccessRevoked`: the customer side's consent to support
/// accessing its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataAccessChanged {
    pub by: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResolved {
    pub by: Actor,
    pub at: DateTime<Utc>,
    /// Version 1.1: the resolution clock stopped (when it ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ResolutionClock>,
}

/// The system resolved a case that waited for the customer for the policy's duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseAutoResolved {
    pub waiting_since: DateTime<Utc>,
    /// How long it waited, in whole seconds (`at - waiting_since`).
    pub waited_seconds: i64,
    pub at: DateTime<Utc>,
}

/// The system closed a case resolved for the close policy's duration. Final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseClosed {
    pub resolved_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// `aggregate_type` of every SupportCase event in the store.
pub const AGGREGATE_TYPE: &str = "SupportCase";

/// Every event type of this aggregate with the version this binary writes: what it can
/// read (older versions are upcast). An event of another type, or of a newer version, comes
/// from a newer release; projections block on it instead of guessing.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("CaseOpened", CASE_OPENED_VERSION),
    ("CaseAssigned", "1.0"),
    ("InvestigationStarted", RESOLUTION_CLOCK_VERSION),
    ("CommentAdded", COMMENT_ADDED_VERSION),
    ("CustomerInfoRequested", RESOLUTION_CLOCK_VERSION),
    ("CustomerResponded", RESOLUTION_CLOCK_VERSION),
    ("CaseReopened", RESOLUTION_CLOCK_VERSION),
    ("FirstResponseGiven", "1.0"),
    ("PriorityChanged", PRIORITY_CHANGED_VERSION),
    ("ParticipantAdded", "1.0"),
    ("ParticipantRemoved", "1.0"),
    ("AttachmentAdded", "1.0"),
    ("EscalationRequested", "1.0"),
    ("CaseEscalated", "1.0"),
    ("DataAccessGranted", "1.0"),
    ("DataAccessRevoked", "1.0"),
    ("CaseResolved", RESOLUTION_CLOCK_VERSION),
    ("CaseAutoResolved", "1.0"),
    ("CaseClosed", "1.0"),
    ("SlaWarningRaised", RESOLUTION_CLOCK_VERSION),
    ("SlaBreached", RESOLUTION_CLOCK_VERSION),
];

impl SupportCaseEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CaseOpened(_) => "CaseOpened",
            Self::CaseAssigned(_) => "CaseAssigned",
            Self::InvestigationStarted(_) => "InvestigationStarted",
            Self::CommentAdded(_) => "CommentAdded",
            Self::CustomerInfoRequested(_) => "CustomerInfoRequested",
            Self::CustomerResponded(_) => "CustomerResponded",
            Self::CaseReopened(_) => "CaseReopened",
            Self::FirstResponseGiven(_) => "FirstResponseGiven",
            Self::PriorityChanged(_) => "PriorityChanged",
            Self::ParticipantAdded(_) => "ParticipantAdded",
            Self::ParticipantRemoved(_) => "ParticipantRemoved",
            Self::AttachmentAdded(_) => "AttachmentAdded",
            Self::EscalationRequested(_) => "EscalationRequested",
            Self::CaseEscalated(_) => "CaseEscalated",
            Self::DataAccessGranted(_) => "DataAccessGranted",
            Self::DataAccessRevoked(_) => "DataAccessRevoked",
            Self::CaseResolved(_) => "CaseResolved",
            Self::CaseAutoResolved(_) => "CaseAutoResolved",
            Self::CaseClosed(_) => "CaseClosed",
            Self::SlaWarningRaised(_) => "SlaWarningRaised",
            Self::SlaBreached(_) => "SlaBreached",
        }
    }

    /// When it happened, by the domain's clock.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::CaseOpened(e) => e.opened_at,
            Self::CaseAssigned(e) => e.at,
            Self::InvestigationStarted(e) => e.at,
            Self::CommentAdded(e) => e.at,
            Self::CustomerInfoRequested(e) => e.at,
            Self::CustomerResponded(e) => e.at,
            Self::CaseReopened(e) => e.at,
            Self::FirstResponseGiven(e) => e.at,
            Self::PriorityChanged(e) => e.at,
            Self::ParticipantAdded(e) => e.at,
            Self::ParticipantRemoved(e) => e.at,
            Self::AttachmentAdded(e) => e.at,
            Self::EscalationRequested(e) => e.at,
            Self::CaseEscalated(e) => e.at,
            Self::DataAccessGranted(e) | Self::DataAccessRevoked(e) => e.at,
            Self::CaseResolved(e) => e.at,
            Self::CaseAutoResolved(e) => e.at,
            Self::CaseClosed(e) => e.at,
            Self::SlaWarningRaised(e) | Self::SlaBreached(e) => e.at,
        }
    }

    /// Whether only support staff may ever see this event (an internal comment, and support's
    /// own SLA warnings and breaches). Everything else on a case is visible to whoever sees
    /// the case.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::CommentAdded(CommentAdded {
                visibility: Visibility::Internal,
                ..
            }) | Self::SlaWarningRaised(_)
                | Self::SlaBreached(_)
        )
    }
}

/// Current `event_version` of `CaseOpened`.
pub const CASE_OPENED_VERSION: &str = "2.3";

/// Current `event_version` of `CommentAdded`.
pub const COMMENT_ADDED_VERSION: &str = "1.1";

/// Current `event_version` of `PriorityChanged`.
pub const PRIORITY_CHANGED_VERSION: &str = "1.2";

/// `event_version` of the 1.0 events that the resolution clock changed: `InvestigationStarted`,
/// `CustomerInfoRequested`, `CustomerResponded`, `CaseReopened` and `CaseResolved` carry the
/// clock; `SlaWarningRaised` and `SlaBreached` may name it.
pub const RESOLUTION_CLOCK_VERSION: &str = "1.1";

impl DomainEvent for SupportCaseEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        match self {
            Self::CaseOpened(_) => CASE_OPENED_VERSION.to_string(),
            Self::PriorityChanged(_) => PRIORITY_CHANGED_VERSION.to_string(),
            Self::CommentAdded(_) => COMMENT_ADDED_VERSION.to_string(),
            Self::InvestigationStarted(_)
            | Self::CustomerInfoRequested(_)
            | Self::CustomerResponded(_)
            | Self::CaseReopened(_)
            | Self::CaseResolved(_)
            | Self::SlaWarningRaised(_)
            | Self::SlaBreached(_) => RESOLUTION_CLOCK_VERSION.to_string(),
            _ => "1.0".to_string(),
        }
    }
}
