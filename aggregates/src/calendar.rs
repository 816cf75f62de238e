//! Business calendars and the arithmetic of business time on them.
//!
//! A calendar is the opening hours of each weekday in one IANA time zone, with holidays (local
//! dates, closed all day). SLA clocks count only the time a calendar is open: a clock started
//! while it is closed starts counting at its next opening, and a target of four business hours
//! on a 09:00-18:00 calendar started at 17:00 is due at 12:00 on the next open day.
//!
//! [`CalendarSpec`] is a calendar as it is written (the API body and the stored event);
//! [`Calendar::parse`] checks it and gives the [`Calendar`] the arithmetic runs on. Openings are
//! mapped to instants in the calendar's zone day by day, so a day with a daylight-saving change
//! is as long as it really is. A local time that does not exist (in a spring-forward gap) opens
//! or closes at the first minute after the gap; one that exists twice (fall back) at the first.

use std::collections::{BTreeMap, BTreeSet};

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The days of a week as a calendar names them, Monday first.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// At most this many opening intervals on one day (a lunch break makes two).
pub const MAX_INTERVALS_PER_DAY: usize = 8;
/// At most this many holidays in one calendar.
pub const MAX_HOLIDAYS: usize = 1_000;
/// How far ahead business time is looked for. A valid calendar is open at least one minute a
/// week and has at most [`MAX_HOLIDAYS`] holidays, so only a target longer than the openings
/// of this many days reaches it; the due time is then the target in calendar time.
const HORIZON_DAYS: i64 = 3_660;

/// A calendar as it is written: `{"timezone": "Asia/Tokyo", "hours": {"mon": [["09:00",
/// "18:00"]], ...}, "holidays": ["2026-12-31"]}`. Days without an entry (or with an empty
/// list) are closed; `"24:00"` ends an interval at midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarSpec {
    pub timezone: String,
    #[serde(default)]
    pub hours: BTreeMap<String, Vec<[String; 2]>>,
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
}

/// What is wrong with a calendar. Each message states the rule; each code is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("`{0}` is not an IANA time zone (such as `Asia/Tokyo` or `UTC`)")]
    UnknownTimezone(String),
    #[error("`{0}` is not a day; days are mon, tue, wed, thu, fri, sat and sun")]
    UnknownDay(String),
    #[error("`{0}` is not a time of day from 00:00 to 24:00 (HH:MM)")]
    InvalidTime(String),
    #[error("on {day}, the interval {from}-{to} does not end after it starts")]
    EmptyInterval {
        day: String,
        from: String,
        to: String,
    },
    #[error("on {0}, two opening intervals overlap")]
    Overlapping(String),
    #[error("a day has at most {MAX_INTERVALS_PER_DAY} opening intervals")]
    TooManyIntervals,
    #[error("a calendar must be open at some time of the week")]
    NeverOpen,
    #[error("a calendar has at most {MAX_HOLIDAYS} holidays")]
    TooManyHolidays,
}

impl DomainError for CalendarError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownTimezone(_) => "unknown_timezone",
            Self::UnknownDay(_) => "unknown_day",
            Self::InvalidTime(_) => "invalid_time",
            Self::EmptyInterval { .. } => "empty_interval",
            Self::Overlapping(_) => "overlapping_intervals",
            Self::TooManyIntervals => "too_many_intervals",
            Self::NeverOpen => "never_open",
            Self::TooManyHolidays => "too_many_holidays",
        }
    }
}

/// A checked calendar: opening minutes per weekday (Monday first, sorted, disjoint), the zone
/// they are in and the holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    timezone: Tz,
    week: [Vec<(u16, u16)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// Minutes since midnight of `HH:MM`, `00:00` to `24:00`.
fn minute_of(text: &str) -> Result<u16, CalendarError> {
    let invalid = || CalendarError::InvalidTime(text.chars().take(16).collect());
    let (h, m) = text.split_once(':').ok_or_else(invalid)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(invalid());
    }
    let h: u16 = h.parse().map_err(|_| invalid())?;
    let m: u16 = m.parse().map_err(|_| invalid())?;
    let minute = h * 60 + m;
    if m >= 60 || minute > 24 * 60 {
        return Err(invalid());
    }
    Ok(minute)
}

fn hh_mm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl Calendar {
    /// Open all the time, in UTC, without holidays: business time is calendar time.
    pub fn always_open() -> Self {
        Self {
            timezone: Tz::UTC,
            week: std::array::from_fn(|_| vec![(0, 24 * 60)]),
            holidays: BTreeSet::new(),
        }
    }

    /// Checks `spec`.
    pub fn parse(spec: &CalendarSpec) -> Result<Self, CalendarError> {
        let timezone: Tz = spec.timezone.parse().map_err(|_| {
            CalendarError::UnknownTimezone(spec.timezone.chars().take(64).collect())
        })?;
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for (day, intervals) in &spec.hours {
            let index = DAYS
                .iter()
                .position(|d| d == day)
                .ok_or_else(|| CalendarError::UnknownDay(day.chars().take(16).collect()))?;
            if intervals.len() > MAX_INTERVALS_PER_DAY {
                return Err(CalendarError::TooManyIntervals);
            }
            let mut parsed = Vec::with_capacity(intervals.len());
            for [from, to] in intervals {
                let (start, end) = (minute_of(from)?, minute_of(to)?);
                if end <= start {
                    return Err(CalendarError::EmptyInterval {
                        day: day.clone(),
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
                parsed.push((start, end));
            }
            parsed.sort_unstable();
            if parsed.windows(2).any(|w| w[1].0 < w[0].1) {
                return Err(CalendarError::Overlapping(day.clone()));
            }
            week[index] = parsed;
        }
        if week.iter().all(Vec::is_empty) {
            return Err(CalendarError::NeverOpen);
        }
        if spec.holidays.len() > MAX_HOLIDAYS {
            return Err(CalendarError::TooManyHolidays);
        }
        Ok(Self {
            timezone,
            week,
            holidays: spec.holidays.iter().copied().collect(),
        })
    }

    /// The calendar written out again, in its canonical form (days in order, intervals sorted,
    /// holidays sorted without duplicates): what an event stores.
    pub fn spec(&self) -> CalendarSpec {
        let hours = DAYS
            .iter()
            .zip(&self.week)
            .filter(|(_, intervals)| !intervals.is_empty())
            .map(|(day, intervals)| {
                let written = intervals.iter().map(|&(a, b)| [hh_mm(a), hh_mm(b)]);
                (day.to_string(), written.collect())
            })
            .collect();
        CalendarSpec {
            timezone: self.timezone.name().to_string(),
            hours,
            holidays: self.holidays.iter().copied().collect(),
        }
    }

    /// One business day: the week's opening time shared out over the days that open (9 hours
    /// for 09:00-18:00 Monday to Friday, 24 hours for an always-open calendar). Resolution
    /// targets are counted in these.
    pub fn business_day(&self) -> Duration {
        let open_days = self
            .week
            .iter()
            .filter(|day| !day.is_empty())
            .count()
            .max(1);
        let minutes: i64 = self
            .week
            .iter()
            .flatten()
            .map(|&(a, b)| i64::from(b - a))
            .sum();
        Duration::minutes(minutes / i64::try_from(open_days).unwrap_or(1))
    }

    /// The instant `amount` of business time after `start` (the clock starts counting at the
    /// first opening at or after `start`). A zero or negative amount is `start` itself.
    pub fn add(&self, start: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        if amount <= Duration::zero() {
            return start;
        }
        if self.never_closed() {
            return start + amount;
        }
        let mut left = amount;
        for (open, close) in self.openings(start) {
            if close <= start {
                continue;
            }
            let from = open.max(start);
            let available = close - from;
            if left <= available {
                return from + left;
            }
            left -= available;
        }
        start + amount
    }

    /// The business time between `from` and `to` (zero when `to` is not after `from`).
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if to <= from {
            return total;
        }
        if self.never_closed() {
            return to - from;
        }
        for (open, close) in self.openings(from) {
            if open >= to {
                break;
            }
            let (a, b) = (open.max(from), close.min(to));
            if b > a {
                total += b - a;
            }
        }
        total
    }

    /// Open all day every day without holidays: business time is calendar time (in any zone).
    fn never_closed(&self) -> bool {
        self.holidays.is_empty() && self.week.iter().all(|day| day == &[(0, 24 * 60)])
    }

    /// The openings as instants, in order, from the local day before the one of `start` on,
    /// for [`HORIZON_DAYS`] days.
    fn openings(
        &self,
        start: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let first = start.with_timezone(&self.timezone).date_naive() - Duration::days(1);
        first
            .iter_days()
            .take(usize::try_from(HORIZON_DAYS).unwrap_or(usize::MAX))
            .filter(|day| !self.holidays.contains(day))
            .flat_map(move |day| {
                let weekday = day.weekday().num_days_from_monday() as usize;
                self.week[weekday].iter().filter_map(move |&(a, b)| {
                    let open = self.instant(day, a)?;
                    let close = self.instant(day, b)?;
                    (close > open).then_some((open, close))
                })
            })
    }

    /// Minute `minute` (0 to 1440) of local day `day`, as an instant: a time in a gap is the
    /// first instant after the gap, a time that exists twice the earlier one.
    fn instant(&self, day: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
        let local: NaiveDateTime = day.and_hms_opt(0, 0, 0)? + Duration::minutes(i64::from(minute));
        // Gaps last at most a day (Samoa skipped 2011-12-30); look a minute at a time.
        (0..=24 * 60).find_map(|step| {
            match self
                .timezone
                .from_local_datetime(&(local + Duration::minutes(step)))
            {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.to_utc()),
                LocalResult::None => None,
            }
        })
    }
}

/// Where the domain learns the calendar in force for an org: the binary reads it from the
/// log; tests and benchmarks give one calendar to every org ([`OneCalendar`]).
#[async_trait::async_trait]
pub trait Calendars: Send + Sync + std::fmt::Debug {
    /// The calendar in force for `org_id` now (the configured default when the org has none).
    async fn calendar_of(&self, org_id: &str) -> Result<Calendar, CalendarUnavailable>;
}

/// The calendar in force could not be read (the database is unreachable): try again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the business calendar cannot be read now: {0}")]
pub struct CalendarUnavailable(pub String);

/// The same calendar for every org.
#[derive(Debug, Clone)]
pub struct OneCalendar(pub Calendar);

#[async_trait::async_trait]
impl Calendars for OneCalendar {
    async fn calendar_of(&self, _org_id: &str) -> Result<Calendar, CalendarUnavailable> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests;
