//! The resolution clock: started at the opening, paused while the case waits for the customer
//! (and while it is resolved), resumed with the rest of its target, re-targeted by a priority
//! change, warned and breached only while it runs.
//!
//! The case is impact 3 on an always-open calendar unless a test says otherwise: 5 business days
//! of 24 hours (120 h), warned at 75% (90 h).

use super::*;

fn opened_with_clock() -> SupportCaseEvent {
    let mut e = opened_event(3, Duration::hours(8));
    e.resolution = Some(resolution_clock(3, t0()));
    SupportCaseEvent::CaseOpened(e)
}

fn hours(h: i64) -> DateTime<Utc> {
    t0() + Duration::hours(h)
}

/// The clock of impact 3 with `elapsed_hours` counted, stopped.
fn stopped(elapsed_hours: i64) -> ResolutionClock {
    ResolutionClock {
        target_seconds: 120 * 3600,
        elapsed_seconds: elapsed_hours * 3600,
        running_since: None,
        due: None,
        warning_at: None,
    }
}

/// The clock of impact 3 with `elapsed_hours` counted, running again from `since`.
fn running(elapsed_hours: i64, since: DateTime<Utc>) -> ResolutionClock {
    let left = Duration::hours(120 - elapsed_hours);
    let warning_left = Duration::hours(90 - elapsed_hours);
    ResolutionClock {
        running_since: Some(since),
        due: Some(since + left),
        warning_at: Some(since + warning_left),
        ..stopped(elapsed_hours)
    }
}

fn paused_at(h: i64) -> SupportCaseEvent {
    SupportCaseEvent::CustomerInfoRequested(CustomerInfoRequested {
        comment_id: comment_id(),
        by: agent(),
        at: hours(h),
        resolution: Some(stopped(h)),
    })
}

fn resolution_check(warning: bool) -> SupportCaseCommand {
    let check = SlaCheck {
        clock: SlaClock::Resolution,
        by: system(),
    };
    if warning {
        SupportCaseCommand::RaiseSlaWarning(check)
    } else {
        SupportCaseCommand::RecordSlaBreach(check)
    }
}

#[tokio::test]
async fn asking_the_customer_pauses_the_resolution_clock_with_the_time_counted_so_far() {
    let now = hours(2);
    CaseTest::with(at(now))
        .given(vec![opened_with_clock()])
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
                due: hours(8),
                breached: false,
                at: now,
            }),
            paused_at(2),
        ]);
}

#[tokio::test]
async fn the_customers_answer_resumes_it_with_the_rest_of_the_target() {
    // Paused after 2 hours, answered 48 hours later: 118 hours are left from the answer.
    let now = hours(50);
    CaseTest::with(at(now))
        .given(vec![opened_with_clock(), paused_at(2)])
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![
            comment_added(customer(), Visibility::Public, now),
            SupportCaseEvent::CustomerResponded(CustomerResponded {
                comment_id: comment_id(),
                by: customer(),
                waiting_since: hours(2),
                at: now,
                resolution: Some(running(2, now)),
            }),
        ]);
}

#[tokio::test]
async fn support_taking_it_up_again_resumes_it_too() {
    let now = hours(10);
    CaseTest::with(at(now))
        .given(vec![opened_with_clock(), paused_at(2)])
        .when_async(SupportCaseCommand::StartInvestigation(StartInvestigation {
            by: agent(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::InvestigationStarted(
            InvestigationStarted {
                by: agent(),
                at: now,
                resolution: Some(running(2, now)),
            },
        )]);
}

#[tokio::test]
async fn no_warning_or_breach_while_it_is_paused() {
    // Long past the first due time (120 h), but the clock has counted only 2 hours.
    for warning in [true, false] {
        refused_as_not_due(
            vec![opened_with_clock(), paused_at(2)],
            hours(200),
            resolution_check(warning),
        )
        .await;
    }
}

#[tokio::test]
async fn once_resumed_the_breach_comes_at_the_new_due_time_and_once() {
    let resumed = SupportCaseEvent::CustomerResponded(CustomerResponded {
        comment_id: comment_id(),
        by: customer(),
        waiting_since: hours(2),
        at: hours(50),
        resolution: Some(running(2, hours(50))),
    });
    let given = vec![opened_with_clock(), paused_at(2), resumed];
    // Due 118 hours after the answer, not 120 after the opening.
    refused_as_not_due(given.clone(), hours(167), resolution_check(false)).await;
    let breach = SlaReached {
        clock: SlaClock::Resolution,
        due: hours(168),
        at: hours(168),
    };
    CaseTest::with(at(hours(168)))
        .given(given.clone())
        .when_async(resolution_check(false))
        .await
        .then_expect_events(vec![SupportCaseEvent::SlaBreached(breach.clone())]);
    let mut again = given;
    again.push(SupportCaseEvent::SlaBreached(breach));
    refused_as_not_due(again, hours(169), resolution_check(false)).await;
}

#[tokio::test]
async fn resolving_stops_it_and_reopening_resumes_it() {
    let resolve = SupportCaseCommand::Resolve(ResolveCase {
        by: agent(),
        resolution: None,
    });
    CaseTest::with(at(hours(30)))
        .given(vec![opened_with_clock()])
        .when_async(resolve)
        .await
        .then_expect_events(vec![SupportCaseEvent::CaseResolved(CaseResolved {
            by: agent(),
            at: hours(30),
            resolution: Some(stopped(30)),
        })]);

    let resolved = SupportCaseEvent::CaseResolved(CaseResolved {
        by: agent(),
        at: hours(30),
        resolution: Some(stopped(30)),
    });
    CaseTest::with(at(hours(40)))
        .given(vec![opened_with_clock(), resolved])
        .when_async(comment_by(customer(), Visibility::Public))
        .await
        .then_expect_events(vec![
            comment_added(customer(), Visibility::Public, hours(40)),
            SupportCaseEvent::CaseReopened(CaseReopened {
                comment_id: comment_id(),
                by: customer(),
                resolved_at: hours(30),
                at: hours(40),
                resolution: Some(running(30, hours(40))),
            }),
        ]);
}

#[tokio::test]
async fn a_priority_change_while_paused_changes_the_target_and_stays_paused() {
    CaseTest::with(at(hours(3)))
        .given(vec![opened_with_clock(), paused_at(2)])
        .when_async(SupportCaseCommand::ChangePriority(ChangePriority {
            priority: 1,
            by: agent(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::PriorityChanged(PriorityChanged {
            from: 3,
            to: 1,
            first_response_due: hours(1),
            first_response_warning_at: Some(t0() + Duration::minutes(45)),
            by: agent(),
            at: hours(3),
            resolution: Some(ResolutionClock {
                target_seconds: 24 * 3600,
                ..stopped(2)
            }),
        })]);
}

#[tokio::test]
async fn a_priority_change_while_running_moves_its_due_time() {
    // Impact 3 -> 2 at hour 5: 3 days (72 h) from the opening instead of 5.
    CaseTest::with(at(hours(5)))
        .given(vec![opened_with_clock()])
        .when_async(SupportCaseCommand::ChangePriority(ChangePriority {
            priority: 2,
            by: agent(),
        }))
        .await
        .then_expect_events(vec![SupportCaseEvent::PriorityChanged(PriorityChanged {
            from: 3,
            to: 2,
            first_response_due: hours(4),
            first_response_warning_at: Some(hours(3)),
            by: agent(),
            at: hours(5),
            resolution: Some(ResolutionClock {
                target_seconds: 72 * 3600,
                elapsed_seconds: 0,
                running_since: Some(t0()),
                due: Some(hours(72)),
                warning_at: Some(hours(54)),
            }),
        })]);
}

#[tokio::test]
async fn on_a_business_calendar_the_pause_keeps_the_business_time_counted() {
    // Opened Monday 18:00 in Tokyo (closing time; t0), asked on Tuesday at 11:00 (t0 + 17 h):
    // the clock counted 09:00 to 11:00, 2 business hours.
    let now = hours(17);
    let mut opened = opened_event(2, Duration::hours(19));
    opened.resolution = Some(ResolutionClock {
        target_seconds: 27 * 3600,
        elapsed_seconds: 0,
        running_since: Some(t0()),
        due: Some(hours(72)),
        warning_at: Some(t0() + Duration::minutes(65 * 60 + 15)),
    });
    let error_or_events = CaseTest::with(in_tokyo(now))
        .given(vec![SupportCaseEvent::CaseOpened(opened)])
        .when_async(request_info(agent()))
        .await
        .inspect_result()
        .expect("asked");
    let paused = error_or_events.iter().find_map(|e| match e {
        SupportCaseEvent::CustomerInfoRequested(e) => e.resolution,
        _ => None,
    });
    assert_eq!(
        paused,
        Some(ResolutionClock {
            target_seconds: 27 * 3600,
            elapsed_seconds: 2 * 3600,
            running_since: None,
            due: None,
            warning_at: None,
        })
    );
}
