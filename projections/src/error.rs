/// Why a projection could not apply a batch. The runner logs it, leaves the checkpoint where it
/// was (the batch's transaction rolls back) and tries again later.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("event {position} ({event_type} v{event_version}) cannot be decoded: {source}")]
    Decode {
        position: i64,
        event_type: String,
        event_version: String,
        source: serde_json::Error,
    },
    /// An event's sealed personal data does not open: the database's keys were wrapped by
    /// another master key, or stored data was altered.
    #[error("event {position} cannot be opened: {source}")]
    Sealed {
        position: i64,
        source: crate::privacy::PrivacyError,
    },
    /// A side effect of the batch failed: a command a process manager issues could not be
    /// run (database unreachable, conflicts). The batch rolls back and is tried again; the
    /// commands must be idempotent for that to be safe.
    #[error("side effect failed: {0}")]
    SideEffect(String),
    /// Another rebuild or check of the projection holds it.
    #[error("{0}")]
    Busy(String),
    /// A broken promise inside this crate (a bug), reported instead of a panic.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("row of `{table}` cannot be read or written: {source}")]
    Row {
        table: String,
        source: serde_json::Error,
    },
}

impl ProjectionError {
    /// Whether applying the same events again can only fail the same way: the event cannot be
    /// decoded, a row cannot be serialised, or the database refuses the values themselves (a
    /// data exception, SQLSTATE class 22, or a broken constraint, class 23). Connection, lock,
    /// timeout and side-effect failures are transient and retried.
    pub fn is_deterministic(&self) -> bool {
        match self {
            Self::Decode { .. } | Self::Row { .. } => true,
            Self::Database(error) => error
                .code()
                .is_some_and(|code| matches!(&code.code()[..2], "22" | "23")),
            // Sealed data that does not open says more about the process (its master key)
            // than about the event: setting the event aside would skip it for good.
            Self::Pool(_)
            | Self::SideEffect(_)
            | Self::Busy(_)
            | Self::Internal(_)
            | Self::Sealed { .. } => false,
        }
    }
}
