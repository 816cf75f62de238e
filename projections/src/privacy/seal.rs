//! Sealing an event's personal fields for storage, and opening them again.
//!
//! A sealed event keeps its shape: each personal field holds `null`, and the payload (or the
//! metadata, for the actor's id) gets a `$sealed` list with one entry per subject:
//! `{"key": <key id>, "fields": [<pointers>], "data": <hex: nonce, AES-256-GCM ciphertext of
//! the JSON array of the fields' values>}`, the key id bound in as associated data.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::fields::Spot;
use super::{open_bytes, seal_bytes, DataKey, PrivacyError, ERASED, SEALED_SUFFIX};

/// The list of sealed entries in a payload or metadata object.
pub const SEALED_FIELD: &str = "$sealed";

/// Seals `spots` of an event in place (see the module doc) and marks its version; `key_of`
/// gives the key of each subject. An event without spots is left as it is.
pub fn seal(
    event_version: &mut String,
    payload: &mut Value,
    metadata: &mut Value,
    spots: &[Spot],
    key_of: impl Fn(&str) -> Option<(Uuid, DataKey)>,
) -> Result<(), PrivacyError> {
    if spots.is_empty() {
        return Ok(());
    }
    for in_metadata in [false, true] {
        // Subject -> its pointers, in the order found.
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for spot in spots.iter().filter(|s| s.in_metadata == in_metadata) {
            groups
                .entry(spot.subject.as_str())
                .or_default()
                .push(spot.pointer.as_str());
        }
        if groups.is_empty() {
            continue;
        }
        let target = if in_metadata {
            &mut *metadata
        } else {
            &mut *payload
        };
        let mut entries = Vec::with_capacity(groups.len());
        for (subject, pointers) in groups {
            let (key_id, key) = key_of(subject).ok_or(PrivacyError::MissingKey)?;
            let mut values = Vec::with_capacity(pointers.len());
            for pointer in &pointers {
                let slot = target
                    .pointer_mut(pointer)
                    .ok_or_else(|| PrivacyError::Malformed(format!("no field {pointer}")))?;
                values.push(std::mem::take(slot));
            }
            let plain =
                serde_json::to_vec(&values).map_err(|e| PrivacyError::Malformed(e.to_string()))?;
            let data = seal_bytes(&key.cipher(), key_id.as_bytes(), &plain);
            entries.push(json!({
                "key": key_id,
                "fields": pointers,
                "data": hex::encode(data),
            }));
        }
        let object = target
            .as_object_mut()
            .ok_or_else(|| PrivacyError::Malformed("not an object".into()))?;
        object.insert(SEALED_FIELD.into(), Value::Array(entries));
    }
    event_version.push_str(SEALED_SUFFIX);
    Ok(())
}

/// The key ids a stored event's sealed entries name (none for an event never sealed).
pub fn key_ids(payload: &Value, metadata: &Value) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for target in [payload, metadata] {
        let entries = target.get(SEALED_FIELD).and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            if let Some(id) = entry.get("key").and_then(Value::as_str) {
                ids.extend(id.parse::<Uuid>().ok());
            }
        }
    }
    ids
}

/// Opens a stored event in place: every sealed field gets its value back, or [`ERASED`] when
/// its key no longer exists; the `$sealed` lists go and the version loses its suffix. `keys`
/// is what [`super::SEALED_KEYS`] selected with the event. An event that was never sealed is
/// left as it is.
pub fn open(
    event_version: &mut String,
    payload: &mut Value,
    metadata: &mut Value,
    keys: Option<&Value>,
) -> Result<(), PrivacyError> {
    let Some(version) = event_version.strip_suffix(SEALED_SUFFIX) else {
        return Ok(());
    };
    *event_version = version.to_string();
    let empty = Map::new();
    let keys = keys.and_then(Value::as_object).unwrap_or(&empty);
    for target in [payload, metadata] {
        let Some(entries) = target.as_object_mut().and_then(|o| o.remove(SEALED_FIELD)) else {
            continue;
        };
        let Value::Array(entries) = entries else {
            return Err(PrivacyError::Malformed("$sealed is not a list".into()));
        };
        for entry in entries {
            open_entry(target, &entry, keys)?;
        }
    }
    Ok(())
}

fn open_entry(
    target: &mut Value,
    entry: &Value,
    keys: &Map<String, Value>,
) -> Result<(), PrivacyError> {
    let malformed = |what: &str| PrivacyError::Malformed(what.to_string());
    let key_id: Uuid = entry
        .get("key")
        .and_then(Value::as_str)
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| malformed("entry without a key id"))?;
    let pointers: Vec<&str> = entry
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("entry without fields"))?
        .iter()
        .map(|p| {
            p.as_str()
                .ok_or_else(|| malformed("a field is not a pointer"))
        })
        .collect::<Result<_, _>>()?;
    let values: Vec<Value> = match keys.get(&key_id.to_string()) {
        None => vec![Value::String(ERASED.into()); pointers.len()],
        Some(wrapped) => {
            let wrapped = wrapped
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| malformed("a wrapped key is not hex"))?;
            let key = super::master()?.unwrap_key(key_id, &wrapped)?;
            let data = entry
                .get("data")
                .and_then(Value::as_str)
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| malformed("entry data is not hex"))?;
            let plain = open_bytes(&key.cipher(), key_id.as_bytes(), &data)
                .ok_or(PrivacyError::Decrypt(key_id))?;
            serde_json::from_slice(&plain).map_err(|_| PrivacyError::Decrypt(key_id))?
        }
    };
    if values.len() != pointers.len() {
        return Err(malformed("entry values do not match its fields"));
    }
    for (pointer, value) in pointers.into_iter().zip(values) {
        let slot = target
            .pointer_mut(pointer)
            .ok_or_else(|| malformed("a sealed field is missing"))?;
        *slot = value;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::privacy::fields::spots;
    use crate::privacy::MasterKey;

    fn keys_for(subjects: &[&str]) -> HashMap<String, (Uuid, DataKey)> {
        subjects
            .iter()
            .map(|s| (s.to_string(), (Uuid::now_v7(), DataKey::generate())))
            .collect()
    }

    fn stored_keys(
        master: &MasterKey,
        keys: &HashMap<String, (Uuid, DataKey)>,
        but: &str,
    ) -> Value {
        Value::Object(
            keys.iter()
                .filter(|(s, _)| s.as_str() != but)
                .map(|(_, (id, key))| {
                    (
                        id.to_string(),
                        Value::String(hex::encode(master.wrap(*id, key))),
                    )
                })
                .collect(),
        )
    }

    fn opening() -> (Value, Value) {
        (
            json!({
                "type": "CaseOpened", "org_id": "acme", "requester": "ann@acme.example",
                "summary": "Printer jams", "description": "Since Monday", "phone": "+81 3 1234",
                "participants": ["bob@acme.example", "cy@acme.example"],
                "opened_by": {"id": "ann@acme.example", "role": "customer"}
            }),
            json!({"actor_id": "ann@acme.example", "actor_role": "customer", "request_id": "r1"}),
        )
    }

    /// The process's master key, and the opening sealed with fresh keys for its subjects.
    #[allow(clippy::type_complexity)]
    fn sealed_opening() -> (
        MasterKey,
        HashMap<String, (Uuid, DataKey)>,
        (String, Value, Value),
    ) {
        let _ = crate::privacy::install(MasterKey::generate());
        let master = crate::privacy::master().expect("installed").clone();
        let (mut payload, mut metadata) = opening();
        let mut version = "2.3".to_string();
        let found = spots("SupportCase", "CaseOpened", &payload, &metadata);
        let keys = keys_for(&["ann@acme.example", "bob@acme.example", "cy@acme.example"]);
        seal(&mut version, &mut payload, &mut metadata, &found, |s| {
            keys.get(s).cloned()
        })
        .expect("seal");
        (master, keys, (version, payload, metadata))
    }

    #[test]
    fn a_sealed_event_holds_no_personal_text_and_opens_to_what_it_was() {
        let (master, keys, (version, payload, metadata)) = sealed_opening();
        {
            let (original, original_meta) = opening();
            assert_eq!(version, "2.3+sealed");
            let stored = format!("{payload}{metadata}");
            for secret in ["ann@", "bob@", "cy@", "Printer", "Monday", "1234"] {
                assert!(!stored.contains(secret), "{secret} in {stored}");
            }
            assert_eq!(payload["org_id"], "acme");
            assert_eq!(metadata["request_id"], "r1");

            let all = stored_keys(&master, &keys, "");
            let (mut p, mut m, mut v) = (payload.clone(), metadata.clone(), version.clone());
            open(&mut v, &mut p, &mut m, Some(&all)).expect("open");
            assert_eq!((v.as_str(), &p, &m), ("2.3", &original, &original_meta));

            // Bob's key destroyed: his address reads as erased, nothing else changes.
            let without_bob = stored_keys(&master, &keys, "bob@acme.example");
            let (mut p, mut m, mut v) = (payload.clone(), metadata.clone(), version.clone());
            open(&mut v, &mut p, &mut m, Some(&without_bob)).expect("open");
            assert_eq!(p["participants"], json!([ERASED, "cy@acme.example"]));
            assert_eq!(p["requester"], "ann@acme.example");

            // Ann's key destroyed: her address, her text and her actor id are erased.
            let without_ann = stored_keys(&master, &keys, "ann@acme.example");
            let (mut p, mut m, mut v) = (payload.clone(), metadata.clone(), version);
            open(&mut v, &mut p, &mut m, Some(&without_ann)).expect("open");
            for field in ["requester", "summary", "description", "phone"] {
                assert_eq!(p[field], ERASED, "{field}");
            }
            assert_eq!(p["opened_by"], json!({"id": ERASED, "role": "customer"}));
            assert_eq!(m["actor_id"], ERASED);
            assert_eq!(m["request_id"], "r1");
        }
    }

    #[test]
    fn altered_ciphertext_is_an_error_not_an_erasure() {
        let (master, keys, (mut version, mut payload, mut metadata)) = sealed_opening();
        let data = payload["$sealed"][0]["data"]
            .as_str()
            .expect("data")
            .to_string();
        let flipped = format!(
            "{}{}",
            &data[..data.len() - 1],
            if data.ends_with('0') { "1" } else { "0" }
        );
        payload["$sealed"][0]["data"] = Value::String(flipped);
        let all = stored_keys(&master, &keys, "");
        let result = open(&mut version, &mut payload, &mut metadata, Some(&all));
        assert!(
            matches!(result, Err(PrivacyError::Decrypt(_))),
            "{result:?}"
        );
    }

    #[test]
    fn an_event_never_sealed_opens_as_it_is() {
        let (mut payload, mut metadata) = opening();
        let mut version = "2.3".to_string();
        open(&mut version, &mut payload, &mut metadata, None).expect("open");
        assert_eq!((version.as_str(), (payload, metadata)), ("2.3", opening()));
    }
}
