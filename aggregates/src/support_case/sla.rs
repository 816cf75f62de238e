//! SLA clocks: the target a clock runs to (due and warning times in business time), and the
//! warning and breach the scheduler asks the case to record once each per target.

use chrono::{DateTime, Duration, Utc};

use super::checks::require_system;
use super::commands::SlaCheck;
use super::error::CaseError;
use super::events::{
    ClockStart, ResolutionClock, SlaClock, SlaReached, SupportCaseEvent, Visibility,
};
use super::services::CaseServices;
use super::state::SupportCase;
use super::status::CaseStatus;
use crate::calendar::Calendar;
use crate::Actor;

/// The policy's share of `target` at which support is warned.
fn warning_share(services: &CaseServices, target: Duration) -> Duration {
    let percent = i64::from(services.policy.sla_warning_percent.clamp(1, 99));
    Duration::seconds(target.num_seconds() * percent / 100)
}

/// A clock with `target` (first response, next reply) counted from `start` on `calendar`: due
/// at the whole target, warning at the policy's share of it.
pub(super) fn clock_start(
    services: &CaseServices,
    calendar: &Calendar,
    target: Duration,
    start: DateTime<Utc>,
) -> ClockStart {
    ClockStart {
        due: calendar.add(start, target),
        warning_at: calendar.add(start, warning_share(services, target)),
    }
}

/// The resolution clock of `priority`, started at `start` (the opening).
pub(super) fn resolution_start(
    services: &CaseServices,
    calendar: &Calendar,
    priority: u8,
    start: DateTime<Utc>,
) -> ResolutionClock {
    let target = services.policy.resolution_target(priority, calendar);
    let stopped = ResolutionClock {
        target_seconds: target.num_seconds(),
        elapsed_seconds: 0,
        running_since: None,
        due: None,
        warning_at: None,
    };
    resume(stopped, services, calendar, start)
}

/// `clock` counting again from `now`: due when the rest of its target is used up, warned
/// when the rest of the warning share is (at once when that share is already used up).
pub(super) fn resume(
    clock: ResolutionClock,
    services: &CaseServices,
    calendar: &Calendar,
    since: DateTime<Utc>,
) -> ResolutionClock {
    let target = Duration::seconds(clock.target_seconds);
    let used = Duration::seconds(clock.elapsed_seconds);
    ResolutionClock {
        running_since: Some(since),
        due: Some(calendar.add(since, target - used)),
        warning_at: Some(calendar.add(since, warning_share(services, target) - used)),
        ..clock
    }
}

/// `clock` stopped at `now` (paused or resolved): the business time since it last started is
/// counted in.
pub(super) fn pause(
    clock: ResolutionClock,
    calendar: &Calendar,
    now: DateTime<Utc>,
) -> ResolutionClock {
    let counted = clock
        .running_since
        .map_or(Duration::zero(), |since| calendar.between(since, now));
    ResolutionClock {
        elapsed_seconds: clock.elapsed_seconds + counted.num_seconds(),
        running_since: None,
        due: None,
        warning_at: None,
        ..clock
    }
}

/// `clock` with the target of `priority`: a running clock's due and warning times move with
/// it (counted from when it last started).
pub(super) fn retarget(
    clock: ResolutionClock,
    services: &CaseServices,
    calendar: &Calendar,
    priority: u8,
) -> ResolutionClock {
    let target = services.policy.resolution_target(priority, calendar);
    let clock = ResolutionClock {
        target_seconds: target.num_seconds(),
        ..clock
    };
    match clock.running_since {
        Some(since) => resume(clock, services, calendar, since),
        None => clock,
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

    /// Whether the resolution clock runs (it exists for cases opened since it does).
    pub(super) fn resolution_running(&self) -> bool {
        self.resolution.is_some_and(|c| c.running())
    }

    /// Whether a comment by `author` resumes the resolution clock: the customer side answering
    /// a case that waits for it, or reopening a resolved one.
    pub(super) fn comment_resumes_resolution(&self, author: &Actor) -> bool {
        author.role.is_customer_side()
            && self.resolution.is_some()
            && matches!(
                self.status,
                CaseStatus::WaitingForCustomer | CaseStatus::Resolved
            )
    }

    /// The resolution clock paused or stopped at `now`, when it runs.
    pub(super) fn resolution_paused(
        &self,
        calendar: Option<&Calendar>,
        now: DateTime<Utc>,
    ) -> Option<ResolutionClock> {
        let clock = self.resolution.filter(ResolutionClock::running)?;
        Some(pause(clock, calendar?, now))
    }

    /// The resolution clock resumed at `now`, when it is paused.
    pub(super) fn resolution_resumed(
        &self,
        services: &CaseServices,
        calendar: Option<&Calendar>,
        now: DateTime<Utc>,
    ) -> Option<ResolutionClock> {
        let clock = self.resolution.filter(|c| !c.running())?;
        Some(resume(clock, services, calendar?, now))
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
            SlaClock::Resolution => ClockState {
                running: self.resolution.is_some_and(|c| c.running()),
                due: self.resolution.and_then(|c| c.due),
                warning_at: self.resolution.and_then(|c| c.warning_at),
                warned: self.resolution_warned,
                breached: self.resolution_breached,
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
