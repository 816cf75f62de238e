//! subdesk-bench: subdesk's speed against its own database's ceiling, on this machine.
//!
//! `cargo run --release -p subdesk-bench -- all` (or one scenario: `commands`, `streams`,
//! `lag`, `timers`, `rebuild`, `audit`, `reports`, `mail`, `webhooks`) starts a PostgreSQL cluster of its own in a temp
//! directory (fsync on), runs the release `subdesk` binary against it as a child process
//! (built first with `cargo build --release --bin subdesk`, or `--server-bin PATH`), and
//! prints a Markdown report. Every figure is a ratio against a baseline measured in the same
//! run, since the machine is shared.
//!
//! - [`env`]: the cluster, one database per scenario, server processes, peak RSS, CPU from
//!   `/proc`.
//! - [`cpu`]: `cpu`, the database's and subdesk's CPU per 1,000 commands.
//! - [`seed`]: realistic logs from the domain's own event types, COPYed in bulk.
//! - [`load`]: the HTTP command mix, closed or open loop.
//! - [`pgbench`]: the ceiling, `pgbench` with `bench/pgbench/*.sql`.
//! - [`commands`]: `commands`, `streams`, `lag`; [`log`]: `rebuild`, `audit` (export and
//!   verify); [`timers`]: `timers`; [`reports`]: `reports` (report endpoints and the
//!   dashboard on a large log).

mod commands;
mod cpu;
mod env;
mod load;
mod log;
mod mail;
mod pgbench;
mod reports;
mod seed;
mod timers;
mod webhooks;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// CPU per command of the database and of subdesk: internal comments at concurrency 32.
    Cpu,
    /// Command throughput and latency at concurrency 8, 32, 128 against the pgbench ceiling.
    Commands,
    /// Throughput on 1,000-event streams against 10-event streams.
    Streams,
    /// Commit-to-visible delay of the read models at half the maximum command rate.
    Lag,
    /// 10,000 cases due at once; firing delay of 1,000 scattered timers.
    Timers,
    /// Rebuild of every read model from a large log, against a naive replay.
    Rebuild,
    /// `subdesk export` and `subdesk verify` on the large log.
    Audit,
    /// `subdesk privacy seal-existing` on a copy of the large log (written in plain text, as
    /// by a release before sealing), against `verify` of the same log; then `verify` with the
    /// anchors the pass left.
    Seal,
    /// Report endpoints and the dashboard's refresh on a log of many cases, against
    /// `/healthz` and a primary-key read.
    Reports,
    /// E-mail delivery to a local SMTP server (aiosmtpd): mails per second from the outbox
    /// against direct sends, and commit-to-delivery latency.
    Mail,
    /// Webhook delivery to a local HTTP receiver: deliveries per second of one and of four
    /// endpoints against direct POSTs, and commit-to-delivery latency.
    Webhooks,
    /// Everything above, in this order.
    All,
}

#[derive(Debug, Parser)]
#[command(
    name = "subdesk-bench",
    about = "Benchmarks of subdesk against its database's ceiling"
)]
pub struct Options {
    /// Scenarios to run.
    #[arg(value_enum, required = true)]
    scenarios: Vec<Scenario>,
    /// Seconds per measured run (per concurrency level, per stream length, ...).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Events in the large log of `rebuild` and `audit`.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Events the naive replay applies (it is slow: one transaction per event).
    #[arg(long, default_value_t = 5_000)]
    pub naive_events: i64,
    /// Cases in the log of `reports` (with 5,000 subscriptions).
    #[arg(long, default_value_t = 100_000)]
    pub report_cases: u64,
    /// Requests per measured line of `reports`.
    #[arg(long, default_value_t = 200)]
    pub report_requests: usize,
    /// The `subdesk` binary to benchmark; default: build and use target/release/subdesk.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Another `subdesk` binary (say, a build of an earlier commit) to measure in the same
    /// run, scenario by scenario just before the one under test: before / after figures that
    /// shared the machine's state.
    #[arg(long)]
    pub baseline_bin: Option<PathBuf>,
    /// Loads pg_stat_statements into the bench cluster, and `cpu` reports the statements that
    /// took the most time (a profile; it costs the database some CPU of its own).
    #[arg(long)]
    pub statements: bool,
}

/// The Markdown report, printed at the end.
#[derive(Default)]
pub struct Report {
    sections: Vec<(String, String)>,
    rss: Vec<(String, f64)>,
}

impl Report {
    pub fn section(&mut self, name: &str, body: &str) {
        println!("\n### {name}\n\n{body}\n");
        self.sections.push((name.to_string(), body.to_string()));
    }

    pub fn rss(&mut self, scenario: &str, mib: f64) {
        self.rss.push((scenario.to_string(), mib));
    }

    fn print(&self) {
        println!("\n## subdesk-bench report\n");
        println!("{}\n", machine());
        for (name, body) in &self.sections {
            println!("### {name}\n\n{body}\n");
        }
        if !self.rss.is_empty() {
            println!("### memory\n\n| scenario | peak RSS MiB |\n|---|---|");
            for (scenario, mib) in &self.rss {
                println!("| {scenario} | {mib:.0} |");
            }
        }
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or_else(|| "?".into(), |kib| format!("{:.1} GiB", kib / 1048576.0));
    let postgres = subdesk::pg::find_binaries()
        .ok()
        .and_then(|bin| {
            std::process::Command::new(bin.join("postgres"))
                .arg("--version")
                .output()
                .ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("Machine: {cpus} CPUs, {memory} memory, {postgres}, fsync on, synchronous_commit on.")
}

/// `target/release/subdesk`, built now so that it matches the sources.
fn server_binary(options: &Options) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &options.server_bin {
        return Ok(bin.clone());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "subdesk", "--bin", "subdesk"])
        .status()
        .context("building the subdesk binary")?;
    if !status.success() {
        bail!("building the subdesk binary failed");
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("subdesk");
    if !bin.exists() {
        bail!("{} not found", bin.display());
    }
    Ok(bin)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let server_bin = server_binary(&options)?;
    eprintln!("benchmarking {}", server_bin.display());
    let bench = env::Bench::start(server_bin, options.statements).await?;
    let mut report = Report::default();
    let result = run(&bench, &options, &mut report).await;
    bench.stop().await;
    report.print();
    result
}

async fn run(bench: &env::Bench, options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let all = options.scenarios.contains(&Scenario::All);
    let wanted = |s| all || options.scenarios.contains(&s);
    let under_test = bench.server_bin();
    let mut binaries = Vec::new();
    if let Some(baseline) = &options.baseline_bin {
        binaries.push((" (baseline binary)".to_string(), baseline.clone()));
        binaries.push((" (binary under test)".to_string(), under_test));
    } else {
        binaries.push((String::new(), under_test));
    }
    for scenario in [
        Scenario::Cpu,
        Scenario::Commands,
        Scenario::Streams,
        Scenario::Lag,
        Scenario::Timers,
        Scenario::Rebuild,
        Scenario::Audit,
        Scenario::Seal,
        Scenario::Reports,
        Scenario::Mail,
        Scenario::Webhooks,
    ] {
        if !wanted(scenario) {
            continue;
        }
        for (label, bin) in &binaries {
            eprintln!("{scenario:?}{label}: {}", bin.display());
            bench.set_server_bin(bin.clone());
            match scenario {
                Scenario::Cpu => cpu::cpu(bench, options, report, label).await?,
                Scenario::Commands => commands::commands(bench, options, report, label).await?,
                Scenario::Streams => commands::streams(bench, options, report, label).await?,
                Scenario::Lag => commands::lag(bench, options, report, label).await?,
                Scenario::Timers => timers::timers(bench, options, report, label).await?,
                Scenario::Rebuild => log::rebuild(bench, options, report, label).await?,
                Scenario::Audit => log::audit(bench, options, report, label).await?,
                Scenario::Seal => log::seal(bench, options, report, label).await?,
                Scenario::Reports => reports::reports(bench, options, report, label).await?,
                Scenario::Mail => mail::mail(bench, options, report, label).await?,
                Scenario::Webhooks => webhooks::webhooks(bench, options, report, label).await?,
                Scenario::All => {}
            }
        }
    }
    Ok(())
}
