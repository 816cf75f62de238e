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
use crate::http::command::command_routes;
use crate::http::contract::Idempotent;
use crate::http::error::Problem;
use crate::http::extract::{Answer, Command};
use crate::state::AppState;

command_routes! {
    tag = "subscriptions", run = execute, changed = SubscriptionChanged,
    also = [add_contact, remove_contact, add_app, cancel_app];

    /// Change the number of seats (owner side).
    post "/v1/subscriptions/{id}/seats" => change_seats(call, id, r: SeatsRequest)
        [(status = 403, body = Problem, description = "e.g. the customer of a partner-managed subscription")]
        { SubscriptionCommand::ChangeSeats { seats: r.seats } }

    /// Buy additional storage (owner side).
    post "/v1/subscriptions/{id}/storage" => purchase_storage(call, id, r: StorageRequest)
        { SubscriptionCommand::PurchaseStorage { gb: r.gb } }

    /// Change the plan (owner side).
    post "/v1/subscriptions/{id}/plan" => change_plan(call, id, r: PlanRequest)
        { SubscriptionCommand::ChangePlan { plan: r.plan } }

    /// Switch auto-renew on or off (owner side).
    post "/v1/subscriptions/{id}/auto-renew" => set_auto_renew(call, id, r: AutoRenewRequest)
        { SubscriptionCommand::SetAutoRenew { auto_renew: r.auto_renew } }

    /// Cancel at term end (default) or immediately. Every active app is cancelled in the same
    /// commit when the cancellation takes effect. The customer may cancel a partner-managed
    /// subscription, but not a collection.
    post "/v1/subscriptions/{id}/cancel" => cancel_subscription(call, id, r: CancelRequest)
        [(status = 403, body = Problem, description = "e.g. the customer of a collection")]
        {
            SubscriptionCommand::Cancel(CancelSubscription {
                effective: r.effective,
                reason: r.reason,
                keep_products: r.keep_products,
                by: call.actor(),
            })
        }

    /// Withdraw a cancellation scheduled at term end, before the term ends.
    post "/v1/subscriptions/{id}/withdraw-cancellation" =>
        withdraw_cancellation(call, id, _: EmptyRequest)
        { SubscriptionCommand::WithdrawCancellation }

    /// Reactivate a cancelled or expired subscription within 60 days of its end (admins).
    post "/v1/subscriptions/{id}/reactivate" => reactivate_subscription(call, id, _: EmptyRequest)
        [(status = 403, body = Problem, description = "Only admins reactivate")]
        { SubscriptionCommand::Reactivate }

    /// Link a site or group ("begin set up"); any user of the org, and the owner side.
    post "/v1/subscriptions/{id}/site" => link_site(call, id, r: SiteRequest)
        { SubscriptionCommand::LinkSite { site: r.site } }

    /// Move the subscription to another billing account (admins and the selling partner). The
    /// contacts are told by e-mail.
    post "/v1/subscriptions/{id}/billing-account" =>
        move_billing_account(call, id, r: BillingAccountRequest)
        { SubscriptionCommand::MoveBillingAccount { to: r.billing_account } }
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
