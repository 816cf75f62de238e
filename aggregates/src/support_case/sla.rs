//! SLA clocks: the target a clock runs to (due and warning times in business time), and the
//! warning and breach the scheduler asks the case to record once each per target.

use chrono::{DateTime, Duration, Utc};

use super::checks::require_system;
use super::commands::SlaCheck;
use super::error::CaseError;
use super::events::{SlaClock, SlaReached, SupportCaseEvent};
use super::services::CaseServices;
use super::state::SupportCase;
use super::status::CaseStatus;
use crate::calendar::Calendar;

/// A first-response target in force: its due time and when support is warned.
pub(super) struct Target {
    pub(super) due: DateTime<Utc>,
    pub(super) warning_at: DateTime<Utc>,
}

/// The first-response target of `priority`, counted from `start` on `calendar`: due at the
/// whole target, warning at the policy's share of it.
pub(super) fn first_response_target(
    services: &CaseServices,
    calendar: &Calendar,
    priority: u8,
    start: DateTime<Utc>,
) -> Target {
    let target = services.policy.first_response_target(priority);
    let percent = i64::from(services.policy.sla_warning_percent.clamp(1, 99));
    let warning = Duration::seconds(target.num_seconds() * percent / 100);
    Target {
        due: calendar.add(start, target),
        warning_at: calendar.add(start, warning),
    }
}

impl SupportCase {
    /// Whether the first-response clock runs: no public staff reply yet, not resolved.
    pub(super) fn first_response_running(&self) -> bool {
        self.first_response_at.is_none()
            && !matches!(self.status, CaseStatus::Resolved | CaseStatus::Closed)
    }

    /// The running clock's due time and `when` it is reached, or `not_due`.
    fn reached(
        &self,
        cmd: &SlaCheck,
        services: &CaseServices,
        when: Option<DateTime<Utc>>,
        recorded: bool,
        what: &str,
    ) -> Result<SlaReached, CaseError> {
        self.ensure_live()?;
        require_system(&cmd.by)?;
        let SlaClock::FirstResponse = cmd.clock;
        let (Some(when), Some(due)) = (when, self.first_response_due) else {
            return Err(CaseError::NotDue(format!("the case has no {what} time")));
        };
        if !self.first_response_running() {
            return Err(CaseError::NotDue(
                "the first-response clock has stopped".into(),
            ));
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
        let warning_at = self.first_response_warning_at;
        let reached = self.reached(
            &cmd,
            services,
            warning_at,
            self.first_response_warned,
            "warning",
        )?;
        Ok(vec![SupportCaseEvent::SlaWarningRaised(reached)])
    }

    pub(super) fn sla_breach(
        &self,
        cmd: SlaCheck,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        let due = self.first_response_due;
        let reached = self.reached(&cmd, services, due, self.first_response_breached, "breach")?;
        Ok(vec![SupportCaseEvent::SlaBreached(reached)])
    }
}
