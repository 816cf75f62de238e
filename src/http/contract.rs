//! What every operation of the API may answer besides its own responses, added to the
//! OpenAPI document in one place so that the document stays true as routes are added:
//!
//! - every error response is `application/problem+json` (RFC 9457), never plain JSON;
//! - 503 on every route (the database is unavailable or asked for a retry, a read model did
//!   not catch up, the request ran past its time limit), with `Retry-After`;
//! - 401 on every route that takes a token;
//! - 400 on every route with a path or query parameter (`invalid_text`: NUL in the path or
//!   query; `invalid_query`);
//! - on every route with a JSON body: 400 (`malformed_json`), 413 (over 1 MiB) and 422
//!   (`invalid_body`, `field_too_long`, `too_many_items`);
//! - 422 (`unknown_position`) on every route that takes `min_position`;
//! - 409 on every command (an operation that takes `Idempotency-Key`):
//!   `idempotency_key_in_use`, `concurrency_conflict`.
//!
//! [`changed`] is what a command on an existing resource answers besides: its receipt, 403,
//! 404 and 422 (a domain rule's code).
//!
//! A response an operation declares itself is kept as it is (only its content type is put
//! right).

use std::collections::BTreeMap;

use utoipa::openapi::content::Content;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::IntoParams;

const PROBLEM: &str = "application/problem+json";

/// A problem+json response described by `description`.
pub fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
        .into()
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| problem(description));
}

/// What a command on an existing resource answers: 200 with `receipt` (a schema name), 403
/// (the caller sees the resource but may not take the action), 404 (it does not exist, or
/// the caller does not see it) and 422 (a domain rule refused the command: its code). An
/// operation may list one of them again after this to describe it better.
pub fn changed(receipt: &str) -> BTreeMap<String, RefOr<Response>> {
    let ok = ResponseBuilder::new()
        .description("The command was accepted: its receipt")
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(receipt))),
        )
        .build()
        .into();
    BTreeMap::from([
        ("200".to_string(), ok),
        (
            "403".to_string(),
            problem("The caller sees the resource but may not take this action"),
        ),
        (
            "404".to_string(),
            problem("No such resource, or the caller does not see it"),
        ),
        (
            "422".to_string(),
            problem("A rule refused the command (the problem's `code`); nothing was appended"),
        ),
    ])
}

/// The `Idempotency-Key` header every command takes: a retry with the same key and body
/// answers the first response again (see `http::extract`; its schema is set by [`complete`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Idempotent {
    #[param(rename = "Idempotency-Key")]
    pub idempotency_key: Option<String>,
}

/// Whether security requirements ask for a token (`security(())` is one empty requirement:
/// no token needed).
fn takes_token(requirements: &[utoipa::openapi::security::SecurityRequirement]) -> bool {
    requirements.iter().any(|r| {
        serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    })
}

/// `document` with the responses every route shares.
pub fn complete(mut document: OpenApi) -> OpenApi {
    let global = document.security.as_deref().is_some_and(takes_token);
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(operation, global);
        }
    }
    document
}

/// What the server accepts as an `Idempotency-Key` (`http::extract`): 1 to 255 visible ASCII
/// characters.
fn idempotency_key_schema() -> RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some("^[!-~]+$"))
        .into()
}

fn complete_operation(operation: &mut Operation, global_security: bool) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if let RefOr::T(parameter) = parameter {
            if parameter.parameter_in == ParameterIn::Header
                && parameter.name.eq_ignore_ascii_case("Idempotency-Key")
            {
                parameter.schema = Some(idempotency_key_schema());
            }
        }
    }
    let secured = operation
        .security
        .as_deref()
        .map_or(global_security, takes_token);
    let parameters: Vec<(bool, String)> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some((
                matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query),
                p.name.clone(),
            )),
            RefOr::Ref(_) => None,
        })
        .collect();
    let json_body = matches!(
        &operation.request_body,
        Some(RefOr::T(body)) if body.content.contains_key("application/json")
    );
    // Errors are problem documents.
    for (status, response) in operation.responses.responses.iter_mut() {
        let error = status.starts_with('4') || status.starts_with('5') || status == "default";
        if let (true, RefOr::T(response)) = (error, response) {
            if let Some(json) = response.content.shift_remove("application/json") {
                response.content.entry(PROBLEM.to_string()).or_insert(json);
            }
        }
    }
    add(
        operation,
        "503",
        "Try again shortly (`Retry-After`): `database_unavailable`, `statement_timeout`, \
         `serialization_failure`, `deadlock_detected`, `lock_not_available`, \
         `database_read_only`, `too_many_connections`, `insufficient_resources`, \
         `read_model_behind`, `request_timeout`",
    );
    if secured {
        add(operation, "401", "No token, or an unknown or revoked one");
    }
    if parameters
        .iter()
        .any(|(in_path_or_query, _)| *in_path_or_query)
    {
        add(
            operation,
            "400",
            "A path or query value cannot be read: `invalid_text` (NUL), `invalid_query`",
        );
    }
    if json_body {
        add(
            operation,
            "400",
            "The body is not JSON (`malformed_json`), or a path or query value cannot be read",
        );
        add(
            operation,
            "413",
            "The body is larger than 1 MiB (`payload_too_large`)",
        );
        add(
            operation,
            "422",
            "The body breaks a rule or a bound: `invalid_body`, `field_too_long`, \
             `too_many_items`, or a domain rule's code; nothing was appended",
        );
    }
    if parameters.iter().any(|(_, name)| name == "Idempotency-Key") {
        add(
            operation,
            "409",
            "`idempotency_key_in_use`: another request with this `Idempotency-Key` was \
             accepted; `concurrency_conflict`: concurrent changes outran the retries",
        );
    }
    if parameters.iter().any(|(_, name)| name == "min_position") {
        add(
            operation,
            "422",
            "`unknown_position`: no command was ever given this position",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_answers_errors_as_problem_documents_and_names_the_shared_ones() {
        let document = serde_json::to_value(super::super::openapi()).expect("document");
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let responses = operation["responses"].as_object().expect("responses");
                assert!(responses.contains_key("503"), "{method} {path}");
                for (status, response) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let content = response["content"].as_object().expect("content");
                        assert!(content.contains_key(PROBLEM), "{method} {path} {status}");
                        assert!(!content.contains_key("application/json"));
                    }
                }
            }
        }
        let open = &document["paths"]["/v1/cases"]["post"]["responses"];
        for status in ["400", "401", "413", "422"] {
            assert!(open.get(status).is_some(), "POST /v1/cases {status}");
        }
        let health = &document["paths"]["/healthz"]["get"]["responses"];
        assert!(health.get("401").is_none(), "healthz takes no token");
    }
}
