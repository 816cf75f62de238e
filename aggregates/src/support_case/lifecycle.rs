//! How a case moves through its statuses: opening, assignment, investigation, priority,
//! resolution (by hand or automatically) and closing.

use super::checks::{
    check_len, normalize_email, optional_text, require_participant_role, require_staff,
    require_system, MAX_NAME, MAX_PHONE, MAX_TEXT,
};
use super::commands::*;
use super::error::CaseError;
use super::events::*;
use super::policy::human_duration;
use super::services::CaseServices;
use super::sla::{clock_start, resolution_start, retarget};
use super::state::SupportCase;
use super::status::CaseStatus;
use crate::calendar::Calendar;
use crate::Actor;

impl SupportCase {
    pub(super) fn open(
        &self,
        cmd: OpenCase,
        services: &CaseServices,
        calendar: &Calendar,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        if self.exists() {
            return Err(CaseError::AlreadyOpened);
        }
        if !(cmd.opened_by.role.is_staff() || cmd.opened_by.role.is_customer_side()) {
            return Err(CaseError::NotAllowed(
                "only customers, partners and support staff open cases",
            ));
        }
        for (field, value) in [("org_id", &cmd.org_id), ("requester", &cmd.requester)] {
            if value.trim().is_empty() {
                return Err(CaseError::Required(field));
            }
        }
        let summary = cmd.summary.trim().to_string();
        if summary.is_empty() || summary.chars().count() > 255 {
            return Err(CaseError::InvalidSummary);
        }
        if !(1..=4).contains(&cmd.impact) {
            return Err(CaseError::InvalidImpact);
        }
        check_len(&cmd.description, "description", MAX_TEXT)?;
        let product_version = optional_text(cmd.product_version, "product_version", MAX_NAME)?;
        let phone = optional_text(cmd.phone, "phone", MAX_PHONE)?;

        let opener = cmd.requester.trim().to_string();
        let requester = match &cmd.on_behalf_of {
            Some(reporter) if !reporter.trim().is_empty() => normalize_email(reporter)?,
            _ => opener.clone(),
        };
        // Distinct addresses, found with a set; the cap is checked as the list grows, so a
        // long list costs no more than the cap.
        let max = services.policy.max_participants;
        let mut participants: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut follow = |email: String| {
            if !email.eq_ignore_ascii_case(&requester) && seen.insert(email.clone()) {
                participants.push(email);
            }
            if participants.len() > max {
                Err(CaseError::TooManyParticipants { max })
            } else {
                Ok(())
            }
        };
        for email in &cmd.participants {
            follow(normalize_email(email)?)?;
        }
        // Someone on the customer side who opens a case for a colleague keeps following it.
        if cmd.opened_by.role.is_customer_side() && !opener.eq_ignore_ascii_case(&requester) {
            follow(opener.to_lowercase())?;
        }

        let entitlement = match cmd.entitlement {
            EntitlementLookup::NotGiven if services.policy.require_entitlement => {
                return Err(CaseError::EntitlementRequired)
            }
            EntitlementLookup::NotGiven => None,
            EntitlementLookup::NotFound => return Err(CaseError::EntitlementNotOfOrg),
            EntitlementLookup::Found(facts) => {
                // Checked before the status, so that nothing is told about another org's
                // entitlement.
                if facts.org_id != cmd.org_id {
                    return Err(CaseError::EntitlementNotOfOrg);
                }
                if !matches!(facts.status.as_str(), "active" | "non_renewing") {
                    return Err(CaseError::EntitlementInactive {
                        status: facts.status,
                    });
                }
                Some(facts)
            }
        };
        let product = match (cmd.product.trim(), &entitlement) {
            ("", Some(facts)) => facts.product.clone(),
            ("", None) => return Err(CaseError::Required("product")),
            (named, _) => named.to_string(),
        };
        check_len(&product, "product", MAX_NAME)?;
        if let Some(earlier) = &cmd.follow_up_of {
            if earlier.org_id != cmd.org_id || earlier.case_id == cmd.case_id {
                return Err(CaseError::FollowUpOfAnotherOrg);
            }
        }

        let now = services.clock.now();
        let first_response = services.policy.first_response_target(cmd.impact);
        let target = clock_start(services, calendar, first_response, now);
        let opened = SupportCaseEvent::CaseOpened(CaseOpened {
            case_id: cmd.case_id,
            key: cmd.key,
            org_id: cmd.org_id,
            requester,
            product,
            product_version,
            entitlement_number: entitlement.as_ref().map(|e| e.number.clone()),
            subscription_id: entitlement.as_ref().map(|e| e.subscription_id),
            summary,
            description: cmd.description,
            impact: cmd.impact,
            priority: cmd.impact,
            participants,
            phone,
            data_access_consent: cmd.data_access_consent,
            follow_up_of: cmd.follow_up_of.map(|earlier| earlier.case_id),
            request_type: cmd.request_type,
            opened_by: cmd.opened_by,
            opened_at: now,
            first_response_due: target.due,
            first_response_warning_at: Some(target.warning_at),
            resolution: Some(resolution_start(services, calendar, cmd.impact, now)),
        });
        Ok(vec![opened])
    }

    pub(super) fn assign(
        &self,
        cmd: AssignCase,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff assign cases")?;
        let assignee = normalize_email(&cmd.assignee)?;
        if self.assignee.as_deref() == Some(assignee.as_str()) {
            return Ok(Vec::new());
        }
        Ok(vec![SupportCaseEvent::CaseAssigned(CaseAssigned {
            assignee,
            previous: self.assignee.clone(),
            by: cmd.by,
            at: services.clock.now(),
        })])
    }

    pub(super) fn start_investigation(
        &self,
        cmd: StartInvestigation,
        services: &CaseServices,
        calendar: Option<&Calendar>,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff investigate cases")?;
        if !matches!(
            self.status,
            CaseStatus::Open | CaseStatus::WaitingForCustomer
        ) {
            return Err(self.invalid_status("start investigating"));
        }
        let now = services.clock.now();
        Ok(vec![SupportCaseEvent::InvestigationStarted(
            InvestigationStarted {
                by: cmd.by,
                at: now,
                resolution: self.resolution_resumed(services, calendar, now),
            },
        )])
    }

    pub(super) fn change_priority(
        &self,
        cmd: ChangePriority,
        services: &CaseServices,
        calendar: &Calendar,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff change the priority")?;
        if !(1..=4).contains(&cmd.priority) {
            return Err(CaseError::InvalidPriority);
        }
        if cmd.priority == self.priority {
            return Ok(Vec::new());
        }
        Ok(self.priority_changed(cmd.priority, cmd.by, services, calendar))
    }

    /// The case moving to `priority`, with the first-response due time of that priority
    /// counted from the opening in the business time of `calendar` (the one in force now), and,
    /// while the first-response clock runs, the new warning time.
    pub(super) fn priority_changed(
        &self,
        priority: u8,
        by: Actor,
        services: &CaseServices,
        calendar: &Calendar,
    ) -> Vec<SupportCaseEvent> {
        let now = services.clock.now();
        let opened_at = self.opened_at.unwrap_or(now);
        let first_response = services.policy.first_response_target(priority);
        let target = clock_start(services, calendar, first_response, opened_at);
        let running = self.first_response_running();
        vec![SupportCaseEvent::PriorityChanged(PriorityChanged {
            from: self.priority,
            to: priority,
            first_response_due: target.due,
            first_response_warning_at: running.then_some(target.warning_at),
            by,
            at: now,
            resolution: self
                .resolution
                .map(|clock| retarget(clock, services, calendar, priority)),
        })]
    }

    pub(super) fn resolve(
        &self,
        cmd: ResolveCase,
        services: &CaseServices,
        calendar: Option<&Calendar>,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.by)?;
        if self.status == CaseStatus::Resolved {
            return Err(self.invalid_status("resolve"));
        }
        let now = services.clock.now();
        let mut events = match cmd.resolution {
            Some(note) => self.resolution_note(note, &cmd.by, now)?,
            None => Vec::new(),
        };
        events.push(SupportCaseEvent::CaseResolved(CaseResolved {
            by: cmd.by,
            at: now,
            resolution: self.resolution_paused(calendar, now),
        }));
        Ok(events)
    }

    /// The headline rule: resolved automatically only when it is waiting for the customer
    /// and has been for at least the policy's duration, judged from the case's own
    /// `CustomerInfoRequested` time. A timer that fires early, late (after a reply) or twice
    /// finds the case not due.
    pub(super) fn auto_resolve(
        &self,
        cmd: AutoResolve,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_system(&cmd.by)?;
        let waiting_since = match (self.status, self.waiting_since) {
            (CaseStatus::WaitingForCustomer, Some(since)) => since,
            _ => {
                return Err(CaseError::NotDue(format!(
                    "the case is {}, not waiting for the customer",
                    self.status
                )))
            }
        };
        let now = services.clock.now();
        let waited = now - waiting_since;
        let policy = services.policy.auto_resolve_after;
        if waited < policy {
            return Err(CaseError::NotDue(format!(
                "the case has waited {} of the {} after which it is resolved automatically",
                human_duration(waited),
                human_duration(policy)
            )));
        }
        Ok(vec![SupportCaseEvent::CaseAutoResolved(CaseAutoResolved {
            waiting_since,
            waited_seconds: waited.num_seconds(),
            at: now,
        })])
    }

    pub(super) fn close(
        &self,
        cmd: CloseCase,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_system(&cmd.by)?;
        let resolved_at = match (self.status, self.resolved_at) {
            (CaseStatus::Resolved, Some(at)) => at,
            _ => {
                return Err(CaseError::NotDue(format!(
                    "the case is {}, not resolved",
                    self.status
                )))
            }
        };
        let now = services.clock.now();
        let policy = services.policy.close_after;
        if now - resolved_at < policy {
            return Err(CaseError::NotDue(format!(
                "the case has been resolved for {} of the {} after which it is closed",
                human_duration(now - resolved_at),
                human_duration(policy)
            )));
        }
        Ok(vec![SupportCaseEvent::CaseClosed(CaseClosed {
            resolved_at,
            at: now,
        })])
    }
}
