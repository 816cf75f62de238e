//! The checks every command handler shares: text limits, e-mail addresses, and which roles
//! act on cases at all.

use super::error::CaseError;
use crate::{Actor, ActorRole};

/// Longest description or comment body, in characters.
pub const MAX_TEXT: usize = 32_768;
/// Longest attachment name, product version, phone number or escalation reason.
pub(super) const MAX_NAME: usize = 255;
pub(super) const MAX_PHONE: usize = 64;
pub(super) const MAX_REASON: usize = 2_000;

/// Trims and lower-cases an e-mail address, refusing what cannot be one. Addresses compare
/// without regard to case everywhere in subdesk.
pub fn normalize_email(text: &str) -> Result<String, CaseError> {
    let email = text.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && email.matches('@').count() == 1
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\".contains(c));
    if valid {
        Ok(email)
    } else {
        Err(CaseError::InvalidEmail(text.trim().to_string()))
    }
}

pub(super) fn optional_text(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, CaseError> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) if v.chars().count() > max => Err(CaseError::TooLong { field, max }),
        other => Ok(other),
    }
}

pub(super) fn check_len(value: &str, field: &'static str, max: usize) -> Result<(), CaseError> {
    if value.chars().count() > max {
        Err(CaseError::TooLong { field, max })
    } else {
        Ok(())
    }
}

pub(super) fn require_staff(actor: &Actor, rule: &'static str) -> Result<(), CaseError> {
    if actor.role.is_staff() {
        Ok(())
    } else {
        Err(CaseError::NotAllowed(rule))
    }
}

/// Staff and the customer side act on cases; auditors only read and the system only runs
/// the timed commands.
pub(super) fn require_participant_role(actor: &Actor) -> Result<(), CaseError> {
    if actor.role.is_staff() || actor.role.is_customer_side() {
        Ok(())
    } else {
        Err(CaseError::NotAllowed(
            "only support staff and the customer side act on cases",
        ))
    }
}

pub(super) fn require_system(actor: &Actor) -> Result<(), CaseError> {
    if actor.role == ActorRole::System {
        Ok(())
    } else {
        Err(CaseError::NotAllowed("only the system runs timed commands"))
    }
}
