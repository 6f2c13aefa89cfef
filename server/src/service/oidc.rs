//! Sign-in through external providers (`settings.oidc_providers`): the authorization code
//! flow with PKCE, state and nonce. The state travels in a cookie and the URL; the nonce and
//! code verifier stay on the server (`oidc_flows`, keyed by the state's hash). For an OpenID
//! Connect provider the ID token's signature is checked against the provider's JWKS, and its
//! issuer, audience, expiry and nonce against what we expect. GitHub is not an OpenID
//! provider: its access token is used once, to read the user (`GET /user`) and their
//! verified primary email (`GET /user/emails`), and then dropped.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::Digest as _;

use super::Services;
use super::accounts::{self, AccountDraft, AccountError, RateLimited};
use super::submit::RequestKey;
use crate::service::credentials::{generate_token, hash_token};
use crate::settings::{OidcProvider, ProviderKind};
use crate::store::{OidcFlow, StoreError, User, now};

/// Why a sign-in through a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// No provider of this name is configured.
    #[error("no sign-in provider {0}")]
    NoProvider(String),
    /// Talking to the provider failed, or it answered something unusable.
    #[error("the sign-in provider failed: {0}")]
    Upstream(String),
    /// The provider refused the sign-in, or what it sent does not prove who signed in.
    #[error("{0}")]
    Refused(String),
    /// The callback is malformed or not this browser's sign-in.
    #[error("{detail}")]
    BadCallback {
        /// What is wrong.
        detail: &'static str,
        /// The query parameter at fault.
        field: &'static str,
    },
    /// No account exists yet: the administrator signs up first.
    #[error("no account exists yet: the administrator signs up first with the setup token")]
    NoAccountYet,
    /// The provider did not vouch for an email address.
    #[error("the provider did not vouch for an email address")]
    NoEmail,
    /// Too many attempts from the client: retry after this many seconds.
    #[error("too many attempts; retry after {0} s")]
    RateLimited(u64),
    /// Creating the account failed.
    #[error("failed to create the account")]
    Account(#[from] AccountError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

impl From<RateLimited> for OidcError {
    fn from(RateLimited(seconds): RateLimited) -> Self {
        Self::RateLimited(seconds)
    }
}

/// How long a started sign-in may take, in seconds.
pub const FLOW_TTL_SECONDS: i64 = 600;

/// The parts of a provider's discovery document we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// The issuer; must be the configured one.
    pub issuer: String,
    /// Where the browser goes to sign in.
    pub authorization_endpoint: String,
    /// Where the code is exchanged.
    pub token_endpoint: String,
    /// The provider's signing keys.
    pub jwks_uri: String,
    /// How the client authenticates at the token endpoint (default `client_secret_basic`).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// The claims of an ID token we read.
#[derive(Debug, Clone, Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: String,
}

/// GitHub's answer at `/login/oauth/access_token` (with `Accept: application/json`): a token,
/// or, with status 200 all the same, an error.
#[derive(Debug, Deserialize)]
struct GithubToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The parts of GitHub's `GET /user` we read.
#[derive(Debug, Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
}

/// One entry of GitHub's `GET /user/emails`.
#[derive(Debug, Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// What GitHub's REST API wants of every client.
const GITHUB_ACCEPT: &str = "application/vnd.github+json";
const GITHUB_API_VERSION: &str = "2022-11-28";

/// Where a started sign-in sends the browser, and the state its cookie must hold.
#[derive(Debug, Clone)]
pub struct Started {
    /// The provider's authorization URL with our parameters.
    pub location: String,
    /// The state, for the cookie.
    pub state: String,
}

fn provider<'a>(state: &'a Services, name: &str) -> Option<&'a OidcProvider> {
    state
        .settings
        .oidc_providers
        .iter()
        .find(|p| p.name == name)
}

fn no_provider(name: &str) -> OidcError {
    OidcError::NoProvider(name.to_owned())
}

/// The callback URL registered with providers.
pub fn redirect_uri(state: &Services, provider: &str) -> String {
    format!(
        "{}/api/v1/auth/oidc/{provider}/callback",
        state.settings.public_url()
    )
}

fn upstream(detail: impl Into<String>) -> OidcError {
    OidcError::Upstream(detail.into())
}

fn trim_slash(url: &str) -> &str {
    url.trim_end_matches('/')
}

async fn get_json<T: serde::de::DeserializeOwned>(
    state: &Services,
    url: &str,
    what: &str,
) -> Result<T, OidcError> {
    send_json(state.sign_in.http.get(url), what).await
}

/// Sends a request to a provider and reads its JSON answer; any failure (unreachable, a
/// status other than success, a body that is not the expected JSON) names `what` was asked.
async fn send_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, OidcError> {
    let response = request
        .send()
        .await
        .map_err(|e| upstream(format!("failed to fetch the {what}: {e}")))?;
    if !response.status().is_success() {
        return Err(upstream(format!(
            "the {what} answered {}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| upstream(format!("the {what} is not valid: {e}")))
}

/// Reads the provider's discovery document and checks it names the configured issuer.
pub async fn discover(state: &Services, provider: &OidcProvider) -> Result<Discovery, OidcError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        trim_slash(&provider.issuer)
    );
    let discovery: Discovery = get_json(state, &url, "discovery document").await?;
    if trim_slash(&discovery.issuer) != trim_slash(&provider.issuer) {
        return Err(upstream(format!(
            "the discovery document names issuer {:?}, not {:?}",
            discovery.issuer, provider.issuer
        )));
    }
    Ok(discovery)
}

/// Starts a sign-in with provider `name`; once it succeeds the browser goes to `return_to`
/// (checked by the caller to be a path on this server).
pub async fn start(
    state: &Services,
    name: &str,
    return_to: Option<String>,
) -> Result<Started, OidcError> {
    let provider = provider(state, name).ok_or_else(|| no_provider(name))?;
    let (endpoint, scope) = match provider.kind {
        ProviderKind::Oidc => (
            discover(state, provider).await?.authorization_endpoint,
            "openid email profile",
        ),
        ProviderKind::Github => (
            format!("{}/login/oauth/authorize", trim_slash(&provider.issuer)),
            "read:user user:email",
        ),
    };
    let flow_state = generate_token("");
    let nonce = generate_token("");
    let code_verifier = generate_token("");
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(code_verifier.as_bytes()));
    let mut location = reqwest::Url::parse(&endpoint)
        .map_err(|e| upstream(format!("the authorization endpoint is not a URL: {e}")))?;
    {
        // A block: the serializer is not `Send`, and must be gone before the next await.
        let mut query = location.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", &redirect_uri(state, name))
            .append_pair("scope", scope)
            .append_pair("state", &flow_state);
        if provider.kind == ProviderKind::Oidc {
            query.append_pair("nonce", &nonce);
        }
        query
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
    }
    state
        .store
        .start_oidc_flow(
            &hash_token(&flow_state),
            &OidcFlow {
                provider: name.to_owned(),
                nonce,
                code_verifier,
                return_to,
                expires_at: now().saturating_add(FLOW_TTL_SECONDS),
            },
        )
        .await?;
    Ok(Started {
        location: location.into(),
        state: flow_state,
    })
}

/// What the provider sent the browser back with.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The state from the URL.
    pub state: Option<String>,
    /// The provider's error code, when sign-in failed there.
    pub error: Option<String>,
    /// The state from our cookie.
    pub cookie_state: Option<String>,
}

/// Finishes a sign-in with provider `name`: exchanges the code, verifies the ID token, and
/// finds the user by (issuer, subject) or creates them with their private organization.
/// Answers the user and where the sign-in was started to return to.
pub async fn finish(
    state: &Services,
    name: &str,
    callback: Callback,
    client: Option<IpAddr>,
    key: &RequestKey,
) -> Result<(User, Option<String>), OidcError> {
    let provider = provider(state, name).ok_or_else(|| no_provider(name))?;
    state.sign_in.check_client(client)?;
    if let Some(error) = callback.error {
        return Err(OidcError::Refused(format!(
            "the provider refused the sign-in: {error}"
        )));
    }
    let (Some(code), Some(flow_state)) = (callback.code, callback.state) else {
        return Err(OidcError::BadCallback {
            detail: "the callback needs code and state",
            field: "code",
        });
    };
    let same = callback
        .cookie_state
        .is_some_and(|c| blake3::hash(c.as_bytes()) == blake3::hash(flow_state.as_bytes()));
    if !same {
        return Err(OidcError::BadCallback {
            detail: "the state does not match this browser's sign-in; start again",
            field: "state",
        });
    }
    let flow = match state.store.take_oidc_flow(&hash_token(&flow_state)).await {
        Ok(flow) if flow.provider == name => flow,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(OidcError::BadCallback {
                detail: "the sign-in expired or was already used; start again",
                field: "state",
            });
        }
        Err(other) => return Err(other.into()),
    };
    let claims = match provider.kind {
        ProviderKind::Oidc => {
            let discovery = discover(state, provider).await?;
            let id_token = exchange(state, provider, &discovery, name, &code, &flow).await?;
            verify(state, provider, &discovery, &id_token, &flow.nonce).await?
        }
        ProviderKind::Github => github_user(state, provider, name, &code, &flow).await?,
    };
    let issuer = trim_slash(&provider.issuer).to_owned();
    match state
        .store
        .user_by_external_identity(&issuer, &claims.sub)
        .await
    {
        Ok(user) => return Ok((user, flow.return_to)),
        Err(StoreError::NotFound) => {}
        Err(other) => return Err(other.into()),
    }
    if state.store.user_count().await? == 0 {
        return Err(OidcError::NoAccountYet);
    }
    let email = claims
        .email
        .as_deref()
        .map(accounts::normalize_email)
        .filter(|e| accounts::email_problem(e).is_none() && claims.email_verified != Some(false))
        .ok_or(OidcError::NoEmail)?;
    let name = claims
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| accounts::name_problem(n).is_none())
        .map_or_else(
            || email.split('@').next().unwrap_or("user").to_owned(),
            str::to_owned,
        );
    let (user, _) = accounts::create_account(
        state,
        AccountDraft {
            email,
            name,
            password_hash: None,
            is_admin: false,
            external: Some((issuer, claims.sub)),
        },
        key,
    )
    .await?;
    Ok((user, flow.return_to))
}

async fn exchange(
    state: &Services,
    provider: &OidcProvider,
    discovery: &Discovery,
    name: &str,
    code: &str,
    flow: &OidcFlow,
) -> Result<String, OidcError> {
    let redirect = redirect_uri(state, name);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("client_id", provider.client_id.as_str()),
        ("code_verifier", flow.code_verifier.as_str()),
    ];
    let mut request = state.sign_in.http.post(&discovery.token_endpoint);
    if let Some(secret) = &provider.client_secret {
        let post = discovery
            .token_endpoint_auth_methods_supported
            .iter()
            .any(|m| m == "client_secret_post")
            && !discovery
                .token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_basic");
        if post {
            form.push(("client_secret", secret.expose()));
        } else {
            request = request.basic_auth(
                form_encode(&provider.client_id),
                Some(form_encode(secret.expose())),
            );
        }
    }
    let request = request.header("accept", "application/json").form(&form);
    let token: TokenResponse = send_json(request, "token endpoint").await?;
    Ok(token.id_token)
}

/// Exchanges the code at GitHub and reads who signed in: their numeric id (the subject:
/// logins can be renamed and reused), name or login, and their verified primary email.
async fn github_user(
    state: &Services,
    provider: &OidcProvider,
    name: &str,
    code: &str,
    flow: &OidcFlow,
) -> Result<IdClaims, OidcError> {
    let redirect = redirect_uri(state, name);
    let secret = provider.client_secret.as_ref().map(|s| s.expose());
    let mut form = vec![
        ("client_id", provider.client_id.as_str()),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", flow.code_verifier.as_str()),
    ];
    form.extend(secret.map(|s| ("client_secret", s)));
    let url = format!("{}/login/oauth/access_token", trim_slash(&provider.issuer));
    let request = state
        .sign_in
        .http
        .post(&url)
        .header("accept", "application/json")
        .form(&form);
    let token: GithubToken = send_json(request, "GitHub token endpoint").await?;
    let Some(access_token) = token.access_token else {
        let error = token.error.unwrap_or_else(|| "no access token".to_owned());
        let detail = token
            .error_description
            .map_or(error.clone(), |d| format!("{error}: {d}"));
        return Err(OidcError::Refused(format!(
            "GitHub refused the sign-in: {detail}"
        )));
    };
    let api = provider.github_api();
    let get = |path: &str| {
        state
            .sign_in
            .http
            .get(format!("{api}{path}"))
            .bearer_auth(&access_token)
            .header("accept", GITHUB_ACCEPT)
            .header("x-github-api-version", GITHUB_API_VERSION)
            .header("user-agent", "hexabase")
    };
    let user: GithubUser = send_json(get("/user"), "GitHub user").await?;
    let emails: Vec<GithubEmail> = send_json(get("/user/emails"), "GitHub list of emails").await?;
    let email = emails.into_iter().find(|e| e.primary && e.verified);
    Ok(IdClaims {
        sub: user.id.to_string(),
        nonce: None,
        email_verified: email.as_ref().map(|_| true),
        email: email.map(|e| e.email),
        name: Some(
            user.name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(user.login),
        ),
    })
}

/// `application/x-www-form-urlencoded`, as RFC 6749 §2.3.1 wants client credentials in
/// basic authentication (and as query values are written).
pub fn form_encode(value: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("v", value)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_default()
}

const SIGNATURE_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

async fn verify(
    state: &Services,
    provider: &OidcProvider,
    discovery: &Discovery,
    id_token: &str,
    nonce: &str,
) -> Result<IdClaims, OidcError> {
    let invalid = |why: String| OidcError::Refused(format!("the ID token is not valid: {why}"));
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| invalid(e.to_string()))?;
    if !SIGNATURE_ALGORITHMS.contains(&header.alg) {
        return Err(invalid(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let keys: JwkSet = get_json(state, &discovery.jwks_uri, "key set").await?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| invalid("no key of the provider matches its key id".to_owned()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[discovery.issuer.as_str()]);
    validation.set_audience(&[provider.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
        .map_err(|e| invalid(e.to_string()))?
        .claims;
    let same_nonce = claims
        .nonce
        .as_deref()
        .is_some_and(|n| blake3::hash(n.as_bytes()) == blake3::hash(nonce.as_bytes()));
    if !same_nonce {
        return Err(invalid("its nonce is not this sign-in's".to_owned()));
    }
    Ok(claims)
}
