//! Who sees which report, and over which orgs and partners: the rules of the resources the
//! reports count. Staff and auditors see everything; a customer org admin their org (other
//! customers are refused: a report is about the whole org, more than they may see case by
//! case); a partner the cases of the orgs whose relationship allows `access_cases` and the
//! subscriptions it sold and manages in the orgs whose relationship allows `view_customers`
//! (its reach, intersected with the token's scopes). Filters narrow the caller's scope; an
//! `org_id` or `partner_id` outside it does not exist for the caller.

use chrono::NaiveDate;
use tokio_postgres::GenericClient;

use crate::auth::{Principal, SCOPE_ACCESS_CASES, SCOPE_VIEW_CUSTOMERS};
use crate::relationships::partner_orgs;
use subdesk_aggregates::partner_relationship::PartnerScope;
use subdesk_aggregates::ActorRole;

/// What a report is asked about, before the caller's scope is applied.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub org_id: Option<String>,
    pub partner_id: Option<String>,
}

/// Why a report is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportDenied {
    /// The caller gets no such report.
    #[error("{0}")]
    Forbidden(&'static str),
    /// An org or partner filter outside what the caller sees (named: `org`, `partner`).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// Refuses principals who get no report at all: customers who are not org admins.
pub fn may_see_reports(principal: &Principal) -> Result<(), ReportDenied> {
    if principal.role == ActorRole::Customer && !principal.org_admin {
        return Err(ReportDenied::Forbidden(
            "reports cover a whole org: they are for org admins, partners and support staff",
        ));
    }
    Ok(())
}

/// Whether `principal` gets the case and SLA reports.
pub fn may_see_case_reports(principal: &Principal) -> Result<(), ReportDenied> {
    may_see_reports(principal)?;
    if principal.role == ActorRole::Partner && !principal.has_scope(SCOPE_ACCESS_CASES) {
        return Err(ReportDenied::Forbidden(
            "case reports need the partner scope `access_cases`",
        ));
    }
    Ok(())
}

/// Whether `principal` gets the subscription report.
pub fn may_see_subscription_reports(principal: &Principal) -> Result<(), ReportDenied> {
    may_see_reports(principal)?;
    if principal.role == ActorRole::Partner && !principal.has_scope(SCOPE_VIEW_CUSTOMERS) {
        return Err(ReportDenied::Forbidden(
            "subscription reports need the partner scope `view_customers`",
        ));
    }
    Ok(())
}

/// The partner a partner principal is, refusing a `partner_id` filter naming another.
fn own_partner(principal: &Principal, filter: &ReportFilter) -> Result<String, ReportDenied> {
    let own = principal.partner_id.clone().unwrap_or_default();
    if filter.partner_id.as_ref().is_some_and(|p| *p != own) {
        return Err(ReportDenied::NotFound("partner"));
    }
    Ok(own)
}

/// The orgs whose cases a case report covers: `None` for every org.
pub async fn case_orgs(
    client: &impl GenericClient,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<Option<Vec<String>>, ReportDenied> {
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
            return Err(ReportDenied::NotFound("org"));
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
) -> Result<SubscriptionScope, ReportDenied> {
    may_see_subscription_reports(principal)?;
    match principal.role {
        ActorRole::Customer => {
            let own = principal.org_id.clone().unwrap_or_default();
            if filter.org_id.as_ref().is_some_and(|o| *o != own) {
                return Err(ReportDenied::NotFound("org"));
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
                Some(org) if !reached.contains(org) => return Err(ReportDenied::NotFound("org")),
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
