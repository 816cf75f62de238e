//! Connections and migrations.
//!
//! Two client libraries talk to PostgreSQL: postgres-es (the cqrs-es event store) brings
//! sqlx, and everything subdesk writes itself goes through tokio-postgres + deadpool. Both are
//! built from one [`Target`] so they always reach the same server.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_postgres::NoTls;

use crate::config::DbArgs;
use crate::pg::{ClusterOptions, LauncherError, LocalCluster};

/// Name of the database in the private cluster.
pub const DATABASE: &str = "subdesk";

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Launcher(#[from] LauncherError),
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(String),
    #[error("migrations: {0}")]
    Migration(#[from] refinery::Error),
}

/// Where the database is, in the forms both client libraries take.
#[derive(Clone, Debug)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub sqlx: PgConnectOptions,
}

impl Target {
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        let sqlx =
            PgConnectOptions::from_str(url).map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        Ok(Self { config, sqlx })
    }

    pub fn local(cluster: &LocalCluster, dbname: &str) -> Self {
        let sqlx = PgConnectOptions::new()
            .socket(cluster.socket_dir())
            .port(5432)
            .username("postgres")
            .database(dbname)
            .application_name("subdesk");
        Self {
            config: cluster.config(dbname),
            sqlx,
        }
    }

    /// The same target with server-side bounds on every session: a statement running longer
    /// than `statement` is cancelled, and a session idle inside a transaction for longer is
    /// closed (so that a stuck client never holds locks or the projection horizon). Zero
    /// leaves a bound off.
    pub fn with_timeouts(&self, statement: Duration, idle_in_transaction: Duration) -> Self {
        let mut settings = Vec::new();
        if !statement.is_zero() {
            settings.push(("statement_timeout", statement.as_millis().to_string()));
        }
        if !idle_in_transaction.is_zero() {
            settings.push((
                "idle_in_transaction_session_timeout",
                idle_in_transaction.as_millis().to_string(),
            ));
        }
        self.with_settings(&settings)
    }

    /// The same target whose sessions append events without the events table's NOTIFY
    /// (migration V22): for the command path of a process whose projection runner announces
    /// its appends itself (`Runner::run`), at most one NOTIFY per few milliseconds.
    pub fn without_append_notify(&self) -> Self {
        self.with_settings(&[("subdesk.notify", "off".to_string())])
    }

    /// The same target with server settings `-c name=value` on every session.
    fn with_settings(&self, settings: &[(&str, String)]) -> Self {
        let mut target = self.clone();
        if settings.is_empty() {
            return target;
        }
        let extra = settings
            .iter()
            .map(|(name, ms)| format!("-c {name}={ms}"))
            .collect::<Vec<_>>()
            .join(" ");
        let options = match self.config.get_options() {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {extra}"),
            _ => extra,
        };
        target.config.options(options);
        target.sqlx = target
            .sqlx
            .options(settings.iter().map(|(name, value)| (*name, value.as_str())));
        target
    }

    pub fn pool(&self, size: usize) -> Result<Pool, DbError> {
        let manager = Manager::from_config(
            self.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| DbError::Pool(e.to_string()))
    }

    /// The pool postgres-es writes events through. Connected lazily so that the server can
    /// start (and answer `/readyz` 503) while the database is down.
    pub fn sqlx_pool(&self, size: usize) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(size as u32)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(self.sqlx.clone())
    }
}

/// The database subdesk uses, and the private cluster behind it when there is one.
pub struct Database {
    pub target: Target,
    pub read_target: Target,
    pub cluster: Option<LocalCluster>,
}

impl Database {
    /// Connects as `args` say: the given URL, or the private cluster in the data directory
    /// (started, or attached to when already running).
    pub async fn open(args: &DbArgs) -> Result<Self, DbError> {
        let (target, cluster) = match &args.database_url {
            Some(url) => (Target::from_url(url)?, None),
            None => {
                let cluster =
                    LocalCluster::start(&args.data_dir, &ClusterOptions::default()).await?;
                cluster.ensure_database(DATABASE).await?;
                (Target::local(&cluster, DATABASE), Some(cluster))
            }
        };
        let read_target = match &args.read_database_url {
            Some(url) => Target::from_url(url)?,
            None => target.clone(),
        };
        Ok(Self {
            target,
            read_target,
            cluster,
        })
    }

    /// Stops the private cluster if this process started it.
    pub async fn close(self) {
        if let Some(cluster) = self.cluster {
            cluster.stop().await;
        }
    }
}

/// Applies pending migrations. An advisory lock makes concurrent starts of several servers
/// wait for each other instead of racing.
pub async fn migrate(target: &Target) -> Result<Vec<String>, DbError> {
    let (mut client, connection) = target.config.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute("SELECT pg_advisory_lock(5910, 1)")
        .await?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await;
    let unlock = client
        .batch_execute("SELECT pg_advisory_unlock(5910, 1)")
        .await;
    drop(client);
    let _ = driver.await;
    let report = report?;
    unlock?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// The newest migration version this binary carries.
pub fn latest_migration() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Whether the database has every migration this binary carries.
pub async fn migrations_current(
    client: &tokio_postgres::Client,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT max(version)::bigint AS version FROM refinery_schema_history",
            &[],
        )
        .await?;
    let applied: Option<i64> = match row {
        Some(row) => row.try_get("version")?,
        None => None,
    };
    Ok(applied.unwrap_or(0) >= latest_migration())
}

/// The stable code of a PostgreSQL error that means "try again shortly" rather than "this
/// request is wrong": the server cancelled a statement at its timeout, a transaction lost a
/// serialization or deadlock race or a lock wait, the server is read-only (a standby, or a
/// primary just demoted by a failover), or it is out of connections or other resources. The
/// HTTP edge answers these 503 with `Retry-After`, never 500.
pub fn retryable_code(error: &tokio_postgres::Error) -> Option<&'static str> {
    retryable_sqlstate(error.code()?.code())
}

/// [`retryable_code`] for a bare SQLSTATE (sqlx reports those as text).
pub fn retryable_sqlstate(sqlstate: &str) -> Option<&'static str> {
    Some(match sqlstate {
        "57014" => "statement_timeout",
        "40001" => "serialization_failure",
        "40P01" => "deadlock_detected",
        "55P03" => "lock_not_available",
        // A statement of a transaction failed and the error that reached the caller is a
        // later statement's (pipelined queries): the first failure is unknown, and the reads
        // that meet this (a read model swapped in by a rebuild) succeed when tried again.
        "25P02" => "transaction_aborted",
        "25006" => "database_read_only",
        "53300" => "too_many_connections",
        s if s.starts_with("53") => "insufficient_resources",
        _ => return None,
    })
}

/// Whether a PostgreSQL error refuses a value the request carried (class 22, data exception:
/// a number or date out of range, text the database cannot store). The HTTP edge answers
/// these 422: whatever input reached the database, it is the input that is wrong.
pub fn is_data_exception(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|c| c.code().starts_with("22"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retryable_sqlstates_have_stable_codes() {
        for (state, code) in [
            ("57014", "statement_timeout"),
            ("40001", "serialization_failure"),
            ("40P01", "deadlock_detected"),
            ("55P03", "lock_not_available"),
            ("25006", "database_read_only"),
            ("53300", "too_many_connections"),
            ("53200", "insufficient_resources"),
        ] {
            assert_eq!(retryable_sqlstate(state), Some(code), "{state}");
        }
        assert_eq!(retryable_sqlstate("23505"), None);
        assert_eq!(retryable_sqlstate("42P01"), None);
    }
}
