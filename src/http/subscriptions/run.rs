//! The one command path of the subscription routes: access follows from the command
//! (`SubscriptionAction::of`) and is checked on the very state the command is decided on.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use subdesk_aggregates::subscription::{Subscription, SubscriptionCommand};
use uuid::Uuid;

use super::types::subscription_receipt;
use crate::access::{may_change_subscription, sees_subscription, SubscriptionAction};
use crate::auth::Principal;
use crate::http::command::{action_of, run_guarded, Receipt};
use crate::http::error::ApiError;
use crate::http::extract::Call;
use crate::store::{Denied, Guard};

/// A guard that hides subscriptions the caller may not see, then checks `action`.
fn subscription_guard(principal: Principal, action: SubscriptionAction) -> Guard<Subscription> {
    Arc::new(move |subscription: &Subscription| {
        if !subscription.exists() || !sees_subscription(&principal, subscription.into()) {
            return Err(Denied::NotFound);
        }
        may_change_subscription(&principal, subscription.into(), action).map_err(Denied::Forbidden)
    })
}

/// Runs `command` on subscription `id` for the caller, if they see it and may take the action
/// the command is (`SubscriptionAction::of`); 200 with the subscription's receipt.
pub(super) async fn execute(
    call: &Call,
    id: Uuid,
    command: SubscriptionCommand,
) -> Result<Response, ApiError> {
    execute_as(call, id, StatusCode::OK, command, subscription_receipt).await
}

/// [`execute`], answering `status` with `respond`'s view of the state reached.
pub(super) async fn execute_as<B: Serialize>(
    call: &Call,
    id: Uuid,
    status: StatusCode,
    command: SubscriptionCommand,
    respond: fn(&Subscription, Receipt) -> B,
) -> Result<Response, ApiError> {
    let action = action_of(SubscriptionAction::of(&command))?;
    let guard = subscription_guard(call.ctx.principal.clone(), action);
    let bus = &call.state.subscriptions;
    run_guarded(call, bus, id, status, command, guard, respond).await
}

/// What a command on an existing subscription answers, for `/openapi.json`: 200 with its receipt, 403,
/// 404 and 422 (an operation lists one again to describe it better).
pub(super) struct SubscriptionChanged;

impl utoipa::IntoResponses for SubscriptionChanged {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        crate::http::contract::changed("SubscriptionReceipt")
    }
}
