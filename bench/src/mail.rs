//! `mail`: e-mail delivery to a local SMTP server (aiosmtpd with its discarding handler, run by
//! Debian's python): mails per second from the outbox against the same SMTP exchanges sent
//! straight from one client with no database (the baseline), and commit-to-delivery latency of
//! the confirmation of cases opened over HTTP.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use crate::commands::tokens;
use crate::env::{wait_for_projections, Bench};
use crate::{seed, Options, Report};

/// Mails queued at once for the throughput line, sent straight for the baseline, and cases
/// opened for the latency line.
const QUEUED: i64 = 3_000;
const DIRECT: usize = 1_000;
const OPENED: usize = 200;

/// aiosmtpd on a free loopback port, discarding what it accepts; stopped when dropped.
struct Smtp {
    child: tokio::process::Child,
    port: u16,
}

impl Smtp {
    async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new("timeout")
            .args(["1800", "/usr/bin/python3", "-m", "aiosmtpd", "-n"])
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Sink"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own process group: dropping it kills `timeout` and python together.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting aiosmtpd (apt-get install python3-aiosmtpd)")?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Self { child, port });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("aiosmtpd did not listen on {port}")
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The baseline: `DIRECT` mails of the same shape sent one after another by one client.
async fn direct(url: &str) -> anyhow::Result<f64> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build();
    let from: Mailbox = "support@subdesk.bench".parse()?;
    let to: Mailbox = seed::CUSTOMER.parse()?;
    let started = Instant::now();
    for n in 0..DIRECT {
        let message = Message::builder()
            .from(from.clone())
            .to(to.clone())
            .subject(format!(
                "[CASE-{n}] Board does not load: we received your request"
            ))
            .body(String::from(
                "We received your request and will answer soon.",
            ))?;
        transport.send(message).await?;
    }
    Ok(DIRECT as f64 / started.elapsed().as_secs_f64())
}

async fn count_sent(client: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM notifications WHERE status = 'sent'",
            &[],
        )
        .await?
        .get(0))
}

async fn wait_sent(client: &tokio_postgres::Client, total: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while count_sent(client).await? < total {
        if Instant::now() > deadline {
            bail!("mail not delivered within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub async fn mail(
    bench: &Bench,
    _options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let db = "bench_mail";
    let target = bench.database(db).await?;
    let client = bench.connect(db).await?;
    let (customer, _agent) = tokens(&target).await?;
    let smtp = Smtp::start().await?;
    let baseline = direct(&smtp.url()).await?;

    let url = smtp.url();
    let server = bench
        .server(
            db,
            &["--smtp-url", &url, "--mail-from", "support@subdesk.bench"],
        )
        .await?;
    // Throughput: the outbox gets `QUEUED` rows in one transaction.
    let started = Instant::now();
    client
        .execute(
            "INSERT INTO notifications (source_position, kind, recipient, subject, body, \
                                        aggregate_type, aggregate_id, facts) \
             SELECT g, 'case_opened', $2, 'Board does not load: we received your request', \
                    'We received your request and will answer soon.', 'SupportCase', 'bench-' || g, \
                    jsonb_build_object('key', 'CASE-' || g, 'summary', 'Board does not load', \
                                       'org_id', 'acme', 'status', 'open') \
               FROM generate_series(-$1::bigint, -1) g",
            &[&QUEUED, &seed::CUSTOMER],
        )
        .await?;
    wait_sent(&client, QUEUED).await?;
    let rate = QUEUED as f64 / started.elapsed().as_secs_f64();

    // Latency: cases opened over HTTP, 20 a second; from the opening's commit to the sending
    // of its confirmation.
    let http = reqwest::Client::new();
    for n in 0..OPENED {
        let response = http
            .post(format!("{}/v1/cases", server.address))
            .bearer_auth(&customer)
            .json(
                &json!({"entitlement_number": seed::ENTITLEMENT, "product": "jira-software",
                          "summary": format!("Board does not load {n}"),
                          "description": "Spins forever", "impact": 3}),
            )
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("opening a case: {}", response.status());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_projections(&client, Duration::from_secs(60)).await?;
    wait_sent(&client, QUEUED + OPENED as i64).await?;
    let latency = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) \
               FROM (SELECT extract(epoch FROM n.sent_at - e.recorded_at) * 1000 AS ms \
                       FROM notifications n JOIN events e ON e.position = n.source_position \
                      WHERE n.source_position > 0) l",
            &[],
        )
        .await?;
    let (p50, p99): (Option<f64>, Option<f64>) = (latency.get(0), latency.get(1));
    let rss = server.peak_rss_mib();
    server.stop().await?;
    report.section(
        &format!("mail{label}"),
        &format!(
            "| line | figure | baseline (same run) | ratio |\n|---|---|---|---|\n\
             | {QUEUED} queued mails to aiosmtpd | {rate:.0} mails/s | {baseline:.0} mails/s sent \
             straight by one client, no database | {:.2} |\n\
             | commit-to-delivery of {OPENED} case confirmations (20 openings/s) | p50 {:.0} ms, \
             p99 {:.0} ms | | |",
            rate / baseline,
            p50.unwrap_or(f64::NAN),
            p99.unwrap_or(f64::NAN),
        ),
    );
    report.rss(&format!("mail{label}"), rss);
    Ok(())
}
