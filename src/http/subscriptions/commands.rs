//! Commands on an existing subscription, each a few lines: extract, build the command, run it
//! through the one command path ([`super::run::execute`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use subdesk_aggregates::subscription::{
    entitlement, AddApp, CancelSubscription, SubscriptionCommand,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::run::execute;
use super::types::*;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Ctx, JsonBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_seats))
        .routes(routes!(purchase_storage))
        .routes(routes!(change_plan))
        .routes(routes!(set_auto_renew))
        .routes(routes!(cancel_subscription))
        .routes(routes!(withdraw_cancellation))
        .routes(routes!(reactivate_subscription))
        .routes(routes!(link_site))
        .routes(routes!(add_contact))
        .routes(routes!(remove_contact))
        .routes(routes!(add_app))
        .routes(routes!(cancel_app))
        .routes(routes!(move_billing_account))
}

/// Change the number of seats (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/seats", tag = "subscriptions",
    request_body = SeatsRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem, description = "e.g. the customer of a partner-managed subscription"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn change_seats(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<SeatsRequest>,
) -> Result<Response, ApiError> {
    let seats = body.value.seats;
    let command = SubscriptionCommand::ChangeSeats { seats };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Buy additional storage (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/storage", tag = "subscriptions",
    request_body = StorageRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn purchase_storage(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<StorageRequest>,
) -> Result<Response, ApiError> {
    let gb = body.value.gb;
    let command = SubscriptionCommand::PurchaseStorage { gb };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Change the plan (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/plan", tag = "subscriptions",
    request_body = PlanRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn change_plan(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<PlanRequest>,
) -> Result<Response, ApiError> {
    let plan = body.value.plan;
    let command = SubscriptionCommand::ChangePlan { plan };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Switch auto-renew on or off (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/auto-renew", tag = "subscriptions",
    request_body = AutoRenewRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn set_auto_renew(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<AutoRenewRequest>,
) -> Result<Response, ApiError> {
    let auto_renew = body.value.auto_renew;
    let command = SubscriptionCommand::SetAutoRenew { auto_renew };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Cancel at term end (default) or immediately. Every active app is cancelled in the same
/// commit when the cancellation takes effect. The customer may cancel a partner-managed
/// subscription, but not a collection.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/cancel", tag = "subscriptions",
    request_body = CancelRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem, description = "e.g. the customer of a collection"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn cancel_subscription(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<CancelRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let command = {
        SubscriptionCommand::Cancel(CancelSubscription {
            effective: request.effective,
            reason: request.reason,
            keep_products: request.keep_products,
            by: ctx.principal.actor(),
        })
    };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Withdraw a cancellation scheduled at term end, before the term ends.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/withdraw-cancellation", tag = "subscriptions",
    request_body = EmptyRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn withdraw_cancellation(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = SubscriptionCommand::WithdrawCancellation;
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Reactivate a cancelled or expired subscription within 60 days of its end (admins).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/reactivate", tag = "subscriptions",
    request_body = EmptyRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem, description = "Only admins reactivate"),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn reactivate_subscription(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = SubscriptionCommand::Reactivate;
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Link a site or group ("begin set up"); any user of the org, and the owner side.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/site", tag = "subscriptions",
    request_body = SiteRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn link_site(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<SiteRequest>,
) -> Result<Response, ApiError> {
    let site = body.value.site;
    let command = SubscriptionCommand::LinkSite { site };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Add a customer contact; any user of the org, and the owner side. The contact gets a
/// welcome e-mail.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/contacts", tag = "subscriptions",
    request_body = ContactRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn add_contact(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<ContactRequest>,
) -> Result<Response, ApiError> {
    let email = body.value.email;
    let command = SubscriptionCommand::AddContact { email };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::CREATED,
        command,
        subscription_receipt,
    )
    .await
}

/// Remove a customer contact.
#[utoipa::path(delete, path = "/v1/subscriptions/{id}/contacts/{email}", tag = "subscriptions",
    params(("id" = Uuid, Path), ("email" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem, description = "e.g. not a contact of this subscription"),
    ))]
async fn remove_contact(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, email)): Path<(Uuid, String)>,
    body: JsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = SubscriptionCommand::RemoveContact { email };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Add an app subscription, with its own entitlement number (owner side; the subscription
/// must be active).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/apps", tag = "subscriptions",
    request_body = AppRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = AppReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn add_app(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<AppRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let command = {
        SubscriptionCommand::AddApp(AddApp {
            app_id: Uuid::now_v7(),
            entitlement_number: entitlement::format_number(rand::random()),
            app: request.app,
            plan: request.plan,
        })
    };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::CREATED,
        command,
        app_receipt,
    )
    .await
}

/// Cancel one app subscription (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/apps/{app_id}/cancel", tag = "subscriptions",
    request_body = EmptyRequest,
    params(("id" = Uuid, Path), ("app_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn cancel_app(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, app_id)): Path<(Uuid, Uuid)>,
    body: JsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = SubscriptionCommand::CancelApp { app_id };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}

/// Move the subscription to another billing account (admins and the selling partner). The
/// contacts are told by e-mail.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/billing-account", tag = "subscriptions",
    request_body = BillingAccountRequest,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
async fn move_billing_account(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    body: JsonBody<BillingAccountRequest>,
) -> Result<Response, ApiError> {
    let to = body.value.billing_account;
    let command = SubscriptionCommand::MoveBillingAccount { to };
    execute(
        &state,
        &ctx,
        id,
        &body.hash,
        StatusCode::OK,
        command,
        subscription_receipt,
    )
    .await
}
