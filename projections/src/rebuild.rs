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

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Instant;

use deadpool_postgres::{Pool, Transaction};
use serde::Serialize;
use serde_json::Value;

use crate::event::{
    current_xmax, horizon_passed, read_batch_prepared, read_batch_sql, read_batch_until, Checkpoint,
};
use crate::runner::CLAIM_NAMESPACE;
use crate::{Projection, ProjectionError, StoredEvent};

/// Events per transaction while replaying.
pub const REBUILD_BATCH: i64 = 10_000;

/// Namespace of the advisory locks that make rebuilds and checks of a projection exclusive.
const EXCLUSIVE_NAMESPACE: i32 = 0x5d5d;

/// The exclusive right to rebuild or check some projections, held until dropped: session
/// advisory locks on a connection taken out of the pool, which closes (and releases them)
/// when this is dropped, whatever happened meanwhile.
struct Exclusive {
    _client: deadpool_postgres::ClientWrapper,
}

/// Takes the exclusive right to rebuild or check `names`, or refuses with
/// [`ProjectionError::Busy`] naming who holds it.
async fn exclusive(pool: &Pool, names: &[&str]) -> Result<Exclusive, ProjectionError> {
    let client = deadpool_postgres::Object::take(pool.get().await?);
    let mut names = names.to_vec();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let taken: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&EXCLUSIVE_NAMESPACE, &name],
            )
            .await?
            .get(0);
        if !taken {
            let holder: Option<i32> = client
                .query_opt(
                    "SELECT pid FROM pg_locks \
                      WHERE locktype = 'advisory' AND objsubid = 2 AND granted \
                        AND classid = $1::int8::oid \
                        AND objid = (hashtext($2)::int8 & 4294967295)::oid",
                    &[&i64::from(EXCLUSIVE_NAMESPACE), &name],
                )
                .await?
                .map(|row| row.get(0));
            let by = holder.map_or_else(String::new, |pid| format!(" (database backend {pid})"));
            return Err(ProjectionError::Busy(format!(
                "a rebuild or check of `{name}` is already running{by}; run this one when it \
                 has finished"
            )));
        }
    }
    Ok(Exclusive { _client: client })
}

/// `events` without those at `skip`.
fn without<'a>(events: &'a [StoredEvent], skip: &HashSet<i64>) -> Cow<'a, [StoredEvent]> {
    if skip.is_empty() || !events.iter().any(|e| skip.contains(&e.position)) {
        Cow::Borrowed(events)
    } else {
        Cow::Owned(
            events
                .iter()
                .filter(|e| !skip.contains(&e.position))
                .cloned()
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub projection: String,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// Rows that differ between a live table and its fresh rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct TableDrift {
    pub table: String,
    /// In the live table but not in the rebuild (wrong or stale rows).
    pub only_live: Vec<Value>,
    /// In the rebuild but not in the live table (missing or changed rows).
    pub only_rebuilt: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub projection: String,
    pub checkpoint: Checkpoint,
    pub tables: Vec<TableDrift>,
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.only_live.is_empty() && t.only_rebuilt.is_empty())
    }
}

/// At most this many differing rows are listed per table and side.
const DRIFT_ROWS: i64 = 50;

/// Rebuilds `projection` from the whole log and swaps the result in. `progress` is called
/// with (events applied, events in the log) after each batch.
pub async fn rebuild(
    pool: &Pool,
    projection: &dyn Projection,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<RebuildReport, ProjectionError> {
    let mut reports = rebuild_all(pool, &[projection], progress).await?;
    Ok(reports.remove(0))
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
    let _exclusive = exclusive(pool, &names).await?;
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
    Ok(reports)
}

/// How long the swap may wait for a live table's lock before it gives way and tries again.
const SWAP_LOCK_TIMEOUT: &str = "2s";
/// Swap attempts before the rebuild gives up (the live tables stay; the shadow schema is left
/// for the next rebuild, which replaces it).
const SWAP_ATTEMPTS: u32 = 20;

/// Under the projection's claim, applies what was committed since the pass over the log and
/// swaps the shadow in. The swap drops the live tables, which needs their exclusive lock: it
/// waits at most [`SWAP_LOCK_TIMEOUT`] for a long reader, so that API reads queued behind the
/// swap are never held for longer, and then rolls back and tries again. Returns the events
/// applied to this projection.
async fn finish_and_swap(
    pool: &Pool,
    projection: &dyn Projection,
    shadow: &Shadow,
    from: Checkpoint,
    applied: u64,
    skip: &HashSet<i64>,
) -> Result<u64, ProjectionError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        claim(&tx, projection.name()).await?;
        shadow.select(&tx).await?;
        let mut mine = applied;
        let mut reached = from;
        loop {
            let n = replay(&tx, projection, &mut reached, None, skip).await?;
            if n == 0 {
                break;
            }
            mine += n;
        }
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            .await?;
        match shadow.swap_in(&tx, reached).await {
            Ok(()) => {
                tx.commit().await?;
                return Ok(mine);
            }
            Err(ProjectionError::Database(error))
                if error.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
                    && attempt < SWAP_ATTEMPTS =>
            {
                drop(tx);
                tracing::info!(
                    projection = projection.name(),
                    attempt,
                    "a reader holds a live table; the swap tries again"
                );
                let pause = 100 * u64::from(attempt.min(10));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The next batch after `after`, on a statement prepared once for the reading connection.
async fn read_ahead(
    client: &deadpool_postgres::Client,
    after: Checkpoint,
) -> Result<Vec<StoredEvent>, ProjectionError> {
    let statement = client.prepare_cached(&read_batch_sql()).await?;
    let rows = client
        .query(
            &statement,
            &[&after.tx_id.to_string(), &after.position, &REBUILD_BATCH],
        )
        .await?;
    Ok(rows.iter().map(StoredEvent::from_row).collect())
}

/// Applies one batch to one projection's shadow tables in a transaction of its own.
async fn apply_to_shadow(
    pool: &Pool,
    projection: &dyn Projection,
    shadow: &Shadow,
    events: Cow<'_, [StoredEvent]>,
) -> Result<(), ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    shadow.select(&tx).await?;
    // A shadow is thrown away if the rebuild does not finish, so its batches need not wait
    // for their WAL flush; the swap does.
    tx.batch_execute("SET LOCAL synchronous_commit TO off")
        .await?;
    projection.apply(&tx, &events).await?;
    tx.commit().await?;
    Ok(())
}

/// Compares the live tables of `projection` with a fresh rebuild up to the live checkpoint.
pub async fn check(
    pool: &Pool,
    projection: &dyn Projection,
) -> Result<DriftReport, ProjectionError> {
    let _exclusive = exclusive(pool, &[projection.name()]).await?;
    let shadow = Shadow::create(pool, projection).await?;
    // The live read model lacks every event it set aside; so does the comparison's rebuild.
    let skip = {
        let client = pool.get().await?;
        crate::dead_letters::set_aside_positions(&**client, projection.name()).await?
    };
    let result = async {
        // Replay up to where the live projection is now, then finish under its claim.
        let live = live_checkpoint(pool, projection.name()).await?;
        let mut at = Checkpoint::START;
        loop {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            shadow.select(&tx).await?;
            let n = replay(&tx, projection, &mut at, Some(live), &skip).await?;
            tx.commit().await?;
            if n == 0 {
                break;
            }
        }
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        claim(&tx, projection.name()).await?;
        let live = live_checkpoint_in(&tx, projection.name()).await?;
        shadow.select(&tx).await?;
        while replay(&tx, projection, &mut at, Some(live), &skip).await? > 0 {}
        tx.batch_execute("SET LOCAL search_path TO DEFAULT").await?;
        let mut tables = Vec::new();
        for table in projection.tables() {
            tables.push(shadow.compare(&tx, table).await?);
        }
        tx.rollback().await?;
        Ok(DriftReport {
            projection: projection.name().to_string(),
            checkpoint: live,
            tables,
        })
    }
    .await;
    shadow.drop(pool).await?;
    result
}

/// Applies the next batch (bounded by `until`, without the events at `skip`) and moves `at`
/// past it.
async fn replay(
    tx: &Transaction<'_>,
    projection: &dyn Projection,
    at: &mut Checkpoint,
    until: Option<Checkpoint>,
    skip: &HashSet<i64>,
) -> Result<u64, ProjectionError> {
    let events = match until {
        Some(until) => read_batch_until(&**tx, *at, until, REBUILD_BATCH).await?,
        None => read_batch_prepared(tx, *at, REBUILD_BATCH).await?,
    };
    let Some(last) = events.last() else {
        return Ok(0);
    };
    let last = last.checkpoint();
    projection.apply(tx, &without(&events, skip)).await?;
    *at = last;
    Ok(events.len() as u64)
}

/// Waits for the projection's claim: its live runner pauses until this transaction ends.
async fn claim(tx: &Transaction<'_>, name: &str) -> Result<(), ProjectionError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&CLAIM_NAMESPACE, &name],
    )
    .await?;
    Ok(())
}

async fn count_events(pool: &Pool) -> Result<u64, ProjectionError> {
    let client = pool.get().await?;
    let n: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);
    Ok(n.max(0) as u64)
}

async fn live_checkpoint(pool: &Pool, name: &str) -> Result<Checkpoint, ProjectionError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let at = live_checkpoint_in(&tx, name).await?;
    tx.commit().await?;
    Ok(at)
}

async fn live_checkpoint_in(
    tx: &Transaction<'_>,
    name: &str,
) -> Result<Checkpoint, ProjectionError> {
    let row = tx
        .query_opt(
            "SELECT last_tx::text::bigint, last_position FROM projection_checkpoints WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map_or(Checkpoint::START, |row| Checkpoint {
        tx_id: row.get(0),
        position: row.get(1),
    }))
}

/// The outbox the projections append to. A rebuild shadows it too (replaying history must not
/// send old e-mails again) and hands over only the rows of events the live projection had not
/// reached yet.
const OUTBOX: &str = "notifications";

/// The shadow copy of a projection's tables.
struct Shadow {
    schema: String,
    live_schema: String,
    name: &'static str,
    tables: &'static [&'static str],
}

impl Shadow {
    /// The projection's tables and the outbox.
    fn shadowed(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tables.iter().copied().chain(std::iter::once(OUTBOX))
    }
}

impl Shadow {
    /// Creates `rebuild_<name>` with empty copies of the projection's tables: columns,
    /// defaults, checks and the primary / unique constraints (which upserts need) under their
    /// original names. Secondary indexes come after the replay.
    async fn create(pool: &Pool, projection: &dyn Projection) -> Result<Self, ProjectionError> {
        let client = pool.get().await?;
        let live_schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await?
            .get(0);
        let shadow = Self {
            schema: format!("rebuild_{}", projection.name()),
            live_schema,
            name: projection.name(),
            tables: projection.tables(),
        };
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s};",
                s = shadow.schema
            ))
            .await?;
        for table in shadow.shadowed() {
            let live = format!("{}.{table}", shadow.live_schema);
            client
                .batch_execute(&format!(
                    "CREATE TABLE {}.{table} (LIKE {live} INCLUDING DEFAULTS INCLUDING IDENTITY \
                     INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)",
                    shadow.schema
                ))
                .await?;
            let constraints = client
                .query(
                    "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                      WHERE conrelid = $1::text::regclass AND contype IN ('p', 'u', 'x') \
                      ORDER BY conname",
                    &[&live],
                )
                .await?;
            for row in constraints {
                let (name, definition): (String, String) = (row.get(0), row.get(1));
                client
                    .batch_execute(&format!(
                        "ALTER TABLE {}.{table} ADD CONSTRAINT {name} {definition}",
                        shadow.schema
                    ))
                    .await?;
            }
        }
        Ok(shadow)
    }

    /// Points unqualified names at the shadow tables for the rest of `tx`, after locking them
    /// by their qualified names: if the shadow is gone, `tx` fails here rather than writing to
    /// the live tables the `search_path` would fall through to, and while `tx` runs nobody can
    /// drop it.
    async fn select(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        let tables: Vec<String> = self
            .shadowed()
            .map(|t| format!("{}.{t}", self.schema))
            .collect();
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS SHARE MODE; SET LOCAL search_path TO {}, {}",
            tables.join(", "),
            self.schema,
            self.live_schema
        ))
        .await?;
        Ok(())
    }

    /// Recreates the live tables' secondary indexes, with their names, on the shadow tables.
    async fn create_indexes(&self, pool: &Pool) -> Result<(), ProjectionError> {
        let client = pool.get().await?;
        for table in self.tables {
            let live = format!("{}.{table}", self.live_schema);
            let indexes = client
                .query(
                    "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
                      WHERE i.indrelid = $1::text::regclass \
                        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                    &[&live],
                )
                .await?;
            for row in indexes {
                let definition: String = row.get(0);
                let Some((head, tail)) = definition.split_once(" USING ") else {
                    continue;
                };
                let Some(on) = head.rfind(" ON ") else {
                    continue;
                };
                client
                    .batch_execute(&format!(
                        "{} ON {}.{table} USING {tail}",
                        &head[..on],
                        self.schema
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// Replaces the live tables with the shadow ones and sets the checkpoint, in `tx` (which
    /// holds the projection's claim). The outbox keeps its live rows; it only gains the rows of
    /// events past the live checkpoint, which the live runner will not apply after the swap.
    async fn swap_in(&self, tx: &Transaction<'_>, at: Checkpoint) -> Result<(), ProjectionError> {
        tx.execute(
            &format!(
                "INSERT INTO {live}.{OUTBOX} (source_position, kind, recipient, subject, body, \
                                             aggregate_type, aggregate_id, created_at) \
                 SELECT s.source_position, s.kind, s.recipient, s.subject, s.body, \
                        s.aggregate_type, s.aggregate_id, s.created_at \
                   FROM {shadow}.{OUTBOX} s JOIN events e ON e.position = s.source_position \
                  WHERE NOT EXISTS (SELECT 1 FROM projection_checkpoints c WHERE c.name = $1) \
                     OR (e.tx_id, e.position) > (SELECT c.last_tx, c.last_position \
                                                   FROM projection_checkpoints c WHERE c.name = $1) \
                 ON CONFLICT (source_position, kind, recipient) DO NOTHING",
                live = self.live_schema,
                shadow = self.schema
            ),
            &[&self.name],
        )
        .await?;
        for table in self.tables {
            tx.batch_execute(&format!(
                "DROP TABLE {live}.{table}; ALTER TABLE {shadow}.{table} SET SCHEMA {live};",
                live = self.live_schema,
                shadow = self.schema
            ))
            .await?;
        }
        tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await?;
        // Everything the live read model had set aside applied in this rebuild (it would have
        // stopped otherwise), except what was skipped, which it skipped too.
        crate::dead_letters::clear_after_rebuild(tx, self.name).await?;
        tx.execute(
            "INSERT INTO projection_checkpoints (name, last_tx, last_position, events_applied) \
             VALUES ($1, $2::text::xid8, $3, 0) \
             ON CONFLICT (name) DO UPDATE SET last_tx = EXCLUDED.last_tx, \
                 last_position = EXCLUDED.last_position, updated_at = now()",
            &[&self.name, &at.tx_id.to_string(), &at.position],
        )
        .await?;
        Ok(())
    }

    /// Rows on one side only, as JSON, both ways.
    async fn compare(
        &self,
        tx: &Transaction<'_>,
        table: &str,
    ) -> Result<TableDrift, ProjectionError> {
        let live = format!("{}.{table}", self.live_schema);
        let shadow = format!("{}.{table}", self.schema);
        let side = |a: &str, b: &str| {
            format!(
                "SELECT to_jsonb(d) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) d LIMIT {DRIFT_ROWS}"
            )
        };
        let rows =
            |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, Value>(0)).collect();
        Ok(TableDrift {
            table: table.to_string(),
            only_live: rows(tx.query(&side(&live, &shadow), &[]).await?),
            only_rebuilt: rows(tx.query(&side(&shadow, &live), &[]).await?),
        })
    }

    async fn drop(&self, pool: &Pool) -> Result<(), ProjectionError> {
        let client = pool.get().await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await?;
        Ok(())
    }
}
