//! The subscription e-mails of the notifications outbox: the rows, who is mailed, and the insert
//! that a rebuild can repeat without sending anything twice (which event mails whom is the table
//! in the module's doc). Separate from the fold, which decides when to send.

use std::collections::BTreeSet;

use deadpool_postgres::Transaction;
use serde::Serialize;
use subdesk_aggregates::subscription::AGGREGATE_TYPE;
use tokio_postgres::types::Json;

use super::tables::ViewRow;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::rows;

/// One row of `notifications` (V5), without the columns the table fills itself.
#[derive(Debug, Clone, Serialize)]
struct NotificationRow {
    source_position: i64,
    kind: &'static str,
    recipient: String,
    subject: String,
    body: String,
    aggregate_type: &'static str,
    aggregate_id: String,
    /// What the mail is about, for rendering it in the recipient's language.
    facts: Option<serde_json::Value>,
}
/// A person's address; the system principal and other non-addresses are not mailed.
pub(super) fn mailbox(id: Option<&str>) -> Option<String> {
    id.filter(|id| id.contains('@'))
        .map(|id| id.trim().to_lowercase())
}

/// Collects the outbox rows of one batch.
#[derive(Default)]
pub(super) struct Outbox {
    rows: Vec<NotificationRow>,
}

impl Outbox {
    pub(super) fn send(
        &mut self,
        stored: &StoredEvent,
        kind: &'static str,
        recipients: impl IntoIterator<Item = String>,
        subject: String,
        body: String,
    ) {
        self.push(stored, kind, recipients, subject, body, None);
    }

    /// [`Outbox::send`] with the facts a translation needs (`facts`), for an event of any
    /// stream.
    pub(super) fn push(
        &mut self,
        stored: &StoredEvent,
        kind: &'static str,
        recipients: impl IntoIterator<Item = String>,
        subject: String,
        body: String,
        facts: Option<serde_json::Value>,
    ) {
        let recipients: BTreeSet<String> = recipients.into_iter().collect();
        let aggregate_type = subdesk_aggregates::upcast::AGGREGATE_TYPES
            .into_iter()
            .find(|t| *t == stored.aggregate_type)
            .unwrap_or(AGGREGATE_TYPE);
        for recipient in recipients {
            self.rows.push(NotificationRow {
                source_position: stored.position,
                kind,
                recipient,
                subject: subject.clone(),
                body: body.clone(),
                aggregate_type,
                aggregate_id: stored.aggregate_id.clone(),
                facts: facts.clone(),
            });
        }
    }

    pub(super) async fn write(self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        rows::execute(
            tx,
            "INSERT INTO notifications \
                    (source_position, kind, recipient, subject, body, aggregate_type, aggregate_id, \
                     facts) \
             SELECT source_position, kind, recipient, subject, body, aggregate_type, aggregate_id, \
                    facts \
               FROM jsonb_to_recordset($1) AS n(source_position bigint, kind text, recipient text, \
                    subject text, body text, aggregate_type text, aggregate_id text, facts jsonb) \
              WHERE recipient <> '[erased]' \
             ON CONFLICT (source_position, kind, recipient) DO NOTHING",
            &[&Json(&self.rows)],
        )
        .await?;
        Ok(())
    }
}

/// The contacts of `view` and the acting user of `stored`.
pub(super) fn contacts_and_actor(view: &ViewRow, stored: &StoredEvent) -> Vec<String> {
    let mut recipients = view.contacts.clone();
    recipients.extend(mailbox(stored.meta("actor_id")));
    recipients
}

pub(super) fn describe(view: &ViewRow) -> String {
    format!(
        "{} ({} plan) for {}, entitlement {}",
        view.product, view.plan, view.org_id, view.entitlement_number
    )
}
