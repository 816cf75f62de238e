//! `webhooks`: webhook delivery to a local HTTP receiver (an axum server in this process that
//! answers 200 at once): deliveries per second of one endpoint and of four at once, against the
//! same POSTs sent straight by one client with no database (the baseline: what one endpoint's
//! one-at-a-time order allows at best), and commit-to-delivery latency of comments made over
//! HTTP while the endpoint follows the log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::commands::tokens;
use crate::env::{wait_for_projections, Bench};
use crate::{seed, Options, Report};

/// Comments in the log the endpoints replay, posts of the baseline, comments of the latency
/// line, endpoints of the parallel line.
const LOGGED: usize = 2_000;
const DIRECT: usize = 2_000;
const FOLLOWED: usize = 200;
const PARALLEL: usize = 4;
/// Cases the logged comments are spread over.
const CASES: usize = 40;

/// What the receiver got: (webhook id, position, latency from the event's commit in ms).
type Got = Arc<Mutex<Vec<(String, i64, f64)>>>;

async fn receiver() -> anyhow::Result<(String, Got)> {
    let got: Got = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let sink = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let now = chrono::Utc::now();
                if let Ok(event) = serde_json::from_slice::<Value>(&body) {
                    let latency = event["recorded_at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map_or(f64::NAN, |at| {
                            (now - at.with_timezone(&chrono::Utc))
                                .num_microseconds()
                                .unwrap_or(0) as f64
                                / 1000.0
                        });
                    if let Ok(mut got) = sink.lock() {
                        got.push((
                            event["webhook_id"].as_str().unwrap_or_default().to_string(),
                            event["position"].as_i64().unwrap_or_default(),
                            latency,
                        ));
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, got))
}

fn count(got: &Got, ids: &[String]) -> usize {
    got.lock()
        .map(|g| g.iter().filter(|(id, _, _)| ids.contains(id)).count())
        .unwrap_or_default()
}

async fn wait_count(got: &Got, ids: &[String], total: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while count(got, ids) < total {
        if Instant::now() > deadline {
            bail!("webhooks not delivered within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn register(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    url: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{server}/v1/webhooks"))
        .bearer_auth(token)
        .json(&json!({"url": url, "events": ["case.comment_added"]}))
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::CREATED {
        bail!("registering a webhook: {}", response.status());
    }
    let endpoint: Value = response.json().await?;
    Ok(endpoint["id"].as_str().unwrap_or_default().to_string())
}

async fn replay_all(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    for id in ids {
        let response = http
            .post(format!("{server}/v1/webhooks/{id}/replay"))
            .bearer_auth(token)
            .json(&json!({"from_position": 0}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("replaying a webhook: {}", response.status());
        }
    }
    Ok(())
}

async fn comment(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    case: &str,
    n: usize,
) -> anyhow::Result<()> {
    // Comments on one case race for its stream: a lost race (409) is tried again.
    for _ in 0..10 {
        let response = http
            .post(format!("{server}/v1/cases/{case}/comments"))
            .bearer_auth(token)
            .json(&json!({"body": format!("Still spinning ({n})")}))
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            continue;
        }
        if !response.status().is_success() {
            bail!("commenting: {}", response.status());
        }
        return Ok(());
    }
    bail!("commenting: conflicts kept winning")
}

pub async fn webhooks(
    bench: &Bench,
    _options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let db = "bench_webhooks";
    let _target = bench.database(db).await?;
    let client = bench.connect(db).await?;
    let (customer, _agent) = tokens(&_target).await?;
    let (url, got) = receiver().await?;
    let http = reqwest::Client::new();

    // The baseline: the same body POSTed straight, one after another.
    let body =
        json!({"id": "evt_1", "type": "case.comment_added", "data": {"body": "x".repeat(200)}});
    let started = Instant::now();
    for _ in 0..DIRECT {
        http.post(&url).json(&body).send().await?;
    }
    let baseline = DIRECT as f64 / started.elapsed().as_secs_f64();
    got.lock().map(|mut g| g.clear()).ok();

    let server = bench.server(db, &["--webhook-allow-private"]).await?;
    let address = server.address.clone();
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let case: Value = http
            .post(format!("{address}/v1/cases"))
            .bearer_auth(&customer)
            .json(
                &json!({"entitlement_number": seed::ENTITLEMENT, "product": "jira-software",
                          "summary": "Board does not load", "description": "Spins", "impact": 3}),
            )
            .send()
            .await?
            .json()
            .await?;
        cases.push(case["id"].as_str().unwrap_or_default().to_string());
    }
    let case = cases[0].clone();
    let results: Vec<anyhow::Result<()>> = stream::iter(0..LOGGED)
        .map(|n| comment(&http, &address, &customer, &cases[n % CASES], n))
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    wait_for_projections(&client, Duration::from_secs(120)).await?;

    // One endpoint replays the log: one event at a time, in order.
    let one = vec![register(&http, &address, &customer, &url).await?];
    let started = Instant::now();
    replay_all(&http, &address, &customer, &one).await?;
    wait_count(&got, &one, LOGGED).await?;
    let single = LOGGED as f64 / started.elapsed().as_secs_f64();

    // Four endpoints at once.
    let mut four = Vec::new();
    for _ in 0..PARALLEL {
        four.push(register(&http, &address, &customer, &url).await?);
    }
    let started = Instant::now();
    replay_all(&http, &address, &customer, &four).await?;
    wait_count(&got, &four, LOGGED * PARALLEL).await?;
    let parallel = (LOGGED * PARALLEL) as f64 / started.elapsed().as_secs_f64();
    for id in one.iter().chain(&four) {
        http.delete(format!("{address}/v1/webhooks/{id}"))
            .bearer_auth(&customer)
            .send()
            .await?;
    }

    // Latency: a caught-up endpoint while comments come at 20 a second.
    let follower = vec![register(&http, &address, &customer, &url).await?];
    for n in 0..FOLLOWED {
        comment(&http, &address, &customer, &case, LOGGED + n).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_count(&got, &follower, FOLLOWED).await?;
    let mut latencies: Vec<f64> = got
        .lock()
        .map(|g| {
            g.iter()
                .filter(|(id, _, _)| follower.contains(id))
                .map(|(_, _, ms)| *ms)
                .collect()
        })
        .unwrap_or_default();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let rss = server.peak_rss_mib();
    server.stop().await?;
    report.section(
        &format!("webhooks{label}"),
        &format!(
            "| line | figure | baseline (same run) | ratio |\n|---|---|---|---|\n\
             | one endpoint replays {LOGGED} events | {single:.0} deliveries/s | {baseline:.0} POSTs/s \
             sent straight by one client, no database | {:.2} |\n\
             | {PARALLEL} endpoints replay {LOGGED} events each | {parallel:.0} deliveries/s | \
             {baseline:.0} POSTs/s | {:.2} |\n\
             | commit-to-delivery of {FOLLOWED} comments (20/s) | p50 {:.0} ms, p99 {:.0} ms | | |",
            single / baseline,
            parallel / baseline,
            at(0.5),
            at(0.99),
        ),
    );
    report.rss(&format!("webhooks{label}"), rss);
    Ok(())
}
