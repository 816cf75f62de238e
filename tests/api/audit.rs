//! Auditors: the log page by page, hash-chain verification that catches tampering, export,
//! rebuild and drift checks.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{acme_case, expect_json, spawn_app, subdesk_cli, As, TestApp};

/// Opens two cases with three comments each; returns the id of the first.
async fn workload(app: &TestApp) -> String {
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let mut first = None;
    for _ in 0..2 {
        let receipt = app.open_case(&ann, acme_case()).await;
        let id = receipt["id"].as_str().expect("id").to_string();
        for i in 0..3 {
            let response = app
                .post(
                    &format!("/v1/cases/{id}/comments"),
                    &ann,
                    &json!({"body": format!("note {i}")}),
                )
                .await;
            expect_json(response, StatusCode::CREATED).await;
        }
        first.get_or_insert(id);
    }
    first.expect("a case")
}

/// Runs `sql` on the log with its append-only guard lifted, as a superuser could.
async fn tamper(app: &TestApp, sql: &str) {
    let db = app.db().await;
    db.batch_execute(&format!(
        "ALTER TABLE events DISABLE TRIGGER events_append_only; {sql}; \
         ALTER TABLE events ENABLE TRIGGER events_append_only;"
    ))
    .await
    .expect("tamper with the log");
}

/// Waits until every transaction begun so far in the cluster has finished: the audit log
/// pages only below that horizon, and other tests share the cluster.
async fn wait_for_horizon(app: &TestApp) {
    let db = app.db().await;
    let passed =
        subdesk_projections::event::wait_for_horizon(&db, std::time::Duration::from_secs(30))
            .await
            .expect("horizon");
    assert!(passed, "the horizon passed within 30 s");
}

async fn api_verify(app: &TestApp) -> Value {
    let audrey = app.token(As::auditor()).await;
    expect_json(app.get("/v1/audit/verify", &audrey).await, StatusCode::OK).await
}

async fn cli_verify(app: &TestApp) -> (bool, Value) {
    let output = subdesk_cli(&app.target, &["verify"]).await;
    let report: Value =
        serde_json::from_slice(&output.stdout).expect("verify prints a JSON report");
    (output.status.success(), report)
}

#[tokio::test]
async fn an_untouched_log_verifies_clean_by_api_and_cli() {
    let app = spawn_app().await;
    workload(&app).await;
    let report = api_verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], 8);
    assert_eq!(report["streams"], 2);
    let (success, report) = cli_verify(&app).await;
    assert!(success, "exit code 0: {report}");
    assert_eq!(report["ok"], true);
}

#[tokio::test]
async fn a_changed_payload_is_named_as_the_first_broken_link() {
    let app = spawn_app().await;
    let id = workload(&app).await;
    tamper(
        &app,
        &format!(
            "UPDATE events SET payload = jsonb_set(payload, '{{body}}', '\"edited\"') \
              WHERE aggregate_id = '{id}' AND sequence = 3"
        ),
    )
    .await;
    for report in [api_verify(&app).await, cli_verify(&app).await.1] {
        assert_eq!(report["ok"], false);
        let link = &report["first_broken"];
        assert_eq!(link["aggregate_id"], id.as_str());
        assert_eq!(link["sequence"], 3);
        assert_eq!(link["problem"], "hash_mismatch");
        assert_ne!(link["expected"], link["found"]);
    }
    assert!(!cli_verify(&app).await.0, "exit code 1 when broken");
}

#[tokio::test]
async fn a_deleted_event_is_detected() {
    let app = spawn_app().await;
    let id = workload(&app).await;
    tamper(
        &app,
        &format!("DELETE FROM events WHERE aggregate_id = '{id}' AND sequence = 2"),
    )
    .await;
    for report in [api_verify(&app).await, cli_verify(&app).await.1] {
        let link = &report["first_broken"];
        assert_eq!(link["aggregate_id"], id.as_str(), "{report}");
        assert_eq!(link["sequence"], 3);
        assert_eq!(link["problem"], "missing_event");
    }
}

#[tokio::test]
async fn reordered_sequences_are_detected() {
    let app = spawn_app().await;
    let id = workload(&app).await;
    tamper(
        &app,
        &format!(
            "UPDATE events SET sequence = 100 WHERE aggregate_id = '{id}' AND sequence = 2; \
             UPDATE events SET sequence = 2 WHERE aggregate_id = '{id}' AND sequence = 3; \
             UPDATE events SET sequence = 3 WHERE aggregate_id = '{id}' AND sequence = 100"
        ),
    )
    .await;
    for report in [api_verify(&app).await, cli_verify(&app).await.1] {
        let link = &report["first_broken"];
        assert_eq!(link["aggregate_id"], id.as_str(), "{report}");
        assert_eq!(link["sequence"], 2);
        assert_eq!(link["problem"], "hash_mismatch");
    }
}

#[tokio::test]
async fn the_audit_log_pages_in_gap_free_order_for_auditors_only() {
    let app = spawn_app().await;
    workload(&app).await;
    let audrey = app.token(As::auditor()).await;
    wait_for_horizon(&app).await;
    let mut after = String::new();
    let mut seen: Vec<Value> = Vec::new();
    loop {
        let page = expect_json(
            app.get(&format!("/v1/audit/events?limit=3&after={after}"), &audrey)
                .await,
            StatusCode::OK,
        )
        .await;
        let events = page["events"].as_array().expect("events").clone();
        after = page["next"].as_str().expect("next").to_string();
        if events.is_empty() {
            break;
        }
        seen.extend(events);
    }
    assert_eq!(seen.len(), 8);
    let order: Vec<(i64, i64)> = seen
        .iter()
        .map(|e| {
            (
                e["tx_id"].as_i64().expect("tx"),
                e["position"].as_i64().expect("position"),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "catch-up order");
    assert!(seen
        .iter()
        .all(|e| e["metadata"]["actor_id"] == "ann@acme.test"));
    assert!(seen
        .iter()
        .all(|e| e["hash"].as_str().is_some_and(|h| h.len() == 64)));

    let only_cases = expect_json(
        app.get("/v1/audit/events?aggregate_type=Nothing", &audrey)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(only_cases["events"].as_array().map(Vec::len), Some(0));

    let sam = app.token(As::agent()).await;
    expect_json(
        app.get("/v1/audit/events", &sam).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    expect_json(
        app.get("/v1/audit/events?after=nonsense", &audrey).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn export_writes_every_event_as_a_json_line_in_catch_up_order() {
    let app = spawn_app().await;
    workload(&app).await;
    let output = subdesk_cli(&app.target, &["export"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 8);
    let keys: Vec<(i64, i64)> = lines
        .iter()
        .map(|e| {
            (
                e["tx_id"].as_i64().unwrap_or(-1),
                e["position"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(lines[0]["event_type"], "CaseOpened");
    assert!(lines[0]["payload"]["summary"].is_string());

    let filtered = subdesk_cli(&app.target, &["export", "--aggregate-type", "Subscription"]).await;
    assert!(filtered.status.success());
    assert!(filtered.stdout.is_empty(), "no subscription events yet");
}

#[tokio::test]
async fn a_rebuild_reproduces_the_read_models_and_a_hand_edit_shows_as_drift() {
    let app = spawn_app().await;
    let id = workload(&app).await;
    // Let the live projection catch up to the end of the log.
    let ann_position: i64 = {
        let db = app.db().await;
        db.query_one("SELECT max(position) FROM events", &[])
            .await
            .expect("max")
            .get(0)
    };
    let audrey = app.token(As::auditor()).await;
    let read = format!("/v1/cases/{id}?min_position={ann_position}");
    let before = expect_json(app.get(&read, &audrey).await, StatusCode::OK).await;

    crate::helpers::forget_acme_entitlement(&app.target).await;
    let check = subdesk_cli(&app.target, &["projections", "check"]).await;
    assert!(
        check.status.success(),
        "no drift after the workload: {}",
        String::from_utf8_lossy(&check.stdout)
    );

    let rebuild = subdesk_cli(&app.target, &["projections", "rebuild", "--all"]).await;
    assert!(
        rebuild.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert!(String::from_utf8_lossy(&rebuild.stderr).contains("events/s"));
    let after = expect_json(app.get(&read, &audrey).await, StatusCode::OK).await;
    assert_eq!(before, after, "the rebuilt read model answers the same");

    let db = app.db().await;
    db.execute(
        "UPDATE case_view SET summary = 'edited by hand' WHERE id = $1::text::uuid",
        &[&id],
    )
    .await
    .expect("edit a read-model row");
    let drift = subdesk_cli(&app.target, &["projections", "check"]).await;
    assert!(!drift.status.success(), "drift is exit code 1");
    let report = String::from_utf8_lossy(&drift.stdout);
    assert!(
        report.contains("edited by hand") && report.contains(&id),
        "the edited row is listed: {report}"
    );
}

#[tokio::test]
async fn an_earlier_export_catches_what_the_chain_alone_cannot() {
    let app = spawn_app().await;
    let id = workload(&app).await;
    wait_for_horizon(&app).await;
    let export = subdesk_cli(&app.target, &["export"]).await;
    assert!(export.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, &export.stdout).expect("keep the export");
    let against = file.to_str().expect("path");

    let anchored = subdesk_cli(&app.target, &["verify", "--against", against]).await;
    assert!(
        anchored.status.success(),
        "an untouched log matches its export"
    );

    // The newest event of a stream deleted: every chain still verifies...
    tamper(
        &app,
        &format!("DELETE FROM events WHERE aggregate_id = '{id}' AND sequence = 4"),
    )
    .await;
    assert!(
        cli_verify(&app).await.0,
        "the chain alone does not see a lost tail"
    );
    // ...but the export remembers it.
    let anchored = subdesk_cli(&app.target, &["verify", "--against", against]).await;
    assert!(!anchored.status.success());
    let text = String::from_utf8_lossy(&anchored.stdout);
    assert!(
        text.contains("missing_event") && text.contains(&id),
        "{text}"
    );
}

#[tokio::test]
async fn an_earlier_export_catches_a_rewrite_that_recomputed_the_chain() {
    let app = spawn_app().await;
    let id = workload(&app).await;
    wait_for_horizon(&app).await;
    let export = subdesk_cli(&app.target, &["export"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, &export.stdout).expect("keep the export");

    // Someone who can write the table rewrites the last comment and re-hashes it.
    tamper(
        &app,
        &format!(
            "UPDATE events e SET payload = jsonb_set(payload, '{{body}}', '\"rewritten\"') \
              WHERE aggregate_id = '{id}' AND sequence = 4; \
             UPDATE events e SET hash = sha256((SELECT p.hash FROM events p \
                 WHERE p.aggregate_id = e.aggregate_id AND p.sequence = 3) || events_canonical(e)) \
              WHERE aggregate_id = '{id}' AND sequence = 4"
        ),
    )
    .await;
    assert!(cli_verify(&app).await.0, "the recomputed chain verifies");
    let anchored = subdesk_cli(
        &app.target,
        &["verify", "--against", file.to_str().expect("path")],
    )
    .await;
    assert!(!anchored.status.success());
    assert!(String::from_utf8_lossy(&anchored.stdout).contains("hash_mismatch"));
}
