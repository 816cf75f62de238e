//! The projection runner reads the log gap-free: events whose positions commit out of order
//! are each applied exactly once.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use subdesk_projections::{Projection, ProjectionError, Runner, RunnerConfig, StoredEvent};

use crate::helpers::{connect, fresh_database};

/// Records every event it is given; a second application of one event fails the batch.
struct Recorder;

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

/// Catches up until `expected` has been seen. The horizon is cluster-wide: a transaction that
/// another test holds open for a moment delays every reader, so one `catch_up` may apply
/// nothing yet.
async fn catch_up_to(runner: &Runner, db: &tokio_postgres::Client, expected: &[i64]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
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
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn seen(db: &tokio_postgres::Client) -> Vec<i64> {
    db.query("SELECT position FROM seen ORDER BY position", &[])
        .await
        .expect("seen")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn events_committed_out_of_position_order_are_each_applied_exactly_once() {
    let target = fresh_database().await;
    let db = connect(&target).await;
    db.batch_execute("CREATE TABLE seen (position bigint PRIMARY KEY)")
        .await
        .expect("seen table");
    let runner = Runner::new(
        target.pool(4).expect("pool"),
        None,
        vec![Arc::new(Recorder)],
        RunnerConfig::default(),
    );
    runner.ensure_checkpoints().await.expect("checkpoints");

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

    runner.catch_up().await.expect("catch up again");
    assert_eq!(seen(&db).await, vec![low, high], "nothing is applied twice");
}

#[tokio::test]
async fn a_transaction_that_started_first_but_commits_last_is_not_skipped() {
    let target = fresh_database().await;
    let db = connect(&target).await;
    db.batch_execute("CREATE TABLE seen (position bigint PRIMARY KEY)")
        .await
        .expect("seen table");
    let runner = Runner::new(
        target.pool(4).expect("pool"),
        None,
        vec![Arc::new(Recorder)],
        RunnerConfig::default(),
    );
    runner.ensure_checkpoints().await.expect("checkpoints");

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
}

#[tokio::test]
async fn two_runners_on_one_projection_apply_each_event_once() {
    let target = fresh_database().await;
    let db = connect(&target).await;
    db.batch_execute("CREATE TABLE seen (position bigint PRIMARY KEY)")
        .await
        .expect("seen table");
    for i in 0..300 {
        db.execute(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('Test', $1, 1, 'Happened', '1.0', '{}', '{}')",
            &[&format!("s{i}")],
        )
        .await
        .expect("insert");
    }
    let config = RunnerConfig {
        batch_size: 7,
        ..RunnerConfig::default()
    };
    let a = Runner::new(
        target.pool(4).expect("pool"),
        None,
        vec![Arc::new(Recorder)],
        config.clone(),
    );
    let b = Runner::new(
        target.pool(4).expect("pool"),
        None,
        vec![Arc::new(Recorder)],
        config,
    );
    a.ensure_checkpoints().await.expect("checkpoints");
    let drain = |runner: Runner| {
        let target = target.clone();
        async move {
            let db = connect(&target).await;
            let mut applied = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while seen(&db).await.len() < 300 && std::time::Instant::now() < deadline {
                applied += runner.run_once(&Recorder).await.expect("runner");
            }
            applied
        }
    };
    let (ra, rb) = tokio::join!(drain(a), drain(b));
    assert_eq!(
        ra + rb,
        300,
        "every event applied once between them (a: {ra}, b: {rb})"
    );
    assert_eq!(seen(&db).await.len(), 300);
}
