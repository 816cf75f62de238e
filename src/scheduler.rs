//! The scheduler: fires timed commands when they fall due, exactly as the aggregates allow.
//!
//! The `timers` read model (kept by the `timers` projection) says what is pending and from
//! when. The scheduler adds the policy in force to find what is due, claims due timers (row
//! locks with `FOR UPDATE SKIP LOCKED`, made durable as a lease in `timer_leases` in the same
//! short transaction, so no claim holds a transaction open while commands run), and issues
//! each command as the `system` principal with the clock's now. The aggregate has the last
//! word: a case that is no longer waiting, a term that has not ended, a timer that fires twice
//! or late, is refused by the aggregate's own rule, and the refusal is dropped quietly. A
//! fired timer keeps its lease until the projection removes or re-arms it, so it is not fired
//! again meanwhile; a failed one is retried with backoff.
//!
//! It sleeps until the earliest due time (at most a second, and it wakes whenever this
//! process's projections advance), so timers fire within moments of falling due, and on start
//! it catches up on everything overdue.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use subdesk_aggregates::subscription::{Subscription, SubscriptionCommand, SubscriptionError};
use subdesk_aggregates::support_case::{
    AutoResolve, CaseError, CloseCase, SlaCheck, SlaClock, SupportCase, SupportCaseCommand,
};
use subdesk_aggregates::{Actor, Clock};
use subdesk_projections::timers::{
    ACTIVATE, AUTO_RESOLVE, CLOSE, NEXT_REPLY_BREACH, NEXT_REPLY_WARNING, RESOLUTION_BREACH,
    RESOLUTION_WARNING, SLA_BREACH, SLA_WARNING, TERM_END,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::command::{CommandBus, CommandError, CommandMeta};

/// How the scheduler behaves.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Whether `serve` runs the scheduler loop (tests that fire timers by hand turn it off).
    pub enabled: bool,
    /// A wait in the `waiting_for_customer` status longer than this resolves the case.
    pub auto_resolve_after: Duration,
    /// A resolution older than this closes the case.
    pub close_after: Duration,
    /// How long a claim keeps a timer from being fired again.
    pub lease: Duration,
    /// Timers claimed per round.
    pub batch: i64,
    /// Commands in flight at once.
    pub concurrency: usize,
    /// Longest sleep between looks at the timers (other processes may arm new ones).
    pub max_sleep: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            auto_resolve_after: Duration::from_secs(5 * 86_400),
            close_after: Duration::from_secs(14 * 86_400),
            lease: Duration::from_secs(30),
            batch: 500,
            concurrency: 16,
            max_sleep: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// What one round of firing did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fired {
    /// Commands accepted: events appended.
    pub accepted: usize,
    /// Commands the aggregate refused because the timer was no longer due.
    pub refused: usize,
    /// Commands that failed (conflict, database) and will be retried.
    pub failed: usize,
}

impl Fired {
    pub fn total(&self) -> usize {
        self.accepted + self.refused + self.failed
    }

    fn add(&mut self, other: Fired) {
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.failed += other.failed;
    }
}

/// A claimed timer.
#[derive(Debug, Clone)]
struct Claimed {
    aggregate_type: String,
    aggregate_id: String,
    kind: String,
    since: DateTime<Utc>,
    due_at: DateTime<Utc>,
    armed_by: i64,
    attempts: i32,
}

impl Claimed {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            kind: row.try_get("kind")?,
            since: row.try_get("since")?,
            due_at: row.try_get("due_at")?,
            armed_by: row.try_get("armed_by")?,
            attempts: row.try_get("attempts")?,
        })
    }
}

enum Outcome {
    Accepted,
    Refused(String),
    Failed(String),
}

pub struct Scheduler {
    pool: deadpool_postgres::Pool,
    cases: Arc<CommandBus<SupportCase>>,
    subscriptions: Arc<CommandBus<Subscription>>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
}

/// The due time of a timer row, given the policy: `since` plus the kind's delay.
const DUE_AT: &str =
    "t.since + CASE t.kind WHEN 'auto_resolve' THEN $2::float8 * interval '1 second' \
                      WHEN 'close' THEN $3::float8 * interval '1 second' ELSE interval '0' END";

/// The earliest due time of an unclaimed timer, or the end of the earliest live lease: per
/// kind one walk of the `(kind, since)` index that stops at the first row without a live lease.
/// Built once; `$1` is now, `$2` and `$3` the auto-resolve and close delays in seconds.
static NEXT_DUE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let first = |kind: &str, delay: &str| {
        format!(
            "(SELECT t.since + {delay} AS due FROM timers t \
               WHERE t.kind = '{kind}' \
                 AND NOT EXISTS (SELECT 1 FROM timer_leases l \
                                  WHERE l.aggregate_type = t.aggregate_type \
                                    AND l.aggregate_id = t.aggregate_id AND l.kind = t.kind \
                                    AND l.since = t.since AND l.leased_until > $1::timestamptz) \
               ORDER BY t.since LIMIT 1)"
        )
    };
    format!(
        "SELECT least((SELECT min(due) FROM ({} UNION ALL {} UNION ALL {} UNION ALL {} \
                                              UNION ALL {} UNION ALL {} UNION ALL {} \
                                              UNION ALL {} UNION ALL {} UNION ALL {}) d), \
                      (SELECT min(leased_until) FROM timer_leases WHERE leased_until > $1)) \
                AS soonest",
        first(AUTO_RESOLVE, "$2::float8 * interval '1 second'"),
        first(CLOSE, "$3::float8 * interval '1 second'"),
        first(ACTIVATE, "interval '0'"),
        first(TERM_END, "interval '0'"),
        first(SLA_WARNING, "interval '0'"),
        first(SLA_BREACH, "interval '0'"),
        first(NEXT_REPLY_WARNING, "interval '0'"),
        first(NEXT_REPLY_BREACH, "interval '0'"),
        first(RESOLUTION_WARNING, "interval '0'"),
        first(RESOLUTION_BREACH, "interval '0'"),
    )
});

impl Scheduler {
    pub fn new(
        pool: deadpool_postgres::Pool,
        cases: Arc<CommandBus<SupportCase>>,
        subscriptions: Arc<CommandBus<Subscription>>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            pool,
            cases,
            subscriptions,
            clock,
            config,
        }
    }

    fn delays(&self) -> (f64, f64) {
        (
            self.config.auto_resolve_after.as_secs_f64(),
            self.config.close_after.as_secs_f64(),
        )
    }

    /// Fires every timer due now (by the scheduler's clock) and returns what happened. Tests
    /// call this after moving a manual clock.
    pub async fn run_once(&self) -> Result<Fired, SchedulerError> {
        let mut fired = Fired::default();
        loop {
            let now = self.clock.now();
            let claimed = self.claim(now).await?;
            if claimed.is_empty() {
                return Ok(fired);
            }
            let round = self.fire_all(claimed).await?;
            fired.add(round);
        }
    }

    /// Runs until `shutdown`, waking on `wake` (projection progress) or when a timer falls due.
    /// Fires nothing while `outdated` says a newer release's migrations are applied (a rolling
    /// upgrade: the newer processes fire the timers).
    pub async fn run(
        self: Arc<Self>,
        mut wake: watch::Receiver<u64>,
        mut outdated: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        if !self.config.enabled {
            // Nothing to do; wait for the end instead of returning, which a supervisor would
            // take for a failure.
            shutdown.cancelled().await;
            return;
        }
        let mut failures = 0u32;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if *outdated.borrow_and_update() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = outdated.changed() => continue,
                    _ = tokio::time::sleep(self.config.max_sleep) => continue,
                }
            }
            let pause = match self.run_once().await {
                Ok(_) => {
                    failures = 0;
                    self.until_next_due().await.unwrap_or(self.config.max_sleep)
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "scheduler round failed");
                    Duration::from_millis(100 * u64::from(failures.min(50)))
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = wake.changed() => {
                    if changed.is_err() {
                        // The runner is gone; keep going on the timer alone.
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// How long until the earliest unclaimed timer falls due, capped at `max_sleep`.
    ///
    /// Runs after every round, so it must not grow with the number of timers: each kind is
    /// one walk of the `(kind, since)` index that stops at the first row without a live lease
    /// (leased rows are the few in flight), and the earliest lease end is one index probe.
    async fn until_next_due(&self) -> Result<Duration, SchedulerError> {
        let now = self.clock.now();
        let (auto_resolve, close) = self.delays();
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&NEXT_DUE_SQL).await?;
        let soonest: Option<DateTime<Utc>> = client
            .query_one(&statement, &[&now, &auto_resolve, &close])
            .await?
            .try_get("soonest")?;
        Ok(soonest
            .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(self.config.max_sleep)
            .min(self.config.max_sleep))
    }

    /// Forgets leases that can never matter again: expired, and their timer is gone (fired and
    /// removed by the projection) or re-armed with another `since` (a new timer, which a claim
    /// treats as such anyway). Returns how many went. Run by the hourly housekeeping.
    pub async fn purge_stale_leases(&self) -> Result<u64, SchedulerError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "DELETE FROM timer_leases l \
                  WHERE l.leased_until < $1 \
                    AND NOT EXISTS (SELECT 1 FROM timers t \
                                     WHERE t.aggregate_type = l.aggregate_type \
                                       AND t.aggregate_id = l.aggregate_id \
                                       AND t.kind = l.kind AND t.since = l.since)",
                &[&self.clock.now()],
            )
            .await?)
    }

    /// Claims up to a batch of due timers: row locks skip what another scheduler is claiming
    /// right now, and the lease keeps the claim after this short transaction commits.
    async fn claim(&self, now: DateTime<Utc>) -> Result<Vec<Claimed>, SchedulerError> {
        let (auto_resolve, close) = self.delays();
        let lease = self.config.lease.as_secs_f64();
        let sql = format!(
            "WITH due AS ( \
                 SELECT t.aggregate_type, t.aggregate_id, t.kind, t.since, t.armed_by, {DUE_AT} AS due_at \
                   FROM timers t \
                  WHERE ((t.kind = 'auto_resolve' AND t.since <= $1::timestamptz - $2::float8 * interval '1 second') \
                      OR (t.kind = 'close' AND t.since <= $1::timestamptz - $3::float8 * interval '1 second') \
                      OR (t.kind = 'activate' AND t.since <= $1::timestamptz) \
                      OR (t.kind = 'term_end' AND t.since <= $1::timestamptz) \
                      OR (t.kind = 'sla_warning' AND t.since <= $1::timestamptz) \
                      OR (t.kind IN ('sla_breach', 'next_reply_warning', 'next_reply_breach', \
                                     'resolution_warning', 'resolution_breach') \
                          AND t.since <= $1::timestamptz)) \
                    AND NOT EXISTS (SELECT 1 FROM timer_leases l \
                                     WHERE l.aggregate_type = t.aggregate_type \
                                       AND l.aggregate_id = t.aggregate_id AND l.kind = t.kind \
                                       AND l.since = t.since AND l.leased_until > $1) \
                  ORDER BY due_at \
                  LIMIT $4::bigint \
                  FOR UPDATE OF t SKIP LOCKED \
             ), leased AS ( \
                 INSERT INTO timer_leases AS l (aggregate_type, aggregate_id, kind, since, leased_until) \
                 SELECT aggregate_type, aggregate_id, kind, since, $1::timestamptz + $5::float8 * interval '1 second' FROM due \
                 ON CONFLICT (aggregate_type, aggregate_id, kind) DO UPDATE \
                    SET since = EXCLUDED.since, leased_until = EXCLUDED.leased_until, \
                        attempts = CASE WHEN l.since = EXCLUDED.since THEN l.attempts + 1 ELSE 1 END, \
                        last_outcome = CASE WHEN l.since = EXCLUDED.since THEN l.last_outcome END \
                  WHERE l.since <> EXCLUDED.since OR l.leased_until <= $1 \
                 RETURNING aggregate_type, aggregate_id, kind, since, attempts \
             ) \
             SELECT l.aggregate_type, l.aggregate_id, l.kind, l.since, d.due_at, d.armed_by, l.attempts \
               FROM leased l JOIN due d USING (aggregate_type, aggregate_id, kind) \
              ORDER BY d.due_at"
        );
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &sql,
                &[&now, &auto_resolve, &close, &self.config.batch, &lease],
            )
            .await?;
        Ok(rows
            .iter()
            .map(Claimed::from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    async fn fire_all(&self, claimed: Vec<Claimed>) -> Result<Fired, SchedulerError> {
        let results: Vec<(Claimed, Outcome)> = futures::stream::iter(claimed)
            .map(|timer| async move {
                let outcome = self.fire(&timer).await;
                (timer, outcome)
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        let mut fired = Fired::default();
        let mut keys: [Vec<String>; 3] = Default::default();
        let mut since = Vec::with_capacity(results.len());
        let mut labels = Vec::with_capacity(results.len());
        let mut retry_at = Vec::with_capacity(results.len());
        for (timer, outcome) in results {
            let now = self.clock.now();
            let delay = (now - timer.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            let (label, retry) = match &outcome {
                Outcome::Accepted => {
                    fired.accepted += 1;
                    metrics::histogram!("subdesk_timer_delay_seconds", "kind" => timer.kind.clone()).record(delay);
                    tracing::info!(kind = %timer.kind, aggregate = %timer.aggregate_id, delay_s = delay, "timer fired");
                    ("accepted".to_string(), None)
                }
                Outcome::Refused(why) => {
                    fired.refused += 1;
                    tracing::debug!(kind = %timer.kind, aggregate = %timer.aggregate_id, %why, "timer no longer due");
                    (format!("refused: {why}"), None)
                }
                Outcome::Failed(why) => {
                    fired.failed += 1;
                    tracing::warn!(kind = %timer.kind, aggregate = %timer.aggregate_id, %why, "timer failed; will retry");
                    let backoff = 2f64.powi(timer.attempts.clamp(0, 8)).min(300.0);
                    (
                        format!("failed: {why}"),
                        Some(now + chrono::Duration::milliseconds((backoff * 1000.0) as i64)),
                    )
                }
            };
            metrics::counter!("subdesk_timers_fired_total", "kind" => timer.kind.clone(), "outcome" => label.split(':').next().unwrap_or("").to_string()).increment(1);
            keys[0].push(timer.aggregate_type);
            keys[1].push(timer.aggregate_id);
            keys[2].push(timer.kind);
            since.push(timer.since);
            labels.push(label);
            retry_at.push(retry);
        }
        // Every outcome of the round in one statement: a round of 500 timers used to cost 500
        // more round trips after its commands.
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "UPDATE timer_leases l SET last_outcome = u.outcome, \
                        leased_until = coalesce(u.retry_at, l.leased_until) \
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], \
                               $5::text[], $6::timestamptz[]) \
                        AS u(aggregate_type, aggregate_id, kind, since, outcome, retry_at) \
                  WHERE l.aggregate_type = u.aggregate_type AND l.aggregate_id = u.aggregate_id \
                    AND l.kind = u.kind AND l.since = u.since",
            )
            .await?;
        client
            .execute(
                &statement,
                &[&keys[0], &keys[1], &keys[2], &since, &labels, &retry_at],
            )
            .await?;
        Ok(fired)
    }

    async fn fire(&self, timer: &Claimed) -> Outcome {
        let meta = CommandMeta::system(format!("event:{}", timer.armed_by));
        let id = timer.aggregate_id.as_str();
        match timer.kind.as_str() {
            AUTO_RESOLVE => case_outcome(
                self.cases
                    .execute(
                        id,
                        SupportCaseCommand::AutoResolve(AutoResolve {
                            by: Actor::system(),
                        }),
                        &meta,
                        None,
                    )
                    .await,
            ),
            CLOSE => case_outcome(
                self.cases
                    .execute(
                        id,
                        SupportCaseCommand::Close(CloseCase {
                            by: Actor::system(),
                        }),
                        &meta,
                        None,
                    )
                    .await,
            ),
            SLA_WARNING | SLA_BREACH | NEXT_REPLY_WARNING | NEXT_REPLY_BREACH
            | RESOLUTION_WARNING | RESOLUTION_BREACH => {
                let clock = match timer.kind.as_str() {
                    SLA_WARNING | SLA_BREACH => SlaClock::FirstResponse,
                    NEXT_REPLY_WARNING | NEXT_REPLY_BREACH => SlaClock::NextReply,
                    _ => SlaClock::Resolution,
                };
                let check = SlaCheck {
                    clock,
                    by: Actor::system(),
                };
                let warning = matches!(
                    timer.kind.as_str(),
                    SLA_WARNING | NEXT_REPLY_WARNING | RESOLUTION_WARNING
                );
                let command = if warning {
                    SupportCaseCommand::RaiseSlaWarning(check)
                } else {
                    SupportCaseCommand::RecordSlaBreach(check)
                };
                case_outcome(self.cases.execute(id, command, &meta, None).await)
            }
            ACTIVATE => subscription_outcome(
                self.subscriptions
                    .execute(id, SubscriptionCommand::Activate, &meta, None)
                    .await,
            ),
            TERM_END => {
                let renewed = self
                    .subscriptions
                    .execute(id, SubscriptionCommand::Renew, &meta, None)
                    .await;
                match renewed {
                    Err(CommandError::Rejected(
                        SubscriptionError::WillNotRenew | SubscriptionError::AutoRenewOff,
                    )) => subscription_outcome(
                        self.subscriptions
                            .execute(id, SubscriptionCommand::Expire, &meta, None)
                            .await,
                    ),
                    other => subscription_outcome(other),
                }
            }
            other => Outcome::Refused(format!("unknown timer kind `{other}`")),
        }
    }
}

fn case_outcome<T>(result: Result<T, CommandError<CaseError>>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(CommandError::Rejected(e)) => Outcome::Refused(e.to_string()),
        Err(CommandError::Denied(e)) => Outcome::Refused(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn subscription_outcome<T>(result: Result<T, CommandError<SubscriptionError>>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(CommandError::Rejected(e)) => Outcome::Refused(e.to_string()),
        Err(CommandError::Denied(e)) => Outcome::Refused(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}
