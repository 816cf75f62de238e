//! The business calendar in force for each org, read from the log: the last `CalendarSet` of
//! the org's `OrgCalendar` stream, or the configured default when it has none.
//!
//! Read on the primary, never cached: a calendar change holds for the next clock any process
//! starts. Only commands that start an SLA clock read it (opening, a priority change), and the
//! stream is a handful of events.

use deadpool_postgres::Pool;
use subdesk_aggregates::calendar::{Calendar, CalendarUnavailable, Calendars};
use subdesk_aggregates::org_calendar::{OrgCalendar, AGGREGATE_TYPE};
use tokio_postgres::GenericClient;

/// The org's calendar aggregate, folded from its stream (the default state when it has none),
/// and the stream's version.
pub async fn load_versioned(
    client: &impl GenericClient,
    org_id: &str,
) -> Result<(OrgCalendar, i64), LoadError> {
    let mut calendar = OrgCalendar::default();
    let mut version = 0;
    for stored in crate::history::stream(client, AGGREGATE_TYPE, org_id).await? {
        cqrs_es::Aggregate::apply(&mut calendar, stored.decode::<OrgCalendar>()?);
        version = stored.sequence;
    }
    Ok((calendar, version))
}

/// Why an org's calendar could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Event(#[from] subdesk_projections::ProjectionError),
}

/// Each org's calendar from the log, `default` for orgs without one.
#[derive(Debug, Clone)]
pub struct LogCalendars {
    pub pool: Pool,
    pub default: Calendar,
}

#[async_trait::async_trait]
impl Calendars for LogCalendars {
    async fn calendar_of(&self, org_id: &str) -> Result<Calendar, CalendarUnavailable> {
        let unavailable = |e: &dyn std::fmt::Display| CalendarUnavailable(e.to_string());
        let client = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let (calendar, _) = load_versioned(&**client, org_id)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(calendar.in_force().unwrap_or_else(|| self.default.clone()))
    }
}
