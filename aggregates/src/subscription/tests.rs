use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;
use uuid::Uuid;

use super::*;
use crate::{Actor, ActorRole, ManualClock};

type SubscriptionTest = TestFramework<Subscription>;

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("valid instant")
}

/// The clock of most tests: a day into a yearly term that runs from 2026-03-01 to 2027-03-01.
fn t0() -> DateTime<Utc> {
    at(2026, 3, 2) + Duration::hours(9)
}

fn term_start() -> DateTime<Utc> {
    at(2026, 3, 1)
}

fn term_end() -> DateTime<Utc> {
    at(2027, 3, 1)
}

fn services_at(now: DateTime<Utc>) -> SubscriptionServices {
    SubscriptionServices::new(
        Arc::new(ManualClock::new(now)),
        SubscriptionPolicy::default(),
    )
}

fn services() -> SubscriptionServices {
    services_at(t0())
}

fn admin() -> Actor {
    Actor::new("ada@acme.test", ActorRole::Customer)
}

fn sub_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00a1)
}

fn app_id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0b00 + n)
}

const NUMBER: &str = "E-4K2M-9QXT-7ZP3";

fn create_command() -> CreateSubscription {
    CreateSubscription {
        subscription_id: sub_id(),
        entitlement_number: NUMBER.into(),
        org_id: "acme".into(),
        product: "jira-software".into(),
        plan: "standard".into(),
        seats: 10,
        term_start: term_start(),
        term_end: term_end(),
        auto_renew: true,
        channel: Channel::Direct,
        billing_account: "BA-1".into(),
        included_products: Vec::new(),
        from_collection: None,
        created_by: admin(),
    }
}

fn created_from(cmd: CreateSubscription) -> SubscriptionEvent {
    SubscriptionEvent::SubscriptionCreated(SubscriptionCreated {
        subscription_id: cmd.subscription_id,
        entitlement_number: cmd.entitlement_number,
        org_id: cmd.org_id,
        product: cmd.product,
        plan: cmd.plan,
        seats: cmd.seats,
        term_start: cmd.term_start,
        term_end: cmd.term_end,
        auto_renew: cmd.auto_renew,
        channel: cmd.channel,
        billing_account: cmd.billing_account,
        included_products: cmd.included_products,
        from_collection: cmd.from_collection,
        created_by: cmd.created_by,
        created_at: t0(),
    })
}

fn created() -> SubscriptionEvent {
    created_from(create_command())
}

fn activated() -> SubscriptionEvent {
    SubscriptionEvent::SubscriptionActivated(SubscriptionActivated {
        term_start: term_start(),
        at: t0(),
    })
}

/// A direct, active, auto-renewing subscription with 10 seats.
fn active() -> Vec<SubscriptionEvent> {
    vec![created(), activated()]
}

fn with(
    mut events: Vec<SubscriptionEvent>,
    more: Vec<SubscriptionEvent>,
) -> Vec<SubscriptionEvent> {
    events.extend(more);
    events
}

fn collection() -> Vec<SubscriptionEvent> {
    let mut cmd = create_command();
    cmd.product = "teamwork-collection".into();
    cmd.channel = Channel::Partner {
        partner_id: "p1".into(),
    };
    cmd.included_products = vec!["jira".into(), "confluence".into(), "loom".into()];
    vec![created_from(cmd), activated()]
}

fn app_added(n: u128, app: &str) -> SubscriptionEvent {
    SubscriptionEvent::AppSubscriptionAdded(AppSubscriptionAdded {
        app_id: app_id(n),
        entitlement_number: format!("E-APP{n}-0000-0000"),
        app: app.into(),
        plan: "standard".into(),
        at: t0(),
    })
}

fn app_cancelled(n: u128, cause: AppCancellationCause, at: DateTime<Utc>) -> SubscriptionEvent {
    SubscriptionEvent::AppSubscriptionCancelled(AppSubscriptionCancelled {
        app_id: app_id(n),
        entitlement_number: format!("E-APP{n}-0000-0000"),
        cause,
        at,
    })
}

fn cancel(effective: CancelEffective, keep: &[&str]) -> SubscriptionCommand {
    SubscriptionCommand::Cancel(CancelSubscription {
        effective,
        reason: "moving to another tool".into(),
        keep_products: keep.iter().map(|p| p.to_string()).collect(),
        by: admin(),
    })
}

fn scheduled(keep: &[&str]) -> SubscriptionEvent {
    SubscriptionEvent::CancellationScheduled(CancellationScheduled {
        effective_at: term_end(),
        reason: "moving to another tool".into(),
        keep_products: keep.iter().map(|p| p.to_string()).collect(),
        by: admin(),
        at: t0(),
    })
}

fn cancelled_now(now: DateTime<Utc>) -> SubscriptionEvent {
    SubscriptionEvent::SubscriptionCancelled(SubscriptionCancelled {
        reason: "moving to another tool".into(),
        effective: CancelEffective::Immediately,
        effective_at: now,
        by: admin(),
        at: now,
    })
}

fn expired() -> SubscriptionEvent {
    SubscriptionEvent::SubscriptionExpired(SubscriptionExpired {
        term_end: term_end(),
        at: term_end(),
    })
}

async fn when(
    given: Vec<SubscriptionEvent>,
    now: DateTime<Utc>,
    command: SubscriptionCommand,
) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
    SubscriptionTest::with(services_at(now))
        .given(given)
        .when_async(command)
        .await
        .inspect_result()
}

// --- create -------------------------------------------------------------------------------

#[tokio::test]
async fn creating_a_subscription_whose_term_has_started_activates_it() {
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(create_command()))
        .await
        .then_expect_events(vec![created(), activated()]);
}

#[tokio::test]
async fn creating_a_subscription_whose_term_starts_later_leaves_it_upcoming() {
    let mut cmd = create_command();
    cmd.term_start = at(2026, 4, 1);
    cmd.term_end = at(2027, 4, 1);
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd.clone()))
        .await
        .then_expect_events(vec![created_from(cmd)]);
}

#[tokio::test]
async fn a_subscription_needs_at_least_one_seat() {
    let mut cmd = create_command();
    cmd.seats = 0;
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd))
        .await
        .then_expect_error(SubscriptionError::InvalidSeats);
}

#[tokio::test]
async fn a_term_that_does_not_end_after_it_starts_is_refused() {
    for end in [term_start(), term_start() - Duration::days(1)] {
        let mut cmd = create_command();
        cmd.term_end = end;
        SubscriptionTest::with(services())
            .given_no_previous_events()
            .when_async(SubscriptionCommand::Create(cmd))
            .await
            .then_expect_error(SubscriptionError::InvalidTerm);
    }
}

#[tokio::test]
async fn a_term_longer_than_ten_years_or_starting_ten_years_from_today_is_refused() {
    let far = Duration::days(3653 + 10);
    let bounds = SubscriptionError::TermOutOfBounds(3653);
    let mut long = create_command();
    long.term_end = long.term_start + far;
    let mut remote = create_command();
    remote.term_start += far;
    remote.term_end = remote.term_start + Duration::days(365);
    for cmd in [long, remote] {
        SubscriptionTest::with(services())
            .given_no_previous_events()
            .when_async(SubscriptionCommand::Create(cmd))
            .await
            .then_expect_error(bounds.clone());
    }
}

#[tokio::test]
async fn a_term_that_is_already_over_is_refused() {
    let mut cmd = create_command();
    cmd.term_start = at(2025, 1, 1);
    cmd.term_end = at(2026, 1, 1);
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd))
        .await
        .then_expect_error(SubscriptionError::TermAlreadyOver);
}

#[tokio::test]
async fn a_malformed_entitlement_number_is_refused() {
    let mut cmd = create_command();
    cmd.entitlement_number = "E-123".into();
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd))
        .await
        .then_expect_error(SubscriptionError::InvalidEntitlementNumber);
}

#[tokio::test]
async fn a_blank_product_or_billing_account_is_refused() {
    let mut cmd = create_command();
    cmd.product = "  ".into();
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd))
        .await
        .then_expect_error(SubscriptionError::Required("product"));
    let mut cmd = create_command();
    cmd.billing_account = String::new();
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd))
        .await
        .then_expect_error(SubscriptionError::Required("billing_account"));
}

#[tokio::test]
async fn a_partner_subscription_needs_a_partner_id() {
    let mut cmd = create_command();
    cmd.channel = Channel::Partner {
        partner_id: " ".into(),
    };
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd))
        .await
        .then_expect_error(SubscriptionError::Required("partner_id"));
}

#[tokio::test]
async fn a_collection_cannot_include_a_product_twice_or_itself() {
    for included in [
        vec!["jira", "Jira"],
        vec!["jira-software"],
        vec!["jira", ""],
    ] {
        let mut cmd = create_command();
        cmd.included_products = included.iter().map(|p| p.to_string()).collect();
        SubscriptionTest::with(services())
            .given_no_previous_events()
            .when_async(SubscriptionCommand::Create(cmd))
            .await
            .then_expect_error(SubscriptionError::InvalidIncludedProducts);
    }
}

#[tokio::test]
async fn a_subscription_cannot_be_created_twice() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::Create(create_command()))
        .await
        .then_expect_error(SubscriptionError::AlreadyCreated);
}

// --- activate -----------------------------------------------------------------------------

fn upcoming() -> Vec<SubscriptionEvent> {
    let mut cmd = create_command();
    cmd.term_start = at(2026, 4, 1);
    cmd.term_end = at(2027, 4, 1);
    vec![created_from(cmd)]
}

#[tokio::test]
async fn an_upcoming_subscription_is_activated_at_its_term_start() {
    let late = at(2026, 4, 1) + Duration::minutes(3);
    SubscriptionTest::with(services_at(late))
        .given(upcoming())
        .when_async(SubscriptionCommand::Activate)
        .await
        .then_expect_events(vec![SubscriptionEvent::SubscriptionActivated(
            SubscriptionActivated {
                term_start: at(2026, 4, 1),
                at: late,
            },
        )]);
}

#[tokio::test]
async fn an_early_activation_timer_is_refused() {
    SubscriptionTest::with(services_at(at(2026, 3, 31)))
        .given(upcoming())
        .when_async(SubscriptionCommand::Activate)
        .await
        .then_expect_error(SubscriptionError::TermNotStarted(at(2026, 4, 1)));
}

#[tokio::test]
async fn a_duplicate_activation_timer_is_refused() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::Activate)
        .await
        .then_expect_error(SubscriptionError::NotUpcoming);
}

// --- seats --------------------------------------------------------------------------------

#[tokio::test]
async fn more_seats_take_effect_now() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::ChangeSeats { seats: 15 })
        .await
        .then_expect_events(vec![SubscriptionEvent::SeatsIncreased(SeatsIncreased {
            from: 10,
            to: 15,
            at: t0(),
        })]);
}

fn reduction_to(to: u32) -> SubscriptionEvent {
    SubscriptionEvent::SeatReductionScheduled(SeatReductionScheduled {
        from: 10,
        to,
        effective_at: term_end(),
        at: t0(),
    })
}

#[tokio::test]
async fn fewer_seats_are_scheduled_for_the_renewal() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::ChangeSeats { seats: 4 })
        .await
        .then_expect_events(vec![reduction_to(4)]);
}

#[tokio::test]
async fn asking_for_the_current_seats_withdraws_a_scheduled_reduction() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![reduction_to(4)]))
        .when_async(SubscriptionCommand::ChangeSeats { seats: 10 })
        .await
        .then_expect_events(vec![SubscriptionEvent::SeatReductionWithdrawn(
            SeatReductionWithdrawn {
                seats: 10,
                at: t0(),
            },
        )]);
}

#[tokio::test]
async fn asking_for_what_is_already_there_changes_nothing() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::ChangeSeats { seats: 10 })
        .await
        .then_expect_events(vec![]);
    SubscriptionTest::with(services())
        .given(with(active(), vec![reduction_to(4)]))
        .when_async(SubscriptionCommand::ChangeSeats { seats: 4 })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn zero_seats_are_refused() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::ChangeSeats { seats: 0 })
        .await
        .then_expect_error(SubscriptionError::InvalidSeats);
}

#[tokio::test]
async fn seats_cannot_change_before_the_term_starts() {
    SubscriptionTest::with(services())
        .given(upcoming())
        .when_async(SubscriptionCommand::ChangeSeats { seats: 12 })
        .await
        .then_expect_error(SubscriptionError::NotActive);
}

#[tokio::test]
async fn a_non_renewing_subscription_cannot_schedule_a_seat_reduction_but_can_buy_seats() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![scheduled(&[])]))
        .when_async(SubscriptionCommand::ChangeSeats { seats: 4 })
        .await
        .then_expect_error(SubscriptionError::WillNotRenew);
    let bought = when(
        with(active(), vec![scheduled(&[])]),
        t0(),
        SubscriptionCommand::ChangeSeats { seats: 11 },
    )
    .await
    .expect("a non-renewing subscription is still in force");
    assert_eq!(bought.len(), 1);
}

#[tokio::test]
async fn seats_cannot_change_on_an_ended_subscription() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![cancelled_now(t0())]))
        .when_async(SubscriptionCommand::ChangeSeats { seats: 12 })
        .await
        .then_expect_error(SubscriptionError::Ended);
}

// --- storage, plan, auto-renew ------------------------------------------------------------

#[tokio::test]
async fn purchased_storage_adds_up() {
    let given = with(
        active(),
        vec![SubscriptionEvent::StoragePurchased(StoragePurchased {
            gb: 10,
            total_gb: 10,
            at: t0(),
        })],
    );
    SubscriptionTest::with(services())
        .given(given)
        .when_async(SubscriptionCommand::PurchaseStorage { gb: 5 })
        .await
        .then_expect_events(vec![SubscriptionEvent::StoragePurchased(
            StoragePurchased {
                gb: 5,
                total_gb: 15,
                at: t0(),
            },
        )]);
}

#[tokio::test]
async fn storage_is_bought_in_a_positive_number_of_gigabytes() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::PurchaseStorage { gb: 0 })
        .await
        .then_expect_error(SubscriptionError::InvalidStorage);
}

#[tokio::test]
async fn storage_cannot_be_bought_before_the_term_starts() {
    SubscriptionTest::with(services())
        .given(upcoming())
        .when_async(SubscriptionCommand::PurchaseStorage { gb: 5 })
        .await
        .then_expect_error(SubscriptionError::NotActive);
}

#[tokio::test]
async fn the_plan_changes_while_active_and_the_same_plan_changes_nothing() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::ChangePlan {
            plan: "premium".into(),
        })
        .await
        .then_expect_events(vec![SubscriptionEvent::PlanChanged(PlanChanged {
            from: "standard".into(),
            to: "premium".into(),
            at: t0(),
        })]);
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::ChangePlan {
            plan: "standard".into(),
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn the_plan_cannot_change_on_an_expired_subscription() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![expired()]))
        .when_async(SubscriptionCommand::ChangePlan {
            plan: "premium".into(),
        })
        .await
        .then_expect_error(SubscriptionError::Ended);
}

#[tokio::test]
async fn auto_renew_is_switched_off_once() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::SetAutoRenew { auto_renew: false })
        .await
        .then_expect_events(vec![SubscriptionEvent::AutoRenewChanged(
            AutoRenewChanged {
                auto_renew: false,
                at: t0(),
            },
        )]);
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::SetAutoRenew { auto_renew: true })
        .await
        .then_expect_events(vec![]);
}

// --- renew --------------------------------------------------------------------------------

#[tokio::test]
async fn renewal_at_term_end_starts_a_term_of_the_same_length_with_the_scheduled_seats() {
    SubscriptionTest::with(services_at(term_end()))
        .given(with(active(), vec![reduction_to(4)]))
        .when_async(SubscriptionCommand::Renew)
        .await
        .then_expect_events(vec![SubscriptionEvent::SubscriptionRenewed(
            SubscriptionRenewed {
                term_start: term_end(),
                term_end: at(2028, 3, 1),
                seats: 4,
                seats_before: 10,
                at: term_end(),
            },
        )]);
}

#[tokio::test]
async fn buying_seats_after_scheduling_a_reduction_drops_the_reduction() {
    let bought = SubscriptionEvent::SeatsIncreased(SeatsIncreased {
        from: 10,
        to: 12,
        at: t0(),
    });
    let renewed = when(
        with(active(), vec![reduction_to(4), bought]),
        term_end(),
        SubscriptionCommand::Renew,
    )
    .await
    .expect("renews");
    assert!(matches!(
        renewed.as_slice(),
        [SubscriptionEvent::SubscriptionRenewed(
            SubscriptionRenewed { seats: 12, .. }
        )]
    ));
}

#[tokio::test]
async fn a_late_renewal_timer_renews_from_the_old_term_end() {
    let late = term_end() + Duration::hours(5);
    let renewed = when(active(), late, SubscriptionCommand::Renew)
        .await
        .expect("renews");
    assert!(matches!(
        renewed.as_slice(),
        [SubscriptionEvent::SubscriptionRenewed(SubscriptionRenewed { term_start, at, .. })]
            if *term_start == term_end() && *at == late
    ));
}

#[tokio::test]
async fn an_early_renewal_timer_is_refused() {
    SubscriptionTest::with(services_at(term_end() - Duration::seconds(1)))
        .given(active())
        .when_async(SubscriptionCommand::Renew)
        .await
        .then_expect_error(SubscriptionError::TermNotEnded(term_end()));
}

#[tokio::test]
async fn a_duplicate_renewal_timer_is_refused() {
    let renewed = SubscriptionEvent::SubscriptionRenewed(SubscriptionRenewed {
        term_start: term_end(),
        term_end: at(2028, 3, 1),
        seats: 10,
        seats_before: 10,
        at: term_end(),
    });
    SubscriptionTest::with(services_at(term_end() + Duration::seconds(2)))
        .given(with(active(), vec![renewed]))
        .when_async(SubscriptionCommand::Renew)
        .await
        .then_expect_error(SubscriptionError::TermNotEnded(at(2028, 3, 1)));
}

fn auto_renew_off() -> SubscriptionEvent {
    SubscriptionEvent::AutoRenewChanged(AutoRenewChanged {
        auto_renew: false,
        at: t0(),
    })
}

#[tokio::test]
async fn a_subscription_with_auto_renew_off_does_not_renew() {
    SubscriptionTest::with(services_at(term_end()))
        .given(with(active(), vec![auto_renew_off()]))
        .when_async(SubscriptionCommand::Renew)
        .await
        .then_expect_error(SubscriptionError::AutoRenewOff);
}

#[tokio::test]
async fn a_non_renewing_subscription_does_not_renew() {
    SubscriptionTest::with(services_at(term_end()))
        .given(with(active(), vec![scheduled(&[])]))
        .when_async(SubscriptionCommand::Renew)
        .await
        .then_expect_error(SubscriptionError::WillNotRenew);
}

// --- expire -------------------------------------------------------------------------------

#[tokio::test]
async fn a_subscription_without_auto_renew_expires_at_term_end_and_cancels_its_active_apps() {
    let given = with(
        active(),
        vec![
            auto_renew_off(),
            app_added(1, "tempo"),
            app_added(2, "drawio"),
            app_added(3, "zephyr"),
            app_cancelled(2, AppCancellationCause::Requested, t0()),
        ],
    );
    SubscriptionTest::with(services_at(term_end()))
        .given(given)
        .when_async(SubscriptionCommand::Expire)
        .await
        .then_expect_events(vec![
            expired(),
            app_cancelled(1, AppCancellationCause::SubscriptionExpired, term_end()),
            app_cancelled(3, AppCancellationCause::SubscriptionExpired, term_end()),
        ]);
}

#[tokio::test]
async fn a_subscription_with_auto_renew_on_does_not_expire() {
    SubscriptionTest::with(services_at(term_end()))
        .given(active())
        .when_async(SubscriptionCommand::Expire)
        .await
        .then_expect_error(SubscriptionError::WillRenew);
}

#[tokio::test]
async fn an_early_expiry_timer_is_refused() {
    SubscriptionTest::with(services_at(t0()))
        .given(with(active(), vec![auto_renew_off()]))
        .when_async(SubscriptionCommand::Expire)
        .await
        .then_expect_error(SubscriptionError::TermNotEnded(term_end()));
}

#[tokio::test]
async fn a_duplicate_expiry_timer_is_refused() {
    SubscriptionTest::with(services_at(term_end()))
        .given(with(active(), vec![auto_renew_off(), expired()]))
        .when_async(SubscriptionCommand::Expire)
        .await
        .then_expect_error(SubscriptionError::Ended);
}

#[tokio::test]
async fn a_scheduled_cancellation_takes_effect_at_term_end_and_cancels_the_apps() {
    let late = term_end() + Duration::minutes(1);
    SubscriptionTest::with(services_at(late))
        .given(with(
            active(),
            vec![
                app_added(1, "tempo"),
                app_added(2, "drawio"),
                scheduled(&[]),
            ],
        ))
        .when_async(SubscriptionCommand::Expire)
        .await
        .then_expect_events(vec![
            SubscriptionEvent::SubscriptionCancelled(SubscriptionCancelled {
                reason: "moving to another tool".into(),
                effective: CancelEffective::AtTermEnd,
                effective_at: term_end(),
                by: admin(),
                at: late,
            }),
            app_cancelled(1, AppCancellationCause::SubscriptionCancelled, late),
            app_cancelled(2, AppCancellationCause::SubscriptionCancelled, late),
        ]);
}

// --- cancel -------------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_at_term_end_schedules_it_and_leaves_the_apps_running() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![app_added(1, "tempo")]))
        .when_async(cancel(CancelEffective::AtTermEnd, &[]))
        .await
        .then_expect_events(vec![scheduled(&[])]);
}

#[tokio::test]
async fn cancelling_immediately_cancels_every_active_app_in_the_same_command() {
    SubscriptionTest::with(services())
        .given(with(
            active(),
            vec![
                app_added(1, "tempo"),
                app_added(2, "drawio"),
                app_added(3, "zephyr"),
                app_cancelled(3, AppCancellationCause::Requested, t0()),
            ],
        ))
        .when_async(cancel(CancelEffective::Immediately, &[]))
        .await
        .then_expect_events(vec![
            cancelled_now(t0()),
            app_cancelled(1, AppCancellationCause::SubscriptionCancelled, t0()),
            app_cancelled(2, AppCancellationCause::SubscriptionCancelled, t0()),
        ]);
}

#[tokio::test]
async fn a_non_renewing_subscription_can_still_be_cancelled_immediately() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![scheduled(&[])]))
        .when_async(cancel(CancelEffective::Immediately, &[]))
        .await
        .then_expect_events(vec![cancelled_now(t0())]);
}

#[tokio::test]
async fn a_second_cancellation_at_term_end_is_refused() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![scheduled(&[])]))
        .when_async(cancel(CancelEffective::AtTermEnd, &[]))
        .await
        .then_expect_error(SubscriptionError::CancellationAlreadyScheduled);
}

#[tokio::test]
async fn an_upcoming_subscription_can_only_be_cancelled_immediately() {
    SubscriptionTest::with(services())
        .given(upcoming())
        .when_async(cancel(CancelEffective::AtTermEnd, &[]))
        .await
        .then_expect_error(SubscriptionError::UpcomingCancelledAtTermEnd);
    SubscriptionTest::with(services())
        .given(upcoming())
        .when_async(cancel(CancelEffective::Immediately, &[]))
        .await
        .then_expect_events(vec![cancelled_now(t0())]);
}

#[tokio::test]
async fn an_ended_subscription_cannot_be_cancelled_again() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![cancelled_now(t0())]))
        .when_async(cancel(CancelEffective::Immediately, &[]))
        .await
        .then_expect_error(SubscriptionError::Ended);
}

#[tokio::test]
async fn keeping_products_is_only_for_collections() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(cancel(CancelEffective::Immediately, &["jira"]))
        .await
        .then_expect_error(SubscriptionError::NotACollection);
}

#[tokio::test]
async fn a_kept_product_must_be_included_in_the_collection() {
    SubscriptionTest::with(services())
        .given(collection())
        .when_async(cancel(CancelEffective::Immediately, &["jira", "bitbucket"]))
        .await
        .then_expect_error(SubscriptionError::ProductNotIncluded("bitbucket".into()));
}

fn collection_cancelled(
    kept: &[&str],
    effective_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> SubscriptionEvent {
    SubscriptionEvent::CollectionCancelled(CollectionCancelled {
        included_products: vec!["jira".into(), "confluence".into(), "loom".into()],
        kept: kept.iter().map(|p| p.to_string()).collect(),
        effective_at,
        at,
    })
}

#[tokio::test]
async fn cancelling_a_collection_immediately_records_the_kept_products_once_each() {
    SubscriptionTest::with(services())
        .given(collection())
        .when_async(cancel(
            CancelEffective::Immediately,
            &["Jira", "loom", "jira"],
        ))
        .await
        .then_expect_events(vec![
            cancelled_now(t0()),
            collection_cancelled(&["jira", "loom"], t0(), t0()),
        ]);
}

#[tokio::test]
async fn a_collection_cancelled_at_term_end_records_its_kept_products_when_it_takes_effect() {
    let given = with(collection(), vec![scheduled(&["confluence"])]);
    let events = when(given, term_end(), SubscriptionCommand::Expire)
        .await
        .expect("the scheduled cancellation takes effect");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[1],
        collection_cancelled(&["confluence"], term_end(), term_end())
    );
}

// --- withdraw cancellation ----------------------------------------------------------------

#[tokio::test]
async fn a_scheduled_cancellation_can_be_withdrawn_before_term_end() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![scheduled(&[])]))
        .when_async(SubscriptionCommand::WithdrawCancellation)
        .await
        .then_expect_events(vec![SubscriptionEvent::CancellationWithdrawn(
            CancellationWithdrawn { at: t0() },
        )]);
}

#[tokio::test]
async fn a_withdrawn_cancellation_lets_the_subscription_renew() {
    let withdrawn = SubscriptionEvent::CancellationWithdrawn(CancellationWithdrawn { at: t0() });
    let renewed = when(
        with(active(), vec![scheduled(&[]), withdrawn]),
        term_end(),
        SubscriptionCommand::Renew,
    )
    .await
    .expect("renews again");
    assert_eq!(renewed.len(), 1);
}

#[tokio::test]
async fn withdrawing_without_a_scheduled_cancellation_is_refused() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::WithdrawCancellation)
        .await
        .then_expect_error(SubscriptionError::NoCancellationScheduled);
}

#[tokio::test]
async fn withdrawing_once_the_term_has_ended_is_refused() {
    SubscriptionTest::with(services_at(term_end()))
        .given(with(active(), vec![scheduled(&[])]))
        .when_async(SubscriptionCommand::WithdrawCancellation)
        .await
        .then_expect_error(SubscriptionError::TermEnded);
}

// --- reactivate ---------------------------------------------------------------------------

#[tokio::test]
async fn a_subscription_cancelled_mid_term_is_reactivated_on_its_own_term() {
    let now = t0() + Duration::days(59);
    SubscriptionTest::with(services_at(now))
        .given(with(active(), vec![cancelled_now(t0())]))
        .when_async(SubscriptionCommand::Reactivate)
        .await
        .then_expect_events(vec![SubscriptionEvent::SubscriptionReactivated(
            SubscriptionReactivated {
                term_start: term_start(),
                term_end: term_end(),
                at: now,
            },
        )]);
}

#[tokio::test]
async fn an_expired_subscription_reactivated_starts_a_new_term_now() {
    let now = at(2027, 3, 15);
    SubscriptionTest::with(services_at(now))
        .given(with(active(), vec![auto_renew_off(), expired()]))
        .when_async(SubscriptionCommand::Reactivate)
        .await
        .then_expect_events(vec![SubscriptionEvent::SubscriptionReactivated(
            SubscriptionReactivated {
                term_start: now,
                term_end: at(2028, 3, 15),
                at: now,
            },
        )]);
}

#[tokio::test]
async fn reactivation_more_than_60_days_after_the_end_is_refused() {
    SubscriptionTest::with(services_at(
        t0() + Duration::days(60) + Duration::seconds(1),
    ))
    .given(with(active(), vec![cancelled_now(t0())]))
    .when_async(SubscriptionCommand::Reactivate)
    .await
    .then_expect_error(SubscriptionError::ReactivationWindowPassed(60));
}

#[tokio::test]
async fn the_reactivation_window_counts_from_the_term_end_for_an_expired_subscription() {
    let given = with(active(), vec![auto_renew_off(), expired()]);
    assert!(when(
        given.clone(),
        term_end() + Duration::days(60),
        SubscriptionCommand::Reactivate
    )
    .await
    .is_ok());
    assert_eq!(
        when(
            given,
            term_end() + Duration::days(61),
            SubscriptionCommand::Reactivate
        )
        .await,
        Err(SubscriptionError::ReactivationWindowPassed(60))
    );
}

#[tokio::test]
async fn only_an_ended_subscription_can_be_reactivated() {
    for given in [active(), with(active(), vec![scheduled(&[])]), upcoming()] {
        SubscriptionTest::with(services())
            .given(given)
            .when_async(SubscriptionCommand::Reactivate)
            .await
            .then_expect_error(SubscriptionError::NotEnded);
    }
}

#[tokio::test]
async fn a_collection_whose_products_were_kept_cannot_be_reactivated() {
    let given = with(
        collection(),
        vec![
            cancelled_now(t0()),
            collection_cancelled(&["jira"], t0(), t0()),
        ],
    );
    SubscriptionTest::with(services())
        .given(given)
        .when_async(SubscriptionCommand::Reactivate)
        .await
        .then_expect_error(SubscriptionError::CollectionSplit);
}

// --- site, contacts -----------------------------------------------------------------------

#[tokio::test]
async fn a_site_is_linked_once() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::LinkSite {
            site: " https://acme.atlassian.net ".into(),
        })
        .await
        .then_expect_events(vec![SubscriptionEvent::SiteLinked(SiteLinked {
            site: "https://acme.atlassian.net".into(),
            at: t0(),
        })]);
    let linked = SubscriptionEvent::SiteLinked(SiteLinked {
        site: "https://acme.atlassian.net".into(),
        at: t0(),
    });
    SubscriptionTest::with(services())
        .given(with(active(), vec![linked]))
        .when_async(SubscriptionCommand::LinkSite {
            site: "https://acme.atlassian.net".into(),
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_blank_site_is_refused() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::LinkSite { site: " ".into() })
        .await
        .then_expect_error(SubscriptionError::InvalidSite);
}

fn contact_added(email: &str) -> SubscriptionEvent {
    SubscriptionEvent::ContactAdded(ContactAdded {
        email: email.into(),
        at: t0(),
    })
}

#[tokio::test]
async fn a_contact_is_added_lower_cased_and_only_once() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::AddContact {
            email: "Bob@Acme.test".into(),
        })
        .await
        .then_expect_events(vec![contact_added("bob@acme.test")]);
    SubscriptionTest::with(services())
        .given(with(active(), vec![contact_added("bob@acme.test")]))
        .when_async(SubscriptionCommand::AddContact {
            email: "BOB@acme.test".into(),
        })
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_contact_must_be_an_email_address() {
    for bad in ["bob", "bob@", "@acme.test", "bob smith@acme.test", "a@b@c"] {
        SubscriptionTest::with(services())
            .given(active())
            .when_async(SubscriptionCommand::AddContact { email: bad.into() })
            .await
            .then_expect_error(SubscriptionError::InvalidEmail);
    }
}

#[tokio::test]
async fn contacts_are_limited_by_policy() {
    let mut given = active();
    for i in 0..SubscriptionPolicy::default().max_contacts {
        given.push(contact_added(&format!("c{i}@acme.test")));
    }
    SubscriptionTest::with(services())
        .given(given)
        .when_async(SubscriptionCommand::AddContact {
            email: "one-more@acme.test".into(),
        })
        .await
        .then_expect_error(SubscriptionError::TooManyContacts(50));
}

#[tokio::test]
async fn a_contact_is_removed_and_an_unknown_one_is_refused() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![contact_added("bob@acme.test")]))
        .when_async(SubscriptionCommand::RemoveContact {
            email: "BOB@acme.test".into(),
        })
        .await
        .then_expect_events(vec![SubscriptionEvent::ContactRemoved(ContactRemoved {
            email: "bob@acme.test".into(),
            at: t0(),
        })]);
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::RemoveContact {
            email: "eve@acme.test".into(),
        })
        .await
        .then_expect_error(SubscriptionError::ContactNotFound("eve@acme.test".into()));
}

// --- apps ---------------------------------------------------------------------------------

fn add_app(n: u128, app: &str) -> SubscriptionCommand {
    SubscriptionCommand::AddApp(AddApp {
        app_id: app_id(n),
        entitlement_number: format!("E-APP{n}-0000-0000"),
        app: app.into(),
        plan: "standard".into(),
    })
}

#[tokio::test]
async fn an_app_is_added_with_its_own_entitlement_number() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(add_app(1, "tempo"))
        .await
        .then_expect_events(vec![app_added(1, "tempo")]);
}

#[tokio::test]
async fn an_app_needs_its_parent_in_force() {
    SubscriptionTest::with(services())
        .given(upcoming())
        .when_async(add_app(1, "tempo"))
        .await
        .then_expect_error(SubscriptionError::NotActive);
    SubscriptionTest::with(services())
        .given(with(active(), vec![cancelled_now(t0())]))
        .when_async(add_app(1, "tempo"))
        .await
        .then_expect_error(SubscriptionError::Ended);
}

#[tokio::test]
async fn an_app_cannot_reuse_an_entitlement_number() {
    let mut cmd = AddApp {
        app_id: app_id(2),
        entitlement_number: NUMBER.into(),
        app: "drawio".into(),
        plan: "standard".into(),
    };
    SubscriptionTest::with(services())
        .given(with(active(), vec![app_added(1, "tempo")]))
        .when_async(SubscriptionCommand::AddApp(cmd.clone()))
        .await
        .then_expect_error(SubscriptionError::DuplicateEntitlementNumber);
    cmd.entitlement_number = "E-APP1-0000-0000".into();
    SubscriptionTest::with(services())
        .given(with(active(), vec![app_added(1, "tempo")]))
        .when_async(SubscriptionCommand::AddApp(cmd))
        .await
        .then_expect_error(SubscriptionError::DuplicateEntitlementNumber);
}

#[tokio::test]
async fn the_same_app_cannot_be_active_twice_but_can_come_back_after_cancellation() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![app_added(1, "tempo")]))
        .when_async(add_app(2, "Tempo"))
        .await
        .then_expect_error(SubscriptionError::AppAlreadyInstalled("Tempo".into()));
    SubscriptionTest::with(services())
        .given(with(
            active(),
            vec![
                app_added(1, "tempo"),
                app_cancelled(1, AppCancellationCause::Requested, t0()),
            ],
        ))
        .when_async(add_app(2, "tempo"))
        .await
        .then_expect_events(vec![app_added(2, "tempo")]);
}

#[tokio::test]
async fn an_app_is_cancelled_once() {
    SubscriptionTest::with(services())
        .given(with(active(), vec![app_added(1, "tempo")]))
        .when_async(SubscriptionCommand::CancelApp { app_id: app_id(1) })
        .await
        .then_expect_events(vec![app_cancelled(
            1,
            AppCancellationCause::Requested,
            t0(),
        )]);
    SubscriptionTest::with(services())
        .given(with(
            active(),
            vec![
                app_added(1, "tempo"),
                app_cancelled(1, AppCancellationCause::Requested, t0()),
            ],
        ))
        .when_async(SubscriptionCommand::CancelApp { app_id: app_id(1) })
        .await
        .then_expect_error(SubscriptionError::AppAlreadyCancelled);
}

#[tokio::test]
async fn cancelling_an_unknown_app_is_refused() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::CancelApp { app_id: app_id(9) })
        .await
        .then_expect_error(SubscriptionError::AppNotFound);
}

// --- billing account ----------------------------------------------------------------------

#[tokio::test]
async fn moving_the_billing_account_records_where_from_and_where_to() {
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::MoveBillingAccount { to: "BA-2".into() })
        .await
        .then_expect_events(vec![SubscriptionEvent::BillingAccountChanged(
            BillingAccountChanged {
                from: "BA-1".into(),
                to: "BA-2".into(),
                at: t0(),
            },
        )]);
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::MoveBillingAccount { to: "BA-1".into() })
        .await
        .then_expect_events(vec![]);
}

// --- existence, terms, wire shape ---------------------------------------------------------

#[tokio::test]
async fn commands_on_a_subscription_that_was_never_created_are_refused() {
    for command in [
        SubscriptionCommand::Activate,
        SubscriptionCommand::ChangeSeats { seats: 3 },
        SubscriptionCommand::Renew,
        SubscriptionCommand::Expire,
        SubscriptionCommand::Reactivate,
        SubscriptionCommand::WithdrawCancellation,
        cancel(CancelEffective::Immediately, &[]),
        SubscriptionCommand::AddContact {
            email: "bob@acme.test".into(),
        },
    ] {
        SubscriptionTest::with(services())
            .given_no_previous_events()
            .when_async(command)
            .await
            .then_expect_error(SubscriptionError::NotFound);
    }
}

#[test]
fn a_yearly_term_renews_on_the_same_date_across_a_leap_year() {
    let (start, end) = next_term(at(2027, 3, 1), at(2028, 3, 1));
    assert_eq!((start, end), (at(2028, 3, 1), at(2029, 3, 1)));
    let (_, monthly) = next_term(at(2026, 1, 15), at(2026, 2, 15));
    assert_eq!(monthly, at(2026, 3, 15));
}

#[test]
fn a_term_of_days_keeps_its_exact_duration() {
    let start = at(2026, 3, 1);
    let end = start + Duration::days(30) + Duration::hours(6);
    let (next_start, next_end) = next_term(start, end);
    assert_eq!(next_start, end);
    assert_eq!(next_end - next_start, end - start);
}

#[test]
fn every_event_is_stored_under_its_serde_tag() {
    for event in [created(), activated(), scheduled(&[]), expired()] {
        let json = serde_json::to_value(&event).expect("serialize");
        assert_eq!(json["type"], event.event_type());
        assert_eq!(event.event_version(), "1.0");
    }
    let json = serde_json::to_value(created()).expect("serialize");
    assert_eq!(json["channel"], serde_json::json!({"kind": "direct"}));
}

fn sold_by_p1() -> Vec<SubscriptionEvent> {
    let mut cmd = create_command();
    cmd.channel = Channel::Partner {
        partner_id: "p1".into(),
    };
    vec![created_from(cmd), activated()]
}

#[tokio::test]
async fn a_subscription_passes_to_the_org_when_its_partner_relationship_ends() {
    SubscriptionTest::with(services())
        .given(sold_by_p1())
        .when_async(SubscriptionCommand::PassToOrg {
            partner_id: "p1".into(),
        })
        .await
        .then_expect_events(vec![SubscriptionEvent::SubscriptionPassedToOrg(
            SubscriptionPassedToOrg {
                partner_id: "p1".into(),
                at: t0(),
            },
        )]);
}

#[tokio::test]
async fn passing_to_the_org_twice_or_for_another_partner_changes_nothing() {
    let passed = SubscriptionEvent::SubscriptionPassedToOrg(SubscriptionPassedToOrg {
        partner_id: "p1".into(),
        at: t0(),
    });
    SubscriptionTest::with(services())
        .given(with(sold_by_p1(), vec![passed]))
        .when_async(SubscriptionCommand::PassToOrg {
            partner_id: "p1".into(),
        })
        .await
        .then_expect_events(vec![]);
    SubscriptionTest::with(services())
        .given(sold_by_p1())
        .when_async(SubscriptionCommand::PassToOrg {
            partner_id: "p2".into(),
        })
        .await
        .then_expect_events(vec![]);
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::PassToOrg {
            partner_id: "p1".into(),
        })
        .await
        .then_expect_events(vec![]);
}

#[test]
fn a_subscription_passed_to_the_org_has_no_managing_partner() {
    let mut subscription = Subscription::default();
    for event in sold_by_p1() {
        cqrs_es::Aggregate::apply(&mut subscription, event);
    }
    assert_eq!(subscription.managing_partner(), Some("p1"));
    cqrs_es::Aggregate::apply(
        &mut subscription,
        SubscriptionEvent::SubscriptionPassedToOrg(SubscriptionPassedToOrg {
            partner_id: "p1".into(),
            at: t0(),
        }),
    );
    assert_eq!(subscription.managing_partner(), None);
    assert_eq!(subscription.channel.partner_id(), Some("p1"));
}

#[tokio::test]
async fn more_than_a_million_seats_or_a_million_gb_at_once_is_refused() {
    let mut cmd = create_command();
    cmd.seats = MAX_SEATS + 1;
    SubscriptionTest::with(services())
        .given_no_previous_events()
        .when_async(SubscriptionCommand::Create(cmd))
        .await
        .then_expect_error(SubscriptionError::TooManySeats(MAX_SEATS));
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::ChangeSeats {
            seats: MAX_SEATS + 1,
        })
        .await
        .then_expect_error(SubscriptionError::TooManySeats(MAX_SEATS));
    SubscriptionTest::with(services())
        .given(active())
        .when_async(SubscriptionCommand::PurchaseStorage {
            gb: MAX_STORAGE_GB + 1,
        })
        .await
        .then_expect_error(SubscriptionError::TooMuchStorage(MAX_STORAGE_GB));
}
