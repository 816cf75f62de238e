//! How long a term is: renewals, reactivations and the subscriptions split off a collection
//! all start a term as long as the one before.

use chrono::{DateTime, Datelike, Months, Utc};

/// The end of a term that starts at `from` and is as long as `start..end`. A term of whole
/// calendar months (a month, a year) stays whole months, so a yearly subscription renews on
/// the same date every year, leap years included; any other term keeps its exact duration.
pub fn term_end_from(
    from: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> DateTime<Utc> {
    let months = (end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32;
    if let Ok(months) = u32::try_from(months) {
        if months > 0 && start.checked_add_months(Months::new(months)) == Some(end) {
            if let Some(next) = from.checked_add_months(Months::new(months)) {
                return next;
            }
        }
    }
    from + (end - start)
}

/// The term that follows `start..end`.
pub fn next_term(start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (end, term_end_from(end, start, end))
}
