//! The bench's own PostgreSQL cluster (fsync on), one database per scenario, and `subdesk
//! serve` processes against them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use subdesk::db::Target;
use subdesk::pg::{hand_over, ClusterOptions, LocalCluster};
use tokio::io::AsyncBufReadExt;

/// Server settings of the bench cluster. Durability is PostgreSQL's default (fsync and
/// synchronous commit on); `track_commit_timestamp` lets the lag scenario read each event's
/// commit time. Checkpoints are spaced out so that a seeding of a million events does not
/// force one in the middle of a measurement.
const SETTINGS: &[(&str, &str)] = &[
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
    ("track_commit_timestamp", "on"),
    ("max_connections", "400"),
    ("shared_buffers", "256MB"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "30min"),
];

pub struct Bench {
    pub cluster: LocalCluster,
    server_bin: Mutex<PathBuf>,
}

impl Bench {
    /// Starts the cluster; with `statements`, pg_stat_statements is loaded (see `cpu`).
    pub async fn start(server_bin: PathBuf, statements: bool) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("subdesk-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        hand_over(&dir)?;
        let mut settings: Vec<(String, String)> = SETTINGS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if statements {
            settings.push((
                "shared_preload_libraries".into(),
                "pg_stat_statements".into(),
            ));
            settings.push(("pg_stat_statements.track".into(), "all".into()));
        }
        let options = ClusterOptions {
            settings,
            remove_on_stop: true,
        };
        let cluster = LocalCluster::start(&dir, &options)
            .await
            .context("starting the bench PostgreSQL cluster")?;
        Ok(Self {
            cluster,
            server_bin: Mutex::new(server_bin),
        })
    }

    /// A fresh database `name` (dropped first if a previous scenario left it), migrated by
    /// the binary under test (`subdesk migrate`), so that an older binary given as
    /// `--baseline-bin` runs on the schema it knows.
    pub async fn database(&self, name: &str) -> anyhow::Result<Target> {
        let admin = self.connect("postgres").await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let target = Target::local(&self.cluster, name);
        run_cli(&self.server_bin(), &self.url(name), &["migrate"], None)
            .await
            .with_context(|| format!("migrating {name}"))?;
        Ok(target)
    }

    pub async fn connect(&self, dbname: &str) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self
            .cluster
            .config(dbname)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The postmaster's pid: the parent of a backend.
    pub async fn postmaster_pid(&self) -> anyhow::Result<u32> {
        let client = self.connect("postgres").await?;
        let backend: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        let (ppid, _, _) = stat(backend as u32).context("reading the backend's /proc entry")?;
        Ok(ppid)
    }

    pub fn url(&self, dbname: &str) -> String {
        self.cluster.url(dbname)
    }

    pub fn socket_dir(&self) -> &Path {
        self.cluster.socket_dir()
    }

    /// Starts `subdesk serve` on database `dbname` with extra flags.
    pub async fn server(&self, dbname: &str, extra: &[&str]) -> anyhow::Result<Server> {
        Server::start(&self.server_bin(), &self.url(dbname), extra).await
    }

    /// The `subdesk` binary under test.
    pub fn server_bin(&self) -> PathBuf {
        self.server_bin
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    pub fn set_server_bin(&self, bin: PathBuf) {
        if let Ok(mut current) = self.server_bin.lock() {
            *current = bin;
        }
    }

    pub async fn stop(self) {
        self.cluster.stop().await;
    }
}

/// A `subdesk serve` child process.
pub struct Server {
    child: tokio::process::Child,
    pub address: String,
    pub pid: u32,
    /// Log lines that speak of a panic or an error, for the report.
    pub complaints: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub async fn start(bin: &Path, url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(bin)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("server pid")?;
        let stderr = child.stderr.take().context("server stderr")?;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let address = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        })
        .await
        .context("the server did not start listening within 60 s")?
        .context("the server exited before listening")?;
        let complaints = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&complaints);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("panicked") || line.contains("ERROR") {
                    if let Ok(mut sink) = sink.lock() {
                        if sink.len() < 20 {
                            sink.push(line);
                        }
                    }
                }
            }
        });
        Ok(Self {
            child,
            address,
            pid,
            complaints,
        })
    }

    /// Peak resident memory of the server so far, in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.pid).unwrap_or(0.0)
    }

    /// SIGTERM, then a clean exit within 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let complaints = self
            .complaints
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        for line in complaints {
            eprintln!("server said: {line}");
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the server did not stop within 30 s")??;
        if !status.success() {
            bail!("the server exited with {status}");
        }
        Ok(())
    }
}

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`, fixed at 100 by
/// the kernel's ABI whatever the kernel's own tick rate).
const USER_HZ: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` after the command name: (ppid, utime + stime, cutime +
/// cstime) in seconds.
fn stat(pid: u32) -> Option<(u32, f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and brackets: the fields start after the last ')'.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let ppid = fields.get(1)?.parse().ok()?;
    // Field 14 of the man page is index 11 here (state is field 3, index 0).
    let own = number(11)? + number(12)?;
    let children = number(13)? + number(14)?;
    Some((ppid, own / USER_HZ, children / USER_HZ))
}

/// CPU seconds (user + system) that process `pid` has used so far.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    stat(pid).map_or(0.0, |(_, own, _)| own)
}

/// CPU seconds (user + system) that the PostgreSQL cluster whose postmaster is `postmaster`
/// has used so far: the postmaster, its live children (backends, walwriter, checkpointer,
/// ...) and the children that have exited (which the postmaster has waited for). The
/// difference of two readings is the cluster's work in between.
pub fn cluster_cpu_seconds(postmaster: u32) -> f64 {
    let Some((_, own, exited)) = stat(postmaster) else {
        return 0.0;
    };
    let mut total = own + exited;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, own, _)) = stat(pid) {
                if ppid == postmaster {
                    total += own;
                }
            }
        }
    }
    total
}

/// `VmHWM` of a process (its peak resident set), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs the subdesk CLI to completion and returns (wall time, stdout bytes written to
/// `stdout_to` if given, stderr, peak RSS in MiB, sampled every 20 ms).
pub async fn run_cli(
    bin: &Path,
    url: &str,
    args: &[&str],
    stdout_to: Option<&Path>,
) -> anyhow::Result<CliRun> {
    let stdout = match stdout_to {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    };
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("cli pid")?;
    let mut stderr = child.stderr.take().context("cli stderr")?;
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(rss) = peak_rss_mib(pid) {
            peak = peak.max(rss);
        }
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let wall = started.elapsed();
    let stderr = reader.await.unwrap_or_default();
    if !status.success() {
        bail!("subdesk {} failed ({status}): {stderr}", args.join(" "));
    }
    Ok(CliRun {
        wall,
        stderr,
        peak_rss_mib: peak,
    })
}

pub struct CliRun {
    pub wall: Duration,
    pub stderr: String,
    pub peak_rss_mib: f64,
}

/// Waits until every projection's checkpoint has reached the end of the log (at most
/// `limit`). Returns how long it took.
pub async fn wait_for_projections(
    client: &tokio_postgres::Client,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        // Cheap: the newest event in catch-up order against each checkpoint.
        let behind: i64 = client
            .query_one(
                "SELECT count(*) FROM projection_checkpoints c, \
                        (SELECT tx_id, position FROM events \
                          ORDER BY tx_id DESC, position DESC LIMIT 1) e \
                  WHERE (c.last_tx, c.last_position) < (e.tx_id, e.position)",
                &[],
            )
            .await?
            .get(0);
        let names: i64 = client
            .query_one("SELECT count(*) FROM projection_checkpoints", &[])
            .await?
            .get(0);
        if behind == 0 && names >= 3 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("{behind} projections still behind after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
