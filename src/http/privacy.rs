//! `/v1/privacy/erasures`: admins erase a data subject (crypto-shredding, see
//! `crate::privacy::erase`) and follow the erasure's progress.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use subdesk_aggregates::ActorRole;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::command::{replay_if_seen, take_or_replay};
use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use crate::http::contract::Idempotent;
use crate::privacy::erase::{self, EraseError, Erasure};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_erasure))
        .routes(routes!(erasure))
}

fn ensure_admin(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.principal.role == ActorRole::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins erase data subjects".into(),
        ))
    }
}

impl From<EraseError> for ApiError {
    fn from(error: EraseError) -> Self {
        match error {
            EraseError::Database(e) => e.into(),
            EraseError::Pool(e) => e.into(),
            EraseError::Invalid(code, why) => ApiError::unprocessable(code, why),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subject": "person@example.com", "reason": "request 2026-118 (Art. 17)"}))]
pub struct ErasureRequest {
    /// The data subject: their e-mail address (a staff user: their user id). Case does not
    /// matter.
    #[schema(min_length = 1, max_length = 254)]
    pub subject: String,
    /// Why, for the record (kept in the log, sealed under the requester's key). Do not name
    /// the person here.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

/// Erase a data subject: their data keys are destroyed and an `ErasureRecorded` event
/// (naming them only by a keyed digest) enters the log, in one transaction. From then on
/// their personal data reads as `[erased]` in every history, export, feed and time travel;
/// their tokens are revoked and mail to them, their settings and idempotent answers naming
/// them are gone. The rest runs in the background (`status` `running`): attachment bytes they
/// uploaded, mail that quoted them, and a rebuild of every read model. Every hash chain still
/// verifies. Erasing a subject again finishes a failed erasure and erases what was written
/// about them since.
#[utoipa::path(post, path = "/v1/privacy/erasures", tag = "privacy",
    request_body = ErasureRequest, params(Idempotent),
    responses(
        (status = 202, body = Erasure, description = "Recorded; the rest runs in the background"),
        (status = 403, body = Problem),
        (status = 422, body = Problem, description = "No subject or no reason"),
    ))]
async fn request_erasure(
    State(state): State<AppState>,
    ctx: Ctx,
    body: JsonBody<ErasureRequest>,
) -> Result<Response, ApiError> {
    ensure_admin(&ctx)?;
    let meta = ctx.meta(&body.hash);
    if let Some(replayed) = replay_if_seen(&state, meta.idempotency.as_ref(), &body.hash).await? {
        return Ok(replayed);
    }
    let request = body.value;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let recorded = erase::record(
        &tx,
        &state.pool,
        &state.keyring,
        &request.subject,
        request.reason.trim(),
        &erase::Requester {
            actor: meta.actor.clone(),
            metadata: meta.to_map(),
        },
    )
    .await?;
    if let Some(key) = &meta.idempotency {
        let remembered =
            serde_json::to_value(&recorded).map_err(|e| ApiError::Internal(e.to_string()))?;
        let resource = (erase::AGGREGATE_TYPE, recorded.id.to_string());
        if let Some(answer) = take_or_replay(
            &state,
            &tx,
            key,
            &ctx.request_id,
            (resource.0, &resource.1),
            (StatusCode::ACCEPTED, &remembered),
        )
        .await?
        {
            return Ok(answer);
        }
    }
    tx.commit().await?;
    state.forget_personal_data();
    state.erasure_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(recorded)).into_response())
}

/// An erasure and how far it has come.
#[utoipa::path(get, path = "/v1/privacy/erasures/{id}", tag = "privacy",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Erasure), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn erasure(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<Json<Erasure>, ApiError> {
    ensure_admin(&ctx)?;
    let client = state.pool.get().await?;
    erase::find(&**client, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("erasure"))
}
