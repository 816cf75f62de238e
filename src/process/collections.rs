//! Collections: when a collection's cancellation takes effect, each product the customer
//! kept becomes a standalone subscription, created exactly once.
//!
//! The trigger is `CollectionCancelled { kept }`. For each kept product the process manager
//! creates a subscription whose id and entitlement number are derived from the collection id
//! and the product (sha256), so however often the event is delivered (a restart mid-batch, a
//! reset checkpoint, two processes racing) there is only one stream to create: the second
//! `Create` is refused with `AlreadyCreated`, which counts as done.
//!
//! The standalone subscription takes over the collection's org, channel (same partner),
//! billing account, plan, seats and auto-renew; its term starts when the collection's
//! cancellation took effect and is as long as the collection's term. Its metadata names the
//! system as actor, the triggering event (`event:<position>`) as causation, and carries the
//! correlation id of the request that cancelled the collection.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use sha2::{Digest, Sha256};
use subdesk_aggregates::subscription::{
    entitlement, term_end_from, CollectionCancelled, CreateSubscription, Subscription,
    SubscriptionCommand, SubscriptionError, SubscriptionEvent, AGGREGATE_TYPE,
};
use subdesk_aggregates::Actor;
use subdesk_projections::{Projection, ProjectionError, StoredEvent};
use uuid::Uuid;

use crate::command::{CommandBus, CommandError, CommandMeta};

/// Name of the process manager's checkpoint.
pub const NAME: &str = "collection_kept_products";

pub struct KeptProducts {
    bus: Arc<CommandBus<Subscription>>,
}

impl KeptProducts {
    pub fn new(bus: Arc<CommandBus<Subscription>>) -> Self {
        Self { bus }
    }

    /// Creates the standalone subscriptions of one `CollectionCancelled`.
    async fn split(
        &self,
        stored: &StoredEvent,
        cancelled: CollectionCancelled,
    ) -> Result<(), ProjectionError> {
        let Ok(collection_id) = Uuid::parse_str(&stored.aggregate_id) else {
            return Ok(());
        };
        let version = usize::try_from(stored.sequence).unwrap_or_default();
        let (_, collection) = self
            .bus
            .load_at_version(&stored.aggregate_id, version)
            .await
            .map_err(side_effect)?;
        let mut meta = CommandMeta::system(format!("event:{}", stored.position));
        if let Some(correlation) = stored.meta("correlation_id") {
            meta.correlation_id = correlation.to_string();
        }
        for product in cancelled.kept {
            let (id, entitlement_number) = standalone_identity(collection_id, &product);
            let command = SubscriptionCommand::Create(CreateSubscription {
                subscription_id: id,
                entitlement_number,
                org_id: collection.org_id.clone(),
                product: product.clone(),
                plan: collection.plan.clone(),
                seats: collection.seats,
                term_start: cancelled.effective_at,
                term_end: term_end_from(
                    cancelled.effective_at,
                    collection.term_start,
                    collection.term_end,
                ),
                auto_renew: collection.auto_renew,
                channel: collection.channel.clone(),
                billing_account: collection.billing_account.clone(),
                included_products: Vec::new(),
                from_collection: Some(collection_id),
                created_by: Actor::system(),
            });
            match self
                .bus
                .execute(&id.to_string(), command, &meta, None)
                .await
            {
                Ok(_) => {
                    tracing::info!(collection = %collection_id, %product, subscription = %id, "kept product split off as a standalone subscription");
                }
                Err(CommandError::Rejected(SubscriptionError::AlreadyCreated)) => {}
                Err(CommandError::Rejected(error)) => {
                    // A rule refuses it for good (e.g. the term is already over because the
                    // event is processed far too late); retrying cannot change that.
                    tracing::warn!(collection = %collection_id, %product, %error, "kept product not split off");
                }
                Err(error) => return Err(side_effect(error)),
            }
        }
        Ok(())
    }
}

fn side_effect(error: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::SideEffect(error.to_string())
}

/// The id and entitlement number of the standalone subscription that product `product` of
/// collection `collection_id` becomes: a UUID v8 and 60 bits from one sha256.
pub fn standalone_identity(collection_id: Uuid, product: &str) -> (Uuid, String) {
    let digest = Sha256::new()
        .chain_update(b"subdesk/collection-kept-product/")
        .chain_update(collection_id.as_bytes())
        .chain_update(b"/")
        .chain_update(product.to_lowercase().as_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    let mut bits = [0u8; 8];
    bits.copy_from_slice(&digest[16..24]);
    (
        uuid::Builder::from_custom_bytes(id).into_uuid(),
        entitlement::format_number(u64::from_be_bytes(bits)),
    )
}

#[async_trait]
impl Projection for KeptProducts {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Owns no table: its effects are commands, which are idempotent.
    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    /// A process manager issues commands; replaying history must never do that again.
    fn rebuildable(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        _tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for stored in events
            .iter()
            .filter(|e| e.aggregate_type == AGGREGATE_TYPE && e.event_type == "CollectionCancelled")
        {
            if let SubscriptionEvent::CollectionCancelled(cancelled) =
                stored.decode::<Subscription>()?
            {
                if !cancelled.kept.is_empty() {
                    self.split(stored, cancelled).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_collection_and_product_always_give_the_same_subscription() {
        let collection = Uuid::from_u128(42);
        let (a, number_a) = standalone_identity(collection, "jira");
        let (b, number_b) = standalone_identity(collection, "Jira");
        assert_eq!((a, &number_a), (b, &number_b));
        assert!(entitlement::is_valid(&number_a));
        let (other, _) = standalone_identity(collection, "loom");
        assert_ne!(a, other);
        let (elsewhere, _) = standalone_identity(Uuid::from_u128(43), "jira");
        assert_ne!(a, elsewhere);
        assert_eq!(a.get_version_num(), 8);
    }
}
