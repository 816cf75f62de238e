//! How each projection is doing, as this process sees it: its state, checkpoint, heartbeat,
//! what blocks it, and the transaction holding the read horizon back.
//!
//! The runner's loops record what only they know (a heartbeat per turn, an unknown event that
//! blocks them, failures and restarts); a monitor samples the database every second for what
//! every process shares (checkpoints, whether events wait behind them, the horizon) and
//! derives each projection's state:
//!
//! - `blocked`: the next event is of a type or version this binary does not know (a newer
//!   release wrote it); nothing after it is applied until a binary that knows it runs;
//! - `failed`: the runner panicked or keeps failing, and is restarting with backoff;
//! - `stalled`: events wait and the checkpoint has not moved for the stall bound (a long
//!   transaction holds the horizon, or the runner is stuck);
//! - `catching_up`: events wait and the checkpoint moves;
//! - `running`: nothing waits.
//!
//! (Marten's async daemon grew the same high-water heartbeat and health check after its users
//! lost events silently.)

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::Checkpoint;

/// A projection's state. Snake case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionState {
    Running,
    CatchingUp,
    Stalled,
    Blocked,
    Failed,
}

impl ProjectionState {
    pub const ALL: [ProjectionState; 5] = [
        Self::Running,
        Self::CatchingUp,
        Self::Stalled,
        Self::Blocked,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::CatchingUp => "catching_up",
            Self::Stalled => "stalled",
            Self::Blocked => "blocked",
            Self::Failed => "failed",
        }
    }
}

/// The event a projection is blocked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub position: i64,
    pub aggregate_type: String,
    pub event_type: String,
    pub event_version: String,
    pub reason: String,
}

/// What is known of one projection.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionHealth {
    pub name: String,
    pub state: ProjectionState,
    pub checkpoint: Checkpoint,
    /// Committed events wait after the checkpoint.
    pub waiting: bool,
    /// Age of the oldest waiting event, in seconds (0 when none waits).
    pub lag_seconds: f64,
    /// When this process last saw the checkpoint move (or started watching it).
    pub advanced_at: DateTime<Utc>,
    /// The last turn of this process's runner loop for it.
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub blocked: Option<Blocked>,
    /// The last failure, while the runner is failing.
    pub failure: Option<String>,
    /// Restarts of the runner after a panic, since this process started.
    pub restarts: u32,
}

/// The transaction holding the read horizon back: the oldest one with a transaction id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Horizon {
    pub age_seconds: f64,
    /// Its backend, when the database role may see it.
    pub pid: Option<i32>,
}

/// The health of every projection and of the horizon.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub projections: Vec<ProjectionHealth>,
    pub horizon: Horizon,
    /// The database has migrations newer than this binary (a rolling upgrade): this process
    /// serves the API but runs neither projections nor the scheduler.
    pub outdated: bool,
}

/// What the loops of this process report.
#[derive(Debug, Clone, Default)]
struct Local {
    heartbeat: Option<DateTime<Utc>>,
    blocked: Option<Blocked>,
    failure: Option<String>,
    failing_since: Option<Instant>,
    restarts: u32,
    checkpoint: Option<Checkpoint>,
    advanced: Option<(Instant, DateTime<Utc>)>,
}

/// Shared between the runner's loops, its monitor, and readers (`/readyz`, the API).
#[derive(Debug, Default)]
pub struct Board {
    local: Mutex<BTreeMap<&'static str, Local>>,
    snapshot: Mutex<Health>,
}

/// Consecutive failures of a batch before the projection counts as `failed`.
const FAILURES_BEFORE_FAILED: Duration = Duration::from_secs(3);

impl Board {
    fn with<R>(&self, name: &'static str, f: impl FnOnce(&mut Local) -> R) -> R {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        f(local.entry(name).or_default())
    }

    pub fn beat(&self, name: &'static str) {
        self.with(name, |l| l.heartbeat = Some(Utc::now()));
    }

    pub fn block(&self, name: &'static str, blocked: Option<Blocked>) {
        self.with(name, |l| l.blocked = blocked);
    }

    /// A batch failed (`Some`) or went through (`None`).
    pub fn failing(&self, name: &'static str, failure: Option<String>) {
        self.with(name, |l| {
            if failure.is_none() {
                l.failing_since = None;
            } else if l.failing_since.is_none() {
                l.failing_since = Some(Instant::now());
            }
            l.failure = failure;
        });
    }

    /// The runner panicked and is being restarted.
    pub fn restarted(&self, name: &'static str, why: String) {
        self.with(name, |l| {
            l.restarts = l.restarts.saturating_add(1);
            l.failure = Some(why);
            l.failing_since.get_or_insert_with(Instant::now);
        });
    }

    /// Lists `names` before the first sample: each `catching_up` from the start of the log
    /// until the monitor knows better (a second at most).
    pub fn init(&self, names: &[&'static str]) {
        let now = Utc::now();
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .projections = names
            .iter()
            .map(|name| ProjectionHealth {
                name: name.to_string(),
                state: ProjectionState::CatchingUp,
                checkpoint: Checkpoint::START,
                waiting: true,
                lag_seconds: 0.0,
                advanced_at: now,
                heartbeat_at: None,
                blocked: None,
                failure: None,
                restarts: 0,
            })
            .collect();
    }

    /// The latest health, as of the monitor's last sample.
    pub fn health(&self) -> Health {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes a sample: `checkpoints` (name, checkpoint, events waiting, lag) as the database
    /// has them now, and the horizon. Returns the projections that just became stalled.
    pub fn sample(
        &self,
        names: &[&'static str],
        checkpoints: &BTreeMap<String, (Checkpoint, bool, f64)>,
        horizon: Horizon,
        outdated: bool,
        stall_after: Duration,
    ) -> Vec<String> {
        let now = Instant::now();
        let mut became_stalled = Vec::new();
        let previous = self.health();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let mut projections = Vec::with_capacity(names.len());
        for name in names {
            let entry = local.entry(name).or_default();
            let (checkpoint, waiting, lag) =
                checkpoints
                    .get(*name)
                    .copied()
                    .unwrap_or((Checkpoint::START, false, 0.0));
            if entry.checkpoint != Some(checkpoint) || entry.advanced.is_none() {
                entry.checkpoint = Some(checkpoint);
                entry.advanced = Some((now, Utc::now()));
            }
            let (advanced, advanced_at) = entry.advanced.unwrap_or((now, Utc::now()));
            let failing = entry
                .failing_since
                .is_some_and(|since| now.duration_since(since) >= FAILURES_BEFORE_FAILED)
                || (entry.failure.is_some() && entry.restarts > 0);
            let state = if entry.blocked.is_some() {
                ProjectionState::Blocked
            } else if failing {
                ProjectionState::Failed
            } else if waiting && now.duration_since(advanced) >= stall_after {
                ProjectionState::Stalled
            } else if waiting {
                ProjectionState::CatchingUp
            } else {
                ProjectionState::Running
            };
            let was = previous
                .projections
                .iter()
                .find(|p| p.name == *name)
                .map(|p| p.state);
            if state == ProjectionState::Stalled && was != Some(ProjectionState::Stalled) {
                became_stalled.push(name.to_string());
            }
            for candidate in ProjectionState::ALL {
                metrics::gauge!("subdesk_projection_state", "projection" => *name, "state" => candidate.as_str())
                    .set(if candidate == state { 1.0 } else { 0.0 });
            }
            metrics::gauge!("subdesk_projection_lag_seconds", "projection" => *name).set(lag);
            projections.push(ProjectionHealth {
                name: name.to_string(),
                state,
                checkpoint,
                waiting,
                lag_seconds: lag,
                advanced_at,
                heartbeat_at: entry.heartbeat,
                blocked: entry.blocked.clone(),
                failure: entry.failure.clone(),
                restarts: entry.restarts,
            });
        }
        drop(local);
        metrics::gauge!("subdesk_projection_horizon_age_seconds").set(horizon.age_seconds);
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Health {
            projections,
            horizon,
            outdated,
        };
        became_stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(board: &Board, waiting: bool, at: i64, stall_after: Duration) -> ProjectionState {
        let checkpoints = BTreeMap::from([(
            "cases".to_string(),
            (
                Checkpoint {
                    tx_id: at,
                    position: at,
                },
                waiting,
                0.0,
            ),
        )]);
        board.sample(
            &["cases"],
            &checkpoints,
            Horizon::default(),
            false,
            stall_after,
        );
        board.health().projections[0].state
    }

    #[test]
    fn a_projection_is_stalled_when_events_wait_and_its_checkpoint_does_not_move() {
        let board = Board::default();
        assert_eq!(
            sample(&board, false, 1, Duration::ZERO),
            ProjectionState::Running
        );
        assert_eq!(
            sample(&board, true, 1, Duration::from_secs(60)),
            ProjectionState::CatchingUp
        );
        assert_eq!(
            sample(&board, true, 1, Duration::ZERO),
            ProjectionState::Stalled
        );
        // It moves again: no longer stalled.
        assert_eq!(
            sample(&board, true, 2, Duration::from_secs(60)),
            ProjectionState::CatchingUp
        );
    }

    #[test]
    fn blocked_and_failed_come_before_the_rest() {
        let board = Board::default();
        board.block(
            "cases",
            Some(Blocked {
                position: 7,
                aggregate_type: "SupportCase".into(),
                event_type: "CaseMerged".into(),
                event_version: "1.0".into(),
                reason: "unknown".into(),
            }),
        );
        assert_eq!(
            sample(&board, true, 1, Duration::ZERO),
            ProjectionState::Blocked
        );
        board.block("cases", None);
        board.restarted("cases", "panicked".into());
        assert_eq!(
            sample(&board, false, 1, Duration::ZERO),
            ProjectionState::Failed
        );
        board.failing("cases", None);
        assert_eq!(
            sample(&board, false, 1, Duration::ZERO),
            ProjectionState::Running
        );
    }
}
