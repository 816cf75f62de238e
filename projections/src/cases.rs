//! Case list, detail, timeline and attachment metadata (`case_view`, `case_timeline`,
//! `case_attachments`), and the case e-mails of the notifications outbox.
//!
//! A batch loads the `case_view` rows it touches with one query, folds its events into them in
//! memory, and writes each table once. Notifications are derived in the same fold, because
//! their recipients (requester and participants *at that event*) are exactly what the fold
//! holds; they are inserted with `ON CONFLICT DO NOTHING` on (source_position, kind,
//! recipient), so a rebuild of this projection re-derives the outbox instead of doubling it
//! (the outbox is not one of the projection's own tables: a rebuild never empties it).
//!
//! Internal comments produce a timeline row marked `internal` and nothing else visible to the
//! customer side: no notification, no move of `last_public_activity_at`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subdesk_aggregates::support_case::{
    CaseStatus, Escalation, SupportCase, SupportCaseEvent, Visibility, AGGREGATE_TYPE,
};
use subdesk_aggregates::Actor;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::{rows, Projection, ProjectionError, StoredEvent};

pub struct CaseProjection;

/// One row of `case_view`; the HTTP edge reads rows back into it (`to_jsonb`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRow {
    pub id: Uuid,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub opened_by: String,
    pub opened_by_role: String,
    pub product: String,
    pub product_version: Option<String>,
    pub entitlement_number: Option<String>,
    pub subscription_id: Option<Uuid>,
    pub summary: String,
    pub description: String,
    pub impact: i16,
    pub priority: i16,
    pub status: String,
    pub phone: Option<String>,
    pub data_access: bool,
    pub follow_up_of: Option<Uuid>,
    pub assignee: Option<String>,
    pub participants: Vec<String>,
    pub escalation: String,
    pub escalation_reason: Option<String>,
    pub escalation_requested_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    pub first_response_due: DateTime<Utc>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub first_response_breached: Option<bool>,
    pub waiting_since: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub auto_resolved: bool,
    pub reopened: i32,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    pub last_public_activity_at: DateTime<Utc>,
    pub public_comments: i32,
    pub internal_comments: i32,
    pub attachments: i32,
    pub version: i64,
}

impl CaseRow {
    /// Who receives the customer-facing e-mails of this case: the requester and every
    /// participant, lower case, each once.
    fn customer_recipients(&self) -> Vec<String> {
        let mut recipients = vec![self.requester.trim().to_lowercase()];
        for participant in &self.participants {
            if !recipients.contains(participant) {
                recipients.push(participant.clone());
            }
        }
        recipients
    }

    fn set_status(&mut self, status: CaseStatus) {
        self.status = status.as_str().to_string();
    }
}

/// One row of `case_timeline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineRow {
    pub case_id: Uuid,
    pub sequence: i64,
    pub kind: String,
    pub actor_id: String,
    pub actor_role: String,
    pub visibility: String,
    pub body: Option<String>,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

/// One row of `case_attachments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
    pub added_by: String,
    pub added_by_role: String,
    pub at: DateTime<Utc>,
}

/// One e-mail of the outbox (`notifications`, migration V5).
#[derive(Debug, Clone, Serialize)]
struct NotificationRow {
    source_position: i64,
    kind: &'static str,
    recipient: String,
    subject: String,
    body: String,
    aggregate_type: &'static str,
    aggregate_id: String,
}

/// What the customer side is told a status means, in an e-mail.
fn status_words(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Open => "is open",
        CaseStatus::Investigating => "is being investigated by support",
        CaseStatus::WaitingForCustomer => "is waiting for your reply",
        CaseStatus::Resolved => "is resolved; reply to reopen it",
        CaseStatus::Closed => "is closed; open a new case if you need more help",
    }
}

/// One e-mail to several recipients.
struct Mail<'a> {
    kind: &'static str,
    to: Vec<String>,
    /// Whoever caused it already knows.
    except: Option<&'a str>,
    subject: String,
    body: String,
}

/// The fold of one batch: rows in memory, and what to write at the end.
struct Fold {
    cases: HashMap<Uuid, CaseRow>,
    timeline: Vec<TimelineRow>,
    attachments: Vec<AttachmentRow>,
    notifications: Vec<NotificationRow>,
}

impl Fold {
    /// Queues `mail` about `case`.
    fn notify(&mut self, stored: &StoredEvent, case: &CaseRow, mail: Mail<'_>) {
        for recipient in mail.to {
            if mail
                .except
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(&recipient))
            {
                continue;
            }
            self.notifications.push(NotificationRow {
                source_position: stored.position,
                kind: mail.kind,
                recipient,
                subject: format!("[{}] {}", case.key, mail.subject),
                body: mail.body.clone(),
                aggregate_type: AGGREGATE_TYPE,
                aggregate_id: case.id.to_string(),
            });
        }
    }

    fn notify_status(&mut self, stored: &StoredEvent, case: &CaseRow, by: &str) {
        let Some(status) = CaseStatus::parse(&case.status) else {
            return;
        };
        let subject = format!(
            "{}: now {}",
            case.summary,
            status.as_str().replace('_', " ")
        );
        let body = format!("Your case {} {}.", case.key, status_words(status));
        self.notify(
            stored,
            case,
            Mail {
                kind: "status_changed",
                to: case.customer_recipients(),
                except: Some(by),
                subject,
                body,
            },
        );
    }

    fn apply(&mut self, id: Uuid, stored: &StoredEvent, event: SupportCaseEvent) {
        let at = event.at();
        let internal = event.is_internal();
        if let SupportCaseEvent::CaseOpened(e) = &event {
            let case = CaseRow {
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
                self.notify_status(stored, case, &e.by.id);
                (e.by, None, json!({"status": "investigating"}))
            }
            SupportCaseEvent::CommentAdded(e) => {
                let detail = json!({"comment_id": e.comment_id});
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
                self.notify_status(stored, case, &e.by.id);
                (e.by, None, json!({"status": "resolved"}))
            }
            SupportCaseEvent::CaseAutoResolved(e) => {
                case.set_status(CaseStatus::Resolved);
                case.resolved_at = Some(e.at);
                case.resolved_by = Some(Actor::system().id);
                case.auto_resolved = true;
                case.waiting_since = None;
                self.notify_status(stored, case, "system");
                (
                    Actor::system(),
                    None,
                    json!({"status": "resolved", "waiting_since": e.waiting_since,
                           "waited_seconds": e.waited_seconds}),
                )
            }
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
fn kind_of(stored: &StoredEvent) -> String {
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
        other => other,
    }
    .to_string()
}

/// Appends e-mails to the outbox; one already derived from the same event for the same
/// recipient and kind (a rebuild) is left as it is, `sent_at` included.
async fn insert_notifications(
    tx: &Transaction<'_>,
    rows: &[NotificationRow],
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    rows::execute(
        tx,
        "INSERT INTO notifications (source_position, kind, recipient, subject, body, \
                                    aggregate_type, aggregate_id) \
         SELECT source_position, kind, recipient, subject, body, aggregate_type, aggregate_id \
           FROM jsonb_populate_recordset(NULL::notifications, $1) \
         ON CONFLICT (source_position, kind, recipient) DO NOTHING",
        &[&Json(rows)],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for CaseProjection {
    fn name(&self) -> &'static str {
        "cases"
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["case_view", "case_timeline", "case_attachments"]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::new();
        for event in events.iter().filter(|e| e.aggregate_type == AGGREGATE_TYPE) {
            let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
                continue;
            };
            decoded.push((id, event, event.decode::<SupportCase>()?));
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let cases = rows::load::<CaseRow, _>(tx, "case_view", "id", &ids)
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let mut fold = Fold {
            cases,
            timeline: Vec::new(),
            attachments: Vec::new(),
            notifications: Vec::new(),
        };
        for (id, stored, event) in decoded {
            fold.apply(id, stored, event);
        }

        let changed: Vec<CaseRow> = fold.cases.into_values().collect();
        rows::upsert(tx, "case_view", &["id"], &changed).await?;
        rows::insert(tx, "case_timeline", &fold.timeline).await?;
        rows::insert(tx, "case_attachments", &fold.attachments).await?;
        insert_notifications(tx, &fold.notifications).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use subdesk_aggregates::support_case::{CaseOpened, CommentAdded, CustomerInfoRequested};
    use subdesk_aggregates::ActorRole;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .expect("instant")
    }

    fn stored(sequence: i64, event: &SupportCaseEvent) -> StoredEvent {
        StoredEvent {
            position: 100 + sequence,
            tx_id: 1,
            aggregate_type: AGGREGATE_TYPE.into(),
            aggregate_id: Uuid::from_u128(1).to_string(),
            sequence,
            event_type: event.name().into(),
            event_version: "2.0".into(),
            payload: serde_json::to_value(event).expect("payload"),
            metadata: json!({}),
            recorded_at: t0(),
        }
    }

    fn fold(events: Vec<SupportCaseEvent>) -> Fold {
        let mut fold = Fold {
            cases: HashMap::new(),
            timeline: Vec::new(),
            attachments: Vec::new(),
            notifications: Vec::new(),
        };
        for (i, event) in events.into_iter().enumerate() {
            let s = stored(i as i64 + 1, &event);
            fold.apply(Uuid::from_u128(1), &s, event);
        }
        fold
    }

    fn opened() -> SupportCaseEvent {
        SupportCaseEvent::CaseOpened(CaseOpened {
            case_id: Uuid::from_u128(1),
            key: "CASE-1001".into(),
            org_id: "acme".into(),
            requester: "Ann@acme.test".into(),
            product: "jira".into(),
            product_version: None,
            entitlement_number: None,
            subscription_id: None,
            summary: "Board".into(),
            description: String::new(),
            impact: 2,
            priority: 2,
            participants: vec!["carl@acme.test".into()],
            phone: None,
            data_access_consent: false,
            follow_up_of: None,
            opened_by: Actor::new("Ann@acme.test", ActorRole::Customer),
            opened_at: t0(),
            first_response_due: t0(),
        })
    }

    fn comment(role: ActorRole, visibility: Visibility, minutes: i64) -> SupportCaseEvent {
        SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: Uuid::from_u128(2),
            author: Actor::new("sam@support.test", role),
            body: "secret cache node".into(),
            visibility,
            at: t0() + chrono::Duration::minutes(minutes),
        })
    }

    #[test]
    fn an_opening_confirms_to_the_requester_and_every_participant() {
        let fold = fold(vec![opened()]);
        let recipients: Vec<&str> = fold
            .notifications
            .iter()
            .map(|n| n.recipient.as_str())
            .collect();
        assert_eq!(recipients, ["ann@acme.test", "carl@acme.test"]);
        assert!(fold.notifications.iter().all(|n| n.kind == "case_opened"));
    }

    #[test]
    fn an_internal_comment_notifies_nobody_and_moves_only_the_staff_activity_time() {
        let fold = fold(vec![
            opened(),
            comment(ActorRole::Agent, Visibility::Internal, 5),
        ]);
        assert!(fold.notifications.iter().all(|n| n.kind == "case_opened"));
        let case = &fold.cases[&Uuid::from_u128(1)];
        assert_eq!(case.last_public_activity_at, t0());
        assert_eq!(case.last_activity_at, t0() + chrono::Duration::minutes(5));
        assert_eq!(case.internal_comments, 1);
        assert_eq!(fold.timeline[1].visibility, "internal");
    }

    #[test]
    fn a_public_support_reply_and_a_status_change_are_mailed_to_the_customer_side() {
        let fold = fold(vec![
            opened(),
            comment(ActorRole::Agent, Visibility::Public, 5),
            SupportCaseEvent::CustomerInfoRequested(CustomerInfoRequested {
                comment_id: Uuid::from_u128(2),
                by: Actor::new("sam@support.test", ActorRole::Agent),
                at: t0() + chrono::Duration::minutes(5),
            }),
        ]);
        let kinds: Vec<(&str, &str)> = fold
            .notifications
            .iter()
            .skip(2)
            .map(|n| (n.kind, n.recipient.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("support_reply", "ann@acme.test"),
                ("support_reply", "carl@acme.test"),
                ("status_changed", "ann@acme.test"),
                ("status_changed", "carl@acme.test"),
            ]
        );
        let case = &fold.cases[&Uuid::from_u128(1)];
        assert_eq!(case.status, "waiting_for_customer");
        assert_eq!(
            case.waiting_since,
            Some(t0() + chrono::Duration::minutes(5))
        );
    }
}
