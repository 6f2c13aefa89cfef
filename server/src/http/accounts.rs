//! Accounts: sign-up, sign-in (password or an external OpenID Connect provider), sign-out,
//! the caller's own account, and API tokens.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};

use super::auth::{Caller, SESSION_COOKIE};
use super::commit::RequestKey;
use super::json::Json;
use super::session::{ClientAddr, cookie, return_to_problem, session_cookie};
use super::{ApiError, ApiRoute, AppState};
use crate::service::accounts::{self, AccountError, RateLimited, Signup};
use crate::service::oidc::{self, OidcError};
use crate::store::{ApiToken, User};

impl From<RateLimited> for ApiError {
    fn from(RateLimited(seconds): RateLimited) -> Self {
        ApiError::rate_limited(seconds)
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::RateLimited(seconds) => ApiError::rate_limited(seconds),
            AccountError::Invalid(problems) => ApiError::invalid_all(problems),
            AccountError::SetupTokenNeeded => ApiError::forbidden(
                "no account exists yet: the first sign-up needs the one-time setup token `hb serve` printed",
            )
            .field("setupToken"),
            AccountError::SignupClosed => ApiError::forbidden(
                "sign-up is closed; ask an organization owner for an invitation and sign in through a provider",
            ),
            AccountError::EmailTaken => {
                ApiError::conflict("an account with this email exists").field("email")
            }
            AccountError::NoFreeSlug => {
                ApiError::conflict("no free organization slug was found for this account")
            }
            AccountError::WrongPassword => {
                ApiError::unauthenticated().detail("the email or password is wrong")
            }
            AccountError::NoToken(id) => ApiError::not_found(format!("no token {id}")),
            AccountError::CreateOrganization(error) => error.into(),
            AccountError::Store(error) => error.into(),
            other => ApiError::internal(&other),
        }
    }
}

impl From<OidcError> for ApiError {
    fn from(error: OidcError) -> Self {
        match error {
            OidcError::NoProvider(name) => {
                ApiError::not_found(format!("no sign-in provider {name}"))
            }
            OidcError::Upstream(detail) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider-failed",
                "The sign-in provider failed",
            )
            .detail(detail),
            OidcError::Refused(detail) => ApiError::unauthenticated().detail(detail),
            OidcError::BadCallback { detail, field } => ApiError::bad_request(detail).field(field),
            OidcError::NoAccountYet => ApiError::forbidden(
                "no account exists yet: the administrator signs up first with the setup token",
            ),
            OidcError::NoEmail => {
                ApiError::forbidden("the provider did not vouch for an email address")
                    .field("email")
            }
            OidcError::RateLimited(seconds) => ApiError::rate_limited(seconds),
            OidcError::Account(error) => error.into(),
            OidcError::Store(error) => error.into(),
        }
    }
}

/// The cookie holding the state of a sign-in through an external provider.
pub const OIDC_STATE_COOKIE: &str = "hb_oidc";
const OIDC_COOKIE_PATH: &str = "/api/v1/auth/oidc";

/// A sign-up.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    /// Email; it is also the sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// At least 12 characters.
    pub password: String,
    /// The one-time setup token `hb serve` printed; only the first account needs it.
    #[serde(default)]
    pub setup_token: Option<String>,
}

/// A sign-in with a password.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A user, as the API shows one.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The user's id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Platform administrator.
    pub is_admin: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            is_admin: user.is_admin,
            created_at: user.created_at,
        }
    }
}

/// A started session: the cookie is set; unsafe requests echo `csrfToken` in `X-CSRF-Token`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedIn {
    /// Who signed in.
    pub user: UserView,
    /// The session's CSRF token.
    pub csrf_token: String,
}

/// A new API token.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// A name to recognise it by.
    pub name: String,
    /// Days until it expires (1 to 3650); never when absent.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// An API token (never its secret).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// The token's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; none for no expiry.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
}

impl From<ApiToken> for TokenView {
    fn from(token: ApiToken) -> Self {
        Self {
            id: token.id,
            name: token.name,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// A created API token with its secret, shown this once.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// The token.
    pub token: TokenView,
    /// The secret, for `Authorization: Bearer`.
    pub secret: String,
}

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::POST,
            "/api/v1/auth/signup",
            "signup",
            "Sign up; makes a private organization and signs in",
            post(signup),
        )
        .public()
        .request::<SignupRequest>()
        .response::<SignedIn>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::POST,
            "/api/v1/auth/login",
            "login",
            "Sign in with email and password",
            post(login),
        )
        .public()
        .request::<LoginRequest>()
        .response::<SignedIn>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            "/api/v1/auth/logout",
            "logout",
            "Sign out of this session",
            post(logout),
        )
        .empty(StatusCode::NO_CONTENT),
        ApiRoute::new(
            Method::GET,
            "/api/v1/auth/oidc/{provider}/start",
            "oidcStart",
            "Sign in through an external OpenID Connect provider (redirects there)",
            get(oidc_start),
        )
        .public()
        .empty(StatusCode::SEE_OTHER),
        ApiRoute::new(
            Method::GET,
            "/api/v1/auth/oidc/{provider}/callback",
            "oidcCallback",
            "Where the provider sends the browser back; signs in and redirects to the UI",
            get(oidc_callback),
        )
        .public()
        .empty(StatusCode::SEE_OTHER),
        ApiRoute::new(Method::GET, "/api/v1/me", "me", "The caller", get(me))
            .response::<UserView>(StatusCode::OK),
        ApiRoute::new(
            Method::GET,
            "/api/v1/tokens",
            "listTokens",
            "The caller's API tokens",
            get(list_tokens),
        )
        .response::<Vec<TokenView>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            "/api/v1/tokens",
            "createToken",
            "Create an API token; its secret is shown once",
            post(create_token),
        )
        .request::<TokenRequest>()
        .response::<CreatedToken>(StatusCode::CREATED),
        ApiRoute::new(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            "deleteToken",
            "Delete one of the caller's API tokens",
            delete(delete_token),
        )
        .empty(StatusCode::NO_CONTENT),
    ]
}

async fn signed_in(state: &AppState, user: User, status: StatusCode) -> Result<Response, ApiError> {
    let session = accounts::start_session(state, &user).await?;
    let mut response = (
        status,
        Json(SignedIn {
            user: user.into(),
            csrf_token: session.csrf_token.clone(),
        }),
    )
        .into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(state, &session));
    Ok(response)
}

async fn signup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    key: RequestKey,
    Json(body): Json<SignupRequest>,
) -> Result<Response, ApiError> {
    let request = Signup {
        email: body.email,
        name: body.name,
        password: body.password,
        setup_token: body.setup_token,
    };
    let user = accounts::signup(&state, request, client, &key).await?;
    signed_in(&state, user, StatusCode::CREATED).await
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Json(body): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let user = accounts::login(&state, &body.email, body.password, client).await?;
    signed_in(&state, user, StatusCode::OK).await
}

async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    accounts::logout(&state, &caller).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(&state, SESSION_COOKIE, "", "/", 0),
    );
    Ok(response)
}

async fn me(caller: Caller) -> Json<UserView> {
    Json(caller.user.into())
}

async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.store.api_tokens_of(&caller.user.id).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<TokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (token, secret) =
        accounts::create_token(&state, &caller, &body.name, body.expires_in_days).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: token.into(),
            secret,
        }),
    ))
}

async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    accounts::delete_token(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn see_other(location: HeaderValue) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// Where a browser goes once signed in through a provider.
#[derive(Debug, Deserialize)]
struct StartQuery {
    return_to: Option<String>,
}

async fn oidc_start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(query): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let return_to = query.return_to.filter(|r| !r.is_empty());
    if let Some(problem) = return_to.as_deref().and_then(return_to_problem) {
        return Err(ApiError::invalid("return_to", problem));
    }
    let started = oidc::start(&state, &provider, return_to).await?;
    let location = HeaderValue::from_str(&started.location).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider-failed",
            "The sign-in provider failed",
        )
        .detail("its authorization endpoint is not a valid redirect target")
    })?;
    let mut response = see_other(location);
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(
            &state,
            OIDC_STATE_COOKIE,
            &started.state,
            OIDC_COOKIE_PATH,
            oidc::FLOW_TTL_SECONDS,
        ),
    );
    Ok(response)
}

/// What the provider appends to the callback URL.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn oidc_callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    ClientAddr(client): ClientAddr,
    Query(query): Query<CallbackQuery>,
    key: RequestKey,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let callback = oidc::Callback {
        code: query.code,
        state: query.state,
        error: query.error,
        cookie_state: jar.get(OIDC_STATE_COOKIE).map(|c| c.value().to_owned()),
    };
    let (user, return_to) = oidc::finish(&state, &provider, callback, client, &key).await?;
    let session = accounts::start_session(&state, &user).await?;
    // Checked when the sign-in started; a path on this server.
    let location = return_to
        .as_deref()
        .and_then(|r| HeaderValue::from_str(r).ok())
        .unwrap_or(HeaderValue::from_static("/"));
    let mut response = see_other(location);
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session_cookie(&state, &session));
    headers.append(
        header::SET_COOKIE,
        cookie(&state, OIDC_STATE_COOKIE, "", OIDC_COOKIE_PATH, 0),
    );
    Ok(response)
}
