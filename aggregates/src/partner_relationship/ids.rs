//! Partner ids and the stream id of a relationship, which is made of the org's id and the
//! partner's.

/// Longest partner id: one DNS label.
pub const MAX_PARTNER_ID: usize = 63;

/// The stream id of the relationship between `org_id` and `partner_id`. Partner ids never
/// contain `/`, so the id splits back unambiguously at its last `/`.
pub fn relationship_id(org_id: &str, partner_id: &str) -> String {
    format!("{org_id}/{partner_id}")
}

/// Whether `id` is a partner id: a domain-like name of 1 to 63 characters from `[a-z0-9-]`,
/// neither starting nor ending with `-`.
pub fn is_valid_partner_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PARTNER_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}
