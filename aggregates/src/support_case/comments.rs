//! Comments, and the status changes a comment brings: support asking the customer for
//! information, the customer side answering or reopening, support's first response.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::checks::{check_len, require_participant_role, require_staff, MAX_TEXT};
use super::commands::*;
use super::error::CaseError;
use super::events::*;
use super::policy::human_duration;
use super::services::CaseServices;
use super::sla::clock_start;
use super::state::SupportCase;
use super::status::CaseStatus;
use crate::calendar::Calendar;
use crate::Actor;

impl SupportCase {
    pub(super) fn comment(
        &self,
        cmd: AddComment,
        services: &CaseServices,
        calendar: Option<&Calendar>,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.author)?;
        if cmd.body.trim().is_empty() {
            return Err(CaseError::EmptyComment);
        }
        check_len(&cmd.body, "body", MAX_TEXT)?;
        if cmd.visibility == Visibility::Internal && !cmd.author.role.is_staff() {
            return Err(CaseError::InternalCommentNotAllowed);
        }
        let now = services.clock.now();
        let customer_side = cmd.author.role.is_customer_side();
        let mut follow_up = Vec::new();
        if self.first_response(&cmd.author, cmd.visibility) {
            follow_up.push(self.first_response_event(cmd.comment_id, &cmd.author, now));
        }
        match self.status {
            CaseStatus::WaitingForCustomer if customer_side => {
                follow_up.push(SupportCaseEvent::CustomerResponded(CustomerResponded {
                    comment_id: cmd.comment_id,
                    by: cmd.author.clone(),
                    waiting_since: self.waiting_since.unwrap_or(now),
                    at: now,
                    resolution: self.resolution_resumed(services, calendar, now),
                }));
            }
            CaseStatus::Resolved if customer_side => {
                let resolved_at = self.resolved_at.unwrap_or(now);
                let window = services.policy.reopen_window;
                if now - resolved_at > window {
                    return Err(CaseError::ReopenWindowPassed {
                        window: human_duration(window),
                    });
                }
                follow_up.push(SupportCaseEvent::CaseReopened(CaseReopened {
                    comment_id: cmd.comment_id,
                    by: cmd.author.clone(),
                    resolved_at,
                    at: now,
                    resolution: self.resolution_resumed(services, calendar, now),
                }));
            }
            _ => {}
        }
        let next_reply = calendar
            .filter(|_| self.starts_next_reply(&cmd.author, cmd.visibility))
            .map(|calendar| {
                let target = services.policy.next_reply_target(self.priority);
                clock_start(services, calendar, target, now)
            });
        let mut events = vec![SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: cmd.comment_id,
            author: cmd.author,
            body: cmd.body,
            visibility: cmd.visibility,
            at: now,
            next_reply,
        })];
        events.extend(follow_up);
        Ok(events)
    }

    pub(super) fn request_info(
        &self,
        cmd: RequestInfo,
        services: &CaseServices,
        calendar: Option<&Calendar>,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(
            &cmd.by,
            "only support staff ask the customer for information",
        )?;
        if self.status == CaseStatus::Resolved {
            return Err(self.invalid_status("request information on"));
        }
        if cmd.body.trim().is_empty() {
            return Err(CaseError::EmptyComment);
        }
        check_len(&cmd.body, "body", MAX_TEXT)?;
        let now = services.clock.now();
        let mut events = vec![SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: cmd.comment_id,
            author: cmd.by.clone(),
            body: cmd.body,
            visibility: Visibility::Public,
            at: now,
            next_reply: None,
        })];
        if self.first_response(&cmd.by, Visibility::Public) {
            events.push(self.first_response_event(cmd.comment_id, &cmd.by, now));
        }
        events.push(SupportCaseEvent::CustomerInfoRequested(
            CustomerInfoRequested {
                comment_id: cmd.comment_id,
                by: cmd.by,
                at: now,
                resolution: self.resolution_paused(calendar, now),
            },
        ));
        Ok(events)
    }

    /// Whether a public comment by `author` is support's first answer.
    /// The events of a resolution note by `by`: a public comment, and the first response when
    /// it is the first public staff reply. Nothing else of a comment follows (the case is
    /// being resolved: it neither stops waiting nor reopens).
    pub(super) fn resolution_note(
        &self,
        note: ResolutionNote,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        if note.body.trim().is_empty() {
            return Err(CaseError::EmptyComment);
        }
        check_len(&note.body, "resolution", MAX_TEXT)?;
        let mut events = vec![SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: note.comment_id,
            author: by.clone(),
            body: note.body,
            visibility: Visibility::Public,
            at: now,
            next_reply: None,
        })];
        if self.first_response(by, Visibility::Public) {
            events.push(self.first_response_event(note.comment_id, by, now));
        }
        Ok(events)
    }

    fn first_response(&self, author: &Actor, visibility: Visibility) -> bool {
        author.role.is_staff()
            && visibility == Visibility::Public
            && self.first_response_at.is_none()
    }

    fn first_response_event(
        &self,
        comment_id: Uuid,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> SupportCaseEvent {
        let due = self.first_response_due.unwrap_or(now);
        SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
            comment_id,
            by: by.clone(),
            due,
            breached: now > due,
            at: now,
        })
    }
}
