//! The configurable durations and limits of a case, and how refusals word a duration.

use chrono::Duration;

/// Configurable rules of the case lifecycle. Defaults follow the product contract.
#[derive(Debug, Clone, PartialEq)]
pub struct CasePolicy {
    /// First-response targets for impact levels 1 to 4, in business time on the org's calendar.
    pub first_response: [Duration; 4],
    /// Next-reply targets for priority levels 1 to 4, in business time on the org's calendar.
    pub next_reply: [Duration; 4],
    /// Resolution targets for priority levels 1 to 4, in business days of the org's calendar
    /// (see [`crate::calendar::Calendar::business_day`]).
    pub resolution_days: [u32; 4],
    /// How long a case may wait for the customer before it is resolved automatically.
    pub auto_resolve_after: Duration,
    /// How long a resolved case stays open to a reopening reply before it is closed.
    pub close_after: Duration,
    /// How long after resolution a customer reply reopens the case.
    pub reopen_window: Duration,
    /// At most this many participants on one case.
    pub max_participants: usize,
    /// Largest attachment accepted, in bytes.
    pub max_attachment_bytes: u64,
    /// Whether a case can only be opened under a support entitlement. A named entitlement is
    /// always checked (the org's, active or non-renewing); this decides whether naming none is
    /// allowed, as for cloud products in Atlassian's form, which have no entitlement number.
    pub require_entitlement: bool,
    /// Whether accepting an escalation raises the priority one step towards L1 (none at L1),
    /// with the first-response due time of the new priority.
    pub escalation_raises_priority: bool,
    /// The share of an SLA target, in percent, at which the warning is raised (1 to 99).
    pub sla_warning_percent: u8,
}

impl Default for CasePolicy {
    fn default() -> Self {
        Self {
            first_response: [
                Duration::hours(1),
                Duration::hours(4),
                Duration::hours(8),
                Duration::hours(16),
            ],
            next_reply: [
                Duration::hours(1),
                Duration::hours(4),
                Duration::hours(8),
                Duration::hours(16),
            ],
            resolution_days: [1, 3, 5, 10],
            auto_resolve_after: Duration::days(5),
            close_after: Duration::days(14),
            reopen_window: Duration::days(30),
            max_participants: 48,
            max_attachment_bytes: 10 * 1024 * 1024,
            require_entitlement: true,
            escalation_raises_priority: true,
            sla_warning_percent: 75,
        }
    }
}

impl CasePolicy {
    /// The first-response target for a priority level (1 = most severe). Levels outside
    /// 1..=4 never reach here: opening and priority changes validate them.
    pub fn first_response_target(&self, level: u8) -> Duration {
        let index = usize::from(level.clamp(1, 4)) - 1;
        self.first_response[index]
    }

    /// The next-reply target for a priority level.
    pub fn next_reply_target(&self, level: u8) -> Duration {
        let index = usize::from(level.clamp(1, 4)) - 1;
        self.next_reply[index]
    }

    /// The resolution target for a priority level on `calendar`: its business days.
    pub fn resolution_target(&self, level: u8, calendar: &crate::calendar::Calendar) -> Duration {
        let index = usize::from(level.clamp(1, 4)) - 1;
        calendar.business_day() * i32::try_from(self.resolution_days[index]).unwrap_or(i32::MAX)
    }
}

/// A duration in the largest whole unit that states it exactly: `5 days`, `36 hours`,
/// `3 seconds`. Used in the words of refusals ("resolved more than 30 days ago").
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    let (amount, unit) = if seconds == 0 {
        (0, "second")
    } else if seconds % 86_400 == 0 {
        (seconds / 86_400, "day")
    } else if seconds % 3_600 == 0 {
        (seconds / 3_600, "hour")
    } else if seconds % 60 == 0 {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    if amount == 1 {
        format!("1 {unit}")
    } else {
        format!("{amount} {unit}s")
    }
}
