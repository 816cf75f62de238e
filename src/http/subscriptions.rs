//! `/v1/subscriptions`: subscriptions, their apps, contacts, site, billing account and history.
//!
//! Commands run through [`run`] with a guard on the loaded subscription, so visibility (404)
//! and the channel rules (403) are checked on the very state the command is decided on; the
//! rules themselves live in [`crate::access::subscriptions`]. Reads come from the
//! `subscriptions` read model, history from the event log.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subdesk_aggregates::subscription::{
    entitlement, AddApp, CancelEffective, CancelSubscription, Channel, CreateSubscription,
    Subscription, SubscriptionCommand, SubscriptionStatus, AGGREGATE_TYPE,
};
use subdesk_aggregates::ActorRole;
use subdesk_projections::subscriptions::SubscriptionProjection;
use tokio_postgres::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::command::{run, Prepared, Receipt};
use super::consistency::wait_for;
use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use super::timetravel;
use crate::access::{
    may_change_subscription, may_create, sees_subscription, SubscriptionAction,
    SubscriptionAudience,
};
use crate::state::AppState;
use crate::auth::{Principal, SCOPE_VIEW_CUSTOMERS};
use crate::history::HistoryEntry;
use crate::store::{Denied, Guard};
use subdesk_aggregates::partner_relationship::PartnerScope;

/// Name of the projection behind subscription reads.
const PROJECTION: &str = "subscriptions";

/// Most subscriptions one list page returns.
const MAX_PAGE: i64 = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_subscription, list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(subscription_history))
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

// --- responses to commands ----------------------------------------------------------------

/// The answer to a subscription command.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "entitlement_number": "E-4K2M-9QXT-7ZP3",
    "status": "active", "version": 2, "position": 42
}))]
pub struct SubscriptionReceipt {
    pub id: String,
    pub entitlement_number: String,
    #[schema(schema_with = super::schema::subscription_status)]
    pub status: SubscriptionStatus,
    pub version: i64,
    pub position: i64,
}

fn subscription_receipt(subscription: &Subscription, receipt: Receipt) -> SubscriptionReceipt {
    SubscriptionReceipt {
        id: receipt.id,
        entitlement_number: subscription.entitlement_number.clone(),
        status: subscription.status,
        version: receipt.version,
        position: receipt.position,
    }
}

/// The answer to adding an app: the app's own id and entitlement number.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "app_id": "0193a8f3-0c1d-7e55-8a4b-5d0c1e2f3a4b",
    "entitlement_number": "E-7PQR-2M4K-XZ9T", "status": "active", "version": 3, "position": 57
}))]
pub struct AppReceipt {
    /// The subscription.
    pub id: String,
    pub app_id: Option<Uuid>,
    pub entitlement_number: Option<String>,
    #[schema(schema_with = super::schema::app_status)]
    pub status: Option<String>,
    pub version: i64,
    pub position: i64,
}

fn app_receipt(subscription: &Subscription, receipt: Receipt) -> AppReceipt {
    // Adding an app appends exactly one `AppSubscriptionAdded`, so the state the command
    // reached (or the one rebuilt at that version for a replay) ends with that app.
    let app = subscription.apps.last();
    AppReceipt {
        id: receipt.id,
        app_id: app.map(|a| a.app_id),
        entitlement_number: app.map(|a| a.entitlement_number.clone()),
        status: app.map(|a| a.status.as_str().to_string()),
        version: receipt.version,
        position: receipt.position,
    }
}

// --- commands -------------------------------------------------------------------------------

/// A guard that hides subscriptions the caller may not see, then checks `action`.
fn subscription_guard(principal: Principal, action: SubscriptionAction) -> Guard<Subscription> {
    Arc::new(move |subscription: &Subscription| {
        if !subscription.exists() || !sees_subscription(&principal, subscription.into()) {
            return Err(Denied::NotFound);
        }
        may_change_subscription(&principal, subscription.into(), action).map_err(Denied::Forbidden)
    })
}

/// Runs `command` on subscription `id` for a caller allowed to do `action`.
#[allow(clippy::too_many_arguments)]
async fn change<B: Serialize>(
    state: &AppState,
    ctx: &Ctx,
    hash: &str,
    id: Uuid,
    status: StatusCode,
    action: SubscriptionAction,
    command: impl FnOnce(&Principal) -> SubscriptionCommand,
    respond: fn(&Subscription, Receipt) -> B,
) -> Result<Response, ApiError> {
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
                command: command(&principal),
                guard: Some(subscription_guard(principal, action)),
            })
        },
        respond,
    )
    .await
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 25,
    "term_start": "2026-03-01T00:00:00Z", "term_end": "2027-03-01T00:00:00Z",
    "auto_renew": true, "channel": {"kind": "partner", "partner_id": "p-cloudwise"},
    "billing_account": "BA-1001"
}))]
pub struct CreateSubscriptionRequest {
    /// The customer org; customers may leave it out (their own org).
    #[schema(max_length = 128)]
    pub org_id: Option<String>,
    #[schema(max_length = 255)]
    pub product: String,
    #[schema(max_length = 255)]
    pub plan: String,
    /// 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub seats: u32,
    /// Defaults to now; a term that starts later makes the subscription `upcoming`.
    pub term_start: Option<DateTime<Utc>>,
    /// The bill date; after `term_start` and in the future.
    pub term_end: DateTime<Utc>,
    #[serde(default = "default_true")]
    pub auto_renew: bool,
    #[schema(schema_with = super::schema::channel)]
    pub channel: Option<Channel>,
    /// Defaults to the org id (the org's default billing account).
    #[schema(max_length = 128)]
    pub billing_account: Option<String>,
    /// Makes the subscription a collection of these products.
    #[serde(default)]
    #[schema(max_items = 20, inline, value_type = Vec<super::schema::ProductName>)]
    pub included_products: Vec<String>,
}

/// Buy a subscription: org admins directly, partners for the orgs that granted them a
/// relationship with `view_customers`, admins for anyone (a partner subscription still needs
/// that relationship: 422 `no_partner_relationship`).
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions",
    request_body = CreateSubscriptionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to repeat")),
    responses(
        (status = 201, body = SubscriptionReceipt),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "e.g. a customer creating a partner subscription"),
        (status = 404, body = Problem, description = "The org is not visible to the caller (for a partner: it has not granted the partner a relationship)"),
        (status = 422, body = Problem, description = "A rule is broken; nothing was appended"),
    ))]
async fn create_subscription(
    State(state): State<AppState>,
    ctx: Ctx,
    body: JsonBody<CreateSubscriptionRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let principal = ctx.principal.clone();
    let now = state.clock.now();
    let run_state = state.clone();
    run(
        &state,
        &state.subscriptions,
        &ctx,
        &body.hash,
        StatusCode::CREATED,
        move || async move {
            let org_id = match (request.org_id, &principal.org_id) {
                (Some(org), _) => org,
                (None, Some(own)) => own.clone(),
                (None, None) => {
                    return Err(ApiError::unprocessable(
                        "required_field",
                        "org_id must not be empty",
                    ))
                }
            };
            let channel = match (request.channel, &principal.partner_id) {
                (Some(channel), _) => channel,
                (None, Some(partner_id)) => Channel::Partner {
                    partner_id: partner_id.clone(),
                },
                (None, None) => Channel::Direct,
            };
            if channel
                .partner_id()
                .is_some_and(|p| !subdesk_aggregates::partner_relationship::is_valid_partner_id(p))
            {
                return Err(ApiError::unprocessable(
                    "invalid_partner_id",
                    "a partner id is a domain-like name: 1 to 63 characters of a-z, 0-9 and `-`, \
                     not starting or ending with `-`",
                ));
            }
            may_create(&principal, &org_id, &channel).map_err(|denied| match denied {
                Denied::NotFound => ApiError::not_found("org"),
                Denied::Forbidden(why) => ApiError::Forbidden(why),
            })?;
            // Selling assigns nothing: a partner subscription needs the org's relationship
            // with that partner, whoever records the sale (for a partner principal its reach
            // already said so).
            if let (Some(partner), false) =
                (channel.partner_id(), principal.role == ActorRole::Partner)
            {
                let client = run_state.pool.get().await?;
                let relationship = crate::relationships::find(&**client, &org_id, partner).await?;
                if !relationship.is_some_and(|r| {
                    r.is_active() && r.scopes.iter().any(|s| s == SCOPE_VIEW_CUSTOMERS)
                }) {
                    return Err(ApiError::unprocessable(
                        "no_partner_relationship",
                        format!(
                            "{org_id} has not granted {partner} a relationship with \
                             view_customers; a partner sells only to orgs that did"
                        ),
                    ));
                }
            }
            let subscription_id = Uuid::now_v7();
            Ok(Prepared {
                id: subscription_id.to_string(),
                command: SubscriptionCommand::Create(CreateSubscription {
                    subscription_id,
                    entitlement_number: entitlement::format_number(rand::random()),
                    billing_account: request.billing_account.unwrap_or_else(|| org_id.clone()),
                    org_id,
                    product: request.product,
                    plan: request.plan,
                    seats: request.seats,
                    term_start: request.term_start.unwrap_or(now),
                    term_end: request.term_end,
                    auto_renew: request.auto_renew,
                    channel,
                    included_products: request.included_products,
                    from_collection: None,
                    created_by: principal.actor(),
                }),
                guard: None,
            })
        },
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"seats": 30}))]
pub struct SeatsRequest {
    /// More than now takes effect at once; fewer takes effect at the next renewal; the current
    /// number withdraws a scheduled reduction. 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub seats: u32,
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
    let command = move |_: &Principal| SubscriptionCommand::ChangeSeats { seats };
    let (status, action) = (StatusCode::OK, SubscriptionAction::Manage);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"gb": 10}))]
pub struct StorageRequest {
    /// Additional storage to buy, in GB (1 to 1,000,000).
    #[schema(minimum = 1, maximum = 1000000)]
    pub gb: u32,
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
    let command = move |_: &Principal| SubscriptionCommand::PurchaseStorage { gb };
    let (status, action) = (StatusCode::OK, SubscriptionAction::Manage);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan": "premium"}))]
pub struct PlanRequest {
    #[schema(max_length = 255)]
    pub plan: String,
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
    let command = move |_: &Principal| SubscriptionCommand::ChangePlan { plan };
    let (status, action) = (StatusCode::OK, SubscriptionAction::Manage);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"auto_renew": false}))]
pub struct AutoRenewRequest {
    pub auto_renew: bool,
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
    let command = move |_: &Principal| SubscriptionCommand::SetAutoRenew { auto_renew };
    let (status, action) = (StatusCode::OK, SubscriptionAction::Manage);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"effective": "immediately", "reason": "Consolidating tools",
    "keep_products": ["jira"]}))]
pub struct CancelRequest {
    #[serde(default)]
    #[schema(schema_with = super::schema::cancel_effective)]
    pub effective: CancelEffective,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: String,
    /// Collections only (cancelled by their partner): included products to keep; each becomes
    /// a standalone subscription once the cancellation takes effect.
    #[serde(default)]
    #[schema(max_items = 20, inline, value_type = Vec<super::schema::ProductName>)]
    pub keep_products: Vec<String>,
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
    let command = move |principal: &Principal| {
        SubscriptionCommand::Cancel(CancelSubscription {
            effective: request.effective,
            reason: request.reason,
            keep_products: request.keep_products,
            by: principal.actor(),
        })
    };
    let (status, action) = (StatusCode::OK, SubscriptionAction::Cancel);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

/// A request without fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({}))]
pub struct EmptyRequest {}

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
    let command = |_: &Principal| SubscriptionCommand::WithdrawCancellation;
    let (status, action) = (StatusCode::OK, SubscriptionAction::Cancel);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
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
    let command = |_: &Principal| SubscriptionCommand::Reactivate;
    let (status, action) = (StatusCode::OK, SubscriptionAction::Reactivate);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"site": "https://acme.atlassian.net"}))]
pub struct SiteRequest {
    /// A site URL or group path.
    #[schema(max_length = 2048)]
    pub site: String,
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
    let command = move |_: &Principal| SubscriptionCommand::LinkSite { site };
    let (status, action) = (StatusCode::OK, SubscriptionAction::CustomerSide);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bob@acme.example"}))]
pub struct ContactRequest {
    #[schema(max_length = 254)]
    pub email: String,
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
    let command = move |_: &Principal| SubscriptionCommand::AddContact { email };
    let (status, action) = (StatusCode::CREATED, SubscriptionAction::CustomerSide);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
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
    let command = move |_: &Principal| SubscriptionCommand::RemoveContact { email };
    let (status, action) = (StatusCode::OK, SubscriptionAction::CustomerSide);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"app": "tempo-timesheets", "plan": "standard"}))]
pub struct AppRequest {
    #[schema(max_length = 255)]
    pub app: String,
    #[schema(max_length = 255)]
    pub plan: String,
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
    let command = move |_: &Principal| {
        SubscriptionCommand::AddApp(AddApp {
            app_id: Uuid::now_v7(),
            entitlement_number: entitlement::format_number(rand::random()),
            app: request.app,
            plan: request.plan,
        })
    };
    let (status, action) = (StatusCode::CREATED, SubscriptionAction::Manage);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
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
    let command = move |_: &Principal| SubscriptionCommand::CancelApp { app_id };
    let (status, action) = (StatusCode::OK, SubscriptionAction::Manage);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"billing_account": "BA-2002"}))]
pub struct BillingAccountRequest {
    #[schema(max_length = 128)]
    pub billing_account: String,
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
    let command = move |_: &Principal| SubscriptionCommand::MoveBillingAccount { to };
    let (status, action) = (StatusCode::OK, SubscriptionAction::MoveBillingAccount);
    change(
        &state,
        &ctx,
        &body.hash,
        id,
        status,
        action,
        command,
        subscription_receipt,
    )
    .await
}

// --- reads ----------------------------------------------------------------------------------

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail: rejection.body_text(),
    }
}

/// Whole days left until `term_end` (rounded up; 0 once reached).
fn days_until(term_end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let seconds = (term_end - now).num_seconds();
    if seconds <= 0 {
        0
    } else {
        (seconds + 86_399) / 86_400
    }
}

/// Days until renewal (the bill date) while the subscription has not ended.
fn renewal_in(status: &str, term_end: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
    matches!(status, "upcoming" | "active" | "non_renewing").then(|| days_until(term_end, now))
}

/// A portal tab.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tab {
    /// Active and non-renewing.
    #[default]
    Active,
    Upcoming,
    /// Cancelled and expired.
    Inactive,
}

impl Tab {
    fn statuses(self) -> Vec<String> {
        let statuses: &[SubscriptionStatus] = match self {
            Self::Active => &[SubscriptionStatus::Active, SubscriptionStatus::NonRenewing],
            Self::Upcoming => &[SubscriptionStatus::Upcoming],
            Self::Inactive => &[SubscriptionStatus::Cancelled, SubscriptionStatus::Expired],
        };
        statuses.iter().map(|s| s.as_str().to_string()).collect()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active` (active and non-renewing; the default), `upcoming`, or `inactive` (cancelled
    /// and expired).
    #[param(inline)]
    pub tab: Option<Tab>,
    /// Only this org's subscriptions (staff; customers always see only their own org).
    #[param(max_length = 128)]
    pub org_id: Option<String>,
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<i64>,
    /// The `next` token of the previous page (422 `invalid_after` for one this server did not
    /// issue).
    #[param(max_length = 64, pattern = r"^-?[0-9]+\.[0-9a-fA-F-]+$")]
    pub after: Option<String>,
    /// Answer only once the read model has applied this position (from a command response).
    pub min_position: Option<i64>,
}

/// One line of the subscription list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionSummary {
    pub id: Uuid,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: i32,
    pub status: String,
    /// The bill date.
    pub term_end: DateTime<Utc>,
    /// Whole days until the bill date, computed when read; null once ended.
    pub days_until_renewal: Option<i64>,
    pub auto_renew: bool,
    /// `direct` or `partner`.
    pub channel: String,
    pub partner_id: Option<String>,
    /// Active app subscriptions.
    pub app_count: i32,
    pub collection: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{
    "id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "entitlement_number": "E-4K2M-9QXT-7ZP3",
    "org_id": "acme", "product": "jira-software", "plan": "standard", "seats": 25,
    "status": "active", "term_end": "2027-03-01T00:00:00Z", "days_until_renewal": 97,
    "auto_renew": true, "channel": "partner", "partner_id": "p-cloudwise", "app_count": 2,
    "collection": false
}], "next": null}))]
pub struct SubscriptionList {
    /// Soonest bill date first.
    pub items: Vec<SubscriptionSummary>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// Parses a page token: `<term_end in microseconds>.<id>`.
fn parse_after(token: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || {
        ApiError::unprocessable(
            "invalid_after",
            "`after` must be the `next` token of a previous page",
        )
    };
    let (micros, id) = token.split_once('.').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let at = DateTime::from_timestamp_micros(micros)
        .filter(super::storable)
        .ok_or_else(invalid)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
}

/// The caller's subscriptions on one portal tab: customers their org's, partners those they
/// sold and manage in the orgs whose relationship allows `view_customers`, staff everyone's.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions",
    params(ListParams),
    responses(
        (status = 200, body = SubscriptionList),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time"),
    ))]
async fn list_subscriptions(
    State(state): State<AppState>,
    ctx: Ctx,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    if let Some(position) = params.min_position {
        wait_for(&state, PROJECTION, position).await?;
    }
    let principal = &ctx.principal;
    let empty = || {
        Json(SubscriptionList {
            items: Vec::new(),
            next: None,
        })
    };
    let (org_id, partner_id, reached) = match principal.role {
        ActorRole::Customer => {
            if params.org_id.is_some() && params.org_id != principal.org_id {
                return Ok(empty());
            }
            (principal.org_id.clone(), None, None)
        }
        ActorRole::Partner => {
            let reached = principal.reach.orgs(PartnerScope::ViewCustomers);
            if reached.is_empty() {
                return Ok(empty());
            }
            (params.org_id, principal.partner_id.clone(), Some(reached))
        }
        _ => (params.org_id, None, None),
    };
    let limit = params.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let (after_end, after_id) = match params.after.as_deref() {
        Some(token) => {
            let (at, id) = parse_after(token)?;
            (Some(at), Some(id))
        }
        None => (None, None),
    };
    let statuses = params.tab.unwrap_or_default().statuses();
    let client = state.read_pool.get().await?;
    let rows = client
        .query(
            "SELECT id, entitlement_number, org_id, product, plan, seats, status, term_end, \
                    auto_renew, channel, partner_id, app_count, \
                    jsonb_array_length(included_products) > 0 \
               FROM subscription_view \
              WHERE status = ANY($1) \
                AND ($2::text IS NULL OR org_id = $2) \
                AND ($3::text IS NULL OR partner_id = $3) \
                AND ($4::timestamptz IS NULL OR (term_end, id) > ($4, $5::uuid)) \
                AND ($7::text[] IS NULL OR org_id = ANY($7)) \
              ORDER BY term_end, id \
              LIMIT $6",
            &[
                &statuses,
                &org_id,
                &partner_id,
                &after_end,
                &after_id,
                &(limit + 1),
                &reached,
            ],
        )
        .await?;
    let now = state.clock.now();
    let mut items: Vec<SubscriptionSummary> = rows
        .iter()
        .map(|row| {
            let status: String = row.get(6);
            let term_end: DateTime<Utc> = row.get(7);
            SubscriptionSummary {
                id: row.get(0),
                entitlement_number: row.get(1),
                org_id: row.get(2),
                product: row.get(3),
                plan: row.get(4),
                seats: row.get(5),
                days_until_renewal: renewal_in(&status, term_end, now),
                status,
                term_end,
                auto_renew: row.get(8),
                channel: row.get(9),
                partner_id: row.get(10),
                app_count: row.get(11),
                collection: row.get(12),
            }
        })
        .collect();
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|last| format!("{}.{}", last.term_end.timestamp_micros(), last.id))
    } else {
        None
    };
    Ok(Json(SubscriptionList { items, next }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Answer only once the read model has applied this position (from a command response).
    pub min_position: Option<i64>,
    /// Time travel: the subscription as it was at this instant (RFC 3339), rebuilt from its
    /// events.
    pub as_of: Option<DateTime<Utc>>,
    /// Time travel: the subscription as it was after its first N events.
    #[param(minimum = 1)]
    pub at_version: Option<i64>,
}

/// An app subscription as the detail page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppDetail {
    pub app_id: Uuid,
    pub entitlement_number: String,
    pub app: String,
    pub plan: String,
    /// `active` or `cancelled`.
    pub status: String,
    /// Why it was cancelled: `requested`, `subscription_cancelled`, `subscription_expired`.
    pub cause: Option<String>,
    pub added_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// A subscription as its read model shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDetail {
    pub id: Uuid,
    pub entitlement_number: String,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub seats: i32,
    /// Seats from the next renewal on, when a reduction is scheduled.
    pub scheduled_seats: Option<i32>,
    /// Additional storage bought, in GB.
    pub storage_gb: i32,
    pub term_start: DateTime<Utc>,
    pub term_end: DateTime<Utc>,
    /// The bill date (the term end).
    pub bill_date: DateTime<Utc>,
    /// Whole days until the bill date, computed when read; null once ended.
    pub days_until_renewal: Option<i64>,
    pub auto_renew: bool,
    /// `direct` or `partner`.
    pub channel: String,
    pub partner_id: Option<String>,
    pub billing_account: String,
    /// The linked site or group, once set up.
    pub site: Option<String>,
    pub contacts: Vec<String>,
    /// For a collection: its products.
    pub included_products: Vec<String>,
    /// For a cancelled collection: the products that became standalone subscriptions.
    pub kept_products: Vec<String>,
    /// For a standalone subscription split off a collection: that collection.
    pub from_collection: Option<Uuid>,
    pub status: String,
    pub cancellation_reason: Option<String>,
    /// When a scheduled cancellation takes effect (or a past one took effect).
    pub cancel_effective_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub apps: Vec<AppDetail>,
}

/// A subscription with its apps and contacts.
#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = Uuid, Path), ReadParams),
    responses(
        (status = 200, body = SubscriptionDetail),
        (status = 404, body = Problem),
        (status = 503, body = Problem, description = "The read model did not reach `min_position` in time"),
    ))]
async fn get_subscription(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
    params: Result<Query<ReadParams>, QueryRejection>,
) -> Result<Json<SubscriptionDetail>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let Some(cut) = timetravel::cut(params.as_of, params.at_version)? else {
        if let Some(position) = params.min_position {
            wait_for(&state, PROJECTION, position).await?;
        }
        let client = state.read_pool.get().await?;
        let now = state.clock.now();
        return Ok(Json(
            render_subscription(&**client, id, &ctx.principal, now).await?,
        ));
    };
    visible_stream(&state, &ctx.principal, id).await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let then = timetravel::replay(
        &tx,
        &SubscriptionProjection,
        AGGREGATE_TYPE,
        &id.to_string(),
        cut,
        "subscription",
    )
    .await?;
    let detail = render_subscription(&*tx, id, &ctx.principal, then).await;
    tx.rollback().await?;
    Ok(Json(detail?))
}

/// The detail of subscription `id` from the read-model tables `client` sees (the live ones,
/// or a time-travel replay's), if `principal` may see it; days until renewal as of `now`.
async fn render_subscription(
    client: &impl tokio_postgres::GenericClient,
    id: Uuid,
    principal: &Principal,
    now: DateTime<Utc>,
) -> Result<SubscriptionDetail, ApiError> {
    let row = client
        .query_opt(
            "SELECT id, entitlement_number, org_id, product, plan, seats, scheduled_seats, \
                    storage_gb, term_start, term_end, auto_renew, channel, partner_id, \
                    billing_account, site, contacts, included_products, kept_products, \
                    from_collection, status, cancellation_reason, cancel_effective_at, ended_at, \
                    created_by, created_at, updated_at, version \
               FROM subscription_view WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    let org_id: String = row.get(2);
    let partner_id: Option<String> = row.get(12);
    let SqlJson(included_products): SqlJson<Vec<String>> = row.get(16);
    let audience = SubscriptionAudience {
        org_id: &org_id,
        partner_id: partner_id.as_deref(),
        collection: !included_products.is_empty(),
    };
    if !sees_subscription(principal, audience) {
        return Err(ApiError::not_found("subscription"));
    }
    let apps = client
        .query(
            "SELECT app_id, entitlement_number, app, plan, status, cause, added_at, cancelled_at \
               FROM subscription_apps WHERE subscription_id = $1 ORDER BY added_at, app_id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| AppDetail {
            app_id: r.get(0),
            entitlement_number: r.get(1),
            app: r.get(2),
            plan: r.get(3),
            status: r.get(4),
            cause: r.get(5),
            added_at: r.get(6),
            cancelled_at: r.get(7),
        })
        .collect();
    let status: String = row.get(19);
    let term_end: DateTime<Utc> = row.get(9);
    let SqlJson(contacts): SqlJson<Vec<String>> = row.get(15);
    let SqlJson(kept_products): SqlJson<Vec<String>> = row.get(17);
    Ok(SubscriptionDetail {
        id: row.get(0),
        entitlement_number: row.get(1),
        org_id,
        product: row.get(3),
        plan: row.get(4),
        seats: row.get(5),
        scheduled_seats: row.get(6),
        storage_gb: row.get(7),
        term_start: row.get(8),
        term_end,
        bill_date: term_end,
        days_until_renewal: renewal_in(&status, term_end, now),
        auto_renew: row.get(10),
        channel: row.get(11),
        partner_id,
        billing_account: row.get(13),
        site: row.get(14),
        contacts,
        included_products,
        kept_products,
        from_collection: row.get(18),
        status,
        cancellation_reason: row.get(20),
        cancel_effective_at: row.get(21),
        ended_at: row.get(22),
        created_by: row.get(23),
        created_at: row.get(24),
        updated_at: row.get(25),
        version: row.get(26),
        apps,
    })
}

/// The events of subscription `id`, read from the log (on the primary, so never behind), if
/// `principal` sees it as it is now; 404 otherwise.
async fn visible_stream(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<Vec<subdesk_projections::StoredEvent>, ApiError> {
    let client = state.pool.get().await?;
    let events = crate::history::stream(&**client, AGGREGATE_TYPE, &id.to_string()).await?;
    // Who sees it is decided by the subscription as it is now (its org, and the partner that
    // manages it: one it passed from no longer sees it, not even its past).
    let mut subscription = Subscription::default();
    for event in &events {
        cqrs_es::Aggregate::apply(&mut subscription, event.decode::<Subscription>()?);
    }
    if !subscription.exists() {
        return Err(ApiError::not_found("subscription"));
    }
    let audience = SubscriptionAudience::from(&subscription);
    if !sees_subscription(principal, audience) {
        return Err(ApiError::not_found("subscription"));
    }
    Ok(events)
}

/// Every event of the subscription with its metadata, read from the log (never stale), for
/// whoever may see the subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{id}/history", tag = "subscriptions",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Vec<HistoryEntry>),
        (status = 404, body = Problem),
    ))]
async fn subscription_history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let events = visible_stream(&state, &ctx.principal, id).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|event| HistoryEntry::for_viewer(event, &ctx.principal))
            .collect(),
    ))
}
