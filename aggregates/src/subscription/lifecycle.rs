//! A subscription's life from creation to the end of its term and back: creation,
//! activation at term start, renewal or expiry at term end, reactivation after it ended.

use cqrs_es::event_sink::EventSink;

use super::checks::{required, MAX_SEATS};
use super::commands::CreateSubscription;
use super::entitlement;
use super::error::SubscriptionError;
use super::events::*;
use super::services::SubscriptionServices;
use super::state::{Subscription, SubscriptionStatus};
use super::term::{next_term, term_end_from};

impl Subscription {
    pub(super) async fn create(
        &mut self,
        cmd: CreateSubscription,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        if self.exists() {
            return Err(SubscriptionError::AlreadyCreated);
        }
        let org_id = required("org_id", &cmd.org_id)?;
        let product = required("product", &cmd.product)?;
        let plan = required("plan", &cmd.plan)?;
        let billing_account = required("billing_account", &cmd.billing_account)?;
        let channel = match cmd.channel {
            Channel::Direct => Channel::Direct,
            Channel::Partner { partner_id } => Channel::Partner {
                partner_id: required("partner_id", &partner_id)?,
            },
        };
        if cmd.seats < 1 {
            return Err(SubscriptionError::InvalidSeats);
        }
        if cmd.seats > MAX_SEATS {
            return Err(SubscriptionError::TooManySeats(MAX_SEATS));
        }
        if cmd.term_end <= cmd.term_start {
            return Err(SubscriptionError::InvalidTerm);
        }
        let now = services.clock.now();
        if cmd.term_end <= now {
            return Err(SubscriptionError::TermAlreadyOver);
        }
        let max_term = services.policy.max_term;
        if cmd.term_end - cmd.term_start > max_term
            || cmd.term_start < now - max_term
            || cmd.term_start > now + max_term
        {
            return Err(SubscriptionError::TermOutOfBounds(max_term.num_days()));
        }
        if !entitlement::is_valid(&cmd.entitlement_number) {
            return Err(SubscriptionError::InvalidEntitlementNumber);
        }
        let mut included_products = Vec::with_capacity(cmd.included_products.len());
        let mut seen = std::collections::HashSet::new();
        for included in &cmd.included_products {
            let included = included.trim().to_string();
            if included.is_empty()
                || included.eq_ignore_ascii_case(&product)
                || !seen.insert(included.to_lowercase())
            {
                return Err(SubscriptionError::InvalidIncludedProducts);
            }
            included_products.push(included);
        }
        let term_start = cmd.term_start;
        let created = SubscriptionEvent::SubscriptionCreated(SubscriptionCreated {
            subscription_id: cmd.subscription_id,
            entitlement_number: cmd.entitlement_number,
            org_id,
            product,
            plan,
            seats: cmd.seats,
            term_start,
            term_end: cmd.term_end,
            auto_renew: cmd.auto_renew,
            channel,
            billing_account,
            included_products,
            from_collection: cmd.from_collection,
            created_by: cmd.created_by,
            created_at: now,
        });
        sink.write(created, self).await;
        if term_start <= now {
            let activated = SubscriptionEvent::SubscriptionActivated(SubscriptionActivated {
                term_start,
                at: now,
            });
            sink.write(activated, self).await;
        }
        Ok(())
    }

    pub(super) async fn activate(
        &mut self,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_exists()?;
        if self.status != SubscriptionStatus::Upcoming {
            return Err(SubscriptionError::NotUpcoming);
        }
        let now = services.clock.now();
        if now < self.term_start {
            return Err(SubscriptionError::TermNotStarted(self.term_start));
        }
        let event = SubscriptionEvent::SubscriptionActivated(SubscriptionActivated {
            term_start: self.term_start,
            at: now,
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn renew(
        &mut self,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_in_force()?;
        if self.status == SubscriptionStatus::NonRenewing {
            return Err(SubscriptionError::WillNotRenew);
        }
        let now = services.clock.now();
        if now < self.term_end {
            return Err(SubscriptionError::TermNotEnded(self.term_end));
        }
        if !self.auto_renew {
            return Err(SubscriptionError::AutoRenewOff);
        }
        let (term_start, term_end) = next_term(self.term_start, self.term_end);
        let event = SubscriptionEvent::SubscriptionRenewed(SubscriptionRenewed {
            term_start,
            term_end,
            seats: self.scheduled_seats.unwrap_or(self.seats),
            seats_before: self.seats,
            at: now,
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn expire(
        &mut self,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_in_force()?;
        let now = services.clock.now();
        if now < self.term_end {
            return Err(SubscriptionError::TermNotEnded(self.term_end));
        }
        match self.scheduled_cancellation.clone() {
            Some(scheduled) => {
                let ends = self.term_end;
                self.end_by_cancellation(
                    CancelEffective::AtTermEnd,
                    ends,
                    scheduled.reason,
                    scheduled.keep_products,
                    scheduled.by,
                    now,
                    sink,
                )
                .await;
            }
            None if self.auto_renew => return Err(SubscriptionError::WillRenew),
            None => {
                let event = SubscriptionEvent::SubscriptionExpired(SubscriptionExpired {
                    term_end: self.term_end,
                    at: now,
                });
                sink.write(event, self).await;
                self.cancel_apps(AppCancellationCause::SubscriptionExpired, now, sink)
                    .await;
            }
        }
        Ok(())
    }

    pub(super) async fn reactivate(
        &mut self,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_exists()?;
        if !self.status.ended() {
            return Err(SubscriptionError::NotEnded);
        }
        let now = services.clock.now();
        let window = services.policy.reactivation_window;
        let ended_at = self.ended_at.unwrap_or(self.term_end);
        if now - ended_at > window {
            return Err(SubscriptionError::ReactivationWindowPassed(
                window.num_days(),
            ));
        }
        if !self.kept_products.is_empty() {
            return Err(SubscriptionError::CollectionSplit);
        }
        // A subscription cancelled mid-term picks its term up again; one whose term is over
        // starts a new term of the same length now.
        let (term_start, term_end) = if self.term_end > now {
            (self.term_start, self.term_end)
        } else {
            (now, term_end_from(now, self.term_start, self.term_end))
        };
        let event = SubscriptionEvent::SubscriptionReactivated(SubscriptionReactivated {
            term_start,
            term_end,
            at: now,
        });
        sink.write(event, self).await;
        Ok(())
    }
}
