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

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::auth::{Caller, MaybeCaller};
use super::json::Json;
use super::oauth::{
    AUTHORIZE, DEVICE_AUTHORIZATION, DEVICE_PAGE, DISCOVERY, IssuerPrefix, JWKS, OAuthError,
    REVOKE, TOKEN, USERINFO, client_id_of, form,
};
use super::signin::{self, SIGNIN, browser_session, escape, page, to_sign_in};
use super::{ApiError, ApiRoute, AppState};
use crate::service::issuer::{
    self, AuthorizeError, DEVICE_GRANT, DeviceDecision, Form as OAuthForm, GrantError,
    IssuerContext, Kubeconfig, OAuthCode, RotateError, Rotation, issuer_path, kubeconfig,
    platform_oidc,
};
use crate::service::tenancy;

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
    let rotation = state
        .issuer
        .rotate_for(&caller.user)
        .await
        .map_err(|error| match error {
            RotateError::Forbidden => ApiError::forbidden(error.to_string()),
            RotateError::Failed(_) => ApiError::internal(&error),
        })?;
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

/// The issuer at the head, or the OAuth error that says why there is none.
async fn context(state: &AppState) -> Result<IssuerContext, OAuthError> {
    Ok(issuer::context(&state.store, &state.engine).await?)
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

async fn authorize(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    prefix: IssuerPrefix,
    uri: Uri,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let answer = |error: AuthorizeError| match error {
        AuthorizeError::Refused(error) => OAuthError::from(error).into_response(),
        AuthorizeError::Redirect(url) => Redirect::to(&url).into_response(),
    };
    let ctx = match context(&state).await {
        Ok(ctx) => ctx,
        Err(error) => return error.into_response(),
    };
    let request = match issuer::authorize(&ctx, &params) {
        Ok(request) => request,
        Err(error) => return answer(error),
    };
    let Some(caller) = caller else {
        if request.prompt_none() {
            return answer(request.refuse(OAuthCode::LoginRequired, "sign in first"));
        }
        // Sign in, then come back to this very request.
        let back = with_query(&format!("{}{AUTHORIZE}", prefix.0), uri.query());
        return to_sign_in(&prefix.0, &back, StatusCode::FOUND);
    };
    match issuer::grant_code(&state.store, &state.issuer, &request, &caller.user).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(error) => answer(error),
    }
}

/// A JSON answer no cache may keep (RFC 6749 §5.1).
fn no_store(answer: &Value) -> Response {
    let mut response = axum::Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<OAuthForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let form = form(body)?;
    let client_id = client_id_of(&headers, &form)?;
    let ctx = context(&state).await?;
    let answer = issuer::token(&state.store, &state.issuer, &ctx, &client_id, &form).await?;
    Ok(no_store(&answer))
}

async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<OAuthForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let form = form(body)?;
    let client_id = client_id_of(&headers, &form)?;
    let ctx = context(&state).await?;
    let verification = format!("{}{DEVICE_PAGE}", ctx.base());
    let answer = issuer::start_device(
        &state.store,
        &state.issuer,
        &ctx,
        client_id,
        &form,
        &verification,
    )
    .await?;
    Ok(no_store(&answer))
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
    match issuer::decide_device(&state.store, &state.issuer, code, approve, &user).await {
        Ok(DeviceDecision::Approved) => page(
            StatusCode::OK,
            "<p>Approved. Go back to your device; it signs in now.</p>",
        ),
        Ok(DeviceDecision::Denied) => page(
            StatusCode::OK,
            "<p>Denied. The device does not sign in.</p>",
        ),
        Ok(DeviceDecision::Unknown) => page(
            StatusCode::BAD_REQUEST,
            "<p>user_code: unknown, expired or already used; start again on the device.</p>",
        ),
        Err(error) => OAuthError::from(error).into_response(),
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
    match issuer::userinfo(&state.store, &state.issuer, &ctx, token).await {
        Ok(info) => axum::Json(info).into_response(),
        Err(GrantError::Refused {
            code: OAuthCode::InvalidToken,
            description,
        }) => unauthorized(&description),
        Err(error) => OAuthError::from(error).into_response(),
    }
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Result<StatusCode, OAuthError> {
    let form = form(body)?;
    let client_id = client_id_of(&headers, &form)?;
    issuer::revoke(&state.store, &client_id, &form).await?;
    Ok(StatusCode::OK)
}
