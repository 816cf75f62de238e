//! `Idempotency-Key`: the same key and body within 24 hours returns the first response and
//! appends nothing; the same key with another body is refused.
//!
//! Keys are scoped to the token that sent them. The key is taken atomically with the command's
//! events by a trigger on the events table (migration V2); this module reads those rows,
//! stores the response once it is known, and hashes requests.

use deadpool_postgres::Pool;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A key as sent by a caller, with the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The token the key belongs to.
    pub scope: String,
    pub key: String,
    /// sha256 of method, path and canonical JSON body.
    pub request_hash: String,
}

/// A key taken by an accepted command.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub request_hash: String,
    pub request_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub last_sequence: i64,
    pub last_position: i64,
    /// The stored response, if it was stored (it is, unless the server died right after the
    /// commit).
    pub response: Option<(u16, Value)>,
}

/// The record of `key` if an accepted command took it within the last 24 hours.
pub async fn find(
    pool: &Pool,
    key: &IdempotencyKey,
) -> Result<Option<KeyRecord>, IdempotencyError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT request_hash, aggregate_type, aggregate_id, last_sequence, last_position, \
                    response_status, response_body, request_id \
               FROM idempotency_keys \
              WHERE scope = $1 AND key = $2 AND created_at > now() - interval '24 hours'",
            &[&key.scope, &key.key],
        )
        .await?;
    Ok(row.as_ref().map(KeyRecord::from_row).transpose()?)
}

impl KeyRecord {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        let status: Option<i16> = row.try_get("response_status")?;
        let body: Option<Value> = row.try_get("response_body")?;
        Ok(Self {
            request_hash: row.try_get("request_hash")?,
            request_id: row.try_get("request_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            last_sequence: row.try_get("last_sequence")?,
            last_position: row.try_get("last_position")?,
            response: status.zip(body).map(|(s, b)| (s as u16, b)),
        })
    }
}

/// Stores the response of the command that took `key` in request `request_id`.
pub async fn store_response(
    pool: &Pool,
    key: &IdempotencyKey,
    request_id: &str,
    status: u16,
    body: &Value,
) -> Result<(), IdempotencyError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE idempotency_keys SET response_status = $4, response_body = $5 \
              WHERE scope = $1 AND key = $2 AND request_id = $3",
            &[&key.scope, &key.key, &request_id, &(status as i16), body],
        )
        .await?;
    Ok(())
}

/// Takes `key` for a request that appends no event (token issuance), in the caller's
/// transaction, with its response. False when another request holds the key (the caller then
/// rolls back and answers as that request did).
pub async fn take_without_events(
    client: &impl tokio_postgres::GenericClient,
    key: &IdempotencyKey,
    request_id: &str,
    resource: (&str, &str),
    status: u16,
    body: &Value,
) -> Result<bool, IdempotencyError> {
    let taken = client
        .execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, request_id, aggregate_type, \
                                           aggregate_id, first_sequence, last_sequence, \
                                           last_position, response_status, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0, $7, $8) \
             ON CONFLICT (scope, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, \
                 request_id = EXCLUDED.request_id, tx = EXCLUDED.tx, \
                 aggregate_type = EXCLUDED.aggregate_type, \
                 aggregate_id = EXCLUDED.aggregate_id, created_at = now(), \
                 response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body \
              WHERE idempotency_keys.created_at < now() - interval '24 hours'",
            &[
                &key.scope,
                &key.key,
                &key.request_hash,
                &request_id,
                &resource.0,
                &resource.1,
                &(status as i16),
                body,
            ],
        )
        .await?;
    Ok(taken == 1)
}

/// Deletes keys older than 24 hours; returns how many. Run periodically by the server.
pub async fn purge_expired(pool: &Pool) -> Result<u64, IdempotencyError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'",
            &[],
        )
        .await?)
}

/// The hash that tells "the same request" from "another request under the same key":
/// method, path and the body with object keys sorted, so formatting does not matter.
pub fn request_hash(method: &str, path: &str, body: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(body).as_bytes());
    hex::encode(hasher.finalize())
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_body_in_another_key_order_hashes_the_same() {
        let a =
            json!({"summary": "x", "impact": 2, "nested": {"b": 1, "a": [1, {"y": 2, "x": 1}]}});
        let b =
            json!({"impact": 2, "nested": {"a": [1, {"x": 1, "y": 2}], "b": 1}, "summary": "x"});
        assert_eq!(
            request_hash("POST", "/v1/cases", &a),
            request_hash("POST", "/v1/cases", &b)
        );
    }

    #[test]
    fn another_body_or_path_hashes_differently() {
        let a = json!({"summary": "x"});
        let b = json!({"summary": "y"});
        assert_ne!(
            request_hash("POST", "/v1/cases", &a),
            request_hash("POST", "/v1/cases", &b)
        );
        assert_ne!(
            request_hash("POST", "/v1/cases", &a),
            request_hash("POST", "/v1/other", &a)
        );
    }
}
