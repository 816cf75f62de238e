//! Bounds on request bodies and query parameters, enforced from the OpenAPI document itself.
//!
//! Every string field of a request body has a `maxLength` and every list a `maxItems` in the
//! schemas the handlers declare (a test walks `/openapi.json` and fails on any that lacks
//! one). [`check`] holds a parsed body against those bounds before anything else looks at it:
//! before the idempotency hash, before deserialization, long before the domain. A list is
//! measured before its items are visited, so a body of 50,000 participants is refused after
//! one comparison. Because the document is the source of the bounds, it cannot promise a
//! bound the server does not keep, nor the server keep one the document does not state.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// How deep a schema is followed: far deeper than any request body this API takes, and a
/// guard against a schema that refers to itself.
const MAX_DEPTH: usize = 32;

/// The request body schemas and query parameters of every operation, by method and path
/// template.
struct Bounds {
    bodies: HashMap<(String, String), Value>,
    queries: HashMap<(String, String), Vec<QueryParameter>>,
    components: Map<String, Value>,
}

/// A query parameter as the document describes it.
struct QueryParameter {
    name: String,
    schema: Value,
    pattern: Option<regex::Regex>,
}

fn bounds() -> &'static Bounds {
    static BOUNDS: OnceLock<Bounds> = OnceLock::new();
    BOUNDS.get_or_init(|| {
        let document = serde_json::to_value(super::openapi()).unwrap_or_default();
        let components = document
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut bodies = HashMap::new();
        let mut queries = HashMap::new();
        if let Some(paths) = document.get("paths").and_then(Value::as_object) {
            for (path, operations) in paths {
                let Some(operations) = operations.as_object() else {
                    continue;
                };
                for (method, operation) in operations {
                    let key = (method.to_ascii_uppercase(), path.clone());
                    if let Some(schema) =
                        operation.pointer("/requestBody/content/application~1json/schema")
                    {
                        bodies.insert(key.clone(), schema.clone());
                    }
                    let parameters: Vec<QueryParameter> = operation
                        .get("parameters")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
                        .filter_map(|p| {
                            let schema = p.get("schema")?.clone();
                            // Anchored as JSON Schema means it (the patterns here are).
                            let pattern = schema
                                .get("pattern")
                                .and_then(Value::as_str)
                                .and_then(|p| regex::Regex::new(p).ok());
                            Some(QueryParameter {
                                name: p.get("name")?.as_str()?.to_string(),
                                schema,
                                pattern,
                            })
                        })
                        .collect();
                    if !parameters.is_empty() {
                        queries.insert(key, parameters);
                    }
                }
            }
        }
        Bounds {
            bodies,
            queries,
            components,
        }
    })
}

/// Holds the query string of a request to `method` `path` (the route's template) against the
/// constraints its document gives each parameter: `maxLength`, `pattern` and `enum` of text,
/// `minimum` and `maximum` of integers. A value that breaks one is refused as unreadable
/// (400) before the handler runs, so the server refuses exactly what the document excludes.
pub fn check_query(method: &str, path: &str, query: &str) -> Result<(), String> {
    let bounds = bounds();
    let Some(parameters) = bounds.queries.get(&(method.to_string(), path.to_string())) else {
        return Ok(());
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(parameter) = parameters.iter().find(|p| p.name == name) else {
            continue;
        };
        let schema = &parameter.schema;
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if types.contains(&"integer") {
            let number: i64 = value
                .parse()
                .map_err(|_| format!("{name} must be a whole number"))?;
            let below = schema
                .get("minimum")
                .and_then(Value::as_i64)
                .is_some_and(|min| number < min);
            let above = schema
                .get("maximum")
                .and_then(Value::as_i64)
                .is_some_and(|max| number > max);
            if below || above {
                let range = |key| schema.get(key).map_or("…".to_string(), Value::to_string);
                return Err(format!(
                    "{name} must be from {} to {}",
                    range("minimum"),
                    range("maximum")
                ));
            }
            continue;
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            let limit = usize::try_from(max).unwrap_or(usize::MAX);
            if value.chars().nth(limit).is_some() {
                return Err(format!("{name} must be at most {max} characters"));
            }
        }
        if let Some(pattern) = &parameter.pattern {
            if !pattern.is_match(&value) {
                return Err(format!("{name} must match {}", pattern.as_str()));
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            if !values.iter().any(|v| v.as_str() == Some(&*value)) {
                return Err(format!(
                    "{name} is not one of the values the document lists"
                ));
            }
        }
    }
    Ok(())
}

/// A body that passes a bound of its route's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutOfBounds {
    /// A string longer than its `maxLength` (in characters).
    TooLong { field: String, max: u64 },
    /// A list longer than its `maxItems`.
    TooManyItems { field: String, max: u64 },
}

impl OutOfBounds {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "field_too_long",
            Self::TooManyItems { .. } => "too_many_items",
        }
    }
}

impl std::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { field, max } => {
                write!(f, "{field} must be at most {max} characters")
            }
            Self::TooManyItems { field, max } => write!(f, "{field} holds at most {max} items"),
        }
    }
}

/// Holds `body`, sent to `method` `path` (the route's template, e.g. `/v1/cases/{id}`),
/// against the bounds of the route's request schema. A route without a JSON body schema has
/// no bounds to hold.
pub fn check(method: &str, path: &str, body: &Value) -> Result<(), OutOfBounds> {
    let bounds = bounds();
    match bounds.bodies.get(&(method.to_string(), path.to_string())) {
        Some(schema) => walk(&bounds.components, schema, body, "the body", 0),
        None => Ok(()),
    }
}

/// Whether `schema` says anything about a value of `value`'s JSON type (a schema without a
/// type speaks of every value).
fn speaks_of(schema: &Value, value: &Value) -> bool {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let matches = |t: &Value| {
        t.as_str()
            .is_some_and(|t| t == kind || (t == "integer" && kind == "number"))
    };
    match schema.get("type") {
        None => true,
        Some(Value::Array(types)) => types.iter().any(matches),
        Some(t) => matches(t),
    }
}

fn walk(
    components: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    field: &str,
    depth: usize,
) -> Result<(), OutOfBounds> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        return match components.get(name) {
            Some(target) => walk(components, target, value, field, depth + 1),
            None => Ok(()),
        };
    }
    // Alternatives: the bounds of every one that speaks of this kind of value apply (stricter
    // than JSON Schema's `oneOf`, and the same for the bounds this API declares).
    for key in ["allOf", "oneOf", "anyOf"] {
        for alternative in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(components, alternative, value, field, depth + 1)?;
        }
    }
    if !speaks_of(schema, value) {
        return Ok(());
    }
    match value {
        Value::String(text) => {
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                // Counted without walking a string far past the bound.
                let limit = usize::try_from(max).unwrap_or(usize::MAX);
                if text.len() > limit && text.chars().nth(limit).is_some() {
                    return Err(OutOfBounds::TooLong {
                        field: field.to_string(),
                        max,
                    });
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if items.len() as u64 > max {
                    return Err(OutOfBounds::TooManyItems {
                        field: field.to_string(),
                        max,
                    });
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(
                        components,
                        item_schema,
                        item,
                        &format!("{field}[{i}]"),
                        depth + 1,
                    )?;
                }
            }
        }
        Value::Object(members) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, member) in members {
                    if let Some(property) = properties.get(name) {
                        walk(components, property, member, name, depth + 1)?;
                    }
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn components() -> Map<String, Value> {
        json!({
            "Item": {"type": "string", "maxLength": 3},
            "Wrapper": {"type": "object", "properties": {"items": {
                "type": ["array", "null"], "maxItems": 2, "items": {"$ref": "#/components/schemas/Item"}
            }}}
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn check_against(value: Value) -> Result<(), OutOfBounds> {
        let schema = json!({"$ref": "#/components/schemas/Wrapper"});
        walk(&components(), &schema, &value, "the body", 0)
    }

    #[test]
    fn lists_and_strings_within_their_bounds_pass() {
        assert_eq!(check_against(json!({"items": ["abc", "de"]})), Ok(()));
        assert_eq!(
            check_against(json!({"items": null, "other": "x".repeat(99)})),
            Ok(())
        );
    }

    #[test]
    fn a_list_over_its_bound_is_refused_before_its_items_are_looked_at() {
        let refused = check_against(json!({"items": ["abcdef", "x", "y"]}));
        assert_eq!(
            refused,
            Err(OutOfBounds::TooManyItems {
                field: "items".into(),
                max: 2
            })
        );
    }

    #[test]
    fn a_string_over_its_bound_is_refused_counting_characters_not_bytes() {
        assert_eq!(check_against(json!({"items": ["日本語"]})), Ok(()));
        let refused = check_against(json!({"items": ["ok", "日本語!"]}));
        assert_eq!(
            refused,
            Err(OutOfBounds::TooLong {
                field: "items[1]".into(),
                max: 3
            })
        );
    }

    #[test]
    fn a_schema_that_refers_to_itself_ends() {
        let components = json!({"Loop": {"$ref": "#/components/schemas/Loop"}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let schema = json!({"$ref": "#/components/schemas/Loop"});
        assert_eq!(walk(&components, &schema, &json!("x"), "x", 0), Ok(()));
    }
}
