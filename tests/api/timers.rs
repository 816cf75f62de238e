//! Timed rules: automatic resolution after the waiting policy, closing after the close
//! policy, subscription activation, renewal and expiry: on time, exactly once, surviving
//! restarts and several server processes, and never re-fired by a replay.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::app::{AppState, Settings};
use subdesk::scheduler::{Fired, Scheduler};
use subdesk_aggregates::{Clock, ManualClock};

use crate::case_fixtures::{ok, read_ok, spawn_app_at_t0, t0, ACME_ENTITLEMENT};
use crate::helpers::{
    acme_case, expect_json, fresh_database, issue_token, spawn_app_with, subdesk_cli,
    timer_firings, As, Firings, ServerProcess, TestApp,
};

/// Events of one type in one stream, with the role that appended them.
async fn events_of(app: &TestApp, id: &str, event_type: &str) -> Vec<Value> {
    let db = app.db().await;
    db.query(
        "SELECT metadata FROM events WHERE aggregate_id = $1 AND event_type = $2 ORDER BY sequence",
        &[&id, &event_type],
    )
    .await
    .expect("events")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn count_type(target: &subdesk::db::Target, event_type: &str) -> i64 {
    crate::helpers::connect(target)
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = $1",
            &[&event_type],
        )
        .await
        .expect("count")
        .get(0)
}

/// A case opened by Ann and put to waiting by Sam; returns (case id, request-info receipt).
async fn waiting_case(app: &TestApp) -> (String, Value) {
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let mut body = acme_case();
    body["entitlement_number"] = json!(ACME_ENTITLEMENT);
    let opened = app.open_case(&ann, body).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let receipt = ok(
        app,
        &sam,
        &format!("/v1/cases/{id}/request-info"),
        json!({"body": "Which browser?"}),
    )
    .await;
    (id, receipt)
}

/// Lets the timers read model catch up with `receipt`, then fires what is due now and
/// returns what the round did.
async fn fire(app: &TestApp, receipt: &Value) -> Fired {
    app.wait_for_projection("timers", receipt["position"].as_i64().expect("position"))
        .await;
    app.state
        .scheduler
        .run_once()
        .await
        .expect("scheduler round")
}

/// Waits until the timers read model has applied the whole log (a fired timer is disarmed).
pub(crate) async fn settle_timers(app: &TestApp) {
    let newest = app.newest_position().await;
    app.wait_for_projection("timers", newest).await;
}

/// A round that claimed nothing at all: not even a command the aggregate would refuse.
const NOTHING: Fired = Fired {
    accepted: 0,
    refused: 0,
    failed: 0,
};

/// One accepted command, nothing refused or failed.
const ONCE: Fired = Fired {
    accepted: 1,
    refused: 0,
    failed: 0,
};

#[tokio::test]
async fn a_waiting_case_is_resolved_at_exactly_five_days_and_not_a_second_earlier() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let (id, receipt) = waiting_case(&app).await;

    clock.set(t0() + Span::days(5) - Span::seconds(1));
    assert_eq!(
        fire(&app, &receipt).await,
        NOTHING,
        "a second early the scheduler does not even try"
    );
    assert!(events_of(&app, &id, "CaseAutoResolved").await.is_empty());

    clock.set(t0() + Span::days(5));
    assert_eq!(fire(&app, &receipt).await, ONCE, "fired once at five days");
    let resolved = events_of(&app, &id, "CaseAutoResolved").await;
    assert_eq!(resolved.len(), 1, "resolved at five days");
    assert_eq!(resolved[0]["actor_role"], "system");
    assert_eq!(resolved[0]["actor_id"], "system");

    // Its lease keeps it from being fired again at once, before the projection disarms it.
    assert_eq!(
        app.state.scheduler.run_once().await.expect("round"),
        NOTHING
    );
    // Once disarmed, a later round finds nothing to fire: no second attempt at all, not just
    // one the aggregate refuses.
    settle_timers(&app).await;
    clock.set(t0() + Span::days(6));
    assert_eq!(
        app.state.scheduler.run_once().await.expect("round"),
        NOTHING
    );
    assert_eq!(
        app.state.scheduler.run_once().await.expect("round"),
        NOTHING
    );
    assert_eq!(events_of(&app, &id, "CaseAutoResolved").await.len(), 1);

    let sam = app.token(As::agent()).await;
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), &sam).await,
        StatusCode::OK,
    )
    .await;
    let entries = history.as_array().expect("history entries");
    let auto = entries
        .iter()
        .filter(|e| e["event_type"] == "CaseAutoResolved")
        .count();
    assert_eq!(
        auto, 1,
        "exactly one automatic resolution in the history: {history}"
    );
}

/// Leases of `id`'s timers.
async fn leases_of(app: &TestApp, id: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT kind FROM timer_leases WHERE aggregate_id = $1 ORDER BY kind",
            &[&id],
        )
        .await
        .expect("leases")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn housekeeping_forgets_the_lease_of_a_fired_timer_and_keeps_live_ones() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let (id, receipt) = waiting_case(&app).await;
    clock.set(t0() + Span::days(5));
    fire(&app, &receipt).await;
    assert_eq!(events_of(&app, &id, "CaseAutoResolved").await.len(), 1);
    assert_eq!(leases_of(&app, &id).await, ["auto_resolve"]);

    // The projection disarms the fired timer and arms the close timer.
    let newest: i64 = app
        .db()
        .await
        .query_one(
            "SELECT max(position) FROM events WHERE aggregate_id = $1",
            &[&id],
        )
        .await
        .expect("newest position")
        .get(0);
    app.wait_for_projection("timers", newest).await;

    // While its lease runs, a lease is kept even though its timer is gone.
    let scheduler = &app.state.scheduler;
    assert_eq!(scheduler.purge_stale_leases().await.expect("purge"), 0);
    assert_eq!(leases_of(&app, &id).await, ["auto_resolve"]);

    clock.set(t0() + Span::days(5) + Span::hours(1));
    assert_eq!(scheduler.purge_stale_leases().await.expect("purge"), 1);
    assert!(leases_of(&app, &id).await.is_empty());

    // The close timer, which has no lease yet, is untouched and fires on time.
    clock.set(t0() + Span::days(19));
    scheduler.run_once().await.expect("round");
    assert_eq!(events_of(&app, &id, "CaseClosed").await.len(), 1);
    // Its lease is live and its timer not yet removed: a purge now keeps it.
    assert_eq!(scheduler.purge_stale_leases().await.expect("purge"), 0);
    assert_eq!(leases_of(&app, &id).await, ["close"]);
}

#[tokio::test]
async fn a_customer_reply_cancels_the_wait_and_a_new_request_starts_a_new_five_days() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let (id, _) = waiting_case(&app).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;

    clock.set(t0() + Span::days(4));
    let reply = ok(
        &app,
        &ann,
        &format!("/v1/cases/{id}/comments"),
        json!({"body": "Firefox 128"}),
    )
    .await;
    clock.set(t0() + Span::days(5));
    fire(&app, &reply).await;
    assert!(
        events_of(&app, &id, "CaseAutoResolved").await.is_empty(),
        "the reply cancelled it"
    );
    assert_eq!(events_of(&app, &id, "CustomerResponded").await.len(), 1);

    let again = ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/request-info"),
        json!({"body": "And the version?"}),
    )
    .await;
    clock.set(t0() + Span::days(10) - Span::seconds(1));
    fire(&app, &again).await;
    assert!(
        events_of(&app, &id, "CaseAutoResolved").await.is_empty(),
        "a new wait of five days"
    );
    clock.set(t0() + Span::days(10));
    fire(&app, &again).await;
    assert_eq!(events_of(&app, &id, "CaseAutoResolved").await.len(), 1);
}

#[tokio::test]
async fn a_resolved_case_is_closed_after_the_close_policy_and_then_never_changes() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let (id, _) = waiting_case(&app).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let resolved = ok(&app, &sam, &format!("/v1/cases/{id}/resolve"), json!({})).await;

    clock.set(t0() + Span::days(14) - Span::seconds(1));
    fire(&app, &resolved).await;
    assert!(events_of(&app, &id, "CaseClosed").await.is_empty());
    clock.set(t0() + Span::days(14));
    fire(&app, &resolved).await;
    assert_eq!(events_of(&app, &id, "CaseClosed").await.len(), 1);

    let refused = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &sam,
            &json!({"body": "one more note"}),
        )
        .await;
    let problem = expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "case_closed");
    let reply = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &ann,
            &json!({"body": "one more thing"}),
        )
        .await;
    let follow_up = expect_json(reply, StatusCode::CREATED).await;
    assert_eq!(
        follow_up["follow_up_of"],
        json!(id),
        "the reply opened a linked case"
    );
}

#[tokio::test]
async fn subscriptions_activate_renew_with_the_scheduled_seats_expire_and_cancel_on_time() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let root = app.token(As::admin()).await;
    let start = t0() + Span::days(1);
    let end = start + Span::days(30);
    let body = |auto_renew: bool| {
        json!({"org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 10,
               "term_start": start.to_rfc3339(), "term_end": end.to_rfc3339(),
               "auto_renew": auto_renew, "channel": {"kind": "direct"}})
    };
    let renewing = app.create_subscription(&root, body(true)).await;
    let lapsing = app.create_subscription(&root, body(false)).await;
    let cancelling = app.create_subscription(&root, body(true)).await;
    assert_eq!(renewing["status"], "upcoming");
    let (r, l, c) = (
        renewing["id"].as_str().expect("id").to_string(),
        lapsing["id"].as_str().expect("id").to_string(),
        cancelling["id"].as_str().expect("id").to_string(),
    );

    clock.set(start);
    fire(&app, &cancelling).await;
    for id in [&r, &l, &c] {
        assert_eq!(
            events_of(&app, id, "SubscriptionActivated").await.len(),
            1,
            "activated at term start"
        );
    }

    ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{r}/seats"),
        json!({"seats": 4}),
    )
    .await;
    ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{c}/apps"),
        json!({"app": "tempo", "plan": "standard"}),
    )
    .await;
    ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{c}/apps"),
        json!({"app": "zephyr", "plan": "standard"}),
    )
    .await;
    let last = ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{c}/cancel"),
        json!({"effective": "at_term_end"}),
    )
    .await;

    clock.set(end - Span::seconds(1));
    fire(&app, &last).await;
    assert!(
        events_of(&app, &r, "SubscriptionRenewed").await.is_empty(),
        "not before the bill date"
    );

    clock.set(end);
    fire(&app, &last).await;
    let db = app.db().await;
    let renewed: Value = db
        .query_one(
            "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'SubscriptionRenewed'",
            &[&r],
        )
        .await
        .expect("renewed")
        .get(0);
    assert_eq!(
        renewed["seats"], 4,
        "the scheduled reduction applies at renewal"
    );
    assert_eq!(
        events_of(&app, &l, "SubscriptionExpired").await.len(),
        1,
        "auto-renew off: expired"
    );
    assert_eq!(
        events_of(&app, &c, "SubscriptionCancelled").await.len(),
        1,
        "scheduled cancellation took effect"
    );
    let app_cancellations = events_of(&app, &c, "AppSubscriptionCancelled").await;
    assert_eq!(
        app_cancellations.len(),
        2,
        "its apps were cancelled with it"
    );
    for id in [&r, &l, &c] {
        assert!(events_of(&app, id, "SubscriptionRenewed").await.len() <= 1);
    }
    assert!(events_of(&app, &c, "SubscriptionRenewed").await.is_empty());
}

#[tokio::test]
async fn rebuilding_every_read_model_appends_nothing_and_fires_nothing_again() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let (id, receipt) = waiting_case(&app).await;
    clock.set(t0() + Span::days(5));
    assert_eq!(fire(&app, &receipt).await, ONCE);
    assert_eq!(events_of(&app, &id, "CaseAutoResolved").await.len(), 1);
    settle_timers(&app).await;

    let before = app.event_count(None).await;
    crate::helpers::forget_acme_entitlement(&app.target).await;
    let rebuilt = subdesk_cli(&app.target, &["projections", "rebuild", "--all"]).await;
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    // After the lease has long run out, the rebuilt timers arm nothing that already fired: the
    // scheduler claims nothing (a re-armed timer would be claimed and refused).
    clock.set(t0() + Span::days(6));
    assert_eq!(
        app.state.scheduler.run_once().await.expect("round"),
        NOTHING,
        "nothing fires on replay"
    );
    assert_eq!(
        app.event_count(None).await,
        before,
        "a replay appends no event"
    );
    // The close timer the resolution armed survived the rebuild and fires once, on time.
    clock.set(t0() + Span::days(19));
    assert_eq!(app.state.scheduler.run_once().await.expect("round"), ONCE);
    assert_eq!(events_of(&app, &id, "CaseClosed").await.len(), 1);
    settle_timers(&app).await;
    let check = subdesk_cli(&app.target, &["projections", "check"]).await;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// The state of another server process on `app`'s database, with the same clock: its own
/// pools, command buses and scheduler. It is not served, so no projection runs in it.
pub(crate) fn another_process(app: &TestApp, clock: &Arc<ManualClock>) -> AppState {
    let settings = Settings {
        pool_size: 4,
        ..Settings::default()
    };
    let clock: Arc<dyn Clock> = clock.clone();
    AppState::build(&app.target, &app.target, settings, clock).expect("another process's state")
}

/// How long a scheduler's round may take before the test calls it endless.
const ROUND: Duration = Duration::from_secs(60);

/// One round of each scheduler, all at once. A round ends when nothing is left to claim; a
/// scheduler that could claim a fired timer again would go on claiming it for as long as the
/// timer stays armed, so a round that never ends fails the test instead of hanging it.
pub(crate) async fn rounds_at_once(schedulers: &[&Arc<Scheduler>]) -> Vec<Fired> {
    let rounds = futures::future::join_all(schedulers.iter().map(|scheduler| scheduler.run_once()));
    tokio::time::timeout(ROUND, rounds)
        .await
        .expect("every round ends: a claimed timer is not claimed again")
        .into_iter()
        .map(|round| round.expect("scheduler round"))
        .collect()
}

/// How many of `ids` have an armed auto-resolve timer.
async fn armed(app: &TestApp, ids: &[String]) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM timers WHERE kind = 'auto_resolve' AND aggregate_id = ANY($1)",
            &[&ids],
        )
        .await
        .expect("armed timers")
        .get(0)
}

#[tokio::test]
async fn three_schedulers_firing_at_once_claim_each_due_timer_once_and_its_lease_holds_it() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let mut ids = Vec::new();
    let mut last = Value::Null;
    for _ in 0..30 {
        let (id, receipt) = waiting_case(&app).await;
        ids.push(id);
        last = receipt;
    }
    app.wait_for_projection("timers", last["position"].as_i64().expect("position"))
        .await;
    let others = [another_process(&app, &clock), another_process(&app, &clock)];
    let schedulers = [
        &app.state.scheduler,
        &others[0].scheduler,
        &others[1].scheduler,
    ];

    // Hold the read horizon back: the timers read model cannot see the resolutions, so every
    // fired timer stays armed and only its lease keeps it from being claimed again.
    let mut holder = app.db().await;
    let held = holder.transaction().await.expect("begin");
    held.query_one("SELECT pg_current_xact_id()", &[])
        .await
        .expect("take a transaction id");

    clock.set(t0() + Span::days(5));
    let rounds = rounds_at_once(&schedulers).await;
    assert_eq!(
        rounds.iter().map(|r| r.accepted).sum::<usize>(),
        30,
        "the three schedulers fired the thirty timers between them: {rounds:?}"
    );
    assert!(
        rounds.iter().all(|r| r.refused == 0 && r.failed == 0),
        "no timer was claimed by two schedulers (a second claim is refused by the case): \
         {rounds:?}"
    );

    assert_eq!(
        armed(&app, &ids).await,
        30,
        "the fired timers are still armed"
    );
    let again = rounds_at_once(&schedulers).await;
    assert_eq!(
        again, [NOTHING; 3],
        "their leases keep every scheduler from claiming them again"
    );

    held.rollback().await.expect("release the horizon");
    settle_timers(&app).await;
    assert_eq!(armed(&app, &ids).await, 0, "the projection disarmed them");
    clock.set(t0() + Span::days(5) + Span::hours(1));
    for scheduler in schedulers {
        assert_eq!(
            scheduler.run_once().await.expect("round"),
            NOTHING,
            "nothing is left to fire once the leases ran out"
        );
    }
    let per_case: Vec<i64> = app
        .db()
        .await
        .query(
            "SELECT count(*) FILTER (WHERE event_type = 'CaseAutoResolved') FROM events \
              WHERE aggregate_id = ANY($1) GROUP BY aggregate_id",
            &[&ids],
        )
        .await
        .expect("per case")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(per_case, vec![1; 30], "one resolution per case");
}

#[tokio::test]
async fn a_timer_another_scheduler_is_claiming_is_passed_over_not_waited_for() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let (locked, _) = waiting_case(&app).await;
    let (free, receipt) = waiting_case(&app).await;
    app.wait_for_projection("timers", receipt["position"].as_i64().expect("position"))
        .await;
    clock.set(t0() + Span::days(5));

    // Another scheduler's claim is in flight: it holds the row lock of one due timer.
    let mut other = app.db().await;
    let claiming = other.transaction().await.expect("begin");
    claiming
        .query_one(
            "SELECT 1 FROM timers WHERE aggregate_id = $1 AND kind = 'auto_resolve' FOR UPDATE",
            &[&locked],
        )
        .await
        .expect("lock one timer");

    // This round skips the locked row and fires the other. (Queued behind the lock, its
    // claim would wait for a transaction that only ends after it, until the statement
    // timeout cancelled it.)
    // Bounded: a scheduler that claimed a timer it had just fired would never end its round.
    let round = tokio::time::timeout(ROUND, app.state.scheduler.run_once())
        .await
        .expect("the round ends")
        .expect("a claim passes over a timer another scheduler holds");
    assert_eq!(round, ONCE, "the free timer fired, the held one was left");
    assert_eq!(events_of(&app, &free, "CaseAutoResolved").await.len(), 1);
    assert!(events_of(&app, &locked, "CaseAutoResolved")
        .await
        .is_empty());

    // The other claim ends without taking it: the next round fires it.
    claiming.rollback().await.expect("end the other claim");
    let round = tokio::time::timeout(ROUND, app.state.scheduler.run_once())
        .await
        .expect("the round ends")
        .expect("round");
    assert_eq!(round, ONCE);
    assert_eq!(events_of(&app, &locked, "CaseAutoResolved").await.len(), 1);
}

#[tokio::test]
async fn with_a_two_second_policy_a_waiting_case_reads_resolved_within_seconds() {
    let mut settings = Settings::default();
    settings.case_policy.auto_resolve_after = Span::seconds(2);
    let app = spawn_app_with(settings, Arc::new(subdesk::clock::SystemClock)).await;
    let (id, receipt) = waiting_case(&app).await;
    let sam = app.token(As::agent()).await;
    let detail = read_ok(&app, &sam, &format!("/v1/cases/{id}"), &receipt["position"]).await;
    assert_eq!(detail["status"], "waiting_for_customer");
    assert!(
        detail["auto_resolve_due"].is_string(),
        "the detail shows when: {detail}"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let case = expect_json(
            app.get(&format!("/v1/cases/{id}"), &sam).await,
            StatusCode::OK,
        )
        .await;
        if case["status"] == "resolved" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {}",
            case["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resolved = events_of(&app, &id, "CaseAutoResolved").await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["actor_role"], "system");
}

/// Opens `n` cases through `server` and asks the customer of each for information.
async fn waiting_cases(
    target: &subdesk::db::Target,
    server: &ServerProcess,
    n: usize,
) -> Vec<String> {
    crate::helpers::seed_acme_entitlement(target).await;
    let http = reqwest::Client::new();
    let ann = issue_token(target, As::customer("ann@acme.test", "acme")).await;
    let sam = issue_token(target, As::agent()).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = server.open_case(&http, &ann).await;
        let asked = http
            .post(format!("{}/v1/cases/{id}/request-info", server.address))
            .bearer_auth(&sam)
            .json(&json!({"body": "Details?"}))
            .send()
            .await
            .expect("request info");
        assert!(asked.status().is_success(), "{:?}", asked.text().await);
        ids.push(id);
    }
    ids
}

/// Each of `ids`' auto-resolve timers was claimed once and fired: its lease records a first
/// attempt that was accepted (every further claim counts an attempt).
async fn assert_single_claims(target: &subdesk::db::Target, ids: &[String]) {
    let leases: Vec<(String, i32, Option<String>)> = crate::helpers::connect(target)
        .await
        .query(
            "SELECT aggregate_id, attempts, last_outcome FROM timer_leases \
              WHERE kind = 'auto_resolve' AND aggregate_id = ANY($1) ORDER BY aggregate_id",
            &[&ids],
        )
        .await
        .expect("leases")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(leases.len(), ids.len(), "one lease per fired timer");
    assert!(
        leases
            .iter()
            .all(|(_, attempts, outcome)| *attempts == 1 && outcome.as_deref() == Some("accepted")),
        "each timer claimed once and accepted: {leases:?}"
    );
}

async fn wait_for_count(target: &subdesk::db::Target, event_type: &str, n: i64, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let count = count_type(target, event_type).await;
        if count >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} of {n} {event_type}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn three_server_processes_resolve_each_due_case_exactly_once() {
    let target = fresh_database().await;
    let policy = ["--auto-resolve-after", "2s"];
    let a = ServerProcess::start(&target, &policy).await;
    let b = ServerProcess::start(&target, &policy).await;
    let c = ServerProcess::start(&target, &policy).await;
    let ids = waiting_cases(&target, &a, 30).await;

    wait_for_count(&target, "CaseAutoResolved", 30, Duration::from_secs(30)).await;
    // Give every scheduler a few more rounds to (wrongly) fire again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What the three schedulers did, each from its own process's counters: thirty firings
    // between them and not one claim of a timer another had fired (the case would refuse it).
    let firings = [
        timer_firings(&a.address).await,
        timer_firings(&b.address).await,
        timer_firings(&c.address).await,
    ];
    let all = firings.iter().fold(Firings::default(), |sum, f| sum + *f);
    assert_eq!(all.accepted, 30, "thirty timers fired: {firings:?}");
    assert_eq!(
        all.refused, 0,
        "no timer was claimed twice across the servers: {firings:?}"
    );
    assert_single_claims(&target, &ids).await;
    let db = crate::helpers::connect(&target).await;
    let per_case: Vec<(String, i64)> = db
        .query(
            "SELECT aggregate_id, count(*) FILTER (WHERE event_type = 'CaseAutoResolved') \
               FROM events WHERE aggregate_id = ANY($1) GROUP BY aggregate_id",
            &[&ids],
        )
        .await
        .expect("per case")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(per_case.len(), 30);
    assert!(
        per_case.iter().all(|(_, n)| *n == 1),
        "exactly once each: {per_case:?}"
    );
    let resolved_views: i64 = db
        .query_one(
            "SELECT count(*) FROM case_view WHERE status = 'resolved'",
            &[],
        )
        .await
        .expect("views")
        .get(0);
    assert_eq!(
        resolved_views, 30,
        "each event projected once, by one of the three"
    );
    for server in [a, b, c] {
        server.stop().await;
    }
}

#[tokio::test]
async fn a_timer_that_fell_due_while_the_server_was_down_fires_once_after_restart() {
    let target = fresh_database().await;
    let policy = ["--auto-resolve-after", "3s"];
    let first = ServerProcess::start(&target, &policy).await;
    let ids = waiting_cases(&target, &first, 1).await;
    assert_eq!(
        timer_firings(&first.address).await,
        Firings::default(),
        "the first server fired nothing"
    );
    first.stop().await;
    assert_eq!(
        count_type(&target, "CaseAutoResolved").await,
        0,
        "not due before the stop"
    );

    // The timer falls due while no server runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = ServerProcess::start(&target, &policy).await;
    wait_for_count(&target, "CaseAutoResolved", 1, Duration::from_secs(15)).await;
    // A few more rounds of the second server's scheduler, which must not fire it again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        timer_firings(&second.address).await,
        Firings {
            accepted: 1,
            refused: 0,
            failed: 0
        },
        "the second server fired it once"
    );
    assert_single_claims(&target, &ids).await;
    let db = crate::helpers::connect(&target).await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'CaseAutoResolved'",
            &[&ids[0]],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
    second.stop().await;
}
