//! The settings of accounts, browser sessions, external sign-in providers and the OpenID
//! Connect issuer: each with its default and its check.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::Secret;

/// Browser sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// How long a session lasts, in seconds.
    pub ttl_seconds: i64,
}

/// The algorithm new signing keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SigningAlg {
    /// RSA 2048 with SHA-256: what kube-apiserver accepts by default.
    #[default]
    RS256,
    /// ECDSA P-256 with SHA-256 (the vCluster needs `--oidc-signing-algs=ES256`).
    ES256,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }
}

/// The OpenID Connect issuer: token lifetimes and key rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerSettings {
    /// Lifetime of ID and access tokens, in seconds (at most 900).
    pub token_ttl_seconds: i64,
    /// Lifetime of a refresh token, in seconds (each use rotates it).
    pub refresh_ttl_seconds: i64,
    /// How long an authorization code is valid, in seconds.
    pub code_ttl_seconds: i64,
    /// How long a device code is valid, in seconds.
    pub device_code_ttl_seconds: i64,
    /// The least interval between two polls of one device code, in seconds.
    pub device_poll_seconds: i64,
    /// The algorithm of new signing keys.
    pub signing_alg: SigningAlg,
    /// A signing key is replaced after this many seconds of signing.
    pub rotate_after_seconds: i64,
    /// A new key is published this many seconds before it signs, so every verifier has
    /// fetched it by then.
    pub publish_ahead_seconds: i64,
    /// A PEM file of the CA certificates that sign the vClusters' endpoints; read at start,
    /// it goes (base64) into every kubeconfig's `certificate-authority-data`. None: kubeconfigs
    /// carry no CA data and kubectl trusts the system's roots.
    pub kubeconfig_ca_file: Option<PathBuf>,
    /// The certificates of `kubeconfig_ca_file`, as PEM, then base64: what kubeconfigs carry.
    #[serde(skip)]
    pub kubeconfig_ca_data: Option<String>,
}

impl IssuerSettings {
    /// Reads `kubeconfig_ca_file` into `kubeconfig_ca_data`: it must hold PEM certificates
    /// (and only they are kept, so a key in the same file never reaches a kubeconfig).
    pub fn load_kubeconfig_ca(&mut self) -> Result<()> {
        let Some(path) = &self.kubeconfig_ca_file else {
            self.kubeconfig_ca_data = None;
            return Ok(());
        };
        let field = "issuer.kubeconfig_ca_file";
        let bytes = std::fs::read(path)
            .with_context(|| format!("{field}: failed to read {}", path.display()))?;
        let certs = openssl::x509::X509::stack_from_pem(&bytes).with_context(|| {
            format!(
                "{field}: {} does not hold PEM certificates (-----BEGIN CERTIFICATE-----)",
                path.display()
            )
        })?;
        if certs.is_empty() {
            bail!(
                "{field}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            );
        }
        let mut pem = Vec::new();
        for cert in &certs {
            pem.extend(cert.to_pem().with_context(|| {
                format!(
                    "{field}: failed to encode a certificate of {}",
                    path.display()
                )
            })?);
        }
        self.kubeconfig_ca_data = Some(base64::engine::general_purpose::STANDARD.encode(pem));
        Ok(())
    }

    /// Refuses settings the issuer cannot keep its promises with, naming the key.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("refresh_ttl_seconds", self.refresh_ttl_seconds),
            ("code_ttl_seconds", self.code_ttl_seconds),
            ("device_code_ttl_seconds", self.device_code_ttl_seconds),
            ("device_poll_seconds", self.device_poll_seconds),
            ("rotate_after_seconds", self.rotate_after_seconds),
        ];
        if !(1..=900).contains(&self.token_ttl_seconds) {
            return Err("token_ttl_seconds: must be 1 to 900 (15 minutes)".to_owned());
        }
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v <= 0) {
            return Err(format!("{key}: must be positive"));
        }
        if self.publish_ahead_seconds < 0 || self.publish_ahead_seconds >= self.rotate_after_seconds
        {
            return Err(
                "publish_ahead_seconds: must be at least 0 and less than rotate_after_seconds"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

impl Default for IssuerSettings {
    fn default() -> Self {
        Self {
            token_ttl_seconds: 600,
            refresh_ttl_seconds: 30 * 24 * 3600,
            code_ttl_seconds: 60,
            device_code_ttl_seconds: 600,
            device_poll_seconds: 5,
            signing_alg: SigningAlg::RS256,
            rotate_after_seconds: 30 * 24 * 3600,
            publish_ahead_seconds: 3600,
            kubeconfig_ca_file: None,
            kubeconfig_ca_data: None,
        }
    }
}

/// Accounts: who may sign up, and for how long invitations hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// Whether anyone may sign up once the administrator has (otherwise only the first
    /// account, made with the setup token, and people signing in through an external
    /// provider get one).
    pub open_signup: bool,
    /// How long an invitation to an organization holds, in seconds.
    pub invitation_ttl_seconds: i64,
}

/// An external sign-in provider: an OpenID Connect issuer (Google, Dex, Keycloak, any), or
/// GitHub (`kind = "github"`), which speaks plain OAuth 2.0 and is asked for the user's
/// verified email through its REST API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// A short name, used in URLs (`/api/v1/auth/oidc/<name>`).
    pub name: String,
    /// What the provider speaks.
    #[serde(default)]
    pub kind: ProviderKind,
    /// The issuer URL, whose discovery document is read at each sign-in; for GitHub, its web
    /// address (`https://github.com`, or a GitHub Enterprise Server's).
    pub issuer: String,
    /// GitHub's REST API address: `https://api.github.com` for `https://github.com`,
    /// `<issuer>/api/v3` for GitHub Enterprise Server, unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The client id registered with the provider.
    pub client_id: String,
    /// A file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// The client secret, read from `client_secret_file`.
    #[serde(default, skip_deserializing)]
    pub client_secret: Option<Secret>,
}

/// What an external sign-in provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect: the code flow with PKCE, and a signed ID token.
    #[default]
    Oidc,
    /// GitHub's OAuth apps: the code flow with PKCE, then `GET /user` and `/user/emails`.
    Github,
}

impl OidcProvider {
    /// GitHub's REST API address for this provider (see [`OidcProvider::api_url`]).
    pub fn github_api(&self) -> String {
        match &self.api_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.issuer.trim_end_matches('/') == "https://github.com" => {
                "https://api.github.com".to_owned()
            }
            None => format!("{}/api/v3", self.issuer.trim_end_matches('/')),
        }
    }
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            open_signup: true,
            invitation_ttl_seconds: 7 * 24 * 3600,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 12 * 3600,
        }
    }
}
