//! Fixtures of the case tests.
//!
//! SEEDING THE READ-MODEL CONTRACT: opening a case maps its entitlement number through the
//! `entitlements` table (migration V5), kept by the subscriptions projection; these fixtures
//! write rows of it directly with SQL where a real subscription would only add noise. Partner
//! access is never seeded: it comes from a relationship granted through the API.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use subdesk::app::Settings;
use subdesk_aggregates::ManualClock;
use uuid::Uuid;

use crate::helpers::{acme_case, expect_json, spawn_app_with, TestApp};

pub use crate::helpers::ACME_ENTITLEMENT;

/// Writes one row of the entitlement contract (see the module comment) and, for a partner
/// subscription, has the org grant the partner a relationship. Returns the subscription id.
pub async fn seed_entitlement(
    app: &TestApp,
    number: &str,
    org: &str,
    status: &str,
    partner: Option<&str>,
) -> Uuid {
    let subscription_id = Uuid::now_v7();
    let db = app.db().await;
    db.execute(
        "INSERT INTO entitlements (number, subscription_id, app_id, org_id, product, status, partner_id) \
         VALUES ($1, $2, NULL, $3, 'jira-software', $4, $5)",
        &[&number, &subscription_id, &org, &status, &partner],
    )
    .await
    .expect("seed entitlement");
    if let Some(partner) = partner {
        assign_org_to_partner(app, partner, org).await;
    }
    subscription_id
}

/// Has `org` grant `partner` a relationship with both scopes (what a partner's token may
/// then use is its own scopes intersected with these).
pub async fn assign_org_to_partner(app: &TestApp, partner: &str, org: &str) {
    app.grant_partner(org, partner, &["view_customers", "access_cases"])
        .await;
}

/// The foundation's `acme_case()` opened under [`ACME_ENTITLEMENT`].
pub fn acme_ticket() -> Value {
    let mut body = acme_case();
    body["entitlement_number"] = json!(ACME_ENTITLEMENT);
    body
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid instant")
}

/// A server whose clock stands still at [`t0`] until the test moves it, whose scheduler fires
/// only when the test says so.
pub async fn spawn_app_at_t0(mut settings: Settings) -> (TestApp, Arc<ManualClock>) {
    // Timers are fired by hand (the scheduler's `run_once`, or the commands themselves) when
    // the test has moved the clock; a background loop would race it.
    settings.scheduler.enabled = false;
    let clock = Arc::new(ManualClock::new(t0()));
    let app = spawn_app_with(settings, clock.clone()).await;
    (app, clock)
}

/// A server on the system clock with `acme`'s entitlement seeded.
pub async fn spawn_acme() -> TestApp {
    crate::helpers::spawn_app().await
}

/// Posts a command and expects `status`; returns the body.
pub async fn command(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Value,
    status: StatusCode,
) -> Value {
    expect_json(app.post(path, token, &body).await, status).await
}

/// Posts a command that must succeed (200 or 201); returns the receipt.
pub async fn ok(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let response = app.post(path, token, &body).await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(
        status == StatusCode::OK || status == StatusCode::CREATED,
        "POST {path}: {status} {text}"
    );
    serde_json::from_str(&text).expect("receipt")
}

pub async fn delete(app: &TestApp, path: &str, token: &str) -> Response {
    app.http
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("DELETE")
}

/// Reads `path` as `token` once the cases read model has reached `position`.
pub async fn read(app: &TestApp, token: &str, path: &str, position: &Value) -> Response {
    let position = position.as_i64().expect("position");
    let separator = if path.contains('?') { '&' } else { '?' };
    app.get(&format!("{path}{separator}min_position={position}"), token)
        .await
}

/// Reads `path` as `token` after `position` and expects 200.
pub async fn read_ok(app: &TestApp, token: &str, path: &str, position: &Value) -> Value {
    expect_json(read(app, token, path, position).await, StatusCode::OK).await
}

const BOUNDARY: &str = "subdesk-test-boundary-7f3a9c";

/// A `multipart/form-data` body with one part named `part` (normally `file`).
pub fn multipart(part: &str, file_name: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{part}\"; \
         filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The `Content-Type` of a [`multipart`] body.
pub fn multipart_content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Uploads `bytes` as the attachment `file_name` of case `id`.
pub async fn upload(
    app: &TestApp,
    token: &str,
    id: &str,
    file_name: &str,
    bytes: &[u8],
    key: Option<&str>,
) -> Response {
    let mut request = app
        .http
        .post(app.url(&format!("/v1/cases/{id}/attachments")))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart("file", file_name, "text/plain", bytes));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("upload")
}

/// Rows of the notifications outbox as (kind, recipient, subject, body), in order.
pub async fn notifications(app: &TestApp) -> Vec<(String, String, String, String)> {
    app.db()
        .await
        .query(
            "SELECT kind, recipient, subject, body FROM notifications ORDER BY id",
            &[],
        )
        .await
        .expect("notifications")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Event types of a case's history as `token` sees it.
pub async fn history_types(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), token).await,
        StatusCode::OK,
    )
    .await;
    history
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["event_type"].as_str().expect("type").to_string())
        .collect()
}
