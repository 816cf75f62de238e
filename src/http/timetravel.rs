//! Time travel: a resource as it was at a time or a version, in the same shape as its live
//! view.
//!
//! The stream's events up to the cut are replayed through the resource's own projection into
//! temporary tables that shadow the read-model tables inside one transaction (PostgreSQL
//! looks up temporary tables first), the live read code renders them unchanged, and the
//! transaction is rolled back. So a past state is built by the very code that builds the
//! present one, and no live table is touched (the outbox is shadowed too). The transaction is
//! short and bounded by a statement timeout, since while it is open it holds the read horizon
//! back for every reader.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::Deserialize;
use subdesk_projections::Projection;
use tokio_postgres::GenericClient;
use utoipa::IntoParams;
use uuid::Uuid;

use super::consistency::wait_for;
use super::error::ApiError;
use crate::auth::Principal;
use crate::state::AppState;

/// How fresh, or how old, a resource's detail is to be.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Answer only once the read model has applied this position (from a command response).
    pub min_position: Option<i64>,
    /// Time travel: the resource as it was at this instant (RFC 3339), rebuilt from its
    /// events.
    pub as_of: Option<DateTime<Utc>>,
    /// Time travel: the resource as it was after its first N events.
    #[param(minimum = 1)]
    pub at_version: Option<i64>,
}

/// A resource whose detail is read from its read model now, or from a replay of its stream as
/// it was (see [`detail`]).
pub(crate) trait Detail: Sized {
    /// The projection that builds the read model (its name is what `min_position` waits for).
    const PROJECTION: &'static dyn Projection;
    /// The stream's aggregate type.
    const AGGREGATE_TYPE: &'static str;
    /// What the resource is called in a 404.
    const WHAT: &'static str;

    /// 404 unless `principal` sees stream `id` as it is now: that decides whether they may
    /// see its past too.
    async fn visible_now(state: &AppState, principal: &Principal, id: Uuid)
        -> Result<(), ApiError>;

    /// The detail of `id` from the read-model tables `client` sees (the live ones, or a
    /// replay's), as `principal` may see it, with figures as of `now`.
    async fn render(
        state: &AppState,
        client: &impl GenericClient,
        id: Uuid,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError>;
}

/// The detail of `id` for `principal`: from the live read model (once it has applied
/// `min_position`), or with `as_of` / `at_version` as it was then, rendered by the same code
/// from a replay that is rolled back.
pub(crate) async fn detail<D: Detail>(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    params: &ReadParams,
) -> Result<D, ApiError> {
    let Some(cut) = cut(params.as_of, params.at_version)? else {
        if let Some(position) = params.min_position {
            wait_for(state, D::PROJECTION.name(), position).await?;
        }
        let client = state.read_pool.get().await?;
        return D::render(state, &**client, id, principal, state.clock.now()).await;
    };
    D::visible_now(state, principal, id).await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let stream = id.to_string();
    let then = replay(&tx, D::PROJECTION, D::AGGREGATE_TYPE, &stream, cut, D::WHAT).await?;
    let detail = D::render(state, &*tx, id, principal, then).await;
    tx.rollback().await?;
    detail
}

/// Where to cut a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Every event recorded at or before this instant.
    AsOf(DateTime<Utc>),
    /// The first N events.
    Version(i64),
}

/// The cut the query asks for, if any. `as_of` and `at_version` exclude each other.
pub fn cut(as_of: Option<DateTime<Utc>>, at_version: Option<i64>) -> Result<Option<Cut>, ApiError> {
    match (as_of, at_version) {
        (None, None) => Ok(None),
        (Some(at), None) => Ok(Some(Cut::AsOf(at))),
        (None, Some(version)) if version >= 1 => Ok(Some(Cut::Version(version))),
        (None, Some(_)) => Err(ApiError::BadRequest {
            code: "invalid_version",
            detail: "at_version counts events from 1".into(),
        }),
        // Each is well-formed on its own; together they ask two things (422, not 400).
        (Some(_), Some(_)) => Err(ApiError::unprocessable(
            "conflicting_cut",
            "pass either as_of or at_version, not both",
        )),
    }
}

/// Replays one stream up to `cut` into temporary copies of `projection`'s tables, in `tx`.
/// Returns the instant the cut stands for: `as_of` itself, or when the last replayed event was
/// recorded. A stream with no event before the cut did not exist then: 404.
pub async fn replay(
    tx: &Transaction<'_>,
    projection: &dyn Projection,
    aggregate_type: &str,
    aggregate_id: &str,
    cut: Cut,
    what: &str,
) -> Result<DateTime<Utc>, ApiError> {
    let live_schema: String = tx
        .query_one("SELECT current_schema()", &[])
        .await?
        .try_get(0)?;
    // Bounded: the transaction holds an xid, which holds the read horizon back while it runs.
    tx.batch_execute("SET LOCAL statement_timeout = '10s'")
        .await?;
    // The projection's own tables, and the outbox it appends to, so that not even the rolled
    // back replay touches a live table.
    for table in projection.tables().iter().chain(&["notifications"]) {
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE {table} (LIKE {live_schema}.{table} INCLUDING ALL) ON COMMIT DROP"
        ))
        .await?;
    }
    let events: Vec<_> = crate::history::stream(&**tx, aggregate_type, aggregate_id)
        .await?
        .into_iter()
        .filter(|event| match cut {
            Cut::AsOf(at) => event.recorded_at <= at,
            Cut::Version(version) => event.sequence <= version,
        })
        .collect();
    let Some(last) = events.last() else {
        return Err(ApiError::not_found(what));
    };
    let instant = match cut {
        Cut::AsOf(at) => at,
        Cut::Version(_) => last.recorded_at,
    };
    projection.apply(tx, &events).await?;
    Ok(instant)
}
