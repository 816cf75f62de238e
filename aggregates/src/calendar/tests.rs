//! Business-time arithmetic, given a calendar, when a clock starts, then where it ends; and
//! properties that hold for any calendar.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

use super::*;

fn spec(timezone: &str, hours: &[(&str, &[(&str, &str)])], holidays: &[&str]) -> CalendarSpec {
    CalendarSpec {
        timezone: timezone.into(),
        hours: hours
            .iter()
            .map(|(day, intervals)| {
                let intervals = intervals
                    .iter()
                    .map(|(a, b)| [a.to_string(), b.to_string()]);
                (day.to_string(), intervals.collect())
            })
            .collect(),
        holidays: holidays
            .iter()
            .map(|d| d.parse::<NaiveDate>().expect("a date"))
            .collect(),
    }
}

const WEEKDAYS: [&str; 5] = ["mon", "tue", "wed", "thu", "fri"];

/// Monday to Friday with the same intervals, in `timezone`.
fn weekdays(timezone: &str, intervals: &[(&str, &str)], holidays: &[&str]) -> Calendar {
    let hours: Vec<(&str, &[(&str, &str)])> = WEEKDAYS.iter().map(|d| (*d, intervals)).collect();
    Calendar::parse(&spec(timezone, &hours, holidays)).expect("a valid calendar")
}

fn tokyo() -> Calendar {
    weekdays("Asia/Tokyo", &[("09:00", "18:00")], &[])
}

/// `local` (`YYYY-MM-DD HH:MM`) in `zone`, as an instant.
fn at(zone: &str, local: &str) -> DateTime<Utc> {
    let tz: Tz = zone.parse().expect("a zone");
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").expect("a time");
    tz.from_local_datetime(&naive)
        .single()
        .expect("one instant")
        .to_utc()
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

#[test]
fn given_tokyo_office_hours_a_clock_started_in_the_morning_ends_the_same_afternoon() {
    // 2026-11-30 is a Monday.
    let due = tokyo().add(at("Asia/Tokyo", "2026-11-30 10:00"), hours(4));
    assert_eq!(due, at("Asia/Tokyo", "2026-11-30 14:00"));
}

#[test]
fn given_tokyo_office_hours_a_clock_started_late_on_friday_ends_on_monday() {
    let due = tokyo().add(at("Asia/Tokyo", "2026-12-04 16:00"), hours(4));
    assert_eq!(due, at("Asia/Tokyo", "2026-12-07 11:00"));
}

#[test]
fn a_clock_started_at_night_or_at_the_weekend_counts_from_the_next_opening() {
    let calendar = tokyo();
    let night = calendar.add(at("Asia/Tokyo", "2026-12-01 02:00"), hours(4));
    assert_eq!(night, at("Asia/Tokyo", "2026-12-01 13:00"));
    let sunday = calendar.add(at("Asia/Tokyo", "2026-12-06 12:00"), hours(4));
    assert_eq!(sunday, at("Asia/Tokyo", "2026-12-07 13:00"));
}

#[test]
fn a_lunch_break_does_not_count() {
    let calendar = weekdays("Asia/Tokyo", &[("09:00", "12:00"), ("13:00", "18:00")], &[]);
    let due = calendar.add(at("Asia/Tokyo", "2026-11-30 11:00"), hours(4));
    assert_eq!(due, at("Asia/Tokyo", "2026-11-30 16:00"));
    let started_at_lunch = calendar.add(at("Asia/Tokyo", "2026-11-30 12:30"), hours(1));
    assert_eq!(started_at_lunch, at("Asia/Tokyo", "2026-11-30 14:00"));
}

#[test]
fn holidays_are_closed_all_day() {
    // Thursday 2026-12-31 and Friday 2027-01-01 closed: Wednesday 17:00 + 4 h is Monday.
    let calendar = weekdays(
        "Asia/Tokyo",
        &[("09:00", "18:00")],
        &["2026-12-31", "2027-01-01"],
    );
    let due = calendar.add(at("Asia/Tokyo", "2026-12-30 17:00"), hours(4));
    assert_eq!(due, at("Asia/Tokyo", "2027-01-04 12:00"));
}

#[test]
fn a_clock_over_a_daylight_saving_change_counts_real_hours() {
    // New York moves to daylight time on Sunday 2026-03-08: Friday 16:00 EST + 4 business
    // hours is Monday 12:00 EDT (16:00 UTC), 1 hour on Friday and 3 on Monday.
    let calendar = weekdays("America/New_York", &[("09:00", "17:00")], &[]);
    let due = calendar.add(at("America/New_York", "2026-03-06 16:00"), hours(4));
    assert_eq!(
        due,
        Utc.with_ymd_and_hms(2026, 3, 9, 16, 0, 0)
            .single()
            .expect("valid")
    );
}

#[test]
fn an_opening_in_a_spring_forward_gap_starts_after_the_gap() {
    // Europe/Berlin skips 02:00-03:00 on 2026-03-29 (a Sunday): open 02:30-04:00 that day
    // is open 03:00-04:00 (01:00-02:00 UTC).
    let calendar = Calendar::parse(&spec(
        "Europe/Berlin",
        &[("sun", &[("02:30", "04:00")])],
        &[],
    ))
    .expect("valid");
    let start = Utc
        .with_ymd_and_hms(2026, 3, 29, 0, 0, 0)
        .single()
        .expect("valid");
    assert_eq!(
        calendar.add(start, hours(1)),
        Utc.with_ymd_and_hms(2026, 3, 29, 2, 0, 0)
            .single()
            .expect("valid")
    );
}

#[test]
fn always_open_is_calendar_time() {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 29, 23, 17, 5)
        .single()
        .expect("valid");
    assert_eq!(
        Calendar::always_open().add(start, hours(16)),
        start + hours(16)
    );
    assert_eq!(
        Calendar::always_open().between(start, start + hours(16)),
        hours(16)
    );
}

#[test]
fn business_time_between_two_instants_skips_closed_time() {
    let calendar = tokyo();
    let from = at("Asia/Tokyo", "2026-12-04 17:00");
    let to = at("Asia/Tokyo", "2026-12-07 10:30");
    assert_eq!(calendar.between(from, to), Duration::minutes(150));
    assert_eq!(calendar.between(to, from), Duration::zero());
}

#[test]
fn a_calendar_is_written_back_in_canonical_form() {
    let written = spec(
        "Asia/Tokyo",
        &[
            ("tue", &[("13:00", "18:00"), ("09:00", "12:00")]),
            ("mon", &[("09:00", "24:00")]),
        ],
        &["2027-01-01", "2026-12-31", "2027-01-01"],
    );
    let canonical = Calendar::parse(&written).expect("valid").spec();
    assert_eq!(
        canonical,
        spec(
            "Asia/Tokyo",
            &[
                ("mon", &[("09:00", "24:00")]),
                ("tue", &[("09:00", "12:00"), ("13:00", "18:00")])
            ],
            &["2026-12-31", "2027-01-01"],
        )
    );
    assert_eq!(
        Calendar::parse(&canonical).expect("valid").spec(),
        canonical
    );
}

#[test]
fn invalid_calendars_are_refused_with_their_rule() {
    let refused = |s: CalendarSpec| Calendar::parse(&s).expect_err("refused").code();
    let day: &[(&str, &str)] = &[("09:00", "18:00")];
    assert_eq!(
        refused(spec("Mars/Olympus", &[("mon", day)], &[])),
        "unknown_timezone"
    );
    assert_eq!(refused(spec("UTC", &[("monday", day)], &[])), "unknown_day");
    assert_eq!(
        refused(spec("UTC", &[("mon", &[("9:00", "18:00")])], &[])),
        "invalid_time"
    );
    assert_eq!(
        refused(spec("UTC", &[("mon", &[("09:00", "24:01")])], &[])),
        "invalid_time"
    );
    assert_eq!(
        refused(spec("UTC", &[("mon", &[("09:60", "10:00")])], &[])),
        "invalid_time"
    );
    assert_eq!(
        refused(spec("UTC", &[("mon", &[("18:00", "09:00")])], &[])),
        "empty_interval"
    );
    assert_eq!(
        refused(spec(
            "UTC",
            &[("mon", &[("09:00", "13:00"), ("12:00", "18:00")])],
            &[]
        )),
        "overlapping_intervals"
    );
    assert_eq!(refused(spec("UTC", &[("mon", &[])], &[])), "never_open");
    let many = vec![("00:00", "00:01"); MAX_INTERVALS_PER_DAY + 1];
    assert_eq!(
        refused(spec("UTC", &[("mon", &many)], &[])),
        "too_many_intervals"
    );
    let mut holidays = spec("UTC", &[("mon", day)], &[]);
    let first = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid");
    holidays.holidays = first.iter_days().take(MAX_HOLIDAYS + 1).collect();
    assert_eq!(refused(holidays), "too_many_holidays");
}

// --- properties ---------------------------------------------------------------------------

const ZONES: [&str; 6] = [
    "UTC",
    "Asia/Tokyo",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
];

/// Any calendar: a zone, one to three disjoint intervals on each of some days, a few holidays.
fn any_calendar() -> impl Strategy<Value = Calendar> {
    let day = proptest::collection::btree_set(0u16..=96, 0..=6).prop_map(|cuts| {
        let cuts: Vec<u16> = cuts.into_iter().map(|q| q * 15).collect();
        cuts.chunks_exact(2)
            .map(|w| (w[0], w[1]))
            .collect::<Vec<_>>()
    });
    (
        proptest::sample::select(ZONES.to_vec()),
        proptest::array::uniform7(day),
        proptest::collection::vec(0i64..120, 0..10),
    )
        .prop_filter_map("open some time", |(zone, week, holidays)| {
            let hours = DAYS
                .iter()
                .zip(&week)
                .map(|(d, intervals)| {
                    let written = intervals.iter().map(|&(a, b)| [hh_mm(a), hh_mm(b)]);
                    (d.to_string(), written.collect())
                })
                .collect();
            let first = NaiveDate::from_ymd_opt(2026, 1, 1)?;
            let holidays = holidays
                .iter()
                .map(|d| first + Duration::days(*d))
                .collect();
            let spec = CalendarSpec {
                timezone: zone.to_string(),
                hours,
                holidays,
            };
            Calendar::parse(&spec).ok()
        })
}

fn any_start() -> impl Strategy<Value = DateTime<Utc>> {
    // 2026-01-01 to 2027-12-31, to the second.
    (1_767_225_600i64..1_830_297_600).prop_map(|s| DateTime::from_timestamp(s, 0).expect("valid"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, max_global_rejects: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn the_business_time_from_start_to_due_is_the_target(
        calendar in any_calendar(),
        start in any_start(),
        minutes in 1i64..=20_000,
    ) {
        // Within the horizon: a target the calendar's openings reach in under ten years.
        let weekly: i64 = calendar.week.iter().flatten().map(|&(a, b)| i64::from(b - a)).sum();
        prop_assume!(minutes <= weekly * 500);
        let target = Duration::minutes(minutes);
        let due = calendar.add(start, target);
        prop_assert!(due >= start + Duration::zero());
        prop_assert_eq!(calendar.between(start, due), target);
    }

    #[test]
    fn adding_business_time_is_monotonic(
        calendar in any_calendar(),
        start in any_start(),
        later_by in 0i64..=200_000,
        a in 0i64..=20_000,
        b in 0i64..=20_000,
    ) {
        let weekly: i64 = calendar.week.iter().flatten().map(|&(a, b)| i64::from(b - a)).sum();
        prop_assume!(a.max(b) <= weekly * 100);
        let (short, long) = (Duration::minutes(a.min(b)), Duration::minutes(a.max(b)));
        prop_assert!(calendar.add(start, short) <= calendar.add(start, long));
        let later = start + Duration::seconds(later_by * 60);
        prop_assert!(calendar.add(start, long) <= calendar.add(later, long));
    }
}
