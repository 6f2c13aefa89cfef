//! What the API's account routes and the browser sign-in page share: the client's address,
//! the cookies they set, and where a sign-in may lead back to.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderValue;
use axum::http::request::Parts;

use super::AppState;
use super::auth::SESSION_COOKIE;
use crate::service::accounts::NewSession;

/// `return_to` has at most this many bytes (an authorization request with its PKCE challenge,
/// state and nonce fits many times over).
pub const RETURN_TO_MAX_BYTES: usize = 4096;
/// The client's address: the socket peer, never a header a client can set.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

fn secure(state: &AppState) -> &'static str {
    if state.settings.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when the public URL is https.
pub fn cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        secure(state)
    ))
    .expect("cookie values are base64url tokens")
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(state: &AppState, session: &NewSession) -> HeaderValue {
    cookie(
        state,
        SESSION_COOKIE,
        &session.cookie,
        "/",
        session.ttl_seconds,
    )
}

/// Why `return_to` is refused, if it is: it must be a path on this server (a single `/`
/// first), so that the sign-in can never send the browser to another origin.
pub fn return_to_problem(return_to: &str) -> Option<&'static str> {
    if return_to.is_empty() {
        return Some("must not be empty");
    }
    if return_to.len() > RETURN_TO_MAX_BYTES {
        return Some("must be at most 4096 bytes");
    }
    if !return_to.starts_with('/') {
        return Some("must be a path on this server, starting with /");
    }
    // Browsers read `//host` and `/\host` as another host; some read `\` as `/` anywhere.
    if return_to.starts_with("//") || return_to.contains('\\') {
        return Some("must not start with // or contain \\ (that names another host)");
    }
    // Browsers drop tabs and newlines from URLs, which would turn `/\t/host` into `//host`.
    if return_to
        .chars()
        .any(|c| !c.is_ascii() || c.is_ascii_control() || c == ' ')
    {
        return Some("must be percent-encoded: no spaces, control or non-ASCII characters");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_server() {
        let base =
            reqwest::Url::parse("https://hexabase.example.com/oidc/signin").expect("a base URL");
        for good in [
            "/",
            "/oauth2/authorize?client_id=ws-acme-dev&redirect_uri=http%3A%2F%2F127.0.0.1%3A8000%2F",
            "/oidc/device?user_code=BCDF-GHJK",
            "/%2F%2Fevil.example",
            "/.//evil.example",
            "/https://evil.example",
        ] {
            assert_eq!(return_to_problem(good), None, "{good}");
            let joined = base.join(good).expect("joins");
            assert_eq!(joined.origin(), base.origin(), "{good} -> {joined}");
        }
        for bad in [
            "",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/a\\b",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/a b",
            "/é",
        ] {
            assert!(return_to_problem(bad).is_some(), "{bad:?} was accepted");
        }
        assert!(return_to_problem(&format!("/{}", "a".repeat(RETURN_TO_MAX_BYTES))).is_some());
    }
}
