//! Buying a subscription: org admins directly, partners for the orgs whose relationship
//! allows it, admins for anyone (a partner sale still needs the relationship).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use subdesk_aggregates::partner_relationship::is_valid_partner_id;
use subdesk_aggregates::subscription::{
    entitlement, Channel, CreateSubscription, SubscriptionCommand,
};
use subdesk_aggregates::ActorRole;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::types::{subscription_receipt, CreateSubscriptionRequest, SubscriptionReceipt};
use crate::access::may_create;
use crate::auth::SCOPE_VIEW_CUSTOMERS;
use crate::http::command::{run, Prepared};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{Ctx, JsonBody};
use crate::state::AppState;
use crate::store::Denied;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_subscription))
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
                .is_some_and(|p| !is_valid_partner_id(p))
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
