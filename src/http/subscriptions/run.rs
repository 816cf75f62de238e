//! The one command path of the subscription routes: access follows from the command
//! (`SubscriptionAction::of`) and is checked on the very state the command is decided on.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use subdesk_aggregates::subscription::{Subscription, SubscriptionCommand};
use uuid::Uuid;

use crate::access::{may_change_subscription, sees_subscription, SubscriptionAction};
use crate::auth::Principal;
use crate::http::command::{run, Prepared, Receipt};
use crate::http::error::ApiError;
use crate::http::extract::Ctx;
use crate::state::AppState;
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
/// the command is; the answer is `respond`'s view of the state reached.
pub(super) async fn execute<B: Serialize>(
    state: &AppState,
    ctx: &Ctx,
    id: Uuid,
    hash: &str,
    status: StatusCode,
    command: SubscriptionCommand,
    respond: fn(&Subscription, Receipt) -> B,
) -> Result<Response, ApiError> {
    let action = SubscriptionAction::of(&command).ok_or_else(|| {
        ApiError::Internal("a command no caller issues on an existing subscription".into())
    })?;
    let principal = ctx.principal.clone();
    run(
        state,
        &state.subscriptions,
        ctx,
        hash,
        status,
        move || async move {
            Ok(Prepared {
                id: id.to_string(),
                command,
                guard: Some(subscription_guard(principal, action)),
            })
        },
        respond,
    )
    .await
}
