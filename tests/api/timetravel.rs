//! Time travel: a case or a subscription as it was at a version or an instant, in the same
//! shape as its live view, with the same visibility rules, writing nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::case_fixtures::{ok, read_ok, spawn_acme, ACME_ENTITLEMENT};
use crate::helpers::{acme_case, expect_json, As};

async fn notification_count(app: &crate::helpers::TestApp) -> i64 {
    app.db()
        .await
        .query_one("SELECT count(*) FROM notifications", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_case_reads_as_it_was_at_a_version_and_at_an_instant() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let mut body = acme_case();
    body["entitlement_number"] = json!(ACME_ENTITLEMENT);
    let opened = app.open_case(&ann, body).await;
    let id = opened["id"].as_str().expect("id").to_string();
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/comments"),
        json!({"body": "internal look", "visibility": "internal"}),
    )
    .await;
    let asked = ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/request-info"),
        json!({"body": "Which browser?"}),
    )
    .await;
    let live = read_ok(&app, &sam, &format!("/v1/cases/{id}"), &asked["position"]).await;
    assert_eq!(live["status"], "waiting_for_customer");
    let events_before = app.event_count(None).await;
    let outbox_before = notification_count(&app).await;

    let first = expect_json(
        app.get(&format!("/v1/cases/{id}?at_version=1"), &sam).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["status"], "open");
    assert_eq!(first["version"], 1);
    let timeline = first["timeline"].as_array().expect("timeline");
    assert!(
        timeline.iter().all(|e| e["sequence"].as_i64() <= Some(1)),
        "only what had happened: {timeline:?}"
    );
    assert!(timeline.len() < live["timeline"].as_array().map_or(0, Vec::len));
    assert_eq!(first["key"], live["key"]);
    let same_shape: Vec<&String> = live.as_object().expect("object").keys().collect();
    let then_shape: Vec<&String> = first.as_object().expect("object").keys().collect();
    assert_eq!(
        same_shape, then_shape,
        "the past reads in the shape of the present"
    );

    // At the instant the internal comment was recorded: open, one internal comment, which a
    // customer never sees, then or now.
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), &sam).await,
        StatusCode::OK,
    )
    .await;
    let commented_at = history[1]["recorded_at"]
        .as_str()
        .expect("recorded_at")
        .to_string();
    let path = format!("/v1/cases/{id}?as_of={}", commented_at.replace('+', "%2B"));
    let staff_view = expect_json(app.get(&path, &sam).await, StatusCode::OK).await;
    assert_eq!(staff_view["version"], 2);
    assert_eq!(staff_view["status"], "open");
    assert!(staff_view.to_string().contains("internal look"));
    let customer_view = expect_json(app.get(&path, &ann).await, StatusCode::OK).await;
    assert!(
        !customer_view.to_string().contains("internal look"),
        "{customer_view}"
    );

    // Nothing was written, and the live view is untouched.
    assert_eq!(app.event_count(None).await, events_before);
    assert_eq!(notification_count(&app).await, outbox_before);
    let again = expect_json(
        app.get(&format!("/v1/cases/{id}"), &sam).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again, live);
}

#[tokio::test]
async fn time_travel_refuses_what_it_cannot_answer() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let eve = app.token(As::org_admin("eve@globex.test", "globex")).await;
    let mut body = acme_case();
    body["entitlement_number"] = json!(ACME_ENTITLEMENT);
    let opened = app.open_case(&ann, body).await;
    let id = opened["id"].as_str().expect("id");

    let before = expect_json(
        app.get(&format!("/v1/cases/{id}?as_of=2001-01-01T00:00:00Z"), &ann)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(before["code"], "not_found", "the case did not exist then");
    let both = app
        .get(
            &format!("/v1/cases/{id}?as_of=2001-01-01T00:00:00Z&at_version=1"),
            &ann,
        )
        .await;
    assert_eq!(
        expect_json(both, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "conflicting_cut"
    );
    let zero = app.get(&format!("/v1/cases/{id}?at_version=0"), &ann).await;
    // Below the documented minimum: refused by the document's own bounds, as unreadable.
    assert_eq!(
        expect_json(zero, StatusCode::BAD_REQUEST).await["code"],
        "invalid_query"
    );
    let foreign = app.get(&format!("/v1/cases/{id}?at_version=1"), &eve).await;
    expect_json(foreign, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_subscription_reads_as_it_was_before_a_seat_change() {
    let app = spawn_acme().await;
    let root = app.token(As::admin()).await;
    let now = chrono::Utc::now();
    let created = app
        .create_subscription(
            &root,
            json!({"org_id": "acme", "product": "confluence", "plan": "standard", "seats": 10,
                   "term_start": (now - chrono::Duration::days(1)).to_rfc3339(),
                   "term_end": (now + chrono::Duration::days(364)).to_rfc3339(),
                   "auto_renew": true, "channel": {"kind": "direct"}}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_string();
    let version: i64 = created["version"].as_i64().expect("version");
    let changed: Value = ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{id}/seats"),
        json!({"seats": 25}),
    )
    .await;
    let live = expect_json(
        app.get(
            &format!(
                "/v1/subscriptions/{id}?min_position={}",
                changed["position"]
            ),
            &root,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(live["seats"], 25);
    let then = expect_json(
        app.get(
            &format!("/v1/subscriptions/{id}?at_version={version}"),
            &root,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(then["seats"], 10);
    assert_eq!(then["version"], version);
    assert_eq!(then["entitlement_number"], live["entitlement_number"]);
}
