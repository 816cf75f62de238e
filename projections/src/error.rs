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
    /// A side effect of the batch failed: a command a process manager issues could not be
    /// run (database unreachable, conflicts). The batch rolls back and is tried again; the
    /// commands must be idempotent for that to be safe.
    #[error("side effect failed: {0}")]
    SideEffect(String),
    #[error("row of `{table}` cannot be read or written: {source}")]
    Row {
        table: String,
        source: serde_json::Error,
    },
}
