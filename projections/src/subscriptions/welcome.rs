//! Seed 001's welcome from a partner: when an org grants a partner a relationship, or a partner
//! sells the org a subscription, the org's contacts (the contacts of every subscription of the
//! org at that event) are told who the partner is and what it may do for them.

use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::Transaction;
use serde_json::json;
use subdesk_aggregates::partner_relationship::{
    PartnerRelationship, PartnerRelationshipEvent, AGGREGATE_TYPE as RELATIONSHIP,
};
use uuid::Uuid;

use super::outbox::Outbox;
use super::tables::ViewRow;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::rows;

/// Why an org's contacts are welcomed.
pub(super) enum Reason {
    /// The org granted the partner a relationship with these scopes.
    Granted(Vec<&'static str>),
    /// The partner sold the org this subscription (described).
    Sold(String),
}

/// One welcome to send: the event, the org, the partner, why.
pub(super) struct Welcome<'a> {
    pub(super) stored: &'a StoredEvent,
    pub(super) org_id: String,
    pub(super) partner_id: String,
    pub(super) reason: Reason,
}

/// The relationship grants of a batch.
pub(super) fn grants(events: &[StoredEvent]) -> Result<Vec<Welcome<'_>>, ProjectionError> {
    let mut found = Vec::new();
    for stored in events.iter().filter(|e| {
        e.aggregate_type == RELATIONSHIP && e.event_type == "PartnerRelationshipGranted"
    }) {
        if let PartnerRelationshipEvent::PartnerRelationshipGranted(e) =
            stored.decode::<PartnerRelationship>()?
        {
            found.push(Welcome {
                stored,
                org_id: e.org_id,
                partner_id: e.partner_id,
                reason: Reason::Granted(e.scopes.iter().map(|s| s.as_str()).collect()),
            });
        }
    }
    Ok(found)
}

/// The contacts of the subscriptions of some orgs as stored before the batch; with the rows
/// the batch has folded so far, the org's contacts at any event of the batch, whatever the
/// batch boundaries (so a rebuild mails the same people).
pub(super) struct Contacts {
    stored: HashMap<Uuid, (String, Vec<String>)>,
}

impl Contacts {
    pub(super) async fn load(
        tx: &Transaction<'_>,
        mut orgs: Vec<String>,
    ) -> Result<Self, ProjectionError> {
        orgs.sort_unstable();
        orgs.dedup();
        let mut stored = HashMap::new();
        if !orgs.is_empty() {
            for row in rows::query(
                tx,
                "SELECT id, org_id, contacts FROM subscription_view WHERE org_id = ANY($1)",
                &[&orgs],
            )
            .await?
            {
                let contacts: serde_json::Value = row.try_get("contacts")?;
                let contacts = serde_json::from_value(contacts).unwrap_or_default();
                stored.insert(row.try_get("id")?, (row.try_get("org_id")?, contacts));
            }
        }
        Ok(Self { stored })
    }

    /// The contacts of `org`'s subscriptions now: `views` holds the rows the batch touched, as
    /// folded up to the current event.
    pub(super) fn of(&self, org: &str, views: &HashMap<Uuid, ViewRow>) -> BTreeSet<String> {
        let untouched = self
            .stored
            .iter()
            .filter(|(id, (o, _))| o == org && !views.contains_key(id))
            .flat_map(|(_, (_, contacts))| contacts.iter());
        let touched = views
            .values()
            .filter(|view| view.org_id == org)
            .flat_map(|view| view.contacts.iter());
        untouched
            .chain(touched)
            .map(|c| c.trim().to_lowercase())
            .collect()
    }
}

/// Queues one welcome mail per contact of the org.
pub(super) fn queue(welcome: &Welcome<'_>, contacts: BTreeSet<String>, outbox: &mut Outbox) {
    if contacts.is_empty() {
        return;
    }
    let partner = &welcome.partner_id;
    let (subject, body) = match &welcome.reason {
        Reason::Granted(scopes) => (
            format!("{partner} is now your partner"),
            format!(
                "Your organisation {} granted {partner} access ({}). {partner} can now \
                 {}. Your organisation's admin can end this at any time in the portal.",
                welcome.org_id,
                scopes.join(", "),
                what_it_may_do(scopes)
            ),
        ),
        Reason::Sold(described) => (
            format!("{partner} set up a subscription for you"),
            format!(
                "{partner} bought {described} for your organisation and manages it for you. \
                 Sign in to the portal to link a site and add contacts."
            ),
        ),
    };
    outbox.push(
        welcome.stored,
        "partner_welcome",
        contacts,
        subject,
        body,
        Some(json!({"org_id": welcome.org_id, "partner_id": partner})),
    );
}

fn what_it_may_do(scopes: &[&str]) -> String {
    let mut can = Vec::new();
    if scopes.contains(&"view_customers") {
        can.push("see and manage the subscriptions it sells you");
    }
    if scopes.contains(&"access_cases") {
        can.push("open and follow support cases for you");
    }
    if can.is_empty() {
        "act for you as far as you allow".into()
    } else {
        can.join(" and ")
    }
}
