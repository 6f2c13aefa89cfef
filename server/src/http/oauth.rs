//! OAuth's side of the issuer's protocol endpoints in HTTP terms: the error JSON of RFC 6749
//! §5.2 (`error`, `error_description`) with its status and headers, and how a public client
//! names itself (the form, or HTTP Basic with an empty secret); the endpoints' paths relative
//! to the issuer, and the issuer's path on this server ([`IssuerPrefix`]).

use std::collections::BTreeMap;

use axum::extract::Form;
use axum::extract::FromRequestParts;
use axum::extract::rejection::FormRejection;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::ApiError;
use crate::service::issuer::{GrantError, IssuerError, OAuthCode};
use crate::service::tenancy;
use crate::store::StoreError;

/// The discovery document, relative to the issuer.
pub const DISCOVERY: &str = "/.well-known/openid-configuration";
/// The key set.
pub const JWKS: &str = "/oauth2/keys";
/// The authorization endpoint.
pub const AUTHORIZE: &str = "/oauth2/authorize";
/// The token endpoint.
pub const TOKEN: &str = "/oauth2/token";
/// The device authorization endpoint.
pub const DEVICE_AUTHORIZATION: &str = "/oauth2/device_authorization";
/// The userinfo endpoint.
pub const USERINFO: &str = "/oauth2/userinfo";
/// The revocation endpoint.
pub const REVOKE: &str = "/oauth2/revoke";
/// The page where people approve a device (the verification URI).
pub const DEVICE_PAGE: &str = "/device";

/// The path of the issuer URL on this server (`/oidc` for `https://h.example.com/oidc`, `""`
/// at the root), as `dispatch` found it: what the browser endpoints put before their own
/// paths when they send a browser on.
#[derive(Debug, Clone, Default)]
pub struct IssuerPrefix(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IssuerPrefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Clone)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    pub(super) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    fn server(error: &(dyn std::error::Error + 'static)) -> Self {
        // Logged once, with its causes; the client learns nothing more.
        let _ = ApiError::internal(error);
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl From<GrantError> for OAuthError {
    fn from(error: GrantError) -> Self {
        match error {
            GrantError::Refused { code, description } => {
                let status = match code {
                    OAuthCode::InvalidClient | OAuthCode::InvalidToken => StatusCode::UNAUTHORIZED,
                    OAuthCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::BAD_REQUEST,
                };
                Self::new(status, code.as_str(), description)
            }
            failed => Self::server(&failed),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        Self::server(&error)
    }
}

impl From<IssuerError> for OAuthError {
    fn from(error: IssuerError) -> Self {
        Self::server(&error)
    }
}

impl From<tenancy::TenancyError> for OAuthError {
    fn from(error: tenancy::TenancyError) -> Self {
        Self::server(&error)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hexabase\""),
            );
        }
        response
    }
}

/// The form of a token, device or revocation request, or the error naming what is wrong.
pub(super) fn form(
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Result<BTreeMap<String, String>, OAuthError> {
    form.map(|Form(f)| f).map_err(|rejection| {
        OAuthError::invalid_request(format!(
            "the body must be application/x-www-form-urlencoded: {rejection}"
        ))
    })
}

/// The client id of a public client: from the form, or from HTTP Basic with an empty secret
/// (what Go's oauth2 sends first).
pub(super) fn client_id_of(
    headers: &HeaderMap,
    form: &BTreeMap<String, String>,
) -> Result<String, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|b| {
            let decoded = STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| {
                    OAuthError::invalid_client("Authorization: not valid Basic credentials")
                })?;
            let (id, secret) = decoded.split_once(':').unwrap_or((&decoded, ""));
            if !secret.is_empty() {
                return Err(OAuthError::invalid_client(
                    "Authorization: clients are public (PKCE); send no secret",
                ));
            }
            Ok(percent_decode(id))
        })
        .transpose()?;
    match (basic, form.get("client_id")) {
        (Some(a), Some(b)) if &a != b => Err(OAuthError::invalid_request(
            "client_id: differs from the Authorization header's",
        )),
        (Some(id), _) => Ok(id),
        (None, Some(id)) => Ok(id.clone()),
        (None, None) => Err(OAuthError::invalid_client("client_id: missing")),
    }
}

/// Decodes `%XX` and `+` (Basic credentials are form-encoded, RFC 6749 §2.3.1).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(value.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(percent_decode("ws-acme-dev"), "ws-acme-dev");
        assert_eq!(percent_decode("a%3Ab+c"), "a:b c");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%4"), "end%4");
        let headers = HeaderMap::from_iter([(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("ws-acme-dev:"))).unwrap(),
        )]);
        assert_eq!(
            client_id_of(&headers, &BTreeMap::new()).unwrap(),
            "ws-acme-dev"
        );
        let secret = HeaderMap::from_iter([(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("x:secret"))).unwrap(),
        )]);
        assert!(client_id_of(&secret, &BTreeMap::new()).is_err());
    }
}
