//! `/v1/cases/{id}/attachments`: uploading and downloading case files.
//!
//! The bytes never enter the event log. The whole request body is bounded: the attachment
//! limit plus [`FRAMING_ALLOWANCE`] for the multipart framing (preamble, boundaries, part
//! headers). A `Content-Length` past that bound is answered 413 before a byte is read, and a
//! body that passes it while streaming is cut off there with 413, however long it goes on and
//! whether or not its boundary ever comes. An upload streams the file (refusing it as soon as
//! it passes the policy's size limit), stores it in `case_attachment_blobs` under a new
//! attachment id, then issues `AddAttachment` with the name, size, content type and sha256;
//! if the command is refused (or answered from an earlier request with the same
//! `Idempotency-Key`) the stored bytes are deleted again. A download serves only attachments
//! that the case's events name, to whoever sees the case, after checking the sha256.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subdesk_aggregates::support_case::{
    AddAttachment, CaseError, CaseStatus, SupportCase, SupportCaseCommand, SupportCaseEvent,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::run::{case_guard, visible_case_from_log};
use crate::access::CaseAction;
use crate::http::command::{run, Prepared, Receipt, REPLAYED};
use crate::http::contract::Idempotent;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::Ctx;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_attachment))
        // The global 1 MiB body limit does not fit files; the upload bounds its body by the
        // case policy's attachment limit itself (`bounded_body`).
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(download_attachment))
}

/// What an upload's body may hold beyond the file itself: the multipart preamble, boundaries
/// and part headers of a form with one file.
pub const FRAMING_ALLOWANCE: u64 = 64 * 1024;

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "an upload's body may be at most {limit} bytes (the attachment limit and its multipart \
         framing)"
    ))
}

/// The request's body cut off at `limit` bytes: a declared length past it is refused at once,
/// and a body that runs past it fails there while streaming (`MultipartError` 413).
fn bounded_body(request: Request, limit: u64) -> Result<Request, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let (parts, body) = request.into_parts();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Ok(Request::from_parts(
        parts,
        Body::new(http_body_util::Limited::new(body, limit)),
    ))
}

/// The multipart form of an upload: one part, `file` (no other parts).
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the form for OpenAPI; the handler streams it
pub struct AttachmentUpload {
    /// The file, in a part named `file`; its file name and content type come from the part's
    /// headers. At most the attachment limit (default 10 MiB).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The answer to an upload.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "key": "CASE-1001", "status": "investigating",
    "version": 6, "position": 57, "attachment_id": "0193a8f2-8b00-7c3e-9d0a-3f1f6a1b2c3d"
}))]
pub struct AttachmentReceipt {
    pub id: String,
    pub key: String,
    #[schema(schema_with = crate::schema::case_status)]
    pub status: CaseStatus,
    pub version: i64,
    pub position: i64,
    /// Download it at `/v1/cases/{id}/attachments/{attachment_id}`.
    pub attachment_id: Option<Uuid>,
}

fn attachment_receipt(case: &SupportCase, receipt: Receipt) -> AttachmentReceipt {
    AttachmentReceipt {
        id: receipt.id,
        key: case.key.clone(),
        status: case.status,
        version: receipt.version,
        position: receipt.position,
        attachment_id: case.attachments.last().copied(),
    }
}

fn bad_upload(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_upload",
        detail: detail.into(),
    }
}

/// A file as uploaded.
struct Upload {
    name: String,
    content_type: String,
    bytes: Vec<u8>,
}

/// Reads the one `file` part, refusing it once it passes `max` bytes.
async fn read_upload(mut multipart: Multipart, max: u64, limit: u64) -> Result<Upload, ApiError> {
    let refused = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            bad_upload(e.body_text())
        }
    };
    let mut upload: Option<Upload> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(refused)? {
        if field.name() != Some("file") {
            return Err(bad_upload(
                "send the file in one multipart part named `file`",
            ));
        }
        if upload.is_some() {
            return Err(bad_upload("one file per upload"));
        }
        let name = field.file_name().unwrap_or("attachment").to_string();
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(refused)? {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(ApiError::unprocessable(
                    "attachment_too_large",
                    format!("an attachment may be at most {max} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        upload = Some(Upload {
            name,
            content_type,
            bytes,
        });
    }
    upload.ok_or_else(|| bad_upload("the upload has no part named `file`"))
}

/// Attach a file (anyone who sees the case).
///
/// `multipart/form-data` with one part named `file`. The size limit (default 10 MiB) is a
/// case rule: a larger file is 422 `attachment_too_large`, and an empty one 422
/// `invalid_attachment`. The whole body may hold the limit plus 64 KiB of multipart framing;
/// past that it is 413 `payload_too_large`, at once when `Content-Length` says so, else as
/// soon as the body passes it.
#[utoipa::path(post, path = "/v1/cases/{id}/attachments", tag = "cases",
    request_body(content = AttachmentUpload, content_type = "multipart/form-data"),
    params(("id" = Uuid, Path), Idempotent),
    responses(
        (status = 201, body = AttachmentReceipt),
        (status = 400, body = Problem, description = "Not a multipart upload with a `file` part"),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem, description = "The body is larger than the attachment limit and its framing"),
        (status = 422, body = Problem, description = "`attachment_too_large`, `invalid_attachment`, `case_closed`"),
    ))]
async fn upload_attachment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    request: Request,
) -> Result<Response, ApiError> {
    let max = state.settings.case_policy.max_attachment_bytes;
    let limit = max.saturating_add(FRAMING_ALLOWANCE);
    let request = bounded_body(request, limit)?;
    // Whether the caller may attach to this case is known before any byte is read or stored;
    // the command's guard checks it again on the state the command is decided on.
    {
        let (case, _) = visible_case_from_log(&state, &ctx.principal, id).await?;
        case_guard(ctx.principal.clone(), CaseAction::Attach)(&case).map_err(|denied| {
            ApiError::from(crate::command::CommandError::<CaseError>::Denied(denied))
        })?;
    }
    let multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| bad_upload(e.body_text()))?;
    let upload = read_upload(multipart, max, limit).await?;
    let sha256 = hex::encode(Sha256::digest(&upload.bytes));
    let size = upload.bytes.len() as u64;
    let request_hash = crate::idempotency::request_hash(
        "POST",
        &format!("/v1/cases/{id}/attachments"),
        &serde_json::json!({
            "name": upload.name, "content_type": upload.content_type,
            "size": size, "sha256": sha256,
        }),
    );
    let attachment_id = Uuid::now_v7();
    let command = SupportCaseCommand::AddAttachment(AddAttachment {
        attachment_id,
        name: upload.name,
        size,
        content_type: upload.content_type,
        sha256: sha256.clone(),
        by: ctx.principal.actor(),
    });
    let principal = ctx.principal.clone();
    let run_state = state.clone();
    let bytes = upload.bytes;
    let result = run(
        &state,
        &state.cases,
        &ctx,
        &request_hash,
        StatusCode::CREATED,
        move || async move {
            let client = run_state.pool.get().await?;
            client
                .execute(
                    "INSERT INTO case_attachment_blobs (id, case_id, sha256, size, content) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&attachment_id, &id, &sha256, &(size as i64), &bytes],
                )
                .await?;
            Ok(Prepared {
                id: id.to_string(),
                command,
                guard: Some(case_guard(principal, CaseAction::Attach)),
            })
        },
        attachment_receipt,
    )
    .await;
    // Bytes that no event names are removed at once: the command was refused (nothing was
    // appended), or an earlier request with the same key already attached the file. When the
    // outcome is unknown (the database went away around the commit) the bytes stay: if the
    // event was committed they are its attachment; if not, no download ever serves them.
    let orphan = match &result {
        Ok(response) => response.headers().contains_key(REPLAYED),
        Err(
            ApiError::BadRequest { .. }
            | ApiError::Forbidden(_)
            | ApiError::NotFound(_)
            | ApiError::Conflict { .. }
            | ApiError::Unprocessable { .. },
        ) => true,
        Err(_) => false,
    };
    if orphan {
        if let Err(error) = forget_blob(&state, attachment_id).await {
            tracing::warn!(%attachment_id, %error, "could not delete the bytes of a refused attachment");
        }
    }
    result
}

async fn forget_blob(state: &AppState, attachment_id: Uuid) -> Result<(), ApiError> {
    let client = state.pool.get().await?;
    client
        .execute(
            "DELETE FROM case_attachment_blobs WHERE id = $1",
            &[&attachment_id],
        )
        .await?;
    Ok(())
}

/// A file name safe to put in a `Content-Disposition` header.
fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.trim().is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

/// Download an attachment (anyone who sees the case).
#[utoipa::path(get, path = "/v1/cases/{id}/attachments/{attachment_id}", tag = "cases",
    params(("id" = Uuid, Path), ("attachment_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The file's bytes, with the content type it was uploaded with", content_type = "*/*", body = Vec<u8>),
        (status = 404, body = Problem, description = "No such case or attachment, not visible, or erased with its uploader"),
    ))]
async fn download_attachment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, attachment_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    let (_, events) = visible_case_from_log(&state, &ctx.principal, id).await?;
    let added = events
        .into_iter()
        .find_map(|(_, event)| match event {
            SupportCaseEvent::AttachmentAdded(e) if e.attachment_id == attachment_id => Some(e),
            _ => None,
        })
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let client = state.read_pool.get().await?;
    let row = client
        .query_opt(
            "SELECT content FROM case_attachment_blobs WHERE id = $1 AND case_id = $2",
            &[&attachment_id, &id],
        )
        .await?
        .ok_or_else(|| {
            // An erasure of its uploader deleted the bytes (and erased the name).
            if added.name == subdesk_projections::privacy::ERASED {
                ApiError::NotFound("the attachment was erased with its uploader".into())
            } else {
                ApiError::Internal(format!(
                    "the bytes of attachment {attachment_id} are missing"
                ))
            }
        })?;
    let content: Vec<u8> = row.try_get(0)?;
    if hex::encode(Sha256::digest(&content)) != added.sha256 {
        return Err(ApiError::Internal(format!(
            "the bytes of attachment {attachment_id} do not match their sha256"
        )));
    }
    let content_type = HeaderValue::from_str(&added.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        safe_file_name(&added.name)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // Never rendered as a page of this origin, even if a browser is told to open it.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox"),
            ),
        ],
        content,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_break_out_of_the_header() {
        assert_eq!(safe_file_name("log file.txt"), "log file.txt");
        assert_eq!(safe_file_name("a\"b;c/d\r\n.txt"), "a_b_c_d__.txt");
        assert_eq!(safe_file_name("日本.txt"), "__.txt");
        assert_eq!(safe_file_name(""), "attachment");
    }
}
