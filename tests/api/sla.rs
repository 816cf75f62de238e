//! SLA warnings and breaches: the scheduler records each once, at its time in the business
//! hours of the org's calendar, whoever else is firing timers; support is told.

use chrono::Duration as Span;
use reqwest::StatusCode;
use serde_json::json;
use subdesk::app::Settings;

use crate::case_fixtures::{ok, read_ok, spawn_app_at_t0, t0};
use crate::helpers::{acme_case, expect_json, As, TestApp};
use crate::timers::{another_process, rounds_at_once, settle_timers};

const ANN: As = As::customer("ann@acme.test", "acme");

/// acme works 09:00-18:00 Monday to Friday in Tokyo. t0 (Monday 09:00 UTC) is 18:00 there:
/// an impact-2 case opened then is due 4 business hours later, Tuesday 13:00 JST (t0 + 19 h),
/// and support is warned at 3 hours, Tuesday 12:00 JST (t0 + 18 h).
async fn tokyo_acme(app: &TestApp) {
    let admin = app.token(As::admin()).await;
    let day = json!([["09:00", "18:00"]]);
    let calendar = json!({"timezone": "Asia/Tokyo",
        "hours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day}});
    let set = app.put("/v1/orgs/acme/calendar", &admin, &calendar).await;
    expect_json(set, StatusCode::OK).await;
}

/// Opens acme's case as `token`; its id.
async fn opened_id(app: &TestApp, token: &str) -> String {
    let receipt = app.open_case(token, acme_case()).await;
    receipt["id"].as_str().expect("id").to_string()
}

/// How many `event_type` events (a warning or a breach) of `clock` the system appended.
/// A server at t0 whose acme works Tokyo hours, Ann's and Sam's tokens, and Ann's impact-2
/// case with its path.
struct TokyoCase {
    app: TestApp,
    clock: std::sync::Arc<subdesk_aggregates::ManualClock>,
    ann: String,
    sam: String,
    id: String,
    path: String,
}

async fn tokyo_case(settings: Settings) -> TokyoCase {
    let (app, clock) = spawn_app_at_t0(settings).await;
    tokyo_acme(&app).await;
    let ann = app.token(ANN).await;
    let sam = app.token(As::agent()).await;
    let id = opened_id(&app, &ann).await;
    let path = format!("/v1/cases/{id}");
    TokyoCase {
        app,
        clock,
        ann,
        sam,
        id,
        path,
    }
}

async fn count_of(app: &TestApp, id: &str, event_type: &str, clock: &str) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = $2 \
               AND metadata->>'actor_role' = 'system' AND payload->>'clock' = $3",
            &[&id, &event_type, &clock],
        )
        .await
        .expect("count")
        .get(0)
}

/// The first-response clock's warnings or breaches.
async fn count(app: &TestApp, id: &str, event_type: &str) -> i64 {
    count_of(app, id, event_type, "first_response").await
}

async fn alerts(app: &TestApp, id: &str) -> Vec<(String, String)> {
    app.db()
        .await
        .query(
            "SELECT kind, recipient FROM notifications WHERE aggregate_id = $1 \
               AND kind LIKE 'sla_%' ORDER BY id",
            &[&id],
        )
        .await
        .expect("alerts")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_warning_and_a_breach_are_each_recorded_once_across_two_schedulers() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    tokyo_acme(&app).await;
    let ann = app.token(ANN).await;
    let sam = app.token(As::agent()).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let path = format!("/v1/cases/{id}");

    let staff_view = read_ok(&app, &sam, &path, &opened["position"]).await;
    assert_eq!(
        staff_view["sla"]["first_response"]["due"],
        json!(t0() + Span::hours(19))
    );
    assert_eq!(
        staff_view["sla"]["first_response"]["warning_at"],
        json!(t0() + Span::hours(18))
    );
    let customer_view = read_ok(&app, &ann, &path, &opened["position"]).await;
    assert!(
        customer_view["sla"]["first_response"]
            .get("warning_at")
            .is_none(),
        "{customer_view}"
    );

    let other = another_process(&app, &clock);
    let schedulers = [&app.state.scheduler, &other.scheduler];
    settle_timers(&app).await;

    // A second before the warning time: nothing.
    clock.set(t0() + Span::hours(18) - Span::seconds(1));
    rounds_at_once(&schedulers).await;
    assert_eq!(count(&app, &id, "SlaWarningRaised").await, 0);

    // At it, two schedulers at once record it once; later rounds record nothing more.
    clock.set(t0() + Span::hours(18));
    rounds_at_once(&schedulers).await;
    settle_timers(&app).await;
    rounds_at_once(&schedulers).await;
    assert_eq!(count(&app, &id, "SlaWarningRaised").await, 1);
    assert_eq!(count(&app, &id, "SlaBreached").await, 0);

    clock.set(t0() + Span::hours(19));
    rounds_at_once(&schedulers).await;
    settle_timers(&app).await;
    clock.set(t0() + Span::hours(30));
    rounds_at_once(&schedulers).await;
    assert_eq!(count(&app, &id, "SlaWarningRaised").await, 1);
    assert_eq!(count(&app, &id, "SlaBreached").await, 1);

    // Support is told (the team: the case has no assignee), the customer side is not.
    settle_timers(&app).await;
    let newest = app.newest_position().await;
    let staff_view = read_ok(&app, &sam, &path, &json!(newest)).await;
    assert_eq!(
        staff_view["sla"]["first_response"]["warned_at"],
        json!(t0() + Span::hours(18))
    );
    assert_eq!(
        staff_view["sla"]["first_response"]["breach_recorded_at"],
        json!(t0() + Span::hours(19))
    );
    assert_eq!(
        alerts(&app, &id).await,
        [
            ("sla_warning".to_string(), "support-team".to_string()),
            ("sla_breach".to_string(), "support-team".to_string())
        ]
    );
    let customer_view = read_ok(&app, &ann, &path, &json!(newest)).await;
    let kinds: Vec<&str> = customer_view["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|entry| entry["kind"].as_str())
        .collect();
    assert!(
        !kinds.contains(&"sla_warning") && !kinds.contains(&"sla_breached"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn an_answered_case_is_never_warned_and_an_assigned_one_alerts_its_assignee() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    tokyo_acme(&app).await;
    let ann = app.token(ANN).await;
    let sam = app.token(As::agent()).await;

    let answered = opened_id(&app, &ann).await;
    let assigned = opened_id(&app, &ann).await;
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{assigned}/assign"),
        json!({}),
    )
    .await;
    // Tuesday 10:00 JST: the first case gets its answer before the warning.
    clock.set(t0() + Span::hours(16));
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{answered}/comments"),
        json!({"body": "Looking at it now"}),
    )
    .await;

    settle_timers(&app).await;
    clock.set(t0() + Span::hours(30));
    let schedulers = [&app.state.scheduler];
    rounds_at_once(&schedulers).await;
    settle_timers(&app).await;
    rounds_at_once(&schedulers).await;

    assert_eq!(count(&app, &answered, "SlaWarningRaised").await, 0);
    assert_eq!(count(&app, &answered, "SlaBreached").await, 0);
    assert_eq!(count(&app, &assigned, "SlaWarningRaised").await, 1);
    assert_eq!(count(&app, &assigned, "SlaBreached").await, 1);
    let to_sam: Vec<(String, String)> = ["sla_warning", "sla_breach"]
        .iter()
        .map(|kind| (kind.to_string(), As::agent().user.to_string()))
        .collect();
    assert_eq!(alerts(&app, &assigned).await, to_sam);
    let armed: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM timers WHERE kind LIKE 'sla_%'", &[])
        .await
        .expect("armed")
        .get(0);
    assert_eq!(
        armed, 0,
        "answered and recorded clocks leave no timer armed"
    );
}

#[tokio::test]
async fn lists_filter_the_cases_at_risk_and_the_breached_ones() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    tokyo_acme(&app).await;
    let ann = app.token(ANN).await;
    let sam = app.token(As::agent()).await;
    // Due Tuesday 13:00 JST (t0 + 19 h), warned at t0 + 18 h.
    let waiting = opened_id(&app, &ann).await;
    let answered = opened_id(&app, &ann).await;
    clock.set(t0() + Span::hours(16));
    let reply = ok(
        &app,
        &sam,
        &format!("/v1/cases/{answered}/comments"),
        json!({"body": "On it"}),
    )
    .await;
    let listed = |query: &'static str, token: String, position: i64| {
        let app = &app;
        async move {
            let page = app
                .get(
                    &format!("/v1/cases?{query}&min_position={position}"),
                    &token,
                )
                .await;
            let page = expect_json(page, StatusCode::OK).await;
            let ids: Vec<String> = page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|c| c["id"].as_str().expect("id").to_string())
                .collect();
            ids
        }
    };
    let position = reply["position"].as_i64().expect("position");

    clock.set(t0() + Span::hours(17));
    assert!(listed("sla=at_risk", sam.clone(), position)
        .await
        .is_empty());
    clock.set(t0() + Span::hours(18) + Span::minutes(30));
    assert_eq!(
        listed("sla=at_risk", sam.clone(), position).await,
        std::slice::from_ref(&waiting)
    );
    assert!(listed("sla=breached", sam.clone(), position)
        .await
        .is_empty());
    clock.set(t0() + Span::hours(20));
    assert!(listed("sla=at_risk", sam.clone(), position)
        .await
        .is_empty());
    assert_eq!(
        listed("sla=breached", sam.clone(), position).await,
        std::slice::from_ref(&waiting)
    );
    // The customer side sees breaches (each case shows `breached`), not support's warnings.
    assert_eq!(
        listed("sla=breached", ann.clone(), position).await,
        [waiting]
    );
    let refused = app.get("/v1/cases?sla=at_risk", &ann).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = app.get("/v1/cases?sla=late", &sam).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_next_reply_clock_starts_at_the_customers_comment_warns_once_and_stops_at_supports_reply(
) {
    let TokyoCase {
        app,
        clock,
        ann,
        sam,
        id,
        path,
    } = tokyo_case(slow_resolution()).await;
    // Support answers on Tuesday 10:00 JST (t0 + 16 h); Ann replies on Friday 17:00 JST
    // (2026-03-06 08:00 UTC): impact 2 gives 4 business hours, 1 on Friday and 3 on Monday,
    // so the next reply is due Monday 12:00 JST (03:00 UTC), the warning at 11:00 JST.
    clock.set(t0() + Span::hours(16));
    let comment = format!("{path}/comments");
    ok(&app, &sam, &comment, json!({"body": "Which browser?"})).await;
    let friday = utc("2026-03-06T08:00:00Z");
    clock.set(friday);
    let reply = ok(&app, &ann, &comment, json!({"body": "Firefox"})).await;
    let due = friday + Span::days(2) + Span::hours(19);
    let staff_view = read_ok(&app, &sam, &path, &reply["position"]).await;
    assert_eq!(staff_view["sla"]["next_reply"]["due"], json!(due));
    let listed = |query: &'static str, at: chrono::DateTime<chrono::Utc>| {
        let (app, sam, clock, position) = (&app, &sam, &clock, &reply["position"]);
        async move {
            clock.set(at);
            let path = format!("/v1/cases?{query}&min_position={position}");
            let page = expect_json(app.get(&path, sam).await, StatusCode::OK).await;
            page["items"].as_array().expect("items").len()
        }
    };
    // The first response came in time (and the resolution target is far): only the next reply
    // puts the case at risk, then overdue.
    assert_eq!(listed("sla=at_risk", due - Span::hours(2)).await, 0);
    assert_eq!(listed("sla=at_risk", due - Span::minutes(30)).await, 1);
    assert_eq!(listed("sla=breached", due - Span::minutes(30)).await, 0);
    assert_eq!(listed("sla=breached", due + Span::minutes(1)).await, 1);
    clock.set(friday);
    assert_eq!(
        staff_view["sla"]["next_reply"]["warning_at"],
        json!(due - Span::hours(1))
    );
    let customer_view = read_ok(&app, &ann, &path, &reply["position"]).await;
    assert_eq!(customer_view["sla"]["next_reply"]["due"], json!(due));
    assert!(customer_view["sla"]["next_reply"]
        .get("warning_at")
        .is_none());

    settle_timers(&app).await;
    let schedulers = [&app.state.scheduler];
    clock.set(due - Span::hours(1));
    rounds_at_once(&schedulers).await;
    settle_timers(&app).await;
    rounds_at_once(&schedulers).await;
    assert_eq!(
        count_of(&app, &id, "SlaWarningRaised", "next_reply").await,
        1
    );

    // Support replies before the due time: the clock stops, no breach ever comes.
    let answer = ok(&app, &sam, &comment, json!({"body": "Fixed for Firefox"})).await;
    settle_timers(&app).await;
    clock.set(due + Span::days(3));
    rounds_at_once(&schedulers).await;
    assert_eq!(count_of(&app, &id, "SlaBreached", "next_reply").await, 0);
    let staff_view = read_ok(&app, &sam, &path, &answer["position"]).await;
    assert_eq!(staff_view["sla"]["next_reply"]["due"], json!(null));
    let payloads: Vec<serde_json::Value> = app
        .db()
        .await
        .query(
            "SELECT payload FROM events WHERE aggregate_id = $1 \
               AND event_type = 'SlaWarningRaised' ORDER BY sequence",
            &[&id],
        )
        .await
        .expect("warnings")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(payloads.len(), 1);
    assert_eq!(payloads[0]["clock"], "next_reply");
}

/// Settings whose resolution targets (30 business days) stay out of a test's way.
fn slow_resolution() -> Settings {
    let mut settings = Settings::default();
    settings.case_policy.resolution_days = [30; 4];
    settings
}

/// The newest position in the log, as a read's `min_position`.
async fn newest(app: &TestApp) -> serde_json::Value {
    json!(app.newest_position().await)
}

fn utc(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("instant")
        .to_utc()
}

#[tokio::test]
async fn the_resolution_clock_pauses_while_the_case_waits_and_breaches_once_after_it_resumes() {
    let TokyoCase {
        app,
        clock,
        ann,
        sam,
        id,
        path,
    } = tokyo_case(Settings::default()).await;

    // Impact 2: 3 business days of 9 hours (27 h), counted from Tuesday 09:00 JST: due
    // Thursday 18:00 JST (t0 + 72 h) while it runs.
    let opened = read_ok(&app, &sam, &path, &newest(&app).await).await;
    let resolution = &opened["sla"]["resolution"];
    assert_eq!(resolution["target_minutes"], 27 * 60, "{resolution}");
    assert_eq!(resolution["due"], json!(t0() + Span::hours(72)));
    assert_eq!(resolution["paused"], false);

    // Support asks on Tuesday at 11:00 JST (t0 + 17 h): 2 business hours counted, paused.
    clock.set(t0() + Span::hours(17));
    ok(
        &app,
        &sam,
        &format!("{path}/request-info"),
        json!({"body": "Which browser?"}),
    )
    .await;
    // Friday 22:00 JST (t0 + 100 h), long past the first due time: still paused at 2 hours,
    // and the schedulers record nothing for the resolution clock.
    clock.set(t0() + Span::hours(100));
    let waiting = read_ok(&app, &ann, &path, &newest(&app).await).await;
    let resolution = &waiting["sla"]["resolution"];
    assert_eq!(waiting["status"], "waiting_for_customer");
    assert_eq!(resolution["paused"], true, "{resolution}");
    assert_eq!(resolution["due"], json!(null));
    assert_eq!(resolution["elapsed_business_minutes"], 120);
    assert_eq!(resolution["breached"], false);
    let other = another_process(&app, &clock);
    let schedulers = [&app.state.scheduler, &other.scheduler];
    settle_timers(&app).await;
    rounds_at_once(&schedulers).await;
    for kind in ["SlaWarningRaised", "SlaBreached"] {
        assert_eq!(count_of(&app, &id, kind, "resolution").await, 0, "{kind}");
    }

    // Ann answers then: 25 business hours are left, Monday 9, Tuesday 9, Wednesday 7: due
    // Wednesday 16:00 JST; warned at 75% of 27 h (18 h 15 min left): Wednesday 09:15 JST.
    let answer = ok(
        &app,
        &ann,
        &format!("{path}/comments"),
        json!({"body": "Firefox"}),
    )
    .await;
    let due = utc("2026-03-11T07:00:00Z");
    let resumed = read_ok(&app, &sam, &path, &answer["position"]).await;
    let resolution = &resumed["sla"]["resolution"];
    assert_eq!(resolution["paused"], false, "{resolution}");
    assert_eq!(resolution["due"], json!(due));
    assert_eq!(resolution["warning_at"], json!(utc("2026-03-11T00:15:00Z")));

    // Two schedulers at the warning time and at the due time: each recorded once.
    settle_timers(&app).await;
    for at in [utc("2026-03-11T00:15:00Z"), due, due + Span::hours(1)] {
        clock.set(at);
        rounds_at_once(&schedulers).await;
        settle_timers(&app).await;
        rounds_at_once(&schedulers).await;
    }
    assert_eq!(
        count_of(&app, &id, "SlaWarningRaised", "resolution").await,
        1
    );
    assert_eq!(count_of(&app, &id, "SlaBreached", "resolution").await, 1);
    let listed = format!("/v1/cases?sla=breached&min_position={}", newest(&app).await);
    let page = expect_json(app.get(&listed, &ann).await, StatusCode::OK).await;
    assert_eq!(page["items"][0]["id"], json!(id), "{page}");

    // Resolved an hour after the due time: 28 business hours without the waiting, breached;
    // the SLA report counts it so.
    let resolved = ok(&app, &sam, &format!("{path}/resolve"), json!({})).await;
    let view = read_ok(&app, &sam, &path, &resolved["position"]).await;
    let resolution = &view["sla"]["resolution"];
    assert_eq!(
        resolution["elapsed_business_minutes"],
        28 * 60,
        "{resolution}"
    );
    assert_eq!(resolution["breached"], true);
    assert_eq!(resolution["met_at"], json!(null));
    let report = read_ok(
        &app,
        &sam,
        "/v1/reports/sla?from=2026-03-01&to=2026-03-31",
        &resolved["position"],
    )
    .await;
    let level_2 = &report["priorities"][1];
    assert_eq!(level_2["resolution_target_days"], 3, "{level_2}");
    assert_eq!(level_2["resolutions_breached"], 1);
    assert_eq!(level_2["resolutions_met"], 0);
    assert_eq!(level_2["median_resolution_business_seconds"], 28.0 * 3600.0);
}
