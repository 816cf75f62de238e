//! The application's shared state: settings, pools, the command buses, the projection runner
//! and the scheduler, built once and handed to every handler and background task. Nothing
//! here runs anything (see `app`), and nothing here knows HTTP.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use metrics_exporter_prometheus::PrometheusHandle;
use subdesk_aggregates::calendar::{Calendar, Calendars};
use subdesk_aggregates::org_calendar::{CalendarServices, OrgCalendar};
use subdesk_aggregates::partner_relationship::{PartnerRelationship, RelationshipServices};
use subdesk_aggregates::subscription::{Subscription, SubscriptionPolicy, SubscriptionServices};
use subdesk_aggregates::support_case::{CasePolicy, CaseServices, SupportCase};
use subdesk_aggregates::Clock;
use subdesk_projections::{Runner, RunnerConfig};

use crate::auth::Authenticator;
use crate::command::CommandBus;
use crate::db::{DbError, Target};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::Appends;

/// Tunables of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bound on a read that waits for a read model to reach `min_position`.
    pub read_wait: Duration,
    pub projection: RunnerConfig,
    pub aggregate_cache: usize,
    pub pool_size: usize,
    pub case_policy: CasePolicy,
    /// The business calendar of orgs without one of their own.
    pub default_calendar: Calendar,
    pub subscription_policy: SubscriptionPolicy,
    /// Lease, batch and concurrency of the scheduler (its delays come from `case_policy`).
    pub scheduler: SchedulerConfig,
    /// Longest a request may take before it is answered 503 `request_timeout`.
    pub request_timeout: Duration,
    /// Longest a database statement of the server may run (and a session may sit idle in a
    /// transaction) before PostgreSQL cancels it. Zero: no bound.
    pub statement_timeout: Duration,
    /// Projections to run beside the built-in ones (extensions, and tests that need a read
    /// model of their own, e.g. one that fails on purpose).
    pub extra_projections: ExtraProjections,
    /// E-mail delivery from the outbox; none: the outbox keeps its rows.
    pub mail: Option<crate::mail::MailConfig>,
    /// Webhook delivery.
    pub webhooks: crate::webhooks::deliver::WebhookConfig,
}

/// Projections added to the built-in ones (see [`Settings::extra_projections`]).
#[derive(Clone, Default)]
pub struct ExtraProjections(pub Vec<Arc<dyn subdesk_projections::Projection>>);

impl std::fmt::Debug for ExtraProjections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| p.name()))
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            read_wait: Duration::from_secs(5),
            projection: RunnerConfig::default(),
            aggregate_cache: 10_000,
            pool_size: 16,
            case_policy: CasePolicy::default(),
            default_calendar: Calendar::always_open(),
            subscription_policy: SubscriptionPolicy::default(),
            scheduler: SchedulerConfig::default(),
            request_timeout: Duration::from_secs(60),
            statement_timeout: Duration::from_secs(30),
            extra_projections: ExtraProjections::default(),
            mail: None,
            webhooks: Default::default(),
        }
    }
}

pub struct AppInner {
    /// Primary: commands, read-model writes, tokens, idempotency.
    pub pool: Pool,
    /// Reads of read models and reports (a replica when one is configured). Histories, time
    /// travel and access decisions read the primary.
    pub read_pool: Pool,
    /// Shared with the scheduler, which issues the timed case commands.
    pub cases: Arc<CommandBus<SupportCase>>,
    /// Shared with the collections and hand-over process managers, which issue commands of
    /// their own.
    pub subscriptions: Arc<CommandBus<Subscription>>,
    /// Org business calendars (what SLA clocks count on).
    pub calendars: Arc<CommandBus<OrgCalendar>>,
    /// The calendar in force for each org (what case commands start clocks on, and what case
    /// reads count elapsed business time on).
    pub business_calendars: Arc<dyn Calendars>,
    /// Partner relationships (org consent for partners).
    pub relationships: Arc<CommandBus<PartnerRelationship>>,
    pub runner: Arc<Runner>,
    pub scheduler: Arc<Scheduler>,
    pub auth: Authenticator,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub metrics: PrometheusHandle,
    /// Where the notification listeners connect (the primary).
    pub listen_config: tokio_postgres::Config,
    /// The open event streams (`GET /v1/events` as Server-Sent Events).
    pub streams: Arc<crate::feed::slots::StreamSlots>,
    /// The data keys of the command path.
    pub keyring: Arc<crate::privacy::Keyring>,
    /// Connections of the erasures' background part (a rebuild of every read model needs
    /// one per projection and one more), apart from the live runner's.
    pub erasure_pool: Pool,
    /// Wakes the erasures' background part (see `app::finish_erasures`).
    pub erasure_wake: tokio::sync::Notify,
}

impl AppInner {
    /// Forgets every cached data key and aggregate state (an erasure happened).
    pub fn forget_personal_data(&self) {
        self.keyring.forget_all();
        self.cases.forget_cached();
        self.subscriptions.forget_cached();
        self.relationships.forget_cached();
        self.calendars.forget_cached();
        self.runner.forget_read_events();
    }

    /// The projections an erasure rebuilds: every one a rebuild may replay.
    pub fn rebuildable_projections(&self) -> Vec<Arc<dyn subdesk_projections::Projection>> {
        self.runner
            .projections()
            .iter()
            .filter(|p| p.rebuildable())
            .cloned()
            .collect()
    }
}

/// Cheap to clone; what every handler receives.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Builds the state. Connections are made lazily, so this succeeds while the database
    /// is down (the server then answers 503 until it is back).
    pub fn build(
        target: &Target,
        read_target: &Target,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DbError> {
        let (statement, idle) = (
            settings.statement_timeout,
            settings.statement_timeout.max(Duration::from_secs(60)),
        );
        let (target, read_target) = (
            &target.with_timeouts(statement, idle),
            &read_target.with_timeouts(statement, idle),
        );
        let pool = target.pool(settings.pool_size)?;
        let read_pool = read_target.pool(settings.pool_size)?;
        let sqlx = target.sqlx_pool(settings.pool_size);
        // The command path has connections of its own (as it had when it wrote through
        // sqlx), so that commands and the projection runners never wait for each other's
        // connections.
        // They append without the events table's NOTIFY: the runner announces this
        // process's appends itself, coalesced (see `Runner::run`).
        let command_pool = target.without_append_notify().pool(settings.pool_size)?;
        let appends: Appends = Arc::new(tokio::sync::watch::channel(0).0);
        let keyring = Arc::new(crate::privacy::Keyring::default());
        let business_calendars: Arc<dyn Calendars> = Arc::new(crate::calendars::LogCalendars {
            pool: pool.clone(),
            default: settings.default_calendar.clone(),
        });
        let case_services = CaseServices::new(Arc::clone(&clock), settings.case_policy.clone())
            .with_calendars(Arc::clone(&business_calendars));
        let calendars = Arc::new(CommandBus::new(
            sqlx.clone(),
            command_pool.clone(),
            CalendarServices::new(Arc::clone(&clock)),
            settings.aggregate_cache,
            Arc::clone(&appends),
            Arc::clone(&keyring),
        ));
        let cases = Arc::new(CommandBus::new(
            sqlx.clone(),
            command_pool.clone(),
            case_services,
            settings.aggregate_cache,
            Arc::clone(&appends),
            Arc::clone(&keyring),
        ));
        let subscription_services =
            SubscriptionServices::new(Arc::clone(&clock), settings.subscription_policy.clone());
        let subscriptions = Arc::new(CommandBus::new(
            sqlx.clone(),
            command_pool.clone(),
            subscription_services,
            settings.aggregate_cache,
            Arc::clone(&appends),
            Arc::clone(&keyring),
        ));
        let relationships = Arc::new(CommandBus::new(
            sqlx,
            command_pool,
            RelationshipServices::new(Arc::clone(&clock)),
            settings.aggregate_cache,
            Arc::clone(&appends),
            Arc::clone(&keyring),
        ));
        let mut projections = subdesk_projections::all();
        projections.push(Arc::new(crate::process::collections::KeptProducts::new(
            Arc::clone(&subscriptions),
        )));
        projections.push(Arc::new(
            crate::process::partner_handover::PartnerHandover::new(
                Arc::clone(&subscriptions),
                Arc::clone(&relationships),
            ),
        ));
        projections.extend(settings.extra_projections.0.iter().cloned());
        let erasure_pool = target.pool(projections.len() + 2)?;
        let runner = Arc::new(
            Runner::new(
                pool.clone(),
                Some(target.config.clone()),
                projections,
                RunnerConfig {
                    schema_version: Some(crate::db::latest_migration()),
                    ..settings.projection.clone()
                },
            )
            .announcing(appends.subscribe()),
        );
        let scheduler = Arc::new(Scheduler::new(
            pool.clone(),
            Arc::clone(&cases),
            Arc::clone(&subscriptions),
            Arc::clone(&clock),
            SchedulerConfig {
                auto_resolve_after: settings
                    .case_policy
                    .auto_resolve_after
                    .to_std()
                    .unwrap_or_default(),
                close_after: settings
                    .case_policy
                    .close_after
                    .to_std()
                    .unwrap_or_default(),
                ..settings.scheduler.clone()
            },
        ));
        Ok(Self(Arc::new(AppInner {
            auth: Authenticator::new(pool.clone()),
            scheduler,
            pool,
            read_pool,
            cases,
            subscriptions,
            relationships,
            calendars,
            business_calendars,
            runner,
            clock,
            settings,
            metrics: crate::telemetry::metrics(),
            listen_config: target.config.clone(),
            streams: Arc::default(),
            keyring,
            erasure_pool,
            erasure_wake: tokio::sync::Notify::new(),
        })))
    }
}
