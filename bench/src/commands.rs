//! The command scenarios: throughput and latency against the pgbench ceiling, stream length,
//! and projection lag at half the maximum rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use subdesk::auth::TokenSpec;
use subdesk_aggregates::ActorRole;

use crate::cpu::CpuMeter;
use crate::env::{wait_for_projections, Bench};
use crate::load::{self, Api, Share};
use crate::{pgbench, seed, Options, Report};

/// Tokens of the bench principals: an org admin of the seeded org, and an agent.
/// Also records the org's support entitlement, as the subscriptions projection would for an
/// active subscription, so that the load can open cases under it.
pub async fn tokens(target: &subdesk::db::Target) -> anyhow::Result<(String, String)> {
    let pool = target.pool(1)?;
    pool.get()
        .await?
        .execute(
            "INSERT INTO entitlements (number, subscription_id, app_id, org_id, product, status) \
             VALUES ($1, $2, NULL, $3, 'jira-software', 'active') ON CONFLICT (number) DO NOTHING",
            &[&seed::ENTITLEMENT, &uuid::Uuid::now_v7(), &seed::ORG],
        )
        .await?;
    let spec = |role, user: &str, org: Option<&str>, org_admin| TokenSpec {
        role,
        user: user.into(),
        org_id: org.map(str::to_string),
        org_admin,
        partner_id: None,
        scopes: Vec::new(),
        label: Some("bench".into()),
        created_by: "bench".into(),
    };
    let customer = subdesk::auth::issue(
        &pool,
        &spec(ActorRole::Customer, seed::CUSTOMER, Some(seed::ORG), true),
    )
    .await?
    .1;
    let agent = subdesk::auth::issue(&pool, &spec(ActorRole::Agent, seed::AGENT, None, false))
        .await?
        .1;
    Ok((customer, agent))
}

/// `commands`: the mix at concurrency 8, 32 and 128, each next to pgbench running the SQL of
/// one command with as many clients.
pub async fn commands(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let db = "bench_commands";
    let target = bench.database(db).await?;
    let mut client = bench.connect(db).await?;
    let levels = [8usize, 32, 128];
    let mut sets = Vec::new();
    for (i, _) in levels.iter().enumerate() {
        sets.push(seed::aggregates(&mut client, 1000, 1, 200, &format!("CMD{i}")).await?);
    }
    let (customer, agent) = tokens(&target).await?;

    let postmaster = bench.postmaster_pid().await?;
    let mut rows = Vec::new();
    let mut rss = 0.0f64;
    for (level, (cases, subscriptions)) in levels.iter().zip(&sets) {
        // The load of the shared machine shifts within minutes: pgbench and subdesk take
        // turns, three rounds of a third of the time each, and each round gives a ratio.
        let round = Duration::from_secs(options.seconds.div_ceil(3).max(2));
        let shares = Share::split(cases, subscriptions, *level, false);
        let mut outcome = load::Outcome::default();
        let mut ceilings = Vec::new();
        let mut ratios = Vec::new();
        let mut cpu = Vec::new();
        let mut ceiling_cpu = Vec::new();
        for _ in 0..3 {
            // The ceiling runs alone: no server, so no projection runner skipping its rows.
            let meter = CpuMeter::start(postmaster, None);
            let ceiling = pgbench::run(
                bench.socket_dir(),
                db,
                &pgbench::script("command.sql"),
                *level,
                round,
            )
            .await?;
            ceiling_cpu.push(meter.per_thousand(ceiling.transactions as usize).database);
            let server = bench.server(db, &[]).await?;
            // The projections skip pgbench's rows, but let them do so before measuring.
            wait_for_projections(&client, Duration::from_secs(120)).await?;
            let api = Api::new(&server.address, customer.clone(), agent.clone(), 256);
            let meter = CpuMeter::start(postmaster, Some(server.pid));
            let part = load::closed_loop(&api, &shares, round).await?;
            // The read-model work the load caused counts too.
            wait_for_projections(&client, Duration::from_secs(60)).await?;
            cpu.push(meter.per_thousand(part.acks.len()));
            rss = rss.max(server.peak_rss_mib());
            server.stop().await?;
            ratios.push(part.rate() / ceiling.tps);
            ceilings.push(ceiling);
            outcome.acks.extend(part.acks);
            outcome.elapsed += part.elapsed;
            for (k, v) in part.errors {
                *outcome.errors.entry(k).or_default() += v;
            }
        }
        let ceiling_tx = pgbench::run(
            bench.socket_dir(),
            db,
            &pgbench::script("command_tx.sql"),
            *level,
            round,
        )
        .await?;
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[1];
        let tps = ceilings.iter().map(|c| c.tps).sum::<f64>() / ceilings.len() as f64;
        let ceiling_p50 = ceilings.iter().map(|c| c.p50_ms).sum::<f64>() / 3.0;
        let ceiling_p99 = ceilings.iter().map(|c| c.p99_ms).sum::<f64>() / 3.0;
        let p50 = outcome.percentile(50.0);
        let p99 = outcome.percentile(99.0);
        eprintln!(
            "commands c={level}: {:.0}/s p50 {p50:.1} ms p99 {p99:.1} ms; ceiling {tps:.0}/s \
             (explicit tx {:.0}/s); ratios {ratios:.2?}; errors: {}",
            outcome.rate(),
            ceiling_tx.tps,
            outcome.error_summary()
        );
        let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
        let database = mean(&cpu.iter().map(|c| c.database).collect::<Vec<_>>());
        let own = mean(&cpu.iter().map(|c| c.server).collect::<Vec<_>>());
        let ceiling_database = mean(&ceiling_cpu);
        rows.push(format!(
            "| {level} | {:.0} | {:.1} | {:.1} | {p99:.1} | {:.1} | {tps:.0} (p50 {ceiling_p50:.1}, p99 {ceiling_p99:.1}) | **{ratio:.2}** ({:.2} to {:.2}) | {database:.3} | {own:.3} | {ceiling_database:.3} | {:.0} | {} |",
            outcome.rate(),
            p50,
            outcome.percentile(95.0),
            p99 / p50,
            ratios[0],
            ratios[2],
            ceiling_tx.tps,
            outcome.error_summary(),
        ));
    }
    report.section(
        &format!("commands{label}"),
        &format!(
            "HTTP command mix (open, agent comment, request info, customer reply, customer \
             comment, resolve; every sixth a seat change) over 1,000 cases and 200 \
             subscriptions per level, {}s per level in three rounds. Ceiling: pgbench, same \
             cluster, as many clients as HTTP workers, `bench/pgbench/command.sql` (stream \
             read + one-statement append, the SQL a command sends), taking turns with \
             subdesk; the ratio is the median of the three rounds' ratios (range in \
             brackets). `command_tx.sql` (stream read + BEGIN/INSERT/COMMIT, as postgres-es \
             sends it) once for reference.\n\n\
             | concurrency | subdesk cmd/s | p50 ms | p95 ms | p99 ms | p99/p50 | ceiling tx/s | subdesk / ceiling | PostgreSQL CPU s / 1,000 cmd | subdesk CPU s / 1,000 cmd | PostgreSQL CPU s / 1,000 ceiling tx | ceiling (explicit tx) tx/s | errors |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n{}\n\n\
             Server peak RSS: {rss:.0} MiB",
            options.seconds,
            rows.join("\n")
        ),
    );
    report.rss(&format!("commands{label}"), rss);
    Ok(())
}

/// `streams`: comments on 1,000-event streams against comments on 10-event streams.
pub async fn streams(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let db = "bench_streams";
    let target = bench.database(db).await?;
    let mut client = bench.connect(db).await?;
    let (long, _) = seed::aggregates(&mut client, 200, 1000, 0, "LONG").await?;
    let (short, _) = seed::aggregates(&mut client, 200, 10, 0, "SHORT").await?;
    let (customer, agent) = tokens(&target).await?;
    let server = bench.server(db, &[]).await?;
    let caught_up = wait_for_projections(&client, Duration::from_secs(600)).await?;
    eprintln!("streams: projections caught up with 202,000 events in {caught_up:?}");
    let api = Api::new(&server.address, customer, agent, 64);
    let concurrency = 32;
    let long_shares = Share::split(&long, &[], concurrency, true);
    let short_shares = Share::split(&short, &[], concurrency, true);
    // The first command on each stream loads it whole; later ones read only newer events.
    let started = Instant::now();
    load::closed_loop(&api, &long_shares, Duration::from_secs(2)).await?;
    let cold = started.elapsed();
    load::closed_loop(&api, &short_shares, Duration::from_secs(2)).await?;
    let half = Duration::from_secs(options.seconds.div_ceil(2));
    let mut long_runs = Vec::new();
    let mut short_runs = Vec::new();
    for _ in 0..2 {
        short_runs.push(load::closed_loop(&api, &short_shares, half).await?);
        long_runs.push(load::closed_loop(&api, &long_shares, half).await?);
    }
    let merged = |runs: Vec<load::Outcome>| {
        let mut all = load::Outcome::default();
        for run in runs {
            all.acks.extend(run.acks);
            all.elapsed += run.elapsed;
            for (k, v) in run.errors {
                *all.errors.entry(k).or_default() += v;
            }
        }
        all
    };
    let long = merged(long_runs);
    let short = merged(short_runs);
    let rss = server.peak_rss_mib();
    server.stop().await?;
    let ratio = long.rate() / short.rate();
    eprintln!(
        "streams: 10 events {:.0}/s, 1,000 events {:.0}/s ({ratio:.2})",
        short.rate(),
        long.rate()
    );
    report.section(
        &format!("streams{label}"),
        &format!(
            "Comments (alternately customer and agent) at concurrency {concurrency} on 200 \
             streams of 10 events and 200 streams of 1,000 events, alternating 2 x {}s each \
             after a 2s warm-up per set (the warm-up of the long set, which loads each stream \
             whole once, took {cold:?}).\n\n\
             | streams of | cmd/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n\
             | 10 events | {:.0} | {:.1} | {:.1} | {} |\n\
             | 1,000 events | {:.0} | {:.1} | {:.1} | {} |\n\n\
             1,000-event / 10-event throughput: **{ratio:.2}**. Server peak RSS: {rss:.0} MiB",
            half.as_secs(),
            short.rate(),
            short.percentile(50.0),
            short.percentile(99.0),
            short.error_summary(),
            long.rate(),
            long.percentile(50.0),
            long.percentile(99.0),
            long.error_summary(),
        ),
    );
    report.rss(&format!("streams{label}"), rss);
    Ok(())
}

/// One sample of the projection checkpoints.
struct Sample {
    at: DateTime<Utc>,
    cases: (i64, i64),
    subscriptions: (i64, i64),
}

/// `lag`: commit-to-visible delay of the read models at half the maximum command rate.
pub async fn lag(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let db = "bench_lag";
    let target = bench.database(db).await?;
    let mut client = bench.connect(db).await?;
    let (cases, subscriptions) = seed::aggregates(&mut client, 1000, 1, 200, "LAG").await?;
    let (max_cases, max_subscriptions) =
        seed::aggregates(&mut client, 1000, 1, 200, "LAGMAX").await?;
    let (customer, agent) = tokens(&target).await?;
    let server = bench.server(db, &[]).await?;
    wait_for_projections(&client, Duration::from_secs(120)).await?;
    let api = Api::new(&server.address, customer, agent, 256);
    let max_shares = Share::split(&max_cases, &max_subscriptions, 32, false);
    let max =
        load::closed_loop(&api, &max_shares, Duration::from_secs(options.seconds / 2)).await?;
    let rate = max.rate() / 2.0;
    wait_for_projections(&client, Duration::from_secs(60)).await?;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = Arc::clone(&stop);
        let poll = bench.connect(db).await?;
        tokio::spawn(async move {
            let statement = poll
                .prepare(
                    "SELECT clock_timestamp(), \
                        (SELECT last_tx::text::bigint FROM projection_checkpoints WHERE name = 'cases'), \
                        (SELECT last_position FROM projection_checkpoints WHERE name = 'cases'), \
                        (SELECT last_tx::text::bigint FROM projection_checkpoints WHERE name = 'subscriptions'), \
                        (SELECT last_position FROM projection_checkpoints WHERE name = 'subscriptions')",
                )
                .await?;
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let row = poll.query_one(&statement, &[]).await?;
                samples.push(Sample {
                    at: row.get(0),
                    cases: (row.get(1), row.get(2)),
                    subscriptions: (row.get(3), row.get(4)),
                });
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            anyhow::Ok(samples)
        })
    };
    let shares = Share::split(&cases, &subscriptions, 128, false);
    let outcome =
        load::open_loop(&api, &shares, rate, Duration::from_secs(options.seconds)).await?;
    wait_for_projections(&client, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = poller.await.context("poller")??;
    let rss = server.peak_rss_mib();
    server.stop().await?;

    let positions: Vec<i64> = outcome.acks.iter().map(|a| a.position).collect();
    let rows = client
        .query(
            "SELECT tx_id::text::bigint, position, pg_xact_commit_timestamp(xmin), aggregate_type \
               FROM events WHERE position = ANY($1)",
            &[&positions],
        )
        .await?;
    let mut delays = Vec::new();
    for row in rows {
        let at: (i64, i64) = (row.get(0), row.get(1));
        let committed: DateTime<Utc> = row.get(2);
        let kind: String = row.get(3);
        let key = |s: &Sample| {
            if kind == "Subscription" {
                s.subscriptions
            } else {
                s.cases
            }
        };
        let first = samples.partition_point(|s| key(s) < at);
        if let Some(sample) = samples.get(first) {
            let delay = (sample.at - committed).to_std().unwrap_or(Duration::ZERO);
            delays.push(delay);
        }
    }
    let seen = delays.len();
    let p50 = load::percentile_ms(&mut delays, 50.0);
    let p99 = load::percentile_ms(&mut delays, 99.0);
    let worst = load::percentile_ms(&mut delays, 100.0);
    eprintln!(
        "lag: max {:.0}/s, offered {rate:.0}/s, achieved {:.0}/s, visible p50 {p50:.1} ms p99 {p99:.1} ms",
        max.rate(),
        outcome.rate()
    );
    report.section(
        &format!("lag{label}"),
        &format!(
            "Maximum rate (closed loop, concurrency 32, {}s): {:.0} cmd/s. Then an open loop \
             at half of it ({rate:.0} cmd/s offered, {:.0} cmd/s answered) for {}s. Delay \
             from each acknowledged command's commit (`pg_xact_commit_timestamp`) to the \
             first moment its read model's checkpoint covers it (checkpoints polled every \
             ~1 ms), {seen} commands. Errors: {}.\n\n\
             | commit-to-visible | p50 ms | p99 ms | worst ms |\n|---|---|---|---|\n\
             | cases / subscriptions read models | {p50:.1} | **{p99:.1}** | {worst:.1} |\n\n\
             Server peak RSS: {rss:.0} MiB",
            options.seconds / 2,
            max.rate(),
            outcome.rate(),
            options.seconds,
            outcome.error_summary(),
        ),
    );
    report.rss(&format!("lag{label}"), rss);
    Ok(())
}
