//! `/v1/cases`: support cases.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subdesk_aggregates::support_case::{
    AddComment, CaseStatus, OpenCase, SupportCase, SupportCaseCommand, Visibility,
};
use subdesk_aggregates::ActorRole;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::command::{run, Prepared, Receipt};
use super::consistency::wait_for;
use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use crate::access::{may_open_case_for, sees_case, CaseAudience};
use crate::app::AppState;
use crate::auth::Principal;
use crate::store::{Denied, Guard};

/// Name of the projection behind case reads.
const PROJECTION: &str = "cases";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_case))
        .routes(routes!(get_case))
        .routes(routes!(add_comment))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "org_id": "acme",
    "product": "jira-software",
    "summary": "Board does not load",
    "description": "Since this morning the board spins forever.",
    "impact": 2
}))]
pub struct OpenCaseRequest {
    /// The customer org; customers may leave it out (their own org).
    pub org_id: Option<String>,
    pub product: String,
    /// 1 to 255 characters.
    pub summary: String,
    #[serde(default)]
    pub description: String,
    /// 1 (critical) to 4 (low); sets the first-response target.
    pub impact: u8,
    /// Staff only: the customer the case is opened for (defaults to the caller).
    pub requester: Option<String>,
}

/// The answer to a case command.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "key": "CASE-1001",
    "status": "open", "version": 1, "position": 42
}))]
pub struct CaseReceipt {
    pub id: String,
    pub key: String,
    #[schema(schema_with = super::schema::case_status)]
    pub status: CaseStatus,
    pub version: i64,
    pub position: i64,
}

fn case_receipt(case: &SupportCase, receipt: Receipt) -> CaseReceipt {
    CaseReceipt {
        id: receipt.id,
        key: case.key.clone(),
        status: case.status,
        version: receipt.version,
        position: receipt.position,
    }
}

/// Open a support case.
#[utoipa::path(post, path = "/v1/cases", tag = "cases",
    request_body = OpenCaseRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to repeat")),
    responses(
        (status = 201, body = CaseReceipt),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "The org is not visible to the caller"),
        (status = 422, body = Problem, description = "A rule is broken; nothing was appended"),
    ))]
async fn open_case(
    State(state): State<AppState>,
    ctx: Ctx,
    body: JsonBody<OpenCaseRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let principal = ctx.principal.clone();
    let run_state = state.clone();
    run(
        &state,
        &state.cases,
        &ctx,
        &body.hash,
        StatusCode::CREATED,
        move || async move {
            if principal.role == ActorRole::Auditor {
                return Err(ApiError::Forbidden(
                    "auditors read; they do not open cases".into(),
                ));
            }
            let org_id = match (request.org_id, &principal.org_id) {
                (Some(org), _) => org,
                (None, Some(own)) => own.clone(),
                (None, None) => {
                    return Err(ApiError::unprocessable(
                        "required_field",
                        "org_id must not be empty",
                    ))
                }
            };
            let partner_orgs = partner_orgs(&run_state, &principal).await?;
            if !may_open_case_for(&principal, &org_id, &partner_orgs) {
                return Err(ApiError::not_found("org"));
            }
            let requester = match request.requester {
                Some(requester) if principal.role.is_staff() => requester,
                Some(_) => {
                    return Err(ApiError::Forbidden(
                        "only support staff open cases for another requester".into(),
                    ))
                }
                None => principal.user.clone(),
            };
            let case_id = Uuid::now_v7();
            let key = next_case_key(&run_state).await?;
            Ok(Prepared {
                id: case_id.to_string(),
                command: SupportCaseCommand::Open(OpenCase {
                    case_id,
                    key,
                    org_id,
                    requester,
                    product: request.product,
                    summary: request.summary,
                    description: request.description,
                    impact: request.impact,
                    opened_by: principal.actor(),
                }),
                guard: None,
            })
        },
        case_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Attached the browser console log.", "visibility": "public"}))]
pub struct CommentRequest {
    pub body: String,
    #[serde(default)]
    #[schema(schema_with = super::schema::visibility)]
    pub visibility: Visibility,
}

/// Comment on a case.
#[utoipa::path(post, path = "/v1/cases/{id}/comments", tag = "cases",
    request_body = CommentRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = CaseReceipt),
        (status = 403, body = Problem, description = "e.g. an internal comment from the customer side"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn add_comment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<CommentRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let principal = ctx.principal.clone();
    let run_state = state.clone();
    run(
        &state,
        &state.cases,
        &ctx,
        &body.hash,
        StatusCode::CREATED,
        move || async move {
            if principal.role == ActorRole::Auditor {
                return Err(ApiError::Forbidden(
                    "auditors read; they do not comment".into(),
                ));
            }
            let partner_orgs = partner_orgs(&run_state, &principal).await?;
            let internal = request.visibility == Visibility::Internal;
            let guard = case_guard(principal.clone(), partner_orgs, move |p| {
                if internal && !p.role.is_staff() {
                    Err(Denied::Forbidden(
                        "only support staff write internal comments".into(),
                    ))
                } else {
                    Ok(())
                }
            });
            Ok(Prepared {
                id: id.to_string(),
                command: SupportCaseCommand::Comment(AddComment {
                    comment_id: Uuid::now_v7(),
                    author: principal.actor(),
                    body: request.body,
                    visibility: request.visibility,
                }),
                guard: Some(guard),
            })
        },
        case_receipt,
    )
    .await
}

/// A guard that hides cases the caller may not see, then applies `allowed`.
fn case_guard(
    principal: Principal,
    partner_orgs: Vec<String>,
    allowed: impl Fn(&Principal) -> Result<(), Denied> + Send + Sync + 'static,
) -> Guard<SupportCase> {
    Arc::new(move |case: &SupportCase| {
        let audience = CaseAudience {
            org_id: &case.org_id,
            requester: &case.requester,
            participants: &[],
        };
        if !case.exists() || !sees_case(&principal, audience, &partner_orgs) {
            return Err(Denied::NotFound);
        }
        allowed(&principal)
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ReadParams {
    /// Answer only once the read model has applied this position (from a command response).
    pub min_position: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub sequence: i64,
    /// `comment`.
    pub kind: String,
    pub actor: String,
    pub actor_role: String,
    /// `public` or `internal` (internal entries are shown to staff only).
    pub visibility: String,
    pub body: Option<String>,
    pub at: DateTime<Utc>,
}

/// A case as its read model shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseDetail {
    pub id: Uuid,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub product: String,
    pub summary: String,
    pub description: String,
    pub impact: i16,
    pub status: String,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
    /// When the first response is due under the SLA.
    pub first_response_due: Option<DateTime<Utc>>,
    pub last_activity_at: DateTime<Utc>,
    pub version: i64,
    pub timeline: Vec<TimelineEntry>,
}

/// A case with its timeline.
#[utoipa::path(get, path = "/v1/cases/{id}", tag = "cases",
    params(("id" = Uuid, Path), ReadParams),
    responses(
        (status = 200, body = CaseDetail),
        (status = 404, body = Problem),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time"),
    ))]
async fn get_case(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    Query(params): Query<ReadParams>,
) -> Result<Json<CaseDetail>, ApiError> {
    if let Some(position) = params.min_position {
        wait_for(&state, PROJECTION, position).await?;
    }
    let client = state.read_pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, key, org_id, requester, product, summary, description, impact, status, \
                    opened_by, opened_at, first_response_due, last_activity_at, version \
               FROM case_view WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let org_id: String = row.get(2);
    let requester: String = row.get(3);
    let partner_orgs = partner_orgs(&state, &ctx.principal).await?;
    let audience = CaseAudience {
        org_id: &org_id,
        requester: &requester,
        participants: &[],
    };
    if !sees_case(&ctx.principal, audience, &partner_orgs) {
        return Err(ApiError::not_found("case"));
    }
    let staff = ctx.principal.sees_everything();
    let timeline = client
        .query(
            "SELECT sequence, kind, actor_id, actor_role, visibility, body, at \
               FROM case_timeline WHERE case_id = $1 AND ($2 OR visibility = 'public') \
              ORDER BY sequence",
            &[&id, &staff],
        )
        .await?
        .iter()
        .map(|r| TimelineEntry {
            sequence: r.get(0),
            kind: r.get(1),
            actor: r.get(2),
            actor_role: r.get(3),
            visibility: r.get(4),
            body: r.get(5),
            at: r.get(6),
        })
        .collect();
    Ok(Json(CaseDetail {
        id: row.get(0),
        key: row.get(1),
        org_id,
        requester,
        product: row.get(4),
        summary: row.get(5),
        description: row.get(6),
        impact: row.get(7),
        status: row.get(8),
        opened_by: row.get(9),
        opened_at: row.get(10),
        first_response_due: row.get(11),
        last_activity_at: row.get(12),
        version: row.get(13),
        timeline,
    }))
}

/// The next human case key, `CASE-<n>`.
async fn next_case_key(state: &AppState) -> Result<String, ApiError> {
    let client = state.pool.get().await?;
    let n: i64 = client
        .query_one("SELECT nextval('case_key_seq')", &[])
        .await?
        .get(0);
    Ok(format!("CASE-{n}"))
}

/// The customer orgs assigned to a partner principal (empty for everyone else). Orgs become
/// assigned when they hold a subscription sold through the partner.
async fn partner_orgs(state: &AppState, principal: &Principal) -> Result<Vec<String>, ApiError> {
    match (&principal.role, &principal.partner_id) {
        (ActorRole::Partner, Some(partner)) => {
            let client = state.read_pool.get().await?;
            Ok(crate::entitlements::partner_orgs(&**client, partner).await?)
        }
        _ => Ok(Vec::new()),
    }
}
