//! The fold of one batch of case events into rows in memory: the `case_view` rows it touches,
//! the timeline and attachment rows it appends, and the e-mails it queues. Separate from the
//! Projection impl, which only loads and writes, so that the fold is tested without a database.

use std::collections::HashMap;

use serde_json::{json, Value};
use subdesk_aggregates::support_case::{
    CaseStatus, Escalation, SlaClock, SlaReached, SupportCaseEvent, Visibility,
};
use subdesk_aggregates::Actor;
use uuid::Uuid;

use super::outbox::{self, Mail, NotificationRow};
use super::tables::{AttachmentRow, CaseRow, TimelineRow};
use crate::event::StoredEvent;

/// The fold of one batch: rows in memory, and what to write at the end.
pub(super) struct Fold {
    pub(super) cases: HashMap<Uuid, CaseRow>,
    pub(super) timeline: Vec<TimelineRow>,
    pub(super) attachments: Vec<AttachmentRow>,
    pub(super) notifications: Vec<NotificationRow>,
}

impl Fold {
    /// Queues `mail` about `case` (see `outbox::notify`).
    fn notify(&mut self, stored: &StoredEvent, case: &CaseRow, mail: Mail<'_>) {
        outbox::notify(&mut self.notifications, stored, case, mail);
    }

    fn notify_status(&mut self, stored: &StoredEvent, case: &CaseRow, by: &str) {
        outbox::notify_status(&mut self.notifications, stored, case, by);
    }

    /// Records a clock's warning (or breach) on `case` and alerts support; the timeline row.
    fn sla_alert(
        &mut self,
        stored: &StoredEvent,
        case: &mut CaseRow,
        e: &SlaReached,
        breach: bool,
    ) -> (Actor, Option<String>, Value) {
        let (recorded, what) = match e.clock {
            SlaClock::FirstResponse => (
                if breach {
                    &mut case.sla_breached_at
                } else {
                    &mut case.sla_warned_at
                },
                ("first response", "its first public reply"),
            ),
            SlaClock::NextReply => (
                if breach {
                    &mut case.next_reply_breached_at
                } else {
                    &mut case.next_reply_warned_at
                },
                ("reply", "a public reply to the customer"),
            ),
            SlaClock::Resolution => (
                if breach {
                    &mut case.resolution_breached_at
                } else {
                    &mut case.resolution_warned_at
                },
                ("resolution", "its resolution"),
            ),
        };
        *recorded = Some(e.at);
        let (kind, subject, body) = if breach {
            (
                "sla_breach",
                format!("{}: {} overdue", case.summary, what.0),
                format!(
                    "Case {} (priority {}) was due {} by {}; it has none yet.",
                    case.key, case.priority, what.1, e.due
                ),
            )
        } else {
            (
                "sla_warning",
                format!("{}: {} due soon", case.summary, what.0),
                format!(
                    "Case {} (priority {}) needs {} by {}.",
                    case.key, case.priority, what.1, e.due
                ),
            )
        };
        self.notify(stored, case, outbox::to_support(case, kind, subject, body));
        let detail = json!({"clock": e.clock.as_str(), "due": e.due});
        (Actor::system(), None, detail)
    }

    pub(super) fn apply(&mut self, id: Uuid, stored: &StoredEvent, event: SupportCaseEvent) {
        let at = event.at();
        let internal = event.is_internal();
        if let SupportCaseEvent::CaseOpened(e) = &event {
            let mut case = CaseRow {
                id,
                key: e.key.clone(),
                org_id: e.org_id.clone(),
                requester: e.requester.clone(),
                opened_by: e.opened_by.id.clone(),
                opened_by_role: e.opened_by.role.as_str().into(),
                product: e.product.clone(),
                product_version: e.product_version.clone(),
                entitlement_number: e.entitlement_number.clone(),
                subscription_id: e.subscription_id,
                summary: e.summary.clone(),
                description: e.description.clone(),
                impact: i16::from(e.impact),
                priority: i16::from(e.priority),
                status: CaseStatus::Open.as_str().into(),
                phone: e.phone.clone(),
                data_access: e.data_access_consent,
                follow_up_of: e.follow_up_of,
                request_type: e.request_type.as_str().into(),
                assignee: None,
                participants: e.participants.clone(),
                escalation: Escalation::None.as_str().into(),
                escalation_reason: None,
                escalation_requested_at: None,
                escalated_at: None,
                opened_at: e.opened_at,
                first_response_due: e.first_response_due,
                first_responded_at: None,
                first_response_breached: None,
                first_response_warning_at: e.first_response_warning_at,
                sla_warned_at: None,
                sla_breached_at: None,
                next_reply_due: None,
                next_reply_warning_at: None,
                next_reply_warned_at: None,
                next_reply_breached_at: None,
                next_reply_started_at: None,
                next_reply_met_at: None,
                resolution_target_seconds: None,
                resolution_elapsed_seconds: None,
                resolution_running_since: None,
                resolution_due: None,
                resolution_warning_at: None,
                resolution_warned_at: None,
                resolution_breached_at: None,
                waiting_since: None,
                resolved_at: None,
                resolved_by: None,
                auto_resolved: false,
                reopened: 0,
                closed_at: None,
                last_activity_at: e.opened_at,
                last_public_activity_at: e.opened_at,
                public_comments: 0,
                internal_comments: 0,
                attachments: 0,
                version: stored.sequence,
            };
            case.set_resolution(e.resolution);
            // The confirmation goes to everyone on the case, the opener included.
            self.notify(
                stored,
                &case,
                Mail {
                    kind: "case_opened",
                    to: case.customer_recipients(),
                    except: None,
                    subject: format!("{}: we received your request", case.summary),
                    body: format!(
                        "Your case {} about {} is open at impact level {}. Reply to add \
                     information; support answers within the first-response target.",
                        case.key, case.product, case.impact
                    ),
                },
            );
            self.cases.insert(id, case);
        }
        // Events of a case whose opening this read model never saw are skipped rather than
        // failing the batch forever; the drift check reports such cases.
        let Some(mut case) = self.cases.remove(&id) else {
            return;
        };
        case.version = stored.sequence;
        case.last_activity_at = case.last_activity_at.max(at);
        if !internal {
            case.last_public_activity_at = case.last_public_activity_at.max(at);
        }
        let (actor, body, detail) = self.fold_event(stored, &mut case, event);
        self.timeline.push(TimelineRow {
            case_id: id,
            sequence: stored.sequence,
            kind: kind_of(stored),
            actor_id: actor.id,
            actor_role: actor.role.as_str().into(),
            visibility: if internal { "internal" } else { "public" }.into(),
            body,
            detail,
            at,
        });
        self.cases.insert(id, case);
    }

    /// Folds one event into `case`; returns the timeline row's actor, body and detail.
    fn fold_event(
        &mut self,
        stored: &StoredEvent,
        case: &mut CaseRow,
        event: SupportCaseEvent,
    ) -> (Actor, Option<String>, Value) {
        match event {
            SupportCaseEvent::CaseOpened(e) => (
                e.opened_by,
                None,
                json!({"impact": e.impact, "priority": e.priority, "status": "open",
                       "follow_up_of": e.follow_up_of}),
            ),
            SupportCaseEvent::CaseAssigned(e) => {
                case.assignee = Some(e.assignee.clone());
                (
                    e.by,
                    None,
                    json!({"assignee": e.assignee, "previous": e.previous}),
                )
            }
            SupportCaseEvent::InvestigationStarted(e) => {
                case.set_status(CaseStatus::Investigating);
                case.waiting_since = None;
                case.set_resolution(e.resolution);
                self.notify_status(stored, case, &e.by.id);
                (e.by, None, json!({"status": "investigating"}))
            }
            SupportCaseEvent::CommentAdded(e) => {
                let detail = json!({"comment_id": e.comment_id});
                if let Some(start) = e.next_reply {
                    case.next_reply_started_at = Some(e.at);
                    case.next_reply_met_at = None;
                    case.next_reply_due = Some(start.due);
                    case.next_reply_warning_at = Some(start.warning_at);
                    case.next_reply_warned_at = None;
                    case.next_reply_breached_at = None;
                } else if e.author.role.is_staff()
                    && e.visibility == Visibility::Public
                    && case.next_reply_due.is_some()
                    && case.next_reply_met_at.is_none()
                {
                    case.next_reply_met_at = Some(e.at);
                }
                match e.visibility {
                    Visibility::Internal => case.internal_comments += 1,
                    Visibility::Public => {
                        case.public_comments += 1;
                        if e.author.role.is_staff() {
                            self.notify(
                                stored,
                                case,
                                Mail {
                                    kind: "support_reply",
                                    to: case.customer_recipients(),
                                    except: Some(&e.author.id),
                                    subject: format!("{}: reply from support", case.summary),
                                    body: e.body.clone(),
                                },
                            );
                        } else if let Some(assignee) = case.assignee.clone() {
                            self.notify(
                                stored,
                                case,
                                Mail {
                                    kind: "customer_reply",
                                    to: vec![assignee],
                                    except: Some(&e.author.id),
                                    subject: format!(
                                        "{}: reply from {}",
                                        case.summary, e.author.id
                                    ),
                                    body: e.body.clone(),
                                },
                            );
                        }
                    }
                }
                (e.author, Some(e.body), detail)
            }
            SupportCaseEvent::CustomerInfoRequested(e) => {
                case.set_status(CaseStatus::WaitingForCustomer);
                case.waiting_since = Some(e.at);
                case.set_resolution(e.resolution);
                self.notify_status(stored, case, &e.by.id);
                (
                    e.by,
                    None,
                    json!({"status": "waiting_for_customer", "comment_id": e.comment_id}),
                )
            }
            SupportCaseEvent::CustomerResponded(e) => {
                case.set_status(CaseStatus::Investigating);
                case.waiting_since = None;
                case.set_resolution(e.resolution);
                self.notify_status(stored, case, &e.by.id);
                (
                    e.by,
                    None,
                    json!({"status": "investigating", "comment_id": e.comment_id,
                           "waiting_since": e.waiting_since}),
                )
            }
            SupportCaseEvent::CaseReopened(e) => {
                case.set_status(CaseStatus::Investigating);
                case.resolved_at = None;
                case.resolved_by = None;
                case.auto_resolved = false;
                case.reopened += 1;
                case.set_resolution(e.resolution);
                self.notify_status(stored, case, &e.by.id);
                (
                    e.by,
                    None,
                    json!({"status": "investigating", "comment_id": e.comment_id,
                           "resolved_at": e.resolved_at}),
                )
            }
            SupportCaseEvent::FirstResponseGiven(e) => {
                case.first_responded_at = Some(e.at);
                case.first_response_breached = Some(e.breached);
                (
                    e.by,
                    None,
                    json!({"comment_id": e.comment_id, "due": e.due, "breached": e.breached}),
                )
            }
            SupportCaseEvent::PriorityChanged(e) => {
                case.priority = i16::from(e.to);
                case.first_response_due = e.first_response_due;
                if e.first_response_warning_at.is_some() {
                    // A new target for the running clock: its warning and breach are to come.
                    case.first_response_warning_at = e.first_response_warning_at;
                    case.sla_warned_at = None;
                    case.sla_breached_at = None;
                }
                if e.resolution.is_some() {
                    // A new resolution target: its warning and breach are to come.
                    case.set_resolution(e.resolution);
                    case.resolution_warned_at = None;
                    case.resolution_breached_at = None;
                }
                (
                    e.by,
                    None,
                    json!({"from": e.from, "to": e.to,
                           "first_response_due": e.first_response_due}),
                )
            }
            SupportCaseEvent::ParticipantAdded(e) => {
                if !case.participants.contains(&e.email) {
                    case.participants.push(e.email.clone());
                }
                // The person the case was shared with is told (seed 002), unless they added
                // themselves.
                self.notify(
                    stored,
                    case,
                    Mail {
                        kind: "participant_added",
                        to: vec![e.email.clone()],
                        except: Some(&e.by.id),
                        subject: format!("{}: shared with you", case.summary),
                        body: format!(
                            "{} shared case {} with you: you will receive its updates and may \
                             reply to it.",
                            e.by.id, case.key
                        ),
                    },
                );
                (e.by, None, json!({"email": e.email}))
            }
            SupportCaseEvent::ParticipantRemoved(e) => {
                case.participants
                    .retain(|p| !p.eq_ignore_ascii_case(&e.email));
                (e.by, None, json!({"email": e.email}))
            }
            SupportCaseEvent::AttachmentAdded(e) => {
                case.attachments += 1;
                self.attachments.push(AttachmentRow {
                    id: e.attachment_id,
                    case_id: case.id,
                    name: e.name.clone(),
                    size: i64::try_from(e.size).unwrap_or(i64::MAX),
                    content_type: e.content_type.clone(),
                    sha256: e.sha256.clone(),
                    added_by: e.by.id.clone(),
                    added_by_role: e.by.role.as_str().into(),
                    at: e.at,
                });
                (
                    e.by,
                    None,
                    json!({"attachment_id": e.attachment_id, "name": e.name, "size": e.size,
                           "content_type": e.content_type, "sha256": e.sha256}),
                )
            }
            SupportCaseEvent::EscalationRequested(e) => {
                case.escalation = Escalation::Requested.as_str().into();
                case.escalation_reason = Some(e.reason.clone()).filter(|r| !r.is_empty());
                case.escalation_requested_at = Some(e.at);
                let mut recipients = case.customer_recipients();
                recipients.extend(case.assignee.clone());
                self.notify(
                    stored,
                    case,
                    Mail {
                        kind: "escalation",
                        to: recipients,
                        except: Some(&e.by.id),
                        subject: format!("{}: escalation requested", case.summary),
                        body: format!(
                            "{} asked to escalate case {}. {}",
                            e.by.id, case.key, e.reason
                        ),
                    },
                );
                (
                    e.by,
                    Some(e.reason).filter(|r| !r.is_empty()),
                    json!({"escalation": "requested"}),
                )
            }
            SupportCaseEvent::CaseEscalated(e) => {
                case.escalation = Escalation::Escalated.as_str().into();
                case.escalated_at = Some(e.at);
                self.notify(
                    stored,
                    case,
                    Mail {
                        kind: "escalation",
                        to: case.customer_recipients(),
                        except: Some(&e.by.id),
                        subject: format!("{}: escalated", case.summary),
                        body: format!("Support accepted the escalation of case {}.", case.key),
                    },
                );
                (e.by, None, json!({"escalation": "escalated"}))
            }
            SupportCaseEvent::DataAccessGranted(e) => {
                case.data_access = true;
                (e.by, None, json!({"data_access": true}))
            }
            SupportCaseEvent::DataAccessRevoked(e) => {
                case.data_access = false;
                (e.by, None, json!({"data_access": false}))
            }
            SupportCaseEvent::CaseResolved(e) => {
                case.set_status(CaseStatus::Resolved);
                case.resolved_at = Some(e.at);
                case.resolved_by = Some(e.by.id.clone());
                case.waiting_since = None;
                case.drop_next_reply();
                case.set_resolution(e.resolution);
                self.notify_status(stored, case, &e.by.id);
                (e.by, None, json!({"status": "resolved"}))
            }
            SupportCaseEvent::CaseAutoResolved(e) => {
                case.set_status(CaseStatus::Resolved);
                case.resolved_at = Some(e.at);
                case.resolved_by = Some(Actor::system().id);
                case.auto_resolved = true;
                case.waiting_since = None;
                case.drop_next_reply();
                self.notify_status(stored, case, "system");
                (
                    Actor::system(),
                    None,
                    json!({"status": "resolved", "waiting_since": e.waiting_since,
                           "waited_seconds": e.waited_seconds}),
                )
            }
            SupportCaseEvent::SlaWarningRaised(e) => self.sla_alert(stored, case, &e, false),
            SupportCaseEvent::SlaBreached(e) => self.sla_alert(stored, case, &e, true),
            SupportCaseEvent::CaseClosed(e) => {
                case.set_status(CaseStatus::Closed);
                case.closed_at = Some(e.at);
                self.notify_status(stored, case, "system");
                (
                    Actor::system(),
                    None,
                    json!({"status": "closed", "resolved_at": e.resolved_at}),
                )
            }
        }
    }
}

/// Timeline kinds: the event type in snake case, which clients can switch on.
pub(super) fn kind_of(stored: &StoredEvent) -> String {
    match stored.event_type.as_str() {
        "CaseOpened" => "opened",
        "CaseAssigned" => "assigned",
        "InvestigationStarted" => "investigation_started",
        "CommentAdded" => "comment",
        "CustomerInfoRequested" => "info_requested",
        "CustomerResponded" => "customer_responded",
        "CaseReopened" => "reopened",
        "FirstResponseGiven" => "first_response",
        "PriorityChanged" => "priority_changed",
        "ParticipantAdded" => "participant_added",
        "ParticipantRemoved" => "participant_removed",
        "AttachmentAdded" => "attachment_added",
        "EscalationRequested" => "escalation_requested",
        "CaseEscalated" => "escalated",
        "DataAccessGranted" => "data_access_granted",
        "DataAccessRevoked" => "data_access_revoked",
        "CaseResolved" => "resolved",
        "CaseAutoResolved" => "auto_resolved",
        "CaseClosed" => "closed",
        "SlaWarningRaised" => "sla_warning",
        "SlaBreached" => "sla_breached",
        other => other,
    }
    .to_string()
}
