//! `/v1/partner/customers`: the partner view of SPEC section 4: the customer orgs that granted a
//! partner a relationship, with the subscriptions that partner manages there and their open
//! cases.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::ActorRole;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::Ctx;
use crate::access::PartnerReach;
use crate::auth::{SCOPE_ACCESS_CASES, SCOPE_VIEW_CUSTOMERS};
use crate::state::AppState;
use subdesk_aggregates::partner_relationship::PartnerScope;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(customers))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomersParams {
    /// Staff only: the partner to show (a partner sees its own).
    pub partner_id: Option<String>,
}

/// One customer org of a partner.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "org_id": "acme", "active_subscriptions": 2, "upcoming_subscriptions": 0,
    "inactive_subscriptions": 1, "active_seats": 75, "open_cases": 3
}))]
pub struct Customer {
    pub org_id: String,
    /// Subscriptions this partner sold to the org and still manages, by portal tab.
    pub active_subscriptions: i64,
    pub upcoming_subscriptions: i64,
    pub inactive_subscriptions: i64,
    /// Seats of the active ones.
    pub active_seats: i64,
    /// Cases not yet resolved; null unless `access_cases` is in force for the org (in the
    /// token and in the relationship).
    pub open_cases: Option<i64>,
}

/// The customer orgs that granted a partner a relationship with `view_customers`.
#[utoipa::path(get, path = "/v1/partner/customers", tag = "partners", params(CustomersParams),
    responses(
        (status = 200, body = Vec<Customer>),
        (status = 403, body = Problem, description = "Not a partner with `view_customers`, nor staff"),
        (status = 422, body = Problem, description = "Staff must name the partner"),
    ))]
async fn customers(
    State(state): State<AppState>,
    ctx: Ctx,
    params: Result<Query<CustomersParams>, QueryRejection>,
) -> Result<Json<Vec<Customer>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest {
        code: "invalid_query",
        detail: e.body_text(),
    })?;
    let principal = &ctx.principal;
    let client = state.pool.get().await?;
    let (partner, reach) = match principal.role {
        ActorRole::Partner if principal.has_scope(SCOPE_VIEW_CUSTOMERS) => (
            principal.partner_id.clone().unwrap_or_default(),
            principal.reach.clone(),
        ),
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor => {
            let partner = params.partner_id.ok_or_else(|| {
                ApiError::unprocessable("required_field", "partner_id must not be empty")
            })?;
            let relationships = crate::relationships::of_partner(&**client, &partner).await?;
            let everything = [
                SCOPE_VIEW_CUSTOMERS.to_string(),
                SCOPE_ACCESS_CASES.to_string(),
            ];
            let reach = PartnerReach::new(
                &everything,
                relationships.into_iter().map(|r| (r.org_id, r.scopes)),
            );
            (partner, reach)
        }
        _ => {
            return Err(ApiError::Forbidden(
                "the partner view is for partners with view_customers, and staff".into(),
            ))
        }
    };
    drop(client);
    let orgs = reach.orgs(PartnerScope::ViewCustomers);
    let client = state.read_pool.get().await?;
    let rows = crate::read::partners::customers(&**client, &partner, &orgs).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| Customer {
                open_cases: reach
                    .allows(&row.org_id, PartnerScope::AccessCases)
                    .then_some(row.open_cases),
                org_id: row.org_id,
                active_subscriptions: row.active_subscriptions,
                upcoming_subscriptions: row.upcoming_subscriptions,
                inactive_subscriptions: row.inactive_subscriptions,
                active_seats: row.active_seats,
            })
            .collect(),
    ))
}
