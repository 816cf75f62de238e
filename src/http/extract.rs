//! Extractors every handler shares: who is calling ([`Ctx`]), a JSON body that also knows its
//! request hash ([`JsonBody`]), and both with the path of a command request ([`Command`]).

use crate::read::Cursor;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use crate::auth::Principal;
use crate::command::CommandMeta;
use crate::idempotency::{request_hash, IdempotencyKey};
use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";
pub const CORRELATION_ID: &str = "x-correlation-id";
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The authenticated caller and the request's identifiers.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub principal: Principal,
    pub request_id: String,
    pub correlation_id: String,
    pub idempotency_key: Option<String>,
}

impl Ctx {
    /// Command metadata for this request; `request_hash` ties an idempotency key to the body.
    pub fn meta(&self, request_hash: &str) -> CommandMeta {
        CommandMeta {
            actor: self.principal.actor(),
            request_id: self.request_id.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.request_id.clone(),
            idempotency: self.idempotency_key.as_ref().map(|key| IdempotencyKey {
                scope: self.principal.token_id.to_string(),
                key: key.clone(),
                request_hash: request_hash.to_string(),
            }),
        }
    }
}

/// Longest request or correlation id taken from a request.
pub const MAX_ID: usize = 128;

/// Whether a caller's request or correlation id may be copied into event metadata: 1 to
/// [`MAX_ID`] visible ASCII characters. Others are replaced (see `http::edge`).
pub fn acceptable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The principal a bearer token stands for now (`None`: unknown or revoked). A partner's
/// relationships are read afresh every time, never cached: a grant or an end is in force for
/// the very next request (and the next page of an open event stream).
pub async fn principal_of(state: &AppState, token: &str) -> Result<Option<Principal>, ApiError> {
    let Some(mut principal) = state.auth.authenticate(token).await? else {
        return Ok(None);
    };
    if principal.role == subdesk_aggregates::ActorRole::Partner {
        let client = state.pool.get().await?;
        principal.reach = crate::relationships::reach_of(&client, &principal).await?;
    }
    Ok(Some(principal))
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("send `Authorization: Bearer <token>`".into()))?;
        let principal = principal_of(state, token)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the token is unknown or revoked".into()))?;
        let request_id = header_text(&parts.headers, REQUEST_ID)
            .filter(|id| acceptable_id(id))
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let correlation_id = header_text(&parts.headers, CORRELATION_ID)
            .filter(|id| acceptable_id(id))
            .unwrap_or_else(|| request_id.clone());
        // Present means well-formed: an empty or blank key is refused, not ignored.
        let idempotency_key = parts
            .headers
            .get(IDEMPOTENCY_KEY)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if let Some(key) = &idempotency_key {
            if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ApiError::BadRequest {
                    code: "invalid_idempotency_key",
                    detail: "an Idempotency-Key is 1 to 255 visible ASCII characters".into(),
                });
            }
        }
        Ok(Self {
            principal,
            request_id,
            correlation_id,
            idempotency_key,
        })
    }
}

/// Query parameters, parsed: the one mapping of a query string that cannot be read (400
/// `invalid_query`, naming the parameter) for every route.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(params)| Self(params))
            .map_err(|rejection| ApiError::BadRequest {
                code: "invalid_query",
                detail: rejection.body_text(),
            })
    }
}

/// A JSON body, parsed, with the hash of method + path + canonical body. Malformed JSON is
/// 400 `malformed_json`; a string or list past its documented bound 422 `field_too_long` /
/// `too_many_items` (see [`super::bounds`]); JSON of the wrong shape 422 `invalid_body`
/// naming the field. An empty body reads as `{}`.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    pub hash: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let method = request.method().as_str().to_string();
        let path = request.uri().path().to_string();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|route| route.as_str().to_string());
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(e.body_text())
            } else {
                ApiError::BadRequest {
                    code: "unreadable_body",
                    detail: e.body_text(),
                }
            }
        })?;
        let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest {
                code: "malformed_json",
                detail: format!("the body is not valid JSON: {e}"),
            })?
        };
        // Every body of the API is an object (or, where a body is optional, `null`): serde
        // would otherwise read a struct from an array of its fields in order.
        if !(value.is_object() || value.is_null()) {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the body is a JSON object",
            ));
        }
        // The route's bounds come first: a list of 50,000 items is refused after one
        // comparison, before anything walks it.
        if let Some(route) = &route {
            super::bounds::check(&method, route, &value)
                .map_err(|out| ApiError::unprocessable(out.code(), out.to_string()))?;
        }
        if contains_nul(&value) {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "text must not contain NUL characters (\\u0000)",
            ));
        }
        let hash = request_hash(&method, &path, &value);
        let value = serde_json::from_value(value).map_err(|e| {
            ApiError::unprocessable(
                "invalid_body",
                format!("the body does not fit this request: {e}"),
            )
        })?;
        Ok(Self { value, hash })
    }
}

/// What a command handler passes on to the command path: the state, the caller and the hash
/// of the request (which ties an `Idempotency-Key` to the body).
#[derive(Clone)]
pub struct Call {
    pub state: AppState,
    pub ctx: Ctx,
    pub hash: String,
}

impl Call {
    /// The caller as the events record them.
    pub fn actor(&self) -> subdesk_aggregates::Actor {
        self.ctx.principal.actor()
    }
}

/// What a handler answers.
pub type Answer = Result<axum::response::Response, ApiError>;

/// A command request: its [`Call`], its path parameters `P` and its body `T`, extracted in
/// that order (so an unauthenticated request is 401 whatever its path and body).
pub struct Command<P, T>(pub Call, pub P, pub T);

impl<P, T> FromRequest<AppState> for Command<P, T>
where
    P: DeserializeOwned + Send,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, state).await?;
        let path = Path::<P>::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "bad_request",
                detail: e.body_text(),
            })?;
        let JsonBody { value, hash } =
            JsonBody::from_request(Request::from_parts(parts, body), state).await?;
        let call = Call {
            state: state.clone(),
            ctx,
            hash,
        };
        Ok(Self(call, path.0, value))
    }
}

/// Whether any string (or key) in `value` holds a NUL character, which PostgreSQL cannot store.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// The `cursor` of a list request: absent, or one a list of `what`s returned (422 otherwise).
pub fn list_cursor(text: Option<&str>, what: &str) -> Result<Option<Cursor>, ApiError> {
    text.map(|text| {
        Cursor::decode(text).ok_or_else(|| {
            let detail = format!("the cursor is not one a {what} list returned");
            ApiError::unprocessable("invalid_cursor", detail)
        })
    })
    .transpose()
}
