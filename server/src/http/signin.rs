//! Pages for browsers, served under the issuer's path beside the device page: the sign-in page
//! (`/signin?return_to=<path>`), and what the issuer's browser endpoints share: escaped HTML
//! pages with headers that keep them out of caches and frames, the browser's session, and the
//! check that `return_to` stays on this server.
//!
//! The page signs in with an email and password through the same service as
//! `POST /api/v1/auth/login` (its rate limits, its sessions and cookie), or sends the browser
//! through a configured external provider (`/api/v1/auth/oidc/{provider}/start`); either way
//! the browser comes back to `return_to`. A login CSRF token rides in a cookie and in the form
//! (double submit), so another site cannot sign a browser in as someone else.

use std::collections::BTreeMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;

use super::auth::SESSION_COOKIE;
use super::oauth::{AUTHORIZE, IssuerPrefix};
use super::session::{ClientAddr, cookie, return_to_problem, session_cookie};
use super::{ApiError, AppState};
use crate::service::accounts;
use crate::service::credentials::{generate_token, hash_token};
use crate::service::issuer::is_loopback_redirect;
use crate::service::oidc::form_encode;
use crate::store::{StoreError, User};

/// The sign-in page, relative to the issuer.
pub const SIGNIN: &str = "/signin";
/// The cookie holding the sign-in form's CSRF token (double submit).
pub const SIGNIN_CSRF_COOKIE: &str = "hb_signin";
/// How long a sign-in form stays good (its CSRF cookie), in seconds.
const FORM_TTL_SECONDS: i64 = 3600;

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// An HTML page: never cached, never framed, no script, forms post only to this server.
pub fn page(status: StatusCode, body: &str) -> Response {
    page_posting_to(status, body, Some("'self'"))
}

/// [`page`] whose forms may lead to `form_action` (a CSP source list; `None`: anywhere).
fn page_posting_to(status: StatusCode, body: &str, form_action: Option<&str>) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Hexabase sign-in</title></head><body><h1>Hexabase</h1>{body}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let policy = match form_action {
        Some(sources) => format!(
            "default-src 'none'; form-action {sources}; frame-ancestors 'none'; base-uri 'none'"
        ),
        None => "default-src 'none'; frame-ancestors 'none'; base-uri 'none'".to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Where the sign-in form may lead, as a CSP `form-action` source list: browsers hold the
/// whole redirect chain after a form to it, and signing in for an authorization request ends
/// at the client's loopback redirect URI, so that origin joins `'self'`. `None` (no
/// `form-action`) for an IPv6 loopback, which CSP source expressions cannot name.
fn form_action(return_to: Option<&str>) -> Option<String> {
    let redirect = return_to
        .and_then(|path| reqwest::Url::parse(&format!("http://server{path}")).ok())
        .filter(|url| url.path().ends_with(AUTHORIZE))
        .and_then(|url| {
            url.query_pairs()
                .find(|(key, _)| key == "redirect_uri")
                .map(|(_, value)| value.into_owned())
        })
        .filter(|uri| is_loopback_redirect(uri))
        .and_then(|uri| reqwest::Url::parse(&uri).ok());
    match redirect {
        None => Some("'self'".to_owned()),
        Some(url) if url.host_str().is_some_and(|h| h.starts_with('[')) => None,
        Some(url) => Some(format!("'self' {}", url.origin().ascii_serialization())),
    }
}

/// The signed-in session of a browser: the user and the session's CSRF token.
pub async fn browser_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(User, String)>, StoreError> {
    let jar = CookieJar::from_headers(headers);
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    let session = match state.store.session(&hash_token(cookie.value())).await {
        Ok(session) => session,
        Err(StoreError::NotFound) => return Ok(None),
        Err(other) => return Err(other),
    };
    let user = state.store.user(&session.user_id).await?;
    Ok(Some((user, session.csrf_token)))
}

/// Sends a signed-out browser to the sign-in page (under the issuer at `prefix`), which sends
/// it back to `return_to` once signed in.
pub fn to_sign_in(prefix: &str, return_to: &str, status: StatusCode) -> Response {
    let location = format!("{prefix}{SIGNIN}?return_to={}", form_encode(return_to));
    redirect(status, &location)
}

/// A redirect to `location` (a path on this server) with `status`.
fn redirect(status: StatusCode, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = status.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => refused(StatusCode::BAD_REQUEST, "return_to: not a valid URL"),
    }
}

/// A `return_to` as given, when present and good; the line saying why not otherwise.
fn checked_return_to(value: Option<&String>) -> Result<Option<&str>, String> {
    match value.map(String::as_str).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(path) => match return_to_problem(path) {
            None => Ok(Some(path)),
            Some(problem) => Err(format!("return_to: {problem} (got {path:?})")),
        },
    }
}

/// The page refusing a request, with the line saying why.
fn refused(status: StatusCode, line: &str) -> Response {
    page(status, &format!("<p role=\"alert\">{}</p>", escape(line)))
}

/// What the form shows besides its fields.
struct SignInForm<'a> {
    prefix: &'a str,
    csrf: &'a str,
    return_to: Option<&'a str>,
    email: &'a str,
    problem: Option<String>,
}

fn form_page(state: &AppState, status: StatusCode, form: &SignInForm<'_>) -> Response {
    let return_to = form.return_to.unwrap_or_default();
    let problem = form
        .problem
        .as_deref()
        .map(|p| format!("<p role=\"alert\">{}</p>", escape(p)))
        .unwrap_or_default();
    let providers: String = state
        .settings
        .oidc_providers
        .iter()
        .map(|p| {
            let mut href = format!("/api/v1/auth/oidc/{}/start", form_encode(&p.name));
            if !return_to.is_empty() {
                href = format!("{href}?return_to={}", form_encode(return_to));
            }
            format!(
                "<li><a href=\"{}\">Sign in with {}</a></li>",
                escape(&href),
                escape(&p.name)
            )
        })
        .collect();
    let providers = if providers.is_empty() {
        String::new()
    } else {
        format!("<p>Or:</p><ul>{providers}</ul>")
    };
    let mut response = page_posting_to(
        status,
        &format!(
            "{problem}<form method=\"post\" action=\"{action}\">\
             <p><label>Email <input type=\"email\" name=\"email\" value=\"{email}\" \
             autocomplete=\"username\" required autofocus></label></p>\
             <p><label>Password <input type=\"password\" name=\"password\" \
             autocomplete=\"current-password\" required></label></p>\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"return_to\" value=\"{return_to}\">\
             <p><button type=\"submit\">Sign in</button></p></form>{providers}",
            action = escape(&format!("{}{SIGNIN}", form.prefix)),
            email = escape(form.email),
            csrf = escape(form.csrf),
            return_to = escape(return_to),
        ),
        form_action(form.return_to).as_deref(),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(
            state,
            SIGNIN_CSRF_COOKIE,
            form.csrf,
            &format!("{}{SIGNIN}", form.prefix),
            FORM_TTL_SECONDS,
        ),
    );
    response
}

/// `GET /signin`: the form, or straight back to `return_to` when already signed in.
pub(super) async fn signin_page(
    State(state): State<AppState>,
    prefix: IssuerPrefix,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let return_to = match checked_return_to(params.get("return_to")) {
        Ok(return_to) => return_to,
        Err(line) => return refused(StatusCode::BAD_REQUEST, &line),
    };
    match browser_session(&state, &headers).await {
        Ok(Some((user, _))) => match return_to {
            Some(path) => return redirect(StatusCode::SEE_OTHER, path),
            None => {
                return page(
                    StatusCode::OK,
                    &format!("<p>Signed in as {}.</p>", escape(&user.email)),
                );
            }
        },
        Ok(None) => {}
        Err(error) => return internal(&error),
    }
    let csrf = generate_token("");
    form_page(
        &state,
        StatusCode::OK,
        &SignInForm {
            prefix: &prefix.0,
            csrf: &csrf,
            return_to,
            email: "",
            problem: None,
        },
    )
}

fn internal(error: &(dyn std::error::Error + 'static)) -> Response {
    // Logged once, with its causes; the browser learns nothing more.
    let _ = ApiError::internal(error);
    refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; try again later",
    )
}

/// One line naming the field at fault and the reason, as the API's problems do.
fn problem_line(error: &ApiError) -> String {
    let detail = error.detail.clone().unwrap_or_else(|| error.title.clone());
    match &error.field {
        Some(field) => format!("{field}: {detail}"),
        None => detail,
    }
}

/// `POST /signin`: checks the form's CSRF token against its cookie, signs in, starts a
/// session and goes back to `return_to` (or says who is signed in).
pub(super) async fn signin_submit(
    State(state): State<AppState>,
    prefix: IssuerPrefix,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = body else {
        return refused(
            StatusCode::BAD_REQUEST,
            "the form must be sent as application/x-www-form-urlencoded",
        );
    };
    let return_to = match checked_return_to(form.get("return_to")) {
        Ok(return_to) => return_to,
        Err(line) => return refused(StatusCode::BAD_REQUEST, &line),
    };
    let jar = CookieJar::from_headers(&headers);
    let echoed = form
        .get("csrf_token")
        .map(String::as_str)
        .unwrap_or_default();
    let same = jar.get(SIGNIN_CSRF_COOKIE).is_some_and(|c| {
        !echoed.is_empty() && blake3::hash(c.value().as_bytes()) == blake3::hash(echoed.as_bytes())
    });
    if !same {
        return refused(
            StatusCode::FORBIDDEN,
            "csrf_token: missing or not this browser's; open the sign-in page again",
        );
    }
    let email = form.get("email").map(String::as_str).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let again = |status: StatusCode, problem: String| {
        form_page(
            &state,
            status,
            &SignInForm {
                prefix: &prefix.0,
                csrf: echoed,
                return_to,
                email,
                problem: Some(problem),
            },
        )
    };
    let missing: Vec<&str> = [("email", email), ("password", password.as_str())]
        .iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        let text = missing
            .iter()
            .map(|name| format!("{name}: missing"))
            .collect::<Vec<_>>()
            .join("; ");
        return again(StatusCode::UNPROCESSABLE_ENTITY, text);
    }
    let user = match accounts::login(&state, email, password, client).await {
        Ok(user) => user,
        Err(error) => {
            let error = ApiError::from(error);
            let status =
                StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = again(status, problem_line(&error));
            if let Some(seconds) = error.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            return response;
        }
    };
    let session = match accounts::start_session(&state, &user).await {
        Ok(session) => session,
        Err(error) => {
            let error = ApiError::from(error);
            return again(StatusCode::INTERNAL_SERVER_ERROR, problem_line(&error));
        }
    };
    let mut response = match return_to {
        Some(path) => redirect(StatusCode::SEE_OTHER, path),
        None => page(
            StatusCode::OK,
            &format!("<p>Signed in as {}.</p>", escape(&user.email)),
        ),
    };
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session_cookie(&state, &session));
    headers.append(
        header::SET_COOKIE,
        cookie(
            &state,
            SIGNIN_CSRF_COOKIE,
            "",
            &format!("{}{SIGNIN}", prefix.0),
            0,
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }

    #[test]
    fn the_form_may_lead_to_the_loopback_client_it_signs_in_for() {
        let authorize = |redirect: &str| {
            format!(
                "/oidc/oauth2/authorize?client_id=ws-a-b&redirect_uri={}",
                form_encode(redirect)
            )
        };
        assert_eq!(form_action(None).as_deref(), Some("'self'"));
        assert_eq!(
            form_action(Some("/device?user_code=X")).as_deref(),
            Some("'self'")
        );
        assert_eq!(
            form_action(Some(&authorize("http://127.0.0.1:18000/callback"))).as_deref(),
            Some("'self' http://127.0.0.1:18000")
        );
        assert_eq!(
            form_action(Some(&authorize("http://localhost:8000"))).as_deref(),
            Some("'self' http://localhost:8000")
        );
        // Only loopback clients: anything else keeps the form on this server.
        assert_eq!(
            form_action(Some(&authorize("https://evil.example/cb"))).as_deref(),
            Some("'self'")
        );
        assert_eq!(form_action(Some(&authorize("http://[::1]:9/cb"))), None);
    }
}
