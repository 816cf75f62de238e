use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::persist::SerializedEvent;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::{Actor, ActorRole, DomainError, ManualClock};

type CaseTest = TestFramework<SupportCase>;

mod resolution;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid instant")
}

/// Services whose clock reads `now`.
fn at(now: DateTime<Utc>) -> CaseServices {
    CaseServices::new(Arc::new(ManualClock::new(now)), CasePolicy::default())
}

fn services() -> CaseServices {
    at(t0())
}

fn customer() -> Actor {
    Actor::new("ann@acme.test", ActorRole::Customer)
}

fn colleague() -> Actor {
    Actor::new("carl@acme.test", ActorRole::Customer)
}

fn partner() -> Actor {
    Actor::new("pat@partner.test", ActorRole::Partner)
}

fn agent() -> Actor {
    Actor::new("sam@support.test", ActorRole::Agent)
}

fn auditor() -> Actor {
    Actor::new("audrey@support.test", ActorRole::Auditor)
}

fn system() -> Actor {
    Actor::system()
}

fn case_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

fn comment_id() -> Uuid {
    Uuid::from_u128(7)
}

fn entitlement(org: &str, status: &str) -> EntitlementLookup {
    EntitlementLookup::Found(EntitlementFacts {
        number: "E-1111-2222-3333".into(),
        subscription_id: Uuid::from_u128(42),
        org_id: org.into(),
        product: "jira-software".into(),
        status: status.into(),
    })
}

fn open_command(impact: u8) -> OpenCase {
    OpenCase {
        case_id: case_id(),
        key: "CASE-1001".into(),
        org_id: "acme".into(),
        requester: "ann@acme.test".into(),
        on_behalf_of: None,
        product: "jira".into(),
        product_version: Some("9.12".into()),
        entitlement: entitlement("acme", "active"),
        summary: "Board does not load".into(),
        description: "Since this morning".into(),
        impact,
        participants: vec!["Carl@Acme.test".into()],
        phone: Some("+81 3 1234 5678".into()),
        data_access_consent: true,
        follow_up_of: None,
        request_type: RequestType::Technical,
        opened_by: customer(),
    }
}

fn opened_event(impact: u8, due_after: Duration) -> CaseOpened {
    CaseOpened {
        case_id: case_id(),
        key: "CASE-1001".into(),
        org_id: "acme".into(),
        requester: "ann@acme.test".into(),
        product: "jira".into(),
        product_version: Some("9.12".into()),
        entitlement_number: Some("E-1111-2222-3333".into()),
        subscription_id: Some(Uuid::from_u128(42)),
        summary: "Board does not load".into(),
        description: "Since this morning".into(),
        impact,
        priority: impact,
        participants: vec!["carl@acme.test".into()],
        phone: Some("+81 3 1234 5678".into()),
        data_access_consent: true,
        follow_up_of: None,
        request_type: RequestType::Technical,
        opened_by: customer(),
        opened_at: t0(),
        first_response_due: t0() + due_after,
        first_response_warning_at: Some(t0() + due_after * 3 / 4),
        resolution: None,
    }
}

/// The resolution clock of `priority` started at `start` on an always-open calendar (a
/// business day is 24 hours): L1 1 day, L2 3, L3 5, L4 10; warned at 75%.
fn resolution_clock(priority: u8, start: DateTime<Utc>) -> ResolutionClock {
    let days = [1, 3, 5, 10][usize::from(priority) - 1];
    let target = Duration::days(days);
    ResolutionClock {
        target_seconds: target.num_seconds(),
        elapsed_seconds: 0,
        running_since: Some(start),
        due: Some(start + target),
        warning_at: Some(start + target * 3 / 4),
    }
}

/// What opening appends: the event with its resolution clock (on an always-open calendar
/// unless `e` names one).
fn opening(mut e: CaseOpened) -> Vec<SupportCaseEvent> {
    e.resolution = e
        .resolution
        .or_else(|| Some(resolution_clock(e.priority, e.opened_at)));
    vec![SupportCaseEvent::CaseOpened(e)]
}

/// A case opened at t0 with impact 3 (first response due after 8 hours).
fn opened() -> SupportCaseEvent {
    SupportCaseEvent::CaseOpened(opened_event(3, Duration::hours(8)))
}

fn comment_by(author: Actor, visibility: Visibility) -> SupportCaseCommand {
    SupportCaseCommand::Comment(AddComment {
        comment_id: comment_id(),
        author,
        body: "Here are the logs".into(),
        visibility,
    })
}

fn comment_added(author: Actor, visibility: Visibility, when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::CommentAdded(CommentAdded {
        comment_id: comment_id(),
        author,
        body: "Here are the logs".into(),
        visibility,
        at: when,
        next_reply: None,
    })
}

fn investigating(when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::InvestigationStarted(InvestigationStarted {
        by: agent(),
        at: when,
        resolution: None,
    })
}

fn info_requested(when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::CustomerInfoRequested(CustomerInfoRequested {
        comment_id: comment_id(),
        by: agent(),
        at: when,
        resolution: None,
    })
}

fn responded(since: DateTime<Utc>, when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::CustomerResponded(CustomerResponded {
        comment_id: comment_id(),
        by: customer(),
        waiting_since: since,
        at: when,
        resolution: None,
    })
}

fn resolved(when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::CaseResolved(CaseResolved {
        by: agent(),
        at: when,
        resolution: None,
    })
}

fn closed(resolved_at: DateTime<Utc>, when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::CaseClosed(CaseClosed {
        resolved_at,
        at: when,
    })
}

fn escalation_requested(when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::EscalationRequested(EscalationRequested {
        reason: "Production is down".into(),
        by: customer(),
        at: when,
    })
}

fn auto_resolve() -> SupportCaseCommand {
    SupportCaseCommand::AutoResolve(AutoResolve { by: system() })
}

fn close() -> SupportCaseCommand {
    SupportCaseCommand::Close(CloseCase { by: system() })
}

fn request_info(by: Actor) -> SupportCaseCommand {
    SupportCaseCommand::RequestInfo(RequestInfo {
        comment_id: comment_id(),
        body: "Which browser do you use?".into(),
        by,
    })
}

fn attachment(size: u64) -> SupportCaseCommand {
    SupportCaseCommand::AddAttachment(AddAttachment {
        attachment_id: Uuid::from_u128(9),
        name: "support.zip".into(),
        size,
        content_type: "application/zip".into(),
        sha256: "AB".repeat(32),
        by: customer(),
    })
}

fn participant_email(i: usize) -> String {
    format!("user{i}@acme.test")
}

// ---------------------------------------------------------------------------------------
// Opening

#[tokio::test]
async fn opening_a_case_records_the_first_response_due_time_of_its_impact_level() {
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(open_command(2)))
        .await
        .then_expect_events(opening(opened_event(2, Duration::hours(4))));
}

/// Services at `now` whose orgs work 09:00-18:00 Monday to Friday in Tokyo.
fn in_tokyo(now: DateTime<Utc>) -> CaseServices {
    let hours = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .map(|d| {
            (
                d.to_string(),
                vec![["09:00".to_string(), "18:00".to_string()]],
            )
        })
        .collect();
    let spec = crate::calendar::CalendarSpec {
        timezone: "Asia/Tokyo".into(),
        hours,
        holidays: Vec::new(),
    };
    let calendar = crate::calendar::Calendar::parse(&spec).expect("a valid calendar");
    at(now).with_calendars(Arc::new(crate::calendar::OneCalendar(calendar)))
}

#[tokio::test]
async fn given_a_business_calendar_the_first_response_is_due_in_its_business_hours() {
    // t0 is Monday 18:00 in Tokyo, closing time: the 4 hours of impact 2 run from Tuesday
    // 09:00 to 13:00 (04:00 UTC), 19 hours later.
    CaseTest::with(in_tokyo(t0()))
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(open_command(2)))
        .await
        .then_expect_events(vec![SupportCaseEvent::CaseOpened(CaseOpened {
            // 75% of 4 business hours is 3: Tuesday 12:00 in Tokyo.
            first_response_warning_at: Some(t0() + Duration::hours(18)),
            // Impact 2 is resolved in 3 business days of 9 hours, counted from Tuesday 09:00:
            // due Thursday 18:00 in Tokyo (09:00 UTC), warned at 75% (20 h 15 min of business
            // time) on Thursday at 11:15.
            resolution: Some(ResolutionClock {
                target_seconds: 27 * 3600,
                elapsed_seconds: 0,
                running_since: Some(t0()),
                due: Some(t0() + Duration::hours(72)),
                warning_at: Some(t0() + Duration::minutes(65 * 60 + 15)),
            }),
            ..opened_event(2, Duration::hours(19))
        })]);
}

#[tokio::test]
async fn given_a_business_calendar_a_priority_change_recounts_from_the_opening_in_business_time() {
    let now = t0() + Duration::minutes(30);
    CaseTest::with(in_tokyo(now))
        .given(vec![opened()])
        .when_async(SupportCaseCommand::ChangePriority(ChangePriority {
            priority: 1,
            by: agent(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::PriorityChanged(PriorityChanged {
            from: 3,
            to: 1,
            // Tuesday 10:00 in Tokyo; the warning at 45 business minutes, 09:45.
            first_response_due: t0() + Duration::hours(16),
            first_response_warning_at: Some(t0() + Duration::hours(15) + Duration::minutes(45)),
            by: agent(),
            at: now,
            resolution: None,
        })]);
}

/// A calendar source that cannot be read.
#[derive(Debug)]
struct CalendarsDown;

#[async_trait::async_trait]
impl crate::calendar::Calendars for CalendarsDown {
    async fn calendar_of(
        &self,
        _org_id: &str,
    ) -> Result<crate::calendar::Calendar, crate::calendar::CalendarUnavailable> {
        Err(crate::calendar::CalendarUnavailable(
            "connection refused".into(),
        ))
    }
}

#[tokio::test]
async fn when_the_calendar_cannot_be_read_opening_is_refused_as_an_outage_and_nothing_is_written() {
    let error = CaseTest::with(services().with_calendars(Arc::new(CalendarsDown)))
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(open_command(2)))
        .await
        .inspect_result()
        .expect_err("refused");
    assert_eq!(
        error,
        CaseError::CalendarUnavailable("connection refused".into())
    );
    assert_eq!(error.code(), "calendar_unavailable");
    assert!(error.is_outage());
    assert!(!CaseError::InvalidImpact.is_outage());
}

#[tokio::test]
async fn each_impact_level_has_its_own_first_response_target() {
    for (impact, hours) in [(1, 1), (2, 4), (3, 8), (4, 16)] {
        CaseTest::with(services())
            .given_no_previous_events()
            .when_async(SupportCaseCommand::Open(open_command(impact)))
            .await
            .then_expect_events(opening(opened_event(impact, Duration::hours(hours))));
    }
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
async fn a_summary_of_exactly_255_characters_is_accepted() {
    let mut cmd = open_command(3);
    cmd.summary = "é".repeat(255);
    let events = CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .inspect_result()
        .expect("255 characters fit");
    assert_eq!(events.len(), 1);
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
        .given(vec![opened()])
        .when_async(SupportCaseCommand::Open(open_command(3)))
        .await
        .then_expect_error(CaseError::AlreadyOpened);
}

#[tokio::test]
async fn opening_without_an_entitlement_is_refused_by_default() {
    let mut cmd = open_command(3);
    cmd.entitlement = EntitlementLookup::NotGiven;
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::EntitlementRequired);
}

#[tokio::test]
async fn without_that_policy_a_case_opens_without_an_entitlement_but_names_its_product() {
    let mut cmd = open_command(3);
    cmd.entitlement = EntitlementLookup::NotGiven;
    let mut expected = opened_event(3, Duration::hours(8));
    expected.entitlement_number = None;
    expected.subscription_id = None;
    let lenient = || {
        CaseServices::new(
            Arc::new(ManualClock::new(t0())),
            CasePolicy {
                require_entitlement: false,
                ..CasePolicy::default()
            },
        )
    };
    CaseTest::with(lenient())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd.clone()))
        .await
        .then_expect_events(opening(expected));
    cmd.product = String::new();
    CaseTest::with(lenient())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::Required("product"));
}

#[tokio::test]
async fn an_unknown_entitlement_and_one_of_another_org_are_refused_alike() {
    for lookup in [
        EntitlementLookup::NotFound,
        entitlement("globex", "active"),
        // Another org's inactive entitlement says nothing about its status either.
        entitlement("globex", "cancelled"),
    ] {
        let mut cmd = open_command(3);
        cmd.entitlement = lookup;
        CaseTest::with(services())
            .given_no_previous_events()
            .when_async(SupportCaseCommand::Open(cmd))
            .await
            .then_expect_error(CaseError::EntitlementNotOfOrg);
    }
}

#[tokio::test]
async fn an_entitlement_that_is_not_active_or_non_renewing_is_refused() {
    for status in ["cancelled", "expired", "upcoming"] {
        let mut cmd = open_command(3);
        cmd.entitlement = entitlement("acme", status);
        CaseTest::with(services())
            .given_no_previous_events()
            .when_async(SupportCaseCommand::Open(cmd))
            .await
            .then_expect_error(CaseError::EntitlementInactive {
                status: status.into(),
            });
    }
}

#[tokio::test]
async fn a_non_renewing_subscription_still_supports_cases() {
    let mut cmd = open_command(3);
    cmd.entitlement = entitlement("acme", "non_renewing");
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_events(opening(opened_event(3, Duration::hours(8))));
}

#[tokio::test]
async fn the_product_defaults_to_the_entitlements_product() {
    let mut cmd = open_command(3);
    cmd.product = " ".into();
    let events = CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .inspect_result()
        .expect("opened");
    assert!(matches!(
        events.as_slice(),
        [SupportCaseEvent::CaseOpened(CaseOpened { product, .. })] if product == "jira-software"
    ));
}

#[tokio::test]
async fn a_customer_opening_on_behalf_of_a_colleague_makes_them_requester_and_keeps_following() {
    let mut cmd = open_command(3);
    cmd.on_behalf_of = Some("Dora@Acme.test".into());
    cmd.participants = Vec::new();
    let mut expected = opened_event(3, Duration::hours(8));
    expected.requester = "dora@acme.test".into();
    expected.participants = vec!["ann@acme.test".into()];
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_events(opening(expected));
}

#[tokio::test]
async fn an_agent_opening_on_behalf_of_a_customer_does_not_follow_the_case() {
    let mut cmd = open_command(3);
    cmd.requester = agent().id;
    cmd.opened_by = agent();
    cmd.on_behalf_of = Some("ann@acme.test".into());
    let mut expected = opened_event(3, Duration::hours(8));
    expected.opened_by = agent();
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_events(opening(expected));
}

#[tokio::test]
async fn participants_are_lower_cased_deduplicated_and_never_the_requester() {
    let mut cmd = open_command(3);
    cmd.participants = vec![
        "Carl@acme.test".into(),
        "carl@ACME.test".into(),
        "ANN@acme.test".into(),
        " dora@acme.test ".into(),
    ];
    let events = CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .inspect_result()
        .expect("opened");
    let [SupportCaseEvent::CaseOpened(e)] = events.as_slice() else {
        panic!("one CaseOpened expected, got {events:?}");
    };
    assert_eq!(e.participants, ["carl@acme.test", "dora@acme.test"]);
}

#[tokio::test]
async fn a_case_opens_with_at_most_48_participants() {
    let mut cmd = open_command(3);
    cmd.participants = (0..48).map(participant_email).collect();
    let events = CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd.clone()))
        .await
        .inspect_result()
        .expect("48 participants fit");
    assert_eq!(events.len(), 1);

    cmd.participants = (0..49).map(participant_email).collect();
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::TooManyParticipants { max: 48 });
}

#[tokio::test]
async fn a_participant_that_is_not_an_e_mail_address_is_refused() {
    for bad in ["carl", "carl@", "@acme.test", "carl @acme.test", "a@b@c"] {
        let mut cmd = open_command(3);
        cmd.participants = vec![bad.into()];
        CaseTest::with(services())
            .given_no_previous_events()
            .when_async(SupportCaseCommand::Open(cmd))
            .await
            .then_expect_error(CaseError::InvalidEmail(bad.trim().into()));
    }
}

#[tokio::test]
async fn a_phone_number_or_product_version_that_is_too_long_is_refused() {
    let mut cmd = open_command(3);
    cmd.phone = Some("1".repeat(65));
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::TooLong {
            field: "phone",
            max: 64,
        });
    let mut cmd = open_command(3);
    cmd.product_version = Some("9".repeat(256));
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::TooLong {
            field: "product_version",
            max: 255,
        });
}

#[tokio::test]
async fn a_case_follows_up_an_earlier_case_of_its_own_org_only() {
    let earlier = Uuid::from_u128(99);
    let mut cmd = open_command(3);
    cmd.follow_up_of = Some(EarlierCase {
        case_id: earlier,
        org_id: "acme".into(),
    });
    let mut expected = opened_event(3, Duration::hours(8));
    expected.follow_up_of = Some(earlier);
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd.clone()))
        .await
        .then_expect_events(opening(expected));
    cmd.follow_up_of = Some(EarlierCase {
        case_id: earlier,
        org_id: "globex".into(),
    });
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .then_expect_error(CaseError::FollowUpOfAnotherOrg);
}

#[tokio::test]
async fn auditors_do_not_open_cases() {
    let mut cmd = open_command(3);
    cmd.opened_by = auditor();
    let error = CaseTest::with(services())
        .given_no_previous_events()
        .when_async(SupportCaseCommand::Open(cmd))
        .await
        .inspect_result()
        .expect_err("refused");
    assert_eq!(error.code(), "not_allowed");
}

// ---------------------------------------------------------------------------------------
// Comments and the first response

#[tokio::test]
async fn a_public_comment_is_recorded_with_the_clock_time() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![comment_added(customer(), Visibility::Public, t0())]);
}

#[tokio::test]
async fn a_customer_cannot_write_an_internal_comment() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(comment_by(customer(), Visibility::Internal))
        .await
        .then_expect_error(CaseError::InternalCommentNotAllowed);
}

#[tokio::test]
async fn a_partner_cannot_write_an_internal_comment() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(comment_by(partner(), Visibility::Internal))
        .await
        .then_expect_error(CaseError::InternalCommentNotAllowed);
}

#[tokio::test]
async fn an_internal_agent_comment_is_no_first_response() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(comment_by(agent(), Visibility::Internal))
        .await
        .then_expect_events(vec![comment_added(agent(), Visibility::Internal, t0())]);
}

#[tokio::test]
async fn the_first_public_agent_comment_stops_the_first_response_clock() {
    let now = t0() + Duration::hours(2);
    CaseTest::with(at(now))
        .given(vec![opened()])
        .when_async(comment_by(agent(), Visibility::Public))
        .await
        .then_expect_events(vec![
            comment_added(agent(), Visibility::Public, now),
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                comment_id: comment_id(),
                by: agent(),
                due: t0() + Duration::hours(8),
                breached: false,
                at: now,
            }),
        ]);
}

#[tokio::test]
async fn a_first_response_after_the_due_time_is_recorded_as_breached() {
    let now = t0() + Duration::hours(8) + Duration::seconds(1);
    let events = CaseTest::with(at(now))
        .given(vec![opened()])
        .when_async(comment_by(agent(), Visibility::Public))
        .await
        .inspect_result()
        .expect("commented");
    assert!(matches!(
        events.as_slice(),
        [
            _,
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven { breached: true, .. })
        ]
    ));
}

#[tokio::test]
async fn only_the_first_public_agent_comment_is_a_first_response() {
    let now = t0() + Duration::hours(3);
    CaseTest::with(at(now))
        .given(vec![
            opened(),
            comment_added(agent(), Visibility::Public, t0() + Duration::hours(1)),
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                comment_id: comment_id(),
                by: agent(),
                due: t0() + Duration::hours(8),
                breached: false,
                at: t0() + Duration::hours(1),
            }),
        ])
        .when_async(comment_by(agent(), Visibility::Public))
        .await
        .then_expect_events(vec![comment_added(agent(), Visibility::Public, now)]);
}

#[tokio::test]
async fn an_empty_comment_is_refused() {
    let command = SupportCaseCommand::Comment(AddComment {
        comment_id: comment_id(),
        author: customer(),
        body: " \n ".into(),
        visibility: Visibility::Public,
    });
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(command)
        .await
        .then_expect_error(CaseError::EmptyComment);
}

#[tokio::test]
async fn commenting_on_a_case_that_was_never_opened_is_refused() {
    CaseTest::with(services())
        .given_no_previous_events()
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_error(CaseError::NotFound);
}

#[tokio::test]
async fn auditors_do_not_comment() {
    let error = CaseTest::with(services())
        .given(vec![opened()])
        .when_async(comment_by(auditor(), Visibility::Public))
        .await
        .inspect_result()
        .expect_err("refused");
    assert_eq!(error.code(), "not_allowed");
}

// ---------------------------------------------------------------------------------------
// Assignment, investigation, priority

#[tokio::test]
async fn an_agent_assigns_the_case() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::Assign(AssignCase {
            assignee: "Sam@Support.test".into(),
            by: agent(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::CaseAssigned(CaseAssigned {
            assignee: "sam@support.test".into(),
            previous: None,
            by: agent(),
            at: t0(),
        })]);
}

#[tokio::test]
async fn assigning_the_current_assignee_again_changes_nothing() {
    CaseTest::with(services())
        .given(vec![
            opened(),
            SupportCaseEvent::CaseAssigned(CaseAssigned {
                assignee: "sam@support.test".into(),
                previous: None,
                by: agent(),
                at: t0(),
            }),
        ])
        .when_async(SupportCaseCommand::Assign(AssignCase {
            assignee: "sam@support.test".into(),
            by: agent(),
        }))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_customer_cannot_assign_a_case() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::Assign(AssignCase {
            assignee: "ann@acme.test".into(),
            by: customer(),
        }))
        .await
        .then_expect_error(CaseError::NotAllowed("only support staff assign cases"));
}

#[tokio::test]
async fn investigation_starts_from_open() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::StartInvestigation(StartInvestigation {
            by: agent(),
        }))
        .await
        .then_expect_events(vec![investigating(t0())]);
}

#[tokio::test]
async fn investigation_starts_from_waiting_and_ends_the_wait() {
    let asked = t0() + Duration::hours(1);
    let now = t0() + Duration::hours(2);
    CaseTest::with(at(now))
        .given(vec![opened(), info_requested(asked)])
        .when_async(SupportCaseCommand::StartInvestigation(StartInvestigation {
            by: agent(),
        }))
        .await
        .then_expect_events(vec![investigating(now)]);
    // The wait is over: a timer at the old due time finds nothing to do.
    CaseTest::with(at(asked + Duration::days(5)))
        .given(vec![opened(), info_requested(asked), investigating(now)])
        .when_async(auto_resolve())
        .await
        .then_expect_error(CaseError::NotDue(
            "the case is investigating, not waiting for the customer".into(),
        ));
}

#[tokio::test]
async fn investigation_cannot_start_on_a_case_already_investigated_or_resolved() {
    for (given, status) in [
        (
            vec![opened(), investigating(t0())],
            CaseStatus::Investigating,
        ),
        (vec![opened(), resolved(t0())], CaseStatus::Resolved),
    ] {
        CaseTest::with(services())
            .given(given)
            .when_async(SupportCaseCommand::StartInvestigation(StartInvestigation {
                by: agent(),
            }))
            .await
            .then_expect_error(CaseError::InvalidStatus {
                action: "start investigating",
                status,
            });
    }
}

#[tokio::test]
async fn a_customer_cannot_start_the_investigation() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::StartInvestigation(StartInvestigation {
            by: customer(),
        }))
        .await
        .then_expect_error(CaseError::NotAllowed(
            "only support staff investigate cases",
        ));
}

#[tokio::test]
async fn a_priority_change_recomputes_the_first_response_due_time_from_the_opening() {
    let now = t0() + Duration::minutes(30);
    CaseTest::with(at(now))
        .given(vec![opened()])
        .when_async(SupportCaseCommand::ChangePriority(ChangePriority {
            priority: 1,
            by: agent(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::PriorityChanged(PriorityChanged {
            from: 3,
            to: 1,
            first_response_due: t0() + Duration::hours(1),
            first_response_warning_at: Some(t0() + Duration::minutes(45)),
            by: agent(),
            at: now,
            resolution: None,
        })]);
}

#[tokio::test]
async fn the_first_response_is_judged_against_the_recomputed_due_time() {
    let now = t0() + Duration::hours(2);
    let events = CaseTest::with(at(now))
        .given(vec![
            opened(),
            SupportCaseEvent::PriorityChanged(PriorityChanged {
                from: 3,
                to: 1,
                first_response_due: t0() + Duration::hours(1),
                first_response_warning_at: Some(t0() + Duration::minutes(45)),
                by: agent(),
                at: t0(),
                resolution: None,
            }),
        ])
        .when_async(comment_by(agent(), Visibility::Public))
        .await
        .inspect_result()
        .expect("commented");
    assert!(matches!(
        events.as_slice(),
        [_, SupportCaseEvent::FirstResponseGiven(FirstResponseGiven { breached: true, due, .. })]
            if *due == t0() + Duration::hours(1)
    ));
}

#[tokio::test]
async fn setting_the_same_priority_changes_nothing() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::ChangePriority(ChangePriority {
            priority: 3,
            by: agent(),
        }))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_priority_outside_one_to_four_is_refused() {
    for priority in [0, 5] {
        CaseTest::with(services())
            .given(vec![opened()])
            .when_async(SupportCaseCommand::ChangePriority(ChangePriority {
                priority,
                by: agent(),
            }))
            .await
            .then_expect_error(CaseError::InvalidPriority);
    }
}

#[tokio::test]
async fn a_customer_cannot_change_the_priority() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::ChangePriority(ChangePriority {
            priority: 1,
            by: customer(),
        }))
        .await
        .then_expect_error(CaseError::NotAllowed(
            "only support staff change the priority",
        ));
}

// ---------------------------------------------------------------------------------------
// Waiting for the customer

#[tokio::test]
async fn requesting_information_comments_and_waits_for_the_customer() {
    let now = t0() + Duration::hours(1);
    CaseTest::with(at(now))
        .given(vec![opened(), investigating(t0())])
        .when_async(request_info(agent()))
        .await
        .then_expect_events(vec![
            SupportCaseEvent::CommentAdded(CommentAdded {
                comment_id: comment_id(),
                author: agent(),
                body: "Which browser do you use?".into(),
                visibility: Visibility::Public,
                at: now,
                next_reply: None,
            }),
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                comment_id: comment_id(),
                by: agent(),
                due: t0() + Duration::hours(8),
                breached: false,
                at: now,
            }),
            info_requested(now),
        ]);
}

#[tokio::test]
async fn a_later_information_request_is_no_first_response() {
    let events = CaseTest::with(services())
        .given(vec![
            opened(),
            comment_added(agent(), Visibility::Public, t0()),
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                comment_id: comment_id(),
                by: agent(),
                due: t0() + Duration::hours(8),
                breached: false,
                at: t0(),
            }),
        ])
        .when_async(request_info(agent()))
        .await
        .inspect_result()
        .expect("asked");
    let names: Vec<&str> = events.iter().map(SupportCaseEvent::name).collect();
    assert_eq!(names, ["CommentAdded", "CustomerInfoRequested"]);
}

#[tokio::test]
async fn information_cannot_be_requested_on_a_resolved_case() {
    CaseTest::with(services())
        .given(vec![opened(), resolved(t0())])
        .when_async(request_info(agent()))
        .await
        .then_expect_error(CaseError::InvalidStatus {
            action: "request information on",
            status: CaseStatus::Resolved,
        });
}

#[tokio::test]
async fn only_staff_request_information() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(request_info(customer()))
        .await
        .then_expect_error(CaseError::NotAllowed(
            "only support staff ask the customer for information",
        ));
}

#[tokio::test]
async fn an_information_request_needs_a_question() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::RequestInfo(RequestInfo {
            comment_id: comment_id(),
            body: "  ".into(),
            by: agent(),
        }))
        .await
        .then_expect_error(CaseError::EmptyComment);
}

#[tokio::test]
async fn a_customer_reply_while_waiting_sends_the_case_back_to_investigating() {
    let asked = t0() + Duration::hours(1);
    let now = t0() + Duration::days(1);
    CaseTest::with(at(now))
        .given(vec![opened(), info_requested(asked)])
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![
            comment_added(customer(), Visibility::Public, now),
            responded(asked, now),
        ]);
}

#[tokio::test]
async fn a_partner_reply_while_waiting_counts_as_the_customers() {
    let events = CaseTest::with(services())
        .given(vec![opened(), info_requested(t0())])
        .when_async(comment_by(partner(), Visibility::Public))
        .await
        .inspect_result()
        .expect("replied");
    let names: Vec<&str> = events.iter().map(SupportCaseEvent::name).collect();
    assert_eq!(names, ["CommentAdded", "CustomerResponded"]);
}

#[tokio::test]
async fn an_agent_comment_while_waiting_keeps_the_case_waiting() {
    let now = t0() + Duration::hours(2);
    CaseTest::with(at(now))
        .given(vec![
            opened(),
            comment_added(agent(), Visibility::Public, t0()),
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                comment_id: comment_id(),
                by: agent(),
                due: t0() + Duration::hours(8),
                breached: false,
                at: t0(),
            }),
            info_requested(t0()),
        ])
        .when_async(comment_by(agent(), Visibility::Internal))
        .await
        .then_expect_events(vec![comment_added(agent(), Visibility::Internal, now)]);
}

#[tokio::test]
async fn customer_reply_while_waiting_cancels_auto_resolution() {
    let asked = t0();
    CaseTest::with(at(asked + Duration::days(5)))
        .given(vec![
            opened(),
            info_requested(asked),
            comment_added(customer(), Visibility::Public, asked + Duration::days(4)),
            responded(asked, asked + Duration::days(4)),
        ])
        .when_async(auto_resolve())
        .await
        .then_expect_error(CaseError::NotDue(
            "the case is investigating, not waiting for the customer".into(),
        ));
}

// ---------------------------------------------------------------------------------------
// Automatic resolution

#[tokio::test]
async fn a_case_waiting_exactly_five_days_is_resolved_automatically() {
    let asked = t0() + Duration::hours(1);
    let now = asked + Duration::days(5);
    CaseTest::with(at(now))
        .given(vec![opened(), info_requested(asked)])
        .when_async(auto_resolve())
        .await
        .then_expect_events(vec![SupportCaseEvent::CaseAutoResolved(CaseAutoResolved {
            waiting_since: asked,
            waited_seconds: 5 * 86_400,
            at: now,
        })]);
}

#[tokio::test]
async fn a_case_waiting_five_days_minus_one_second_is_not_due() {
    let asked = t0() + Duration::hours(1);
    let error = CaseTest::with(at(asked + Duration::days(5) - Duration::seconds(1)))
        .given(vec![opened(), info_requested(asked)])
        .when_async(auto_resolve())
        .await
        .inspect_result()
        .expect_err("not due yet");
    assert_eq!(error.code(), "not_due");
    assert!(error.is_not_due());
    assert_eq!(
        error.to_string(),
        "the case has waited 431999 seconds of the 5 days after which it is resolved automatically"
    );
}

#[tokio::test]
async fn a_repeated_auto_resolve_timer_finds_the_case_already_resolved() {
    let asked = t0();
    let first = asked + Duration::days(5);
    CaseTest::with(at(first + Duration::seconds(3)))
        .given(vec![
            opened(),
            info_requested(asked),
            SupportCaseEvent::CaseAutoResolved(CaseAutoResolved {
                waiting_since: asked,
                waited_seconds: 5 * 86_400,
                at: first,
            }),
        ])
        .when_async(auto_resolve())
        .await
        .then_expect_error(CaseError::NotDue(
            "the case is resolved, not waiting for the customer".into(),
        ));
}

#[tokio::test]
async fn a_new_information_request_restarts_the_wait() {
    let first = t0();
    let second = t0() + Duration::days(3);
    let given = vec![opened(), info_requested(first), info_requested(second)];
    let early = CaseTest::with(at(first + Duration::days(5)))
        .given(given.clone())
        .when_async(auto_resolve())
        .await
        .inspect_result();
    assert!(early.is_err_and(|e| e.is_not_due()));
    CaseTest::with(at(second + Duration::days(5)))
        .given(given)
        .when_async(auto_resolve())
        .await
        .then_expect_events(vec![SupportCaseEvent::CaseAutoResolved(CaseAutoResolved {
            waiting_since: second,
            waited_seconds: 5 * 86_400,
            at: second + Duration::days(5),
        })]);
}

#[tokio::test]
async fn the_auto_resolve_duration_is_configurable() {
    let services = CaseServices::new(
        Arc::new(ManualClock::new(t0() + Duration::seconds(3))),
        CasePolicy {
            auto_resolve_after: Duration::seconds(3),
            ..CasePolicy::default()
        },
    );
    let events = CaseTest::with(services)
        .given(vec![opened(), info_requested(t0())])
        .when_async(auto_resolve())
        .await
        .inspect_result()
        .expect("due after 3 seconds");
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn only_the_system_resolves_automatically() {
    CaseTest::with(at(t0() + Duration::days(6)))
        .given(vec![opened(), info_requested(t0())])
        .when_async(SupportCaseCommand::AutoResolve(AutoResolve { by: agent() }))
        .await
        .then_expect_error(CaseError::NotAllowed("only the system runs timed commands"));
}

// ---------------------------------------------------------------------------------------
// Resolution, reopening, closing

#[tokio::test]
async fn an_agent_resolves_a_case() {
    CaseTest::with(services())
        .given(vec![opened(), investigating(t0())])
        .when_async(SupportCaseCommand::Resolve(ResolveCase {
            by: agent(),
            resolution: None,
        }))
        .await
        .then_expect_events(vec![resolved(t0())]);
}

fn resolve_with_note(by: Actor, body: &str) -> SupportCaseCommand {
    SupportCaseCommand::Resolve(ResolveCase {
        by,
        resolution: Some(ResolutionNote {
            comment_id: comment_id(),
            body: body.into(),
        }),
    })
}

fn note_added(author: Actor, when: DateTime<Utc>) -> SupportCaseEvent {
    SupportCaseEvent::CommentAdded(CommentAdded {
        comment_id: comment_id(),
        author,
        body: "Proxy setting fixed".into(),
        visibility: Visibility::Public,
        at: when,
        next_reply: None,
    })
}

#[tokio::test]
async fn an_agents_resolution_note_is_a_public_reply_and_the_first_response_before_the_resolution()
{
    let now = t0() + Duration::hours(2);
    CaseTest::with(at(now))
        .given(vec![opened(), investigating(t0())])
        .when_async(resolve_with_note(agent(), "Proxy setting fixed"))
        .await
        .then_expect_events(vec![
            note_added(agent(), now),
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                comment_id: comment_id(),
                by: agent(),
                due: t0() + Duration::hours(8),
                breached: false,
                at: now,
            }),
            SupportCaseEvent::CaseResolved(CaseResolved {
                by: agent(),
                at: now,
                resolution: None,
            }),
        ]);
}

#[tokio::test]
async fn the_customers_resolution_note_is_their_comment_and_nothing_more() {
    // Waiting for the customer: marking it solved with a note neither answers the question
    // (no CustomerResponded) nor counts as support's first response.
    CaseTest::with(services())
        .given(vec![opened(), info_requested(t0())])
        .when_async(resolve_with_note(customer(), "Proxy setting fixed"))
        .await
        .then_expect_events(vec![
            note_added(customer(), t0()),
            SupportCaseEvent::CaseResolved(CaseResolved {
                by: customer(),
                at: t0(),
                resolution: None,
            }),
        ]);
}

#[tokio::test]
async fn an_empty_resolution_note_is_refused_and_the_case_stays_open() {
    CaseTest::with(services())
        .given(vec![opened(), investigating(t0())])
        .when_async(resolve_with_note(agent(), "  "))
        .await
        .then_expect_error(CaseError::EmptyComment);
}

#[tokio::test]
async fn the_requester_and_a_participant_resolve_a_case_themselves() {
    for by in [customer(), colleague()] {
        CaseTest::with(services())
            .given(vec![opened(), info_requested(t0())])
            .when_async(SupportCaseCommand::Resolve(ResolveCase {
                by: by.clone(),
                resolution: None,
            }))
            .await
            .then_expect_events(vec![SupportCaseEvent::CaseResolved(CaseResolved {
                by,
                at: t0(),
                resolution: None,
            })]);
    }
}

#[tokio::test]
async fn a_resolved_case_cannot_be_resolved_again() {
    CaseTest::with(services())
        .given(vec![opened(), resolved(t0())])
        .when_async(SupportCaseCommand::Resolve(ResolveCase {
            by: customer(),
            resolution: None,
        }))
        .await
        .then_expect_error(CaseError::InvalidStatus {
            action: "resolve",
            status: CaseStatus::Resolved,
        });
}

#[tokio::test]
async fn auditors_do_not_resolve() {
    let error = CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::Resolve(ResolveCase {
            by: auditor(),
            resolution: None,
        }))
        .await
        .inspect_result()
        .expect_err("refused");
    assert_eq!(error.code(), "not_allowed");
}

#[tokio::test]
async fn a_customer_comment_on_a_resolved_case_reopens_it_within_the_window() {
    let resolved_at = t0() + Duration::days(1);
    for now in [
        resolved_at + Duration::hours(1),
        resolved_at + Duration::days(30),
    ] {
        CaseTest::with(at(now))
            .given(vec![opened(), resolved(resolved_at)])
            .when_async(comment_by(customer(), Visibility::Public))
            .await
            .then_expect_events(vec![
                comment_added(customer(), Visibility::Public, now),
                SupportCaseEvent::CaseReopened(CaseReopened {
                    comment_id: comment_id(),
                    by: customer(),
                    resolved_at,
                    at: now,
                    resolution: None,
                }),
            ]);
    }
}

#[tokio::test]
async fn a_customer_comment_after_the_reopen_window_is_refused_with_a_hint_to_open_a_new_case() {
    let resolved_at = t0();
    let error = CaseTest::with(at(resolved_at + Duration::days(30) + Duration::seconds(1)))
        .given(vec![opened(), resolved(resolved_at)])
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .inspect_result()
        .expect_err("too late to reopen");
    assert_eq!(
        error,
        CaseError::ReopenWindowPassed {
            window: "30 days".into()
        }
    );
    assert_eq!(error.code(), "reopen_window_passed");
    assert!(error.to_string().contains("open a new case"));
}

#[tokio::test]
async fn an_agent_comment_on_a_resolved_case_does_not_reopen_it() {
    CaseTest::with(services())
        .given(vec![
            opened(),
            comment_added(agent(), Visibility::Public, t0()),
            SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                comment_id: comment_id(),
                by: agent(),
                due: t0() + Duration::hours(8),
                breached: false,
                at: t0(),
            }),
            resolved(t0()),
        ])
        .when_async(comment_by(agent(), Visibility::Public))
        .await
        .then_expect_events(vec![comment_added(agent(), Visibility::Public, t0())]);
}

#[tokio::test]
async fn a_case_resolved_for_fourteen_days_is_closed() {
    let resolved_at = t0() + Duration::days(1);
    let now = resolved_at + Duration::days(14);
    CaseTest::with(at(now))
        .given(vec![opened(), resolved(resolved_at)])
        .when_async(close())
        .await
        .then_expect_events(vec![closed(resolved_at, now)]);
}

#[tokio::test]
async fn a_case_resolved_for_less_than_fourteen_days_is_not_due_for_closing() {
    let resolved_at = t0();
    for given in [
        vec![opened(), resolved(resolved_at)],
        vec![opened(), investigating(t0())],
    ] {
        let error = CaseTest::with(at(resolved_at + Duration::days(14) - Duration::seconds(1)))
            .given(given)
            .when_async(close())
            .await
            .inspect_result()
            .expect_err("not due");
        assert_eq!(error.code(), "not_due");
    }
}

#[tokio::test]
async fn a_reopened_case_is_not_closed_by_an_old_timer() {
    let resolved_at = t0();
    let error = CaseTest::with(at(resolved_at + Duration::days(14)))
        .given(vec![
            opened(),
            resolved(resolved_at),
            comment_added(customer(), Visibility::Public, t0() + Duration::days(2)),
            SupportCaseEvent::CaseReopened(CaseReopened {
                comment_id: comment_id(),
                by: customer(),
                resolved_at,
                at: t0() + Duration::days(2),
                resolution: None,
            }),
        ])
        .when_async(close())
        .await
        .inspect_result()
        .expect_err("reopened");
    assert!(error.is_not_due());
}

#[tokio::test]
async fn a_closed_case_refuses_every_command() {
    let commands = vec![
        SupportCaseCommand::Assign(AssignCase {
            assignee: "sam@support.test".into(),
            by: agent(),
        }),
        SupportCaseCommand::StartInvestigation(StartInvestigation { by: agent() }),
        comment_by(customer(), Visibility::Public),
        comment_by(agent(), Visibility::Internal),
        request_info(agent()),
        SupportCaseCommand::ChangePriority(ChangePriority {
            priority: 1,
            by: agent(),
        }),
        SupportCaseCommand::AddParticipant(AddParticipant {
            email: "dora@acme.test".into(),
            by: customer(),
        }),
        SupportCaseCommand::RemoveParticipant(RemoveParticipant {
            email: "carl@acme.test".into(),
            by: customer(),
        }),
        attachment(10),
        SupportCaseCommand::RequestEscalation(RequestEscalation {
            reason: "x".into(),
            by: customer(),
        }),
        SupportCaseCommand::AcceptEscalation(AcceptEscalation { by: agent() }),
        SupportCaseCommand::SetDataAccess(SetDataAccess {
            granted: false,
            by: customer(),
        }),
        SupportCaseCommand::Resolve(ResolveCase {
            by: agent(),
            resolution: None,
        }),
        auto_resolve(),
        close(),
    ];
    let resolved_at = t0();
    let closed_at = t0() + Duration::days(14);
    for command in commands {
        CaseTest::with(at(closed_at + Duration::days(1)))
            .given(vec![
                opened(),
                resolved(resolved_at),
                closed(resolved_at, closed_at),
            ])
            .when_async(command)
            .await
            .then_expect_error(CaseError::Closed);
    }
}

// ---------------------------------------------------------------------------------------
// Participants, attachments, escalation, data access

#[tokio::test]
async fn anyone_on_the_case_adds_a_participant() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::AddParticipant(AddParticipant {
            email: " Dora@Acme.test".into(),
            by: colleague(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::ParticipantAdded(ParticipantAdded {
            email: "dora@acme.test".into(),
            by: colleague(),
            at: t0(),
        })]);
}

#[tokio::test]
async fn adding_a_participant_already_on_the_case_or_the_requester_changes_nothing() {
    for email in ["CARL@acme.test", "ann@acme.test"] {
        CaseTest::with(services())
            .given(vec![opened()])
            .when_async(SupportCaseCommand::AddParticipant(AddParticipant {
                email: email.into(),
                by: agent(),
            }))
            .await
            .then_expect_events(vec![]);
    }
}

#[tokio::test]
async fn the_49th_participant_is_refused() {
    let mut given = vec![opened()];
    // carl is the first; 47 more make 48.
    given.extend((1..48).map(|i| {
        SupportCaseEvent::ParticipantAdded(ParticipantAdded {
            email: participant_email(i),
            by: customer(),
            at: t0(),
        })
    }));
    CaseTest::with(services())
        .given(given)
        .when_async(SupportCaseCommand::AddParticipant(AddParticipant {
            email: "one-too-many@acme.test".into(),
            by: customer(),
        }))
        .await
        .then_expect_error(CaseError::TooManyParticipants { max: 48 });
}

#[tokio::test]
async fn a_participant_is_removed_and_removing_a_stranger_changes_nothing() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::RemoveParticipant(RemoveParticipant {
            email: "Carl@acme.test".into(),
            by: customer(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::ParticipantRemoved(
            ParticipantRemoved {
                email: "carl@acme.test".into(),
                by: customer(),
                at: t0(),
            },
        )]);
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::RemoveParticipant(RemoveParticipant {
            email: "nobody@acme.test".into(),
            by: customer(),
        }))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_participant_must_be_an_e_mail_address() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::AddParticipant(AddParticipant {
            email: "not an address".into(),
            by: customer(),
        }))
        .await
        .then_expect_error(CaseError::InvalidEmail("not an address".into()));
}

#[tokio::test]
async fn an_attachment_is_recorded_with_its_checksum_but_not_its_bytes() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(attachment(1024))
        .await
        .then_expect_events(vec![SupportCaseEvent::AttachmentAdded(AttachmentAdded {
            attachment_id: Uuid::from_u128(9),
            name: "support.zip".into(),
            size: 1024,
            content_type: "application/zip".into(),
            sha256: "ab".repeat(32),
            by: customer(),
            at: t0(),
        })]);
}

#[tokio::test]
async fn an_attachment_of_exactly_the_limit_is_accepted_and_one_byte_more_refused() {
    let limit = 10 * 1024 * 1024;
    let events = CaseTest::with(services())
        .given(vec![opened()])
        .when_async(attachment(limit))
        .await
        .inspect_result()
        .expect("10 MiB fit");
    assert_eq!(events.len(), 1);
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(attachment(limit + 1))
        .await
        .then_expect_error(CaseError::AttachmentTooLarge {
            size: limit + 1,
            max: limit,
        });
}

#[tokio::test]
async fn an_empty_or_unnamed_attachment_or_a_bad_checksum_is_refused() {
    let base = AddAttachment {
        attachment_id: Uuid::from_u128(9),
        name: "log.txt".into(),
        size: 10,
        content_type: "text/plain".into(),
        sha256: "0".repeat(64),
        by: customer(),
    };
    let cases = [
        (
            AddAttachment {
                size: 0,
                ..base.clone()
            },
            "an attachment must not be empty",
        ),
        (
            AddAttachment {
                name: " ".into(),
                ..base.clone()
            },
            "an attachment needs a file name",
        ),
        (
            AddAttachment {
                sha256: "xyz".into(),
                ..base.clone()
            },
            "the sha256 of an attachment is 64 hexadecimal digits",
        ),
    ];
    for (command, rule) in cases {
        CaseTest::with(services())
            .given(vec![opened()])
            .when_async(SupportCaseCommand::AddAttachment(command))
            .await
            .then_expect_error(CaseError::InvalidAttachment(rule));
    }
}

#[tokio::test]
async fn the_customer_side_requests_an_escalation() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::RequestEscalation(RequestEscalation {
            reason: " Production is down ".into(),
            by: customer(),
        }))
        .await
        .then_expect_events(vec![escalation_requested(t0())]);
}

#[tokio::test]
async fn staff_do_not_request_escalations() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::RequestEscalation(RequestEscalation {
            reason: String::new(),
            by: agent(),
        }))
        .await
        .then_expect_error(CaseError::NotAllowed(
            "only the customer side requests an escalation",
        ));
}

#[tokio::test]
async fn an_escalation_is_requested_once_and_not_on_a_resolved_case() {
    let request = || {
        SupportCaseCommand::RequestEscalation(RequestEscalation {
            reason: "again".into(),
            by: partner(),
        })
    };
    CaseTest::with(services())
        .given(vec![opened(), escalation_requested(t0())])
        .when_async(request())
        .await
        .then_expect_error(CaseError::EscalationPending);
    CaseTest::with(services())
        .given(vec![
            opened(),
            escalation_requested(t0()),
            SupportCaseEvent::CaseEscalated(CaseEscalated {
                by: agent(),
                at: t0(),
            }),
        ])
        .when_async(request())
        .await
        .then_expect_error(CaseError::AlreadyEscalated);
    CaseTest::with(services())
        .given(vec![opened(), resolved(t0())])
        .when_async(request())
        .await
        .then_expect_error(CaseError::InvalidStatus {
            action: "escalate",
            status: CaseStatus::Resolved,
        });
}

fn accept_escalation() -> SupportCaseCommand {
    SupportCaseCommand::AcceptEscalation(AcceptEscalation { by: agent() })
}

fn escalated() -> SupportCaseEvent {
    SupportCaseEvent::CaseEscalated(CaseEscalated {
        by: agent(),
        at: t0(),
    })
}

#[tokio::test]
async fn accepting_an_escalation_raises_the_priority_one_step_with_its_target() {
    // Opened at L3 (8 h target): accepted, it is worked at L2, first response due in 4 h.
    CaseTest::with(services())
        .given(vec![opened(), escalation_requested(t0())])
        .when_async(accept_escalation())
        .await
        .then_expect_events(vec![
            escalated(),
            SupportCaseEvent::PriorityChanged(PriorityChanged {
                from: 3,
                to: 2,
                first_response_due: t0() + Duration::hours(4),
                first_response_warning_at: Some(t0() + Duration::hours(3)),
                by: agent(),
                at: t0(),
                resolution: None,
            }),
        ]);
}

#[tokio::test]
async fn an_escalation_at_l1_or_with_the_policy_off_changes_no_priority() {
    CaseTest::with(services())
        .given(vec![
            SupportCaseEvent::CaseOpened(opened_event(1, Duration::hours(1))),
            escalation_requested(t0()),
        ])
        .when_async(accept_escalation())
        .await
        .then_expect_events(vec![escalated()]);
    let policy = CasePolicy {
        escalation_raises_priority: false,
        ..CasePolicy::default()
    };
    CaseTest::with(CaseServices::new(Arc::new(ManualClock::new(t0())), policy))
        .given(vec![opened(), escalation_requested(t0())])
        .when_async(accept_escalation())
        .await
        .then_expect_events(vec![escalated()]);
}

#[tokio::test]
async fn an_escalation_is_accepted_only_when_pending_and_only_by_staff() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::AcceptEscalation(AcceptEscalation {
            by: agent(),
        }))
        .await
        .then_expect_error(CaseError::NoEscalationPending);
    CaseTest::with(services())
        .given(vec![
            opened(),
            escalation_requested(t0()),
            SupportCaseEvent::CaseEscalated(CaseEscalated {
                by: agent(),
                at: t0(),
            }),
        ])
        .when_async(SupportCaseCommand::AcceptEscalation(AcceptEscalation {
            by: agent(),
        }))
        .await
        .then_expect_error(CaseError::AlreadyEscalated);
    CaseTest::with(services())
        .given(vec![opened(), escalation_requested(t0())])
        .when_async(SupportCaseCommand::AcceptEscalation(AcceptEscalation {
            by: customer(),
        }))
        .await
        .then_expect_error(CaseError::NotAllowed(
            "only support staff accept an escalation",
        ));
}

#[tokio::test]
async fn the_customer_side_revokes_and_grants_data_access() {
    // Opened with consent.
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::SetDataAccess(SetDataAccess {
            granted: false,
            by: customer(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::DataAccessRevoked(
            DataAccessChanged {
                by: customer(),
                at: t0(),
            },
        )]);
    CaseTest::with(services())
        .given(vec![
            opened(),
            SupportCaseEvent::DataAccessRevoked(DataAccessChanged {
                by: customer(),
                at: t0(),
            }),
        ])
        .when_async(SupportCaseCommand::SetDataAccess(SetDataAccess {
            granted: true,
            by: partner(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::DataAccessGranted(
            DataAccessChanged {
                by: partner(),
                at: t0(),
            },
        )]);
}

#[tokio::test]
async fn granting_access_already_granted_changes_nothing_and_staff_cannot_grant_it() {
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::SetDataAccess(SetDataAccess {
            granted: true,
            by: customer(),
        }))
        .await
        .then_expect_events(vec![]);
    CaseTest::with(services())
        .given(vec![opened()])
        .when_async(SupportCaseCommand::SetDataAccess(SetDataAccess {
            granted: false,
            by: agent(),
        }))
        .await
        .then_expect_error(CaseError::NotAllowed(
            "only the customer side grants or revokes access to its data",
        ));
}

// ---------------------------------------------------------------------------------------
// Stored shapes

#[test]
fn a_version_1_case_opening_is_upcast_to_the_current_version() {
    let stored = SerializedEvent::new(
        case_id().to_string(),
        1,
        AGGREGATE_TYPE.to_string(),
        "CaseOpened".to_string(),
        "1.0".to_string(),
        serde_json::json!({
            "type": "CaseOpened",
            "case_id": case_id(),
            "key": "CASE-1001",
            "org_id": "acme",
            "requester": "ann@acme.test",
            "product": "jira",
            "summary": "Board does not load",
            "description": "",
            "impact": 2,
            "opened_by": {"id": "ann@acme.test", "role": "customer"},
            "opened_at": t0(),
            "first_response_due": t0() + Duration::hours(4),
        }),
        serde_json::Value::Null,
    );
    let upcast = crate::upcast::upcast(stored, &upcasters());
    assert_eq!(upcast.event_version, CASE_OPENED_VERSION);
    let event: SupportCaseEvent =
        serde_json::from_value(upcast.payload).expect("a current CaseOpened");
    let SupportCaseEvent::CaseOpened(e) = event else {
        panic!("still a CaseOpened");
    };
    assert_eq!(e.priority, 2);
    assert!(e.participants.is_empty());
    assert_eq!(e.entitlement_number, None);
    assert!(!e.data_access_consent);
    assert_eq!(e.follow_up_of, None);
    assert_eq!(e.request_type, RequestType::Technical);
}

#[test]
fn a_version_2_0_case_opening_is_a_technical_request() {
    let mut payload = serde_json::to_value(SupportCaseEvent::CaseOpened(opened_event(
        2,
        Duration::hours(4),
    )))
    .expect("payload");
    if let Some(object) = payload.as_object_mut() {
        object.remove("request_type");
    }
    let stored = SerializedEvent::new(
        case_id().to_string(),
        1,
        AGGREGATE_TYPE.to_string(),
        "CaseOpened".to_string(),
        "2.0".to_string(),
        payload,
        serde_json::Value::Null,
    );
    let upcast = crate::upcast::upcast(stored, &upcasters());
    assert_eq!(upcast.event_version, CASE_OPENED_VERSION);
    assert_eq!(upcast.payload["request_type"], "technical");
}

#[test]
fn openings_and_priority_changes_from_before_warnings_have_no_warning_time() {
    let mut opening = serde_json::to_value(SupportCaseEvent::CaseOpened(opened_event(
        2,
        Duration::hours(4),
    )))
    .expect("payload");
    let mut change = serde_json::to_value(SupportCaseEvent::PriorityChanged(PriorityChanged {
        from: 2,
        to: 1,
        first_response_due: t0() + Duration::hours(1),
        first_response_warning_at: None,
        by: agent(),
        at: t0(),
        resolution: None,
    }))
    .expect("payload");
    for (payload, event_type, version, current) in [
        (&mut opening, "CaseOpened", "2.1", CASE_OPENED_VERSION),
        (
            &mut change,
            "PriorityChanged",
            "1.0",
            PRIORITY_CHANGED_VERSION,
        ),
    ] {
        if let Some(object) = payload.as_object_mut() {
            object.remove("first_response_warning_at");
        }
        let stored = SerializedEvent::new(
            case_id().to_string(),
            1,
            AGGREGATE_TYPE.to_string(),
            event_type.to_string(),
            version.to_string(),
            payload.clone(),
            serde_json::Value::Null,
        );
        let upcast = crate::upcast::upcast(stored, &upcasters());
        assert_eq!(upcast.event_version, current, "{event_type}");
        assert_eq!(
            upcast.payload["first_response_warning_at"],
            serde_json::Value::Null
        );
        let event: SupportCaseEvent = serde_json::from_value(upcast.payload).expect("current");
        assert_eq!(event.name(), event_type);
    }
}

#[test]
fn durations_are_told_in_their_largest_exact_unit() {
    assert_eq!(human_duration(Duration::days(30)), "30 days");
    assert_eq!(human_duration(Duration::days(1)), "1 day");
    assert_eq!(human_duration(Duration::hours(36)), "36 hours");
    assert_eq!(human_duration(Duration::seconds(3)), "3 seconds");
    assert_eq!(human_duration(Duration::seconds(90)), "90 seconds");
    assert_eq!(human_duration(Duration::minutes(90)), "90 minutes");
}

// ---------------------------------------------------------------------------------------
// SLA warnings and breaches

fn with_target() -> Vec<SupportCaseEvent> {
    // Impact 3: 8 hours, warning at 6.
    vec![opened()]
}

fn sla_check(by: Actor) -> SlaCheck {
    SlaCheck {
        clock: SlaClock::FirstResponse,
        by,
    }
}

/// Runs `command` at `now` on `given` and expects the `not_due` refusal.
async fn refused_as_not_due(
    given: Vec<SupportCaseEvent>,
    now: DateTime<Utc>,
    command: SupportCaseCommand,
) {
    let error = CaseTest::with(at(now))
        .given(given)
        .when_async(command)
        .await
        .inspect_result()
        .expect_err("refused");
    assert!(error.is_not_due(), "{error}");
}

fn reached(at: DateTime<Utc>) -> SlaReached {
    SlaReached {
        clock: SlaClock::FirstResponse,
        due: t0() + Duration::hours(8),
        at,
    }
}

#[tokio::test]
async fn the_warning_is_raised_once_at_its_share_of_the_target() {
    let when = t0() + Duration::hours(6);
    CaseTest::with(at(when))
        .given(with_target())
        .when_async(SupportCaseCommand::RaiseSlaWarning(sla_check(system())))
        .await
        .then_expect_events(vec![SupportCaseEvent::SlaWarningRaised(reached(when))]);
    let mut given = with_target();
    given.push(SupportCaseEvent::SlaWarningRaised(reached(when)));
    refused_as_not_due(
        given,
        when + Duration::minutes(1),
        SupportCaseCommand::RaiseSlaWarning(sla_check(system())),
    )
    .await;
}

#[tokio::test]
async fn no_warning_or_breach_before_its_time() {
    let early = t0() + Duration::hours(6) - Duration::seconds(1);
    for command in [
        SupportCaseCommand::RaiseSlaWarning(sla_check(system())),
        SupportCaseCommand::RecordSlaBreach(sla_check(system())),
    ] {
        refused_as_not_due(with_target(), early, command).await;
    }
}

#[tokio::test]
async fn the_breach_is_recorded_once_at_the_due_time() {
    let due = t0() + Duration::hours(8);
    CaseTest::with(at(due))
        .given(with_target())
        .when_async(SupportCaseCommand::RecordSlaBreach(sla_check(system())))
        .await
        .then_expect_events(vec![SupportCaseEvent::SlaBreached(reached(due))]);
    let mut given = with_target();
    given.push(SupportCaseEvent::SlaBreached(reached(due)));
    refused_as_not_due(
        given,
        due + Duration::hours(1),
        SupportCaseCommand::RecordSlaBreach(sla_check(system())),
    )
    .await;
}

#[tokio::test]
async fn a_stopped_clock_neither_warns_nor_breaches() {
    let mut answered = with_target();
    answered.push(SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
        comment_id: comment_id(),
        by: agent(),
        due: t0() + Duration::hours(8),
        breached: false,
        at: t0() + Duration::hours(1),
    }));
    refused_as_not_due(
        answered,
        t0() + Duration::hours(9),
        SupportCaseCommand::RecordSlaBreach(sla_check(system())),
    )
    .await;
    // A case opened before warnings existed (CaseOpened 2.1) has no warning time.
    let before = CaseOpened {
        first_response_warning_at: None,
        ..opened_event(3, Duration::hours(8))
    };
    refused_as_not_due(
        vec![SupportCaseEvent::CaseOpened(before)],
        t0() + Duration::hours(9),
        SupportCaseCommand::RaiseSlaWarning(sla_check(system())),
    )
    .await;
}

#[tokio::test]
async fn a_new_target_after_a_breach_can_warn_and_breach_again() {
    let mut given = with_target();
    given.push(SupportCaseEvent::SlaBreached(reached(
        t0() + Duration::hours(8),
    )));
    // Lowered to L4 (16 h) at 9 h: warning at 12 h, due at 16 h.
    given.push(SupportCaseEvent::PriorityChanged(PriorityChanged {
        from: 3,
        to: 4,
        first_response_due: t0() + Duration::hours(16),
        first_response_warning_at: Some(t0() + Duration::hours(12)),
        by: agent(),
        at: t0() + Duration::hours(9),
        resolution: None,
    }));
    let when = t0() + Duration::hours(16);
    CaseTest::with(at(when))
        .given(given)
        .when_async(SupportCaseCommand::RecordSlaBreach(sla_check(system())))
        .await
        .then_expect_events(vec![SupportCaseEvent::SlaBreached(SlaReached {
            clock: SlaClock::FirstResponse,
            due: when,
            at: when,
        })]);
}

#[tokio::test]
async fn only_the_system_records_warnings_and_breaches() {
    let error = CaseTest::with(at(t0() + Duration::hours(9)))
        .given(with_target())
        .when_async(SupportCaseCommand::RecordSlaBreach(sla_check(agent())))
        .await
        .inspect_result()
        .expect_err("system only");
    assert!(!error.is_not_due(), "{error}");
}

// ---------------------------------------------------------------------------------------
// The next-reply clock

/// Opened at t0 (impact 3: 8 hours), answered in public by support at t0 + 1 h.
fn answered() -> Vec<SupportCaseEvent> {
    let reply = t0() + Duration::hours(1);
    vec![
        opened(),
        comment_added(agent(), Visibility::Public, reply),
        SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
            comment_id: comment_id(),
            by: agent(),
            due: t0() + Duration::hours(8),
            breached: false,
            at: reply,
        }),
    ]
}

/// The customer's comment at `when`, starting the next-reply clock when `started`.
fn customer_comment(when: DateTime<Utc>, started: Option<ClockStart>) -> SupportCaseEvent {
    SupportCaseEvent::CommentAdded(CommentAdded {
        next_reply: started,
        ..match comment_added(customer(), Visibility::Public, when) {
            SupportCaseEvent::CommentAdded(e) => e,
            _ => unreachable!("a comment"),
        }
    })
}

#[tokio::test]
async fn a_customer_comment_after_supports_reply_starts_the_next_reply_clock() {
    let when = t0() + Duration::hours(2);
    let started = ClockStart {
        due: when + Duration::hours(8),
        warning_at: when + Duration::hours(6),
    };
    CaseTest::with(at(when))
        .given(answered())
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![customer_comment(when, Some(started))]);
    // A second comment while it runs starts nothing new.
    let mut given = answered();
    given.push(customer_comment(when, Some(started)));
    CaseTest::with(at(when + Duration::minutes(5)))
        .given(given)
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![customer_comment(when + Duration::minutes(5), None)]);
}

#[tokio::test]
async fn before_supports_first_reply_a_customer_comment_starts_no_next_reply_clock() {
    let when = t0() + Duration::hours(2);
    CaseTest::with(at(when))
        .given(vec![opened()])
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![customer_comment(when, None)]);
}

#[tokio::test]
async fn given_a_business_calendar_the_next_reply_is_due_in_its_business_hours() {
    // Friday 2026-03-06 17:00 in Tokyo (08:00 UTC): 1 hour on Friday, 7 on Monday: 16:00 JST,
    // warned after 6 business hours, Monday 14:00 JST.
    let when = chrono::Utc
        .with_ymd_and_hms(2026, 3, 6, 8, 0, 0)
        .single()
        .expect("instant");
    let monday = |hour: u32| {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 9, hour, 0, 0)
            .single()
            .expect("instant")
    };
    CaseTest::with(in_tokyo(when))
        .given(answered())
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![customer_comment(
            when,
            Some(ClockStart {
                due: monday(7),
                warning_at: monday(5),
            }),
        )]);
}

#[tokio::test]
async fn supports_public_reply_stops_the_next_reply_clock_and_an_internal_note_does_not() {
    let when = t0() + Duration::hours(2);
    let started = ClockStart {
        due: when + Duration::hours(8),
        warning_at: when + Duration::hours(6),
    };
    let mut running = answered();
    running.push(customer_comment(when, Some(started)));
    let late = when + Duration::hours(9);
    let mut internal = running.clone();
    internal.push(comment_added(agent(), Visibility::Internal, when));
    let error = CaseTest::with(at(late))
        .given(running.clone())
        .when_async(SupportCaseCommand::RecordSlaBreach(SlaCheck {
            clock: SlaClock::NextReply,
            by: system(),
        }))
        .await
        .inspect_result();
    assert_eq!(
        error.expect("breached"),
        vec![SupportCaseEvent::SlaBreached(SlaReached {
            clock: SlaClock::NextReply,
            due: started.due,
            at: late,
        })]
    );
    CaseTest::with(at(late))
        .given(internal)
        .when_async(SupportCaseCommand::RecordSlaBreach(SlaCheck {
            clock: SlaClock::NextReply,
            by: system(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::SlaBreached(SlaReached {
            clock: SlaClock::NextReply,
            due: started.due,
            at: late,
        })]);
    let mut replied = running;
    replied.push(comment_added(
        agent(),
        Visibility::Public,
        when + Duration::hours(1),
    ));
    let error = CaseTest::with(at(late))
        .given(replied)
        .when_async(SupportCaseCommand::RecordSlaBreach(SlaCheck {
            clock: SlaClock::NextReply,
            by: system(),
        }))
        .await
        .inspect_result()
        .expect_err("stopped");
    assert!(error.is_not_due(), "{error}");
}
