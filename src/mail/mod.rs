//! E-mail delivery: a worker inside `serve` sends the rows of the `notifications` outbox over
//! SMTP (lettre), each as plain text and HTML in the recipient's language.
//!
//! A round claims a batch of due `pending` rows by leasing them (`FOR UPDATE SKIP LOCKED`, then
//! `leased_until`) and sends up to `concurrency` of them at once, so several processes never send one row at the same time and a process that
//! dies mid-send leaves its rows to be claimed again when the lease ends: at most the mails in
//! flight are sent twice, and their `Message-ID` (derived from the row) lets the receiving side
//! see the repeat. A transient failure is retried with exponential backoff (30 s doubling, at
//! most an hour apart) until the row is a day old (`--mail-give-up-after`); then, or at once
//! for a permanent refusal (5xx), the row is set aside as `failed` (`subdesk outbox status`,
//! `subdesk outbox retry`). Delivery keeps its own time from the database clock.
//!
//! When delivery is first turned on, pending rows older than `--mail-skip-older-than` are
//! marked `skipped`, so a first start never mails the whole history.

pub mod outbox;
pub mod render;
pub mod settings;

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::stream::{FuturesUnordered, StreamExt};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use render::{render, Language, Stored};

/// The recipient the projections give support's own alerts on unassigned cases.
const SUPPORT_TEAM: &str = subdesk_projections::cases::SUPPORT_TEAM;

/// How delivery is configured (`serve --smtp-url ...`).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://host:port` (plain; `?tls=required` for STARTTLS), `smtps://host:port` (TLS),
    /// with `user:password@` for credentials.
    pub smtp_url: String,
    /// The sender, e.g. `Subdesk Support <support@subdesk.example>`.
    pub from: String,
    /// Where support's team alerts go (the `support-team` recipient); unset: skipped.
    pub support_team: Option<String>,
    pub default_language: Language,
    /// Org id -> the language its people are mailed in.
    pub org_languages: HashMap<String, Language>,
    /// A row still failing this long after it was queued is set aside.
    pub give_up_after: Duration,
    /// Rows older than this when delivery is first turned on are skipped.
    pub skip_older_than: Duration,
    /// Rows per round, and how long a claim holds.
    pub batch: i64,
    pub lease: Duration,
    /// How often to look for due rows.
    pub poll: Duration,
    /// How long one SMTP exchange may take before it counts as a failure.
    pub timeout: Duration,
    /// Mails of a round in flight at once (each its own SMTP connection).
    pub concurrency: usize,
}

impl MailConfig {
    /// Whether the SMTP URL and the sender can be used (checked before `serve` starts).
    pub fn check(&self) -> Result<(), MailError> {
        self.from
            .parse::<Mailbox>()
            .map_err(|_| MailError::From(self.from.clone()))?;
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.smtp_url)
            .map_err(|e| MailError::Url(e.to_string()))?;
        Ok(())
    }

    /// Delivery to `smtp_url` with the defaults of the flags.
    pub fn new(smtp_url: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            smtp_url: smtp_url.into(),
            from: from.into(),
            support_team: None,
            default_language: Language::English,
            org_languages: HashMap::new(),
            give_up_after: Duration::from_secs(24 * 3600),
            skip_older_than: Duration::from_secs(24 * 3600),
            batch: 50,
            lease: Duration::from_secs(120),
            poll: Duration::from_millis(250),
            timeout: Duration::from_secs(30),
            concurrency: 8,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("--smtp-url: {0}")]
    Url(String),
    #[error("--mail-from `{0}` is not an address")]
    From(String),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retried: usize,
    pub set_aside: usize,
    pub skipped: usize,
}

impl Round {
    pub fn claimed(&self) -> usize {
        self.sent + self.retried + self.set_aside + self.skipped
    }
}

/// One claimed row.
struct Claimed {
    id: i64,
    source_position: i64,
    kind: String,
    recipient: String,
    subject: String,
    body: String,
    facts: Value,
    org_id: Option<String>,
    /// The language the recipient or their org chose through the API, if any.
    chosen: Option<Language>,
    old: bool,
}

/// How a row's send ended.
enum Outcome {
    Sent,
    Retry(String),
    SetAside(String),
    Skip(String),
}

/// The delivery worker.
pub struct Mailer {
    pool: Pool,
    config: MailConfig,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    pub fn new(pool: Pool, config: MailConfig) -> Result<Self, MailError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| MailError::From(config.from.clone()))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| MailError::Url(e.to_string()))?
            .timeout(Some(config.timeout))
            .build();
        Ok(Self {
            pool,
            config,
            from,
            transport,
        })
    }

    /// Records that delivery is on; the first time, skips pending rows older than the
    /// cut-off. Returns how many it skipped.
    pub async fn enable(&self) -> Result<u64, MailError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let first = tx
            .execute(
                "INSERT INTO mail_delivery (enabled_at) VALUES (now()) ON CONFLICT DO NOTHING",
                &[],
            )
            .await?;
        let mut skipped = 0;
        if first == 1 {
            skipped = tx
                .execute(
                    "UPDATE notifications SET status = 'skipped', \
                            last_error = 'queued before e-mail delivery was turned on' \
                      WHERE status = 'pending' \
                        AND created_at < now() - $1::float8 * interval '1 second'",
                    &[&self.config.skip_older_than.as_secs_f64()],
                )
                .await?;
        }
        tx.commit().await?;
        if skipped > 0 {
            tracing::info!(skipped, "e-mail delivery turned on: older rows skipped");
            metrics::counter!("subdesk_mail_total", "outcome" => "skipped").increment(skipped);
        }
        Ok(skipped)
    }

    /// Claims due rows and sends them.
    pub async fn round(&self) -> Result<Round, MailError> {
        let claimed = self.claim().await?;
        let mut round = Round::default();
        // An SMTP exchange is mostly waiting for the server: several at once.
        let mut waiting = claimed.iter();
        let mut sends = FuturesUnordered::new();
        loop {
            while sends.len() < self.config.concurrency.max(1) {
                match waiting.next() {
                    Some(row) => sends.push(self.send_row(row)),
                    None => break,
                }
            }
            let Some((row, outcome)) = sends.next().await else {
                break;
            };
            self.record(row, &outcome).await?;
            let (counter, outcome) = match outcome {
                Outcome::Sent => (&mut round.sent, "sent"),
                Outcome::Retry(_) => (&mut round.retried, "retried"),
                Outcome::SetAside(_) => (&mut round.set_aside, "failed"),
                Outcome::Skip(_) => (&mut round.skipped, "skipped"),
            };
            *counter += 1;
            metrics::counter!("subdesk_mail_total", "outcome" => outcome).increment(1);
        }
        Ok(round)
    }

    /// Runs rounds until `shutdown`, right away again while rounds find a full batch.
    pub async fn run(self, shutdown: CancellationToken) {
        // Nothing is sent before the first-start cut-off is applied: a database that is down
        // at start must not let the whole history out once it is back.
        while let Err(error) = self.enable().await {
            tracing::warn!(%error, "e-mail delivery could not be turned on; retrying");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.poll.max(Duration::from_secs(1))) => {}
            }
        }
        loop {
            let full = match self.round().await {
                Ok(round) => round.claimed() as i64 >= self.config.batch,
                Err(error) => {
                    tracing::warn!(%error, "e-mail delivery round failed");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    async fn claim(&self) -> Result<Vec<Claimed>, MailError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH due AS ( \
                     SELECT id FROM notifications \
                      WHERE status = 'pending' \
                        AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
                        AND (leased_until IS NULL OR leased_until <= now()) \
                      ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED \
                 ), claimed AS ( \
                     UPDATE notifications n \
                        SET leased_until = now() + $1::float8 * interval '1 second', \
                            attempts = attempts + 1 \
                       FROM due WHERE n.id = due.id \
                     RETURNING n.* \
                 ) \
                 SELECT c.id, c.source_position, c.kind, c.recipient, c.subject, c.body, \
                        coalesce(c.facts, '{}'::jsonb) \
                          || CASE WHEN s.id IS NULL THEN '{}'::jsonb \
                                  ELSE jsonb_build_object('product', s.product, 'org_id', s.org_id) END, \
                        c.created_at < now() - $3::float8 * interval '1 second', \
                        coalesce(u.language, o.language) \
                   FROM claimed c \
                   LEFT JOIN subscription_view s \
                          ON c.aggregate_type = 'Subscription' AND s.id::text = c.aggregate_id \
                   LEFT JOIN mail_languages u \
                          ON u.kind = 'user' AND u.subject = lower(c.recipient) \
                   LEFT JOIN mail_languages o \
                          ON o.kind = 'org' AND o.subject = coalesce(c.facts ->> 'org_id', s.org_id) \
                  ORDER BY c.id",
                &[
                    &self.config.lease.as_secs_f64(),
                    &self.config.batch,
                    &self.config.give_up_after.as_secs_f64(),
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let facts: Value = r.try_get(6)?;
                Ok(Claimed {
                    id: r.try_get(0)?,
                    source_position: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    recipient: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    body: r.try_get(5)?,
                    org_id: facts
                        .get("org_id")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    facts,
                    old: r.try_get(7)?,
                    chosen: r.try_get::<_, Option<&str>>(8)?.and_then(Language::parse),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(MailError::from)
    }

    /// The message of `row`, or why it cannot be sent at all.
    fn message(&self, row: &Claimed) -> Result<Message, String> {
        let address = if row.recipient == SUPPORT_TEAM {
            self.config
                .support_team
                .clone()
                .ok_or("no --mail-support-team address for support's team alerts")?
        } else {
            row.recipient.clone()
        };
        let to: Mailbox = address
            .parse()
            .map_err(|_| format!("`{address}` is not an e-mail address"))?;
        // The recipient's own choice, else their org's (both through the API), else the
        // server's configuration for the org, else its default.
        let language = row
            .chosen
            .or_else(|| {
                row.org_id
                    .as_ref()
                    .and_then(|org| self.config.org_languages.get(org))
                    .copied()
            })
            .unwrap_or(self.config.default_language);
        let stored = Stored {
            kind: &row.kind,
            subject: &row.subject,
            body: &row.body,
            facts: &row.facts,
        };
        let (mail, language) = render(&stored, language);
        let domain = self.from.email.domain().to_string();
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(message_id(row.id, row.source_position, &domain)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Content-Language"),
                language.tag().to_string(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Subdesk-Kind"),
                row.kind.clone(),
            ))
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| e.to_string())
    }

    async fn send_row<'a>(&self, row: &'a Claimed) -> (&'a Claimed, Outcome) {
        (row, self.send(row).await)
    }

    async fn send(&self, row: &Claimed) -> Outcome {
        let message = match self.message(row) {
            Ok(message) => message,
            Err(why) => return Outcome::Skip(why),
        };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(error) if error.is_permanent() => Outcome::SetAside(error.to_string()),
            Err(error) if row.old => Outcome::SetAside(format!("gave up: {error}")),
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }

    async fn record(&self, row: &Claimed, outcome: &Outcome) -> Result<(), MailError> {
        let client = self.pool.get().await?;
        match outcome {
            Outcome::Sent => {
                client
                    .execute(
                        "UPDATE notifications SET status = 'sent', sent_at = now(), \
                                leased_until = NULL, last_error = NULL WHERE id = $1",
                        &[&row.id],
                    )
                    .await?
            }
            Outcome::Retry(error) => {
                client
                    .execute(
                        "UPDATE notifications SET leased_until = NULL, last_error = $2, \
                                next_attempt_at = now() + least(30 * power(2, least(attempts - 1, 10)), 3600) \
                                                          * interval '1 second' \
                          WHERE id = $1",
                        &[&row.id, error],
                    )
                    .await?
            }
            Outcome::SetAside(error) | Outcome::Skip(error) => {
                let status = if matches!(outcome, Outcome::Skip(_)) {
                    "skipped"
                } else {
                    "failed"
                };
                client
                    .execute(
                        "UPDATE notifications SET status = $3, leased_until = NULL, \
                                last_error = $2 WHERE id = $1",
                        &[&row.id, error, &status],
                    )
                    .await?
            }
        };
        if let Outcome::Retry(error) | Outcome::SetAside(error) = outcome {
            tracing::warn!(id = row.id, recipient = %row.recipient, %error, "e-mail not delivered");
        }
        Ok(())
    }
}

/// The Message-ID of outbox row `id` (caused by the event at `position`): the same on every
/// attempt, so a mail sent again after a crash is recognisable as the same mail.
pub fn message_id(id: i64, position: i64, domain: &str) -> String {
    format!("<subdesk.notification.{id}.{position}@{domain}>")
}
