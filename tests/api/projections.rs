//! The projection runner reads the log gap-free and applies every event exactly once: events
//! whose positions commit out of order, a batch that fails half-way, two runners on one
//! projection.
//!
//! The test read model `seen` has no unique key on purpose: a second application of an event
//! is a second row, not a constraint error that the runner would set aside as a dead letter.
//! So "exactly once" is read from the table itself, from the checkpoint's `events_applied`
//! and from an empty `projection_dead_letters`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use subdesk_projections::{Projection, ProjectionError, Runner, RunnerConfig, StoredEvent};

use crate::helpers::{connect, fresh_database};

/// Records every event it is given as a row of `seen`; applied twice, an event has two rows.
#[derive(Default)]
struct Recorder {
    /// Holds each batch's transaction open this long after writing (so that two runners
    /// without a claim would overlap).
    hold: Duration,
    /// Fails the next batch after writing it, with a transient error, once.
    fail_once: AtomicBool,
}

#[async_trait]
impl Projection for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["seen"]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            tx.execute(
                "INSERT INTO seen (position) VALUES ($1)",
                &[&event.position],
            )
            .await?;
        }
        if !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
        }
        if self.fail_once.swap(false, Ordering::SeqCst) {
            return Err(ProjectionError::SideEffect(
                "the batch fails after its writes".into(),
            ));
        }
        Ok(())
    }
}

async fn insert_event(tx: &tokio_postgres::Transaction<'_>, stream: &str) -> i64 {
    tx.query_one(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Test', $1, 1, 'Happened', '1.0', '{}', '{}') RETURNING position",
        &[&stream],
    )
    .await
    .expect("insert event")
    .get(0)
}

/// A database with the `seen` table (no key) and a runner of `recorder` on it.
async fn recorder_setup(
    recorder: Arc<Recorder>,
    config: RunnerConfig,
) -> (subdesk::db::Target, tokio_postgres::Client, Runner) {
    let target = fresh_database().await;
    let db = connect(&target).await;
    db.batch_execute("CREATE TABLE seen (position bigint NOT NULL)")
        .await
        .expect("seen table");
    let runner = Runner::new(
        target.pool(4).expect("pool"),
        None,
        vec![recorder as Arc<dyn Projection>],
        config,
    );
    runner.ensure_checkpoints().await.expect("checkpoints");
    (target, db, runner)
}

/// Catches up until `expected` has been seen. The horizon is cluster-wide: a transaction that
/// another test holds open for a moment delays every reader, so one `catch_up` may apply
/// nothing yet.
async fn catch_up_to(runner: &Runner, db: &tokio_postgres::Client, expected: &[i64]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        runner.catch_up().await.expect("catch up");
        let now = seen(db).await;
        if now == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row of `seen`, duplicates included.
async fn seen(db: &tokio_postgres::Client) -> Vec<i64> {
    db.query("SELECT position FROM seen ORDER BY position", &[])
        .await
        .expect("seen")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The recorder's `events_applied` and its dead letters (failed or parked).
async fn applied_and_set_aside(db: &tokio_postgres::Client) -> (i64, i64) {
    let row = db
        .query_one(
            "SELECT (SELECT events_applied FROM projection_checkpoints WHERE name = 'recorder'), \
                    (SELECT count(*) FROM projection_dead_letters WHERE projection = 'recorder')",
            &[],
        )
        .await
        .expect("checkpoint and dead letters");
    (row.get(0), row.get(1))
}

/// Each of `positions` is in `seen` once, the checkpoint counts each once, and nothing was set
/// aside.
async fn assert_each_applied_once(db: &tokio_postgres::Client, positions: &[i64]) {
    let mut expected = positions.to_vec();
    expected.sort_unstable();
    assert_eq!(seen(db).await, expected, "each event has exactly one row");
    assert_eq!(
        applied_and_set_aside(db).await,
        (positions.len() as i64, 0),
        "the checkpoint counted each event once and no event was set aside as a dead letter"
    );
}

#[tokio::test]
async fn events_committed_out_of_position_order_are_each_applied_exactly_once() {
    let (target, db, runner) =
        recorder_setup(Arc::new(Recorder::default()), RunnerConfig::default()).await;

    let mut slow = connect(&target).await;
    let mut fast = connect(&target).await;
    let slow_tx = slow.transaction().await.expect("begin slow");
    let low = insert_event(&slow_tx, "a").await;
    let fast_tx = fast.transaction().await.expect("begin fast");
    let high = insert_event(&fast_tx, "b").await;
    assert!(low < high);
    fast_tx
        .commit()
        .await
        .expect("commit the higher position first");

    // A reader going by position alone would take `high` now and then never see `low`.
    runner
        .catch_up()
        .await
        .expect("catch up while the lower position is uncommitted");
    assert_eq!(
        seen(&db).await,
        Vec::<i64>::new(),
        "nothing is read past an open transaction"
    );

    slow_tx
        .commit()
        .await
        .expect("commit the lower position last");
    catch_up_to(&runner, &db, &[low, high]).await;

    // Catching up again reads after the checkpoint: nothing is applied a second time.
    assert_eq!(runner.catch_up().await.expect("catch up again"), 0);
    assert_each_applied_once(&db, &[low, high]).await;
}

#[tokio::test]
async fn a_transaction_that_started_first_but_commits_last_is_not_skipped() {
    let (target, db, runner) =
        recorder_setup(Arc::new(Recorder::default()), RunnerConfig::default()).await;

    let mut early = connect(&target).await;
    let mut late = connect(&target).await;
    // `early` takes its transaction id first, but inserts after `late`.
    let early_tx = early.transaction().await.expect("begin early");
    early_tx
        .query_one("SELECT pg_current_xact_id()", &[])
        .await
        .expect("take an xid");
    let late_tx = late.transaction().await.expect("begin late");
    let first = insert_event(&late_tx, "a").await;
    let second = insert_event(&early_tx, "b").await;
    late_tx.commit().await.expect("commit late");
    runner.catch_up().await.expect("catch up");
    assert_eq!(seen(&db).await, Vec::<i64>::new());
    early_tx.commit().await.expect("commit early");
    catch_up_to(&runner, &db, &[first, second]).await;
    assert_each_applied_once(&db, &[first, second]).await;
}

#[tokio::test]
async fn an_event_with_a_lower_position_committed_after_a_higher_one_is_read_next_not_skipped() {
    let (target, db, runner) =
        recorder_setup(Arc::new(Recorder::default()), RunnerConfig::default()).await;

    let mut early = connect(&target).await;
    let mut late = connect(&target).await;
    // `early` takes its transaction id first; `late` inserts first, so its event has the
    // lower position, and commits last.
    let early_tx = early.transaction().await.expect("begin early");
    early_tx
        .query_one("SELECT pg_current_xact_id()", &[])
        .await
        .expect("take an xid");
    let late_tx = late.transaction().await.expect("begin late");
    let low = insert_event(&late_tx, "a").await;
    let high = insert_event(&early_tx, "b").await;
    assert!(low < high);
    early_tx.commit().await.expect("commit early");
    // `high` is below the horizon (its transaction is older than every open one) and is
    // applied; the checkpoint passes position `high`.
    catch_up_to(&runner, &db, &[high]).await;

    late_tx.commit().await.expect("commit late");
    // A reader going by position would now look only past `high` and never apply `low`.
    catch_up_to(&runner, &db, &[low, high]).await;
    assert_each_applied_once(&db, &[low, high]).await;
}

#[tokio::test]
async fn a_batch_that_fails_after_its_writes_leaves_no_trace_and_is_applied_once_on_the_retry() {
    let recorder = Arc::new(Recorder {
        fail_once: AtomicBool::new(true),
        ..Recorder::default()
    });
    let (target, db, runner) = recorder_setup(Arc::clone(&recorder), RunnerConfig::default()).await;
    let mut writer = connect(&target).await;
    let tx = writer.transaction().await.expect("begin");
    let mut positions = Vec::new();
    for stream in ["a", "b", "c"] {
        positions.push(insert_event(&tx, stream).await);
    }
    tx.commit().await.expect("commit three events");

    // The first batch writes its rows, then fails: its rows and its checkpoint roll back
    // together, so the read model shows nothing and the checkpoint has not moved.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match runner.run_once(recorder.as_ref()).await {
            Err(error) => {
                assert!(!error.is_deterministic(), "a transient failure: {error}");
                break;
            }
            Ok(applied) => assert_eq!(applied, 0, "the failing batch did not commit"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the events never came below the horizon"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen(&db).await,
        Vec::<i64>::new(),
        "the failed batch's writes are gone"
    );
    assert_eq!(
        applied_and_set_aside(&db).await,
        (0, 0),
        "and its checkpoint"
    );

    // The retry applies the batch once.
    catch_up_to(&runner, &db, &positions).await;
    assert_each_applied_once(&db, &positions).await;
}

#[tokio::test]
async fn two_runners_on_one_projection_apply_each_event_once() {
    // Each batch holds its transaction (and the claim) for 10 ms: without the claim, the two
    // runners would read the same batch after the same checkpoint and both write it.
    let recorder = Arc::new(Recorder {
        hold: Duration::from_millis(10),
        ..Recorder::default()
    });
    let config = RunnerConfig {
        batch_size: 7,
        ..RunnerConfig::default()
    };
    let (target, db, a) = recorder_setup(Arc::clone(&recorder), config.clone()).await;
    db.execute(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Test', 's' || i, 1, 'Happened', '1.0', '{}', '{}' FROM generate_series(0, 299) i",
        &[],
    )
    .await
    .expect("insert 300 events");
    let b = Runner::new(
        target.pool(4).expect("pool"),
        None,
        vec![Arc::clone(&recorder) as Arc<dyn Projection>],
        config,
    );
    let drain = |runner: Runner| {
        let (target, recorder) = (target.clone(), Arc::clone(&recorder));
        async move {
            let db = connect(&target).await;
            let mut applied = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let distinct: i64 = db
                    .query_one("SELECT count(DISTINCT position) FROM seen", &[])
                    .await
                    .expect("distinct positions")
                    .get(0);
                if distinct >= 300 {
                    return applied;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "only {distinct} of 300 events applied"
                );
                applied += runner.run_once(recorder.as_ref()).await.expect("runner");
            }
        }
    };
    let (ra, rb) = tokio::join!(drain(a), drain(b));
    assert_eq!(
        ra + rb,
        300,
        "every event applied once between them (a: {ra}, b: {rb})"
    );
    let positions: Vec<i64> = db
        .query("SELECT position FROM events ORDER BY position", &[])
        .await
        .expect("positions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_each_applied_once(&db, &positions).await;
}
