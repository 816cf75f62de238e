//! Commands on an existing case, each a few lines: extract, build the command, run it through
//! the one command path ([`super::run::execute`]), which decides access from the command.

use axum::extract::{Path, State};
use subdesk_aggregates::support_case::{
    AcceptEscalation, AddParticipant, AssignCase, ChangePriority, RemoveParticipant,
    RequestEscalation, RequestInfo, ResolutionNote, ResolveCase, SetDataAccess, StartInvestigation,
    SupportCaseCommand,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::run::{execute, CaseChanged};
use super::types::*;
use crate::http::contract::Idempotent;
use crate::http::error::Problem;
use crate::http::extract::{Answer, Call, Command, Ctx};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
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
}

/// Ask the customer for information (staff).
///
/// Posts the question as a public comment and sets the case `waiting_for_customer`. Without a
/// customer-side reply within the auto-resolve policy (default 5 days) the system resolves
/// it; the case detail shows when (`auto_resolve_due`).
#[utoipa::path(post, path = "/v1/cases/{id}/request-info", tag = "cases",
    request_body = RequestInfoRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(
        CaseChanged,
        (status = 422, body = Problem, description = "e.g. the case is resolved"),
    ))]
async fn request_info(Command(call, id, request): Command<Uuid, RequestInfoRequest>) -> Answer {
    let command = SupportCaseCommand::RequestInfo(RequestInfo {
        comment_id: Uuid::now_v7(),
        body: request.body,
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Assign the case to a support engineer (staff).
#[utoipa::path(post, path = "/v1/cases/{id}/assign", tag = "cases",
    request_body = AssignRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(CaseChanged))]
async fn assign(Command(call, id, request): Command<Uuid, AssignRequest>) -> Answer {
    let command = SupportCaseCommand::Assign(AssignCase {
        assignee: request
            .assignee
            .unwrap_or_else(|| call.ctx.principal.user.clone()),
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Start investigating (staff): from `open` or `waiting_for_customer`.
#[utoipa::path(post, path = "/v1/cases/{id}/investigate", tag = "cases",
    request_body(content = EmptyRequest, description = "Nothing, or `{}`"),
    params(("id" = Uuid, Path), Idempotent),
    responses(
        CaseChanged,
        (status = 422, body = Problem, description = "`invalid_status`: not open or waiting"),
    ))]
async fn investigate(Command(call, id, _): Command<Uuid, EmptyRequest>) -> Answer {
    let command = SupportCaseCommand::StartInvestigation(StartInvestigation { by: call.actor() });
    execute(&call, id, command).await
}

/// Change the priority (staff); the first-response due time is recomputed from the opening.
#[utoipa::path(post, path = "/v1/cases/{id}/priority", tag = "cases",
    request_body = PriorityRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(CaseChanged))]
async fn change_priority(Command(call, id, request): Command<Uuid, PriorityRequest>) -> Answer {
    let command = SupportCaseCommand::ChangePriority(ChangePriority {
        priority: request.priority,
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Add a participant (anyone who sees the case; at most 48). Adding one already on the case
/// changes nothing.
#[utoipa::path(post, path = "/v1/cases/{id}/participants", tag = "cases",
    request_body = ParticipantRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(
        CaseChanged,
        (status = 422, body = Problem, description = "`too_many_participants`, `invalid_email`"),
    ))]
async fn add_participant(Command(call, id, request): Command<Uuid, ParticipantRequest>) -> Answer {
    let command = SupportCaseCommand::AddParticipant(AddParticipant {
        email: request.email,
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Remove a participant. Removing an address that is not on the case changes nothing.
#[utoipa::path(delete, path = "/v1/cases/{id}/participants/{email}", tag = "cases",
    params(("id" = Uuid, Path), ("email" = String, Path, example = "dora@acme.example")),
    responses(CaseChanged))]
async fn remove_participant(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, email)): Path<(Uuid, String)>,
) -> Answer {
    let hash = crate::idempotency::request_hash(
        "DELETE",
        &format!("/v1/cases/{id}/participants/{email}"),
        &serde_json::Value::Null,
    );
    let call = Call { state, ctx, hash };
    let command = SupportCaseCommand::RemoveParticipant(RemoveParticipant {
        email,
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Ask for the case to be escalated (customer side; not on a resolved case).
#[utoipa::path(post, path = "/v1/cases/{id}/escalate", tag = "cases",
    request_body = EscalationRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(
        CaseChanged,
        (status = 422, body = Problem, description = "`escalation_pending`, `already_escalated`, `invalid_status`"),
    ))]
async fn request_escalation(
    Command(call, id, request): Command<Uuid, EscalationRequest>,
) -> Answer {
    let command = SupportCaseCommand::RequestEscalation(RequestEscalation {
        reason: request.reason,
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Accept the pending escalation (staff).
#[utoipa::path(post, path = "/v1/cases/{id}/accept-escalation", tag = "cases",
    request_body(content = EmptyRequest, description = "Nothing, or `{}`"),
    params(("id" = Uuid, Path), Idempotent),
    responses(
        CaseChanged,
        (status = 422, body = Problem, description = "`no_escalation_pending`, `already_escalated`"),
    ))]
async fn accept_escalation(Command(call, id, _): Command<Uuid, EmptyRequest>) -> Answer {
    let command = SupportCaseCommand::AcceptEscalation(AcceptEscalation { by: call.actor() });
    execute(&call, id, command).await
}

/// Grant or revoke support's access to the customer's data (customer side).
#[utoipa::path(post, path = "/v1/cases/{id}/data-access", tag = "cases",
    request_body = DataAccessRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(CaseChanged))]
async fn set_data_access(Command(call, id, request): Command<Uuid, DataAccessRequest>) -> Answer {
    let command = SupportCaseCommand::SetDataAccess(SetDataAccess {
        granted: request.granted,
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Resolve the case (staff, or the customer side: requester, participants, org admins,
/// partners), optionally with a resolution note. A customer-side comment within the reopen
/// window reopens it.
#[utoipa::path(post, path = "/v1/cases/{id}/resolve", tag = "cases",
    request_body(content = ResolveRequest, description = "Nothing, `{}`, or a resolution note"),
    params(("id" = Uuid, Path), Idempotent),
    responses(
        CaseChanged,
        (status = 422, body = Problem, description = "`invalid_status`: already resolved; `case_closed`"),
    ))]
async fn resolve(Command(call, id, request): Command<Uuid, ResolveRequest>) -> Answer {
    let resolution = request.resolution.map(|body| ResolutionNote {
        comment_id: Uuid::now_v7(),
        body,
    });
    let by = call.actor();
    let command = SupportCaseCommand::Resolve(ResolveCase { by, resolution });
    execute(&call, id, command).await
}
