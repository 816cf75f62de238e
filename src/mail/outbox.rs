//! The outbox as an operator sees it (`subdesk outbox status`) and puts set-aside mail back
//! (`subdesk outbox retry`).

use serde::Serialize;
use tokio_postgres::GenericClient;

/// Rows per status, and the set-aside rows with why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    /// The oldest pending row's age in seconds (null when none waits).
    pub oldest_pending_seconds: Option<i64>,
    /// Up to 20 set-aside rows, newest first.
    pub set_aside: Vec<SetAside>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SetAside {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

pub async fn status(client: &impl GenericClient) -> Result<Status, tokio_postgres::Error> {
    let counts = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'), \
                    count(*) FILTER (WHERE status = 'sent'), \
                    count(*) FILTER (WHERE status = 'failed'), \
                    count(*) FILTER (WHERE status = 'skipped'), \
                    extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::bigint \
               FROM notifications",
            &[],
        )
        .await?;
    let set_aside = client
        .query(
            "SELECT id, kind, recipient, attempts, last_error FROM notifications \
              WHERE status = 'failed' ORDER BY id DESC LIMIT 20",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(SetAside {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                recipient: r.try_get(2)?,
                attempts: r.try_get(3)?,
                last_error: r.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(Status {
        pending: counts.try_get(0)?,
        sent: counts.try_get(1)?,
        failed: counts.try_get(2)?,
        skipped: counts.try_get(3)?,
        oldest_pending_seconds: counts.try_get(4)?,
        set_aside,
    })
}

/// Puts set-aside rows back to be sent (`ids`, or all of them when empty) with a fresh day of
/// retries; returns how many.
pub async fn retry(client: &impl GenericClient, ids: &[i64]) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = NULL, \
                    leased_until = NULL, created_at = now() \
              WHERE status = 'failed' AND (cardinality($1::bigint[]) = 0 OR id = ANY($1))",
            &[&ids],
        )
        .await
}
