//! `cpu`: what one command costs in CPU, the database's and subdesk's own. The setting of
//! issue 16: an agent's internal comment on a random one of 200 cases, concurrency 32, the
//! server on the bench cluster over its Unix socket. The CPU is read from `/proc` (the
//! cluster's processes, see [`cluster_cpu_seconds`]) around the load and the projections'
//! catch-up after it, so the read-model work that each command causes is counted.

use std::time::Duration;

use crate::env::{cluster_cpu_seconds, process_cpu_seconds, wait_for_projections, Bench};
use crate::load::{self, Api, Share};
use crate::{commands, seed, Options, Report};

/// CPU used over one measured stretch, per 1,000 acknowledged commands.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuPerThousand {
    pub database: f64,
    pub server: f64,
}

/// Readings of the cluster's and the server's CPU at one moment.
pub struct CpuMeter {
    postmaster: u32,
    server: Option<u32>,
    database: f64,
    own: f64,
}

impl CpuMeter {
    pub fn start(postmaster: u32, server: Option<u32>) -> Self {
        Self {
            postmaster,
            server,
            database: cluster_cpu_seconds(postmaster),
            own: server.map_or(0.0, process_cpu_seconds),
        }
    }

    /// CPU seconds per 1,000 of `commands` since [`CpuMeter::start`].
    pub fn per_thousand(&self, commands: usize) -> CpuPerThousand {
        let n = commands.max(1) as f64 / 1000.0;
        CpuPerThousand {
            database: (cluster_cpu_seconds(self.postmaster) - self.database) / n,
            server: (self.server.map_or(0.0, process_cpu_seconds) - self.own) / n,
        }
    }
}

pub async fn cpu(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let db = "bench_cpu";
    let target = bench.database(db).await?;
    let mut client = bench.connect(db).await?;
    let (cases, _) = seed::aggregates(&mut client, 200, 1, 0, "CPU").await?;
    let (customer, agent) = commands::tokens(&target).await?;
    let postmaster = bench.postmaster_pid().await?;
    let server = bench.server(db, &[]).await?;
    wait_for_projections(&client, Duration::from_secs(120)).await?;
    let api = Api::new(&server.address, customer, agent, 64);
    let shares = Share::split_internal(&cases, 32);
    // Warm up: every case loaded once into the aggregate cache, statements prepared.
    load::closed_loop(&api, &shares, Duration::from_secs(2)).await?;
    wait_for_projections(&client, Duration::from_secs(60)).await?;

    let round = Duration::from_secs(options.seconds.div_ceil(2).max(2));
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    // The command path alone: every projection's claim held by this session (the advisory
    // lock the runners take, `CLAIM_NAMESPACE`), so the server's runners stand by; then the
    // projections' catch-up over what the load appended, in full batches.
    let (alone, catch_up) = {
        let hold = bench.connect(db).await?;
        hold.batch_execute(
            "SELECT pg_advisory_lock(x'5d5c'::int, hashtext(name)) FROM projection_checkpoints",
        )
        .await?;
        let meter = CpuMeter::start(postmaster, Some(server.pid));
        let outcome = load::closed_loop(&api, &shares, round).await?;
        let alone = meter.per_thousand(outcome.acks.len());
        let meter = CpuMeter::start(postmaster, Some(server.pid));
        drop(hold);
        wait_for_projections(&client, Duration::from_secs(60)).await?;
        let catch_up = meter.per_thousand(outcome.acks.len());
        eprintln!(
            "cpu, projections held: {:.0} cmd/s, PostgreSQL {:.3} s, subdesk {:.3} s per 1,000 \
             commands; their catch-up: {:.3} s and {:.3} s per 1,000 events",
            outcome.rate(),
            alone.database,
            alone.server,
            catch_up.database,
            catch_up.server
        );
        (alone, catch_up)
    };
    if options.statements {
        client
            .batch_execute(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; \
                 SELECT pg_stat_statements_reset();",
            )
            .await?;
    }
    for i in 1..=2 {
        let meter = CpuMeter::start(postmaster, Some(server.pid));
        let outcome = load::closed_loop(&api, &shares, round).await?;
        wait_for_projections(&client, Duration::from_secs(60)).await?;
        let cpu = meter.per_thousand(outcome.acks.len());
        eprintln!(
            "cpu round {i}: {:.0} cmd/s, PostgreSQL {:.3} s and subdesk {:.3} s per 1,000 \
             commands; errors: {}",
            outcome.rate(),
            cpu.database,
            cpu.server,
            outcome.error_summary()
        );
        rows.push(format!(
            "| {i} | {:.0} | {:.3} | {:.3} | {} |",
            outcome.rate(),
            cpu.database,
            cpu.server,
            outcome.error_summary()
        ));
        figures.push(cpu);
    }
    let rss = server.peak_rss_mib();
    server.stop().await?;
    let profile = if options.statements {
        statements(&client).await?
    } else {
        String::new()
    };
    let mean = |f: fn(&CpuPerThousand) -> f64| figures.iter().map(f).sum::<f64>() / 2.0;
    report.section(
        &format!("cpu{label}"),
        &format!(
            "An agent's internal comment on a random one of 200 cases, concurrency 32, two \
             rounds of {}s after a 2 s warm-up. CPU seconds per 1,000 acknowledged commands, \
             read from /proc: the PostgreSQL cluster's processes (postmaster, backends, WAL \
             writer, checkpointer, and exited children) and the subdesk server, over the load \
             and the projections' catch-up after it.\n\n\
             | round | cmd/s | PostgreSQL CPU s / 1,000 commands | subdesk CPU s / 1,000 commands | errors |\n\
             |---|---|---|---|---|\n{}\n\n\
             Mean: PostgreSQL **{:.3}** s, subdesk {:.3} s per 1,000 commands.\n\n\
             Split (one more round of {}s): with every projection's claim held by the bench, \
             the command path alone cost PostgreSQL {:.3} s and subdesk {:.3} s per 1,000 \
             commands; the projections' catch-up after it, in full batches, {:.3} s and {:.3} s \
             per 1,000 events.{profile}",
            round.as_secs(),
            rows.join("\n"),
            mean(|c| c.database),
            mean(|c| c.server),
            round.as_secs(),
            alone.database,
            alone.server,
            catch_up.database,
            catch_up.server,
        ),
    );
    report.rss(&format!("cpu{label}"), rss);
    Ok(())
}

/// The statements that took the most execution time over the measured rounds (with
/// `--statements`), as a Markdown table.
async fn statements(client: &tokio_postgres::Client) -> anyhow::Result<String> {
    let rows = client
        .query(
            "SELECT calls, total_exec_time, rows, \
                    regexp_replace(left(query, 110), '\\s+', ' ', 'g') \
               FROM pg_stat_statements \
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
              ORDER BY total_exec_time DESC LIMIT 15",
            &[],
        )
        .await?;
    let total: f64 = client
        .query_one(
            "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements \
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await?
        .get(0);
    let mut out = format!(
        "\n\nStatements by execution time (pg_stat_statements, warm-up excluded; {total:.0} ms \
         in all):\n\n| calls | total ms | mean ms | rows | statement |\n|---|---|---|---|---|"
    );
    for row in rows {
        let calls: i64 = row.get(0);
        let time: f64 = row.get(1);
        let n: i64 = row.get(2);
        let query: String = row.get(3);
        out.push_str(&format!(
            "\n| {calls} | {time:.0} | {:.3} | {n} | `{}` |",
            time / calls.max(1) as f64,
            query.replace('|', "\\|").replace('`', "'")
        ));
    }
    Ok(out)
}
