//! The limits and input checks that several command handlers share.

use super::error::SubscriptionError;

/// Most seats a subscription has.
pub const MAX_SEATS: u32 = 1_000_000;
/// Most storage bought at once, in GB.
pub const MAX_STORAGE_GB: u32 = 1_000_000;

pub(super) fn required(field: &'static str, value: &str) -> Result<String, SubscriptionError> {
    let value = value.trim();
    if value.is_empty() {
        Err(SubscriptionError::Required(field))
    } else {
        Ok(value.to_string())
    }
}

/// A contact address, lower-cased, or `InvalidEmail`.
pub(super) fn normalize_email(email: &str) -> Result<String, SubscriptionError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(SubscriptionError::InvalidEmail)
    }
}
