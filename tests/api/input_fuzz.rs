//! No input gives a 5xx: every parameter of every operation in `/openapi.json`, filled with
//! values a careless or hostile caller sends (numbers past every integer type, dates no
//! database stores, undecodable escapes, very long text), asked by staff and by a customer.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{acme_case, spawn_app, As, TestApp};

/// Query values that break parsers, ranges and databases.
fn hostile_values() -> Vec<String> {
    let mut values: Vec<String> = [
        "",
        "-1",
        "0",
        "99999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "1e309",
        "NaN",
        "0.5",
        "true",
        "99999-12-31",
        "0000-01-01",
        "-4713-11-24",
        "2026-02-30",
        "9999-12-31T23:59:59Z",
        "+275760-09-13T00:00:00Z",
        "-000001-01-01T00:00:00Z",
        "%FF%FE",
        "%C0%80",
        "%27%3B--",
        "%5C",
        "%E6%97%A5%E6%9C%AC",
        "%2C%2C%2C",
        "a%20b",
        "%00",
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    values.push("x".repeat(5000));
    values
}

/// Path values that are not what the template expects.
fn hostile_path_values() -> Vec<String> {
    vec![
        "not-a-uuid".into(),
        "00000000-0000-0000-0000-000000000000".into(),
        "%FF".into(),
        "x".repeat(3000),
        "-".into(),
    ]
}

struct World {
    ids: Vec<(&'static str, String)>,
}

async fn world(app: &TestApp) -> World {
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let ada = app.token(As::org_admin("ada@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let case = opened["id"].as_str().expect("case").to_string();
    let term_end = (chrono::Utc::now() + chrono::Duration::days(300)).to_rfc3339();
    let sold = app
        .create_subscription(
            &ada,
            json!({"org_id": "acme", "product": "jira-software", "plan": "standard",
                   "seats": 5, "term_end": term_end, "channel": {"kind": "direct"}}),
        )
        .await;
    let subscription = sold["id"].as_str().expect("subscription").to_string();
    app.grant_partner("acme", "p-good", &["view_customers", "access_cases"])
        .await;
    World {
        ids: vec![
            ("id", case),
            ("subscription", subscription),
            ("org_id", "acme".into()),
            ("partner_id", "p-good".into()),
            ("email", "ann@acme.test".into()),
            ("attachment_id", uuid::Uuid::now_v7().to_string()),
            ("app_id", uuid::Uuid::now_v7().to_string()),
        ],
    }
}

/// The path of `template` with every parameter filled from `world` (a subscription route's
/// `{id}` is the subscription).
fn fill(template: &str, world: &World) -> String {
    let mut path = template.to_string();
    for (name, value) in &world.ids {
        let value = if *name == "id" && template.starts_with("/v1/subscriptions/") {
            world
                .ids
                .iter()
                .find(|(n, _)| *n == "subscription")
                .map_or(value, |(_, v)| v)
        } else {
            value
        };
        path = path.replace(&format!("{{{name}}}"), value);
    }
    path
}

#[tokio::test]
async fn no_parameter_value_of_any_operation_gives_a_5xx() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let tokens = [
        app.token(As::admin()).await,
        app.token(As::customer("ann@acme.test", "acme")).await,
    ];
    let document = serde_json::to_value(subdesk::http::openapi()).expect("document");
    let mut failures = BTreeSet::new();
    let mut requests = 0;
    let mut refused = 0;
    for (template, operations) in document["paths"].as_object().cloned().unwrap_or_default() {
        for (method, operation) in operations.as_object().cloned().unwrap_or_default() {
            let parameters: Vec<Value> = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let path = fill(&template, &world);
            let mut urls = Vec::new();
            for parameter in &parameters {
                let name = parameter["name"].as_str().unwrap_or_default();
                match parameter["in"].as_str() {
                    Some("query") => {
                        for value in hostile_values() {
                            urls.push(format!("{path}?{name}={value}"));
                        }
                    }
                    Some("path") => {
                        for value in hostile_path_values() {
                            let mut other = world.ids.clone();
                            for (n, v) in other.iter_mut() {
                                if *n == name || (name == "id" && *n == "subscription") {
                                    *v = value.clone();
                                }
                            }
                            urls.push(fill(&template, &World { ids: other }));
                        }
                    }
                    _ => {}
                }
            }
            if urls.is_empty() {
                urls.push(path.clone());
            }
            for url in urls {
                for token in &tokens {
                    let request = match method.as_str() {
                        "get" => app.http.get(app.url(&url)),
                        "delete" => app.http.delete(app.url(&url)),
                        "post" => app.http.post(app.url(&url)).json(&json!({})),
                        "put" => app.http.put(app.url(&url)).json(&json!({})),
                        other => panic!("method {other}"),
                    };
                    let response = request.bearer_auth(token).send().await.expect("request");
                    requests += 1;
                    let status = response.status();
                    refused += usize::from(status.is_client_error());
                    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                        let body = response.text().await.unwrap_or_default();
                        let shown: String = url.chars().take(120).collect();
                        failures.insert(format!("{status} {method} {shown}: {body}"));
                    } else if status == StatusCode::SERVICE_UNAVAILABLE {
                        let body = response.text().await.unwrap_or_default();
                        let shown: String = url.chars().take(120).collect();
                        failures.insert(format!("503 from input {method} {shown}: {body}"));
                    }
                }
            }
        }
    }
    eprintln!("{requests} requests with hostile parameters, {refused} refused with a 4xx");
    // The values reach the parsers: most of them are refused as the client's error.
    assert!(refused * 2 > requests, "{refused} of {requests} refused");
    assert!(failures.is_empty(), "{failures:#?}");
}
