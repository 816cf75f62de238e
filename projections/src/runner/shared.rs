//! One read of the log for all the projections of a process.
//!
//! Every projection loop reads the batch after its own checkpoint; near the head they all read
//! the same events, and each read selects the events with their wrapped keys and opens the
//! sealed ones (see `crate::privacy`): seven projections meant seven reads and seven openings of
//! every event. [`SharedReads`] keeps the last events read as one contiguous stretch of the
//! catch-up order and hands a projection whose checkpoint falls inside it the events after its
//! checkpoint; one read at a time goes to the database, so the loops woken together by a commit
//! wait for the first one's read instead of each making their own.
//!
//! Why a stretch is safe to reuse: a batch read is every event after `after` whose transaction
//! id lies below the horizon (no transaction below it is still running), up to its last event
//! `end`. No transaction that commits later can have an id below that horizon, and events are
//! never changed or deleted, so the stretch `(after, end]` is the whole log there for good, and
//! every reader with a checkpoint inside it gets from it exactly what its own read would return
//! (possibly fewer events). What can change is how a sealed event opens: an erasure destroys
//! keys, so [`SharedReads::forget`] drops the stretch, and a read that was under way when it was
//! called does not keep its events.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use deadpool_postgres::Transaction;

use crate::error::ProjectionError;
use crate::event::{read_batch_prepared, Checkpoint, StoredEvent};

/// How many events the stretch keeps, in batches: enough for projections a few batches apart
/// to share, little enough to stay a few megabytes.
const KEPT_BATCHES: usize = 4;

#[derive(Default)]
struct Stretch {
    /// The reads it holds cover every event after this point up to its last event.
    after: Checkpoint,
    events: VecDeque<StoredEvent>,
}

impl Stretch {
    fn end(&self) -> Option<Checkpoint> {
        self.events.back().map(checkpoint_of)
    }

    /// The events after `from`, at most `limit`, when `from` lies inside the stretch and an
    /// event follows it there.
    fn after(&self, from: Checkpoint, limit: usize) -> Option<Vec<StoredEvent>> {
        let end = self.end()?;
        if from < self.after || from >= end {
            return None;
        }
        let first = self.events.partition_point(|e| checkpoint_of(e) <= from);
        Some(self.events.range(first..).take(limit).cloned().collect())
    }

    /// Takes in a read of the events after `from`: extends the stretch when the read starts at
    /// its end, replaces it otherwise; keeps the newest `keep` events.
    fn take_in(&mut self, from: Checkpoint, read: &[StoredEvent], keep: usize) {
        let Some(last) = read.last() else {
            return;
        };
        let reaches = match self.end() {
            Some(end) => from >= self.after && from <= end,
            None => false,
        };
        if reaches {
            // Keep the part of the stretch up to `from` and append the read after it.
            let cut = self.events.partition_point(|e| checkpoint_of(e) <= from);
            self.events.truncate(cut);
        } else {
            self.events.clear();
            self.after = from;
        }
        debug_assert!(self.end().is_none_or(|end| end < checkpoint_of(&read[0])));
        self.events.extend(read.iter().cloned());
        while self.events.len() > keep {
            if let Some(dropped) = self.events.pop_front() {
                self.after = checkpoint_of(&dropped);
            }
        }
        debug_assert_eq!(self.end(), Some(checkpoint_of(last)));
    }
}

fn checkpoint_of(event: &StoredEvent) -> Checkpoint {
    Checkpoint {
        tx_id: event.tx_id,
        position: event.position,
    }
}

/// The last stretch of the log read by this process's projection loops (see the module).
#[derive(Default)]
pub(super) struct SharedReads {
    stretch: Mutex<Stretch>,
    /// One read of the database at a time: the loops woken together wait for it.
    reading: tokio::sync::Mutex<()>,
    /// Bumped by [`SharedReads::forget`]; a read that began before keeps nothing.
    forgotten: AtomicU64,
}

impl SharedReads {
    /// The events after `after` as [`read_batch_prepared`] on `tx` would return them, at most
    /// `limit` (possibly fewer: a stretch ends where the last read ended).
    pub(super) async fn read(
        &self,
        tx: &Transaction<'_>,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, ProjectionError> {
        let wanted = usize::try_from(limit).unwrap_or(0).max(1);
        if let Some(events) = self.cached(after, wanted) {
            metrics::counter!("subdesk_projection_shared_reads_total", "outcome" => "shared")
                .increment(1);
            return Ok(events);
        }
        let _reading = self.reading.lock().await;
        // Another loop's read may have brought these events while this one waited.
        if let Some(events) = self.cached(after, wanted) {
            metrics::counter!("subdesk_projection_shared_reads_total", "outcome" => "waited")
                .increment(1);
            return Ok(events);
        }
        let generation = self.forgotten.load(Ordering::Acquire);
        let events = read_batch_prepared(tx, after, limit).await?;
        metrics::counter!("subdesk_projection_shared_reads_total", "outcome" => "read")
            .increment(1);
        let mut stretch = self.lock();
        if self.forgotten.load(Ordering::Acquire) == generation {
            stretch.take_in(after, &events, wanted.saturating_mul(KEPT_BATCHES));
        }
        Ok(events)
    }

    fn cached(&self, after: Checkpoint, limit: usize) -> Option<Vec<StoredEvent>> {
        self.lock().after(after, limit)
    }

    /// Drops what was read: an erasure has destroyed keys, and events opened before it must
    /// not be applied after it.
    pub(super) fn forget(&self) {
        let mut stretch = self.lock();
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        *stretch = Stretch::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stretch> {
        // A panic while holding it leaves a stretch that is still whole (every change to it
        // completes before the guard drops or panics first), so a poisoned lock is taken over.
        self.stretch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(tx_id: i64, position: i64) -> StoredEvent {
        StoredEvent {
            position,
            tx_id,
            aggregate_type: "SupportCase".into(),
            aggregate_id: format!("c{position}"),
            sequence: 1,
            event_type: "CaseOpened".into(),
            event_version: "1".into(),
            payload: json!({}),
            metadata: json!({}),
            recorded_at: chrono::Utc::now(),
            sealed: false,
        }
    }

    fn at(tx_id: i64, position: i64) -> Checkpoint {
        Checkpoint { tx_id, position }
    }

    fn got(events: Option<Vec<StoredEvent>>) -> Vec<i64> {
        events
            .expect("events from the stretch")
            .iter()
            .map(|e| e.position)
            .collect()
    }

    #[test]
    fn given_a_read_when_a_checkpoint_inside_it_asks_then_it_gets_the_events_after_it() {
        let mut stretch = Stretch::default();
        stretch.take_in(at(10, 1), &[event(10, 2), event(11, 3), event(12, 5)], 100);
        assert_eq!(got(stretch.after(at(10, 1), 10)), [2, 3, 5]);
        assert_eq!(got(stretch.after(at(11, 3), 10)), [5]);
        assert_eq!(got(stretch.after(at(10, 2), 1)), [3]);
        // A point between two events of the stretch: what follows it is still complete.
        assert_eq!(got(stretch.after(at(11, 4), 10)), [5]);
    }

    #[test]
    fn given_a_read_when_a_checkpoint_outside_it_asks_then_it_must_read_itself() {
        let mut stretch = Stretch::default();
        assert!(stretch.after(at(0, 0), 10).is_none());
        stretch.take_in(at(10, 1), &[event(10, 2), event(11, 3)], 100);
        assert!(stretch.after(at(9, 9), 10).is_none(), "before the stretch");
        assert!(stretch.after(at(11, 3), 10).is_none(), "at its end");
        assert!(stretch.after(at(12, 0), 10).is_none(), "past its end");
    }

    #[test]
    fn given_a_stretch_when_a_read_continues_it_then_it_grows_and_keeps_only_the_newest() {
        let mut stretch = Stretch::default();
        stretch.take_in(at(10, 1), &[event(10, 2), event(11, 3)], 3);
        stretch.take_in(at(11, 3), &[event(12, 4), event(13, 6)], 3);
        assert_eq!(got(stretch.after(at(11, 3), 10)), [4, 6]);
        // Four events read, three kept: the stretch now begins after the dropped one.
        assert!(stretch.after(at(10, 1), 10).is_none());
        assert_eq!(got(stretch.after(at(10, 2), 10)), [3, 4, 6]);
    }

    #[test]
    fn given_a_stretch_when_a_read_starts_elsewhere_then_it_replaces_it() {
        let mut stretch = Stretch::default();
        stretch.take_in(at(10, 1), &[event(10, 2), event(11, 3)], 100);
        stretch.take_in(at(20, 7), &[event(20, 8)], 100);
        assert!(stretch.after(at(10, 1), 10).is_none());
        assert_eq!(got(stretch.after(at(20, 7), 10)), [8]);
        // A read from inside the stretch (a lagging projection) overlaps it: it is replaced
        // from that point on, never duplicated.
        stretch.take_in(at(20, 7), &[event(20, 8), event(21, 9)], 100);
        assert_eq!(got(stretch.after(at(20, 7), 10)), [8, 9]);
    }

    #[tokio::test]
    async fn given_a_stretch_when_forgotten_then_nothing_is_handed_out() {
        let shared = SharedReads::default();
        shared
            .lock()
            .take_in(at(10, 1), &[event(10, 2), event(11, 3)], 100);
        assert!(shared.cached(at(10, 1), 10).is_some());
        shared.forget();
        assert!(shared.cached(at(10, 1), 10).is_none());
    }
}
