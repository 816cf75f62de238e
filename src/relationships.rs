//! Reads of the partner relationships' current state (`partner_relationships`, migration
//! V11), which a trigger keeps in the same transaction as the relationship events, and the
//! one-time step that grants relationships for the sales made before relationships existed.
//!
//! Every read here goes to the primary: access decisions must see a grant or an end from the
//! very next request on, which a replica or a projection cannot promise.

use chrono::{DateTime, Utc};
use serde::Serialize;
use subdesk_aggregates::partner_relationship::{
    relationship_id, GrantRelationship, PartnerRelationshipCommand, PartnerScope,
};
use subdesk_aggregates::subscription::AGGREGATE_TYPE as SUBSCRIPTION;
use subdesk_aggregates::{Actor, ActorRole};
use tokio_postgres::GenericClient;

use crate::auth::Principal;
use crate::command::{CommandError, CommandMeta};
use crate::reach::PartnerReach;

/// A relationship as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "org_id": "acme", "partner_id": "p-cloudwise", "status": "active",
    "scopes": ["access_cases", "view_customers"], "granted_at": "2026-11-29T09:00:00Z",
    "granted_by": "ada@acme.example", "ended_at": null, "ended_by": null,
    "version": 1, "position": 42
}))]
pub struct Relationship {
    pub org_id: String,
    pub partner_id: String,
    /// `active` or `ended`.
    #[schema(pattern = "^(active|ended)$")]
    pub status: String,
    /// The scopes the relationship allows (its last ones, once ended).
    pub scopes: Vec<String>,
    pub granted_at: Option<DateTime<Utc>>,
    /// Who granted it: a user, or `system` for the grants of the upgrade step.
    pub granted_by: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Which side ended it: `customer`, `partner` or `staff`.
    pub ended_by: Option<String>,
    /// The relationship's stream version.
    pub version: i64,
    /// Global position of its last event.
    pub position: i64,
}

const COLUMNS: &str = "org_id, partner_id, active, scopes, granted_at, granted_by, ended_at, \
                       ended_by, version, position";

impl Relationship {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        let active: bool = row.try_get("active")?;
        Ok(Self {
            org_id: row.try_get("org_id")?,
            partner_id: row.try_get("partner_id")?,
            status: if active { "active" } else { "ended" }.into(),
            scopes: row.try_get("scopes")?,
            granted_at: row.try_get("granted_at")?,
            granted_by: row.try_get("granted_by")?,
            ended_at: row.try_get("ended_at")?,
            ended_by: row.try_get("ended_by")?,
            version: row.try_get("version")?,
            position: row.try_get("position")?,
        })
    }

    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// Every relationship an org has granted, active ones first, then by partner.
pub async fn of_org(
    client: &impl GenericClient,
    org_id: &str,
) -> Result<Vec<Relationship>, subdesk_projections::ProjectionError> {
    let sql = format!(
        "SELECT {COLUMNS}, granted_position FROM partner_relationships WHERE org_id = $1 \
          ORDER BY active DESC, partner_id"
    );
    let rows = client.query(&sql, &[&org_id]).await?;
    let mut listed = Vec::with_capacity(rows.len());
    let mut grants = Vec::new();
    for row in &rows {
        let relationship = Relationship::from_row(row)?;
        if relationship.granted_by.is_none() {
            if let Some(position) = row.try_get::<_, Option<i64>>("granted_position")? {
                grants.push((listed.len(), position));
            }
        }
        listed.push(relationship);
    }
    fill_granted_by(client, &mut listed, &grants).await?;
    Ok(listed)
}

/// Who granted each relationship, from its grant event (`(index, position)` pairs): the
/// table cannot hold it, since the trigger that keeps the table cannot open sealed data.
async fn fill_granted_by(
    client: &impl GenericClient,
    listed: &mut [Relationship],
    grants: &[(usize, i64)],
) -> Result<(), subdesk_projections::ProjectionError> {
    if grants.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = grants.iter().map(|(_, position)| *position).collect();
    let sql = format!(
        "SELECT {} FROM events WHERE position = ANY($1)",
        subdesk_projections::event::EVENT_COLUMNS
    );
    let mut by_position = std::collections::HashMap::new();
    for row in client.query(&sql, &[&positions]).await? {
        let event = subdesk_projections::StoredEvent::try_from(&row)?;
        let by = event.payload["by"]["id"].as_str().map(str::to_string);
        by_position.insert(event.position, by);
    }
    for (index, position) in grants {
        if let Some(relationship) = listed.get_mut(*index) {
            relationship.granted_by = by_position.remove(position).flatten();
        }
    }
    Ok(())
}

/// The active relationships of a partner, by org.
pub async fn of_partner(
    client: &impl GenericClient,
    partner_id: &str,
) -> Result<Vec<Relationship>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM partner_relationships WHERE partner_id = $1 AND active \
          ORDER BY org_id"
    );
    client
        .query(&sql, &[&partner_id])
        .await?
        .iter()
        .map(Relationship::from_row)
        .collect()
}

/// One relationship, active or ended.
pub async fn find(
    client: &impl GenericClient,
    org_id: &str,
    partner_id: &str,
) -> Result<Option<Relationship>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM partner_relationships WHERE org_id = $1 AND partner_id = $2"
    );
    client
        .query_opt(&sql, &[&org_id, &partner_id])
        .await?
        .map(|row| Relationship::from_row(&row))
        .transpose()
}

/// The orgs with an active relationship with `partner_id` (that allows `scope`, when given),
/// sorted.
pub async fn partner_orgs(
    client: &impl GenericClient,
    partner_id: &str,
    scope: Option<PartnerScope>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let scope = scope.map(PartnerScope::as_str);
    client
        .query(
            "SELECT org_id FROM partner_relationships \
              WHERE partner_id = $1 AND active AND ($2::text IS NULL OR $2 = ANY(scopes)) \
              ORDER BY org_id",
            &[&partner_id, &scope],
        )
        .await?
        .iter()
        .map(|row| row.try_get("org_id"))
        .collect()
}

/// The reach of `principal`: for a partner, its active relationships intersected with its
/// token's scopes; nothing for anyone else.
pub async fn reach_of(
    client: &deadpool_postgres::Client,
    principal: &Principal,
) -> Result<PartnerReach, tokio_postgres::Error> {
    let (ActorRole::Partner, Some(partner)) = (principal.role, &principal.partner_id) else {
        return Ok(PartnerReach::default());
    };
    let statement = client
        .prepare_cached(
            "SELECT org_id, scopes FROM partner_relationships WHERE partner_id = $1 AND active",
        )
        .await?;
    let rows = client.query(&statement, &[partner]).await?;
    let relationships = rows
        .iter()
        .map(|row| Ok((row.try_get("org_id")?, row.try_get("scopes")?)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(PartnerReach::new(&principal.scopes, relationships))
}

/// Name of the one-time step in `data_steps`.
pub const GRANTS_FROM_SALES: &str = "partner_relationships_from_sales";

/// The one-time step of the upgrade to relationships: before them, a partner reached every
/// org holding a subscription it sold. For each partner and org where such a subscription is
/// `active` or `non_renewing`, the system grants a relationship with both scopes, so that
/// existing partners keep working. An `upcoming` subscription grants nothing: creating one
/// was exactly how a partner could assign itself any org. Pairs whose relationship already
/// exists are left alone; the step is recorded in `data_steps` (on `tx`, with the caller's
/// work) and runs again harmlessly if that transaction is lost.
///
/// Returns the number of relationships granted.
pub async fn grant_for_past_sales(
    tx: &impl GenericClient,
    subscriptions: &crate::command::CommandBus<subdesk_aggregates::subscription::Subscription>,
    relationships: &crate::command::CommandBus<
        subdesk_aggregates::partner_relationship::PartnerRelationship,
    >,
) -> Result<usize, StepError> {
    let done = tx
        .query_opt(
            "SELECT 1 FROM data_steps WHERE name = $1",
            &[&GRANTS_FROM_SALES],
        )
        .await?;
    if done.is_some() {
        return Ok(0);
    }
    // Partner sales, from the log itself (the read models may not have caught up yet).
    let ids: Vec<String> = tx
        .query(
            "SELECT DISTINCT aggregate_id FROM events \
              WHERE aggregate_type = $1 AND event_type = 'SubscriptionCreated' \
                AND payload -> 'channel' ->> 'kind' = 'partner'",
            &[&SUBSCRIPTION],
        )
        .await?
        .iter()
        .map(|row| row.try_get("aggregate_id"))
        .collect::<Result<_, _>>()?;
    let mut pairs = std::collections::BTreeSet::new();
    for id in ids {
        let (_, subscription) = subscriptions
            .current(&id)
            .await
            .map_err(StepError::command)?;
        if let (true, Some(partner)) = (
            subscription.status.in_force(),
            subscription.managing_partner(),
        ) {
            pairs.insert((subscription.org_id.clone(), partner.to_string()));
        }
    }
    let mut granted = 0;
    for (org_id, partner_id) in pairs {
        let id = relationship_id(&org_id, &partner_id);
        let (_, existing) = relationships
            .current(&id)
            .await
            .map_err(StepError::command)?;
        if existing.exists() {
            continue;
        }
        let command = PartnerRelationshipCommand::Grant(GrantRelationship {
            org_id: org_id.clone(),
            partner_id: partner_id.clone(),
            scopes: PartnerScope::ALL.to_vec(),
            by: Actor::system(),
        });
        let meta = CommandMeta::system(format!("data-step:{GRANTS_FROM_SALES}"));
        match relationships.execute(&id, command, &meta, None).await {
            Ok(outcome) if outcome.appended > 0 => {
                granted += 1;
                tracing::info!(org = %org_id, partner = %partner_id, "relationship granted for an earlier sale");
            }
            Ok(_) => {}
            // An id the domain refuses (not a valid partner id) cannot get a relationship;
            // its subscriptions pass to the org like those of an ended relationship.
            Err(CommandError::Rejected(error)) => {
                tracing::warn!(org = %org_id, partner = %partner_id, %error, "no relationship for an earlier sale");
            }
            Err(error) => return Err(StepError::command(error)),
        }
    }
    tx.execute(
        "INSERT INTO data_steps (name, detail) VALUES ($1, jsonb_build_object('granted', $2::bigint)) \
         ON CONFLICT (name) DO NOTHING",
        &[&GRANTS_FROM_SALES, &(granted as i64)],
    )
    .await?;
    Ok(granted)
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("command: {0}")]
    Command(String),
}

impl StepError {
    fn command(error: impl std::fmt::Display) -> Self {
        Self::Command(error.to_string())
    }
}
