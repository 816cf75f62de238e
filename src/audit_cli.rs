//! The auditor's commands: `verify`, `export`, `projections rebuild|check|status`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::audit::{export, verify};
use crate::config::{ExportArgs, ProjectionsCommand, VerifyArgs};
use crate::db::Target;

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{msg} {bar:40} {pos}/{len} events ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {pos} events ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn connect(target: &Target) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = target
        .config
        .connect(tokio_postgres::NoTls)
        .await
        .context("connecting to the database")?;
    tokio::spawn(connection);
    Ok(client)
}

pub async fn verify(target: &Target, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let client = connect(target).await?;
    let scope = verify::Scope {
        aggregate_type: args.aggregate_type.clone(),
        aggregate_id: args.id.clone(),
    };
    let progress = bar(None, "verifying");
    let report = verify::verify(&client, &scope, |n| progress.set_position(n)).await?;
    progress.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.against {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let progress = bar(None, "comparing with the export");
        let anchored = verify::verify_against(&client, std::io::BufReader::new(file), |n| {
            progress.set_position(n)
        })
        .await?;
        progress.finish_and_clear();
        println!("{}", serde_json::to_string_pretty(&anchored)?);
        if let Some(mismatch) = &anchored.first_mismatch {
            eprintln!(
                "DIFFERS FROM THE EXPORT: {}/{} at sequence {}: {} (exported {}, found {})",
                mismatch.aggregate_type,
                mismatch.aggregate_id,
                mismatch.sequence,
                mismatch.problem,
                mismatch.exported,
                mismatch.found.as_deref().unwrap_or("nothing")
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!(
            "all {} events of the export are in the log as exported",
            anchored.events
        );
    }
    let rate = report.events as f64 / report.seconds.max(1e-9);
    match &report.first_broken {
        None => {
            eprintln!(
                "verified {} events in {} streams: every chain intact ({rate:.0} events/s)",
                report.events, report.streams
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(link) => {
            eprintln!(
                "BROKEN: {}/{} at sequence {}: {} (expected {}, found {})",
                link.aggregate_type,
                link.aggregate_id,
                link.sequence,
                link.problem,
                link.expected,
                link.found
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn export(target: &Target, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let client = connect(target).await?;
    let filter = export::Filter {
        aggregate_type: args.aggregate_type.clone(),
        from: args.from,
        to: args.to,
    };
    let total: i64 = client
        .query_one("SELECT count(*) AS total FROM events", &[])
        .await?
        .try_get("total")?;
    let progress = bar(Some(total.max(0) as u64), "exporting");
    let started = std::time::Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let written = export::export(&client, &filter, &mut out, |n| progress.set_position(n)).await?;
    out.flush()?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "exported {written} events in {seconds:.1}s ({:.0} events/s)",
        written as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn projections(
    pool: &deadpool_postgres::Pool,
    every: &[std::sync::Arc<dyn subdesk_projections::Projection>],
    command: &ProjectionsCommand,
) -> anyhow::Result<ExitCode> {
    let all: Vec<_> = every.iter().filter(|p| p.rebuildable()).cloned().collect();
    let named = |name: &str| {
        every
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<_> = every.iter().map(|p| p.name()).collect();
                anyhow::anyhow!("no projection named {name:?}; known: {}", names.join(", "))
            })
    };
    match command {
        ProjectionsCommand::DeadLetters { name } => {
            let client = pool.get().await?;
            let letters =
                subdesk_projections::dead_letters::list(&**client, name.as_deref()).await?;
            println!(
                "projection\tposition\tstream\tevent_type\tstate\trecorded_at\terror_or_reason"
            );
            for l in &letters {
                println!(
                    "{}\t{}\t{}/{}\t{}\t{}\t{}\t{}",
                    l.projection,
                    l.position,
                    l.aggregate_type.as_deref().unwrap_or("?"),
                    l.aggregate_id.as_deref().unwrap_or("?"),
                    l.event_type,
                    l.state,
                    l.recorded_at.to_rfc3339(),
                    l.reason.as_deref().unwrap_or(&l.error)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Retry { name, position } => {
            let projection = named(name)?;
            let report =
                subdesk_projections::dead_letters::retry(pool, projection.as_ref(), *position)
                    .await?;
            eprintln!("{name}: {} events applied", report.applied);
            for (stream, error) in &report.still_failing {
                eprintln!("{name}: {stream} still fails: {error}");
            }
            Ok(if report.still_failing.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ProjectionsCommand::Skip {
            name,
            position,
            reason,
        } => {
            let projection = named(name)?;
            if reason.trim().is_empty() {
                anyhow::bail!("say why the event is given up: --reason TEXT");
            }
            let client = pool.get().await?;
            let skipped = subdesk_projections::dead_letters::skip(
                &**client,
                projection.name(),
                *position,
                reason.trim(),
            )
            .await?;
            if !skipped {
                eprintln!(
                    "{name} set aside no event at position {position} (or it is skipped already)"
                );
                return Ok(ExitCode::FAILURE);
            }
            eprintln!(
                "{name}: event {position} skipped; events parked behind it stay parked until \
                 `subdesk projections retry {name}`"
            );
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Rebuild { name, all: every } => {
            let chosen: Vec<_> = all
                .iter()
                .filter(|p| *every || name.as_deref() == Some(p.name()))
                .collect();
            if chosen.is_empty() {
                let names: Vec<_> = all.iter().map(|p| p.name()).collect();
                anyhow::bail!("no read model named {name:?}; known: {}", names.join(", "));
            }
            // One pass over the log for all of them: each batch is read once and applied
            // to every chosen read model at the same time.
            let names: Vec<&str> = chosen.iter().map(|p| p.name()).collect();
            let progress = bar(Some(0), &names.join(", "));
            let projections: Vec<&dyn subdesk_projections::Projection> =
                chosen.iter().map(|p| p.as_ref()).collect();
            let reports =
                subdesk_projections::rebuild::rebuild_all(pool, &projections, &|done, total| {
                    progress.set_length(total);
                    progress.set_position(done);
                })
                .await?;
            progress.finish_and_clear();
            for report in reports {
                eprintln!(
                    "rebuilt {}: {} events in {:.1}s ({:.0} events/s)",
                    report.projection, report.events, report.seconds, report.events_per_second
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Check => {
            let mut clean = true;
            for projection in &all {
                let report = subdesk_projections::rebuild::check(pool, projection.as_ref()).await?;
                if report.is_clean() {
                    eprintln!(
                        "{}: no drift (checked up to {})",
                        report.projection,
                        report.checkpoint.token()
                    );
                } else {
                    clean = false;
                    eprintln!("{}: DRIFT", report.projection);
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
            }
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ProjectionsCommand::Status => {
            let client = pool.get().await?;
            let rows = client
                .query(
                    "SELECT c.name, c.last_position, c.events_applied, c.updated_at, \
                            (SELECT count(*) FROM events e \
                              WHERE (e.tx_id, e.position) > (c.last_tx, c.last_position)) AS behind \
                       FROM projection_checkpoints c ORDER BY c.name",
                    &[],
                )
                .await?;
            println!("projection\tlast_position\tapplied\tbehind\tupdated_at");
            for row in rows {
                let updated: chrono::DateTime<chrono::Utc> = row.try_get("updated_at")?;
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    row.try_get::<_, String>("name")?,
                    row.try_get::<_, i64>("last_position")?,
                    row.try_get::<_, i64>("events_applied")?,
                    row.try_get::<_, i64>("behind")?,
                    updated.to_rfc3339()
                );
            }
            let set_aside = client
                .query(
                    "SELECT projection, position, event_type, error, recorded_at \
                       FROM projection_dead_letters WHERE state <> 'skipped' \
                      ORDER BY projection, position",
                    &[],
                )
                .await?;
            if set_aside.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "\nevents set aside (failed, or parked behind a failed event of their stream; \
                 see `projections dead-letters`, `retry`, `skip`):"
            );
            println!("projection\tposition\tevent_type\trecorded_at\terror");
            for row in &set_aside {
                let at: chrono::DateTime<chrono::Utc> = row.try_get("recorded_at")?;
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    row.try_get::<_, String>("projection")?,
                    row.try_get::<_, i64>("position")?,
                    row.try_get::<_, String>("event_type")?,
                    at.to_rfc3339(),
                    row.try_get::<_, String>("error")?
                );
            }
            // Exit 1, as `check` does on drift: a read model is missing these events.
            Ok(ExitCode::FAILURE)
        }
    }
}
