//! Webhooks against a real HTTP receiver (an axum server on a loopback port in the test) that
//! checks every signature with the endpoint's secret (HMAC-SHA256 computed here, apart from
//! the server's code): what an owner receives is what it may see, in order, at least once;
//! failures back off, disable the endpoint after the give-up time and tell its creator;
//! enabling, replaying and rotating the secret; a server killed with SIGKILL mid-delivery
//! loses nothing and repeats at most the event in flight.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use subdesk::app::Settings;
use subdesk::webhooks::deliver::WebhookConfig;

use crate::case_fixtures::seed_entitlement;
use crate::helpers::{
    acme_case, expect_json, fresh_database, issue_token, spawn_app, spawn_app_with, As,
    ServerProcess, TestApp,
};

const SCOPES: &[&str] = &["view_customers", "access_cases"];
const PAT: As = As::partner("pat@good.test", "p-good", SCOPES);
const ANN: As = As::customer("ann@acme.test", "acme");
const EVE: As = As::org_admin("eve@globex.test", "globex");
const ADA: As = As::org_admin("ada@acme.test", "acme");
const SECRET_TEXT: &str = "the-internal-root-cause";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    body: Value,
    signature: String,
    /// Secrets (of those the test gave it) whose signature the request carried.
    verified_with: Vec<String>,
}

/// A real HTTP receiver: records every request, answers `status` (after `delay`).
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    secrets: Arc<Mutex<Vec<String>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicUsize>,
}

fn verify(header: &str, secret: &str, body: &[u8]) -> bool {
    let t = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    if t.parse::<i64>().map_or(true, |t| (now - t).abs() > 300) {
        return false;
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    header
        .split(',')
        .filter_map(|p| p.strip_prefix("v1="))
        .any(|v| v == expected)
}

impl Receiver {
    async fn start() -> Self {
        let receiver = Self {
            url: String::new(),
            got: Arc::default(),
            secrets: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let signature = headers
                        .get("subdesk-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let verified_with = state
                        .secrets
                        .lock()
                        .expect("secrets")
                        .iter()
                        .filter(|s| verify(&signature, s, &body))
                        .cloned()
                        .collect();
                    state.got.lock().expect("got").push(Received {
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        signature,
                        verified_with,
                    });
                    let delay = state.delay_ms.load(Ordering::SeqCst) as u64;
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    AxumStatus::from_u16(state.status.load(Ordering::SeqCst))
                        .unwrap_or(AxumStatus::OK)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, ..receiver }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("got").clone()
    }

    fn trust(&self, secret: &str) {
        self.secrets
            .lock()
            .expect("secrets")
            .push(secret.to_string());
    }

    /// Waits until `check` holds over what arrived, for at most 30 s.
    async fn until(&self, what: &str, check: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got();
            if check(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{what}; got {got:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn fast() -> Settings {
    Settings {
        webhooks: WebhookConfig {
            allow_private: true,
            backoff_base: Duration::from_millis(100),
            poll: Duration::from_millis(50),
            ..WebhookConfig::default()
        },
        ..Settings::default()
    }
}

async fn register(app: &TestApp, token: &str, url: &str, events: Value) -> Value {
    expect_json(
        app.post(
            "/v1/webhooks",
            token,
            &json!({"url": url, "events": events}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

fn of_type<'a>(got: &'a [Received], ty: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.body["type"] == ty).collect()
}

async fn comment(app: &TestApp, case: &str, body: &str, visibility: &str) {
    let agent = app.token(As::agent()).await;
    let response = app
        .post(
            &format!("/v1/cases/{case}/comments"),
            &agent,
            &json!({"body": body, "visibility": visibility}),
        )
        .await;
    expect_json(response, StatusCode::CREATED).await;
}

#[tokio::test]
async fn a_partners_endpoint_receives_only_what_the_partner_sees_signed_and_in_order() {
    let app = spawn_app_with(fast(), Arc::new(subdesk::clock::SystemClock)).await;
    let receiver = Receiver::start().await;
    app.grant_partner("acme", "p-good", SCOPES).await;
    let pat = app.token(PAT).await;
    let endpoint = register(&app, &pat, &receiver.url, json!(["case.*"])).await;
    assert_eq!(endpoint["owner"], "partner:p-good");
    let secret = endpoint["secret"].as_str().expect("secret shown once");
    assert!(secret.starts_with("whsec_"));
    receiver.trust(secret);
    let id = endpoint["id"].as_str().expect("id").to_string();

    // acme's case with a public and an internal comment; a globex case.
    let ann = app.token(ANN).await;
    let case = app.open_case(&ann, acme_case()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    comment(&app, &case, "We are on it", "public").await;
    comment(&app, &case, SECRET_TEXT, "internal").await;
    comment(&app, &case, "Fixed now", "public").await;
    seed_entitlement(&app, "E-GLBX-0000-0001", "globex", "active", None).await;
    let mut globex = acme_case();
    globex["entitlement_number"] = json!("E-GLBX-0000-0001");
    let globex_case = app.open_case(&app.token(EVE).await, globex).await["id"]
        .as_str()
        .expect("id")
        .to_string();

    receiver
        .until("the acme case's public events", |got| {
            of_type(got, "case.comment_added").len() == 2
        })
        .await;
    // Let anything that should not come have its chance to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver
        .got()
        .into_iter()
        .filter(|r| !r.body.is_null())
        .collect::<Vec<_>>();
    assert!(got.len() >= 4, "{got:#?}");
    for received in &got {
        assert_eq!(
            received.verified_with,
            vec![secret.to_string()],
            "{received:?}"
        );
        assert_eq!(
            received.body["aggregate_id"],
            json!(case),
            "another org's event: {received:?}"
        );
        assert!(received.body["type"]
            .as_str()
            .expect("type")
            .starts_with("case."));
        assert_eq!(received.body["webhook_id"], json!(id));
    }
    let text =
        serde_json::to_string(&got.iter().map(|r| &r.body).collect::<Vec<_>>()).expect("json");
    assert!(
        !text.contains(SECRET_TEXT),
        "an internal comment reached a partner"
    );
    assert!(!text.contains(&globex_case));
    let sequences: Vec<i64> = got
        .iter()
        .map(|r| r.body["sequence"].as_i64().expect("sequence"))
        .collect();
    assert!(
        sequences.windows(2).all(|s| s[0] < s[1]),
        "in order: {sequences:?}"
    );
    drop(got);

    // The delivery log and the endpoint as its owner sees it (no secret any more).
    let log = expect_json(
        app.get(&format!("/v1/webhooks/{id}/deliveries"), &pat)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(log["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .all(|d| d["ok"] == true && d["status"] == 200));
    let shown = expect_json(
        app.get(&format!("/v1/webhooks/{id}"), &pat).await,
        StatusCode::OK,
    )
    .await;
    assert!(shown.get("secret").is_none());
    // Nobody else sees it: another org's admin, the org it reads, a customer.
    for other in [EVE, ADA] {
        let token = app.token(other).await;
        assert_eq!(
            app.get(&format!("/v1/webhooks/{id}"), &token)
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
        let listed = expect_json(app.get("/v1/webhooks", &token).await, StatusCode::OK).await;
        assert_eq!(listed["webhooks"], json!([]));
    }
    assert_eq!(
        app.get("/v1/webhooks", &ann).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        expect_json(
            app.post(
                "/v1/webhooks",
                &pat,
                &json!({"url": receiver.url, "events": ["case.nothing"]})
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await["code"],
        "unknown_event_type"
    );
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let app = spawn_app().await;
    let admin = app.token(As::admin()).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/",
        "http://localhost/x",
    ] {
        let refused = app.post("/v1/webhooks", &admin, &json!({"url": url})).await;
        assert_eq!(
            expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
            "private_target",
            "{url}"
        );
    }
    let refused = app
        .post(
            "/v1/webhooks",
            &admin,
            &json!({"url": "ftp://example.com/"}),
        )
        .await;
    assert_eq!(
        expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "invalid_url"
    );
}

#[tokio::test]
async fn a_failing_endpoint_backs_off_is_disabled_and_its_owner_told_then_enabled_replayed_and_rotated(
) {
    let settings = Settings {
        webhooks: WebhookConfig {
            give_up_after: Duration::from_secs(2),
            ..fast().webhooks
        },
        ..Settings::default()
    };
    let app = spawn_app_with(settings, Arc::new(subdesk::clock::SystemClock)).await;
    let receiver = Receiver::start().await;
    let ada = app.token(ADA).await;
    let endpoint = register(&app, &ada, &receiver.url, json!([])).await;
    let id = endpoint["id"].as_str().expect("id").to_string();
    receiver.trust(endpoint["secret"].as_str().expect("secret"));

    // The receiver fails: the first event is tried again and again, nothing after it is sent.
    receiver.status.store(500, Ordering::SeqCst);
    let ann = app.token(ANN).await;
    let case = app.open_case(&ann, acme_case()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    comment(&app, &case, "first reply", "public").await;
    let got = receiver
        .until("retries of the first event", |got| got.len() >= 3)
        .await;
    assert!(
        got.iter().all(|r| r.body["sequence"] == 1),
        "only the first event until it is taken"
    );
    // Failing for longer than the give-up time: disabled, and its creator told.
    let deadline = Instant::now() + Duration::from_secs(30);
    let disabled = loop {
        let shown = expect_json(
            app.get(&format!("/v1/webhooks/{id}"), &ada).await,
            StatusCode::OK,
        )
        .await;
        if shown["status"] == "disabled" {
            break shown;
        }
        assert!(Instant::now() < deadline, "never disabled: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(disabled["disabled_reason"]
        .as_str()
        .expect("reason")
        .contains("500"));
    let told: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM notifications WHERE kind = 'webhook_disabled' AND recipient = 'ada@acme.test'",
            &[],
        )
        .await
        .expect("notifications")
        .get(0);
    assert_eq!(told, 1);
    let attempts = receiver.got().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.got().len(),
        attempts,
        "a disabled endpoint gets nothing"
    );

    // Enabled again with the receiver fixed: it goes on from the event it stopped at, in order.
    receiver.status.store(200, Ordering::SeqCst);
    expect_json(
        app.post(&format!("/v1/webhooks/{id}/enable"), &ada, &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let got = receiver
        .until("the rest after enabling", |got| {
            got.iter().any(|r| r.body["type"] == "case.comment_added")
        })
        .await;
    let after: Vec<i64> = got[attempts..]
        .iter()
        .map(|r| r.body["sequence"].as_i64().expect("sequence"))
        .collect();
    assert_eq!(
        after.first(),
        Some(&1),
        "starts again at the stuck event: {after:?}"
    );
    assert!(after.windows(2).all(|s| s[0] < s[1]), "{after:?}");

    // Replay from the first event: delivered again.
    let first_position = got[0].body["position"].as_i64().expect("position");
    let before = receiver.got().len();
    expect_json(
        app.post(
            &format!("/v1/webhooks/{id}/replay"),
            &ada,
            &json!({"from_position": first_position}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    receiver
        .until("the replay", |got| {
            got.len() > before
                && got[before..]
                    .iter()
                    .any(|r| r.body["position"] == first_position)
        })
        .await;
    let unknown = app
        .post(
            &format!("/v1/webhooks/{id}/replay"),
            &ada,
            &json!({"from_position": 999_999}),
        )
        .await;
    assert_eq!(
        expect_json(unknown, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "unknown_position"
    );

    // Rotation: during the overlap each delivery verifies with the old and the new secret.
    let old = endpoint["secret"].as_str().expect("secret").to_string();
    let rotated = expect_json(
        app.post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &ada,
            &json!({"overlap_seconds": 3600}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new = rotated["secret"].as_str().expect("new secret").to_string();
    assert_ne!(new, old);
    receiver.trust(&new);
    let before = receiver.got().len();
    comment(&app, &case, "after the rotation", "public").await;
    let got = receiver
        .until("a delivery after the rotation", |got| got.len() > before)
        .await;
    let last = got.last().expect("delivery");
    assert_eq!(
        last.verified_with,
        vec![old.clone(), new.clone()],
        "{}",
        last.signature
    );

    // Deleted: nothing more.
    assert_eq!(
        app.delete(&format!("/v1/webhooks/{id}"), &ada)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}"), &ada).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_server_killed_while_delivering_loses_no_event_and_repeats_at_most_the_one_in_flight() {
    const COMMENTS: usize = 15;
    let target = fresh_database().await;
    let flags = [
        "--webhook-allow-private",
        "--webhook-retry-after",
        "100ms",
        "--webhook-timeout",
        "2s",
    ];
    let mut server = ServerProcess::start(&target, &flags).await;
    crate::helpers::seed_acme_entitlement(&target).await;
    let receiver = Receiver::start().await;
    receiver.delay_ms.store(150, Ordering::SeqCst);
    let http = reqwest::Client::new();
    let admin = issue_token(&target, As::admin()).await;
    let endpoint: Value = http
        .post(format!("{}/v1/webhooks", server.address))
        .bearer_auth(&admin)
        .json(&json!({"url": receiver.url, "events": ["case.comment_added"]}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("endpoint");
    receiver.trust(endpoint["secret"].as_str().expect("secret"));
    let ann = issue_token(&target, ANN).await;
    let case = server.open_case(&http, &ann).await;
    for n in 0..COMMENTS {
        let response = http
            .post(format!("{}/v1/cases/{case}/comments", server.address))
            .bearer_auth(&ann)
            .json(&json!({"body": format!("comment {n}")}))
            .send()
            .await
            .expect("comment");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    receiver
        .until("a few deliveries", |got| got.len() >= 3)
        .await;
    server.child.kill().await.expect("kill -9 the server");
    let before = receiver.got().len();
    assert!(before < COMMENTS, "killed before the end: {before}");
    let restarted = ServerProcess::start(&target, &flags).await;
    let got = receiver
        .until("every comment after the restart", |got| {
            (0..COMMENTS).all(|n| {
                got.iter()
                    .any(|r| r.body["data"]["body"] == format!("comment {n}"))
            })
        })
        .await;
    restarted.stop().await;
    assert!(
        got.iter().all(|r| !r.verified_with.is_empty()),
        "every delivery is signed"
    );
    let sequences: Vec<i64> = got
        .iter()
        .map(|r| r.body["sequence"].as_i64().expect("sequence"))
        .collect();
    let mut unique = sequences.clone();
    unique.dedup();
    assert_eq!(unique.len(), COMMENTS, "{sequences:?}");
    assert!(
        unique.windows(2).all(|s| s[0] < s[1]),
        "in order: {sequences:?}"
    );
    // The event in flight at the kill (whose answer the server never recorded) may come twice;
    // nothing else does.
    assert!(sequences.len() - unique.len() <= 1, "{sequences:?}");
}

#[tokio::test]
async fn an_owner_has_at_most_sixteen_endpoints() {
    let app = spawn_app().await;
    let ada = app.token(ADA).await;
    let mut ids = Vec::new();
    for n in 0..subdesk::webhooks::MAX_ENDPOINTS_PER_OWNER {
        let endpoint = register(
            &app,
            &ada,
            &format!("https://hooks.acme.example/{n}"),
            json!([]),
        )
        .await;
        ids.push(endpoint["id"].as_str().expect("id").to_string());
    }
    let refused = app
        .post(
            "/v1/webhooks",
            &ada,
            &json!({"url": "https://hooks.acme.example/17"}),
        )
        .await;
    assert_eq!(
        expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "too_many_webhooks"
    );
    // Another owner is not held back by acme's.
    register(
        &app,
        &app.token(EVE).await,
        "https://hooks.globex.example/",
        json!([]),
    )
    .await;
    // Deleting one makes room.
    let deleted = app.delete(&format!("/v1/webhooks/{}", ids[0]), &ada).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    register(&app, &ada, "https://hooks.acme.example/again", json!([])).await;
}
