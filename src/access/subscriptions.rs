//! Who sees which subscription, and who may do what with it (SPEC section 1).
//!
//! - Agents, admins and auditors see every subscription; customers see their org's; a partner
//!   sees the subscriptions it sold and still manages, in the orgs whose relationship with it
//!   allows `view_customers` (its [`PartnerReach`](super::PartnerReach)). A partner does not
//!   see its customers' direct subscriptions or those sold by another partner: that is another
//!   seller's commercial data. Deciding from the subscription's own channel and the
//!   relationship's current state (never from a read model) means a partner can act on a
//!   subscription the moment it created it, and on nothing of an org the moment the
//!   relationship ends.
//! - The **owner side** manages a subscription: the customer org-admin of a direct
//!   subscription (or of one that passed to the org when its partner's relationship ended),
//!   the selling partner of a partner subscription, admins always.
//! - A partner subscription is read-only for its customer except viewing, linking a site,
//!   managing contacts, and cancelling (not a collection: collections are cancelled only by
//!   their partner, or an admin). Cancelling, on either channel, is for the org admin, not for
//!   every user of the org.
//! - Any user of the org links a site and manages contacts.
//! - Moving the billing account is for admins and the selling partner; reactivation for admins.
//! - Agents and auditors read; they issue no subscription commands.

use subdesk_aggregates::partner_relationship::PartnerScope;
use subdesk_aggregates::subscription::{Channel, Subscription, SubscriptionCommand};
use subdesk_aggregates::ActorRole;

use crate::auth::Principal;
use crate::store::Denied;

/// The facts about a subscription that decide who sees it and who may change it.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionAudience<'a> {
    pub org_id: &'a str,
    /// The partner that manages it: the selling partner of a partner subscription, until it
    /// passes to the org.
    pub partner_id: Option<&'a str>,
    pub collection: bool,
}

impl<'a> From<&'a Subscription> for SubscriptionAudience<'a> {
    fn from(subscription: &'a Subscription) -> Self {
        Self {
            org_id: &subscription.org_id,
            partner_id: subscription.managing_partner(),
            collection: subscription.is_collection(),
        }
    }
}

/// What a command asks to do, as far as access is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionAction {
    /// Seats, storage, plan, auto-renew, apps: the owner side.
    Manage,
    /// Cancel, or withdraw a scheduled cancellation.
    Cancel,
    /// Link a site, add or remove contacts.
    CustomerSide,
    MoveBillingAccount,
    Reactivate,
}

impl SubscriptionAction {
    /// What `command` asks to do to a subscription, as far as access is concerned; `None` for
    /// the commands no caller issues on an existing subscription (creation has a rule of its
    /// own, the timed ones and the hand-over are the system's).
    pub fn of(command: &SubscriptionCommand) -> Option<Self> {
        use SubscriptionCommand as C;
        Some(match command {
            C::ChangeSeats { .. }
            | C::PurchaseStorage { .. }
            | C::ChangePlan { .. }
            | C::SetAutoRenew { .. }
            | C::AddApp(_)
            | C::CancelApp { .. } => Self::Manage,
            C::Cancel(_) | C::WithdrawCancellation => Self::Cancel,
            C::LinkSite { .. } | C::AddContact { .. } | C::RemoveContact { .. } => {
                Self::CustomerSide
            }
            C::MoveBillingAccount { .. } => Self::MoveBillingAccount,
            C::Reactivate => Self::Reactivate,
            C::Create(_) | C::Activate | C::Renew | C::Expire | C::PassToOrg { .. } => return None,
        })
    }
}

/// Whether `principal` sees the subscription.
pub fn sees_subscription(principal: &Principal, subscription: SubscriptionAudience<'_>) -> bool {
    match principal.role {
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System => true,
        ActorRole::Customer => principal.in_org(subscription.org_id),
        ActorRole::Partner => sells(principal, subscription),
    }
}

/// The principal is the partner that sold the subscription and manages it, and the org's
/// relationship with it allows `view_customers` now.
fn sells(principal: &Principal, subscription: SubscriptionAudience<'_>) -> bool {
    principal.role == ActorRole::Partner
        && subscription.partner_id.is_some()
        && principal.partner_id.as_deref() == subscription.partner_id
        && principal
            .reach
            .allows(subscription.org_id, PartnerScope::ViewCustomers)
}

fn org_admin_of(principal: &Principal, subscription: SubscriptionAudience<'_>) -> bool {
    principal.in_org(subscription.org_id) && principal.org_admin
}

/// Admins, the org admin of a direct subscription, the partner of a partner subscription.
pub fn is_owner_side(principal: &Principal, subscription: SubscriptionAudience<'_>) -> bool {
    principal.role == ActorRole::Admin
        || sells(principal, subscription)
        || (subscription.partner_id.is_none() && org_admin_of(principal, subscription))
}

/// Whether `principal`, who sees the subscription, may do `action`; the refusal says why.
pub fn may_change_subscription(
    principal: &Principal,
    subscription: SubscriptionAudience<'_>,
    action: SubscriptionAction,
) -> Result<(), String> {
    if matches!(principal.role, ActorRole::Agent | ActorRole::Auditor) {
        return Err(format!(
            "{}s read subscriptions; they do not change them",
            principal.role
        ));
    }
    let owner = is_owner_side(principal, subscription);
    let partner_managed = subscription.partner_id.is_some();
    let allowed = match action {
        SubscriptionAction::Manage => owner,
        SubscriptionAction::Cancel if subscription.collection => owner,
        SubscriptionAction::Cancel => owner || org_admin_of(principal, subscription),
        SubscriptionAction::CustomerSide => owner || principal.in_org(subscription.org_id),
        SubscriptionAction::MoveBillingAccount => {
            principal.role == ActorRole::Admin || sells(principal, subscription)
        }
        SubscriptionAction::Reactivate => principal.role == ActorRole::Admin,
    };
    if allowed {
        return Ok(());
    }
    Err(match action {
        SubscriptionAction::Manage if partner_managed => {
            "this subscription is managed by its partner; ask the partner to change it".into()
        }
        SubscriptionAction::Manage => "only the org's admin manages this subscription".into(),
        SubscriptionAction::Cancel if subscription.collection => {
            "a collection is cancelled only by its owner: its partner, or the org's admin once \
             it manages the collection"
                .into()
        }
        SubscriptionAction::Cancel => "only the org's admin cancels a subscription".into(),
        SubscriptionAction::CustomerSide => {
            "only the customer and the subscription's owner manage its site and contacts".into()
        }
        SubscriptionAction::MoveBillingAccount => {
            "only admins and the selling partner move a billing account".into()
        }
        SubscriptionAction::Reactivate => {
            "only an admin reactivates a subscription; contact support".into()
        }
    })
}

/// Whether `principal` may buy a subscription for `org_id` through `channel`: `NotFound` for
/// an org that does not exist for them (another customer's; for a partner, one that has not
/// granted it a relationship), `Forbidden` otherwise. Whether the partner of a partner
/// subscription holds a relationship with the org is checked by the caller for admins.
pub fn may_create(principal: &Principal, org_id: &str, channel: &Channel) -> Result<(), Denied> {
    let forbidden = |why: &str| Err(Denied::Forbidden(why.to_string()));
    match principal.role {
        ActorRole::Admin => Ok(()),
        ActorRole::Customer if !principal.in_org(org_id) => Err(Denied::NotFound),
        ActorRole::Customer if !principal.org_admin => {
            forbidden("only the org's admin buys subscriptions")
        }
        ActorRole::Customer => match channel {
            Channel::Direct => Ok(()),
            Channel::Partner { .. } => {
                forbidden("a partner subscription is created by its partner")
            }
        },
        ActorRole::Partner if !principal.reach.reaches(org_id) => Err(Denied::NotFound),
        ActorRole::Partner if !principal.reach.allows(org_id, PartnerScope::ViewCustomers) => {
            forbidden(
                "a partner sells subscriptions only with the view_customers scope, in its token \
                 and in the org's relationship with it",
            )
        }
        ActorRole::Partner => match channel.partner_id() {
            Some(partner) if principal.partner_id.as_deref() == Some(partner) => Ok(()),
            _ => forbidden("a partner creates only subscriptions sold through itself"),
        },
        ActorRole::Agent | ActorRole::Auditor | ActorRole::System => {
            forbidden("support staff and auditors do not buy subscriptions")
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::access::PartnerReach;
    use crate::auth::{SCOPE_ACCESS_CASES, SCOPE_VIEW_CUSTOMERS};

    /// Partners are `p1` with `view_customers`, in a relationship with acme that allows both
    /// scopes.
    fn principal(role: ActorRole, org: Option<&str>, org_admin: bool) -> Principal {
        let scopes: Vec<String> = if role == ActorRole::Partner {
            vec![SCOPE_VIEW_CUSTOMERS.into()]
        } else {
            vec![]
        };
        let reach = if role == ActorRole::Partner {
            PartnerReach::new(
                &scopes,
                [(
                    "acme".to_string(),
                    vec![SCOPE_VIEW_CUSTOMERS.into(), SCOPE_ACCESS_CASES.into()],
                )],
            )
        } else {
            PartnerReach::default()
        };
        Principal {
            token_id: Uuid::nil(),
            role,
            user: "someone@example.test".into(),
            org_id: org.map(str::to_string),
            org_admin,
            partner_id: (role == ActorRole::Partner).then(|| "p1".to_string()),
            scopes,
            reach,
        }
    }

    const DIRECT: SubscriptionAudience<'static> = SubscriptionAudience {
        org_id: "acme",
        partner_id: None,
        collection: false,
    };
    const SOLD_BY_P1: SubscriptionAudience<'static> = SubscriptionAudience {
        org_id: "acme",
        partner_id: Some("p1"),
        collection: false,
    };
    const COLLECTION_BY_P1: SubscriptionAudience<'static> = SubscriptionAudience {
        org_id: "acme",
        partner_id: Some("p1"),
        collection: true,
    };
    const SOLD_BY_P2: SubscriptionAudience<'static> = SubscriptionAudience {
        org_id: "acme",
        partner_id: Some("p2"),
        collection: false,
    };

    #[test]
    fn customers_see_their_orgs_subscriptions_only() {
        let ann = principal(ActorRole::Customer, Some("acme"), false);
        assert!(sees_subscription(&ann, DIRECT));
        assert!(sees_subscription(&ann, SOLD_BY_P1));
        let eve = principal(ActorRole::Customer, Some("globex"), true);
        assert!(!sees_subscription(&eve, DIRECT));
    }

    #[test]
    fn a_partner_sees_what_it_sold_and_only_with_view_customers() {
        let partner = principal(ActorRole::Partner, None, false);
        assert!(sees_subscription(&partner, SOLD_BY_P1));
        assert!(!sees_subscription(&partner, SOLD_BY_P2));
        assert!(!sees_subscription(&partner, DIRECT));
        let mut unscoped = partner.clone();
        unscoped.scopes = vec![SCOPE_ACCESS_CASES.into()];
        unscoped.reach = PartnerReach::new(
            &unscoped.scopes,
            [("acme".to_string(), vec![SCOPE_VIEW_CUSTOMERS.into()])],
        );
        assert!(!sees_subscription(&unscoped, SOLD_BY_P1));
    }

    #[test]
    fn a_partner_sees_nothing_it_sold_once_the_relationship_is_gone() {
        let mut partner = principal(ActorRole::Partner, None, false);
        partner.reach = PartnerReach::default();
        assert!(!sees_subscription(&partner, SOLD_BY_P1));
        assert_eq!(
            may_create(
                &partner,
                "acme",
                &Channel::Partner {
                    partner_id: "p1".into()
                }
            ),
            Err(Denied::NotFound)
        );
        // Passed to the org, the subscription has no managing partner: its org admin owns it.
        let passed = SubscriptionAudience {
            partner_id: None,
            ..SOLD_BY_P1
        };
        let admin = principal(ActorRole::Customer, Some("acme"), true);
        assert!(may_change_subscription(&admin, passed, SubscriptionAction::Manage).is_ok());
    }

    #[test]
    fn the_org_admin_manages_a_direct_subscription_but_not_a_partner_one() {
        let admin = principal(ActorRole::Customer, Some("acme"), true);
        assert!(may_change_subscription(&admin, DIRECT, SubscriptionAction::Manage).is_ok());
        assert!(may_change_subscription(&admin, SOLD_BY_P1, SubscriptionAction::Manage).is_err());
        let partner = principal(ActorRole::Partner, None, false);
        assert!(may_change_subscription(&partner, SOLD_BY_P1, SubscriptionAction::Manage).is_ok());
    }

    #[test]
    fn the_customer_of_a_partner_subscription_cancels_it_unless_it_is_a_collection() {
        let admin = principal(ActorRole::Customer, Some("acme"), true);
        assert!(may_change_subscription(&admin, SOLD_BY_P1, SubscriptionAction::Cancel).is_ok());
        assert!(
            may_change_subscription(&admin, COLLECTION_BY_P1, SubscriptionAction::Cancel).is_err()
        );
        let partner = principal(ActorRole::Partner, None, false);
        assert!(
            may_change_subscription(&partner, COLLECTION_BY_P1, SubscriptionAction::Cancel).is_ok()
        );
        let user = principal(ActorRole::Customer, Some("acme"), false);
        assert!(may_change_subscription(&user, SOLD_BY_P1, SubscriptionAction::Cancel).is_err());
    }

    #[test]
    fn any_user_of_the_org_manages_site_and_contacts() {
        let user = principal(ActorRole::Customer, Some("acme"), false);
        assert!(
            may_change_subscription(&user, SOLD_BY_P1, SubscriptionAction::CustomerSide).is_ok()
        );
        assert!(may_change_subscription(&user, DIRECT, SubscriptionAction::Manage).is_err());
    }

    #[test]
    fn agents_and_auditors_only_read() {
        for role in [ActorRole::Agent, ActorRole::Auditor] {
            let staff = principal(role, None, false);
            assert!(sees_subscription(&staff, DIRECT));
            assert!(
                may_change_subscription(&staff, DIRECT, SubscriptionAction::CustomerSide).is_err()
            );
        }
    }

    #[test]
    fn only_admins_reactivate() {
        let admin = principal(ActorRole::Admin, None, false);
        assert!(may_change_subscription(&admin, DIRECT, SubscriptionAction::Reactivate).is_ok());
        let partner = principal(ActorRole::Partner, None, false);
        assert!(
            may_change_subscription(&partner, SOLD_BY_P1, SubscriptionAction::Reactivate).is_err()
        );
    }

    #[test]
    fn who_may_create_what() {
        let admin = principal(ActorRole::Customer, Some("acme"), true);
        assert_eq!(may_create(&admin, "acme", &Channel::Direct), Ok(()));
        assert_eq!(
            may_create(&admin, "globex", &Channel::Direct),
            Err(Denied::NotFound)
        );
        let p1 = Channel::Partner {
            partner_id: "p1".into(),
        };
        assert!(may_create(&admin, "acme", &p1).is_err());
        let partner = principal(ActorRole::Partner, None, false);
        assert_eq!(may_create(&partner, "acme", &p1), Ok(()));
        assert!(may_create(&partner, "acme", &Channel::Direct).is_err());
        // An org that granted this partner nothing does not exist for it.
        assert_eq!(may_create(&partner, "globex", &p1), Err(Denied::NotFound));
        let user = principal(ActorRole::Customer, Some("acme"), false);
        assert!(may_create(&user, "acme", &Channel::Direct).is_err());
    }
}
