//! `/v1/orgs/{org_id}/calendar`: the business calendar an org's service levels count on.
//!
//! `PUT` (staff admins) puts a whole calendar in force: IANA time zone, opening intervals per
//! weekday, holidays. It is the `OrgCalendar` aggregate, so every change is an event in the
//! audit trail; setting the calendar in force again appends nothing. `GET` (anyone who sees
//! the org) answers the calendar in force, the configured default (`"source": "default"`) when
//! the org has none of its own. Both read the org's stream on the primary: a change holds for
//! the next SLA clock any process starts; clocks already running keep the due time they
//! started with (it is in their own event).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use subdesk_aggregates::calendar::{CalendarSpec, MAX_HOLIDAYS, MAX_INTERVALS_PER_DAY};
use subdesk_aggregates::org_calendar::{OrgCalendar, OrgCalendarCommand, SetCalendar};
use subdesk_aggregates::ActorRole;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::command::{run, Prepared, Receipt};
use super::error::{ApiError, Problem};
use super::extract::{Command, Ctx};
use super::orgs::visible_org;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_calendar, get_calendar))
}

/// Opening intervals per weekday; a day left out (or empty) is closed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeekHours {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = day_hours)]
    pub mon: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = day_hours)]
    pub tue: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = day_hours)]
    pub wed: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = day_hours)]
    pub thu: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = day_hours)]
    pub fri: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = day_hours)]
    pub sat: Vec<[String; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = day_hours)]
    pub sun: Vec<[String; 2]>,
}

impl WeekHours {
    fn days(self) -> [(&'static str, Vec<[String; 2]>); 7] {
        [
            ("mon", self.mon),
            ("tue", self.tue),
            ("wed", self.wed),
            ("thu", self.thu),
            ("fri", self.fri),
            ("sat", self.sat),
            ("sun", self.sun),
        ]
    }

    fn of(mut hours: BTreeMap<String, Vec<[String; 2]>>) -> Self {
        let mut day = |name: &str| hours.remove(name).unwrap_or_default();
        Self {
            mon: day("mon"),
            tue: day("tue"),
            wed: day("wed"),
            thu: day("thu"),
            fri: day("fri"),
            sat: day("sat"),
            sun: day("sun"),
        }
    }
}

/// A day's opening intervals, `[from, to]` in local time (`24:00` ends at midnight).
fn day_hours() -> utoipa::openapi::schema::Array {
    let time = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(5))
        .max_length(Some(5))
        .pattern(Some("^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"));
    let interval = ArrayBuilder::new()
        .items(time)
        .min_items(Some(2))
        .max_items(Some(2));
    ArrayBuilder::new()
        .items(interval)
        .max_items(Some(MAX_INTERVALS_PER_DAY))
        .description(Some(
            "Opening intervals `[\"HH:MM\", \"HH:MM\"]`, local time, not overlapping",
        ))
        .build()
}

/// A whole calendar.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "timezone": "Asia/Tokyo",
    "hours": {"mon": [["09:00", "12:00"], ["13:00", "18:00"]], "tue": [["09:00", "18:00"]],
              "wed": [["09:00", "18:00"]], "thu": [["09:00", "18:00"]], "fri": [["09:00", "18:00"]]},
    "holidays": ["2026-12-31", "2027-01-01"]
}))]
pub struct CalendarRequest {
    /// An IANA time zone (`Asia/Tokyo`, `Europe/Berlin`, `UTC`).
    #[schema(min_length = 1, max_length = 64, example = "Asia/Tokyo")]
    pub timezone: String,
    #[serde(default)]
    pub hours: WeekHours,
    #[serde(default)]
    #[schema(schema_with = holidays)]
    pub holidays: Vec<NaiveDate>,
}

/// Local dates closed all day (at most 1,000).
fn holidays() -> utoipa::openapi::schema::Array {
    let date = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
        .max_length(Some(10));
    ArrayBuilder::new()
        .items(date)
        .max_items(Some(MAX_HOLIDAYS))
        .description(Some("Local dates (`YYYY-MM-DD`) closed all day"))
        .build()
}

/// The calendar in force for an org.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "org_id": "acme", "source": "org", "timezone": "Asia/Tokyo",
    "hours": {"mon": [["09:00", "18:00"]], "tue": [["09:00", "18:00"]]},
    "holidays": ["2026-12-31"], "set_by": "sam@support.example",
    "set_at": "2026-11-29T09:00:00Z", "version": 1
}))]
pub struct CalendarView {
    pub org_id: String,
    /// `org`: the org's own calendar; `default`: the configured default (the org has none).
    #[schema(pattern = "^(org|default)$")]
    pub source: String,
    pub timezone: String,
    pub hours: WeekHours,
    pub holidays: Vec<NaiveDate>,
    /// Who set the org's calendar, and when (null for the default).
    pub set_by: Option<String>,
    pub set_at: Option<DateTime<Utc>>,
    /// The version of the org's calendar stream (0: never set).
    pub version: i64,
}

/// The answer to setting a calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarReceipt {
    /// The org.
    pub id: String,
    /// The calendar stream's version after the command (unchanged when it changed nothing).
    pub version: i64,
    /// Global position reached.
    pub position: i64,
}

fn calendar_receipt(_: &OrgCalendar, receipt: Receipt) -> CalendarReceipt {
    CalendarReceipt {
        id: receipt.id,
        version: receipt.version,
        position: receipt.position,
    }
}

/// Set the org's business calendar (staff admins). SLA clocks started from now on count its
/// opening hours; running clocks keep their due time. Nothing is appended when it is the
/// calendar already in force.
#[utoipa::path(put, path = "/v1/orgs/{org_id}/calendar", tag = "orgs",
    request_body = CalendarRequest,
    params(("org_id" = String, Path, max_length = 128), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CalendarReceipt),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "The org is visible but the caller is not a staff admin"),
        (status = 404, body = Problem, description = "The org is not visible to the caller"),
        (status = 422, body = Problem, description = "`unknown_timezone`, `invalid_time`, `empty_interval`, `overlapping_intervals`, `never_open`, ...; nothing was appended"),
    ))]
async fn set_calendar(
    Command(call, org_id, request): Command<String, CalendarRequest>,
) -> Result<Response, ApiError> {
    visible_org(&call.ctx.principal, &org_id)?;
    if call.ctx.principal.role != ActorRole::Admin {
        return Err(ApiError::Forbidden(
            "only a staff admin sets an org's business calendar".into(),
        ));
    }
    let hours = request
        .hours
        .days()
        .into_iter()
        .filter(|(_, intervals)| !intervals.is_empty())
        .map(|(day, intervals)| (day.to_string(), intervals))
        .collect();
    let command = OrgCalendarCommand::Set(SetCalendar {
        org_id: org_id.clone(),
        calendar: CalendarSpec {
            timezone: request.timezone,
            hours,
            holidays: request.holidays,
        },
        by: call.actor(),
    });
    run(
        &call.state,
        &call.state.calendars,
        &call.ctx,
        &call.hash,
        axum::http::StatusCode::OK,
        move || async move {
            Ok(Prepared {
                id: org_id,
                command,
                guard: None,
            })
        },
        calendar_receipt,
    )
    .await
}

/// The org's business calendar in force: its own, or the configured default.
#[utoipa::path(get, path = "/v1/orgs/{org_id}/calendar", tag = "orgs",
    params(("org_id" = String, Path, max_length = 128)),
    responses(
        (status = 200, body = CalendarView),
        (status = 401, body = Problem),
        (status = 404, body = Problem, description = "The org is not visible to the caller"),
    ))]
async fn get_calendar(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(org_id): Path<String>,
) -> Result<Json<CalendarView>, ApiError> {
    visible_org(&ctx.principal, &org_id)?;
    let client = state.pool.get().await?;
    let (aggregate, version) = crate::calendars::load_versioned(&**client, &org_id).await?;
    let (source, spec) = match &aggregate.calendar {
        Some(spec) => ("org", spec.clone()),
        None => ("default", state.settings.default_calendar.spec()),
    };
    Ok(Json(CalendarView {
        org_id,
        source: source.into(),
        timezone: spec.timezone,
        hours: WeekHours::of(spec.hours),
        holidays: spec.holidays,
        set_by: aggregate.set_by,
        set_at: aggregate.set_at,
        version,
    }))
}
