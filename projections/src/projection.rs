//! What a read model is to the code that keeps it: the [`Projection`] trait, and the claim that
//! every writer of a projection's tables takes.
//!
//! Kept apart from `runner` because the runner, rebuilds and dead-letter retries all drive
//! projections and take their claim: while these lived in `runner`, `runner` and `dead_letters`
//! imported each other.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use subdesk_aggregates::upcast::AGGREGATE_TYPES;

use crate::error::ProjectionError;
use crate::event::StoredEvent;

/// Namespace of the advisory locks that claim projections (first half of the lock key).
pub(crate) const CLAIM_NAMESPACE: i32 = 0x5d5c;

/// A read model: a name, a checkpoint row, and a fold of event batches into SQL.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name: the key of the checkpoint row and of `subdesk projections rebuild NAME`.
    fn name(&self) -> &'static str;

    /// The tables this projection owns, created by migrations. A rebuild recreates them
    /// from the log; tables it only appends to idempotently (the notifications outbox) are not
    /// listed, so a rebuild writes through to them and keeps what was already sent.
    fn tables(&self) -> &'static [&'static str];

    /// Whether a rebuild may replay the log through this projection. Process managers, which
    /// issue commands, answer false: replaying history must never append anything.
    fn rebuildable(&self) -> bool {
        true
    }

    /// The aggregate types whose events it reads. An event of one of them that this binary
    /// does not know (a newer release's type or version) blocks the projection instead of being
    /// skipped. By default every aggregate type this binary knows.
    fn aggregate_types(&self) -> &'static [&'static str] {
        &AGGREGATE_TYPES
    }

    /// Applies a batch, in catch-up order, inside the runner's transaction. Must not commit.
    /// Events of aggregate types it does not know are skipped.
    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError>;
}
