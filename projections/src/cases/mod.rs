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
//!
//! This file is the [`Projection`] impl, which loads, folds and writes one batch; `tables` holds
//! the row types, `fold` the fold of events into them, `notes` the internal notes it writes
//! as deltas without loading their rows, and `outbox` the e-mails it derives.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use subdesk_aggregates::support_case::{SupportCase, AGGREGATE_TYPE};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::projection::Projection;
use crate::rows;

mod fold;
mod notes;
mod outbox;
mod tables;

use self::fold::Fold;
use self::outbox::insert_notifications;
pub use self::outbox::SUPPORT_TEAM;
pub use self::tables::{AttachmentRow, CaseRow, TimelineRow};

pub struct CaseProjection;

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
        // Cases whose every event in this batch is an internal note are written as deltas,
        // without loading their rows (see `notes`).
        let mut notes_only: HashMap<Uuid, bool> = HashMap::new();
        for (id, stored, event) in &decoded {
            let is_note = notes::note(*id, stored, event).is_some();
            *notes_only.entry(*id).or_insert(true) &= is_note;
        }
        let mut note_rows = Vec::new();
        decoded.retain(|(id, stored, event)| {
            if notes_only.get(id) == Some(&true) {
                note_rows.extend(notes::note(*id, stored, event));
                false
            } else {
                true
            }
        });
        notes::write(tx, note_rows).await?;
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
        let copies = outbox::partner_copies(tx, &fold.notifications).await?;
        insert_notifications(tx, &fold.notifications).await?;
        insert_notifications(tx, &copies).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;
    use std::collections::HashMap;
    use subdesk_aggregates::support_case::{
        CaseOpened, CommentAdded, CustomerInfoRequested, SupportCaseEvent, Visibility,
    };
    use subdesk_aggregates::{Actor, ActorRole};

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
            sealed: false,
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
            request_type: subdesk_aggregates::support_case::RequestType::Technical,
            opened_by: Actor::new("Ann@acme.test", ActorRole::Customer),
            opened_at: t0(),
            first_response_due: t0(),
            first_response_warning_at: None,
            resolution: None,
        })
    }

    fn comment(role: ActorRole, visibility: Visibility, minutes: i64) -> SupportCaseEvent {
        SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: Uuid::from_u128(2),
            author: Actor::new("sam@support.test", role),
            body: "secret cache node".into(),
            visibility,
            at: t0() + chrono::Duration::minutes(minutes),
            next_reply: None,
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
                resolution: None,
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
