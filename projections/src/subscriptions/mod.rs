//! Subscription list and detail (`subscription_view`, `subscription_apps`), the entitlement
//! contract with support cases (`entitlements`, `partner_customers`, migration V5), and the
//! subscription e-mails of the notifications outbox.
//!
//! ## Notifications: who gets which e-mail
//!
//! "Acting user" is the actor of the event's command when it is a person (an e-mail address;
//! the system principal gets no mail). "Contacts" are the subscription's customer contacts at
//! the time of the event.
//!
//! | event | kind | recipients |
//! |---|---|---|
//! | `SubscriptionCreated` | `purchase_confirmation` | the acting user (the buyer: org admin, partner or admin) |
//! | `SubscriptionCreated` by a customer | `subscription_welcome` | the acting user |
//! | `ContactAdded` | `subscription_welcome` | the new contact (how to reach the portal) |
//! | `SeatsIncreased`, `StoragePurchased`, `AppSubscriptionAdded` | `purchase_confirmation` | contacts and the acting user |
//! | `BillingAccountChanged` | `billing_account_moved` | contacts and the acting user |
//! | `SubscriptionCancelled` | `subscription_cancelled` | contacts and whoever asked for the cancellation |
//! | `SubscriptionCreated` by a partner, `PartnerRelationshipGranted` | `partner_welcome` | the org's contacts (of all its subscriptions; `welcome.rs`) |
//!
//! Rows are inserted with `ON CONFLICT (source_position, kind, recipient) DO NOTHING`, so a
//! rebuild re-derives the same rows instead of sending anything twice.
//!
//! This file is the [`Projection`] impl, which loads the rows a batch touches, folds the events
//! into them and writes them back; `tables` holds the row types and `outbox` the e-mails.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use subdesk_aggregates::subscription::{
    AppCancellationCause, AppStatus, Subscription, SubscriptionEvent, SubscriptionStatus,
    AGGREGATE_TYPE,
};
use subdesk_aggregates::ActorRole;
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::projection::Projection;
use crate::rows;

mod outbox;
mod tables;
mod welcome;

use self::outbox::{contacts_and_actor, describe, mailbox, Outbox};
use self::tables::{AppRow, EntitlementRow, PartnerCustomerRow, ViewRow};

pub struct SubscriptionProjection;

/// Moves the count of subscriptions in force that `view`'s partner holds with its org by
/// `delta` (nothing for a direct subscription). An org is assigned to a partner while it holds
/// at least one subscription sold through that partner (upcoming, active or non-renewing);
/// when the last one ends, so does the partner's access to the org.
fn assign(
    assignments: &mut HashMap<(String, String), PartnerCustomerRow>,
    changed: &mut BTreeSet<(String, String)>,
    view: &ViewRow,
    delta: i32,
) {
    let Some(partner) = &view.partner_id else {
        return;
    };
    let key = (partner.clone(), view.org_id.clone());
    let row = assignments
        .entry(key.clone())
        .or_insert_with(|| PartnerCustomerRow {
            partner_id: partner.clone(),
            org_id: view.org_id.clone(),
            subscriptions: 0,
        });
    row.subscriptions = (row.subscriptions + delta).max(0);
    changed.insert(key);
}
fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn cause_name(cause: AppCancellationCause) -> &'static str {
    match cause {
        AppCancellationCause::Requested => "requested",
        AppCancellationCause::SubscriptionCancelled => "subscription_cancelled",
        AppCancellationCause::SubscriptionExpired => "subscription_expired",
    }
}
#[async_trait]
impl Projection for SubscriptionProjection {
    fn name(&self) -> &'static str {
        "subscriptions"
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[AGGREGATE_TYPE]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "subscription_view",
            "subscription_apps",
            "entitlements",
            "partner_customers",
        ]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::new();
        for event in events.iter().filter(|e| e.aggregate_type == AGGREGATE_TYPE) {
            let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
                continue;
            };
            decoded.push((id, event, event.decode::<Subscription>()?));
        }
        let grants = welcome::grants(events)?;
        if decoded.is_empty() && grants.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut views: HashMap<Uuid, ViewRow> =
            rows::load::<ViewRow, _>(tx, "subscription_view", "id", &ids)
                .await?
                .into_iter()
                .map(|row| (row.id, row))
                .collect();
        let mut apps: HashMap<Uuid, AppRow> =
            rows::load::<AppRow, _>(tx, "subscription_apps", "subscription_id", &ids)
                .await?
                .into_iter()
                .map(|row| (row.app_id, row))
                .collect();
        // Partners whose assignments this batch may change: sellers of new subscriptions, and
        // of the subscriptions that end or come back.
        let mut partners: Vec<String> = decoded
            .iter()
            .filter_map(|(_, _, event)| match event {
                SubscriptionEvent::SubscriptionCreated(e) => {
                    e.channel.partner_id().map(str::to_string)
                }
                _ => None,
            })
            .chain(views.values().filter_map(|view| view.partner_id.clone()))
            .collect();
        partners.sort_unstable();
        partners.dedup();
        let mut assignments: HashMap<(String, String), PartnerCustomerRow> =
            rows::load::<PartnerCustomerRow, _>(tx, "partner_customers", "partner_id", &partners)
                .await?
                .into_iter()
                .map(|row| ((row.partner_id.clone(), row.org_id.clone()), row))
                .collect();
        let mut assignments_changed = BTreeSet::new();
        let mut apps_changed = BTreeSet::new();
        let mut outbox = Outbox::default();
        // Whom a new partner welcomes: the org's contacts at the grant or the sale.
        let welcomed_orgs = grants
            .iter()
            .map(|g| g.org_id.clone())
            .chain(decoded.iter().filter_map(|(_, _, event)| match event {
                SubscriptionEvent::SubscriptionCreated(e) if e.channel.partner_id().is_some() => {
                    Some(e.org_id.clone())
                }
                _ => None,
            }))
            .collect();
        let contacts = welcome::Contacts::load(tx, welcomed_orgs).await?;
        let mut grants = grants.into_iter().peekable();

        for (id, stored, event) in decoded {
            // The grants that came before this event, with the contacts as they were then.
            while let Some(grant) = grants.next_if(|g| g.stored.checkpoint() < stored.checkpoint())
            {
                welcome::queue(&grant, contacts.of(&grant.org_id, &views), &mut outbox);
            }
            if let SubscriptionEvent::SubscriptionCreated(e) = &event {
                let partner_id = e.channel.partner_id().map(str::to_string);
                if let Some(partner) = &partner_id {
                    let key = (partner.clone(), e.org_id.clone());
                    assignments
                        .entry(key.clone())
                        .or_insert_with(|| PartnerCustomerRow {
                            partner_id: partner.clone(),
                            org_id: e.org_id.clone(),
                            subscriptions: 0,
                        })
                        .subscriptions += 1;
                    assignments_changed.insert(key);
                }
                let view = ViewRow {
                    id,
                    entitlement_number: e.entitlement_number.clone(),
                    org_id: e.org_id.clone(),
                    product: e.product.clone(),
                    plan: e.plan.clone(),
                    seats: to_i32(e.seats),
                    scheduled_seats: None,
                    storage_gb: 0,
                    term_start: e.term_start,
                    term_end: e.term_end,
                    auto_renew: e.auto_renew,
                    channel: e.channel.kind().into(),
                    partner_id,
                    billing_account: e.billing_account.clone(),
                    site: None,
                    contacts: Vec::new(),
                    included_products: e.included_products.clone(),
                    kept_products: Vec::new(),
                    from_collection: e.from_collection,
                    status: SubscriptionStatus::Upcoming.as_str().into(),
                    app_count: 0,
                    cancellation_reason: None,
                    cancel_effective_at: None,
                    ended_at: None,
                    created_by: e.created_by.id.clone(),
                    created_at: e.created_at,
                    updated_at: e.created_at,
                    version: stored.sequence,
                };
                let buyer = mailbox(Some(&e.created_by.id));
                outbox.send(
                    stored,
                    "purchase_confirmation",
                    buyer.clone(),
                    format!("Purchase confirmation: {}", e.product),
                    format!(
                        "Your order of {} is confirmed: {} seats, term {} to {}.",
                        describe(&view),
                        e.seats,
                        e.term_start.date_naive(),
                        e.term_end.date_naive()
                    ),
                );
                if let Some(partner) = e.channel.partner_id() {
                    let sale = welcome::Welcome {
                        stored,
                        org_id: e.org_id.clone(),
                        partner_id: partner.to_string(),
                        reason: welcome::Reason::Sold(describe(&view)),
                    };
                    welcome::queue(&sale, contacts.of(&e.org_id, &views), &mut outbox);
                }
                if e.created_by.role == ActorRole::Customer {
                    outbox.send(
                        stored,
                        "subscription_welcome",
                        buyer,
                        format!("Welcome to your {} subscription", e.product),
                        format!(
                            "Your subscription {} is set up. Sign in to the portal to link \
                             a site and add contacts.",
                            describe(&view)
                        ),
                    );
                }
                views.insert(id, view);
                continue;
            }
            let Some(view) = views.get_mut(&id) else {
                // An event of a subscription whose creation this read model never saw: the
                // log is corrupt or was truncated; skipping keeps the other streams current.
                tracing::warn!(subscription = %id, position = stored.position, "event without its SubscriptionCreated");
                continue;
            };
            view.version = stored.sequence;
            view.updated_at = stored.recorded_at;
            match event {
                SubscriptionEvent::SubscriptionCreated(_) => {}
                SubscriptionEvent::SubscriptionActivated(_) => {
                    view.status = SubscriptionStatus::Active.as_str().into();
                }
                SubscriptionEvent::SeatsIncreased(e) => {
                    view.seats = to_i32(e.to);
                    view.scheduled_seats = None;
                    outbox.send(
                        stored,
                        "purchase_confirmation",
                        contacts_and_actor(view, stored),
                        format!("Purchase confirmation: {} more seats", e.to - e.from),
                        format!(
                            "{} now has {} seats (was {}).",
                            describe(view),
                            e.to,
                            e.from
                        ),
                    );
                }
                SubscriptionEvent::SeatReductionScheduled(e) => {
                    view.scheduled_seats = Some(to_i32(e.to));
                }
                SubscriptionEvent::SeatReductionWithdrawn(_) => view.scheduled_seats = None,
                SubscriptionEvent::StoragePurchased(e) => {
                    view.storage_gb = to_i32(e.total_gb);
                    outbox.send(
                        stored,
                        "purchase_confirmation",
                        contacts_and_actor(view, stored),
                        format!("Purchase confirmation: {} GB of storage", e.gb),
                        format!(
                            "{} now has {} GB of additional storage.",
                            describe(view),
                            e.total_gb
                        ),
                    );
                }
                SubscriptionEvent::PlanChanged(e) => view.plan = e.to,
                SubscriptionEvent::AutoRenewChanged(e) => view.auto_renew = e.auto_renew,
                SubscriptionEvent::SubscriptionRenewed(e) => {
                    view.term_start = e.term_start;
                    view.term_end = e.term_end;
                    view.seats = to_i32(e.seats);
                    view.scheduled_seats = None;
                }
                SubscriptionEvent::SubscriptionExpired(e) => {
                    assign(&mut assignments, &mut assignments_changed, view, -1);
                    view.status = SubscriptionStatus::Expired.as_str().into();
                    view.ended_at = Some(e.term_end);
                    view.scheduled_seats = None;
                }
                SubscriptionEvent::CancellationScheduled(e) => {
                    view.status = SubscriptionStatus::NonRenewing.as_str().into();
                    view.cancellation_reason = Some(e.reason);
                    view.cancel_effective_at = Some(e.effective_at);
                }
                SubscriptionEvent::SubscriptionCancelled(e) => {
                    assign(&mut assignments, &mut assignments_changed, view, -1);
                    view.status = SubscriptionStatus::Cancelled.as_str().into();
                    view.cancellation_reason = Some(e.reason);
                    view.cancel_effective_at = Some(e.effective_at);
                    view.ended_at = Some(e.effective_at);
                    view.scheduled_seats = None;
                    let mut recipients = view.contacts.clone();
                    recipients.extend(mailbox(Some(&e.by.id)));
                    outbox.send(
                        stored,
                        "subscription_cancelled",
                        recipients,
                        format!("Your {} subscription is cancelled", view.product),
                        format!(
                            "{} was cancelled as of {}; its apps were cancelled with it.",
                            describe(view),
                            e.effective_at
                        ),
                    );
                }
                SubscriptionEvent::CancellationWithdrawn(_) => {
                    view.status = SubscriptionStatus::Active.as_str().into();
                    view.cancellation_reason = None;
                    view.cancel_effective_at = None;
                }
                SubscriptionEvent::SubscriptionReactivated(e) => {
                    assign(&mut assignments, &mut assignments_changed, view, 1);
                    view.status = SubscriptionStatus::Active.as_str().into();
                    view.term_start = e.term_start;
                    view.term_end = e.term_end;
                    view.cancellation_reason = None;
                    view.cancel_effective_at = None;
                    view.ended_at = None;
                }
                SubscriptionEvent::SiteLinked(e) => view.site = Some(e.site),
                SubscriptionEvent::ContactAdded(e) => {
                    if !view.contacts.contains(&e.email) {
                        view.contacts.push(e.email.clone());
                    }
                    outbox.send(
                        stored,
                        "subscription_welcome",
                        [e.email],
                        format!("You are a contact for {}", view.product),
                        format!(
                            "You were added as a customer contact of {}. Sign in to the \
                             portal to see the subscription.",
                            describe(view)
                        ),
                    );
                }
                SubscriptionEvent::ContactRemoved(e) => view.contacts.retain(|c| *c != e.email),
                SubscriptionEvent::AppSubscriptionAdded(e) => {
                    outbox.send(
                        stored,
                        "purchase_confirmation",
                        contacts_and_actor(view, stored),
                        format!("Purchase confirmation: {}", e.app),
                        format!(
                            "The app {} ({} plan, entitlement {}) was added to {}.",
                            e.app,
                            e.plan,
                            e.entitlement_number,
                            describe(view)
                        ),
                    );
                    apps_changed.insert(e.app_id);
                    apps.insert(
                        e.app_id,
                        AppRow {
                            app_id: e.app_id,
                            subscription_id: id,
                            entitlement_number: e.entitlement_number,
                            app: e.app,
                            plan: e.plan,
                            status: AppStatus::Active.as_str().into(),
                            cause: None,
                            added_at: e.at,
                            cancelled_at: None,
                        },
                    );
                }
                SubscriptionEvent::AppSubscriptionCancelled(e) => {
                    if let Some(app) = apps.get_mut(&e.app_id) {
                        app.status = AppStatus::Cancelled.as_str().into();
                        app.cause = Some(cause_name(e.cause).into());
                        app.cancelled_at = Some(e.at);
                        apps_changed.insert(e.app_id);
                    }
                }
                SubscriptionEvent::BillingAccountChanged(e) => {
                    view.billing_account = e.to.clone();
                    outbox.send(
                        stored,
                        "billing_account_moved",
                        contacts_and_actor(view, stored),
                        format!("Your {} subscription moved billing accounts", view.product),
                        format!(
                            "{} moved from billing account {} to {}.",
                            describe(view),
                            e.from,
                            e.to
                        ),
                    );
                }
                SubscriptionEvent::CollectionCancelled(e) => view.kept_products = e.kept,
                SubscriptionEvent::SubscriptionPassedToOrg(_) => {
                    // `partner_id` names the partner that manages the subscription; `channel`
                    // keeps saying how it was sold.
                    let status = view.status.as_str();
                    if status != SubscriptionStatus::Cancelled.as_str()
                        && status != SubscriptionStatus::Expired.as_str()
                    {
                        assign(&mut assignments, &mut assignments_changed, view, -1);
                    }
                    view.partner_id = None;
                }
            }
        }

        // Derived columns and the entitlement contract, from the folded rows.
        let mut apps_of: HashMap<Uuid, Vec<&AppRow>> = HashMap::new();
        for app in apps.values() {
            apps_of.entry(app.subscription_id).or_default().push(app);
        }
        let mut entitlements = Vec::new();
        for view in views.values_mut() {
            let mut active_apps = 0;
            for app in apps_of.get(&view.id).into_iter().flatten() {
                let active = app.status == AppStatus::Active.as_str();
                active_apps += i32::from(active);
                entitlements.push(EntitlementRow {
                    number: app.entitlement_number.clone(),
                    subscription_id: view.id,
                    app_id: Some(app.app_id),
                    org_id: view.org_id.clone(),
                    product: app.app.clone(),
                    status: if active {
                        view.status.clone()
                    } else {
                        AppStatus::Cancelled.as_str().into()
                    },
                    partner_id: view.partner_id.clone(),
                });
            }
            view.app_count = active_apps;
            entitlements.push(EntitlementRow {
                number: view.entitlement_number.clone(),
                subscription_id: view.id,
                app_id: None,
                org_id: view.org_id.clone(),
                product: view.product.clone(),
                status: view.status.clone(),
                partner_id: view.partner_id.clone(),
            });
        }
        for grant in grants {
            welcome::queue(&grant, contacts.of(&grant.org_id, &views), &mut outbox);
        }
        let views: Vec<ViewRow> = views.into_values().collect();
        let apps: Vec<AppRow> = apps
            .into_values()
            .filter(|a| apps_changed.contains(&a.app_id))
            .collect();
        let assignments: Vec<PartnerCustomerRow> = assignments
            .into_iter()
            .filter(|(key, _)| assignments_changed.contains(key))
            .map(|(_, row)| row)
            .collect();
        rows::upsert(tx, "subscription_view", &["id"], &views).await?;
        rows::upsert(tx, "subscription_apps", &["app_id"], &apps).await?;
        rows::upsert(tx, "entitlements", &["number"], &entitlements).await?;
        rows::upsert(
            tx,
            "partner_customers",
            &["partner_id", "org_id"],
            &assignments,
        )
        .await?;
        outbox.write(tx).await?;
        Ok(())
    }
}
