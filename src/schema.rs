//! OpenAPI schemas of domain types. The domain crate stays free of HTTP concerns, so its
//! wire enums are described here.

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::Object;

/// A partner id: a domain-like name (`subdesk_aggregates::partner_relationship::is_valid_partner_id`).
pub const PARTNER_ID_PATTERN: &str = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";

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

pub fn request_type() -> Object {
    string_enum(
        &["technical", "billing", "account"],
        "What the case is about (`technical` when not given)",
    )
}

pub fn visibility() -> Object {
    string_enum(
        &["public", "internal"],
        "`internal` comments are for support staff only and never reach the customer side",
    )
}

pub fn subscription_status() -> Object {
    string_enum(
        &["upcoming", "active", "non_renewing", "cancelled", "expired"],
        "Where the subscription stands: `upcoming` (term starts later), `active`, \
         `non_renewing` (cancellation scheduled at term end), `cancelled`, `expired`",
    )
}

pub fn cancel_effective() -> Object {
    string_enum(
        &["at_term_end", "immediately"],
        "`at_term_end` (default): runs to its bill date and does not renew; `immediately`: \
         ends now. Either way every active app is cancelled when the cancellation takes effect",
    )
}

pub fn partner_scope() -> Object {
    string_enum(
        &["view_customers", "access_cases"],
        "`view_customers`: the subscriptions the partner sold to the org; `access_cases`: the \
         org's cases, as its admin",
    )
}

pub fn app_status() -> Object {
    string_enum(
        &["active", "cancelled"],
        "Where the app subscription stands",
    )
}

/// `{"kind":"direct"}` or `{"kind":"partner","partner_id":"..."}`.
pub fn channel() -> Schema {
    let kind = |value: &str, description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([value]))
            .description(Some(description))
    };
    let direct = ObjectBuilder::new()
        .property(
            "kind",
            kind(
                "direct",
                "Sold directly; managed by the customer's org admin",
            ),
        )
        .required("kind");
    let partner = ObjectBuilder::new()
        .property(
            "kind",
            kind(
                "partner",
                "Sold through a partner, who manages it; read-only for the customer except \
                 site, contacts and cancelling",
            ),
        )
        .required("kind")
        .property(
            "partner_id",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(63))
                .pattern(Some(PARTNER_ID_PATTERN))
                .description(Some("The selling partner")),
        )
        .required("partner_id");
    Schema::OneOf(
        OneOfBuilder::new()
            .item(direct)
            .item(partner)
            // Leaving it out and `null` both mean the caller's own channel.
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(
                "How the subscription is sold (defaults to the caller's channel: the partner's \
                 own for partners, direct for everyone else)",
            ))
            .build(),
    )
}

pub fn escalation() -> Object {
    string_enum(
        &["none", "requested", "escalated"],
        "`requested` by the customer side, `escalated` once support accepted",
    )
}

/// Schema-only types: what a request's list items are on the wire, with their bounds.
macro_rules! bounded_string {
    ($name:ident, $max:expr, $description:expr) => {
        #[doc = $description]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some($max))
                    .description(Some($description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

bounded_string!(
    EmailAddress,
    254,
    "An e-mail address (at most 254 characters)."
);
bounded_string!(ProductName, 255, "A product name (at most 255 characters).");
bounded_string!(
    EventTypePattern,
    100,
    "An event name (`case.opened`) or a prefix ending in `*` (`case.*`, `*`)."
);

/// A partner scope by name.
pub struct PartnerScopeName;

impl utoipa::PartialSchema for PartnerScopeName {
    fn schema() -> utoipa::openapi::RefOr<Schema> {
        Schema::Object(partner_scope()).into()
    }
}

impl utoipa::ToSchema for PartnerScopeName {}

pub fn token_role() -> Object {
    string_enum(
        &["customer", "partner", "agent", "admin", "auditor"],
        "The token's role",
    )
}
