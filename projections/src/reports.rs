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

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::subscription::{
    self as sub, CancelEffective, Subscription, SubscriptionEvent, SubscriptionStatus,
};
use subdesk_aggregates::support_case::{self as case, CaseStatus, SupportCase, SupportCaseEvent};
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::{rows, Projection, ProjectionError, StoredEvent};

pub struct ReportProjection;

/// The statuses counted as open: not yet resolved or closed.
pub const OPEN_STATUSES: [CaseStatus; 3] = [
    CaseStatus::Open,
    CaseStatus::Investigating,
    CaseStatus::WaitingForCustomer,
];

fn is_open(status: &str) -> bool {
    OPEN_STATUSES.iter().any(|s| s.as_str() == status)
}

/// One row of `report_case_facts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFacts {
    pub case_id: Uuid,
    pub org_id: String,
    pub product: String,
    pub priority: i16,
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub first_response_due: DateTime<Utc>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub first_response_seconds: Option<i64>,
    pub first_response_breached: Option<bool>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_seconds: Option<i64>,
    pub auto_resolved: bool,
    pub auto_resolutions: i32,
    pub reopened: i32,
    pub closed_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// One row of `report_subscription_facts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionFacts {
    pub subscription_id: Uuid,
    pub org_id: String,
    pub partner_id: Option<String>,
    pub product: String,
    pub plan: String,
    pub status: String,
    pub seats: i32,
    pub term_end: DateTime<Utc>,
    pub auto_renew: bool,
    pub version: i64,
}

impl SubscriptionFacts {
    fn in_force(&self) -> bool {
        self.status == SubscriptionStatus::Active.as_str()
            || self.status == SubscriptionStatus::NonRenewing.as_str()
    }
}

/// One row of `report_cancellations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CancellationRow {
    subscription_id: Uuid,
    sequence: i64,
    org_id: String,
    partner_id: Option<String>,
    product: String,
    plan: String,
    seats: i32,
    effective: &'static str,
    effective_at: DateTime<Utc>,
    reason: String,
}

/// A change of `report_open_cases`.
#[derive(Debug, Serialize)]
struct OpenCasesDelta {
    org_id: String,
    status: String,
    priority: i16,
    cases: i32,
}

/// A change of `report_case_days`.
#[derive(Debug, Serialize)]
struct CaseDayDelta {
    day: NaiveDate,
    org_id: String,
    product: String,
    opened: i32,
    resolved: i32,
    auto_resolved: i32,
}

/// A change of `report_active_subscriptions`.
#[derive(Debug, Serialize)]
struct ActiveDelta {
    org_id: String,
    partner_id: String,
    product: String,
    plan: String,
    subscriptions: i32,
    seats: i64,
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds()
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Per-day counts keyed by (day, org, product): opened, resolved, auto-resolved.
type DayCounts = BTreeMap<(NaiveDate, String, String), [i32; 3]>;

/// Folds one case event into `facts` (the case's row, if its opening was seen) and `days`.
/// Returns false for an event of a case whose opening this read model never saw.
fn fold_case(
    cases: &mut HashMap<Uuid, CaseFacts>,
    days: &mut DayCounts,
    id: Uuid,
    stored: &StoredEvent,
    event: SupportCaseEvent,
) -> bool {
    if let SupportCaseEvent::CaseOpened(e) = &event {
        cases.insert(
            id,
            CaseFacts {
                case_id: id,
                org_id: e.org_id.clone(),
                product: e.product.clone(),
                priority: i16::from(e.priority),
                status: CaseStatus::Open.as_str().into(),
                opened_at: e.opened_at,
                first_response_due: e.first_response_due,
                first_responded_at: None,
                first_response_seconds: None,
                first_response_breached: None,
                resolved_at: None,
                resolution_seconds: None,
                auto_resolved: false,
                auto_resolutions: 0,
                reopened: 0,
                closed_at: None,
                version: stored.sequence,
            },
        );
    }
    let Some(facts) = cases.get_mut(&id) else {
        return false;
    };
    facts.version = stored.sequence;
    let mut count = |at: DateTime<Utc>, column: usize| {
        let key = (at.date_naive(), facts.org_id.clone(), facts.product.clone());
        days.entry(key).or_default()[column] += 1;
    };
    match event {
        SupportCaseEvent::CaseOpened(e) => count(e.opened_at, 0),
        SupportCaseEvent::InvestigationStarted(_) | SupportCaseEvent::CustomerResponded(_) => {
            facts.status = CaseStatus::Investigating.as_str().into();
        }
        SupportCaseEvent::CustomerInfoRequested(_) => {
            facts.status = CaseStatus::WaitingForCustomer.as_str().into();
        }
        SupportCaseEvent::CaseReopened(_) => {
            facts.status = CaseStatus::Investigating.as_str().into();
            facts.resolved_at = None;
            facts.resolution_seconds = None;
            facts.auto_resolved = false;
            facts.reopened += 1;
        }
        SupportCaseEvent::FirstResponseGiven(e) => {
            facts.first_responded_at = Some(e.at);
            facts.first_response_seconds = Some(seconds_between(facts.opened_at, e.at));
            facts.first_response_breached = Some(e.breached);
        }
        SupportCaseEvent::PriorityChanged(e) => {
            facts.priority = i16::from(e.to);
            facts.first_response_due = e.first_response_due;
        }
        SupportCaseEvent::CaseResolved(e) => {
            facts.status = CaseStatus::Resolved.as_str().into();
            facts.resolved_at = Some(e.at);
            facts.resolution_seconds = Some(seconds_between(facts.opened_at, e.at));
            facts.auto_resolved = false;
            count(e.at, 1);
        }
        SupportCaseEvent::CaseAutoResolved(e) => {
            facts.status = CaseStatus::Resolved.as_str().into();
            facts.resolved_at = Some(e.at);
            facts.resolution_seconds = Some(seconds_between(facts.opened_at, e.at));
            facts.auto_resolved = true;
            facts.auto_resolutions += 1;
            count(e.at, 1);
            count(e.at, 2);
        }
        SupportCaseEvent::CaseClosed(e) => {
            facts.status = CaseStatus::Closed.as_str().into();
            facts.closed_at = Some(e.at);
        }
        SupportCaseEvent::CaseAssigned(_)
        | SupportCaseEvent::CommentAdded(_)
        | SupportCaseEvent::ParticipantAdded(_)
        | SupportCaseEvent::ParticipantRemoved(_)
        | SupportCaseEvent::AttachmentAdded(_)
        | SupportCaseEvent::EscalationRequested(_)
        | SupportCaseEvent::CaseEscalated(_)
        | SupportCaseEvent::DataAccessGranted(_)
        | SupportCaseEvent::DataAccessRevoked(_) => {}
    }
    true
}

/// The open-case cells that moved between `before` and `after` (rows of the same cases).
fn open_case_deltas(
    before: &HashMap<Uuid, CaseFacts>,
    after: &HashMap<Uuid, CaseFacts>,
) -> Vec<OpenCasesDelta> {
    let mut cells: BTreeMap<(String, String, i16), i32> = BTreeMap::new();
    for (sign, rows) in [(-1, before), (1, after)] {
        for facts in rows.values().filter(|f| is_open(&f.status)) {
            *cells
                .entry((facts.org_id.clone(), facts.status.clone(), facts.priority))
                .or_default() += sign;
        }
    }
    cells
        .into_iter()
        .filter(|(_, cases)| *cases != 0)
        .map(|((org_id, status, priority), cases)| OpenCasesDelta {
            org_id,
            status,
            priority,
            cases,
        })
        .collect()
}

/// Folds one subscription event into its facts; a cancellation that took effect also becomes
/// a row of `cancellations`. Returns false for a subscription whose creation was never seen.
fn fold_subscription(
    subscriptions: &mut HashMap<Uuid, SubscriptionFacts>,
    cancellations: &mut Vec<CancellationRow>,
    id: Uuid,
    stored: &StoredEvent,
    event: SubscriptionEvent,
) -> bool {
    if let SubscriptionEvent::SubscriptionCreated(e) = &event {
        subscriptions.insert(
            id,
            SubscriptionFacts {
                subscription_id: id,
                org_id: e.org_id.clone(),
                partner_id: e.channel.partner_id().map(str::to_string),
                product: e.product.clone(),
                plan: e.plan.clone(),
                status: SubscriptionStatus::Upcoming.as_str().into(),
                seats: to_i32(e.seats),
                term_end: e.term_end,
                auto_renew: e.auto_renew,
                version: stored.sequence,
            },
        );
    }
    let Some(facts) = subscriptions.get_mut(&id) else {
        return false;
    };
    facts.version = stored.sequence;
    let status = |s: SubscriptionStatus| s.as_str().to_string();
    match event {
        SubscriptionEvent::SubscriptionActivated(_)
        | SubscriptionEvent::CancellationWithdrawn(_) => {
            facts.status = status(SubscriptionStatus::Active);
        }
        SubscriptionEvent::SeatsIncreased(e) => facts.seats = to_i32(e.to),
        SubscriptionEvent::PlanChanged(e) => facts.plan = e.to,
        SubscriptionEvent::AutoRenewChanged(e) => facts.auto_renew = e.auto_renew,
        SubscriptionEvent::SubscriptionRenewed(e) => {
            facts.term_end = e.term_end;
            facts.seats = to_i32(e.seats);
        }
        SubscriptionEvent::SubscriptionExpired(_) => {
            facts.status = status(SubscriptionStatus::Expired);
        }
        SubscriptionEvent::CancellationScheduled(_) => {
            facts.status = status(SubscriptionStatus::NonRenewing);
        }
        SubscriptionEvent::SubscriptionCancelled(e) => {
            facts.status = status(SubscriptionStatus::Cancelled);
            cancellations.push(CancellationRow {
                subscription_id: id,
                sequence: stored.sequence,
                org_id: facts.org_id.clone(),
                partner_id: facts.partner_id.clone(),
                product: facts.product.clone(),
                plan: facts.plan.clone(),
                seats: facts.seats,
                effective: match e.effective {
                    CancelEffective::Immediately => "immediately",
                    CancelEffective::AtTermEnd => "at_term_end",
                },
                effective_at: e.effective_at,
                reason: e.reason,
            });
        }
        SubscriptionEvent::SubscriptionReactivated(e) => {
            facts.status = status(SubscriptionStatus::Active);
            facts.term_end = e.term_end;
        }
        // Reports attribute a subscription to the partner that manages it.
        SubscriptionEvent::SubscriptionPassedToOrg(_) => facts.partner_id = None,
        SubscriptionEvent::SubscriptionCreated(_)
        | SubscriptionEvent::SeatReductionScheduled(_)
        | SubscriptionEvent::SeatReductionWithdrawn(_)
        | SubscriptionEvent::StoragePurchased(_)
        | SubscriptionEvent::SiteLinked(_)
        | SubscriptionEvent::ContactAdded(_)
        | SubscriptionEvent::ContactRemoved(_)
        | SubscriptionEvent::AppSubscriptionAdded(_)
        | SubscriptionEvent::AppSubscriptionCancelled(_)
        | SubscriptionEvent::BillingAccountChanged(_)
        | SubscriptionEvent::CollectionCancelled(_) => {}
    }
    true
}

/// The in-force cells that moved between `before` and `after`.
fn active_deltas(
    before: &HashMap<Uuid, SubscriptionFacts>,
    after: &HashMap<Uuid, SubscriptionFacts>,
) -> Vec<ActiveDelta> {
    type Cell = (String, String, String, String);
    let mut cells: BTreeMap<Cell, (i32, i64)> = BTreeMap::new();
    for (sign, rows) in [(-1, before), (1, after)] {
        for facts in rows.values().filter(|f| f.in_force()) {
            let key = (
                facts.org_id.clone(),
                facts.partner_id.clone().unwrap_or_default(),
                facts.product.clone(),
                facts.plan.clone(),
            );
            let cell = cells.entry(key).or_default();
            cell.0 += sign;
            cell.1 += i64::from(sign) * i64::from(facts.seats);
        }
    }
    cells
        .into_iter()
        .filter(|(_, (subscriptions, seats))| *subscriptions != 0 || *seats != 0)
        .map(
            |((org_id, partner_id, product, plan), (subscriptions, seats))| ActiveDelta {
                org_id,
                partner_id,
                product,
                plan,
                subscriptions,
                seats,
            },
        )
        .collect()
}

async fn write_open_cases(
    tx: &Transaction<'_>,
    deltas: &[OpenCasesDelta],
) -> Result<(), ProjectionError> {
    if deltas.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO report_open_cases (org_id, status, priority, cases) \
         SELECT org_id, status, priority, cases \
           FROM jsonb_to_recordset($1) AS d(org_id text, status text, priority smallint, cases integer) \
         ON CONFLICT (org_id, status, priority) \
         DO UPDATE SET cases = report_open_cases.cases + EXCLUDED.cases",
        &[&Json(deltas)],
    )
    .await?;
    tx.execute(
        "DELETE FROM report_open_cases t \
          USING jsonb_to_recordset($1) AS d(org_id text, status text, priority smallint) \
          WHERE t.org_id = d.org_id AND t.status = d.status AND t.priority = d.priority \
            AND t.cases = 0",
        &[&Json(deltas)],
    )
    .await?;
    Ok(())
}

async fn write_case_days(
    tx: &Transaction<'_>,
    deltas: &[CaseDayDelta],
) -> Result<(), ProjectionError> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut all: BTreeMap<(NaiveDate, &str), [i32; 3]> = BTreeMap::new();
    for d in deltas {
        let cell = all.entry((d.day, d.product.as_str())).or_default();
        cell[0] += d.opened;
        cell[1] += d.resolved;
        cell[2] += d.auto_resolved;
    }
    let all: Vec<serde_json::Value> = all
        .into_iter()
        .map(|((day, product), [opened, resolved, auto_resolved])| {
            serde_json::json!({"day": day, "product": product, "opened": opened,
                               "resolved": resolved, "auto_resolved": auto_resolved})
        })
        .collect();
    tx.execute(
        "INSERT INTO report_case_days_all (day, product, opened, resolved, auto_resolved) \
         SELECT day, product, opened, resolved, auto_resolved \
           FROM jsonb_to_recordset($1) AS d(day date, product text, \
                opened integer, resolved integer, auto_resolved integer) \
         ON CONFLICT (day, product) DO UPDATE SET \
             opened = report_case_days_all.opened + EXCLUDED.opened, \
             resolved = report_case_days_all.resolved + EXCLUDED.resolved, \
             auto_resolved = report_case_days_all.auto_resolved + EXCLUDED.auto_resolved",
        &[&Json(&all)],
    )
    .await?;
    tx.execute(
        "INSERT INTO report_case_days (day, org_id, product, opened, resolved, auto_resolved) \
         SELECT day, org_id, product, opened, resolved, auto_resolved \
           FROM jsonb_to_recordset($1) AS d(day date, org_id text, product text, \
                opened integer, resolved integer, auto_resolved integer) \
         ON CONFLICT (day, org_id, product) DO UPDATE SET \
             opened = report_case_days.opened + EXCLUDED.opened, \
             resolved = report_case_days.resolved + EXCLUDED.resolved, \
             auto_resolved = report_case_days.auto_resolved + EXCLUDED.auto_resolved",
        &[&Json(deltas)],
    )
    .await?;
    Ok(())
}

async fn write_active(tx: &Transaction<'_>, deltas: &[ActiveDelta]) -> Result<(), ProjectionError> {
    if deltas.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO report_active_subscriptions (org_id, partner_id, product, plan, subscriptions, seats) \
         SELECT org_id, partner_id, product, plan, subscriptions, seats \
           FROM jsonb_to_recordset($1) AS d(org_id text, partner_id text, product text, plan text, \
                subscriptions integer, seats bigint) \
         ON CONFLICT (org_id, partner_id, product, plan) DO UPDATE SET \
             subscriptions = report_active_subscriptions.subscriptions + EXCLUDED.subscriptions, \
             seats = report_active_subscriptions.seats + EXCLUDED.seats",
        &[&Json(deltas)],
    )
    .await?;
    tx.execute(
        "DELETE FROM report_active_subscriptions t \
          USING jsonb_to_recordset($1) AS d(org_id text, partner_id text, product text, plan text) \
          WHERE t.org_id = d.org_id AND t.partner_id = d.partner_id AND t.product = d.product \
            AND t.plan = d.plan AND t.subscriptions = 0",
        &[&Json(deltas)],
    )
    .await?;
    Ok(())
}

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
            decoded.push((id, event, event.decode::<SupportCase>()?));
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
    use chrono::{Duration, TimeZone};
    use serde_json::json;
    use subdesk_aggregates::support_case::{
        CaseAutoResolved, CaseOpened, CaseReopened, CaseResolved, FirstResponseGiven,
        PriorityChanged,
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
            opened_by: Actor::new("ann@acme.test", ActorRole::Customer),
            opened_at: t0(),
            first_response_due: t0() + Duration::hours(4),
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
                by: agent(),
                at: t0() + Duration::minutes(5),
            }),
            SupportCaseEvent::CaseResolved(CaseResolved {
                by: agent(),
                at: t0() + Duration::hours(2),
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
