use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;
use subdesk::app::Settings;
use subdesk::command::{CommandError, CommandMeta};
use subdesk_aggregates::support_case::{AutoResolve, CloseCase, SupportCaseCommand};
use subdesk_aggregates::{Actor, DomainError};

use crate::case_fixtures::{
    acme_ticket, command, delete, history_types, notifications, ok, read_ok, seed_entitlement,
    spawn_acme, spawn_app_at_t0, t0, ACME_ENTITLEMENT,
};
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
    assert_eq!(case["priority"], 2);
    assert_eq!(case["sla"]["first_response"]["breached"], false);
    assert!(case["sla"]["first_response"]["due"].is_string());
    assert!(case["sla"]["first_response"]["met_at"].is_null());
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
        .filter(|e| e["kind"] == "comment")
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
    let kinds: Vec<&str> = as_customer["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["opened", "comment"]);
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
    body["summary"] = json!("   ");
    let problem = expect_json(
        app.post("/v1/cases", &ann, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_summary");
    // Past its documented bound, the body is refused before the domain sees it.
    body["summary"] = json!("x".repeat(256));
    let problem = expect_json(
        app.post("/v1/cases", &ann, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "field_too_long");
    assert_eq!(problem["detail"], "summary must be at most 255 characters");

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
    // The actor's address is personal: stored sealed, read back through the history.
    assert_eq!(first["actor_id"], serde_json::Value::Null);
    assert!(first["$sealed"].is_array(), "{first}");
    assert!(!first.to_string().contains("ann@acme.test"));
    let auditor = app.token(As::auditor()).await;
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), &auditor).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(history[0]["metadata"]["actor_id"], "ann@acme.test");
    assert_eq!(history[0]["event_version"], "2.3");
    assert!(history[0]["metadata"].get("$sealed").is_none());
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

// ---------------------------------------------------------------------------------------
// The full lifecycle over HTTP

#[tokio::test]
async fn open_request_info_reply_request_info_resolve_and_a_customer_comment_reopens() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;

    let opened = app.open_case(&ann, acme_ticket()).await;
    let id = opened["id"].as_str().expect("id").to_string();
    let case = |tail: &str| format!("/v1/cases/{id}{tail}");

    let asked = ok(
        &app,
        &sam,
        &case("/request-info"),
        json!({"body": "Which browser do you use?"}),
    )
    .await;
    assert_eq!(asked["status"], "waiting_for_customer");
    let waiting = read_ok(&app, &ann, &case(""), &asked["position"]).await;
    assert_eq!(waiting["status"], "waiting_for_customer");
    assert!(waiting["waiting_since"].is_string());
    assert!(
        waiting["auto_resolve_due"].is_string(),
        "the customer sees when the case will be resolved automatically: {waiting}"
    );
    assert!(waiting["sla"]["first_response"]["met_at"].is_string());

    let replied = ok(
        &app,
        &ann,
        &case("/comments"),
        json!({"body": "Firefox 128"}),
    )
    .await;
    assert_eq!(replied["status"], "investigating");
    let asked_again = ok(
        &app,
        &sam,
        &case("/request-info"),
        json!({"body": "Does it happen in a private window?"}),
    )
    .await;
    assert_eq!(asked_again["status"], "waiting_for_customer");
    let resolved = ok(&app, &sam, &case("/resolve"), json!({})).await;
    assert_eq!(resolved["status"], "resolved");
    let after_resolution = read_ok(&app, &ann, &case(""), &resolved["position"]).await;
    assert!(after_resolution["auto_resolve_due"].is_null());
    assert!(after_resolution["auto_close_due"].is_string());
    assert_eq!(after_resolution["resolved_by"], "sam@support.test");

    let reopened = ok(
        &app,
        &ann,
        &case("/comments"),
        json!({"body": "It is back since this morning"}),
    )
    .await;
    assert_eq!(reopened["status"], "investigating");

    let detail = read_ok(&app, &ann, &case(""), &reopened["position"]).await;
    assert_eq!(detail["status"], "investigating");
    assert_eq!(detail["reopened"], 1);
    assert!(detail["resolved_at"].is_null());
    assert_eq!(detail["public_comments"], 4);

    assert_eq!(
        history_types(&app, &ann, &id).await,
        [
            "CaseOpened",
            "CommentAdded",
            "FirstResponseGiven",
            "CustomerInfoRequested",
            "CommentAdded",
            "CustomerResponded",
            "CommentAdded",
            "CustomerInfoRequested",
            "CaseResolved",
            "CommentAdded",
            "CaseReopened",
        ]
    );
    let history = expect_json(app.get(&case("/history"), &ann).await, StatusCode::OK).await;
    let roles: Vec<&str> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["metadata"]["actor_role"].as_str().expect("role"))
        .collect();
    assert_eq!(
        roles,
        [
            "customer", "agent", "agent", "agent", "customer", "customer", "agent", "agent",
            "agent", "customer", "customer"
        ]
    );
    let sequences: Vec<i64> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["sequence"].as_i64().expect("sequence"))
        .collect();
    assert_eq!(sequences, (1..=11).collect::<Vec<i64>>());
}

#[tokio::test]
async fn an_entitlement_of_another_org_or_of_a_cancelled_subscription_is_refused_and_appends_nothing(
) {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    seed_entitlement(&app, "E-GLBX-0000-0001", "globex", "active", None).await;
    let cancelled = seed_entitlement(&app, "E-ACME-0000-0002", "acme", "cancelled", None).await;
    let expired = seed_entitlement(&app, "E-ACME-0000-0003", "acme", "expired", None).await;

    let mut foreign = acme_ticket();
    foreign["entitlement_number"] = json!("E-GLBX-0000-0001");
    let problem = command(
        &app,
        &ann,
        "/v1/cases",
        foreign,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_entitlement");
    assert_eq!(
        problem["detail"],
        "the support entitlement is not one of this org's"
    );

    let mut unknown = acme_ticket();
    unknown["entitlement_number"] = json!("E-NONE-0000-0000");
    let problem = command(
        &app,
        &ann,
        "/v1/cases",
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_entitlement");

    for (subscription, status) in [(cancelled, "cancelled"), (expired, "expired")] {
        let body = by_subscription(subscription);
        let problem = command(
            &app,
            &ann,
            "/v1/cases",
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["code"], "entitlement_inactive");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(status) && d.contains("active or non-renewing")),
            "{problem}"
        );
    }

    let mut both = acme_ticket();
    both["subscription_id"] = json!(cancelled);
    command(
        &app,
        &ann,
        "/v1/cases",
        both,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(app.event_count(None).await, 0, "nothing was appended");

    // A non-renewing subscription still supports cases, named by its subscription id.
    let non_renewing =
        seed_entitlement(&app, "E-ACME-0000-0004", "acme", "non_renewing", None).await;
    let body = by_subscription(non_renewing);
    let receipt = app.open_case(&ann, body).await;
    let case = read_ok(
        &app,
        &ann,
        &format!("/v1/cases/{}", receipt["id"].as_str().expect("id")),
        &receipt["position"],
    )
    .await;
    assert_eq!(case["entitlement_number"], "E-ACME-0000-0004");
    assert_eq!(case["subscription_id"], json!(non_renewing));
}

#[tokio::test]
async fn with_require_entitlement_a_case_needs_one() {
    let mut settings = Settings::default();
    settings.case_policy.require_entitlement = true;
    let (app, _) = spawn_app_at_t0(settings).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let mut unentitled = acme_case();
    unentitled
        .as_object_mut()
        .expect("object")
        .remove("entitlement_number");
    let problem = command(
        &app,
        &ann,
        "/v1/cases",
        unentitled,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "entitlement_required");
    app.open_case(&ann, acme_ticket()).await;
    assert_eq!(app.event_count(None).await, 1);
}

#[tokio::test]
async fn staff_open_for_a_customer_on_behalf_and_the_org_comes_from_the_entitlement() {
    let app = spawn_acme().await;
    let sam = app.token(As::agent()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let mut body = acme_ticket();
    body["on_behalf_of"] = json!("Ann@Acme.test");
    body["participants"] = json!(["carl@acme.test"]);
    body["product_version"] = json!("9.12.4");
    body["phone"] = json!("+81 3 1234 5678");
    body["data_access_consent"] = json!(true);
    let receipt = app.open_case(&sam, body).await;
    let id = receipt["id"].as_str().expect("id");
    let case = read_ok(&app, &ann, &format!("/v1/cases/{id}"), &receipt["position"]).await;
    assert_eq!(case["org_id"], "acme");
    assert_eq!(case["requester"], "ann@acme.test");
    assert_eq!(case["opened_by"], "sam@support.test");
    assert_eq!(case["participants"], json!(["carl@acme.test"]));
    assert_eq!(case["product_version"], "9.12.4");
    assert_eq!(case["phone"], "+81 3 1234 5678");
    assert_eq!(case["data_access"], true);
    assert_eq!(case["entitlement_number"], ACME_ENTITLEMENT);
}

#[tokio::test]
async fn a_customer_reporting_for_a_colleague_keeps_following_the_case() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let dora = app.token(As::customer("dora@acme.test", "acme")).await;
    let mut body = acme_ticket();
    body["on_behalf_of"] = json!("dora@acme.test");
    let receipt = app.open_case(&ann, body).await;
    let id = receipt["id"].as_str().expect("id");
    let as_dora = read_ok(
        &app,
        &dora,
        &format!("/v1/cases/{id}"),
        &receipt["position"],
    )
    .await;
    assert_eq!(as_dora["requester"], "dora@acme.test");
    assert_eq!(as_dora["participants"], json!(["ann@acme.test"]));
    read_ok(&app, &ann, &format!("/v1/cases/{id}"), &receipt["position"]).await;
}

#[tokio::test]
async fn staff_work_the_case_and_the_read_model_shows_every_change() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let mut body = acme_ticket();
    body["impact"] = json!(3);
    body["data_access_consent"] = json!(true);
    let id = app.open_case(&ann, body).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let case = |tail: &str| format!("/v1/cases/{id}{tail}");

    ok(&app, &sam, &case("/assign"), json!({})).await;
    ok(&app, &sam, &case("/investigate"), json!({})).await;
    clock.advance(Duration::minutes(90));
    // Priority 1: the first response was due one hour after the opening, so it is late now.
    ok(&app, &sam, &case("/priority"), json!({"priority": 1})).await;
    ok(
        &app,
        &ann,
        &case("/participants"),
        json!({"email": "Carl@acme.test"}),
    )
    .await;
    ok(
        &app,
        &ann,
        &case("/participants"),
        json!({"email": "dora@acme.test"}),
    )
    .await;
    let removed = expect_json(
        delete(&app, &case("/participants/dora@acme.test"), &ann).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(removed["version"], 7);
    ok(
        &app,
        &ann,
        &case("/escalate"),
        json!({"reason": "Production is down"}),
    )
    .await;
    ok(&app, &sam, &case("/accept-escalation"), json!({})).await;
    let last = ok(&app, &ann, &case("/data-access"), json!({"granted": false})).await;

    let detail = read_ok(&app, &sam, &case(""), &last["position"]).await;
    assert_eq!(detail["assignee"], "sam@support.test");
    assert_eq!(detail["status"], "investigating");
    assert_eq!(detail["impact"], 3);
    assert_eq!(detail["priority"], 1);
    assert_eq!(
        detail["sla"]["first_response"]["due"],
        json!((t0() + Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );
    assert_eq!(
        detail["sla"]["first_response"]["breached"], true,
        "{detail}"
    );
    assert_eq!(detail["participants"], json!(["carl@acme.test"]));
    assert_eq!(detail["escalation"]["state"], "escalated");
    assert_eq!(detail["escalation"]["reason"], "Production is down");
    assert_eq!(detail["data_access"], false);
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "assigned",
            "investigation_started",
            "priority_changed",
            "participant_added",
            "participant_added",
            "participant_removed",
            "escalation_requested",
            "escalated",
            "data_access_revoked"
        ]
    );
}

#[tokio::test]
async fn forbidden_actions_on_a_visible_case_are_403_and_append_nothing() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let audrey = app.token(As::auditor()).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let case = |tail: &str| format!("/v1/cases/{id}{tail}");
    for (token, path, body) in [
        (&ann, case("/assign"), json!({})),
        (&ann, case("/investigate"), json!({})),
        (&ann, case("/priority"), json!({"priority": 1})),
        (&ann, case("/request-info"), json!({"body": "?"})),
        (&ann, case("/accept-escalation"), json!({})),
        (&sam, case("/escalate"), json!({})),
        (&sam, case("/data-access"), json!({"granted": false})),
        (&audrey, case("/comments"), json!({"body": "hello"})),
        (&audrey, case("/resolve"), json!({})),
    ] {
        let problem = command(&app, token, &path, body, StatusCode::FORBIDDEN).await;
        assert_eq!(problem["code"], "forbidden", "{path}");
    }
    assert_eq!(app.event_count(Some(&id)).await, 1);
}

#[tokio::test]
async fn domain_rules_broken_over_http_are_422_with_their_codes() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let mut body = acme_ticket();
    body["participants"] = json!((0..48)
        .map(|i| format!("user{i}@acme.test"))
        .collect::<Vec<_>>());
    let id = app.open_case(&ann, body).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let case = |tail: &str| format!("/v1/cases/{id}{tail}");
    let rules = [
        (
            &ann,
            case("/participants"),
            json!({"email": "one-more@acme.test"}),
            "too_many_participants",
        ),
        (
            &ann,
            case("/participants"),
            json!({"email": "not an address"}),
            "invalid_email",
        ),
        (
            &sam,
            case("/priority"),
            json!({"priority": 9}),
            "invalid_priority",
        ),
        (
            &sam,
            case("/accept-escalation"),
            json!({}),
            "no_escalation_pending",
        ),
        (
            &sam,
            case("/request-info"),
            json!({"body": " "}),
            "empty_comment",
        ),
    ];
    for (token, path, body, code) in rules {
        let problem = command(&app, token, &path, body, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["code"], code, "{path}");
    }
    ok(&app, &ann, &case("/resolve"), json!({})).await;
    let problem = command(
        &app,
        &ann,
        &case("/resolve"),
        json!({}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_status");
    assert_eq!(problem["detail"], "cannot resolve a case that is resolved");
    let problem = command(
        &app,
        &ann,
        &case("/escalate"),
        json!({}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_status");
    assert_eq!(app.event_count(Some(&id)).await, 2);
}

/// Runs a timed command as the scheduler will: as the system principal.
async fn timer(
    app: &crate::helpers::TestApp,
    id: &str,
    command: SupportCaseCommand,
) -> Result<i64, String> {
    app.state
        .cases
        .execute(id, command, &CommandMeta::system("test-timer"), None)
        .await
        .map(|outcome| outcome.position)
        .map_err(|error| match error {
            CommandError::Rejected(e) => e.code().to_string(),
            other => panic!("unexpected {other:?}"),
        })
}

#[tokio::test]
async fn a_case_waiting_five_days_is_auto_resolved_by_the_system_and_not_a_second_earlier() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    clock.advance(Duration::hours(1));
    let asked = ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/request-info"),
        json!({"body": "Logs, please"}),
    )
    .await;
    let waiting = read_ok(&app, &ann, &format!("/v1/cases/{id}"), &asked["position"]).await;
    let due = t0() + Duration::hours(1) + Duration::days(5);
    assert_eq!(
        waiting["auto_resolve_due"],
        json!(due.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );

    let system = || {
        SupportCaseCommand::AutoResolve(AutoResolve {
            by: Actor::system(),
        })
    };
    clock.set(due - Duration::seconds(1));
    assert_eq!(timer(&app, &id, system()).await, Err("not_due".into()));
    clock.set(due);
    let position = timer(&app, &id, system()).await.expect("auto-resolved");
    assert_eq!(
        timer(&app, &id, system()).await,
        Err("not_due".into()),
        "a repeated timer resolves nothing twice"
    );

    let resolved = read_ok(&app, &ann, &format!("/v1/cases/{id}"), &json!(position)).await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["auto_resolved"], true);
    assert_eq!(resolved["resolved_by"], "system");
    assert!(resolved["auto_resolve_due"].is_null());
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), &ann).await,
        StatusCode::OK,
    )
    .await;
    let last = history.as_array().and_then(|h| h.last()).expect("events");
    assert_eq!(last["event_type"], "CaseAutoResolved");
    assert_eq!(last["payload"]["waited_seconds"], 5 * 86_400);
    assert_eq!(last["metadata"]["actor_role"], "system");
    assert!(notifications(&app)
        .await
        .iter()
        .any(|(kind, to, subject, _)| kind == "status_changed"
            && to == "ann@acme.test"
            && subject.contains("resolved")));
}

#[tokio::test]
async fn a_customer_reply_before_the_due_time_cancels_the_automatic_resolution() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/request-info"),
        json!({"body": "?"}),
    )
    .await;
    clock.advance(Duration::days(4));
    let replied = ok(
        &app,
        &ann,
        &format!("/v1/cases/{id}/comments"),
        json!({"body": "!"}),
    )
    .await;
    let detail = read_ok(&app, &ann, &format!("/v1/cases/{id}"), &replied["position"]).await;
    assert!(detail["auto_resolve_due"].is_null());
    clock.advance(Duration::days(2));
    let auto = SupportCaseCommand::AutoResolve(AutoResolve {
        by: Actor::system(),
    });
    assert_eq!(timer(&app, &id, auto).await, Err("not_due".into()));
}

#[tokio::test]
async fn a_closed_case_refuses_every_later_command_and_a_customer_reply_opens_a_linked_case() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let case = |tail: &str| format!("/v1/cases/{id}{tail}");
    ok(&app, &sam, &case("/resolve"), json!({})).await;
    let close = || {
        SupportCaseCommand::Close(CloseCase {
            by: Actor::system(),
        })
    };
    clock.advance(Duration::days(14) - Duration::seconds(1));
    assert_eq!(timer(&app, &id, close()).await, Err("not_due".into()));
    clock.advance(Duration::seconds(1));
    let position = timer(&app, &id, close()).await.expect("closed");
    let before = app.event_count(Some(&id)).await;
    for (token, tail, body) in [
        (
            &sam,
            "/comments",
            json!({"body": "note", "visibility": "internal"}),
        ),
        (&ann, "/participants", json!({"email": "x@acme.test"})),
        (&ann, "/escalate", json!({})),
        (&sam, "/assign", json!({})),
        (&sam, "/priority", json!({"priority": 1})),
        (&ann, "/resolve", json!({})),
    ] {
        let problem = command(
            &app,
            token,
            &case(tail),
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["code"], "case_closed", "{tail}");
    }
    assert_eq!(app.event_count(Some(&id)).await, before);
    let detail = read_ok(&app, &ann, &case(""), &json!(position)).await;
    assert_eq!(detail["status"], "closed");
    assert!(detail["closed_at"].is_string());

    // The customer's reply opens a new case that follows the closed one up.
    let reply = ok(
        &app,
        &ann,
        &case("/comments"),
        json!({"body": "still broken"}),
    )
    .await;
    assert_eq!(reply["follow_up_of"], json!(id));
    assert_ne!(reply["id"], json!(id));
    assert_eq!(reply["status"], "open");
    assert_eq!(
        app.event_count(Some(&id)).await,
        before,
        "the closed case is untouched"
    );
    let opened = read_ok(
        &app,
        &ann,
        &format!("/v1/cases/{}", reply["id"].as_str().expect("id")),
        &reply["position"],
    )
    .await;
    assert_eq!(opened["description"], "still broken");
    assert_eq!(opened["requester"], "ann@acme.test");
    assert_eq!(opened["entitlement_number"], detail["entitlement_number"]);
    assert!(opened["summary"]
        .as_str()
        .is_some_and(|s| s.contains(detail["key"].as_str().unwrap_or("?"))));

    // Or explicitly: a new case that names the one it follows up.
    let mut body = acme_ticket();
    body["follow_up_of"] = json!(id);
    let follow_up = app.open_case(&ann, body).await;
    let linked = read_ok(
        &app,
        &ann,
        &format!("/v1/cases/{}", follow_up["id"].as_str().expect("id")),
        &follow_up["position"],
    )
    .await;
    assert_eq!(linked["follow_up_of"], json!(id));
    let bob = app.token(As::customer("bob@acme.test", "acme")).await;
    let mut body = acme_ticket();
    body["follow_up_of"] = json!(id);
    let problem = command(&app, &bob, "/v1/cases", body, StatusCode::NOT_FOUND).await;
    assert_eq!(
        problem["code"], "not_found",
        "bob does not see the closed case"
    );
}

#[tokio::test]
async fn a_reply_after_the_reopen_window_is_refused_with_the_rule_in_words() {
    let mut settings = Settings::default();
    settings.case_policy.reopen_window = Duration::days(2);
    let (app, clock) = spawn_app_at_t0(settings).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    ok(&app, &ann, &format!("/v1/cases/{id}/resolve"), json!({})).await;
    clock.advance(Duration::days(2) + Duration::seconds(1));
    let problem = command(
        &app,
        &ann,
        &format!("/v1/cases/{id}/comments"),
        json!({"body": "back again"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "reopen_window_passed");
    assert_eq!(
        problem["detail"],
        "the case was resolved more than 2 days ago; open a new case instead"
    );
    assert_eq!(app.event_count(Some(&id)).await, 2);
}

#[tokio::test]
async fn the_outbox_gets_the_opening_confirmation_support_replies_status_changes_and_escalations() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let mut body = acme_ticket();
    body["participants"] = json!(["carl@acme.test"]);
    let id = app.open_case(&ann, body).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let case = |tail: &str| format!("/v1/cases/{id}{tail}");
    ok(&app, &sam, &case("/assign"), json!({})).await;
    ok(
        &app,
        &sam,
        &case("/comments"),
        json!({"body": "Looking into it"}),
    )
    .await;
    ok(&app, &ann, &case("/escalate"), json!({"reason": "urgent"})).await;
    let last = ok(&app, &sam, &case("/resolve"), json!({})).await;
    read_ok(&app, &sam, &case(""), &last["position"]).await;

    let outbox: Vec<(String, String)> = notifications(&app)
        .await
        .into_iter()
        .map(|(kind, to, _, _)| (kind, to))
        .collect();
    let expected: Vec<(String, String)> = [
        ("case_opened", "ann@acme.test"),
        ("case_opened", "carl@acme.test"),
        ("support_reply", "ann@acme.test"),
        ("support_reply", "carl@acme.test"),
        ("escalation", "carl@acme.test"),
        ("escalation", "sam@support.test"),
        ("status_changed", "ann@acme.test"),
        ("status_changed", "carl@acme.test"),
    ]
    .iter()
    .map(|(k, t)| (k.to_string(), t.to_string()))
    .collect();
    assert_eq!(outbox, expected);
}

#[tokio::test]
async fn rebuilding_the_cases_projection_rederives_the_same_rows_and_no_second_email() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/request-info"),
        json!({"body": "?"}),
    )
    .await;
    let last = ok(
        &app,
        &ann,
        &format!("/v1/cases/{id}/comments"),
        json!({"body": "!"}),
    )
    .await;
    read_ok(&app, &ann, &format!("/v1/cases/{id}"), &last["position"]).await;

    let db = app.db().await;
    let snapshot = |db: tokio_postgres::Client| async move {
        let view: serde_json::Value = db
            .query_one("SELECT to_jsonb(c) FROM case_view c", &[])
            .await
            .expect("view")
            .get(0);
        let timeline: i64 = db
            .query_one("SELECT count(*) FROM case_timeline", &[])
            .await
            .expect("timeline")
            .get(0);
        let outbox: i64 = db
            .query_one("SELECT count(*) FROM notifications", &[])
            .await
            .expect("outbox")
            .get(0);
        (db, view, timeline, outbox)
    };
    let (db, view, timeline, outbox) = snapshot(db).await;
    assert!(outbox > 0);

    replay_cases_from_start(&db).await;
    read_ok(&app, &ann, &format!("/v1/cases/{id}"), &last["position"]).await;
    let (_, view_again, timeline_again, outbox_again) = snapshot(db).await;
    assert_eq!(view_again, view);
    assert_eq!(timeline_again, timeline);
    assert_eq!(outbox_again, outbox, "a rebuild sends no e-mail twice");
}

#[tokio::test]
async fn every_case_route_is_in_the_openapi_document() {
    let app = spawn_acme().await;
    let doc = expect_json(app.get("/openapi.json", "").await, StatusCode::OK).await;
    let paths = &doc["paths"];
    for (path, method) in [
        ("/v1/cases", "post"),
        ("/v1/cases", "get"),
        ("/v1/cases/{id}", "get"),
        ("/v1/cases/{id}/comments", "post"),
        ("/v1/cases/{id}/request-info", "post"),
        ("/v1/cases/{id}/assign", "post"),
        ("/v1/cases/{id}/investigate", "post"),
        ("/v1/cases/{id}/priority", "post"),
        ("/v1/cases/{id}/participants", "post"),
        ("/v1/cases/{id}/participants/{email}", "delete"),
        ("/v1/cases/{id}/attachments", "post"),
        ("/v1/cases/{id}/attachments/{attachment_id}", "get"),
        ("/v1/cases/{id}/escalate", "post"),
        ("/v1/cases/{id}/accept-escalation", "post"),
        ("/v1/cases/{id}/data-access", "post"),
        ("/v1/cases/{id}/resolve", "post"),
        ("/v1/cases/{id}/history", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for schema in [
        "OpenCaseRequest",
        "CaseDetail",
        "CaseList",
        "CaseReceipt",
        "AttachmentReceipt",
    ] {
        assert!(
            schemas[schema]["example"].is_object() || schemas[schema].is_object(),
            "{schema}"
        );
    }
    assert_eq!(
        schemas["CaseDetail"]["properties"]["status"]["enum"],
        json!([
            "open",
            "investigating",
            "waiting_for_customer",
            "resolved",
            "closed"
        ])
    );
}

/// `acme_case()` naming its entitlement by subscription id instead of by number.
fn by_subscription(subscription: uuid::Uuid) -> serde_json::Value {
    let mut body = acme_case();
    let fields = body.as_object_mut().expect("object");
    fields.remove("entitlement_number");
    fields.insert("subscription_id".into(), json!(subscription));
    body
}

#[tokio::test]
async fn a_resolution_note_is_a_public_reply_in_the_timeline_and_the_first_response() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let receipt = app.open_case(&ann, acme_case()).await;
    let id = receipt["id"].as_str().expect("id");
    let resolve = format!("/v1/cases/{id}/resolve");

    // Bad notes change nothing: unknown fields, an empty note.
    for body in [
        json!({"resolution": "x", "reason": "y"}),
        json!({"resolution": " "}),
    ] {
        let refused = app.post(&resolve, &sam, &body).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    assert_eq!(app.event_count(None).await, 1, "nothing appended");

    let resolved = expect_json(
        app.post(
            &resolve,
            &sam,
            &json!({"resolution": "Proxy setting fixed"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(resolved["status"], "resolved");
    let position = resolved["position"].as_i64().expect("position");
    let detail = expect_json(
        app.get(&format!("/v1/cases/{id}?min_position={position}"), &ann)
            .await,
        StatusCode::OK,
    )
    .await;
    let timeline = detail["timeline"].as_array().expect("timeline");
    let kinds: Vec<&str> = timeline.iter().filter_map(|e| e["kind"].as_str()).collect();
    let note = timeline
        .iter()
        .find(|e| e["kind"] == "comment")
        .expect("the note in the customer's timeline");
    assert_eq!(note["body"], "Proxy setting fixed");
    assert_eq!(note["actor"], "sam@support.test");
    assert_eq!(note["visibility"], "public");
    assert_eq!(
        kinds.last(),
        Some(&"resolved"),
        "the note comes before the resolution: {kinds:?}"
    );
    assert!(
        detail["sla"]["first_response"]["met_at"].is_string(),
        "support's note is its first response: {}",
        detail["sla"]
    );
}

#[tokio::test]
async fn a_case_has_a_request_type_that_lists_filter_on_and_escalated_cases_filter_too() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let mut billing = acme_case();
    billing["request_type"] = json!("billing");
    billing["summary"] = json!("Invoice shows the wrong seats");
    let billing = app.open_case(&ann, billing).await;
    let technical = app.open_case(&ann, acme_case()).await;
    let technical_id = technical["id"].as_str().expect("id");

    // A type the server does not know changes nothing.
    let mut unknown = acme_case();
    unknown["request_type"] = json!("sales");
    let refused = app.post("/v1/cases", &ann, &unknown).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused = app.get("/v1/cases?request_type=sales", &sam).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    // The technical case is escalated and accepted: one step up, L2 -> L1.
    app.post(
        &format!("/v1/cases/{technical_id}/escalate"),
        &ann,
        &json!({"reason": "Production is down"}),
    )
    .await;
    let accepted = expect_json(
        app.post(
            &format!("/v1/cases/{technical_id}/accept-escalation"),
            &sam,
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let at = accepted["position"].as_i64().expect("position");

    let ids = |page: serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|c| c["id"].as_str().map(str::to_string))
            .collect()
    };
    let list = |query: &str| format!("/v1/cases?min_position={at}&{query}");
    let billing_only = expect_json(
        app.get(&list("request_type=billing"), &sam).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(billing_only["items"][0]["request_type"], "billing");
    assert_eq!(ids(billing_only), [billing["id"].as_str().expect("id")]);
    let escalated = expect_json(app.get(&list("escalated=true"), &sam).await, StatusCode::OK).await;
    assert_eq!(escalated["items"][0]["priority"], 1, "{escalated}");
    assert_eq!(ids(escalated), [technical_id]);
    let not_escalated = expect_json(
        app.get(&list("escalated=false"), &sam).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(not_escalated), [billing["id"].as_str().expect("id")]);

    let detail = expect_json(
        app.get(&format!("/v1/cases/{technical_id}"), &ann).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["request_type"], "technical", "the default");
}

/// Empties the cases projection's tables and moves its checkpoint to the start, holding the
/// projection's claim (the runner's advisory lock, namespace 0x5d5c) so that the running
/// runner cannot interleave a batch: it then replays the whole log.
async fn replay_cases_from_start(db: &tokio_postgres::Client) {
    db.batch_execute(
        "BEGIN; \
         SELECT pg_advisory_xact_lock(23900, hashtext('cases')); \
         DELETE FROM case_view; DELETE FROM case_timeline; DELETE FROM case_attachments; \
         UPDATE projection_checkpoints SET last_tx = '0', last_position = 0 WHERE name = 'cases'; \
         COMMIT;",
    )
    .await
    .expect("reset the projection");
}

/// Internal notes are written as deltas when a batch holds nothing else for their case (see
/// `projections/src/cases/notes.rs`); a replay through the full fold (the opening in the same
/// batch) must leave the same row and timeline.
#[tokio::test]
async fn internal_notes_written_in_place_leave_what_the_full_fold_leaves() {
    let app = spawn_acme().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/v1/cases/{id}/comments");
    let note = |body: &str| json!({"body": body, "visibility": "internal"});
    // Each command read back before the next: every note is a batch of its own.
    for body in [
        note("cache node 3"),
        note("restarted it"),
        json!({"body": "Could you try again?"}),
        note("waiting on them"),
    ] {
        let receipt = ok(&app, &sam, &path, body).await;
        read_ok(&app, &sam, &format!("/v1/cases/{id}"), &receipt["position"]).await;
    }
    let last = ok(&app, &sam, &path, note("one more")).await;
    let live = read_ok(&app, &sam, &format!("/v1/cases/{id}"), &last["position"]).await;
    // Five comments and the first response that support's public one gave.
    assert_eq!(live["version"], 7);

    let db = app.db().await;
    let snapshot = |db: tokio_postgres::Client| async move {
        let row: serde_json::Value = db
            .query_one("SELECT to_jsonb(c) FROM case_view c", &[])
            .await
            .expect("row")
            .get(0);
        let timeline: serde_json::Value = db
            .query_one(
                "SELECT jsonb_agg(to_jsonb(t) ORDER BY sequence) FROM case_timeline t",
                &[],
            )
            .await
            .expect("timeline")
            .get(0);
        (db, row, timeline)
    };
    let (db, row, timeline) = snapshot(db).await;
    assert_eq!(row["internal_comments"], 4);
    assert_eq!(row["public_comments"], 1);
    assert_eq!(row["version"], 7);
    assert_eq!(timeline.as_array().map(Vec::len), Some(7));
    assert_eq!(timeline[6]["visibility"], "internal");
    assert_eq!(timeline[6]["body"], "one more");
    assert!(row["last_activity_at"].as_str() > row["last_public_activity_at"].as_str());

    // Replay from the start in one batch, the opening first: every event through the fold.
    replay_cases_from_start(&db).await;
    read_ok(&app, &sam, &format!("/v1/cases/{id}"), &last["position"]).await;
    let (_, row_again, timeline_again) = snapshot(db).await;
    assert_eq!(row_again, row);
    assert_eq!(timeline_again, timeline);
}
