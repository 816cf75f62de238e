//! Admins issue, list and revoke tokens through the API; partners see their customers.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_json, spawn_app, As, TestApp};

fn partner_token_request() -> Value {
    json!({"role": "partner", "user": "pat@cloudwise.test", "partner_id": "p1",
           "scopes": ["view_customers"], "label": "portal"})
}

#[tokio::test]
async fn an_admin_issues_a_token_that_works_lists_it_and_revokes_it() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let issued = expect_json(
        app.post("/v1/tokens", &root, &partner_token_request())
            .await,
        StatusCode::CREATED,
    )
    .await;
    let token = issued["token"]
        .as_str()
        .expect("the token, once")
        .to_string();
    assert!(token.starts_with("sdk_"));
    assert_eq!(issued["role"], "partner");
    assert_eq!(issued["created_by"], "root@support.test");

    let listed = expect_json(app.get("/v1/tokens", &root).await, StatusCode::OK).await;
    assert!(listed
        .as_array()
        .expect("list")
        .iter()
        .any(|t| t["id"] == issued["id"]));
    assert!(
        !listed.to_string().contains(&token),
        "the list never shows a token"
    );

    let id = issued["id"].as_str().expect("id");
    let revoked = expect_json(
        app.post(&format!("/v1/tokens/{id}/revoke"), &root, &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(revoked["revoked_at"].is_string());
    let refused = app.get("/v1/partner/customers", &token).await;
    expect_json(refused, StatusCode::UNAUTHORIZED).await;
    let again = app
        .post(&format!("/v1/tokens/{id}/revoke"), &root, &json!({}))
        .await;
    expect_json(again, StatusCode::OK).await;
    let unknown = app
        .post(
            &format!("/v1/tokens/{}/revoke", uuid::Uuid::nil()),
            &root,
            &json!({}),
        )
        .await;
    expect_json(unknown, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn only_admins_manage_tokens_and_bindings_must_fit_the_role() {
    let app = spawn_app().await;
    let sam = app.token(As::agent()).await;
    let root = app.token(As::admin()).await;
    expect_json(
        app.post("/v1/tokens", &sam, &partner_token_request()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_json(app.get("/v1/tokens", &sam).await, StatusCode::FORBIDDEN).await;
    let orgless = json!({"role": "customer", "user": "ann@acme.test"});
    let problem = expect_json(
        app.post("/v1/tokens", &root, &orgless).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_token_spec");
    let system = json!({"role": "system", "user": "x"});
    expect_json(
        app.post("/v1/tokens", &root, &system).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn a_repeated_issue_returns_the_first_answer_without_the_token_and_issues_nothing() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let first = app
        .post_with_key("/v1/tokens", &root, "issue-pat", &partner_token_request())
        .await;
    let first = expect_json(first, StatusCode::CREATED).await;
    let again = app
        .post_with_key("/v1/tokens", &root, "issue-pat", &partner_token_request())
        .await;
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let again = expect_json(again, StatusCode::CREATED).await;
    assert_eq!(again["id"], first["id"]);
    assert!(again["token"].is_null(), "a token is shown once");
    let listed = expect_json(app.get("/v1/tokens", &root).await, StatusCode::OK).await;
    let partners = listed
        .as_array()
        .expect("list")
        .iter()
        .filter(|t| t["role"] == "partner")
        .count();
    assert_eq!(partners, 1);
    let mut other = partner_token_request();
    other["label"] = json!("something else");
    let reused = app
        .post_with_key("/v1/tokens", &root, "issue-pat", &other)
        .await;
    assert_eq!(
        expect_json(reused, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "idempotency_key_reused"
    );
}

async fn sell(app: &TestApp, pat: &str, org: &str, seats: i64) -> Value {
    let now = Utc::now();
    app.create_subscription(
        pat,
        json!({"org_id": org, "product": "jira-software", "plan": "standard", "seats": seats,
               "term_start": (now - Duration::days(1)).to_rfc3339(),
               "term_end": (now + Duration::days(364)).to_rfc3339(),
               "auto_renew": true, "channel": {"kind": "partner", "partner_id": "p1"}}),
    )
    .await
}

#[tokio::test]
async fn a_partner_sees_its_customers_with_their_subscriptions_and_open_cases() {
    let app = spawn_app().await;
    for org in ["acme", "globex"] {
        app.grant_partner(org, "p1", &["view_customers", "access_cases"])
            .await;
    }
    let pat = app
        .token(As::partner(
            "pat@cloudwise.test",
            "p1",
            &["view_customers", "access_cases"],
        ))
        .await;
    let viewer = app
        .token(As::partner("vic@cloudwise.test", "p1", &["view_customers"]))
        .await;
    let blind = app
        .token(As::partner("bo@cloudwise.test", "p1", &["access_cases"]))
        .await;
    let sam = app.token(As::agent()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    sell(&app, &pat, "acme", 10).await;
    sell(&app, &pat, "acme", 5).await;
    let last = sell(&app, &pat, "globex", 3).await;
    let opened = app.open_case(&ann, crate::helpers::acme_case()).await;
    app.wait_for_projection(
        "subscriptions",
        last["position"].as_i64().expect("position"),
    )
    .await;
    app.wait_for_projection("cases", opened["position"].as_i64().expect("position"))
        .await;

    let customers = expect_json(app.get("/v1/partner/customers", &pat).await, StatusCode::OK).await;
    assert_eq!(
        customers,
        json!([
            {"org_id": "acme", "active_subscriptions": 2, "upcoming_subscriptions": 0,
             "inactive_subscriptions": 0, "active_seats": 15, "open_cases": 1},
            {"org_id": "globex", "active_subscriptions": 1, "upcoming_subscriptions": 0,
             "inactive_subscriptions": 0, "active_seats": 3, "open_cases": 0},
        ])
    );
    let without_cases = expect_json(
        app.get("/v1/partner/customers", &viewer).await,
        StatusCode::OK,
    )
    .await;
    assert!(without_cases[0]["open_cases"].is_null());
    expect_json(
        app.get("/v1/partner/customers", &blind).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_json(
        app.get("/v1/partner/customers", &ann).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let staff = expect_json(
        app.get("/v1/partner/customers?partner_id=p1", &sam).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(staff, customers);
    expect_json(
        app.get("/v1/partner/customers", &sam).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}
