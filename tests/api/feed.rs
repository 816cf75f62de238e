//! The event feed for integrators (`GET /v1/events`): each caller reads exactly what it may
//! see of the log (never another org's events, never an internal comment on the customer
//! side), in catch-up order, page by page, long-polled, or as a resumable stream of
//! Server-Sent Events.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::case_fixtures::seed_entitlement;
use crate::helpers::{acme_case, expect_json, spawn_app, As, TestApp};

const ANN: As = As::customer("ann@acme.test", "acme");
const BOB: As = As::customer("bob@acme.test", "acme");
const ADA: As = As::org_admin("ada@acme.test", "acme");
const EVE: As = As::org_admin("eve@globex.test", "globex");
const SCOPES: &[&str] = &["view_customers", "access_cases"];
const PAT: As = As::partner("pat@good.test", "p-good", SCOPES);
const MAL: As = As::partner("mal@evil.test", "p-evil", SCOPES);
const SECRET: &str = "the-internal-root-cause";

/// Every event `token` reads from the start, page by page (`limit` per page).
async fn read_all(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = "0".to_string();
    for _ in 0..1000 {
        let page = expect_json(
            app.get(
                &format!("/v1/events?after={after}&limit={limit}{query}"),
                token,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let batch = page["events"].as_array().expect("events").clone();
        assert!(batch.len() <= limit, "a page holds at most `limit` events");
        events.extend(batch);
        after = page["next"].as_str().expect("next").to_string();
        if page["has_more"] == json!(false) {
            return events;
        }
    }
    panic!("the feed did not end");
}

fn streams(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| {
            e["aggregate_id"]
                .as_str()
                .expect("aggregate_id")
                .to_string()
        })
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

/// The world: ann's case (a public and an internal support comment), bob's case, a case and
/// a subscription of globex, partner p-good granted both scopes on acme.
struct World {
    other_sale: String,
    direct: String,
    ann_case: String,
    bob_case: String,
    globex_case: String,
    globex_subscription: String,
}

async fn world(app: &TestApp) -> World {
    let (ann, bob, eve) = (
        app.token(ANN).await,
        app.token(BOB).await,
        app.token(EVE).await,
    );
    let agent = app.token(As::agent()).await;
    let admin = app.token(As::admin()).await;
    app.grant_partner("acme", "p-good", SCOPES).await;
    let ann_case = app.open_case(&ann, acme_case()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    for (body, visibility) in [("We are looking at it", "public"), (SECRET, "internal")] {
        let response = app
            .post(
                &format!("/v1/cases/{ann_case}/comments"),
                &agent,
                &json!({"body": body, "visibility": visibility}),
            )
            .await;
        expect_json(response, StatusCode::CREATED).await;
    }
    let bob_case = app.open_case(&bob, acme_case()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    seed_entitlement(app, "E-GLBX-0000-0001", "globex", "active", None).await;
    let mut globex = acme_case();
    globex["entitlement_number"] = json!("E-GLBX-0000-0001");
    let globex_case = app.open_case(&eve, globex).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let now = chrono::Utc::now();
    let globex_subscription = app
        .create_subscription(
            &admin,
            json!({"org_id": "globex", "product": "jira-software", "plan": "standard",
                   "seats": 10, "term_start": (now - chrono::Duration::days(1)).to_rfc3339(),
                   "term_end": (now + chrono::Duration::days(364)).to_rfc3339(),
                   "channel": {"kind": "direct"}, "billing_account": "BA-1"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    // In acme also: another partner's relationship and its sale, and a direct subscription;
    // p-good sees none of them (not its relationship, not its sale).
    app.grant_partner("acme", "p-other", &["view_customers"])
        .await;
    let oz = app
        .token(As::partner("oz@other.test", "p-other", &["view_customers"]))
        .await;
    let sale = |channel: Value| {
        json!({"org_id": "acme", "product": "confluence", "plan": "standard", "seats": 5,
               "term_start": (now - chrono::Duration::days(1)).to_rfc3339(),
               "term_end": (now + chrono::Duration::days(364)).to_rfc3339(),
               "channel": channel})
    };
    let other_sale = app
        .create_subscription(
            &oz,
            sale(json!({"kind": "partner", "partner_id": "p-other"})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let direct = app
        .create_subscription(&app.token(ADA).await, sale(json!({"kind": "direct"})))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    app.wait_for_projection("feed", app.newest_position().await)
        .await;
    World {
        other_sale,
        direct,
        ann_case,
        bob_case,
        globex_case,
        globex_subscription,
    }
}

#[tokio::test]
async fn each_caller_reads_only_what_it_sees_and_the_customer_side_never_an_internal_comment() {
    let app = spawn_app().await;
    let w = world(&app).await;

    // ann: her own case (with the public comment, not the internal one) and acme's
    // subscriptions, which every user of the org sees.
    let everything = read_all(&app, &app.token(ANN).await, "", 2).await;
    assert_eq!(
        streams(&everything),
        BTreeSet::from([w.ann_case.clone(), w.direct.clone(), w.other_sale.clone()])
    );
    let ann = read_all(&app, &app.token(ANN).await, "&types=case.*", 2).await;
    assert_eq!(
        types(&ann),
        vec![
            "case.opened",
            "case.comment_added",
            "case.first_response_given"
        ],
        "{ann:#?}"
    );
    let text = serde_json::to_string(&ann).expect("json");
    assert!(!text.contains(SECRET), "an internal comment leaked: {text}");
    assert!(
        ann.iter()
            .all(|e| e["metadata"].get("idempotency_key").is_none()
                && e["data"].get("first_response_warning_at").is_none()),
        "staff-only metadata or times leaked"
    );
    // In the log's order, each with its cursor and stable id.
    let positions: Vec<i64> = ann
        .iter()
        .map(|e| e["position"].as_i64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]));
    assert_eq!(ann[0]["id"], json!(format!("evt_{}", positions[0])));

    // acme's admin: both acme cases and acme's relationship, nothing of globex.
    let ada = read_all(&app, &app.token(ADA).await, "", 3).await;
    let ada_streams = streams(&ada);
    assert!(ada_streams.contains(&w.ann_case) && ada_streams.contains(&w.bob_case));
    assert!(ada_streams.contains("acme/p-good"));
    assert!(!ada_streams.contains(&w.globex_case) && !ada_streams.contains(&w.globex_subscription));
    assert!(!serde_json::to_string(&ada).expect("json").contains(SECRET));

    // The partner acme granted: acme's cases and its own relationship; not the other
    // partner's relationship or sale, not acme's direct subscription, nothing of globex.
    let pat = read_all(&app, &app.token(PAT).await, "", 100).await;
    assert_eq!(
        streams(&pat),
        BTreeSet::from([w.ann_case.clone(), w.bob_case.clone(), "acme/p-good".into()])
    );
    // The other partner (view_customers only): its sale and its relationship, no case.
    let oz = app
        .token(As::partner("oz@other.test", "p-other", &["view_customers"]))
        .await;
    assert_eq!(
        streams(&read_all(&app, &oz, "", 100).await),
        BTreeSet::from([w.other_sale.clone(), "acme/p-other".into()])
    );
    // bob reads acme's subscriptions too.
    assert!(
        streams(&read_all(&app, &app.token(BOB).await, "", 100).await)
            .is_superset(&BTreeSet::from([w.direct.clone(), w.other_sale.clone()]))
    );
    assert!(!serde_json::to_string(&pat).expect("json").contains(SECRET));
    // A partner nobody granted anything reads nothing at all.
    assert!(read_all(&app, &app.token(MAL).await, "", 100)
        .await
        .is_empty());
    // globex's admin: only globex.
    let eve = read_all(&app, &app.token(EVE).await, "", 100).await;
    assert_eq!(
        streams(&eve),
        BTreeSet::from([w.globex_case.clone(), w.globex_subscription.clone()])
    );

    // Staff read everything, the internal comment too, in the same order as the audit log.
    let agent = read_all(&app, &app.token(As::agent()).await, "", 7).await;
    assert!(serde_json::to_string(&agent)
        .expect("json")
        .contains(SECRET));
    let audit = expect_json(
        app.get(
            "/v1/audit/events?limit=1000",
            &app.token(As::auditor()).await,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let audited: Vec<i64> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["position"].as_i64().expect("position"))
        .collect();
    let fed: Vec<i64> = agent
        .iter()
        .map(|e| e["position"].as_i64().expect("position"))
        .collect();
    assert_eq!(fed, audited);

    // Filters: names and prefixes; a name that matches nothing is refused.
    let ann_token = app.token(ANN).await;
    let comments = read_all(&app, &ann_token, "&types=case.comment_added", 100).await;
    assert_eq!(types(&comments), vec!["case.comment_added"]);
    let globex_subscriptions =
        read_all(&app, &app.token(EVE).await, "&types=subscription.*", 100).await;
    assert!(types(&globex_subscriptions)
        .iter()
        .all(|t| t.starts_with("subscription.")));
    assert!(!globex_subscriptions.is_empty());
    let refused = app.get("/v1/events?types=case.nothing", &ann_token).await;
    assert_eq!(
        expect_json(refused, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "unknown_event_type"
    );
    let refused = app.get("/v1/events?after=banana", &ann_token).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let refused = app.get("/v1/events?wait=31", &ann_token).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_partner_reads_an_org_only_while_its_relationship_lasts() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let pat = app.token(PAT).await;
    assert!(streams(&read_all(&app, &pat, "", 100).await).contains(&w.ann_case));
    let ada = app.token(ADA).await;
    let ended = app.delete("/v1/orgs/acme/partners/p-good", &ada).await;
    assert!(ended.status().is_success(), "{:?}", ended.text().await);
    app.wait_for_projection("feed", app.newest_position().await)
        .await;
    // From the next page on: acme's cases are gone, the partner's own relationship stays.
    let after = read_all(&app, &pat, "", 100).await;
    assert_eq!(streams(&after), BTreeSet::from(["acme/p-good".to_string()]));
    assert_eq!(
        types(&after).last().copied(),
        Some("partner_relationship.ended")
    );
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_an_event_arrives() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let ann = app.token(ANN).await;
    let caught_up = read_all(&app, &ann, "", 100).await;
    let last = caught_up.last().expect("ann has events")["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();

    // Nothing new: an empty page after the wait.
    let started = Instant::now();
    let empty = expect_json(
        app.get(&format!("/v1/events?after={last}&wait=1"), &ann)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(empty["events"].as_array().expect("events").is_empty());
    assert!(started.elapsed() >= Duration::from_secs(1));
    // `next` moved past what ann may not see (bob's and globex's events), never back.
    let next = empty["next"].as_str().expect("next").to_string();
    let at = |cursor: &str| -> (i64, i64) {
        let (tx, position) = cursor.split_once('.').expect("cursor");
        (tx.parse().expect("tx"), position.parse().expect("position"))
    };
    assert!(at(&next) >= at(&last));
    let last = next;

    // A comment while the poll waits ends it with that comment.
    let poll = {
        let (http, url, ann) = (
            app.http.clone(),
            app.url(&format!("/v1/events?after={last}&wait=30")),
            ann.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let page: Value = http
                .get(url)
                .bearer_auth(ann)
                .send()
                .await
                .expect("poll")
                .json()
                .await
                .expect("page");
            (page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let agent = app.token(As::agent()).await;
    let response = app
        .post(
            &format!("/v1/cases/{}/comments", w.ann_case),
            &agent,
            &json!({"body": "Fixed on our side", "visibility": "public"}),
        )
        .await;
    expect_json(response, StatusCode::CREATED).await;
    let (page, waited) = poll.await.expect("poll task");
    assert_eq!(
        types(page["events"].as_array().expect("events")),
        vec!["case.comment_added"]
    );
    assert!(
        waited < Duration::from_secs(25),
        "the poll waited {waited:?}"
    );
}

/// Reads Server-Sent Events from `response` until `count` events have arrived; returns their
/// (id, event, data).
async fn sse_events(
    response: &mut reqwest::Response,
    count: usize,
) -> Vec<(String, String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.len() < count {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(remaining, response.chunk())
            .await
            .expect("events in time")
            .expect("stream")
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !data.is_empty() {
                events.push((id, event, serde_json::from_str(&data).expect("json data")));
            }
        }
    }
    events
}

async fn open_stream(app: &TestApp, token: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .get(app.url("/v1/events"))
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("stream")
}

#[tokio::test]
async fn a_stream_follows_the_log_resumes_after_the_last_event_id_and_is_bounded_per_token() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let ann = app.token(ANN).await;

    let mut stream = open_stream(&app, &ann, None).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream")));
    let first = sse_events(&mut stream, 3).await;
    assert_eq!(
        first.iter().map(|(_, e, _)| e.as_str()).collect::<Vec<_>>(),
        vec![
            "case.opened",
            "case.comment_added",
            "case.first_response_given"
        ]
    );
    assert_eq!(first[0].0, first[0].2["cursor"].as_str().expect("cursor"));

    // The log grows: the open stream carries the new public comment, not the internal one.
    let agent = app.token(As::agent()).await;
    for (body, visibility) in [(SECRET, "internal"), ("Try again now", "public")] {
        let response = app
            .post(
                &format!("/v1/cases/{}/comments", w.ann_case),
                &agent,
                &json!({"body": body, "visibility": visibility}),
            )
            .await;
        expect_json(response, StatusCode::CREATED).await;
    }
    // (acme's subscriptions come first: they were created before.)
    let mut next = Vec::new();
    while !next
        .iter()
        .any(|(_, _, e): &(String, String, Value)| e["data"]["body"] == "Try again now")
    {
        next.extend(sse_events(&mut stream, 1).await);
        assert!(next.len() < 50, "the new comment never came: {next:#?}");
    }
    assert!(!serde_json::to_string(&next).expect("json").contains(SECRET));

    // Resuming after the first event replays from the second.
    let mut resumed = open_stream(&app, &ann, Some(&first[0].0)).await;
    let replay = sse_events(&mut resumed, 2).await;
    assert_eq!(replay[0].0, first[1].0);
    assert_eq!(replay[1].0, first[2].0);

    // Two streams are open; two more fit, the fifth is refused.
    let third = open_stream(&app, &ann, None).await;
    let fourth = open_stream(&app, &ann, None).await;
    assert_eq!(
        (third.status(), fourth.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let refused = open_stream(&app, &ann, None).await;
    assert_eq!(
        expect_json(refused, StatusCode::TOO_MANY_REQUESTS).await["code"],
        "too_many_streams"
    );
    // A closed stream frees its slot.
    drop(third);
    // (The server notices at its next keep-alive at the latest.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let again = open_stream(&app, &ann, None).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
