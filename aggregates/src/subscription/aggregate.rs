//! `Subscription` as a cqrs-es aggregate: `handle` passes a command to the handler of its
//! theme (lifecycle, purchases, cancellation, apps, account), which checks it and writes the
//! events; `apply` folds an event into the state.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use super::commands::SubscriptionCommand;
use super::error::SubscriptionError;
use super::events::*;
use super::services::SubscriptionServices;
use super::state::{
    AppStatus, AppSubscription, ScheduledCancellation, Subscription, SubscriptionStatus,
};

impl Aggregate for Subscription {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    type Error = SubscriptionError;
    type Services = SubscriptionServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use SubscriptionCommand as C;
        match command {
            C::Create(cmd) => self.create(cmd, services, sink).await,
            C::Activate => self.activate(services, sink).await,
            C::ChangeSeats { seats } => self.change_seats(seats, services, sink).await,
            C::PurchaseStorage { gb } => self.purchase_storage(gb, services, sink).await,
            C::ChangePlan { plan } => self.change_plan(plan, services, sink).await,
            C::SetAutoRenew { auto_renew } => self.set_auto_renew(auto_renew, services, sink).await,
            C::Renew => self.renew(services, sink).await,
            C::Expire => self.expire(services, sink).await,
            C::Cancel(cmd) => self.cancel(cmd, services, sink).await,
            C::WithdrawCancellation => self.withdraw_cancellation(services, sink).await,
            C::Reactivate => self.reactivate(services, sink).await,
            C::LinkSite { site } => self.link_site(site, services, sink).await,
            C::AddContact { email } => self.add_contact(email, services, sink).await,
            C::RemoveContact { email } => self.remove_contact(email, services, sink).await,
            C::AddApp(cmd) => self.add_app(cmd, services, sink).await,
            C::CancelApp { app_id } => self.cancel_app(app_id, services, sink).await,
            C::MoveBillingAccount { to } => self.move_billing_account(to, services, sink).await,
            C::PassToOrg { partner_id } => self.pass_to_org(partner_id, services, sink).await,
        }
    }

    fn apply(&mut self, event: Self::Event) {
        use SubscriptionEvent as E;
        match event {
            E::SubscriptionCreated(e) => {
                self.id = Some(e.subscription_id);
                self.entitlement_number = e.entitlement_number;
                self.org_id = e.org_id;
                self.product = e.product;
                self.plan = e.plan;
                self.seats = e.seats;
                self.term_start = e.term_start;
                self.term_end = e.term_end;
                self.auto_renew = e.auto_renew;
                self.channel = e.channel;
                self.billing_account = e.billing_account;
                self.included_products = e.included_products;
                self.from_collection = e.from_collection;
                self.status = SubscriptionStatus::Upcoming;
            }
            E::SubscriptionActivated(_) => self.status = SubscriptionStatus::Active,
            E::SeatsIncreased(e) => {
                self.seats = e.to;
                // The newest choice wins: buying seats drops a reduction scheduled earlier.
                self.scheduled_seats = None;
            }
            E::SeatReductionScheduled(e) => self.scheduled_seats = Some(e.to),
            E::SeatReductionWithdrawn(_) => self.scheduled_seats = None,
            E::StoragePurchased(e) => self.storage_gb = e.total_gb,
            E::PlanChanged(e) => self.plan = e.to,
            E::AutoRenewChanged(e) => self.auto_renew = e.auto_renew,
            E::SubscriptionRenewed(e) => {
                self.term_start = e.term_start;
                self.term_end = e.term_end;
                self.seats = e.seats;
                self.scheduled_seats = None;
            }
            E::SubscriptionExpired(e) => {
                self.status = SubscriptionStatus::Expired;
                self.ended_at = Some(e.term_end);
                self.scheduled_seats = None;
            }
            E::CancellationScheduled(e) => {
                self.status = SubscriptionStatus::NonRenewing;
                self.scheduled_cancellation = Some(ScheduledCancellation {
                    reason: e.reason,
                    keep_products: e.keep_products,
                    by: e.by,
                });
            }
            E::SubscriptionCancelled(e) => {
                self.status = SubscriptionStatus::Cancelled;
                self.ended_at = Some(e.effective_at);
                self.scheduled_cancellation = None;
                self.scheduled_seats = None;
            }
            E::CancellationWithdrawn(_) => {
                self.status = SubscriptionStatus::Active;
                self.scheduled_cancellation = None;
            }
            E::SubscriptionReactivated(e) => {
                self.status = SubscriptionStatus::Active;
                self.term_start = e.term_start;
                self.term_end = e.term_end;
                self.ended_at = None;
            }
            E::SiteLinked(e) => self.site = Some(e.site),
            E::ContactAdded(e) => {
                if !self.contacts.contains(&e.email) {
                    self.contacts.push(e.email);
                }
            }
            E::ContactRemoved(e) => self.contacts.retain(|c| *c != e.email),
            E::AppSubscriptionAdded(e) => self.apps.push(AppSubscription {
                app_id: e.app_id,
                entitlement_number: e.entitlement_number,
                app: e.app,
                plan: e.plan,
                status: AppStatus::Active,
            }),
            E::AppSubscriptionCancelled(e) => {
                if let Some(app) = self.apps.iter_mut().find(|a| a.app_id == e.app_id) {
                    app.status = AppStatus::Cancelled;
                }
            }
            E::BillingAccountChanged(e) => self.billing_account = e.to,
            E::CollectionCancelled(e) => self.kept_products = e.kept,
            E::SubscriptionPassedToOrg(_) => self.passed_to_org = true,
        }
    }
}
