//! Running a command from a handler: idempotency, execution, response.

use std::future::Future;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cqrs_es::Aggregate;
use serde::Serialize;
use subdesk_aggregates::DomainError;

use super::error::ApiError;
use super::extract::{Call, Ctx};
use crate::command::{CommandBus, CommandError};
use crate::idempotency::{self, KeyRecord};
use crate::state::AppState;
use crate::store::Guard;
use uuid::Uuid;

/// A command ready to run: the aggregate it targets and the access check on its state.
pub struct Prepared<A: Aggregate> {
    pub id: String,
    pub command: A::Command,
    pub guard: Option<Guard<A>>,
}

/// What every command response carries, besides its own fields.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The aggregate the command changed.
    pub id: String,
    /// The aggregate's stream version after the command.
    pub version: i64,
    /// Global position reached; pass it as `min_position` on a read to see this write.
    pub position: i64,
}

/// The status of a command's response: fixed for the route, or decided by the state the
/// command reached and the number of events it appended (a grant answers 201 when it created
/// the relationship and 200 when it changed or confirmed one).
pub enum Status<A> {
    Fixed(StatusCode),
    Decided(fn(&A, usize) -> StatusCode),
}

impl<A> Status<A> {
    fn of(&self, state: &A, appended: usize) -> StatusCode {
        match self {
            Self::Fixed(status) => *status,
            Self::Decided(decide) => decide(state, appended),
        }
    }
}

impl<A> From<StatusCode> for Status<A> {
    fn from(status: StatusCode) -> Self {
        Self::Fixed(status)
    }
}

/// Header set on a response replayed for a repeated `Idempotency-Key`.
pub const REPLAYED: &str = "idempotent-replayed";

/// The action a command on an existing resource is. A command without one is never built by a
/// route there, so meeting one is a bug (500), not the caller's fault.
pub fn action_of<T>(action: Option<T>) -> Result<T, ApiError> {
    action.ok_or_else(|| {
        ApiError::Internal("a command no route issues on an existing resource".into())
    })
}

/// Runs `command` on the existing stream `id` for the caller of `call`, behind `guard` (which
/// sees the state the command is decided on), answering `status` with `respond`'s view.
pub async fn run_guarded<A, B>(
    call: &Call,
    bus: &CommandBus<A>,
    id: Uuid,
    status: StatusCode,
    command: A::Command,
    guard: Guard<A>,
    respond: fn(&A, Receipt) -> B,
) -> Result<Response, ApiError>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone,
    A::Error: DomainError + Clone + 'static,
    B: Serialize,
{
    let prepare = move || async move {
        Ok(Prepared {
            id: id.to_string(),
            command,
            guard: Some(guard),
        })
    };
    run(
        &call.state,
        bus,
        &call.ctx,
        &call.hash,
        status,
        prepare,
        respond,
    )
    .await
}

/// Runs a command for a handler.
///
/// With an `Idempotency-Key`, a key already taken within 24 hours answers with the first
/// response (or 422 `idempotency_key_reused` if the request differs) and `prepare` is not
/// even called, so nothing is allocated or appended.
pub async fn run<A, P, Fut, B>(
    state: &AppState,
    bus: &CommandBus<A>,
    ctx: &Ctx,
    request_hash: &str,
    status: impl Into<Status<A>>,
    prepare: P,
    respond: fn(&A, Receipt) -> B,
) -> Result<Response, ApiError>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone,
    A::Error: DomainError + Clone + 'static,
    P: FnOnce() -> Fut,
    Fut: Future<Output = Result<Prepared<A>, ApiError>>,
    B: Serialize,
{
    let status = status.into();
    let meta = ctx.meta(request_hash);
    if let Some(key) = &meta.idempotency {
        if let Some(record) = idempotency::find(&state.pool, key).await? {
            return replay(state, bus, ctx, request_hash, record, status, respond).await;
        }
    }
    let prepared = prepare().await?;
    match bus
        .execute(&prepared.id, prepared.command, &meta, prepared.guard)
        .await
    {
        Ok(outcome) => {
            if outcome.appended > 0 {
                // TEST-ONLY fault hook: see `fault_exit_after_commit`.
                fault_exit_after_commit();
            }
            let status = status.of(&outcome.state, outcome.appended);
            let receipt = Receipt {
                id: outcome.aggregate_id.clone(),
                version: outcome.version as i64,
                position: outcome.position,
            };
            let body = serde_json::to_value(respond(&outcome.state, receipt))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if let (Some(key), true) = (&meta.idempotency, outcome.appended > 0) {
                // The command is committed whatever happens here; a response that could not
                // be stored is rebuilt from the log when the request is repeated.
                if let Err(error) = idempotency::store_response(
                    &state.pool,
                    key,
                    &ctx.request_id,
                    status.as_u16(),
                    &body,
                )
                .await
                {
                    tracing::warn!(%error, "the response of an accepted command was not stored");
                }
            }
            Ok((status, Json(body)).into_response())
        }
        Err(CommandError::AlreadyAccepted(record)) => {
            replay(state, bus, ctx, request_hash, record, status, respond).await
        }
        Err(error) => Err(error.into()),
    }
}

async fn replay<A, B>(
    state: &AppState,
    bus: &CommandBus<A>,
    ctx: &Ctx,
    request_hash: &str,
    record: KeyRecord,
    status: Status<A>,
    respond: fn(&A, Receipt) -> B,
) -> Result<Response, ApiError>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone,
    A::Error: DomainError + Clone + 'static,
    B: Serialize,
{
    if record.request_hash != request_hash {
        return Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used within the last 24 hours for a different request; \
             use a new key for a new request",
        ));
    }
    let (status, body) = match record.response {
        Some((stored, body)) => {
            let fallback = StatusCode::OK;
            (StatusCode::from_u16(stored).unwrap_or(fallback), body)
        }
        None => {
            // The server stopped between the commit and storing the response: rebuild it
            // from the aggregate as it was right after that commit, and store it.
            let version = usize::try_from(record.last_sequence).unwrap_or_default();
            let (version, aggregate) = bus.load_at_version(&record.aggregate_id, version).await?;
            // A key is only ever taken by a command that appended something.
            let status = status.of(&aggregate, 1);
            let receipt = Receipt {
                id: record.aggregate_id.clone(),
                version: version as i64,
                position: record.last_position,
            };
            let body = serde_json::to_value(respond(&aggregate, receipt))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Some(key) = ctx.meta(request_hash).idempotency {
                idempotency::store_response(
                    &state.pool,
                    &key,
                    &record.request_id,
                    status.as_u16(),
                    &body,
                )
                .await?;
            }
            (status, body)
        }
    };
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// TEST-ONLY fault injection, for the kill -9 tests (`tests/api/faults.rs`): when the process
/// was started with `SUBDESK_FAULT_EXIT_AFTER_COMMIT=N`, it kills itself with SIGKILL right
/// after the N-th command that appended events has committed, before that command's response
/// is stored or sent: a crash between the commit and the answer, on purpose. The variable is
/// read once; unset (always, outside those tests) this does nothing.
fn fault_exit_after_commit() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    static AFTER: OnceLock<Option<usize>> = OnceLock::new();
    static COMMITTED: AtomicUsize = AtomicUsize::new(0);
    let after = AFTER.get_or_init(|| {
        std::env::var("SUBDESK_FAULT_EXIT_AFTER_COMMIT")
            .ok()
            .and_then(|n| n.trim().parse().ok())
    });
    if let Some(after) = *after {
        if COMMITTED.fetch_add(1, Ordering::SeqCst) + 1 == after {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            std::process::abort();
        }
    }
}

/// Declares the command routes of a resource that take its id in the path and a JSON body:
/// for each, the OpenAPI operation (the doc comment is its summary and description) and a
/// handler that extracts the call, the id and the body, builds the command from them with the
/// block, and runs it through `run` (the resource's one command path, which decides access from
/// the command). `changed` names what every such command answers; an entry may list more
/// responses in `[...]` to describe them better. Routes declared by hand are named in `also`
/// so that `router()` serves every route of the file.
///
/// The calling module imports what the expansion names: `Command`, `Answer`, `Idempotent`,
/// `OpenApiRouter`, `routes`, `Uuid` and `AppState`.
macro_rules! command_routes {
    (
        tag = $tag:tt, run = $run:path, changed = $changed:ident, also = [$($also:ident),*];
        $(
            $(#[doc = $doc:tt])*
            $method:ident $path:tt => $name:ident($call:ident, $id:ident, $request:tt: $body:ident)
                $([$($response:tt)*])?
                $build:block
        )*
    ) => {
        pub fn router() -> OpenApiRouter<AppState> {
            OpenApiRouter::new()
                $(.routes(routes!($name)))*
                $(.routes(routes!($also)))*
        }
        $(
            $(#[doc = $doc])*
            #[utoipa::path($method, path = $path, tag = $tag, request_body = $body,
                params(("id" = Uuid, Path), Idempotent),
                responses($changed $(, $($response)*)?))]
            #[allow(unused_braces)] // a one-line command is written `{ Command }` too
            async fn $name(Command($call, $id, $request): Command<Uuid, $body>) -> Answer {
                $run(&$call, $id, $build).await
            }
        )*
    };
}
pub(crate) use command_routes;

/// The first answer to a request that appends no event (issuing a token, requesting an
/// erasure), for the same request repeated with its `Idempotency-Key`: 422 if the key came
/// with another request.
pub(super) fn replay_stored(record: KeyRecord, request_hash: &str) -> Result<Response, ApiError> {
    if record.request_hash != request_hash {
        return Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used within the last 24 hours for a different request",
        ));
    }
    let (status, body) = record
        .response
        .ok_or_else(|| ApiError::Internal("an idempotency key without its answer".into()))?;
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Json(body),
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// The stored answer to a request that appends no event, when its `Idempotency-Key` was
/// seen before: the prelude of such handlers, before any work.
pub(super) async fn replay_if_seen(
    state: &AppState,
    key: Option<&idempotency::IdempotencyKey>,
    request_hash: &str,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    match idempotency::find(&state.pool, key).await? {
        Some(record) => replay_stored(record, request_hash).map(Some),
        None => Ok(None),
    }
}

/// Takes `key` in `tx` for a request that appends no event, with the answer to remember.
/// `None`: taken (commit `tx` and answer). `Some`: not taken; answer this instead (the first
/// request's answer, or 409 while that one is still being handled) and drop `tx`.
pub(super) async fn take_or_replay(
    state: &AppState,
    tx: &deadpool_postgres::Transaction<'_>,
    key: &idempotency::IdempotencyKey,
    request_id: &str,
    resource: (&str, &str),
    answer: (StatusCode, &serde_json::Value),
) -> Result<Option<Response>, ApiError> {
    let taken = idempotency::take_without_events(
        &**tx,
        key,
        request_id,
        resource,
        answer.0.as_u16(),
        answer.1,
    )
    .await?;
    if taken {
        return Ok(None);
    }
    match idempotency::find(&state.pool, key).await? {
        Some(record) => replay_stored(record, &key.request_hash).map(Some),
        None => Err(ApiError::Conflict {
            code: "idempotency_key_in_use",
            detail: "another request with this Idempotency-Key is being handled".into(),
        }),
    }
}
