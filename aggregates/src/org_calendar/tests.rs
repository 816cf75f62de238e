use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::calendar::{CalendarError, CalendarSpec};
use crate::{Actor, ActorRole, ManualClock};

type CalendarTest = TestFramework<OrgCalendar>;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0)
        .single()
        .expect("valid instant")
}

fn services() -> CalendarServices {
    CalendarServices::new(Arc::new(ManualClock::new(now())))
}

fn admin() -> Actor {
    Actor::new("sam@support.test", ActorRole::Agent)
}

fn tokyo(days: &[&str], holidays: &[&str]) -> CalendarSpec {
    CalendarSpec {
        timezone: "Asia/Tokyo".into(),
        hours: days
            .iter()
            .map(|d| {
                (
                    d.to_string(),
                    vec![["09:00".to_string(), "18:00".to_string()]],
                )
            })
            .collect::<BTreeMap<_, _>>(),
        holidays: holidays.iter().map(|d| d.parse().expect("date")).collect(),
    }
}

fn set(calendar: CalendarSpec) -> OrgCalendarCommand {
    OrgCalendarCommand::Set(SetCalendar {
        org_id: "acme".into(),
        calendar,
        by: admin(),
    })
}

fn was_set(calendar: CalendarSpec) -> OrgCalendarEvent {
    OrgCalendarEvent::CalendarSet(CalendarSet {
        org_id: "acme".into(),
        calendar,
        by: admin(),
        at: now(),
    })
}

#[tokio::test]
async fn setting_a_calendar_records_it_in_canonical_form() {
    CalendarTest::with(services())
        .given_no_previous_events()
        .when_async(set(tokyo(
            &["tue", "mon"],
            &["2027-01-01", "2026-12-31", "2026-12-31"],
        )))
        .await
        .then_expect_events(vec![was_set(tokyo(
            &["mon", "tue"],
            &["2026-12-31", "2027-01-01"],
        ))]);
}

#[tokio::test]
async fn setting_the_calendar_in_force_again_changes_nothing() {
    CalendarTest::with(services())
        .given(vec![was_set(tokyo(&["mon"], &[]))])
        .when_async(set(tokyo(&["mon"], &[])))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_new_calendar_replaces_the_one_in_force() {
    CalendarTest::with(services())
        .given(vec![was_set(tokyo(&["mon"], &[]))])
        .when_async(set(tokyo(&["mon", "fri"], &[])))
        .await
        .then_expect_events(vec![was_set(tokyo(&["mon", "fri"], &[]))]);
}

#[tokio::test]
async fn an_invalid_calendar_is_refused_and_nothing_is_recorded() {
    let mut spec = tokyo(&["mon"], &[]);
    spec.timezone = "Asia/Atlantis".into();
    CalendarTest::with(services())
        .given_no_previous_events()
        .when_async(set(spec))
        .await
        .then_expect_error(CalendarError::UnknownTimezone("Asia/Atlantis".into()));
}
