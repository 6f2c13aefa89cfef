//! The server as the OpenID Connect issuer every vCluster trusts: signing keys with rotation,
//! ID and access tokens, the own validator, and the grants (authorization code with PKCE,
//! refresh token, device code) behind the protocol endpoints in `http::issuer`.
//!
//! The issuer URL is the platform intent's `spec.oidc.issuerUrl` at the branch head: the URL
//! the compiler renders into every vCluster's `--oidc-issuer-url`. A workspace's client id is
//! [`compiler::workspace_client_id`], the `--oidc-client-id` of its vCluster, so a token for
//! one workspace is refused by every other. `groups` are the user's groups in that workspace
//! flattened through the hierarchy.
//!
//! Where each part lives: `keys` (the key ring and its rotation), `tokens` (signing and the
//! own validator), `grants` (authorization code with PKCE, refresh token, revocation,
//! userinfo), `device` (the device flow, RFC 8628), `refusal` (`GrantError`, `OAuthCode`) and
//! `kubeconfig`; this file resolves clients and dispatches the token endpoint's grants
//! ([`token`]). The protocol endpoints in `http::issuer` only extract a request, call one
//! function here and map the answer.

mod device;
mod grants;
mod keys;
mod kubeconfig;
mod refusal;
mod tokens;

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::Digest as _;

use crate::gitops::Snapshot;
use crate::store::{Store, StoreError};

pub use device::{DeviceDecision, decide_device, start_device};
pub use grants::{
    Authorization, AuthorizeError, DEVICE_GRANT, Form, IssuerContext, authorize, context,
    grant_code, revoke, userinfo,
};
pub use keys::{
    Clock, Issuer, IssuerError, ManualClock, PublishedKey, RETIRE_MARGIN_SECONDS, RotateError,
    Rotation, SystemClock, generate_key,
};
pub use kubeconfig::{
    ClusterEntry, ContextEntry, ExecConfig, Kubeconfig, NamedCluster, NamedContext, NamedUser,
    UserEntry, kubeconfig,
};
pub use refusal::{GrantError, OAuthCode};
pub use tokens::{IdentityClaims, InvalidToken};

/// The client id of the `hb` CLI (device flow only).
pub const CLI_CLIENT_ID: &str = "hb";
/// A client of the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcClient {
    /// A workspace's vCluster: `kubectl oidc-login` with loopback redirects, or the device
    /// flow.
    Workspace {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        ws: String,
        /// `ws-<org>-<ws>`.
        client_id: String,
    },
    /// The `hb` CLI (device flow).
    Cli,
    /// A client id of a workspace's form that names no workspace at the head. Every answer
    /// about it is the one a workspace the caller is in no group of gets, so that nobody
    /// learns from the issuer which workspaces exist.
    Hidden {
        /// `ws-…`, as the request named it.
        client_id: String,
    },
}

impl OidcClient {
    /// The client id.
    pub fn id(&self) -> &str {
        match self {
            Self::Workspace { client_id, .. } | Self::Hidden { client_id } => client_id,
            Self::Cli => CLI_CLIENT_ID,
        }
    }
}

/// Why a workspace client refuses a user: the same words whether the workspace does not
/// exist or the user is in none of its groups.
pub const NO_WORKSPACE_ACCESS: &str =
    "you may not sign in to this workspace: it does not exist, or you are in none of its groups";

/// Whether `client_id` has the form of a client id of this issuer: the CLI's, or a
/// workspace's (`ws-` and more, a DNS label as a whole like the host namespace it also is:
/// [`compiler::Slug`]).
pub fn well_formed_client_id(client_id: &str) -> bool {
    client_id == CLI_CLIENT_ID
        || client_id.len() > "ws-".len()
            && client_id.starts_with("ws-")
            && compiler::Slug::check(client_id, compiler::Slug::MAX).is_ok()
}

/// The client a request names: the one at the head, [`OidcClient::Hidden`] for a well-formed
/// workspace client id that names none, `None` for an id that cannot be a client's.
pub fn requested_client(snapshot: &Snapshot, client_id: &str) -> Option<OidcClient> {
    resolve_client(snapshot, client_id).or_else(|| {
        well_formed_client_id(client_id).then(|| OidcClient::Hidden {
            client_id: client_id.to_owned(),
        })
    })
}

/// The client with id `client_id` at the head `snapshot`, if there is one.
pub fn resolve_client(snapshot: &Snapshot, client_id: &str) -> Option<OidcClient> {
    if client_id == CLI_CLIENT_ID {
        return Some(OidcClient::Cli);
    }
    snapshot
        .intent
        .organizations
        .iter()
        .find_map(|(org, intent)| {
            let ws = client_id.strip_prefix(&compiler::workspace_client_id(org, ""))?;
            let found = intent.workspaces.get(ws)?;
            (found.workspace.is_some() && compiler::workspace_client_id(org, ws) == client_id).then(
                || OidcClient::Workspace {
                    org: org.clone(),
                    ws: ws.to_owned(),
                    client_id: client_id.to_owned(),
                },
            )
        })
}

/// The OIDC settings of the platform at the head: what every vCluster is rendered with.
pub fn platform_oidc(snapshot: &Snapshot) -> Option<&compiler::intent::Oidc> {
    snapshot.intent.platform.as_ref().map(|p| &p.spec.oidc)
}

/// The path part of an issuer URL, without a trailing slash (`""` for `https://host`).
pub fn issuer_path(issuer: &str) -> &str {
    let rest = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    rest.find('/')
        .map_or("", |i| &rest[i..])
        .trim_end_matches('/')
}

/// The user's groups in a workspace as the token carries them: flattened through the
/// hierarchy, never a `system:` name.
pub async fn token_groups(
    store: &Store,
    org: &str,
    ws: &str,
    user_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(super::tenancy::flattened_groups(store, org, ws, user_id)
        .await?
        .into_iter()
        .filter(|g| !g.starts_with("system:"))
        .collect())
}

/// Whether `verifier` matches the S256 `challenge` (RFC 7636), compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    valid && blake3::hash(computed.as_bytes()) == blake3::hash(challenge.as_bytes())
}

/// Whether `uri` is a loopback redirect URI (RFC 8252 §7.3): `http` to `127.0.0.1`, `[::1]`
/// or `localhost`, any port, any path, no fragment.
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    let host_ok = match url.host_str() {
        Some("localhost" | "[::1]") => true,
        Some(host) => host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    url.scheme() == "http"
        && host_ok
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// A set of scope values, as given.
pub fn scopes(scope: &str) -> BTreeSet<&str> {
    scope.split(' ').filter(|s| !s.is_empty()).collect()
}

/// The token endpoint: the grant `form` names for the client `client_id`.
pub async fn token(
    store: &Store,
    issuer: &Issuer,
    ctx: &IssuerContext,
    client_id: &str,
    form: &Form,
) -> Result<Value, GrantError> {
    let client = grants::requested(ctx, client_id)?;
    match grants::field(form, "grant_type")?.as_str() {
        "authorization_code" => grants::code_grant(store, issuer, ctx, &client, form).await,
        "refresh_token" => grants::refresh_grant(store, issuer, ctx, &client, form).await,
        DEVICE_GRANT => device::device_grant(store, issuer, ctx, &client, form).await,
        other => Err(GrantError::refused(
            OAuthCode::UnsupportedGrantType,
            format!("grant_type: {other:?} is not supported"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_the_clis_or_a_workspaces_host_namespace() {
        for ok in [
            "hb",
            "ws-acme-dev",
            "ws-1acme-2dev",
            "ws-a",
            &format!("ws-{}", "a".repeat(60)),
        ] {
            assert!(well_formed_client_id(ok), "{ok}");
        }
        for bad in [
            "",
            "ws-",
            "ws-acme-",
            "ws-Acme-dev",
            "ws-acme_dev",
            "acme-dev",
            "HB",
            &format!("ws-{}", "a".repeat(61)),
        ] {
            assert!(!well_formed_client_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_issuer_path_is_the_urls_path() {
        assert_eq!(issuer_path("https://hexabase.example.com"), "");
        assert_eq!(issuer_path("https://hexabase.example.com/"), "");
        assert_eq!(issuer_path("https://h.example.com/oidc"), "/oidc");
        assert_eq!(issuer_path("https://h.example.com:8443/a/b/"), "/a/b");
    }

    #[test]
    fn only_loopback_http_redirects_are_allowed() {
        for ok in [
            "http://127.0.0.1:8000/",
            "http://127.0.0.1/callback",
            "http://localhost:18000",
            "http://[::1]:9/x?y=1",
        ] {
            assert!(is_loopback_redirect(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:8000/",
            "http://127.0.0.2.example.com/",
            "http://evil.example/",
            "http://localhost.evil.example/",
            "http://u:p@127.0.0.1/",
            "http://127.0.0.1/#frag",
            "urn:ietf:wg:oauth:2.0:oob",
            "not a url",
        ] {
            assert!(!is_loopback_redirect(bad), "{bad}");
        }
    }

    #[test]
    fn pkce_needs_the_verifier_of_the_challenge() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(challenge, challenge));
        assert!(!pkce_matches("short", challenge));
    }
}
