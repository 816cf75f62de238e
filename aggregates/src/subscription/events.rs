//! The events of a subscription: the stored public contract, the values stored in them
//! (channel, cancellation timing, app cancellation cause), type names and versions.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Actor;

/// Facts of a subscription's life. A public contract: past tense, never renamed; a change of
/// shape bumps `event_version` and comes with an upcaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SubscriptionEvent {
    SubscriptionCreated(SubscriptionCreated),
    SubscriptionActivated(SubscriptionActivated),
    SeatsIncreased(SeatsIncreased),
    SeatReductionScheduled(SeatReductionScheduled),
    SeatReductionWithdrawn(SeatReductionWithdrawn),
    StoragePurchased(StoragePurchased),
    PlanChanged(PlanChanged),
    AutoRenewChanged(AutoRenewChanged),
    SubscriptionRenewed(SubscriptionRenewed),
    SubscriptionExpired(SubscriptionExpired),
    CancellationScheduled(CancellationScheduled),
    SubscriptionCancelled(SubscriptionCancelled),
    CancellationWithdrawn(CancellationWithdrawn),
    SubscriptionReactivated(SubscriptionReactivated),
    SiteLinked(SiteLinked),
    ContactAdded(ContactAdded),
    ContactRemoved(ContactRemoved),
    AppSubscriptionAdded(AppSubscriptionAdded),
    AppSubscriptionCancelled(AppSubscriptionCancelled),
    BillingAccountChanged(BillingAccountChanged),
    CollectionCancelled(CollectionCancelled),
    SubscriptionPassedToOrg(SubscriptionPassedToOrg),
}

/// How a subscription was sold. The selling partner manages a partner subscription; its
/// customer only views it, links a site, manages contacts and cancels it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Direct,
    Partner {
        partner_id: String,
    },
}

impl Channel {
    /// The selling partner, for a partner subscription.
    pub fn partner_id(&self) -> Option<&str> {
        match self {
            Self::Direct => None,
            Self::Partner { partner_id } => Some(partner_id),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Partner { .. } => "partner",
        }
    }
}

/// When a cancellation takes effect. Snake case on the wire. Asked for in `Cancel` and
/// stored in `SubscriptionCancelled`; it lives with the events so that commands depend on
/// events and never the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CancelEffective {
    /// The subscription runs to its term end and does not renew (status `non_renewing`).
    #[default]
    AtTermEnd,
    Immediately,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionCreated {
    pub subscription_id: Uuid,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: u32,
    pub term_start: DateTime<Utc>,
    /// The bill date.
    pub term_end: DateTime<Utc>,
    pub auto_renew: bool,
    pub channel: Channel,
    pub billing_account: String,
    /// Non-empty for a collection (a bundle of products sold as one subscription).
    pub included_products: Vec<String>,
    /// The collection this subscription was split off from, when a product was kept.
    pub from_collection: Option<Uuid>,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionActivated {
    pub term_start: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeatsIncreased {
    pub from: u32,
    pub to: u32,
    pub at: DateTime<Utc>,
}

/// Fewer seats from the next renewal on; until then the subscription keeps `from` seats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeatReductionScheduled {
    pub from: u32,
    pub to: u32,
    /// The end of the current term, when the reduction takes effect if the subscription renews.
    pub effective_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// A scheduled seat reduction was dropped; the subscription keeps `seats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeatReductionWithdrawn {
    pub seats: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoragePurchased {
    pub gb: u32,
    /// Storage add-on after the purchase.
    pub total_gb: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChanged {
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoRenewChanged {
    pub auto_renew: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRenewed {
    pub term_start: DateTime<Utc>,
    pub term_end: DateTime<Utc>,
    /// Seats for the new term (a scheduled reduction applied).
    pub seats: u32,
    pub seats_before: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionExpired {
    pub term_end: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// The subscription ends at `effective_at` (its term end) instead of renewing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancellationScheduled {
    pub effective_at: DateTime<Utc>,
    pub reason: String,
    /// For a collection: the included products to keep as standalone subscriptions.
    pub keep_products: Vec<String>,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionCancelled {
    pub reason: String,
    /// `immediately`, or `at_term_end` when a scheduled cancellation took effect.
    pub effective: CancelEffective,
    pub effective_at: DateTime<Utc>,
    /// Who asked for the cancellation (for a scheduled one, who scheduled it).
    pub by: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancellationWithdrawn {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionReactivated {
    pub term_start: DateTime<Utc>,
    pub term_end: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// "Begin set up": the site (URL) or group the subscription is used on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteLinked {
    pub site: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactAdded {
    /// Lower-case e-mail address.
    pub email: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRemoved {
    pub email: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSubscriptionAdded {
    pub app_id: Uuid,
    pub entitlement_number: String,
    pub app: String,
    pub plan: String,
    pub at: DateTime<Utc>,
}

/// Why an app subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppCancellationCause {
    /// Cancelled on its own.
    Requested,
    /// Its subscription was cancelled (same commit).
    SubscriptionCancelled,
    /// Its subscription expired (same commit).
    SubscriptionExpired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSubscriptionCancelled {
    pub app_id: Uuid,
    pub entitlement_number: String,
    pub cause: AppCancellationCause,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingAccountChanged {
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
}

/// A collection's cancellation took effect (appended right after `SubscriptionCancelled`).
/// A process manager creates one standalone subscription per kept product, starting at
/// `effective_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionCancelled {
    pub included_products: Vec<String>,
    pub kept: Vec<String>,
    pub effective_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// The partner that sold the subscription no longer manages it: its relationship with the
/// org ended. From now on the org's side is the owner (its admin manages it, as a direct
/// subscription); `channel` still says how it was sold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionPassedToOrg {
    pub partner_id: String,
    pub at: DateTime<Utc>,
}

/// `aggregate_type` of every Subscription event in the store.
pub const AGGREGATE_TYPE: &str = "Subscription";

/// Every event type of this aggregate with the version this binary writes: what it can
/// read (older versions are upcast). An event of another type, or of a newer version, comes
/// from a newer release; projections block on it instead of guessing.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("SubscriptionCreated", "1.0"),
    ("SubscriptionActivated", "1.0"),
    ("SeatsIncreased", "1.0"),
    ("SeatReductionScheduled", "1.0"),
    ("SeatReductionWithdrawn", "1.0"),
    ("StoragePurchased", "1.0"),
    ("PlanChanged", "1.0"),
    ("AutoRenewChanged", "1.0"),
    ("SubscriptionRenewed", "1.0"),
    ("SubscriptionExpired", "1.0"),
    ("CancellationScheduled", "1.0"),
    ("SubscriptionCancelled", "1.0"),
    ("CancellationWithdrawn", "1.0"),
    ("SubscriptionReactivated", "1.0"),
    ("SiteLinked", "1.0"),
    ("ContactAdded", "1.0"),
    ("ContactRemoved", "1.0"),
    ("AppSubscriptionAdded", "1.0"),
    ("AppSubscriptionCancelled", "1.0"),
    ("BillingAccountChanged", "1.0"),
    ("CollectionCancelled", "1.0"),
    ("SubscriptionPassedToOrg", "1.0"),
];

impl SubscriptionEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubscriptionCreated(_) => "SubscriptionCreated",
            Self::SubscriptionActivated(_) => "SubscriptionActivated",
            Self::SeatsIncreased(_) => "SeatsIncreased",
            Self::SeatReductionScheduled(_) => "SeatReductionScheduled",
            Self::SeatReductionWithdrawn(_) => "SeatReductionWithdrawn",
            Self::StoragePurchased(_) => "StoragePurchased",
            Self::PlanChanged(_) => "PlanChanged",
            Self::AutoRenewChanged(_) => "AutoRenewChanged",
            Self::SubscriptionRenewed(_) => "SubscriptionRenewed",
            Self::SubscriptionExpired(_) => "SubscriptionExpired",
            Self::CancellationScheduled(_) => "CancellationScheduled",
            Self::SubscriptionCancelled(_) => "SubscriptionCancelled",
            Self::CancellationWithdrawn(_) => "CancellationWithdrawn",
            Self::SubscriptionReactivated(_) => "SubscriptionReactivated",
            Self::SiteLinked(_) => "SiteLinked",
            Self::ContactAdded(_) => "ContactAdded",
            Self::ContactRemoved(_) => "ContactRemoved",
            Self::AppSubscriptionAdded(_) => "AppSubscriptionAdded",
            Self::AppSubscriptionCancelled(_) => "AppSubscriptionCancelled",
            Self::BillingAccountChanged(_) => "BillingAccountChanged",
            Self::CollectionCancelled(_) => "CollectionCancelled",
            Self::SubscriptionPassedToOrg(_) => "SubscriptionPassedToOrg",
        }
    }
}

impl DomainEvent for SubscriptionEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
