//! The state of one org's calendar, `handle` and `apply`, and what it needs from outside.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::commands::OrgCalendarCommand;
use super::events::*;
use crate::calendar::{Calendar, CalendarError, CalendarSpec};
use crate::Clock;

/// What a calendar needs from outside the domain: the time.
#[derive(Debug, Clone)]
pub struct CalendarServices {
    pub clock: Arc<dyn Clock>,
}

impl CalendarServices {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

/// The write-side state of one org's calendar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgCalendar {
    pub org_id: String,
    /// The calendar in force, once one was set (canonical form).
    pub calendar: Option<CalendarSpec>,
    pub set_by: Option<String>,
    pub set_at: Option<DateTime<Utc>>,
}

impl OrgCalendar {
    /// The calendar in force, if one was set and it still parses (it did when it was set).
    pub fn in_force(&self) -> Option<Calendar> {
        self.calendar
            .as_ref()
            .and_then(|spec| Calendar::parse(spec).ok())
    }
}

impl Aggregate for OrgCalendar {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = OrgCalendarCommand;
    type Event = OrgCalendarEvent;
    type Error = CalendarError;
    type Services = CalendarServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let OrgCalendarCommand::Set(cmd) = command;
        let calendar = Calendar::parse(&cmd.calendar)?.spec();
        if self.calendar.as_ref() == Some(&calendar) {
            return Ok(());
        }
        let event = OrgCalendarEvent::CalendarSet(CalendarSet {
            org_id: cmd.org_id,
            calendar,
            by: cmd.by,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let OrgCalendarEvent::CalendarSet(e) = event;
        self.org_id = e.org_id;
        self.calendar = Some(e.calendar);
        self.set_by = Some(e.by.id);
        self.set_at = Some(e.at);
    }
}
