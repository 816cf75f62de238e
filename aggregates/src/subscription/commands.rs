//! What can be asked of a subscription.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::{CancelEffective, Channel};
use crate::Actor;

/// Everything a caller (or the system) may ask of a subscription. Who may ask what is decided
/// at the edge; the aggregate decides whether the subscription's state allows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SubscriptionCommand {
    Create(CreateSubscription),
    /// System, at term start.
    Activate,
    /// More seats take effect now; fewer take effect at renewal.
    ChangeSeats {
        seats: u32,
    },
    PurchaseStorage {
        gb: u32,
    },
    ChangePlan {
        plan: String,
    },
    SetAutoRenew {
        auto_renew: bool,
    },
    /// System, at term end, when auto-renew is on and no cancellation is scheduled.
    Renew,
    /// System, at term end otherwise: expires the subscription, or makes a scheduled
    /// cancellation take effect.
    Expire,
    Cancel(CancelSubscription),
    WithdrawCancellation,
    Reactivate,
    LinkSite {
        site: String,
    },
    AddContact {
        email: String,
    },
    RemoveContact {
        email: String,
    },
    AddApp(AddApp),
    CancelApp {
        app_id: Uuid,
    },
    MoveBillingAccount {
        to: String,
    },
    /// System, when the selling partner's relationship with the org ended: the org's side
    /// becomes the owner. Nothing happens to a subscription that partner does not manage.
    PassToOrg {
        partner_id: String,
    },
}

/// Create a subscription. The id (UUID v7, or a hash for subscriptions split off a
/// collection) and the entitlement number are allocated by the caller so the domain stays
/// free of randomness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSubscription {
    pub subscription_id: Uuid,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: u32,
    pub term_start: DateTime<Utc>,
    pub term_end: DateTime<Utc>,
    pub auto_renew: bool,
    pub channel: Channel,
    pub billing_account: String,
    /// Non-empty makes the subscription a collection.
    pub included_products: Vec<String>,
    pub from_collection: Option<Uuid>,
    pub created_by: Actor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelSubscription {
    pub effective: CancelEffective,
    pub reason: String,
    /// For a collection: included products to keep as standalone subscriptions.
    pub keep_products: Vec<String>,
    pub by: Actor,
}

/// Add an app subscription; like the subscription, it has its own entitlement number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddApp {
    pub app_id: Uuid,
    pub entitlement_number: String,
    pub app: String,
    pub plan: String,
}
