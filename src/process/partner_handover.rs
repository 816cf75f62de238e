//! Partner hand-over: when a partner's relationship with an org ends, every subscription that
//! partner sold to the org passes to the org's side (`SubscriptionPassedToOrg`), so none is
//! left with an owner who can no longer reach it.
//!
//! The process manager remembers each partner sale (`partner_sales`, written in its batch's
//! transaction) and, on `PartnerRelationshipEnded`, issues `PassToOrg` for each of them. A sale
//! it learns of while the pair has no active relationship (one that raced with the end, or
//! one made before relationships existed without a subscription in force) is handed over at
//! once. `PassToOrg` changes nothing on a subscription that partner no longer manages, so a
//! re-delivered batch is harmless.
//!
//! Before its first batch it runs the upgrade step
//! [`grant_for_past_sales`](crate::relationships::grant_for_past_sales), so that partners with
//! subscriptions in force keep their orgs instead of having them handed over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use subdesk_aggregates::partner_relationship::{
    PartnerRelationship, PartnerRelationshipEvent, AGGREGATE_TYPE as RELATIONSHIP,
};
use subdesk_aggregates::subscription::{
    Subscription, SubscriptionCommand, SubscriptionEvent, AGGREGATE_TYPE as SUBSCRIPTION,
};
use subdesk_projections::{Projection, ProjectionError, StoredEvent};
use uuid::Uuid;

use crate::command::{CommandBus, CommandError, CommandMeta};

/// Name of the process manager's checkpoint.
pub const NAME: &str = "partner_handover";

pub struct PartnerHandover {
    subscriptions: Arc<CommandBus<Subscription>>,
    relationships: Arc<CommandBus<PartnerRelationship>>,
    /// The upgrade step is known to be done (saves a query per batch).
    upgraded: AtomicBool,
}

impl PartnerHandover {
    pub fn new(
        subscriptions: Arc<CommandBus<Subscription>>,
        relationships: Arc<CommandBus<PartnerRelationship>>,
    ) -> Self {
        Self {
            subscriptions,
            relationships,
            upgraded: AtomicBool::new(false),
        }
    }

    /// Passes subscription `id` to its org's side, caused by `stored`.
    async fn pass(
        &self,
        stored: &StoredEvent,
        id: Uuid,
        partner_id: &str,
    ) -> Result<(), ProjectionError> {
        let mut meta = CommandMeta::system(format!("event:{}", stored.position));
        if let Some(correlation) = stored.meta("correlation_id") {
            meta.correlation_id = correlation.to_string();
        }
        let command = SubscriptionCommand::PassToOrg {
            partner_id: partner_id.to_string(),
        };
        match self
            .subscriptions
            .execute(&id.to_string(), command, &meta, None)
            .await
        {
            Ok(outcome) => {
                if outcome.appended > 0 {
                    tracing::info!(subscription = %id, partner = partner_id, "subscription passed to its org");
                }
                Ok(())
            }
            Err(CommandError::Rejected(error)) => {
                tracing::warn!(subscription = %id, %error, "subscription not passed to its org");
                Ok(())
            }
            Err(error) => Err(side_effect(error)),
        }
    }
}

fn side_effect(error: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::SideEffect(error.to_string())
}

#[async_trait]
impl Projection for PartnerHandover {
    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[SUBSCRIPTION, RELATIONSHIP]
    }

    /// Owns no read model: `partner_sales` is its memory, and its effects are commands.
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    /// A process manager issues commands; replaying history must never do that again.
    fn rebuildable(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        if !self.upgraded.load(Ordering::Relaxed) {
            crate::relationships::grant_for_past_sales(
                &**tx,
                &self.subscriptions,
                &self.relationships,
            )
            .await
            .map_err(side_effect)?;
            self.upgraded.store(true, Ordering::Relaxed);
        }
        for stored in events {
            match (stored.aggregate_type.as_str(), stored.event_type.as_str()) {
                (SUBSCRIPTION, "SubscriptionCreated") => {
                    let SubscriptionEvent::SubscriptionCreated(created) =
                        stored.decode::<Subscription>()?
                    else {
                        continue;
                    };
                    let Some(partner) = created.channel.partner_id() else {
                        continue;
                    };
                    tx.execute(
                        "INSERT INTO partner_sales (org_id, partner_id, subscription_id) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&created.org_id, &partner, &created.subscription_id],
                    )
                    .await?;
                    let active = crate::relationships::find(&**tx, &created.org_id, partner)
                        .await?
                        .is_some_and(|r| r.is_active());
                    if !active {
                        self.pass(stored, created.subscription_id, partner).await?;
                    }
                }
                (RELATIONSHIP, "PartnerRelationshipEnded") => {
                    let PartnerRelationshipEvent::PartnerRelationshipEnded(ended) =
                        stored.decode::<PartnerRelationship>()?
                    else {
                        continue;
                    };
                    let sold: Vec<Uuid> = tx
                        .query(
                            "SELECT subscription_id FROM partner_sales \
                              WHERE org_id = $1 AND partner_id = $2 ORDER BY subscription_id",
                            &[&ended.org_id, &ended.partner_id],
                        )
                        .await?
                        .iter()
                        .map(|row| row.try_get("subscription_id"))
                        .collect::<Result<_, _>>()?;
                    for id in sold {
                        self.pass(stored, id, &ended.partner_id).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
