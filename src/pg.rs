//! The private PostgreSQL cluster that subdesk runs when no `DATABASE_URL` is given.
//!
//! The cluster lives in `<data-dir>/pg`, is created with `initdb` on first use, listens on a
//! Unix socket in that directory only (no TCP), and trusts local connections: the directory
//! is private to the user that runs PostgreSQL, so only that user and root can reach it.
//!
//! PostgreSQL refuses to run as root; when subdesk runs as root it gives the cluster directory
//! to the `postgres` system user (or `SUBDESK_PG_USER`) and runs the binaries as that user
//! through `runuser`.
//!
//! The server process is started through a small `sh` wrapper whose stdin is a pipe from
//! subdesk. When subdesk closes it, by stopping or by dying in any way (even `kill -9`), the
//! wrapper asks PostgreSQL for a fast shutdown. A cluster that another process already runs
//! (say `subdesk serve` while `subdesk token issue` is called) is attached to, not restarted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::unistd::{chown, geteuid, User};
use std::process::{Child, ChildStdin};

use tokio::process::Command;

/// Port number of the socket file (`.s.PGSQL.<port>`); the socket directory is private, so
/// the usual port is never in conflict with another server.
const PORT: u16 = 5432;
const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error(
        "no PostgreSQL server binaries found (looked for `initdb` and `postgres` on PATH and \
         under /usr/lib/postgresql/*/bin). Install them with `apt-get install -y postgresql` \
         (Debian, Ubuntu), or point subdesk at an existing server with DATABASE_URL"
    )]
    NoBinaries,
    #[error(
        "subdesk runs as root, and PostgreSQL refuses to; no `{0}` system user exists to run it \
         as. Create one (`useradd --system {0}`), name another with SUBDESK_PG_USER, or run \
         subdesk as an unprivileged user"
    )]
    NoServiceUser(String),
    #[error(
        "the `{user}` user cannot reach {dir}: a parent directory is closed to it. Choose a \
         --data-dir it can traverse (for example under /var/lib or /tmp) or give it search \
         permission on the parents (`chmod o+x`)"
    )]
    Unreachable { user: String, dir: String },
    #[error("{action} failed: {detail}")]
    Command { action: String, detail: String },
    #[error("PostgreSQL did not accept connections within {0:?}; see {1}")]
    NotReady(Duration, String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Runs a PostgreSQL tool to completion; when it fails, its stderr is the error.
async fn run_tool(command: &mut Command, tool: &str) -> Result<(), LauncherError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io(format!("running {tool}")))?;
    if !output.status.success() {
        return Err(LauncherError::Command {
            action: tool.into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LauncherError {
    let context = context.into();
    move |error| LauncherError::Io(context, error)
}

/// Extra server settings and what to do when the cluster stops.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `-c name=value` settings, e.g. `fsync=off` for throwaway test clusters.
    pub settings: Vec<(String, String)>,
    /// Remove the whole data directory once the server has stopped (throwaway clusters).
    pub remove_on_stop: bool,
}

/// A running (or attached) private cluster.
#[derive(Debug)]
pub struct LocalCluster {
    data_dir: PathBuf,
    pgdata: PathBuf,
    /// The wrapper process and the pipe whose closing stops PostgreSQL; `None` when attached
    /// to a cluster someone else started.
    process: Option<(Child, ChildStdin)>,
}

impl LocalCluster {
    /// The (not yet running) cluster of `data_dir`, the directory created when missing.
    fn in_dir(data_dir: &Path) -> Result<Self, LauncherError> {
        std::fs::create_dir_all(data_dir)
            .map_err(io(format!("creating {}", data_dir.display())))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(io(format!("resolving {}", data_dir.display())))?;
        let pgdata = data_dir.join("pg");
        Ok(Self {
            data_dir,
            pgdata,
            process: None,
        })
    }

    /// Starts the cluster in `data_dir` (creating it on first use), or attaches to it when it
    /// is already running.
    pub async fn start(data_dir: &Path, options: &ClusterOptions) -> Result<Self, LauncherError> {
        let mut cluster = Self::in_dir(data_dir)?;
        if cluster.accepts_connections().await {
            tracing::info!(dir = %cluster.pgdata.display(), "attached to the running private PostgreSQL");
            return Ok(cluster);
        }
        let bin = find_binaries()?;
        let service_user = service_user()?;
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.init(&bin, service_user.as_ref()).await?;
        }
        cluster.launch(&bin, service_user.as_ref(), options).await?;
        Ok(cluster)
    }

    /// Starts a hot standby of `primary` in `data_dir`: on first use its cluster directory is
    /// a `pg_basebackup` of the primary (`-R`: it streams from the primary's socket and stays
    /// in recovery), then it runs like any private cluster, on a socket in its own directory.
    /// Attaches when it is already running. The primary needs `wal_level` `replica` or above
    /// and free WAL senders (PostgreSQL's defaults, and `initdb -A trust` lets local
    /// replication connections in); `options` should repeat the primary's `max_connections`,
    /// which a hot standby may not set lower.
    pub async fn start_standby(
        primary: &LocalCluster,
        data_dir: &Path,
        options: &ClusterOptions,
    ) -> Result<Self, LauncherError> {
        let mut cluster = Self::in_dir(data_dir)?;
        if cluster.accepts_connections().await {
            tracing::info!(dir = %cluster.pgdata.display(), "attached to the running standby");
            return Ok(cluster);
        }
        let bin = find_binaries()?;
        let service_user = service_user()?;
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster
                .base_backup(&bin, service_user.as_ref(), primary)
                .await?;
        }
        cluster.launch(&bin, service_user.as_ref(), options).await?;
        Ok(cluster)
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        &self.pgdata
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Whether this process started the server (and so stops it).
    pub fn owns_server(&self) -> bool {
        self.process.is_some()
    }

    /// Connection settings for database `dbname` on this cluster.
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.pgdata)
            .port(PORT)
            .user(SUPERUSER)
            .dbname(dbname)
            .application_name("subdesk");
        config
    }

    /// A `postgres://` URL for tools that take one (the socket directory goes in `host`).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{PORT}/{dbname}?host={}",
            self.pgdata.display()
        )
    }

    /// Creates database `name` unless it exists.
    pub async fn ensure_database(&self, name: &str) -> Result<(), LauncherError> {
        let (client, connection) = self
            .config("postgres")
            .connect(tokio_postgres::NoTls)
            .await?;
        let driver = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?
            .is_some();
        if !exists {
            let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            if let Err(error) = client.batch_execute(&sql).await {
                // Another process created it between the check and here.
                if error.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                    return Err(error.into());
                }
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    /// Stops the server if this process started it, waiting for a clean shutdown.
    pub async fn stop(mut self) {
        let Some((mut child, stdin)) = self.process.take() else {
            return;
        };
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => {
                    tracing::info!("private PostgreSQL stopped");
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(None) => {
                    tracing::warn!("PostgreSQL did not stop within 60s; killing its wrapper");
                    let _ = child.kill();
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "waiting for PostgreSQL to stop");
                    return;
                }
            }
        }
    }

    async fn accepts_connections(&self) -> bool {
        if !self.pgdata.join("postmaster.pid").exists() {
            return false;
        }
        let config = self.config("postgres");
        match tokio::time::timeout(
            Duration::from_secs(5),
            config.connect(tokio_postgres::NoTls),
        )
        .await
        {
            Ok(Ok((client, connection))) => {
                drop(client);
                let _ = connection.await;
                true
            }
            _ => false,
        }
    }

    /// Creates the (empty, private) cluster directory and checks that the service user can
    /// write to it.
    async fn create_pgdata(&self, user: Option<&User>) -> Result<(), LauncherError> {
        create_private_dir(&self.pgdata, user)?;
        if let Some(user) = user {
            let reachable = run_as(user, "test")
                .arg("-w")
                .arg(&self.pgdata)
                .status()
                .await
                .map_err(io("runuser"))?;
            if !reachable.success() {
                return Err(LauncherError::Unreachable {
                    user: user.name.clone(),
                    dir: self.pgdata.display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Copies `primary` into the cluster directory with `pg_basebackup`, configured as its
    /// streaming standby.
    async fn base_backup(
        &self,
        bin: &Path,
        user: Option<&User>,
        primary: &LocalCluster,
    ) -> Result<(), LauncherError> {
        self.create_pgdata(user).await?;
        tracing::info!(
            dir = %self.pgdata.display(),
            primary = %primary.pgdata.display(),
            "creating a standby with pg_basebackup"
        );
        let program = companion(bin, "pg_basebackup");
        let mut basebackup = match user {
            Some(user) => run_as(user, &program),
            None => Command::new(&program),
        };
        run_tool(
            basebackup
                .arg("-D")
                .arg(&self.pgdata)
                .arg("-h")
                .arg(&primary.pgdata)
                .args([
                    "-p",
                    &PORT.to_string(),
                    "-U",
                    SUPERUSER,
                    "-X",
                    "stream",
                    "-R",
                    "-c",
                    "fast",
                    "--no-sync",
                ]),
            "pg_basebackup",
        )
        .await?;
        // The copy carries the lock file of the primary's socket (the socket lives in the
        // cluster directory), naming a postmaster that is alive: the standby would refuse to
        // start. And the primary's startup log, which would only lengthen the standby's
        // error reports.
        let lock = self.pgdata.join(format!(".s.PGSQL.{PORT}.lock"));
        if let Err(error) = std::fs::remove_file(&lock) {
            if error.kind() != std::io::ErrorKind::NotFound {
                return Err(LauncherError::Io(
                    format!("removing {}", lock.display()),
                    error,
                ));
            }
        }
        let _ = std::fs::remove_file(self.pgdata.join("startup.log"));
        Ok(())
    }

    async fn init(&self, bin: &Path, user: Option<&User>) -> Result<(), LauncherError> {
        self.create_pgdata(user).await?;
        tracing::info!(dir = %self.pgdata.display(), "creating the private PostgreSQL cluster");
        let mut initdb = match user {
            Some(user) => run_as(user, bin.join("initdb")),
            None => Command::new(bin.join("initdb")),
        };
        run_tool(
            initdb.arg("-D").arg(&self.pgdata).args([
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ]),
            "initdb",
        )
        .await?;
        Ok(())
    }

    async fn launch(
        &mut self,
        bin: &Path,
        user: Option<&User>,
        options: &ClusterOptions,
    ) -> Result<(), LauncherError> {
        let log = self.pgdata.join("startup.log");
        // $1: log file, $2: "remove" or "", $3: directory to remove, then the server command.
        // The server runs in the background; `cat` returns when subdesk closes the pipe.
        let script = r#"log=$1; remove=$2; dir=$3; shift 3
"$@" >>"$log" 2>&1 &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
status=$?
if [ "$remove" = remove ]; then rm -rf "$dir"; fi
exit $status"#;
        let mut command = match user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.arg("-u").arg(&user.name).arg("--").arg("sh");
                command
            }
            None => std::process::Command::new("sh"),
        };
        command
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&log)
            .arg(if options.remove_on_stop { "remove" } else { "" })
            .arg(&self.data_dir)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-k")
            .arg(&self.pgdata)
            .args(["-p", &PORT.to_string(), "-c", "listen_addresses="]);
        let mut settings = vec![
            ("max_connections".to_string(), "200".to_string()),
            ("logging_collector".to_string(), "on".to_string()),
            ("log_directory".to_string(), "log".to_string()),
        ];
        settings.extend(options.settings.iter().cloned());
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        // Its own process group: a Ctrl-C meant for subdesk must not reach PostgreSQL before
        // subdesk has drained its requests; subdesk stops it afterwards.
        use std::os::unix::process::CommandExt;
        command
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().map_err(io("starting PostgreSQL"))?;
        let stdin = child.stdin.take().ok_or_else(|| LauncherError::Command {
            action: "starting PostgreSQL".into(),
            detail: "no pipe to the server wrapper".into(),
        })?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(LauncherError::Command {
                    action: "starting PostgreSQL".into(),
                    detail: format!("server exited ({status}): {}", tail(&log)),
                });
            }
            if self.accepts_connections().await {
                break;
            }
            if Instant::now() > deadline {
                return Err(LauncherError::NotReady(
                    Duration::from_secs(60),
                    log.display().to_string(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(dir = %self.pgdata.display(), "private PostgreSQL started");
        self.process = Some((child, stdin));
        Ok(())
    }
}

/// The directory holding `initdb` and `postgres`: on PATH first, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_binaries() -> Result<PathBuf, LauncherError> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| usable(dir)) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            usable(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(LauncherError::NoBinaries)
}

/// Another program of the PostgreSQL installation whose `postgres` is in `bin`: next to it,
/// else next to the binary it links to (PATH may hold links to `initdb` and `postgres`
/// alone).
fn companion(bin: &Path, name: &str) -> PathBuf {
    let beside = bin.join(name);
    if beside.is_file() {
        return beside;
    }
    std::fs::canonicalize(bin.join("postgres"))
        .ok()
        .and_then(|postgres| Some(postgres.parent()?.join(name)))
        .filter(|program| program.is_file())
        .unwrap_or(beside)
}

/// The user to run PostgreSQL as: `None` means "as ourselves" (not root).
fn service_user() -> Result<Option<User>, LauncherError> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    let name = std::env::var("SUBDESK_PG_USER").unwrap_or_else(|_| "postgres".into());
    match User::from_name(&name) {
        Ok(Some(user)) => Ok(Some(user)),
        _ => Err(LauncherError::NoServiceUser(name)),
    }
}

fn run_as(user: &User, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("runuser");
    command.arg("-u").arg(&user.name).arg("--").arg(program);
    command
}

fn create_private_dir(dir: &Path, owner: Option<&User>) -> Result<(), LauncherError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("protecting {}", dir.display())))?;
    if let Some(user) = owner {
        chown(dir, Some(user.uid), Some(user.gid)).map_err(|errno| {
            LauncherError::Io(
                format!("giving {} to {}", dir.display(), user.name),
                errno.into(),
            )
        })?;
    }
    Ok(())
}

/// Gives `dir` to the service user when running as root (throwaway clusters put their whole
/// data directory under it, so the wrapper may remove it).
pub fn hand_over(dir: &Path) -> Result<(), LauncherError> {
    if let Some(user) = service_user()? {
        chown(dir, Some(user.uid), Some(user.gid)).map_err(|errno| {
            LauncherError::Io(
                format!("giving {} to {}", dir.display(), user.name),
                errno.into(),
            )
        })?;
    }
    Ok(())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
