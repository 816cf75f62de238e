//! What can be asked of an org's calendar.

use serde::{Deserialize, Serialize};

use crate::calendar::CalendarSpec;
use crate::Actor;

/// Everything that can be asked of an org's calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrgCalendarCommand {
    /// Put the calendar in force (the whole calendar: hours, zone and holidays).
    Set(SetCalendar),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetCalendar {
    pub org_id: String,
    pub calendar: CalendarSpec,
    pub by: Actor,
}
