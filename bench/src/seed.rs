//! Realistic event logs, fast: the domain's own event types, serialized as the command path
//! serializes them, with the command path's metadata, COPYed into `events` in large
//! transactions. The hash-chain trigger runs on every row (so `subdesk verify` holds), as do
//! the other insert triggers.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::DomainEvent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use subdesk_aggregates::subscription::{
    entitlement, Channel, SeatsIncreased, SubscriptionActivated, SubscriptionCreated,
    SubscriptionEvent,
};
use subdesk_aggregates::support_case::{
    CaseOpened, CaseResolved, CommentAdded, CustomerInfoRequested, CustomerResponded,
    FirstResponseGiven, InvestigationStarted, SupportCaseEvent, Visibility,
};
use subdesk_aggregates::{Actor, ActorRole};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

/// The org, customer and agent every seeded aggregate belongs to (the bench's tokens).
pub const ORG: &str = "acme";
pub const CUSTOMER: &str = "ann@acme.test";
pub const AGENT: &str = "sam@support.test";
/// The support entitlement the load's cases are opened under (a case needs one).
pub const ENTITLEMENT: &str = "E-BE9C-0000-0001";

/// One row for `events`.
pub struct Row {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
}

fn metadata(actor: &Actor) -> Value {
    let request = Uuid::now_v7().to_string();
    json!({
        "actor_id": actor.id,
        "actor_role": actor.role.as_str(),
        "request_id": request,
        "correlation_id": request,
        "causation_id": request,
    })
}

fn case_row(id: Uuid, sequence: i64, event: &SupportCaseEvent, by: &Actor) -> Row {
    Row {
        aggregate_type: subdesk_aggregates::support_case::AGGREGATE_TYPE,
        aggregate_id: id.to_string(),
        sequence,
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload: serde_json::to_value(event).unwrap_or(Value::Null),
        metadata: metadata(by),
    }
}

fn subscription_row(id: Uuid, sequence: i64, event: &SubscriptionEvent, by: &Actor) -> Row {
    Row {
        aggregate_type: subdesk_aggregates::subscription::AGGREGATE_TYPE,
        aggregate_id: id.to_string(),
        sequence,
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload: serde_json::to_value(event).unwrap_or(Value::Null),
        metadata: metadata(by),
    }
}

pub fn customer() -> Actor {
    Actor::new(CUSTOMER, ActorRole::Customer)
}

pub fn agent() -> Actor {
    Actor::new(AGENT, ActorRole::Agent)
}

const BODIES: &[&str] = &[
    "The board still spins forever after clearing the cache; console shows a 504 on /rest/board.",
    "Could you send the output of the support zip and the exact browser version you use?",
    "Attached the HAR file. It happens for every user in the marketing project since Monday.",
    "We reproduced it on our side: a slow query on the sprint report. A fix is being deployed.",
    "Thanks, it works again for everyone.",
];

/// A support case as the API would have written it, one step at a time.
pub struct CaseScript {
    pub id: Uuid,
    key: String,
    sequence: i64,
    step: usize,
    at: DateTime<Utc>,
}

impl CaseScript {
    pub fn new(key: String, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            key,
            sequence: 0,
            step: 0,
            at,
        }
    }

    pub fn sequence(&self) -> i64 {
        self.sequence
    }

    fn push(&mut self, out: &mut Vec<Row>, event: SupportCaseEvent, by: &Actor) {
        self.sequence += 1;
        out.push(case_row(self.id, self.sequence, &event, by));
    }

    /// The opening: one event.
    pub fn open(&mut self, out: &mut Vec<Row>) {
        let at = self.at;
        let event = SupportCaseEvent::CaseOpened(CaseOpened {
            case_id: self.id,
            key: self.key.clone(),
            org_id: ORG.into(),
            requester: CUSTOMER.into(),
            product: "jira-software".into(),
            product_version: Some("9.12.4".into()),
            entitlement_number: None,
            subscription_id: None,
            summary: "Board does not load".into(),
            description: "Since this morning the board spins forever for the whole team.".into(),
            impact: 2,
            priority: 2,
            participants: vec!["carl@acme.test".into()],
            phone: None,
            data_access_consent: true,
            follow_up_of: None,
            request_type: subdesk_aggregates::support_case::RequestType::Technical,
            opened_by: customer(),
            opened_at: at,
            first_response_due: at + Duration::hours(4),
            first_response_warning_at: None,
            resolution: None,
        });
        self.push(out, event, &customer());
        self.step = 1;
    }

    /// A comment, alternately by the customer and the agent.
    pub fn comment(&mut self, out: &mut Vec<Row>, rng: &mut StdRng) {
        self.at += Duration::seconds(rng.random_range(30..3600));
        let by = if self.sequence.rem_euclid(2) == 0 {
            agent()
        } else {
            customer()
        };
        let event = SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: Uuid::now_v7(),
            author: by.clone(),
            body: BODIES[rng.random_range(0..BODIES.len())].into(),
            visibility: Visibility::Public,
            at: self.at,
            next_reply: None,
        });
        self.push(out, event, &by);
    }

    /// Asks the customer for information at `at` (the auto-resolve timer counts from it).
    pub fn request_info(&mut self, out: &mut Vec<Row>, at: DateTime<Utc>) {
        let comment_id = Uuid::now_v7();
        let question = SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id,
            author: agent(),
            body: BODIES[1].into(),
            visibility: Visibility::Public,
            at,
            next_reply: None,
        });
        self.push(out, question, &agent());
        let waiting = SupportCaseEvent::CustomerInfoRequested(CustomerInfoRequested {
            comment_id,
            by: agent(),
            at,
            resolution: None,
        });
        self.push(out, waiting, &agent());
    }

    /// The next step of a whole lifecycle; false once the case is resolved.
    pub fn next(&mut self, out: &mut Vec<Row>, rng: &mut StdRng) -> bool {
        self.at += Duration::seconds(rng.random_range(60..7200));
        let at = self.at;
        match self.step {
            0 => self.open(out),
            1 => {
                let comment_id = Uuid::now_v7();
                self.push(
                    out,
                    SupportCaseEvent::CommentAdded(CommentAdded {
                        comment_id,
                        author: agent(),
                        body: BODIES[0].into(),
                        visibility: Visibility::Public,
                        at,
                        next_reply: None,
                    }),
                    &agent(),
                );
                self.push(
                    out,
                    SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
                        comment_id,
                        by: agent(),
                        due: at,
                        breached: false,
                        at,
                    }),
                    &agent(),
                );
                self.step = 2;
            }
            2 => {
                self.push(
                    out,
                    SupportCaseEvent::InvestigationStarted(InvestigationStarted {
                        by: agent(),
                        at,
                        resolution: None,
                    }),
                    &agent(),
                );
                self.step = 3;
            }
            3 => {
                self.request_info(out, at);
                self.step = 4;
            }
            4 => {
                let comment_id = Uuid::now_v7();
                self.push(
                    out,
                    SupportCaseEvent::CommentAdded(CommentAdded {
                        comment_id,
                        author: customer(),
                        body: BODIES[2].into(),
                        visibility: Visibility::Public,
                        at,
                        next_reply: None,
                    }),
                    &customer(),
                );
                self.push(
                    out,
                    SupportCaseEvent::CustomerResponded(CustomerResponded {
                        comment_id,
                        by: customer(),
                        waiting_since: at - Duration::hours(1),
                        at,
                        resolution: None,
                    }),
                    &customer(),
                );
                self.step = 5;
            }
            5 | 6 => {
                self.comment(out, rng);
                self.step += 1;
            }
            _ => {
                self.push(
                    out,
                    SupportCaseEvent::CaseResolved(CaseResolved {
                        by: agent(),
                        at,
                        resolution: None,
                    }),
                    &agent(),
                );
                return false;
            }
        }
        true
    }
}

/// A subscription: created, activated, then seat increases.
pub struct SubscriptionScript {
    pub id: Uuid,
    sequence: i64,
    seats: u32,
    at: DateTime<Utc>,
}

impl SubscriptionScript {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            sequence: 0,
            seats: 10,
            at,
        }
    }

    fn push(&mut self, out: &mut Vec<Row>, event: SubscriptionEvent) {
        self.sequence += 1;
        let by = Actor::new(CUSTOMER, ActorRole::Customer);
        out.push(subscription_row(self.id, self.sequence, &event, &by));
    }

    /// Created and activated: two events.
    pub fn create(&mut self, out: &mut Vec<Row>, rng: &mut StdRng) {
        let at = self.at;
        self.push(
            out,
            SubscriptionEvent::SubscriptionCreated(SubscriptionCreated {
                subscription_id: self.id,
                entitlement_number: entitlement::format_number(rng.random()),
                org_id: ORG.into(),
                product: "confluence".into(),
                plan: "standard".into(),
                seats: self.seats,
                term_start: at,
                term_end: at + Duration::days(365),
                auto_renew: true,
                channel: Channel::Direct,
                billing_account: ORG.into(),
                included_products: Vec::new(),
                from_collection: None,
                created_by: customer(),
                created_at: at,
            }),
        );
        self.push(
            out,
            SubscriptionEvent::SubscriptionActivated(SubscriptionActivated { term_start: at, at }),
        );
    }

    pub fn add_seat(&mut self, out: &mut Vec<Row>) {
        self.at += Duration::minutes(5);
        let from = self.seats;
        self.seats += 1;
        let event = SubscriptionEvent::SeatsIncreased(SeatsIncreased {
            from,
            to: self.seats,
            at: self.at,
        });
        self.push(out, event);
    }
}

/// A log of about `events` events as a busy system would have written it: `active` cases
/// in flight at once, each going through its lifecycle, their events interleaved, and one
/// subscription change for every twenty case events. Sent to `sink` in chunks (run it on a
/// blocking thread: it generates while the receiver COPYs).
pub fn mixed_log(events: u64, active: usize, sink: tokio::sync::mpsc::Sender<Vec<Row>>) -> u64 {
    let mut rng = StdRng::seed_from_u64(42);
    let start = Utc::now() - Duration::days(400);
    let mut next_key = 0u64;
    let mut new_case = |at| {
        next_key += 1;
        CaseScript::new(format!("LOG-{next_key}"), at)
    };
    let mut cases: Vec<CaseScript> = (0..active).map(|_| new_case(start)).collect();
    let mut subscriptions: Vec<SubscriptionScript> = Vec::new();
    let mut written = 0u64;
    let mut chunk = Vec::with_capacity(20_000);
    while written + (chunk.len() as u64) < events {
        if rng.random_range(0..20) == 0 {
            if subscriptions.len() < 2000 && rng.random_range(0..4) == 0 {
                let mut subscription = SubscriptionScript::new(start);
                subscription.create(&mut chunk, &mut rng);
                subscriptions.push(subscription);
            } else if !subscriptions.is_empty() {
                let i = rng.random_range(0..subscriptions.len());
                subscriptions[i].add_seat(&mut chunk);
            }
        }
        let i = rng.random_range(0..cases.len());
        if !cases[i].next(&mut chunk, &mut rng) {
            let at = cases[i].at;
            cases[i] = new_case(at);
        }
        if chunk.len() >= 20_000 {
            written += chunk.len() as u64;
            if sink.blocking_send(std::mem::take(&mut chunk)).is_err() {
                return written;
            }
        }
    }
    if !chunk.is_empty() {
        written += chunk.len() as u64;
        let _ = sink.blocking_send(chunk);
    }
    written
}

/// COPYs `rows` into `events` in one transaction (triggers included).
pub async fn copy(client: &mut tokio_postgres::Client, rows: Vec<Row>) -> anyhow::Result<u64> {
    let tx = client.transaction().await?;
    let sink = tx
        .copy_in(
            "COPY events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::JSONB,
            Type::JSONB,
        ],
    );
    let mut writer = std::pin::pin!(writer);
    for row in &rows {
        writer
            .as_mut()
            .write(&[
                &row.aggregate_type,
                &row.aggregate_id,
                &row.sequence,
                &row.event_type,
                &row.event_version,
                &row.payload,
                &row.metadata,
            ])
            .await?;
    }
    let n = writer.finish().await?;
    tx.commit().await?;
    Ok(n)
}

/// Seeds `cases` open cases and `subscriptions` active subscriptions of the bench org, with
/// `events_per_case` events per case (the opening and comments). Returns their ids.
pub async fn aggregates(
    client: &mut tokio_postgres::Client,
    cases: usize,
    events_per_case: usize,
    subscriptions: usize,
    key_prefix: &str,
) -> anyhow::Result<(Vec<Uuid>, Vec<Uuid>)> {
    let mut rng = StdRng::seed_from_u64(7);
    let now = Utc::now();
    let mut case_ids = Vec::with_capacity(cases);
    let mut rows = Vec::new();
    for n in 0..cases {
        let mut case = CaseScript::new(format!("{key_prefix}-{n}"), now - Duration::days(30));
        case.open(&mut rows);
        while (case.sequence() as usize) < events_per_case {
            case.comment(&mut rows, &mut rng);
        }
        case_ids.push(case.id);
        if rows.len() >= 20_000 {
            copy(client, std::mem::take(&mut rows)).await?;
        }
    }
    let mut subscription_ids = Vec::with_capacity(subscriptions);
    for _ in 0..subscriptions {
        let mut subscription = SubscriptionScript::new(now - Duration::days(30));
        subscription.create(&mut rows, &mut rng);
        subscription_ids.push(subscription.id);
    }
    copy(client, rows).await?;
    Ok((case_ids, subscription_ids))
}

/// Seeds `n` cases waiting for the customer since `since` (opened a minute before).
pub async fn waiting_cases(
    client: &mut tokio_postgres::Client,
    n: usize,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(n);
    let mut rows = Vec::new();
    for i in 0..n {
        let mut case = CaseScript::new(format!("DUE-{i}"), since - Duration::minutes(1));
        case.open(&mut rows);
        case.request_info(&mut rows, since);
        ids.push(case.id);
    }
    copy(client, rows).await?;
    Ok(ids)
}
