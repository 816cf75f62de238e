//! subdesk read models and the machinery that keeps them up to date.
//!
//! - [`event`]: [`StoredEvent`], one row of the event log as readers see it, and the gap-free
//!   catch-up read ([`event::read_batch`]) in `(tx_id, position)` order below the transaction
//!   horizon.
//! - [`runner`]: the [`Runner`] that applies batches to each [`Projection`] and advances its
//!   checkpoint in the same transaction; one active runner per projection across processes;
//!   woken by `LISTEN/NOTIFY`, with a polling fallback; `run_once` for tests.
//! - `projection` (private; its items are re-exported): the [`Projection`] trait and the claim
//!   that the runner, rebuilds and dead-letter retries take, kept apart so that none of them
//!   imports another for it.
//! - [`rebuild`]: rebuilding a read model into shadow tables and swapping it in; drift checks.
//! - [`rows`]: batch helpers that load, fold and write back read-model rows in one round trip
//!   per table instead of one per event.
//! - [`cases`]: the case list / detail / timeline / attachment read models and the case
//!   e-mails of the notifications outbox.
//! - [`subscriptions`]: the subscription list / detail read model, the entitlement contract
//!   (`entitlements`, `partner_customers`) and the subscription e-mails of the outbox.
//! - [`reports`]: the dashboards' read models: per-case and per-subscription facts (medians
//!   are taken over them when read) and counters per org (open cases, cases per day, active
//!   subscriptions and seats), cancellations.
//! - [`timers`]: the due timers the scheduler fires (auto-resolve, close, activate, term end).
//! - [`feed`]: the event feed's index: which events belong to which org and partner.
//!
//! Projections know events and SQL, never HTTP. They use unqualified table names so that a
//! rebuild can run the same code against shadow tables through `search_path`.

pub mod cases;
pub mod dead_letters;
pub mod error;
pub mod event;
pub mod feed;
pub mod health;
pub mod listen;
pub mod privacy;
mod projection;
pub mod rebuild;
pub mod reports;
pub mod rows;
pub mod runner;
pub mod subscriptions;
pub mod supervise;
pub mod timers;

pub use error::ProjectionError;
pub use event::{Checkpoint, StoredEvent};
pub use projection::Projection;
pub use runner::{Runner, RunnerConfig, EVENTS_CHANNEL};

/// Every projection of the product, in the order they are registered with the runner.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(cases::CaseProjection),
        std::sync::Arc::new(subscriptions::SubscriptionProjection),
        std::sync::Arc::new(reports::ReportProjection),
        std::sync::Arc::new(timers::TimerProjection),
        std::sync::Arc::new(feed::FeedProjection),
    ]
}
