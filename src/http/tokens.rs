//! `/v1/tokens`: admins issue, list and revoke API tokens (as `subdesk token issue` does).
//!
//! A token is shown once, in the answer that issues it. A request repeated with the same
//! `Idempotency-Key` answers with the first answer's fields but without the token (only its
//! hash is kept): revoke it and issue a new one if it was lost.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::ActorRole;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::command::{replay_if_seen, take_or_replay};
use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use crate::auth::{self, TokenInfo, TokenSpec};
use crate::http::contract::Idempotent;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, issue_token))
        .routes(routes!(revoke_token))
}

fn ensure_admin(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.principal.role == ActorRole::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins manage tokens".into()))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "role": "partner", "user": "pat@partner.example", "partner_id": "p-100",
    "scopes": ["view_customers", "access_cases"], "label": "reseller portal"
}))]
pub struct IssueRequest {
    /// `customer`, `partner`, `agent`, `admin` or `auditor`.
    #[schema(schema_with = crate::schema::token_role)]
    pub role: String,
    /// The user (e-mail) the token acts as.
    #[schema(max_length = 254)]
    pub user: String,
    /// Customers: their org.
    #[schema(max_length = 128)]
    pub org_id: Option<String>,
    /// Customers: an admin of their org.
    #[serde(default)]
    pub org_admin: bool,
    /// Partners: their partner id.
    #[schema(max_length = 63, pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
    pub partner_id: Option<String>,
    /// Partners: `view_customers`, `access_cases`.
    #[serde(default)]
    #[schema(max_items = 2, inline, value_type = Vec<crate::schema::PartnerScopeName>)]
    pub scopes: Vec<String>,
    #[schema(max_length = 255)]
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Issued {
    /// The bearer token. Shown in this answer only; null when a repeated request is answered.
    pub token: Option<String>,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Every token, live or revoked (never the tokens themselves).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenInfo>), (status = 403, body = Problem)))]
async fn list_tokens(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    ensure_admin(&ctx)?;
    Ok(Json(auth::list(&state.pool).await?))
}

/// Issue a token.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = IssueRequest,
    params(Idempotent),
    responses(
        (status = 201, body = Issued),
        (status = 403, body = Problem),
        (status = 422, body = Problem, description = "The binding does not fit the role"),
    ))]
async fn issue_token(
    State(state): State<AppState>,
    ctx: Ctx,
    body: JsonBody<IssueRequest>,
) -> Result<Response, ApiError> {
    ensure_admin(&ctx)?;
    let request = body.value;
    let key = ctx.meta(&body.hash).idempotency;
    if let Some(replayed) = replay_if_seen(&state, key.as_ref(), &body.hash).await? {
        return Ok(replayed);
    }
    let role = request
        .role
        .parse::<ActorRole>()
        .map_err(|why| ApiError::unprocessable("invalid_token_spec", why))?;
    let spec = TokenSpec {
        role,
        user: request.user,
        org_id: request.org_id,
        org_admin: request.org_admin,
        partner_id: request.partner_id,
        scopes: request.scopes,
        label: request.label,
        created_by: ctx.principal.user.clone(),
    };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (id, token) = auth::issue_with(&*tx, &spec).await?;
    let created_at = tx
        .query_one("SELECT created_at FROM api_tokens WHERE id = $1", &[&id])
        .await?
        .try_get(0)?;
    let info = TokenInfo {
        id,
        role: spec.role.as_str().to_string(),
        user: spec.user.trim().to_string(),
        org_id: spec.org_id,
        org_admin: spec.org_admin,
        partner_id: spec.partner_id,
        scopes: spec.scopes,
        label: spec.label,
        created_by: spec.created_by,
        created_at,
        revoked_at: None,
    };
    if let Some(key) = &key {
        let remembered = serde_json::to_value(Issued {
            token: None,
            info: info.clone(),
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Some(answer) = take_or_replay(
            &state,
            &tx,
            key,
            &ctx.request_id,
            ("ApiToken", &id.to_string()),
            (StatusCode::CREATED, &remembered),
        )
        .await?
        {
            return Ok(answer);
        }
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Issued {
            token: Some(token),
            info,
        }),
    )
        .into_response())
}

/// Revoke a token: it stops working on the next request, in this process at once and in
/// every other server process as soon as the revocation's notification reaches it (about a
/// second at most; lookups are never trusted for longer than 5 s). Revoking a revoked token
/// answers the same.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", tag = "tokens",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TokenInfo), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_token(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<Json<TokenInfo>, ApiError> {
    ensure_admin(&ctx)?;
    auth::revoke(&state.pool, id).await?;
    state.auth.forget(Some(id));
    auth::find(&state.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("token"))
}
