use chrono::Duration;

/// Configurable rules of the case lifecycle. Defaults follow the product contract.
#[derive(Debug, Clone, PartialEq)]
pub struct CasePolicy {
    /// First-response targets for impact levels 1 to 4 (calendar time).
    pub first_response: [Duration; 4],
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
            auto_resolve_after: Duration::days(5),
            close_after: Duration::days(14),
            reopen_window: Duration::days(30),
            max_participants: 48,
            max_attachment_bytes: 10 * 1024 * 1024,
        }
    }
}

impl CasePolicy {
    /// The first-response target for an impact level (1 = most severe). Levels outside 1..=4
    /// never reach here: opening validates them.
    pub fn first_response_target(&self, impact: u8) -> Duration {
        let index = usize::from(impact.clamp(1, 4)) - 1;
        self.first_response[index]
    }
}
