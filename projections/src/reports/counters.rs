//! The counter tables (`report_open_cases`, `report_case_days`, `report_case_days_all`,
//! `report_active_subscriptions`): deltas computed from the fact rows before and after a batch,
//! and the upserts that apply them and delete the cells that reach zero. Separate from the fold
//! because a counter is never read back, only moved.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use serde::Serialize;
use subdesk_aggregates::support_case::CaseStatus;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::facts::{CaseFacts, SubscriptionFacts};
use crate::error::ProjectionError;

/// The statuses counted as open: not yet resolved or closed.
pub const OPEN_STATUSES: [CaseStatus; 3] = [
    CaseStatus::Open,
    CaseStatus::Investigating,
    CaseStatus::WaitingForCustomer,
];

fn is_open(status: &str) -> bool {
    OPEN_STATUSES.iter().any(|s| s.as_str() == status)
}

/// A change of `report_open_cases`.
#[derive(Debug, Serialize)]
pub(super) struct OpenCasesDelta {
    pub(super) org_id: String,
    pub(super) status: String,
    pub(super) priority: i16,
    pub(super) cases: i32,
}

/// A change of `report_case_days`.
#[derive(Debug, Serialize)]
pub(super) struct CaseDayDelta {
    pub(super) day: NaiveDate,
    pub(super) org_id: String,
    pub(super) product: String,
    pub(super) opened: i32,
    pub(super) resolved: i32,
    pub(super) auto_resolved: i32,
}

/// A change of `report_active_subscriptions`.
#[derive(Debug, Serialize)]
pub(super) struct ActiveDelta {
    pub(super) org_id: String,
    pub(super) partner_id: String,
    pub(super) product: String,
    pub(super) plan: String,
    pub(super) subscriptions: i32,
    pub(super) seats: i64,
}

/// The open-case cells that moved between `before` and `after` (rows of the same cases).
pub(super) fn open_case_deltas(
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

/// The in-force cells that moved between `before` and `after`.
pub(super) fn active_deltas(
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

pub(super) async fn write_open_cases(
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

pub(super) async fn write_case_days(
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

pub(super) async fn write_active(
    tx: &Transaction<'_>,
    deltas: &[ActiveDelta],
) -> Result<(), ProjectionError> {
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
