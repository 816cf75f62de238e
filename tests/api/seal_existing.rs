//! `subdesk privacy seal-existing`: events written before sealing existed (in plain text) are
//! sealed in place while the server runs. Every event keeps its position, transaction id,
//! stream and sequence; the log verifies, its anchors check, an export taken before still
//! verifies against it; and from then on an erasure reaches those events too, including the
//! erasure of someone erased before the pass.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_json, spawn_app, subdesk_cli, As, TestApp, ACME_ENTITLEMENT};

/// Writes a copy of case `id` as a binary from before sealing would have: every event in plain
/// text, under a new case id and key. Returns the copy's id.
async fn plain_copy(app: &TestApp, auditor: &str, id: &str) -> String {
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), auditor).await,
        StatusCode::OK,
    )
    .await;
    let copy = uuid::Uuid::now_v7().to_string();
    let mut db = app.db().await;
    let tx = db.transaction().await.expect("begin");
    for event in history.as_array().expect("history") {
        let mut payload = event["payload"].clone();
        if payload.get("case_id").is_some() {
            payload["case_id"] = json!(copy);
        }
        if let Some(key) = payload.get("key").and_then(Value::as_str) {
            payload["key"] = json!(format!("{key}00"));
        }
        let mut metadata = event["metadata"].clone();
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.remove("idempotency_key");
            metadata.remove("idempotency_scope");
        }
        let version = event["event_version"].as_str().expect("version");
        assert!(!version.ends_with("+sealed"), "history shows opened events");
        tx.execute(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) \
             VALUES ('SupportCase', $1, $2, $3, $4, $5, $6)",
            &[
                &copy,
                &event["sequence"].as_i64().expect("sequence"),
                &event["event_type"].as_str().expect("type"),
                &version,
                &payload,
                &metadata,
            ],
        )
        .await
        .expect("write a plain event");
    }
    tx.commit().await.expect("commit");
    copy
}

/// Every event's identity in the log: position, transaction, time, by stream and sequence.
async fn identities(app: &TestApp) -> BTreeMap<(String, i64), (i64, String, String)> {
    app.db()
        .await
        .query(
            "SELECT aggregate_id, sequence, position, tx_id::text AS tx, recorded_at::text AS at \
               FROM events",
            &[],
        )
        .await
        .expect("identities")
        .iter()
        .map(|r| {
            (
                (r.get("aggregate_id"), r.get("sequence")),
                (r.get("position"), r.get("tx"), r.get("at")),
            )
        })
        .collect()
}

/// Events whose stored payload or metadata contains `text` (any case).
async fn plain_in_log(app: &TestApp, text: &str) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM events \
              WHERE payload::text ILIKE '%' || $1 || '%' OR metadata::text ILIKE '%' || $1 || '%'",
            &[&text],
        )
        .await
        .expect("count")
        .get(0)
}

async fn erase(app: &TestApp, root: &str, subject: &str) -> String {
    let erasure = expect_json(
        app.post(
            "/v1/privacy/erasures",
            root,
            &json!({"subject": subject, "reason": "request"}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let id = erasure["id"].as_str().expect("id").to_string();
    wait_completed(app, root, &id).await;
    id
}

async fn wait_completed(app: &TestApp, root: &str, id: &str) {
    let done = crate::erasure::erasure_done(app, root, id).await;
    assert_eq!(done["status"], "completed", "{done}");
}

fn succeeded(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The report is the first JSON document on stdout.
    serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter::<Value>()
        .next()
        .expect("a report")
        .expect("JSON")
}

#[tokio::test]
async fn events_written_before_sealing_are_sealed_in_place_anchored_and_then_erasable() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let carl = app.token(As::customer("carl@acme.test", "acme")).await;
    let root = app.token(As::admin()).await;
    let auditor = app.token(As::auditor()).await;
    let case = |summary: &str| {
        json!({
            "entitlement_number": ACME_ENTITLEMENT, "product": "jira-software",
            "summary": summary, "impact": 3,
            "description": "Plain words from before sealing.", "phone": "+81 3 5555 0142"
        })
    };
    let anns = app.open_case(&ann, case("Kettle in the server room")).await;
    let anns = anns["id"].as_str().expect("id").to_string();
    expect_json(
        app.post(
            &format!("/v1/cases/{anns}/comments"),
            &ann,
            &json!({"body": "Ann's private remark: it was mine."}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let carls = app.open_case(&carl, case("Espresso machine leaks")).await;
    let carls = carls["id"].as_str().expect("id").to_string();
    let old_anns = plain_copy(&app, &auditor, &anns).await;
    plain_copy(&app, &auditor, &carls).await;
    let newest = app.newest_position().await;
    for projection in ["cases", "feed", "reports"] {
        app.wait_for_projection(projection, newest).await;
    }

    // Carl is erased before the pass: his plain events are out of the erasure's reach.
    let carl_erasure = erase(&app, &root, "carl@acme.test").await;
    assert!(plain_in_log(&app, "espresso machine leaks").await > 0);
    assert!(plain_in_log(&app, "kettle in the server room").await > 0);

    let export = subdesk_cli(&app.target, &["export"]).await;
    assert!(export.status.success());
    let exported = std::env::temp_dir().join(format!("seal-existing-{}.jsonl", old_anns));
    std::fs::write(&exported, &export.stdout).expect("keep the export");
    let before = identities(&app).await;

    // The pass, while the server runs.
    let report = succeeded(&subdesk_cli(&app.target, &["privacy", "seal-existing"]).await);
    assert_eq!(report["streams_rewritten"], 2, "{report}");
    assert!(
        report["events_sealed"].as_u64().expect("sealed") >= 3,
        "{report}"
    );
    assert_eq!(
        report["erasures_reopened"],
        json!([carl_erasure]),
        "{report}"
    );
    assert_eq!(report["events_rehashed"], 3, "{report}");
    assert_eq!(report["erased_subjects"], 1, "Carl: {report}");

    // Nothing moved; nothing is plain any more; Carl's old words are gone everywhere.
    assert_eq!(identities(&app).await, before);
    wait_completed(&app, &root, &carl_erasure).await;
    for text in [
        "kettle in the server room",
        "ann@acme.test",
        "espresso",
        "5555 0142",
    ] {
        assert_eq!(plain_in_log(&app, text).await, 0, "{text:?} still plain");
    }
    let dump = crate::erasure::pg_dump(&app).await;
    assert!(!dump.contains("espresso machine leaks"));
    assert!(!dump.contains("carl@acme.test"));

    // Ann's old case reads as it did.
    let history = expect_json(
        app.get(&format!("/v1/cases/{old_anns}/history"), &auditor)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        history[0]["payload"]["summary"],
        "Kettle in the server room"
    );
    assert_eq!(history[0]["payload"]["requester"], "ann@acme.test");

    // The log verifies, its anchors give back the old hashes (Carl's cannot be opened any
    // more), and the export from before the pass still verifies against it.
    let verified = succeeded(&subdesk_cli(&app.target, &["verify"]).await);
    // Ann's copy: the opening and her comment; Carl's: his opening, no longer openable.
    assert_eq!(verified["anchors"]["checked"], 2, "{verified}");
    assert_eq!(verified["anchors"]["unverifiable"], 1, "{verified}");
    let against = subdesk_cli(
        &app.target,
        &["verify", "--against", exported.to_str().expect("path")],
    )
    .await;
    assert!(
        against.status.success(),
        "{}",
        String::from_utf8_lossy(&against.stderr)
    );
    let check = subdesk_cli(&app.target, &["projections", "check"]).await;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // A second pass finds nothing to seal.
    let again = succeeded(&subdesk_cli(&app.target, &["privacy", "seal-existing"]).await);
    assert_eq!(again["events_sealed"], 0, "{again}");

    // An anchor that does not match what its event holds is reported.
    let db = app.db().await;
    db.execute(
        "UPDATE chain_anchors SET old_hash = sha256('forged') \
          WHERE aggregate_id = $1 AND sequence = 1",
        &[&old_anns],
    )
    .await
    .expect("forge an anchor");
    let forged = subdesk_cli(&app.target, &["verify"]).await;
    assert!(!forged.status.success());
    let forged: Value = serde_json::Deserializer::from_slice(&forged.stdout)
        .into_iter::<Value>()
        .next()
        .expect("report")
        .expect("JSON");
    assert_eq!(
        forged["first_broken"]["problem"], "anchor_mismatch",
        "{forged}"
    );
    assert_eq!(forged["first_broken"]["aggregate_id"], json!(old_anns));

    // The log itself refuses any other change, even in a rewrite's transaction.
    let refused = db
        .batch_execute(
            "BEGIN; SET LOCAL subdesk.sealing_rewrite = 'on'; \
             UPDATE events SET payload = '{}' WHERE sequence = 1; COMMIT",
        )
        .await;
    assert!(refused.is_err(), "an arbitrary rewrite went through");
    let _ = db.batch_execute("ROLLBACK").await;
    // Not even of a row whose anchor records its current hash: only sealing changes content.
    let refused = db
        .batch_execute(&format!(
            "BEGIN; SET LOCAL subdesk.sealing_rewrite = 'on'; \
             UPDATE events SET payload = payload || '{{\"forged\": true}}' \
              WHERE aggregate_id = '{old_anns}' AND sequence = 2; COMMIT"
        ))
        .await;
    assert!(refused.is_err(), "an anchored row's content was changed");
    let _ = db.batch_execute("ROLLBACK").await;

    // Erasing Ann now reaches her events from before sealing.
    erase(&app, &root, "ann@acme.test").await;
    let dump = crate::erasure::pg_dump(&app).await;
    for secret in [
        "kettle in the server room",
        "ann's private remark",
        "ann@acme.test",
    ] {
        assert!(!dump.contains(secret), "{secret:?} survived the erasure");
    }
    let _ = std::fs::remove_file(exported);
}

/// A pass over a stream whose chain is already broken would re-hash over the break and hide
/// it: it refuses, and changes nothing.
#[tokio::test]
async fn the_pass_refuses_a_log_whose_chain_is_broken() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let auditor = app.token(As::auditor()).await;
    let opened = app.open_case(&ann, crate::helpers::acme_case()).await;
    let copy = plain_copy(&app, &auditor, opened["id"].as_str().expect("id")).await;
    // Someone who can switch the log's guard off changes a plain event behind its back.
    app.db()
        .await
        .batch_execute(&format!(
            "ALTER TABLE events DISABLE TRIGGER events_append_only; \
             UPDATE events SET payload = jsonb_set(payload, '{{summary}}', '\"forged\"') \
              WHERE aggregate_id = '{copy}'; \
             ALTER TABLE events ENABLE TRIGGER events_append_only;"
        ))
        .await
        .expect("tamper");
    let before = identities(&app).await;
    let refused = subdesk_cli(&app.target, &["privacy", "seal-existing"]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&copy) && stderr.contains("does not verify"),
        "{stderr}"
    );
    assert_eq!(identities(&app).await, before);
    assert!(plain_in_log(&app, "forged").await > 0, "nothing was sealed");
    let anchors: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM chain_anchors", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(anchors, 0);
}
