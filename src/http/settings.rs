//! Settings people and orgs choose: the language they are mailed in.
//!
//! `GET`/`PUT /v1/me/settings`: the caller's own (any principal with an e-mail address), and
//! for partner users with `access_cases` whether they get alerts on their customers' cases.
//! `GET`/`PUT /v1/orgs/{org_id}/settings`: the org's (read by anyone who sees the org, set by
//! its admin or a staff admin). A person's choice wins over their org's, which wins over the
//! server's configuration (`--mail-org-languages`, `--mail-language`); `null` clears a choice.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use subdesk_aggregates::ActorRole;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Ctx, JsonBody};
use super::orgs::visible_org;
use crate::mail::render::Language;
use crate::mail::settings::{case_alerts, choose, chosen, set_case_alerts, Chooser};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_settings, set_my_settings))
        .routes(routes!(org_settings, set_org_settings))
}

/// A language of mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LanguageTag {
    En,
    Ja,
}

impl From<LanguageTag> for Language {
    fn from(tag: LanguageTag) -> Self {
        match tag {
            LanguageTag::En => Language::English,
            LanguageTag::Ja => Language::Japanese,
        }
    }
}

impl From<Language> for LanguageTag {
    fn from(language: Language) -> Self {
        match language {
            Language::English => LanguageTag::En,
            Language::Japanese => LanguageTag::Ja,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"language": "ja"}))]
pub struct SettingsRequest {
    /// The language of mail; `null` or left out clears the choice (the next one down applies).
    pub language: Option<LanguageTag>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"language": "ja", "case_alerts": false}))]
pub struct MySettingsRequest {
    /// The language of mail; `null` or left out clears the choice (the org's applies).
    pub language: Option<LanguageTag>,
    /// Partner users whose token has `access_cases`: a copy of the customer side's case mails
    /// (confirmations, status changes, replies, escalations) for the cases of every org whose
    /// relationship allows `access_cases`. Left out: unchanged.
    pub case_alerts: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MySettings {
    /// The caller's address.
    pub user: String,
    /// Their own choice, if any.
    pub language: Option<LanguageTag>,
    /// Whether they get alerts on their partner's customers' cases (partner users).
    pub case_alerts: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgSettings {
    pub org_id: String,
    /// The org's choice, if any (people may choose their own).
    pub language: Option<LanguageTag>,
}

/// The caller's user as a mail address (principals without one have no settings).
fn address(ctx: &Ctx) -> Result<String, ApiError> {
    let user = ctx.principal.user.trim().to_lowercase();
    if user.contains('@') {
        Ok(user)
    } else {
        Err(ApiError::Forbidden(
            "settings belong to people; this token's user is not an e-mail address".into(),
        ))
    }
}

/// The caller's own settings.
#[utoipa::path(get, path = "/v1/me/settings", tag = "settings",
    responses((status = 200, body = MySettings), (status = 403, body = Problem)))]
async fn my_settings(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<MySettings>, ApiError> {
    let user = address(&ctx)?;
    let client = state.pool.get().await?;
    let language = chosen(&**client, Chooser::User(&user)).await?;
    let case_alerts = match &ctx.principal.partner_id {
        Some(partner) => case_alerts(&**client, partner, &user).await?,
        None => false,
    };
    Ok(Json(MySettings {
        user,
        language: language.map(Into::into),
        case_alerts,
    }))
}

/// Sets the caller's own settings: the language their mail is written in.
#[utoipa::path(put, path = "/v1/me/settings", tag = "settings", request_body = Option<MySettingsRequest>,
    responses(
        (status = 200, body = MySettings),
        (status = 403, body = Problem, description = "Not a person's token, or `case_alerts` asked for by someone other than a partner user with `access_cases`"),
    ))]
async fn set_my_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    body: JsonBody<Option<MySettingsRequest>>,
) -> Result<Json<MySettings>, ApiError> {
    let user = address(&ctx)?;
    // No body (or `null`) is `{}`: the language cleared, the alerts unchanged.
    let request = body.value.unwrap_or(MySettingsRequest {
        language: None,
        case_alerts: None,
    });
    let partner = ctx
        .principal
        .partner_id
        .as_deref()
        .filter(|_| ctx.principal.role == ActorRole::Partner);
    if request.case_alerts == Some(true)
        && !(partner.is_some() && ctx.principal.has_scope(crate::auth::SCOPE_ACCESS_CASES))
    {
        return Err(ApiError::Forbidden(
            "case alerts are for partner users whose token has access_cases".into(),
        ));
    }
    let client = state.pool.get().await?;
    choose(
        &**client,
        Chooser::User(&user),
        request.language.map(Into::into),
        &ctx.principal.user,
    )
    .await?;
    if let (Some(partner), Some(on)) = (partner, request.case_alerts) {
        set_case_alerts(&**client, partner, &user, on).await?;
    }
    let case_alerts = match partner {
        Some(partner) => case_alerts(&**client, partner, &user).await?,
        None => false,
    };
    Ok(Json(MySettings {
        user,
        language: request.language,
        case_alerts,
    }))
}

/// An org's settings (anyone who sees the org).
#[utoipa::path(get, path = "/v1/orgs/{org_id}/settings", tag = "settings",
    params(("org_id" = String, Path, max_length = 128)),
    responses(
        (status = 200, body = OrgSettings),
        (status = 404, body = Problem, description = "The org is not visible to the caller"),
    ))]
async fn org_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(org_id): Path<String>,
) -> Result<Json<OrgSettings>, ApiError> {
    visible_org(&ctx.principal, &org_id)?;
    let client = state.pool.get().await?;
    let language = chosen(&**client, Chooser::Org(&org_id)).await?;
    Ok(Json(OrgSettings {
        org_id,
        language: language.map(Into::into),
    }))
}

/// Sets an org's settings (its admin, or a staff admin): the language its people are mailed
/// in unless they chose their own.
#[utoipa::path(put, path = "/v1/orgs/{org_id}/settings", tag = "settings",
    params(("org_id" = String, Path, max_length = 128)), request_body = Option<SettingsRequest>,
    responses(
        (status = 200, body = OrgSettings),
        (status = 403, body = Problem, description = "The org is visible but the caller is not its admin nor a staff admin"),
        (status = 404, body = Problem, description = "The org is not visible to the caller"),
    ))]
async fn set_org_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(org_id): Path<String>,
    body: JsonBody<Option<SettingsRequest>>,
) -> Result<Json<OrgSettings>, ApiError> {
    visible_org(&ctx.principal, &org_id)?;
    let principal = &ctx.principal;
    let admin =
        principal.role == ActorRole::Admin || (principal.in_org(&org_id) && principal.org_admin);
    if !admin {
        return Err(ApiError::Forbidden(
            "an org's settings are set by its admin or a staff admin".into(),
        ));
    }
    let language = body.value.and_then(|r| r.language);
    let client = state.pool.get().await?;
    choose(
        &**client,
        Chooser::Org(&org_id),
        language.map(Into::into),
        &principal.user,
    )
    .await?;
    Ok(Json(OrgSettings { org_id, language }))
}
