//! The write-side state of one subscription, the values it is made of, and the questions
//! about it that every handler asks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::SubscriptionError;
use super::events::Channel;
use crate::Actor;

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

    pub fn active_apps(&self) -> impl Iterator<Item = &AppSubscription> {
        self.apps.iter().filter(|a| a.status == AppStatus::Active)
    }

    pub(super) fn ensure_exists(&self) -> Result<(), SubscriptionError> {
        if self.exists() {
            Ok(())
        } else {
            Err(SubscriptionError::NotFound)
        }
    }

    /// Exists and has not ended: anything but reactivation may still change it.
    pub(super) fn ensure_not_ended(&self) -> Result<(), SubscriptionError> {
        self.ensure_exists()?;
        if self.status.ended() {
            Err(SubscriptionError::Ended)
        } else {
            Ok(())
        }
    }

    /// Active or non-renewing: what "the subscription is active" means for purchases.
    pub(super) fn ensure_in_force(&self) -> Result<(), SubscriptionError> {
        self.ensure_not_ended()?;
        if self.status.in_force() {
            Ok(())
        } else {
            Err(SubscriptionError::NotActive)
        }
    }
}
