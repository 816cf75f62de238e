//! What a careless or hostile caller tries: dates no database stores, NUL bytes, malformed
//! paths, forged cursors, staff-only metadata, uploads to cases they cannot see, and a drift
//! check that must not re-create e-mails.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{acme_case, expect_json, spawn_app, subdesk_cli, As, TestApp};

fn direct(term_start: &str, term_end: &str) -> Value {
    json!({"org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 5,
           "term_start": term_start, "term_end": term_end, "auto_renew": true,
           "channel": {"kind": "direct"}})
}

#[tokio::test]
async fn a_term_no_database_can_store_is_refused_and_the_read_side_keeps_going() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let end = (Utc::now() + Duration::days(30)).to_rfc3339();
    for start in ["0000-06-01T00:00:00Z", "+12026-01-01T00:00:00Z"] {
        let refused = app
            .post("/v1/subscriptions", &root, &direct(start, &end))
            .await;
        let problem = expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
        let code = problem["code"].as_str().unwrap_or_default();
        assert!(
            ["term_out_of_bounds", "invalid_term"].contains(&code),
            "{start}: {problem}"
        );
    }
    let fine = app
        .create_subscription(
            &root,
            direct(&(Utc::now() - Duration::days(1)).to_rfc3339(), &end),
        )
        .await;
    app.wait_for_projection(
        "subscriptions",
        fine["position"].as_i64().expect("position"),
    )
    .await;
    app.wait_for_projection("timers", fine["position"].as_i64().expect("position"))
        .await;
}

#[tokio::test]
async fn subscription_history_shows_the_customer_side_no_staff_only_metadata() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let ada = app.token(As::org_admin("ada@acme.test", "acme")).await;
    let end = (Utc::now() + Duration::days(30)).to_rfc3339();
    let body = direct(&(Utc::now() - Duration::days(1)).to_rfc3339(), &end);
    let created = app
        .post_with_key("/v1/subscriptions", &root, "buy-1", &body)
        .await;
    let created = expect_json(created, StatusCode::CREATED).await;
    let id = created["id"].as_str().expect("id");
    let path = format!("/v1/subscriptions/{id}/history");

    let staff = expect_json(app.get(&path, &root).await, StatusCode::OK).await;
    assert_eq!(staff[0]["metadata"]["idempotency_key"], "buy-1");
    assert!(staff[0]["metadata"]["request_hash"].is_string());
    let customer = expect_json(app.get(&path, &ada).await, StatusCode::OK).await;
    for entry in customer.as_array().expect("entries") {
        let keys: Vec<&String> = entry["metadata"]
            .as_object()
            .expect("metadata")
            .keys()
            .collect();
        for secret in ["idempotency_key", "idempotency_scope", "request_hash"] {
            assert!(
                !keys.iter().any(|k| k.as_str() == secret),
                "{secret} in {keys:?}"
            );
        }
        assert!(keys.iter().any(|k| k.as_str() == "actor_role"));
    }
}

async fn problem_of(response: reqwest::Response, status: StatusCode) -> Value {
    expect_json(response, status).await
}

#[tokio::test]
async fn malformed_paths_unknown_routes_and_wrong_methods_answer_problem_documents() {
    let app = spawn_app().await;
    let sam = app.token(As::agent()).await;
    let bad_id = problem_of(
        app.get("/v1/cases/not-a-uuid", &sam).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad_id["code"], "bad_request");
    let nowhere = problem_of(app.get("/v1/nowhere", &sam).await, StatusCode::NOT_FOUND).await;
    assert_eq!(nowhere["code"], "not_found");
    let method = app
        .http
        .delete(app.url("/v1/cases"))
        .bearer_auth(&sam)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        problem_of(method, StatusCode::METHOD_NOT_ALLOWED).await["code"],
        "method_not_allowed"
    );
    let huge = app
        .http
        .post(app.url("/v1/cases"))
        .bearer_auth(&sam)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"summary\": \"{}\"}}",
            "x".repeat(2 * 1024 * 1024)
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        problem_of(huge, StatusCode::PAYLOAD_TOO_LARGE).await["code"],
        "payload_too_large"
    );
    let cursor = base64_url(&format!("{}.{}", i64::MAX, uuid::Uuid::nil()));
    let forged = app.get(&format!("/v1/cases?cursor={cursor}"), &sam).await;
    assert_eq!(
        problem_of(forged, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid_cursor"
    );
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_nul_character_is_refused_as_a_rule_not_a_crash() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let mut body = acme_case();
    body["summary"] = json!("broken\u{0}summary");
    let problem = expect_json(
        app.post("/v1/cases", &ann, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_body");
    assert_eq!(app.event_count(None).await, 0);
}

#[tokio::test]
async fn an_upload_to_a_case_the_caller_cannot_see_stores_nothing() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let eve = app.token(As::org_admin("eve@globex.test", "globex")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id");
    let body = crate::case_fixtures::multipart("file", "log.txt", "text/plain", &[b'a'; 4096]);
    let response = app
        .http
        .post(app.url(&format!("/v1/cases/{id}/attachments")))
        .bearer_auth(&eve)
        .header(
            "content-type",
            "multipart/form-data; boundary=subdesk-test-boundary-7f3a9c",
        )
        .body(body)
        .send()
        .await
        .expect("upload");
    expect_json(response, StatusCode::NOT_FOUND).await;
    let stored: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM case_attachment_blobs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 0);
}

async fn outbox(app: &TestApp) -> i64 {
    app.db()
        .await
        .query_one("SELECT count(*) FROM notifications", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn checks_and_rebuilds_never_recreate_e_mails_the_outbox_has_let_go_of() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    app.wait_for_projection("cases", opened["position"].as_i64().expect("position"))
        .await;
    let sent = outbox(&app).await;
    assert!(sent > 0, "opening a case sends a confirmation");
    // A delivery worker prunes what it sent.
    app.db()
        .await
        .execute("DELETE FROM notifications", &[])
        .await
        .expect("prune");
    crate::helpers::forget_acme_entitlement(&app.target).await;

    let check = subdesk_cli(&app.target, &["projections", "check"]).await;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(outbox(&app).await, 0, "a check writes no e-mail");
    let rebuild = subdesk_cli(&app.target, &["projections", "rebuild", "--all"]).await;
    assert!(
        rebuild.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert_eq!(
        outbox(&app).await,
        0,
        "a rebuild does not send history again"
    );
}

#[tokio::test]
async fn without_the_entitlement_policy_a_case_opens_without_one() {
    let mut settings = subdesk::app::Settings::default();
    settings.case_policy.require_entitlement = false;
    let app =
        crate::helpers::spawn_app_with(settings, std::sync::Arc::new(subdesk::clock::SystemClock))
            .await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let mut body = acme_case();
    body.as_object_mut()
        .expect("object")
        .remove("entitlement_number");
    let opened = app.open_case(&ann, body).await;
    assert_eq!(opened["status"], "open");
}

#[tokio::test]
async fn an_event_no_projection_can_apply_is_set_aside_and_the_read_side_keeps_going() {
    let app = spawn_app().await;
    // Written straight into the log (as a bug of an earlier release, or a hand edit, could):
    // a case opening the projections cannot decode.
    let poison: i64 = app
        .db()
        .await
        .query_one(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                                 event_version, payload, metadata) \
             VALUES ('SupportCase', '0193a8f2-6a61-7c3e-9d0a-3f1f6a1b0bad', 1, 'CaseOpened', \
                     '2.0', '{\"type\": \"CaseOpened\", \"nonsense\": true}', '{}') \
             RETURNING position",
            &[],
        )
        .await
        .expect("store an undecodable event")
        .get(0);

    // A case opened after it still reaches the read models.
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id");
    let position = opened["position"].as_i64().expect("position");
    assert!(position > poison);
    let read = app
        .get(&format!("/v1/cases/{id}?min_position={position}"), &ann)
        .await;
    let case = expect_json(read, StatusCode::OK).await;
    assert_eq!(case["status"], "open");

    // The bad event is recorded for each projection of cases, with why.
    let set_aside: Vec<(String, i64, String)> = app
        .db()
        .await
        .query(
            "SELECT projection, position, error FROM projection_dead_letters ORDER BY projection",
            &[],
        )
        .await
        .expect("dead letters")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let projections: Vec<&str> = set_aside.iter().map(|(p, _, _)| p.as_str()).collect();
    assert!(projections.contains(&"cases"), "{set_aside:?}");
    for (projection, at, error) in &set_aside {
        assert_eq!(*at, poison, "{projection}");
        assert!(error.contains("cannot be decoded"), "{projection}: {error}");
    }

    // `projections status` lists it and exits 1.
    let status = subdesk_cli(&app.target, &["projections", "status"]).await;
    let out = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{out}");
    assert!(out.contains("events set aside"), "{out}");
    assert!(
        out.contains(&format!("cases\t{poison}\tCaseOpened")),
        "{out}"
    );
}
