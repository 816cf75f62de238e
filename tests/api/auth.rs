use reqwest::StatusCode;

use crate::helpers::{acme_case, expect_json, spawn_app, As};

#[tokio::test]
async fn a_request_without_a_token_is_401_with_a_problem_document() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/cases"))
        .json(&acme_case())
        .send()
        .await
        .expect("POST");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let problem = expect_json(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(problem["code"], "unauthorized");
    assert_eq!(problem["status"], 401);
    assert_eq!(app.event_count(None).await, 0, "nothing is appended");
}

#[tokio::test]
async fn an_unknown_token_is_401() {
    let app = spawn_app().await;
    let response = app
        .get(
            "/v1/cases/0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d",
            "sdk_not-a-token",
        )
        .await;
    let problem = expect_json(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(problem["code"], "unauthorized");
}

#[tokio::test]
async fn a_revoked_token_is_401() {
    let app = spawn_app().await;
    let token = app.token(As::customer("ann@acme.test", "acme")).await;
    let db = app.db().await;
    db.execute("UPDATE api_tokens SET revoked_at = now()", &[])
        .await
        .expect("revoke");
    let response = app.post("/v1/cases", &token, &acme_case()).await;
    expect_json(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let token = app.token(As::agent()).await;
    assert!(
        token.starts_with("sdk_") && token.len() >= 4 + 43,
        "256-bit token: {token}"
    );
    let db = app.db().await;
    let stored: Vec<u8> = db
        .query_one("SELECT token_hash FROM api_tokens", &[])
        .await
        .expect("token row")
        .get(0);
    assert_eq!(stored.len(), 32);
    let dump: i64 = db
        .query_one(
            "SELECT count(*) FROM api_tokens WHERE position($1 in concat_ws(' ', id, role, user_id, label)) > 0",
            &[&token],
        )
        .await
        .expect("search")
        .get(0);
    assert_eq!(dump, 0, "the token itself is nowhere in the table");
}

#[tokio::test]
async fn health_readiness_metrics_and_docs_answer_without_a_token() {
    let app = spawn_app().await;
    let health = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let ready = expect_json(ready, StatusCode::OK).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["binary"], "current");
    assert!(ready["projections"]["cases"].is_string(), "{ready}");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    let openapi: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("openapi json");
    assert!(openapi["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    assert!(openapi["paths"]["/v1/cases"]["post"].is_object());
    let docs = app.http.get(app.url("/docs/")).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    let page = docs.text().await.expect("docs page");
    assert!(
        page.contains("swagger"),
        "the documentation UI is served from the binary"
    );
}

#[tokio::test]
async fn readiness_is_503_while_migrations_are_missing() {
    let app = spawn_app().await;
    let db = app.db().await;
    db.execute("DELETE FROM refinery_schema_history WHERE version = (SELECT max(version) FROM refinery_schema_history)", &[])
        .await
        .expect("forget the newest migration");
    let response = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let problem = expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["code"], "migrations_pending");
}
