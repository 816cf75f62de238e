//! The days a report covers.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{DEFAULT_DAYS, MAX_DAYS};

/// A period no report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPeriod {
    #[error("`from` must not be after `to`")]
    Backwards,
    #[error("a report covers at most {MAX_DAYS} days")]
    TooLong,
}

/// The days a report covers, UTC, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"from": "2026-03-01", "to": "2026-03-30"}))]
pub struct Period {
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
}

impl Period {
    /// The period of `from` / `to`, defaulting to the [`DEFAULT_DAYS`] up to `today`.
    pub fn resolve(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Self, InvalidPeriod> {
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
        if from > to {
            return Err(InvalidPeriod::Backwards);
        }
        if (to - from).num_days() + 1 > MAX_DAYS {
            return Err(InvalidPeriod::TooLong);
        }
        Ok(Self { from, to })
    }

    /// The first instant of the period.
    pub fn start(&self) -> DateTime<Utc> {
        self.from.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// The first instant after the period.
    pub fn end(&self) -> DateTime<Utc> {
        (self.to + Duration::days(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    /// The months the period touches, as `YYYY-MM`.
    pub fn months(&self) -> Vec<String> {
        let mut months = Vec::new();
        let (mut year, mut month) = (self.from.year(), self.from.month());
        while (year, month) <= (self.to.year(), self.to.month()) {
            months.push(format!("{year:04}-{month:02}"));
            (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
        }
        months
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn the_default_period_is_the_thirty_days_up_to_today() {
        let period = Period::resolve(None, None, day(2026, 3, 30)).expect("period");
        assert_eq!(period.from, day(2026, 3, 1));
        assert_eq!(period.days().count(), 30);
        assert_eq!(period.months(), ["2026-03"]);
    }

    #[test]
    fn a_period_backwards_or_longer_than_two_years_is_refused() {
        assert!(Period::resolve(
            Some(day(2026, 3, 2)),
            Some(day(2026, 3, 1)),
            day(2026, 3, 2)
        )
        .is_err());
        assert!(Period::resolve(Some(day(2020, 1, 1)), None, day(2026, 3, 2)).is_err());
    }

    #[test]
    fn months_run_across_the_year_end() {
        let period = Period::resolve(
            Some(day(2025, 11, 15)),
            Some(day(2026, 1, 2)),
            day(2026, 3, 2),
        )
        .expect("period");
        assert_eq!(period.months(), ["2025-11", "2025-12", "2026-01"]);
    }
}
