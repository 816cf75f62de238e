//! The contract between subscriptions and cases, end to end through both APIs: a case is
//! opened under a subscription's (or an app's) entitlement as soon as it exists, and refused
//! as soon as it is cancelled.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::case_fixtures::ok;
use crate::helpers::{acme_case, expect_json, spawn_app, As, TestApp};

async fn subscription(app: &TestApp, root: &str) -> Value {
    let now = chrono::Utc::now();
    app.create_subscription(
        root,
        json!({"org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 10,
               "term_start": (now - chrono::Duration::days(1)).to_rfc3339(),
               "term_end": (now + chrono::Duration::days(365)).to_rfc3339(),
               "auto_renew": true, "channel": {"kind": "direct"}}),
    )
    .await
}

fn case_under(number: &Value) -> Value {
    let mut body = acme_case();
    body["entitlement_number"] = number.clone();
    body
}

#[tokio::test]
async fn a_new_subscription_supports_cases_at_once_and_a_cancelled_one_no_more() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let created = subscription(&app, &root).await;
    let id = created["id"].as_str().expect("id").to_string();

    // Right after the subscription's commit: the case path waits for the read model.
    let opened = app
        .post(
            "/v1/cases",
            &ann,
            &case_under(&created["entitlement_number"]),
        )
        .await;
    let opened = expect_json(opened, StatusCode::CREATED).await;
    assert_eq!(opened["status"], "open");

    // Right after the cancellation's commit: the status comes from the subscription itself.
    ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{id}/cancel"),
        json!({"effective": "immediately"}),
    )
    .await;
    let before = app.event_count(None).await;
    let refused = app
        .post(
            "/v1/cases",
            &ann,
            &case_under(&created["entitlement_number"]),
        )
        .await;
    let problem = expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "entitlement_inactive");
    assert_eq!(app.event_count(None).await, before, "nothing appended");

    // Another org's customer cannot use the number at all.
    let eve = app.token(As::org_admin("eve@globex.test", "globex")).await;
    let mut foreign = case_under(&created["entitlement_number"]);
    foreign["org_id"] = json!("globex");
    let problem = expect_json(
        app.post("/v1/cases", &eve, &foreign).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_entitlement");
}

#[tokio::test]
async fn an_app_has_its_own_entitlement_that_ends_with_the_app() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let created = subscription(&app, &root).await;
    let id = created["id"].as_str().expect("id").to_string();
    let added = ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{id}/apps"),
        json!({"app": "tempo", "plan": "standard"}),
    )
    .await;
    assert_ne!(added["entitlement_number"], created["entitlement_number"]);

    let opened = app
        .post("/v1/cases", &ann, &case_under(&added["entitlement_number"]))
        .await;
    expect_json(opened, StatusCode::CREATED).await;

    let app_id = added["app_id"].as_str().expect("app id");
    ok(
        &app,
        &root,
        &format!("/v1/subscriptions/{id}/apps/{app_id}/cancel"),
        json!({}),
    )
    .await;
    let refused = app
        .post("/v1/cases", &ann, &case_under(&added["entitlement_number"]))
        .await;
    assert_eq!(
        expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "entitlement_inactive"
    );
    // The subscription's own entitlement still supports cases.
    let still = app
        .post(
            "/v1/cases",
            &ann,
            &case_under(&created["entitlement_number"]),
        )
        .await;
    expect_json(still, StatusCode::CREATED).await;
}
