//! The events of an org's calendar: the stored public contract, type names and versions.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::calendar::CalendarSpec;
use crate::Actor;

/// The aggregate type of org calendars in the event store.
pub const AGGREGATE_TYPE: &str = "OrgCalendar";

/// Every event type with its current version.
pub const EVENT_TYPES: &[(&str, &str)] = &[("CalendarSet", "1.0")];

/// Facts of an org calendar's life. A public contract: past tense, never renamed; a change of
/// shape bumps `event_version` and comes with an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrgCalendarEvent {
    CalendarSet(CalendarSet),
}

/// The calendar in force from now on, in canonical form (checked, sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarSet {
    pub org_id: String,
    pub calendar: CalendarSpec,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

impl DomainEvent for OrgCalendarEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CalendarSet(_) => "CalendarSet".into(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".into()
    }
}
