//! Who sees which report, and over which orgs and partners.

use tokio_postgres::GenericClient;

use super::ReportFilter;
use crate::auth::{Principal, SCOPE_ACCESS_CASES, SCOPE_VIEW_CUSTOMERS};
use crate::http::error::ApiError;
use crate::relationships::partner_orgs;
use subdesk_aggregates::partner_relationship::PartnerScope;
use subdesk_aggregates::ActorRole;

/// Refuses principals who get no report at all: customers who are not org admins.
pub fn may_see_reports(principal: &Principal) -> Result<(), ApiError> {
    if principal.role == ActorRole::Customer && !principal.org_admin {
        return Err(ApiError::Forbidden(
            "reports cover a whole org: they are for org admins, partners and support staff".into(),
        ));
    }
    Ok(())
}

/// Whether `principal` gets the case and SLA reports.
pub fn may_see_case_reports(principal: &Principal) -> Result<(), ApiError> {
    may_see_reports(principal)?;
    if principal.role == ActorRole::Partner && !principal.has_scope(SCOPE_ACCESS_CASES) {
        return Err(ApiError::Forbidden(
            "case reports need the partner scope `access_cases`".into(),
        ));
    }
    Ok(())
}

/// Whether `principal` gets the subscription report.
pub fn may_see_subscription_reports(principal: &Principal) -> Result<(), ApiError> {
    may_see_reports(principal)?;
    if principal.role == ActorRole::Partner && !principal.has_scope(SCOPE_VIEW_CUSTOMERS) {
        return Err(ApiError::Forbidden(
            "subscription reports need the partner scope `view_customers`".into(),
        ));
    }
    Ok(())
}

/// The partner a partner principal is, refusing a `partner_id` filter naming another.
fn own_partner(principal: &Principal, filter: &ReportFilter) -> Result<String, ApiError> {
    let own = principal.partner_id.clone().unwrap_or_default();
    if filter.partner_id.as_ref().is_some_and(|p| *p != own) {
        return Err(ApiError::not_found("partner"));
    }
    Ok(own)
}

/// The orgs whose cases a case report covers: `None` for every org.
pub async fn case_orgs(
    client: &impl GenericClient,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<Option<Vec<String>>, ApiError> {
    may_see_case_reports(principal)?;
    let mut orgs = match principal.role {
        ActorRole::Customer => Some(principal.org_id.clone().into_iter().collect()),
        ActorRole::Partner => {
            own_partner(principal, filter)?;
            Some(principal.reach.orgs(PartnerScope::AccessCases))
        }
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System => None,
    };
    if let Some(org) = &filter.org_id {
        if orgs.as_ref().is_some_and(|list| !list.contains(org)) {
            return Err(ApiError::not_found("org"));
        }
        orgs = Some(vec![org.clone()]);
    }
    if let Some(partner) = &filter.partner_id {
        let assigned = partner_orgs(client, partner, Some(PartnerScope::AccessCases)).await?;
        orgs = Some(match orgs {
            Some(list) => list.into_iter().filter(|o| assigned.contains(o)).collect(),
            None => assigned,
        });
    }
    Ok(orgs)
}

/// What a subscription report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionScope {
    /// `None` for every org.
    pub orgs: Option<Vec<String>>,
    /// Only subscriptions this partner manages.
    pub partner: Option<String>,
}

/// The subscriptions a subscription report covers.
pub fn subscription_scope(
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<SubscriptionScope, ApiError> {
    may_see_subscription_reports(principal)?;
    match principal.role {
        ActorRole::Customer => {
            let own = principal.org_id.clone().unwrap_or_default();
            if filter.org_id.as_ref().is_some_and(|o| *o != own) {
                return Err(ApiError::not_found("org"));
            }
            Ok(SubscriptionScope {
                orgs: Some(vec![own]),
                partner: filter.partner_id.clone(),
            })
        }
        ActorRole::Partner => {
            let own = own_partner(principal, filter)?;
            let reached = principal.reach.orgs(PartnerScope::ViewCustomers);
            let orgs = match &filter.org_id {
                Some(org) if !reached.contains(org) => return Err(ApiError::not_found("org")),
                Some(org) => vec![org.clone()],
                None => reached,
            };
            Ok(SubscriptionScope {
                orgs: Some(orgs),
                partner: Some(own),
            })
        }
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System => {
            Ok(SubscriptionScope {
                orgs: filter.org_id.clone().map(|o| vec![o]),
                partner: filter.partner_id.clone(),
            })
        }
    }
}
