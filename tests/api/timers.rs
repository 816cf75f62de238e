//! Timed rules: automatic resolution after the waiting policy, closing after the close
//! policy, subscription activation, renewal and expiry: on time, exactly once, surviving
//! restarts and several server processes, and never re-fired by a replay.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::app::Settings;

use crate::case_fixtures::{ok, read_ok, spawn_app_at_t0, t0, ACME_ENTITLEMENT};
use crate::helpers::{
    acme_case, expect_json, fresh_database, issue_token, spawn_app_with, subdesk_cli, As,
    ServerProcess, TestApp,
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

/// Lets the timers read model catch up with `receipt`, then fires what is due now.
async fn fire(app: &TestApp, receipt: &Value) {
    app.wait_for_projection("timers", receipt["position"].as_i64().expect("position"))
        .await;
    app.state
        .scheduler
        .run_once()
        .await
        .expect("scheduler round");
}

#[tokio::test]
async fn a_waiting_case_is_resolved_at_exactly_five_days_and_not_a_second_earlier() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let (id, receipt) = waiting_case(&app).await;

    clock.set(t0() + Span::days(5) - Span::seconds(1));
    fire(&app, &receipt).await;
    assert!(
        events_of(&app, &id, "CaseAutoResolved").await.is_empty(),
        "not due a second early"
    );

    clock.set(t0() + Span::days(5));
    fire(&app, &receipt).await;
    let resolved = events_of(&app, &id, "CaseAutoResolved").await;
    assert_eq!(resolved.len(), 1, "resolved at five days");
    assert_eq!(resolved[0]["actor_role"], "system");
    assert_eq!(resolved[0]["actor_id"], "system");

    // A late or repeated timer never resolves it again.
    clock.set(t0() + Span::days(6));
    app.state.scheduler.run_once().await.expect("round");
    app.state.scheduler.run_once().await.expect("round");
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
    fire(&app, &receipt).await;
    assert_eq!(events_of(&app, &id, "CaseAutoResolved").await.len(), 1);

    let before = app.event_count(None).await;
    crate::helpers::forget_acme_entitlement(&app.target).await;
    let rebuilt = subdesk_cli(&app.target, &["projections", "rebuild", "--all"]).await;
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    clock.set(t0() + Span::days(6));
    app.state.scheduler.run_once().await.expect("round");
    assert_eq!(
        app.event_count(None).await,
        before,
        "a replay appends no event"
    );
    let check = subdesk_cli(&app.target, &["projections", "check"]).await;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
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
        let response = http
            .post(format!("{}/v1/cases", server.address))
            .bearer_auth(&ann)
            .json(&acme_case())
            .send()
            .await
            .expect("open");
        let opened = expect_json(response, StatusCode::CREATED).await;
        let id = opened["id"].as_str().expect("id").to_string();
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
    first.stop().await;
    assert_eq!(
        count_type(&target, "CaseAutoResolved").await,
        0,
        "not due before the stop"
    );

    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = ServerProcess::start(&target, &policy).await;
    wait_for_count(&target, "CaseAutoResolved", 1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
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
