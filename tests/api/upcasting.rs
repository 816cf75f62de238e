//! Stored events are never rewritten: an event stored in an older shape loads, replays and
//! exports in the current one.

use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk_aggregates::support_case::CASE_OPENED_VERSION;

use crate::helpers::{expect_json, spawn_app, subdesk_cli, As};

/// A `CaseOpened` exactly as the first release (event version 1.0) stored it: no priority,
/// participants, entitlement, phone or consent.
fn opened_v1(id: &str) -> Value {
    json!({
        "type": "CaseOpened",
        "case_id": id,
        "key": "CASE-0001",
        "org_id": "acme",
        "requester": "ann@acme.test",
        "product": "jira-software",
        "summary": "Opened before priorities existed",
        "description": "Stored as 1.0",
        "impact": 2,
        "opened_by": {"id": "ann@acme.test", "role": "customer"},
        "opened_at": "2026-01-05T09:00:00Z",
        "first_response_due": "2026-01-05T13:00:00Z"
    })
}

#[tokio::test]
async fn a_version_1_case_opening_loads_replays_and_exports_in_the_current_version() {
    let app = spawn_app().await;
    let id = "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d";
    let db = app.db().await;
    db.execute(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('SupportCase', $1, 1, 'CaseOpened', '1.0', $2, '{\"actor_id\": \"ann@acme.test\", \"actor_role\": \"customer\"}')",
        &[&id, &opened_v1(id)],
    )
    .await
    .expect("store a 1.0 event");

    // Loads: the aggregate accepts a command on it.
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let comment = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &ann,
            &json!({"body": "still there?"}),
        )
        .await;
    let receipt = expect_json(comment, StatusCode::CREATED).await;
    assert_eq!(receipt["version"], 2);

    // Replays: the read model shows it, also after a rebuild from the log.
    let rebuilt = subdesk_cli(&app.target, &["projections", "rebuild", "--all"]).await;
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let path = format!("/v1/cases/{id}?min_position={}", receipt["position"]);
    let case = expect_json(app.get(&path, &sam).await, StatusCode::OK).await;
    assert_eq!(
        case["priority"], 2,
        "a 1.0 opening's priority was its impact"
    );
    assert_eq!(case["participants"], json!([]));

    // History and export show the current shape, and say what was stored.
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), &sam).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(history[0]["event_version"], CASE_OPENED_VERSION);
    assert_eq!(history[0]["payload"]["priority"], 2);
    assert_eq!(history[0]["payload"]["request_type"], "technical");
    let export = subdesk_cli(&app.target, &["export"]).await;
    assert!(export.status.success());
    let first: Value =
        serde_json::from_slice(export.stdout.split(|b| *b == b'\n').next().expect("a line"))
            .expect("JSON line");
    assert_eq!(first["event_version"], CASE_OPENED_VERSION);
    assert_eq!(first["stored_version"], "1.0");
    assert_eq!(first["payload"]["priority"], 2);

    // And the stored row itself is untouched, so its chain still verifies.
    let stored: String = db
        .query_one(
            "SELECT event_version FROM events WHERE aggregate_id = $1 AND sequence = 1",
            &[&id],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(stored, "1.0");
    let verify = subdesk_cli(&app.target, &["verify"]).await;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
