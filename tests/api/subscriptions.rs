//! Subscriptions through HTTP: each route, who may do what on own and foreign subscriptions,
//! the partner read-only matrix, the app cascade in one commit, collections split exactly
//! once, and the read models (list, detail, entitlements, partner assignment, outbox).

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect_json, spawn_app, spawn_app_on, As, TestApp};

const P1: &[&str] = &["view_customers", "access_cases"];

const ADA: As = As::org_admin("ada@acme.test", "acme");
const ANN: As = As::customer("ann@acme.test", "acme");
const EVE: As = As::org_admin("eve@globex.test", "globex");
const PAT: As = As::partner("pat@cloudwise.test", "p1", P1);
const PIA: As = As::partner("pia@otherpartner.test", "p2", P1);

/// A server where acme, globex and initech have granted p1 a relationship with both scopes,
/// and acme and globex p2: the partner rules below then depend on the channel alone (the
/// relationship rules have tests of their own in `partner_relationships`).
async fn spawn_with_partners() -> TestApp {
    let app = spawn_app().await;
    for (org, partner) in [
        ("acme", "p1"),
        ("globex", "p1"),
        ("initech", "p1"),
        ("acme", "p2"),
        ("globex", "p2"),
    ] {
        app.grant_partner(org, partner, P1).await;
    }
    app
}

fn body(org: &str, channel: Value) -> Value {
    let now = Utc::now();
    json!({
        "org_id": org,
        "product": "jira-software",
        "plan": "standard",
        "seats": 10,
        "term_start": (now - Duration::days(1)).to_rfc3339(),
        "term_end": (now + Duration::days(364)).to_rfc3339(),
        "auto_renew": true,
        "channel": channel,
        "billing_account": "BA-1",
    })
}

fn direct(org: &str) -> Value {
    body(org, json!({"kind": "direct"}))
}

fn sold_by(partner: &str, org: &str) -> Value {
    body(org, json!({"kind": "partner", "partner_id": partner}))
}

fn collection_by(partner: &str, org: &str) -> Value {
    let mut body = sold_by(partner, org);
    body["product"] = json!("teamwork-collection");
    body["included_products"] = json!(["jira", "confluence", "loom"]);
    body
}

fn id_of(receipt: &Value) -> String {
    receipt["id"].as_str().expect("id").to_string()
}

fn position_of(receipt: &Value) -> i64 {
    receipt["position"].as_i64().expect("position")
}

async fn detail(app: &TestApp, token: &str, id: &str, position: i64) -> Value {
    let response = app
        .get(
            &format!("/v1/subscriptions/{id}?min_position={position}"),
            token,
        )
        .await;
    expect_json(response, StatusCode::OK).await
}

async fn post_to(app: &TestApp, token: &str, id: &str, route: &str, body: Value) -> StatusCode {
    app.post(&format!("/v1/subscriptions/{id}/{route}"), token, &body)
        .await
        .status()
}

/// Every command route with a body that is valid for an active subscription.
fn command_routes() -> Vec<(&'static str, Value)> {
    vec![
        ("seats", json!({"seats": 12})),
        ("storage", json!({"gb": 5})),
        ("plan", json!({"plan": "premium"})),
        ("auto-renew", json!({"auto_renew": false})),
        ("apps", json!({"app": "tempo", "plan": "standard"})),
        ("billing-account", json!({"billing_account": "BA-9"})),
        ("site", json!({"site": "https://acme.example"})),
        ("contacts", json!({"email": "bob@acme.test"})),
        ("withdraw-cancellation", json!({})),
        ("reactivate", json!({})),
        ("cancel", json!({"effective": "immediately"})),
    ]
}

#[tokio::test]
async fn a_created_subscription_is_active_with_an_entitlement_number_and_readable() {
    let app = spawn_with_partners().await;
    let ada = app.token(ADA).await;
    let receipt = app.create_subscription(&ada, direct("acme")).await;
    assert_eq!(receipt["status"], "active");
    assert_eq!(receipt["version"], 2, "created and activated");
    let number = receipt["entitlement_number"].as_str().expect("number");
    assert!(
        subdesk_aggregates::subscription::entitlement::is_valid(number),
        "{number}"
    );
    let id = id_of(&receipt);

    let detail = detail(&app, &ada, &id, position_of(&receipt)).await;
    assert_eq!(detail["entitlement_number"], number);
    assert_eq!(detail["org_id"], "acme");
    assert_eq!(detail["seats"], 10);
    assert_eq!(detail["status"], "active");
    assert_eq!(detail["channel"], "direct");
    assert_eq!(detail["billing_account"], "BA-1");
    assert_eq!(detail["bill_date"], detail["term_end"]);
    assert_eq!(detail["days_until_renewal"], 364);
    assert_eq!(detail["apps"], json!([]));

    let list = expect_json(
        app.get("/v1/subscriptions?tab=active", &ada).await,
        StatusCode::OK,
    )
    .await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["plan"], "standard");
    assert_eq!(items[0]["app_count"], 0);
    assert_eq!(items[0]["days_until_renewal"], 364);
    assert_eq!(list["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_tabs_sort_subscriptions_by_status_and_page_through_them() {
    let app = spawn_with_partners().await;
    let ada = app.token(ADA).await;
    let mut last = 0;
    for _ in 0..3 {
        last = position_of(&app.create_subscription(&ada, direct("acme")).await);
    }
    let mut later = direct("acme");
    let now = Utc::now();
    later["term_start"] = json!((now + Duration::days(10)).to_rfc3339());
    later["term_end"] = json!((now + Duration::days(375)).to_rfc3339());
    let upcoming = app.create_subscription(&ada, later).await;
    assert_eq!(upcoming["status"], "upcoming");
    let ended = app.create_subscription(&ada, direct("acme")).await;
    let cancelled = app
        .post(
            &format!("/v1/subscriptions/{}/cancel", id_of(&ended)),
            &ada,
            &json!({"effective": "immediately", "reason": "test"}),
        )
        .await;
    let cancelled = expect_json(cancelled, StatusCode::OK).await;
    assert!(position_of(&cancelled) > last);

    let page = |query: String| {
        let app = &app;
        let ada = ada.clone();
        async move {
            expect_json(
                app.get(&format!("/v1/subscriptions?{query}"), &ada).await,
                StatusCode::OK,
            )
            .await
        }
    };
    let position = position_of(&cancelled);
    let first = page(format!("tab=active&limit=2&min_position={position}")).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let next = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = page(format!("tab=active&limit=2&cursor={next}")).await;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["next_cursor"], Value::Null);
    let upcoming_tab = page("tab=upcoming".into()).await;
    assert_eq!(upcoming_tab["items"][0]["id"], upcoming["id"]);
    let inactive = page("tab=inactive".into()).await;
    assert_eq!(inactive["items"][0]["id"], ended["id"]);
    assert_eq!(inactive["items"][0]["status"], "cancelled");
    assert_eq!(inactive["items"][0]["days_until_renewal"], Value::Null);

    let bad = app.get("/v1/subscriptions?tab=archived", &ada).await;
    expect_json(bad, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn broken_creation_rules_answer_422_with_the_rule_and_append_nothing() {
    let app = spawn_with_partners().await;
    let before = app.event_count(None).await;
    let ada = app.token(ADA).await;
    let mut no_seats = direct("acme");
    no_seats["seats"] = json!(0);
    let problem = expect_json(
        app.post("/v1/subscriptions", &ada, &no_seats).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_seats");
    assert_eq!(problem["detail"], "a subscription has at least one seat");

    let mut backwards = direct("acme");
    backwards["term_end"] = backwards["term_start"].clone();
    let problem = expect_json(
        app.post("/v1/subscriptions", &ada, &backwards).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_term");
    assert_eq!(app.event_count(None).await, before);
}

#[tokio::test]
async fn who_may_create_which_subscription() {
    let app = spawn_with_partners().await;
    let cases = [
        (ANN, direct("acme"), StatusCode::FORBIDDEN),
        (ADA, direct("globex"), StatusCode::NOT_FOUND),
        (ADA, sold_by("p1", "acme"), StatusCode::FORBIDDEN),
        (PAT, direct("acme"), StatusCode::FORBIDDEN),
        (PAT, sold_by("p2", "acme"), StatusCode::FORBIDDEN),
        (
            As::partner("pat@cloudwise.test", "p1", &["access_cases"]),
            sold_by("p1", "acme"),
            StatusCode::FORBIDDEN,
        ),
        (As::agent(), direct("acme"), StatusCode::FORBIDDEN),
        (As::auditor(), direct("acme"), StatusCode::FORBIDDEN),
        (ADA, direct("acme"), StatusCode::CREATED),
        (PAT, sold_by("p1", "acme"), StatusCode::CREATED),
        (As::admin(), sold_by("p2", "globex"), StatusCode::CREATED),
    ];
    for (who, body, expected) in cases {
        let user = who.user;
        let token = app.token(who).await;
        let response = app.post("/v1/subscriptions", &token, &body).await;
        assert_eq!(response.status(), expected, "{user}: {body}");
    }

    // A partner that leaves out the channel sells through itself.
    let pat = app.token(PAT).await;
    let mut body = direct("initech");
    body.as_object_mut().expect("object").remove("channel");
    let receipt = app.create_subscription(&pat, body).await;
    let detail = detail(&app, &pat, &id_of(&receipt), position_of(&receipt)).await;
    assert_eq!(detail["channel"], "partner");
    assert_eq!(detail["partner_id"], "p1");
}

#[tokio::test]
async fn the_owner_changes_seats_storage_plan_and_auto_renew() {
    let app = spawn_with_partners().await;
    let ada = app.token(ADA).await;
    let id = id_of(&app.create_subscription(&ada, direct("acme")).await);
    for (route, body) in [
        ("seats", json!({"seats": 15})),
        ("seats", json!({"seats": 12})),
        ("storage", json!({"gb": 10})),
        ("plan", json!({"plan": "premium"})),
        ("auto-renew", json!({"auto_renew": false})),
    ] {
        assert_eq!(
            post_to(&app, &ada, &id, route, body).await,
            StatusCode::OK,
            "{route}"
        );
    }
    let last = app
        .post(
            &format!("/v1/subscriptions/{id}/storage"),
            &ada,
            &json!({"gb": 5}),
        )
        .await;
    let last = expect_json(last, StatusCode::OK).await;
    let detail = detail(&app, &ada, &id, position_of(&last)).await;
    assert_eq!(detail["seats"], 15, "an increase takes effect now");
    assert_eq!(
        detail["scheduled_seats"], 12,
        "a decrease waits for the renewal"
    );
    assert_eq!(detail["storage_gb"], 15);
    assert_eq!(detail["plan"], "premium");
    assert_eq!(detail["auto_renew"], false);

    let zero = app
        .post(
            &format!("/v1/subscriptions/{id}/storage"),
            &ada,
            &json!({"gb": 0}),
        )
        .await;
    assert_eq!(
        expect_json(zero, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid_storage"
    );

    let db = app.db().await;
    let confirmations: i64 = db
        .query_one(
            "SELECT count(*) FROM notifications \
              WHERE kind = 'purchase_confirmation' AND recipient = 'ada@acme.test' \
                AND aggregate_id = $1",
            &[&id],
        )
        .await
        .expect("notifications")
        .get(0);
    assert_eq!(
        confirmations, 4,
        "the purchase, the seats bought and both storage purchases"
    );
}

#[tokio::test]
async fn the_customer_of_a_partner_subscription_views_links_a_site_manages_contacts_and_cancels_only(
) {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let ada = app.token(ADA).await;
    let ann = app.token(ANN).await;
    let receipt = app.create_subscription(&pat, sold_by("p1", "acme")).await;
    let id = id_of(&receipt);

    for (route, body) in [
        ("seats", json!({"seats": 12})),
        ("plan", json!({"plan": "premium"})),
        ("storage", json!({"gb": 5})),
        ("apps", json!({"app": "tempo", "plan": "standard"})),
        ("auto-renew", json!({"auto_renew": false})),
        ("billing-account", json!({"billing_account": "BA-9"})),
        ("reactivate", json!({})),
    ] {
        let response = app
            .post(&format!("/v1/subscriptions/{id}/{route}"), &ada, &body)
            .await;
        let problem = expect_json(response, StatusCode::FORBIDDEN).await;
        assert_eq!(problem["code"], "forbidden", "{route}");
    }
    assert_eq!(
        app.event_count(Some(&id)).await,
        2,
        "nothing appended by refusals"
    );

    detail(&app, &ada, &id, position_of(&receipt)).await;
    assert_eq!(
        post_to(
            &app,
            &ann,
            &id,
            "site",
            json!({"site": "https://acme.example"})
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post_to(
            &app,
            &ann,
            &id,
            "contacts",
            json!({"email": "bob@acme.test"})
        )
        .await,
        StatusCode::CREATED
    );
    let removed = app
        .delete(
            &format!("/v1/subscriptions/{id}/contacts/bob@acme.test"),
            &ann,
        )
        .await;
    expect_json(removed, StatusCode::OK).await;
    assert_eq!(
        post_to(
            &app,
            &ann,
            &id,
            "cancel",
            json!({"effective": "immediately"})
        )
        .await,
        StatusCode::FORBIDDEN,
        "cancelling is for the org admin"
    );
    assert_eq!(
        post_to(
            &app,
            &ada,
            &id,
            "contacts",
            json!({"email": "carl@acme.test"})
        )
        .await,
        StatusCode::CREATED
    );
    let cancelled = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &ada,
            &json!({"reason": "budget"}),
        )
        .await;
    let cancelled = expect_json(cancelled, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "non_renewing");
    let detail = detail(&app, &pat, &id, position_of(&cancelled)).await;
    assert_eq!(detail["site"], "https://acme.example");
    assert_eq!(detail["contacts"], json!(["carl@acme.test"]));
    assert_eq!(detail["cancellation_reason"], "budget");
}

#[tokio::test]
async fn a_customer_of_another_org_gets_404_on_everything() {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let eve = app.token(EVE).await;
    let receipt = app.create_subscription(&pat, sold_by("p1", "acme")).await;
    let id = id_of(&receipt);
    let position = position_of(&receipt);

    let read = app
        .get(
            &format!("/v1/subscriptions/{id}?min_position={position}"),
            &eve,
        )
        .await;
    assert_eq!(
        expect_json(read, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );
    let history = app
        .get(&format!("/v1/subscriptions/{id}/history"), &eve)
        .await;
    expect_json(history, StatusCode::NOT_FOUND).await;
    for (route, body) in command_routes() {
        let response = app
            .post(&format!("/v1/subscriptions/{id}/{route}"), &eve, &body)
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{route}");
    }
    let remove = app
        .delete(
            &format!("/v1/subscriptions/{id}/contacts/bob@acme.test"),
            &eve,
        )
        .await;
    assert_eq!(remove.status(), StatusCode::NOT_FOUND);
    let unknown_app = uuid::Uuid::now_v7();
    let cancel_app = app
        .post(
            &format!("/v1/subscriptions/{id}/apps/{unknown_app}/cancel"),
            &eve,
            &json!({}),
        )
        .await;
    assert_eq!(cancel_app.status(), StatusCode::NOT_FOUND);
    let list = expect_json(app.get("/v1/subscriptions", &eve).await, StatusCode::OK).await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(app.event_count(Some(&id)).await, 2);
}

#[tokio::test]
async fn each_role_on_own_and_foreign_subscriptions() {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let pia = app.token(PIA).await;
    let ada = app.token(ADA).await;
    let ann = app.token(ANN).await;
    let sam = app.token(As::agent()).await;
    let audrey = app.token(As::auditor()).await;
    let root = app.token(As::admin()).await;
    let sold = app.create_subscription(&pat, sold_by("p1", "acme")).await;
    let own_direct = app.create_subscription(&ada, direct("acme")).await;
    let sold_id = id_of(&sold);
    let direct_id = id_of(&own_direct);
    let position = position_of(&own_direct).max(position_of(&sold));
    let read = |token: &str, id: &str| {
        let path = format!("/v1/subscriptions/{id}?min_position={position}");
        let token = token.to_string();
        let app = &app;
        async move { app.get(&path, &token).await.status() }
    };
    let seats = |token: &str, id: &str| {
        let token = token.to_string();
        let id = id.to_string();
        let app = &app;
        async move { post_to(app, &token, &id, "seats", json!({"seats": 11})).await }
    };

    // Partners: what they sold, nothing else.
    assert_eq!(read(&pat, &sold_id).await, StatusCode::OK);
    assert_eq!(seats(&pat, &sold_id).await, StatusCode::OK);
    assert_eq!(read(&pat, &direct_id).await, StatusCode::NOT_FOUND);
    assert_eq!(seats(&pat, &direct_id).await, StatusCode::NOT_FOUND);
    assert_eq!(read(&pia, &sold_id).await, StatusCode::NOT_FOUND);
    assert_eq!(seats(&pia, &sold_id).await, StatusCode::NOT_FOUND);
    let partner_list = expect_json(app.get("/v1/subscriptions", &pat).await, StatusCode::OK).await;
    assert_eq!(partner_list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(partner_list["items"][0]["partner_id"], "p1");

    // Customers: their org's; the org admin manages the direct one only.
    assert_eq!(read(&ann, &direct_id).await, StatusCode::OK);
    assert_eq!(seats(&ann, &direct_id).await, StatusCode::FORBIDDEN);
    assert_eq!(seats(&ada, &direct_id).await, StatusCode::OK);
    let customer_list = expect_json(app.get("/v1/subscriptions", &ann).await, StatusCode::OK).await;
    assert_eq!(customer_list["items"].as_array().map(Vec::len), Some(2));

    // Staff: agents and auditors read everything and change nothing; admins do anything.
    for token in [&sam, &audrey] {
        assert_eq!(read(token, &sold_id).await, StatusCode::OK);
        let history = app
            .get(&format!("/v1/subscriptions/{sold_id}/history"), token)
            .await;
        assert_eq!(history.status(), StatusCode::OK);
        assert_eq!(seats(token, &sold_id).await, StatusCode::FORBIDDEN);
        assert_eq!(
            post_to(
                &app,
                token,
                &direct_id,
                "contacts",
                json!({"email": "x@y.test"})
            )
            .await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(read(&root, &sold_id).await, StatusCode::OK);
    assert_eq!(
        post_to(&app, &root, &sold_id, "seats", json!({"seats": 40})).await,
        StatusCode::OK
    );
    let everyone = expect_json(app.get("/v1/subscriptions", &sam).await, StatusCode::OK).await;
    assert_eq!(everyone["items"].as_array().map(Vec::len), Some(2));
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        read(&root, &unknown.to_string()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        seats(&root, &unknown.to_string()).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn cancelling_a_subscription_with_two_apps_cancels_both_in_the_same_commit() {
    let app = spawn_with_partners().await;
    let ada = app.token(ADA).await;
    let id = id_of(&app.create_subscription(&ada, direct("acme")).await);
    let mut app_numbers = Vec::new();
    for name in ["tempo", "drawio"] {
        let response = app
            .post(
                &format!("/v1/subscriptions/{id}/apps"),
                &ada,
                &json!({"app": name, "plan": "standard"}),
            )
            .await;
        let receipt = expect_json(response, StatusCode::CREATED).await;
        assert_eq!(receipt["status"], "active");
        assert!(receipt["app_id"].is_string());
        app_numbers.push(
            receipt["entitlement_number"]
                .as_str()
                .expect("number")
                .to_string(),
        );
    }
    assert_ne!(app_numbers[0], app_numbers[1]);

    let response = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &ada,
            &json!({"effective": "immediately", "reason": "switching tools"}),
        )
        .await;
    let receipt = expect_json(response, StatusCode::OK).await;
    assert_eq!(receipt["status"], "cancelled");
    assert_eq!(receipt["version"], 7);

    let history = expect_json(
        app.get(&format!("/v1/subscriptions/{id}/history"), &ada)
            .await,
        StatusCode::OK,
    )
    .await;
    let entries = history.as_array().expect("history");
    let tail: Vec<(&str, i64)> = entries[4..]
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap_or_default(),
                e["sequence"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            ("SubscriptionCancelled", 5),
            ("AppSubscriptionCancelled", 6),
            ("AppSubscriptionCancelled", 7)
        ]
    );
    for entry in &entries[4..] {
        assert_eq!(entry["metadata"]["actor_id"], "ada@acme.test");
        assert_eq!(entry["metadata"]["actor_role"], "customer");
        assert_eq!(
            entry["metadata"]["request_id"],
            entries[4]["metadata"]["request_id"]
        );
    }
    assert_eq!(entries[5]["payload"]["cause"], "subscription_cancelled");

    let db = app.db().await;
    let commits: i64 = db
        .query_one(
            "SELECT count(DISTINCT tx_id::text) FROM events \
              WHERE aggregate_id = $1 AND sequence BETWEEN 5 AND 7",
            &[&id],
        )
        .await
        .expect("transactions")
        .get(0);
    assert_eq!(commits, 1, "one commit for the cancellation and its apps");

    let detail = detail(&app, &ada, &id, position_of(&receipt)).await;
    assert_eq!(detail["status"], "cancelled");
    let apps = detail["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 2);
    assert!(apps.iter().all(|a| a["status"] == "cancelled"));
    let statuses: Vec<String> = db
        .query(
            "SELECT status FROM entitlements WHERE subscription_id = $1::text::uuid",
            &[&id],
        )
        .await
        .expect("entitlements")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["cancelled", "cancelled", "cancelled"]);
    let mailed: i64 = db
        .query_one(
            "SELECT count(*) FROM notifications \
              WHERE kind = 'subscription_cancelled' AND recipient = 'ada@acme.test'",
            &[],
        )
        .await
        .expect("notifications")
        .get(0);
    assert_eq!(mailed, 1);
}

#[tokio::test]
async fn a_cancellation_at_term_end_can_be_withdrawn_and_only_admins_reactivate() {
    let app = spawn_with_partners().await;
    let ada = app.token(ADA).await;
    let root = app.token(As::admin()).await;
    let id = id_of(&app.create_subscription(&ada, direct("acme")).await);

    let scheduled = app
        .post(&format!("/v1/subscriptions/{id}/cancel"), &ada, &json!({}))
        .await;
    assert_eq!(
        expect_json(scheduled, StatusCode::OK).await["status"],
        "non_renewing"
    );
    let again = app
        .post(&format!("/v1/subscriptions/{id}/cancel"), &ada, &json!({}))
        .await;
    assert_eq!(
        expect_json(again, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "cancellation_already_scheduled"
    );
    let withdrawn = app
        .post(
            &format!("/v1/subscriptions/{id}/withdraw-cancellation"),
            &ada,
            &json!({}),
        )
        .await;
    assert_eq!(
        expect_json(withdrawn, StatusCode::OK).await["status"],
        "active"
    );

    let not_ended = app
        .post(
            &format!("/v1/subscriptions/{id}/reactivate"),
            &root,
            &json!({}),
        )
        .await;
    assert_eq!(
        expect_json(not_ended, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "subscription_not_ended"
    );
    assert_eq!(
        post_to(
            &app,
            &ada,
            &id,
            "cancel",
            json!({"effective": "immediately"})
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post_to(&app, &ada, &id, "reactivate", json!({})).await,
        StatusCode::FORBIDDEN
    );
    let reactivated = app
        .post(
            &format!("/v1/subscriptions/{id}/reactivate"),
            &root,
            &json!({}),
        )
        .await;
    assert_eq!(
        expect_json(reactivated, StatusCode::OK).await["status"],
        "active"
    );
}

#[tokio::test]
async fn apps_are_added_and_cancelled_one_by_one() {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let id = id_of(&app.create_subscription(&pat, sold_by("p1", "acme")).await);
    let added = app
        .post(
            &format!("/v1/subscriptions/{id}/apps"),
            &pat,
            &json!({"app": "tempo", "plan": "standard"}),
        )
        .await;
    let added = expect_json(added, StatusCode::CREATED).await;
    let app_id = added["app_id"].as_str().expect("app id");
    let cancel = |token: String| {
        let path = format!("/v1/subscriptions/{id}/apps/{app_id}/cancel");
        let app = &app;
        async move { app.post(&path, &token, &json!({})).await }
    };
    let cancelled = expect_json(cancel(pat.clone()).await, StatusCode::OK).await;
    let again = expect_json(cancel(pat.clone()).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(again["code"], "app_already_cancelled");
    let detail = detail(&app, &pat, &id, position_of(&cancelled)).await;
    assert_eq!(detail["apps"][0]["status"], "cancelled");
    assert_eq!(detail["apps"][0]["cause"], "requested");
    let list = expect_json(app.get("/v1/subscriptions", &pat).await, StatusCode::OK).await;
    assert_eq!(list["items"][0]["app_count"], 0);
}

#[tokio::test]
async fn moving_the_billing_account_is_for_the_partner_and_tells_the_contacts() {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let ann = app.token(ANN).await;
    let id = id_of(&app.create_subscription(&pat, sold_by("p1", "acme")).await);
    assert_eq!(
        post_to(
            &app,
            &ann,
            &id,
            "contacts",
            json!({"email": "Bob@Acme.test"})
        )
        .await,
        StatusCode::CREATED
    );
    let moved = app
        .post(
            &format!("/v1/subscriptions/{id}/billing-account"),
            &pat,
            &json!({"billing_account": "BA-2"}),
        )
        .await;
    let moved = expect_json(moved, StatusCode::OK).await;
    let detail = detail(&app, &ann, &id, position_of(&moved)).await;
    assert_eq!(detail["billing_account"], "BA-2");

    let db = app.db().await;
    let mails: Vec<(String, String)> = db
        .query(
            "SELECT kind, recipient FROM notifications WHERE aggregate_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .expect("notifications")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        ("purchase_confirmation", "pat@cloudwise.test"),
        ("subscription_welcome", "bob@acme.test"),
        ("billing_account_moved", "bob@acme.test"),
        ("billing_account_moved", "pat@cloudwise.test"),
    ]
    .iter()
    .map(|(k, r)| (k.to_string(), r.to_string()))
    .collect();
    assert_eq!(mails, expected);

    let history = expect_json(
        app.get(&format!("/v1/subscriptions/{id}/history"), &ann)
            .await,
        StatusCode::OK,
    )
    .await;
    let last = history.as_array().and_then(|h| h.last()).expect("an event");
    assert_eq!(last["event_type"], "BillingAccountChanged");
    assert_eq!(last["payload"]["from"], "BA-1");
    assert_eq!(last["payload"]["to"], "BA-2");
}

#[tokio::test]
async fn entitlements_and_partner_assignments_follow_the_subscriptions() {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let ada = app.token(ADA).await;
    let acme_first = app.create_subscription(&pat, sold_by("p1", "acme")).await;
    app.create_subscription(&pat, sold_by("p1", "acme")).await;
    let globex = app.create_subscription(&pat, sold_by("p1", "globex")).await;
    let own = app.create_subscription(&ada, direct("acme")).await;
    let added = app
        .post(
            &format!("/v1/subscriptions/{}/apps", id_of(&own)),
            &ada,
            &json!({"app": "tempo", "plan": "standard"}),
        )
        .await;
    let added = expect_json(added, StatusCode::CREATED).await;
    app.wait_for_projection("subscriptions", position_of(&added))
        .await;

    let db = app.db().await;
    let assigned: Vec<(String, i32)> = db
        .query(
            "SELECT org_id, subscriptions FROM partner_customers WHERE partner_id = 'p1' \
              ORDER BY org_id",
            &[],
        )
        .await
        .expect("partner customers")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        assigned,
        [("acme".to_string(), 2), ("globex".to_string(), 1)]
    );

    // The count follows the subscriptions in force (it no longer grants any access: only a
    // relationship does).
    let mut last = Value::Null;
    for sold in [&acme_first, &globex] {
        let cancelled = app
            .post(
                &format!("/v1/subscriptions/{}/cancel", id_of(sold)),
                &pat,
                &json!({"effective": "immediately"}),
            )
            .await;
        last = expect_json(cancelled, StatusCode::OK).await;
    }
    app.wait_for_projection("subscriptions", position_of(&last))
        .await;
    let counts: Vec<(String, i32)> = db
        .query(
            "SELECT org_id, subscriptions FROM partner_customers WHERE partner_id = 'p1' \
              ORDER BY org_id",
            &[],
        )
        .await
        .expect("partner customers")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        counts,
        [("acme".to_string(), 1), ("globex".to_string(), 0)],
        "globex holds nothing of p1's any more"
    );

    let number = own["entitlement_number"].as_str().expect("number");
    let entitlement = subdesk::entitlements::by_number(&db, number)
        .await
        .expect("lookup")
        .expect("the subscription's entitlement");
    assert_eq!(entitlement.org_id, "acme");
    assert_eq!(entitlement.status, "active");
    assert!(entitlement.supports_cases());
    assert_eq!(entitlement.partner_id, None);
    let app_number = added["entitlement_number"].as_str().expect("app number");
    let app_entitlement = subdesk::entitlements::by_number(&db, app_number)
        .await
        .expect("lookup")
        .expect("the app's entitlement");
    assert_eq!(app_entitlement.product, "tempo");
    assert_eq!(
        app_entitlement.app_id.map(|a| a.to_string()).as_deref(),
        added["app_id"].as_str()
    );
    let total: i64 = db
        .query_one(
            "SELECT count(*) FROM entitlements WHERE number <> $1",
            &[&crate::helpers::ACME_ENTITLEMENT],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(total, 5, "four subscriptions and one app");
}

#[tokio::test]
async fn a_collection_is_cancelled_only_through_its_partner() {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let ada = app.token(ADA).await;
    let id = id_of(
        &app.create_subscription(&pat, collection_by("p1", "acme"))
            .await,
    );
    assert_eq!(
        post_to(
            &app,
            &ada,
            &id,
            "cancel",
            json!({"effective": "immediately"})
        )
        .await,
        StatusCode::FORBIDDEN
    );
    let outside = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &pat,
            &json!({"effective": "immediately", "keep_products": ["bitbucket"]}),
        )
        .await;
    assert_eq!(
        expect_json(outside, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "product_not_included"
    );
    assert_eq!(app.event_count(Some(&id)).await, 2);
}

/// Standalone subscriptions split off collection `id`, by product, as the event log has them.
async fn split_off(app: &TestApp, collection: &str) -> Vec<(String, String)> {
    let db = app.db().await;
    db.query(
        "SELECT payload->>'product', aggregate_id FROM events \
          WHERE event_type = 'SubscriptionCreated' AND payload->>'from_collection' = $1 \
          ORDER BY 1",
        &[&collection],
    )
    .await
    .expect("split-off subscriptions")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn a_collection_cancelled_keeping_products_splits_them_off_exactly_once_across_restarts() {
    let app = spawn_with_partners().await;
    let pat = app.token(PAT).await;
    let collection = app
        .create_subscription(&pat, collection_by("p1", "acme"))
        .await;
    let id = id_of(&collection);
    let cancelled = app
        .post(
            &format!("/v1/subscriptions/{id}/cancel"),
            &pat,
            &json!({"effective": "immediately", "keep_products": ["jira", "loom"]}),
        )
        .await;
    let cancelled = expect_json(cancelled, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "cancelled");
    let position = position_of(&cancelled);
    app.wait_for_projection("collection_kept_products", position)
        .await;

    let split = split_off(&app, &id).await;
    let products: Vec<&str> = split.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(products, ["jira", "loom"]);

    // What the process manager appended is a system command caused by the collection event.
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT metadata, payload FROM events WHERE aggregate_id = $1 AND sequence = 1",
            &[&split[0].1],
        )
        .await
        .expect("created event");
    let metadata: Value = row.get(0);
    let payload: Value = row.get(1);
    assert_eq!(metadata["actor_role"], "system");
    let cause: i64 = db
        .query_one(
            "SELECT position FROM events WHERE aggregate_id = $1 AND event_type = 'CollectionCancelled'",
            &[&id],
        )
        .await
        .expect("collection event")
        .get(0);
    assert_eq!(metadata["causation_id"], format!("event:{cause}"));
    assert_eq!(payload["org_id"], "acme");
    assert_eq!(
        payload["channel"],
        json!({"kind": "partner", "partner_id": "p1"})
    );

    // Restart mid-way: the checkpoint is lost (as after a crash between the commands and the
    // checkpoint's commit) and a second server races the first over the same log.
    db.execute(
        "UPDATE projection_checkpoints SET last_tx = '0', last_position = 0 WHERE name = $1",
        &[&"collection_kept_products"],
    )
    .await
    .expect("reset checkpoint");
    let second = spawn_app_on(
        app.target.clone(),
        subdesk::app::Settings::default(),
        std::sync::Arc::new(subdesk::clock::SystemClock),
    )
    .await;
    second
        .wait_for_projection("collection_kept_products", position)
        .await;
    app.wait_for_projection("collection_kept_products", position)
        .await;

    assert_eq!(split_off(&app, &id).await, split, "nothing split off twice");
    for (_, stream) in &split {
        assert_eq!(
            app.event_count(Some(stream)).await,
            2,
            "created and activated, once"
        );
    }
    let last = app
        .post(
            &format!("/v1/subscriptions/{}/site", split[1].1),
            &pat,
            &json!({"site": "https://acme.example"}),
        )
        .await;
    let last = expect_json(last, StatusCode::OK).await;
    let standalone = detail(&app, &pat, &split[1].1, position_of(&last)).await;
    assert_eq!(standalone["product"], "loom");
    assert_eq!(standalone["status"], "active");
    assert_eq!(standalone["from_collection"], id.as_str());
    let collection_detail = detail(&app, &pat, &id, position).await;
    assert_eq!(collection_detail["kept_products"], json!(["jira", "loom"]));
}

#[tokio::test]
async fn a_repeated_idempotency_key_changes_seats_once() {
    let app = spawn_with_partners().await;
    let ada = app.token(ADA).await;
    let id = id_of(&app.create_subscription(&ada, direct("acme")).await);
    let path = format!("/v1/subscriptions/{id}/seats");
    let first = app
        .post_with_key(&path, &ada, "more-seats-1", &json!({"seats": 20}))
        .await;
    let first = expect_json(first, StatusCode::OK).await;
    let again = app
        .post_with_key(&path, &ada, "more-seats-1", &json!({"seats": 20}))
        .await;
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(expect_json(again, StatusCode::OK).await, first);
    assert_eq!(app.event_count(Some(&id)).await, 3);
}

#[tokio::test]
async fn contacts_are_validated_and_removed() {
    let app = spawn_with_partners().await;
    let ann = app.token(ANN).await;
    let ada = app.token(ADA).await;
    let id = id_of(&app.create_subscription(&ada, direct("acme")).await);
    let bad = app
        .post(
            &format!("/v1/subscriptions/{id}/contacts"),
            &ann,
            &json!({"email": "not an address"}),
        )
        .await;
    assert_eq!(
        expect_json(bad, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid_email"
    );
    let unknown = app
        .delete(
            &format!("/v1/subscriptions/{id}/contacts/nobody@acme.test"),
            &ann,
        )
        .await;
    assert_eq!(
        expect_json(unknown, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "contact_not_found"
    );
}

#[tokio::test]
async fn every_subscription_route_is_in_the_openapi_document() {
    let app = spawn_with_partners().await;
    let response = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("GET");
    let document = expect_json(response, StatusCode::OK).await;
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/v1/subscriptions",
        "/v1/subscriptions/{id}",
        "/v1/subscriptions/{id}/history",
        "/v1/subscriptions/{id}/seats",
        "/v1/subscriptions/{id}/storage",
        "/v1/subscriptions/{id}/plan",
        "/v1/subscriptions/{id}/auto-renew",
        "/v1/subscriptions/{id}/cancel",
        "/v1/subscriptions/{id}/withdraw-cancellation",
        "/v1/subscriptions/{id}/reactivate",
        "/v1/subscriptions/{id}/site",
        "/v1/subscriptions/{id}/contacts",
        "/v1/subscriptions/{id}/contacts/{email}",
        "/v1/subscriptions/{id}/apps",
        "/v1/subscriptions/{id}/apps/{app_id}/cancel",
        "/v1/subscriptions/{id}/billing-account",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(paths["/v1/subscriptions"]["post"].is_object());
    assert!(paths["/v1/subscriptions"]["get"].is_object());
    assert_eq!(
        document["components"]["schemas"]["CreateSubscriptionRequest"]["properties"]["channel"]
            ["oneOf"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "direct, partner, or null (the caller's own channel)"
    );
}
