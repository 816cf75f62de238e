//! How appends wake the projections (migration V22, issue 16): the command path's
//! connections append without the events table's NOTIFY, which serialised every commit on a
//! database-wide lock; the runner wakes its own process's projections directly and tells
//! other processes with one NOTIFY for the appends of a few milliseconds. Any other writer
//! (psql, a script, an older binary) still notifies per statement.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use subdesk::app::Settings;
use subdesk::clock::SystemClock;
use subdesk_projections::RunnerConfig;
use tokio_util::sync::CancellationToken;

use crate::helpers::{acme_case, connect, expect_json, spawn_app_with, As};

/// Waits up to 10 s for `heard` to exceed `than`.
async fn heard_more(heard: &AtomicUsize, than: usize) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if heard.load(Ordering::SeqCst) > than {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn an_append_wakes_this_process_at_once_and_other_processes_through_one_notify() {
    // No polling to fall back on: only wake-ups move the projections.
    let settings = Settings {
        projection: RunnerConfig {
            poll_interval: Duration::from_secs(3600),
            ..RunnerConfig::default()
        },
        ..Settings::default()
    };
    let app = spawn_app_with(settings, Arc::new(SystemClock)).await;

    // Another process's LISTEN on the events channel.
    let heard = Arc::new(AtomicUsize::new(0));
    let listening = Arc::new(tokio::sync::Notify::new());
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    tokio::spawn(subdesk_projections::listen::listen(
        app.target.config.clone(),
        subdesk_projections::EVENTS_CHANNEL,
        {
            let (heard, listening) = (Arc::clone(&heard), Arc::clone(&listening));
            move |payload| match payload {
                Some(_) => {
                    heard.fetch_add(1, Ordering::SeqCst);
                }
                None => listening.notify_one(),
            }
        },
        stop,
    ));
    tokio::time::timeout(Duration::from_secs(10), listening.notified())
        .await
        .expect("the LISTEN connection is up");

    // A session that turned the NOTIFY off appends silently; any other session notifies.
    let db = connect(&app.target).await;
    db.batch_execute(
        "SET subdesk.notify = off; \
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('Probe', 'probe-1', 1, 'Probed', '1.0', '{}', '{}')",
    )
    .await
    .expect("a silent append");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(heard.load(Ordering::SeqCst), 0, "the append was silent");
    db.batch_execute(
        "RESET subdesk.notify; \
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         VALUES ('Probe', 'probe-1', 2, 'Probed', '1.0', '{}', '{}')",
    )
    .await
    .expect("a notifying append");
    assert!(heard_more(&heard, 0).await, "a plain insert notifies");
    let before = heard.load(Ordering::SeqCst);

    // A command: its connection appends silently, yet this process's read model reaches it
    // (the projections were woken directly; they never poll here) and the other process hears
    // of it.
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let (id, position) = (
        receipt["id"].as_str().expect("id"),
        receipt["position"].as_i64().expect("position"),
    );
    let response = app
        .get(&format!("/v1/cases/{id}?min_position={position}"), &ann)
        .await;
    let case = expect_json(response, StatusCode::OK).await;
    assert_eq!(case["status"], "open");
    assert!(
        heard_more(&heard, before).await,
        "the runner announced the append to other processes"
    );
}
