//! Bearer tokens and the principals they stand for.
//!
//! A token is 256 random bits (`sdk_` + base64url). Only its sha256 is stored, so the
//! database never holds a usable token. Lookups are cached for a few seconds per process. A
//! revocation clears the revoking process's cache at once, and a trigger notifies every other
//! process (channel [`REVOCATIONS_CHANNEL`]), whose [`Authenticator::forget`] drops the token
//! on arrival; [`CACHE_TTL`] bounds the rest (a process that missed the notification).

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use lru::LruCache;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subdesk_aggregates::{Actor, ActorRole};
use uuid::Uuid;

use crate::reach::PartnerReach;

/// How long a token lookup is trusted before the database is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// Where revocations are announced (migration V12); the payload is the token id.
pub const REVOCATIONS_CHANNEL: &str = "subdesk_tokens";

/// Partner scopes (Google-reseller style): what a partner token may reach of its customers.
pub const SCOPE_VIEW_CUSTOMERS: &str = "view_customers";
pub const SCOPE_ACCESS_CASES: &str = "access_cases";

/// The caller of a request, as resolved from its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub token_id: Uuid,
    pub role: ActorRole,
    /// The user: an e-mail for people, `system` for the scheduler.
    pub user: String,
    pub org_id: Option<String>,
    pub org_admin: bool,
    pub partner_id: Option<String>,
    pub scopes: Vec<String>,
    /// For a partner: the orgs that granted it a relationship and the scopes in force there,
    /// loaded afresh for every request ([`crate::relationships::reach_of`]). Empty otherwise.
    pub reach: PartnerReach,
}

impl Principal {
    /// The internal principal of timed commands and process managers.
    pub fn system() -> Self {
        Self {
            token_id: Uuid::nil(),
            role: ActorRole::System,
            user: "system".into(),
            org_id: None,
            org_admin: false,
            partner_id: None,
            scopes: Vec::new(),
            reach: PartnerReach::default(),
        }
    }

    pub fn actor(&self) -> Actor {
        Actor::new(self.user.clone(), self.role)
    }

    /// Agents, admins and auditors see every case and subscription.
    pub fn sees_everything(&self) -> bool {
        matches!(
            self.role,
            ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System
        )
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether this principal belongs to customer org `org`.
    pub fn in_org(&self, org: &str) -> bool {
        self.role == ActorRole::Customer && self.org_id.as_deref() == Some(org)
    }
}

/// What a new token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub role: ActorRole,
    pub user: String,
    pub org_id: Option<String>,
    pub org_admin: bool,
    pub partner_id: Option<String>,
    pub scopes: Vec<String>,
    pub label: Option<String>,
    pub created_by: String,
}

impl TokenSpec {
    /// Checks that the binding fits the role (a customer has an org, a partner a partner id,
    /// org-admin only for customers, scopes only for partners).
    pub fn validate(&self) -> Result<(), AuthError> {
        let invalid = |why: &str| Err(AuthError::InvalidSpec(why.to_string()));
        match self.role {
            ActorRole::System => return invalid("system tokens are never issued"),
            ActorRole::Customer if blank(&self.org_id) => {
                return invalid("a customer token needs an org (--org)")
            }
            ActorRole::Partner if blank(&self.partner_id) => {
                return invalid("a partner token needs a partner id (--partner)")
            }
            _ => {}
        }
        if let Some(partner) = &self.partner_id {
            if !subdesk_aggregates::partner_relationship::is_valid_partner_id(partner) {
                return invalid(
                    "a partner id is a domain-like name: 1 to 63 characters of a-z, 0-9 and `-`, \
                     not starting or ending with `-`",
                );
            }
        }
        if self.org_admin && self.role != ActorRole::Customer {
            return invalid("only customer tokens can be org admins");
        }
        if self.role != ActorRole::Customer && self.org_id.is_some() {
            return invalid("only customer tokens are bound to an org");
        }
        if self.role != ActorRole::Partner && (self.partner_id.is_some() || !self.scopes.is_empty())
        {
            return invalid("only partner tokens have a partner id and scopes");
        }
        for scope in &self.scopes {
            if scope != SCOPE_VIEW_CUSTOMERS && scope != SCOPE_ACCESS_CASES {
                return invalid(&format!("unknown scope `{scope}`"));
            }
        }
        if self.user.trim().is_empty() || self.user.len() > 254 {
            return invalid("the user must be 1 to 254 characters");
        }
        Ok(())
    }
}

fn blank(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(|v| v.trim().is_empty())
}

/// A token as listed: everything but the token itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub role: String,
    pub user: String,
    pub org_id: Option<String>,
    pub org_admin: bool,
    pub partner_id: Option<String>,
    pub scopes: Vec<String>,
    pub label: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            role: row.try_get("role")?,
            user: row.try_get("user_id")?,
            org_id: row.try_get("org_id")?,
            org_admin: row.try_get("org_admin")?,
            partner_id: row.try_get("partner_id")?,
            scopes: row.try_get("scopes")?,
            label: row.try_get("label")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token binding: {0}")]
    InvalidSpec(String),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Stores a new token and returns its id and the token, which is never shown again.
pub async fn issue(pool: &Pool, spec: &TokenSpec) -> Result<(Uuid, String), AuthError> {
    let client = pool.get().await?;
    issue_with(&**client, spec).await
}

/// [`issue`] on a given connection or transaction.
pub async fn issue_with(
    client: &impl tokio_postgres::GenericClient,
    spec: &TokenSpec,
) -> Result<(Uuid, String), AuthError> {
    spec.validate()?;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "sdk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO api_tokens (id, token_hash, role, user_id, org_id, org_admin, \
                                     partner_id, scopes, label, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &id,
                &hash(&token).as_slice(),
                &spec.role.as_str(),
                &spec.user.trim(),
                &spec.org_id,
                &spec.org_admin,
                &spec.partner_id,
                &spec.scopes,
                &spec.label,
                &spec.created_by,
            ],
        )
        .await?;
    Ok((id, token))
}

pub async fn list(pool: &Pool) -> Result<Vec<TokenInfo>, AuthError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, role, user_id, org_id, org_admin, partner_id, scopes, label, created_by, \
                    created_at, revoked_at \
               FROM api_tokens ORDER BY created_at, id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(TokenInfo::from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

/// One token's listing, revoked or not.
pub async fn find(pool: &Pool, id: Uuid) -> Result<Option<TokenInfo>, AuthError> {
    Ok(list(pool).await?.into_iter().find(|t| t.id == id))
}

/// Revokes token `id`; false when no live token has that id.
pub async fn revoke(pool: &Pool, id: Uuid) -> Result<bool, AuthError> {
    let client = pool.get().await?;
    let changed = client
        .execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(changed == 1)
}

/// Resolves bearer tokens to principals, with a short per-process cache.
pub struct Authenticator {
    pool: Pool,
    cache: Mutex<LruCache<[u8; 32], (Instant, Principal)>>,
}

impl Authenticator {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            cache: Mutex::new(LruCache::new(NonZeroUsize::MIN.saturating_add(4095))),
        }
    }

    /// Drops cached lookups of token `id`, or of every token (`None`: notifications may
    /// have been missed).
    pub fn forget(&self, id: Option<Uuid>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match id {
            None => cache.clear(),
            Some(id) => {
                let stale: Vec<[u8; 32]> = cache
                    .iter()
                    .filter(|(_, (_, principal))| principal.token_id == id)
                    .map(|(key, _)| *key)
                    .collect();
                for key in stale {
                    cache.pop(&key);
                }
            }
        }
    }

    /// The principal of a live token; `None` for an unknown or revoked token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, AuthError> {
        let key = hash(token);
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, principal)) = cache.get(&key) {
                if at.elapsed() < CACHE_TTL {
                    return Ok(Some(principal.clone()));
                }
            }
        }
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, role, user_id, org_id, org_admin, partner_id, scopes \
                   FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                &[&key.as_slice()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let role: String = row.try_get("role")?;
        let Ok(role) = role.parse::<ActorRole>() else {
            return Ok(None);
        };
        let principal = Principal {
            token_id: row.try_get("id")?,
            role,
            user: row.try_get("user_id")?,
            org_id: row.try_get("org_id")?,
            org_admin: row.try_get("org_admin")?,
            partner_id: row.try_get("partner_id")?,
            scopes: row.try_get("scopes")?,
            reach: PartnerReach::default(),
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, (Instant::now(), principal.clone()));
        Ok(Some(principal))
    }
}
