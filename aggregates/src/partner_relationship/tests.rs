use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::{Actor, ActorRole, ManualClock};

type RelationshipTest = TestFramework<PartnerRelationship>;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0)
        .single()
        .expect("valid instant")
}

fn services() -> RelationshipServices {
    RelationshipServices::new(Arc::new(ManualClock::new(now())))
}

fn org_admin() -> Actor {
    Actor::new("ada@acme.test", ActorRole::Customer)
}

fn partner() -> Actor {
    Actor::new("pat@cloudwise.test", ActorRole::Partner)
}

fn grant(scopes: &[PartnerScope]) -> PartnerRelationshipCommand {
    PartnerRelationshipCommand::Grant(GrantRelationship {
        org_id: "acme".into(),
        partner_id: "p-cloudwise".into(),
        scopes: scopes.to_vec(),
        by: org_admin(),
    })
}

fn granted(scopes: &[PartnerScope]) -> PartnerRelationshipEvent {
    PartnerRelationshipEvent::PartnerRelationshipGranted(RelationshipGranted {
        org_id: "acme".into(),
        partner_id: "p-cloudwise".into(),
        scopes: scopes.to_vec(),
        by: org_admin(),
        at: now(),
    })
}

fn ended(by: Actor) -> PartnerRelationshipEvent {
    PartnerRelationshipEvent::PartnerRelationshipEnded(RelationshipEnded {
        org_id: "acme".into(),
        partner_id: "p-cloudwise".into(),
        ended_by: EndedBy::of(&by),
        by,
        at: now(),
    })
}

const BOTH: [PartnerScope; 2] = [PartnerScope::ViewCustomers, PartnerScope::AccessCases];

#[tokio::test]
async fn an_org_admin_grants_a_partner_a_relationship_with_sorted_distinct_scopes() {
    RelationshipTest::with(services())
        .given_no_previous_events()
        .when_async(grant(&[
            PartnerScope::AccessCases,
            PartnerScope::ViewCustomers,
            PartnerScope::AccessCases,
        ]))
        .await
        .then_expect_events(vec![granted(&BOTH)]);
}

#[tokio::test]
async fn a_relationship_grants_at_least_one_scope() {
    RelationshipTest::with(services())
        .given_no_previous_events()
        .when_async(grant(&[]))
        .await
        .then_expect_error(RelationshipError::NoScopes);
}

#[tokio::test]
async fn a_partner_id_that_is_not_a_domain_like_name_is_refused() {
    for bad in [
        "",
        "P-Upper",
        "-lead",
        "trail-",
        "dot.ted",
        "sla/sh",
        &"a".repeat(64),
    ] {
        RelationshipTest::with(services())
            .given_no_previous_events()
            .when_async(PartnerRelationshipCommand::Grant(GrantRelationship {
                org_id: "acme".into(),
                partner_id: bad.to_string(),
                scopes: BOTH.to_vec(),
                by: org_admin(),
            }))
            .await
            .then_expect_error(RelationshipError::InvalidPartnerId);
    }
    assert!(is_valid_partner_id(&"a".repeat(63)));
}

#[tokio::test]
async fn granting_the_active_relationship_other_scopes_changes_them() {
    RelationshipTest::with(services())
        .given(vec![granted(&BOTH)])
        .when_async(grant(&[PartnerScope::AccessCases]))
        .await
        .then_expect_events(vec![
            PartnerRelationshipEvent::PartnerRelationshipScopesChanged(RelationshipScopesChanged {
                from: BOTH.to_vec(),
                to: vec![PartnerScope::AccessCases],
                by: org_admin(),
                at: now(),
            }),
        ]);
}

#[tokio::test]
async fn granting_the_scopes_it_already_has_appends_nothing() {
    RelationshipTest::with(services())
        .given(vec![granted(&BOTH)])
        .when_async(grant(&[
            PartnerScope::AccessCases,
            PartnerScope::ViewCustomers,
        ]))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn either_side_ends_an_active_relationship_and_it_says_which() {
    for by in [
        org_admin(),
        partner(),
        Actor::new("root@support.test", ActorRole::Admin),
    ] {
        RelationshipTest::with(services())
            .given(vec![granted(&BOTH)])
            .when_async(PartnerRelationshipCommand::End(EndRelationship {
                by: by.clone(),
            }))
            .await
            .then_expect_events(vec![ended(by)]);
    }
    assert_eq!(EndedBy::of(&partner()), EndedBy::Partner);
    assert_eq!(EndedBy::of(&org_admin()), EndedBy::Customer);
}

#[tokio::test]
async fn a_relationship_that_is_not_active_cannot_be_ended() {
    RelationshipTest::with(services())
        .given_no_previous_events()
        .when_async(PartnerRelationshipCommand::End(EndRelationship {
            by: org_admin(),
        }))
        .await
        .then_expect_error(RelationshipError::NotActive);
    RelationshipTest::with(services())
        .given(vec![granted(&BOTH), ended(partner())])
        .when_async(PartnerRelationshipCommand::End(EndRelationship {
            by: org_admin(),
        }))
        .await
        .then_expect_error(RelationshipError::NotActive);
}

#[tokio::test]
async fn an_ended_relationship_can_be_granted_again() {
    RelationshipTest::with(services())
        .given(vec![granted(&BOTH), ended(partner())])
        .when_async(grant(&[PartnerScope::ViewCustomers]))
        .await
        .then_expect_events(vec![granted(&[PartnerScope::ViewCustomers])]);
}

#[tokio::test]
async fn a_stream_never_takes_a_grant_for_another_org_or_partner() {
    RelationshipTest::with(services())
        .given(vec![granted(&BOTH)])
        .when_async(PartnerRelationshipCommand::Grant(GrantRelationship {
            org_id: "globex".into(),
            partner_id: "p-cloudwise".into(),
            scopes: BOTH.to_vec(),
            by: org_admin(),
        }))
        .await
        .then_expect_error(RelationshipError::WrongStream);
}

#[test]
fn the_state_says_whether_the_last_event_was_a_grant() {
    let mut relationship = PartnerRelationship::default();
    assert!(!relationship.exists());
    cqrs_es::Aggregate::apply(&mut relationship, granted(&BOTH));
    assert!(relationship.is_active() && relationship.newly_granted);
    cqrs_es::Aggregate::apply(&mut relationship, ended(partner()));
    assert_eq!(relationship.status, RelationshipStatus::Ended);
    assert!(!relationship.newly_granted);
    assert_eq!(relationship_id("acme", "p-cloudwise"), "acme/p-cloudwise");
}
