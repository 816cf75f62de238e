//! `GET /v1/events`: the event feed for integrators, page by page (with long polling) or as a
//! stream of Server-Sent Events. Every principal reads what it may see (`access::feed`); the
//! shaping, scoping and bounded scans are `crate::feed`'s.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use subdesk_projections::Checkpoint;
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{principal_of, Ctx};
use crate::auth::Principal;
use crate::feed::slots::{Slot, STREAMS_PER_TOKEN};
use crate::feed::{FeedEvent, Page, TypeFilter};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// Longest a page request waits for events (`wait`).
pub const MAX_WAIT_SECONDS: i64 = 30;
/// How often an idle wait or stream looks again when no projection of this process advanced
/// (another process may be the one applying the feed).
const POLL: Duration = Duration::from_secs(1);
/// How often an idle stream sends a comment: proxies keep it open, and a client that went
/// away is noticed (its slot freed) by then.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Read on after this event: the `next` of a previous page or an event's `cursor`. Leave
    /// out, or pass `0`, to start at the beginning of the log.
    #[param(max_length = 40, pattern = r"^([0-9]+\.[0-9]+|0)?$")]
    pub after: Option<String>,
    /// Only these event types, comma-separated: names (`case.comment_added`) or prefixes
    /// ending in `*` (`case.*`). A name that matches no event type is refused (422
    /// `unknown_event_type`).
    #[param(max_length = 2000)]
    pub types: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Long polling: when nothing follows `after`, wait up to this many seconds (0 to 30,
    /// default 0) for the first event before answering an empty page.
    #[param(minimum = 0, maximum = 30)]
    pub wait: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// Pass as `after` to read on. It moves past everything the page looked at, including
    /// events the caller may not see or did not ask for.
    pub next: String,
    /// Whether more may follow at once. A page can hold fewer events than `limit` (even none)
    /// while more follow: read on while this is true.
    pub has_more: bool,
}

impl From<Page> for FeedPage {
    fn from(page: Page) -> Self {
        Self {
            events: page.events,
            next: page.next.token(),
            has_more: page.has_more,
        }
    }
}

/// The events the caller may see, in the log's gap-free catch-up order.
///
/// Staff and auditors read the whole log; a customer reads their org's events that they may
/// see (their cases, or all of them as org admin; subscriptions; the calendar; relationships
/// as org admin); a partner reads the cases of orgs where `access_cases` is in force, the
/// subscriptions it manages where `view_customers` is, and its own relationships. Visibility is
/// decided when a page is read. The customer side never gets internal comments, SLA warnings,
/// warning times or staff-only metadata.
///
/// With `Accept: text/event-stream` the answer is a stream of Server-Sent Events (`id`: the
/// event's cursor, `event`: its type, `data`: the event as JSON) that stays open, follows the
/// log as it grows and resumes after `Last-Event-ID`; at most 4 streams per token (429
/// `too_many_streams` beyond).
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(FeedParams,
        ("Last-Event-ID" = Option<String>, Header, max_length = 40, pattern = r"^[0-9]+\.[0-9]+$",
         description = "Resume after this event (an event's `cursor`); takes precedence over `after`")),
    responses(
        (status = 200, description = "A page of events, or with `Accept: text/event-stream` an open stream of them",
            content((FeedPage = "application/json"), (String = "text/event-stream"))),
        (status = 422, body = Problem, description = "`invalid_after`, `unknown_event_type`"),
        (status = 429, body = Problem, description = "`too_many_streams`: this token holds the most event streams at once"),
    ))]
async fn events(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(params): Query<FeedParams>,
) -> Result<Response, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let after = parse_after(resume.as_deref().or(params.after.as_deref()))?;
    let filter = TypeFilter::parse_list(params.types.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::unprocessable("unknown_event_type", e.to_string()))?;
    let limit = params.limit.unwrap_or(100);
    let wait = params.wait.unwrap_or(0);
    if !(1..=1000).contains(&limit) || !(0..=MAX_WAIT_SECONDS).contains(&wait) {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            detail: format!("limit is 1 to 1000, wait 0 to {MAX_WAIT_SECONDS}"),
        });
    }
    if wants_stream(&headers) {
        let slot = state
            .streams
            .take(ctx.principal.token_id)
            .ok_or_else(|| ApiError::TooMany {
                code: "too_many_streams",
                detail: format!(
                    "a token holds at most {STREAMS_PER_TOKEN} event streams at once; close one"
                ),
            })?;
        let token = bearer(&headers).unwrap_or_default().to_string();
        return Ok(stream(state, token, ctx.principal, slot, after, filter).into_response());
    }
    // A long poll stays inside the request timeout.
    let wait = Duration::from_secs(wait.unsigned_abs()).min(
        state
            .settings
            .request_timeout
            .saturating_sub(Duration::from_secs(1)),
    );
    let page = long_poll(&state, &ctx.principal, after, &filter, limit, wait).await?;
    Ok(Json(FeedPage::from(page)).into_response())
}

fn parse_after(token: Option<&str>) -> Result<Checkpoint, ApiError> {
    match token.map(str::trim) {
        None | Some("") | Some("0") => Ok(Checkpoint::START),
        Some(token) => Checkpoint::parse_token(token).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_after",
                "`after` (or `Last-Event-ID`) is an event's `cursor` or a page's `next`",
            )
        }),
    }
}

/// Whether the caller asked for Server-Sent Events by name (`*/*` is a page).
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn read_page(
    state: &AppState,
    principal: &Principal,
    after: Checkpoint,
    filter: &TypeFilter,
    limit: i64,
) -> Result<Page, ApiError> {
    let client = state.read_pool.get().await?;
    Ok(crate::feed::page(&**client, principal, after, filter, limit).await?)
}

/// Waits for the next time the feed may have grown: a projection of this process advanced,
/// or [`POLL`] passed (another process may apply the feed), or `until`.
async fn next_wake(advanced: &mut Option<watch::Receiver<u64>>, until: Instant) {
    let sleep = tokio::time::sleep_until((Instant::now() + POLL).min(until).into());
    tokio::pin!(sleep);
    if let Some(receiver) = advanced {
        tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    // The runner is gone: poll from now on.
                    *advanced = None;
                } else {
                    return;
                }
            }
            _ = &mut sleep => return,
        }
    }
    sleep.await;
}

/// A page, waiting up to `wait` for one with events when nothing follows `after` yet.
async fn long_poll(
    state: &AppState,
    principal: &Principal,
    mut after: Checkpoint,
    filter: &TypeFilter,
    limit: i64,
    wait: Duration,
) -> Result<Page, ApiError> {
    let until = Instant::now() + wait;
    let mut advanced = Some(state.runner.subscribe());
    loop {
        let page = read_page(state, principal, after, filter, limit).await?;
        if !page.events.is_empty() || page.has_more || Instant::now() >= until {
            return Ok(page);
        }
        after = page.next;
        next_wake(&mut advanced, until).await;
    }
}

/// What an open stream carries between events.
struct Streaming {
    state: AppState,
    token: String,
    principal: Principal,
    _slot: Slot,
    after: Checkpoint,
    filter: TypeFilter,
    ready: VecDeque<FeedEvent>,
    advanced: Option<watch::Receiver<u64>>,
    read_now: bool,
}

impl Streaming {
    /// The next event, waiting for the log to grow; `None` ends the stream (shutdown, the
    /// token revoked, the database gone: the client reconnects with `Last-Event-ID`).
    async fn next(&mut self) -> Option<FeedEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.state.streams.stop.is_cancelled() {
                return None;
            }
            if !self.read_now {
                let far = Instant::now() + Duration::from_secs(3600);
                tokio::select! {
                    _ = next_wake(&mut self.advanced, far) => {}
                    _ = self.state.streams.stop.cancelled() => return None,
                }
            }
            self.read_now = false;
            // Who the caller is now: a revoked token ends the stream, an ended relationship
            // holds from the next page on.
            self.principal = match principal_of(&self.state, &self.token).await {
                Ok(Some(principal)) => principal,
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(%error, "event stream ends: cannot authenticate");
                    return None;
                }
            };
            match read_page(&self.state, &self.principal, self.after, &self.filter, 100).await {
                Ok(page) => {
                    self.after = page.next;
                    self.read_now = page.has_more;
                    self.ready.extend(page.events);
                }
                Err(error) => {
                    tracing::warn!(%error, "event stream ends: cannot read the feed");
                    return None;
                }
            }
        }
    }
}

fn stream(
    state: AppState,
    token: String,
    principal: Principal,
    slot: Slot,
    after: Checkpoint,
    filter: TypeFilter,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let advanced = Some(state.runner.subscribe());
    let streaming = Streaming {
        state,
        token,
        principal,
        _slot: slot,
        after,
        filter,
        ready: VecDeque::new(),
        advanced,
        read_now: true,
    };
    let events = futures::stream::unfold(streaming, |mut streaming| async move {
        let event = streaming.next().await?;
        let sse = Event::default()
            .id(event.cursor.clone())
            .event(event.event_type.clone())
            .json_data(&event)
            .unwrap_or_else(|_| Event::default().comment("unencodable event"));
        Some((Ok(sse), streaming))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_asked_for_by_name_not_by_a_wildcard() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, "*/*".parse().expect("header"));
        assert!(!wants_stream(&headers));
        headers.insert(
            header::ACCEPT,
            "application/json, text/event-stream;q=0.9"
                .parse()
                .expect("header"),
        );
        assert!(wants_stream(&headers));
    }

    #[test]
    fn after_is_a_cursor_zero_or_nothing() {
        assert_eq!(parse_after(None).ok(), Some(Checkpoint::START));
        assert_eq!(parse_after(Some("0")).ok(), Some(Checkpoint::START));
        assert_eq!(
            parse_after(Some("12.34")).ok(),
            Some(Checkpoint {
                tx_id: 12,
                position: 34
            })
        );
        assert!(parse_after(Some("x")).is_err());
    }
}
