//! Faults under load: the server killed with SIGKILL between a command's commit and its
//! answer, PostgreSQL stopped (fast and immediate) and started again, 64 writers on one case,
//! three servers on one database. In every case nothing the client saw acknowledged is lost
//! or doubled, a command cut off after its commit is found by its retry, and the read models
//! equal a fresh rebuild.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::db::Target;
use subdesk::pg::{hand_over, ClusterOptions, LocalCluster};
use uuid::Uuid;

use crate::helpers::{
    acme_case, connect, forget_acme_entitlement, fresh_database, issue_token,
    seed_acme_entitlement, spawn_app, spawn_serve, subdesk_cli, timer_firings, As, Firings,
    ServerProcess,
};

/// What the client saw of one command.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    case: String,
    /// The version in the receipt, when the command was acknowledged.
    acked: Option<i64>,
    status: Option<StatusCode>,
    /// The answer was a replay of an earlier acceptance (`idempotent-replayed: true`).
    replayed: bool,
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
        replayed: false,
        at: started,
        took: Duration::ZERO,
        retry_after: false,
    };
    if let Ok(response) = response {
        sent.status = Some(response.status());
        sent.retry_after = response.headers().contains_key("retry-after");
        sent.replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
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

/// Retries, through `base`, every command of `sent` that was not acknowledged, with its own
/// `Idempotency-Key`, as a client would after an outage; each retry must be accepted, either
/// as a replay of a command that had committed or as a new acceptance of one that had not.
/// Returns the commands that had committed without their answer reaching the client.
async fn retry_unacknowledged(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    target: &Target,
    sent: &mut [Sent],
) -> Vec<String> {
    let logged = comments_by_key(target).await;
    let mut committed_unanswered = Vec::new();
    for s in sent.iter_mut().filter(|s| s.acked.is_none()) {
        let retried = comment(http, base, token, &s.case, &s.key).await;
        assert_eq!(
            retried.status,
            Some(StatusCode::CREATED),
            "a retry after the outage is accepted or replayed: {retried:?}"
        );
        match logged.get(&s.key) {
            Some((_, sequence)) => {
                assert!(
                    retried.replayed,
                    "{} was committed before the outage: its retry replays it",
                    s.key
                );
                assert_eq!(
                    retried.acked,
                    Some(*sequence),
                    "and answers with the version it was committed at"
                );
                committed_unanswered.push(s.key.clone());
            }
            None => assert!(
                !retried.replayed,
                "{} never committed: its retry is a new acceptance",
                s.key
            ),
        }
        s.acked = retried.acked;
    }
    committed_unanswered
}

#[tokio::test]
async fn a_server_killed_between_a_commit_and_its_answer_loses_nothing_and_the_retry_replays_it() {
    let target = fresh_database().await;
    // The test-only fault hook (src/http/command.rs): SIGKILL right after the 48th accepted
    // command commits, before its answer is stored or sent. The first 8 open the cases, so the
    // 40th comment of the load is cut off after its commit, with the others in flight.
    let mut server =
        ServerProcess::start_with_env(&target, &[], &[("SUBDESK_FAULT_EXIT_AFTER_COMMIT", "48")])
            .await;
    seed_acme_entitlement(&target).await;
    let ann = issue_token(&target, As::org_admin("ann@acme.test", "acme")).await;
    let http = reqwest::Client::new();
    let cases = open_cases(&http, &server.address, &ann, 8).await;

    let base = Arc::new(Mutex::new(server.address.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = comment_load(Arc::clone(&base), ann.clone(), cases, Arc::clone(&stop));
    let exit = tokio::time::timeout(Duration::from_secs(120), server.child.wait())
        .await
        .expect("the hook kills the server after the 48th commit")
        .expect("wait for the server");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = collect(load).await;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(exit.signal(), Some(9), "killed with SIGKILL: {exit}");

    // The log holds the cut-off command: committed, its answer never sent.
    let logged = comments_by_key(&target).await;
    let cut_off: Vec<String> = sent
        .iter()
        .filter(|s| s.acked.is_none() && logged.contains_key(&s.key))
        .map(|s| s.key.clone())
        .collect();
    assert!(
        !cut_off.is_empty(),
        "a command committed at the kill was never answered"
    );
    let committed = logged.values().map(|(n, _)| n).sum::<i64>();
    assert!(
        committed >= 40,
        "the 40 comments counted up to the kill are in the log (and any that committed beside \
         them): {committed}"
    );

    // The client retries what it did not see acknowledged, with the same keys.
    let restarted = ServerProcess::start(&target, &[]).await;
    let replayed = retry_unacknowledged(&http, &restarted.address, &ann, &target, &mut sent).await;
    assert!(
        cut_off.iter().all(|key| replayed.contains(key)),
        "every command cut off after its commit was replayed by its retry"
    );
    assert_acknowledged_exactly_once(&target, &sent).await;
    wait_for_catch_up(&target).await;
    assert_read_models_and_chains_clean(&target).await;
    restarted.stop().await;
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

    // The client retries what it did not see acknowledged, with the same keys.
    let restarted = ServerProcess::start(&target, &[]).await;
    retry_unacknowledged(&http, &restarted.address, &ann, &target, &mut sent).await;
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
    let (child, mut lines, address) = spawn_serve(target, &[], &[]).await;
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

/// Stops a test's own cluster with `pg_ctl stop -m <mode>`: `fast` ends the sessions and
/// writes a checkpoint (a clean shutdown); `immediate` kills every server process at once
/// without a checkpoint, so the next start recovers from the WAL as after a crash.
async fn pg_ctl_stop(cluster: &LocalCluster, mode: &str) {
    let pg_ctl = subdesk::pg::find_binaries()
        .expect("PostgreSQL binaries")
        .join("pg_ctl");
    // PostgreSQL refuses to be run by root; the launcher runs it as its service user.
    let mut command = if nix::unistd::geteuid().is_root() {
        let user = std::env::var("SUBDESK_PG_USER").unwrap_or_else(|_| "postgres".into());
        let mut command = tokio::process::Command::new("runuser");
        command.args(["-u", &user, "--"]).arg(&pg_ctl);
        command
    } else {
        tokio::process::Command::new(&pg_ctl)
    };
    let output = command
        .arg("stop")
        .arg("-D")
        .arg(cluster.socket_dir())
        .args(["-m", mode, "-w"])
        .output()
        .await
        .expect("run pg_ctl");
    assert!(
        output.status.success(),
        "pg_ctl stop -m {mode}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Comment load on a server whose PostgreSQL is stopped with `pg_ctl stop -m <mode>` and
/// started again two seconds later: during the outage the API answers 503 with
/// `Retry-After`, after it the same server accepts commands again by itself; every command
/// acknowledged before, during or after is in the log exactly once, and every one that was
/// not is accepted (or replayed, had it committed) when the client retries it.
async fn postgres_stopped_mid_load(mode: &str) {
    // A cluster of its own: this test stops it. PostgreSQL's durability defaults for commits
    // (synchronous_commit on): an immediate stop loses no acknowledged commit.
    let dir = std::env::temp_dir().join(format!("subdesk-fault-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("cluster directory");
    hand_over(&dir).expect("hand the directory to the postgres user");
    let options = ClusterOptions {
        settings: [("fsync", "off")]
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
    pg_ctl_stop(&cluster, mode).await;
    // The launcher's wrapper process goes with the server it watched.
    cluster.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = LocalCluster::start(&dir, &options)
        .await
        .expect("restart the cluster");
    let up_at = Instant::now();
    // Keep the load going until the server has accepted commands again for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = collect(load).await;

    let refused: Vec<&Sent> = sent.iter().filter(|s| s.acked.is_none()).collect();
    assert!(
        refused.iter().any(|s| s.at >= down_at),
        "requests sent during the outage were refused"
    );
    let slowest = refused.iter().map(|s| s.took).max().unwrap_or_default();
    eprintln!(
        "{} commands refused during the outage (-m {mode}), the slowest answer took {slowest:?}",
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
        server.child.try_wait().expect("server status").is_none(),
        "the server is still running"
    );
    assert_acknowledged_exactly_once(&target, &sent).await;
    // The client retries what was refused, with the same keys.
    retry_unacknowledged(&http, &server.address, &ann, &target, &mut sent).await;
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
async fn a_postgres_fast_shutdown_mid_load_is_503_with_retry_after_then_recovers_by_itself() {
    postgres_stopped_mid_load("fast").await;
}

#[tokio::test]
async fn a_postgres_immediate_stop_mid_load_is_503_then_recovers_and_loses_nothing_acknowledged() {
    postgres_stopped_mid_load("immediate").await;
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
    // The case would refuse a second resolution by itself; what shows that no timer was
    // claimed twice is the schedulers' own count: every firing accepted, none refused.
    let mut firings = Vec::new();
    for server in &servers {
        firings.push(timer_firings(&server.address).await);
    }
    let all = firings.iter().fold(Firings::default(), |sum, f| sum + *f);
    assert_eq!(
        all.accepted as usize,
        waiting.len(),
        "one firing per waiting case across the three servers: {firings:?}"
    );
    assert_eq!(
        all.refused, 0,
        "no server claimed a timer another had fired: {firings:?}"
    );
    let reclaimed: i64 = db
        .query_one(
            "SELECT count(*) FROM timer_leases WHERE kind = 'auto_resolve' \
                AND (attempts <> 1 OR last_outcome IS DISTINCT FROM 'accepted')",
            &[],
        )
        .await
        .expect("leases")
        .get(0);
    assert_eq!(reclaimed, 0, "every lease records one accepted claim");
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
