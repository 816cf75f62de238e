use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::{Actor, ActorRole, ManualClock};

type CaseTest = TestFramework<SupportCase>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid instant")
}

fn services() -> CaseServices {
    CaseServices::new(Arc::new(ManualClock::new(t0())), CasePolicy::default())
}

fn customer() -> Actor {
    Actor::new("ann@acme.test", ActorRole::Customer)
}

fn agent() -> Actor {
    Actor::new("sam@support.test", ActorRole::Agent)
}

fn case_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

fn open_command(impact: u8) -> OpenCase {
    OpenCase {
        case_id: case_id(),
        key: "CASE-1001".into(),
        org_id: "acme".into(),
        requester: "ann@acme.test".into(),
        product: "jira".into(),
        summary: "Board does not load".into(),
        description: "Since this morning".into(),
        impact,
        opened_by: customer(),
    }
}

fn opened(impact: u8, due_after: Duration) -> SupportCaseEvent {
    let cmd = open_command(impact);
    SupportCaseEvent::CaseOpened(CaseOpened {
        case_id: cmd.case_id,
        key: cmd.key,
        org_id: cmd.org_id,
        requester: cmd.requester,
        product: cmd.product,
        summary: cmd.summary,
        description: cmd.description,
        impact,
        opened_by: cmd.opened_by,
        opened_at: t0(),
        first_response_due: t0() + due_after,
    })
}

fn comment(author: Actor, visibility: Visibility) -> AddComment {
    AddComment {
        comment_id: Uuid::from_u128(7),
        author,
        body: "Here are the logs".into(),
        visibility,
    }
}

#[tokio::test]
async fn opening_a_case_records_the_first_response_due_time_of_its_impact_level() {
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(open_command(2)))
        .await
        .then_expect_events(vec![opened(2, Duration::hours(4))]);
}

#[tokio::test]
async fn an_impact_level_outside_one_to_four_is_refused() {
    for impact in [0, 5] {
        CaseTest::with(services())
            .given_no_previous_events()
            .when_async(SupportCaseCommand::Open(open_command(impact)))
            .await
            .then_expect_error(CaseError::InvalidImpact);
    }
}

#[tokio::test]
async fn a_summary_longer_than_255_characters_is_refused() {
    let mut cmd = open_command(3);
    cmd.summary = "é".repeat(256);
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::InvalidSummary);
}

#[tokio::test]
async fn a_blank_summary_is_refused() {
    let mut cmd = open_command(3);
    cmd.summary = "   ".into();
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::InvalidSummary);
}

#[tokio::test]
async fn a_case_cannot_be_opened_twice() {
    CaseTest::with(services())
        .given(vec![opened(3, Duration::hours(8))])
        .when_async(SupportCaseCommand::Open(open_command(3)))
        .await
        .then_expect_error(CaseError::AlreadyOpened);
}

#[tokio::test]
async fn a_public_comment_is_recorded_with_the_clock_time() {
    CaseTest::with(services())
        .given(vec![opened(3, Duration::hours(8))])
        .when_async(SupportCaseCommand::Comment(comment(
            customer(),
            Visibility::Public,
        )))
        .await
        .then_expect_events(vec![SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: Uuid::from_u128(7),
            author: customer(),
            body: "Here are the logs".into(),
            visibility: Visibility::Public,
            at: t0(),
        })]);
}

#[tokio::test]
async fn a_customer_cannot_write_an_internal_comment() {
    CaseTest::with(services())
        .given(vec![opened(3, Duration::hours(8))])
        .when_async(SupportCaseCommand::Comment(comment(
            customer(),
            Visibility::Internal,
        )))
        .await
        .then_expect_error(CaseError::InternalCommentNotAllowed);
}

#[tokio::test]
async fn an_agent_may_write_an_internal_comment() {
    let result = CaseTest::with(services())
        .given(vec![opened(3, Duration::hours(8))])
        .when_async(SupportCaseCommand::Comment(comment(
            agent(),
            Visibility::Internal,
        )))
        .await
        .inspect_result();
    let events = result.expect("agents write internal comments");
    assert!(matches!(
        events.as_slice(),
        [SupportCaseEvent::CommentAdded(CommentAdded {
            visibility: Visibility::Internal,
            ..
        })]
    ));
}

#[tokio::test]
async fn an_empty_comment_is_refused() {
    let mut cmd = comment(customer(), Visibility::Public);
    cmd.body = " \n ".into();
    CaseTest::with(services())
        .given(vec![opened(3, Duration::hours(8))])
        .when_async(SupportCaseCommand::Comment(cmd))
        .await
        .then_expect_error(CaseError::EmptyComment);
}

#[tokio::test]
async fn commenting_on_a_case_that_was_never_opened_is_refused() {
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Comment(comment(
            customer(),
            Visibility::Public,
        )))
        .await
        .then_expect_error(CaseError::NotFound);
}
