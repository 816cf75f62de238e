//! The one command path of the case routes, and what it stands on: who sees a case (checked
//! on the very state a command is decided on, or on the stream itself for reads of the log),
//! and the human keys of new cases.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use cqrs_es::Aggregate;
use subdesk_aggregates::support_case::{
    SupportCase, SupportCaseCommand, SupportCaseEvent, AGGREGATE_TYPE,
};
use subdesk_projections::StoredEvent;
use uuid::Uuid;

use super::types::case_receipt;
use crate::access::{may, sees_case, CaseAction, CaseAudience};
use crate::auth::Principal;
use crate::http::command::{action_of, run_guarded};
use crate::http::error::ApiError;
use crate::http::extract::Call;
use crate::state::AppState;
use crate::store::{Denied, Guard};

/// The one command path of an existing case: runs `command` on case `id` for the caller, if
/// they see the case and may take the action the command is (`CaseAction::of`); 200 with the
/// case's receipt.
pub(super) async fn execute(
    call: &Call,
    id: Uuid,
    command: SupportCaseCommand,
) -> Result<Response, ApiError> {
    execute_as(call, id, StatusCode::OK, command).await
}

/// [`execute`], answering `status`.
pub(super) async fn execute_as(
    call: &Call,
    id: Uuid,
    status: StatusCode,
    command: SupportCaseCommand,
) -> Result<Response, ApiError> {
    let guard = case_guard(
        call.ctx.principal.clone(),
        action_of(CaseAction::of(&command))?,
    );
    run_guarded(
        call,
        &call.state.cases,
        id,
        status,
        command,
        guard,
        case_receipt,
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
pub(super) async fn next_case_key(state: &AppState) -> Result<String, ApiError> {
    let client = state.pool.get().await?;
    let n: i64 = client
        .query_one("SELECT nextval('case_key_seq')", &[])
        .await?
        .try_get(0)?;
    Ok(format!("CASE-{n}"))
}

/// A case rebuilt from its own events, with those events, if the caller sees it. Reads the
/// log, not the read model, so it is never behind.
pub(crate) async fn visible_case_from_log(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<(SupportCase, Vec<(StoredEvent, SupportCaseEvent)>), ApiError> {
    let events = {
        let client = state.pool.get().await?;
        crate::history::stream(&**client, AGGREGATE_TYPE, &id.to_string()).await?
    };
    let mut case = SupportCase::default();
    let mut decoded = Vec::with_capacity(events.len());
    for stored in events {
        let event = stored.decode::<SupportCase>()?;
        case.apply(event.clone());
        decoded.push((stored, event));
    }
    let audience = CaseAudience {
        org_id: &case.org_id,
        requester: &case.requester,
        participants: &case.participants,
    };
    if !case.exists() || !sees_case(principal, audience) {
        return Err(ApiError::not_found("case"));
    }
    Ok((case, decoded))
}

/// What a command on an existing case answers, for `/openapi.json`: 200 with its receipt, 403,
/// 404 and 422 (an operation lists one again to describe it better).
pub(super) struct CaseChanged;

impl utoipa::IntoResponses for CaseChanged {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        crate::http::contract::changed("CaseReceipt")
    }
}
