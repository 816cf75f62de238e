//! Webhooks, on Stripe's model: an owner (staff, an org, a partner - never one token)
//! registers endpoints; each endpoint follows the event feed as its owner reads it and is sent
//! every event its filter accepts, one at a time in the log's order, signed
//! ([`sign`]), at least once. A failing endpoint backs off and holds back only itself; one
//! failing for longer than the give-up time (3 days) is disabled and its owner told.
//!
//! - `mod.rs`: endpoints as stored (`webhook_endpoints`, `webhook_deliveries`, V20) and the
//!   changes the API makes to them.
//! - [`deliver`]: the delivery worker inside `serve`.
//! - [`sign`]: the signature header; [`target`]: which URLs may be targets.

pub mod deliver;
pub mod sign;
pub mod target;

use chrono::{DateTime, Utc};
use serde::Serialize;
use subdesk_aggregates::ActorRole;
use subdesk_projections::Checkpoint;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::auth::Principal;
use crate::feed::TypeFilter;
use crate::reach::PartnerReach;

/// Who an endpoint belongs to: what it receives is what this owner may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Staff,
    Org(String),
    Partner { id: String, scopes: Vec<String> },
}

impl Owner {
    /// The owner `principal` registers endpoints for: a staff admin for staff, an org admin
    /// for the org, a partner for the partner (with its token's scopes); `None` for anyone
    /// else.
    pub fn of(principal: &Principal) -> Option<Self> {
        match principal.role {
            ActorRole::Admin => Some(Self::Staff),
            ActorRole::Customer if principal.org_admin => principal.org_id.clone().map(Self::Org),
            ActorRole::Partner => principal.partner_id.clone().map(|id| Self::Partner {
                id,
                scopes: principal.scopes.clone(),
            }),
            _ => None,
        }
    }

    fn parts(&self) -> (&'static str, &str, &[String]) {
        match self {
            Self::Staff => ("staff", "staff", &[]),
            Self::Org(org) => ("org", org, &[]),
            Self::Partner { id, scopes } => ("partner", id, scopes),
        }
    }

    fn from_parts(kind: &str, id: String, scopes: Vec<String>) -> Self {
        match kind {
            "org" => Self::Org(id),
            "partner" => Self::Partner { id, scopes },
            _ => Self::Staff,
        }
    }

    /// Whether `principal` manages this owner's endpoints (a staff admin manages all).
    pub fn managed_by(&self, principal: &Principal) -> bool {
        if principal.role == ActorRole::Admin {
            return true;
        }
        match (self, Self::of(principal)) {
            (Self::Org(org), Some(Self::Org(theirs))) => *org == theirs,
            (Self::Partner { id, .. }, Some(Self::Partner { id: theirs, .. })) => *id == theirs,
            _ => false,
        }
    }

    /// The principal deliveries read the feed as (a partner's reach is loaded separately).
    pub fn reader(&self, endpoint: Uuid) -> Principal {
        let (role, org_id, partner_id, scopes) = match self {
            Self::Staff => (ActorRole::Admin, None, None, Vec::new()),
            Self::Org(org) => (ActorRole::Customer, Some(org.clone()), None, Vec::new()),
            Self::Partner { id, scopes } => {
                (ActorRole::Partner, None, Some(id.clone()), scopes.clone())
            }
        };
        Principal {
            token_id: endpoint,
            role,
            user: format!("webhook:{endpoint}"),
            org_admin: org_id.is_some(),
            org_id,
            partner_id,
            scopes,
            reach: PartnerReach::default(),
        }
    }

    /// `staff`, `org:<id>`, `partner:<id>`.
    pub fn label(&self) -> String {
        match self {
            Self::Staff => "staff".into(),
            Self::Org(org) => format!("org:{org}"),
            Self::Partner { id, .. } => format!("partner:{id}"),
        }
    }
}

/// An endpoint as stored.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub owner: Owner,
    pub url: String,
    pub events: TypeFilter,
    pub description: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub cursor: Checkpoint,
    pub failing_since: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Endpoint {
    fn try_from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let events: Vec<String> = row.try_get("events")?;
        Ok(Self {
            id: row.try_get("id")?,
            owner: Owner::from_parts(
                row.try_get("owner_kind")?,
                row.try_get("owner_id")?,
                row.try_get("scopes")?,
            ),
            url: row.try_get("url")?,
            // Stored patterns were checked when registered; a pattern a later binary no longer
            // knows filters nothing out rather than everything.
            events: TypeFilter::parse(&events).unwrap_or_default(),
            description: row.try_get("description")?,
            secret: row.try_get("secret")?,
            previous_secret: row.try_get("previous_secret")?,
            previous_secret_expires_at: row.try_get("previous_secret_expires_at")?,
            status: row.try_get("status")?,
            disabled_reason: row.try_get("disabled_reason")?,
            cursor: Checkpoint {
                tx_id: row.try_get("cursor_tx")?,
                position: row.try_get("cursor_position")?,
            },
            failing_since: row.try_get("failing_since")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// The secrets a delivery is signed with now: the current one, and the previous one while
    /// its overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at)
        {
            if now < until {
                secrets.push(previous);
            }
        }
        secrets
    }
}

/// What a new endpoint is.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub owner: Owner,
    pub url: String,
    pub events: TypeFilter,
    pub description: Option<String>,
    pub created_by: String,
}

/// Most endpoints one owner may have (Stripe allows 16 too).
pub const MAX_ENDPOINTS_PER_OWNER: i64 = 16;

/// Registers an endpoint, following the feed from now on (the feed projection's position):
/// it receives the events that come after it, not the history (replay for that). `None`: the
/// owner has [`MAX_ENDPOINTS_PER_OWNER`] already.
pub async fn create(
    client: &impl GenericClient,
    new: &NewEndpoint,
) -> Result<Option<Endpoint>, tokio_postgres::Error> {
    let (kind, owner_id, scopes) = new.owner.parts();
    let row = client
        .query_opt(
            "INSERT INTO webhook_endpoints (id, owner_kind, owner_id, scopes, url, events, \
                                            description, secret, cursor_tx, cursor_position, \
                                            created_by) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, \
                    coalesce(c.last_tx::text::bigint, 0), coalesce(c.last_position, 0), $9 \
               FROM (SELECT 1) AS one \
               LEFT JOIN projection_checkpoints c ON c.name = 'feed' \
              WHERE (SELECT count(*) FROM webhook_endpoints \
                      WHERE owner_kind = $2 AND owner_id = $3) < $10 \
             RETURNING *",
            &[
                &Uuid::now_v7(),
                &kind,
                &owner_id,
                &scopes,
                &new.url,
                &new.events.patterns(),
                &new.description,
                &sign::new_secret(),
                &new.created_by,
                &MAX_ENDPOINTS_PER_OWNER,
            ],
        )
        .await?;
    row.as_ref().map(Endpoint::try_from_row).transpose()
}

/// One endpoint.
pub async fn get(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Endpoint>, tokio_postgres::Error> {
    client
        .query_opt("SELECT * FROM webhook_endpoints WHERE id = $1", &[&id])
        .await?
        .as_ref()
        .map(Endpoint::try_from_row)
        .transpose()
}

/// The endpoints `principal` manages (a staff admin: all), oldest first, at most 1,000.
pub async fn list(
    client: &impl GenericClient,
    owner: Option<&Owner>,
) -> Result<Vec<Endpoint>, tokio_postgres::Error> {
    let rows = match owner.map(Owner::parts) {
        None => {
            client
                .query(
                    "SELECT * FROM webhook_endpoints ORDER BY created_at, id LIMIT 1000",
                    &[],
                )
                .await?
        }
        Some((kind, id, _)) => {
            client
                .query(
                    "SELECT * FROM webhook_endpoints WHERE owner_kind = $1 AND owner_id = $2 \
                      ORDER BY created_at, id LIMIT 1000",
                    &[&kind, &id],
                )
                .await?
        }
    };
    rows.iter().map(Endpoint::try_from_row).collect()
}

pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])
        .await?
        > 0)
}

/// Enables an endpoint again, with its failures forgotten; it goes on from its cursor.
pub async fn enable(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Endpoint>, tokio_postgres::Error> {
    client
        .query_opt(
            "UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = NULL, \
                    attempts = 0, failing_since = NULL, next_attempt_at = NULL, \
                    lease_id = NULL, leased_until = NULL \
              WHERE id = $1 RETURNING *",
            &[&id],
        )
        .await?
        .as_ref()
        .map(Endpoint::try_from_row)
        .transpose()
}

/// Delivers again from the event at `from` (its place in the log's order), or from the
/// beginning for [`Checkpoint::START`]; the next delivery goes at once. The lease is taken
/// from a worker delivering at this moment (its cursor updates need it), so it cannot move the
/// cursor past the replay's start.
pub async fn replay(
    client: &impl GenericClient,
    id: Uuid,
    from: Checkpoint,
) -> Result<Option<Endpoint>, tokio_postgres::Error> {
    client
        .query_opt(
            "UPDATE webhook_endpoints SET cursor_tx = $2, cursor_position = $3, \
                    attempts = 0, failing_since = NULL, next_attempt_at = NULL, \
                    lease_id = NULL, leased_until = NULL \
              WHERE id = $1 RETURNING *",
            &[&id, &from.tx_id, &from.position],
        )
        .await?
        .as_ref()
        .map(Endpoint::try_from_row)
        .transpose()
}

/// The cursor just before the event at `position` (`None`: no such event).
pub async fn before_position(
    client: &impl GenericClient,
    position: i64,
) -> Result<Option<Checkpoint>, tokio_postgres::Error> {
    if position <= 0 {
        return Ok(Some(Checkpoint::START));
    }
    Ok(client
        .query_opt(
            "SELECT tx_id::text::bigint AS tx_id FROM events WHERE position = $1",
            &[&position],
        )
        .await?
        .map(|row| row.try_get::<_, i64>("tx_id"))
        .transpose()?
        .map(|tx_id| Checkpoint {
            tx_id,
            position: position - 1,
        }))
}

/// Gives an endpoint a new secret; the old one stays valid for `overlap` (deliveries carry a
/// signature with each). Returns the endpoint with its new secret.
pub async fn rotate(
    client: &impl GenericClient,
    id: Uuid,
    overlap_seconds: i64,
) -> Result<Option<Endpoint>, tokio_postgres::Error> {
    client
        .query_opt(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $2, \
                    previous_secret_expires_at = now() + make_interval(secs => $3::bigint) \
              WHERE id = $1 RETURNING *",
            &[&id, &sign::new_secret(), &overlap_seconds],
        )
        .await?
        .as_ref()
        .map(Endpoint::try_from_row)
        .transpose()
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// The event's id (`evt_<position>`), type and position.
    pub event_id: String,
    pub event_type: String,
    pub position: i64,
    /// 1 for the first attempt at this event, 2 for its first retry, ...
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// Whether the receiver answered 2xx in time.
    pub ok: bool,
    /// The receiver's HTTP status; null when it did not answer.
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
}

/// The latest `limit` attempts of an endpoint, newest first.
pub async fn deliveries(
    client: &impl GenericClient,
    id: Uuid,
    limit: i64,
) -> Result<Vec<Delivery>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, event_id, event_type, position, attempt, at, ok, status, error, latency_ms \
               FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2",
            &[&id, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Delivery {
                id: row.try_get("id")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                position: row.try_get("position")?,
                attempt: row.try_get("attempt")?,
                at: row.try_get("at")?,
                ok: row.try_get("ok")?,
                status: row.try_get("status")?,
                error: row.try_get("error")?,
                latency_ms: row.try_get("latency_ms")?,
            })
        })
        .collect()
}
