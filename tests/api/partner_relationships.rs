//! Partner relationships: a partner reaches a customer org only with the org's consent.
//!
//! The first test is the cross-tenant leak as it was found: a partner selling itself into an
//! org it had no business with. The others cover granting, scopes, ending (on the very next
//! request, on every process), the hand-over of the partner's subscriptions, who may do what
//! with relationships, the audit trail, and the upgrade step for earlier sales.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::app::{AppState, Settings};
use subdesk::command::CommandMeta;
use subdesk_aggregates::subscription::{
    entitlement, Channel, CreateSubscription, SubscriptionCommand,
};
use subdesk_aggregates::{Actor, ActorRole};
use uuid::Uuid;

use crate::helpers::{
    acme_case, expect_json, fresh_database, spawn_app, spawn_app_on, subdesk_cli, As, TestApp,
};

const BOTH: &[&str] = &["view_customers", "access_cases"];
const ADA: As = As::org_admin("ada@acme.test", "acme");
const ANN: As = As::customer("ann@acme.test", "acme");
const EVE: As = As::org_admin("eve@globex.test", "globex");
const PAT: As = As::partner("pat@good.test", "p-good", BOTH);
const MAL: As = As::partner("mal@evil.test", "p-evil", BOTH);

fn sale(org: &str, partner: &str, start_in_days: i64) -> Value {
    let start = Utc::now() + chrono::Duration::days(start_in_days);
    json!({
        "org_id": org, "product": "jira-software", "plan": "standard", "seats": 10,
        "term_start": start.to_rfc3339(),
        "term_end": (start + chrono::Duration::days(365)).to_rfc3339(),
        "channel": {"kind": "partner", "partner_id": partner},
    })
}

fn id_of(receipt: &Value) -> String {
    receipt["id"].as_str().expect("id").to_string()
}

async fn grant(
    app: &TestApp,
    token: &str,
    org: &str,
    partner: &str,
    scopes: &[&str],
) -> reqwest::Response {
    app.post(
        &format!("/v1/orgs/{org}/partners"),
        token,
        &json!({"partner_id": partner, "scopes": scopes}),
    )
    .await
}

async fn status(app: &TestApp, token: &str, path: &str) -> StatusCode {
    app.get(path, token).await.status()
}

/// Waits until `check` holds, for at most 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_partner_cannot_assign_itself_a_customer_by_selling_to_it() {
    let app = spawn_app().await;
    let ann = app.token(ANN).await;
    let mal = app.token(MAL).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let case = format!("/v1/cases/{}", id_of(&opened));
    let before = app.event_count(None).await;

    // The measured attack: an upcoming subscription for acme, sold through itself, nine
    // years out.
    let problem = expect_json(
        app.post("/v1/subscriptions", &mal, &sale("acme", "p-evil", 9 * 365))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(problem["code"], "not_found");
    assert_eq!(app.event_count(None).await, before, "nothing appended");

    // ... and it reaches nothing of acme, on the next request or later.
    assert_eq!(status(&app, &mal, &case).await, StatusCode::NOT_FOUND);
    let listed = expect_json(
        app.get(
            &format!("/v1/cases?min_position={}", opened["position"]),
            &mal,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["items"], json!([]));
    let comment = app
        .post(&format!("{case}/comments"), &mal, &json!({"body": "hi"}))
        .await;
    expect_json(comment, StatusCode::NOT_FOUND).await;
    assert_eq!(app.event_count(None).await, before);
}

#[tokio::test]
async fn a_granted_partner_reaches_the_org_and_an_ended_one_nothing_from_the_next_request() {
    let app = spawn_app().await;
    let (ada, ann, pat) = (
        app.token(ADA).await,
        app.token(ANN).await,
        app.token(PAT).await,
    );
    let opened = app.open_case(&ann, acme_case()).await;
    let case = format!(
        "/v1/cases/{}?min_position={}",
        id_of(&opened),
        opened["position"]
    );
    assert_eq!(status(&app, &pat, &case).await, StatusCode::NOT_FOUND);

    let granted = expect_json(
        grant(&app, &ada, "acme", "p-good", BOTH).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(granted["id"], "acme/p-good");
    assert_eq!(granted["status"], "active");
    assert_eq!(granted["scopes"], json!(["view_customers", "access_cases"]));
    assert_eq!(granted["version"], 1);
    assert!(granted["position"].as_i64().is_some_and(|p| p > 0));

    // In force on the very next request.
    assert_eq!(status(&app, &pat, &case).await, StatusCode::OK);
    let sold = app
        .create_subscription(&pat, sale("acme", "p-good", 0))
        .await;
    let subscription = format!("/v1/subscriptions/{}", id_of(&sold));
    let seen = expect_json(
        app.get(
            &format!("{subscription}?min_position={}", sold["position"]),
            &pat,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["partner_id"], "p-good");
    let listed = expect_json(
        app.get(
            &format!("/v1/cases?min_position={}", opened["position"]),
            &pat,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    // The org's admin ends it: the very next request reaches nothing of acme.
    let ended = expect_json(
        app.delete("/v1/orgs/acme/partners/p-good", &ada).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ended["status"], "ended");
    assert_eq!(ended["version"], 2);
    assert_eq!(status(&app, &pat, &case).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(&app, &pat, &subscription).await,
        StatusCode::NOT_FOUND
    );
    let listed = expect_json(app.get("/v1/cases", &pat).await, StatusCode::OK).await;
    assert_eq!(listed["items"], json!([]));
    let subscriptions = expect_json(app.get("/v1/subscriptions", &pat).await, StatusCode::OK).await;
    assert_eq!(subscriptions["items"], json!([]));
    let customers = expect_json(app.get("/v1/partner/customers", &pat).await, StatusCode::OK).await;
    assert_eq!(customers, json!([]));
    let seats = app
        .post(
            &format!("{subscription}/seats"),
            &pat,
            &json!({"seats": 20}),
        )
        .await;
    expect_json(seats, StatusCode::NOT_FOUND).await;
    expect_json(
        app.post("/v1/subscriptions", &pat, &sale("acme", "p-good", 0))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // What it sold passes to the org: an event on the subscription says so, and acme's
    // admin now manages it as a direct one.
    let history = format!("{subscription}/history");
    eventually("the subscription passes to acme", || async {
        let events = expect_json(app.get(&history, &ada).await, StatusCode::OK).await;
        events.as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["event_type"] == "SubscriptionPassedToOrg")
        })
    })
    .await;
    let events = expect_json(app.get(&history, &ada).await, StatusCode::OK).await;
    let passed = events
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["event_type"] == "SubscriptionPassedToOrg")
        })
        .expect("passed");
    assert_eq!(passed["payload"]["partner_id"], "p-good");
    assert_eq!(passed["metadata"]["actor_role"], "system");
    let more = expect_json(
        app.post(
            &format!("{subscription}/seats"),
            &ada,
            &json!({"seats": 12}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let detail = expect_json(
        app.get(
            &format!("{subscription}?min_position={}", more["position"]),
            &ada,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["seats"], 12);
    assert_eq!(
        detail["channel"], "partner",
        "it still says how it was sold"
    );
    assert_eq!(
        detail["partner_id"],
        Value::Null,
        "no partner manages it now"
    );
}

#[tokio::test]
async fn a_partner_reaches_only_what_both_its_token_and_the_relationship_allow() {
    let app = spawn_app().await;
    let (ada, ann, pat) = (
        app.token(ADA).await,
        app.token(ANN).await,
        app.token(PAT).await,
    );
    let cases_only = app
        .token(As::partner("cas@good.test", "p-good", &["access_cases"]))
        .await;
    let opened = app.open_case(&ann, acme_case()).await;
    let case = format!(
        "/v1/cases/{}?min_position={}",
        id_of(&opened),
        opened["position"]
    );
    expect_json(
        grant(&app, &ada, "acme", "p-good", &["access_cases"]).await,
        StatusCode::CREATED,
    )
    .await;
    // Cases yes; selling no: the org is visible to the partner, the action is not allowed.
    assert_eq!(status(&app, &pat, &case).await, StatusCode::OK);
    let refused = expect_json(
        app.post("/v1/subscriptions", &pat, &sale("acme", "p-good", 0))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(refused["detail"]
        .as_str()
        .is_some_and(|d| d.contains("view_customers")));

    // The relationship widened to both scopes: the same token sells now.
    let changed = expect_json(
        grant(&app, &ada, "acme", "p-good", BOTH).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["version"], 2);
    let again = expect_json(
        grant(&app, &ada, "acme", "p-good", BOTH).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["version"], 2, "the same scopes append nothing");
    let sold = app
        .create_subscription(&pat, sale("acme", "p-good", 0))
        .await;
    // A token with access_cases only never sees subscriptions, whatever the relationship.
    let subscription = format!(
        "/v1/subscriptions/{}?min_position={}",
        id_of(&sold),
        sold["position"]
    );
    assert_eq!(
        status(&app, &cases_only, &subscription).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status(&app, &cases_only, &case).await, StatusCode::OK);

    // Narrowed to view_customers: the case is gone for every token of the partner.
    expect_json(
        grant(&app, &ada, "acme", "p-good", &["view_customers"]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status(&app, &pat, &case).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(&app, &cases_only, &case).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status(&app, &pat, &subscription).await, StatusCode::OK);
}

#[tokio::test]
async fn who_grants_ends_and_reads_an_orgs_relationships() {
    let app = spawn_app().await;
    let ada = app.token(ADA).await;
    let ann = app.token(ANN).await;
    let eve = app.token(EVE).await;
    let pat = app.token(PAT).await;
    let mal = app.token(MAL).await;
    let sam = app.token(As::agent()).await;
    let audrey = app.token(As::auditor()).await;
    let root = app.token(As::admin()).await;

    // Granting: the org's admin or a staff admin; the org does not exist for outsiders.
    for (token, expected) in [
        (&ann, StatusCode::FORBIDDEN),
        (&eve, StatusCode::NOT_FOUND),
        (&mal, StatusCode::NOT_FOUND),
        (&sam, StatusCode::FORBIDDEN),
        (&audrey, StatusCode::FORBIDDEN),
    ] {
        expect_json(grant(&app, token, "acme", "p-good", BOTH).await, expected).await;
    }
    assert_eq!(app.event_count(None).await, 0);
    expect_json(
        grant(&app, &root, "acme", "p-good", BOTH).await,
        StatusCode::CREATED,
    )
    .await;
    // A partner with a relationship sees the org, and still may not grant.
    expect_json(
        grant(&app, &pat, "acme", "p-evil", BOTH).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    for (body, code) in [
        (
            json!({"partner_id": "P-Good", "scopes": BOTH}),
            "invalid_partner_id",
        ),
        (
            json!({"partner_id": "p-good", "scopes": []}),
            "invalid_scopes",
        ),
        (
            json!({"partner_id": "p-good", "scopes": ["everything"]}),
            "invalid_body",
        ),
    ] {
        let problem = expect_json(
            app.post("/v1/orgs/acme/partners", &ada, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["code"], code, "{body}");
    }

    // Reading: the org's admin, staff, auditors.
    for (token, expected) in [
        (&ada, StatusCode::OK),
        (&sam, StatusCode::OK),
        (&audrey, StatusCode::OK),
        (&root, StatusCode::OK),
        (&ann, StatusCode::FORBIDDEN),
        (&pat, StatusCode::FORBIDDEN),
        (&eve, StatusCode::NOT_FOUND),
        (&mal, StatusCode::NOT_FOUND),
    ] {
        for path in [
            "/v1/orgs/acme/partners",
            "/v1/orgs/acme/partners/p-good/history",
        ] {
            assert_eq!(status(&app, token, path).await, expected, "{path}");
        }
    }
    let listed = expect_json(
        app.get("/v1/orgs/acme/partners", &ada).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed[0]["partner_id"], "p-good");
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["granted_by"], "root@support.test");
    assert_eq!(
        status(&app, &ada, "/v1/orgs/acme/partners/p-other/history").await,
        StatusCode::NOT_FOUND
    );

    // Ending: not the org's plain users, not another partner; the partner itself may.
    for (token, expected) in [
        (&ann, StatusCode::FORBIDDEN),
        (&eve, StatusCode::NOT_FOUND),
        (&mal, StatusCode::NOT_FOUND),
        (&sam, StatusCode::FORBIDDEN),
        (&audrey, StatusCode::FORBIDDEN),
    ] {
        expect_json(
            app.delete("/v1/orgs/acme/partners/p-good", token).await,
            expected,
        )
        .await;
    }
    expect_json(
        app.delete("/v1/orgs/acme/partners/p-good", &pat).await,
        StatusCode::OK,
    )
    .await;
    // Gone: nothing left to end, for anyone.
    expect_json(
        app.delete("/v1/orgs/acme/partners/p-good", &ada).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        status(&app, &pat, "/v1/orgs/acme/partners").await,
        StatusCode::NOT_FOUND
    );

    // Granted again later, it is a new grant (201) in the same stream.
    let regranted = expect_json(
        grant(&app, &ada, "acme", "p-good", &["access_cases"]).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(regranted["version"], 3);
    let history = expect_json(
        app.get("/v1/orgs/acme/partners/p-good/history", &ada).await,
        StatusCode::OK,
    )
    .await;
    let types: Vec<&str> = history
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "PartnerRelationshipGranted",
            "PartnerRelationshipEnded",
            "PartnerRelationshipGranted"
        ]
    );
    assert_eq!(history[1]["payload"]["ended_by"], "partner");
    assert_eq!(history[0]["metadata"]["actor_id"], "root@support.test");
    assert!(
        history[0]["metadata"].get("idempotency_scope").is_none(),
        "the customer side gets actor and request ids only"
    );
}

#[tokio::test]
async fn an_admin_records_a_partner_sale_only_for_an_org_that_granted_the_partner() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let before = app.event_count(None).await;
    let problem = expect_json(
        app.post("/v1/subscriptions", &root, &sale("acme", "p-good", 0))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "no_partner_relationship");
    assert_eq!(app.event_count(None).await, before);
    app.grant_partner("acme", "p-good", BOTH).await;
    app.create_subscription(&root, sale("acme", "p-good", 0))
        .await;
}

#[tokio::test]
async fn a_grant_and_an_end_are_in_force_at_once_on_every_process() {
    let first = spawn_app().await;
    let second = spawn_app_on(
        first.target.clone(),
        Settings::default(),
        Arc::new(subdesk::clock::SystemClock),
    )
    .await;
    let ann = first.token(ANN).await;
    let ada = first.token(ADA).await;
    let pat = first.token(PAT).await;
    let opened = first.open_case(&ann, acme_case()).await;
    let case = format!(
        "/v1/cases/{}?min_position={}",
        id_of(&opened),
        opened["position"]
    );
    // Warm the second process's token cache before the grant: a cached principal must not
    // carry a stale reach.
    assert_eq!(status(&second, &pat, &case).await, StatusCode::NOT_FOUND);
    expect_json(
        grant(&first, &ada, "acme", "p-good", BOTH).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(status(&second, &pat, &case).await, StatusCode::OK);
    expect_json(
        first.delete("/v1/orgs/acme/partners/p-good", &ada).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status(&second, &pat, &case).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_granted_idempotent_request_replays_its_201() {
    let app = spawn_app().await;
    let ada = app.token(ADA).await;
    let body = json!({"partner_id": "p-good", "scopes": BOTH});
    let first = app
        .post_with_key("/v1/orgs/acme/partners", &ada, "grant-1", &body)
        .await;
    let first = expect_json(first, StatusCode::CREATED).await;
    let replay = app
        .post_with_key("/v1/orgs/acme/partners", &ada, "grant-1", &body)
        .await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(replay.json::<Value>().await.expect("body"), first);
    assert_eq!(app.event_count(None).await, 1);
}

#[tokio::test]
async fn relationships_are_in_the_audit_log_export_and_verification() {
    let app = spawn_app().await;
    let ada = app.token(ADA).await;
    expect_json(
        grant(&app, &ada, "acme", "p-good", BOTH).await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(
        app.delete("/v1/orgs/acme/partners/p-good", &ada).await,
        StatusCode::OK,
    )
    .await;
    let audrey = app.token(As::auditor()).await;
    // The audit log pages in the gap-free order, below the horizon of running transactions.
    eventually("both relationship events in the audit log", || async {
        let page = expect_json(
            app.get(
                "/v1/audit/events?aggregate_type=PartnerRelationship",
                &audrey,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        page["events"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    let verify = expect_json(app.get("/v1/audit/verify", &audrey).await, StatusCode::OK).await;
    assert_eq!(verify["ok"], true, "{verify}");
    let export = subdesk_cli(
        &app.target,
        &["export", "--aggregate-type", "PartnerRelationship"],
    )
    .await;
    assert!(export.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["aggregate_id"], "acme/p-good");
    assert_eq!(lines[1]["event_type"], "PartnerRelationshipEnded");
}

/// Creates a subscription straight through the command bus, as the version before
/// relationships let a partner do for any org.
async fn sell_before_relationships(
    state: &AppState,
    org: &str,
    partner: &str,
    start_in_days: i64,
) -> Uuid {
    let id = Uuid::now_v7();
    let start = Utc::now() + chrono::Duration::days(start_in_days) - chrono::Duration::hours(1);
    let command = SubscriptionCommand::Create(CreateSubscription {
        subscription_id: id,
        entitlement_number: entitlement::format_number(id.as_u128() as u64),
        org_id: org.into(),
        product: "jira-software".into(),
        plan: "standard".into(),
        seats: 5,
        term_start: start,
        term_end: start + chrono::Duration::days(365),
        auto_renew: true,
        channel: Channel::Partner {
            partner_id: partner.into(),
        },
        billing_account: org.into(),
        included_products: Vec::new(),
        from_collection: None,
        created_by: Actor::new(format!("seller@{partner}.test"), ActorRole::Partner),
    });
    let meta = CommandMeta::system("test:before-relationships");
    state
        .subscriptions
        .execute(&id.to_string(), command, &meta, None)
        .await
        .expect("create the subscription");
    id
}

#[tokio::test]
async fn the_upgrade_grants_partners_with_subscriptions_in_force_and_not_self_assigned_ones() {
    // A log written before relationships existed: p-good sold acme an active subscription,
    // p-evil assigned itself initech with an upcoming one.
    let target = fresh_database().await;
    let old = AppState::build(
        &target,
        &target,
        Settings::default(),
        Arc::new(subdesk::clock::SystemClock),
    )
    .expect("state");
    let good = sell_before_relationships(&old, "acme", "p-good", 0).await;
    let evil = sell_before_relationships(&old, "initech", "p-evil", 9 * 365).await;
    drop(old);

    let app = spawn_app_on(
        target,
        Settings::default(),
        Arc::new(subdesk::clock::SystemClock),
    )
    .await;
    let ada = app.token(ADA).await;
    let root = app.token(As::admin()).await;
    eventually(
        "the self-assigned subscription passes to initech",
        || async {
            let history = expect_json(
                app.get(&format!("/v1/subscriptions/{evil}/history"), &root)
                    .await,
                StatusCode::OK,
            )
            .await;
            history.as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["event_type"] == "SubscriptionPassedToOrg")
            })
        },
    )
    .await;
    let relationships = expect_json(
        app.get("/v1/orgs/acme/partners", &ada).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(relationships.as_array().map(Vec::len), Some(1));
    assert_eq!(relationships[0]["partner_id"], "p-good");
    assert_eq!(relationships[0]["granted_by"], "system");
    assert_eq!(
        relationships[0]["scopes"],
        json!(["view_customers", "access_cases"])
    );
    let initech = expect_json(
        app.get("/v1/orgs/initech/partners", &root).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        initech,
        json!([]),
        "an upcoming subscription grants nothing"
    );

    // p-good keeps working; p-evil reaches nothing.
    let pat = app.token(PAT).await;
    let mal = app.token(MAL).await;
    eventually("p-good still sees what it sold", || async {
        status(&app, &pat, &format!("/v1/subscriptions/{good}")).await == StatusCode::OK
    })
    .await;
    assert_eq!(
        status(&app, &mal, &format!("/v1/subscriptions/{evil}")).await,
        StatusCode::NOT_FOUND
    );
    let good_history = expect_json(
        app.get(&format!("/v1/subscriptions/{good}/history"), &root)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        !good_history
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["event_type"] == "SubscriptionPassedToOrg"),
        "a sale with a relationship stays with its partner"
    );
    let steps: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM data_steps WHERE name = 'partner_relationships_from_sales'",
            &[],
        )
        .await
        .expect("steps")
        .get(0);
    assert_eq!(steps, 1);
}
