//! Who and where: the site the subscription is used on, its contacts, its billing account,
//! and which side manages it once its selling partner is gone.

use cqrs_es::event_sink::EventSink;

use super::checks::{normalize_email, required};
use super::error::SubscriptionError;
use super::events::*;
use super::services::SubscriptionServices;
use super::state::Subscription;

impl Subscription {
    pub(super) async fn link_site(
        &mut self,
        site: String,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        let site = site.trim().to_string();
        if site.is_empty() || site.chars().count() > 2048 {
            return Err(SubscriptionError::InvalidSite);
        }
        if self.site.as_deref() == Some(site.as_str()) {
            return Ok(());
        }
        let event = SubscriptionEvent::SiteLinked(SiteLinked {
            site,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn add_contact(
        &mut self,
        email: String,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        let email = normalize_email(&email)?;
        if self.contacts.contains(&email) {
            return Ok(());
        }
        let max = services.policy.max_contacts;
        if self.contacts.len() >= max {
            return Err(SubscriptionError::TooManyContacts(max));
        }
        let event = SubscriptionEvent::ContactAdded(ContactAdded {
            email,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn remove_contact(
        &mut self,
        email: String,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        let normalized = email.trim().to_lowercase();
        if !self.contacts.contains(&normalized) {
            return Err(SubscriptionError::ContactNotFound(email.trim().to_string()));
        }
        let event = SubscriptionEvent::ContactRemoved(ContactRemoved {
            email: normalized,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn move_billing_account(
        &mut self,
        to: String,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        let to = required("billing_account", &to)?;
        if to == self.billing_account {
            return Ok(());
        }
        let event = SubscriptionEvent::BillingAccountChanged(BillingAccountChanged {
            from: self.billing_account.clone(),
            to,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    pub(super) async fn pass_to_org(
        &mut self,
        partner_id: String,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_exists()?;
        if self.managing_partner() != Some(partner_id.as_str()) {
            return Ok(());
        }
        let event = SubscriptionEvent::SubscriptionPassedToOrg(SubscriptionPassedToOrg {
            partner_id,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }
}
