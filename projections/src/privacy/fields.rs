//! Which fields of which events are personal data, and whose. The one list: sealing, opening
//! and erasure all go by it (ARCHITECTURE.md repeats it for readers).
//!
//! - Every **actor** (`by`, `author`, `opened_by`, `created_by`: `{id, role}`) other than
//!   the system: its `id` (a customer's or partner user's e-mail address, a staff user's id)
//!   belongs to that actor. So does the event metadata's `actor_id`.
//! - **Addresses** belong to the person they name: a case's `requester`, its `participants`,
//!   a participant or a subscription contact added or removed (`email`), an assignee (and the
//!   previous one).
//! - **Text a person wrote or gave** belongs to them: a case's `summary`, `description` and
//!   `phone` (the requester's), a comment's `body` (its author's), an escalation request's and
//!   a cancellation's `reason` and an attachment's `name` (the actor's). Text of the system's
//!   own (a cancellation reason of an expiry) is not personal.
//!
//! Attachment bytes are not in the log; erasure deletes those the subject uploaded.

use serde_json::Value;

/// Whose a personal field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The field's value is the address that names its subject.
    Itself,
    /// The subject is named by the field at this pointer (an address or an actor's id).
    Field(&'static str),
}

/// A personal field of an event: a JSON pointer into the payload (`*` stands for every
/// element of an array) and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Personal {
    pub pointer: &'static str,
    pub owner: Owner,
}

const fn own(pointer: &'static str) -> Personal {
    Personal {
        pointer,
        owner: Owner::Itself,
    }
}

const fn of(pointer: &'static str, owner: &'static str) -> Personal {
    Personal {
        pointer,
        owner: Owner::Field(owner),
    }
}

/// Payload fields that hold an actor (`{id, role}`).
pub const ACTOR_FIELDS: &[&str] = &["by", "author", "opened_by", "created_by"];

/// The metadata entry that names the actor of a command.
pub const METADATA_ACTOR: &str = "actor_id";

/// The role of the system principal, whose id is not personal.
pub const SYSTEM_ROLE: &str = "system";

/// The personal fields of each event type besides its actors: (aggregate type, event type,
/// fields).
pub const PERSONAL: &[(&str, &str, &[Personal])] = &[
    (
        "SupportCase",
        "CaseOpened",
        &[
            own("/requester"),
            own("/participants/*"),
            of("/summary", "/requester"),
            of("/description", "/requester"),
            of("/phone", "/requester"),
        ],
    ),
    (
        "SupportCase",
        "CaseAssigned",
        &[own("/assignee"), own("/previous")],
    ),
    ("SupportCase", "CommentAdded", &[of("/body", "/author/id")]),
    ("SupportCase", "ParticipantAdded", &[own("/email")]),
    ("SupportCase", "ParticipantRemoved", &[own("/email")]),
    ("SupportCase", "AttachmentAdded", &[of("/name", "/by/id")]),
    (
        "SupportCase",
        "EscalationRequested",
        &[of("/reason", "/by/id")],
    ),
    ("Subscription", "ContactAdded", &[own("/email")]),
    ("Subscription", "ContactRemoved", &[own("/email")]),
    (
        "Subscription",
        "CancellationScheduled",
        &[of("/reason", "/by/id")],
    ),
    (
        "Subscription",
        "SubscriptionCancelled",
        &[of("/reason", "/by/id")],
    ),
];

/// The personal fields of one event type besides its actors.
pub fn personal(aggregate_type: &str, event_type: &str) -> &'static [Personal] {
    PERSONAL
        .iter()
        .find(|(a, e, _)| *a == aggregate_type && *e == event_type)
        .map_or(&[], |(_, _, fields)| fields)
}

/// A place in one event that holds personal data: a concrete pointer (into the payload, or
/// into the metadata) and the normalised address of its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spot {
    pub in_metadata: bool,
    pub pointer: String,
    pub subject: String,
}

/// The subject an address or actor id names, if it names a person: a non-empty string that
/// is not the system's id.
fn subject_at(payload: &Value, pointer: &str) -> Option<String> {
    let value = payload.pointer(pointer)?.as_str()?;
    if let Some(parent) = pointer.strip_suffix("/id") {
        let role = payload
            .pointer(&format!("{parent}/role"))
            .and_then(Value::as_str);
        if role == Some(SYSTEM_ROLE) {
            return None;
        }
    }
    let subject = super::normalize(value);
    (!subject.is_empty()).then_some(subject)
}

/// Every place of personal data in an event, in a stable order.
pub fn spots(
    aggregate_type: &str,
    event_type: &str,
    payload: &Value,
    metadata: &Value,
) -> Vec<Spot> {
    let mut found = Vec::new();
    for field in ACTOR_FIELDS {
        let pointer = format!("/{field}/id");
        if let Some(subject) = subject_at(payload, &pointer) {
            found.push(Spot {
                in_metadata: false,
                pointer,
                subject,
            });
        }
    }
    for field in personal(aggregate_type, event_type) {
        let pointers = match field.pointer.strip_suffix("/*") {
            Some(array) => {
                let len = payload
                    .pointer(array)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                (0..len).map(|i| format!("{array}/{i}")).collect()
            }
            None => vec![field.pointer.to_string()],
        };
        for pointer in pointers {
            if !payload.pointer(&pointer).is_some_and(Value::is_string) {
                continue;
            }
            let subject = match field.owner {
                Owner::Itself => subject_at(payload, &pointer),
                Owner::Field(owner) => subject_at(payload, owner),
            };
            if let Some(subject) = subject {
                found.push(Spot {
                    in_metadata: false,
                    pointer,
                    subject,
                });
            }
        }
    }
    let system = metadata.get("actor_role").and_then(Value::as_str) == Some(SYSTEM_ROLE);
    if !system {
        if let Some(subject) = metadata
            .get(METADATA_ACTOR)
            .and_then(Value::as_str)
            .map(super::normalize)
            .filter(|s| !s.is_empty())
        {
            found.push(Spot {
                in_metadata: true,
                pointer: format!("/{METADATA_ACTOR}"),
                subject,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_opening_names_its_requester_participants_and_opener() {
        let payload = json!({
            "type": "CaseOpened", "requester": "Ann@Acme.example", "summary": "Printer",
            "description": "It jams", "phone": null, "participants": ["bob@acme.example"],
            "opened_by": {"id": "ann@acme.example", "role": "customer"}, "org_id": "acme"
        });
        let metadata = json!({"actor_id": "ann@acme.example", "actor_role": "customer"});
        let found = spots("SupportCase", "CaseOpened", &payload, &metadata);
        let named: Vec<(bool, &str, &str)> = found
            .iter()
            .map(|s| (s.in_metadata, s.pointer.as_str(), s.subject.as_str()))
            .collect();
        assert_eq!(
            named,
            vec![
                (false, "/opened_by/id", "ann@acme.example"),
                (false, "/requester", "ann@acme.example"),
                (false, "/participants/0", "bob@acme.example"),
                (false, "/summary", "ann@acme.example"),
                (false, "/description", "ann@acme.example"),
                (true, "/actor_id", "ann@acme.example"),
            ]
        );
    }

    #[test]
    fn the_system_is_nobody() {
        let payload = json!({"type": "SubscriptionCancelled", "reason": "expired",
                             "by": {"id": "system", "role": "system"}});
        let metadata = json!({"actor_id": "system", "actor_role": "system"});
        assert!(spots("Subscription", "SubscriptionCancelled", &payload, &metadata).is_empty());
    }
}
