//! Who may see what (SPEC section 1), one module per resource. Checked at the edge, before
//! anything is read out or any command is handled; what a principal may not see answers 404,
//! never 403, so ids do not leak across tenants.

pub mod cases;
pub mod feed;

pub mod reports;
pub mod subscriptions;

pub use crate::reach::PartnerReach;
pub use cases::{
    case_scope, may, may_open_case_for, sees_case, sees_internal, CaseAction, CaseAudience,
    CaseScope,
};
pub use subscriptions::{
    is_owner_side, may_change_subscription, may_create, sees_subscription, SubscriptionAction,
    SubscriptionAudience,
};

/// E-mail addresses compare without regard to case.
pub fn same_user(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}
