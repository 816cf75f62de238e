//! Commands on an existing subscription, each a few lines: extract, build the command, run it
//! through the one command path ([`super::run::execute`]).

use axum::http::StatusCode;
use subdesk_aggregates::subscription::{
    entitlement, AddApp, CancelSubscription, SubscriptionCommand,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::run::{execute, execute_as, SubscriptionChanged};
use super::types::*;
use crate::http::contract::Idempotent;
use crate::http::error::Problem;
use crate::http::extract::{Answer, Command};
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
    params(("id" = Uuid, Path), Idempotent),
    responses(
        SubscriptionChanged,
        (status = 403, body = Problem, description = "e.g. the customer of a partner-managed subscription"),
    ))]
async fn change_seats(Command(call, id, request): Command<Uuid, SeatsRequest>) -> Answer {
    let seats = request.seats;
    let command = SubscriptionCommand::ChangeSeats { seats };
    execute(&call, id, command).await
}

/// Buy additional storage (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/storage", tag = "subscriptions",
    request_body = StorageRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(SubscriptionChanged))]
async fn purchase_storage(Command(call, id, request): Command<Uuid, StorageRequest>) -> Answer {
    let gb = request.gb;
    let command = SubscriptionCommand::PurchaseStorage { gb };
    execute(&call, id, command).await
}

/// Change the plan (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/plan", tag = "subscriptions",
    request_body = PlanRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(SubscriptionChanged))]
async fn change_plan(Command(call, id, request): Command<Uuid, PlanRequest>) -> Answer {
    let plan = request.plan;
    let command = SubscriptionCommand::ChangePlan { plan };
    execute(&call, id, command).await
}

/// Switch auto-renew on or off (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/auto-renew", tag = "subscriptions",
    request_body = AutoRenewRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(SubscriptionChanged))]
async fn set_auto_renew(Command(call, id, request): Command<Uuid, AutoRenewRequest>) -> Answer {
    let auto_renew = request.auto_renew;
    let command = SubscriptionCommand::SetAutoRenew { auto_renew };
    execute(&call, id, command).await
}

/// Cancel at term end (default) or immediately. Every active app is cancelled in the same
/// commit when the cancellation takes effect. The customer may cancel a partner-managed
/// subscription, but not a collection.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/cancel", tag = "subscriptions",
    request_body = CancelRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(
        SubscriptionChanged,
        (status = 403, body = Problem, description = "e.g. the customer of a collection"),
    ))]
async fn cancel_subscription(Command(call, id, request): Command<Uuid, CancelRequest>) -> Answer {
    let command = SubscriptionCommand::Cancel(CancelSubscription {
        effective: request.effective,
        reason: request.reason,
        keep_products: request.keep_products,
        by: call.actor(),
    });
    execute(&call, id, command).await
}

/// Withdraw a cancellation scheduled at term end, before the term ends.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/withdraw-cancellation", tag = "subscriptions",
    request_body = EmptyRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(SubscriptionChanged))]
async fn withdraw_cancellation(Command(call, id, _): Command<Uuid, EmptyRequest>) -> Answer {
    let command = SubscriptionCommand::WithdrawCancellation;
    execute(&call, id, command).await
}

/// Reactivate a cancelled or expired subscription within 60 days of its end (admins).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/reactivate", tag = "subscriptions",
    request_body = EmptyRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(
        SubscriptionChanged,
        (status = 403, body = Problem, description = "Only admins reactivate"),
    ))]
async fn reactivate_subscription(Command(call, id, _): Command<Uuid, EmptyRequest>) -> Answer {
    let command = SubscriptionCommand::Reactivate;
    execute(&call, id, command).await
}

/// Link a site or group ("begin set up"); any user of the org, and the owner side.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/site", tag = "subscriptions",
    request_body = SiteRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(SubscriptionChanged))]
async fn link_site(Command(call, id, request): Command<Uuid, SiteRequest>) -> Answer {
    let site = request.site;
    let command = SubscriptionCommand::LinkSite { site };
    execute(&call, id, command).await
}

/// Add a customer contact; any user of the org, and the owner side. The contact gets a
/// welcome e-mail.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/contacts", tag = "subscriptions",
    request_body = ContactRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(
        (status = 201, body = SubscriptionReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem),
    ))]
async fn add_contact(Command(call, id, request): Command<Uuid, ContactRequest>) -> Answer {
    let email = request.email;
    let command = SubscriptionCommand::AddContact { email };
    execute_as(
        &call,
        id,
        StatusCode::CREATED,
        command,
        subscription_receipt,
    )
    .await
}

/// Remove a customer contact.
#[utoipa::path(delete, path = "/v1/subscriptions/{id}/contacts/{email}", tag = "subscriptions",
    params(("id" = Uuid, Path), ("email" = String, Path), Idempotent),
    responses(
        SubscriptionChanged,
        (status = 422, body = Problem, description = "e.g. not a contact of this subscription"),
    ))]
async fn remove_contact(
    Command(call, (id, email), _): Command<(Uuid, String), EmptyRequest>,
) -> Answer {
    let command = SubscriptionCommand::RemoveContact { email };
    execute(&call, id, command).await
}

/// Add an app subscription, with its own entitlement number (owner side; the subscription
/// must be active).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/apps", tag = "subscriptions",
    request_body = AppRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(
        (status = 201, body = AppReceipt),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem),
    ))]
async fn add_app(Command(call, id, request): Command<Uuid, AppRequest>) -> Answer {
    let command = SubscriptionCommand::AddApp(AddApp {
        app_id: Uuid::now_v7(),
        entitlement_number: entitlement::format_number(rand::random()),
        app: request.app,
        plan: request.plan,
    });
    execute_as(&call, id, StatusCode::CREATED, command, app_receipt).await
}

/// Cancel one app subscription (owner side).
#[utoipa::path(post, path = "/v1/subscriptions/{id}/apps/{app_id}/cancel", tag = "subscriptions",
    request_body = EmptyRequest,
    params(("id" = Uuid, Path), ("app_id" = Uuid, Path), Idempotent),
    responses(SubscriptionChanged))]
async fn cancel_app(Command(call, (id, app_id), _): Command<(Uuid, Uuid), EmptyRequest>) -> Answer {
    let command = SubscriptionCommand::CancelApp { app_id };
    execute(&call, id, command).await
}

/// Move the subscription to another billing account (admins and the selling partner). The
/// contacts are told by e-mail.
#[utoipa::path(post, path = "/v1/subscriptions/{id}/billing-account", tag = "subscriptions",
    request_body = BillingAccountRequest,
    params(("id" = Uuid, Path), Idempotent),
    responses(SubscriptionChanged))]
async fn move_billing_account(
    Command(call, id, request): Command<Uuid, BillingAccountRequest>,
) -> Answer {
    let to = request.billing_account;
    let command = SubscriptionCommand::MoveBillingAccount { to };
    execute(&call, id, command).await
}
