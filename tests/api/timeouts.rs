//! Bounds on time: a request that runs too long is answered 503 with `Retry-After`, every
//! server session carries a statement timeout, and a rebuild's swap never freezes API reads
//! behind a long reader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use subdesk::app::Settings;

use crate::helpers::{acme_case, expect_json, spawn_app, spawn_app_with, subdesk_cli, As};

#[tokio::test]
async fn a_request_past_the_request_timeout_is_503_with_retry_after() {
    let settings = Settings {
        request_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let app = spawn_app_with(settings, Arc::new(subdesk::clock::SystemClock)).await;
    let sam = app.token(As::agent()).await;
    assert_eq!(app.get("/v1/cases", &sam).await.status(), StatusCode::OK);
    // The list's query waits behind a lock (its statement timeout is far off), and the
    // request timeout cuts it short.
    let mut holder = app.db().await;
    let tx = holder.transaction().await.expect("tx");
    tx.batch_execute("LOCK TABLE case_view IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let response = app.get("/v1/cases", &sam).await;
    tx.rollback().await.expect("release");
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let problem = expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["code"], "request_timeout", "{problem}");

    // A request within the bound is untouched.
    let listed = app.get("/v1/cases", &sam).await;
    assert_eq!(listed.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_server_session_has_a_statement_timeout() {
    let settings = Settings {
        statement_timeout: Duration::from_millis(1500),
        ..Settings::default()
    };
    let app = spawn_app_with(settings, Arc::new(subdesk::clock::SystemClock)).await;
    for pool in [&app.state.pool, &app.state.read_pool] {
        let client = pool.get().await.expect("connection");
        let shown: String = client
            .query_one("SHOW statement_timeout", &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(shown, "1500ms");
        let idle: String = client
            .query_one("SHOW idle_in_transaction_session_timeout", &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(idle, "1min");
        let slow = client.query_one("SELECT pg_sleep(3)", &[]).await;
        let error = slow.expect_err("cancelled by the statement timeout");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_rebuild_waiting_for_a_long_reader_never_holds_api_reads_behind_it() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let at = opened["position"].as_i64().expect("position");

    // A reader that keeps `case_view` locked for 8 seconds.
    let reader = app.db().await;
    reader.batch_execute("BEGIN").await.expect("begin");
    reader
        .query_one("SELECT count(*) FROM case_view", &[])
        .await
        .expect("read");
    let target = app.target.clone();
    let rebuild =
        tokio::spawn(
            async move { subdesk_cli(&target, &["projections", "rebuild", "cases"]).await },
        );

    let held = Instant::now();
    let mut slowest = Duration::ZERO;
    while held.elapsed() < Duration::from_secs(8) {
        let started = Instant::now();
        let read = app
            .get(&format!("/v1/cases/{id}?min_position={at}"), &ann)
            .await;
        assert_eq!(read.status(), StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Behind a swap that waited for the lock, each read would have waited for the reader.
    assert!(
        slowest < Duration::from_secs(5),
        "a read waited {slowest:?} behind the swap"
    );
    reader.batch_execute("COMMIT").await.expect("commit");

    let rebuilt = rebuild.await.expect("rebuild task");
    assert!(
        rebuilt.status.success(),
        "the rebuild swapped in once the reader was gone: {}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let read = expect_json(
        app.get(&format!("/v1/cases/{id}"), &ann).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["id"], opened["id"]);
}
