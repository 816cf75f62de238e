//! The real clock. The domain sees time only through `subdesk_aggregates::Clock`.

use chrono::{DateTime, Utc};
use subdesk_aggregates::Clock;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
