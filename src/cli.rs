//! The binary's edge: each subcommand opens the database, does its work, and closes it.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use subdesk_aggregates::ActorRole;
use subdesk_projections::RunnerConfig;
use tokio_util::sync::CancellationToken;

use subdesk_aggregates::calendar::Calendar;

use crate::app::serve;
use crate::auth::{self, TokenSpec};
use crate::clock::SystemClock;
use crate::config::{
    Cli, Command, OutboxCommand, RoleArg, ScopeArg, ServeArgs, TokenCommand, TokenIssueArgs,
};
use crate::db::{self, Database};
use crate::state::{AppState, Settings};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Openapi = cli.command {
        println!("{}", crate::http::openapi().to_pretty_json()?);
        return Ok(ExitCode::SUCCESS);
    }
    let database = Database::open(&cli.db)
        .await
        .context("opening the database")?;
    let master = crate::privacy::load_master_key(&cli.db.keys, &cli.db.data_dir)?;
    subdesk_projections::privacy::install(master)?;
    let result = dispatch(&cli, &database).await;
    database.close().await;
    result
}

async fn dispatch(cli: &Cli, database: &Database) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve(args) => serve_command(cli, database, args).await,
        Command::Migrate => {
            let applied = db::migrate(&database.target).await?;
            if applied.is_empty() {
                eprintln!("database is up to date");
            }
            for migration in applied {
                eprintln!("applied {migration}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => {
            db::migrate(&database.target).await?;
            let pool = database.target.pool(2)?;
            token_command(&pool, command).await
        }
        Command::Verify(args) => {
            db::migrate(&database.target).await?;
            crate::audit_cli::verify(&database.read_target, args).await
        }
        Command::Export(args) => {
            db::migrate(&database.target).await?;
            crate::audit_cli::export(&database.read_target, args).await
        }
        Command::Openapi => Ok(ExitCode::SUCCESS),
        Command::Outbox { command } => {
            db::migrate(&database.target).await?;
            let pool = database.target.pool(1)?;
            let client = pool.get().await?;
            match command {
                OutboxCommand::Status => {
                    let status = crate::mail::outbox::status(&**client).await?;
                    println!("{}", serde_json::to_string_pretty(&status)?);
                }
                OutboxCommand::Retry { ids } => {
                    let put_back = crate::mail::outbox::retry(&**client, ids).await?;
                    eprintln!("{put_back} set-aside mail(s) put back to be sent");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Privacy { command } => privacy_command(database, command).await,
        Command::Projections { command } => {
            db::migrate(&database.target).await?;
            // A rebuild reads on one connection and writes each read model on another. The
            // state (which runs nothing here) knows every projection, process managers too.
            let state = AppState::build(
                &database.target,
                &database.read_target,
                Settings {
                    pool_size: 6,
                    ..Settings::default()
                },
                Arc::new(SystemClock),
            )?;
            crate::audit_cli::projections(&state.pool, state.runner.projections(), command).await
        }
    }
}

async fn serve_command(
    cli: &Cli,
    database: &Database,
    args: &ServeArgs,
) -> anyhow::Result<ExitCode> {
    db::migrate(&database.target)
        .await
        .context("applying migrations")?;
    {
        let pool = database.target.pool(1)?;
        crate::privacy::keyring::check_master(&**pool.get().await?).await?;
    }
    let settings = Settings {
        read_wait: args.read_wait,
        projection: RunnerConfig {
            batch_size: args.projection_batch,
            poll_interval: args.projection_poll,
            stall_after: args.stall_after,
            ..Default::default()
        },
        aggregate_cache: args.aggregate_cache,
        pool_size: cli.db.pool_size,
        case_policy: args.policy.case_policy(),
        default_calendar: args
            .policy
            .default_calendar
            .as_deref()
            .cloned()
            .unwrap_or_else(Calendar::always_open),
        subscription_policy: Default::default(),
        scheduler: crate::scheduler::SchedulerConfig {
            concurrency: args.scheduler_concurrency,
            ..Default::default()
        },
        request_timeout: args.request_timeout,
        statement_timeout: args.statement_timeout,
        extra_projections: Default::default(),
        mail: args.mail.config(),
        webhooks: webhook_config(&args.webhooks),
    };
    if let Some(mail) = &settings.mail {
        mail.check().context("e-mail delivery")?;
    }
    match &settings.mail {
        Some(mail) => tracing::info!(smtp = %redacted(&mail.smtp_url), "e-mail delivery is on"),
        None => tracing::info!("e-mail delivery is off (no --smtp-url): the outbox keeps its rows"),
    }
    let state = AppState::build(
        &database.target,
        &database.read_target,
        settings,
        Arc::new(SystemClock),
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "subdesk is listening");
    eprintln!("subdesk listening on http://{address} (docs at http://{address}/docs)");
    serve(state, listener, shutdown).await?;
    tracing::info!("subdesk stopped");
    Ok(ExitCode::SUCCESS)
}

/// An SMTP URL without its password.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM. The SIGTERM handler is installed here, before the
/// server says it listens: a SIGTERM right after that line stops it cleanly instead of killing
/// it with the signal's default action.
fn stop_on_signal(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        wait_then_stop(interrupt, terminate, shutdown).await
    }
}

async fn wait_then_stop(
    interrupt: impl std::future::Future,
    terminate: impl std::future::Future,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

async fn token_command(
    pool: &deadpool_postgres::Pool,
    command: &TokenCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Issue(args) => {
            let (_, token) = auth::issue(pool, &token_spec(args)).await?;
            println!("{token}");
        }
        TokenCommand::List => {
            for t in auth::list(pool).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.role,
                    t.user,
                    t.org_id.or(t.partner_id).unwrap_or_else(|| "-".into()),
                    t.created_at.to_rfc3339(),
                    t.revoked_at.map_or_else(
                        || "active".to_string(),
                        |at| format!("revoked {}", at.to_rfc3339())
                    ),
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !auth::revoke(pool, *id).await? {
                eprintln!("no active token has id {id}");
                return Ok(ExitCode::FAILURE);
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn token_spec(args: &TokenIssueArgs) -> TokenSpec {
    let role = match args.role {
        RoleArg::Customer => ActorRole::Customer,
        RoleArg::Partner => ActorRole::Partner,
        RoleArg::Agent => ActorRole::Agent,
        RoleArg::Admin => ActorRole::Admin,
        RoleArg::Auditor => ActorRole::Auditor,
    };
    TokenSpec {
        role,
        user: args
            .user
            .clone()
            .unwrap_or_else(|| format!("{role}@subdesk.local")),
        org_id: args.org.clone(),
        org_admin: args.org_admin,
        partner_id: args.partner.clone(),
        scopes: args
            .scopes
            .iter()
            .map(|s| match s {
                ScopeArg::ViewCustomers => auth::SCOPE_VIEW_CUSTOMERS.to_string(),
                ScopeArg::AccessCases => auth::SCOPE_ACCESS_CASES.to_string(),
            })
            .collect(),
        label: args.label.clone(),
        created_by: "cli".into(),
    }
}

/// Webhook delivery as the serve flags configure it.
fn webhook_config(args: &crate::config::WebhookArgs) -> crate::webhooks::deliver::WebhookConfig {
    crate::webhooks::deliver::WebhookConfig {
        allow_private: args.webhook_allow_private,
        give_up_after: args.webhook_give_up_after,
        backoff_base: args.webhook_retry_after,
        timeout: args.webhook_timeout,
        lease: args.webhook_timeout.saturating_mul(2),
        ..Default::default()
    }
}

async fn privacy_command(
    database: &Database,
    command: &crate::privacy::PrivacyCommand,
) -> anyhow::Result<ExitCode> {
    db::migrate(&database.target).await?;
    let state = AppState::build(
        &database.target,
        &database.target,
        Settings {
            pool_size: 2,
            ..Settings::default()
        },
        Arc::new(SystemClock),
    )?;
    match command {
        crate::privacy::PrivacyCommand::Erase { subject, reason } => {
            erase(&state, subject, reason).await
        }
        crate::privacy::PrivacyCommand::SealExisting => seal_existing(&state).await,
    }
}

async fn seal_existing(state: &AppState) -> anyhow::Result<ExitCode> {
    let report = {
        let mut client = state.pool.get().await?;
        crate::privacy::keyring::check_master(&**client).await?;
        let tx = client.transaction().await?;
        let report = crate::privacy::rewrite::seal_existing(&tx, |n| {
            if n % 100_000 == 0 && n > 0 {
                eprintln!("{n} events read");
            }
        })
        .await?;
        tx.commit().await?;
        report
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "sealed {} events in {} streams ({} hashes moved, each anchored) in {:.1} s",
        report.events_sealed, report.streams_rewritten, report.events_rehashed, report.seconds
    );
    for erasure in &report.erasures_reopened {
        eprintln!("erasure {erasure} covers sealed data again: finishing it");
        if wait_for_erasure(state, *erasure).await? != ExitCode::SUCCESS {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn erase(state: &AppState, subject: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let recorded = {
        let mut client = state.pool.get().await?;
        crate::privacy::keyring::check_master(&**client).await?;
        let tx = client.transaction().await?;
        let meta = crate::command::CommandMeta::system("cli:privacy-erase");
        let recorded = crate::privacy::erase::record(
            &tx,
            &state.pool,
            &state.keyring,
            subject,
            reason.trim(),
            &crate::privacy::erase::Requester {
                actor: meta.actor.clone(),
                metadata: meta.to_map(),
            },
        )
        .await?;
        tx.commit().await?;
        recorded
    };
    wait_for_erasure(state, recorded.id).await
}

/// Finishes the running erasures (or waits while another process does) until `id` is done;
/// prints it as JSON.
async fn wait_for_erasure(state: &AppState, id: uuid::Uuid) -> anyhow::Result<ExitCode> {
    let projections = state.rebuildable_projections();
    let projections: Vec<&dyn subdesk_projections::Projection> =
        projections.iter().map(|p| p.as_ref()).collect();
    // Another process may hold the erasures' lock: wait for it to finish this one.
    loop {
        crate::privacy::erase::complete_running(&state.erasure_pool, &projections).await?;
        let client = state.pool.get().await?;
        let now = crate::privacy::erase::find(&**client, id)
            .await?
            .context("the erasure vanished")?;
        if now.status != "running" {
            println!("{}", serde_json::to_string_pretty(&now)?);
            return Ok(if now.status == "completed" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
