//! The keyset cursor of every list of resources: the sort key of the last item of a page and
//! its id, as an opaque string (`next_cursor` in an answer, `cursor` in the next request).
//! Feeds over the log page by log position instead (`after` / `next`).

use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where a page ended: the last item's sort instant and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form: base64url (no padding) of `<microseconds>.<uuid>`.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}.{}",
            self.at.timestamp_micros(),
            self.id
        ))
    }

    /// A cursor this server issued, or `None` (also for an instant no database stores).
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, id) = text.split_once('.')?;
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .filter(storable)?;
        Some(Self {
            at,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The page of at most `limit` items of `rows` (read with `limit + 1` to learn whether more
/// follow), with the cursor of the next page when more do; `key` is an item's sort instant and
/// id.
pub fn page<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> (Vec<T>, Option<String>) {
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next = more.then(|| rows.last()).flatten().map(|last| {
        let (at, id) = key(last);
        Cursor { at, id }.encode()
    });
    (rows, next)
}

/// Whether PostgreSQL stores the instant (chrono reaches further).
pub fn storable(at: &DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&at.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_at_the_limit_and_points_past_its_last_item() {
        let at = DateTime::from_timestamp_micros(1_772_442_000_000_000).expect("instant");
        let rows: Vec<u128> = (1..=4).collect();
        let key = |n: &u128| (at, Uuid::from_u128(*n));
        let (items, next) = page(rows.clone(), 3, key);
        assert_eq!(items, vec![1, 2, 3]);
        let next = Cursor::decode(&next.expect("a next page")).expect("a cursor");
        assert_eq!(next.id, Uuid::from_u128(3));
        assert_eq!(page(rows[..3].to_vec(), 3, key), (vec![1, 2, 3], None));
        assert_eq!(page(Vec::<u128>::new(), 3, key), (vec![], None));
    }

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_772_442_000_123_456).expect("instant");
        let cursor = Cursor {
            at,
            id: Uuid::from_u128(42),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "not-base64!", "bm9wZQ"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        let far = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}.{}",
            i64::MAX,
            Uuid::nil()
        ));
        assert_eq!(Cursor::decode(&far), None, "beyond what PostgreSQL stores");
    }
}
