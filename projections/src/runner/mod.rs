//! The projection runner: applies the event log to each read model, exactly once.
//!
//! Each call of [`Runner::run_once`] is one transaction that
//! 1. claims the projection with a transaction-scoped advisory lock (another process that
//!    holds it is applying the same projection, so this one stands by),
//! 2. reads the next batch after the projection's checkpoint, below the transaction horizon,
//! 3. lets the projection apply the batch, and
//! 4. moves the checkpoint to the batch's last event,
//!
//! so a crash anywhere leaves the read model and its checkpoint consistent, and no event is
//! applied twice or skipped. (Batches commit asynchronously: a crash may undo the last ones,
//! together with their checkpoint, and they are applied again.) The claim is taken with an
//! advisory lock rather than a row lock because a row lock assigns a transaction id early, and
//! every open transaction id holds the horizon back for all readers.
//!
//! This file holds the [`Runner`] and its one-batch transaction; `batch` sorts a batch into what
//! is applied and what waits, `checkpoint` reads and moves the checkpoint row, `shared` lets the
//! projections of a process share one read (and one opening) of each stretch of the log, and
//! `tasks` holds the long-running loops [`Runner::run`] spawns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::sync::watch;

use crate::dead_letters;
use crate::error::ProjectionError;
use crate::event::{read_batch_prepared, Checkpoint};
use crate::health::{Board, Health};

mod batch;
mod checkpoint;
mod shared;
mod tasks;

use self::batch::{park, parked_behind, prepare};
pub use self::checkpoint::has_applied;
use self::checkpoint::{load_checkpoint, save_checkpoint};
use self::shared::SharedReads;
pub use crate::projection::Projection;
// Re-exported so that the claim keeps its old path inside the crate; the runner takes it too.
pub(crate) use crate::projection::CLAIM_NAMESPACE;

/// The channel the events table notifies on commit (see migration V1).
pub const EVENTS_CHANNEL: &str = "subdesk_events";

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Events read and applied per transaction.
    pub batch_size: i64,
    /// How often a runner looks for events when no notification arrives.
    pub poll_interval: Duration,
    /// A projection with events waiting whose checkpoint has not moved for this long is
    /// `stalled`.
    pub stall_after: Duration,
    /// The newest migration this binary carries: when the database has a newer one (a rolling
    /// upgrade is under way), this process runs no projection. `None`: never checked.
    pub schema_version: Option<i64>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(500),
            stall_after: Duration::from_secs(30),
            schema_version: None,
        }
    }
}

pub struct Runner {
    pool: Pool,
    listen: Option<tokio_postgres::Config>,
    projections: Vec<Arc<dyn Projection>>,
    config: RunnerConfig,
    /// Bumped whenever this process moves a checkpoint; read-your-writes waiters watch it.
    advanced: watch::Sender<u64>,
    /// The same, per projection: a worker that reads one read model wakes only for it.
    advanced_by: std::collections::HashMap<&'static str, watch::Sender<u64>>,
    /// Bumped on every NOTIFY from the events table; the runner loops watch it.
    woken: watch::Sender<u64>,
    /// What the loops and the monitor know of each projection.
    board: Arc<Board>,
    /// The database is newer than this binary: no projection runs here.
    outdated: watch::Sender<bool>,
    /// Bumped by this process's command path after each append (see [`Runner::announcing`]).
    appends: Option<watch::Receiver<u64>>,
    /// The last stretch of the log read, shared by all the projections here.
    shared: SharedReads,
}

impl Runner {
    /// `listen` is where to open the `LISTEN` connection; without it the runner only polls.
    pub fn new(
        pool: Pool,
        listen: Option<tokio_postgres::Config>,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Self {
        let board = Arc::new(Board::default());
        let names: Vec<&'static str> = projections.iter().map(|p| p.name()).collect();
        board.init(&names);
        Self {
            pool,
            listen,
            projections,
            config,
            advanced: watch::channel(0).0,
            advanced_by: names.iter().map(|n| (*n, watch::channel(0).0)).collect(),
            woken: watch::channel(0).0,
            board,
            outdated: watch::channel(false).0,
            appends: None,
            shared: SharedReads::default(),
        }
    }

    /// This process's command path appends without the events table's NOTIFY and bumps
    /// `appends` instead: [`Runner::run`] then wakes the projections here at once and tells
    /// other processes with one NOTIFY per few milliseconds, however many appends there were.
    pub fn announcing(mut self, appends: watch::Receiver<u64>) -> Self {
        self.appends = Some(appends);
        self
    }

    /// Each projection's state, checkpoint and failures, the horizon, and whether this binary
    /// is outdated, as of the monitor's last sample (once a second while `run` runs).
    pub fn health(&self) -> Health {
        self.board.health()
    }

    /// Whether the database carries migrations newer than this binary: true while a rolling
    /// upgrade is under way, and then nothing that writes derived state may run here.
    pub fn outdated(&self) -> watch::Receiver<bool> {
        self.outdated.subscribe()
    }

    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    pub fn projection(&self, name: &str) -> Option<&Arc<dyn Projection>> {
        self.projections.iter().find(|p| p.name() == name)
    }

    /// A receiver that changes whenever this process applies a batch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.advanced.subscribe()
    }

    /// A receiver that changes whenever this process applies a batch to projection `name`
    /// (any projection's batch when there is no such projection).
    pub fn subscribe_to(&self, name: &str) -> watch::Receiver<u64> {
        self.advanced_by
            .get(name)
            .map_or_else(|| self.advanced.subscribe(), watch::Sender::subscribe)
    }

    /// Drops the events read and opened for the projections here: called when an erasure has
    /// destroyed keys, so that no event opened before it is applied after it.
    pub fn forget_read_events(&self) {
        self.shared.forget();
    }

    /// Tells the waiters that `name` moved its checkpoint.
    fn advanced(&self, name: &str) {
        self.advanced.send_modify(|v| *v = v.wrapping_add(1));
        if let Some(one) = self.advanced_by.get(name) {
            one.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Creates the checkpoint rows that do not exist yet (at start, before any batch, so a
    /// batch transaction never needs a write before its read).
    pub async fn ensure_checkpoints(&self) -> Result<(), ProjectionError> {
        let client = self.pool.get().await?;
        for projection in &self.projections {
            client
                .execute(
                    "INSERT INTO projection_checkpoints (name) VALUES ($1) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&projection.name()],
                )
                .await?;
        }
        Ok(())
    }

    /// Applies at most one batch to `projection`. Returns how many events it applied: 0 when
    /// there is nothing new below the horizon, when another process holds the claim, or when
    /// the next event is one this binary does not know (the projection is then `blocked`).
    pub async fn run_once(&self, projection: &dyn Projection) -> Result<usize, ProjectionError> {
        let started = Instant::now();
        let name = projection.name();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The batch commits without waiting for its WAL flush (synchronous_commit off, for
        // this transaction only): a crash can lose the last batches, but never a batch
        // without its checkpoint, since both are in this transaction, so the runner applies
        // them again. Its transaction id is released that much sooner, and every open
        // transaction id holds the read horizon back for all readers: under load the
        // projections' flushes were a large part of their commit-to-visible delay.
        let claim = tx
            .prepare_cached(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS claimed, \
                        set_config('synchronous_commit', 'off', true)",
            )
            .await?;
        let claimed: bool = tx
            .query_one(&claim, &[&CLAIM_NAMESPACE, &name])
            .await?
            .try_get("claimed")?;
        if !claimed {
            return Ok(0);
        }
        let after = load_checkpoint(&tx, name).await?;
        let events = self.shared.read(&tx, after, self.config.batch_size).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let parked = dead_letters::parked_streams(&tx, name).await?;
        let batch = prepare(projection, events, &parked);
        self.board.block(name, batch.blocked.clone());
        let Some(end) = batch.end else {
            return Ok(0);
        };
        if let Err(error) = projection.apply(&tx, &batch.apply).await {
            if !error.is_deterministic() {
                return Err(error);
            }
            drop(tx);
            drop(client);
            tracing::warn!(projection = name, %error, "batch refused; applying it event by event");
            return self.isolate(projection, after).await;
        }
        park(&tx, name, &batch.parked).await?;
        let applied = batch.apply.len() + batch.parked.len();
        save_checkpoint(&tx, name, end, applied).await?;
        tx.commit().await?;

        self.advanced(name);
        metrics::counter!("subdesk_projection_events_total", "projection" => name)
            .increment(applied as u64);
        metrics::histogram!("subdesk_projection_batch_seconds", "projection" => name)
            .record(started.elapsed().as_secs_f64());
        Ok(applied)
    }

    /// Applies batches to every projection until none has anything left below the horizon.
    /// Tests call this to drain the log deterministically.
    pub async fn catch_up(&self) -> Result<usize, ProjectionError> {
        let mut total = 0;
        loop {
            let mut round = 0;
            for projection in &self.projections {
                round += self.run_once(projection.as_ref()).await?;
            }
            if round == 0 {
                return Ok(total);
            }
            total += round;
        }
    }
    /// Applies the batch after `after` one event at a time, each under a savepoint: an event
    /// that fails on its own with a deterministic error is recorded as `failed` in
    /// `projection_dead_letters` and the later events of its stream are `parked` behind it, so
    /// that one bad event cannot stop the read model (and everything that waits for it) for
    /// every tenant, nor let its stream be applied out of order. The others are applied and the
    /// checkpoint moves past the batch, all in one transaction as usual.
    async fn isolate(
        &self,
        projection: &dyn Projection,
        after: Checkpoint,
    ) -> Result<usize, ProjectionError> {
        let name = projection.name();
        let mut client = self.pool.get().await?;
        let mut tx = client.transaction().await?;
        let claimed: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS claimed",
                &[&CLAIM_NAMESPACE, &name],
            )
            .await?
            .try_get("claimed")?;
        if !claimed || load_checkpoint(&tx, name).await? != after {
            return Ok(0);
        }
        let events = read_batch_prepared(&tx, after, self.config.batch_size).await?;
        let mut parked_streams = dead_letters::parked_streams(&tx, name).await?;
        let batch = prepare(projection, events, &parked_streams);
        let Some(end) = batch.end else {
            return Ok(0);
        };
        park(&tx, name, &batch.parked).await?;
        let mut count = batch.parked.len();
        for event in &batch.apply {
            count += 1;
            let stream = (event.aggregate_type.clone(), event.aggregate_id.clone());
            if parked_streams.contains(&stream) {
                dead_letters::record(&*tx, name, event, "parked", &parked_behind(event)).await?;
                continue;
            }
            let savepoint = tx.savepoint("event").await?;
            match projection
                .apply(&savepoint, std::slice::from_ref(event))
                .await
            {
                Ok(()) => savepoint.commit().await?,
                Err(error) if error.is_deterministic() => {
                    savepoint.rollback().await?;
                    tracing::error!(
                        projection = name,
                        position = event.position,
                        event_type = %event.event_type,
                        %error,
                        "event set aside: the projection cannot apply it; the later events \
                         of its stream are parked behind it"
                    );
                    dead_letters::record(&*tx, name, event, "failed", &error.to_string()).await?;
                    parked_streams.insert(stream);
                }
                Err(error) => return Err(error),
            }
        }
        save_checkpoint(&tx, name, end, count).await?;
        tx.commit().await?;
        self.advanced(name);
        Ok(count)
    }
}
