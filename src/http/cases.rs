//! `/v1/cases`: support case commands. Reads live in [`super::cases_read`], attachments in
//! [`super::case_attachments`]; this router merges them.
//!
//! Every command on an existing case runs with a guard on the loaded aggregate: a case the
//! caller may not see is 404, an action their role may not take on a case they see is 403
//! (`crate::access::cases`), and the domain's own rules are 422.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::subscription::AppStatus;
use subdesk_aggregates::support_case::{
    AcceptEscalation, AddComment, AddParticipant, AssignCase, CaseStatus, ChangePriority,
    EarlierCase, EntitlementFacts, EntitlementLookup, OpenCase, RemoveParticipant,
    RequestEscalation, RequestInfo, ResolveCase, SetDataAccess, StartInvestigation, SupportCase,
    SupportCaseCommand, Visibility,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::cases_read::visible_case_from_log;
use super::command::{run, Prepared, Receipt};
use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use crate::access::{may, may_open_case_for, sees_case, CaseAction, CaseAudience};
use crate::app::AppState;
use crate::auth::Principal;
use crate::store::{Denied, Guard};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_case))
        .routes(routes!(add_comment))
        .routes(routes!(request_info))
        .routes(routes!(assign))
        .routes(routes!(investigate))
        .routes(routes!(change_priority))
        .routes(routes!(add_participant))
        .routes(routes!(remove_participant))
        .routes(routes!(request_escalation))
        .routes(routes!(accept_escalation))
        .routes(routes!(set_data_access))
        .routes(routes!(resolve))
        .merge(super::cases_read::router())
        .merge(super::case_attachments::router())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "org_id": "acme",
    "product": "jira-software",
    "entitlement_number": "E-1A2B-3C4D-5E6F",
    "summary": "Board does not load",
    "description": "Since this morning the board spins forever.",
    "impact": 2,
    "participants": ["carl@acme.example"],
    "on_behalf_of": null,
    "product_version": "9.12.4",
    "phone": "+81 3 1234 5678",
    "data_access_consent": true
}))]
pub struct OpenCaseRequest {
    /// The customer org. Customers may leave it out (their own org); for staff it defaults to
    /// the entitlement's org.
    #[schema(max_length = 128)]
    pub org_id: Option<String>,
    /// Defaults to the entitlement's product.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub product: String,
    /// The support entitlement number (`E-XXXX-XXXX-XXXX`) of a subscription or app of the
    /// org, active or non-renewing. Give this or `subscription_id`.
    #[schema(max_length = 64)]
    pub entitlement_number: Option<String>,
    /// The subscription whose entitlement the case is opened under.
    pub subscription_id: Option<Uuid>,
    /// 1 to 255 characters.
    #[schema(max_length = 255)]
    pub summary: String,
    #[serde(default)]
    #[schema(max_length = 32768)]
    pub description: String,
    /// Business impact, 1 (critical) to 4 (low); sets the first-response target
    /// (1 h, 4 h, 8 h, 16 h by default).
    pub impact: u8,
    /// E-mail addresses that follow the case (at most 48).
    #[serde(default)]
    #[schema(max_items = 48, inline, value_type = Vec<super::schema::EmailAddress>)]
    pub participants: Vec<String>,
    /// Reporting for someone else: their e-mail. They become the requester; a customer-side
    /// caller keeps following the case as a participant.
    #[schema(max_length = 254)]
    pub on_behalf_of: Option<String>,
    #[schema(max_length = 255)]
    pub product_version: Option<String>,
    #[schema(max_length = 64)]
    pub phone: Option<String>,
    /// Consent for support to access the org's data while investigating (revocable).
    #[serde(default)]
    pub data_access_consent: bool,
    /// An earlier case of the org, visible to the caller, that this one follows up (a closed
    /// case cannot be reopened: a later reply goes into a new case linked to it).
    pub follow_up_of: Option<Uuid>,
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
    /// The case's stream version after the command (unchanged when it changed nothing).
    pub version: i64,
    /// Pass as `min_position` to a read to see this write.
    pub position: i64,
    /// Set when the case follows up an earlier one (a reply to a closed case answers with
    /// the new case it opened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<Uuid>,
}

pub(crate) fn case_receipt(case: &SupportCase, receipt: Receipt) -> CaseReceipt {
    CaseReceipt {
        id: receipt.id,
        key: case.key.clone(),
        status: case.status,
        version: receipt.version,
        position: receipt.position,
        follow_up_of: case.follow_up_of,
    }
}

/// Open a support case.
///
/// The entitlement (by number or subscription id) must belong to the org and be `active` or
/// `non_renewing`; otherwise 422 `invalid_entitlement` / `entitlement_inactive` /
/// `entitlement_required`, and nothing is appended. Confirmation e-mails go to the requester
/// and the participants.
#[utoipa::path(post, path = "/v1/cases", tag = "cases",
    request_body = OpenCaseRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to repeat")),
    responses(
        (status = 201, body = CaseReceipt),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "The org (or the case to follow up) is not visible to the caller"),
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
            if !(principal.role.is_staff() || principal.role.is_customer_side()) {
                return Err(ApiError::Forbidden(
                    "auditors read; they do not open cases".into(),
                ));
            }
            let entitlement = find_entitlement(
                &run_state,
                request.entitlement_number.as_deref(),
                request.subscription_id,
            )
            .await?;
            // Only staff, who see every org anyway, get the entitlement's org by default:
            // for anyone else it would tell an existing entitlement number (404 for the org)
            // from an unknown one.
            let found_org = match &entitlement {
                EntitlementLookup::Found(facts) if principal.role.is_staff() => {
                    Some(facts.org_id.clone())
                }
                _ => None,
            };
            let org_id = request
                .org_id
                .or_else(|| principal.org_id.clone())
                .or(found_org)
                .filter(|org| !org.trim().is_empty())
                .ok_or_else(|| {
                    ApiError::unprocessable("required_field", "org_id must not be empty")
                })?;
            if !may_open_case_for(&principal, &org_id) {
                return Err(ApiError::not_found("org"));
            }
            let follow_up_of = match request.follow_up_of {
                Some(earlier) => {
                    let (case, _) = visible_case_from_log(&run_state, &principal, earlier).await?;
                    Some(EarlierCase {
                        case_id: earlier,
                        org_id: case.org_id,
                    })
                }
                None => None,
            };
            let case_id = Uuid::now_v7();
            let key = next_case_key(&run_state).await?;
            Ok(Prepared {
                id: case_id.to_string(),
                command: SupportCaseCommand::Open(OpenCase {
                    case_id,
                    key,
                    org_id,
                    requester: principal.user.clone(),
                    on_behalf_of: request.on_behalf_of,
                    product: request.product,
                    product_version: request.product_version,
                    entitlement,
                    summary: request.summary,
                    description: request.description,
                    impact: request.impact,
                    participants: request.participants,
                    phone: request.phone,
                    data_access_consent: request.data_access_consent,
                    follow_up_of,
                    opened_by: principal.actor(),
                }),
                guard: None,
            })
        },
        case_receipt,
    )
    .await
}

/// Looks up the entitlement an opening names (by number or by subscription id), for the
/// domain to judge.
async fn find_entitlement(
    state: &AppState,
    number: Option<&str>,
    subscription_id: Option<Uuid>,
) -> Result<EntitlementLookup, ApiError> {
    let number = number.map(str::trim).filter(|n| !n.is_empty());
    let lookup = || async {
        let client = state.read_pool.get().await?;
        Ok::<_, ApiError>(match (number, subscription_id) {
            (Some(number), _) => crate::entitlements::by_number(&**client, number).await?,
            (None, Some(id)) => crate::entitlements::by_subscription(&**client, id).await?,
            (None, None) => None,
        })
    };
    let found = match (number, subscription_id) {
        (None, None) => return Ok(EntitlementLookup::NotGiven),
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "name the entitlement by entitlement_number or by subscription_id, not both",
            ))
        }
        _ => match lookup().await? {
            Some(found) => Some(found),
            // A subscription created a moment ago may not be in the read model yet: let it
            // catch up with everything committed so far (bounded), then look once more.
            None if super::consistency::catch_up_with_log(state, "subscriptions").await? => {
                lookup().await?
            }
            None => None,
        },
    };
    let Some(mut found) = found else {
        return Ok(EntitlementLookup::NotFound);
    };
    // The read model maps the number to its subscription; who holds it and whether it is in
    // force come from the subscription itself, so a cancellation a moment ago already counts.
    let (_, subscription) = state
        .subscriptions
        .current(&found.subscription_id.to_string())
        .await?;
    if subscription.id.is_some() {
        found.org_id = subscription.org_id.clone();
        let parent = subscription.status.as_str();
        found.status = match found.app_id {
            None => parent.to_string(),
            Some(app_id) => match subscription.apps.iter().find(|app| app.app_id == app_id) {
                Some(app) if app.status == AppStatus::Active => parent.to_string(),
                _ => AppStatus::Cancelled.as_str().to_string(),
            },
        };
    }
    Ok(EntitlementLookup::Found(EntitlementFacts {
        number: found.number,
        subscription_id: found.subscription_id,
        org_id: found.org_id,
        product: found.product,
        status: found.status,
    }))
}

/// Runs `command` on case `id` for the caller, if they see the case and may take `action`.
async fn execute(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    request_hash: &str,
    status: StatusCode,
    action: CaseAction,
    command: SupportCaseCommand,
) -> Result<Response, ApiError> {
    let principal = ctx.principal.clone();
    run(
        state,
        &state.cases,
        ctx,
        request_hash,
        status,
        move || async move {
            Ok(Prepared {
                id: id.to_string(),
                command,
                guard: Some(case_guard(principal, action)),
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
    #[schema(max_length = 32768)]
    pub body: String,
    /// `internal` comments are for support staff only.
    #[serde(default)]
    #[schema(schema_with = super::schema::visibility)]
    pub visibility: Visibility,
}

/// Comment on a case.
///
/// A customer-side comment on a case `waiting_for_customer` is the customer's answer (back to
/// `investigating`; the automatic resolution is off). On a `resolved` case it reopens the case
/// within the reopen window (default 30 days), and is refused after it
/// (`reopen_window_passed`: open a new case). On a `closed` case, which never changes again,
/// a customer-side reply opens a new case that follows it up (same org, entitlement and
/// followers; the reply is its description), and the answer is that case's receipt, with
/// `follow_up_of`. Support's first public comment stops the first-response clock.
#[utoipa::path(post, path = "/v1/cases/{id}/comments", tag = "cases",
    request_body = CommentRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = CaseReceipt, description = "The comment's receipt, or the follow-up case's for a reply to a closed case"),
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
    let action = match request.visibility {
        Visibility::Internal => CaseAction::CommentInternal,
        Visibility::Public => CaseAction::Comment,
    };
    let reply_from_customer =
        request.visibility == Visibility::Public && ctx.principal.role.is_customer_side();
    let command = SupportCaseCommand::Comment(AddComment {
        comment_id: Uuid::now_v7(),
        author: ctx.principal.actor(),
        body: request.body.clone(),
        visibility: request.visibility,
    });
    let commented = execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::CREATED,
        action,
        command,
    )
    .await;
    match commented {
        // A closed case is immutable: the customer's reply opens a new case linked to it.
        Err(ApiError::Unprocessable {
            code: "case_closed",
            ..
        }) if reply_from_customer => follow_up(&state, &ctx, &body.hash, id, request.body).await,
        other => other,
    }
}

/// Opens a case that follows up closed case `closed` with `reply` as its description, under
/// the same entitlement, for the same org, followed by the same people.
async fn follow_up(
    state: &AppState,
    ctx: &Ctx,
    request_hash: &str,
    closed: Uuid,
    reply: String,
) -> Result<Response, ApiError> {
    let principal = ctx.principal.clone();
    let run_state = state.clone();
    run(
        state,
        &state.cases,
        ctx,
        request_hash,
        StatusCode::CREATED,
        move || async move {
            let (earlier, _) = visible_case_from_log(&run_state, &principal, closed).await?;
            let entitlement = match earlier.entitlement_number.as_deref() {
                Some(number) => find_entitlement(&run_state, Some(number), None).await?,
                None => find_entitlement(&run_state, None, earlier.subscription_id).await?,
            };
            let mut participants = earlier.participants.clone();
            if !crate::access::same_user(&earlier.requester, &principal.user) {
                participants.push(earlier.requester.clone());
            }
            participants.retain(|p| !crate::access::same_user(p, &principal.user));
            participants.truncate(48);
            let summary: String = format!("Follow-up to {}: {}", earlier.key, earlier.summary)
                .chars()
                .take(255)
                .collect();
            let case_id = Uuid::now_v7();
            let key = next_case_key(&run_state).await?;
            Ok(Prepared {
                id: case_id.to_string(),
                command: SupportCaseCommand::Open(OpenCase {
                    case_id,
                    key,
                    org_id: earlier.org_id.clone(),
                    requester: principal.user.clone(),
                    on_behalf_of: None,
                    product: earlier.product.clone(),
                    product_version: None,
                    entitlement,
                    summary,
                    description: reply,
                    impact: earlier.priority,
                    participants,
                    phone: None,
                    data_access_consent: earlier.data_access,
                    follow_up_of: Some(EarlierCase {
                        case_id: closed,
                        org_id: earlier.org_id,
                    }),
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
#[schema(example = json!({"body": "Which browser and version do you use?"}))]
pub struct RequestInfoRequest {
    /// The question, posted as a public comment.
    #[schema(max_length = 32768)]
    pub body: String,
}

/// Ask the customer for information (staff).
///
/// Posts the question as a public comment and sets the case `waiting_for_customer`. Without a
/// customer-side reply within the auto-resolve policy (default 5 days) the system resolves
/// it; the case detail shows when (`auto_resolve_due`).
#[utoipa::path(post, path = "/v1/cases/{id}/request-info", tag = "cases",
    request_body = RequestInfoRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "e.g. the case is resolved"),
    ))]
async fn request_info(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<RequestInfoRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::RequestInfo(RequestInfo {
        comment_id: Uuid::now_v7(),
        body: body.value.body,
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::RequestInfo,
        command,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"assignee": "sam@support.example"}))]
pub struct AssignRequest {
    /// The support engineer; defaults to the caller.
    #[schema(max_length = 254)]
    pub assignee: Option<String>,
}

/// Assign the case to a support engineer (staff).
#[utoipa::path(post, path = "/v1/cases/{id}/assign", tag = "cases",
    request_body = AssignRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
async fn assign(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<AssignRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::Assign(AssignCase {
        assignee: body
            .value
            .assignee
            .unwrap_or_else(|| ctx.principal.user.clone()),
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::Assign,
        command,
    )
    .await
}

/// Start investigating (staff): from `open` or `waiting_for_customer`.
#[utoipa::path(post, path = "/v1/cases/{id}/investigate", tag = "cases",
    request_body(content = EmptyRequest, description = "Nothing, or `{}`"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`invalid_status`: not open or waiting"),
    ))]
async fn investigate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::StartInvestigation(StartInvestigation {
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::Investigate,
        command,
    )
    .await
}

/// A command without parameters: `{}` or no body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct EmptyRequest {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"priority": 1}))]
pub struct PriorityRequest {
    /// 1 (critical) to 4 (low).
    pub priority: u8,
}

/// Change the priority (staff); the first-response due time is recomputed from the opening.
#[utoipa::path(post, path = "/v1/cases/{id}/priority", tag = "cases",
    request_body = PriorityRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
async fn change_priority(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<PriorityRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::ChangePriority(ChangePriority {
        priority: body.value.priority,
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::ChangePriority,
        command,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "dora@acme.example"}))]
pub struct ParticipantRequest {
    #[schema(max_length = 254)]
    pub email: String,
}

/// Add a participant (anyone who sees the case; at most 48). Adding one already on the case
/// changes nothing.
#[utoipa::path(post, path = "/v1/cases/{id}/participants", tag = "cases",
    request_body = ParticipantRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`too_many_participants`, `invalid_email`"),
    ))]
async fn add_participant(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<ParticipantRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::AddParticipant(AddParticipant {
        email: body.value.email,
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::ManageParticipants,
        command,
    )
    .await
}

/// Remove a participant. Removing an address that is not on the case changes nothing.
#[utoipa::path(delete, path = "/v1/cases/{id}/participants/{email}", tag = "cases",
    params(("id" = Uuid, Path), ("email" = String, Path, example = "dora@acme.example")),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
async fn remove_participant(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, email)): Path<(Uuid, String)>,
) -> Result<Response, ApiError> {
    let hash = crate::idempotency::request_hash(
        "DELETE",
        &format!("/v1/cases/{id}/participants/{email}"),
        &serde_json::Value::Null,
    );
    let command = SupportCaseCommand::RemoveParticipant(RemoveParticipant {
        email,
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &hash,
        StatusCode::OK,
        CaseAction::ManageParticipants,
        command,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Production is down for 200 users"}))]
pub struct EscalationRequest {
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: String,
}

/// Ask for the case to be escalated (customer side; not on a resolved case).
#[utoipa::path(post, path = "/v1/cases/{id}/escalate", tag = "cases",
    request_body = EscalationRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`escalation_pending`, `already_escalated`, `invalid_status`"),
    ))]
async fn request_escalation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<EscalationRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::RequestEscalation(RequestEscalation {
        reason: body.value.reason,
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::RequestEscalation,
        command,
    )
    .await
}

/// Accept the pending escalation (staff).
#[utoipa::path(post, path = "/v1/cases/{id}/accept-escalation", tag = "cases",
    request_body(content = EmptyRequest, description = "Nothing, or `{}`"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`no_escalation_pending`, `already_escalated`"),
    ))]
async fn accept_escalation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::AcceptEscalation(AcceptEscalation {
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::AcceptEscalation,
        command,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"granted": false}))]
pub struct DataAccessRequest {
    /// `true` grants support access to the org's data for this case, `false` revokes it.
    pub granted: bool,
}

/// Grant or revoke support's access to the customer's data (customer side).
#[utoipa::path(post, path = "/v1/cases/{id}/data-access", tag = "cases",
    request_body = DataAccessRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
async fn set_data_access(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<DataAccessRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::SetDataAccess(SetDataAccess {
        granted: body.value.granted,
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::SetDataAccess,
        command,
    )
    .await
}

/// Resolve the case (staff, or the customer side: requester, participants, org admins,
/// partners). A customer-side comment within the reopen window reopens it.
#[utoipa::path(post, path = "/v1/cases/{id}/resolve", tag = "cases",
    request_body(content = EmptyRequest, description = "Nothing, or `{}`"),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CaseReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "`invalid_status`: already resolved; `case_closed`"),
    ))]
async fn resolve(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = SupportCaseCommand::Resolve(ResolveCase {
        by: ctx.principal.actor(),
    });
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        CaseAction::Resolve,
        command,
    )
    .await
}

/// A guard that hides cases the caller may not see (404), then refuses actions their role
/// may not take (403). It runs on the state the command is decided on.
pub(crate) fn case_guard(principal: Principal, action: CaseAction) -> Guard<SupportCase> {
    Arc::new(move |case: &SupportCase| {
        let audience = CaseAudience {
            org_id: &case.org_id,
            requester: &case.requester,
            participants: &case.participants,
        };
        if !case.exists() || !sees_case(&principal, audience) {
            return Err(Denied::NotFound);
        }
        may(&principal, action).map_err(|why| Denied::Forbidden(why.into()))
    })
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
