//! Optimistic concurrency: a command that loses the race is retried, and reported as 409
//! only when it keeps losing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{acme_case, expect_json, spawn_app, As};

/// Makes the next `n` event inserts fail with a unique violation, as if another writer had
/// appended the same sequence number first. Attempts are counted by a sequence, which the
/// failing transactions cannot roll back.
async fn lose_the_next_races(db: &tokio_postgres::Client, n: i32) {
    db.batch_execute(&format!(
        "CREATE SEQUENCE insert_attempts;
         CREATE FUNCTION lose_race() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('insert_attempts') <= {n} THEN
                 RAISE EXCEPTION 'simulated concurrent append' USING ERRCODE = 'unique_violation';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER lose_race BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION lose_race();"
    ))
    .await
    .expect("install the race trigger");
}

async fn attempts(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT last_value FROM insert_attempts", &[])
        .await
        .expect("attempts")
        .get(0)
}

#[tokio::test]
async fn a_command_that_loses_a_race_is_retried_and_succeeds() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id");
    let db = app.db().await;
    lose_the_next_races(&db, 2).await;

    let response = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &ann,
            &json!({"body": "retry me"}),
        )
        .await;
    let comment = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(comment["version"], 2);
    assert_eq!(
        attempts(&db).await,
        3,
        "two lost races, then the winning attempt"
    );
    assert_eq!(
        app.event_count(Some(id)).await,
        2,
        "exactly one comment was appended"
    );
}

#[tokio::test]
async fn a_command_that_keeps_losing_is_409_and_appends_nothing() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id");
    let db = app.db().await;
    lose_the_next_races(&db, 1000).await;

    let response = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &ann,
            &json!({"body": "never"}),
        )
        .await;
    let problem = expect_json(response, StatusCode::CONFLICT).await;
    assert_eq!(problem["code"], "concurrency_conflict");
    assert_eq!(
        attempts(&db).await,
        6,
        "it was tried six times before giving up"
    );
    assert_eq!(app.event_count(Some(id)).await, 1);
}

#[tokio::test]
async fn concurrent_comments_on_one_case_keep_the_stream_contiguous() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id").to_string();
    let requests = (0..24).map(|i| {
        let app = &app;
        let ann = &ann;
        let id = &id;
        async move {
            app.post(
                &format!("/v1/cases/{id}/comments"),
                ann,
                &json!({"body": format!("comment {i}")}),
            )
            .await
            .status()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count() as i64;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let db = app.db().await;
    let sequences: Vec<i64> = db
        .query(
            "SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence",
            &[&id],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        sequences,
        (1..=accepted + 1).collect::<Vec<_>>(),
        "contiguous, one per accepted command"
    );
}
