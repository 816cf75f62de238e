//! `/dashboard`: the reports of [`super::reports`] as a page for people, with charts.
//!
//! - `GET /dashboard`: the sign-in form, or the dashboard of the signed-in principal's scope.
//! - `POST /dashboard/sign-in`: takes an API token from the form body (never from the URL)
//!   and starts a session kept in an HttpOnly, SameSite=Strict cookie ([`session`]).
//! - `POST /dashboard/sign-out`: ends it.
//! - `GET /dashboard/panels`: the panels alone; the page's script fetches them every
//!   10 seconds and swaps them in, so the page refreshes itself without a reload.
//! - `GET /dashboard/assets/*`: the style sheet and the script, compiled into the binary.
//!
//! The markup is in askama templates (`templates/dashboard/`), which escape every value; the
//! only markup they take as it is comes from [`charts`] or from another of them (`page`).
//! Charts are SVG drawn on the server by `plotters` ([`charts`]); every chart has a table with
//! its numbers next to it. Nothing is loaded from anywhere but this server, and the pages say
//! so in their Content-Security-Policy.

pub mod charts;
mod format;
mod page;
#[cfg(test)]
mod page_tests;
pub mod session;
mod view;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use super::error::ApiError;
use super::reports::{self, ReportFilter};
use crate::auth::Principal;
use crate::state::AppState;

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard))
        .route("/dashboard/panels", get(panels))
        .route("/dashboard/sign-in", post(sign_in))
        .route("/dashboard/sign-out", post(sign_out))
        .route("/dashboard/assets/dashboard.css", get(css))
        .route("/dashboard/assets/dashboard.js", get(js))
}

/// The filters of the page, as typed (a bad date is shown as a message, not a 400).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub org_id: Option<String>,
    pub partner_id: Option<String>,
}

impl PageParams {
    fn filter(&self) -> Result<ReportFilter, String> {
        let date = |name: &str, value: &Option<String>| -> Result<Option<NaiveDate>, String> {
            match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("`{name}` is not a date (YYYY-MM-DD): {v}")),
            }
        };
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Ok(ReportFilter {
            from: date("from", &self.from)?,
            to: date("to", &self.to)?,
            org_id: text(&self.org_id),
            partner_id: text(&self.partner_id),
        })
    }

    /// The query string that reproduces these filters (for the refresh).
    fn query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("org_id", &self.org_id),
            ("partner_id", &self.partner_id),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                pairs.push((name, value.trim().to_string()));
            }
        }
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The three reports as the page shows them; each may be refused on its own (a partner
/// without one of the scopes sees the other half).
pub struct Data {
    pub cases: Result<reports::CasesReport, ApiError>,
    pub sla: Result<reports::SlaReport, ApiError>,
    pub subscriptions: Result<reports::SubscriptionsReport, ApiError>,
}

async fn gather(state: &AppState, principal: &Principal, filter: &ReportFilter) -> Data {
    // Cancellations are charted over the twelve months up to the period's end.
    let today = state.clock.now().date_naive();
    let to = filter.to.unwrap_or(today);
    let year_start = NaiveDate::from_ymd_opt(to.year() - 1, to.month(), 1)
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)));
    let yearly = ReportFilter {
        from: year_start.or(filter.from),
        to: Some(to),
        ..filter.clone()
    };
    let (cases, sla, subscriptions) = tokio::join!(
        reports::cases(state, principal, filter),
        reports::sla(state, principal, filter),
        reports::subscriptions(state, principal, &yearly),
    );
    Data {
        cases,
        sla,
        subscriptions,
    }
}

/// An HTML response with the headers every dashboard page carries; the body comes from the
/// page's templates.
fn html(status: StatusCode, body: page::Markup) -> Response {
    let mut response = (status, body.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The signed-in principal, if the request carries a live session.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    let Some(id) = session::from_headers(headers) else {
        return Ok(None);
    };
    let client = state.pool.get().await?;
    let Some(mut principal) = session::principal(&**client, &id).await? else {
        return Ok(None);
    };
    principal.reach = crate::relationships::reach_of(&client, &principal).await?;
    Ok(Some(principal))
}

/// A form posted from another site is refused: browsers name the page's origin in `Origin`
/// on every POST, so it must be this host. (The pages' `Referrer-Policy: same-origin` keeps
/// browsers sending it: under `no-referrer` a POST says `Origin: null`.)
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    let Some(principal) = signed_in(&state, &headers).await? else {
        let mut response = html(StatusCode::OK, page::sign_in(None)?);
        if session::from_headers(&headers).is_some() {
            // A cookie of an ended session: drop it.
            if let Some(clear) = session::clear_cookie(&headers) {
                response.headers_mut().insert(header::SET_COOKIE, clear);
            }
        }
        return Ok(response);
    };
    let today = state.clock.now().date_naive();
    let (panels, period) = match params.filter() {
        Ok(filter) => {
            let data = gather(&state, &principal, &filter).await;
            let period = reports::Period::resolve(filter.from, filter.to, today).ok();
            (page::panels(&principal, &data)?, period)
        }
        Err(message) => (page::message(&message)?, None),
    };
    Ok(html(
        StatusCode::OK,
        page::dashboard(&principal, &params, period, &params.query(), &panels)?,
    ))
}

async fn panels(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Result<Response, ApiError> {
    let Some(principal) = signed_in(&state, &headers).await? else {
        return Ok(html(
            StatusCode::UNAUTHORIZED,
            page::message("Your session has ended; sign in again.")?,
        ));
    };
    let body = match params.filter() {
        Ok(filter) => page::panels(&principal, &gather(&state, &principal, &filter).await)?,
        Err(message) => page::message(&message)?,
    };
    Ok(html(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Ok(html(
            StatusCode::FORBIDDEN,
            page::sign_in(Some("Sign in from this server's own page."))?,
        ));
    }
    let principal = state.auth.authenticate(form.token.trim()).await?;
    let Some(principal) = principal else {
        return Ok(html(
            StatusCode::UNAUTHORIZED,
            page::sign_in(Some("That token is unknown or revoked."))?,
        ));
    };
    if let Err(refused) = reports::may_see_reports(&principal) {
        return Ok(html(
            StatusCode::FORBIDDEN,
            page::sign_in(Some(&refused.to_string()))?,
        ));
    }
    let client = state.pool.get().await?;
    let id = session::start(&**client, &principal).await?;
    let mut response = Redirect::to("/dashboard").into_response();
    if let Some(cookie) = session::set_cookie(&id, &headers) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    secure_headers(response.headers_mut());
    Ok(response)
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Ok(html(
            StatusCode::FORBIDDEN,
            page::message("Sign out from this server's own page.")?,
        ));
    }
    if let Some(id) = session::from_headers(&headers) {
        let client = state.pool.get().await?;
        session::end(&**client, &id).await?;
    }
    let mut response = Redirect::to("/dashboard").into_response();
    if let Some(clear) = session::clear_cookie(&headers) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    secure_headers(response.headers_mut());
    Ok(response)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_from_another_origin_is_told_apart_from_one_of_this_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers), "no Origin: not a browser form");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
    }

    #[test]
    fn filters_survive_the_refresh_url_encoded() {
        let params = PageParams {
            from: Some("2026-03-01".into()),
            org_id: Some("acme & co".into()),
            ..PageParams::default()
        };
        assert_eq!(params.query(), "from=2026-03-01&org_id=acme%20%26%20co");
        assert!(PageParams {
            to: Some("tomorrow".into()),
            ..PageParams::default()
        }
        .filter()
        .is_err());
    }
}
