//! Who is calling: the [`Caller`] extractor, from an API token (`Authorization: Bearer`) or a
//! session cookie. Unsafe requests on a session must echo its CSRF token in `X-CSRF-Token`
//! (a token request carries no ambient authority, so it needs none).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum_extra::extract::cookie::CookieJar;

use super::AppState;
use super::problem::ApiError;
pub use crate::service::caller::{Caller, Via};
use crate::service::credentials::hash_token;
use crate::store::StoreError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hb_session";
/// The header carrying the CSRF token of a session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The caller, if signed in (for routes open to both).
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    if let Some(token) = bearer(&parts.headers) {
        return match state.store.user_by_api_token(&hash_token(token)).await {
            Ok(user) => Ok(Some(Caller {
                user,
                via: Via::Token,
            })),
            Err(StoreError::NotFound) => Err(ApiError::unauthenticated()),
            Err(other) => Err(other.into()),
        };
    }
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let token_hash = hash_token(cookie.value());
    let session = match state.store.session(&token_hash).await {
        Ok(session) => session,
        Err(StoreError::NotFound) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    if !is_safe(&parts.method) {
        let echoed = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let matches = echoed.is_some_and(|e| {
            // Constant time: compare hashes of equal length.
            blake3::hash(e.as_bytes()) == blake3::hash(session.csrf_token.as_bytes())
        });
        if !matches {
            return Err(ApiError::forbidden(
                "the X-CSRF-Token header is missing or does not match the session",
            )
            .field("X-CSRF-Token"));
        }
    }
    let user = state.store.user(&session.user_id).await?;
    Ok(Some(Caller {
        user,
        via: Via::Session { token_hash },
    }))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state)
            .await?
            .ok_or_else(ApiError::unauthenticated)
    }
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).await.map(MaybeCaller)
    }
}
