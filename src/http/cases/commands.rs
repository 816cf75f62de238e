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
use crate::http::command::command_routes;
use crate::http::contract::Idempotent;
use crate::http::error::Problem;
use crate::http::extract::{Answer, Call, Command, Ctx};
use crate::state::AppState;

command_routes! {
    tag = "cases", run = execute, changed = CaseChanged, also = [remove_participant];

    /// Ask the customer for information (staff).
    ///
    /// Posts the question as a public comment and sets the case `waiting_for_customer`. Without a
    /// customer-side reply within the auto-resolve policy (default 5 days) the system resolves
    /// it; the case detail shows when (`auto_resolve_due`).
    post "/v1/cases/{id}/request-info" => request_info(call, id, r: RequestInfoRequest)
        [(status = 422, body = Problem, description = "e.g. the case is resolved")]
        {
            let (comment_id, body, by) = (Uuid::now_v7(), r.body, call.actor());
            SupportCaseCommand::RequestInfo(RequestInfo { comment_id, body, by })
        }

    /// Assign the case to a support engineer (staff).
    post "/v1/cases/{id}/assign" => assign(call, id, r: AssignRequest)
        {
            let assignee = r.assignee.unwrap_or_else(|| call.ctx.principal.user.clone());
            SupportCaseCommand::Assign(AssignCase { assignee, by: call.actor() })
        }

    /// Start investigating (staff): from `open` or `waiting_for_customer`.
    post "/v1/cases/{id}/investigate" => investigate(call, id, _: EmptyRequest)
        [(status = 422, body = Problem, description = "`invalid_status`: not open or waiting")]
        { SupportCaseCommand::StartInvestigation(StartInvestigation { by: call.actor() }) }

    /// Change the priority (staff); the first-response due time is recomputed from the opening.
    post "/v1/cases/{id}/priority" => change_priority(call, id, r: PriorityRequest)
        { SupportCaseCommand::ChangePriority(ChangePriority { priority: r.priority, by: call.actor() }) }

    /// Add a participant (anyone who sees the case; at most 48). Adding one already on the case
    /// changes nothing.
    post "/v1/cases/{id}/participants" => add_participant(call, id, r: ParticipantRequest)
        [(status = 422, body = Problem, description = "`too_many_participants`, `invalid_email`")]
        { SupportCaseCommand::AddParticipant(AddParticipant { email: r.email, by: call.actor() }) }

    /// Ask for the case to be escalated (customer side; not on a resolved case).
    post "/v1/cases/{id}/escalate" => request_escalation(call, id, r: EscalationRequest)
        [(status = 422, body = Problem,
            description = "`escalation_pending`, `already_escalated`, `invalid_status`")]
        { SupportCaseCommand::RequestEscalation(RequestEscalation { reason: r.reason, by: call.actor() }) }

    /// Accept the pending escalation (staff).
    post "/v1/cases/{id}/accept-escalation" => accept_escalation(call, id, _: EmptyRequest)
        [(status = 422, body = Problem, description = "`no_escalation_pending`, `already_escalated`")]
        { SupportCaseCommand::AcceptEscalation(AcceptEscalation { by: call.actor() }) }

    /// Grant or revoke support's access to the customer's data (customer side).
    post "/v1/cases/{id}/data-access" => set_data_access(call, id, r: DataAccessRequest)
        { SupportCaseCommand::SetDataAccess(SetDataAccess { granted: r.granted, by: call.actor() }) }

    /// Resolve the case (staff, or the customer side: requester, participants, org admins,
    /// partners), optionally with a resolution note. A customer-side comment within the reopen
    /// window reopens it.
    post "/v1/cases/{id}/resolve" => resolve(call, id, r: ResolveRequest)
        [(status = 422, body = Problem, description = "`invalid_status`: already resolved; `case_closed`")]
        {
            let resolution = r.resolution.map(|body| ResolutionNote { comment_id: Uuid::now_v7(), body });
            SupportCaseCommand::Resolve(ResolveCase { by: call.actor(), resolution })
        }
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
