use chrono::{DateTime, Datelike, Months, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::SubscriptionCommand;
use super::commands::{AddApp, CancelEffective, CancelSubscription, CreateSubscription};
use super::entitlement;
use super::error::SubscriptionError;
use super::events::*;
use super::SubscriptionServices;
use crate::Actor;

/// Most seats a subscription has.
pub const MAX_SEATS: u32 = 1_000_000;
/// Most storage bought at once, in GB.
pub const MAX_STORAGE_GB: u32 = 1_000_000;

/// Where a subscription stands. Snake case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// The term starts in the future.
    #[default]
    Upcoming,
    Active,
    /// A cancellation is scheduled at term end.
    NonRenewing,
    Cancelled,
    Expired,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upcoming => "upcoming",
            Self::Active => "active",
            Self::NonRenewing => "non_renewing",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// In force: the portal's "active" tab, and what support entitlements require.
    pub fn in_force(self) -> bool {
        matches!(self, Self::Active | Self::NonRenewing)
    }

    /// The portal's "inactive" tab: only reactivation changes an ended subscription.
    pub fn ended(self) -> bool {
        matches!(self, Self::Cancelled | Self::Expired)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    #[default]
    Active,
    Cancelled,
}

impl AppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cancelled => "cancelled",
        }
    }
}

/// An app installed on the subscription's product, billed as its own subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSubscription {
    pub app_id: Uuid,
    pub entitlement_number: String,
    pub app: String,
    pub plan: String,
    pub status: AppStatus,
}

/// A cancellation scheduled at term end, remembered until it takes effect or is withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledCancellation {
    pub reason: String,
    pub keep_products: Vec<String>,
    pub by: Actor,
}

/// The write-side state of one subscription: what the rules need to decide, and what command
/// responses and access checks read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: Option<Uuid>,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: u32,
    /// Seats from the next renewal on, when a reduction is scheduled.
    pub scheduled_seats: Option<u32>,
    pub storage_gb: u32,
    pub term_start: DateTime<Utc>,
    pub term_end: DateTime<Utc>,
    pub auto_renew: bool,
    pub channel: Channel,
    pub billing_account: String,
    pub site: Option<String>,
    pub contacts: Vec<String>,
    pub apps: Vec<AppSubscription>,
    pub included_products: Vec<String>,
    pub from_collection: Option<Uuid>,
    pub status: SubscriptionStatus,
    pub scheduled_cancellation: Option<ScheduledCancellation>,
    /// When the subscription stopped being in force (start of the reactivation window).
    pub ended_at: Option<DateTime<Utc>>,
    /// Products of a cancelled collection that live on as standalone subscriptions.
    pub kept_products: Vec<String>,
    /// The selling partner's relationship with the org ended and the org's side owns it now.
    #[serde(default)]
    pub passed_to_org: bool,
}

/// The end of a term that starts at `from` and is as long as `start..end`. A term of whole
/// calendar months (a month, a year) stays whole months, so a yearly subscription renews on
/// the same date every year, leap years included; any other term keeps its exact duration.
pub fn term_end_from(
    from: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> DateTime<Utc> {
    let months = (end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32;
    if let Ok(months) = u32::try_from(months) {
        if months > 0 && start.checked_add_months(Months::new(months)) == Some(end) {
            if let Some(next) = from.checked_add_months(Months::new(months)) {
                return next;
            }
        }
    }
    from + (end - start)
}

/// The term that follows `start..end`.
pub fn next_term(start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (end, term_end_from(end, start, end))
}

fn required(field: &'static str, value: &str) -> Result<String, SubscriptionError> {
    let value = value.trim();
    if value.is_empty() {
        Err(SubscriptionError::Required(field))
    } else {
        Ok(value.to_string())
    }
}

/// A contact address, lower-cased, or `InvalidEmail`.
fn normalize_email(email: &str) -> Result<String, SubscriptionError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(SubscriptionError::InvalidEmail)
    }
}

impl Subscription {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// A collection bundles products; it is cancelled only by its partner (or an admin).
    pub fn is_collection(&self) -> bool {
        !self.included_products.is_empty()
    }

    /// The partner that manages the subscription: the selling partner, until the subscription
    /// passed to the org's side.
    pub fn managing_partner(&self) -> Option<&str> {
        self.channel.partner_id().filter(|_| !self.passed_to_org)
    }

    async fn pass_to_org(
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

    pub fn active_apps(&self) -> impl Iterator<Item = &AppSubscription> {
        self.apps.iter().filter(|a| a.status == AppStatus::Active)
    }

    fn ensure_exists(&self) -> Result<(), SubscriptionError> {
        if self.exists() {
            Ok(())
        } else {
            Err(SubscriptionError::NotFound)
        }
    }

    /// Exists and has not ended: anything but reactivation may still change it.
    fn ensure_not_ended(&self) -> Result<(), SubscriptionError> {
        self.ensure_exists()?;
        if self.status.ended() {
            Err(SubscriptionError::Ended)
        } else {
            Ok(())
        }
    }

    /// Active or non-renewing: what "the subscription is active" means for purchases.
    fn ensure_in_force(&self) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        if self.status.in_force() {
            Ok(())
        } else {
            Err(SubscriptionError::NotActive)
        }
    }

    async fn create(
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

    async fn activate(
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

    async fn change_seats(
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

    async fn purchase_storage(
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

    async fn change_plan(
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

    async fn set_auto_renew(
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

    async fn renew(
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

    async fn expire(
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

    async fn cancel(
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
    async fn end_by_cancellation(
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

    async fn cancel_apps(
        &mut self,
        cause: AppCancellationCause,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) {
        let apps: Vec<(Uuid, String)> = self
            .active_apps()
            .map(|a| (a.app_id, a.entitlement_number.clone()))
            .collect();
        for (app_id, entitlement_number) in apps {
            let event = SubscriptionEvent::AppSubscriptionCancelled(AppSubscriptionCancelled {
                app_id,
                entitlement_number,
                cause,
                at,
            });
            sink.write(event, self).await;
        }
    }

    async fn withdraw_cancellation(
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

    async fn reactivate(
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

    async fn link_site(
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

    async fn add_contact(
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

    async fn remove_contact(
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

    async fn add_app(
        &mut self,
        cmd: AddApp,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_in_force()?;
        let app = required("app", &cmd.app)?;
        let plan = required("plan", &cmd.plan)?;
        if !entitlement::is_valid(&cmd.entitlement_number) {
            return Err(SubscriptionError::InvalidEntitlementNumber);
        }
        if self.apps.iter().any(|a| a.app_id == cmd.app_id) {
            return Err(SubscriptionError::AppAlreadyAdded);
        }
        if cmd.entitlement_number == self.entitlement_number
            || self
                .apps
                .iter()
                .any(|a| a.entitlement_number == cmd.entitlement_number)
        {
            return Err(SubscriptionError::DuplicateEntitlementNumber);
        }
        if self.active_apps().any(|a| a.app.eq_ignore_ascii_case(&app)) {
            return Err(SubscriptionError::AppAlreadyInstalled(app));
        }
        let event = SubscriptionEvent::AppSubscriptionAdded(AppSubscriptionAdded {
            app_id: cmd.app_id,
            entitlement_number: cmd.entitlement_number,
            app,
            plan,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    async fn cancel_app(
        &mut self,
        app_id: Uuid,
        services: &SubscriptionServices,
        sink: &EventSink<Self>,
    ) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        let app = self
            .apps
            .iter()
            .find(|a| a.app_id == app_id)
            .ok_or(SubscriptionError::AppNotFound)?;
        if app.status == AppStatus::Cancelled {
            return Err(SubscriptionError::AppAlreadyCancelled);
        }
        let event = SubscriptionEvent::AppSubscriptionCancelled(AppSubscriptionCancelled {
            app_id,
            entitlement_number: app.entitlement_number.clone(),
            cause: AppCancellationCause::Requested,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }

    async fn move_billing_account(
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
}

impl Aggregate for Subscription {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
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
