//! The report API (`/v1/reports/...`): after a seeded workload every number matches a count
//! taken straight from the `events` table with SQL (never a hard-coded number alone), the
//! reports are cut to what the caller sees, CSV tables, and no drift against a rebuild.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use subdesk::app::Settings;
use subdesk::command::CommandMeta;
use subdesk_aggregates::subscription::SubscriptionCommand;
use subdesk_aggregates::support_case::{AutoResolve, SupportCaseCommand};
use subdesk_aggregates::{Actor, ManualClock};
use subdesk_projections::reports::ReportProjection;

use crate::helpers::{expect_json, spawn_app_with, As, TestApp};

pub const FROM: &str = "2026-03-01";
pub const TO: &str = "2026-03-31";
pub const PERIOD: &str = "from=2026-03-01&to=2026-03-31";

pub const ROOT: As = As::admin();
pub const SAM: As = As::agent();
pub const ANN: As = As::customer("ann@acme.test", "acme");
pub const ADA: As = As::org_admin("ada@acme.test", "acme");
pub const GUS: As = As::org_admin("gus@globex.test", "globex");
pub const PAT: As = As::partner(
    "pat@cloudwise.test",
    "p-cloudwise",
    &["view_customers", "access_cases"],
);
pub const OLI: As = As::partner(
    "oli@other.test",
    "p-other",
    &["view_customers", "access_cases"],
);

/// Monday 2 March 2026, 09:00 UTC: where the workload's clock starts.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid instant")
}

/// A server whose clock the test moves, with the workload below applied.
pub struct Workload {
    pub app: TestApp,
    pub clock: Arc<ManualClock>,
    /// The entitlement of acme's Jira subscription, to open more cases under.
    pub acme_entitlement: String,
}

async fn post_ok(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let response = app.post(path, token, &body).await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(
        status == StatusCode::OK || status == StatusCode::CREATED,
        "POST {path}: {status} {text}"
    );
    serde_json::from_str(&text).expect("receipt")
}

fn id(receipt: &Value) -> String {
    receipt["id"].as_str().expect("id").to_string()
}

async fn open(app: &TestApp, token: &str, body: Value) -> String {
    id(&app.open_case(token, body).await)
}

/// A case opened under `entitlement` (one of the workload's subscriptions); the most urgent
/// ones are about the account, the least urgent about billing, the rest technical (the
/// default, left out).
fn case(entitlement: &str, product: &str, impact: u8, summary: &str) -> Value {
    let mut body = json!({"entitlement_number": entitlement, "product": product, "impact": impact,
           "summary": summary, "description": "Seeded by the report tests."});
    match impact {
        1 => body["request_type"] = json!("account"),
        4 => body["request_type"] = json!("billing"),
        _ => {}
    }
    body
}

/// Creates a subscription; returns its id and entitlement number.
async fn subscribe(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let receipt = app.create_subscription(token, body).await;
    let entitlement = receipt["entitlement_number"]
        .as_str()
        .expect("entitlement number")
        .to_string();
    (id(&receipt), entitlement)
}

fn subscription(
    org: &str,
    product: &str,
    plan: &str,
    seats: u32,
    days: i64,
    auto_renew: bool,
    partner: Option<&str>,
) -> Value {
    let channel = match partner {
        Some(p) => json!({"kind": "partner", "partner_id": p}),
        None => json!({"kind": "direct"}),
    };
    json!({"org_id": org, "product": product, "plan": plan, "seats": seats,
           "term_end": t0() + Duration::days(days), "auto_renew": auto_renew,
           "channel": channel})
}

async fn system_case(app: &TestApp, id: &str, command: SupportCaseCommand) {
    app.state
        .cases
        .execute(id, command, &CommandMeta::system("report-test"), None)
        .await
        .expect("timed case command");
}

async fn system_subscription(app: &TestApp, id: &str, command: SubscriptionCommand) {
    app.state
        .subscriptions
        .execute(id, command, &CommandMeta::system("report-test"), None)
        .await
        .expect("timed subscription command");
}

/// Waits until `projection` has applied every event written so far.
pub async fn settle(app: &TestApp, projection: &str) {
    let newest = app.newest_position().await;
    app.wait_for_projection(projection, newest).await;
}

/// Seeds a fortnight of support and sales through the API (and the timed commands as the
/// scheduler will issue them: as the system, with the clock's now), from [`t0`] to t0 + 12
/// days. Cases of acme, globex and initech at every priority: answered in and out of target,
/// never answered, resolved by support and by the customer, reopened and resolved again,
/// waiting for the customer, auto-resolved twice. Subscriptions direct and through two
/// partners: seats added, one renewed twice, one cancelled now, one at its term end.
pub async fn seed_workload() -> Workload {
    let clock = Arc::new(ManualClock::new(t0()));
    // The timed commands are issued below as the scheduler would, at their due times; the
    // scheduler's own loop would race them.
    let mut settings = Settings::default();
    settings.scheduler.enabled = false;
    let app = spawn_app_with(settings, clock.clone()).await;
    // The partners sell only to the orgs that granted them a relationship.
    app.grant_partner("acme", "p-cloudwise", &["view_customers", "access_cases"])
        .await;
    app.grant_partner("initech", "p-other", &["view_customers", "access_cases"])
        .await;
    let at = |offset: Duration| clock.set(t0() + offset);
    let (root, sam, ann, ada, gus, pat, oli) = (
        app.token(ROOT).await,
        app.token(SAM).await,
        app.token(ANN).await,
        app.token(ADA).await,
        app.token(GUS).await,
        app.token(PAT).await,
        app.token(OLI).await,
    );
    let _ = root;
    let c = |id: &str, tail: &str| format!("/v1/cases/{id}{tail}");
    let s = |id: &str, tail: &str| format!("/v1/subscriptions/{id}{tail}");

    // Day 0: sales.
    let (acme_jira, acme_jira_e) = subscribe(
        &app,
        &pat,
        subscription(
            "acme",
            "jira-software",
            "standard",
            25,
            20,
            true,
            Some("p-cloudwise"),
        ),
    )
    .await;
    let (_, acme_confluence_e) = subscribe(
        &app,
        &pat,
        subscription(
            "acme",
            "confluence",
            "premium",
            10,
            365,
            true,
            Some("p-cloudwise"),
        ),
    )
    .await;
    let (acme_statuspage, _) = subscribe(
        &app,
        &pat,
        subscription(
            "acme",
            "statuspage",
            "standard",
            2,
            5,
            true,
            Some("p-cloudwise"),
        ),
    )
    .await;
    let (_, globex_jira_e) = subscribe(
        &app,
        &gus,
        subscription("globex", "jira-software", "standard", 5, 60, false, None),
    )
    .await;
    let (globex_loom, globex_loom_e) = subscribe(
        &app,
        &gus,
        subscription("globex", "loom", "standard", 3, 10, true, None),
    )
    .await;
    post_ok(
        &app,
        &gus,
        &s(&globex_loom, "/cancel"),
        json!({"effective": "at_term_end", "reason": "moving to another tool"}),
    )
    .await;
    let (_, initech_jira_e) = subscribe(
        &app,
        &oli,
        subscription(
            "initech",
            "jira-software",
            "premium",
            50,
            15,
            true,
            Some("p-other"),
        ),
    )
    .await;
    let (acme_bitbucket, _) = subscribe(
        &app,
        &ada,
        subscription("acme", "bitbucket", "standard", 7, 90, true, None),
    )
    .await;
    post_ok(&app, &pat, &s(&acme_jira, "/seats"), json!({"seats": 30})).await;
    // Partners reach their customers' cases through the contract the subscriptions keep.
    settle(&app, "subscriptions").await;

    // Day 0: cases.
    let c1 = open(
        &app,
        &ann,
        case(&acme_jira_e, "jira-software", 1, "Production is down"),
    )
    .await;
    let c2 = open(
        &app,
        &ada,
        case(&acme_jira_e, "jira-software", 2, "Board is slow"),
    )
    .await;
    let c3 = open(
        &app,
        &gus,
        case(&globex_jira_e, "jira-software", 2, "Login loops"),
    )
    .await;
    let mut initech = case(&initech_jira_e, "jira-software", 3, "Import fails");
    initech["org_id"] = json!("initech");
    let c4 = open(&app, &sam, initech).await;
    let comment = json!({"body": "Looking into it."});
    let question = json!({"body": "Could you send the logs?"});
    at(Duration::minutes(10));
    post_ok(&app, &sam, &c(&c3, "/priority"), json!({"priority": 1})).await;
    at(Duration::minutes(30));
    post_ok(&app, &sam, &c(&c1, "/comments"), comment.clone()).await;
    at(Duration::minutes(50));
    post_ok(&app, &sam, &c(&c3, "/comments"), comment.clone()).await;
    at(Duration::hours(2));
    post_ok(&app, &sam, &c(&c4, "/comments"), comment.clone()).await;
    at(Duration::hours(3));
    post_ok(&app, &sam, &c(&c4, "/request-info"), question.clone()).await;
    at(Duration::hours(5));
    post_ok(&app, &sam, &c(&c2, "/request-info"), question.clone()).await;

    // Day 1.
    at(Duration::days(1));
    let c5 = open(
        &app,
        &ada,
        case(&acme_confluence_e, "confluence", 3, "Page history missing"),
    )
    .await;
    let c6 = open(
        &app,
        &gus,
        case(&globex_loom_e, "loom", 4, "Video upload stalls"),
    )
    .await;
    let c7 = open(
        &app,
        &ann,
        case(&acme_jira_e, "jira-software", 4, "Typo in e-mail template"),
    )
    .await;
    post_ok(
        &app,
        &ada,
        &s(&acme_bitbucket, "/cancel"),
        json!({"effective": "immediately", "reason": "consolidating tools"}),
    )
    .await;
    post_ok(
        &app,
        &oli,
        &c(&c4, "/comments"),
        json!({"body": "Logs attached."}),
    )
    .await;
    at(Duration::days(1) + Duration::hours(1));
    post_ok(&app, &sam, &c(&c1, "/resolve"), json!({})).await;
    at(Duration::days(1) + Duration::hours(2));
    post_ok(&app, &gus, &c(&c6, "/resolve"), json!({})).await;
    at(Duration::days(1) + Duration::hours(3));
    post_ok(&app, &sam, &c(&c7, "/comments"), comment.clone()).await;
    post_ok(&app, &sam, &c(&c7, "/resolve"), json!({})).await;

    // Day 2: a reopening, and a question that will go unanswered.
    at(Duration::days(2));
    post_ok(
        &app,
        &ann,
        &c(&c7, "/comments"),
        json!({"body": "Still wrong."}),
    )
    .await;
    let c8 = open(
        &app,
        &ada,
        case(&acme_confluence_e, "confluence", 2, "Space export fails"),
    )
    .await;
    at(Duration::days(2) + Duration::hours(1));
    post_ok(&app, &sam, &c(&c8, "/request-info"), question.clone()).await;

    // Day 3.
    at(Duration::days(3));
    post_ok(&app, &sam, &c(&c7, "/resolve"), json!({})).await;
    post_ok(&app, &sam, &c(&c3, "/investigate"), json!({})).await;
    let c9 = open(
        &app,
        &gus,
        case(
            &globex_jira_e,
            "jira-software",
            1,
            "Data loss after upgrade",
        ),
    )
    .await;

    // Timed commands, at their due times.
    let auto = || {
        SupportCaseCommand::AutoResolve(AutoResolve {
            by: Actor::system(),
        })
    };
    at(Duration::days(5));
    system_subscription(&app, &acme_statuspage, SubscriptionCommand::Renew).await;
    at(Duration::days(5) + Duration::hours(5));
    system_case(&app, &c2, auto()).await;
    at(Duration::days(7) + Duration::hours(1));
    system_case(&app, &c8, auto()).await;
    at(Duration::days(10));
    system_subscription(&app, &globex_loom, SubscriptionCommand::Expire).await;
    system_subscription(&app, &acme_statuspage, SubscriptionCommand::Renew).await;

    // Day 11: one case left waiting for the customer.
    at(Duration::days(11));
    let c10 = open(
        &app,
        &ada,
        case(&acme_jira_e, "jira-software", 2, "Webhook retries"),
    )
    .await;
    at(Duration::days(11) + Duration::hours(1));
    post_ok(&app, &sam, &c(&c10, "/request-info"), question.clone()).await;

    at(Duration::days(12));
    let _ = (c5, c9);
    settle(&app, "reports").await;
    Workload {
        app,
        clock,
        acme_entitlement: acme_jira_e,
    }
}

// --- expected numbers, straight from the events -------------------------------------------------

/// The case streams, with each case's org, product, opening time, current status and
/// priority and due time, first response, latest resolution (if not reopened since) and
/// closing, all folded by SQL from the log. `$1` is the orgs to keep (NULL: all).
const CASES_FROM_EVENTS: &str = "
WITH c AS (
    SELECT aggregate_id, sequence, event_type, payload FROM events WHERE aggregate_type = 'SupportCase'
), opened AS (
    SELECT aggregate_id, payload->>'org_id' AS org_id, payload->>'product' AS product,
           (payload->>'opened_at')::timestamptz AS opened_at
      FROM c WHERE event_type = 'CaseOpened'
), status AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id,
           CASE event_type WHEN 'CaseOpened' THEN 'open'
                           WHEN 'CustomerInfoRequested' THEN 'waiting_for_customer'
                           WHEN 'CaseResolved' THEN 'resolved'
                           WHEN 'CaseAutoResolved' THEN 'resolved'
                           WHEN 'CaseClosed' THEN 'closed'
                           ELSE 'investigating' END AS status
      FROM c WHERE event_type IN ('CaseOpened', 'InvestigationStarted', 'CustomerInfoRequested',
                                  'CustomerResponded', 'CaseReopened', 'CaseResolved',
                                  'CaseAutoResolved', 'CaseClosed')
     ORDER BY aggregate_id, sequence DESC
), priority AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id,
           coalesce(payload->>'to', payload->>'priority')::int AS priority,
           (payload->>'first_response_due')::timestamptz AS due
      FROM c WHERE event_type IN ('CaseOpened', 'PriorityChanged')
     ORDER BY aggregate_id, sequence DESC
), first_response AS (
    SELECT aggregate_id, (payload->>'at')::timestamptz AS at, (payload->>'breached')::boolean AS breached
      FROM c WHERE event_type = 'FirstResponseGiven'
), resolution AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id, event_type, (payload->>'at')::timestamptz AS at
      FROM c WHERE event_type IN ('CaseResolved', 'CaseAutoResolved', 'CaseReopened')
     ORDER BY aggregate_id, sequence DESC
), closing AS (
    SELECT aggregate_id, (payload->>'at')::timestamptz AS at FROM c WHERE event_type = 'CaseClosed'
), clock AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id,
           (payload->'resolution'->>'target_seconds')::bigint AS clock_target,
           (payload->'resolution'->>'elapsed_seconds')::bigint AS clock_elapsed
      FROM c WHERE jsonb_typeof(payload->'resolution') = 'object'
     ORDER BY aggregate_id, sequence DESC
), next_reply AS (
    -- Each next-reply clock with how it ended: support's next public reply, or the resolution.
    SELECT s.aggregate_id, (s.payload->'next_reply'->>'due')::timestamptz AS due,
           e.event_type AS ended_by, (e.payload->>'at')::timestamptz AS ended_at
      FROM c s LEFT JOIN LATERAL (
           SELECT event_type, payload FROM c e
            WHERE e.aggregate_id = s.aggregate_id AND e.sequence > s.sequence
              AND ((e.event_type = 'CommentAdded' AND e.payload->>'visibility' = 'public'
                    AND e.payload->'author'->>'role' IN ('agent', 'admin'))
                   OR e.event_type IN ('CaseResolved', 'CaseAutoResolved'))
            ORDER BY e.sequence LIMIT 1) e ON true
     WHERE s.event_type = 'CommentAdded' AND jsonb_typeof(s.payload->'next_reply') = 'object'
), next_replies AS (
    SELECT aggregate_id,
           count(*) FILTER (WHERE ended_by = 'CommentAdded' AND ended_at <= due) AS next_met,
           count(*) FILTER (WHERE ended_at > due) AS next_breached,
           max(due) FILTER (WHERE ended_at IS NULL) AS next_running_due
      FROM next_reply GROUP BY aggregate_id
), cases AS (
    SELECT o.aggregate_id, o.org_id, o.product, o.opened_at, s.status, p.priority, p.due,
           f.at AS responded_at, f.breached,
           CASE WHEN r.event_type <> 'CaseReopened' THEN r.at END AS resolved_at,
           cl.at AS closed_at, k.clock_target, k.clock_elapsed,
           coalesce(n.next_met, 0) AS next_met, coalesce(n.next_breached, 0) AS next_breached,
           n.next_running_due
      FROM opened o JOIN status s USING (aggregate_id) JOIN priority p USING (aggregate_id)
      LEFT JOIN first_response f USING (aggregate_id) LEFT JOIN resolution r USING (aggregate_id)
      LEFT JOIN closing cl USING (aggregate_id) LEFT JOIN clock k USING (aggregate_id)
      LEFT JOIN next_replies n USING (aggregate_id)
     WHERE $1::text[] IS NULL OR o.org_id = ANY($1)
)";

/// Open cases by (status, priority), of `orgs` (None: all).
pub async fn expected_open(
    app: &TestApp,
    orgs: Option<Vec<String>>,
) -> BTreeMap<(String, i64), i64> {
    let sql = format!(
        "{CASES_FROM_EVENTS} SELECT status, priority::bigint, count(*) FROM cases \
          WHERE status IN ('open', 'investigating', 'waiting_for_customer') GROUP BY 1, 2"
    );
    app.db()
        .await
        .query(&sql, &[&orgs])
        .await
        .expect("open cases from events")
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

/// Per day of the period: opened, resolutions, automatic resolutions.
async fn expected_days(app: &TestApp, orgs: Option<Vec<String>>) -> BTreeMap<String, [i64; 3]> {
    let sql = "
        WITH opened AS (
            SELECT aggregate_id, payload->>'org_id' AS org_id FROM events
             WHERE aggregate_type = 'SupportCase' AND event_type = 'CaseOpened'
        ), dated AS (
            SELECT e.event_type,
                   ((coalesce(e.payload->>'opened_at', e.payload->>'at'))::timestamptz
                        AT TIME ZONE 'UTC')::date AS day
              FROM events e JOIN opened o USING (aggregate_id)
             WHERE e.aggregate_type = 'SupportCase'
               AND e.event_type IN ('CaseOpened', 'CaseResolved', 'CaseAutoResolved')
               AND ($1::text[] IS NULL OR o.org_id = ANY($1))
        )
        SELECT day::text, count(*) FILTER (WHERE event_type = 'CaseOpened'),
               count(*) FILTER (WHERE event_type <> 'CaseOpened'),
               count(*) FILTER (WHERE event_type = 'CaseAutoResolved')
          FROM dated WHERE day BETWEEN $2::text::date AND $3::text::date GROUP BY day";
    app.db()
        .await
        .query(sql, &[&orgs, &FROM, &TO])
        .await
        .expect("case days from events")
        .iter()
        .map(|r| (r.get(0), [r.get(1), r.get(2), r.get(3)]))
        .collect()
}

async fn expected_products(app: &TestApp, orgs: Option<Vec<String>>) -> BTreeMap<String, [i64; 3]> {
    let sql = "
        WITH opened AS (
            SELECT aggregate_id, payload->>'org_id' AS org_id, payload->>'product' AS product
              FROM events WHERE aggregate_type = 'SupportCase' AND event_type = 'CaseOpened'
        )
        SELECT o.product, count(*) FILTER (WHERE e.event_type = 'CaseOpened'),
               count(*) FILTER (WHERE e.event_type <> 'CaseOpened'),
               count(*) FILTER (WHERE e.event_type = 'CaseAutoResolved')
          FROM events e JOIN opened o USING (aggregate_id)
         WHERE e.aggregate_type = 'SupportCase'
           AND e.event_type IN ('CaseOpened', 'CaseResolved', 'CaseAutoResolved')
           AND ($1::text[] IS NULL OR o.org_id = ANY($1))
           AND ((coalesce(e.payload->>'opened_at', e.payload->>'at'))::timestamptz AT TIME ZONE 'UTC')::date
               BETWEEN $2::text::date AND $3::text::date
         GROUP BY o.product";
    app.db()
        .await
        .query(sql, &[&orgs, &FROM, &TO])
        .await
        .expect("products from events")
        .iter()
        .map(|r| (r.get(0), [r.get(1), r.get(2), r.get(3)]))
        .collect()
}

/// Cases opened in the period per request type, every type listed, straight from the log.
async fn expected_request_types(app: &TestApp, orgs: Option<Vec<String>>) -> BTreeMap<String, i64> {
    let sql = "
        SELECT coalesce(payload->>'request_type', 'technical'), count(*)
          FROM events
         WHERE aggregate_type = 'SupportCase' AND event_type = 'CaseOpened'
           AND ($1::text[] IS NULL OR payload->>'org_id' = ANY($1))
           AND (((payload->>'opened_at')::timestamptz AT TIME ZONE 'UTC')::date
               BETWEEN $2::text::date AND $3::text::date)
         GROUP BY 1";
    let mut expected: BTreeMap<String, i64> = ["technical", "billing", "account"]
        .iter()
        .map(|t| (t.to_string(), 0))
        .collect();
    for row in app
        .db()
        .await
        .query(sql, &[&orgs, &FROM, &TO])
        .await
        .expect("request types from events")
    {
        expected.insert(row.get(0), row.get(1));
    }
    expected
}

/// The SLA row of each priority ("all" for the total) as the report words it.
async fn expected_sla(
    app: &TestApp,
    orgs: Option<Vec<String>>,
    now: DateTime<Utc>,
) -> BTreeMap<String, Value> {
    let sql = format!(
        "{CASES_FROM_EVENTS}, period AS (
            SELECT $2::text::date::timestamp AT TIME ZONE 'UTC' AS start,
                   ($3::text::date + 1)::timestamp AT TIME ZONE 'UTC' AS stop
        ), responses AS (
            SELECT priority, count(*) AS opened, count(responded_at) AS responded,
                   count(*) FILTER (WHERE breached = false) AS met,
                   count(*) FILTER (WHERE breached OR (responded_at IS NULL
                        AND coalesce(resolved_at, closed_at, $4) > due)) AS breached,
                   count(*) FILTER (WHERE responded_at IS NULL AND resolved_at IS NULL
                        AND closed_at IS NULL AND due >= $4) AS awaiting,
                   percentile_cont(0.5) WITHIN GROUP
                        (ORDER BY extract(epoch FROM responded_at - opened_at)) AS median,
                   sum(next_met)::bigint AS next_met,
                   (sum(next_breached) + count(*) FILTER (WHERE next_running_due < $4))::bigint
                       AS next_breached
              FROM cases, period WHERE opened_at >= start AND opened_at < stop
             GROUP BY ROLLUP (priority)
        ), resolutions AS (
            SELECT priority, count(*) AS resolved,
                   percentile_cont(0.5) WITHIN GROUP
                        (ORDER BY extract(epoch FROM resolved_at - opened_at)) AS median,
                   count(*) FILTER (WHERE clock_elapsed <= clock_target) AS clock_met,
                   count(*) FILTER (WHERE clock_elapsed > clock_target) AS clock_breached,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY clock_elapsed) AS clock_median
              FROM cases, period WHERE resolved_at >= start AND resolved_at < stop
             GROUP BY ROLLUP (priority)
        )
        SELECT coalesce(p.priority::text, 'all'), coalesce(s.opened, 0), coalesce(s.responded, 0),
               coalesce(s.met, 0), coalesce(s.breached, 0), coalesce(s.awaiting, 0), s.median,
               coalesce(r.resolved, 0), r.median, coalesce(s.next_met, 0),
               coalesce(s.next_breached, 0), coalesce(r.clock_met, 0),
               coalesce(r.clock_breached, 0), r.clock_median
          FROM (SELECT generate_series(1, 4) AS priority UNION ALL SELECT NULL) p
          LEFT JOIN responses s ON s.priority IS NOT DISTINCT FROM p.priority
          LEFT JOIN resolutions r ON r.priority IS NOT DISTINCT FROM p.priority"
    );
    app.db()
        .await
        .query(&sql, &[&orgs, &FROM, &TO, &now])
        .await
        .expect("sla from events")
        .iter()
        .map(|r| {
            let share = |met: i64, breached: i64| {
                (met + breached > 0).then(|| met as f64 / (met + breached) as f64)
            };
            let (met, breached): (i64, i64) = (r.get(3), r.get(4));
            let (next_met, next_breached): (i64, i64) = (r.get(9), r.get(10));
            let (clock_met, clock_breached): (i64, i64) = (r.get(11), r.get(12));
            (
                r.get(0),
                json!({
                    "opened": r.get::<_, i64>(1), "responded": r.get::<_, i64>(2),
                    "met": met, "breached": breached, "awaiting_response": r.get::<_, i64>(5),
                    "attainment": share(met, breached),
                    "median_first_response_seconds": r.get::<_, Option<f64>>(6),
                    "resolved": r.get::<_, i64>(7),
                    "median_resolution_seconds": r.get::<_, Option<f64>>(8),
                    "next_replies_met": next_met, "next_replies_breached": next_breached,
                    "next_reply_attainment": share(next_met, next_breached),
                    "resolutions_met": clock_met, "resolutions_breached": clock_breached,
                    "resolution_attainment": share(clock_met, clock_breached),
                    "median_resolution_business_seconds": r.get::<_, Option<f64>>(13),
                }),
            )
        })
        .collect()
}

/// Each subscription's org, selling partner, product, and its current status, plan, seats,
/// bill date and auto-renew, folded by SQL from the log. `$1`: orgs (NULL: all); `$2`: the
/// selling partner (NULL: any).
const SUBSCRIPTIONS_FROM_EVENTS: &str = "
WITH s AS (
    SELECT aggregate_id, sequence, event_type, payload FROM events WHERE aggregate_type = 'Subscription'
), created AS (
    SELECT aggregate_id, payload->>'org_id' AS org_id,
           payload->'channel'->>'partner_id' AS partner_id, payload->>'product' AS product
      FROM s WHERE event_type = 'SubscriptionCreated'
), status AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id,
           CASE event_type WHEN 'SubscriptionCreated' THEN 'upcoming'
                           WHEN 'CancellationScheduled' THEN 'non_renewing'
                           WHEN 'SubscriptionCancelled' THEN 'cancelled'
                           WHEN 'SubscriptionExpired' THEN 'expired'
                           ELSE 'active' END AS status
      FROM s WHERE event_type IN ('SubscriptionCreated', 'SubscriptionActivated',
                                  'CancellationScheduled', 'CancellationWithdrawn',
                                  'SubscriptionCancelled', 'SubscriptionExpired',
                                  'SubscriptionReactivated')
     ORDER BY aggregate_id, sequence DESC
), plan AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id, coalesce(payload->>'to', payload->>'plan') AS plan
      FROM s WHERE event_type IN ('SubscriptionCreated', 'PlanChanged')
     ORDER BY aggregate_id, sequence DESC
), seats AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id, coalesce(payload->>'to', payload->>'seats')::bigint AS seats
      FROM s WHERE event_type IN ('SubscriptionCreated', 'SeatsIncreased', 'SubscriptionRenewed')
     ORDER BY aggregate_id, sequence DESC
), term AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id, (payload->>'term_end')::timestamptz AS term_end
      FROM s WHERE event_type IN ('SubscriptionCreated', 'SubscriptionRenewed', 'SubscriptionReactivated')
     ORDER BY aggregate_id, sequence DESC
), renew AS (
    SELECT DISTINCT ON (aggregate_id) aggregate_id, (payload->>'auto_renew')::boolean AS auto_renew
      FROM s WHERE event_type IN ('SubscriptionCreated', 'AutoRenewChanged')
     ORDER BY aggregate_id, sequence DESC
), subscriptions AS (
    SELECT * FROM created JOIN status USING (aggregate_id) JOIN plan USING (aggregate_id)
      JOIN seats USING (aggregate_id) JOIN term USING (aggregate_id) JOIN renew USING (aggregate_id)
     WHERE ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2)
)";

async fn expected_active(
    app: &TestApp,
    orgs: Option<Vec<String>>,
    partner: Option<&str>,
) -> BTreeMap<(String, String, Option<String>), [i64; 2]> {
    let sql = format!(
        "{SUBSCRIPTIONS_FROM_EVENTS} SELECT product, plan, partner_id, count(*), sum(seats)::bigint \
           FROM subscriptions WHERE status IN ('active', 'non_renewing') GROUP BY 1, 2, 3"
    );
    app.db()
        .await
        .query(&sql, &[&orgs, &partner])
        .await
        .expect("active subscriptions from events")
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), [r.get(3), r.get(4)]))
        .collect()
}

async fn expected_renewals(
    app: &TestApp,
    orgs: Option<Vec<String>>,
    partner: Option<&str>,
    now: DateTime<Utc>,
) -> [i64; 3] {
    let sql = format!(
        "{SUBSCRIPTIONS_FROM_EVENTS} SELECT count(*), coalesce(sum(seats), 0)::bigint, \
                count(*) FILTER (WHERE auto_renew) \
           FROM subscriptions WHERE status = 'active' \
            AND term_end >= $3 AND term_end < $3 + interval '30 days'"
    );
    let row = app
        .db()
        .await
        .query_one(&sql, &[&orgs, &partner, &now])
        .await
        .expect("renewals from events");
    [row.get(0), row.get(1), row.get(2)]
}

/// Cancellations that took effect per month, with the seats the subscription had then.
async fn expected_cancellations(
    app: &TestApp,
    orgs: Option<Vec<String>>,
    partner: Option<&str>,
) -> BTreeMap<String, [i64; 2]> {
    let sql = "
        SELECT to_char((c.payload->>'effective_at')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM'),
               count(*),
               sum((SELECT coalesce(s.payload->>'to', s.payload->>'seats')::bigint FROM events s
                     WHERE s.aggregate_type = 'Subscription' AND s.aggregate_id = c.aggregate_id
                       AND s.sequence < c.sequence
                       AND s.event_type IN ('SubscriptionCreated', 'SeatsIncreased', 'SubscriptionRenewed')
                     ORDER BY s.sequence DESC LIMIT 1))::bigint
          FROM events c
          JOIN events o ON o.aggregate_type = 'Subscription' AND o.aggregate_id = c.aggregate_id
                       AND o.event_type = 'SubscriptionCreated'
         WHERE c.aggregate_type = 'Subscription' AND c.event_type = 'SubscriptionCancelled'
           AND ($1::text[] IS NULL OR o.payload->>'org_id' = ANY($1))
           AND ($2::text IS NULL OR o.payload->'channel'->>'partner_id' = $2)
           AND ((c.payload->>'effective_at')::timestamptz AT TIME ZONE 'UTC')::date
               BETWEEN $3::text::date AND $4::text::date
         GROUP BY 1";
    app.db()
        .await
        .query(sql, &[&orgs, &partner, &FROM, &TO])
        .await
        .expect("cancellations from events")
        .iter()
        .map(|r| (r.get(0), [r.get(1), r.get(2)]))
        .collect()
}

// --- the reports as the API answers them ----------------------------------------------------

pub async fn report(app: &TestApp, token: &str, path: &str) -> Value {
    expect_json(app.get(path, token).await, StatusCode::OK).await
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_string()
}

fn items(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
}

/// The non-zero cells of a case report's open cases.
fn open_of(report: &Value) -> BTreeMap<(String, i64), i64> {
    items(&report["open"]["cells"])
        .iter()
        .filter(|c| int(&c["cases"]) > 0)
        .map(|c| ((text(&c["status"]), int(&c["priority"])), int(&c["cases"])))
        .collect()
}

/// The days of a case report with any activity.
fn days_of(report: &Value) -> BTreeMap<String, [i64; 3]> {
    items(&report["per_day"])
        .iter()
        .map(|d| {
            (
                text(&d["day"]),
                [
                    int(&d["opened"]),
                    int(&d["resolved"]),
                    int(&d["auto_resolved"]),
                ],
            )
        })
        .filter(|(_, counts)| counts.iter().any(|n| *n > 0))
        .collect()
}

fn request_types_of(report: &Value) -> BTreeMap<String, i64> {
    items(&report["by_request_type"])
        .iter()
        .map(|t| (text(&t["request_type"]), int(&t["opened"])))
        .collect()
}

fn products_of(report: &Value) -> BTreeMap<String, [i64; 3]> {
    items(&report["by_product"])
        .iter()
        .map(|p| {
            (
                text(&p["product"]),
                [
                    int(&p["opened"]),
                    int(&p["resolved"]),
                    int(&p["auto_resolved"]),
                ],
            )
        })
        .collect()
}

fn sla_of(report: &Value) -> BTreeMap<String, Value> {
    items(&report["priorities"])
        .iter()
        .chain([&report["overall"]])
        .map(|row| {
            let key = row["priority"]
                .as_i64()
                .map_or_else(|| "all".to_string(), |p| p.to_string());
            let mut row = row.clone();
            let fields = row.as_object_mut().expect("row");
            fields.remove("priority");
            fields.remove("target_seconds");
            fields.remove("resolution_target_days");
            (key, row)
        })
        .collect()
}

fn active_of(report: &Value) -> BTreeMap<(String, String, Option<String>), [i64; 2]> {
    items(&report["active"]["rows"])
        .iter()
        .map(|r| {
            (
                (
                    text(&r["product"]),
                    text(&r["plan"]),
                    r["partner_id"].as_str().map(str::to_string),
                ),
                [int(&r["subscriptions"]), int(&r["seats"])],
            )
        })
        .collect()
}

fn cancellations_of(report: &Value) -> BTreeMap<String, [i64; 2]> {
    items(&report["cancellations_per_month"])
        .iter()
        .filter(|m| int(&m["cancellations"]) > 0)
        .map(|m| {
            (
                text(&m["month"]),
                [int(&m["cancellations"]), int(&m["seats"])],
            )
        })
        .collect()
}

fn generated_at(report: &Value) -> DateTime<Utc> {
    text(&report["generated_at"]).parse().expect("generated_at")
}

/// Asserts that the three reports `token` gets with `query` match the events, for the cases
/// of `orgs` and the subscriptions of `sub_orgs` sold through `partner`.
async fn assert_reports_match_events(
    app: &TestApp,
    token: &str,
    query: &str,
    orgs: Option<Vec<String>>,
    sub_orgs: Option<Vec<String>>,
    partner: Option<&str>,
) {
    let cases = report(app, token, &format!("/v1/reports/cases?{PERIOD}{query}")).await;
    assert_eq!(
        open_of(&cases),
        expected_open(app, orgs.clone()).await,
        "open cases"
    );
    assert_eq!(
        days_of(&cases),
        expected_days(app, orgs.clone()).await,
        "per day"
    );
    assert_eq!(
        products_of(&cases),
        expected_products(app, orgs.clone()).await,
        "per product"
    );
    let request_types = expected_request_types(app, orgs.clone()).await;
    assert_eq!(request_types_of(&cases), request_types, "per request type");
    let total: i64 = open_of(&cases).values().sum();
    assert_eq!(int(&cases["open"]["total"]), total);

    let sla = report(app, token, &format!("/v1/reports/sla?{PERIOD}{query}")).await;
    assert_eq!(
        sla_of(&sla),
        expected_sla(app, orgs.clone(), generated_at(&sla)).await,
        "sla"
    );

    let subs = report(
        app,
        token,
        &format!("/v1/reports/subscriptions?{PERIOD}{query}"),
    )
    .await;
    let active = expected_active(app, sub_orgs.clone(), partner).await;
    assert_eq!(active_of(&subs), active, "subscriptions in force");
    assert_eq!(
        int(&subs["active"]["seats"]),
        active.values().map(|[_, seats]| seats).sum::<i64>()
    );
    let renewals = &subs["renewals_due"];
    assert_eq!(
        [
            int(&renewals["subscriptions"]),
            int(&renewals["seats"]),
            int(&renewals["auto_renew"])
        ],
        expected_renewals(app, sub_orgs.clone(), partner, generated_at(&subs)).await,
        "renewals due"
    );
    assert_eq!(
        items(&renewals["items"]).len() as i64,
        int(&renewals["subscriptions"])
    );
    assert_eq!(
        cancellations_of(&subs),
        expected_cancellations(app, sub_orgs, partner).await,
        "cancellations per month"
    );
}

fn orgs(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|o| o.to_string()).collect())
}

#[tokio::test]
async fn every_report_number_matches_a_count_over_the_events() {
    let Workload { app, .. } = seed_workload().await;
    let root = app.token(ROOT).await;
    assert_reports_match_events(&app, &root, "", None, None, None).await;

    // The workload did what it says, so the comparison above compares something.
    let cases = report(&app, &root, &format!("/v1/reports/cases?{PERIOD}")).await;
    assert_eq!(
        cases["totals"],
        json!({"opened": 10, "resolved": 6, "auto_resolved": 2})
    );
    assert_eq!(int(&cases["open"]["total"]), 5);
    assert_eq!(items(&cases["per_day"]).len(), 31);
    let types = request_types_of(&cases);
    assert!(
        types.values().filter(|n| **n > 0).count() == 3,
        "every request type was opened: {types:?}"
    );
    let sla = report(&app, &root, &format!("/v1/reports/sla?{PERIOD}")).await;
    assert_eq!(sla["overall"]["met"], 6);
    assert_eq!(sla["overall"]["breached"], 3);
    assert_eq!(sla["priorities"][0]["target_seconds"], 3600);
    let subs = report(&app, &root, &format!("/v1/reports/subscriptions?{PERIOD}")).await;
    assert_eq!(subs["renewals_due"]["subscriptions"], 3);
    assert_eq!(
        cancellations_of(&subs),
        BTreeMap::from([("2026-03".to_string(), [2, 10])])
    );

    // Filters narrow the staff's view the same way.
    assert_reports_match_events(
        &app,
        &root,
        "&org_id=globex",
        orgs(&["globex"]),
        orgs(&["globex"]),
        None,
    )
    .await;
    assert_reports_match_events(
        &app,
        &root,
        "&partner_id=p-cloudwise",
        orgs(&["acme"]),
        None,
        Some("p-cloudwise"),
    )
    .await;

    // Rebuilt from the log in one go, the read models are the same rows as the ones folded
    // batch by batch while the workload ran.
    let drift = subdesk_projections::rebuild::check(&app.state.pool, &ReportProjection)
        .await
        .expect("drift check");
    assert!(drift.is_clean(), "drift: {drift:?}");
    // And a rebuild swapped in answers the same.
    subdesk_projections::rebuild::rebuild(&app.state.pool, &ReportProjection, &|_, _| {})
        .await
        .expect("rebuild");
    assert_reports_match_events(&app, &root, "", None, None, None).await;
}

#[tokio::test]
async fn reports_are_cut_to_what_the_caller_sees() {
    let Workload { app, .. } = seed_workload().await;
    let (ada, pat) = (app.token(ADA).await, app.token(PAT).await);
    // An org admin: their org, cases and subscriptions alike.
    assert_reports_match_events(&app, &ada, "", orgs(&["acme"]), orgs(&["acme"]), None).await;
    // A partner: the cases of the orgs that granted it a relationship, the subscriptions it
    // sold there.
    assert_reports_match_events(&app, &pat, "", orgs(&["acme"]), None, Some("p-cloudwise")).await;
    // Staff and auditors: everything.
    for who in [SAM, As::auditor()] {
        let token = app.token(who).await;
        assert_reports_match_events(&app, &token, "", None, None, None).await;
    }

    // What a caller may not see does not exist for them; a plain customer gets no report.
    let ann = app.token(ANN).await;
    let gus = app.token(GUS).await;
    let pat_cases_only = app
        .token(As::partner(
            "pia@cloudwise.test",
            "p-cloudwise",
            &["access_cases"],
        ))
        .await;
    let pat_subscriptions_only = app
        .token(As::partner(
            "pim@cloudwise.test",
            "p-cloudwise",
            &["view_customers"],
        ))
        .await;
    for (token, path, status) in [
        (&ann, "/v1/reports/cases", StatusCode::FORBIDDEN),
        (&ann, "/v1/reports/sla", StatusCode::FORBIDDEN),
        (&ann, "/v1/reports/subscriptions", StatusCode::FORBIDDEN),
        (&gus, "/v1/reports/cases?org_id=acme", StatusCode::NOT_FOUND),
        (
            &gus,
            "/v1/reports/subscriptions?org_id=acme",
            StatusCode::NOT_FOUND,
        ),
        (
            &pat,
            "/v1/reports/cases?org_id=globex",
            StatusCode::NOT_FOUND,
        ),
        (
            &pat,
            "/v1/reports/sla?partner_id=p-other",
            StatusCode::NOT_FOUND,
        ),
        (
            &pat,
            "/v1/reports/subscriptions?org_id=initech",
            StatusCode::NOT_FOUND,
        ),
        (
            &pat_subscriptions_only,
            "/v1/reports/cases",
            StatusCode::FORBIDDEN,
        ),
        (
            &pat_subscriptions_only,
            "/v1/reports/sla",
            StatusCode::FORBIDDEN,
        ),
        (
            &pat_subscriptions_only,
            "/v1/reports/subscriptions",
            StatusCode::OK,
        ),
        (
            &pat_cases_only,
            "/v1/reports/subscriptions",
            StatusCode::FORBIDDEN,
        ),
        (&pat_cases_only, "/v1/reports/cases", StatusCode::OK),
        (&gus, "/v1/reports/cases?org_id=globex", StatusCode::OK),
    ] {
        let response = app.get(path, token).await;
        assert_eq!(response.status(), status, "{path}");
        if status != StatusCode::OK {
            expect_json(response, status).await;
        }
    }
    let anonymous = app
        .http
        .get(app.url("/v1/reports/cases"))
        .send()
        .await
        .expect("GET");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A partner's subscription report never shows another seller's or a direct sale of the
    // same customer: acme's direct bitbucket is not in it.
    let subs = report(&app, &pat, "/v1/reports/subscriptions").await;
    assert!(items(&subs["active"]["rows"])
        .iter()
        .all(|r| r["partner_id"] == "p-cloudwise"));
}

#[tokio::test]
async fn csv_tables_have_a_header_row_and_the_numbers_of_the_report() {
    let Workload { app, .. } = seed_workload().await;
    let root = app.token(ROOT).await;
    let csv = |path: String| {
        let app = &app;
        let root = root.clone();
        async move {
            let response = app.get(&path, &root).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers().clone();
            assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
            let disposition = headers["content-disposition"].to_str().expect("header");
            assert!(disposition.starts_with("attachment; filename=\"subdesk-"));
            let body = response.text().await.expect("body");
            let lines: Vec<Vec<String>> = body
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(|l| l.split(',').map(str::to_string).collect())
                .collect();
            lines
        }
    };

    let json = report(&app, &root, &format!("/v1/reports/cases?{PERIOD}")).await;
    let open = csv(format!("/v1/reports/cases?{PERIOD}&format=csv")).await;
    assert_eq!(open[0], ["status", "priority", "cases"]);
    assert_eq!(open.len(), 1 + 12);
    for (line, cell) in open[1..].iter().zip(items(&json["open"]["cells"])) {
        assert_eq!(
            line,
            &[
                text(&cell["status"]),
                cell["priority"].to_string(),
                cell["cases"].to_string()
            ]
        );
    }
    let days = csv(format!(
        "/v1/reports/cases?{PERIOD}&format=csv&table=per_day"
    ))
    .await;
    assert_eq!(days[0], ["day", "opened", "resolved", "auto_resolved"]);
    let auto_resolved: i64 = days[1..]
        .iter()
        .map(|l| l[3].parse::<i64>().expect("number"))
        .sum();
    assert_eq!(auto_resolved, int(&json["totals"]["auto_resolved"]));

    // `Accept: text/csv` asks for CSV too.
    let response = app
        .http
        .get(app.url(&format!("/v1/reports/sla?{PERIOD}")))
        .bearer_auth(&root)
        .header("accept", "text/csv")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let sla = response.text().await.expect("body");
    let sla: Vec<&str> = sla.lines().collect();
    assert!(sla[0].starts_with("priority,target_seconds,opened,responded,met,breached"));
    assert_eq!(sla.len(), 1 + 5);
    assert!(sla[5].starts_with("all,,10,"), "{}", sla[5]);

    let active = csv(format!("/v1/reports/subscriptions?{PERIOD}&format=csv")).await;
    assert_eq!(
        active[0],
        ["product", "plan", "partner_id", "subscriptions", "seats"]
    );
    let subs = report(&app, &root, &format!("/v1/reports/subscriptions?{PERIOD}")).await;
    assert_eq!(active.len() - 1, items(&subs["active"]["rows"]).len());
    let months = csv(format!(
        "/v1/reports/subscriptions?{PERIOD}&format=csv&table=cancellations"
    ))
    .await;
    assert_eq!(
        months,
        [["month", "cancellations", "seats"], ["2026-03", "2", "10"]]
    );

    let problem = expect_json(
        app.get("/v1/reports/cases?format=csv&table=nope", &root)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["code"], "invalid_query");
}

#[tokio::test]
async fn a_backwards_period_is_refused_and_a_bad_date_is_a_bad_request() {
    let app = crate::helpers::spawn_app().await;
    let root = app.token(ROOT).await;
    let problem = expect_json(
        app.get("/v1/reports/cases?from=2026-03-10&to=2026-03-01", &root)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(problem["code"], "invalid_period");
    let problem = expect_json(
        app.get("/v1/reports/sla?from=yesterday", &root).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["code"], "invalid_query");
    // An empty log answers zeros, every day and priority present.
    let cases = report(&app, &root, &format!("/v1/reports/cases?{PERIOD}")).await;
    assert_eq!(items(&cases["per_day"]).len(), 31);
    assert_eq!(items(&cases["open"]["cells"]).len(), 12);
    let sla = report(&app, &root, &format!("/v1/reports/sla?{PERIOD}")).await;
    assert_eq!(sla["overall"]["opened"], 0);
    assert!(sla["overall"]["attainment"].is_null());
}

#[tokio::test]
async fn the_reports_are_documented_in_openapi_as_json_and_csv_with_examples() {
    let app = crate::helpers::spawn_app().await;
    let doc = expect_json(app.get("/openapi.json", "").await, StatusCode::OK).await;
    for path in [
        "/v1/reports/cases",
        "/v1/reports/sla",
        "/v1/reports/subscriptions",
    ] {
        let get = &doc["paths"][path]["get"];
        assert_eq!(get["tags"], json!(["reports"]), "{path}");
        let content = &get["responses"]["200"]["content"];
        assert!(content["application/json"]["schema"].is_object(), "{path}");
        assert!(content["text/csv"]["example"].is_string(), "{path}");
        let params: Vec<&str> = items(&get["parameters"])
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["from", "to", "org_id", "partner_id", "format", "table"] {
            assert!(params.contains(&name), "{path} documents `{name}`");
        }
    }
    for schema in ["CasesReport", "SlaReport", "SubscriptionsReport"] {
        assert!(
            doc["components"]["schemas"][schema]["example"].is_object(),
            "{schema} has an example"
        );
    }
}
