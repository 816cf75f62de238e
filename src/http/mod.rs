//! The HTTP API: JSON under `/v1`, problem+json errors, OpenAPI 3.1 at `/openapi.json` and
//! an offline documentation UI at `/docs`.
//!
//! Each resource owns its router (`cases::router()`, `subscriptions::router()`, ...); handlers stay thin: extract, build
//! the command, run it through [`command::run`], map the result.

pub mod audit;
pub mod bounds;
pub mod calendars;
pub mod cases;
pub mod command;
pub mod consistency;
pub mod contract;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod feed;
pub mod health;
pub mod orgs;
pub mod partners;
pub mod privacy;
pub mod projections;
pub mod reports;
pub mod settings;
pub mod subscriptions;
pub mod timetravel;
pub mod tokens;
pub mod webhooks;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "subdesk",
        description = "Event-sourced engine for customer subscriptions and support cases. \
            Every accepted command appends events and answers with the stream `version` and \
            global `position` it reached; pass `min_position` to a read to see your own write. \
            Errors are RFC 9457 problem documents with a stable `code`. Every POST accepts an \
            `Idempotency-Key` header: the same key and body within 24 hours returns the first \
            response and appends nothing. Any route may answer 503 with `Retry-After`: \
            `database_unavailable`, `read_model_behind` (a `min_position` read waited its \
            bound), or `request_timeout` (the request ran past the server's request timeout; a \
            command cut off so may have committed: repeat it with its `Idempotency-Key`)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(error::Problem)),
    tags(
        (name = "cases", description = "Support cases"),
        (name = "subscriptions", description = "Subscriptions: seats, storage, plan, renewal, \
            cancellation, apps, contacts, site, billing account, collections"),
        (name = "audit", description = "The event log, its verification, for auditors"),
        (name = "settings", description = "What people and orgs choose: the language of their mail"),
        (name = "webhooks", description = "Endpoints that receive the events their owner may see, signed, at least once, in order"),
        (name = "events", description = "The event feed for integrators: what each caller may see of the log, paged, long-polled or streamed"),
        (name = "partners", description = "Partner relationships an org grants, and the \
            partner view of the orgs that granted them"),
        (name = "orgs", description = "An org's settings: the business calendar its service \
            levels count on"),
        (name = "tokens", description = "API tokens, for admins"),
        (name = "privacy", description = "Erasure of data subjects (crypto-shredding), for admins"),
        (name = "reports", description = "Dashboards: cases, first-response SLA and \
            resolution times, subscriptions and seats, renewals, cancellations; JSON or CSV, \
            scoped to what the caller sees"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    contract::complete(routes().split_for_parts().1)
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(cases::router())
        .merge(subscriptions::router())
        .merge(audit::router())
        .merge(feed::router())
        .merge(webhooks::router())
        .merge(settings::router())
        .merge(tokens::router())
        .merge(privacy::router())
        .merge(partners::router())
        .merge(orgs::router())
        .merge(calendars::router())
        .merge(projections::router())
        .merge(reports::router())
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = routes().split_for_parts();
    let openapi = contract::complete(openapi);
    let request_id = HeaderName::from_static(extract::REQUEST_ID);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .route_layer(axum::middleware::from_fn(query_bounds))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::middleware::map_response(problem_for_rejections))
        // Pages for people: their refusals are pages (the sign-in form with a message), not
        // problem documents, so they join below the problem layer.
        .merge(dashboard::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let id = request
                    .headers()
                    .get(extract::REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, UuidV7))
        // Outermost: before anything reads the request or its ids, and on every response.
        .layer(axum::middleware::from_fn(edge))
        .with_state(state)
}

/// The first and last word on every request: ids a caller sent that are too long or not
/// printable are dropped (a fresh id replaces them, so metadata and logs only ever hold short
/// printable ids); a path or query string carrying NUL (`%00`), which no text column can
/// store, is refused with 400 before any handler sees it; and every response says
/// `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` when it answers a request
/// that carried credentials.
async fn edge(mut request: Request, next: Next) -> Response {
    use axum::http::header;
    for name in [extract::REQUEST_ID, extract::CORRELATION_ID] {
        let acceptable = request
            .headers()
            .get(name)
            .map(|v| v.to_str().is_ok_and(extract::acceptable_id));
        if acceptable == Some(false) {
            request.headers_mut().remove(name);
        }
    }
    let credentials = request.headers().contains_key(header::AUTHORIZATION)
        || request.headers().contains_key(header::COOKIE);
    let nul = |text: &str| {
        text.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    let mut response = if nul(request.uri().path()) || request.uri().query().is_some_and(nul) {
        use axum::response::IntoResponse;
        ApiError::BadRequest {
            code: "invalid_text",
            detail: "the path and query must not carry NUL characters (%00)".into(),
        }
        .into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    if credentials && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// Turns every error response that is not a problem document yet (axum's own rejections of a
/// malformed path or query, an unsupported method, a body over the limit) into one, so that
/// every error a client sees is `application/problem+json` with a stable code.
async fn problem_for_rejections(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        _ if status.is_server_error() => "internal",
        _ => "error",
    };
    error::problem(status, code, detail)
}

/// Whether PostgreSQL can store an instant taken from a request (chrono reaches further).
pub(crate) fn storable(at: &chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&at.year())
}

/// Request ids are UUID v7 unless the caller sent one.
#[derive(Clone, Copy)]
struct UuidV7;

impl MakeRequestId for UuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        axum::http::HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Counts requests and times them per route and status.
/// Bounds every request by the configured request timeout: past it the work is dropped and
/// the client gets 503 `request_timeout` with `Retry-After` (a command cut off this way either
/// committed or did not; repeating it with its `Idempotency-Key` tells which, safely).
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let limit = state.settings.request_timeout;
    if limit.is_zero() {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("subdesk_http_timeouts_total").increment(1);
            ApiError::Unavailable {
                code: "request_timeout",
                detail: format!("the request took longer than {limit:?}; retry shortly"),
            }
            .into_response()
        }
    }
}

/// Refuses (400 `invalid_query`) a query parameter its route's document excludes: too long,
/// off its pattern or enumeration, an integer out of its range (see [`bounds::check_query`]).
async fn query_bounds(request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if let (Some(route), Some(query)) = (
        request.extensions().get::<MatchedPath>(),
        request.uri().query(),
    ) {
        if let Err(detail) = bounds::check_query(request.method().as_str(), route.as_str(), query) {
            return ApiError::BadRequest {
                code: "invalid_query",
                detail,
            }
            .into_response();
        }
    }
    next.run(request).await
}

async fn track(State(_): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Labels come from a fixed vocabulary only, so no request can create series: the matched
    // route template (or `unmatched`), and a known method (or `other`).
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("subdesk_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("subdesk_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The metrics label of a method: one of the standard ones, else `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
