//! What the customer buys while the subscription is in force: seats (more now, fewer at
//! renewal), storage, the plan, and whether it renews at all.

use cqrs_es::event_sink::EventSink;

use super::checks::{required, MAX_SEATS, MAX_STORAGE_GB};
use super::error::SubscriptionError;
use super::events::*;
use super::services::SubscriptionServices;
use super::state::{Subscription, SubscriptionStatus};

impl Subscription {
    pub(super) async fn change_seats(
        &mut self,
        seats: u32,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_in_force()?;
        if seats < 1 {
            return Err(SubscriptionError::InvalidSeats);
        }
        if seats > MAX_SEATS {
            return Err(SubscriptionError::TooManySeats(MAX_SEATS));
        }
        let at = services.clock.now();
        let event = if seats > self.seats {
            SubscriptionEvent::SeatsIncreased(SeatsIncreased {
                from: self.seats,
                to: seats,
                at,
            })
        } else if seats < self.seats {
            if self.status == SubscriptionStatus::NonRenewing {
                return Err(SubscriptionError::WillNotRenew);
            }
            if self.scheduled_seats == Some(seats) {
                return Ok(());
            }
            SubscriptionEvent::SeatReductionScheduled(SeatReductionScheduled {
                from: self.seats,
                to: seats,
                effective_at: self.term_end,
                at,
            })
        } else if self.scheduled_seats.is_some() {
            SubscriptionEvent::SeatReductionWithdrawn(SeatReductionWithdrawn { seats, at })
        } else {
            return Ok(());
        };
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn purchase_storage(
        &mut self,
        gb: u32,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_in_force()?;
        if gb > MAX_STORAGE_GB {
            return Err(SubscriptionError::TooMuchStorage(MAX_STORAGE_GB));
        }
        let total_gb = self
            .storage_gb
            .checked_add(gb)
            .filter(|_| gb > 0)
            .ok_or(SubscriptionError::InvalidStorage)?;
        let event = SubscriptionEvent::StoragePurchased(StoragePurchased {
            gb,
            total_gb,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn change_plan(
        &mut self,
        plan: String,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_in_force()?;
        let plan = required("plan", &plan)?;
        if plan == self.plan {
            return Ok(());
        }
        let event = SubscriptionEvent::PlanChanged(PlanChanged {
            from: self.plan.clone(),
            to: plan,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn set_auto_renew(
        &mut self,
        auto_renew: bool,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        if auto_renew == self.auto_renew {
            return Ok(());
        }
        let event = SubscriptionEvent::AutoRenewChanged(AutoRenewChanged {
            auto_renew,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }
}
