//! The event feed's index (`feed_index`, `feed_streams`): which events belong to which org and
//! partner, so that a customer's or partner's feed (and a webhook endpoint's deliveries) reads
//! its own part of the log through an index instead of scanning the whole log.
//!
//! One row per event and audience (see [`audiences`]), in catch-up order; who may read a row is
//! decided when it is read, because relationships and participants change after the event.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::org_calendar::AGGREGATE_TYPE as CALENDAR;
use subdesk_aggregates::partner_relationship::AGGREGATE_TYPE as RELATIONSHIP;
use subdesk_aggregates::subscription::{
    Subscription, SubscriptionEvent, AGGREGATE_TYPE as SUBSCRIPTION,
};
use subdesk_aggregates::support_case::{SupportCase, SupportCaseEvent, AGGREGATE_TYPE as CASE};

use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::projection::Projection;
use crate::rows;
use tokio_postgres::types::Json;

pub struct FeedProjection;

/// The audience key of an org's events.
pub fn org_audience(org_id: &str) -> String {
    format!("org:{org_id}")
}

/// The audience key of a partner's own events (its relationships).
pub fn partner_audience(partner_id: &str) -> String {
    format!("partner:{partner_id}")
}

/// The audiences of an event of a stream whose org is `org`: the org, and for a relationship
/// (`<org>/<partner>`) also the partner.
fn audiences(aggregate_type: &str, aggregate_id: &str, org: &str) -> Vec<String> {
    let mut keys = vec![org_audience(org)];
    if aggregate_type == RELATIONSHIP {
        if let Some((_, partner)) = aggregate_id.split_once('/') {
            keys.push(partner_audience(partner));
        }
    }
    keys
}

/// One row of `feed_streams`: what decides who sees a case or subscription stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StreamRow {
    aggregate_type: String,
    aggregate_id: String,
    org_id: String,
    requester: Option<String>,
    participants: Vec<String>,
    partner_id: Option<String>,
}

/// Folds `event` into its stream's row (created by the stream's first event). Returns whether
/// the row changed.
fn fold_stream(
    streams: &mut HashMap<(String, String), StreamRow>,
    event: &StoredEvent,
) -> Result<bool, ProjectionError> {
    let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
    let row = |org_id: String, requester, participants, partner_id| StreamRow {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        org_id,
        requester,
        participants,
        partner_id,
    };
    match event.aggregate_type.as_str() {
        CASE => match (event.event_type.as_str(), streams.get_mut(&key)) {
            ("CaseOpened", _) => {
                if let SupportCaseEvent::CaseOpened(e) = event.decode::<SupportCase>()? {
                    streams.insert(key, row(e.org_id, Some(e.requester), e.participants, None));
                    return Ok(true);
                }
            }
            ("ParticipantAdded", Some(stream)) => {
                if let SupportCaseEvent::ParticipantAdded(e) = event.decode::<SupportCase>()? {
                    if !stream.participants.contains(&e.email) {
                        stream.participants.push(e.email);
                        return Ok(true);
                    }
                }
            }
            ("ParticipantRemoved", Some(stream)) => {
                if let SupportCaseEvent::ParticipantRemoved(e) = event.decode::<SupportCase>()? {
                    stream
                        .participants
                        .retain(|p| !p.eq_ignore_ascii_case(&e.email));
                    return Ok(true);
                }
            }
            _ => {}
        },
        SUBSCRIPTION => match (event.event_type.as_str(), streams.get_mut(&key)) {
            ("SubscriptionCreated", _) => {
                if let SubscriptionEvent::SubscriptionCreated(e) = event.decode::<Subscription>()? {
                    let partner = e.channel.partner_id().map(str::to_string);
                    streams.insert(key, row(e.org_id, None, Vec::new(), partner));
                    return Ok(true);
                }
            }
            ("SubscriptionPassedToOrg", Some(stream)) => {
                stream.partner_id = None;
                return Ok(true);
            }
            _ => {}
        },
        _ => {}
    }
    Ok(false)
}

/// Whether the customer side never gets this event: an internal comment, or a warning that a
/// service level is at risk (a heads-up for support; the breach itself is the customer's news).
fn staff_only(event: &StoredEvent) -> Result<bool, ProjectionError> {
    if event.aggregate_type != CASE {
        return Ok(false);
    }
    Ok(match event.event_type.as_str() {
        "SlaWarningRaised" => true,
        "CommentAdded" => event.decode::<SupportCase>()?.is_internal(),
        _ => false,
    })
}

#[derive(Default)]
struct Rows {
    audience: Vec<String>,
    tx_id: Vec<i64>,
    position: Vec<i64>,
    aggregate_type: Vec<String>,
    aggregate_id: Vec<String>,
    event_type: Vec<String>,
    staff_only: Vec<bool>,
}

#[async_trait]
impl Projection for FeedProjection {
    fn name(&self) -> &'static str {
        "feed"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["feed_index", "feed_streams"]
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        // The streams the batch touches: opened in it, or known from an earlier batch.
        let mut touched: Vec<(&str, &str)> = events
            .iter()
            .filter(|e| e.aggregate_type == CASE || e.aggregate_type == SUBSCRIPTION)
            .map(|e| (e.aggregate_type.as_str(), e.aggregate_id.as_str()))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let mut streams: HashMap<(String, String), StreamRow> = HashMap::new();
        if !touched.is_empty() {
            let types: Vec<&str> = touched.iter().map(|(t, _)| *t).collect();
            let ids: Vec<&str> = touched.iter().map(|(_, i)| *i).collect();
            for row in rows::query(
                tx,
                "SELECT to_jsonb(f) AS row FROM feed_streams f \
                   JOIN unnest($1::text[], $2::text[]) AS k(t, i) \
                     ON f.aggregate_type = k.t AND f.aggregate_id = k.i",
                &[&types, &ids],
            )
            .await?
            {
                let Json(stream) = row.try_get::<_, Json<StreamRow>>("row")?;
                streams.insert(
                    (stream.aggregate_type.clone(), stream.aggregate_id.clone()),
                    stream,
                );
            }
        }
        let mut changed: HashSet<(String, String)> = HashSet::new();

        let mut out = Rows::default();
        for event in events {
            let (ty, id) = (event.aggregate_type.as_str(), event.aggregate_id.as_str());
            if fold_stream(&mut streams, event)? {
                changed.insert((ty.to_string(), id.to_string()));
            }
            let org = match ty {
                CASE | SUBSCRIPTION => streams
                    .get(&(ty.to_string(), id.to_string()))
                    .map(|s| s.org_id.clone()),
                RELATIONSHIP => id.split_once('/').map(|(org, _)| org.to_string()),
                CALENDAR => Some(id.to_string()),
                // A stream type this binary does not follow: staff read it from the log.
                _ => None,
            };
            // A stream whose opening event is missing has no org to file it under; staff
            // still read it from the log itself.
            let Some(org) = org else { continue };
            let internal = staff_only(event)?;
            for audience in audiences(ty, id, &org) {
                out.audience.push(audience);
                out.tx_id.push(event.tx_id);
                out.position.push(event.position);
                out.aggregate_type.push(event.aggregate_type.clone());
                out.aggregate_id.push(event.aggregate_id.clone());
                out.event_type.push(event.event_type.clone());
                out.staff_only.push(internal);
            }
        }

        let changed: Vec<&StreamRow> = changed.iter().filter_map(|key| streams.get(key)).collect();
        rows::upsert(
            tx,
            "feed_streams",
            &["aggregate_type", "aggregate_id"],
            &changed,
        )
        .await?;
        if !out.position.is_empty() {
            rows::execute(
                tx,
                "INSERT INTO feed_index (audience, tx_id, position, aggregate_type, aggregate_id, \
                                         event_type, staff_only) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], \
                                      $5::text[], $6::text[], $7::boolean[])",
                &[
                    &out.audience,
                    &out.tx_id,
                    &out.position,
                    &out.aggregate_type,
                    &out.aggregate_id,
                    &out.event_type,
                    &out.staff_only,
                ],
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relationship_event_belongs_to_its_org_and_its_partner_other_events_to_the_org() {
        assert_eq!(
            audiences(RELATIONSHIP, "acme/p-cloudwise", "acme"),
            vec!["org:acme".to_string(), "partner:p-cloudwise".to_string()]
        );
        assert_eq!(
            audiences(CASE, "0193-case", "acme"),
            vec!["org:acme".to_string()]
        );
        assert_eq!(audiences(CALENDAR, "acme", "acme"), vec!["org:acme"]);
    }
}
