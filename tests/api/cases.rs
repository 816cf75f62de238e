use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{acme_case, expect_json, spawn_app, As};

#[tokio::test]
async fn an_opened_case_is_readable_once_the_read_model_reaches_its_position() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    assert_eq!(receipt["status"], "open");
    assert_eq!(receipt["version"], 1);
    assert!(receipt["key"]
        .as_str()
        .is_some_and(|k| k.starts_with("CASE-")));
    let position = receipt["position"].as_i64().expect("position");
    assert!(position > 0);

    let id = receipt["id"].as_str().expect("id");
    let response = app
        .get(&format!("/v1/cases/{id}?min_position={position}"), &ann)
        .await;
    let case = expect_json(response, StatusCode::OK).await;
    assert_eq!(case["key"], receipt["key"]);
    assert_eq!(case["org_id"], "acme");
    assert_eq!(case["requester"], "ann@acme.test");
    assert_eq!(case["status"], "open");
    assert_eq!(case["impact"], 2);
    assert!(case["first_response_due"].is_string());
}

#[tokio::test]
async fn comments_appear_in_the_timeline_and_internal_ones_only_for_staff() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id");

    let public = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &ann,
            &json!({"body": "Any news?"}),
        )
        .await;
    expect_json(public, StatusCode::CREATED).await;
    let internal = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &sam,
            &json!({"body": "Looks like the cache node", "visibility": "internal"}),
        )
        .await;
    let last = expect_json(internal, StatusCode::CREATED).await;
    assert_eq!(last["version"], 3);
    let position = last["position"].as_i64().expect("position");

    let as_agent = expect_json(
        app.get(&format!("/v1/cases/{id}?min_position={position}"), &sam)
            .await,
        StatusCode::OK,
    )
    .await;
    let bodies: Vec<&str> = as_agent["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["body"].as_str())
        .collect();
    assert_eq!(bodies, ["Any news?", "Looks like the cache node"]);

    let as_customer = expect_json(
        app.get(&format!("/v1/cases/{id}?min_position={position}"), &ann)
            .await,
        StatusCode::OK,
    )
    .await;
    let text = as_customer.to_string();
    assert!(
        !text.contains("cache node"),
        "internal comments never reach the customer: {text}"
    );
    assert_eq!(as_customer["timeline"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_customer_cannot_write_an_internal_comment() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id");
    let response = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &ann,
            &json!({"body": "psst", "visibility": "internal"}),
        )
        .await;
    let problem = expect_json(response, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["code"], "forbidden");
    assert_eq!(app.event_count(Some(id)).await, 1, "nothing appended");
}

#[tokio::test]
async fn a_case_of_another_org_does_not_exist_for_a_customer() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let eve = app.token(As::org_admin("eve@globex.test", "globex")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id");
    let position = receipt["position"].as_i64().expect("position");

    let read = app
        .get(&format!("/v1/cases/{id}?min_position={position}"), &eve)
        .await;
    assert_eq!(
        expect_json(read, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );
    let comment = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &eve,
            &json!({"body": "hi"}),
        )
        .await;
    expect_json(comment, StatusCode::NOT_FOUND).await;
    let foreign_open = app
        .post(
            "/v1/cases",
            &eve,
            &json!({"org_id": "acme", "product": "x", "summary": "s", "impact": 3}),
        )
        .await;
    expect_json(foreign_open, StatusCode::NOT_FOUND).await;
    assert_eq!(app.event_count(None).await, 1);
}

#[tokio::test]
async fn a_colleague_sees_the_case_only_as_org_admin() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let bob = app.token(As::customer("bob@acme.test", "acme")).await;
    let boss = app.token(As::org_admin("boss@acme.test", "acme")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id");
    let position = receipt["position"].as_i64().expect("position");
    expect_json(
        app.get(&format!("/v1/cases/{id}?min_position={position}"), &bob)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_json(
        app.get(&format!("/v1/cases/{id}?min_position={position}"), &boss)
            .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn broken_rules_are_422_with_the_rule_in_words_and_append_nothing() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let mut body = acme_case();
    body["impact"] = json!(7);
    let problem = expect_json(
        app.post("/v1/cases", &ann, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_impact");
    assert_eq!(problem["detail"], "the impact level must be 1, 2, 3 or 4");

    body["impact"] = json!(2);
    body["summary"] = json!("x".repeat(256));
    let problem = expect_json(
        app.post("/v1/cases", &ann, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_summary");

    let missing = json!({"product": "jira"});
    let problem = expect_json(
        app.post("/v1/cases", &ann, &missing).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_body");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("summary")),
        "{problem}"
    );

    let malformed = app
        .http
        .post(app.url("/v1/cases"))
        .bearer_auth(&ann)
        .header("content-type", "application/json")
        .body("{\"summary\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(
        expect_json(malformed, StatusCode::BAD_REQUEST).await["code"],
        "malformed_json"
    );
    assert_eq!(app.event_count(None).await, 0);
}

#[tokio::test]
async fn a_comment_on_a_case_that_does_not_exist_is_404() {
    let app = spawn_app().await;
    let sam = app.token(As::agent()).await;
    let response = app
        .post(
            "/v1/cases/0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d/comments",
            &sam,
            &json!({"body": "hello"}),
        )
        .await;
    expect_json(response, StatusCode::NOT_FOUND).await;
    assert_eq!(app.event_count(None).await, 0);
}

#[tokio::test]
async fn auditors_cannot_issue_commands() {
    let app = spawn_app().await;
    let audrey = app.token(As::auditor()).await;
    let mut body = acme_case();
    body["org_id"] = json!("acme");
    expect_json(
        app.post("/v1/cases", &audrey, &body).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn every_event_carries_the_request_metadata_and_a_chained_hash() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let response = app
        .http
        .post(app.url("/v1/cases"))
        .bearer_auth(&ann)
        .header("x-request-id", "req-123")
        .header("x-correlation-id", "corr-9")
        .json(&acme_case())
        .send()
        .await
        .expect("POST");
    let receipt = expect_json(response, StatusCode::CREATED).await;
    let id = receipt["id"].as_str().expect("id").to_string();
    app.post(
        &format!("/v1/cases/{id}/comments"),
        &ann,
        &json!({"body": "more"}),
    )
    .await;

    let db = app.db().await;
    let rows = db
        .query(
            "SELECT metadata, hash, sequence, \
                    sha256(coalesce((SELECT p.hash FROM events p WHERE p.aggregate_id = e.aggregate_id \
                                        AND p.sequence = e.sequence - 1), '') || events_canonical(e)) \
               FROM events e WHERE aggregate_id = $1 ORDER BY sequence",
            &[&id],
        )
        .await
        .expect("events");
    assert_eq!(rows.len(), 2);
    let first: serde_json::Value = rows[0].get(0);
    assert_eq!(first["actor_id"], "ann@acme.test");
    assert_eq!(first["actor_role"], "customer");
    assert_eq!(first["request_id"], "req-123");
    assert_eq!(first["correlation_id"], "corr-9");
    assert_eq!(first["causation_id"], "req-123");
    for row in &rows {
        let stored: Vec<u8> = row.get(1);
        let recomputed: Vec<u8> = row.get(3);
        assert_eq!(stored, recomputed, "hash of event {}", row.get::<_, i64>(2));
    }
    let update = db
        .execute(
            "UPDATE events SET payload = '{}' WHERE aggregate_id = $1",
            &[&id],
        )
        .await;
    assert!(update.is_err(), "the log refuses updates");
    let delete = db
        .execute("DELETE FROM events WHERE aggregate_id = $1", &[&id])
        .await;
    assert!(delete.is_err(), "the log refuses deletes");
}
