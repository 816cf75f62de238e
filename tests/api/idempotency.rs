use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{acme_case, expect_json, spawn_app, As, TestApp, ACME_ENTITLEMENT};

/// Posts `body` to `path` as the raw bytes given (a client's own serialisation), with an
/// `Idempotency-Key`.
async fn post_raw(app: &TestApp, path: &str, token: &str, key: &str, body: &str) -> Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn repeating_a_post_with_the_same_key_and_body_returns_the_first_response_and_appends_nothing(
) {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let compact = format!(
        r#"{{"entitlement_number":"{ACME_ENTITLEMENT}","product":"jira-software","summary":"Board does not load","description":"Since this morning the board spins forever.","impact":2}}"#
    );
    let first = post_raw(&app, "/v1/cases", &ann, "open-1", &compact).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = expect_json(first, StatusCode::CREATED).await;
    assert_eq!(app.event_count(None).await, 1);

    // The same request as another client writes it: its keys in another order, other spacing.
    let reordered = format!(
        r#"{{
  "impact": 2,
  "description": "Since this morning the board spins forever.",
  "summary": "Board does not load",
  "product": "jira-software",
  "entitlement_number": "{ACME_ENTITLEMENT}"
}}"#
    );
    assert_ne!(compact, reordered, "the two bodies differ byte for byte");
    assert_eq!(
        serde_json::from_str::<Value>(&compact).expect("json"),
        serde_json::from_str::<Value>(&reordered).expect("json"),
        "and say the same"
    );
    let again = post_raw(&app, "/v1/cases", &ann, "open-1", &reordered).await;
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true"),
        "the same request, however it is serialised, is a replay"
    );
    let again = expect_json(again, StatusCode::CREATED).await;
    assert_eq!(again, first);
    assert_eq!(app.event_count(None).await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_appends_nothing() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    expect_json(
        app.post_with_key("/v1/cases", &ann, "k", &acme_case())
            .await,
        StatusCode::CREATED,
    )
    .await;
    let mut other = acme_case();
    other["summary"] = json!("Something else");
    let problem = expect_json(
        app.post_with_key("/v1/cases", &ann, "k", &other).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(app.event_count(None).await, 1);
}

#[tokio::test]
async fn keys_belong_to_the_token_that_sent_them() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let bob = app.token(As::customer("bob@acme.test", "acme")).await;
    let a = expect_json(
        app.post_with_key("/v1/cases", &ann, "same", &acme_case())
            .await,
        StatusCode::CREATED,
    )
    .await;
    let b = expect_json(
        app.post_with_key("/v1/cases", &bob, "same", &acme_case())
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(app.event_count(None).await, 2);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_open_one_case() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let body = acme_case();
    let requests = (0..8).map(|_| app.post_with_key("/v1/cases", &ann, "race", &body));
    let responses = futures::future::join_all(requests).await;
    let mut ids = Vec::new();
    for response in responses {
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(
            status,
            StatusCode::CREATED,
            "every request answers as the first: {body}"
        );
        ids.push(body["id"].clone());
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "every success names the same case: {ids:?}"
    );
    assert_eq!(
        app.event_count(None).await,
        1,
        "exactly one case was opened"
    );
}

#[tokio::test]
async fn a_response_lost_by_a_crash_after_commit_is_rebuilt_from_the_log() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let first = expect_json(
        app.post_with_key("/v1/cases", &ann, "crash", &acme_case())
            .await,
        StatusCode::CREATED,
    )
    .await;
    // As if the server had died between the commit and storing the response.
    let db = app.db().await;
    let changed = db
        .execute(
            "UPDATE idempotency_keys SET response_status = NULL, response_body = NULL",
            &[],
        )
        .await
        .expect("forget the response");
    assert_eq!(changed, 1, "the key was recorded with the events");
    let again = expect_json(
        app.post_with_key("/v1/cases", &ann, "crash", &acme_case())
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again, first);
    assert_eq!(app.event_count(None).await, 1);
}

#[tokio::test]
async fn a_key_records_the_stream_version_and_position_its_command_reached() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let receipt = expect_json(
        app.post_with_key("/v1/cases", &ann, "tx", &acme_case())
            .await,
        StatusCode::CREATED,
    )
    .await;
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT aggregate_id, last_sequence, last_position, response_status FROM idempotency_keys WHERE key = 'tx'",
            &[],
        )
        .await
        .expect("key row");
    assert_eq!(row.get::<_, String>(0), receipt["id"].as_str().expect("id"));
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(
        row.get::<_, i64>(2),
        receipt["position"].as_i64().expect("position")
    );
    assert_eq!(row.get::<_, Option<i16>>(3), Some(201));
}

#[tokio::test]
async fn a_retry_repeating_the_request_id_is_still_one_command() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    // Every event insert takes half a second, so the first request commits after the second
    // has looked for the key and before the second inserts: the window in which only the
    // transaction, not the client's request id, tells the two commands apart.
    app.db()
        .await
        .batch_execute(
            "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$;
             CREATE TRIGGER slow_insert BEFORE INSERT ON events
                 FOR EACH ROW EXECUTE FUNCTION slow_insert();",
        )
        .await
        .expect("slow trigger");
    let send = || {
        app.http
            .post(app.url("/v1/cases"))
            .bearer_auth(&ann)
            .header("Idempotency-Key", "retried")
            .header("x-request-id", "client-request-7")
            .json(&acme_case())
            .send()
    };
    let first = send();
    let second = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        send().await
    };
    let (first, second) = tokio::join!(first, second);
    let first = expect_json(first.expect("first"), StatusCode::CREATED).await;
    let second = expect_json(second.expect("second"), StatusCode::CREATED).await;
    assert_eq!(
        first["id"], second["id"],
        "the retry answers with the first case"
    );
    assert_eq!(
        app.event_count(None).await,
        1,
        "exactly one case was opened"
    );
}
