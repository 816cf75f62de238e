//! Command-line and environment configuration: one typed tree, every field documented.
//! Secrets (database URLs) are never printed: `hide_env_values` keeps them out of `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use subdesk_aggregates::calendar::{Calendar, CalendarSpec};

#[derive(Debug, Parser)]
#[command(
    name = "subdesk",
    version,
    about = "Event-sourced engine for customer subscriptions and support cases"
)]
pub struct Cli {
    /// More log output on stderr: `-v` for info, `-vv` for debug (`RUST_LOG` overrides).
    /// `serve` logs at info by default; the other commands print only their result and
    /// warnings.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Directory of the private PostgreSQL cluster used when no database URL is given. It is
    /// created on first use; commands pointed at a directory whose cluster is already running
    /// (for example by `subdesk serve`) connect to it instead of starting another.
    #[arg(
        long,
        env = "SUBDESK_DATA_DIR",
        default_value = "./subdesk-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// PostgreSQL server to use instead of the private cluster; nothing is started when set.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Optional replica that serves reads (read models, history, reports).
    #[arg(
        long,
        env = "SUBDESK_READ_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub read_database_url: Option<String>,

    #[command(flatten)]
    pub keys: crate::privacy::KeyArgs,

    /// Connections per pool (the write path and the read path each have one).
    #[arg(
        long,
        env = "SUBDESK_DB_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub pool_size: usize,
}

// Parsed once at start-up and matched once: the size of `serve`'s flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, the projection runner and the scheduler until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Issue, list and revoke API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Recompute every stream's hash chain; exit code 1 and the first broken link when the
    /// log was tampered with.
    Verify(VerifyArgs),
    /// Write the event log as JSON Lines to stdout, in the gap-free order (progress on stderr).
    Export(ExportArgs),
    /// Print the OpenAPI document of the HTTP API (the same as `GET /openapi.json`) and exit;
    /// needs no database.
    Openapi,
    /// Rebuild read models from the log, check them for drift, or show their state.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// The e-mail outbox: what waits, what was sent, what was set aside.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Personal data: erase a data subject (destroys their keys; see the README).
    Privacy {
        #[command(subcommand)]
        command: crate::privacy::PrivacyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Rows per delivery status, and the mail set aside with why (JSON).
    Status,
    /// Put set-aside mail back to be sent, with a fresh day of retries.
    Retry {
        /// Only these rows (ids from `outbox status`); all set-aside rows without.
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Only streams of this aggregate type (`SupportCase`, `Subscription`).
    #[arg(long)]
    pub aggregate_type: Option<String>,
    /// Only this stream (an aggregate id).
    #[arg(long)]
    pub id: Option<String>,
    /// Also check that every event of this earlier export (`subdesk export`) is still in the
    /// log with the same hash: catches a stream that lost its newest events, or one rewritten
    /// and re-hashed after the export.
    #[arg(long, value_name = "EXPORT.jsonl")]
    pub against: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Only events recorded at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events recorded before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events of this aggregate type.
    #[arg(long)]
    pub aggregate_type: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuild read models from the whole log into fresh tables and swap them in; the API
    /// keeps serving the old tables meanwhile.
    Rebuild {
        /// The projection to rebuild (see `projections status`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rebuild every read model.
        #[arg(long)]
        all: bool,
    },
    /// Compare every live read model with a fresh rebuild and list the rows that differ;
    /// exit code 1 when any does.
    Check,
    /// Each projection's checkpoint and how far it is behind the log.
    Status,
    /// The events projections set aside: failed, parked behind a failed one of their stream,
    /// or skipped by an operator.
    DeadLetters {
        /// Only this projection's.
        name: Option<String>,
    },
    /// Apply a projection's failed and parked events again (after a fix), stream by stream in
    /// log order; those that apply are removed from the dead letters. Exit 1 if any still
    /// fails.
    Retry {
        name: String,
        /// Only the stream of the event at this position.
        #[arg(long)]
        position: Option<i64>,
    },
    /// Give up one set-aside event for good, with a reason: it counts as done, and rebuilds
    /// skip it too. Events parked behind it stay parked until `retry`.
    Skip {
        name: String,
        #[arg(long)]
        position: i64,
        /// Why it is given up (recorded).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "SUBDESK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// How long a read with `min_position` waits for the read model to catch up before it
    /// answers 503 `read_model_behind`.
    #[arg(long, env = "SUBDESK_READ_WAIT", default_value = "5s", value_parser = parse_duration)]
    pub read_wait: Duration,

    /// How often projections look for new events when no notification arrives.
    #[arg(long, env = "SUBDESK_PROJECTION_POLL", default_value = "500ms", value_parser = parse_duration)]
    pub projection_poll: Duration,

    /// Events per projection transaction.
    #[arg(long, env = "SUBDESK_PROJECTION_BATCH", default_value_t = 1000)]
    pub projection_batch: i64,

    /// A projection with events waiting whose checkpoint has not moved for this long is
    /// `stalled` (in `/readyz`, `GET /v1/projections` and the metrics), and the log names the
    /// transaction holding the read horizon back.
    #[arg(long, env = "SUBDESK_STALL_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub stall_after: Duration,

    /// Timed commands (auto-resolve, close, renew, ...) the scheduler runs at once when many
    /// fall due together.
    #[arg(long, env = "SUBDESK_SCHEDULER_CONCURRENCY", default_value_t = 16)]
    pub scheduler_concurrency: usize,

    /// Aggregates kept in memory per aggregate type, so a command reads only the events
    /// appended since the cached version.
    #[arg(long, env = "SUBDESK_AGGREGATE_CACHE", default_value_t = 10_000)]
    pub aggregate_cache: usize,

    /// Longest a request may take; past it the client gets 503 `request_timeout` (with
    /// `Retry-After`) and the work is abandoned. A command is either committed or not: repeat
    /// it with the same `Idempotency-Key` to learn which.
    #[arg(long, env = "SUBDESK_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Longest one database statement of the server may run before PostgreSQL cancels it
    /// (also the bound on a session idle inside a transaction, at least 60s). `0s`: no bound.
    /// The CLI's own work (rebuild, export, verify) is not bounded.
    #[arg(long, env = "SUBDESK_STATEMENT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub statement_timeout: Duration,

    #[command(flatten)]
    pub mail: MailArgs,

    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// Webhook delivery (always on; endpoints are registered through `/v1/webhooks`).
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Let webhooks go to loopback and private addresses (tests, closed networks). Off: such
    /// targets are refused when registered and at every delivery.
    #[arg(long, env = "SUBDESK_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// An endpoint failing this long is disabled (and its creator told).
    #[arg(long, env = "SUBDESK_WEBHOOK_GIVE_UP_AFTER", default_value = "3d", value_parser = parse_duration)]
    pub webhook_give_up_after: Duration,
    /// The first retry's delay after a failed delivery; it doubles, at most an hour.
    #[arg(long, env = "SUBDESK_WEBHOOK_RETRY_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub webhook_retry_after: Duration,
    /// How long a receiver has to answer before the delivery counts as failed. A process
    /// that dies mid-delivery leaves its endpoints to the others after twice this.
    #[arg(long, env = "SUBDESK_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,
}

/// E-mail delivery from the notifications outbox (off without `--smtp-url`).
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// The SMTP server: `smtp://host:25` (plain), `smtp://host:587?tls=required` (STARTTLS),
    /// `smtps://host:465` (TLS), credentials as `smtp://user:password@host`. Unset: nothing is
    /// sent; the outbox keeps its rows.
    #[arg(long, env = "SUBDESK_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The sender of every mail.
    #[arg(
        long,
        env = "SUBDESK_MAIL_FROM",
        default_value = "Subdesk Support <support@subdesk.invalid>"
    )]
    pub mail_from: String,
    /// Where support's team alerts (SLA warnings and breaches of unassigned cases) go.
    #[arg(long, env = "SUBDESK_MAIL_SUPPORT_TEAM")]
    pub mail_support_team: Option<String>,
    /// The language of mail: `en` or `ja`.
    #[arg(long, env = "SUBDESK_MAIL_LANGUAGE", default_value = "en", value_parser = parse_language)]
    pub mail_language: crate::mail::render::Language,
    /// Orgs mailed in another language, e.g. `acme=ja,globex=en`.
    #[arg(long, env = "SUBDESK_MAIL_ORG_LANGUAGES", value_parser = parse_org_language, value_delimiter = ',')]
    pub mail_org_languages: Vec<(String, crate::mail::render::Language)>,
    /// A mail still failing this long after it was queued is set aside (`subdesk outbox
    /// status`, `subdesk outbox retry`).
    #[arg(long, env = "SUBDESK_MAIL_GIVE_UP_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub mail_give_up_after: Duration,
    /// When delivery is first turned on, rows older than this are skipped, not mailed.
    #[arg(long, env = "SUBDESK_MAIL_SKIP_OLDER_THAN", default_value = "24h", value_parser = parse_duration)]
    pub mail_skip_older_than: Duration,
}

impl MailArgs {
    /// The delivery configuration, when `--smtp-url` is set.
    pub fn config(&self) -> Option<crate::mail::MailConfig> {
        let url = self.smtp_url.as_ref()?;
        let mut config = crate::mail::MailConfig::new(url.clone(), self.mail_from.clone());
        config.support_team = self.mail_support_team.clone();
        config.default_language = self.mail_language;
        config.org_languages = self.mail_org_languages.iter().cloned().collect();
        config.give_up_after = self.mail_give_up_after;
        config.skip_older_than = self.mail_skip_older_than;
        Some(config)
    }
}

fn parse_language(text: &str) -> Result<crate::mail::render::Language, String> {
    crate::mail::render::Language::parse(text)
        .ok_or_else(|| format!("`{text}` is not a mail language; try en or ja"))
}

fn parse_org_language(text: &str) -> Result<(String, crate::mail::render::Language), String> {
    let (org, language) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not org=language; try acme=ja"))?;
    Ok((org.trim().to_string(), parse_language(language)?))
}

/// Timed and windowed rules of the case lifecycle, as human durations (`5d`, `36h`, `3s`).
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// How long a case may wait for the customer before it is resolved automatically.
    #[arg(long, env = "SUBDESK_AUTO_RESOLVE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub auto_resolve_after: Duration,

    /// How long a resolved case stays reopenable before it is closed.
    #[arg(long, env = "SUBDESK_CLOSE_AFTER", default_value = "14d", value_parser = parse_duration)]
    pub close_after: Duration,

    /// How long after resolution a customer reply reopens the case.
    #[arg(long, env = "SUBDESK_REOPEN_WINDOW", default_value = "30d", value_parser = parse_duration)]
    pub reopen_window: Duration,

    /// First-response targets of priority levels 1 to 4 (business time on the org's calendar),
    /// comma-separated.
    #[arg(long, env = "SUBDESK_FIRST_RESPONSE_TARGETS", default_value = "1h,4h,8h,16h", value_parser = parse_targets)]
    pub first_response_targets: FirstResponseTargets,

    /// Next-reply targets of priority levels 1 to 4 (business time), comma-separated: from a
    /// customer-side comment that follows a public staff reply to support's next public reply.
    #[arg(long, env = "SUBDESK_NEXT_REPLY_TARGETS", default_value = "1h,4h,8h,16h", value_parser = parse_targets)]
    pub next_reply_targets: FirstResponseTargets,

    /// Resolution targets of priority levels 1 to 4, in business days (a business day is one
    /// day's opening hours of the org's calendar: the week's open time shared over its open
    /// days), comma-separated, each 1 to 365. The clock pauses while the case waits for the
    /// customer.
    #[arg(long, env = "SUBDESK_RESOLUTION_TARGETS", default_value = "1,3,5,10", value_parser = parse_days)]
    pub resolution_targets: ResolutionTargets,

    /// Largest case attachment accepted: bytes, or with a unit (`10MiB`, `512KiB`).
    #[arg(long, env = "SUBDESK_MAX_ATTACHMENT_SIZE", default_value = "10MiB", value_parser = parse_size)]
    pub max_attachment_size: u64,

    /// Refuse to open a case without a support entitlement number or subscription id (`true`,
    /// the contract), or let callers leave it out (`false`). A named entitlement is always
    /// checked: the org's, active or non-renewing.
    #[arg(long, env = "SUBDESK_REQUIRE_ENTITLEMENT", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_entitlement: bool,

    /// Whether accepting an escalation raises the case's priority one step towards L1 (none
    /// at L1), with that priority's first-response target.
    #[arg(long, env = "SUBDESK_ESCALATION_RAISES_PRIORITY", default_value_t = true, action = clap::ArgAction::Set)]
    pub escalation_raises_priority: bool,

    /// The share of an SLA target, in percent, at which support is warned that the due time
    /// nears (`SlaWarningRaised`).
    #[arg(long, env = "SUBDESK_SLA_WARNING_PERCENT", default_value_t = 75, value_parser = clap::value_parser!(u8).range(1..=99))]
    pub sla_warning_percent: u8,

    /// The business calendar of orgs without one of their own, as JSON (the body of `PUT
    /// /v1/orgs/{org_id}/calendar`, e.g. `{"timezone": "Asia/Tokyo", "hours": {"mon":
    /// [["09:00", "18:00"]]}}`). Unset: open around the clock (SLA targets in calendar time).
    #[arg(long, env = "SUBDESK_DEFAULT_CALENDAR", value_parser = parse_calendar)]
    pub default_calendar: Option<Box<Calendar>>,
}

/// A calendar written as JSON, checked.
fn parse_calendar(text: &str) -> Result<Box<Calendar>, String> {
    let spec: CalendarSpec =
        serde_json::from_str(text).map_err(|e| format!("not a calendar: {e}"))?;
    Calendar::parse(&spec)
        .map(Box::new)
        .map_err(|e| e.to_string())
}

/// First-response targets of priority levels 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstResponseTargets(pub [Duration; 4]);

/// Resolution targets of priority levels 1 to 4, in business days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolutionTargets(pub [u32; 4]);

/// Parses four comma-separated numbers of business days, 1 to 365: `1,3,5,10`.
pub fn parse_days(text: &str) -> Result<ResolutionTargets, String> {
    let wrong = || {
        format!("`{text}` is not four numbers of days (1 to 365) for levels 1 to 4; try 1,3,5,10")
    };
    let days: Vec<u32> = text
        .split(',')
        .map(|part| part.trim().parse::<u32>().map_err(|_| wrong()))
        .collect::<Result<_, _>>()?;
    match <[u32; 4]>::try_from(days) {
        Ok(days) if days.iter().all(|d| (1..=365).contains(d)) => Ok(ResolutionTargets(days)),
        _ => Err(wrong()),
    }
}

impl Default for PolicyArgs {
    fn default() -> Self {
        let policy = subdesk_aggregates::support_case::CasePolicy::default();
        let std = |d: chrono::Duration| d.to_std().unwrap_or_default();
        Self {
            auto_resolve_after: std(policy.auto_resolve_after),
            close_after: std(policy.close_after),
            reopen_window: std(policy.reopen_window),
            first_response_targets: FirstResponseTargets(policy.first_response.map(std)),
            next_reply_targets: FirstResponseTargets(policy.next_reply.map(std)),
            resolution_targets: ResolutionTargets(policy.resolution_days),
            max_attachment_size: policy.max_attachment_bytes,
            require_entitlement: policy.require_entitlement,
            escalation_raises_priority: policy.escalation_raises_priority,
            sla_warning_percent: policy.sla_warning_percent,
            default_calendar: None,
        }
    }
}

impl PolicyArgs {
    pub fn case_policy(&self) -> subdesk_aggregates::support_case::CasePolicy {
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        subdesk_aggregates::support_case::CasePolicy {
            auto_resolve_after: chrono(self.auto_resolve_after),
            close_after: chrono(self.close_after),
            reopen_window: chrono(self.reopen_window),
            first_response: self.first_response_targets.0.map(chrono),
            next_reply: self.next_reply_targets.0.map(chrono),
            resolution_days: self.resolution_targets.0,
            max_attachment_bytes: self.max_attachment_size,
            require_entitlement: self.require_entitlement,
            escalation_raises_priority: self.escalation_raises_priority,
            sla_warning_percent: self.sla_warning_percent,
            ..Default::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token and print it, alone, on stdout. Only its hash is stored.
    Issue(TokenIssueArgs),
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token id printed by `token list`.
        id: uuid::Uuid,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TokenIssueArgs {
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Customer org the token is bound to (customers).
    #[arg(long)]
    pub org: Option<String>,
    /// The customer is an admin of their org.
    #[arg(long)]
    pub org_admin: bool,
    /// Partner id the token is bound to (partners).
    #[arg(long)]
    pub partner: Option<String>,
    /// Partner scopes, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scopes: Vec<ScopeArg>,
    /// The user (e-mail) the token acts as; defaults to `<role>@subdesk.local`.
    #[arg(long)]
    pub user: Option<String>,
    /// A note for the token list.
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Customer,
    Partner,
    Agent,
    Admin,
    Auditor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ScopeArg {
    ViewCustomers,
    AccessCases,
}

/// Parses a human duration: `5d`, `3s`, `36h`, `1h 30m`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); try 5d, 36h or 3s"))
}

/// Parses four comma-separated durations: `1h,4h,8h,16h`.
pub fn parse_targets(text: &str) -> Result<FirstResponseTargets, String> {
    let parts: Vec<&str> = text.split(',').collect();
    let [a, b, c, d] = parts.as_slice() else {
        return Err(format!(
            "`{text}` is not four durations for levels 1 to 4; try 1h,4h,8h,16h"
        ));
    };
    Ok(FirstResponseTargets([
        parse_duration(a)?,
        parse_duration(b)?,
        parse_duration(c)?,
        parse_duration(d)?,
    ]))
}

/// Parses a size: `1048576`, `512KiB`, `10MiB`, `1GiB` (also `KB`/`MB`/`GB`, as powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; try 10MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("`{text}` has an unknown unit; try 10MiB")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
