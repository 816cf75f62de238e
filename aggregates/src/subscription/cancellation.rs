//! Cancellation: scheduled at term end or taking effect now, withdrawn while only scheduled,
//! and what a cancellation that takes effect brings with it (apps, kept collection products).

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;

use super::commands::CancelSubscription;
use super::error::SubscriptionError;
use super::events::*;
use super::services::SubscriptionServices;
use super::state::{Subscription, SubscriptionStatus};
use crate::Actor;

impl Subscription {
    pub(super) async fn cancel(
        &mut self,
        cmd: CancelSubscription,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        let mut keep_products: Vec<String> = Vec::new();
        for product in &cmd.keep_products {
            let product = product.trim();
            if !self.is_collection() {
                return Err(SubscriptionError::NotACollection);
            }
            let included = self
                .included_products
                .iter()
                .find(|p| p.eq_ignore_ascii_case(product))
                .ok_or_else(|| SubscriptionError::ProductNotIncluded(product.to_string()))?;
            if !keep_products.contains(included) {
                keep_products.push(included.clone());
            }
        }
        let reason = cmd.reason.trim().to_string();
        let now = services.clock.now();
        match cmd.effective {
            CancelEffective::AtTermEnd => {
                match self.status {
                    SubscriptionStatus::Upcoming => {
                        return Err(SubscriptionError::UpcomingCancelledAtTermEnd)
                    }
                    SubscriptionStatus::NonRenewing => {
                        return Err(SubscriptionError::CancellationAlreadyScheduled)
                    }
                    _ => {}
                }
                let event = SubscriptionEvent::CancellationScheduled(CancellationScheduled {
                    effective_at: self.term_end,
                    reason,
                    keep_products,
                    by: cmd.by,
                    at: now,
                });
                sink.write(event, self).await;
            }
            CancelEffective::Immediately => {
                self.end_by_cancellation(
                    CancelEffective::Immediately,
                    now,
                    reason,
                    keep_products,
                    cmd.by,
                    now,
                    sink,
                )
                .await;
            }
        }
        Ok(())
    }

    /// A cancellation takes effect: the subscription, then every active app, then (for a
    /// collection) which products live on. One command, so one commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn end_by_cancellation(
        &mut self,
        effective: CancelEffective,
        effective_at: DateTime<Utc>,
        reason: String,
        kept: Vec<String>,
        by: Actor,
        now: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) {
        let cancelled = SubscriptionEvent::SubscriptionCancelled(SubscriptionCancelled {
            reason,
            effective,
            effective_at,
            by,
            at: now,
        });
        sink.write(cancelled, self).await;
        self.cancel_apps(AppCancellationCause::SubscriptionCancelled, now, sink)
            .await;
        if self.is_collection() {
            let event = SubscriptionEvent::CollectionCancelled(CollectionCancelled {
                included_products: self.included_products.clone(),
                kept,
                effective_at,
                at: now,
            });
            sink.write(event, self).await;
        }
    }

    pub(super) async fn withdraw_cancellation(
        &mut self,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        if self.status != SubscriptionStatus::NonRenewing {
            return Err(SubscriptionError::NoCancellationScheduled);
        }
        let now = services.clock.now();
        if now >= self.term_end {
            return Err(SubscriptionError::TermEnded);
        }
        let event = SubscriptionEvent::CancellationWithdrawn(CancellationWithdrawn { at: now });
        sink.write(event, self).await;
        Ok(())
    }
}
