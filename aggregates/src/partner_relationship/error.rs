//! The relationship rules a command can break, each with a stable machine code.

use crate::DomainError;

/// A relationship rule the command broke. Each message states the rule; each code is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationshipError {
    #[error(
        "a partner id is a domain-like name: 1 to 63 characters of a-z, 0-9 and `-`, not \
         starting or ending with `-`"
    )]
    InvalidPartnerId,
    #[error("org_id must not be empty")]
    InvalidOrg,
    #[error("a relationship grants at least one scope (`view_customers`, `access_cases`)")]
    NoScopes,
    #[error("this stream belongs to another org or partner")]
    WrongStream,
    #[error("there is no active relationship between this org and this partner")]
    NotActive,
}

impl DomainError for RelationshipError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidPartnerId => "invalid_partner_id",
            Self::InvalidOrg => "required_field",
            Self::NoScopes => "invalid_scopes",
            Self::WrongStream => "wrong_stream",
            Self::NotActive => "relationship_not_active",
        }
    }
}
