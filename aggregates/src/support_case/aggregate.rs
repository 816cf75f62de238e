//! `SupportCase` as a cqrs-es aggregate: `handle` checks a command with the handler of its
//! theme (lifecycle, comments, participants, attachments, escalation) and writes the events;
//! `apply` folds an event into the state.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use super::commands::SupportCaseCommand;
use super::error::CaseError;
use super::events::*;
use super::services::CaseServices;
use super::state::SupportCase;
use super::status::{CaseStatus, Escalation};

impl SupportCase {
    /// The org's calendar when `needed` (a clock starts, stops or moves); reading it costs a
    /// query, so commands that move no clock do without.
    async fn calendar_if(
        &self,
        needed: bool,
        services: &CaseServices,
    ) -> Result<Option<crate::calendar::Calendar>, CaseError> {
        if needed && self.exists() {
            Ok(Some(services.calendar(&self.org_id).await?))
        } else {
            Ok(None)
        }
    }

    fn resolve_at(&mut self, at: chrono::DateTime<chrono::Utc>) {
        self.status = CaseStatus::Resolved;
        self.resolved_at = Some(at);
        self.waiting_since = None;
        self.next_reply = None;
    }

    async fn write_all(&mut self, events: Vec<SupportCaseEvent>, sink: &EventSink<Self>) {
        for event in events {
            sink.write(event, self).await;
        }
    }
}

impl Aggregate for SupportCase {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = SupportCaseCommand;
    type Event = SupportCaseEvent;
    type Error = CaseError;
    type Services = CaseServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        // Every rule is checked before anything is written: a refused command appends nothing.
        let events = match command {
            SupportCaseCommand::Open(cmd) => {
                let calendar = services.calendar(&cmd.org_id).await?;
                self.open(cmd, services, &calendar)?
            }
            SupportCaseCommand::Assign(cmd) => self.assign(cmd, services)?,
            SupportCaseCommand::StartInvestigation(cmd) => {
                // Resumes the resolution clock when the case waited for the customer.
                let resumes = self.status == CaseStatus::WaitingForCustomer;
                let calendar = self.calendar_if(resumes, services).await?;
                self.start_investigation(cmd, services, calendar.as_ref())?
            }
            SupportCaseCommand::Comment(cmd) => {
                // Only a comment that starts the next-reply clock, or resumes the resolution
                // clock, needs the calendar.
                let needed = self.starts_next_reply(&cmd.author, cmd.visibility)
                    || self.comment_resumes_resolution(&cmd.author);
                let calendar = self.calendar_if(needed, services).await?;
                self.comment(cmd, services, calendar.as_ref())?
            }
            SupportCaseCommand::RequestInfo(cmd) => {
                let calendar = self
                    .calendar_if(self.resolution_running(), services)
                    .await?;
                self.request_info(cmd, services, calendar.as_ref())?
            }
            SupportCaseCommand::ChangePriority(cmd) => {
                let calendar = services.calendar(&self.org_id).await?;
                self.change_priority(cmd, services, &calendar)?
            }
            SupportCaseCommand::AddParticipant(cmd) => self.add_participant(cmd, services)?,
            SupportCaseCommand::RemoveParticipant(cmd) => self.remove_participant(cmd, services)?,
            SupportCaseCommand::AddAttachment(cmd) => self.add_attachment(cmd, services)?,
            SupportCaseCommand::RequestEscalation(cmd) => self.request_escalation(cmd, services)?,
            SupportCaseCommand::AcceptEscalation(cmd) => {
                let calendar = services.calendar(&self.org_id).await?;
                self.accept_escalation(cmd, services, &calendar)?
            }
            SupportCaseCommand::SetDataAccess(cmd) => self.set_data_access(cmd, services)?,
            SupportCaseCommand::Resolve(cmd) => {
                let calendar = self
                    .calendar_if(self.resolution_running(), services)
                    .await?;
                self.resolve(cmd, services, calendar.as_ref())?
            }
            SupportCaseCommand::AutoResolve(cmd) => self.auto_resolve(cmd, services)?,
            SupportCaseCommand::RaiseSlaWarning(cmd) => self.sla_warning(cmd, services)?,
            SupportCaseCommand::RecordSlaBreach(cmd) => self.sla_breach(cmd, services)?,
            SupportCaseCommand::Close(cmd) => self.close(cmd, services)?,
        };
        self.write_all(events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SupportCaseEvent::CaseOpened(e) => {
                self.id = Some(e.case_id);
                self.key = e.key;
                self.org_id = e.org_id;
                self.requester = e.requester;
                self.product = e.product;
                self.summary = e.summary;
                self.impact = e.impact;
                self.priority = e.priority;
                self.status = CaseStatus::Open;
                self.opened_at = Some(e.opened_at);
                self.first_response_due = Some(e.first_response_due);
                self.first_response_warning_at = e.first_response_warning_at;
                self.participants = e.participants;
                self.data_access = e.data_access_consent;
                self.entitlement_number = e.entitlement_number;
                self.subscription_id = e.subscription_id;
                self.follow_up_of = e.follow_up_of;
                self.request_type = e.request_type;
                self.resolution = e.resolution;
            }
            SupportCaseEvent::CaseAssigned(e) => self.assignee = Some(e.assignee),
            SupportCaseEvent::InvestigationStarted(InvestigationStarted { resolution, .. })
            | SupportCaseEvent::CustomerResponded(CustomerResponded { resolution, .. }) => {
                self.status = CaseStatus::Investigating;
                self.waiting_since = None;
                self.resolution = resolution.or(self.resolution);
            }
            SupportCaseEvent::CommentAdded(e) => {
                self.comments += 1;
                if let Some(start) = e.next_reply {
                    self.next_reply = Some(start);
                    self.next_reply_warned = false;
                    self.next_reply_breached = false;
                } else if e.author.role.is_staff() && e.visibility == Visibility::Public {
                    self.next_reply = None;
                }
            }
            SupportCaseEvent::CustomerInfoRequested(e) => {
                self.status = CaseStatus::WaitingForCustomer;
                self.waiting_since = Some(e.at);
                self.resolution = e.resolution.or(self.resolution);
            }
            SupportCaseEvent::CaseReopened(e) => {
                self.status = CaseStatus::Investigating;
                self.resolved_at = None;
                self.resolution = e.resolution.or(self.resolution);
            }
            SupportCaseEvent::FirstResponseGiven(e) => self.first_response_at = Some(e.at),
            SupportCaseEvent::PriorityChanged(e) => {
                self.priority = e.to;
                self.first_response_due = Some(e.first_response_due);
                // A new target: its warning and breach are still to come.
                self.first_response_warning_at = e.first_response_warning_at;
                self.first_response_warned = false;
                self.first_response_breached = false;
                if let Some(clock) = e.resolution {
                    self.resolution = Some(clock);
                    self.resolution_warned = false;
                    self.resolution_breached = false;
                }
            }
            SupportCaseEvent::ParticipantAdded(e) => self.participants.push(e.email),
            SupportCaseEvent::ParticipantRemoved(e) => {
                self.participants
                    .retain(|p| !p.eq_ignore_ascii_case(&e.email));
            }
            SupportCaseEvent::AttachmentAdded(e) => self.attachments.push(e.attachment_id),
            SupportCaseEvent::EscalationRequested(_) => self.escalation = Escalation::Requested,
            SupportCaseEvent::CaseEscalated(_) => self.escalation = Escalation::Escalated,
            SupportCaseEvent::DataAccessGranted(_) => self.data_access = true,
            SupportCaseEvent::DataAccessRevoked(_) => self.data_access = false,
            SupportCaseEvent::CaseResolved(CaseResolved {
                at,
                resolution: Some(clock),
                ..
            }) => {
                self.resolution = Some(clock);
                self.resolve_at(at);
            }
            SupportCaseEvent::CaseResolved(CaseResolved { at, .. })
            | SupportCaseEvent::CaseAutoResolved(CaseAutoResolved { at, .. }) => {
                self.resolve_at(at)
            }
            SupportCaseEvent::CaseClosed(_) => self.status = CaseStatus::Closed,
            SupportCaseEvent::SlaWarningRaised(e) => match e.clock {
                SlaClock::FirstResponse => self.first_response_warned = true,
                SlaClock::NextReply => self.next_reply_warned = true,
                SlaClock::Resolution => self.resolution_warned = true,
            },
            SupportCaseEvent::SlaBreached(e) => match e.clock {
                SlaClock::FirstResponse => self.first_response_breached = true,
                SlaClock::NextReply => self.next_reply_breached = true,
                SlaClock::Resolution => self.resolution_breached = true,
            },
        }
    }
}
