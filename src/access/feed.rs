//! Who reads which event of the feed (`GET /v1/events`) and of webhook deliveries: exactly what
//! the principal may see of the resource the event belongs to, decided when it is read (a
//! relationship or a participant list may have changed since the event).
//!
//! - Staff and auditors read the whole log.
//! - A customer reads the events of their org's cases they see (all of them as org admin), of
//!   their org's subscriptions and calendar, and as org admin of its partner relationships.
//! - A partner reads the events of the cases of orgs where `access_cases` is in force, of the
//!   subscriptions it sold and manages where `view_customers` is (see
//!   [`sees_subscription`](super::sees_subscription)), of the calendars of the orgs it reaches,
//!   and of its own relationships.
//! - The customer side never reads internal comments nor SLA warnings (`staff_only`).

use subdesk_aggregates::partner_relationship::PartnerScope;
use subdesk_aggregates::{org_calendar, partner_relationship, subscription, support_case};
use subdesk_projections::feed::{org_audience, partner_audience};

use super::{sees_case, sees_subscription, CaseAudience, SubscriptionAudience};
use crate::auth::Principal;
use crate::reach::PartnerReach;

/// What the feed index knows about an event and its stream, as of the feed's position.
#[derive(Debug, Clone, Copy)]
pub struct FeedRow<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub staff_only: bool,
    /// The stream's org.
    pub org_id: &'a str,
    /// A case's requester and participants.
    pub requester: Option<&'a str>,
    pub participants: &'a [String],
    /// The partner that manages a subscription.
    pub partner_id: Option<&'a str>,
}

/// Where a principal's events are filed in the feed index; `None`: the whole log (staff).
pub fn audiences(principal: &Principal) -> Option<Vec<String>> {
    use subdesk_aggregates::ActorRole;
    match principal.role {
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System => None,
        ActorRole::Customer => Some(principal.org_id.iter().map(|o| org_audience(o)).collect()),
        ActorRole::Partner => Some(
            reached_orgs(&principal.reach)
                .iter()
                .map(|o| org_audience(o))
                .chain(principal.partner_id.iter().map(|p| partner_audience(p)))
                .collect(),
        ),
    }
}

fn reached_orgs(reach: &PartnerReach) -> Vec<String> {
    let mut orgs = reach.orgs(PartnerScope::AccessCases);
    orgs.extend(reach.orgs(PartnerScope::ViewCustomers));
    orgs.sort();
    orgs.dedup();
    orgs
}

/// Whether `principal` reads the event `row` describes.
pub fn sees_event(principal: &Principal, row: FeedRow<'_>) -> bool {
    use subdesk_aggregates::ActorRole;
    if principal.sees_everything() {
        return true;
    }
    if row.staff_only {
        return false;
    }
    match row.aggregate_type {
        support_case::AGGREGATE_TYPE => sees_case(
            principal,
            CaseAudience {
                org_id: row.org_id,
                requester: row.requester.unwrap_or_default(),
                participants: row.participants,
            },
        ),
        subscription::AGGREGATE_TYPE => sees_subscription(
            principal,
            SubscriptionAudience {
                org_id: row.org_id,
                partner_id: row.partner_id,
                collection: false,
            },
        ),
        partner_relationship::AGGREGATE_TYPE => {
            let partner = row.aggregate_id.split_once('/').map(|(_, p)| p);
            match principal.role {
                ActorRole::Customer => principal.in_org(row.org_id) && principal.org_admin,
                ActorRole::Partner => {
                    partner.is_some() && principal.partner_id.as_deref() == partner
                }
                _ => false,
            }
        }
        org_calendar::AGGREGATE_TYPE => match principal.role {
            ActorRole::Customer => principal.in_org(row.org_id),
            ActorRole::Partner => principal.reach.reaches(row.org_id),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::auth::{SCOPE_ACCESS_CASES, SCOPE_VIEW_CUSTOMERS};
    use subdesk_aggregates::ActorRole;

    fn customer(user: &str, org: &str, org_admin: bool) -> Principal {
        Principal {
            token_id: Uuid::nil(),
            role: ActorRole::Customer,
            user: user.into(),
            org_id: Some(org.into()),
            org_admin,
            partner_id: None,
            scopes: vec![],
            reach: PartnerReach::default(),
        }
    }

    fn partner(id: &str, grants: &[(&str, &[&str])]) -> Principal {
        let scopes = vec![
            SCOPE_ACCESS_CASES.to_string(),
            SCOPE_VIEW_CUSTOMERS.to_string(),
        ];
        let reach = PartnerReach::new(
            &scopes,
            grants
                .iter()
                .map(|(org, s)| (org.to_string(), s.iter().map(|s| s.to_string()).collect())),
        );
        Principal {
            token_id: Uuid::nil(),
            role: ActorRole::Partner,
            user: format!("pat@{id}.test"),
            org_id: None,
            org_admin: false,
            partner_id: Some(id.into()),
            scopes,
            reach,
        }
    }

    fn case(org: &'static str, requester: &'static str) -> FeedRow<'static> {
        FeedRow {
            aggregate_type: "SupportCase",
            aggregate_id: "c1",
            staff_only: false,
            org_id: org,
            requester: Some(requester),
            participants: &[],
            partner_id: None,
        }
    }

    #[test]
    fn a_customer_reads_their_own_cases_and_their_org_admin_all_of_the_orgs() {
        let ann = customer("ann@acme.test", "acme", false);
        let bob = customer("bob@acme.test", "acme", false);
        let boss = customer("boss@acme.test", "acme", true);
        let row = case("acme", "Ann@acme.test");
        assert!(sees_event(&ann, row));
        assert!(!sees_event(&bob, row));
        assert!(sees_event(&boss, row));
        assert!(!sees_event(&customer("eve@other.test", "other", true), row));
        assert_eq!(audiences(&ann), Some(vec!["org:acme".to_string()]));
    }

    #[test]
    fn nobody_on_the_customer_side_reads_an_internal_comment() {
        let internal = FeedRow {
            staff_only: true,
            ..case("acme", "ann@acme.test")
        };
        assert!(!sees_event(
            &customer("ann@acme.test", "acme", true),
            internal
        ));
        assert!(!sees_event(
            &partner("p1", &[("acme", &[SCOPE_ACCESS_CASES])]),
            internal
        ));
    }

    #[test]
    fn a_partner_reads_cases_where_access_cases_holds_and_only_the_subscriptions_it_manages() {
        let p1 = partner(
            "p1",
            &[
                ("acme", &[SCOPE_ACCESS_CASES, SCOPE_VIEW_CUSTOMERS]),
                ("beta", &[SCOPE_VIEW_CUSTOMERS]),
            ],
        );
        assert!(sees_event(&p1, case("acme", "ann@acme.test")));
        assert!(!sees_event(&p1, case("beta", "bea@beta.test")));
        assert!(!sees_event(&p1, case("gamma", "gil@gamma.test")));
        let subscription = |partner_id| FeedRow {
            aggregate_type: "Subscription",
            partner_id,
            ..case("acme", "")
        };
        assert!(sees_event(&p1, subscription(Some("p1"))));
        assert!(!sees_event(&p1, subscription(Some("p2"))));
        assert!(!sees_event(&p1, subscription(None)));
        let relationship = |id| FeedRow {
            aggregate_type: "PartnerRelationship",
            aggregate_id: id,
            ..case("acme", "")
        };
        assert!(sees_event(&p1, relationship("acme/p1")));
        assert!(!sees_event(&p1, relationship("acme/p2")));
        assert_eq!(
            audiences(&p1),
            Some(vec![
                "org:acme".to_string(),
                "org:beta".to_string(),
                "partner:p1".to_string()
            ])
        );
    }
}
