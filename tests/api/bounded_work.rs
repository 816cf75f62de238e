//! Bounded work per request and no 5xx from input: one test per case measured on the
//! tenant-boundary issue (an upload whose boundary never comes, a megabyte of participants,
//! NUL in a query, an invented HTTP method, a `min_position` from the future, each SQLSTATE
//! that means "try again"), the documented bounds of every request body, the ids copied into
//! metadata, the security headers, and revocation across processes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::app::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    acme_case, expect_json, issue_token, spawn_app, spawn_app_on, spawn_app_with, As,
    ServerProcess, TestApp,
};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Resident memory of a process, in bytes, from /proc.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Sends a raw HTTP/1.1 request head, then `body_bytes` of body (or until the server answers),
/// and returns the status line and how long the answer took.
async fn raw_upload(address: &str, head: String, body_bytes: u64) -> (String, Duration) {
    let host = address.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    writer.write_all(head.as_bytes()).await.expect("head");
    // Write on until the server answers or hangs up; its answer is what counts.
    let writing = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        while sent < body_bytes {
            let frame = format!("{:x}\r\n", chunk.len());
            if writer.write_all(frame.as_bytes()).await.is_err()
                || writer.write_all(&chunk).await.is_err()
                || writer.write_all(b"\r\n").await.is_err()
            {
                return;
            }
            sent += chunk.len() as u64;
        }
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    writing.abort();
    assert!(read.is_ok(), "the server answered");
    let text = String::from_utf8_lossy(&answer).to_string();
    (text.lines().next().unwrap_or_default().to_string(), elapsed)
}

#[tokio::test]
async fn an_upload_whose_boundary_never_comes_is_cut_off_at_the_limit_with_413() {
    let target = crate::helpers::fresh_database().await;
    crate::helpers::seed_acme_entitlement(&target).await;
    let server = ServerProcess::start(&target, &["--max-attachment-size", "1MiB"]).await;
    let token = issue_token(&target, As::customer("ann@acme.test", "acme")).await;
    let http = reqwest::Client::new();
    let id = server.open_case(&http, &token).await;
    let pid = server.child.id().expect("pid");
    let before = rss_of(pid);

    // 400 MB offered in chunks, a boundary announced and never sent.
    let head = format!(
        "POST /v1/cases/{id}/attachments HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=never-comes\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (status, took) = raw_upload(&server.address, head, 400 << 20).await;
    assert!(status.contains(" 413 "), "{status}");
    let grown = rss_of(pid).saturating_sub(before);
    assert!(grown < 20 << 20, "the server grew by {grown} bytes");
    eprintln!("endless upload: {status} after {took:?}, RSS grew {grown} bytes");

    // A length past the bound is refused before a byte of the body is read.
    let head = format!(
        "POST /v1/cases/{id}/attachments HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 419430400\r\n\r\n"
    );
    let (status, _) = raw_upload(&server.address, head, 0).await;
    assert!(status.contains(" 413 "), "{status}");

    // The server is still fine, and no attachment was stored.
    let health = http
        .get(format!("{}/healthz", server.address))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let blobs: i64 = crate::helpers::connect(&target)
        .await
        .query_one("SELECT count(*) FROM case_attachment_blobs", &[])
        .await
        .expect("blobs")
        .get(0);
    assert_eq!(blobs, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_megabyte_of_participants_is_refused_by_its_bound_before_any_other_work() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let mut body = acme_case();
    body["participants"] = json!((0..50_000)
        .map(|i| format!("p{i}@acme.test"))
        .collect::<Vec<_>>());
    assert!(serde_json::to_vec(&body).expect("json").len() > 900_000);
    let problem = expect_json(
        app.post("/v1/cases", &ann, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "too_many_items");
    assert_eq!(problem["detail"], "participants holds at most 48 items");
    assert_eq!(app.event_count(None).await, 0);
}

/// Every string and list of every documented JSON request body has a bound.
fn unbounded(document: &Value) -> Vec<String> {
    let components = document["components"]["schemas"].clone();
    let resolve = |mut schema: Value| {
        for _ in 0..16 {
            let Some(name) = schema["$ref"]
                .as_str()
                .map(|r| r.trim_start_matches("#/components/schemas/").to_string())
            else {
                break;
            };
            schema = components[&name].clone();
        }
        schema
    };
    fn walk(resolve: &dyn Fn(Value) -> Value, schema: Value, at: String, found: &mut Vec<String>) {
        let schema = resolve(schema);
        for key in ["allOf", "oneOf", "anyOf"] {
            for alternative in schema[key].as_array().cloned().unwrap_or_default() {
                walk(resolve, alternative, at.clone(), found);
            }
        }
        let types: Vec<String> = match &schema["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts
                .iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        let bounded_text = ["maxLength", "enum", "format"]
            .iter()
            .any(|k| schema.get(*k).is_some());
        if types.iter().any(|t| t == "string") && !bounded_text {
            found.push(at.clone());
        }
        if types.iter().any(|t| t == "array") {
            if schema.get("maxItems").is_none() {
                found.push(format!("{at}[]"));
            }
            walk(resolve, schema["items"].clone(), format!("{at}[]"), found);
        }
        for (name, property) in schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            walk(resolve, property, format!("{at}.{name}"), found);
        }
    }
    let mut found = Vec::new();
    for (path, operations) in document["paths"].as_object().cloned().unwrap_or_default() {
        for (method, operation) in operations.as_object().cloned().unwrap_or_default() {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            if !schema.is_null() {
                walk(
                    &resolve,
                    schema.clone(),
                    format!("{method} {path}"),
                    &mut found,
                );
            }
        }
    }
    found
}

#[tokio::test]
async fn every_request_body_string_and_list_is_bounded_and_the_server_keeps_each_bound() {
    let document = serde_json::to_value(subdesk::http::openapi()).expect("document");
    assert_eq!(unbounded(&document), Vec::<String>::new());

    // Each top-level bound of each body, passed by one: the server refuses it (422, nothing
    // appended), whatever the route.
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    let components = document["components"]["schemas"].clone();
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().cloned().unwrap_or_default() {
        for (method, operation) in operations.as_object().cloned().unwrap_or_default() {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            let Some(name) = schema["$ref"].as_str() else {
                continue;
            };
            let schema = &components[name.trim_start_matches("#/components/schemas/")];
            let url = path
                .replace("{id}", "0193a8f2-0000-7000-8000-000000000001")
                .replace("{org_id}", "acme");
            for (field, property) in schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default()
            {
                let too_much = if let Some(max) = property["maxLength"].as_u64() {
                    json!("x".repeat(max as usize + 1))
                } else if let Some(max) = property["maxItems"].as_u64() {
                    json!(vec!["x"; max as usize + 1])
                } else {
                    continue;
                };
                let mut body = schema["example"].clone();
                if !body.is_object() {
                    body = json!({});
                }
                body[&field] = too_much;
                let request = match method.as_str() {
                    "post" => app.http.post(app.url(&url)),
                    "put" => app.http.put(app.url(&url)),
                    other => panic!("a body on {other}"),
                };
                let response = request
                    .bearer_auth(&root)
                    .json(&body)
                    .send()
                    .await
                    .expect("send");
                let problem = expect_json(response, StatusCode::UNPROCESSABLE_ENTITY).await;
                let expected = if property["maxLength"].is_u64() {
                    "field_too_long"
                } else {
                    "too_many_items"
                };
                assert_eq!(problem["code"], expected, "{method} {path} {field}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} bounds tried");
    assert_eq!(app.event_count(None).await, 0);
}

#[tokio::test]
async fn nul_in_a_path_or_query_is_a_400_never_a_500() {
    let app = spawn_app().await;
    let root = app.token(As::admin()).await;
    for path in [
        "/v1/cases?requester=%00",
        "/v1/cases?q=a%00b",
        "/v1/audit/verify?aggregate_type=%00",
        "/v1/audit/events?aggregate_type=x%00",
        "/v1/orgs/ac%00me/partners",
        "/v1/cases/0193a8f2-0000-7000-8000-000000000001/participants/a%00b",
    ] {
        let response = app
            .http
            .get(app.url(path))
            .bearer_auth(&root)
            .send()
            .await
            .expect("GET");
        let problem = expect_json(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["code"], "invalid_text", "{path}");
    }
}

#[tokio::test]
async fn an_invented_method_adds_no_series_to_the_metrics() {
    let app = spawn_app().await;
    let invented = format!("X{}", "INVENTED".repeat(12));
    let method = reqwest::Method::from_bytes(invented.as_bytes()).expect("method");
    let response = app
        .http
        .request(method, app.url("/v1/cases"))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_client_error(), "{}", response.status());
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(!metrics.contains("INVENTED"), "the method became a label");
    assert!(
        metrics.contains("method=\"other\""),
        "unknown methods count as `other`"
    );
}

#[tokio::test]
async fn a_min_position_no_command_was_ever_given_is_422_at_once() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id");
    for path in [
        "/v1/cases?min_position=999999999".to_string(),
        format!("/v1/cases/{id}?min_position=999999999"),
        "/v1/subscriptions?min_position=999999999".to_string(),
    ] {
        let problem =
            expect_json(app.get(&path, &ann).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["code"], "unknown_position", "{path}");
    }
    // A position that exists is still waited for, then answered.
    let case = app
        .get(
            &format!("/v1/cases/{id}?min_position={}", opened["position"]),
            &ann,
        )
        .await;
    assert_eq!(case.status(), StatusCode::OK);
}

#[tokio::test]
async fn each_sqlstate_that_means_try_again_is_a_503_with_retry_after() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let opened = app.open_case(&ann, acme_case()).await;
    let comments = format!("/v1/cases/{}/comments", opened["id"].as_str().expect("id"));
    let before = app.event_count(None).await;
    let db = app.db().await;
    for (sqlstate, code) in [
        ("57014", "statement_timeout"),
        ("40001", "serialization_failure"),
        ("40P01", "deadlock_detected"),
        ("55P03", "lock_not_available"),
        ("25006", "database_read_only"),
        ("53300", "too_many_connections"),
    ] {
        // The database itself refuses the append with that SQLSTATE.
        db.batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION refuse_append() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'refused for the test' USING ERRCODE = '{sqlstate}'; END $$; \
             DROP TRIGGER IF EXISTS refuse_append ON events; \
             CREATE TRIGGER refuse_append BEFORE INSERT ON events \
                 FOR EACH ROW EXECUTE FUNCTION refuse_append();"
        ))
        .await
        .expect("install the refusing trigger");
        let response = app
            .post(&comments, &ann, &json!({"body": "still there?"}))
            .await;
        assert_eq!(header(&response, "retry-after"), Some("1"), "{sqlstate}");
        let problem = expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(problem["code"], code, "{sqlstate}");
    }
    db.batch_execute("DROP TRIGGER refuse_append ON events")
        .await
        .expect("drop the trigger");
    assert_eq!(app.event_count(None).await, before, "nothing appended");
    let accepted = app
        .post(&comments, &ann, &json!({"body": "still there?"}))
        .await;
    assert_eq!(accepted.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_read_cut_off_by_the_statement_timeout_is_a_503() {
    let settings = Settings {
        statement_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let app = spawn_app_with(settings, Arc::new(subdesk::clock::SystemClock)).await;
    let root = app.token(As::admin()).await;
    // Warm the token cache so that only the list's own query meets the lock.
    assert_eq!(app.get("/v1/cases", &root).await.status(), StatusCode::OK);
    let mut holder = app.db().await;
    let tx = holder.transaction().await.expect("tx");
    tx.batch_execute("LOCK TABLE case_view IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let response = app.get("/v1/cases", &root).await;
    tx.rollback().await.expect("release");
    assert_eq!(header(&response, "retry-after"), Some("1"));
    let problem = expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["code"], "statement_timeout");
}

#[tokio::test]
async fn only_short_printable_request_ids_reach_the_event_metadata() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let long = "r".repeat(500);
    for (request_id, kept) in [
        ("req-42", true),
        (long.as_str(), false),
        ("tab\tbed", false),
    ] {
        let response = app
            .http
            .post(app.url("/v1/cases"))
            .bearer_auth(&ann)
            .header("x-request-id", request_id)
            .header("x-correlation-id", request_id)
            .json(&acme_case())
            .send()
            .await
            .expect("open");
        let echoed = header(&response, "x-request-id")
            .unwrap_or_default()
            .to_string();
        let receipt = expect_json(response, StatusCode::CREATED).await;
        let metadata: Value = app
            .db()
            .await
            .query_one(
                "SELECT metadata FROM events WHERE aggregate_id = $1",
                &[&receipt["id"].as_str().expect("id")],
            )
            .await
            .expect("event")
            .get(0);
        let stored = metadata["request_id"].as_str().unwrap_or_default();
        assert_eq!(stored == request_id, kept, "{request_id:?} -> {stored}");
        assert!(stored.len() <= 128 && stored.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(metadata["correlation_id"].as_str(), Some(stored));
        assert_eq!(echoed, stored, "the response names the id the log holds");
    }
}

#[tokio::test]
async fn every_response_says_nosniff_and_authenticated_ones_are_not_stored() {
    let app = spawn_app().await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let healthz = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(header(&healthz, "x-content-type-options"), Some("nosniff"));
    let missing = app.http.get(app.url("/nowhere")).send().await.expect("404");
    assert_eq!(header(&missing, "x-content-type-options"), Some("nosniff"));
    for path in [
        "/v1/cases",
        "/v1/cases/0193a8f2-0000-7000-8000-000000000001",
    ] {
        let response = app.get(path, &ann).await;
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(
            header(&response, "cache-control"),
            Some("no-store"),
            "{path}"
        );
    }

    let opened = app.open_case(&ann, acme_case()).await;
    let id = opened["id"].as_str().expect("id");
    let form = crate::case_fixtures::multipart(
        "file",
        "page.html",
        "text/html",
        b"<script>alert(1)</script>",
    );
    let uploaded = app
        .http
        .post(app.url(&format!("/v1/cases/{id}/attachments")))
        .bearer_auth(&ann)
        .header(
            "content-type",
            crate::case_fixtures::multipart_content_type(),
        )
        .body(form)
        .send()
        .await
        .expect("upload");
    let uploaded = expect_json(uploaded, StatusCode::CREATED).await;
    let attachment = uploaded["attachment_id"].as_str().expect("attachment");
    let download = app
        .get(&format!("/v1/cases/{id}/attachments/{attachment}"), &ann)
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert!(header(&download, "content-disposition").is_some_and(|v| v.starts_with("attachment")));
    assert_eq!(
        header(&download, "content-security-policy"),
        Some("sandbox")
    );
    assert_eq!(header(&download, "x-content-type-options"), Some("nosniff"));
}

async fn status_with(app: &TestApp, token: &str) -> StatusCode {
    app.get("/v1/cases", token).await.status()
}

#[tokio::test]
async fn a_revoked_token_stops_at_once_here_and_within_a_second_in_other_processes() {
    let first = spawn_app().await;
    let second = spawn_app_on(
        first.target.clone(),
        Settings::default(),
        Arc::new(subdesk::clock::SystemClock),
    )
    .await;
    let root = first.token(As::admin()).await;
    let ann = first.token(As::customer("ann@acme.test", "acme")).await;
    // Both processes have the token in their caches.
    assert_eq!(status_with(&first, &ann).await, StatusCode::OK);
    assert_eq!(status_with(&second, &ann).await, StatusCode::OK);
    let listed = expect_json(first.get("/v1/tokens", &root).await, StatusCode::OK).await;
    let id = listed
        .as_array()
        .and_then(|t| t.iter().find(|t| t["user"] == "ann@acme.test"))
        .and_then(|t| t["id"].as_str())
        .expect("ann's token")
        .to_string();
    let revoked_at = Instant::now();
    let revoked = first
        .post(&format!("/v1/tokens/{id}/revoke"), &root, &json!({}))
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(status_with(&first, &ann).await, StatusCode::UNAUTHORIZED);
    // The other process learns of it by notification, well before its cache would expire.
    while status_with(&second, &ann).await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < subdesk::auth::CACHE_TTL - Duration::from_secs(2),
            "the other process still accepts the revoked token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "revocation reached the other process after {:?}",
        revoked_at.elapsed()
    );
}
