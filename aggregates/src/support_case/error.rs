//! The case rules a command can break, each with a stable machine code.

use super::status::CaseStatus;
use crate::DomainError;

/// A case rule the command broke. Each message states the rule; each code is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("the case does not exist")]
    NotFound,
    #[error("the case is already open")]
    AlreadyOpened,
    #[error("the summary must be 1 to 255 characters")]
    InvalidSummary,
    #[error("the impact level must be 1, 2, 3 or 4")]
    InvalidImpact,
    #[error("the priority must be 1, 2, 3 or 4")]
    InvalidPriority,
    #[error("{0} must not be empty")]
    Required(&'static str),
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("`{0}` is not an e-mail address")]
    InvalidEmail(String),
    #[error("a case has at most {max} participants")]
    TooManyParticipants { max: usize },
    #[error(
        "a support entitlement number or a subscription id of this org is needed to open a case"
    )]
    EntitlementRequired,
    #[error("the support entitlement is not one of this org's")]
    EntitlementNotOfOrg,
    #[error("support needs an active or non-renewing subscription; this entitlement is {status}")]
    EntitlementInactive { status: String },
    #[error("a comment must have a body")]
    EmptyComment,
    #[error("a closed case cannot change; open a new case that follows it up instead")]
    Closed,
    #[error("a case can only follow up an earlier case of the same org")]
    FollowUpOfAnotherOrg,
    #[error("only support staff may write internal comments")]
    InternalCommentNotAllowed,
    /// A role rule (who may do what) that the HTTP edge normally enforces first, as 403.
    #[error("{0}")]
    NotAllowed(&'static str),
    #[error("cannot {action} a case that is {status}")]
    InvalidStatus {
        action: &'static str,
        status: CaseStatus,
    },
    #[error("the case was resolved more than {window} ago; open a new case instead")]
    ReopenWindowPassed { window: String },
    #[error("an escalation of this case is already pending")]
    EscalationPending,
    #[error("the case is already escalated")]
    AlreadyEscalated,
    #[error("no escalation of this case is pending")]
    NoEscalationPending,
    /// The org's business calendar could not be read (an outage, not the caller's fault).
    #[error("the business calendar cannot be read now ({0}); try again")]
    CalendarUnavailable(String),
    #[error("an attachment may be at most {max} bytes; this one has {size}")]
    AttachmentTooLarge { size: u64, max: u64 },
    #[error("{0}")]
    InvalidAttachment(&'static str),
    /// A timed command that came too early, too late or twice: the case is not (or no longer)
    /// due. The scheduler drops these quietly.
    #[error("{0}")]
    NotDue(String),
}

impl CaseError {
    /// Whether a timed command was refused because the case is not due (any more): the
    /// scheduler's cue to drop its timer without alarm.
    pub fn is_not_due(&self) -> bool {
        matches!(self, Self::NotDue(_) | Self::Closed)
    }
}

impl DomainError for CaseError {
    fn is_outage(&self) -> bool {
        matches!(self, Self::CalendarUnavailable(_))
    }

    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "case_not_found",
            Self::AlreadyOpened => "case_already_open",
            Self::InvalidSummary => "invalid_summary",
            Self::InvalidImpact => "invalid_impact",
            Self::InvalidPriority => "invalid_priority",
            Self::Required(_) => "required_field",
            Self::TooLong { .. } => "field_too_long",
            Self::InvalidEmail(_) => "invalid_email",
            Self::TooManyParticipants { .. } => "too_many_participants",
            Self::EntitlementRequired => "entitlement_required",
            Self::EntitlementNotOfOrg => "invalid_entitlement",
            Self::EntitlementInactive { .. } => "entitlement_inactive",
            Self::EmptyComment => "empty_comment",
            Self::Closed => "case_closed",
            Self::FollowUpOfAnotherOrg => "invalid_follow_up",
            Self::InternalCommentNotAllowed => "internal_comment_not_allowed",
            Self::NotAllowed(_) => "not_allowed",
            Self::InvalidStatus { .. } => "invalid_status",
            Self::ReopenWindowPassed { .. } => "reopen_window_passed",
            Self::EscalationPending => "escalation_pending",
            Self::AlreadyEscalated => "already_escalated",
            Self::NoEscalationPending => "no_escalation_pending",
            Self::AttachmentTooLarge { .. } => "attachment_too_large",
            Self::CalendarUnavailable(_) => "calendar_unavailable",
            Self::InvalidAttachment(_) => "invalid_attachment",
            Self::NotDue(_) => "not_due",
        }
    }
}
