//! Attachments: bytes outside the log, metadata and sha256 in `AttachmentAdded`, the size
//! limit, and downloads only for whoever sees the case.

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use subdesk::app::Settings;

use crate::case_fixtures::{acme_ticket, read_ok, spawn_app_at_t0, upload};
use crate::helpers::{expect_json, As, TestApp};

async fn blob_count(app: &TestApp) -> i64 {
    app.db()
        .await
        .query_one("SELECT count(*) FROM case_attachment_blobs", &[])
        .await
        .expect("blobs")
        .get(0)
}

#[tokio::test]
async fn an_uploaded_file_is_listed_with_its_checksum_and_downloaded_by_whoever_sees_the_case() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let sam = app.token(As::agent()).await;
    let bob = app.token(As::customer("bob@acme.test", "acme")).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let bytes = b"2026-03-02 09:00:01 ERROR board.js:12 TypeError".repeat(100);
    let receipt = expect_json(
        upload(&app, &ann, &id, "console.log", &bytes, None).await,
        StatusCode::CREATED,
    )
    .await;
    let attachment = receipt["attachment_id"].as_str().expect("attachment id");
    assert_eq!(receipt["version"], 2);

    let detail = read_ok(&app, &ann, &format!("/v1/cases/{id}"), &receipt["position"]).await;
    let listed = &detail["attachments"][0];
    assert_eq!(listed["id"], attachment);
    assert_eq!(listed["name"], "console.log");
    assert_eq!(listed["size"], bytes.len());
    assert_eq!(listed["content_type"], "text/plain");
    assert_eq!(listed["sha256"], hex::encode(Sha256::digest(&bytes)));
    assert_eq!(
        listed["url"],
        format!("/v1/cases/{id}/attachments/{attachment}")
    );

    // The event carries the facts, not the bytes.
    let history = expect_json(
        app.get(&format!("/v1/cases/{id}/history"), &sam).await,
        StatusCode::OK,
    )
    .await;
    let added = &history[1];
    assert_eq!(added["event_type"], "AttachmentAdded");
    assert_eq!(added["payload"]["sha256"], listed["sha256"]);
    assert!(!added.to_string().contains("TypeError"));

    for token in [&ann, &sam] {
        let download = app
            .get(&format!("/v1/cases/{id}/attachments/{attachment}"), token)
            .await;
        assert_eq!(download.status(), StatusCode::OK);
        assert_eq!(download.headers()["content-type"], "text/plain");
        assert_eq!(
            download.headers()["content-disposition"],
            "attachment; filename=\"console.log\""
        );
        assert_eq!(download.headers()["x-content-type-options"], "nosniff");
        assert_eq!(download.bytes().await.expect("bytes").as_ref(), &bytes[..]);
    }
    expect_json(
        app.get(&format!("/v1/cases/{id}/attachments/{attachment}"), &bob)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_json(
        app.get(
            &format!("/v1/cases/{id}/attachments/0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d"),
            &ann,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_file_over_the_limit_or_empty_is_refused_and_leaves_no_bytes_behind() {
    let mut settings = Settings::default();
    settings.case_policy.max_attachment_bytes = 1024;
    let (app, _) = spawn_app_at_t0(settings).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();

    let exactly = expect_json(
        upload(&app, &ann, &id, "fits.bin", &[7u8; 1024], None).await,
        StatusCode::CREATED,
    )
    .await;
    assert!(exactly["attachment_id"].is_string());

    let problem = expect_json(
        upload(&app, &ann, &id, "big.bin", &[7u8; 1025], None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "attachment_too_large");
    assert_eq!(problem["detail"], "an attachment may be at most 1024 bytes");

    let problem = expect_json(
        upload(&app, &ann, &id, "empty.txt", b"", None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_attachment");

    assert_eq!(app.event_count(Some(&id)).await, 2);
    assert_eq!(blob_count(&app).await, 1, "refused uploads keep no bytes");
}

#[tokio::test]
async fn the_default_limit_takes_files_larger_than_the_global_body_limit() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let three_mib = vec![42u8; 3 * 1024 * 1024];
    let receipt = expect_json(
        upload(&app, &ann, &id, "heap.dump", &three_mib, None).await,
        StatusCode::CREATED,
    )
    .await;
    let attachment = receipt["attachment_id"].as_str().expect("id");
    let download = app
        .get(&format!("/v1/cases/{id}/attachments/{attachment}"), &ann)
        .await;
    assert_eq!(
        download.bytes().await.expect("bytes").len(),
        three_mib.len()
    );
    // JSON routes keep the 1 MiB limit.
    let huge = json!({"body": "x".repeat(2 * 1024 * 1024)});
    let refused = app
        .post(&format!("/v1/cases/{id}/comments"), &ann, &huge)
        .await;
    assert!(refused.status().is_client_error());
}

#[tokio::test]
async fn an_upload_to_an_invisible_case_or_by_an_auditor_stores_nothing() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let bob = app.token(As::customer("bob@acme.test", "acme")).await;
    let audrey = app.token(As::auditor()).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    expect_json(
        upload(&app, &bob, &id, "x.txt", b"x", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_json(
        upload(&app, &audrey, &id, "x.txt", b"x", None).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(blob_count(&app).await, 0);
    assert_eq!(app.event_count(Some(&id)).await, 1);
}

#[tokio::test]
async fn a_repeated_upload_with_the_same_key_attaches_the_file_once() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let first = upload(&app, &ann, &id, "log.txt", b"abc", Some("upload-1")).await;
    let first = expect_json(first, StatusCode::CREATED).await;
    let again = upload(&app, &ann, &id, "log.txt", b"abc", Some("upload-1")).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(expect_json(again, StatusCode::CREATED).await, first);
    let other = upload(&app, &ann, &id, "log.txt", b"abd", Some("upload-1")).await;
    let problem = expect_json(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(app.event_count(Some(&id)).await, 2);
    assert_eq!(blob_count(&app).await, 1);
}

#[tokio::test]
async fn an_upload_without_a_file_part_is_400() {
    let (app, _) = spawn_app_at_t0(Settings::default()).await;
    let ann = app.token(As::customer("ann@acme.test", "acme")).await;
    let id = app.open_case(&ann, acme_ticket()).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let wrong_part = app
        .http
        .post(app.url(&format!("/v1/cases/{id}/attachments")))
        .bearer_auth(&ann)
        .header(
            "content-type",
            "multipart/form-data; boundary=subdesk-test-boundary-7f3a9c",
        )
        .body(crate::case_fixtures::multipart(
            "document",
            "a.txt",
            "text/plain",
            b"a",
        ))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        expect_json(wrong_part, StatusCode::BAD_REQUEST).await["code"],
        "invalid_upload"
    );
    let not_multipart = app
        .post(&format!("/v1/cases/{id}/attachments"), &ann, &json!({}))
        .await;
    assert_eq!(
        expect_json(not_multipart, StatusCode::BAD_REQUEST).await["code"],
        "invalid_upload"
    );
}
