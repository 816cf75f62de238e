//! How the dashboard writes figures: durations and shares as people read them.

/// A duration in seconds as people read it: `45 min`, `3 h 20 min`, `2 d 4 h`.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds else {
        return "–".into();
    };
    let minutes = (seconds / 60.0).round() as i64;
    if minutes < 60 {
        return format!("{minutes} min");
    }
    let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (days, minutes) {
        (0, 0) => format!("{hours} h"),
        (0, m) => format!("{hours} h {m} min"),
        (d, _) if hours == 0 => format!("{d} d"),
        (d, _) => format!("{d} d {hours} h"),
    }
}

/// A share as a whole percentage: `97%`.
pub fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration(Some(1800.0)), "30 min");
        assert_eq!(duration(Some(3600.0)), "1 h");
        assert_eq!(duration(Some(5400.0)), "1 h 30 min");
        assert_eq!(duration(Some(2.0 * 86400.0 + 4.0 * 3600.0)), "2 d 4 h");
        assert_eq!(duration(None), "–");
    }
}
