//! The report read models of the dashboards (SPEC section 4), migration V8.
//!
//! - `report_case_facts`: one row per case (priority, status, first response, resolution), the
//!   rows medians are taken over at read time (`percentile_cont`), since a median cannot be
//!   kept as one number updated per event.
//! - `report_open_cases`: open cases now, a counter per (org, status, priority).
//! - `report_case_days`: per UTC day, org and product: opened, resolved, auto-resolved; and
//!   `report_case_days_all`, the same over every org (what the unfiltered view reads).
//! - `report_subscription_facts`: one row per subscription (renewals due are read from it).
//! - `report_active_subscriptions`: subscriptions in force and their seats, a counter per
//!   (org, partner, product, plan).
//! - `report_cancellations`: one row per cancellation that took effect.
//!
//! A batch loads the fact rows it touches (one query per table), folds its events into them in
//! memory, then writes each table once. Counters are written as deltas computed from the fact
//! rows before and after the batch (a case that moved from `open` at priority 2 to
//! `investigating` at priority 1 is -1 in one cell and +1 in another), so a counter never needs
//! to be read; cells that reach zero are deleted, so the tables hold the same rows whatever
//! the batch boundaries were. Everything comes from event data (the events' own times), never
//! from the clock: a rebuild yields the same rows.
//!
//! This projection reads no table but its own: another projection's tables may be at another
//! point of the log during a rebuild.
//!
//! This file is the [`Projection`] impl, which loads, folds and writes one batch; `facts` holds
//! the fact rows, `fold` the fold of events into them, and `counters` the deltas of the counter
//! tables and their writes.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use subdesk_aggregates::subscription::{self as sub, Subscription};
use subdesk_aggregates::support_case::{self as case, SupportCase};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::projection::Projection;
use crate::rows;

mod counters;
mod facts;
mod fold;

pub use self::counters::OPEN_STATUSES;
use self::counters::{
    active_deltas, open_case_deltas, write_active, write_case_days, write_open_cases, CaseDayDelta,
};
pub use self::facts::{CaseFacts, SubscriptionFacts};
use self::fold::{changes_no_fact, fold_case, fold_subscription, DayCounts};

pub struct ReportProjection;

fn sorted_ids<T>(decoded: &[(Uuid, &StoredEvent, T)]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl ReportProjection {
    async fn apply_cases(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::new();
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == case::AGGREGATE_TYPE)
        {
            let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
                continue;
            };
            let case_event = event.decode::<SupportCase>()?;
            if !changes_no_fact(&case_event) {
                decoded.push((id, event, case_event));
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let ids = sorted_ids(&decoded);
        let before: HashMap<Uuid, CaseFacts> =
            rows::load::<CaseFacts, _>(tx, "report_case_facts", "case_id", &ids)
                .await?
                .into_iter()
                .map(|row| (row.case_id, row))
                .collect();
        let mut after = before.clone();
        let mut days = DayCounts::new();
        for (id, stored, event) in decoded {
            if !fold_case(&mut after, &mut days, id, stored, event) {
                tracing::warn!(case = %id, position = stored.position, "event without its CaseOpened");
            }
        }
        let open = open_case_deltas(&before, &after);
        let days: Vec<CaseDayDelta> = days
            .into_iter()
            .map(
                |((day, org_id, product), [opened, resolved, auto_resolved])| CaseDayDelta {
                    day,
                    org_id,
                    product,
                    opened,
                    resolved,
                    auto_resolved,
                },
            )
            .collect();
        let changed: Vec<CaseFacts> = after
            .into_values()
            .filter(|row| before.get(&row.case_id) != Some(row))
            .collect();
        rows::upsert(tx, "report_case_facts", &["case_id"], &changed).await?;
        write_open_cases(tx, &open).await?;
        write_case_days(tx, &days).await?;
        Ok(())
    }

    async fn apply_subscriptions(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::new();
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == sub::AGGREGATE_TYPE)
        {
            let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
                continue;
            };
            decoded.push((id, event, event.decode::<Subscription>()?));
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let ids = sorted_ids(&decoded);
        let before: HashMap<Uuid, SubscriptionFacts> = rows::load::<SubscriptionFacts, _>(
            tx,
            "report_subscription_facts",
            "subscription_id",
            &ids,
        )
        .await?
        .into_iter()
        .map(|row| (row.subscription_id, row))
        .collect();
        let mut after = before.clone();
        let mut cancellations = Vec::new();
        for (id, stored, event) in decoded {
            if !fold_subscription(&mut after, &mut cancellations, id, stored, event) {
                tracing::warn!(subscription = %id, position = stored.position, "event without its SubscriptionCreated");
            }
        }
        let active = active_deltas(&before, &after);
        let changed: Vec<SubscriptionFacts> = after
            .into_values()
            .filter(|row| before.get(&row.subscription_id) != Some(row))
            .collect();
        rows::upsert(
            tx,
            "report_subscription_facts",
            &["subscription_id"],
            &changed,
        )
        .await?;
        write_active(tx, &active).await?;
        rows::upsert(
            tx,
            "report_cancellations",
            &["subscription_id", "sequence"],
            &cancellations,
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Projection for ReportProjection {
    fn name(&self) -> &'static str {
        "reports"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "report_case_facts",
            "report_open_cases",
            "report_case_days",
            "report_case_days_all",
            "report_subscription_facts",
            "report_active_subscriptions",
            "report_cancellations",
        ]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        self.apply_cases(tx, events).await?;
        self.apply_subscriptions(tx, events).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use serde_json::json;
    use subdesk_aggregates::support_case::{
        CaseAutoResolved, CaseOpened, CaseReopened, CaseResolved, FirstResponseGiven,
        PriorityChanged, SupportCaseEvent,
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
            aggregate_type: case::AGGREGATE_TYPE.into(),
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

    fn agent() -> Actor {
        Actor::new("sam@support.test", ActorRole::Agent)
    }

    fn opened(priority: u8) -> SupportCaseEvent {
        SupportCaseEvent::CaseOpened(CaseOpened {
            case_id: Uuid::from_u128(1),
            key: "CASE-1001".into(),
            org_id: "acme".into(),
            requester: "ann@acme.test".into(),
            product: "jira".into(),
            product_version: None,
            entitlement_number: None,
            subscription_id: None,
            summary: "Board".into(),
            description: String::new(),
            impact: priority,
            priority,
            participants: vec![],
            phone: None,
            data_access_consent: false,
            follow_up_of: None,
            request_type: subdesk_aggregates::support_case::RequestType::Technical,
            opened_by: Actor::new("ann@acme.test", ActorRole::Customer),
            opened_at: t0(),
            first_response_due: t0() + Duration::hours(4),
            first_response_warning_at: None,
            resolution: None,
        })
    }

    /// Folds `events` of case 1 starting from `cases`; returns the per-day counts.
    fn fold(cases: &mut HashMap<Uuid, CaseFacts>, events: Vec<SupportCaseEvent>) -> DayCounts {
        let mut days = DayCounts::new();
        for (i, event) in events.into_iter().enumerate() {
            let s = stored(i as i64 + 1, &event);
            assert!(fold_case(cases, &mut days, Uuid::from_u128(1), &s, event));
        }
        days
    }

    #[test]
    fn a_first_response_and_a_resolution_are_timed_from_the_opening() {
        let mut cases = HashMap::new();
        fold(
            &mut cases,
            vec![
                opened(2),
                SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                    comment_id: Uuid::from_u128(9),
                    by: agent(),
                    due: t0() + Duration::hours(4),
                    breached: false,
                    at: t0() + Duration::minutes(90),
                }),
                SupportCaseEvent::CaseResolved(CaseResolved {
                    by: agent(),
                    at: t0() + Duration::days(2),
                    resolution: None,
                }),
            ],
        );
        let facts = &cases[&Uuid::from_u128(1)];
        assert_eq!(facts.first_response_seconds, Some(90 * 60));
        assert_eq!(facts.first_response_breached, Some(false));
        assert_eq!(facts.resolution_seconds, Some(2 * 86_400));
        assert_eq!(facts.status, "resolved");
    }

    #[test]
    fn a_reopened_case_has_no_resolution_time_until_it_is_resolved_again() {
        let mut cases = HashMap::new();
        let days = fold(
            &mut cases,
            vec![
                opened(3),
                SupportCaseEvent::CaseAutoResolved(CaseAutoResolved {
                    waiting_since: t0(),
                    waited_seconds: 5 * 86_400,
                    at: t0() + Duration::days(5),
                }),
                SupportCaseEvent::CaseReopened(CaseReopened {
                    comment_id: Uuid::from_u128(9),
                    by: Actor::new("ann@acme.test", ActorRole::Customer),
                    resolved_at: t0() + Duration::days(5),
                    at: t0() + Duration::days(6),
                    resolution: None,
                }),
            ],
        );
        let facts = &cases[&Uuid::from_u128(1)];
        assert_eq!(facts.resolution_seconds, None);
        assert!(!facts.auto_resolved);
        assert_eq!(facts.auto_resolutions, 1);
        assert_eq!(facts.reopened, 1);
        let resolved_day = (t0() + Duration::days(5)).date_naive();
        assert_eq!(
            days[&(resolved_day, "acme".to_string(), "jira".to_string())],
            [0, 1, 1]
        );
    }

    #[test]
    fn a_priority_change_moves_an_open_case_between_cells_and_a_resolution_takes_it_out() {
        let mut before = HashMap::new();
        fold(&mut before, vec![opened(3)]);
        let mut after = before.clone();
        let mut days = DayCounts::new();
        for (sequence, event) in [
            SupportCaseEvent::PriorityChanged(PriorityChanged {
                from: 3,
                to: 1,
                first_response_due: t0() + Duration::hours(1),
                first_response_warning_at: None,
                by: agent(),
                at: t0() + Duration::minutes(5),
                resolution: None,
            }),
            SupportCaseEvent::CaseResolved(CaseResolved {
                by: agent(),
                at: t0() + Duration::hours(2),
                resolution: None,
            }),
        ]
        .into_iter()
        .enumerate()
        {
            let s = stored(sequence as i64 + 2, &event);
            fold_case(&mut after, &mut days, Uuid::from_u128(1), &s, event);
        }
        let deltas = open_case_deltas(&before, &after);
        let cells: Vec<(&str, i16, i32)> = deltas
            .iter()
            .map(|d| (d.status.as_str(), d.priority, d.cases))
            .collect();
        assert_eq!(cells, [("open", 3, -1)]);
        assert_eq!(after[&Uuid::from_u128(1)].priority, 1);
    }
}
