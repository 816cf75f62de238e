//! Event names for integrators: the stored event type in dotted lower case, prefixed by its
//! aggregate (`case.opened`, `case.comment_added`, `subscription.renewed`,
//! `partner_relationship.granted`, `calendar.set`), and the filters over them (`case.*`).

use subdesk_aggregates::{org_calendar, partner_relationship, subscription, support_case};

/// An aggregate type, the prefix of its event names, and its event types with their versions.
type Aggregate = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The aggregate types with the prefix of their event names and their event types.
fn aggregates() -> [Aggregate; 4] {
    [
        (
            support_case::AGGREGATE_TYPE,
            "case",
            support_case::EVENT_TYPES,
        ),
        (
            subscription::AGGREGATE_TYPE,
            "subscription",
            subscription::EVENT_TYPES,
        ),
        (
            partner_relationship::AGGREGATE_TYPE,
            "partner_relationship",
            partner_relationship::EVENT_TYPES,
        ),
        (
            org_calendar::AGGREGATE_TYPE,
            "calendar",
            org_calendar::EVENT_TYPES,
        ),
    ]
}

/// `CommentAdded` -> `comment_added`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The integrator's name of a stored event: `SupportCase` / `CaseOpened` -> `case.opened`,
/// `Subscription` / `SeatsChanged` -> `subscription.seats_changed`. A stream type this binary
/// does not know keeps its own name in snake case.
pub fn event_name(aggregate_type: &str, event_type: &str) -> String {
    let prefix = aggregates()
        .into_iter()
        .find(|(ty, _, _)| *ty == aggregate_type)
        .map_or_else(
            || snake(aggregate_type),
            |(_, prefix, _)| prefix.to_string(),
        );
    let event = snake(event_type);
    let short = event
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(&event);
    format!("{prefix}.{short}")
}

/// Every event name this binary knows, sorted.
pub fn known_names() -> Vec<String> {
    let mut names: Vec<String> = aggregates()
        .into_iter()
        .flat_map(|(ty, _, types)| types.iter().map(move |(event, _)| event_name(ty, event)))
        .collect();
    names.sort();
    names
}

/// Most patterns a filter may hold.
pub const MAX_PATTERNS: usize = 64;

/// A filter over event names: exact names, or prefixes ending in `*` (`case.*`, `*`). Empty:
/// every event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TypeFilter(Vec<String>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("at most {MAX_PATTERNS} event types")]
    TooMany,
    #[error("`{0}` names no event type (known: case.*, subscription.*, partner_relationship.*, calendar.*; see the documentation for each name)")]
    Unknown(String),
}

impl TypeFilter {
    /// Checks every pattern against the names this binary knows: a pattern that matches none
    /// is a mistake the caller should hear about, not a filter that silently passes nothing.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, FilterError> {
        if patterns.len() > MAX_PATTERNS {
            return Err(FilterError::TooMany);
        }
        let known = known_names();
        let mut checked = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let pattern = pattern.as_ref().trim();
            if !known.iter().any(|name| matches(pattern, name)) {
                return Err(FilterError::Unknown(pattern.chars().take(80).collect()));
            }
            checked.push(pattern.to_string());
        }
        checked.sort();
        checked.dedup();
        Ok(Self(checked))
    }

    /// A comma-separated list (`case.*,subscription.renewed`); empty: every event.
    pub fn parse_list(list: &str) -> Result<Self, FilterError> {
        let patterns: Vec<&str> = list.split(',').filter(|p| !p.trim().is_empty()).collect();
        Self::parse(&patterns)
    }

    pub fn accepts(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|pattern| matches(pattern, name))
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_stored_type_in_dotted_lower_case_under_the_aggregate() {
        assert_eq!(event_name("SupportCase", "CaseOpened"), "case.opened");
        assert_eq!(
            event_name("SupportCase", "CommentAdded"),
            "case.comment_added"
        );
        assert_eq!(
            event_name("SupportCase", "SlaBreached"),
            "case.sla_breached"
        );
        assert_eq!(
            event_name("Subscription", "SubscriptionRenewed"),
            "subscription.renewed"
        );
        assert_eq!(
            event_name("Subscription", "AppSubscriptionCancelled"),
            "subscription.app_subscription_cancelled"
        );
        assert_eq!(event_name("OrgCalendar", "CalendarSet"), "calendar.set");
        assert_eq!(event_name("Unheard", "ThingDone"), "unheard.thing_done");
    }

    #[test]
    fn every_known_event_has_a_distinct_name() {
        let names = known_names();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique);
        assert!(names.contains(&"case.opened".to_string()));
        assert!(names.contains(&"subscription.renewed".to_string()));
    }

    #[test]
    fn a_filter_takes_names_and_prefixes_and_refuses_what_names_nothing() {
        let filter = TypeFilter::parse_list("case.*, subscription.renewed").expect("valid");
        assert!(filter.accepts("case.comment_added"));
        assert!(filter.accepts("subscription.renewed"));
        assert!(!filter.accepts("subscription.created"));
        assert!(TypeFilter::parse_list("")
            .expect("empty")
            .accepts("calendar.set"));
        assert!(TypeFilter::parse_list("*")
            .expect("all")
            .accepts("calendar.set"));
        assert_eq!(
            TypeFilter::parse_list("case.nothing"),
            Err(FilterError::Unknown("case.nothing".into()))
        );
        assert_eq!(
            TypeFilter::parse(&vec!["case.*"; MAX_PATTERNS + 1]),
            Err(FilterError::TooMany)
        );
    }
}
