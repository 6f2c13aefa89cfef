//! The server as the OpenID Connect issuer every vCluster trusts: signing keys with rotation,
//! ID and access tokens, the own validator, and the grants (authorization code with PKCE,
//! refresh token, device code) of the protocol endpoints in `http::issuer`.
//!
//! The issuer URL is the platform intent's `spec.oidc.issuerUrl` at the branch head: the URL
//! the compiler renders into every vCluster's `--oidc-issuer-url`. A workspace's client id is
//! [`compiler::workspace_client_id`], the `--oidc-client-id` of its vCluster, so a token for
//! one workspace is refused by every other. `groups` are the user's groups in that workspace
//! flattened through the hierarchy.
//!
//! Keys: a key is published before it signs ([`IssuerSettings::publish_ahead_seconds`]), signs
//! for [`IssuerSettings::rotate_after_seconds`], and stays published until every token it
//! signed has expired (its successor's activation plus the token lifetime and a margin).
//! The time comes from a [`Clock`], so tests move it by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::gitops::Snapshot;
use crate::settings::{IssuerSettings, SigningAlg};
use crate::store::{SigningKey, Store, StoreError, User};

/// The client id of the `hb` CLI (device flow only).
pub const CLI_CLIENT_ID: &str = "hb";

/// Seconds a retired key stays published beyond the token lifetime (clock skew of verifiers).
pub const RETIRE_MARGIN_SECONDS: i64 = 300;

/// How often, at most, the key ring is read again from the database (another replica, or a
/// restart, may have rotated).
const RELOAD_SECONDS: i64 = 60;

/// Where the time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        crate::store::now()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: i64) -> Self {
        Self(AtomicI64::new(now))
    }

    /// Moves the clock by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why the issuer could not do something.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Making or reading a key failed.
    #[error("failed to {step} a signing key")]
    Key {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Signing a token failed.
    #[error("failed to sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// No key signs now (only a database edited by hand gets here).
    #[error("no signing key is active")]
    NoActiveKey,
}

fn key_error(
    step: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> IssuerError {
    move |source| IssuerError::Key { step, source }
}

/// Why a token is refused by [`Issuer::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token is not valid: {0}")]
pub struct InvalidToken(pub String);

/// What an operator's rotation did ([`Issuer::rotate_now`]).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// The key that signs from `activatesAt` on.
    pub kid: String,
    /// Its algorithm (`RS256`, `ES256`).
    pub alg: String,
    /// Whether this call made it; false when a rotation was already under way.
    pub created: bool,
    /// When it was published (Unix seconds).
    pub published_at: i64,
    /// When it starts to sign (Unix seconds): `issuer.publish_ahead_seconds` after it was
    /// published.
    pub activates_at: i64,
    /// Every published key after the rotation, oldest first.
    pub keys: Vec<PublishedKey>,
}

/// A key in the key set.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PublishedKey {
    /// Its key id (the RFC 7638 thumbprint).
    pub kid: String,
    /// Its algorithm.
    pub alg: String,
    /// When it signs from (Unix seconds).
    pub activates_at: i64,
    /// When it leaves the key set (Unix seconds): once every token it signed has expired;
    /// none while nothing replaces it.
    pub retires_at: Option<i64>,
}

/// One published key, parsed.
struct RingKey {
    alg: Algorithm,
    decoding: DecodingKey,
}

/// The keys in effect, parsed once and kept until the next transition.
struct KeyRing {
    /// The key that signs now: kid, algorithm, key.
    signing: Option<(String, Algorithm, EncodingKey)>,
    /// Every published key by kid.
    published: BTreeMap<String, RingKey>,
    /// The JWKS document.
    jwks: Value,
    /// When to read the keys again.
    valid_until: i64,
}

/// The issuer: keys, tokens and the validator. Cheap to share.
pub struct Issuer {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: IssuerSettings,
    ring: RwLock<Option<Arc<KeyRing>>>,
    rotate: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("clock", &self.clock)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The claims every token of ours has, as the validator reads them; the types are checked
/// (an `exp` that is not an integer is refused).
#[derive(Debug, Clone, Deserialize)]
struct Registered {
    iss: String,
    sub: String,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

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
/// workspace's (`ws-` and a DNS label, at most 63 characters like the host namespace).
pub fn well_formed_client_id(client_id: &str) -> bool {
    client_id == CLI_CLIENT_ID
        || client_id.len() <= 63
            && client_id.strip_prefix("ws-").is_some_and(|rest| {
                !rest.is_empty()
                    && !rest.ends_with('-')
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
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

/// What goes into an ID token besides the registered claims.
#[derive(Debug, Clone)]
pub struct IdentityClaims<'a> {
    /// The user.
    pub user: &'a User,
    /// The audience: the client id.
    pub client_id: &'a str,
    /// The client's nonce.
    pub nonce: Option<&'a str>,
    /// The groups (workspace clients only).
    pub groups: Option<&'a [String]>,
}

/// A JWK thumbprint (RFC 7638) of the required members, used as the key id.
fn thumbprint(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str() {
        Some("RSA") => json!({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}),
        _ => json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]}),
    };
    // serde_json keeps insertion order here, which is the lexicographic order RFC 7638 wants.
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Makes a new key pair: the PKCS#8 PEM of the private key and the public JWK (with `kid`).
pub fn generate_key(alg: SigningAlg) -> Result<(String, Value), IssuerError> {
    use openssl::bn::BigNumContext;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    let boxed =
        |e: openssl::error::ErrorStack| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) };
    let (pkey, mut jwk) = match alg {
        SigningAlg::RS256 => {
            let rsa = Rsa::generate(2048)
                .map_err(boxed)
                .map_err(key_error("generate"))?;
            let jwk = json!({
                "kty": "RSA",
                "n": b64(&rsa.n().to_vec()),
                "e": b64(&rsa.e().to_vec()),
            });
            (PKey::from_rsa(rsa), jwk)
        }
        SigningAlg::ES256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
                .map_err(boxed)
                .map_err(key_error("generate"))?;
            let ec = EcKey::generate(&group)
                .map_err(boxed)
                .map_err(key_error("generate"))?;
            let mut ctx = BigNumContext::new()
                .map_err(boxed)
                .map_err(key_error("generate"))?;
            let mut x = openssl::bn::BigNum::new()
                .map_err(boxed)
                .map_err(key_error("generate"))?;
            let mut y = openssl::bn::BigNum::new()
                .map_err(boxed)
                .map_err(key_error("generate"))?;
            ec.public_key()
                .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                .map_err(boxed)
                .map_err(key_error("generate"))?;
            let pad = |n: &openssl::bn::BigNum| n.to_vec_padded(32).map_err(boxed);
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(&pad(&x).map_err(key_error("generate"))?),
                "y": b64(&pad(&y).map_err(key_error("generate"))?),
            });
            (PKey::from_ec_key(ec), jwk)
        }
    };
    let pkey = pkey.map_err(boxed).map_err(key_error("generate"))?;
    let pem = pkey
        .private_key_to_pem_pkcs8()
        .map_err(boxed)
        .map_err(key_error("encode"))?;
    let pem = String::from_utf8(pem).map_err(|e| key_error("encode")(Box::new(e)))?;
    let kid = thumbprint(&jwk);
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.as_str());
    jwk["use"] = json!("sig");
    Ok((pem, jwk))
}

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    }
}

/// The signing key of a stored private key, in the DER form jsonwebtoken's RustCrypto backend
/// reads (PKCS#1 for RSA, PKCS#8 for EC).
fn encoding_key(key: &SigningKey) -> Result<(Algorithm, EncodingKey), IssuerError> {
    let boxed =
        |e: openssl::error::ErrorStack| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) };
    let pkey = openssl::pkey::PKey::private_key_from_pem(key.private_pem.as_bytes())
        .map_err(boxed)
        .map_err(key_error("read"))?;
    match algorithm(&key.alg) {
        Some(Algorithm::RS256) => {
            let der = pkey
                .rsa()
                .and_then(|rsa| rsa.private_key_to_der())
                .map_err(boxed)
                .map_err(key_error("read"))?;
            Ok((Algorithm::RS256, EncodingKey::from_rsa_der(&der)))
        }
        Some(alg) => {
            let der = pkey
                .private_key_to_pkcs8()
                .map_err(boxed)
                .map_err(key_error("read"))?;
            Ok((alg, EncodingKey::from_ec_der(&der)))
        }
        None => Err(key_error("read")(
            format!("unknown algorithm {}", key.alg).into(),
        )),
    }
}

fn decoding_key(jwk: &Value) -> Option<DecodingKey> {
    let s = |name: &str| jwk[name].as_str();
    match s("kty")? {
        "RSA" => DecodingKey::from_rsa_components(s("n")?, s("e")?).ok(),
        "EC" => DecodingKey::from_ec_components(s("x")?, s("y")?).ok(),
        _ => None,
    }
}

impl Issuer {
    /// An issuer over `store` with the system clock.
    pub fn new(store: Store, settings: IssuerSettings) -> Self {
        Self::with_clock(store, settings, Arc::new(SystemClock))
    }

    /// An issuer with the clock `clock` (tests).
    pub fn with_clock(store: Store, settings: IssuerSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            settings,
            ring: RwLock::new(None),
            rotate: tokio::sync::Mutex::new(()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    /// Now, by the issuer's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    fn cached(&self, now: i64) -> Option<Arc<KeyRing>> {
        self.ring
            .read()
            .expect("the key ring lock is never poisoned: nothing panics while holding it")
            .as_ref()
            .filter(|ring| now < ring.valid_until)
            .cloned()
    }

    /// The key ring, rotating first when the policy says so.
    async fn ring(&self) -> Result<Arc<KeyRing>, IssuerError> {
        let now = self.now();
        if let Some(ring) = self.cached(now) {
            return Ok(ring);
        }
        let _one_at_a_time = self.rotate.lock().await;
        if let Some(ring) = self.cached(now) {
            return Ok(ring);
        }
        let ring = Arc::new(self.load(now).await?);
        *self
            .ring
            .write()
            .expect("the key ring lock is never poisoned: nothing panics while holding it") =
            Some(Arc::clone(&ring));
        Ok(ring)
    }

    /// Reads the keys, adds one when the rotation policy wants one, and parses them.
    async fn load(&self, now: i64) -> Result<KeyRing, IssuerError> {
        let mut keys = self.store.signing_keys(now).await?;
        let signing = keys
            .iter()
            .filter(|k| k.activate_at <= now)
            .max_by_key(|k| k.activate_at);
        let pending = keys.iter().any(|k| k.activate_at > now);
        let add = match signing {
            None if !pending => Some(now),
            Some(key)
                if !pending
                    && key.activate_at + self.settings.rotate_after_seconds
                        - self.settings.publish_ahead_seconds
                        <= now =>
            {
                Some(now + self.settings.publish_ahead_seconds)
            }
            _ => None,
        };
        if let Some(activate_at) = add {
            self.add_key(now, activate_at).await?;
            keys = self.store.signing_keys(now).await?;
        }
        let mut published = BTreeMap::new();
        let mut jwks = Vec::new();
        let mut transitions = vec![now + RELOAD_SECONDS];
        let mut signing = None;
        for key in &keys {
            let jwk: Value = serde_json::from_str(&key.public_jwk)
                .map_err(|e| key_error("read")(Box::new(e)))?;
            let alg = algorithm(&key.alg).ok_or_else(|| {
                key_error("read")(format!("unknown algorithm {}", key.alg).into())
            })?;
            let decoding = decoding_key(&jwk).ok_or_else(|| {
                key_error("read")(format!("key {} has no public key", key.kid).into())
            })?;
            published.insert(key.kid.clone(), RingKey { alg, decoding });
            jwks.push(jwk);
            if key.activate_at > now {
                transitions.push(key.activate_at);
            } else {
                signing = Some(key);
            }
            if let Some(retire) = key.retire_at {
                transitions.push(retire);
            }
            transitions.push(
                key.activate_at + self.settings.rotate_after_seconds
                    - self.settings.publish_ahead_seconds,
            );
        }
        let signing = match signing {
            Some(key) => {
                let (alg, encoding) = encoding_key(key)?;
                Some((key.kid.clone(), alg, encoding))
            }
            None => None,
        };
        Ok(KeyRing {
            signing,
            published,
            jwks: json!({ "keys": jwks }),
            valid_until: transitions
                .into_iter()
                .filter(|t| *t > now)
                .min()
                .unwrap_or(now + RELOAD_SECONDS),
        })
    }

    async fn add_key(&self, now: i64, activate_at: i64) -> Result<(), IssuerError> {
        let alg = self.settings.signing_alg;
        let (pem, jwk) = tokio::task::spawn_blocking(move || generate_key(alg))
            .await
            .map_err(|e| key_error("generate")(Box::new(e)))??;
        let key = SigningKey {
            kid: jwk["kid"].as_str().unwrap_or_default().to_owned(),
            alg: alg.as_str().to_owned(),
            private_pem: pem,
            public_jwk: jwk.to_string(),
            created_at: now,
            activate_at,
            retire_at: None,
        };
        // Keys that stop signing when this one starts stay published until every token they
        // signed has expired.
        let retire_previous_at =
            activate_at + self.settings.token_ttl_seconds + RETIRE_MARGIN_SECONDS;
        self.store
            .add_signing_key(&key, retire_previous_at, now)
            .await?;
        tracing::info!(kid = %key.kid, alg = %key.alg, activate_at, "made a signing key");
        Ok(())
    }

    /// An operator's rotation, without an outage: a new key is published at once and signs
    /// only after [`IssuerSettings::publish_ahead_seconds`], so verifiers have fetched it by
    /// then; the key signing now goes on until that moment and stays published until every
    /// token it signed has expired. When a key is already published but not yet signing, a
    /// rotation is under way: that key is answered and none is made, so asking again never
    /// puts the switch off. (The policy also rotates on its own.)
    pub async fn rotate_now(&self) -> Result<Rotation, IssuerError> {
        // A server that never signed makes its first key (signing at once) before rotating.
        self.ring().await?;
        let _one_at_a_time = self.rotate.lock().await;
        let now = self.now();
        let pending = self
            .store
            .signing_keys(now)
            .await?
            .iter()
            .any(|k| k.activate_at > now);
        if !pending {
            self.add_key(now, now + self.settings.publish_ahead_seconds)
                .await?;
        }
        *self
            .ring
            .write()
            .expect("the key ring lock is never poisoned: nothing panics while holding it") = None;
        let keys = self.store.signing_keys(now).await?;
        let next = keys
            .iter()
            .max_by_key(|k| k.activate_at)
            .ok_or(IssuerError::NoActiveKey)?;
        Ok(Rotation {
            kid: next.kid.clone(),
            alg: next.alg.clone(),
            created: !pending,
            published_at: next.created_at,
            activates_at: next.activate_at,
            keys: keys
                .iter()
                .map(|k| PublishedKey {
                    kid: k.kid.clone(),
                    alg: k.alg.clone(),
                    activates_at: k.activate_at,
                    retires_at: k.retire_at,
                })
                .collect(),
        })
    }

    /// The published keys (JWKS).
    pub async fn jwks(&self) -> Result<Value, IssuerError> {
        Ok(self.ring().await?.jwks.clone())
    }

    /// Signs `claims` with the active key; `typ` is the JOSE type (`JWT`, `at+jwt`).
    pub async fn sign(&self, typ: &str, claims: &Value) -> Result<String, IssuerError> {
        let ring = self.ring().await?;
        let (kid, alg, key) = ring.signing.as_ref().ok_or(IssuerError::NoActiveKey)?;
        let mut header = Header::new(*alg);
        header.kid = Some(kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, key).map_err(IssuerError::Sign)
    }

    /// An ID token for `who` from `issuer`.
    pub async fn id_token(
        &self,
        issuer: &str,
        oidc: &compiler::intent::Oidc,
        who: &IdentityClaims<'_>,
    ) -> Result<String, IssuerError> {
        let now = self.now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(issuer));
        claims.insert("sub".into(), json!(who.user.id));
        claims.insert("aud".into(), json!(who.client_id));
        claims.insert("azp".into(), json!(who.client_id));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.settings.token_ttl_seconds));
        claims.insert("email".into(), json!(who.user.email));
        // The platform identifies people by email: sign-up and invitations are keyed by it.
        claims.insert("email_verified".into(), json!(true));
        claims.insert("name".into(), json!(who.user.name));
        claims.insert("preferred_username".into(), json!(who.user.email));
        if let Some(nonce) = who.nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        if let Some(groups) = who.groups {
            claims.insert(oidc.groups_claim.clone(), json!(groups));
        }
        // The username claim the vClusters read must be there, whatever it is called.
        claims
            .entry(oidc.username_claim.clone())
            .or_insert_with(|| json!(who.user.email));
        self.sign("JWT", &Value::Object(claims)).await
    }

    /// An access token (RFC 9068) for `user` and `client_id`, good for the userinfo endpoint.
    pub async fn access_token(
        &self,
        issuer: &str,
        user: &User,
        client_id: &str,
        scope: &str,
    ) -> Result<String, IssuerError> {
        let now = self.now();
        let claims = json!({
            "iss": issuer,
            "sub": user.id,
            "aud": client_id,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.token_ttl_seconds,
            "jti": crate::store::new_id(),
        });
        self.sign("at+jwt", &claims).await
    }

    /// The own validator: the token must be signed by a published key with the algorithm
    /// that key is for, come from `issuer`, be for `audience` (any when `None`) and be valid
    /// now by the issuer's clock (no leeway). Returns its claims.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
    ) -> Result<Map<String, Value>, InvalidToken> {
        let bad = |why: &str| InvalidToken(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|e| InvalidToken(e.to_string()))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| bad("it names no key (kid)"))?;
        let ring = self
            .ring()
            .await
            .map_err(|e| InvalidToken(format!("the keys cannot be read: {e}")))?;
        let key = ring
            .published
            .get(kid)
            .ok_or_else(|| bad("its key (kid) is not published"))?;
        if header.alg != key.alg {
            return Err(InvalidToken(format!(
                "algorithm {:?} is not its key's",
                header.alg
            )));
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[issuer]);
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Times are checked below against the issuer's clock, with their types.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| InvalidToken(e.to_string()))?
            .claims;
        let registered: Registered = serde_json::from_value(Value::Object(claims.clone()))
            .map_err(|e| InvalidToken(format!("a registered claim has the wrong type: {e}")))?;
        let now = self.now();
        if registered.iss != issuer {
            return Err(bad("it is from another issuer"));
        }
        if registered.sub.is_empty() {
            return Err(bad("it has no subject"));
        }
        if registered.exp <= now {
            return Err(bad("it has expired"));
        }
        if registered.nbf.unwrap_or(registered.iat) > now || registered.iat > now {
            return Err(bad("it is not valid yet"));
        }
        Ok(claims)
    }
}

/// A kubeconfig (the `v1` `Config` kind) as JSON, which kubectl reads like YAML.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    /// `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `Config`.
    pub kind: String,
    /// The vCluster's endpoint.
    pub clusters: Vec<NamedCluster>,
    /// The exec credential plugin.
    pub users: Vec<NamedUser>,
    /// The one context.
    pub contexts: Vec<NamedContext>,
    /// The context's name.
    pub current_context: String,
}

/// A kubeconfig cluster entry.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NamedCluster {
    /// `<org>-<workspace>`.
    pub name: String,
    /// The endpoint.
    pub cluster: ClusterEntry,
}

/// Where the vCluster's API server answers.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ClusterEntry {
    /// `https://ws-<org>-<ws>.<cluster domain>`.
    pub server: String,
    /// The CA certificates of the endpoint, PEM then base64 (`issuer.kubeconfig_ca_file`);
    /// absent when the endpoint's certificate chains to the system's roots.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
}

/// A kubeconfig user entry.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NamedUser {
    /// `<org>-<workspace>-oidc`.
    pub name: String,
    /// The credential plugin.
    pub user: UserEntry,
}

/// A user with an exec credential plugin and no secret.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct UserEntry {
    /// `kubectl oidc-login get-token …`.
    pub exec: ExecConfig,
}

/// An exec credential plugin (`client.authentication.k8s.io/v1`).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ExecConfig {
    /// `client.authentication.k8s.io/v1`.
    pub api_version: String,
    /// `kubectl`.
    pub command: String,
    /// `oidc-login get-token --oidc-issuer-url=… --oidc-client-id=…`.
    pub args: Vec<String>,
    /// `IfAvailable`: the plugin may open a browser.
    pub interactive_mode: String,
    /// Shown when kubectl cannot run the plugin.
    pub install_hint: String,
}

/// A kubeconfig context entry.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NamedContext {
    /// `<org>-<workspace>`.
    pub name: String,
    /// The cluster and user.
    pub context: ContextEntry,
}

/// A context: a cluster and a user.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ContextEntry {
    /// The cluster entry's name.
    pub cluster: String,
    /// The user entry's name.
    pub user: String,
}

/// The kubeconfig of workspace `ws` of `org` at the head: the vCluster's endpoint (the host
/// name the compiler adds to the vCluster's certificate, `ws-<org>-<ws>.<cluster domain>`)
/// and `kubectl oidc-login` with the issuer and the workspace's client id, with `ca_data`
/// (base64 PEM) as the cluster's `certificate-authority-data` when given. `None` when the
/// workspace, its cluster or the platform is missing.
pub fn kubeconfig(
    snapshot: &Snapshot,
    org: &str,
    ws: &str,
    ca_data: Option<&str>,
) -> Option<Kubeconfig> {
    let platform = snapshot.intent.platform.as_ref()?;
    let workspace = snapshot
        .intent
        .organizations
        .get(org)?
        .workspaces
        .get(ws)?
        .workspace
        .as_ref()?;
    let cluster = platform
        .spec
        .clusters
        .iter()
        .find(|c| c.name == workspace.spec.cluster)?;
    let client_id = compiler::workspace_client_id(org, ws);
    let name = format!("{org}-{ws}");
    let user = format!("{name}-oidc");
    Some(Kubeconfig {
        api_version: "v1".to_owned(),
        kind: "Config".to_owned(),
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: ClusterEntry {
                server: format!("https://{client_id}.{}", cluster.domain),
                certificate_authority_data: ca_data.map(str::to_owned),
            },
        }],
        users: vec![NamedUser {
            name: user.clone(),
            user: UserEntry {
                exec: ExecConfig {
                    api_version: "client.authentication.k8s.io/v1".to_owned(),
                    command: "kubectl".to_owned(),
                    args: vec![
                        "oidc-login".to_owned(),
                        "get-token".to_owned(),
                        format!("--oidc-issuer-url={}", platform.spec.oidc.issuer_url),
                        format!("--oidc-client-id={client_id}"),
                        "--oidc-extra-scope=email".to_owned(),
                        "--oidc-extra-scope=groups".to_owned(),
                    ],
                    interactive_mode: "IfAvailable".to_owned(),
                    install_hint: "install the kubelogin plugin: kubectl krew install oidc-login"
                        .to_owned(),
                },
            },
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: ContextEntry {
                cluster: name.clone(),
                user,
            },
        }],
        current_context: name,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn generated_keys_have_thumbprint_ids() {
        let (pem, jwk) = generate_key(SigningAlg::ES256).expect("a key");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["kid"].as_str(), Some(thumbprint(&jwk).as_str()));
        assert_eq!(jwk["x"].as_str().map(str::len), Some(43));
    }
}
