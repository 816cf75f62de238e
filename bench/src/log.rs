//! The scenarios on a large log: `rebuild` (against a naive one-event-at-a-time replay),
//! `export` and `verify`, and `seal` (`subdesk privacy seal-existing`).

use std::time::{Duration, Instant};

use subdesk_projections::Checkpoint;

use crate::env::{run_cli, Bench};
use crate::{seed, Options, Report};

pub const DB: &str = "bench_log";

/// Seeds the large log once per bench run; returns its size.
pub async fn ensure_log(bench: &Bench, options: &Options) -> anyhow::Result<u64> {
    let client = bench.connect("postgres").await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DB])
        .await?
        .is_some();
    if exists {
        let log = bench.connect(DB).await?;
        let n: i64 = log
            .query_one("SELECT count(*) FROM events", &[])
            .await?
            .get(0);
        if n as u64 >= options.events {
            return Ok(n as u64);
        }
    }
    bench.database(DB).await?;
    let mut log = bench.connect(DB).await?;
    let started = Instant::now();
    let mut copied = 0u64;
    let (sender, mut chunks) = tokio::sync::mpsc::channel(4);
    let wanted = options.events;
    let generator = tokio::task::spawn_blocking(move || seed::mixed_log(wanted, 2000, sender));
    while let Some(rows) = chunks.recv().await {
        copied += seed::copy(&mut log, rows).await?;
    }
    let written = generator.await?;
    log.batch_execute("VACUUM ANALYZE events").await?;
    eprintln!(
        "log: {written} events seeded in {:.1}s ({:.0} events/s, COPY with the hash trigger)",
        started.elapsed().as_secs_f64(),
        copied as f64 / started.elapsed().as_secs_f64()
    );
    Ok(written)
}

/// `rebuild`: `subdesk projections rebuild --all` on the log, and the same read models
/// replayed one event per transaction on a slice of it.
pub async fn rebuild(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let events = ensure_log(bench, options).await?;
    // The outbox is written through, not rebuilt: empty it so that every run derives it
    // whole (a second run would otherwise only meet conflicts).
    bench
        .connect(DB)
        .await?
        .batch_execute("TRUNCATE notifications")
        .await?;
    let run = run_cli(
        &bench.server_bin(),
        &bench.url(DB),
        &["projections", "rebuild", "--all"],
        None,
    )
    .await?;
    let rate = events as f64 / run.wall.as_secs_f64();
    let per_projection: Vec<String> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("rebuilt "))
        .map(|l| format!("`{l}`"))
        .collect();
    eprintln!(
        "rebuild: {events} events, all read models in {:?} ({rate:.0} events/s)",
        run.wall
    );

    let naive = naive_replay(bench, options.naive_events).await?;
    eprintln!(
        "naive replay: {} events in {:?} ({:.0} events/s)",
        naive.0,
        naive.1,
        naive.0 as f64 / naive.1.as_secs_f64()
    );
    let naive_rate = naive.0 as f64 / naive.1.as_secs_f64();
    report.section(
        &format!("rebuild{label}"),
        &format!(
            "`subdesk projections rebuild --all` on a log of {events} events (cases, \
             subscriptions and timers read models, each rebuilt into shadow tables and \
             swapped in). The naive replay applies the same projections to one event per \
             transaction (load, fold, write back, commit: cqrs-es `QueryReplay` style), \
             each projection on its own, on the first {} events of the same log.\n\n\
             | replay | events | seconds | events/s |\n|---|---|---|---|\n\
             | rebuild --all | {events} | {:.1} | **{rate:.0}** |\n\
             | naive, one event per transaction | {} | {:.1} | {naive_rate:.0} |\n\n\
             Rebuild / naive: **{:.1}x**. Rebuild process peak RSS: {:.0} MiB.\n\n{}",
            naive.0,
            run.wall.as_secs_f64(),
            naive.0,
            naive.1.as_secs_f64(),
            rate / naive_rate,
            run.peak_rss_mib,
            per_projection.join("  \n")
        ),
    );
    report.rss(&format!("rebuild (CLI){label}"), run.peak_rss_mib);
    Ok(())
}

/// Replays the first `n` events through every rebuildable projection, one event and one
/// projection per transaction, into copies of the read-model tables. Returns (events, time).
async fn naive_replay(bench: &Bench, n: i64) -> anyhow::Result<(u64, Duration)> {
    let projections: Vec<_> = subdesk_projections::all()
        .into_iter()
        .filter(|p| p.rebuildable())
        .collect();
    let mut ddl = String::from("DROP SCHEMA IF EXISTS naive CASCADE; CREATE SCHEMA naive;");
    let mut tables: Vec<&str> = projections
        .iter()
        .flat_map(|p| p.tables().to_vec())
        .collect();
    tables.push("notifications");
    for table in tables {
        ddl.push_str(&format!(
            "CREATE TABLE naive.{table} (LIKE public.{table} INCLUDING ALL);"
        ));
    }
    // One connection (a pool of one, since the projections take deadpool transactions) whose
    // unqualified table names resolve to the copies.
    let pool = subdesk::db::Target::local(&bench.cluster, DB).pool(1)?;
    let mut client = pool.get().await?;
    client.batch_execute(&ddl).await?;
    client
        .batch_execute("SET search_path TO naive, public")
        .await?;
    let events = subdesk_projections::event::read_batch(&**client, Checkpoint::START, n).await?;
    let started = Instant::now();
    for event in &events {
        for projection in &projections {
            let tx = client.transaction().await?;
            projection.apply(&tx, std::slice::from_ref(event)).await?;
            tx.commit().await?;
        }
    }
    let elapsed = started.elapsed();
    client
        .batch_execute("RESET search_path; DROP SCHEMA naive CASCADE")
        .await?;
    Ok((events.len() as u64, elapsed))
}

/// `export` and `verify` on the log.
pub async fn audit(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let events = ensure_log(bench, options).await?;
    let file =
        std::env::temp_dir().join(format!("subdesk-bench-export-{}.jsonl", std::process::id()));
    let export = run_cli(
        &bench.server_bin(),
        &bench.url(DB),
        &["export"],
        Some(&file),
    )
    .await?;
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&file);
    let verify = run_cli(&bench.server_bin(), &bench.url(DB), &["verify"], None).await?;
    let export_rate = events as f64 / export.wall.as_secs_f64();
    let verify_rate = events as f64 / verify.wall.as_secs_f64();
    eprintln!("export {export_rate:.0} events/s, verify {verify_rate:.0} events/s");
    report.section(
        &format!("export / verify{label}"),
        &format!(
            "The CLI on the same log of {events} events, wall time of the whole process.\n\n\
             | command | seconds | events/s | peak RSS MiB |\n|---|---|---|---|\n\
             | `subdesk export > file` ({:.0} MiB of JSON Lines) | {:.1} | **{export_rate:.0}** | {:.0} |\n\
             | `subdesk verify` | {:.1} | **{verify_rate:.0}** | {:.0} |",
            bytes as f64 / 1048576.0,
            export.wall.as_secs_f64(),
            export.peak_rss_mib,
            verify.wall.as_secs_f64(),
            verify.peak_rss_mib,
        ),
    );
    Ok(())
}

/// `seal`: `subdesk privacy seal-existing` on a copy of the large log, which the bench writes
/// in plain text as a release before sealing did. The pass holds appends for its whole
/// duration, so its rate says how long writes wait; `verify` on the same log is its baseline
/// (one read of the log in stream order, as the pass makes), then `verify` again with the
/// anchors to check.
pub async fn seal(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    const COPY: &str = "bench_seal";
    let events = ensure_log(bench, options).await?;
    let admin = bench.connect("postgres").await?;
    // Two statements: CREATE DATABASE cannot run in the implicit transaction of a batch.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {COPY}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {COPY} TEMPLATE {DB}"))
        .await?;
    let url = bench.url(COPY);
    let plain = run_cli(&bench.server_bin(), &url, &["verify"], None).await?;
    let pass = run_cli(
        &bench.server_bin(),
        &url,
        &["privacy", "seal-existing"],
        None,
    )
    .await?;
    let anchored = run_cli(&bench.server_bin(), &url, &["verify"], None).await?;
    admin
        .batch_execute(&format!("DROP DATABASE {COPY}"))
        .await?;
    let rate = |wall: Duration| events as f64 / wall.as_secs_f64();
    eprintln!(
        "seal-existing: {events} events in {:?} ({:.0} events/s); verify before {:.0}, after {:.0} events/s",
        pass.wall,
        rate(pass.wall),
        rate(plain.wall),
        rate(anchored.wall)
    );
    let summary = pass
        .stderr
        .lines()
        .find(|l| l.starts_with("sealed "))
        .unwrap_or("")
        .to_string();
    report.section(
        &format!("seal-existing{label}"),
        &format!(
            "`subdesk privacy seal-existing` on a copy of the log of {events} events (written \
             in plain text, as before sealing), in one transaction that holds appends \
             throughout; `verify` of the same log before and after (after: with the anchors \
             checked). Wall time of the whole process.\n\n\
             | command | seconds | events/s | peak RSS MiB |\n|---|---|---|---|\n\
             | `subdesk verify` (plain log) | {:.1} | {:.0} | {:.0} |\n\
             | `subdesk privacy seal-existing` | {:.1} | **{:.0}** | {:.0} |\n\
             | `subdesk verify` (sealed, anchors checked) | {:.1} | {:.0} | {:.0} |\n\n\
             Pass / verify: **{:.2}**. `{summary}`",
            plain.wall.as_secs_f64(),
            rate(plain.wall),
            plain.peak_rss_mib,
            pass.wall.as_secs_f64(),
            rate(pass.wall),
            pass.peak_rss_mib,
            anchored.wall.as_secs_f64(),
            rate(anchored.wall),
            anchored.peak_rss_mib,
            rate(pass.wall) / rate(plain.wall),
        ),
    );
    report.rss(&format!("seal-existing (CLI){label}"), pass.peak_rss_mib);
    Ok(())
}
