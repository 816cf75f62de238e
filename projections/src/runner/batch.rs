//! Sorting a batch read after the checkpoint into what the projection applies and what waits:
//! the batch stops at an event this binary does not know (the projection is then blocked), and
//! the events of streams with a set-aside event are parked behind it. Separate from the runner's
//! transaction because the batch and its event-by-event retry (`isolate`) sort the same way.

use std::collections::HashSet;

use deadpool_postgres::Transaction;
use subdesk_aggregates::upcast::{knowledge, Knowledge};

use crate::dead_letters::{self, Stream};
use crate::error::ProjectionError;
use crate::event::{Checkpoint, StoredEvent};
use crate::health::Blocked;
use crate::projection::Projection;

/// A batch as the runner applies it.
pub(super) struct Batch {
    /// Events to apply, in order.
    pub(super) apply: Vec<StoredEvent>,
    /// Events of streams with a set-aside event: parked behind it, not applied.
    pub(super) parked: Vec<StoredEvent>,
    /// Where the checkpoint goes when the batch is done (its last event before any block).
    pub(super) end: Option<Checkpoint>,
    /// An event this binary does not know stops the batch there.
    pub(super) blocked: Option<Blocked>,
}

/// Sorts a batch read after the checkpoint: it ends before the first event of a followed
/// aggregate type that this binary does not know (which blocks the projection), and the events
/// of streams with a set-aside event are parked instead of applied.
pub(super) fn prepare(
    projection: &dyn Projection,
    events: Vec<StoredEvent>,
    parked: &HashSet<Stream>,
) -> Batch {
    let followed = projection.aggregate_types();
    let mut batch = Batch {
        apply: Vec::with_capacity(events.len()),
        parked: Vec::new(),
        end: None,
        blocked: None,
    };
    for event in events {
        if followed.contains(&event.aggregate_type.as_str())
            && knowledge(
                &event.aggregate_type,
                &event.event_type,
                &event.event_version,
            ) == Knowledge::Unknown
        {
            batch.blocked = Some(Blocked {
                position: event.position,
                aggregate_type: event.aggregate_type.clone(),
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                reason: format!(
                    "this binary does not know {} v{} of {} (written by a newer release?): the \
                     projection waits for a binary that does",
                    event.event_type, event.event_version, event.aggregate_type
                ),
            });
            break;
        }
        batch.end = Some(event.checkpoint());
        if !parked.is_empty()
            && parked.contains(&(event.aggregate_type.clone(), event.aggregate_id.clone()))
        {
            batch.parked.push(event);
        } else {
            batch.apply.push(event);
        }
    }
    batch
}

pub(super) fn parked_behind(event: &StoredEvent) -> String {
    format!(
        "parked: an earlier event of {}/{} was set aside",
        event.aggregate_type, event.aggregate_id
    )
}

/// Records `events` as parked behind their streams' set-aside events.
pub(super) async fn park(
    tx: &Transaction<'_>,
    name: &str,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    for event in events {
        dead_letters::record(&**tx, name, event, "parked", &parked_behind(event)).await?;
    }
    Ok(())
}
