//! Business calendars: an admin sets an org's support hours, and SLA clocks count them.

use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::state::Settings;

use crate::case_fixtures::spawn_app_at_t0;
use crate::helpers::{acme_case, expect_json, As};

const ACME: As = As::customer("ann@acme.test", "acme");

fn tokyo_office_hours() -> Value {
    let day = json!([["09:00", "18:00"]]);
    json!({
        "timezone": "Asia/Tokyo",
        "hours": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day},
        "holidays": ["2026-12-31"]
    })
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("instant")
}

#[tokio::test]
async fn with_acmes_calendar_in_tokyo_an_impact_2_case_is_due_4_business_hours_after_opening() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let admin = app.token(As::admin()).await;
    let customer = app.token(ACME).await;
    let set = app
        .put("/v1/orgs/acme/calendar", &admin, &tokyo_office_hours())
        .await;
    let receipt = expect_json(set, StatusCode::OK).await;
    assert_eq!(receipt["id"], "acme");
    assert_eq!(receipt["version"], 1);

    // Opened at (UTC) -> first response due (UTC); Tokyo is UTC+9, open 09:00-18:00 JST
    // (00:00-09:00 UTC) Monday to Friday.
    let cases = [
        // Monday 10:00 JST: the same afternoon, 14:00 JST.
        (utc(2026, 11, 30, 1, 0, 0), utc(2026, 11, 30, 5, 0, 0)),
        // Friday 16:00 JST: 2 hours on Friday, 2 on Monday (11:00 JST).
        (utc(2026, 12, 4, 7, 0, 0), utc(2026, 12, 7, 2, 0, 0)),
        // Saturday noon JST: counts from Monday 09:00 JST.
        (utc(2026, 12, 5, 3, 0, 0), utc(2026, 12, 7, 4, 0, 0)),
        // Tuesday 02:00 JST (night): from 09:00 JST.
        (utc(2026, 11, 30, 17, 0, 0), utc(2026, 12, 1, 4, 0, 0)),
        // Monday 17:59:30 JST: 30 seconds on Monday, the rest on Tuesday (12:59:30 JST).
        (utc(2026, 11, 30, 8, 59, 30), utc(2026, 12, 1, 3, 59, 30)),
        // Wednesday 17:00 JST before the 31st (a holiday): 1 hour, then Friday 12:00 JST.
        (utc(2026, 12, 30, 8, 0, 0), utc(2027, 1, 1, 3, 0, 0)),
    ];
    for (opened_at, due) in cases {
        clock.set(opened_at);
        let receipt = app.open_case(&customer, acme_case()).await;
        let path = format!(
            "/v1/cases/{}?min_position={}",
            receipt["id"].as_str().expect("id"),
            receipt["position"]
        );
        let case = expect_json(app.get(&path, &customer).await, StatusCode::OK).await;
        let shown: DateTime<Utc> =
            serde_json::from_value(case["sla"]["first_response"]["due"].clone())
                .expect("a due time");
        assert_eq!(shown, due, "opened at {opened_at}");
    }

    // Raising the priority counts the new target from the opening, on the same calendar.
    let receipt = app.open_case(&customer, acme_case()).await;
    let id = receipt["id"].as_str().expect("id").to_string();
    let agent = app.token(As::agent()).await;
    let raised = app
        .post(
            &format!("/v1/cases/{id}/priority"),
            &agent,
            &json!({"priority": 1}),
        )
        .await;
    let raised = expect_json(raised, StatusCode::OK).await;
    let path = format!("/v1/cases/{id}?min_position={}", raised["position"]);
    let case = expect_json(app.get(&path, &customer).await, StatusCode::OK).await;
    // The last case opened on Wednesday 2026-12-30 17:00 JST: 1 business hour is 18:00 JST.
    assert_eq!(case["sla"]["first_response"]["due"], "2026-12-30T09:00:00Z");
}

#[tokio::test]
async fn the_calendar_in_force_is_shown_to_the_org_and_changes_are_events() {
    let (app, _clock) = spawn_app_at_t0(Settings::default()).await;
    let admin = app.token(As::admin()).await;
    let customer = app.token(ACME).await;

    // Without a calendar of its own, the org works on the default: around the clock in UTC.
    let default = expect_json(
        app.get("/v1/orgs/acme/calendar", &customer).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(default["source"], "default");
    assert_eq!(default["timezone"], "UTC");
    assert_eq!(default["hours"]["sun"], json!([["00:00", "24:00"]]));
    assert_eq!(default["version"], 0);

    let before = app.event_count(Some("acme")).await;
    let set = app
        .put("/v1/orgs/acme/calendar", &admin, &tokyo_office_hours())
        .await;
    expect_json(set, StatusCode::OK).await;
    assert_eq!(app.event_count(Some("acme")).await, before + 1);
    // The same calendar again appends nothing.
    let again = app
        .put("/v1/orgs/acme/calendar", &admin, &tokyo_office_hours())
        .await;
    assert_eq!(expect_json(again, StatusCode::OK).await["version"], 1);
    assert_eq!(app.event_count(Some("acme")).await, before + 1);

    let shown = expect_json(
        app.get("/v1/orgs/acme/calendar", &customer).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["source"], "org");
    assert_eq!(shown["timezone"], "Asia/Tokyo");
    assert_eq!(shown["hours"]["mon"], json!([["09:00", "18:00"]]));
    assert!(
        shown["hours"].get("sat").is_none(),
        "closed days are left out: {shown}"
    );
    assert_eq!(shown["holidays"], json!(["2026-12-31"]));
    assert_eq!(shown["set_by"], As::admin().user);
    assert_eq!(shown["version"], 1);

    // The change is in the audit trail, as any event, once the gap-free read reaches it
    // (transactions still open elsewhere on the cluster may hold that back a moment).
    let auditor = app.token(As::auditor()).await;
    let mut types = Vec::new();
    for _ in 0..100 {
        let log = expect_json(
            app.get("/v1/audit/events?limit=100", &auditor).await,
            StatusCode::OK,
        )
        .await;
        types = log["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["event_type"].as_str().map(str::to_string))
            .collect();
        if types.iter().any(|t| t == "CalendarSet") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(types.iter().any(|t| t == "CalendarSet"), "{types:?}");
}

#[tokio::test]
async fn only_staff_admins_set_a_calendar_and_other_tenants_do_not_see_it() {
    let (app, _clock) = spawn_app_at_t0(Settings::default()).await;
    let body = tokyo_office_hours();
    for who in [
        As::org_admin("olga@acme.test", "acme"),
        As::agent(),
        As::auditor(),
    ] {
        let user = who.user;
        let token = app.token(who).await;
        let refused = app.put("/v1/orgs/acme/calendar", &token, &body).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{user}");
    }
    let stranger = app.token(As::customer("eve@globex.test", "globex")).await;
    let hidden = app.put("/v1/orgs/acme/calendar", &stranger, &body).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let hidden = app.get("/v1/orgs/acme/calendar", &stranger).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let partner = app
        .token(As::partner(
            "pat@cloudwise.test",
            "p-cloudwise",
            &["access_cases"],
        ))
        .await;
    let hidden = app.get("/v1/orgs/acme/calendar", &partner).await;
    assert_eq!(
        hidden.status(),
        StatusCode::NOT_FOUND,
        "no relationship, no org"
    );
    assert_eq!(app.event_count(Some("acme")).await, 0);
}

#[tokio::test]
async fn an_invalid_calendar_is_a_422_that_names_its_rule_and_appends_nothing() {
    let (app, _clock) = spawn_app_at_t0(Settings::default()).await;
    let admin = app.token(As::admin()).await;
    let refusals = [
        (
            json!({"timezone": "Asia/Atlantis", "hours": {"mon": [["09:00", "18:00"]]}}),
            "unknown_timezone",
        ),
        (json!({"timezone": "UTC"}), "never_open"),
        (
            json!({"timezone": "UTC", "hours": {"mon": [["18:00", "09:00"]]}}),
            "empty_interval",
        ),
        (
            json!({"timezone": "UTC", "hours": {"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}}),
            "overlapping_intervals",
        ),
        (
            json!({"timezone": "UTC", "hours": {"mon": [["25:00", "26:00"]]}}),
            "invalid_time",
        ),
    ];
    for (body, code) in refusals {
        let refused = app.put("/v1/orgs/acme/calendar", &admin, &body).await;
        let problem = expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["code"], code, "{body}");
    }
    assert_eq!(app.event_count(Some("acme")).await, 0);
}
