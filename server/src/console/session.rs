//! Who is using the console: [`ConsoleSession`], the API's cookie session (the same cookie
//! `POST /api/v1/auth/login` and the issuer's sign-in page set); a browser without one is
//! sent to the console's sign-in page with `return_to`. Every form carries a CSRF token:
//! the session's own for signed-in forms ([`SignedForm`]), a double-submit cookie for the
//! sign-in and sign-up forms ([`PublicForm`]); both are compared in constant time.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

use super::layout::{Chrome, message};
use crate::http::AppState;
use crate::http::auth::SESSION_COOKIE;
use crate::http::signin::browser_session;
use crate::service::caller::{Caller, Via};
use crate::service::credentials::{generate_token, hash_token};
use crate::service::oidc::form_encode;
use crate::service::submit::{KEY_MAX, RequestKey};

/// The console's sign-in page.
pub const LOGIN: &str = "/login";
/// The cookie carrying the CSRF token of the sign-in and sign-up forms (double submit).
pub const FORM_COOKIE: &str = "hb_form";
/// The form field every console form carries its CSRF token in.
pub const CSRF_FIELD: &str = "csrf_token";

/// A signed-in person using the console.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// The person, as the use cases take them.
    pub caller: Caller,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
}

impl ConsoleSession {
    /// The chrome of a page of this person titled `title`.
    pub fn chrome(&self, title: impl Into<String>) -> Chrome {
        Chrome {
            user: Some(self.caller.user.email.clone()),
            csrf: self.csrf.clone(),
            ..Chrome::titled(title)
        }
    }

    /// Whether this person is the platform administrator.
    pub fn is_admin(&self) -> bool {
        self.caller.user.is_admin
    }
}

/// The session of the browser sending `headers`, if it has one.
async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<ConsoleSession>, Response> {
    let found = browser_session(state, headers)
        .await
        .map_err(|error| internal(&error))?;
    let token_hash = CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| hash_token(c.value()));
    Ok(found
        .zip(token_hash)
        .map(|((user, csrf), token_hash)| ConsoleSession {
            caller: Caller {
                user,
                via: Via::Session { token_hash },
            },
            csrf,
        }))
}

/// The page saying something failed on our side; the error is logged once with its chain.
pub fn internal(error: &(dyn std::error::Error + 'static)) -> Response {
    let _ = crate::http::ApiError::internal(error);
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        &Chrome::titled("Something went wrong"),
        "Something went wrong",
        "An internal error happened; try again later.",
    )
}

/// Where a signed-out browser is sent to come back to `parts`' page once signed in.
fn to_login(parts: &Parts) -> Response {
    let back = if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned()
    } else {
        "/".to_owned()
    };
    Redirect::to(&format!("{LOGIN}?return_to={}", form_encode(&back))).into_response()
}

impl FromRequestParts<AppState> for ConsoleSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match session_of(state, &parts.headers).await? {
            Some(session) => Ok(session),
            None => Err(to_login(parts)),
        }
    }
}

/// The session, if the browser has one (pages open to everyone).
#[derive(Debug, Clone)]
pub struct MaybeSession(pub Option<ConsoleSession>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Ok(Self(session_of(state, &parts.headers).await?))
    }
}

/// A submitted form's fields, in order; a name may repeat (checkboxes).
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed of nothing; `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The value of `name`, `None` when absent or empty.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The fields without the CSRF token, to show the form again as typed.
    pub fn kept(&self) -> std::collections::BTreeMap<String, String> {
        let mut kept = std::collections::BTreeMap::new();
        for (key, value) in &self.0 {
            if key != CSRF_FIELD && !key.contains("password") {
                kept.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        kept
    }
}

/// Whether `echoed` is `expected`, in constant time (hashes of equal length are compared).
pub fn same_token(echoed: &str, expected: &str) -> bool {
    !echoed.is_empty()
        && !expected.is_empty()
        && blake3::hash(echoed.as_bytes()) == blake3::hash(expected.as_bytes())
}

/// The body of a form post, as fields.
async fn fields_of(request: Request, state: &AppState) -> Result<Fields, Response> {
    axum::Form::<Vec<(String, String)>>::from_request(request, state)
        .await
        .map(|axum::Form(fields)| Fields(fields))
        .map_err(|_| {
            message(
                StatusCode::BAD_REQUEST,
                &Chrome::titled("Bad form"),
                "The form could not be read",
                "Send the form as application/x-www-form-urlencoded.",
            )
        })
}

fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        &Chrome::titled("Form expired"),
        "The form has expired",
        "csrf_token: missing or not this session's; go back, reload the page and send the form again.",
    )
}

/// The form field carrying a form's retry key: a new one each time a page is rendered, so
/// that sending the same form twice (a double click, a reload) makes one commit.
pub const REQUEST_FIELD: &str = "request_id";

/// A form posted by a signed-in person, its CSRF token checked against the session's.
#[derive(Debug, Clone)]
pub struct SignedForm {
    /// The person.
    pub session: ConsoleSession,
    /// The form's fields.
    pub fields: Fields,
    /// The submission's retry key: the form's [`REQUEST_FIELD`] (or a fresh one), scoped to
    /// this route, with a digest of the fields.
    pub key: RequestKey,
}

/// The retry key of a form posted to `parts` with `fields`.
fn form_key(parts: &Parts, fields: &Fields) -> RequestKey {
    let mut body = blake3::Hasher::new();
    for (name, value) in &fields.0 {
        if name != CSRF_FIELD && name != REQUEST_FIELD {
            for part in [name, value] {
                body.update(&(part.len() as u64).to_le_bytes());
                body.update(part.as_bytes());
            }
        }
    }
    let key = Some(fields.get(REQUEST_FIELD))
        .filter(|k| {
            (1..=KEY_MAX).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    RequestKey::new(
        REQUEST_FIELD,
        key,
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.path_and_query().map_or("", |p| p.as_str()),
        body.finalize(),
    )
}

impl FromRequest<AppState> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = ConsoleSession::from_request_parts(&mut parts, state).await?;
        let kept = parts.clone();
        let fields = fields_of(Request::from_parts(parts, body), state).await?;
        if !same_token(fields.get(CSRF_FIELD), &session.csrf) {
            return Err(csrf_refused());
        }
        let key = form_key(&kept, &fields);
        Ok(Self {
            session,
            fields,
            key,
        })
    }
}

/// A form posted without a session (sign in, sign up), its CSRF token checked against the
/// [`FORM_COOKIE`] the form's page set.
#[derive(Debug, Clone)]
pub struct PublicForm {
    /// The form's fields.
    pub fields: Fields,
    /// The form's CSRF token, to show the form again.
    pub csrf: String,
    /// The submission's retry key (see [`SignedForm::key`]).
    pub key: RequestKey,
}

impl FromRequest<AppState> for PublicForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let cookie = CookieJar::from_headers(request.headers())
            .get(FORM_COOKIE)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        let (parts, body) = request.into_parts();
        let kept = parts.clone();
        let fields = fields_of(Request::from_parts(parts, body), state).await?;
        if !same_token(fields.get(CSRF_FIELD), &cookie) {
            return Err(csrf_refused());
        }
        let key = form_key(&kept, &fields);
        Ok(Self {
            csrf: cookie,
            fields,
            key,
        })
    }
}

/// The CSRF token of a public form for the browser sending `headers`: its [`FORM_COOKIE`],
/// or a new one with the `Set-Cookie` that stores it.
pub fn public_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match CookieJar::from_headers(headers).get(FORM_COOKIE) {
        Some(cookie) if !cookie.value().is_empty() => (cookie.value().to_owned(), None),
        _ => {
            let token = generate_token("");
            let cookie = crate::http::session::cookie(state, FORM_COOKIE, &token, "/", 3600);
            (token, Some(cookie))
        }
    }
}

/// Adds `cookie` (a `Set-Cookie` value) to `response`.
pub fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
