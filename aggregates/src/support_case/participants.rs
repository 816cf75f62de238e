//! Who follows a case (its participants) and whether support may reach the customer's data.

use super::checks::{normalize_email, require_participant_role};
use super::commands::*;
use super::error::CaseError;
use super::events::*;
use super::services::CaseServices;
use super::state::SupportCase;

impl SupportCase {
    pub(super) fn add_participant(
        &self,
        cmd: AddParticipant,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.by)?;
        let email = normalize_email(&cmd.email)?;
        if self.has_participant(&email) || self.requester.eq_ignore_ascii_case(&email) {
            return Ok(Vec::new());
        }
        let max = services.policy.max_participants;
        if self.participants.len() >= max {
            return Err(CaseError::TooManyParticipants { max });
        }
        Ok(vec![SupportCaseEvent::ParticipantAdded(ParticipantAdded {
            email,
            by: cmd.by,
            at: services.clock.now(),
        })])
    }

    pub(super) fn remove_participant(
        &self,
        cmd: RemoveParticipant,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.by)?;
        let email = normalize_email(&cmd.email)?;
        if !self.has_participant(&email) {
            return Ok(Vec::new());
        }
        Ok(vec![SupportCaseEvent::ParticipantRemoved(
            ParticipantRemoved {
                email,
                by: cmd.by,
                at: services.clock.now(),
            },
        )])
    }

    pub(super) fn set_data_access(
        &self,
        cmd: SetDataAccess,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        if !cmd.by.role.is_customer_side() {
            return Err(CaseError::NotAllowed(
                "only the customer side grants or revokes access to its data",
            ));
        }
        if cmd.granted == self.data_access {
            return Ok(Vec::new());
        }
        let change = DataAccessChanged {
            by: cmd.by,
            at: services.clock.now(),
        };
        Ok(vec![if cmd.granted {
            SupportCaseEvent::DataAccessGranted(change)
        } else {
            SupportCaseEvent::DataAccessRevoked(change)
        }])
    }
}
