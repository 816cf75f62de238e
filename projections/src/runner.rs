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

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::{Pool, Transaction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::event::{read_batch_prepared, Checkpoint, StoredEvent};
use crate::ProjectionError;

/// Namespace of the advisory locks that claim projections (first half of the lock key).
pub(crate) const CLAIM_NAMESPACE: i32 = 0x5d5c;

/// How long a runner woken by a notification waits before reading, so that the commits of
/// the next moments are applied in the same batch (see bench/RESULTS.md).
const COALESCE: Duration = Duration::from_millis(3);

/// The channel the events table notifies on commit (see migration V1).
pub const EVENTS_CHANNEL: &str = "subdesk_events";

/// A read model: a name, a checkpoint row, and a fold of event batches into SQL.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name: the key of the checkpoint row and of `subdesk projections rebuild NAME`.
    fn name(&self) -> &'static str;

    /// The tables this projection owns, created by migrations. A rebuild recreates them
    /// from the log; tables it only appends to idempotently (the notifications outbox) are not
    /// listed, so a rebuild writes through to them and keeps what was already sent.
    fn tables(&self) -> &'static [&'static str];

    /// Whether a rebuild may replay the log through this projection. Process managers, which
    /// issue commands, answer false: replaying history must never append anything.
    fn rebuildable(&self) -> bool {
        true
    }

    /// Applies a batch, in catch-up order, inside the runner's transaction. Must not commit.
    /// Events of aggregate types it does not know are skipped.
    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError>;
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Events read and applied per transaction.
    pub batch_size: i64,
    /// How often a runner looks for events when no notification arrives.
    pub poll_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(500),
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
    /// Bumped on every NOTIFY from the events table; the runner loops watch it.
    woken: watch::Sender<u64>,
}

impl Runner {
    /// `listen` is where to open the `LISTEN` connection; without it the runner only polls.
    pub fn new(
        pool: Pool,
        listen: Option<tokio_postgres::Config>,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Self {
        Self {
            pool,
            listen,
            projections,
            config,
            advanced: watch::channel(0).0,
            woken: watch::channel(0).0,
        }
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
    /// there is nothing new below the horizon, or when another process holds the claim.
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
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2)), \
                        set_config('synchronous_commit', 'off', true)",
            )
            .await?;
        let claimed: bool = tx
            .query_one(&claim, &[&CLAIM_NAMESPACE, &name])
            .await?
            .get(0);
        if !claimed {
            return Ok(0);
        }
        let after = load_checkpoint(&tx, name).await?;
        let events = read_batch_prepared(&tx, after, self.config.batch_size).await?;
        let Some(last) = events.last() else {
            return Ok(0);
        };
        if let Err(error) = projection.apply(&tx, &events).await {
            if !error.is_deterministic() {
                return Err(error);
            }
            drop(tx);
            drop(client);
            tracing::warn!(projection = name, %error, "batch refused; applying it event by event");
            return self.isolate(projection, after).await;
        }
        save_checkpoint(&tx, name, last.checkpoint(), events.len()).await?;
        tx.commit().await?;

        let applied = events.len();
        self.advanced.send_modify(|v| *v = v.wrapping_add(1));
        metrics::counter!("subdesk_projection_events_total", "projection" => name)
            .increment(applied as u64);
        metrics::histogram!("subdesk_projection_batch_seconds", "projection" => name)
            .record(started.elapsed().as_secs_f64());
        let lag = (Utc::now() - last.recorded_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!("subdesk_projection_lag_seconds", "projection" => name).set(lag);
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

    /// Runs every projection until `shutdown` is cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if let Err(error) = self.ensure_checkpoints().await {
            tracing::warn!(%error, "projection checkpoints not ready yet; runners will retry");
        }
        let mut tasks = Vec::new();
        if let Some(config) = self.listen.clone() {
            let woken = self.woken.clone();
            // A reconnect also bumps `woken`, since notifications may have been missed.
            let listening = crate::listen::listen(
                config,
                EVENTS_CHANNEL,
                move |_| woken.send_modify(|v| *v = v.wrapping_add(1)),
                shutdown.clone(),
            );
            tasks.push(tokio::spawn(listening));
        }
        for projection in self.projections.clone() {
            let runner = Arc::clone(&self);
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                runner.projection_loop(projection, shutdown).await;
            }));
        }
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "projection task ended abnormally");
            }
        }
    }

    /// Applies the batch after `after` one event at a time, each under a savepoint: an event
    /// that fails on its own with a deterministic error is recorded in
    /// `projection_dead_letters` and skipped, so that one bad event cannot stop the read model
    /// (and everything that waits for it) for every tenant. The others are applied and the
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
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                &[&CLAIM_NAMESPACE, &name],
            )
            .await?
            .get(0);
        if !claimed || load_checkpoint(&tx, name).await? != after {
            return Ok(0);
        }
        let events = read_batch_prepared(&tx, after, self.config.batch_size).await?;
        let Some(last) = events.last().map(StoredEvent::checkpoint) else {
            return Ok(0);
        };
        for event in &events {
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
                        "event set aside: the projection cannot apply it"
                    );
                    metrics::counter!("subdesk_projection_dead_letters_total", "projection" => name)
                        .increment(1);
                    tx.execute(
                        "INSERT INTO projection_dead_letters \
                             (projection, position, tx_id, event_type, error) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        &[
                            &name,
                            &event.position,
                            &event.tx_id,
                            &event.event_type,
                            &error.to_string(),
                        ],
                    )
                    .await?;
                }
                Err(error) => return Err(error),
            }
        }
        save_checkpoint(&tx, name, last, events.len()).await?;
        tx.commit().await?;
        self.advanced.send_modify(|v| *v = v.wrapping_add(1));
        Ok(events.len())
    }

    async fn projection_loop(&self, projection: Arc<dyn Projection>, shutdown: CancellationToken) {
        let mut woken = self.woken.subscribe();
        let mut failures: u32 = 0;
        // After a wake-up that found nothing, look again a few times at short intervals: the
        // event that caused the notification may still sit above the horizon behind an older
        // transaction that is about to finish.
        let mut quick_retries: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.run_once(projection.as_ref()).await {
                Ok(applied) if applied > 0 => {
                    failures = 0;
                    quick_retries = 0;
                    continue;
                }
                Ok(_) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(projection = projection.name(), %error, "projection batch failed");
                    let backoff = Duration::from_millis(100 * u64::from(failures.min(50)));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => continue,
                    }
                }
            }
            let wait = if quick_retries > 0 {
                quick_retries -= 1;
                Duration::from_millis(2)
            } else {
                self.config.poll_interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = woken.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    quick_retries = 8;
                    // Let the commits of the next few milliseconds join this batch: under
                    // load every commit notifies, and a batch per commit per projection cost
                    // the database several times what the commands themselves did.
                    tokio::time::sleep(COALESCE).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn load_checkpoint(tx: &Transaction<'_>, name: &str) -> Result<Checkpoint, ProjectionError> {
    let statement = tx
        .prepare_cached(
            "SELECT last_tx::text::bigint, last_position FROM projection_checkpoints \
             WHERE name = $1",
        )
        .await?;
    let row = tx.query_opt(&statement, &[&name]).await?;
    Ok(row.map_or(Checkpoint::START, |row| Checkpoint {
        tx_id: row.get(0),
        position: row.get(1),
    }))
}

async fn save_checkpoint(
    tx: &Transaction<'_>,
    name: &str,
    at: Checkpoint,
    applied: usize,
) -> Result<(), ProjectionError> {
    crate::rows::execute(
        tx,
        "INSERT INTO projection_checkpoints (name, last_tx, last_position, events_applied) \
         VALUES ($1, $2::text::xid8, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, \
             last_position = EXCLUDED.last_position, \
             events_applied = projection_checkpoints.events_applied + EXCLUDED.events_applied, \
             updated_at = now()",
        &[
            &name,
            &at.tx_id.to_string(),
            &at.position,
            &(applied as i64),
        ],
    )
    .await?;
    Ok(())
}

/// Whether `projection` has applied the event at `position`. `None` when no event has that
/// position (never written, or the position of a rolled-back insert).
pub async fn has_applied(
    client: &impl tokio_postgres::GenericClient,
    projection: &str,
    position: i64,
) -> Result<Option<bool>, ProjectionError> {
    let row = client
        .query_opt(
            "SELECT coalesce((SELECT (e.tx_id, e.position) <= (c.last_tx, c.last_position) \
                                FROM projection_checkpoints c WHERE c.name = $2), false) \
               FROM events e WHERE e.position = $1",
            &[&position, &projection],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}
