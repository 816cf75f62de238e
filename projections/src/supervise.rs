//! Supervision: a background loop that panics (or returns before shutdown) is restarted with
//! backoff instead of being gone for the life of the process.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// First pause before a restart; it doubles up to [`MAX_BACKOFF`], and starts over once the
/// loop has run for a minute without trouble.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Runs `make()` until `shutdown`, restarting it after a panic or an early return.
/// `restarted` is told why, each time.
pub async fn supervise<F, Fut>(
    name: &str,
    make: F,
    restarted: impl Fn(String) + Send,
    shutdown: CancellationToken,
) where
    F: Fn() -> Fut + Send,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        // Spawned, so that a panic unwinds only that task and is reported here.
        let outcome = tokio::spawn(make()).await;
        if shutdown.is_cancelled() {
            return;
        }
        let why = match outcome {
            Ok(()) => "it stopped on its own".to_string(),
            Err(error) if error.is_panic() => {
                format!("it panicked: {}", panic_text(error.into_panic().as_ref()))
            }
            Err(error) => format!("it was lost: {error}"),
        };
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!(task = name, %why, ?backoff, "background task restarting");
        metrics::counter!("subdesk_task_restarts_total", "task" => name.to_string()).increment(1);
        restarted(why);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_loop_that_panics_is_started_again() {
        let runs = Arc::new(AtomicU32::new(0));
        let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let (r, why, stop) = (runs.clone(), reasons.clone(), shutdown.clone());
        let task = tokio::spawn(supervise(
            "test",
            move || {
                let runs = r.clone();
                let stop = stop.clone();
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("first run fails");
                    }
                    stop.cancelled().await;
                }
            },
            move |text| why.lock().expect("reasons").push(text),
            shutdown.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "not restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.cancel();
        task.await.expect("supervisor ends");
        let reasons = reasons.lock().expect("reasons").clone();
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("first run fails"), "{reasons:?}");
    }
}
