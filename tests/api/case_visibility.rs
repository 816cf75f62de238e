//! Who sees a case (SPEC section 1) and what the customer side never sees: internal comments,
//! in any view, list, history or e-mail.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::app::Settings;

use crate::case_fixtures::{
    acme_ticket, assign_org_to_partner, notifications, ok, read, read_ok, seed_entitlement,
    spawn_app_at_t0, t0, upload, ACME_ENTITLEMENT,
};
use crate::helpers::{expect_json, As, TestApp};

const SECRET: &str = "SECRET-CACHE-NODE-7731";

/// Everyone of the matrix, and whether they see a case that ann (acme) requested with carl as
/// participant. acme is assigned to partner `p1`, globex to `p2`.
fn matrix() -> Vec<(&'static str, As, bool)> {
    vec![
        ("the requester", As::customer("ann@acme.test", "acme"), true),
        (
            "a participant",
            As::customer("Carl@acme.test", "acme"),
            true,
        ),
        (
            "another user of the org",
            As::customer("bob@acme.test", "acme"),
            false,
        ),
        (
            "the org admin",
            As::org_admin("boss@acme.test", "acme"),
            true,
        ),
        (
            "an admin of another org",
            As::org_admin("eve@globex.test", "globex"),
            false,
        ),
        (
            "a partner with access_cases",
            As::partner("pat@p1.test", "p1", &["view_customers", "access_cases"]),
            true,
        ),
        (
            "a partner without access_cases",
            As::partner("pia@p1.test", "p1", &["view_customers"]),
            false,
        ),
        (
            "a partner of another domain",
            As::partner("quinn@p2.test", "p2", &["view_customers", "access_cases"]),
            false,
        ),
        ("an agent", As::agent(), true),
        ("an admin", As::admin(), true),
        ("an auditor", As::auditor(), true),
    ]
}

struct Fixture {
    app: TestApp,
    id: String,
    attachment: String,
    position: Value,
}

/// ann's case with carl as participant, a public and an internal support comment and an
/// attachment. The internal comment is written a minute after everything else.
async fn fixture() -> Fixture {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    assign_org_to_partner(&app, "p1", "acme").await;
    seed_entitlement(&app, "E-GLBX-0000-0001", "globex", "active", Some("p2")).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let mut body = acme_ticket();
    body["participants"] = json!(["carl@acme.test"]);
    let id = app.open_case(&ann, body).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/comments"),
        json!({"body": "PUBLIC-ANSWER: clear the cache"}),
    )
    .await;
    let uploaded = expect_json(
        upload(
            &app,
            &ann,
            &id,
            "console.log",
            b"TypeError at board.js:12",
            None,
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    clock.advance(Duration::minutes(1));
    let last = ok(
        &app,
        &sam,
        &format!("/v1/cases/{id}/comments"),
        json!({"body": format!("{SECRET} is flaky"), "visibility": "internal"}),
    )
    .await;
    Fixture {
        app,
        id,
        attachment: uploaded["attachment_id"]
            .as_str()
            .expect("attachment")
            .to_string(),
        position: last["position"].clone(),
    }
}

#[tokio::test]
async fn the_visibility_matrix_holds_for_every_read_and_command() {
    let Fixture {
        app,
        id,
        attachment,
        position,
    } = fixture().await;
    for (who, principal, sees) in matrix() {
        let auditor = principal.role == subdesk_aggregates::ActorRole::Auditor;
        let token = app.token(principal).await;
        let found = if sees {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };

        let detail = read(&app, &token, &format!("/v1/cases/{id}"), &position).await;
        assert_eq!(detail.status(), found, "{who}: detail");
        let history = app.get(&format!("/v1/cases/{id}/history"), &token).await;
        assert_eq!(history.status(), found, "{who}: history");
        let download = app
            .get(&format!("/v1/cases/{id}/attachments/{attachment}"), &token)
            .await;
        assert_eq!(download.status(), found, "{who}: attachment");
        let list = expect_json(
            read(&app, &token, "/v1/cases", &position).await,
            StatusCode::OK,
        )
        .await;
        let listed = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|c| c["id"] == json!(id));
        assert_eq!(listed, sees, "{who}: list");

        let comment = app
            .post(
                &format!("/v1/cases/{id}/comments"),
                &token,
                &json!({"body": "hello"}),
            )
            .await;
        let expected = match (sees, auditor) {
            (false, _) => StatusCode::NOT_FOUND,
            (true, true) => StatusCode::FORBIDDEN,
            (true, false) => StatusCode::CREATED,
        };
        assert_eq!(comment.status(), expected, "{who}: comment");
        if !sees {
            let problem = expect_json(comment, StatusCode::NOT_FOUND).await;
            assert_eq!(
                problem["code"], "not_found",
                "{who}: no hint that it exists"
            );
        }
    }
}

#[tokio::test]
async fn a_case_that_does_not_exist_and_one_not_visible_answer_alike() {
    let Fixture { app, id, .. } = fixture().await;
    let bob = app.token(As::customer("bob@acme.test", "acme")).await;
    let invisible = expect_json(
        app.get(&format!("/v1/cases/{id}"), &bob).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let missing = expect_json(
        app.get("/v1/cases/0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", &bob)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(invisible, missing);
}

#[tokio::test]
async fn internal_comments_never_reach_the_customer_side_in_any_read_path() {
    let Fixture {
        app, id, position, ..
    } = fixture().await;
    let customer_side = [
        As::customer("ann@acme.test", "acme"),
        As::customer("carl@acme.test", "acme"),
        As::org_admin("boss@acme.test", "acme"),
        As::partner("pat@p1.test", "p1", &["access_cases"]),
    ];
    let staff_history_len = {
        let sam = app.token(As::agent()).await;
        let history = expect_json(
            app.get(&format!("/v1/cases/{id}/history"), &sam).await,
            StatusCode::OK,
        )
        .await;
        assert!(history.to_string().contains(SECRET));
        history.as_array().expect("history").len()
    };
    for principal in customer_side {
        let who = principal.user;
        let token = app.token(principal).await;

        let detail = read_ok(&app, &token, &format!("/v1/cases/{id}"), &position).await;
        assert!(
            !detail.to_string().contains(SECRET),
            "{who}: detail {detail}"
        );
        assert!(detail.get("internal_comments").is_none(), "{who}");
        assert!(detail["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .all(|e| e["visibility"] == "public"));
        assert!(
            detail.to_string().contains("PUBLIC-ANSWER"),
            "{who} sees public replies"
        );
        // The internal comment came a minute after everything else; the customer side's
        // activity time does not move for it.
        let expected_activity = (t0()).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        assert_eq!(
            detail["last_activity_at"],
            json!(expected_activity),
            "{who}"
        );

        let list = read_ok(&app, &token, "/v1/cases", &position).await;
        assert!(!list.to_string().contains(SECRET), "{who}: list");
        assert_eq!(
            list["items"][0]["last_activity_at"],
            json!(expected_activity)
        );

        let history = expect_json(
            app.get(&format!("/v1/cases/{id}/history"), &token).await,
            StatusCode::OK,
        )
        .await;
        assert!(!history.to_string().contains(SECRET), "{who}: history");
        let events = history.as_array().expect("history");
        assert_eq!(
            events.len(),
            staff_history_len - 1,
            "{who}: one event fewer"
        );
        for event in events {
            let keys: Vec<&String> = event["metadata"]
                .as_object()
                .expect("metadata")
                .keys()
                .collect();
            assert!(
                keys.iter().all(|k| [
                    "actor_id",
                    "actor_role",
                    "request_id",
                    "correlation_id",
                    "causation_id"
                ]
                .contains(&k.as_str())),
                "{who}: customer-side metadata {keys:?}"
            );
        }
    }

    let sam = app.token(As::agent()).await;
    let as_staff = read_ok(&app, &sam, &format!("/v1/cases/{id}"), &position).await;
    assert!(as_staff.to_string().contains(SECRET));
    assert_eq!(as_staff["internal_comments"], 1);
    let audrey = app.token(As::auditor()).await;
    let as_auditor = read_ok(&app, &audrey, &format!("/v1/cases/{id}"), &position).await;
    assert!(as_auditor.to_string().contains(SECRET));

    let outbox = notifications(&app).await;
    assert!(outbox
        .iter()
        .any(|(kind, _, _, body)| kind == "support_reply" && body.contains("PUBLIC-ANSWER")));
    for (kind, to, subject, body) in &outbox {
        assert!(
            !subject.contains(SECRET) && !body.contains(SECRET),
            "{kind} to {to} leaks an internal comment"
        );
    }
}

#[tokio::test]
async fn an_internal_comment_does_not_reorder_the_customer_sides_list() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    let boss = app.token(As::org_admin("boss@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let first = app.open_case(&boss, acme_ticket()).await["id"].clone();
    clock.advance(Duration::minutes(1));
    let second = app.open_case(&boss, acme_ticket()).await["id"].clone();
    clock.advance(Duration::minutes(1));
    let last = ok(
        &app,
        &sam,
        &format!("/v1/cases/{}/comments", first.as_str().expect("id")),
        json!({"body": SECRET, "visibility": "internal"}),
    )
    .await;
    let order = |list: Value| -> Vec<Value> {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["id"].clone())
            .collect()
    };
    let staff = read_ok(&app, &sam, "/v1/cases", &last["position"]).await;
    assert_eq!(order(staff), [first.clone(), second.clone()]);
    let customer = read_ok(&app, &boss, "/v1/cases", &last["position"]).await;
    assert_eq!(order(customer), [second, first]);
}

#[tokio::test]
async fn a_participant_removed_from_a_case_no_longer_sees_it() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let carl = app.token(As::customer("carl@acme.test", "acme")).await;
    let mut body = acme_ticket();
    body["participants"] = json!(["carl@acme.test"]);
    let opened = app.open_case(&ann, body).await;
    let id = opened["id"].as_str().expect("id");
    read_ok(&app, &carl, &format!("/v1/cases/{id}"), &opened["position"]).await;
    let removed = expect_json(
        crate::case_fixtures::delete(
            &app,
            &format!("/v1/cases/{id}/participants/carl@acme.test"),
            &ann,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        read(
            &app,
            &carl,
            &format!("/v1/cases/{id}"),
            &removed["position"],
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let comment = app
        .post(
            &format!("/v1/cases/{id}/comments"),
            &carl,
            &json!({"body": "am I still here?"}),
        )
        .await;
    expect_json(comment, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_partner_opens_cases_only_for_its_assigned_orgs_and_only_with_access_cases() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    assign_org_to_partner(&app, "p1", "acme").await;
    let pat = app
        .token(As::partner("pat@p1.test", "p1", &["access_cases"]))
        .await;
    let pia = app
        .token(As::partner("pia@p1.test", "p1", &["view_customers"]))
        .await;
    let quinn = app
        .token(As::partner("quinn@p2.test", "p2", &["access_cases"]))
        .await;
    let before = app.event_count(None).await;
    // Without an org, a partner learns nothing about whose entitlement it named.
    for number in [crate::case_fixtures::ACME_ENTITLEMENT, "E-NONE-0000-0000"] {
        let mut body = acme_ticket();
        body["entitlement_number"] = json!(number);
        let problem = expect_json(
            app.post("/v1/cases", &quinn, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["code"], "required_field", "{number}");
    }
    let mut body = acme_ticket();
    body["org_id"] = json!("acme");
    for token in [&pia, &quinn] {
        expect_json(
            app.post("/v1/cases", token, &body).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let opened = app.open_case(&pat, body.clone()).await;
    let case = read_ok(
        &app,
        &pat,
        &format!("/v1/cases/{}", opened["id"].as_str().expect("id")),
        &opened["position"],
    )
    .await;
    assert_eq!(case["org_id"], "acme");
    assert_eq!(case["requester"], "pat@p1.test");
    assert_eq!(case["entitlement_number"], ACME_ENTITLEMENT);
    assert_eq!(app.event_count(None).await, before + 1);
}
