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
    #[error("{0} must not be empty")]
    Required(&'static str),
    #[error("a comment must have a body")]
    EmptyComment,
    #[error("a closed case cannot change; reply on a new case instead")]
    Closed,
    #[error("only support staff may write internal comments")]
    InternalCommentNotAllowed,
}

impl DomainError for CaseError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "case_not_found",
            Self::AlreadyOpened => "case_already_open",
            Self::InvalidSummary => "invalid_summary",
            Self::InvalidImpact => "invalid_impact",
            Self::Required(_) => "required_field",
            Self::EmptyComment => "empty_comment",
            Self::Closed => "case_closed",
            Self::InternalCommentNotAllowed => "internal_comment_not_allowed",
        }
    }
}
