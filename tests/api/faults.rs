//! Faults under load: the server killed with SIGKILL, PostgreSQL restarted, 64 writers on
//! one case, three servers on one database. In every case nothing the client saw
//! acknowledged is lost or doubled, and the read models equal a fresh rebuild.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::db::Target;
use subdesk::pg::{hand_over, ClusterOptions, LocalCluster};
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use crate::helpers::{
    acme_case, connect, database_url, forget_acme_entitlement, fresh_database, issue_token,
    seed_acme_entitlement, spawn_app, subdesk_cli, As, ServerProcess,
};

/// What the client saw of one command.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    case: String,
    /// The version in the receipt, when the command was acknowledged.
    acked: Option<i64>,
    status: Option<StatusCode>,
    at: Instant,
    took: Duration,
    retry_after: bool,
}

/// Opens `n` cases as `token` through `base` and returns their ids.
async fn open_cases(http: &reqwest::Client, base: &str, token: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let response = http
            .post(format!("{base}/v1/cases"))
            .bearer_auth(token)
            .json(&acme_case())
            .send()
            .await
            .expect("open a case");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("receipt");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    ids
}

/// Sends one comment with an `Idempotency-Key`; records what came back.
async fn comment(http: &reqwest::Client, base: &str, token: &str, case: &str, key: &str) -> Sent {
    let started = Instant::now();
    let response = http
        .post(format!("{base}/v1/cases/{case}/comments"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .timeout(Duration::from_secs(20))
        .json(&json!({"body": format!("comment {key}")}))
        .send()
        .await;
    let mut sent = Sent {
        key: key.to_string(),
        case: case.to_string(),
        acked: None,
        status: None,
        at: started,
        took: Duration::ZERO,
        retry_after: false,
    };
    if let Ok(response) = response {
        sent.status = Some(response.status());
        sent.retry_after = response.headers().contains_key("retry-after");
        if response.status().is_success() {
            if let Ok(body) = response.json::<Value>().await {
                sent.acked = body["version"].as_i64();
            }
        }
    }
    sent.took = started.elapsed();
    sent
}

/// Workers that comment on their own case in a loop until `stop`, against whichever base URL
/// `base` holds at the time.
fn comment_load(
    base: Arc<Mutex<String>>,
    token: String,
    cases: Vec<String>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sent>>> {
    cases
        .into_iter()
        .map(|case| {
            let (base, token, stop) = (Arc::clone(&base), token.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut log = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let url = base.lock().map(|b| b.clone()).unwrap_or_default();
                    let key = Uuid::new_v4().to_string();
                    let sent = comment(&http, &url, &token, &case, &key).await;
                    if sent.status.is_none() || sent.status == Some(StatusCode::SERVICE_UNAVAILABLE)
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    log.push(sent);
                }
                log
            })
        })
        .collect()
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Vec<Sent>>>) -> Vec<Sent> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("load worker"));
    }
    all
}

/// (count, sequence of the first) of the `CommentAdded` events that carry each key.
async fn comments_by_key(target: &Target) -> HashMap<String, (i64, i64)> {
    connect(target)
        .await
        .query(
            "SELECT metadata ->> 'idempotency_key', count(*), min(sequence) FROM events \
              WHERE event_type = 'CommentAdded' AND metadata ? 'idempotency_key' \
              GROUP BY 1",
            &[],
        )
        .await
        .expect("comments by key")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// Every acknowledged command is in the log once, at the version its receipt named.
async fn assert_acknowledged_exactly_once(target: &Target, sent: &[Sent]) {
    let logged = comments_by_key(target).await;
    let acked: Vec<&Sent> = sent.iter().filter(|s| s.acked.is_some()).collect();
    assert!(!acked.is_empty(), "the load got nothing acknowledged");
    for s in &acked {
        let found = logged.get(&s.key).copied();
        assert_eq!(
            found.map(|(n, _)| n),
            Some(1),
            "acknowledged comment {} on {} is in the log exactly once",
            s.key,
            s.case
        );
        assert_eq!(
            found.map(|(_, seq)| seq),
            s.acked,
            "at its receipt's version"
        );
    }
    assert!(
        logged.values().all(|(n, _)| *n == 1),
        "no command was appended twice"
    );
}

/// Waits until every projection's checkpoint covers the newest event.
async fn wait_for_catch_up(target: &Target) {
    let db = connect(target).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind: i64 = db
            .query_one(
                "SELECT count(*) FROM projection_checkpoints c, \
                        (SELECT tx_id, position FROM events \
                          ORDER BY tx_id DESC, position DESC LIMIT 1) e \
                  WHERE (c.last_tx, c.last_position) < (e.tx_id, e.position)",
                &[],
            )
            .await
            .expect("checkpoints")
            .get(0);
        if behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{behind} projections stay behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `subdesk projections check` (every read model against a fresh rebuild) and `subdesk
/// verify` (every hash chain) both pass.
async fn assert_read_models_and_chains_clean(target: &Target) {
    // The seeded entitlement row stands in for a subscription no event created.
    forget_acme_entitlement(target).await;
    let check = subdesk_cli(target, &["projections", "check"]).await;
    assert!(
        check.status.success(),
        "read models equal a fresh rebuild: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let verify = subdesk_cli(target, &["verify"]).await;
    assert!(
        verify.status.success(),
        "hash chains intact: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test]
async fn a_server_killed_mid_load_loses_no_acknowledged_command_and_applies_none_twice() {
    let target = fresh_database().await;
    let mut server = ServerProcess::start(&target, &[]).await;
    seed_acme_entitlement(&target).await;
    let ann = issue_token(&target, As::org_admin("ann@acme.test", "acme")).await;
    let http = reqwest::Client::new();
    let cases = open_cases(&http, &server.address, &ann, 8).await;

    let base = Arc::new(Mutex::new(server.address.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = comment_load(Arc::clone(&base), ann.clone(), cases, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().await.expect("kill -9 the server");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = collect(load).await;
    assert!(
        sent.iter().any(|s| s.acked.is_none()),
        "some commands were cut off by the kill"
    );

    // The client retries what it did not see acknowledged, with the same keys.
    let restarted = ServerProcess::start(&target, &[]).await;
    for s in sent.iter_mut().filter(|s| s.acked.is_none()) {
        let retried = comment(&http, &restarted.address, &ann, &s.case, &s.key).await;
        assert_eq!(
            retried.status,
            Some(StatusCode::CREATED),
            "a retry after the restart is accepted or replayed"
        );
        s.acked = retried.acked;
    }
    assert_acknowledged_exactly_once(&target, &sent).await;
    wait_for_catch_up(&target).await;
    assert_read_models_and_chains_clean(&target).await;
    restarted.stop().await;
}

/// A `subdesk serve` process whose log is kept, to look for panics.
struct LoggedServer {
    child: tokio::process::Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

async fn start_logged(target: &Target) -> LoggedServer {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_subdesk"))
        .env("DATABASE_URL", database_url(target))
        .env("RUST_LOG", "warn")
        .args(["serve", "--listen", "127.0.0.1:0", "--pool-size", "6"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start subdesk serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        String::new()
    })
    .await
    .expect("the server starts listening");
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut sink) = sink.lock() {
                sink.push(line);
            }
        }
    });
    LoggedServer {
        child,
        address,
        log,
    }
}

#[tokio::test]
async fn a_postgres_restart_mid_load_is_503_with_retry_after_then_recovers_by_itself() {
    // A cluster of its own: this test stops it.
    let dir = std::env::temp_dir().join(format!("subdesk-fault-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("cluster directory");
    hand_over(&dir).expect("hand the directory to the postgres user");
    let options = ClusterOptions {
        settings: [("fsync", "off"), ("synchronous_commit", "off")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        remove_on_stop: false,
    };
    let cluster = LocalCluster::start(&dir, &options)
        .await
        .expect("start the cluster");
    cluster.ensure_database("faults").await.expect("database");
    let target = Target::local(&cluster, "faults");
    subdesk::db::migrate(&target).await.expect("migrate");
    seed_acme_entitlement(&target).await;
    let mut server = start_logged(&target).await;
    let ann = issue_token(&target, As::org_admin("ann@acme.test", "acme")).await;
    let http = reqwest::Client::new();
    let cases = open_cases(&http, &server.address, &ann, 4).await;

    let base = Arc::new(Mutex::new(server.address.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = comment_load(Arc::clone(&base), ann.clone(), cases, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let down_at = Instant::now();
    cluster.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = LocalCluster::start(&dir, &options)
        .await
        .expect("restart the cluster");
    let up_at = Instant::now();
    // Keep the load going until the server has accepted commands again for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = collect(load).await;

    let refused: Vec<&Sent> = sent.iter().filter(|s| s.acked.is_none()).collect();
    assert!(!refused.is_empty(), "the outage was noticed");
    let slowest = refused.iter().map(|s| s.took).max().unwrap_or_default();
    eprintln!(
        "{} commands refused during the outage, the slowest answer took {slowest:?}",
        refused.len()
    );
    for s in &refused {
        assert_eq!(
            s.status,
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "during the outage the API answers 503: {s:?}"
        );
        assert!(s.retry_after, "with Retry-After: {s:?}");
        assert!(
            s.took < Duration::from_secs(3),
            "and answers promptly instead of hanging: {s:?}"
        );
    }
    let recovered = sent
        .iter()
        .filter(|s| s.acked.is_some() && s.at > up_at)
        .count();
    assert!(
        recovered > 0,
        "commands are accepted again after the restart"
    );
    assert!(
        up_at.duration_since(down_at) >= Duration::from_secs(2),
        "the outage lasted"
    );
    assert!(
        server.child.try_wait().expect("server status").is_none(),
        "the server is still running"
    );
    assert_acknowledged_exactly_once(&target, &sent).await;
    wait_for_catch_up(&target).await;
    assert_read_models_and_chains_clean(&target).await;
    let log = server.log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        !log.iter().any(|l| l.contains("panicked")),
        "no panic: {log:?}"
    );
    server.child.kill().await.expect("stop the server");
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sixty_four_clients_on_one_case_keep_its_sequence_contiguous_and_lose_nothing() {
    let app = spawn_app().await;
    let ann = app.token(As::org_admin("ann@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id").to_string();

    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (http, url, ann) = (
            app.http.clone(),
            app.url(&format!("/v1/cases/{id}/comments")),
            ann.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let request = Uuid::new_v4().to_string();
                let response = http
                    .post(&url)
                    .bearer_auth(&ann)
                    .header("x-request-id", &request)
                    .json(&json!({"body": "me too"}))
                    .send()
                    .await
                    .expect("POST");
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                seen.push((request, status, body["version"].as_i64()));
            }
            seen
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.expect("client"));
    }
    assert!(
        results
            .iter()
            .all(|(_, s, _)| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "every answer is an acceptance or a 409: {:?}",
        results.iter().map(|(_, s, _)| s).collect::<Vec<_>>()
    );
    let acked: Vec<&(String, StatusCode, Option<i64>)> = results
        .iter()
        .filter(|(_, s, _)| *s == StatusCode::CREATED)
        .collect();
    assert!(!acked.is_empty(), "some comments got through");

    let db = app.db().await;
    let rows = db
        .query(
            "SELECT sequence, metadata ->> 'request_id' FROM events WHERE aggregate_id = $1 \
              ORDER BY sequence",
            &[&id],
        )
        .await
        .expect("stream");
    let sequences: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as i64).collect::<Vec<_>>(),
        "contiguous"
    );
    assert_eq!(
        sequences.len(),
        1 + acked.len(),
        "one event per accepted comment"
    );
    let by_request: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.get::<_, String>(1), r.get::<_, i64>(0)))
        .collect();
    for (request, _, version) in &acked {
        assert_eq!(
            by_request.get(request).copied(),
            *version,
            "accepted comment {request} is in the stream at its receipt's version"
        );
    }
    for (request, status, _) in &results {
        if *status == StatusCode::CONFLICT {
            assert!(!by_request.contains_key(request), "a 409 appended nothing");
        }
    }
}

#[tokio::test]
async fn three_servers_under_load_project_each_event_once_and_fire_each_timer_once() {
    let target = fresh_database().await;
    let policy = ["--auto-resolve-after", "2s"];
    let servers = [
        ServerProcess::start(&target, &policy).await,
        ServerProcess::start(&target, &policy).await,
        ServerProcess::start(&target, &policy).await,
    ];
    seed_acme_entitlement(&target).await;
    let ann = issue_token(&target, As::org_admin("ann@acme.test", "acme")).await;
    let sam = issue_token(&target, As::agent()).await;

    // Two workers per server: open a case, comment, ask the customer (arming a timer).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for server in &servers {
        for _ in 0..2 {
            let (base, ann, sam) = (server.address.clone(), ann.clone(), sam.clone());
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut waiting = Vec::new();
                while Instant::now() < deadline {
                    let id = open_cases(&http, &base, &ann, 1).await.remove(0);
                    for (path, token, body) in [
                        ("comments", &ann, json!({"body": "Any news?"})),
                        ("request-info", &sam, json!({"body": "Which browser?"})),
                    ] {
                        let response = http
                            .post(format!("{base}/v1/cases/{id}/{path}"))
                            .bearer_auth(token)
                            .json(&body)
                            .send()
                            .await
                            .expect("command");
                        assert!(
                            response.status().is_success(),
                            "{path}: {}",
                            response.status()
                        );
                    }
                    waiting.push(id);
                }
                waiting
            }));
        }
    }
    let mut waiting = Vec::new();
    for task in tasks {
        waiting.extend(task.await.expect("worker"));
    }
    let db = connect(&target).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resolved: i64 = db
            .query_one(
                "SELECT count(*) FROM events WHERE event_type = 'CaseAutoResolved'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        if resolved as usize >= waiting.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{resolved} of {} resolved",
            waiting.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every scheduler gets a few more rounds to (wrongly) fire again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_catch_up(&target).await;

    let fired: HashMap<String, i64> = db
        .query(
            "SELECT aggregate_id, count(*) FROM events WHERE event_type = 'CaseAutoResolved' \
              GROUP BY aggregate_id",
            &[],
        )
        .await
        .expect("fired")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        fired.len(),
        waiting.len(),
        "every waiting case was resolved"
    );
    assert!(
        waiting.iter().all(|id| fired.get(id) == Some(&1)),
        "each timer fired exactly once: {fired:?}"
    );
    let total: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("events")
        .get(0);
    let applied: Vec<(String, i64)> = db
        .query(
            "SELECT name, events_applied FROM projection_checkpoints ORDER BY name",
            &[],
        )
        .await
        .expect("checkpoints")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(applied.len() >= 3);
    for (name, n) in &applied {
        assert_eq!(
            *n, total,
            "projection {name} applied each of the {total} events exactly once"
        );
    }
    let case_events: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM events WHERE aggregate_type = 'SupportCase') \
                  - (SELECT count(*) FROM case_timeline)",
            &[],
        )
        .await
        .expect("timeline")
        .get(0);
    assert_eq!(case_events, 0, "one timeline row per case event");
    assert_read_models_and_chains_clean(&target).await;
    for server in servers {
        server.stop().await;
    }
}
