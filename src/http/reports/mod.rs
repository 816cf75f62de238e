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

mod csv;

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, IntoResponses, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::consistency::wait_for;
use super::contract;
use super::error::ApiError;
use super::extract::{Answer, Ctx};
use crate::access::reports::{case_orgs, subscription_scope, ReportDenied};
use crate::auth::Principal;
use crate::read::reports as read;
use crate::state::AppState;

pub use crate::access::reports::{may_see_reports, ReportFilter};
pub use crate::read::reports::{
    CasesReport, InvalidPeriod, Period, SlaReport, SlaRow, SubscriptionsReport, RENEWAL_WINDOW_DAYS,
};
pub use csv::{CASE_TABLES, SLA_TABLES, SUBSCRIPTION_TABLES};

use csv::{cases_csv, csv_response, sla_csv, subscriptions_csv, Csv};

/// Name of the projection behind every report.
pub const PROJECTION: &str = "reports";

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
    #[param(
        pattern = "^(open|per_day|by_product|by_request_type|priorities|active|renewals|cancellations)$"
    )]
    pub table: Option<String>,
    /// Answer only once the reports have applied this position (from a command response).
    pub min_position: Option<i64>,
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

impl From<ReportDenied> for ApiError {
    fn from(denied: ReportDenied) -> Self {
        match denied {
            ReportDenied::Forbidden(why) => ApiError::Forbidden(why.into()),
            ReportDenied::NotFound(what) => ApiError::not_found(what),
            ReportDenied::Database(error) => error.into(),
        }
    }
}

impl From<InvalidPeriod> for ApiError {
    fn from(invalid: InvalidPeriod) -> Self {
        ApiError::unprocessable("invalid_period", invalid.to_string())
    }
}

// --- the reports, for a principal --------------------------------------------------------------

/// Now, on the injected clock, and the period `filter` asks for, resolved against today.
fn now_and_period(
    state: &AppState,
    filter: &ReportFilter,
) -> Result<(chrono::DateTime<chrono::Utc>, Period), InvalidPeriod> {
    let now = state.clock.now();
    Ok((
        now,
        Period::resolve(filter.from, filter.to, now.date_naive())?,
    ))
}

/// The case report for `principal`: its scope, then the read, in one read-only transaction.
pub async fn cases(
    state: &AppState,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<CasesReport, ApiError> {
    let (now, period) = now_and_period(state, filter)?;
    retried(|| async move {
        let mut client = state.read_pool.get().await?;
        let tx = read::report_transaction(&mut client).await?;
        let orgs = case_orgs(&*tx, principal, filter).await?;
        let report = read::cases(&*tx, &orgs, period, now).await?;
        tx.commit().await?;
        Ok(report)
    })
    .await
}

/// Runs a report's read again (a few times, with a short pause) when it collided with
/// concurrent work: a rebuild swapping in the report tables (after an erasure, say) can
/// deadlock with a reader of several of them, or abort its transaction.
async fn retried<T, F, Fut>(mut read: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut pause = std::time::Duration::from_millis(20);
    for _ in 0..5 {
        match read().await {
            Err(ApiError::Unavailable {
                code:
                    "deadlock_detected"
                    | "serialization_failure"
                    | "lock_not_available"
                    | "transaction_aborted",
                ..
            }) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            answer => return answer,
        }
    }
    read().await
}

/// The SLA report for `principal`.
pub async fn sla(
    state: &AppState,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<SlaReport, ApiError> {
    let (now, period) = now_and_period(state, filter)?;
    retried(|| async move {
        let mut client = state.read_pool.get().await?;
        let tx = read::report_transaction(&mut client).await?;
        let orgs = case_orgs(&*tx, principal, filter).await?;
        let policy = &state.settings.case_policy;
        let report = read::sla(&*tx, &orgs, period, now, policy).await?;
        tx.commit().await?;
        Ok(report)
    })
    .await
}

/// The subscription report for `principal`.
pub async fn subscriptions(
    state: &AppState,
    principal: &Principal,
    filter: &ReportFilter,
) -> Result<SubscriptionsReport, ApiError> {
    let (now, period) = now_and_period(state, filter)?;
    let scope = subscription_scope(principal, filter)?;
    let scope = &scope;
    retried(|| async move {
        let mut client = state.read_pool.get().await?;
        let tx = read::report_transaction(&mut client).await?;
        let report = read::subscriptions(&*tx, scope, period, now).await?;
        tx.commit().await?;
        Ok(report)
    })
    .await
}

// --- handlers ---------------------------------------------------------------------------------

/// A report request: the caller, the filter, and the CSV table when it asks for CSV (the
/// report's first table unless `table` names one). Waits for `min_position` first.
struct ReportRequest {
    state: AppState,
    principal: Principal,
    filter: ReportFilter,
    /// `Some` when the caller asked for CSV: the table it named, if any.
    csv: Option<Option<String>>,
}

impl FromRequestParts<AppState> for ReportRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ctx = Ctx::from_request_parts(parts, state).await?;
        let Query(params) = Query::<ReportParams>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "invalid_query",
                detail: e.body_text(),
            })?;
        if let Some(position) = params.min_position {
            wait_for(state, PROJECTION, position).await?;
        }
        let wants_csv = match params.format {
            Some(format) => format == Format::Csv,
            None => parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("text/csv")),
        };
        Ok(Self {
            state: state.clone(),
            principal: ctx.principal,
            filter: ReportFilter::from(&params),
            csv: wants_csv.then(|| params.table.clone()),
        })
    }
}

impl ReportRequest {
    /// `report` as JSON, or as the CSV table asked for (`tables[0]` by default), written by
    /// `to_csv` and named after `name` and the period.
    fn answer<R: Serialize>(
        &self,
        report: &R,
        name: &str,
        period: Period,
        tables: &[&str],
        to_csv: fn(&R, &str) -> Result<Csv, ApiError>,
    ) -> Answer {
        let Some(table) = &self.csv else {
            return Ok(Json(report).into_response());
        };
        let table = table.as_deref().or(tables.first().copied()).unwrap_or("");
        Ok(csv_response(to_csv(report, table)?, name, table, period))
    }
}

/// The error answers of the reports over cases (the 403 of those a case report is not for).
struct CaseReportErrors;

/// The error answers of the reports over subscriptions.
struct SubscriptionReportErrors;

impl IntoResponses for CaseReportErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        report_errors("Customers who are not org admins; partners without `access_cases`")
    }
}

impl IntoResponses for SubscriptionReportErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        report_errors("Customers who are not org admins; partners without `view_customers`")
    }
}

/// The error answers every report shares, with `forbidden` describing its 403.
fn report_errors(forbidden: &str) -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
    BTreeMap::from([
        ("403".to_string(), contract::problem(forbidden)),
        (
            "404".to_string(),
            contract::problem("An `org_id` or `partner_id` the caller does not see"),
        ),
        (
            "422".to_string(),
            contract::problem("`from` after `to`, or a period over 731 days"),
        ),
    ])
}

/// Case report: open cases now by status x priority; opened, resolved and auto-resolved per
/// day and per product over the period.
///
/// CSV tables: `open` (default), `per_day`, `by_product`, `by_request_type`.
#[utoipa::path(get, path = "/v1/reports/cases", tag = "reports",
    params(ReportParams),
    responses(CaseReportErrors,
        (status = 200, description = "The report (JSON), or one of its tables (CSV)", content(
            (CasesReport = "application/json"),
            (String = "text/csv", example = json!("status,priority,cases\r\nopen,1,1\r\nopen,2,0\r\n"))
        )),
    ))]
async fn cases_report(request: ReportRequest) -> Answer {
    let report = cases(&request.state, &request.principal, &request.filter).await?;
    request.answer(&report, "cases", report.period, &CASE_TABLES, cases_csv)
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
    responses(CaseReportErrors,
        (status = 200, description = "The report (JSON), or its table (CSV)", content(
            (SlaReport = "application/json"),
            (String = "text/csv", example = json!("priority,target_seconds,opened,responded,met,breached,awaiting_response,attainment,median_first_response_seconds,resolved,median_resolution_seconds\r\n1,3600,4,4,3,1,0,0.7500,1800,3,86400\r\n"))
        )),
    ))]
async fn sla_report(request: ReportRequest) -> Answer {
    let report = sla(&request.state, &request.principal, &request.filter).await?;
    request.answer(&report, "sla", report.period, &SLA_TABLES, sla_csv)
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
    responses(SubscriptionReportErrors,
        (status = 200, description = "The report (JSON), or one of its tables (CSV)", content(
            (SubscriptionsReport = "application/json"),
            (String = "text/csv", example = json!("product,plan,partner_id,subscriptions,seats\r\njira-software,standard,p-cloudwise,2,35\r\n"))
        )),
    ))]
async fn subscriptions_report(request: ReportRequest) -> Answer {
    let report = subscriptions(&request.state, &request.principal, &request.filter).await?;
    let period = report.period;
    request.answer(
        &report,
        "subscriptions",
        period,
        &SUBSCRIPTION_TABLES,
        subscriptions_csv,
    )
}
