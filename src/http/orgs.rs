//! `/v1/orgs/{org_id}/partners`: the partner relationships an org grants (SPEC section 1).
//!
//! A partner reaches an org only through a relationship that the org's admin (a customer
//! `org_admin`) or a staff admin granted: `POST` grants it or changes its scopes, `DELETE`
//! ends it (the org's admin, a staff admin, or the partner itself), `GET` lists them and
//! `/history` shows one relationship's events (the org's admin, staff, auditors). The
//! relationship is the `PartnerRelationship` aggregate; its current state is in force for the
//! next request on every process (see [`crate::relationships`]).
//!
//! Who sees an org: staff and auditors every org, a customer its own, a partner the orgs whose
//! relationship with it is active. To anyone else the org does not exist (404); a visible org
//! with a forbidden action is 403.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::partner_relationship::{
    is_valid_partner_id, relationship_id, EndRelationship, GrantRelationship, PartnerRelationship,
    PartnerRelationshipCommand, PartnerScope, AGGREGATE_TYPE,
};
use subdesk_aggregates::ActorRole;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::command::{run, Prepared, Receipt, Status};
use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use crate::auth::Principal;
use crate::history::HistoryEntry;
use crate::relationships::Relationship;
use crate::state::AppState;
use crate::store::{Denied, Guard};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(grant_relationship, list_relationships))
        .routes(routes!(end_relationship))
        .routes(routes!(relationship_history))
}

/// Longest org id a path may name.
pub const MAX_ORG_ID: usize = 128;

/// Whether the org exists for `principal` at all: staff and auditors see every org, a customer
/// its own, a partner those that granted it a relationship it still holds.
fn sees_org(principal: &Principal, org_id: &str, own_relationship_active: bool) -> bool {
    match principal.role {
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System => true,
        ActorRole::Customer => principal.in_org(org_id),
        ActorRole::Partner => own_relationship_active || principal.reach.reaches(org_id),
    }
}

/// Whether `principal` administers the org's relationships: a staff admin, or the org's admin.
fn administers(principal: &Principal, org_id: &str) -> bool {
    principal.role == ActorRole::Admin || (principal.in_org(org_id) && principal.org_admin)
}

fn is_own(principal: &Principal, relationship: &PartnerRelationship) -> bool {
    principal.role == ActorRole::Partner
        && principal.partner_id.as_deref() == Some(relationship.partner_id.as_str())
}

/// 404 unless `org_id` can name an org and `principal` sees it.
pub(super) fn visible_org(principal: &Principal, org_id: &str) -> Result<(), ApiError> {
    checked_org(org_id)?;
    if sees_org(principal, org_id, false) {
        Ok(())
    } else {
        Err(ApiError::not_found("org"))
    }
}

fn checked_org(org_id: &str) -> Result<(), ApiError> {
    if org_id.trim().is_empty() || org_id.chars().count() > MAX_ORG_ID {
        return Err(ApiError::not_found("org"));
    }
    Ok(())
}

/// The partner id of a path or body, or 404 / 422: a partner id that cannot exist names no
/// relationship.
fn checked_partner(partner_id: &str) -> Result<(), ApiError> {
    if is_valid_partner_id(partner_id) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_partner_id",
            "a partner id is a domain-like name: 1 to 63 characters of a-z, 0-9 and `-`, not \
             starting or ending with `-`",
        ))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"partner_id": "p-cloudwise", "scopes": ["view_customers", "access_cases"]}))]
pub struct GrantRequest {
    /// The partner: a domain-like name (`[a-z0-9-]`, at most 63 characters). There is no
    /// partner registry; partner tokens name the same id.
    #[schema(max_length = 63, pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
    pub partner_id: String,
    /// What the partner may reach of the org (intersected with its tokens' own scopes):
    /// `view_customers` (the subscriptions it sold to the org) and `access_cases` (the org's
    /// cases, as the org's admin).
    #[schema(min_items = 1, max_items = 2, schema_with = scopes)]
    pub scopes: Vec<PartnerScope>,
}

fn scopes() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(crate::schema::partner_scope())
        .min_items(Some(1))
        .max_items(Some(2))
        .description(Some(
            "What the partner may reach of the org: `view_customers`, `access_cases`",
        ))
        .build()
}

/// The answer to a relationship command.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "acme/p-cloudwise", "org_id": "acme", "partner_id": "p-cloudwise",
    "status": "active", "scopes": ["access_cases", "view_customers"], "version": 1, "position": 42
}))]
pub struct RelationshipReceipt {
    /// The relationship's stream id, `<org_id>/<partner_id>`.
    pub id: String,
    pub org_id: String,
    pub partner_id: String,
    /// `active` or `ended`.
    #[schema(pattern = "^(active|ended)$")]
    pub status: String,
    pub scopes: Vec<String>,
    pub version: i64,
    /// Pass as `min_position` to a read to see this write.
    pub position: i64,
}

fn relationship_receipt(
    relationship: &PartnerRelationship,
    receipt: Receipt,
) -> RelationshipReceipt {
    RelationshipReceipt {
        id: receipt.id,
        org_id: relationship.org_id.clone(),
        partner_id: relationship.partner_id.clone(),
        status: relationship.status.as_str().into(),
        scopes: relationship
            .scopes
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        version: receipt.version,
        position: receipt.position,
    }
}

/// 201 when the command granted the relationship, 200 when it changed or confirmed its scopes.
fn granted_status(relationship: &PartnerRelationship, appended: usize) -> StatusCode {
    if appended > 0 && relationship.newly_granted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Grant a partner a relationship with the org, or change its scopes (the org's admin, or a
/// staff admin).
///
/// 201 when it grants the relationship (again, if an earlier one ended), 200 when it changes
/// the scopes of the active one (or they already are these: nothing is appended). From the
/// next request on, the partner reaches the org with these scopes (intersected with its
/// token's).
#[utoipa::path(post, path = "/v1/orgs/{org_id}/partners", tag = "partners",
    request_body = GrantRequest,
    params(("org_id" = String, Path, max_length = 128), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = RelationshipReceipt, description = "Granted"),
        (status = 200, body = RelationshipReceipt, description = "Scopes changed, or already these"),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "The org is visible but the caller is not its admin nor a staff admin"),
        (status = 404, body = Problem, description = "The org is not visible to the caller"),
        (status = 422, body = Problem, description = "`invalid_partner_id`, `invalid_scopes`; nothing was appended"),
    ))]
async fn grant_relationship(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(org_id): Path<String>,
    body: JsonBody<GrantRequest>,
) -> Result<Response, ApiError> {
    visible_org(&ctx.principal, &org_id)?;
    let request = body.value;
    let principal = ctx.principal.clone();
    if !administers(&principal, &org_id) {
        return Err(ApiError::Forbidden(
            "only the org's admin or a staff admin grants partner relationships".into(),
        ));
    }
    checked_partner(&request.partner_id)?;
    let command = PartnerRelationshipCommand::Grant(GrantRelationship {
        org_id: org_id.clone(),
        partner_id: request.partner_id.clone(),
        scopes: request.scopes,
        by: principal.actor(),
    });
    let id = relationship_id(&org_id, &request.partner_id);
    run(
        &state,
        &state.relationships,
        &ctx,
        &body.hash,
        Status::Decided(granted_status),
        move || async move {
            Ok(Prepared {
                id,
                command,
                guard: None,
            })
        },
        relationship_receipt,
    )
    .await
}

/// A guard that lets the org's admin, a staff admin or the relationship's own partner end an
/// active relationship; anything else is 404 (an org or relationship the caller does not see)
/// or 403.
fn end_guard(principal: Principal, org_id: String) -> Guard<PartnerRelationship> {
    Arc::new(move |relationship: &PartnerRelationship| {
        let own = is_own(&principal, relationship) && relationship.is_active();
        if !sees_org(&principal, &org_id, own) || !relationship.is_active() {
            return Err(Denied::NotFound);
        }
        if own || administers(&principal, &org_id) {
            Ok(())
        } else {
            Err(Denied::Forbidden(
                "only the org's admin, a staff admin or the partner itself ends a relationship"
                    .into(),
            ))
        }
    })
}

/// End a partner relationship (the org's admin, a staff admin, or that partner).
///
/// From the next request on the partner reaches nothing of the org; the subscriptions it sold
/// to the org pass to the org's side (a `SubscriptionPassedToOrg` event on each, appended by
/// the system moments later), whose admin manages them from then on.
#[utoipa::path(delete, path = "/v1/orgs/{org_id}/partners/{partner_id}", tag = "partners",
    params(("org_id" = String, Path, max_length = 128),
           ("partner_id" = String, Path, max_length = 63, pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"),
           ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = RelationshipReceipt),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "The relationship is visible but the caller may not end it"),
        (status = 404, body = Problem, description = "No active relationship, or not visible to the caller"),
        (status = 422, body = Problem, description = "`invalid_partner_id`"),
    ))]
async fn end_relationship(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((org_id, partner_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    checked_org(&org_id)?;
    checked_partner(&partner_id)?;
    let hash = crate::idempotency::request_hash(
        "DELETE",
        &format!("/v1/orgs/{org_id}/partners/{partner_id}"),
        &serde_json::Value::Null,
    );
    let principal = ctx.principal.clone();
    let command = PartnerRelationshipCommand::End(EndRelationship {
        by: principal.actor(),
    });
    let id = relationship_id(&org_id, &partner_id);
    run(
        &state,
        &state.relationships,
        &ctx,
        &hash,
        StatusCode::OK,
        move || async move {
            Ok(Prepared {
                id,
                command,
                guard: Some(end_guard(principal, org_id)),
            })
        },
        relationship_receipt,
    )
    .await
}

/// Who reads an org's relationships: its admin, staff and auditors.
fn may_read(principal: &Principal, org_id: &str) -> Result<(), ApiError> {
    if !sees_org(principal, org_id, false) {
        return Err(ApiError::not_found("org"));
    }
    let allowed = match principal.role {
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor => true,
        ActorRole::Customer => principal.org_admin,
        ActorRole::Partner | ActorRole::System => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "an org's partner relationships are for its admin and support staff".into(),
        ))
    }
}

/// The partner relationships the org has granted, active ones first (the org's admin, staff,
/// auditors). Always current: read from the relationships' own state, not a read model.
#[utoipa::path(get, path = "/v1/orgs/{org_id}/partners", tag = "partners",
    params(("org_id" = String, Path, max_length = 128)),
    responses(
        (status = 200, body = Vec<Relationship>),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Not the org's admin nor staff"),
        (status = 404, body = Problem, description = "The org is not visible to the caller"),
    ))]
async fn list_relationships(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(org_id): Path<String>,
) -> Result<Json<Vec<Relationship>>, ApiError> {
    checked_org(&org_id)?;
    may_read(&ctx.principal, &org_id)?;
    let client = state.pool.get().await?;
    Ok(Json(
        crate::relationships::of_org(&**client, &org_id).await?,
    ))
}

/// Every event of one relationship: grants, scope changes, ends, with their metadata (the
/// org's admin, staff, auditors).
#[utoipa::path(get, path = "/v1/orgs/{org_id}/partners/{partner_id}/history", tag = "partners",
    params(("org_id" = String, Path, max_length = 128),
           ("partner_id" = String, Path, max_length = 63, pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")),
    responses(
        (status = 200, body = Vec<HistoryEntry>),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Not the org's admin nor staff"),
        (status = 404, body = Problem, description = "No such relationship, or the org is not visible"),
        (status = 422, body = Problem, description = "`invalid_partner_id`"),
    ))]
async fn relationship_history(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((org_id, partner_id)): Path<(String, String)>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    checked_org(&org_id)?;
    may_read(&ctx.principal, &org_id)?;
    checked_partner(&partner_id)?;
    let events = {
        let client = state.pool.get().await?;
        crate::history::stream(
            &**client,
            AGGREGATE_TYPE,
            &relationship_id(&org_id, &partner_id),
        )
        .await?
    };
    if events.is_empty() {
        return Err(ApiError::not_found("relationship"));
    }
    Ok(Json(
        events
            .into_iter()
            .map(|stored| HistoryEntry::for_viewer(stored, &ctx.principal))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use subdesk_aggregates::partner_relationship::MAX_PARTNER_ID;

    use super::*;

    #[test]
    fn a_partner_id_fits_the_documented_length() {
        assert_eq!(MAX_PARTNER_ID, 63);
        assert!(checked_partner("p-cloudwise").is_ok());
        assert!(checked_partner("P-Cloudwise").is_err());
        assert!(checked_org(&"o".repeat(MAX_ORG_ID + 1)).is_err());
    }
}
