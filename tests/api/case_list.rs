//! `GET /v1/cases`: filters, "my requests" / "requests I'm cc'd on", text, keyset pages.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::app::Settings;

use crate::case_fixtures::{acme_ticket, ok, read, read_ok, seed_entitlement, spawn_app_at_t0};
use crate::helpers::{expect_json, As};

fn keys(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["summary"].as_str().expect("summary").to_string())
        .collect()
}

#[tokio::test]
async fn filters_narrow_the_list_and_pages_follow_last_activity() {
    let (app, clock) = spawn_app_at_t0(Settings::default()).await;
    seed_entitlement(&app, "E-GLBX-0000-0001", "globex", "active", None).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let carl = app.token(As::customer("carl@acme.test", "acme")).await;
    let eve = app.token(As::customer("eve@globex.test", "globex")).await;
    let sam = app.token(As::agent()).await;

    let open = |summary: &str, impact: i64, participants: Value| {
        let mut body = acme_ticket();
        body["summary"] = json!(summary);
        body["impact"] = json!(impact);
        body["participants"] = participants;
        body
    };
    let a = app
        .open_case(
            &ann,
            open("Alpha: board is slow", 1, json!(["carl@acme.test"])),
        )
        .await;
    clock.advance(Duration::minutes(1));
    let b = app
        .open_case(&ann, open("Beta: login fails", 2, json!([])))
        .await;
    clock.advance(Duration::minutes(1));
    let c = app
        .open_case(&carl, open("Gamma: 100% CPU", 3, json!([])))
        .await;
    clock.advance(Duration::minutes(1));
    let mut globex = open("Delta: export broken", 4, json!([]));
    globex["entitlement_number"] = json!("E-GLBX-0000-0001");
    app.open_case(&eve, globex).await;
    clock.advance(Duration::minutes(1));
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{}/assign", a["id"].as_str().expect("id")),
        json!({}),
    )
    .await;
    // A comment moves Beta to the top.
    clock.advance(Duration::minutes(1));
    ok(
        &app,
        &sam,
        &format!("/v1/cases/{}/request-info", b["id"].as_str().expect("id")),
        json!({"body": "Which identity provider?"}),
    )
    .await;
    clock.advance(Duration::minutes(1));
    let last = ok(
        &app,
        &sam,
        &format!("/v1/cases/{}/investigate", c["id"].as_str().expect("id")),
        json!({}),
    )
    .await;
    let position = &last["position"];
    let list = |token: &str, query: &str| {
        let token = token.to_string();
        let query = query.to_string();
        let app = &app;
        async move { read_ok(app, &token, &format!("/v1/cases{query}"), position).await }
    };

    assert_eq!(
        keys(&list(&sam, "").await),
        [
            "Gamma: 100% CPU",
            "Beta: login fails",
            "Alpha: board is slow",
            "Delta: export broken"
        ]
    );
    assert_eq!(
        keys(&list(&ann, "").await),
        ["Beta: login fails", "Alpha: board is slow"]
    );
    assert_eq!(
        keys(&list(&carl, "?mine=participating").await),
        ["Alpha: board is slow"]
    );
    assert_eq!(
        keys(&list(&carl, "?mine=requested").await),
        ["Gamma: 100% CPU"]
    );
    assert_eq!(
        keys(&list(&carl, "").await),
        ["Gamma: 100% CPU", "Alpha: board is slow"]
    );
    assert_eq!(
        keys(&list(&sam, "?status=waiting_for_customer").await),
        ["Beta: login fails"]
    );
    assert_eq!(
        keys(&list(&sam, "?status=open,investigating&org=acme").await),
        ["Gamma: 100% CPU", "Alpha: board is slow"]
    );
    assert_eq!(
        keys(&list(&sam, "?priority=1").await),
        ["Alpha: board is slow"]
    );
    assert_eq!(
        keys(&list(&sam, "?assignee=sam@support.test").await),
        ["Alpha: board is slow"]
    );
    assert_eq!(
        keys(&list(&sam, "?assignee=none&org=globex").await),
        ["Delta: export broken"]
    );
    assert_eq!(
        keys(&list(&sam, "?requester=ANN@acme.test").await),
        ["Beta: login fails", "Alpha: board is slow"]
    );
    assert_eq!(
        keys(&list(&sam, "?participant=Carl@acme.test").await),
        ["Alpha: board is slow"]
    );
    assert_eq!(keys(&list(&sam, "?q=LOGIN").await), ["Beta: login fails"]);
    assert_eq!(keys(&list(&sam, "?q=100%25").await), ["Gamma: 100% CPU"]);
    assert_eq!(keys(&list(&sam, "?q=_").await), Vec::<String>::new());

    let waiting = list(&ann, "?status=waiting_for_customer").await;
    assert!(waiting["items"][0]["auto_resolve_due"].is_string());

    // Keyset pages of two.
    let first = list(&sam, "?limit=2").await;
    assert_eq!(keys(&first), ["Gamma: 100% CPU", "Beta: login fails"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = list(&sam, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(
        keys(&second),
        ["Alpha: board is slow", "Delta: export broken"]
    );
    assert!(second["next_cursor"].is_null(), "{second}");
}

#[tokio::test]
async fn bad_list_parameters_are_400_problems() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    let sam = app.token(As::agent()).await;
    for (query, code) in [
        ("?status=pending", "invalid_query"),
        ("?priority=7", "invalid_query"),
        ("?mine=everything", "invalid_query"),
        ("?limit=0", "invalid_query"),
        ("?limit=abc", "invalid_query"),
        // Outside the cursor alphabet: unreadable (a cursor of the right alphabet that this
        // server did not issue is 422 `invalid_cursor`, see `hardening`).
        ("?cursor=garbage!", "invalid_query"),
    ] {
        let problem = expect_json(
            app.get(&format!("/v1/cases{query}"), &sam).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(problem["code"], code, "{query}");
    }
}

#[tokio::test]
async fn a_partner_without_access_cases_lists_nothing() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    crate::case_fixtures::assign_org_to_partner(&app, "p1", "acme").await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let pia = app
        .token(As::partner("pia@p1.test", "p1", &["view_customers"]))
        .await;
    let pat = app
        .token(As::partner("pat@p1.test", "p1", &["access_cases"]))
        .await;
    let opened = app.open_case(&ann, acme_ticket()).await;
    let none = expect_json(
        read(&app, &pia, "/v1/cases", &opened["position"]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none["items"], json!([]));
    let some = read_ok(&app, &pat, "/v1/cases", &opened["position"]).await;
    assert_eq!(some["items"].as_array().map(Vec::len), Some(1));
}
