//! The webhook delivery worker inside `serve`.
//!
//! A round claims up to `concurrency` due, enabled endpoints by leasing them (`FOR UPDATE SKIP
//! LOCKED`, then a `lease_id` of its own), so several processes never deliver for one endpoint
//! at once and a process that dies mid-delivery leaves the endpoint to the next claim when the
//! lease ends. For each endpoint it reads the next page of the feed as the endpoint's owner
//! (so what is delivered is what the owner may see at the time of delivery), then POSTs the
//! events one at a time in order. The cursor moves past an event only after a 2xx answer and
//! only under the worker's own lease: a crash repeats at most the event in flight. A failure
//! (no 2xx within the timeout) stops the endpoint's page, records the attempt and backs off
//! (`backoff_base` doubling, at most an hour apart); an endpoint failing for longer than
//! `give_up_after` is disabled and its creator told by e-mail (the outbox).

use std::time::{Duration, Instant};

use chrono::Utc;
use deadpool_postgres::Pool;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{sign, target, Endpoint, Owner};
use crate::feed::FeedEvent;

/// How delivery is configured.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Deliver to loopback and private addresses too (tests, closed networks).
    pub allow_private: bool,
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// An endpoint failing this long is disabled.
    pub give_up_after: Duration,
    /// The first retry's delay; it doubles, at most an hour.
    pub backoff_base: Duration,
    /// Endpoints delivered to at once per process.
    pub concurrency: usize,
    /// Events per endpoint per round.
    pub batch: i64,
    /// How often to look for work when no projection of this process advanced.
    pub poll: Duration,
    /// How long a claim holds (renewed after every delivered event): longer than one
    /// delivery may take (`timeout`), short enough that another process soon takes over the
    /// endpoints of one that died.
    pub lease: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            backoff_base: Duration::from_secs(10),
            concurrency: 8,
            batch: 20,
            poll: Duration::from_millis(250),
            lease: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{0}")]
    Read(#[from] subdesk_projections::ProjectionError),
}

/// What a receiver gets: the event as its owner may see it.
#[derive(Debug, Serialize)]
struct Body<'a> {
    #[serde(flatten)]
    event: &'a FeedEvent,
    /// The endpoint it was delivered to.
    webhook_id: Uuid,
}

pub struct Deliverer {
    pool: Pool,
    config: WebhookConfig,
    client: reqwest::Client,
}

/// How one delivery went.
struct Outcome {
    ok: bool,
    status: Option<i32>,
    error: Option<String>,
    latency_ms: i32,
}

impl Deliverer {
    pub fn new(pool: Pool, config: WebhookConfig) -> Result<Self, DeliverError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("subdesk-webhooks/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(target::PublicOnly));
        }
        Ok(Self {
            pool,
            config,
            client: builder.build()?,
        })
    }

    /// Delivers until `shutdown`, woken by `advanced` (a projection of this process moved) or
    /// every `poll`.
    pub async fn run(self, mut advanced: watch::Receiver<u64>, shutdown: CancellationToken) {
        let mut watching = true;
        while !shutdown.is_cancelled() {
            let delivered = match self.round().await {
                Ok(delivered) => delivered,
                Err(error) => {
                    tracing::warn!(%error, "webhook round failed; retrying");
                    0
                }
            };
            if delivered > 0 {
                continue;
            }
            let sleep = tokio::time::sleep(self.config.poll);
            tokio::pin!(sleep);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = advanced.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                    }
                }
                _ = &mut sleep => {}
            }
        }
    }

    /// One round: claims due endpoints and delivers a page to each. Returns the number of
    /// events delivered.
    pub async fn round(&self) -> Result<usize, DeliverError> {
        let lease = Uuid::now_v7();
        let claimed = self.claim(lease).await?;
        let mut work: FuturesUnordered<_> = claimed
            .into_iter()
            .map(|endpoint| self.deliver_page(endpoint, lease))
            .collect();
        let mut delivered = 0;
        while let Some(result) = work.next().await {
            match result {
                Ok(count) => delivered += count,
                Err(error) => tracing::warn!(%error, "webhook delivery interrupted"),
            }
        }
        Ok(delivered)
    }

    async fn claim(&self, lease: Uuid) -> Result<Vec<Endpoint>, DeliverError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "UPDATE webhook_endpoints e \
                    SET lease_id = $1, leased_until = now() + make_interval(secs => $2) \
                  WHERE e.id IN ( \
                        SELECT id FROM webhook_endpoints \
                         WHERE status = 'enabled' \
                           AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
                           AND (leased_until IS NULL OR leased_until < now()) \
                         ORDER BY next_attempt_at NULLS FIRST, id \
                         LIMIT $3 FOR UPDATE SKIP LOCKED) \
                RETURNING e.*",
                &[
                    &lease,
                    &self.config.lease.as_secs_f64(),
                    &(self.config.concurrency as i64),
                ],
            )
            .await?;
        rows.iter()
            .map(Endpoint::try_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// Delivers the next page of `endpoint`'s feed, in order, stopping at the first failure.
    async fn deliver_page(&self, endpoint: Endpoint, lease: Uuid) -> Result<usize, DeliverError> {
        let mut client = self.pool.get().await?;
        let mut reader = endpoint.owner.reader(endpoint.id);
        if let Owner::Partner { .. } = endpoint.owner {
            reader.reach = crate::relationships::reach_of(&client, &reader).await?;
        }
        let page = crate::feed::page(
            &**client,
            &reader,
            endpoint.cursor,
            &endpoint.events,
            self.config.batch,
        )
        .await?;
        let mut delivered = 0;
        for event in &page.events {
            let outcome = self.post(&endpoint, event).await;
            let attempt = endpoint.attempts + 1;
            if !outcome.ok {
                self.log(&client, &endpoint, event, attempt, &outcome)
                    .await?;
                self.failed(&client, &endpoint, lease, event, &outcome)
                    .await?;
                metrics::counter!("subdesk_webhook_deliveries_total", "outcome" => "failed")
                    .increment(1);
                return Ok(delivered);
            }
            metrics::counter!("subdesk_webhook_deliveries_total", "outcome" => "delivered")
                .increment(1);
            delivered += 1;
            // The attempt's log row and the cursor past this event, under this lease only
            // (renewed for the next one), in one statement. Its commit does not wait for the
            // WAL flush: a cursor lost with a crash of PostgreSQL itself only means a repeat,
            // which at-least-once delivery allows; a crash of this process loses nothing.
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            let kept = tx
                .execute(
                    "WITH logged AS ( \
                         INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, \
                                     position, attempt, ok, status, error, latency_ms) \
                         VALUES ($1, $6, $7, $4, $8, true, $9, NULL, $10)) \
                     UPDATE webhook_endpoints \
                        SET cursor_tx = $3, cursor_position = $4, attempts = 0, \
                            failing_since = NULL, next_attempt_at = NULL, \
                            leased_until = now() + make_interval(secs => $5) \
                      WHERE id = $1 AND lease_id = $2",
                    &[
                        &endpoint.id,
                        &lease,
                        &event.checkpoint.tx_id,
                        &event.checkpoint.position,
                        &self.config.lease.as_secs_f64(),
                        &event.id,
                        &event.event_type,
                        &attempt,
                        &outcome.status,
                        &outcome.latency_ms,
                    ],
                )
                .await?;
            tx.commit().await?;
            if kept == 0 {
                return Ok(delivered); // the lease was lost (expired and taken over)
            }
        }
        // Past everything the page looked at (events the owner may not see or did not ask
        // for included), and the endpoint free for the next round.
        client
            .execute(
                "UPDATE webhook_endpoints \
                    SET cursor_tx = $3, cursor_position = $4, lease_id = NULL, leased_until = NULL \
                  WHERE id = $1 AND lease_id = $2 \
                    AND (cursor_tx, cursor_position) < ($3, $4)",
                &[&endpoint.id, &lease, &page.next.tx_id, &page.next.position],
            )
            .await?;
        client
            .execute(
                "UPDATE webhook_endpoints SET lease_id = NULL, leased_until = NULL \
                  WHERE id = $1 AND lease_id = $2",
                &[&endpoint.id, &lease],
            )
            .await?;
        Ok(delivered)
    }

    /// Records a failed attempt in the delivery log.
    async fn log(
        &self,
        client: &deadpool_postgres::Client,
        endpoint: &Endpoint,
        event: &FeedEvent,
        attempt: i32,
        outcome: &Outcome,
    ) -> Result<(), DeliverError> {
        client
            .execute(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, position, \
                                                 attempt, ok, status, error, latency_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &endpoint.id,
                    &event.id,
                    &event.event_type,
                    &event.position,
                    &attempt,
                    &outcome.ok,
                    &outcome.status,
                    &outcome.error,
                    &outcome.latency_ms,
                ],
            )
            .await?;
        Ok(())
    }

    async fn post(&self, endpoint: &Endpoint, event: &FeedEvent) -> Outcome {
        let started = Instant::now();
        let elapsed =
            |started: Instant| i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        // A literal internal address is refused at every delivery (a name, by the resolver).
        let url = match target::check(&endpoint.url, self.config.allow_private) {
            Ok(url) => url,
            Err(error) => {
                return Outcome {
                    ok: false,
                    status: None,
                    error: Some(error.to_string()),
                    latency_ms: 0,
                }
            }
        };
        let body = match serde_json::to_vec(&Body {
            event,
            webhook_id: endpoint.id,
        }) {
            Ok(body) => body,
            Err(error) => {
                return Outcome {
                    ok: false,
                    status: None,
                    error: Some(format!("encoding: {error}")),
                    latency_ms: 0,
                }
            }
        };
        let now = Utc::now();
        let signature = sign::header_value(&endpoint.signing_secrets(now), now.timestamp(), &body);
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(sign::HEADER, signature)
            .header("subdesk-event-id", &event.id)
            .header("subdesk-event-type", &event.event_type)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                Outcome {
                    ok: status.is_success(),
                    status: Some(i32::from(status.as_u16())),
                    error: (!status.is_success())
                        .then(|| format!("the receiver answered {status}")),
                    latency_ms: elapsed(started),
                }
            }
            Err(error) => Outcome {
                ok: false,
                status: None,
                error: Some(if error.is_timeout() {
                    format!("no answer within {:?}", self.config.timeout)
                } else {
                    let mut text = error.to_string();
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        text.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    text
                }),
                latency_ms: elapsed(started),
            },
        }
    }

    /// Records a failure: backs off, or disables an endpoint failing for too long and tells
    /// its creator.
    async fn failed(
        &self,
        client: &deadpool_postgres::Client,
        endpoint: &Endpoint,
        lease: Uuid,
        event: &FeedEvent,
        outcome: &Outcome,
    ) -> Result<(), DeliverError> {
        let delay = backoff(self.config.backoff_base, endpoint.attempts);
        let row = client
            .query_opt(
                "UPDATE webhook_endpoints \
                    SET attempts = attempts + 1, failing_since = coalesce(failing_since, now()), \
                        next_attempt_at = now() + make_interval(secs => $3), \
                        lease_id = NULL, leased_until = NULL, \
                        status = CASE WHEN coalesce(failing_since, now()) \
                                           + make_interval(secs => $4) <= now() \
                                      THEN 'disabled' ELSE status END \
                  WHERE id = $1 AND lease_id = $2 \
                RETURNING status",
                &[
                    &endpoint.id,
                    &lease,
                    &delay.as_secs_f64(),
                    &self.config.give_up_after.as_secs_f64(),
                ],
            )
            .await?;
        let disabled = row
            .map(|r| r.try_get::<_, String>("status"))
            .transpose()?
            .is_some_and(|status| status == "disabled");
        if disabled {
            let reason = format!(
                "failing since {} at event {}: {}",
                endpoint
                    .failing_since
                    .map_or_else(|| "now".to_string(), |t| t.to_rfc3339()),
                event.id,
                outcome.error.as_deref().unwrap_or("no 2xx answer"),
            );
            client
                .execute(
                    "UPDATE webhook_endpoints SET disabled_reason = $2 WHERE id = $1",
                    &[&endpoint.id, &reason],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO notifications (source_position, kind, recipient, subject, body, \
                                                aggregate_type, aggregate_id) \
                     VALUES ($1, 'webhook_disabled', $2, $3, $4, 'WebhookEndpoint', $5) \
                     ON CONFLICT (source_position, kind, recipient) DO NOTHING",
                    &[
                        &event.position,
                        &endpoint.created_by,
                        &"Your webhook endpoint was disabled",
                        &format!(
                            "Deliveries to {} kept failing for {} and it was disabled ({reason}). \
                             Fix the receiver, then enable it again (POST /v1/webhooks/{}/enable); \
                             it goes on from the event it stopped at.",
                            endpoint.url,
                            humantime::format_duration(self.config.give_up_after),
                            endpoint.id
                        ),
                        &endpoint.id.to_string(),
                    ],
                )
                .await?;
            metrics::counter!("subdesk_webhook_endpoints_disabled_total").increment(1);
            tracing::warn!(endpoint = %endpoint.id, %reason, "webhook endpoint disabled");
        }
        Ok(())
    }
}

/// The delay before retry number `attempts + 1`: `base` doubling, at most an hour.
fn backoff(base: Duration, attempts: i32) -> Duration {
    let factor = 2u32.saturating_pow(u32::try_from(attempts.clamp(0, 20)).unwrap_or(20));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_an_hour() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 0), Duration::from_secs(10));
        assert_eq!(backoff(base, 3), Duration::from_secs(80));
        assert_eq!(backoff(base, 30), Duration::from_secs(3600));
    }
}
