//! Case list, detail and timeline (`case_view`, `case_timeline`).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::support_case::{SupportCase, SupportCaseEvent, Visibility, AGGREGATE_TYPE};
use uuid::Uuid;

use crate::{rows, Projection, ProjectionError, StoredEvent};

pub struct CaseProjection;

/// One row of `case_view`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaseRow {
    id: Uuid,
    key: String,
    org_id: String,
    requester: String,
    product: String,
    summary: String,
    description: String,
    impact: i16,
    status: String,
    opened_by: String,
    opened_at: DateTime<Utc>,
    first_response_due: Option<DateTime<Utc>>,
    last_activity_at: DateTime<Utc>,
    public_comments: i32,
    internal_comments: i32,
    version: i64,
}

/// One row of `case_timeline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TimelineRow {
    case_id: Uuid,
    sequence: i64,
    kind: String,
    actor_id: String,
    actor_role: String,
    visibility: String,
    body: Option<String>,
    at: DateTime<Utc>,
}

fn visibility_name(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Public => "public",
        Visibility::Internal => "internal",
    }
}

#[async_trait]
impl Projection for CaseProjection {
    fn name(&self) -> &'static str {
        "cases"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["case_view", "case_timeline"]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::new();
        for event in events.iter().filter(|e| e.aggregate_type == AGGREGATE_TYPE) {
            let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
                continue;
            };
            decoded.push((id, event, event.decode::<SupportCase>()?));
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<Uuid> = decoded.iter().map(|(id, _, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut cases: HashMap<Uuid, CaseRow> =
            rows::load::<CaseRow, _>(tx, "case_view", "id", &ids)
                .await?
                .into_iter()
                .map(|row| (row.id, row))
                .collect();
        let mut timeline = Vec::new();

        for (id, stored, event) in decoded {
            match event {
                SupportCaseEvent::CaseOpened(e) => {
                    cases.insert(
                        id,
                        CaseRow {
                            id,
                            key: e.key,
                            org_id: e.org_id,
                            requester: e.requester,
                            product: e.product,
                            summary: e.summary,
                            description: e.description,
                            impact: i16::from(e.impact),
                            status: "open".into(),
                            opened_by: e.opened_by.id,
                            opened_at: e.opened_at,
                            first_response_due: Some(e.first_response_due),
                            last_activity_at: e.opened_at,
                            public_comments: 0,
                            internal_comments: 0,
                            version: stored.sequence,
                        },
                    );
                }
                SupportCaseEvent::CommentAdded(e) => {
                    if let Some(case) = cases.get_mut(&id) {
                        match e.visibility {
                            Visibility::Public => case.public_comments += 1,
                            Visibility::Internal => case.internal_comments += 1,
                        }
                        case.last_activity_at = case.last_activity_at.max(e.at);
                        case.version = stored.sequence;
                    }
                    timeline.push(TimelineRow {
                        case_id: id,
                        sequence: stored.sequence,
                        kind: "comment".into(),
                        actor_id: e.author.id,
                        actor_role: e.author.role.as_str().into(),
                        visibility: visibility_name(e.visibility).into(),
                        body: Some(e.body),
                        at: e.at,
                    });
                }
            }
        }

        let changed: Vec<CaseRow> = cases.into_values().collect();
        rows::upsert(tx, "case_view", &["id"], &changed).await?;
        rows::insert(tx, "case_timeline", &timeline).await?;
        Ok(())
    }
}
