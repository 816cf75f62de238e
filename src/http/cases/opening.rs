//! Opening a case, and commenting (which may open one: a customer's reply to a closed case
//! follows it up in a new case). Opening looks up the entitlement the case names and lets the
//! domain judge it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use subdesk_aggregates::subscription::AppStatus;
use subdesk_aggregates::support_case::{
    AddComment, EarlierCase, EntitlementFacts, EntitlementLookup, OpenCase, SupportCaseCommand,
    Visibility,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::run::{execute_as, next_case_key, visible_case_from_log};
use super::types::{case_receipt, CaseReceipt, CommentRequest, OpenCaseRequest};
use crate::access::may_open_case_for;
use crate::http::command::{run, Prepared};
use crate::http::contract::Idempotent;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Call, Command, Ctx, JsonBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_case))
        .routes(routes!(add_comment))
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
                    request_type: request.request_type.unwrap_or_default(),
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
            None if crate::http::consistency::catch_up_with_log(state, "subscriptions").await? => {
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
    params(("id" = Uuid, Path), Idempotent),
    responses(
        (status = 201, body = CaseReceipt, description = "The comment's receipt, or the follow-up case's for a reply to a closed case"),
        (status = 403, body = Problem, description = "e.g. an internal comment from the customer side"),
        (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
async fn add_comment(
    Command(call, id, request): Command<Uuid, CommentRequest>,
) -> Result<Response, ApiError> {
    let reply_from_customer =
        request.visibility == Visibility::Public && call.ctx.principal.role.is_customer_side();
    let command = SupportCaseCommand::Comment(AddComment {
        comment_id: Uuid::now_v7(),
        author: call.actor(),
        body: request.body.clone(),
        visibility: request.visibility,
    });
    let commented = execute_as(&call, id, StatusCode::CREATED, command).await;
    match commented {
        // A closed case is immutable: the customer's reply opens a new case linked to it.
        Err(ApiError::Unprocessable {
            code: "case_closed",
            ..
        }) if reply_from_customer => follow_up(&call, id, request.body).await,
        other => other,
    }
}

/// Opens a case that follows up closed case `closed` with `reply` as its description, under
/// the same entitlement, for the same org, followed by the same people.
async fn follow_up(call: &Call, closed: Uuid, reply: String) -> Result<Response, ApiError> {
    let (state, ctx, request_hash) = (&call.state, &call.ctx, call.hash.as_str());
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
                    request_type: earlier.request_type,
                    opened_by: principal.actor(),
                }),
                guard: None,
            })
        },
        case_receipt,
    )
    .await
}
