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

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use subdesk_aggregates::upcast::{knowledge, Knowledge, AGGREGATE_TYPES};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dead_letters::{self, Stream};
use crate::event::{read_batch_prepared, Checkpoint, StoredEvent};
use crate::health::{Blocked, Board, Health, Horizon};
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

    /// The aggregate types whose events it reads. An event of one of them that this binary
    /// does not know (a newer release's type or version) blocks the projection instead of being
    /// skipped. By default every aggregate type this binary knows.
    fn aggregate_types(&self) -> &'static [&'static str] {
        &AGGREGATE_TYPES
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

/// How often the monitor samples checkpoints and the horizon.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);

/// A batch as the runner applies it.
struct Batch {
    /// Events to apply, in order.
    apply: Vec<StoredEvent>,
    /// Events of streams with a set-aside event: parked behind it, not applied.
    parked: Vec<StoredEvent>,
    /// Where the checkpoint goes when the batch is done (its last event before any block).
    end: Option<Checkpoint>,
    /// An event this binary does not know stops the batch there.
    blocked: Option<Blocked>,
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
    /// What the loops and the monitor know of each projection.
    board: Arc<Board>,
    /// The database is newer than this binary: no projection runs here.
    outdated: watch::Sender<bool>,
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
            woken: watch::channel(0).0,
            board,
            outdated: watch::channel(false).0,
        }
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

        self.advanced.send_modify(|v| *v = v.wrapping_add(1));
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

    /// Runs every projection until `shutdown` is cancelled: one loop per projection, each
    /// restarted with backoff if it panics, and a monitor that samples their health.
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
        tasks.push(tokio::spawn(Arc::clone(&self).monitor(shutdown.clone())));
        for projection in self.projections.clone() {
            let runner = Arc::clone(&self);
            let board = Arc::clone(&self.board);
            let name = projection.name();
            let shutdown = shutdown.clone();
            let run = shutdown.clone();
            tasks.push(tokio::spawn(crate::supervise::supervise(
                name,
                move || {
                    let runner = Arc::clone(&runner);
                    let projection = Arc::clone(&projection);
                    let shutdown = run.clone();
                    async move { runner.projection_loop(projection, shutdown).await }
                },
                move |why| board.restarted(name, why),
                shutdown,
            )));
        }
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "projection task ended abnormally");
            }
        }
    }

    /// Samples, once a second, every projection's checkpoint, whether events wait behind it
    /// and how old the oldest is, the transaction holding the horizon, and the schema version;
    /// names the horizon's holder in the log when a projection becomes stalled.
    async fn monitor(self: Arc<Self>, shutdown: CancellationToken) {
        let names: Vec<&'static str> = self.projections.iter().map(|p| p.name()).collect();
        loop {
            match self.sample(&names).await {
                Ok((checkpoints, horizon, outdated)) => {
                    if outdated != *self.outdated.borrow() {
                        if outdated {
                            tracing::warn!(
                                "the database has migrations newer than this binary: a rolling \
                                 upgrade is under way; this process serves the API but runs no \
                                 projection and no scheduler"
                            );
                        }
                        self.outdated.send_replace(outdated);
                    }
                    let stalled = self.board.sample(
                        &names,
                        &checkpoints,
                        horizon.clone(),
                        outdated,
                        self.config.stall_after,
                    );
                    for name in stalled {
                        tracing::warn!(
                            projection = %name,
                            horizon_pid = ?horizon.pid,
                            horizon_age_seconds = horizon.age_seconds,
                            "projection stalled: events wait and its checkpoint has not moved; \
                             the oldest open transaction (backend pid above, when visible) holds \
                             the read horizon"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "projection health sample failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(MONITOR_INTERVAL) => {}
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn sample(
        &self,
        names: &[&'static str],
    ) -> Result<(BTreeMap<String, (Checkpoint, bool, f64)>, Horizon, bool), ProjectionError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT c.name, c.last_tx::text::bigint, c.last_position, \
                        (SELECT extract(epoch FROM now() - e.recorded_at)::float8 FROM events e \
                          WHERE (e.tx_id, e.position) > (c.last_tx, c.last_position) \
                          ORDER BY e.tx_id, e.position LIMIT 1) \
                   FROM projection_checkpoints c WHERE c.name = ANY($1)",
            )
            .await?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let checkpoints = client
            .query(&statement, &[&names])
            .await?
            .iter()
            .map(|row| {
                let oldest: Option<f64> = row.get(3);
                (
                    row.get::<_, String>(0),
                    (
                        Checkpoint {
                            tx_id: row.get(1),
                            position: row.get(2),
                        },
                        oldest.is_some(),
                        oldest.unwrap_or(0.0).max(0.0),
                    ),
                )
            })
            .collect();
        let horizon = client
            .query_opt(
                "SELECT pid, extract(epoch FROM now() - xact_start)::float8 FROM pg_stat_activity \
                  WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL \
                  ORDER BY xact_start LIMIT 1",
                &[],
            )
            .await?
            .map_or_else(Horizon::default, |row| Horizon {
                pid: row.get(0),
                age_seconds: row.get::<_, Option<f64>>(1).unwrap_or(0.0).max(0.0),
            });
        let outdated = match self.config.schema_version {
            None => false,
            Some(mine) => {
                let applied: Option<i64> = client
                    .query_one(
                        "SELECT max(version)::bigint FROM refinery_schema_history",
                        &[],
                    )
                    .await?
                    .get(0);
                applied.unwrap_or(0) > mine
            }
        };
        Ok((checkpoints, horizon, outdated))
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
                "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                &[&CLAIM_NAMESPACE, &name],
            )
            .await?
            .get(0);
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
        self.advanced.send_modify(|v| *v = v.wrapping_add(1));
        Ok(count)
    }

    async fn projection_loop(&self, projection: Arc<dyn Projection>, shutdown: CancellationToken) {
        let name = projection.name();
        let mut woken = self.woken.subscribe();
        let mut outdated = self.outdated.subscribe();
        let mut failures: u32 = 0;
        // After a wake-up that found nothing, look again a few times at short intervals: the
        // event that caused the notification may still sit above the horizon behind an older
        // transaction that is about to finish.
        let mut quick_retries: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            self.board.beat(name);
            if *outdated.borrow_and_update() {
                // A newer release owns the derived state now; wait until this process is
                // replaced (or the flag clears).
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = outdated.changed() => continue,
                    _ = tokio::time::sleep(self.config.poll_interval) => continue,
                }
            }
            match self.run_once(projection.as_ref()).await {
                Ok(applied) if applied > 0 => {
                    failures = 0;
                    quick_retries = 0;
                    self.board.failing(name, None);
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.board.failing(name, None);
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.board.failing(name, Some(error.to_string()));
                    tracing::warn!(projection = name, %error, "projection batch failed");
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

/// Sorts a batch read after the checkpoint: it ends before the first event of a followed
/// aggregate type that this binary does not know (which blocks the projection), and the events
/// of streams with a set-aside event are parked instead of applied.
fn prepare(
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

fn parked_behind(event: &StoredEvent) -> String {
    format!(
        "parked: an earlier event of {}/{} was set aside",
        event.aggregate_type, event.aggregate_id
    )
}

/// Records `events` as parked behind their streams' set-aside events.
async fn park(
    tx: &Transaction<'_>,
    name: &str,
    events: &[StoredEvent],
) -> Result<(), ProjectionError> {
    for event in events {
        dead_letters::record(&**tx, name, event, "parked", &parked_behind(event)).await?;
    }
    Ok(())
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

/// Whether `projection` has applied the event at `position` (an event it set aside, failed or
/// parked, is not applied). `None` when no event has that position (never written, or the
/// position of a rolled-back insert).
pub async fn has_applied(
    client: &impl tokio_postgres::GenericClient,
    projection: &str,
    position: i64,
) -> Result<Option<bool>, ProjectionError> {
    let row = client
        .query_opt(
            "SELECT coalesce((SELECT (e.tx_id, e.position) <= (c.last_tx, c.last_position) \
                                FROM projection_checkpoints c WHERE c.name = $2), false) \
                    AND NOT EXISTS (SELECT 1 FROM projection_dead_letters d \
                                     WHERE d.projection = $2 AND d.position = $1 \
                                       AND d.state <> 'skipped') \
               FROM events e WHERE e.position = $1",
            &[&position, &projection],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}
