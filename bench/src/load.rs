//! HTTP command load: a realistic mix over many aggregates, closed loop at a fixed
//! concurrency or open loop at a fixed rate. Each worker owns its own cases and
//! subscriptions, so it always knows which command each one accepts next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::seed;

/// What to send to which server, as whom.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub customer: String,
    pub agent: String,
}

impl Api {
    pub fn new(base: &str, customer: String, agent: String, connections: usize) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.to_string(),
            customer,
            agent,
        }
    }
}

/// One acknowledged command.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub latency: Duration,
    pub position: i64,
}

/// Where one case is in its lifecycle: the next command it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Open,
    AgentComment,
    RequestInfo,
    CustomerReply,
    CustomerComment,
    Resolve,
}

struct Case {
    id: Option<Uuid>,
    step: Step,
}

/// One worker's share of the aggregates.
pub struct Share {
    cases: Vec<Case>,
    subscriptions: Vec<(Uuid, u32)>,
    turn: usize,
    /// Comments only (the stream-length scenario): no lifecycle, no subscriptions.
    comments_only: bool,
    /// With `comments_only`: every comment is an agent's internal note (the command whose
    /// database cost issue 16 measures).
    internal: bool,
}

impl Share {
    /// Splits `cases` and `subscriptions` (already opened / created) among `workers`.
    pub fn split(
        cases: &[Uuid],
        subscriptions: &[Uuid],
        workers: usize,
        comments_only: bool,
    ) -> Vec<Arc<Mutex<Share>>> {
        (0..workers)
            .map(|w| {
                Arc::new(Mutex::new(Share {
                    cases: cases
                        .iter()
                        .skip(w)
                        .step_by(workers)
                        .map(|id| Case {
                            id: Some(*id),
                            step: Step::AgentComment,
                        })
                        .collect(),
                    subscriptions: subscriptions
                        .iter()
                        .skip(w)
                        .step_by(workers)
                        .map(|id| (*id, 10))
                        .collect(),
                    turn: 0,
                    comments_only,
                    internal: false,
                }))
            })
            .collect()
    }

    /// Splits `cases` among `workers`, each sending only internal comments as the agent.
    pub fn split_internal(cases: &[Uuid], workers: usize) -> Vec<Arc<Mutex<Share>>> {
        let shares = Self::split(cases, &[], workers, true);
        for share in &shares {
            if let Ok(mut share) = share.try_lock() {
                share.internal = true;
            }
        }
        shares
    }

    /// Sends this share's next command. `None` when it failed (counted by the caller).
    async fn next(&mut self, api: &Api) -> Result<Ack, String> {
        self.turn += 1;
        let use_subscription =
            !self.comments_only && !self.subscriptions.is_empty() && self.turn.is_multiple_of(6);
        if use_subscription {
            let i = (self.turn / 6) % self.subscriptions.len();
            let (id, seats) = self.subscriptions[i];
            let body = json!({"seats": seats + 1});
            let ack = send(
                api,
                &format!("/v1/subscriptions/{id}/seats"),
                &api.customer,
                &body,
            )
            .await?;
            self.subscriptions[i].1 = seats + 1;
            return Ok(ack.0);
        }
        if self.cases.is_empty() {
            return Err("no aggregates".into());
        }
        let i = self.turn % self.cases.len();
        let case = &mut self.cases[i];
        if self.comments_only && self.internal {
            let id = case.id.ok_or("no case")?;
            let body =
                json!({"body": "Cache node 3 again; restarting it.", "visibility": "internal"});
            return Ok(
                send(api, &format!("/v1/cases/{id}/comments"), &api.agent, &body)
                    .await?
                    .0,
            );
        }
        if self.comments_only {
            let id = case.id.ok_or("no case")?;
            let token = if self.turn.is_multiple_of(2) {
                &api.agent
            } else {
                &api.customer
            };
            let body = json!({"body": "Still seeing it after the restart; logs attached."});
            return Ok(send(api, &format!("/v1/cases/{id}/comments"), token, &body)
                .await?
                .0);
        }
        let (path, token, body, next) = match (case.step, case.id) {
            (Step::Open, _) | (_, None) => (
                "/v1/cases".to_string(),
                &api.customer,
                json!({"product": "jira-software", "entitlement_number": seed::ENTITLEMENT,
                       "summary": "Board does not load",
                       "description": "Since this morning the board spins forever.",
                       "impact": 2, "participants": ["carl@acme.test"]}),
                Step::AgentComment,
            ),
            (Step::AgentComment, Some(id)) => (
                format!("/v1/cases/{id}/comments"),
                &api.agent,
                json!({"body": "We are looking into it; which project is affected?"}),
                Step::RequestInfo,
            ),
            (Step::RequestInfo, Some(id)) => (
                format!("/v1/cases/{id}/request-info"),
                &api.agent,
                json!({"body": "Could you send the browser console output?"}),
                Step::CustomerReply,
            ),
            (Step::CustomerReply, Some(id)) => (
                format!("/v1/cases/{id}/comments"),
                &api.customer,
                json!({"body": "Console output attached; it is the marketing project."}),
                Step::CustomerComment,
            ),
            (Step::CustomerComment, Some(id)) => (
                format!("/v1/cases/{id}/comments"),
                &api.customer,
                json!({"body": "It also happens on the sprint report."}),
                Step::Resolve,
            ),
            (Step::Resolve, Some(id)) => (
                format!("/v1/cases/{id}/resolve"),
                &api.agent,
                json!({}),
                Step::Open,
            ),
        };
        let (ack, body) = send(api, &path, token, &body).await?;
        if case.step == Step::Open || case.id.is_none() {
            let id = body["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
            case.id = id;
        }
        case.step = next;
        Ok(ack)
    }
}

async fn send(api: &Api, path: &str, token: &str, body: &Value) -> Result<(Ack, Value), String> {
    let started = Instant::now();
    let response = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let latency = started.elapsed();
    if !status.is_success() {
        return Err(format!("{status} {}", body["code"].as_str().unwrap_or("")));
    }
    let position = body["position"].as_i64().unwrap_or(0);
    Ok((Ack { latency, position }, body))
}

/// What a load run did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub acks: Vec<Ack>,
    /// Acks with the instant they arrived (open loop only).
    pub arrivals: Vec<(Instant, Ack)>,
    pub errors: std::collections::BTreeMap<String, u64>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.acks.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        let mut v: Vec<Duration> = self.acks.iter().map(|a| a.latency).collect();
        percentile_ms(&mut v, p)
    }

    pub fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{v}x {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn percentile_ms(values: &mut [Duration], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() as f64 - 1.0)).round() as usize;
    values[rank.min(values.len() - 1)].as_secs_f64() * 1000.0
}

/// Each of `shares.len()` workers sends its next command as soon as the last one is
/// answered, for `duration`.
pub async fn closed_loop(
    api: &Api,
    shares: &[Arc<Mutex<Share>>],
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for share in shares {
        let api = api.clone();
        let share = Arc::clone(share);
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut errors = std::collections::BTreeMap::<String, u64>::new();
            let mut share = share.lock().await;
            while Instant::now() < deadline {
                match share.next(&api).await {
                    Ok(ack) => acks.push(ack),
                    Err(e) => *errors.entry(e).or_default() += 1,
                }
            }
            (acks, errors)
        }));
    }
    let mut outcome = Outcome::default();
    for task in tasks {
        let (acks, errors) = task.await.context("load worker")?;
        outcome.acks.extend(acks);
        for (k, v) in errors {
            *outcome.errors.entry(k).or_default() += v;
        }
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// Sends commands at `rate` per second for `duration`, whatever the answers' pace (up to
/// the shares' number of commands in flight).
pub async fn open_loop(
    api: &Api,
    shares: &[Arc<Mutex<Share>>],
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let mut n = 0usize;
    let mut skipped = 0u64;
    while started.elapsed() < duration {
        let due = started + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let share = Arc::clone(&shares[n % shares.len()]);
        n += 1;
        // A share still busy with its previous command means the server is behind.
        let Ok(mut share) = share.try_lock_owned() else {
            skipped += 1;
            continue;
        };
        let api = api.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let result = share.next(&api).await;
            let _ = sender.send((Instant::now(), result));
        });
    }
    drop(sender);
    let mut outcome = Outcome::default();
    while let Some((at, result)) = receiver.recv().await {
        match result {
            Ok(ack) => {
                outcome.acks.push(ack);
                outcome.arrivals.push((at, ack));
            }
            Err(e) => *outcome.errors.entry(e).or_default() += 1,
        }
    }
    if skipped > 0 {
        outcome
            .errors
            .insert("not sent: all workers busy".into(), skipped);
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}
