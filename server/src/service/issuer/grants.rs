//! The grants behind the issuer's protocol endpoints: the authorization request and its code
//! (PKCE S256, loopback redirects), the token endpoint's grants (authorization code, refresh
//! token, and the device code of `device`), revocation (RFC 7009) and userinfo.
//!
//! Each function takes the request as the endpoint read it and answers the token response, or
//! a [`GrantError`]: a refusal with its OAuth error code (RFC 6749 §5.2) and a description
//! for the client, or a failure of a step with its source kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Issuer;
use super::refusal::{GrantError, OAuthCode};
use super::{
    IdentityClaims, NO_WORKSPACE_ACCESS, OidcClient, is_loopback_redirect, pkce_matches,
    platform_oidc, requested_client, resolve_client, scopes, token_groups,
};
use crate::gitops::Snapshot;
use crate::service::apply::Engine;
use crate::service::credentials::{API_TOKEN_PREFIX, generate_token, hash_token};
use crate::service::tenancy;
use crate::store::{AuthCode, RefreshToken, RefreshUse, Store, StoreError, User};

/// The fields of a form-encoded request (token, device authorization, revocation), or the
/// query of an authorization request.
pub type Form = BTreeMap<String, String>;

/// The grant type of the device flow (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What every endpoint needs: the head, and the issuer URL and settings it names.
#[derive(Debug)]
pub struct IssuerContext {
    /// The branch head.
    pub snapshot: Arc<Snapshot>,
    /// The issuer URL (`iss`).
    pub issuer: String,
    /// The platform's OIDC settings.
    pub oidc: compiler::intent::Oidc,
}

impl IssuerContext {
    /// The issuer URL without a trailing slash, which endpoint paths follow.
    pub fn base(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }
}

/// The issuer at the branch head; `temporarily_unavailable` without a platform intent. The
/// groups index is brought up to that head first, so that the `groups` claim follows the
/// branch (a merged pull request removing someone counts in the next token).
pub async fn context(store: &Store, engine: &Arc<Engine>) -> Result<IssuerContext, GrantError> {
    tenancy::sync_if_behind(store, engine).await?;
    let snapshot = tenancy::head(engine).await?;
    let oidc = platform_oidc(&snapshot).cloned().ok_or_else(|| {
        GrantError::refused(
            OAuthCode::TemporarilyUnavailable,
            "the platform intent (intent/platform.yaml) is missing, so there is no issuer",
        )
    })?;
    Ok(IssuerContext {
        issuer: oidc.issuer_url.clone(),
        snapshot,
        oidc,
    })
}

/// The non-empty field `name` of a form, or `invalid_request` naming it.
pub(super) fn field<'a>(form: &'a Form, name: &str) -> Result<&'a String, GrantError> {
    form.get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| GrantError::invalid_request(format!("{name}: missing")))
}

/// The client `client_id` names (see [`requested_client`]), or an error naming the field.
/// Whether a workspace exists never changes the answer: an id of the right form that names
/// none is an [`OidcClient::Hidden`], which every endpoint answers as it answers a workspace
/// the caller is in no group of.
pub(super) fn requested(ctx: &IssuerContext, client_id: &str) -> Result<OidcClient, GrantError> {
    requested_client(&ctx.snapshot, client_id).ok_or_else(|| {
        GrantError::refused(
            OAuthCode::InvalidClient,
            format!(
                "client_id: {client_id:?} is not a client id of this issuer (hb, or ws-<organization>-<workspace>)"
            ),
        )
    })
}

/// An authorization request whose client and redirect URI are known good: from here on,
/// refusals go to the redirect URI.
#[derive(Debug, Clone)]
pub struct Authorization {
    client: OidcClient,
    redirect_uri: String,
    state: Option<String>,
    issuer: String,
    scope: String,
    challenge: String,
    nonce: Option<String>,
    prompt_none: bool,
}

/// Why an authorization request gets no code.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Answered to the browser itself: the redirect URI is not known good (yet), or a step
    /// failed.
    Refused(GrantError),
    /// Answered at the client's redirect URI: this URL carries the error.
    Redirect(String),
}

impl From<GrantError> for AuthorizeError {
    fn from(error: GrantError) -> Self {
        Self::Refused(error)
    }
}

impl Authorization {
    /// Whether the client asked not to show any page (`prompt=none`).
    pub fn prompt_none(&self) -> bool {
        self.prompt_none
    }

    /// The answer that sends `code` and `description` to the client's redirect URI.
    pub fn refuse(&self, code: OAuthCode, description: &str) -> AuthorizeError {
        self.redirect(&[("error", code.as_str()), ("error_description", description)])
    }

    /// The redirect URI with `pairs`, the state and the issuer (RFC 9207) added.
    fn redirect(&self, pairs: &[(&str, &str)]) -> AuthorizeError {
        let Ok(mut url) = reqwest::Url::parse(&self.redirect_uri) else {
            return GrantError::invalid_request("redirect_uri: not a URL").into();
        };
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        AuthorizeError::Redirect(url.into())
    }
}

/// Checks an authorization request (its query `params`) in the order OAuth answers it:
/// problems with the client or the redirect URI to the browser, the rest to the redirect
/// URI.
pub fn authorize(ctx: &IssuerContext, params: &Form) -> Result<Authorization, AuthorizeError> {
    let client_id = params
        .get("client_id")
        .ok_or_else(|| GrantError::invalid_request("client_id: missing"))?;
    let client = requested(ctx, client_id)?;
    if client == OidcClient::Cli {
        return Err(GrantError::refused(
            OAuthCode::UnauthorizedClient,
            "client_id: the hb CLI signs in with the device flow",
        )
        .into());
    }
    let Some(redirect_uri) = params
        .get("redirect_uri")
        .filter(|u| is_loopback_redirect(u))
    else {
        return Err(GrantError::invalid_request(
            "redirect_uri: must be a loopback http URI (http://127.0.0.1:<port>/…, http://localhost:<port>/…; RFC 8252 §7.3)",
        )
        .into());
    };
    let mut request = Authorization {
        client,
        redirect_uri: redirect_uri.clone(),
        state: params.get("state").cloned(),
        issuer: ctx.issuer.clone(),
        scope: params.get("scope").cloned().unwrap_or_default(),
        challenge: String::new(),
        nonce: params.get("nonce").cloned(),
        prompt_none: params.get("prompt").map(String::as_str) == Some("none"),
    };
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(request.refuse(
            OAuthCode::UnsupportedResponseType,
            "response_type: only code is supported",
        ));
    }
    if !scopes(&request.scope).contains("openid") {
        return Err(request.refuse(OAuthCode::InvalidScope, "scope: must include openid"));
    }
    let Some(challenge) = params.get("code_challenge") else {
        return Err(request.refuse(
            OAuthCode::InvalidRequest,
            "code_challenge: PKCE is required (S256)",
        ));
    };
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(request.refuse(
            OAuthCode::InvalidRequest,
            "code_challenge_method: only S256 is supported",
        ));
    }
    let challenge_ok = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !challenge_ok {
        return Err(request.refuse(
            OAuthCode::InvalidRequest,
            "code_challenge: must be 43 base64url characters (the SHA-256 of the verifier)",
        ));
    }
    request.challenge = challenge.clone();
    Ok(request)
}

/// Gives `user` a code for the checked `request` when they are in a group of its workspace:
/// the redirect URI with the code.
pub async fn grant_code(
    store: &Store,
    issuer: &Issuer,
    request: &Authorization,
    user: &User,
) -> Result<String, AuthorizeError> {
    let groups = match &request.client {
        OidcClient::Workspace { org, ws, .. } => token_groups(store, org, ws, &user.id)
            .await
            .map_err(GrantError::from)?,
        OidcClient::Hidden { .. } | OidcClient::Cli => Vec::new(),
    };
    if groups.is_empty() {
        return Err(request.refuse(OAuthCode::AccessDenied, NO_WORKSPACE_ACCESS));
    }
    let code = generate_token("");
    let now = issuer.now();
    store
        .create_auth_code(
            &hash_token(&code),
            &AuthCode {
                client_id: request.client.id().to_owned(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.challenge.clone(),
                user_id: user.id.clone(),
                nonce: request.nonce.clone(),
                scope: request.scope.clone(),
                expires_at: now + issuer.settings().code_ttl_seconds,
            },
            now,
        )
        .await
        .map_err(GrantError::from)?;
    match request.redirect(&[("code", &code)]) {
        AuthorizeError::Redirect(url) => Ok(url),
        refused => Err(refused),
    }
}

/// The authorization code grant: the tokens for the code in `form`.
pub(super) async fn code_grant(
    store: &Store,
    issuer: &Issuer,
    ctx: &IssuerContext,
    client: &OidcClient,
    form: &Form,
) -> Result<Value, GrantError> {
    let code = field(form, "code")?;
    let verifier = field(form, "code_verifier")
        .map_err(|_| GrantError::invalid_request("code_verifier: missing (PKCE is required)"))?;
    let redirect_uri = field(form, "redirect_uri")?;
    let now = issuer.now();
    let stored = match store.take_auth_code(&hash_token(code), now).await {
        Ok(stored) => stored,
        Err(StoreError::NotFound) => {
            return Err(GrantError::invalid_grant(
                "code: unknown, expired or already used",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    if stored.client_id != client.id() {
        return Err(GrantError::invalid_grant("code: issued to another client"));
    }
    if &stored.redirect_uri != redirect_uri {
        return Err(GrantError::invalid_grant(
            "redirect_uri: not the one the code was sent to",
        ));
    }
    if !pkce_matches(verifier, &stored.code_challenge) {
        return Err(GrantError::invalid_grant(
            "code_verifier: does not match the code challenge",
        ));
    }
    let user = store.user(&stored.user_id).await?;
    issue(
        store,
        issuer,
        ctx,
        client,
        &user,
        Grant {
            scope: &stored.scope,
            nonce: stored.nonce.as_deref(),
            family: None,
        },
    )
    .await
}

/// The refresh token grant: new tokens for the refresh token in `form`, in its family.
pub(super) async fn refresh_grant(
    store: &Store,
    issuer: &Issuer,
    ctx: &IssuerContext,
    client: &OidcClient,
    form: &Form,
) -> Result<Value, GrantError> {
    let presented = field(form, "refresh_token")?;
    let now = issuer.now();
    let token = match store.use_refresh_token(&hash_token(presented), now).await? {
        RefreshUse::Fresh(token) => token,
        RefreshUse::Reused => {
            tracing::warn!(
                client = client.id(),
                "a refresh token was used twice: its family is revoked"
            );
            return Err(GrantError::invalid_grant(
                "refresh_token: already used; every token of its sign-in is revoked",
            ));
        }
        RefreshUse::Invalid => {
            return Err(GrantError::invalid_grant(
                "refresh_token: unknown, expired or revoked",
            ));
        }
    };
    if token.client_id != client.id() {
        store.revoke_family(&token.family_id).await?;
        return Err(GrantError::invalid_grant(
            "refresh_token: issued to another client",
        ));
    }
    let user = store.user(&token.user_id).await?;
    let issued = issue(
        store,
        issuer,
        ctx,
        client,
        &user,
        Grant {
            scope: &token.scope,
            nonce: None,
            family: Some(token.family_id.clone()),
        },
    )
    .await;
    if issued.is_err() {
        // Out of the workspace (or it is gone): nothing of this sign-in refreshes again.
        store.revoke_family(&token.family_id).await?;
    }
    issued
}

/// What a user granted a client: the scope, the client's nonce, and the family of refresh
/// tokens the new one joins (none for a new sign-in).
pub(super) struct Grant<'a> {
    pub(super) scope: &'a str,
    pub(super) nonce: Option<&'a str>,
    pub(super) family: Option<String>,
}

/// The token answer for `user` at `client`: for a workspace, an ID token with its flattened
/// groups, an access token and a refresh token (in `family` when refreshing); for the `hb`
/// CLI, an ID token and an API token as the access token.
pub(super) async fn issue(
    store: &Store,
    issuer: &Issuer,
    ctx: &IssuerContext,
    client: &OidcClient,
    user: &User,
    grant: Grant<'_>,
) -> Result<Value, GrantError> {
    let Grant {
        scope,
        nonce,
        family,
    } = grant;
    let ttl = issuer.settings().token_ttl_seconds;
    match client {
        OidcClient::Workspace { org, ws, client_id } => {
            let groups = token_groups(store, org, ws, &user.id).await?;
            if groups.is_empty() {
                return Err(GrantError::invalid_grant(NO_WORKSPACE_ACCESS));
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
            store
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
        OidcClient::Hidden { .. } => Err(GrantError::invalid_grant(NO_WORKSPACE_ACCESS)),
        OidcClient::Cli => {
            let who = IdentityClaims {
                user,
                client_id: client.id(),
                nonce,
                groups: None,
            };
            let id_token = issuer.id_token(&ctx.issuer, &ctx.oidc, &who).await?;
            let secret = generate_token(API_TOKEN_PREFIX);
            store
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

/// The userinfo answer for the bearer access token `token`; an unusable token is refused
/// with `invalid_token`.
pub async fn userinfo(
    store: &Store,
    issuer: &Issuer,
    ctx: &IssuerContext,
    token: &str,
) -> Result<Value, GrantError> {
    let invalid = |description: &str| GrantError::refused(OAuthCode::InvalidToken, description);
    let claims = issuer
        .verify(token.trim(), &ctx.issuer, None)
        .await
        .map_err(|refused| invalid(&refused.to_string()))?;
    if claims.get("client_id").is_none() {
        return Err(invalid("the token is not an access token"));
    }
    let (Some(sub), Some(client_id)) = (
        claims.get("sub").and_then(Value::as_str),
        claims.get("client_id").and_then(Value::as_str),
    ) else {
        return Err(invalid("the token has no subject or client"));
    };
    let user = match store.user(sub).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => return Err(invalid("the token's user no longer exists")),
        Err(other) => return Err(other.into()),
    };
    let mut info = json!({
        "sub": user.id,
        "email": user.email,
        "email_verified": true,
        "name": user.name,
        "preferred_username": user.email,
    });
    if let Some(OidcClient::Workspace { org, ws, .. }) = resolve_client(&ctx.snapshot, client_id) {
        let groups = token_groups(store, &org, &ws, &user.id).await?;
        info[ctx.oidc.groups_claim.as_str()] = json!(groups);
    }
    Ok(info)
}

/// Revokes the refresh token in `form` and its family, when `client_id` holds it (RFC 7009).
pub async fn revoke(store: &Store, client_id: &str, form: &Form) -> Result<(), GrantError> {
    let token = field(form, "token")?;
    // RFC 7009 §2.2: an unknown or already invalid token is answered 200 all the same. Access
    // tokens are short-lived JWTs and are not revoked; refresh tokens take their family along.
    store
        .revoke_refresh_family(&hash_token(token), client_id)
        .await?;
    Ok(())
}
