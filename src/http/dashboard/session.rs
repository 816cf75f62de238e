//! Dashboard sessions: the sign-in form trades an API token for a session, so that the token
//! never travels in a URL and the page's script never holds it.
//!
//! A session id is 256 random bits, sent only in an `HttpOnly`, `SameSite=Strict` cookie
//! scoped to `/dashboard` (plus `Secure` when the request came through HTTPS, as a proxy's
//! `X-Forwarded-Proto` says). The database keeps only its sha256, the token it stands for, and
//! an expiry (migration V8): revoking the token ends its sessions at the next request, and a
//! stolen database cannot be replayed as sessions.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subdesk_aggregates::ActorRole;

use crate::auth::Principal;

pub const COOKIE: &str = "subdesk_session";
/// How long a session lasts from sign-in.
pub const LIFETIME_SECONDS: i64 = 8 * 3600;

fn hash(session: &str) -> Vec<u8> {
    Sha256::digest(session.as_bytes()).to_vec()
}

/// Starts a session for `principal`'s token; returns the session id for the cookie.
/// Sessions past their expiry are deleted on the way.
pub async fn start(
    client: &impl tokio_postgres::GenericClient,
    principal: &Principal,
) -> Result<String, tokio_postgres::Error> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let session = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    client
        .execute(
            "DELETE FROM dashboard_sessions WHERE expires_at < now()",
            &[],
        )
        .await?;
    client
        .execute(
            "INSERT INTO dashboard_sessions (session_hash, token_id, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3))",
            &[
                &hash(&session),
                &principal.token_id,
                &(LIFETIME_SECONDS as f64),
            ],
        )
        .await?;
    Ok(session)
}

/// The principal of a live session: not expired, its token not revoked.
pub async fn principal(
    client: &impl tokio_postgres::GenericClient,
    session: &str,
) -> Result<Option<Principal>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT t.id, t.role, t.user_id, t.org_id, t.org_admin, t.partner_id, t.scopes \
               FROM dashboard_sessions s JOIN api_tokens t ON t.id = s.token_id \
              WHERE s.session_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL",
            &[&hash(session)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let role: String = row.try_get(1)?;
    let Ok(role) = role.parse::<ActorRole>() else {
        return Ok(None);
    };
    Ok(Some(Principal {
        token_id: row.try_get(0)?,
        role,
        user: row.try_get(2)?,
        org_id: row.try_get(3)?,
        org_admin: row.try_get(4)?,
        partner_id: row.try_get(5)?,
        scopes: row.try_get(6)?,
        reach: Default::default(),
    }))
}

/// Ends a session (signing out).
pub async fn end(
    client: &impl tokio_postgres::GenericClient,
    session: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM dashboard_sessions WHERE session_hash = $1",
            &[&hash(session)],
        )
        .await?;
    Ok(())
}

/// The session id the request's `Cookie` header carries, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

/// The `Set-Cookie` value that hands out `session`.
pub fn set_cookie(session: &str, request: &HeaderMap) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={session}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECONDS}{}",
        secure(request)
    ))
    .ok()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(request: &HeaderMap) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(request)
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; subdesk_session=abc123; lang=en"),
        );
        assert_eq!(from_headers(&headers).as_deref(), Some("abc123"));
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_https() {
        let plain = set_cookie("abc", &HeaderMap::new()).expect("cookie");
        let plain = plain.to_str().expect("text");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let secure = set_cookie("abc", &proxied).expect("cookie");
        assert!(secure.to_str().expect("text").ends_with("; Secure"));
    }
}
