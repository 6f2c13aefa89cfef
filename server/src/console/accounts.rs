//! The account pages: sign in (`/login`, by password or a configured external provider),
//! sign up (`/signup`), the first-run page for the platform administrator (`/setup`, with the
//! setup token `hb serve` printed), sign out (`POST /logout`) and accepting an invitation
//! (`/invitations/{token}`). They call the same use cases as `/api/v1/auth/*`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::layout::{Chrome, Problems, problems_of, render, status_of};
use super::session::{
    ConsoleSession, Fields, MaybeSession, PublicForm, SignedForm, public_token, with_cookie,
};
use crate::http::auth::SESSION_COOKIE;
use crate::http::session::{ClientAddr, cookie, return_to_problem, session_cookie};
use crate::http::{ApiError, AppState};
use crate::service::accounts::{self, PASSWORD_MIN_CHARS, Signup};
use crate::service::oidc::form_encode;
use crate::service::orgs;

/// `?return_to=` of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

/// Where to go after signing in: `return_to` when it stays on this server, else the
/// dashboard.
fn after_login(return_to: Option<&str>) -> String {
    match return_to.filter(|r| !r.is_empty()) {
        Some(path) if return_to_problem(path).is_none() => path.to_owned(),
        _ => "/".to_owned(),
    }
}

#[derive(Serialize)]
struct Provider {
    name: String,
    href: String,
}

#[derive(Serialize)]
struct LoginView<'a> {
    email: &'a str,
    return_to: &'a str,
    errors: Problems,
    providers: Vec<Provider>,
}

fn login_page(status: StatusCode, csrf: String, view: &LoginView<'_>) -> Response {
    let chrome = Chrome {
        csrf,
        ..Chrome::titled("Sign in")
    };
    render(status, "login.html", &chrome, view)
}

fn providers(state: &AppState, return_to: &str) -> Vec<Provider> {
    state
        .settings
        .oidc_providers
        .iter()
        .map(|p| {
            let mut href = format!("/api/v1/auth/oidc/{}/start", form_encode(&p.name));
            if return_to != "/" {
                href = format!("{href}?return_to={}", form_encode(return_to));
            }
            Provider {
                name: p.name.clone(),
                href,
            }
        })
        .collect()
}

/// `GET /login`: the sign-in form, or straight on when already signed in.
pub async fn login_form(
    State(state): State<AppState>,
    MaybeSession(session): MaybeSession,
    headers: HeaderMap,
    Query(query): Query<ReturnTo>,
) -> Response {
    let return_to = after_login(query.return_to.as_deref());
    if session.is_some() {
        return Redirect::to(&return_to).into_response();
    }
    let (csrf, set) = public_token(&state, &headers);
    let view = LoginView {
        email: "",
        return_to: &return_to,
        errors: Problems::new(),
        providers: providers(&state, &return_to),
    };
    with_cookie(login_page(StatusCode::OK, csrf, &view), set)
}

/// `POST /login`: signs in and starts a session, like `POST /api/v1/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    form: PublicForm,
) -> Response {
    let fields = &form.fields;
    let return_to = after_login(Some(fields.get("return_to")));
    let email = fields.get("email");
    let answer =
        match accounts::login(&state, email, fields.get("password").to_owned(), client).await {
            Ok(user) => accounts::start_session(&state, &user).await,
            Err(error) => Err(error),
        };
    match answer {
        Ok(session) => {
            let mut response = Redirect::to(&return_to).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(&state, &session));
            response
        }
        Err(error) => {
            let error = ApiError::from(error);
            let mut errors = problems_of(&error);
            if error.code == "unauthenticated" {
                errors = Problems::from([(
                    "password".to_owned(),
                    "the email or password is wrong".to_owned(),
                )]);
            }
            let view = LoginView {
                email,
                return_to: &return_to,
                errors,
                providers: providers(&state, &return_to),
            };
            let mut response = login_page(status_of(&error), form.csrf.clone(), &view);
            if let Some(seconds) = error.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            response
        }
    }
}

#[derive(Serialize)]
struct SignupView {
    setup: bool,
    values: std::collections::BTreeMap<String, String>,
    errors: Problems,
    password_min: usize,
}

fn signup_page(status: StatusCode, csrf: String, view: &SignupView) -> Response {
    let title = if view.setup {
        "Set up Hexabase"
    } else {
        "Sign up"
    };
    let chrome = Chrome {
        csrf,
        ..Chrome::titled(title)
    };
    render(status, "signup.html", &chrome, view)
}

async fn signup_form_as(
    state: &AppState,
    headers: &HeaderMap,
    setup: bool,
    token: Option<String>,
) -> Response {
    let (csrf, set) = public_token(state, headers);
    let mut values = std::collections::BTreeMap::new();
    if let Some(token) = token {
        values.insert("setupToken".to_owned(), token);
    }
    let view = SignupView {
        setup,
        values,
        errors: Problems::new(),
        password_min: PASSWORD_MIN_CHARS,
    };
    with_cookie(signup_page(StatusCode::OK, csrf, &view), set)
}

/// `?token=` of the first-run page (`hb serve` may print a link with it).
#[derive(Debug, Default, Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

/// `GET /signup`: the sign-up form.
pub async fn signup_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    signup_form_as(&state, &headers, false, None).await
}

/// `GET /setup`: the first-run form, asking for the setup token too.
pub async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SetupQuery>,
) -> Response {
    signup_form_as(&state, &headers, true, query.token).await
}

async fn signup_as(
    state: &AppState,
    client: Option<std::net::IpAddr>,
    form: &PublicForm,
    setup: bool,
) -> Response {
    let fields: &Fields = &form.fields;
    let request = Signup {
        email: fields.get("email").to_owned(),
        name: fields.get("name").to_owned(),
        password: fields.get("password").to_owned(),
        setup_token: fields.opt("setupToken"),
    };
    let answer = match accounts::signup(state, request, client, &form.key).await {
        Ok(user) => accounts::start_session(state, &user).await,
        Err(error) => Err(error),
    };
    match answer {
        Ok(session) => {
            let mut response = Redirect::to("/").into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(state, &session));
            response
        }
        Err(error) => {
            let error = ApiError::from(error);
            let view = SignupView {
                setup: setup || error.field.as_deref() == Some("setupToken"),
                values: fields.kept(),
                errors: problems_of(&error),
                password_min: PASSWORD_MIN_CHARS,
            };
            signup_page(status_of(&error), form.csrf.clone(), &view)
        }
    }
}

/// `POST /signup`: makes an account and its organization, like `POST /api/v1/auth/signup`,
/// and signs in.
pub async fn signup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    form: PublicForm,
) -> Response {
    signup_as(&state, client, &form, false).await
}

/// `POST /setup`: the first sign-up, with the setup token.
pub async fn setup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    form: PublicForm,
) -> Response {
    signup_as(&state, client, &form, true).await
}

/// `POST /logout`: ends the session, like `POST /api/v1/auth/logout`.
pub async fn logout(State(state): State<AppState>, form: SignedForm) -> Response {
    if let Err(error) = accounts::logout(&state, &form.session.caller).await {
        let _ = ApiError::from(error);
    }
    let mut response = Redirect::to(super::session::LOGIN).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(&state, SESSION_COOKIE, "", "/", 0),
    );
    response
}

#[derive(Serialize)]
struct InvitationView<'a> {
    token: &'a str,
    errors: Problems,
}

/// `GET /invitations/{token}`: the button accepting it (signed in first).
pub async fn invitation(session: ConsoleSession, Path(token): Path<String>) -> Response {
    let chrome = session.chrome("Accept an invitation");
    render(
        StatusCode::OK,
        "invitation.html",
        &chrome,
        &InvitationView {
            token: &token,
            errors: Problems::new(),
        },
    )
}

/// `POST /invitations/{token}`: accepts it, like `POST /api/v1/invitations/{token}/accept`,
/// and opens the organization.
pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    form: SignedForm,
) -> Response {
    match orgs::accept(&state, &form.session.caller, &token).await {
        Ok((org, _)) => Redirect::to(&format!("/orgs/{}", form_encode(&org.slug))).into_response(),
        Err(error) => {
            let error = ApiError::from(error);
            let chrome = form.session.chrome("Accept an invitation");
            render(
                status_of(&error),
                "invitation.html",
                &chrome,
                &InvitationView {
                    token: &token,
                    errors: problems_of(&error),
                },
            )
        }
    }
}
