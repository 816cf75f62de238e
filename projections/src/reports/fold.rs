//! The fold of case and subscription events into their fact rows, and of case events into
//! counts per day. Pure, so that it is tested without a database; separate from the counters,
//! which only compare fact rows before and after a batch.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use subdesk_aggregates::subscription::{CancelEffective, SubscriptionEvent, SubscriptionStatus};
use subdesk_aggregates::support_case::{
    CaseStatus, CustomerResponded, InvestigationStarted, SupportCaseEvent, Visibility,
};
use uuid::Uuid;

use super::facts::{CancellationRow, CaseFacts, SubscriptionFacts};
use crate::event::StoredEvent;

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds()
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Per-day counts keyed by (day, org, product): opened, resolved, auto-resolved.
pub(super) type DayCounts = BTreeMap<(NaiveDate, String, String), [i32; 3]>;

/// Whether `event` changes no fact of its case: the projection skips it before any SQL (a
/// row's `version` is the stream version of the last event that changed it). An internal
/// note (no reply clock in it) is the common one: agents write many.
pub(super) fn changes_no_fact(event: &SupportCaseEvent) -> bool {
    match event {
        SupportCaseEvent::CommentAdded(e) => {
            e.next_reply.is_none()
                && !(e.author.role.is_staff() && e.visibility == Visibility::Public)
        }
        other => inert(other),
    }
}

/// The case events that no report counts: the fold leaves the facts as they are.
fn inert(event: &SupportCaseEvent) -> bool {
    matches!(
        event,
        SupportCaseEvent::CaseAssigned(_)
            | SupportCaseEvent::ParticipantAdded(_)
            | SupportCaseEvent::ParticipantRemoved(_)
            | SupportCaseEvent::AttachmentAdded(_)
            | SupportCaseEvent::EscalationRequested(_)
            | SupportCaseEvent::CaseEscalated(_)
            | SupportCaseEvent::DataAccessGranted(_)
            | SupportCaseEvent::DataAccessRevoked(_)
            | SupportCaseEvent::SlaWarningRaised(_)
            | SupportCaseEvent::SlaBreached(_)
    )
}

/// Folds one case event into `facts` (the case's row, if its opening was seen) and `days`.
/// Returns false for an event of a case whose opening this read model never saw.
pub(super) fn fold_case(
    cases: &mut HashMap<Uuid, CaseFacts>,
    days: &mut DayCounts,
    id: Uuid,
    stored: &StoredEvent,
    event: SupportCaseEvent,
) -> bool {
    if let SupportCaseEvent::CaseOpened(e) = &event {
        cases.insert(
            id,
            CaseFacts {
                case_id: id,
                org_id: e.org_id.clone(),
                product: e.product.clone(),
                request_type: e.request_type.as_str().into(),
                priority: i16::from(e.priority),
                status: CaseStatus::Open.as_str().into(),
                opened_at: e.opened_at,
                first_response_due: e.first_response_due,
                first_responded_at: None,
                first_response_seconds: None,
                first_response_breached: None,
                resolved_at: None,
                resolution_seconds: None,
                auto_resolved: false,
                auto_resolutions: 0,
                reopened: 0,
                closed_at: None,
                resolution_target_seconds: None,
                resolution_elapsed_seconds: None,
                next_reply_due: None,
                next_replies_met: 0,
                next_replies_breached: 0,
                version: stored.sequence,
            },
        );
    }
    let Some(facts) = cases.get_mut(&id) else {
        return false;
    };
    facts.version = stored.sequence;
    let mut count = |facts: &CaseFacts, at: DateTime<Utc>, column: usize| {
        let key = (at.date_naive(), facts.org_id.clone(), facts.product.clone());
        days.entry(key).or_default()[column] += 1;
    };
    match event {
        SupportCaseEvent::CaseOpened(e) => {
            facts.set_resolution(e.resolution);
            count(facts, e.opened_at, 0)
        }
        SupportCaseEvent::InvestigationStarted(InvestigationStarted { resolution, .. })
        | SupportCaseEvent::CustomerResponded(CustomerResponded { resolution, .. }) => {
            facts.status = CaseStatus::Investigating.as_str().into();
            facts.set_resolution(resolution);
        }
        SupportCaseEvent::CustomerInfoRequested(e) => {
            facts.status = CaseStatus::WaitingForCustomer.as_str().into();
            facts.set_resolution(e.resolution);
        }
        SupportCaseEvent::CommentAdded(e) => {
            if let Some(start) = e.next_reply {
                facts.next_reply_due = Some(start.due);
            } else if e.author.role.is_staff() && e.visibility == Visibility::Public {
                facts.end_next_reply(e.at, true);
            }
        }
        SupportCaseEvent::CaseReopened(e) => {
            facts.set_resolution(e.resolution);
            facts.status = CaseStatus::Investigating.as_str().into();
            facts.resolved_at = None;
            facts.resolution_seconds = None;
            facts.auto_resolved = false;
            facts.reopened += 1;
        }
        SupportCaseEvent::FirstResponseGiven(e) => {
            facts.first_responded_at = Some(e.at);
            facts.first_response_seconds = Some(seconds_between(facts.opened_at, e.at));
            facts.first_response_breached = Some(e.breached);
        }
        SupportCaseEvent::PriorityChanged(e) => {
            facts.priority = i16::from(e.to);
            facts.first_response_due = e.first_response_due;
            facts.set_resolution(e.resolution);
        }
        SupportCaseEvent::CaseResolved(e) => {
            facts.status = CaseStatus::Resolved.as_str().into();
            facts.resolved_at = Some(e.at);
            facts.resolution_seconds = Some(seconds_between(facts.opened_at, e.at));
            facts.auto_resolved = false;
            facts.set_resolution(e.resolution);
            facts.end_next_reply(e.at, false);
            count(facts, e.at, 1);
        }
        SupportCaseEvent::CaseAutoResolved(e) => {
            facts.status = CaseStatus::Resolved.as_str().into();
            facts.resolved_at = Some(e.at);
            facts.resolution_seconds = Some(seconds_between(facts.opened_at, e.at));
            facts.auto_resolved = true;
            facts.auto_resolutions += 1;
            facts.end_next_reply(e.at, false);
            count(facts, e.at, 1);
            count(facts, e.at, 2);
        }
        SupportCaseEvent::CaseClosed(e) => {
            facts.status = CaseStatus::Closed.as_str().into();
            facts.closed_at = Some(e.at);
        }
        // The rest are `inert`: no report counts them.
        _ => {}
    }
    true
}

/// Folds one subscription event into its facts; a cancellation that took effect also becomes
/// a row of `cancellations`. Returns false for a subscription whose creation was never seen.
pub(super) fn fold_subscription(
    subscriptions: &mut HashMap<Uuid, SubscriptionFacts>,
    cancellations: &mut Vec<CancellationRow>,
    id: Uuid,
    stored: &StoredEvent,
    event: SubscriptionEvent,
) -> bool {
    if let SubscriptionEvent::SubscriptionCreated(e) = &event {
        subscriptions.insert(
            id,
            SubscriptionFacts {
                subscription_id: id,
                org_id: e.org_id.clone(),
                partner_id: e.channel.partner_id().map(str::to_string),
                product: e.product.clone(),
                plan: e.plan.clone(),
                status: SubscriptionStatus::Upcoming.as_str().into(),
                seats: to_i32(e.seats),
                term_end: e.term_end,
                auto_renew: e.auto_renew,
                version: stored.sequence,
            },
        );
    }
    let Some(facts) = subscriptions.get_mut(&id) else {
        return false;
    };
    facts.version = stored.sequence;
    let status = |s: SubscriptionStatus| s.as_str().to_string();
    match event {
        SubscriptionEvent::SubscriptionActivated(_)
        | SubscriptionEvent::CancellationWithdrawn(_) => {
            facts.status = status(SubscriptionStatus::Active);
        }
        SubscriptionEvent::SeatsIncreased(e) => facts.seats = to_i32(e.to),
        SubscriptionEvent::PlanChanged(e) => facts.plan = e.to,
        SubscriptionEvent::AutoRenewChanged(e) => facts.auto_renew = e.auto_renew,
        SubscriptionEvent::SubscriptionRenewed(e) => {
            facts.term_end = e.term_end;
            facts.seats = to_i32(e.seats);
        }
        SubscriptionEvent::SubscriptionExpired(_) => {
            facts.status = status(SubscriptionStatus::Expired);
        }
        SubscriptionEvent::CancellationScheduled(_) => {
            facts.status = status(SubscriptionStatus::NonRenewing);
        }
        SubscriptionEvent::SubscriptionCancelled(e) => {
            facts.status = status(SubscriptionStatus::Cancelled);
            cancellations.push(CancellationRow {
                subscription_id: id,
                sequence: stored.sequence,
                org_id: facts.org_id.clone(),
                partner_id: facts.partner_id.clone(),
                product: facts.product.clone(),
                plan: facts.plan.clone(),
                seats: facts.seats,
                effective: match e.effective {
                    CancelEffective::Immediately => "immediately",
                    CancelEffective::AtTermEnd => "at_term_end",
                },
                effective_at: e.effective_at,
                reason: e.reason,
            });
        }
        SubscriptionEvent::SubscriptionReactivated(e) => {
            facts.status = status(SubscriptionStatus::Active);
            facts.term_end = e.term_end;
        }
        // Reports attribute a subscription to the partner that manages it.
        SubscriptionEvent::SubscriptionPassedToOrg(_) => facts.partner_id = None,
        SubscriptionEvent::SubscriptionCreated(_)
        | SubscriptionEvent::SeatReductionScheduled(_)
        | SubscriptionEvent::SeatReductionWithdrawn(_)
        | SubscriptionEvent::StoragePurchased(_)
        | SubscriptionEvent::SiteLinked(_)
        | SubscriptionEvent::ContactAdded(_)
        | SubscriptionEvent::ContactRemoved(_)
        | SubscriptionEvent::AppSubscriptionAdded(_)
        | SubscriptionEvent::AppSubscriptionCancelled(_)
        | SubscriptionEvent::BillingAccountChanged(_)
        | SubscriptionEvent::CollectionCancelled(_) => {}
    }
    true
}
