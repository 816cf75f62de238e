//! The running application: the API, the projection runner, the scheduler and housekeeping
//! side by side under one shutdown signal, each restarted if it panics.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::state::{AppInner, AppState, ExtraProjections, Settings};

/// Serves the API on `listener` and runs the background work until `shutdown` is cancelled,
/// then drains in-flight requests and waits for the background tasks to stop.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let runner = tokio::spawn(Arc::clone(&state.runner).run(shutdown.child_token()));
    // The scheduler and the housekeeping come back after a panic, like the projection runners.
    let scheduler = {
        let state = state.clone();
        let stop = shutdown.child_token();
        tokio::spawn(subdesk_projections::supervise::supervise(
            "scheduler",
            move || {
                Arc::clone(&state.scheduler).run(
                    // Any projection's progress, not only the timers projection's: waking on
                    // the timers projection alone made the 10,000-timer burst of the bench
                    // take 38 s instead of 12 s (see bench/RESULTS.md).
                    state.runner.subscribe(),
                    state.runner.outdated(),
                    stop.clone(),
                )
            },
            |_| {},
            shutdown.child_token(),
        ))
    };
    let housekeeping = {
        let state = state.clone();
        let stop = shutdown.child_token();
        tokio::spawn(subdesk_projections::supervise::supervise(
            "housekeeping",
            move || housekeeping(state.clone(), stop.clone()),
            |_| {},
            shutdown.child_token(),
        ))
    };
    let revocations = {
        let state = state.clone();
        tokio::spawn(subdesk_projections::listen::listen(
            state.listen_config.clone(),
            crate::auth::REVOCATIONS_CHANNEL,
            move |payload| {
                state
                    .auth
                    .forget(payload.and_then(|id| uuid::Uuid::parse_str(id).ok()));
            },
            shutdown.child_token(),
        ))
    };
    let erasures = {
        let state = state.clone();
        tokio::spawn(subdesk_projections::listen::listen(
            state.listen_config.clone(),
            crate::privacy::erase::ERASURES_CHANNEL,
            // Also on every (re)connection: an erasure may have been missed meanwhile.
            move |_| state.forget_personal_data(),
            shutdown.child_token(),
        ))
    };
    let erasures_finished = tokio::spawn(finish_erasures(state.clone(), shutdown.child_token()));
    let upkeep = tokio::spawn(metrics_upkeep(state.clone(), shutdown.child_token()));
    let mail = match &state.settings.mail {
        Some(config) => match crate::mail::Mailer::new(state.pool.clone(), config.clone()) {
            Ok(mailer) => Some(tokio::spawn(mailer.run(shutdown.child_token()))),
            Err(error) => {
                tracing::error!(%error, "e-mail delivery cannot start");
                None
            }
        },
        None => None,
    };
    let webhooks = match crate::webhooks::deliver::Deliverer::new(
        state.pool.clone(),
        state.settings.webhooks.clone(),
    ) {
        Ok(deliverer) => Some(tokio::spawn(
            // Deliveries read the feed projection's index.
            deliverer.run(state.runner.subscribe_to("feed"), shutdown.child_token()),
        )),
        Err(error) => {
            tracing::error!(%error, "webhook delivery cannot start");
            None
        }
    };
    // Event streams never finish by themselves: end them when the server stops, or the
    // graceful shutdown would wait for them.
    let streams = state.streams.stop.clone();
    let streams_end = shutdown.clone();
    tokio::spawn(async move {
        streams_end.cancelled().await;
        streams.cancel();
    });
    let result = axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    for task in [
        runner,
        scheduler,
        housekeeping,
        revocations,
        erasures,
        erasures_finished,
        upkeep,
    ]
    .into_iter()
    .chain(mail)
    .chain(webhooks)
    {
        if let Err(error) = task.await {
            tracing::error!(%error, "background task ended abnormally");
        }
    }
    result
}

/// The metrics recorder's upkeep (draining histogram buckets) runs every few seconds whether
/// or not anything scrapes `/metrics`, so memory stays bounded between scrapes.
async fn metrics_upkeep(state: AppState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => state.metrics.run_upkeep(),
        }
    }
}

/// Hourly chores: forget idempotency keys older than 24 hours and timer leases whose timer is
/// gone.
async fn housekeeping(state: AppState, shutdown: CancellationToken) {
    loop {
        match crate::idempotency::purge_expired(&state.pool).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency keys removed"),
            Err(error) => tracing::warn!(%error, "idempotency key purge failed"),
        }
        match state.scheduler.purge_stale_leases().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "stale timer leases removed"),
            Err(error) => tracing::warn!(%error, "timer lease purge failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// The background part of erasures: whenever one is recorded in this process (`erasure_wake`)
/// and once a minute (another process's may have been interrupted), until shutdown.
async fn finish_erasures(state: AppState, stop: CancellationToken) {
    loop {
        let projections = state.rebuildable_projections();
        let projections: Vec<&dyn subdesk_projections::Projection> =
            projections.iter().map(|p| p.as_ref()).collect();
        if let Err(error) =
            crate::privacy::erase::complete_running(&state.erasure_pool, &projections).await
        {
            tracing::error!(%error, "erasures failed in their background part");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = state.erasure_wake.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
    }
}
