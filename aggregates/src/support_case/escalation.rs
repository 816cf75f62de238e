//! Escalation: the customer side asks for it, support accepts it.

use super::checks::{check_len, require_staff, MAX_REASON};
use super::commands::*;
use super::error::CaseError;
use super::events::*;
use super::services::CaseServices;
use super::state::SupportCase;
use super::status::{CaseStatus, Escalation};
use crate::calendar::Calendar;

impl SupportCase {
    pub(super) fn request_escalation(
        &self,
        cmd: RequestEscalation,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        if !cmd.by.role.is_customer_side() {
            return Err(CaseError::NotAllowed(
                "only the customer side requests an escalation",
            ));
        }
        if self.status == CaseStatus::Resolved {
            return Err(self.invalid_status("escalate"));
        }
        match self.escalation {
            Escalation::Requested => return Err(CaseError::EscalationPending),
            Escalation::Escalated => return Err(CaseError::AlreadyEscalated),
            Escalation::None => {}
        }
        let reason = cmd.reason.trim().to_string();
        check_len(&reason, "reason", MAX_REASON)?;
        Ok(vec![SupportCaseEvent::EscalationRequested(
            EscalationRequested {
                reason,
                by: cmd.by,
                at: services.clock.now(),
            },
        )])
    }

    pub(super) fn accept_escalation(
        &self,
        cmd: AcceptEscalation,
        services: &CaseServices,
        calendar: &Calendar,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff accept an escalation")?;
        match self.escalation {
            Escalation::Requested => {
                let mut events = vec![SupportCaseEvent::CaseEscalated(CaseEscalated {
                    by: cmd.by.clone(),
                    at: services.clock.now(),
                })];
                if services.policy.escalation_raises_priority && self.priority > 1 {
                    events.extend(self.priority_changed(
                        self.priority - 1,
                        cmd.by,
                        services,
                        calendar,
                    ));
                }
                Ok(events)
            }
            Escalation::Escalated => Err(CaseError::AlreadyEscalated),
            Escalation::None => Err(CaseError::NoEscalationPending),
        }
    }
}
