//! `reports`: latency of the report endpoints and the dashboard's refresh on a large log,
//! next to baselines taken in the same run on the same server: `GET /healthz` (HTTP alone),
//! `GET /v1/cases/{id}` (authentication and one primary-key read of a read model through the
//! API) and that primary-key read sent by the bench straight to PostgreSQL.
//!
//! The log holds the events the aggregates would append (the domain's own event types,
//! serialized the same way), COPYed in with the hash trigger on: `--report-cases` cases opened
//! over the last 365 days across 200 orgs, 5 products and 10 partners (answered in or out of
//! target, then resolved, auto-resolved after waiting, or still open) and 5,000
//! subscriptions. The server starts on it, catches up, and is timed over loopback HTTP, one
//! request at a time.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde_json::{json, Value};
use subdesk::auth::TokenSpec;
use subdesk_aggregates::subscription::{
    self as sub, CancelEffective, Channel, SubscriptionActivated, SubscriptionCancelled,
    SubscriptionCreated, SubscriptionEvent,
};
use subdesk_aggregates::support_case::{
    self as case, CaseAutoResolved, CaseOpened, CaseResolved, CommentAdded, CustomerInfoRequested,
    FirstResponseGiven, SupportCaseEvent, Visibility,
};
use subdesk_aggregates::{Actor, ActorRole};
use uuid::Uuid;

use crate::env::{wait_for_projections, Bench};
use crate::load::percentile_ms;
use crate::seed::{self, Row};
use crate::{Options, Report};

const DB: &str = "bench_reports";
const ORGS: u64 = 200;
const PARTNERS: u64 = 10;
const PRODUCTS: [&str; 5] = [
    "jira-software",
    "confluence",
    "jira-service-management",
    "bitbucket",
    "loom",
];
const SUBSCRIPTIONS: u64 = 5_000;
/// Requests before each measured series, not counted.
const WARM_UP: usize = 10;

/// A small deterministic generator (xorshift), so every run seeds the same log.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn row<E: DomainEvent + serde::Serialize>(
    aggregate_type: &'static str,
    id: Uuid,
    sequence: i64,
    event: &E,
    actor: &Actor,
) -> Row {
    Row {
        aggregate_type,
        aggregate_id: id.to_string(),
        sequence,
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload: serde_json::to_value(event).unwrap_or(Value::Null),
        metadata: json!({"actor_id": actor.id, "actor_role": actor.role.as_str(),
                         "request_id": "seed", "correlation_id": "seed"}),
    }
}

fn org(n: u64) -> String {
    format!("org-{n:03}")
}

/// The partner that sells to org `n` (every third org buys directly).
fn partner_of(n: u64) -> Option<String> {
    (!n.is_multiple_of(3)).then(|| format!("p-{:02}", n % PARTNERS))
}

fn seconds(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX))
}

fn case_events(rng: &mut Rng, i: u64, cases: u64, start: DateTime<Utc>, span: u64) -> Vec<Row> {
    let id = Uuid::from_u64_pair(0x5eed_0000_0000_0000, i);
    let opened_at = start + seconds(span * i / cases.max(1));
    let priority = u8::try_from(1 + rng.below(4)).unwrap_or(4);
    let target: u64 = [3600, 4 * 3600, 8 * 3600, 16 * 3600][usize::from(priority - 1)];
    let due = opened_at + seconds(target);
    let org_n = rng.below(ORGS);
    let requester = Actor::new(
        format!("user{}@{}.example", rng.below(20), org(org_n)),
        ActorRole::Customer,
    );
    let agent = Actor::new("agent@support.example", ActorRole::Agent);
    let mut events = vec![SupportCaseEvent::CaseOpened(CaseOpened {
        case_id: id,
        key: format!("CASE-{}", 1001 + i),
        org_id: org(org_n),
        requester: requester.id.clone(),
        product: PRODUCTS[usize::try_from(rng.below(5)).unwrap_or(0)].into(),
        product_version: None,
        entitlement_number: None,
        subscription_id: None,
        summary: format!("Seeded case {i}"),
        description: "Seeded by the report benchmark.".into(),
        impact: priority,
        priority,
        participants: vec![],
        phone: None,
        data_access_consent: false,
        follow_up_of: None,
        request_type: subdesk_aggregates::support_case::RequestType::Technical,
        opened_by: requester.clone(),
        opened_at,
        first_response_due: due,
        first_response_warning_at: None,
        resolution: None,
    })];
    let fate = rng.below(100);
    if fate < 90 {
        // Answered: most within the target, some late.
        let answered = opened_at + seconds(rng.below(target * 3 / 2) + 60);
        let comment_id = Uuid::from_u64_pair(0x5eed_c000_0000_0000, i);
        events.push(SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id,
            author: agent.clone(),
            body: "Looking into it.".into(),
            visibility: Visibility::Public,
            at: answered,
            next_reply: None,
        }));
        events.push(SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
            comment_id,
            by: agent.clone(),
            due,
            breached: answered > due,
            at: answered,
        }));
        if fate < 70 {
            let resolved = answered + seconds(3600 + rng.below(10 * 86_400));
            events.push(SupportCaseEvent::CaseResolved(CaseResolved {
                by: agent.clone(),
                at: resolved,
                resolution: None,
            }));
        } else if fate < 80 {
            let waiting = answered + chrono::Duration::minutes(5);
            events.push(SupportCaseEvent::CustomerInfoRequested(
                CustomerInfoRequested {
                    comment_id,
                    by: agent.clone(),
                    at: waiting,
                    resolution: None,
                },
            ));
            let waited = chrono::Duration::days(5);
            events.push(SupportCaseEvent::CaseAutoResolved(CaseAutoResolved {
                waiting_since: waiting,
                waited_seconds: waited.num_seconds(),
                at: waiting + waited,
            }));
        }
    }
    let system = Actor::system();
    events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let actor = if n == 0 {
                &requester
            } else if matches!(event, SupportCaseEvent::CaseAutoResolved(_)) {
                &system
            } else {
                &agent
            };
            row(
                case::AGGREGATE_TYPE,
                id,
                i64::try_from(n).unwrap_or(0) + 1,
                event,
                actor,
            )
        })
        .collect()
}

fn subscription_events(rng: &mut Rng, i: u64, now: DateTime<Utc>) -> Vec<Row> {
    let id = Uuid::from_u64_pair(0x5eed_5000_0000_0000, i);
    let org_n = i % ORGS;
    let partner = partner_of(org_n);
    let actor = match &partner {
        Some(p) => Actor::new(format!("sales@{p}.example"), ActorRole::Partner),
        None => Actor::new(format!("admin@{}.example", org(org_n)), ActorRole::Customer),
    };
    let term_start = now - chrono::Duration::days(1) - seconds(rng.below(300) * 86_400);
    let term_end = now + chrono::Duration::days(1) + seconds(rng.below(365) * 86_400);
    let mut events = vec![
        SubscriptionEvent::SubscriptionCreated(SubscriptionCreated {
            subscription_id: id,
            entitlement_number: format!(
                "E-{:04X}-{:04X}-{:04X}",
                i >> 32,
                (i >> 16) & 0xffff,
                i & 0xffff
            ),
            org_id: org(org_n),
            product: PRODUCTS[usize::try_from(rng.below(5)).unwrap_or(0)].into(),
            plan: ["standard", "premium", "enterprise"][usize::try_from(rng.below(3)).unwrap_or(0)]
                .into(),
            seats: u32::try_from(1 + rng.below(500)).unwrap_or(1),
            term_start,
            term_end,
            auto_renew: rng.below(4) != 0,
            channel: partner
                .clone()
                .map_or(Channel::Direct, |partner_id| Channel::Partner {
                    partner_id,
                }),
            billing_account: format!("BA-{org_n}"),
            included_products: vec![],
            from_collection: None,
            created_by: actor.clone(),
            created_at: term_start,
        }),
        SubscriptionEvent::SubscriptionActivated(SubscriptionActivated {
            term_start,
            at: term_start,
        }),
    ];
    if rng.below(10) == 0 {
        let at = term_start + seconds(rng.below(200) * 86_400);
        events.push(SubscriptionEvent::SubscriptionCancelled(
            SubscriptionCancelled {
                reason: "seeded".into(),
                effective: CancelEffective::Immediately,
                effective_at: at,
                by: actor.clone(),
                at,
            },
        ));
    }
    events
        .iter()
        .enumerate()
        .map(|(n, event)| {
            row(
                sub::AGGREGATE_TYPE,
                id,
                i64::try_from(n).unwrap_or(0) + 1,
                event,
                &actor,
            )
        })
        .collect()
}

/// Seeds the log; returns the number of events.
async fn seed_log(
    client: &mut tokio_postgres::Client,
    cases: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let start = now - chrono::Duration::days(365);
    let span = u64::try_from((now - start).num_seconds()).unwrap_or(0);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rows: Vec<Row> = (0..SUBSCRIPTIONS)
        .flat_map(|i| subscription_events(&mut rng, i, now))
        .collect();
    let mut copied = 0;
    for i in 0..cases {
        rows.extend(case_events(&mut rng, i, cases, start, span));
        if rows.len() >= 50_000 {
            copied += seed::copy(client, std::mem::take(&mut rows)).await?;
        }
    }
    copied += seed::copy(client, rows).await?;
    Ok(copied)
}

async fn issue(target: &subdesk::db::Target, spec: TokenSpec) -> anyhow::Result<String> {
    let pool = target.pool(1)?;
    Ok(subdesk::auth::issue(&pool, &spec).await?.1)
}

fn spec(role: ActorRole, user: &str, org: Option<&str>, partner: Option<&str>) -> TokenSpec {
    TokenSpec {
        role,
        user: user.into(),
        org_id: org.map(str::to_string),
        org_admin: org.is_some(),
        partner_id: partner.map(str::to_string),
        scopes: if partner.is_some() {
            vec!["view_customers".into(), "access_cases".into()]
        } else {
            Vec::new()
        },
        label: Some("bench".into()),
        created_by: "bench".into(),
    }
}

/// p50 and p99 in ms of `requests` sequential calls of `call`, after [`WARM_UP`] more.
async fn time<F, Fut>(requests: usize, mut call: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..WARM_UP {
        call().await?;
    }
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        call().await?;
        times.push(started.elapsed());
    }
    Ok((
        percentile_ms(&mut times, 50.0),
        percentile_ms(&mut times, 99.0),
    ))
}

/// A GET that must succeed; the body is read whole.
async fn get(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    cookie: Option<&str>,
) -> anyhow::Result<()> {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await?;
    let status = response.status();
    response.bytes().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    Ok(())
}

pub async fn reports(
    bench: &Bench,
    options: &Options,
    report: &mut Report,
    label: &str,
) -> anyhow::Result<()> {
    let cases = options.report_cases;
    let requests = options.report_requests;
    let target = bench.database(DB).await?;
    let mut client = bench.connect(DB).await?;
    let now = Utc::now();
    let seeding = Instant::now();
    let events = seed_log(&mut client, cases, now).await?;
    let seeded = seeding.elapsed();
    // Nothing falls due while it is measured: the seeded resolved cases would otherwise be
    // closed in the background, which is not what this scenario times.
    let server = bench
        .server(
            DB,
            &["--close-after", "3650d", "--projection-batch", "5000"],
        )
        .await?;
    let base = server.address.clone();
    let http = reqwest::Client::new();
    let admin = issue(
        &target,
        spec(ActorRole::Admin, "root@support.example", None, None),
    )
    .await?;
    let org_admin = issue(
        &target,
        spec(
            ActorRole::Customer,
            "admin@org-007.example",
            Some("org-007"),
            None,
        ),
    )
    .await?;
    let partner = issue(
        &target,
        spec(ActorRole::Partner, "sales@p-04.example", None, Some("p-04")),
    )
    .await?;
    // A partner reaches only the orgs that granted it a relationship: p-04's customers grant
    // it one, as they would.
    let customers: Vec<String> = (0..ORGS)
        .filter(|n| partner_of(*n).as_deref() == Some("p-04"))
        .map(org)
        .collect();
    for customer in &customers {
        let response = http
            .post(format!("{base}/v1/orgs/{customer}/partners"))
            .bearer_auth(&admin)
            .json(&json!({"partner_id": "p-04", "scopes": ["view_customers", "access_cases"]}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("grant p-04 on {customer}: {}", response.status());
        }
    }
    let caught_up = wait_for_projections(&client, Duration::from_secs(3600)).await?;
    client.batch_execute("VACUUM ANALYZE").await?;
    eprintln!(
        "reports: {events} events seeded in {:.1}s, projections caught up {:.1}s after the start",
        seeded.as_secs_f64(),
        caught_up.as_secs_f64()
    );

    let mut rows: Vec<(String, &str, f64, f64)> = Vec::new();
    // Baselines.
    let healthz = format!("{base}/healthz");
    let (p50, p99) = time(requests, || get(&http, &healthz, None, None)).await?;
    rows.push(("`GET /healthz` (HTTP alone)".into(), "none", p50, p99));
    let some_case = Uuid::from_u64_pair(0x5eed_0000_0000_0000, cases / 2);
    let case_url = format!("{base}/v1/cases/{some_case}");
    let (case_p50, p99) = time(requests, || {
        get(&http, &case_url, Some(admin.as_str()), None)
    })
    .await?;
    rows.push((
        "`GET /v1/cases/{id}` (one primary-key read, through the API)".into(),
        "admin",
        case_p50,
        p99,
    ));
    let statement = client
        .prepare("SELECT * FROM case_view WHERE id = $1")
        .await?;
    let (db, statement) = (&client, &statement);
    let (p50, p99) = time(requests, || async move {
        db.query_one(statement, &[&some_case])
            .await
            .context("the seeded case is in case_view")?;
        Ok(())
    })
    .await?;
    rows.push((
        "`SELECT * FROM case_view WHERE id = $1` (PostgreSQL alone)".into(),
        "bench",
        p50,
        p99,
    ));
    let baselines = rows.len();

    let today = now.date_naive();
    let year = format!("from={}&to={today}", today - chrono::Duration::days(365));
    for (path, caller, token) in [
        ("/v1/reports/cases".to_string(), "admin", &admin),
        ("/v1/reports/sla".to_string(), "admin", &admin),
        ("/v1/reports/subscriptions".to_string(), "admin", &admin),
        (format!("/v1/reports/cases?{year}"), "admin", &admin),
        (format!("/v1/reports/sla?{year}"), "admin", &admin),
        (format!("/v1/reports/subscriptions?{year}"), "admin", &admin),
        ("/v1/reports/sla?format=csv".to_string(), "admin", &admin),
        ("/v1/reports/cases".to_string(), "org admin", &org_admin),
        ("/v1/reports/sla".to_string(), "org admin", &org_admin),
        ("/v1/reports/cases".to_string(), "partner", &partner),
        ("/v1/reports/sla".to_string(), "partner", &partner),
        ("/v1/reports/subscriptions".to_string(), "partner", &partner),
    ] {
        let url = format!("{base}{path}");
        let (p50, p99) = time(requests, || get(&http, &url, Some(token.as_str()), None)).await?;
        rows.push((format!("`GET {path}`"), caller, p50, p99));
    }

    // The dashboard's refresh: the three reports and eight charts drawn on the server.
    let signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .post(format!("{base}/dashboard/sign-in"))
        .form(&[("token", admin.as_str())])
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("a dashboard session cookie")?
        .to_string();
    let panels = format!("{base}/dashboard/panels");
    let (p50, p99) = time(requests / 2, || get(&http, &panels, None, Some(&cookie))).await?;
    rows.push((
        "`GET /dashboard/panels` (3 reports, 8 SVG charts)".into(),
        "admin",
        p50,
        p99,
    ));
    let rss = server.peak_rss_mib();
    server.stop().await?;

    let mut table = String::from(
        "| request | caller | p50 ms | p99 ms | p50 / primary-key read p50 |\n|---|---|---:|---:|---:|\n",
    );
    for (n, (request, caller, p50, p99)) in rows.iter().enumerate() {
        let request = if n < baselines {
            format!("baseline: {request}")
        } else {
            request.clone()
        };
        table.push_str(&format!(
            "| {request} | {caller} | {p50:.1} | **{p99:.1}** | {:.1} |\n",
            p50 / case_p50.max(1e-9)
        ));
    }
    report.section(
        &format!("reports{label}"),
        &format!(
            "{events} events ({cases} cases over the last 365 days across {ORGS} orgs, \
             {SUBSCRIPTIONS} subscriptions; partner p-04 granted by its {} customers) COPYed \
             in {:.1}s; the server's projections caught up {:.1}s after its start. Then, one \
             request at a time over loopback HTTP, {requests} requests per line after \
             {WARM_UP} warm-ups ({} for the dashboard). Default period: the last 30 days.\n\n\
             {table}\nServer peak RSS: {rss:.0} MiB",
            customers.len(),
            seeded.as_secs_f64(),
            caught_up.as_secs_f64(),
            requests / 2,
        ),
    );
    report.rss(&format!("reports{label}"), rss);
    Ok(())
}
