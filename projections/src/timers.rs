//! Due timers (`timers`), derived from events: what the scheduler will fire, and from when.
//!
//! Each batch folds the events of each aggregate into the final state of its timers (armed
//! with an instant, or disarmed) and writes that state once: one upsert and one delete per
//! batch.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::subscription::{
    Subscription, SubscriptionEvent, AGGREGATE_TYPE as SUBSCRIPTION,
};
use subdesk_aggregates::support_case::{
    CaseAutoResolved, CaseReopened, CaseResolved, CustomerResponded, InvestigationStarted,
    ResolutionClock, SlaClock, SupportCase, SupportCaseEvent, Visibility, AGGREGATE_TYPE as CASE,
};

use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::projection::Projection;
use crate::rows;

/// Timer kinds, as stored.
pub const AUTO_RESOLVE: &str = "auto_resolve";
pub const CLOSE: &str = "close";
pub const ACTIVATE: &str = "activate";
pub const TERM_END: &str = "term_end";
/// The first-response clock's warning and due times (`since` is the instant itself).
pub const SLA_WARNING: &str = "sla_warning";
pub const SLA_BREACH: &str = "sla_breach";
/// The next-reply clock's warning and due times.
pub const NEXT_REPLY_WARNING: &str = "next_reply_warning";
pub const NEXT_REPLY_BREACH: &str = "next_reply_breach";
/// The resolution clock's warning and due times (armed while it runs).
pub const RESOLUTION_WARNING: &str = "resolution_warning";
pub const RESOLUTION_BREACH: &str = "resolution_breach";

pub struct TimerProjection;

/// One row of `timers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TimerRow {
    aggregate_type: String,
    aggregate_id: String,
    kind: String,
    since: DateTime<Utc>,
    armed_by: i64,
}

/// (aggregate type, aggregate id, kind) -> armed (since, arming position) or disarmed.
type Changes = BTreeMap<(&'static str, String, &'static str), Option<(DateTime<Utc>, i64)>>;

fn arm(
    changes: &mut Changes,
    ty: &'static str,
    id: &str,
    kind: &'static str,
    since: DateTime<Utc>,
    at: i64,
) {
    changes.insert((ty, id.to_string(), kind), Some((since, at)));
}

fn disarm(changes: &mut Changes, ty: &'static str, id: &str, kind: &'static str) {
    changes.insert((ty, id.to_string(), kind), None);
}

/// The first-response clock's (warning, due) times.
fn arm_sla(changes: &mut Changes, id: &str, times: (DateTime<Utc>, DateTime<Utc>), at: i64) {
    arm(changes, CASE, id, SLA_WARNING, times.0, at);
    arm(changes, CASE, id, SLA_BREACH, times.1, at);
}

/// The first-response clock stopped: nothing to warn of or breach.
fn disarm_sla(changes: &mut Changes, id: &str) {
    disarm(changes, CASE, id, SLA_WARNING);
    disarm(changes, CASE, id, SLA_BREACH);
}

/// The next-reply clock stopped.
fn disarm_next_reply(changes: &mut Changes, id: &str) {
    disarm(changes, CASE, id, NEXT_REPLY_WARNING);
    disarm(changes, CASE, id, NEXT_REPLY_BREACH);
}

/// The timer kinds of `clock`'s warning and breach.
fn kinds(clock: SlaClock) -> (&'static str, &'static str) {
    match clock {
        SlaClock::FirstResponse => (SLA_WARNING, SLA_BREACH),
        SlaClock::NextReply => (NEXT_REPLY_WARNING, NEXT_REPLY_BREACH),
        SlaClock::Resolution => (RESOLUTION_WARNING, RESOLUTION_BREACH),
    }
}

/// The resolution clock as an event left it: armed while it runs, disarmed while paused or
/// stopped.
fn resolution(changes: &mut Changes, id: &str, clock: Option<ResolutionClock>, at: i64) {
    let Some(clock) = clock else { return };
    match (clock.warning_at, clock.due) {
        (Some(warning_at), Some(due)) if clock.running() => {
            arm(changes, CASE, id, RESOLUTION_WARNING, warning_at, at);
            arm(changes, CASE, id, RESOLUTION_BREACH, due, at);
        }
        _ => disarm_resolution(changes, id),
    }
}

fn disarm_resolution(changes: &mut Changes, id: &str) {
    disarm(changes, CASE, id, RESOLUTION_WARNING);
    disarm(changes, CASE, id, RESOLUTION_BREACH);
}

fn fold_case(changes: &mut Changes, id: &str, position: i64, event: SupportCaseEvent) {
    match event {
        SupportCaseEvent::CustomerInfoRequested(e) => {
            arm(changes, CASE, id, AUTO_RESOLVE, e.at, position);
            disarm(changes, CASE, id, CLOSE);
            resolution(changes, id, e.resolution, position);
        }
        // Back to work: nothing is resolved or closed automatically, the resolution clock runs.
        SupportCaseEvent::InvestigationStarted(InvestigationStarted {
            resolution: clock, ..
        })
        | SupportCaseEvent::CustomerResponded(CustomerResponded {
            resolution: clock, ..
        })
        | SupportCaseEvent::CaseReopened(CaseReopened {
            resolution: clock, ..
        }) => {
            disarm(changes, CASE, id, AUTO_RESOLVE);
            disarm(changes, CASE, id, CLOSE);
            resolution(changes, id, clock, position);
        }
        SupportCaseEvent::CaseResolved(CaseResolved { at, .. })
        | SupportCaseEvent::CaseAutoResolved(CaseAutoResolved { at, .. }) => {
            disarm(changes, CASE, id, AUTO_RESOLVE);
            arm(changes, CASE, id, CLOSE, at, position);
            disarm_sla(changes, id);
            disarm_next_reply(changes, id);
            disarm_resolution(changes, id);
        }
        SupportCaseEvent::CaseClosed(_) => {
            disarm(changes, CASE, id, AUTO_RESOLVE);
            disarm(changes, CASE, id, CLOSE);
            disarm_sla(changes, id);
            disarm_next_reply(changes, id);
            disarm_resolution(changes, id);
        }
        SupportCaseEvent::CommentAdded(e) => match e.next_reply {
            Some(start) => {
                arm(
                    changes,
                    CASE,
                    id,
                    NEXT_REPLY_WARNING,
                    start.warning_at,
                    position,
                );
                arm(changes, CASE, id, NEXT_REPLY_BREACH, start.due, position);
            }
            None if e.author.role.is_staff() && e.visibility == Visibility::Public => {
                disarm_next_reply(changes, id);
            }
            None => {}
        },
        SupportCaseEvent::CaseOpened(e) => {
            if let Some(warning_at) = e.first_response_warning_at {
                arm_sla(changes, id, (warning_at, e.first_response_due), position);
            }
            resolution(changes, id, e.resolution, position);
        }
        // A new target while the clock runs (with a warning time), or after it stopped.
        SupportCaseEvent::PriorityChanged(e) => {
            match e.first_response_warning_at {
                Some(warning_at) => {
                    arm_sla(changes, id, (warning_at, e.first_response_due), position)
                }
                None => disarm_sla(changes, id),
            }
            resolution(changes, id, e.resolution, position);
        }
        SupportCaseEvent::FirstResponseGiven(_) => disarm_sla(changes, id),
        SupportCaseEvent::SlaWarningRaised(e) => disarm(changes, CASE, id, kinds(e.clock).0),
        SupportCaseEvent::SlaBreached(e) => disarm(changes, CASE, id, kinds(e.clock).1),
        _ => {}
    }
}

fn fold_subscription(changes: &mut Changes, id: &str, position: i64, event: SubscriptionEvent) {
    match event {
        SubscriptionEvent::SubscriptionCreated(e) => {
            arm(changes, SUBSCRIPTION, id, ACTIVATE, e.term_start, position);
            arm(changes, SUBSCRIPTION, id, TERM_END, e.term_end, position);
        }
        SubscriptionEvent::SubscriptionActivated(_) => disarm(changes, SUBSCRIPTION, id, ACTIVATE),
        SubscriptionEvent::SubscriptionRenewed(e) => {
            arm(changes, SUBSCRIPTION, id, TERM_END, e.term_end, position);
        }
        SubscriptionEvent::SubscriptionReactivated(e) => {
            arm(changes, SUBSCRIPTION, id, TERM_END, e.term_end, position);
        }
        SubscriptionEvent::SubscriptionExpired(_) | SubscriptionEvent::SubscriptionCancelled(_) => {
            disarm(changes, SUBSCRIPTION, id, ACTIVATE);
            disarm(changes, SUBSCRIPTION, id, TERM_END);
        }
        _ => {}
    }
}

#[async_trait]
impl Projection for TimerProjection {
    fn name(&self) -> &'static str {
        "timers"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["timers"]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut changes = Changes::new();
        for event in events {
            match event.aggregate_type.as_str() {
                CASE => fold_case(
                    &mut changes,
                    &event.aggregate_id,
                    event.position,
                    event.decode::<SupportCase>()?,
                ),
                SUBSCRIPTION => fold_subscription(
                    &mut changes,
                    &event.aggregate_id,
                    event.position,
                    event.decode::<Subscription>()?,
                ),
                _ => {}
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let mut armed = Vec::new();
        let mut disarmed: BTreeMap<(&'static str, &'static str), Vec<String>> = BTreeMap::new();
        for ((ty, id, kind), change) in changes {
            match change {
                Some((since, armed_by)) => armed.push(TimerRow {
                    aggregate_type: ty.to_string(),
                    aggregate_id: id,
                    kind: kind.to_string(),
                    since,
                    armed_by,
                }),
                None => disarmed.entry((ty, kind)).or_default().push(id),
            }
        }
        rows::upsert(
            tx,
            "timers",
            &["aggregate_type", "aggregate_id", "kind"],
            &armed,
        )
        .await?;
        for ((ty, kind), ids) in disarmed {
            rows::execute(
            tx,
                "DELETE FROM timers WHERE aggregate_type = $1 AND kind = $2 AND aggregate_id = ANY($3)",
                &[&ty, &kind, &ids],
            )
            .await?;
        }
        Ok(())
    }
}
