//! The SLA of a case as readers see it: its three clocks (first response, next reply,
//! resolution), each with its target, due time, business time elapsed, pause, when it was met
//! and whether it was breached.
//!
//! Due times come from the events that started each clock (on the calendar in force then);
//! the business time elapsed on a running clock is counted up to now on the calendar in force
//! now, which is why reads take the org's calendar.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use subdesk_aggregates::calendar::Calendar;
use subdesk_aggregates::support_case::{CasePolicy, CaseStatus};
use utoipa::ToSchema;

use crate::read::cases::CaseRow;

/// The SLA clocks of a case. Targets are business time on the org's calendar
/// (`GET /v1/orgs/{org_id}/calendar`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "first_response": {"target_minutes": 240, "due": null, "elapsed_business_minutes": 35,
                       "paused": false, "met_at": "2026-03-02T10:35:00Z", "breached": false},
    "next_reply": null,
    "resolution": {"target_minutes": 1620, "due": null, "elapsed_business_minutes": 95,
                   "paused": true, "met_at": null, "breached": false}
}))]
pub struct Sla {
    /// From the opening to support's first public reply (stopped unanswered by a resolution).
    pub first_response: SlaClockView,
    /// From a customer-side public comment that follows a public staff reply to support's next
    /// public reply: the last such clock, null until one started.
    pub next_reply: Option<SlaClockView>,
    /// From the opening to the resolution, paused while the case waits for the customer and
    /// while it is resolved (resuming on a reopen); null for cases opened before resolution
    /// clocks existed.
    pub resolution: Option<SlaClockView>,
}

/// One SLA clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlaClockView {
    /// The target of the case's priority, in business minutes.
    pub target_minutes: i64,
    /// When the target is used up, while the clock runs (null while paused or done).
    pub due: Option<DateTime<Utc>>,
    /// Business time the clock has counted (up to now while it runs).
    pub elapsed_business_minutes: i64,
    /// Stopped for now and may run again (resolution: waiting for the customer, or resolved).
    pub paused: bool,
    /// When the clock's goal was reached within the target (null when not yet, or late).
    pub met_at: Option<DateTime<Utc>>,
    /// The target was used up before the goal was reached.
    pub breached: bool,
    /// Staff only: when support is warned that the due time nears (75% of the target by
    /// default), while the clock runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning_at: Option<DateTime<Utc>>,
    /// Staff only: when the warning of the target in force was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warned_at: Option<DateTime<Utc>>,
    /// Staff only: when the breach was recorded (the clock still ran at its due time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach_recorded_at: Option<DateTime<Utc>>,
}

/// The SLA of `row` at `now`, counted on `calendar`; `staff` see the warning fields.
pub(super) fn sla(
    row: &CaseRow,
    now: DateTime<Utc>,
    staff: bool,
    policy: &CasePolicy,
    calendar: &Calendar,
) -> Sla {
    let staff_only = |at: Option<DateTime<Utc>>| at.filter(|_| staff);
    let priority = u8::try_from(row.priority).unwrap_or(4);
    let minutes = |d: Duration| d.num_minutes();
    let done = row.status == CaseStatus::Resolved.as_str() || row.closed_at.is_some();

    // First response: stops at support's first public reply, or unanswered at the resolution.
    let stopped = row
        .first_responded_at
        .or(row.resolved_at.filter(|_| done))
        .or(row.closed_at);
    let breached = row
        .first_response_breached
        .unwrap_or_else(|| stopped.unwrap_or(now) > row.first_response_due);
    let running = stopped.is_none();
    let first_response = SlaClockView {
        target_minutes: minutes(policy.first_response_target(priority)),
        due: running.then_some(row.first_response_due),
        elapsed_business_minutes: minutes(calendar.between(row.opened_at, stopped.unwrap_or(now))),
        paused: false,
        met_at: row.first_responded_at.filter(|_| !breached),
        breached,
        warning_at: staff_only(row.first_response_warning_at.filter(|_| running)),
        warned_at: staff_only(row.sla_warned_at),
        breach_recorded_at: staff_only(row.sla_breached_at),
    };

    let next_reply = row.next_reply_due.map(|due| {
        let target = policy.next_reply_target(priority);
        let until = row.next_reply_met_at.unwrap_or(now);
        let elapsed = match row.next_reply_started_at {
            Some(started) => calendar.between(started, until),
            // Started before its start was kept: what the target leaves until the due time.
            None => (target - calendar.between(until, due)).max(Duration::zero()),
        };
        let running = row.next_reply_met_at.is_none();
        let breached = until > due || row.next_reply_breached_at.is_some();
        SlaClockView {
            target_minutes: minutes(target),
            due: running.then_some(due),
            elapsed_business_minutes: minutes(elapsed),
            paused: false,
            met_at: row.next_reply_met_at.filter(|_| !breached),
            breached,
            warning_at: staff_only(row.next_reply_warning_at.filter(|_| running)),
            warned_at: staff_only(row.next_reply_warned_at),
            breach_recorded_at: staff_only(row.next_reply_breached_at),
        }
    });

    let resolution = row.resolution_target_seconds.map(|target| {
        let counted = row
            .resolution_running_since
            .map_or(Duration::zero(), |since| calendar.between(since, now));
        let elapsed = Duration::seconds(row.resolution_elapsed_seconds.unwrap_or(0)) + counted;
        let running = row.resolution_running_since.is_some();
        let breached = elapsed > Duration::seconds(target) || row.resolution_breached_at.is_some();
        SlaClockView {
            target_minutes: target / 60,
            due: row.resolution_due.filter(|_| running),
            elapsed_business_minutes: minutes(elapsed),
            paused: !running && row.closed_at.is_none(),
            met_at: row.resolved_at.filter(|_| done && !breached),
            breached,
            warning_at: staff_only(row.resolution_warning_at.filter(|_| running)),
            warned_at: staff_only(row.resolution_warned_at),
            breach_recorded_at: staff_only(row.resolution_breached_at),
        }
    });

    Sla {
        first_response,
        next_reply,
        resolution,
    }
}
