//! The state of one org-partner relationship, `handle` and `apply`.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::commands::{EndRelationship, GrantRelationship, PartnerRelationshipCommand};
use super::error::RelationshipError;
use super::events::*;
use super::ids::is_valid_partner_id;
use super::services::RelationshipServices;

/// Where a relationship stands. Snake case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RelationshipStatus {
    /// Never granted.
    #[default]
    None,
    Active,
    Ended,
}

impl RelationshipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Active => "active",
            Self::Ended => "ended",
        }
    }
}

/// The write-side state of one org-partner relationship.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartnerRelationship {
    pub org_id: String,
    pub partner_id: String,
    pub status: RelationshipStatus,
    /// The scopes in force while active (sorted); the last ones while ended.
    pub scopes: Vec<PartnerScope>,
    /// When the relationship in force (or the last one) was granted.
    pub granted_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The last event is a grant (not a change of scopes or an end): a command that appended
    /// it created the relationship (201 at the edge).
    pub newly_granted: bool,
}

/// Sorted and without duplicates.
fn normalized(scopes: &[PartnerScope]) -> Vec<PartnerScope> {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    scopes
}

impl PartnerRelationship {
    pub fn exists(&self) -> bool {
        self.status != RelationshipStatus::None
    }

    pub fn is_active(&self) -> bool {
        self.status == RelationshipStatus::Active
    }

    async fn grant(
        &mut self,
        cmd: GrantRelationship,
        services: &RelationshipServices,
        sink: &EventSink<Self>,
    ) -> Result<(), RelationshipError> {
        let org_id = cmd.org_id.trim().to_string();
        if org_id.is_empty() {
            return Err(RelationshipError::InvalidOrg);
        }
        if !is_valid_partner_id(&cmd.partner_id) {
            return Err(RelationshipError::InvalidPartnerId);
        }
        if self.exists() && (self.org_id != org_id || self.partner_id != cmd.partner_id) {
            return Err(RelationshipError::WrongStream);
        }
        let scopes = normalized(&cmd.scopes);
        if scopes.is_empty() {
            return Err(RelationshipError::NoScopes);
        }
        let at = services.clock.now();
        let event = if self.is_active() {
            if scopes == self.scopes {
                return Ok(());
            }
            PartnerRelationshipEvent::PartnerRelationshipScopesChanged(RelationshipScopesChanged {
                from: self.scopes.clone(),
                to: scopes,
                by: cmd.by,
                at,
            })
        } else {
            PartnerRelationshipEvent::PartnerRelationshipGranted(RelationshipGranted {
                org_id,
                partner_id: cmd.partner_id,
                scopes,
                by: cmd.by,
                at,
            })
        };
        sink.write(event, self).await;
        Ok(())
    }

    async fn end(
        &mut self,
        cmd: EndRelationship,
        services: &RelationshipServices,
        sink: &EventSink<Self>,
    ) -> Result<(), RelationshipError> {
        if !self.is_active() {
            return Err(RelationshipError::NotActive);
        }
        let event = PartnerRelationshipEvent::PartnerRelationshipEnded(RelationshipEnded {
            org_id: self.org_id.clone(),
            partner_id: self.partner_id.clone(),
            ended_by: EndedBy::of(&cmd.by),
            by: cmd.by,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
    }
}

impl Aggregate for PartnerRelationship {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = PartnerRelationshipCommand;
    type Event = PartnerRelationshipEvent;
    type Error = RelationshipError;
    type Services = RelationshipServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            PartnerRelationshipCommand::Grant(cmd) => self.grant(cmd, services, sink).await,
            PartnerRelationshipCommand::End(cmd) => self.end(cmd, services, sink).await,
        }
    }

    fn apply(&mut self, event: Self::Event) {
        use PartnerRelationshipEvent as E;
        match event {
            E::PartnerRelationshipGranted(e) => {
                self.org_id = e.org_id;
                self.partner_id = e.partner_id;
                self.status = RelationshipStatus::Active;
                self.scopes = e.scopes;
                self.granted_at = Some(e.at);
                self.ended_at = None;
                self.newly_granted = true;
            }
            E::PartnerRelationshipScopesChanged(e) => {
                self.scopes = e.to;
                self.newly_granted = false;
            }
            E::PartnerRelationshipEnded(e) => {
                self.status = RelationshipStatus::Ended;
                self.ended_at = Some(e.at);
                self.newly_granted = false;
            }
        }
    }
}
