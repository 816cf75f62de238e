//! Bounds on time: a request that runs too long is answered 503 with `Retry-After`, every
//! server session carries a statement timeout, and a rebuild's swap never freezes API reads
//! behind a long reader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use subdesk::app::Settings;

use crate::helpers::{acme_case, database_url, expect_json, spawn_app, spawn_app_with, As};

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

/// The retry the swap logs (at INFO) when a reader holds a live table past its lock timeout.
const SWAP_GAVE_WAY: &str = "a reader holds a live table; the swap tries again";

/// `subdesk projections rebuild <name>` at log level INFO, its stderr sent line by line to
/// the returned channel as it is written; the task ends with the process's exit status.
fn rebuild_with_info_log(
    target: &subdesk::db::Target,
    name: &str,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<std::process::ExitStatus>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_subdesk"))
        .env("DATABASE_URL", database_url(target))
        .env("SUBDESK_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
        .env("RUST_LOG", "info")
        .args(["projections", "rebuild", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the rebuild");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = lines_tx.send(line);
        }
        child.wait().await.expect("wait for the rebuild")
    });
    (lines_rx, task)
}

#[tokio::test]
async fn a_rebuild_waiting_for_a_long_reader_gives_way_and_never_holds_api_reads_behind_it() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let at = opened["position"].as_i64().expect("position");

    // A reader that keeps `case_view` locked until the test lets it go.
    let reader = app.db().await;
    reader.batch_execute("BEGIN").await.expect("begin");
    reader
        .query_one("SELECT count(*) FROM case_view", &[])
        .await
        .expect("read");
    let (mut log, rebuild) = rebuild_with_info_log(&app.target, "cases");

    // While the reader holds on, the swap tries, gives way and tries again, and API reads go
    // on between its attempts. Behind a swap that queued for the lock, a read would wait for
    // the reader, which only ends after this loop: it would never be answered in time, and
    // the server's statement timeout would turn it into a 503.
    let mut retries = 0;
    let mut reads_after_a_retry = 0;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while retries < 2 || reads_after_a_retry < 2 {
        while let Ok(line) = log.try_recv() {
            if line.contains(SWAP_GAVE_WAY) {
                retries += 1;
            }
            seen.push(line);
        }
        assert!(
            !rebuild.is_finished() && Instant::now() < deadline,
            "the swap never gave way to the reader ({retries} retries logged): {seen:#?}"
        );
        let read = app
            .get(&format!("/v1/cases/{id}?min_position={at}"), &ann)
            .await;
        assert_eq!(
            read.status(),
            StatusCode::OK,
            "a read during the swap's attempts is answered"
        );
        if retries > 0 {
            reads_after_a_retry += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    reader.batch_execute("COMMIT").await.expect("commit");

    let rebuilt = rebuild.await.expect("rebuild task");
    while let Ok(line) = log.try_recv() {
        seen.push(line);
    }
    assert!(
        rebuilt.success(),
        "the rebuild swapped in once the reader was gone: {seen:#?}"
    );
    let read = expect_json(
        app.get(&format!("/v1/cases/{id}"), &ann).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["id"], opened["id"]);
}
