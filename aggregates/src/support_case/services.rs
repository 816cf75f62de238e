//! What a case needs from outside the domain, handed to every command.

use std::sync::Arc;

use super::error::CaseError;
use super::policy::CasePolicy;
use crate::calendar::{Calendar, Calendars, OneCalendar};
use crate::Clock;

/// What a case needs from outside the domain: the time, the configured policies and the
/// business calendar of each org (SLA clocks count its open time).
#[derive(Debug, Clone)]
pub struct CaseServices {
    pub clock: Arc<dyn Clock>,
    pub policy: CasePolicy,
    pub calendars: Arc<dyn Calendars>,
}

impl CaseServices {
    /// Services whose calendar is always open (business time is calendar time).
    pub fn new(clock: Arc<dyn Clock>, policy: CasePolicy) -> Self {
        let calendars = Arc::new(OneCalendar(Calendar::always_open()));
        Self {
            clock,
            policy,
            calendars,
        }
    }

    /// The same services, with each org's calendar read from `calendars`.
    pub fn with_calendars(self, calendars: Arc<dyn Calendars>) -> Self {
        Self { calendars, ..self }
    }

    /// The calendar in force for `org_id`.
    pub(super) async fn calendar(&self, org_id: &str) -> Result<Calendar, CaseError> {
        self.calendars
            .calendar_of(org_id)
            .await
            .map_err(|e| CaseError::CalendarUnavailable(e.0))
    }
}
