//! The ceiling: `pgbench` running exactly the SQL of one command against the same cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// The scripts, next to this crate (`bench/pgbench/*.sql`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pgbench")
        .join(name)
}

/// `pgbench` next to the server binaries the launcher uses, else the newest under
/// /usr/lib/postgresql, else whatever PATH has.
fn pgbench_binary() -> PathBuf {
    let beside = subdesk::pg::find_binaries()
        .ok()
        .map(|dir| dir.join("pgbench"))
        .filter(|p| p.is_file());
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join("pgbench"))
        .filter(|p| p.is_file())
        .collect();
    installed.sort();
    beside
        .or_else(|| installed.pop())
        .unwrap_or_else(|| PathBuf::from("pgbench"))
}

pub struct Ceiling {
    pub tps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Transactions run (one per logged latency).
    pub transactions: u64,
}

/// Runs `script` with `clients` clients for `duration` on database `dbname`.
pub async fn run(
    socket_dir: &Path,
    dbname: &str,
    script: &Path,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Ceiling> {
    let bin = pgbench_binary();
    let logs = std::env::temp_dir().join(format!(
        "subdesk-bench-pgbench-{}-{clients}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let output = tokio::process::Command::new(&bin)
        // As subdesk's command connections do (migration V22): no NOTIFY per append.
        .env("PGOPTIONS", "-c subdesk.notify=off")
        .args(["-n", "-M", "prepared", "-j", "2", "-l"])
        .arg(format!("--log-prefix={}", logs.join("tx").display()))
        .arg("-c")
        .arg(clients.to_string())
        .arg("-T")
        .arg(duration.as_secs().max(1).to_string())
        .arg("-f")
        .arg(script)
        .arg("-h")
        .arg(socket_dir)
        .args(["-p", "5432", "-U", "postgres"])
        .arg(dbname)
        .output()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output: {stdout}"))?;
    // Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us.
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&logs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse::<u64>().ok())
            {
                latencies.push(Duration::from_micros(us));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(Ceiling {
        tps,
        transactions: latencies.len() as u64,
        p50_ms: crate::load::percentile_ms(&mut latencies, 50.0),
        p99_ms: crate::load::percentile_ms(&mut latencies, 99.0),
    })
}
