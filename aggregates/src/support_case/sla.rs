//! SLA clocks: the target a clock runs to (due and warning times in business time), and the
//! warning and breach the scheduler asks the case to record once each per target.

use chrono::{DateTime, Duration, Utc};

use super::checks::require_system;
use super::commands::SlaCheck;
use super::error::CaseError;
use super::events::{ClockStart, SlaClock, SlaReached, SupportCaseEvent, Visibility};
use super::services::CaseServices;
use super::state::SupportCase;
use super::status::CaseStatus;
use crate::calendar::Calendar;
use crate::Actor;

/// The first-response target of `priority`, counted from `start` on `calendar`: due at the
/// whole target, warning at the policy's share of it.
pub(super) fn first_response_target(
    services: &CaseServices,
    calendar: &Calendar,
    priority: u8,
    start: DateTime<Utc>,
) -> ClockStart {
    let target = services.policy.first_response_target(priority);
    clock_start(services, calendar, target, start)
}

/// The next-reply clock of `priority` started at `start` on `calendar`.
pub(super) fn next_reply_start(
    services: &CaseServices,
    calendar: &Calendar,
    priority: u8,
    start: DateTime<Utc>,
) -> ClockStart {
    let target = services.policy.next_reply_target(priority);
    clock_start(services, calendar, target, start)
}

fn clock_start(
    services: &CaseServices,
    calendar: &Calendar,
    target: Duration,
    start: DateTime<Utc>,
) -> ClockStart {
    let percent = i64::from(services.policy.sla_warning_percent.clamp(1, 99));
    let warning = Duration::seconds(target.num_seconds() * percent / 100);
    ClockStart {
        due: calendar.add(start, target),
        warning_at: calendar.add(start, warning),
    }
}

/// Where one clock of a case stands, for the scheduler's checks.
struct ClockState {
    running: bool,
    due: Option<DateTime<Utc>>,
    warning_at: Option<DateTime<Utc>>,
    warned: bool,
    breached: bool,
}

impl SupportCase {
    /// Whether the first-response clock runs: no public staff reply yet, not resolved.
    pub(super) fn first_response_running(&self) -> bool {
        self.first_response_at.is_none() && !self.resolved_or_closed()
    }

    fn resolved_or_closed(&self) -> bool {
        matches!(self.status, CaseStatus::Resolved | CaseStatus::Closed)
    }

    /// Whether a comment by `author` (public) starts the next-reply clock: it is the customer
    /// side's, support has replied in public before, and no such clock runs yet.
    pub(super) fn starts_next_reply(&self, author: &Actor, visibility: Visibility) -> bool {
        author.role.is_customer_side()
            && visibility == Visibility::Public
            && self.first_response_at.is_some()
            && self.next_reply.is_none()
    }

    fn clock(&self, clock: SlaClock) -> ClockState {
        match clock {
            SlaClock::FirstResponse => ClockState {
                running: self.first_response_running(),
                due: self.first_response_due,
                warning_at: self.first_response_warning_at,
                warned: self.first_response_warned,
                breached: self.first_response_breached,
            },
            SlaClock::NextReply => ClockState {
                running: self.next_reply.is_some() && !self.resolved_or_closed(),
                due: self.next_reply.map(|c| c.due),
                warning_at: self.next_reply.map(|c| c.warning_at),
                warned: self.next_reply_warned,
                breached: self.next_reply_breached,
            },
        }
    }

    /// The running clock's due time and when `warning` (or the breach) is reached, or
    /// `not_due`.
    fn reached(
        &self,
        cmd: &SlaCheck,
        services: &CaseServices,
        warning: bool,
    ) -> Result<SlaReached, CaseError> {
        self.ensure_live()?;
        require_system(&cmd.by)?;
        let clock = self.clock(cmd.clock);
        let what = if warning { "warning" } else { "breach" };
        let (when, recorded) = if warning {
            (clock.warning_at, clock.warned)
        } else {
            (clock.due, clock.breached)
        };
        let (Some(when), Some(due)) = (when, clock.due) else {
            return Err(CaseError::NotDue(format!("the clock has no {what} time")));
        };
        if !clock.running {
            return Err(CaseError::NotDue(format!(
                "the {} clock has stopped",
                cmd.clock.as_str()
            )));
        }
        if recorded {
            return Err(CaseError::NotDue(format!(
                "the {what} was already recorded"
            )));
        }
        let now = services.clock.now();
        if now < when {
            return Err(CaseError::NotDue(format!("the {what} time is {when}")));
        }
        Ok(SlaReached {
            clock: cmd.clock,
            due,
            at: now,
        })
    }

    pub(super) fn sla_warning(
        &self,
        cmd: SlaCheck,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        let reached = self.reached(&cmd, services, true)?;
        Ok(vec![SupportCaseEvent::SlaWarningRaised(reached)])
    }

    pub(super) fn sla_breach(
        &self,
        cmd: SlaCheck,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        let reached = self.reached(&cmd, services, false)?;
        Ok(vec![SupportCaseEvent::SlaBreached(reached)])
    }
}
