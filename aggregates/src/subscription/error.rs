//! The subscription rules a command can break, each with a stable machine code.

use chrono::{DateTime, Utc};

use crate::DomainError;

/// A subscription rule the command broke. Each message states the rule; each code is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("the subscription does not exist")]
    NotFound,
    #[error("the subscription already exists")]
    AlreadyCreated,
    #[error("{0} must not be empty")]
    Required(&'static str),
    #[error("a subscription has at least one seat")]
    InvalidSeats,
    #[error("a subscription has at most {0} seats")]
    TooManySeats(u32),
    #[error("storage is bought in at most {0} GB at once")]
    TooMuchStorage(u32),
    #[error("the term must end after it starts")]
    InvalidTerm,
    #[error("the term must end in the future")]
    TermAlreadyOver,
    #[error("a term lasts at most {0} days and starts within {0} days of today")]
    TermOutOfBounds(i64),
    #[error("an entitlement number looks like E-XXXX-XXXX-XXXX (upper-case letters and digits)")]
    InvalidEntitlementNumber,
    #[error(
        "the included products of a collection must be distinct, non-empty, and other than the \
         collection's own product"
    )]
    InvalidIncludedProducts,
    #[error("only an upcoming subscription can be activated")]
    NotUpcoming,
    #[error("the term starts at {0}; a subscription is activated only once its term has started")]
    TermNotStarted(DateTime<Utc>),
    #[error(
        "the subscription must be active (or non-renewing) for this; its term has not started"
    )]
    NotActive,
    #[error(
        "the subscription has ended (cancelled or expired); it can only be reactivated by an admin"
    )]
    Ended,
    #[error("storage is bought in a positive number of GB")]
    InvalidStorage,
    #[error(
        "a cancellation is scheduled at term end, so the subscription will not renew; withdraw \
         the cancellation first"
    )]
    WillNotRenew,
    #[error("the term ends at {0}; a subscription renews or expires only once its term has ended")]
    TermNotEnded(DateTime<Utc>),
    #[error("auto-renew is off; a subscription renews only with auto-renew on")]
    AutoRenewOff,
    #[error("auto-renew is on and no cancellation is scheduled; the subscription renews instead of expiring")]
    WillRenew,
    #[error("a cancellation at term end is already scheduled")]
    CancellationAlreadyScheduled,
    #[error("a subscription whose term has not started can only be cancelled immediately")]
    UpcomingCancelledAtTermEnd,
    #[error("only a collection has included products to keep")]
    NotACollection,
    #[error("{0} is not a product included in this collection")]
    ProductNotIncluded(String),
    #[error("no cancellation is scheduled, so there is none to withdraw")]
    NoCancellationScheduled,
    #[error(
        "the term has ended; a scheduled cancellation can be withdrawn only before the term ends"
    )]
    TermEnded,
    #[error("only a cancelled or expired subscription can be reactivated")]
    NotEnded,
    #[error("a subscription can be reactivated only within {0} days of ending")]
    ReactivationWindowPassed(i64),
    #[error(
        "this collection's kept products became standalone subscriptions, so the collection \
         cannot be reactivated"
    )]
    CollectionSplit,
    #[error("a site is a URL or group path of 1 to 2048 characters")]
    InvalidSite,
    #[error("a contact is an e-mail address (name@domain, at most 254 characters)")]
    InvalidEmail,
    #[error("a subscription has at most {0} contacts")]
    TooManyContacts(usize),
    #[error("{0} is not a contact of this subscription")]
    ContactNotFound(String),
    #[error("an app subscription with this id is already on the subscription")]
    AppAlreadyAdded,
    #[error("{0} already has an active app subscription on this subscription")]
    AppAlreadyInstalled(String),
    #[error("the entitlement number is already used by this subscription or one of its apps")]
    DuplicateEntitlementNumber,
    #[error("the app subscription does not exist on this subscription")]
    AppNotFound,
    #[error("the app subscription is already cancelled")]
    AppAlreadyCancelled,
}

impl DomainError for SubscriptionError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "subscription_not_found",
            Self::AlreadyCreated => "subscription_already_exists",
            Self::Required(_) => "required_field",
            Self::InvalidSeats | Self::TooManySeats(_) => "invalid_seats",
            Self::TooMuchStorage(_) => "invalid_storage",
            Self::InvalidTerm => "invalid_term",
            Self::TermOutOfBounds(_) => "term_out_of_bounds",
            Self::TermAlreadyOver => "term_already_over",
            Self::InvalidEntitlementNumber => "invalid_entitlement_number",
            Self::InvalidIncludedProducts => "invalid_included_products",
            Self::NotUpcoming => "subscription_not_upcoming",
            Self::TermNotStarted(_) => "term_not_started",
            Self::NotActive => "subscription_not_active",
            Self::Ended => "subscription_ended",
            Self::InvalidStorage => "invalid_storage",
            Self::WillNotRenew => "cancellation_scheduled",
            Self::TermNotEnded(_) => "term_not_ended",
            Self::AutoRenewOff => "auto_renew_off",
            Self::WillRenew => "auto_renew_on",
            Self::CancellationAlreadyScheduled => "cancellation_already_scheduled",
            Self::UpcomingCancelledAtTermEnd => "upcoming_cancelled_at_term_end",
            Self::NotACollection => "not_a_collection",
            Self::ProductNotIncluded(_) => "product_not_included",
            Self::NoCancellationScheduled => "no_cancellation_scheduled",
            Self::TermEnded => "term_ended",
            Self::NotEnded => "subscription_not_ended",
            Self::ReactivationWindowPassed(_) => "reactivation_window_passed",
            Self::CollectionSplit => "collection_split",
            Self::InvalidSite => "invalid_site",
            Self::InvalidEmail => "invalid_email",
            Self::TooManyContacts(_) => "too_many_contacts",
            Self::ContactNotFound(_) => "contact_not_found",
            Self::AppAlreadyAdded => "app_already_added",
            Self::AppAlreadyInstalled(_) => "app_already_installed",
            Self::DuplicateEntitlementNumber => "duplicate_entitlement_number",
            Self::AppNotFound => "app_not_found",
            Self::AppAlreadyCancelled => "app_already_cancelled",
        }
    }
}
