//! `timers`: 10,000 cases falling due at the same moment, and the firing delay of 1,000
//! timers falling due at scattered moments, with the system clock.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::commands::tokens;
use crate::env::{wait_for_projections, Bench};
use crate::load::percentile_ms;
use crate::{seed, Options, Report};

/// Cases resolved at once, and timers fired one by one.
const BURST: usize = 10_000;
const SCATTERED: usize = 1_000;

pub async fn timers(
    bench: &Bench,
    _options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let (burst, burst_rss) = burst(bench).await?;
    let (scattered, scattered_rss) = scattered(bench).await?;
    report.section(
        &format!("timers{label}"),
        &format!("{burst}\n\n{scattered}"),
    );
    report.rss(&format!("timers, 10,000 due at once{label}"), burst_rss);
    report.rss(&format!("timers, 1,000 scattered{label}"), scattered_rss);
    Ok(())
}

/// 10,000 cases waiting since the same instant; the server's policy makes them all due at
/// the same moment, after it has started and projected them.
async fn burst(bench: &Bench) -> anyhow::Result<(String, f64)> {
    let db = "bench_timers_burst";
    bench.database(db).await?;
    let mut client = bench.connect(db).await?;
    let since = Utc::now();
    seed::waiting_cases(&mut client, BURST, since).await?;
    let seeded = (Utc::now() - since).num_milliseconds() as f64 / 1000.0;
    // Due 20 s after the seeding ended: time to start the server and project the timers.
    let policy = seeded.ceil() as i64 + 20;
    let due = since + chrono::Duration::seconds(policy);
    let server = bench
        .server(db, &["--auto-resolve-after", &format!("{policy}s")])
        .await?;
    wait_for_projections(&client, Duration::from_secs(60)).await?;
    let armed: i64 = client
        .query_one(
            "SELECT count(*) FROM timers WHERE kind = 'auto_resolve'",
            &[],
        )
        .await?
        .get(0);
    if Utc::now() >= due {
        bail!("the timers were projected only after they fell due; raise the policy");
    }
    let until_due = (due - Utc::now()).to_std().unwrap_or_default();
    let due_instant = Instant::now() + until_due;
    tokio::time::sleep(until_due).await;
    let mut read_model_at = None;
    let deadline = due_instant + Duration::from_secs(180);
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM events WHERE event_type = 'CaseAutoResolved'), \
                        (SELECT count(*) FROM case_view WHERE status = 'resolved')",
                &[],
            )
            .await?;
        let (events, views): (i64, i64) = (row.get(0), row.get(1));
        if views as usize >= BURST {
            read_model_at = Some(due_instant.elapsed());
        }
        if events as usize >= BURST && read_model_at.is_some() {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("timers: only {events} of {BURST} resolved within 180 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = client
        .query_one(
            "SELECT count(*), min(recorded_at), max(recorded_at) FROM events \
              WHERE event_type = 'CaseAutoResolved'",
            &[],
        )
        .await?;
    let resolved: i64 = row.get(0);
    let first: Option<DateTime<Utc>> = row.get(1);
    let last: Option<DateTime<Utc>> = row.get(2);
    let seconds = |t: Option<DateTime<Utc>>| {
        t.map_or(f64::NAN, |t| (t - due).num_milliseconds() as f64 / 1000.0)
    };
    let rss = server.peak_rss_mib();
    server.stop().await?;
    // The same run's reference: how long the database alone takes for 10,000 transactions of
    // the SQL one command costs, at the scheduler's concurrency.
    let ceiling = crate::pgbench::run(
        bench.socket_dir(),
        db,
        &crate::pgbench::script("command.sql"),
        16,
        Duration::from_secs(10),
    )
    .await?;
    let floor = BURST as f64 / ceiling.tps;
    eprintln!(
        "timers burst: {resolved} resolved, last {:.2}s after due, read model {:?}; \
         pgbench would take {floor:.1}s",
        seconds(last),
        read_model_at
    );
    Ok((format!(
        "{BURST} cases waiting for the customer since the same instant (seeded with COPY; \
         {armed} timers armed by the projection before the due time), server policy \
         `--auto-resolve-after {policy}s`, system clock.\n\n\
         | due at once | resolved | first event after due s | last event after due s | all `resolved` in the read model after due s | pgbench: 10,000 command transactions, 16 clients, s | last / pgbench | server peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|\n\
         | {BURST} | {resolved} | {:.2} | **{:.2}** | {:.2} | {floor:.1} ({:.0} tx/s) | {:.2} | {rss:.0} |",
        seconds(first),
        seconds(last),
        read_model_at.map_or(f64::NAN, |d| d.as_secs_f64()),
        ceiling.tps,
        seconds(last) / floor,
    ), rss))
}

/// 1,000 cases put to waiting through the API, one after another, with a 3 s policy: each
/// falls due 3 s after its own request.
async fn scattered(bench: &Bench) -> anyhow::Result<(String, f64)> {
    let db = "bench_timers_scattered";
    let target = bench.database(db).await?;
    let client = bench.connect(db).await?;
    let (customer, agent) = tokens(&target).await?;
    let server = bench.server(db, &["--auto-resolve-after", "3s"]).await?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (http, base, customer, agent) = (
            http.clone(),
            server.address.clone(),
            customer.clone(),
            agent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in (worker..SCATTERED).step_by(4) {
                let opened: Value = http
                    .post(format!("{base}/v1/cases"))
                    .bearer_auth(&customer)
                    .json(
                        &json!({"product": "jira-software", "summary": "Board does not load",
                                  "entitlement_number": crate::seed::ENTITLEMENT,
                                  "impact": 3}),
                    )
                    .send()
                    .await?
                    .json()
                    .await?;
                let id = opened["id"].as_str().context("case id")?;
                let asked = http
                    .post(format!("{base}/v1/cases/{id}/request-info"))
                    .bearer_auth(&agent)
                    .json(&json!({"body": "Which browser?"}))
                    .send()
                    .await?;
                if !asked.status().is_success() {
                    bail!("request-info: {}", asked.status());
                }
                // About 100 cases a second in all: due times spread over ten seconds.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let spread = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM events WHERE event_type = 'CaseAutoResolved'",
                &[],
            )
            .await?
            .get(0);
        if n as usize >= SCATTERED || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = client
        .query(
            "SELECT extract(epoch FROM recorded_at - \
                    ((payload ->> 'waiting_since')::timestamptz \
                     + interval '3 seconds'))::float8 \
               FROM events WHERE event_type = 'CaseAutoResolved'",
            &[],
        )
        .await?;
    let mut delays: Vec<Duration> = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<f64>>(0))
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
        .collect();
    if delays.len() != rows.len() {
        eprintln!(
            "timers: {} events without a waiting_since",
            rows.len() - delays.len()
        );
    }
    let fired = delays.len();
    let rss = server.peak_rss_mib();
    server.stop().await?;
    let (p50, p99, worst) = (
        percentile_ms(&mut delays, 50.0),
        percentile_ms(&mut delays, 99.0),
        percentile_ms(&mut delays, 100.0),
    );
    eprintln!(
        "timers scattered: {fired} fired, p50 {p50:.0} ms p99 {p99:.0} ms worst {worst:.0} ms"
    );
    Ok((format!(
        "{SCATTERED} cases put to waiting through the API over {:.1}s (open, then request \
         info), server policy `--auto-resolve-after 3s`: each timer falls due 3 s after its \
         own `CustomerInfoRequested`. Firing delay = the `CaseAutoResolved` event's \
         `recorded_at` minus its due time.\n\n\
         | timers | fired | median ms | p99 ms | worst ms | server peak RSS MiB |\n|---|---|---|---|---|---|\n\
         | {SCATTERED} | {fired} | {p50:.0} | **{p99:.0}** | {worst:.0} | {rss:.0} |",
        spread.as_secs_f64()
    ), rss))
}
