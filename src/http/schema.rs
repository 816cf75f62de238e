//! OpenAPI schemas of domain types. The domain crate stays free of HTTP concerns, so its
//! wire enums are described here.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Object;

fn string_enum(values: &[&str], description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .build()
}

pub fn case_status() -> Object {
    string_enum(
        &[
            "open",
            "investigating",
            "waiting_for_customer",
            "resolved",
            "closed",
        ],
        "Where the case stands",
    )
}

pub fn visibility() -> Object {
    string_enum(
        &["public", "internal"],
        "`internal` comments are for support staff only and never reach the customer side",
    )
}

pub fn escalation() -> Object {
    string_enum(
        &["none", "requested", "escalated"],
        "`requested` by the customer side, `escalated` once support accepted",
    )
}
