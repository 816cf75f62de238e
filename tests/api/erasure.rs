//! Erasure of a data subject (crypto-shredding): after it, a `pg_dump` of the whole database
//! holds none of the subject's personal data, every hash chain still verifies, the case
//! lives on with its history and statuses, other people's data is untouched, and a rebuild
//! gives the read models the erasure left.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::case_fixtures::upload;
use crate::helpers::{
    database_url, expect_json, spawn_app, subdesk_cli, As, TestApp, ACME_ENTITLEMENT,
};

/// Everything in the database, as `pg_dump` writes it.
pub(crate) async fn pg_dump(app: &TestApp) -> String {
    let output = tokio::process::Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .arg("--no-owner")
        .arg(database_url(&app.target))
        .output()
        .await
        .expect("run pg_dump");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_lowercase()
}

pub(crate) async fn erasure_done(app: &TestApp, admin: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let erasure = expect_json(
            app.get(&format!("/v1/privacy/erasures/{id}"), admin).await,
            StatusCode::OK,
        )
        .await;
        if erasure["status"] != "running" {
            return erasure;
        }
        assert!(
            Instant::now() < deadline,
            "erasure still running: {erasure}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What Ann gave or wrote, and must not survive her erasure anywhere.
const ANN_SECRETS: [&str; 7] = [
    "ann@acme.test",
    "+81 3 5555 0199",
    "kettle in the server room",
    "smells of burnt toast",
    "ann's private remark",
    "ann-notes.txt",
    // The attachment's bytes, as pg_dump writes a bytea ("ann-bytes-42" in hex).
    "616e6e2d62797465732d3432",
];

#[tokio::test]
async fn an_erased_subject_is_nowhere_in_a_dump_while_the_log_verifies_and_the_case_lives_on() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let bob = app.token(As::customer("bob@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let root = app.token(As::admin()).await;
    let auditor = app.token(As::auditor()).await;

    let opened = app
        .open_case(
            &ann,
            json!({
                "entitlement_number": ACME_ENTITLEMENT, "product": "jira-software",
                "summary": "Kettle in the server room", "impact": 2,
                "description": "The rack smells of burnt toast since Tuesday.",
                "phone": "+81 3 5555 0199", "participants": ["bob@acme.test"]
            }),
        )
        .await;
    let id = opened["id"].as_str().expect("id").to_string();
    let comments = format!("/v1/cases/{id}/comments");
    for (token, body) in [
        (
            &sam,
            json!({"body": "Unplug the kettle, please.", "visibility": "public"}),
        ),
        (&ann, json!({"body": "Ann's private remark: it was mine."})),
        (&bob, json!({"body": "Bob here: the rack is fine now."})),
    ] {
        expect_json(app.post(&comments, token, &body).await, StatusCode::CREATED).await;
    }
    expect_json(
        upload(&app, &ann, &id, "ann-notes.txt", b"ann-bytes-42", None).await,
        StatusCode::CREATED,
    )
    .await;
    let before = app.newest_position().await;
    for projection in ["cases", "feed", "reports"] {
        app.wait_for_projection(projection, before).await;
    }
    assert!(
        pg_dump(&app)
            .await
            .contains("bob here: the rack is fine now"),
        "the dump shows what it holds"
    );

    let erasure = expect_json(
        app.post(
            "/v1/privacy/erasures",
            &root,
            &json!({"subject": "Ann@Acme.test", "reason": "request 2026-118"}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(erasure["keys_destroyed"], 1, "{erasure}");
    let erasure_id = erasure["id"].as_str().expect("erasure id");
    let done = erasure_done(&app, &root, erasure_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["events"].as_i64().expect("events") >= 3, "{done}");

    // Nothing of Ann is left in the database...
    let dump = pg_dump(&app).await;
    for secret in ANN_SECRETS {
        assert!(!dump.contains(secret), "{secret:?} survived the erasure");
    }
    // ...not even her address as a plain hash, which a dictionary would reverse.
    let bare_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"ann@acme.test"));
    assert!(!dump.contains(&bare_hash));
    // Bob's and the agent's words are untouched.
    assert!(dump.contains("bob@acme.test"));
    assert!(dump.contains("bob here: the rack is fine now"));
    assert!(dump.contains("unplug the kettle, please."));

    // The log still verifies, and a rebuild gives the read models the erasure left.
    let verify = subdesk_cli(&app.target, &["verify"]).await;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let check = subdesk_cli(&app.target, &["projections", "check"]).await;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The case lives on, its history and statuses intact, Ann's part erased.
    let case = expect_json(
        app.get(&format!("/v1/cases/{id}"), &sam).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(case["requester"], "[erased]");
    assert_eq!(case["summary"], "[erased]");
    assert_eq!(case["status"], "open");
    assert_eq!(case["participants"], json!(["bob@acme.test"]));
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), &auditor).await,
        StatusCode::OK,
    )
    .await;
    let events = history.as_array().expect("history");
    assert_eq!(events.len(), 6, "{history}");
    assert_eq!(events[0]["payload"]["phone"], "[erased]");
    assert_eq!(events[0]["metadata"]["actor_id"], "[erased]");
    let bodies: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "CommentAdded")
        .map(|e| &e["payload"]["body"])
        .collect();
    assert_eq!(
        bodies,
        [
            &json!("Unplug the kettle, please."),
            &json!("[erased]"),
            &json!("Bob here: the rack is fine now.")
        ]
    );
    // Her token stops working; her upload is gone.
    assert_eq!(
        app.get(&format!("/v1/cases/{id}"), &ann).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let listed = &case["attachments"][0];
    assert_eq!(listed["name"], "[erased]");
    let download = app.get(listed["url"].as_str().expect("url"), &sam).await;
    assert_eq!(download.status(), StatusCode::NOT_FOUND);

    // The case goes on: Bob and the agent can still work on it.
    expect_json(
        app.post(&comments, &bob, &json!({"body": "Thanks!"})).await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn only_admins_erase_and_a_blank_request_changes_nothing() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let sam = app.token(As::agent()).await;
    let body = json!({"subject": "ann@acme.test", "reason": "request"});
    let refused = app.post("/v1/privacy/erasures", &sam, &body).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for blank in [
        json!({"subject": " ", "reason": "request"}),
        json!({"subject": "ann@acme.test", "reason": "  "}),
    ] {
        let answer = app.post("/v1/privacy/erasures", &root, &blank).await;
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let missing = app
        .get(
            &format!("/v1/privacy/erasures/{}", uuid::Uuid::now_v7()),
            &root,
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let erasures: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM erasures", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(erasures, 0);
}

/// An erasure rebuilds every read model in the background and swaps the rebuilt tables in:
/// readers of several tables at once (reports) can collide with the swap, and must answer
/// as if nothing happened.
#[tokio::test]
async fn reads_answer_while_erasures_swap_rebuilt_read_models_in() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    for _ in 0..5 {
        app.open_case(&ann, crate::helpers::acme_case()).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for path in [
        "/v1/reports/cases",
        "/v1/reports/sla",
        "/v1/reports/subscriptions",
        "/v1/cases",
        "/v1/events?wait=0",
    ] {
        let (http, url, token) = (app.http.clone(), app.url(path), root.clone());
        let stop = std::sync::Arc::clone(&stop);
        readers.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("GET");
                reads += 1;
                if !answer.status().is_success() {
                    let status = answer.status();
                    failed.push(format!(
                        "{url}: {status} {}",
                        answer.text().await.unwrap_or_default()
                    ));
                }
            }
            (reads, failed)
        }));
    }
    for i in 0..3 {
        let erasure = expect_json(
            app.post(
                "/v1/privacy/erasures",
                &root,
                &json!({"subject": format!("nobody-{i}@elsewhere.test"), "reason": "test"}),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let done = erasure_done(&app, &root, erasure["id"].as_str().expect("id")).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        let (reads, failed) = reader.await.expect("reader");
        assert!(reads > 0);
        assert!(failed.is_empty(), "{failed:#?}");
    }
}
