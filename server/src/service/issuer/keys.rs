//! The issuer's signing keys: made, published ahead, rotated and retired on a schedule, and
//! kept parsed in a key ring until the next transition.
//!
//! A key is published before it signs ([`IssuerSettings::publish_ahead_seconds`]), signs for
//! [`IssuerSettings::rotate_after_seconds`], and stays published until every token it signed
//! has expired (its successor's activation plus the token lifetime and a margin). The time
//! comes from a [`Clock`], so tests move it by hand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::settings::{IssuerSettings, SigningAlg};
use crate::store::{SigningKey, Store, StoreError, User};

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

/// Why an operator's rotation did not happen ([`Issuer::rotate_for`]).
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The person asking is not the platform administrator.
    #[error("only the platform administrator may rotate the issuer's signing keys")]
    Forbidden,
    /// Making or storing the new key failed.
    #[error("failed to rotate the signing keys")]
    Failed(#[from] IssuerError),
}

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
pub(super) struct RingKey {
    pub(super) alg: Algorithm,
    pub(super) decoding: DecodingKey,
}

/// The keys in effect, parsed once and kept until the next transition.
pub(super) struct KeyRing {
    /// The key that signs now: kid, algorithm, key.
    pub(super) signing: Option<(String, Algorithm, EncodingKey)>,
    /// Every published key by kid.
    pub(super) published: BTreeMap<String, RingKey>,
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
    pub(super) async fn ring(&self) -> Result<Arc<KeyRing>, IssuerError> {
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

    /// `user`'s rotation ([`Issuer::rotate_now`]): only the platform administrator (the first
    /// account, `users.is_admin`) may ask for one.
    pub async fn rotate_for(&self, user: &User) -> Result<Rotation, RotateError> {
        if !user.is_admin {
            return Err(RotateError::Forbidden);
        }
        let rotation = self.rotate_now().await?;
        tracing::info!(
            kid = %rotation.kid,
            created = rotation.created,
            activates_at = rotation.activates_at,
            by = %user.email,
            "rotation of the issuer's signing key requested"
        );
        Ok(rotation)
    }

    /// The published keys (JWKS).
    pub async fn jwks(&self) -> Result<Value, IssuerError> {
        Ok(self.ring().await?.jwks.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_thumbprint_ids() {
        let (pem, jwk) = generate_key(SigningAlg::ES256).expect("a key");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["kid"].as_str(), Some(thumbprint(&jwk).as_str()));
        assert_eq!(jwk["x"].as_str().map(str::len), Some(43));
    }
}
