//! Read-your-writes: a read that passes `min_position` is answered only once the read model
//! has applied the event at that position, waiting at most the configured read wait.

use std::time::{Duration, Instant};

use subdesk_projections::runner::has_applied;

use super::error::ApiError;
use crate::state::AppState;

/// Waits until `projection` has applied the event at `position`.
pub async fn wait_for(state: &AppState, projection: &str, position: i64) -> Result<(), ApiError> {
    if position <= 0 {
        return Ok(());
    }
    // A position no command was ever given cannot be waited for: 422 at once. The primary's
    // sequence says what was allocated; a position that exists but has not reached a replica
    // (or the read model) still waits below.
    {
        let client = state.pool.get().await?;
        let allocated: Option<i64> = client
            .query_one(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'position')::regclass)",
                &[],
            )
            .await?
            .try_get(0)?;
        if position > allocated.unwrap_or(0) {
            return Err(unknown_position(position));
        }
    }
    let deadline = Instant::now() + state.settings.read_wait;
    let mut advanced = state.runner.subscribe();
    loop {
        {
            let client = state.read_pool.get().await?;
            match has_applied(&**client, projection, position).await? {
                Some(true) => return Ok(()),
                Some(false) => {
                    // An event the read model set aside will not be applied until an operator
                    // repairs it: say so at once instead of waiting.
                    if subdesk_projections::dead_letters::is_set_aside(
                        &**client, projection, position,
                    )
                    .await?
                    {
                        return Err(ApiError::Unavailable {
                            code: "event_set_aside",
                            detail: format!(
                                "the {projection} read model set the event at position \
                                 {position} aside (it could not apply it); it shows once an \
                                 operator has repaired it"
                            ),
                        });
                    }
                }
                None => {
                    // Not (yet) on the read side. Positions commit out of order, so a replica
                    // that has a higher one may still lack this one: only the primary can say
                    // whether it was rolled back (a gap) or is on its way.
                    let primary = state.pool.get().await?;
                    let exists = primary
                        .query_opt("SELECT 1 FROM events WHERE position = $1", &[&position])
                        .await?
                        .is_some();
                    if !exists {
                        return Err(unknown_position(position));
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(ApiError::Unavailable {
                code: "read_model_behind",
                detail: format!(
                    "the {projection} read model has not reached position {position} within {:?}; \
                     retry shortly",
                    state.settings.read_wait
                ),
            });
        }
        tokio::select! {
            _ = advanced.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(25)) => {}
        }
    }
}

fn unknown_position(position: i64) -> ApiError {
    ApiError::unprocessable(
        "unknown_position",
        format!("no event has position {position}; pass a position a command returned"),
    )
}

/// Waits (at most the read wait) until `projection` has applied every event committed before
/// this call. Returns whether it got there; a log with no event counts as caught up.
///
/// The event waited for is the last in catch-up order `(tx_id, position)`, not the highest
/// position: positions are handed out before commit, so an event committed earlier can carry a
/// lower position and a later `tx_id`, and the checkpoint passing the highest position would not
/// prove it applied.
pub async fn catch_up_with_log(state: &AppState, projection: &str) -> Result<bool, ApiError> {
    // The newest event on the primary: a lagging replica's own newest would say "caught up"
    // while the primary already has more.
    let newest: Option<i64> = {
        let client = state.pool.get().await?;
        client
            .query_opt(
                "SELECT position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1",
                &[],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?
    };
    let Some(newest) = newest else {
        return Ok(true);
    };
    match wait_for(state, projection, newest).await {
        Ok(()) => Ok(true),
        Err(ApiError::Unavailable {
            code: "read_model_behind",
            ..
        }) => Ok(false),
        Err(other) => Err(other),
    }
}
