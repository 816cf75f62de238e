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

async fn count(app: &TestApp, id: &str, event_type: &str) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = $2 \
               AND metadata->>'actor_role' = 'system'",
            &[&id, &event_type],
        )
        .await
        .expect("count")
        .get(0)
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
        staff_view["sla"]["first_response_due"],
        json!(t0() + Span::hours(19))
    );
    assert_eq!(
        staff_view["sla"]["warning_at"],
        json!(t0() + Span::hours(18))
    );
    let customer_view = read_ok(&app, &ann, &path, &opened["position"]).await;
    assert!(
        customer_view["sla"].get("warning_at").is_none(),
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
    let newest = app
        .db()
        .await
        .query_one("SELECT max(position) FROM events", &[])
        .await
        .expect("newest")
        .get::<_, i64>(0);
    let staff_view = read_ok(&app, &sam, &path, &json!(newest)).await;
    assert_eq!(
        staff_view["sla"]["warned_at"],
        json!(t0() + Span::hours(18))
    );
    assert_eq!(
        staff_view["sla"]["breach_recorded_at"],
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
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    tokyo_acme(&app).await;
    let ann = app.token(ANN).await;
    let sam = app.token(As::agent()).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let path = format!("/v1/cases/{id}");
    // Support answers on Tuesday 10:00 JST (t0 + 16 h); Ann replies on Friday 17:00 JST
    // (2026-03-06 08:00 UTC): impact 2 gives 4 business hours, 1 on Friday and 3 on Monday,
    // so the next reply is due Monday 12:00 JST (03:00 UTC), the warning at 11:00 JST.
    clock.set(t0() + Span::hours(16));
    let comment = format!("{path}/comments");
    ok(&app, &sam, &comment, json!({"body": "Which browser?"})).await;
    let friday = chrono::DateTime::parse_from_rfc3339("2026-03-06T08:00:00Z")
        .expect("instant")
        .to_utc();
    clock.set(friday);
    let reply = ok(&app, &ann, &comment, json!({"body": "Firefox"})).await;
    let due = friday + Span::days(2) + Span::hours(19);
    let staff_view = read_ok(&app, &sam, &path, &reply["position"]).await;
    assert_eq!(staff_view["sla"]["next_reply_due"], json!(due));
    let listed = |query: &'static str, at: chrono::DateTime<chrono::Utc>| {
        let (app, sam, clock, position) = (&app, &sam, &clock, &reply["position"]);
        async move {
            clock.set(at);
            let path = format!("/v1/cases?{query}&min_position={position}");
            let page = expect_json(app.get(&path, sam).await, StatusCode::OK).await;
            page["items"].as_array().expect("items").len()
        }
    };
    // The first response came in time: only the next reply puts the case at risk, then
    // overdue.
    assert_eq!(listed("sla=at_risk", due - Span::hours(2)).await, 0);
    assert_eq!(listed("sla=at_risk", due - Span::minutes(30)).await, 1);
    assert_eq!(listed("sla=breached", due - Span::minutes(30)).await, 0);
    assert_eq!(listed("sla=breached", due + Span::minutes(1)).await, 1);
    clock.set(friday);
    assert_eq!(
        staff_view["sla"]["next_reply_warning_at"],
        json!(due - Span::hours(1))
    );
    let customer_view = read_ok(&app, &ann, &path, &reply["position"]).await;
    assert_eq!(customer_view["sla"]["next_reply_due"], json!(due));
    assert!(customer_view["sla"].get("next_reply_warning_at").is_none());

    settle_timers(&app).await;
    let schedulers = [&app.state.scheduler];
    clock.set(due - Span::hours(1));
    rounds_at_once(&schedulers).await;
    settle_timers(&app).await;
    rounds_at_once(&schedulers).await;
    assert_eq!(count(&app, &id, "SlaWarningRaised").await, 1);

    // Support replies before the due time: the clock stops, no breach ever comes.
    let answer = ok(&app, &sam, &comment, json!({"body": "Fixed for Firefox"})).await;
    settle_timers(&app).await;
    clock.set(due + Span::days(3));
    rounds_at_once(&schedulers).await;
    assert_eq!(count(&app, &id, "SlaBreached").await, 0);
    let staff_view = read_ok(&app, &sam, &path, &answer["position"]).await;
    assert_eq!(staff_view["sla"]["next_reply_due"], json!(null));
    let payloads: Vec<serde_json::Value> = app
        .db()
        .await
        .query(
            "SELECT payload FROM events WHERE aggregate_id = $1 AND event_type = 'SlaWarningRaised'",
            &[&id],
        )
        .await
        .expect("warnings")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(payloads[0]["clock"], "next_reply");
}
