//! `/v1/reports`: the dashboards' reports (SPEC section 4), read from the `reports` read
//! models (migration V8) in a handful of indexed queries, never from the log.
//!
//! - `GET /v1/reports/cases`: open cases now by status x priority; per day of the period:
//!   opened, resolved, auto-resolved; per product.
//! - `GET /v1/reports/sla`: per priority, for the cases opened in the period: first-response
//!   SLA attainment and median time to first response; for the cases resolved in the period:
//!   median time to resolution.
//! - `GET /v1/reports/subscriptions`: subscriptions in force and their seats by product, plan
//!   and partner; renewals due in the next 30 days; cancellations per month of the period.
//!
//! **Who sees what.** The rules of the resources the reports count: staff and auditors see
//! everything; a customer org admin their org (other customers get 403: a report is about the
//! whole org, more than they may see case by case); a partner the cases of the orgs whose
//! relationship with it allows `access_cases` and the subscriptions it sold and manages in
//! the orgs whose relationship allows `view_customers` (its reach, in both cases intersected
//! with the token's scopes), as the case and subscription lists do. Filters narrow the caller's
//! scope; an `org_id` or `partner_id` outside it does not exist for the caller (404).
//!
//! **Period.** `from` / `to` are UTC days, both included (default: the 30 days up to today).
//! Snapshots (open cases, subscriptions in force, renewals due) describe now and ignore it.
//!
//! `?format=csv` (or `Accept: text/csv`) answers one table of the report as `text/csv` with a
//! header row; `table` picks which.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::consistency::wait_for;
use super::error::{ApiError, Problem};
use super::extract::Ctx;
use crate::state::AppState;
use crate::auth::{Principal, SCOPE_ACCESS_CASES, SCOPE_VIEW_CUSTOMERS};
use crate::relationships::partner_orgs;
use subdesk_aggregates::partner_relationship::PartnerScope;
use subdesk_aggregates::ActorRole;

/// Name of the projection behind every report.
pub const PROJECTION: &str = "reports";
/// The period when none is given: this many days up to today.
pub const DEFAULT_DAYS: i64 = 30;
/// The longest period a report covers.
pub const MAX_DAYS: i64 = 731;
/// "Renewals due in the next 30 days".
pub const RENEWAL_WINDOW_DAYS: i64 = 30;
/// At most this many renewals are listed one by one (all are counted).
pub const RENEWAL_ITEMS: i64 = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cases_report))
        .routes(routes!(sla_report))
        .routes(routes!(subscriptions_report))
}

// --- parameters -----------------------------------------------------------------------------

/// `json` (default) or `csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// First day of the period, UTC, included. Default: 29 days before `to`.
    #[param(value_type = Option<String>, format = Date, example = "2026-03-01")]
    pub from: Option<NaiveDate>,
    /// Last day of the period, UTC, included. Default: today.
    #[param(value_type = Option<String>, format = Date, example = "2026-03-30")]
    pub to: Option<NaiveDate>,
    /// Only this customer org (it must be within what the caller sees).
    #[param(max_length = 128)]
    pub org_id: Option<String>,
    /// Only the orgs whose relationship gives this partner their cases (case reports), or
    /// what it sold and manages (subscriptions).
    #[param(max_length = 63)]
    pub partner_id: Option<String>,
    /// `json` (default) or `csv` (also chosen by `Accept: text/csv`).
    #[param(inline)]
    pub format: Option<Format>,
    /// With `format=csv`: which table of the report (see each report); default its first. A
    /// table of another report is 422.
    #[param(pattern = "^(open|per_day|by_product|priorities|active|renewals|cancellations)$")]
    pub table: Option<String>,
    /// Answer only once the reports have applied this position (from a command response).
    pub min_position: Option<i64>,
}

/// What a report is asked about, before the caller's scope is applied.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub org_id: Option<String>,
    pub partner_id: Option<String>,
}

impl From<&ReportParams> for ReportFilter {
    fn from(params: &ReportParams) -> Self {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Self {
            from: params.from,
            to: params.to,
            org_id: text(&params.org_id),
            partner_id: text(&params.partner_id),
        }
    }
}

/// The days a report covers, UTC, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"from": "2026-03-01", "to": "2026-03-30"}))]
pub struct Period {
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
}

impl Period {
    /// The period of `from` / `to`, defaulting to the [`DEFAULT_DAYS`] up to `today`.
    pub fn resolve(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Self, ApiError> {
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
        if from > to {
            return Err(ApiError::unprocessable(
                "invalid_period",
                "`from` must not be after `to`",
            ));
        }
        if (to - from).num_days() + 1 > MAX_DAYS {
            return Err(ApiError::unprocessable(
                "invalid_period",
                format!("a report covers at most {MAX_DAYS} days"),
            ));
        }
        Ok(Self { from, to })
    }

    /// The first instant of the period.
    pub fn start(&self) -> DateTime<Utc> {
        self.from.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// The first instant after the period.
    pub fn end(&self) -> DateTime<Utc> {
        (self.to + Duration::days(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    /// The months the period touches, as `YYYY-MM`.
    pub fn months(&self) -> Vec<String> {
        let mut months = Vec::new();
        let (mut year, mut month) = (self.from.year(), self.from.month());
        while (year, month) <= (self.to.year(), self.to.month()) {
            months.push(format!("{year:04}-{month:02}"));
            (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
        }
        months
    }
}

// --- who sees what ----------------------------------------------------------------------------

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

// --- the reports ------------------------------------------------------------------------------

/// Open cases in one status at one priority.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenCell {
    #[schema(schema_with = super::schema::case_status)]
    pub status: String,
    pub priority: i16,
    pub cases: i64,
}

/// Cases not resolved or closed, now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenCases {
    pub total: i64,
    /// Every status (open, investigating, waiting_for_customer) x priority (1..4), zeros
    /// included, in that order.
    pub cells: Vec<OpenCell>,
}

impl OpenCases {
    pub fn count(&self, status: &str, priority: i16) -> i64 {
        self.cells
            .iter()
            .find(|c| c.status == status && c.priority == priority)
            .map_or(0, |c| c.cases)
    }
}

/// Case activity of one day (UTC), by the events' own times.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseDay {
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    pub opened: i64,
    /// Resolutions, manual and automatic (a case resolved again after a reopening counts
    /// again).
    pub resolved: i64,
    /// `CaseAutoResolved` events: cases resolved by the system after waiting for the customer.
    pub auto_resolved: i64,
}

/// Case activity of one product in the period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductCases {
    pub product: String,
    pub opened: i64,
    pub resolved: i64,
    pub auto_resolved: i64,
}

/// Case activity over the whole period.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CaseTotals {
    pub opened: i64,
    pub resolved: i64,
    pub auto_resolved: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "period": {"from": "2026-03-01", "to": "2026-03-02"},
    "generated_at": "2026-03-02T12:00:00Z",
    "open": {"total": 3, "cells": [
        {"status": "open", "priority": 1, "cases": 1},
        {"status": "open", "priority": 2, "cases": 0},
        {"status": "waiting_for_customer", "priority": 3, "cases": 2}]},
    "per_day": [
        {"day": "2026-03-01", "opened": 4, "resolved": 1, "auto_resolved": 0},
        {"day": "2026-03-02", "opened": 2, "resolved": 3, "auto_resolved": 1}],
    "by_product": [{"product": "jira-software", "opened": 6, "resolved": 4, "auto_resolved": 1}],
    "totals": {"opened": 6, "resolved": 4, "auto_resolved": 1}
}))]
pub struct CasesReport {
    pub period: Period,
    /// When the report was read (the open cases are as of then).
    pub generated_at: DateTime<Utc>,
    /// Now, whatever the period.
    pub open: OpenCases,
    /// Every day of the period, zeros included.
    pub per_day: Vec<CaseDay>,
    /// Products with activity in the period, most cases opened first.
    pub by_product: Vec<ProductCases>,
    pub totals: CaseTotals,
}

/// First response and resolution for one priority (or all, `priority` null).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct SlaRow {
    /// 1 (critical) to 4 (low), the level the case is worked at now; null for all.
    pub priority: Option<i16>,
    /// The first-response target of the level, in seconds (null for all).
    pub target_seconds: Option<i64>,
    /// Cases opened in the period.
    pub opened: i64,
    /// Of those, answered by support.
    pub responded: i64,
    /// Answered within the target.
    pub met: i64,
    /// Answered late, or not answered and past the due time (the clock stops at the
    /// resolution).
    pub breached: i64,
    /// Not answered, not resolved, not due yet.
    pub awaiting_response: i64,
    /// `met / (met + breached)`; null when neither.
    pub attainment: Option<f64>,
    /// Median time from opening to support's first public answer, in seconds.
    pub median_first_response_seconds: Option<f64>,
    /// Cases whose (latest) resolution fell in the period and that stayed resolved.
    pub resolved: i64,
    /// Median time from opening to that resolution, in seconds.
    pub median_resolution_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "period": {"from": "2026-03-01", "to": "2026-03-30"},
    "generated_at": "2026-03-30T12:00:00Z",
    "priorities": [
        {"priority": 1, "target_seconds": 3600, "opened": 4, "responded": 4, "met": 3,
         "breached": 1, "awaiting_response": 0, "attainment": 0.75,
         "median_first_response_seconds": 1800.0, "resolved": 3,
         "median_resolution_seconds": 86400.0},
        {"priority": 2, "target_seconds": 14400, "opened": 0, "responded": 0, "met": 0,
         "breached": 0, "awaiting_response": 0, "attainment": null,
         "median_first_response_seconds": null, "resolved": 0,
         "median_resolution_seconds": null}],
    "overall": {"priority": null, "target_seconds": null, "opened": 4, "responded": 4,
        "met": 3, "breached": 1, "awaiting_response": 0, "attainment": 0.75,
        "median_first_response_seconds": 1800.0, "resolved": 3,
        "median_resolution_seconds": 86400.0}
}))]
pub struct SlaReport {
    pub period: Period,
    /// Breaches of unanswered cases are judged as of this time.
    pub generated_at: DateTime<Utc>,
    /// Priorities 1 to 4, in order, zeros included.
    pub priorities: Vec<SlaRow>,
    pub overall: SlaRow,
}

/// Subscriptions in force in one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveRow {
    pub product: String,
    pub plan: String,
    /// The selling partner; null for direct subscriptions.
    pub partner_id: Option<String>,
    pub subscriptions: i64,
    pub seats: i64,
}

/// Subscriptions in force grouped by one dimension.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveGroup {
    /// The product, plan, or partner (`direct` for direct subscriptions).
    pub key: String,
    pub subscriptions: i64,
    pub seats: i64,
}

/// Subscriptions in force now (active and non-renewing).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActiveSubscriptions {
    pub subscriptions: i64,
    pub seats: i64,
    /// By product, plan and partner.
    pub rows: Vec<ActiveRow>,
    pub by_product: Vec<ActiveGroup>,
    pub by_plan: Vec<ActiveGroup>,
    pub by_partner: Vec<ActiveGroup>,
}

/// One subscription whose bill date is near.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Renewal {
    pub subscription_id: Uuid,
    pub org_id: String,
    pub product: String,
    pub plan: String,
    pub partner_id: Option<String>,
    pub seats: i32,
    /// The bill date.
    pub term_end: DateTime<Utc>,
    /// Off: it expires at the bill date unless auto-renew is turned back on.
    pub auto_renew: bool,
}

/// Active subscriptions whose bill date falls in the next 30 days.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RenewalsDue {
    pub window_days: i64,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub subscriptions: i64,
    pub seats: i64,
    /// Of those, with auto-renew on.
    pub auto_renew: i64,
    /// The first 100, soonest first.
    pub items: Vec<Renewal>,
}

/// Cancellations that took effect in one month (UTC).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthCancellations {
    /// `YYYY-MM`.
    #[schema(example = "2026-03")]
    pub month: String,
    pub cancellations: i64,
    /// Seats the cancelled subscriptions had.
    pub seats: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "period": {"from": "2026-01-01", "to": "2026-03-30"},
    "generated_at": "2026-03-30T12:00:00Z",
    "active": {"subscriptions": 2, "seats": 35,
        "rows": [{"product": "jira-software", "plan": "standard", "partner_id": "p-cloudwise",
                  "subscriptions": 2, "seats": 35}],
        "by_product": [{"key": "jira-software", "subscriptions": 2, "seats": 35}],
        "by_plan": [{"key": "standard", "subscriptions": 2, "seats": 35}],
        "by_partner": [{"key": "p-cloudwise", "subscriptions": 2, "seats": 35}]},
    "renewals_due": {"window_days": 30, "from": "2026-03-30T12:00:00Z",
        "until": "2026-04-29T12:00:00Z", "subscriptions": 1, "seats": 10, "auto_renew": 1,
        "items": [{"subscription_id": "0193a8f2-6a61-7c3e-9d0a-3f1f6a1b2c3d", "org_id": "acme",
                   "product": "jira-software", "plan": "standard", "partner_id": "p-cloudwise",
                   "seats": 10, "term_end": "2026-04-12T00:00:00Z", "auto_renew": true}]},
    "cancellations_per_month": [
        {"month": "2026-01", "cancellations": 0, "seats": 0},
        {"month": "2026-02", "cancellations": 1, "seats": 25},
        {"month": "2026-03", "cancellations": 0, "seats": 0}]
}))]
pub struct SubscriptionsReport {
    pub period: Period,
    /// Renewals due are counted from this time.
    pub generated_at: DateTime<Utc>,
    /// Now, whatever the period.
    pub active: ActiveSubscriptions,
    /// From now, whatever the period.
    pub renewals_due: RenewalsDue,
    /// Every month the period touches, zeros included, by when the cancellation took effect.
    pub cancellations_per_month: Vec<MonthCancellations>,
}

/// A read-only transaction for one report's queries, with room to sort a year of cases in
/// memory (a median sorts every value it is taken over).
async fn report_transaction<'a>(
    client: &'a mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'a>, ApiError> {
    let tx = client.build_transaction().read_only(true).start().await?;
    tx.batch_execute("SET LOCAL work_mem = '64MB'").await?;
    Ok(tx)
}

/// The case report for `principal`.
pub async fn cases(
    state: &AppState,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<CasesReport, ApiError> {
    let now = state.clock.now();
    let period = Period::resolve(filter.from, filter.to, now.date_naive())?;
    let mut client = state.read_pool.get().await?;
    let tx = report_transaction(&mut client).await?;
    let orgs = case_orgs(&*tx, principal, filter).await?;
    let by_org: [&(dyn ToSql + Sync); 1] = [&orgs];
    let by_org_days: [&(dyn ToSql + Sync); 3] = [&orgs, &period.from, &period.to];
    // Every org: the counters kept over all orgs, a row per day and product.
    let (days_table, org_filter) = if orgs.is_none() {
        ("report_case_days_all", "$1::text[] IS NULL")
    } else {
        ("report_case_days", "org_id = ANY($1)")
    };
    let open = tx.query(
        "SELECT status, priority, sum(cases)::bigint FROM report_open_cases \
          WHERE ($1::text[] IS NULL OR org_id = ANY($1)) \
          GROUP BY status, priority",
        &by_org,
    );
    let days_sql = format!(
        "SELECT day, sum(opened)::bigint, sum(resolved)::bigint, sum(auto_resolved)::bigint \
           FROM {days_table} WHERE day BETWEEN $2 AND $3 AND {org_filter} GROUP BY day"
    );
    let products_sql = format!(
        "SELECT product, sum(opened)::bigint, sum(resolved)::bigint, sum(auto_resolved)::bigint \
           FROM {days_table} WHERE day BETWEEN $2 AND $3 AND {org_filter} \
          GROUP BY product ORDER BY 2 DESC, product"
    );
    let days = tx.query(&days_sql, &by_org_days);
    let products = tx.query(&products_sql, &by_org_days);
    let (open, days, products) = futures::try_join!(open, days, products)?;
    tx.commit().await?;

    let mut cells = Vec::new();
    for status in subdesk_projections::reports::OPEN_STATUSES {
        for priority in 1..=4i16 {
            let cases = open
                .iter()
                .find(|r| {
                    r.get::<_, String>(0) == status.as_str() && r.get::<_, i16>(1) == priority
                })
                .map_or(0, |r| r.get(2));
            cells.push(OpenCell {
                status: status.as_str().into(),
                priority,
                cases,
            });
        }
    }
    let open = OpenCases {
        total: cells.iter().map(|c| c.cases).sum(),
        cells,
    };
    let days: HashMap<NaiveDate, [i64; 3]> = days
        .iter()
        .map(|r| (r.get(0), [r.get(1), r.get(2), r.get(3)]))
        .collect();
    let per_day: Vec<CaseDay> = period
        .days()
        .map(|day| {
            let [opened, resolved, auto_resolved] = days.get(&day).copied().unwrap_or_default();
            CaseDay {
                day,
                opened,
                resolved,
                auto_resolved,
            }
        })
        .collect();
    let totals = CaseTotals {
        opened: per_day.iter().map(|d| d.opened).sum(),
        resolved: per_day.iter().map(|d| d.resolved).sum(),
        auto_resolved: per_day.iter().map(|d| d.auto_resolved).sum(),
    };
    let by_product = products
        .iter()
        .map(|r| ProductCases {
            product: r.get(0),
            opened: r.get(1),
            resolved: r.get(2),
            auto_resolved: r.get(3),
        })
        .collect();
    Ok(CasesReport {
        period,
        generated_at: now,
        open,
        per_day,
        by_product,
        totals,
    })
}

/// The SLA report for `principal`.
pub async fn sla(
    state: &AppState,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<SlaReport, ApiError> {
    let now = state.clock.now();
    let period = Period::resolve(filter.from, filter.to, now.date_naive())?;
    let mut client = state.read_pool.get().await?;
    let tx = report_transaction(&mut client).await?;
    let orgs = case_orgs(&*tx, principal, filter).await?;
    let (start, end) = (period.start(), period.end());
    let opened_params: [&(dyn ToSql + Sync); 4] = [&orgs, &start, &end, &now];
    let resolved_params: [&(dyn ToSql + Sync); 3] = [&orgs, &start, &end];
    // ROLLUP adds the row of all priorities (priority NULL). percentile_cont ignores NULLs:
    // the median is over the cases that were answered (resolved).
    let responses = tx.query(
        "SELECT priority, count(*), count(first_responded_at), \
                count(*) FILTER (WHERE first_response_breached = false), \
                count(*) FILTER (WHERE first_response_breached \
                    OR (first_responded_at IS NULL \
                        AND coalesce(resolved_at, closed_at, $4) > first_response_due)), \
                count(*) FILTER (WHERE first_responded_at IS NULL AND resolved_at IS NULL \
                    AND closed_at IS NULL AND first_response_due >= $4), \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_seconds) \
           FROM report_case_facts \
          WHERE opened_at >= $2 AND opened_at < $3 AND ($1::text[] IS NULL OR org_id = ANY($1)) \
          GROUP BY ROLLUP (priority)",
        &opened_params,
    );
    let resolutions = tx.query(
        "SELECT priority, count(*), \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_seconds) \
           FROM report_case_facts \
          WHERE resolved_at >= $2 AND resolved_at < $3 AND ($1::text[] IS NULL OR org_id = ANY($1)) \
          GROUP BY ROLLUP (priority)",
        &resolved_params,
    );
    let (responses, resolutions) = futures::try_join!(responses, resolutions)?;
    tx.commit().await?;
    let policy = &state.settings.case_policy;
    let row = |priority: Option<i16>| {
        let mut row = SlaRow {
            priority,
            target_seconds: priority.map(|p| {
                policy
                    .first_response_target(u8::try_from(p).unwrap_or(4))
                    .num_seconds()
            }),
            ..SlaRow::default()
        };
        if let Some(r) = responses
            .iter()
            .find(|r| r.get::<_, Option<i16>>(0) == priority)
        {
            row.opened = r.get(1);
            row.responded = r.get(2);
            row.met = r.get(3);
            row.breached = r.get(4);
            row.awaiting_response = r.get(5);
            row.median_first_response_seconds = r.get(6);
        }
        if let Some(r) = resolutions
            .iter()
            .find(|r| r.get::<_, Option<i16>>(0) == priority)
        {
            row.resolved = r.get(1);
            row.median_resolution_seconds = r.get(2);
        }
        let judged = row.met + row.breached;
        row.attainment = (judged > 0).then(|| row.met as f64 / judged as f64);
        row
    };
    Ok(SlaReport {
        period,
        generated_at: now,
        priorities: (1..=4).map(|p| row(Some(p))).collect(),
        overall: row(None),
    })
}

fn group(rows: &[ActiveRow], key: impl Fn(&ActiveRow) -> String) -> Vec<ActiveGroup> {
    let mut groups: Vec<ActiveGroup> = Vec::new();
    for row in rows {
        let key = key(row);
        match groups.iter_mut().find(|g| g.key == key) {
            Some(g) => {
                g.subscriptions += row.subscriptions;
                g.seats += row.seats;
            }
            None => groups.push(ActiveGroup {
                key,
                subscriptions: row.subscriptions,
                seats: row.seats,
            }),
        }
    }
    groups.sort_by(|a, b| {
        b.subscriptions
            .cmp(&a.subscriptions)
            .then_with(|| a.key.cmp(&b.key))
    });
    groups
}

/// The subscription report for `principal`.
pub async fn subscriptions(
    state: &AppState,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<SubscriptionsReport, ApiError> {
    let now = state.clock.now();
    let period = Period::resolve(filter.from, filter.to, now.date_naive())?;
    let mut client = state.read_pool.get().await?;
    let tx = report_transaction(&mut client).await?;
    let scope = subscription_scope(principal, filter)?;
    let until = now + Duration::days(RENEWAL_WINDOW_DAYS);
    let (start, end) = (period.start(), period.end());
    let scoped: [&(dyn ToSql + Sync); 2] = [&scope.orgs, &scope.partner];
    let due: [&(dyn ToSql + Sync); 4] = [&scope.orgs, &scope.partner, &now, &until];
    let due_items: [&(dyn ToSql + Sync); 5] =
        [&scope.orgs, &scope.partner, &now, &until, &RENEWAL_ITEMS];
    let cancelled: [&(dyn ToSql + Sync); 4] = [&scope.orgs, &scope.partner, &start, &end];
    // '' is the partner key of direct subscriptions in the counter table.
    let active = tx.query(
        "SELECT product, plan, nullif(partner_id, ''), sum(subscriptions)::bigint, \
                sum(seats)::bigint \
           FROM report_active_subscriptions \
          WHERE ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2) \
          GROUP BY product, plan, partner_id ORDER BY product, plan, partner_id",
        &scoped,
    );
    let renewals = tx.query_one(
        "SELECT count(*), coalesce(sum(seats), 0)::bigint, count(*) FILTER (WHERE auto_renew) \
           FROM report_subscription_facts \
          WHERE status = 'active' AND term_end >= $3 AND term_end < $4 \
            AND ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2)",
        &due,
    );
    let items = tx.query(
        "SELECT subscription_id, org_id, product, plan, partner_id, seats, term_end, auto_renew \
           FROM report_subscription_facts \
          WHERE status = 'active' AND term_end >= $3 AND term_end < $4 \
            AND ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2) \
          ORDER BY term_end, subscription_id LIMIT $5",
        &due_items,
    );
    let cancellations = tx.query(
        "SELECT to_char(effective_at AT TIME ZONE 'UTC', 'YYYY-MM'), count(*), \
                sum(seats)::bigint \
           FROM report_cancellations \
          WHERE effective_at >= $3 AND effective_at < $4 \
            AND ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2) \
          GROUP BY 1",
        &cancelled,
    );
    let (active, renewals, items, cancellations) =
        futures::try_join!(active, renewals, items, cancellations)?;
    tx.commit().await?;

    let rows: Vec<ActiveRow> = active
        .iter()
        .map(|r| ActiveRow {
            product: r.get(0),
            plan: r.get(1),
            partner_id: r.get(2),
            subscriptions: r.get(3),
            seats: r.get(4),
        })
        .collect();
    let active = ActiveSubscriptions {
        subscriptions: rows.iter().map(|r| r.subscriptions).sum(),
        seats: rows.iter().map(|r| r.seats).sum(),
        by_product: group(&rows, |r| r.product.clone()),
        by_plan: group(&rows, |r| r.plan.clone()),
        by_partner: group(&rows, |r| {
            r.partner_id.clone().unwrap_or_else(|| "direct".into())
        }),
        rows,
    };
    let renewals_due = RenewalsDue {
        window_days: RENEWAL_WINDOW_DAYS,
        from: now,
        until,
        subscriptions: renewals.get(0),
        seats: renewals.get(1),
        auto_renew: renewals.get(2),
        items: items
            .iter()
            .map(|r| Renewal {
                subscription_id: r.get(0),
                org_id: r.get(1),
                product: r.get(2),
                plan: r.get(3),
                partner_id: r.get(4),
                seats: r.get(5),
                term_end: r.get(6),
                auto_renew: r.get(7),
            })
            .collect(),
    };
    let cancellations: HashMap<String, [i64; 2]> = cancellations
        .iter()
        .map(|r| (r.get(0), [r.get(1), r.get(2)]))
        .collect();
    let cancellations_per_month = period
        .months()
        .into_iter()
        .map(|month| {
            let [cancelled, seats] = cancellations.get(&month).copied().unwrap_or_default();
            MonthCancellations {
                cancellations: cancelled,
                seats,
                month,
            }
        })
        .collect();
    Ok(SubscriptionsReport {
        period,
        generated_at: now,
        active,
        renewals_due,
        cancellations_per_month,
    })
}

// --- CSV --------------------------------------------------------------------------------------

/// A CSV document (RFC 4180: comma-separated, CRLF line ends, fields quoted when needed).
struct Csv {
    text: String,
}

impl Csv {
    fn new(header: &[&str]) -> Self {
        let mut csv = Self {
            text: String::new(),
        };
        csv.row(header.iter().map(|h| h.to_string()));
        csv
    }

    fn row(&mut self, fields: impl IntoIterator<Item = String>) {
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            if field.contains([',', '"', '\n', '\r']) {
                self.text.push('"');
                self.text.push_str(&field.replace('"', "\"\""));
                self.text.push('"');
            } else {
                self.text.push_str(&field);
            }
        }
        self.text.push_str("\r\n");
    }
}

/// A text field as a spreadsheet should show it: one that starts like a formula is prefixed
/// with `'`, so that opening the file never evaluates what a customer typed.
fn text(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn unknown_table(table: &str, known: &[&str]) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_table",
        detail: format!(
            "unknown table `{table}`; this report has {}",
            known
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub const CASE_TABLES: [&str; 3] = ["open", "per_day", "by_product"];
pub const SLA_TABLES: [&str; 1] = ["priorities"];
pub const SUBSCRIPTION_TABLES: [&str; 3] = ["active", "renewals", "cancellations"];

fn cases_csv(report: &CasesReport, table: &str) -> Result<Csv, ApiError> {
    Ok(match table {
        "open" => {
            let mut csv = Csv::new(&["status", "priority", "cases"]);
            for c in &report.open.cells {
                csv.row([
                    c.status.clone(),
                    c.priority.to_string(),
                    c.cases.to_string(),
                ]);
            }
            csv
        }
        "per_day" => {
            let mut csv = Csv::new(&["day", "opened", "resolved", "auto_resolved"]);
            for d in &report.per_day {
                csv.row([
                    d.day.to_string(),
                    d.opened.to_string(),
                    d.resolved.to_string(),
                    d.auto_resolved.to_string(),
                ]);
            }
            csv
        }
        "by_product" => {
            let mut csv = Csv::new(&["product", "opened", "resolved", "auto_resolved"]);
            for p in &report.by_product {
                csv.row([
                    text(&p.product),
                    p.opened.to_string(),
                    p.resolved.to_string(),
                    p.auto_resolved.to_string(),
                ]);
            }
            csv
        }
        other => return Err(unknown_table(other, &CASE_TABLES)),
    })
}

fn sla_csv(report: &SlaReport, table: &str) -> Result<Csv, ApiError> {
    if table != SLA_TABLES[0] {
        return Err(unknown_table(table, &SLA_TABLES));
    }
    let mut csv = Csv::new(&[
        "priority",
        "target_seconds",
        "opened",
        "responded",
        "met",
        "breached",
        "awaiting_response",
        "attainment",
        "median_first_response_seconds",
        "resolved",
        "median_resolution_seconds",
    ]);
    for row in report.priorities.iter().chain([&report.overall]) {
        csv.row([
            row.priority
                .map_or_else(|| "all".to_string(), |p| p.to_string()),
            opt(row.target_seconds),
            row.opened.to_string(),
            row.responded.to_string(),
            row.met.to_string(),
            row.breached.to_string(),
            row.awaiting_response.to_string(),
            opt(row.attainment.map(|a| format!("{a:.4}"))),
            opt(row.median_first_response_seconds),
            row.resolved.to_string(),
            opt(row.median_resolution_seconds),
        ]);
    }
    Ok(csv)
}

fn subscriptions_csv(report: &SubscriptionsReport, table: &str) -> Result<Csv, ApiError> {
    Ok(match table {
        "active" => {
            let mut csv = Csv::new(&["product", "plan", "partner_id", "subscriptions", "seats"]);
            for r in &report.active.rows {
                csv.row([
                    text(&r.product),
                    text(&r.plan),
                    opt(r.partner_id.as_deref().map(text)),
                    r.subscriptions.to_string(),
                    r.seats.to_string(),
                ]);
            }
            csv
        }
        "renewals" => {
            let mut csv = Csv::new(&[
                "subscription_id",
                "org_id",
                "product",
                "plan",
                "partner_id",
                "seats",
                "term_end",
                "auto_renew",
            ]);
            for r in &report.renewals_due.items {
                csv.row([
                    r.subscription_id.to_string(),
                    text(&r.org_id),
                    text(&r.product),
                    text(&r.plan),
                    opt(r.partner_id.as_deref().map(text)),
                    r.seats.to_string(),
                    r.term_end
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    r.auto_renew.to_string(),
                ]);
            }
            csv
        }
        "cancellations" => {
            let mut csv = Csv::new(&["month", "cancellations", "seats"]);
            for m in &report.cancellations_per_month {
                csv.row([
                    m.month.clone(),
                    m.cancellations.to_string(),
                    m.seats.to_string(),
                ]);
            }
            csv
        }
        other => return Err(unknown_table(other, &SUBSCRIPTION_TABLES)),
    })
}

fn csv_response(csv: Csv, report: &str, table: &str, period: Period) -> Response {
    let file = format!(
        "attachment; filename=\"subdesk-{report}-{table}-{}-{}.csv\"",
        period.from, period.to
    );
    let mut response = csv.text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&file) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

// --- handlers ---------------------------------------------------------------------------------

/// What the request asks for: the filter, and the CSV table when it wants CSV.
async fn prepare(
    state: &AppState,
    params: Result<Query<ReportParams>, QueryRejection>,
    headers: &HeaderMap,
    default_table: &str,
) -> Result<(ReportFilter, Option<String>), ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest {
        code: "invalid_query",
        detail: e.body_text(),
    })?;
    if let Some(position) = params.min_position {
        wait_for(state, PROJECTION, position).await?;
    }
    let wants_csv = match params.format {
        Some(format) => format == Format::Csv,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv")),
    };
    let table = wants_csv.then(|| {
        params
            .table
            .clone()
            .unwrap_or_else(|| default_table.to_string())
    });
    Ok((ReportFilter::from(&params), table))
}

/// Case report: open cases now by status x priority; opened, resolved and auto-resolved per
/// day and per product over the period.
///
/// CSV tables: `open` (default), `per_day`, `by_product`.
#[utoipa::path(get, path = "/v1/reports/cases", tag = "reports",
    params(ReportParams),
    responses(
        (status = 200, description = "The report (JSON), or one of its tables (CSV)", content(
            (CasesReport = "application/json"),
            (String = "text/csv", example = json!("status,priority,cases\r\nopen,1,1\r\nopen,2,0\r\n"))
        )),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Customers who are not org admins; partners without `access_cases`"),
        (status = 404, body = Problem, description = "An `org_id` or `partner_id` the caller does not see"),
        (status = 422, body = Problem, description = "`from` after `to`, or a period over 731 days"),
    ))]
async fn cases_report(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (filter, table) = prepare(&state, params, &headers, CASE_TABLES[0]).await?;
    let report = cases(&state, &ctx.principal, &filter).await?;
    match table {
        Some(table) => Ok(csv_response(
            cases_csv(&report, &table)?,
            "cases",
            &table,
            report.period,
        )),
        None => Ok(Json(report).into_response()),
    }
}

/// SLA report per priority: first-response attainment and median time to first response of
/// the cases opened in the period; median time to resolution of the cases resolved in it.
///
/// A case counts at the priority it is worked at now. `met`: answered within the target;
/// `breached`: answered late, or not answered past the due time (until its resolution, or
/// now); `attainment = met / (met + breached)`. A case resolved before its due time without
/// an answer counts in neither. Resolution time is from the opening to the latest resolution
/// of a case that stayed resolved (a reopened case counts again once resolved again).
///
/// CSV table: `priorities` (the four priorities, then `all`).
#[utoipa::path(get, path = "/v1/reports/sla", tag = "reports",
    params(ReportParams),
    responses(
        (status = 200, description = "The report (JSON), or its table (CSV)", content(
            (SlaReport = "application/json"),
            (String = "text/csv", example = json!("priority,target_seconds,opened,responded,met,breached,awaiting_response,attainment,median_first_response_seconds,resolved,median_resolution_seconds\r\n1,3600,4,4,3,1,0,0.7500,1800,3,86400\r\n"))
        )),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Customers who are not org admins; partners without `access_cases`"),
        (status = 404, body = Problem, description = "An `org_id` or `partner_id` the caller does not see"),
        (status = 422, body = Problem, description = "`from` after `to`, or a period over 731 days"),
    ))]
async fn sla_report(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (filter, table) = prepare(&state, params, &headers, SLA_TABLES[0]).await?;
    let report = sla(&state, &ctx.principal, &filter).await?;
    match table {
        Some(table) => Ok(csv_response(
            sla_csv(&report, &table)?,
            "sla",
            &table,
            report.period,
        )),
        None => Ok(Json(report).into_response()),
    }
}

/// Subscription report: subscriptions in force and their seats by product, plan and partner;
/// renewals due in the next 30 days; cancellations per month of the period.
///
/// In force = active or non-renewing. Renewals due = active subscriptions whose bill date is
/// within 30 days from now (with auto-renew off they will expire instead). A cancellation
/// counts in the month it took effect.
///
/// CSV tables: `active` (default), `renewals`, `cancellations`.
#[utoipa::path(get, path = "/v1/reports/subscriptions", tag = "reports",
    params(ReportParams),
    responses(
        (status = 200, description = "The report (JSON), or one of its tables (CSV)", content(
            (SubscriptionsReport = "application/json"),
            (String = "text/csv", example = json!("product,plan,partner_id,subscriptions,seats\r\njira-software,standard,p-cloudwise,2,35\r\n"))
        )),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem, description = "Customers who are not org admins; partners without `view_customers`"),
        (status = 404, body = Problem, description = "An `org_id` or `partner_id` the caller does not see"),
        (status = 422, body = Problem, description = "`from` after `to`, or a period over 731 days"),
    ))]
async fn subscriptions_report(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (filter, table) = prepare(&state, params, &headers, SUBSCRIPTION_TABLES[0]).await?;
    let report = subscriptions(&state, &ctx.principal, &filter).await?;
    match table {
        Some(table) => Ok(csv_response(
            subscriptions_csv(&report, &table)?,
            "subscriptions",
            &table,
            report.period,
        )),
        None => Ok(Json(report).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn the_default_period_is_the_thirty_days_up_to_today() {
        let period = Period::resolve(None, None, day(2026, 3, 30)).expect("period");
        assert_eq!(period.from, day(2026, 3, 1));
        assert_eq!(period.days().count(), 30);
        assert_eq!(period.months(), ["2026-03"]);
    }

    #[test]
    fn a_period_backwards_or_longer_than_two_years_is_refused() {
        assert!(Period::resolve(
            Some(day(2026, 3, 2)),
            Some(day(2026, 3, 1)),
            day(2026, 3, 2)
        )
        .is_err());
        assert!(Period::resolve(Some(day(2020, 1, 1)), None, day(2026, 3, 2)).is_err());
    }

    #[test]
    fn months_run_across_the_year_end() {
        let period = Period::resolve(
            Some(day(2025, 11, 15)),
            Some(day(2026, 1, 2)),
            day(2026, 3, 2),
        )
        .expect("period");
        assert_eq!(period.months(), ["2025-11", "2025-12", "2026-01"]);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed_and_formulas_are_defused() {
        let mut csv = Csv::new(&["product", "cases"]);
        csv.row([text("jira, \"cloud\""), "3".into()]);
        csv.row([text("=HYPERLINK(\"x\")"), "1".into()]);
        assert_eq!(
            csv.text,
            "product,cases\r\n\"jira, \"\"cloud\"\"\",3\r\n\"'=HYPERLINK(\"\"x\"\")\",1\r\n"
        );
    }
}
