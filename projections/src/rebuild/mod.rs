//! Rebuilding a read model from the log, and checking a live one against a fresh rebuild.
//!
//! A rebuild replays the whole log through the projection into shadow tables in a schema of
//! their own (`rebuild_<name>`), selected through `search_path`, so the projection code runs
//! unchanged. The API keeps reading the live tables meanwhile. When the shadow has caught up,
//! one transaction takes the projection's claim (pausing its live runner), applies the last
//! events, drops the live tables, moves the shadow tables into their place, and sets the
//! checkpoint. Constraint and index names are recreated exactly, so later migrations can refer
//! to them.
//!
//! Rebuilding several projections ([`rebuild_all`], `projections rebuild --all`) reads the log
//! once: each batch is applied to every shadow at the same time, on a connection each, while
//! the next batch is read, so the reading, the decoding and the writing of the read models
//! overlap instead of running one after the other, three times over.
//!
//! A drift check builds the same shadow up to the live checkpoint and compares the two row by
//! row, then drops the shadow.
//!
//! Rebuilds and checks of one projection exclude each other across processes: each holds a
//! session advisory lock per projection for its whole run (on a connection of its own, closed
//! at the end, so a lost process releases it), and a second one is refused at once with
//! [`ProjectionError::Busy`], naming the holder. Only the holder creates and drops the shadow
//! schema, and every transaction that writes to the shadow first locks its tables by their
//! qualified names, so a shadow that is gone fails the transaction instead of letting its
//! writes fall through the `search_path` to the live tables.
//!
//! Events an operator skipped (`subdesk projections skip`) are skipped by rebuilds too; a
//! drift check also leaves out the failed and parked ones, as the live read model does.
//!
//! This file holds the rebuild itself: the one pass over the log into the shadows. `locks` takes
//! the exclusive right and the projection's claim, `shadow` creates and selects the shadow
//! schema, `replay` reads the log into it, `swap` applies the last events and swaps it in, and
//! `drift` is the drift check.

use std::time::Instant;

use deadpool_postgres::Pool;
use serde::Serialize;

use crate::error::ProjectionError;
use crate::event::{current_xmax, horizon_passed, Checkpoint, StoredEvent};
use crate::projection::Projection;

mod drift;
mod locks;
mod replay;
mod shadow;
mod swap;

pub use self::drift::{check, DriftReport, TableDrift};
use self::locks::exclusive;
pub use self::replay::REBUILD_BATCH;
use self::replay::{apply_to_shadow, count_events, read_ahead, without};
use self::shadow::Shadow;
use self::swap::finish_and_swap;

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projection: String,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}
/// Rebuilds `projection` from the whole log and swaps the result in. `progress` is called
/// with (events applied, events in the log) after each batch.
pub async fn rebuild(
    pool: &Pool,
    projection: &dyn Projection,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<RebuildReport, ProjectionError> {
    let reports = rebuild_all(pool, &[projection], progress).await?;
    reports.into_iter().next().ok_or_else(|| {
        ProjectionError::Internal("the rebuild of one projection reported none".into())
    })
}

/// Rebuilds several projections from one pass over the log: each batch is read (and its rows
/// decoded) once, applied to every projection at the same time, each in its own transaction
/// on its own connection, while the next batch is being read. The pool needs a connection
/// per projection and one more. Then each shadow is swapped in as [`rebuild`] does.
pub async fn rebuild_all(
    pool: &Pool,
    projections: &[&dyn Projection],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<RebuildReport>, ProjectionError> {
    let started = Instant::now();
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    let exclusive = exclusive(pool, &names).await?;
    let mut shadows = Vec::with_capacity(projections.len());
    let mut skips = Vec::with_capacity(projections.len());
    for projection in projections {
        shadows.push(Shadow::create(pool, *projection).await?);
        let client = pool.get().await?;
        skips.push(crate::dead_letters::skipped_positions(&**client, projection.name()).await?);
    }
    let total = count_events(pool).await?;
    // Replay at least everything committed before the rebuild started, even while other
    // transactions hold the horizon back for a moment (bounded: the live runner applies
    // whatever a rebuild leaves behind).
    let reader = pool.get().await?;
    let target = current_xmax(&**reader).await?;
    let patience = Instant::now() + std::time::Duration::from_secs(30);
    let mut applied = 0u64;
    let mut at = Checkpoint::START;
    let mut next = read_ahead(&reader, at).await?;
    loop {
        let events = std::mem::take(&mut next);
        let Some(last) = events.last().map(StoredEvent::checkpoint) else {
            if horizon_passed(&**reader, target).await? || Instant::now() > patience {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            next = read_ahead(&reader, at).await?;
            continue;
        };
        let apply =
            futures::future::try_join_all(projections.iter().zip(&shadows).zip(&skips).map(
                |((projection, shadow), skip)| {
                    apply_to_shadow(pool, *projection, shadow, without(&events, skip))
                },
            ));
        let (_, read) = tokio::try_join!(apply, read_ahead(&reader, last))?;
        next = read;
        at = last;
        applied += events.len() as u64;
        progress(applied, total.max(applied));
    }
    drop(reader);

    let mut reports = Vec::with_capacity(projections.len());
    for ((projection, shadow), skip) in projections.iter().zip(&shadows).zip(&skips) {
        shadow.create_indexes(pool).await?;
        let mine = finish_and_swap(pool, *projection, shadow, at, applied, skip).await?;
        progress(mine, total.max(mine));
        let seconds = started.elapsed().as_secs_f64();
        reports.push(RebuildReport {
            projection: projection.name().to_string(),
            events: mine,
            seconds,
            events_per_second: mine as f64 / seconds.max(1e-9),
        });
    }
    exclusive.release().await;
    Ok(reports)
}
