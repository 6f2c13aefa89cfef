//! The OpenID Connect issuer's protocol endpoints, served under the path of the platform's
//! issuer URL (`https://h.example.com/oidc` → `/oidc/.well-known/openid-configuration`):
//! discovery, JWKS, authorization (code flow, PKCE S256 only, loopback redirects), token
//! (authorization code, refresh token, device code), device authorization (RFC 8628) with its
//! approval page, userinfo and revocation (RFC 7009), and the sign-in page (`http::signin`)
//! both browser endpoints send a signed-out browser to.
//!
//! They are protocol endpoints, described by the discovery document rather than OpenAPI, and
//! answer RFC 6749 error JSON (`error`, `error_description`) where OAuth says so. A
//! middleware (`dispatch`) routes requests whose path is the issuer's path plus one of
//! [`ENDPOINTS`]; the issuer URL comes from the branch head, so it can change without a
//! restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::auth::{Caller, MaybeCaller};
use super::json::Json;
use super::signin::{self, SIGNIN, browser_session, escape, page, to_sign_in};
use super::{ApiError, ApiRoute, AppState};
use crate::gitops::Snapshot;
use crate::service::credentials::{API_TOKEN_PREFIX, generate_token, hash_token};
use crate::service::issuer::{
    IdentityClaims, IssuerError, Kubeconfig, NO_WORKSPACE_ACCESS, OidcClient, Rotation,
    is_loopback_redirect, issuer_path, kubeconfig, pkce_matches, platform_oidc, requested_client,
    resolve_client, scopes, token_groups,
};
use crate::service::tenancy;
use crate::store::{AuthCode, DeviceGrant, RefreshToken, RefreshUse, StoreError, User};

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

/// Every endpoint, relative to the issuer.
pub const ENDPOINTS: [&str; 9] = [
    DISCOVERY,
    JWKS,
    AUTHORIZE,
    TOKEN,
    DEVICE_AUTHORIZATION,
    USERINFO,
    REVOKE,
    DEVICE_PAGE,
    SIGNIN,
];

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Letters of user codes: no vowels (no words), no look-alikes (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Where this server serves the issuer, for clients that know only the server's URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerInfo {
    /// The issuer URL (the platform's `spec.oidc.issuerUrl`), what tokens carry as `iss`.
    pub issuer: String,
    /// The discovery document's path on this server.
    pub discovery_path: String,
    /// The device authorization endpoint's path on this server.
    pub device_authorization_path: String,
    /// The token endpoint's path on this server.
    pub token_path: String,
    /// The client id of the `hb` CLI.
    pub cli_client_id: String,
}

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::GET,
            "/api/v1/auth/issuer",
            "getIssuer",
            "Where this server serves the OpenID Connect issuer",
            get(issuer_info),
        )
        .public()
        .response::<IssuerInfo>(StatusCode::OK),
        ApiRoute::new(
            Method::GET,
            "/api/v1/orgs/{org}/workspaces/{ws}/kubeconfig",
            "getKubeconfig",
            "A kubeconfig for the workspace's vCluster (kubectl oidc-login, no secret)",
            get(get_kubeconfig),
        )
        .response::<Kubeconfig>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            "/api/v1/admin/issuer/rotate-keys",
            "rotateSigningKeys",
            "Rotate the issuer's signing key: the new key is published now and signs after \
             issuer.publish_ahead_seconds (platform administrator)",
            post(rotate_keys),
        )
        .response::<Rotation>(StatusCode::OK),
    ]
}

async fn rotate_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Rotation>, ApiError> {
    // The platform administrator is the first account (`users.is_admin`).
    if !caller.user.is_admin {
        return Err(ApiError::forbidden(
            "only the platform administrator may rotate the issuer's signing keys",
        ));
    }
    let rotation = state
        .issuer
        .rotate_now()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tracing::info!(
        kid = %rotation.kid,
        created = rotation.created,
        activates_at = rotation.activates_at,
        by = %caller.user.email,
        "rotation of the issuer's signing key requested"
    );
    Ok(Json(rotation))
}

async fn issuer_info(State(state): State<AppState>) -> Result<Json<IssuerInfo>, ApiError> {
    let snapshot = tenancy::head(&state.engine).await?;
    let oidc = platform_oidc(&snapshot)
        .ok_or_else(|| ApiError::unavailable("the platform intent is missing"))?;
    let path = issuer_path(&oidc.issuer_url);
    Ok(Json(IssuerInfo {
        issuer: oidc.issuer_url.clone(),
        discovery_path: format!("{path}{DISCOVERY}"),
        device_authorization_path: format!("{path}{DEVICE_AUTHORIZATION}"),
        token_path: format!("{path}{TOKEN}"),
        cli_client_id: crate::service::issuer::CLI_CLIENT_ID.to_owned(),
    }))
}

async fn get_kubeconfig(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): Path<(String, String)>,
) -> Result<Json<Kubeconfig>, ApiError> {
    let access =
        tenancy::workspace_access(&state.store, &state.engine, &caller.user, &org, &ws).await?;
    access.require_member()?;
    let ca = state.settings.issuer.kubeconfig_ca_data.as_deref();
    kubeconfig(&access.snapshot, &org, &ws, ca)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("the cluster of workspace {org}/{ws}")))
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Debug, Clone)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
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

/// What every endpoint needs: the head, and the issuer URL and settings it names.
struct Context {
    snapshot: Arc<Snapshot>,
    issuer: String,
    oidc: compiler::intent::Oidc,
}

impl Context {
    fn base(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }
}

async fn context(state: &AppState) -> Result<Context, OAuthError> {
    let snapshot = tenancy::head(&state.engine).await?;
    let oidc = platform_oidc(&snapshot).cloned().ok_or_else(|| {
        OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the platform intent (intent/platform.yaml) is missing, so there is no issuer",
        )
    })?;
    Ok(Context {
        issuer: oidc.issuer_url.clone(),
        snapshot,
        oidc,
    })
}

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

/// The router of the protocol endpoints, relative to the issuer's path.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(DISCOVERY, get(discovery))
        .route(JWKS, get(jwks))
        .route(AUTHORIZE, get(authorize))
        .route(TOKEN, post(token))
        .route(DEVICE_AUTHORIZATION, post(device_authorization))
        .route(USERINFO, get(userinfo).post(userinfo))
        .route(REVOKE, post(revoke))
        .route(DEVICE_PAGE, get(device_page).post(device_decide))
        .route(SIGNIN, get(signin::signin_page).post(signin::signin_submit))
        .with_state(state)
}

/// Serves the protocol endpoints under the issuer's path; passes everything else on.
pub(super) async fn dispatch(
    State((state, oidc)): State<(AppState, Router)>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let Some(endpoint) = ENDPOINTS.iter().find(|e| path.ends_with(*e)) else {
        return next.run(request).await;
    };
    let prefix = path[..path.len() - endpoint.len()].to_owned();
    let matches = match tenancy::head(&state.engine).await {
        Ok(snapshot) => {
            platform_oidc(&snapshot).is_some_and(|o| issuer_path(&o.issuer_url) == prefix)
        }
        Err(error) => return OAuthError::from(error).into_response(),
    };
    if !matches {
        return next.run(request).await;
    }
    let rewritten = match request.uri().query() {
        Some(query) => format!("{endpoint}?{query}"),
        None => (*endpoint).to_owned(),
    };
    match rewritten.parse::<Uri>() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => {
            return OAuthError::invalid_request("the request URI is malformed").into_response();
        }
    }
    request.extensions_mut().insert(IssuerPrefix(prefix));
    match oidc.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn discovery(State(state): State<AppState>) -> Result<Response, OAuthError> {
    let ctx = context(&state).await?;
    let base = ctx.base();
    let doc = json!({
        "issuer": ctx.issuer,
        "authorization_endpoint": format!("{base}{AUTHORIZE}"),
        "token_endpoint": format!("{base}{TOKEN}"),
        "jwks_uri": format!("{base}{JWKS}"),
        "userinfo_endpoint": format!("{base}{USERINFO}"),
        "revocation_endpoint": format!("{base}{REVOKE}"),
        "device_authorization_endpoint": format!("{base}{DEVICE_AUTHORIZATION}"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "email", "profile", "groups", "offline_access"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "nbf", "azp", "nonce", "email", "email_verified",
            "name", "preferred_username", ctx.oidc.groups_claim,
        ],
        "authorization_response_iss_parameter_supported": true,
    });
    Ok(cached_json(&doc, 300))
}

fn cached_json(value: &Value, seconds: u32) -> Response {
    let mut response = axum::Json(value).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={seconds}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

async fn jwks(State(state): State<AppState>) -> Result<Response, OAuthError> {
    let keys = state.issuer.jwks().await?;
    // Short: a new key is published long before it signs, so verifiers see it in time.
    Ok(cached_json(&keys, 60))
}

/// Where to send an authorization error once the redirect URI is known good.
fn redirect_error(
    redirect_uri: &str,
    state: Option<&String>,
    issuer: &str,
    error: &str,
    description: &str,
) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return OAuthError::invalid_request("redirect_uri: not a URL").into_response();
    };
    {
        let mut pairs = url.query_pairs_mut();
        pairs
            .append_pair("error", error)
            .append_pair("error_description", description);
        if let Some(state) = state {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", issuer);
    }
    Redirect::to(url.as_str()).into_response()
}

/// The client `client_id` names (see [`requested_client`]), or an error naming the field.
/// Whether a workspace exists never changes the answer: an id of the right form that names
/// none is an [`OidcClient::Hidden`], which every endpoint answers as it answers a workspace
/// the caller is in no group of.
fn requested(ctx: &Context, client_id: &str) -> Result<OidcClient, OAuthError> {
    requested_client(&ctx.snapshot, client_id).ok_or_else(|| {
        OAuthError::invalid_client(format!(
            "client_id: {client_id:?} is not a client id of this issuer (hb, or ws-<organization>-<workspace>)"
        ))
    })
}

async fn authorize(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    prefix: IssuerPrefix,
    uri: Uri,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, Response> {
    let ctx = context(&state).await.map_err(IntoResponse::into_response)?;
    let client_id = params
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_id: missing").into_response())?;
    let client = requested(&ctx, client_id).map_err(IntoResponse::into_response)?;
    if client == OidcClient::Cli {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "client_id: the hb CLI signs in with the device flow",
        )
        .into_response());
    }
    let Some(redirect_uri) = params
        .get("redirect_uri")
        .filter(|u| is_loopback_redirect(u))
    else {
        return Err(OAuthError::invalid_request(
            "redirect_uri: must be a loopback http URI (http://127.0.0.1:<port>/…, http://localhost:<port>/…; RFC 8252 §7.3)",
        )
        .into_response());
    };
    let fail = |error: &str, description: &str| {
        redirect_error(
            redirect_uri,
            params.get("state"),
            &ctx.issuer,
            error,
            description,
        )
    };
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "response_type: only code is supported",
        ));
    }
    let scope = params.get("scope").cloned().unwrap_or_default();
    if !scopes(&scope).contains("openid") {
        return Err(fail("invalid_scope", "scope: must include openid"));
    }
    let Some(challenge) = params.get("code_challenge") else {
        return Err(fail(
            "invalid_request",
            "code_challenge: PKCE is required (S256)",
        ));
    };
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(fail(
            "invalid_request",
            "code_challenge_method: only S256 is supported",
        ));
    }
    let challenge_ok = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !challenge_ok {
        return Err(fail(
            "invalid_request",
            "code_challenge: must be 43 base64url characters (the SHA-256 of the verifier)",
        ));
    }
    let Some(caller) = caller else {
        if params.get("prompt").map(String::as_str) == Some("none") {
            return Err(fail("login_required", "sign in first"));
        }
        // Sign in, then come back to this very request.
        let back = with_query(&format!("{}{AUTHORIZE}", prefix.0), uri.query());
        return Err(to_sign_in(&prefix.0, &back, StatusCode::FOUND));
    };
    let groups = match &client {
        OidcClient::Workspace { org, ws, .. } => {
            token_groups(&state.store, org, ws, &caller.user.id)
                .await
                .map_err(|e| OAuthError::from(e).into_response())?
        }
        OidcClient::Hidden { .. } | OidcClient::Cli => Vec::new(),
    };
    if groups.is_empty() {
        return Err(fail("access_denied", NO_WORKSPACE_ACCESS));
    }
    let code = generate_token("");
    let now = state.issuer.now();
    state
        .store
        .create_auth_code(
            &hash_token(&code),
            &AuthCode {
                client_id: client_id.clone(),
                redirect_uri: redirect_uri.clone(),
                code_challenge: challenge.clone(),
                user_id: caller.user.id.clone(),
                nonce: params.get("nonce").cloned(),
                scope,
                expires_at: now + state.issuer.settings().code_ttl_seconds,
            },
            now,
        )
        .await
        .map_err(|e| OAuthError::from(e).into_response())?;
    let mut url = reqwest::Url::parse(redirect_uri)
        .map_err(|_| OAuthError::invalid_request("redirect_uri: not a URL").into_response())?;
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = params.get("state") {
            pairs.append_pair("state", s);
        }
        pairs.append_pair("iss", &ctx.issuer);
    }
    Ok(Redirect::to(url.as_str()).into_response())
}

/// The form of a token, device or revocation request, or the error naming what is wrong.
fn form(
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
fn client_id_of(
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

fn field<'a>(form: &'a BTreeMap<String, String>, name: &str) -> Result<&'a String, OAuthError> {
    form.get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name}: missing")))
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Result<Response, OAuthError> {
    let form = form(body)?;
    let client_id = client_id_of(&headers, &form)?;
    let ctx = context(&state).await?;
    let client = requested(&ctx, &client_id)?;
    let answer = match field(&form, "grant_type")?.as_str() {
        "authorization_code" => code_grant(&state, &ctx, &client, &form).await?,
        "refresh_token" => refresh_grant(&state, &ctx, &client, &form).await?,
        DEVICE_GRANT => device_grant(&state, &ctx, &client, &form).await?,
        other => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type: {other:?} is not supported"),
            ));
        }
    };
    let mut response = axum::Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn code_grant(
    state: &AppState,
    ctx: &Context,
    client: &OidcClient,
    form: &BTreeMap<String, String>,
) -> Result<Value, OAuthError> {
    let code = field(form, "code")?;
    let verifier = field(form, "code_verifier")
        .map_err(|_| OAuthError::invalid_request("code_verifier: missing (PKCE is required)"))?;
    let redirect_uri = field(form, "redirect_uri")?;
    let now = state.issuer.now();
    let stored = match state.store.take_auth_code(&hash_token(code), now).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => {
            return Err(OAuthError::invalid_grant(
                "code: unknown, expired or already used",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    if stored.client_id != client.id() {
        return Err(OAuthError::invalid_grant("code: issued to another client"));
    }
    if &stored.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri: not the one the code was sent to",
        ));
    }
    if !pkce_matches(verifier, &stored.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier: does not match the code challenge",
        ));
    }
    let user = state.store.user(&stored.user_id).await?;
    issue(
        state,
        ctx,
        client,
        &user,
        &stored.scope,
        stored.nonce.as_deref(),
        None,
    )
    .await
}

async fn refresh_grant(
    state: &AppState,
    ctx: &Context,
    client: &OidcClient,
    form: &BTreeMap<String, String>,
) -> Result<Value, OAuthError> {
    let presented = field(form, "refresh_token")?;
    let now = state.issuer.now();
    let token = match state
        .store
        .use_refresh_token(&hash_token(presented), now)
        .await?
    {
        RefreshUse::Fresh(token) => token,
        RefreshUse::Reused => {
            tracing::warn!(
                client = client.id(),
                "a refresh token was used twice: its family is revoked"
            );
            return Err(OAuthError::invalid_grant(
                "refresh_token: already used; every token of its sign-in is revoked",
            ));
        }
        RefreshUse::Invalid => {
            return Err(OAuthError::invalid_grant(
                "refresh_token: unknown, expired or revoked",
            ));
        }
    };
    if token.client_id != client.id() {
        state.store.revoke_family(&token.family_id).await?;
        return Err(OAuthError::invalid_grant(
            "refresh_token: issued to another client",
        ));
    }
    let user = state.store.user(&token.user_id).await?;
    let issued = issue(
        state,
        ctx,
        client,
        &user,
        &token.scope,
        None,
        Some(token.family_id.clone()),
    )
    .await;
    if issued.is_err() {
        // Out of the workspace (or it is gone): nothing of this sign-in refreshes again.
        state.store.revoke_family(&token.family_id).await?;
    }
    issued
}

async fn device_grant(
    state: &AppState,
    ctx: &Context,
    client: &OidcClient,
    form: &BTreeMap<String, String>,
) -> Result<Value, OAuthError> {
    let device_code = field(form, "device_code")?;
    let now = state.issuer.now();
    let grant = match state
        .store
        .poll_device_grant(&hash_token(device_code), now)
        .await
    {
        Ok(grant) => grant,
        Err(StoreError::NotFound) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "expired_token",
                "device_code: unknown or expired; start again",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    if grant.client_id != client.id() {
        return Err(OAuthError::invalid_grant(
            "device_code: issued to another client",
        ));
    }
    if grant.denied != 0 {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "access_denied",
            "the user refused the sign-in",
        ));
    }
    let Some(user_id) = grant.user_id else {
        let error = if now - grant.polled_at < state.issuer.settings().device_poll_seconds {
            "slow_down"
        } else {
            "authorization_pending"
        };
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            error,
            "the user has not approved the sign-in yet",
        ));
    };
    let user = state.store.user(&user_id).await?;
    issue(state, ctx, client, &user, &grant.scope, None, None).await
}

/// The token answer for `user` at `client`: for a workspace, an ID token with its flattened
/// groups, an access token and a refresh token (in `family` when refreshing); for the `hb`
/// CLI, an ID token and an API token as the access token.
async fn issue(
    state: &AppState,
    ctx: &Context,
    client: &OidcClient,
    user: &User,
    scope: &str,
    nonce: Option<&str>,
    family: Option<String>,
) -> Result<Value, OAuthError> {
    let issuer = &state.issuer;
    let ttl = issuer.settings().token_ttl_seconds;
    match client {
        OidcClient::Workspace { org, ws, client_id } => {
            let groups = token_groups(&state.store, org, ws, &user.id).await?;
            if groups.is_empty() {
                return Err(OAuthError::invalid_grant(NO_WORKSPACE_ACCESS));
            }
            let who = IdentityClaims {
                user,
                client_id,
                nonce,
                groups: Some(&groups),
            };
            let id_token = issuer.id_token(&ctx.issuer, &ctx.oidc, &who).await?;
            let access_token = issuer
                .access_token(&ctx.issuer, user, client_id, scope)
                .await?;
            let refresh = generate_token("hbr_");
            let now = issuer.now();
            state
                .store
                .create_refresh_token(
                    &hash_token(&refresh),
                    &RefreshToken {
                        family_id: family.unwrap_or_else(crate::store::new_id),
                        client_id: client_id.clone(),
                        user_id: user.id.clone(),
                        scope: scope.to_owned(),
                        expires_at: now + issuer.settings().refresh_ttl_seconds,
                        used_at: None,
                    },
                    now,
                )
                .await?;
            Ok(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": ttl,
                "id_token": id_token,
                "refresh_token": refresh,
                "scope": scope,
            }))
        }
        OidcClient::Hidden { .. } => Err(OAuthError::invalid_grant(NO_WORKSPACE_ACCESS)),
        OidcClient::Cli => {
            let who = IdentityClaims {
                user,
                client_id: client.id(),
                nonce,
                groups: None,
            };
            let id_token = issuer.id_token(&ctx.issuer, &ctx.oidc, &who).await?;
            let secret = generate_token(API_TOKEN_PREFIX);
            state
                .store
                .create_api_token(
                    &user.id,
                    "hb CLI (device sign-in)",
                    &hash_token(&secret),
                    None,
                )
                .await?;
            Ok(json!({
                "access_token": secret,
                "token_type": "Bearer",
                "id_token": id_token,
                "scope": scope,
            }))
        }
    }
}

/// A user code: eight letters of [`USER_CODE_ALPHABET`], shown as `ABCD-EFGH`.
fn user_code() -> String {
    use rand::RngExt as _;
    let mut rng = rand::rng();
    let letters: String = (0..8)
        .map(|_| {
            let i = rng.random_range(0..USER_CODE_ALPHABET.len());
            char::from(USER_CODE_ALPHABET[i])
        })
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// The stored form of a user code: case, spaces and dashes do not matter to people.
fn user_code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hash_token(&normal)
}

async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Result<Response, OAuthError> {
    let form = form(body)?;
    let client_id = client_id_of(&headers, &form)?;
    let ctx = context(&state).await?;
    // Any well-formed client id starts a sign-in: whether its workspace exists, and whether
    // the person who approves may enter it, is decided when the token is asked for.
    requested(&ctx, &client_id)?;
    let scope = form
        .get("scope")
        .cloned()
        .unwrap_or_else(|| "openid".to_owned());
    if !scopes(&scope).contains("openid") {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope: must include openid",
        ));
    }
    let settings = state.issuer.settings();
    let now = state.issuer.now();
    let device_code = generate_token("");
    let grant = DeviceGrant {
        client_id,
        scope,
        user_id: None,
        denied: 0,
        polled_at: now,
        expires_at: now + settings.device_code_ttl_seconds,
    };
    // A user code clash is unlikely (20^8); draw again when it happens.
    let mut code = user_code();
    let mut tries = 0;
    loop {
        match state
            .store
            .create_device_grant(
                &hash_token(&device_code),
                &user_code_hash(&code),
                &grant,
                now,
            )
            .await
        {
            Ok(()) => break,
            Err(StoreError::Conflict(_)) if tries < 5 => {
                tries += 1;
                code = user_code();
            }
            Err(other) => return Err(other.into()),
        }
    }
    let verification = format!("{}{DEVICE_PAGE}", ctx.base());
    let mut complete = reqwest::Url::parse(&verification)
        .map_err(|_| OAuthError::invalid_request("the issuer URL is not a URL"))?;
    complete.query_pairs_mut().append_pair("user_code", &code);
    let mut response = axum::Json(json!({
        "device_code": device_code,
        "user_code": code,
        "verification_uri": verification,
        "verification_uri_complete": complete.as_str(),
        "expires_in": settings.device_code_ttl_seconds,
        "interval": settings.device_poll_seconds,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `path`, with `query` when there is one.
fn with_query(path: &str, query: Option<&str>) -> String {
    match query.filter(|q| !q.is_empty()) {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

async fn device_page(
    State(state): State<AppState>,
    prefix: IssuerPrefix,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let (user, csrf) = match browser_session(&state, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            let back = with_query(&format!("{}{DEVICE_PAGE}", prefix.0), uri.query());
            return to_sign_in(&prefix.0, &back, StatusCode::FOUND);
        }
        Err(error) => return OAuthError::from(error).into_response(),
    };
    let code = params
        .get("user_code")
        .map(String::as_str)
        .unwrap_or_default();
    page(
        StatusCode::OK,
        &format!(
            "<p>Signed in as {email}. A device asks to sign in as you.</p>\
             <form method=\"post\"><label>Code shown by the device: \
             <input name=\"user_code\" value=\"{code}\" autocomplete=\"off\"></label>\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
             <button name=\"decision\" value=\"approve\">Approve</button> \
             <button name=\"decision\" value=\"deny\">Deny</button></form>",
            email = escape(&user.email),
            code = escape(code),
            csrf = escape(&csrf),
        ),
    )
}

async fn device_decide(
    State(state): State<AppState>,
    prefix: IssuerPrefix,
    headers: HeaderMap,
    body: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let form = match form(body) {
        Ok(form) => form,
        Err(error) => return error.into_response(),
    };
    let (user, csrf) = match browser_session(&state, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            // Signed out meanwhile: sign in, then back to the page with the code filled in.
            let code = form
                .get("user_code")
                .filter(|c| !c.is_empty())
                .map(|c| format!("user_code={}", crate::service::oidc::form_encode(c)));
            let back = with_query(&format!("{}{DEVICE_PAGE}", prefix.0), code.as_deref());
            return to_sign_in(&prefix.0, &back, StatusCode::SEE_OTHER);
        }
        Err(error) => return OAuthError::from(error).into_response(),
    };
    let echoed = form
        .get("csrf_token")
        .map(String::as_str)
        .unwrap_or_default();
    if blake3::hash(echoed.as_bytes()) != blake3::hash(csrf.as_bytes()) {
        return page(
            StatusCode::FORBIDDEN,
            "<p>csrf_token: missing or not this session's; open the page again.</p>",
        );
    }
    let code = form
        .get("user_code")
        .map(String::as_str)
        .unwrap_or_default();
    let approve = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "<p>decision: must be approve or deny.</p>",
            );
        }
    };
    let now = state.issuer.now();
    let hash = user_code_hash(code);
    let decided = state
        .store
        .decide_device_grant(&hash, approve.then_some(user.id.as_str()), now)
        .await;
    match decided {
        Ok(()) if approve => page(
            StatusCode::OK,
            "<p>Approved. Go back to your device; it signs in now.</p>",
        ),
        Ok(()) => page(
            StatusCode::OK,
            "<p>Denied. The device does not sign in.</p>",
        ),
        Err(StoreError::NotFound) => page(
            StatusCode::BAD_REQUEST,
            "<p>user_code: unknown, expired or already used; start again on the device.</p>",
        ),
        Err(other) => OAuthError::from(other).into_response(),
    }
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let unauthorized = |description: &str| {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token", "error_description": description})),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            description.replace('"', "'")
        )) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized("Authorization: send the access token as Bearer");
    };
    let ctx = match context(&state).await {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let claims = match state.issuer.verify(token.trim(), &ctx.issuer, None).await {
        Ok(claims) => claims,
        Err(invalid) => return unauthorized(&invalid.to_string()),
    };
    if claims.get("client_id").is_none() {
        return unauthorized("the token is not an access token");
    }
    let (Some(sub), Some(client_id)) = (
        claims.get("sub").and_then(Value::as_str),
        claims.get("client_id").and_then(Value::as_str),
    ) else {
        return unauthorized("the token has no subject or client");
    };
    let user = match state.store.user(sub).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => return unauthorized("the token's user no longer exists"),
        Err(other) => return OAuthError::from(other).into_response(),
    };
    let mut info = json!({
        "sub": user.id,
        "email": user.email,
        "email_verified": true,
        "name": user.name,
        "preferred_username": user.email,
    });
    if let Some(OidcClient::Workspace { org, ws, .. }) = resolve_client(&ctx.snapshot, client_id) {
        match token_groups(&state.store, &org, &ws, &user.id).await {
            Ok(groups) => info[ctx.oidc.groups_claim.as_str()] = json!(groups),
            Err(error) => return OAuthError::from(error).into_response(),
        }
    }
    axum::Json(info).into_response()
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Result<StatusCode, OAuthError> {
    let form = form(body)?;
    let client_id = client_id_of(&headers, &form)?;
    let token = field(&form, "token")?;
    // RFC 7009 §2.2: an unknown or already invalid token is answered 200 all the same. Access
    // tokens are short-lived JWTs and are not revoked; refresh tokens take their family along.
    state
        .store
        .revoke_refresh_family(&hash_token(token), &client_id)
        .await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_unambiguous_letters() {
        let code = user_code();
        assert_eq!(code.len(), 9, "{code}");
        assert_eq!(&code[4..5], "-");
        assert!(
            code.bytes()
                .filter(|b| *b != b'-')
                .all(|b| USER_CODE_ALPHABET.contains(&b))
        );
        assert_eq!(user_code_hash("bcdf-ghjk"), user_code_hash("BCDFGHJK"));
    }

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
