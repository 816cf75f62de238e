//! Logs (to stderr, so that commands like `token issue` keep stdout for their output) and the
//! Prometheus recorder behind `GET /metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber; `RUST_LOG` overrides the default `info`.
pub fn init_logging() {
    init_logging_at("info");
}

/// Installs the log subscriber at `level` (`RUST_LOG` overrides it). PostgreSQL's NOTICEs
/// (`tokio_postgres::connection`, at info) show only from debug on: they are chatter such as
/// "relation already exists, skipping", never something an operator must act on.
pub fn init_logging_at(level: &str) {
    let notices = if level == "debug" { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},sqlx=warn,tower_http={level},tokio_postgres::connection={notices}"
        ))
    });
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process-wide metrics recorder (installed once; later calls share it).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}
