//! The long-running side of the runner: [`Runner::run`] spawns the `LISTEN` task that wakes the
//! loops, a supervised loop per projection, and the monitor that samples their health once a
//! second. Separate from the one-batch transaction in `mod.rs`, which tests drive directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Runner, EVENTS_CHANNEL};
use crate::error::ProjectionError;
use crate::event::Checkpoint;
use crate::health::Horizon;
use crate::projection::Projection;

/// How long a runner woken by a notification waits before reading, so that the commits of
/// the next moments are applied in the same batch (see bench/RESULTS.md).
const COALESCE: Duration = Duration::from_millis(3);

/// How long the announcer lets appends gather before one NOTIFY tells other processes.
const ANNOUNCE_COALESCE: Duration = Duration::from_millis(2);

/// How often the monitor samples checkpoints and the horizon.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);

impl Runner {
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
        if let Some(appends) = self.appends.clone() {
            tasks.push(tokio::spawn(
                Arc::clone(&self).announce(appends, shutdown.clone()),
            ));
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

    /// Wakes this process's projections as soon as its command path has appended, and tells
    /// the other processes (their `LISTEN`) with one NOTIFY for all the appends of a few
    /// milliseconds: a NOTIFY takes a database-wide lock at commit, so one per append made
    /// the appends commit one at a time (see migration V22).
    async fn announce(
        self: Arc<Self>,
        mut appends: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = appends.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            self.woken.send_modify(|v| *v = v.wrapping_add(1));
            tokio::time::sleep(ANNOUNCE_COALESCE).await;
            // The appends of the pause are announced by this one NOTIFY; this process's own
            // loops were woken above and are still within their coalescing window.
            appends.borrow_and_update();
            if let Err(error) = self.notify_others().await {
                tracing::debug!(%error, "announcing appends failed; other processes poll");
            }
        }
    }

    async fn notify_others(&self) -> Result<(), ProjectionError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached("SELECT pg_notify($1, '')").await?;
        client.execute(&statement, &[&EVENTS_CHANNEL]).await?;
        Ok(())
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
                "SELECT c.name, c.last_tx::text::bigint AS last_tx, c.last_position, \
                        (SELECT extract(epoch FROM now() - e.recorded_at)::float8 FROM events e \
                          WHERE (e.tx_id, e.position) > (c.last_tx, c.last_position) \
                          ORDER BY e.tx_id, e.position LIMIT 1) AS oldest_seconds \
                   FROM projection_checkpoints c WHERE c.name = ANY($1)",
            )
            .await?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let checkpoints = client
            .query(&statement, &[&names])
            .await?
            .iter()
            .map(|row| {
                let oldest: Option<f64> = row.try_get("oldest_seconds")?;
                Ok((
                    row.try_get::<_, String>("name")?,
                    (
                        Checkpoint {
                            tx_id: row.try_get("last_tx")?,
                            position: row.try_get("last_position")?,
                        },
                        oldest.is_some(),
                        oldest.unwrap_or(0.0).max(0.0),
                    ),
                ))
            })
            .collect::<Result<_, tokio_postgres::Error>>()?;
        let horizon = client
            .query_opt(
                "SELECT pid, extract(epoch FROM now() - xact_start)::float8 AS age_seconds \
                   FROM pg_stat_activity \
                  WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL \
                  ORDER BY xact_start LIMIT 1",
                &[],
            )
            .await?
            .map_or_else(
                || Ok(Horizon::default()),
                |row| {
                    Ok::<_, tokio_postgres::Error>(Horizon {
                        pid: row.try_get("pid")?,
                        age_seconds: row
                            .try_get::<_, Option<f64>>("age_seconds")?
                            .unwrap_or(0.0)
                            .max(0.0),
                    })
                },
            )?;
        let outdated = match self.config.schema_version {
            None => false,
            Some(mine) => {
                let applied: Option<i64> = client
                    .query_one(
                        "SELECT max(version)::bigint AS version FROM refinery_schema_history",
                        &[],
                    )
                    .await?
                    .try_get("version")?;
                applied.unwrap_or(0) > mine
            }
        };
        Ok((checkpoints, horizon, outdated))
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
                    // Read again at once: events appended meanwhile, and events that sat above
                    // the horizon behind a transaction that has finished since (a projection's
                    // or the scheduler's, which announce nothing when they commit).
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
