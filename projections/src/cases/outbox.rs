//! The case e-mails of the notifications outbox: how one mail becomes a row per recipient, and
//! the insert that a rebuild can repeat without doubling the outbox. Separate from the fold,
//! which only decides which event mails whom.

use deadpool_postgres::Transaction;
use serde::Serialize;
use subdesk_aggregates::support_case::{CaseStatus, AGGREGATE_TYPE};
use tokio_postgres::types::Json;

use super::tables::CaseRow;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::rows;

/// One e-mail of the outbox (`notifications`, migration V5).
#[derive(Debug, Clone, Serialize)]
pub(super) struct NotificationRow {
    pub(super) source_position: i64,
    pub(super) kind: &'static str,
    pub(super) recipient: String,
    pub(super) subject: String,
    pub(super) body: String,
    pub(super) aggregate_type: &'static str,
    pub(super) aggregate_id: String,
    /// What delivery renders other languages from: the case as it was at the event.
    pub(super) facts: serde_json::Value,
}

/// What the customer side is told a status means, in an e-mail.
fn status_words(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Open => "is open",
        CaseStatus::Investigating => "is being investigated by support",
        CaseStatus::WaitingForCustomer => "is waiting for your reply",
        CaseStatus::Resolved => "is resolved; reply to reopen it",
        CaseStatus::Closed => "is closed; open a new case if you need more help",
    }
}

/// One e-mail to several recipients.
pub(super) struct Mail<'a> {
    pub(super) kind: &'static str,
    pub(super) to: Vec<String>,
    /// Whoever caused it already knows.
    pub(super) except: Option<&'a str>,
    pub(super) subject: String,
    pub(super) body: String,
}

/// The recipient of support's own alerts on an unassigned case: the support team's queue, not
/// an address (delivery maps it to the team's address).
pub const SUPPORT_TEAM: &str = "support-team";

/// An alert for support about `case`: to its assignee, or the team when it has none.
pub(super) fn to_support(
    case: &CaseRow,
    kind: &'static str,
    subject: String,
    body: String,
) -> Mail<'static> {
    let to = case.assignee.clone().unwrap_or_else(|| SUPPORT_TEAM.into());
    Mail {
        kind,
        to: vec![to],
        except: None,
        subject,
        body,
    }
}

/// Queues `mail` about `case` on `outbox`.
pub(super) fn notify(
    outbox: &mut Vec<NotificationRow>,
    stored: &StoredEvent,
    case: &CaseRow,
    mail: Mail<'_>,
) {
    for recipient in mail.to {
        if mail
            .except
            .is_some_and(|e| e.trim().eq_ignore_ascii_case(&recipient))
        {
            continue;
        }
        outbox.push(NotificationRow {
            source_position: stored.position,
            kind: mail.kind,
            recipient,
            subject: format!("[{}] {}", case.key, mail.subject),
            body: mail.body.clone(),
            aggregate_type: AGGREGATE_TYPE,
            aggregate_id: case.id.to_string(),
            facts: serde_json::json!({"key": case.key, "summary": case.summary,
                                      "org_id": case.org_id, "status": case.status}),
        });
    }
}

/// Queues the e-mail telling the customer side that `case` is now in its current status.
pub(super) fn notify_status(
    outbox: &mut Vec<NotificationRow>,
    stored: &StoredEvent,
    case: &CaseRow,
    by: &str,
) {
    let Some(status) = CaseStatus::parse(&case.status) else {
        return;
    };
    let subject = format!(
        "{}: now {}",
        case.summary,
        status.as_str().replace('_', " ")
    );
    let body = format!("Your case {} {}.", case.key, status_words(status));
    notify(
        outbox,
        stored,
        case,
        Mail {
            kind: "status_changed",
            to: case.customer_recipients(),
            except: Some(by),
            subject,
            body,
        },
    );
}

/// Appends e-mails to the outbox; one already derived from the same event for the same
/// recipient and kind (a rebuild) is left as it is, `sent_at` included.
pub(super) async fn insert_notifications(
    tx: &Transaction<'_>,
    rows: &[NotificationRow],
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    rows::execute(
        tx,
        "INSERT INTO notifications (source_position, kind, recipient, subject, body, \
                                    aggregate_type, aggregate_id, facts) \
         SELECT source_position, kind, recipient, subject, body, aggregate_type, aggregate_id, \
                facts \
           FROM jsonb_populate_recordset(NULL::notifications, $1) \
          WHERE recipient <> '[erased]' \
         ON CONFLICT (source_position, kind, recipient) DO NOTHING",
        &[&Json(rows)],
    )
    .await?;
    Ok(())
}

/// The kinds of case mail the customer side gets, which opted-in partner users get a copy of.
const PARTNER_COPIED: [&str; 5] = [
    "case_opened",
    "status_changed",
    "support_reply",
    "customer_reply",
    "escalation",
];

/// Copies of the customer side's case mails for the partner users who opted in to alerts
/// (`partner_case_alerts`) and whose partner may act on the case's org (`access_cases` in the
/// relationship in force when the batch is applied).
pub(super) async fn partner_copies(
    tx: &Transaction<'_>,
    rows: &[NotificationRow],
) -> Result<Vec<NotificationRow>, ProjectionError> {
    let copied: Vec<&NotificationRow> = rows
        .iter()
        .filter(|r| PARTNER_COPIED.contains(&r.kind))
        .collect();
    let mut orgs: Vec<&str> = copied
        .iter()
        .filter_map(|r| r.facts.get("org_id").and_then(serde_json::Value::as_str))
        .collect();
    orgs.sort_unstable();
    orgs.dedup();
    if orgs.is_empty() {
        return Ok(Vec::new());
    }
    let mut watchers: std::collections::HashMap<String, Vec<String>> = Default::default();
    for row in rows::query(
        tx,
        "SELECT r.org_id, a.email FROM partner_case_alerts a \
           JOIN partner_relationships r ON r.partner_id = a.partner_id \
          WHERE r.active AND 'access_cases' = ANY(r.scopes) AND r.org_id = ANY($1)",
        &[&orgs],
    )
    .await?
    {
        watchers
            .entry(row.try_get("org_id")?)
            .or_default()
            .push(row.try_get("email")?);
    }
    let mut copies = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in copied {
        let Some(emails) = row
            .facts
            .get("org_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|org| watchers.get(org))
        else {
            continue;
        };
        for email in emails {
            if seen.insert((row.source_position, row.kind, email.clone())) {
                copies.push(NotificationRow {
                    recipient: email.clone(),
                    ..row.clone()
                });
            }
        }
    }
    Ok(copies)
}
