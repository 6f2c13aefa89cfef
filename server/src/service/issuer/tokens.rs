//! The tokens the issuer signs (ID tokens, RFC 9068 access tokens) and its own validator.

use jsonwebtoken::{Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::keys::{Issuer, IssuerError};
use crate::store::User;

/// Why a token is refused by [`Issuer::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token is not valid: {0}")]
pub struct InvalidToken(pub String);

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

impl Issuer {
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
        claims.insert("exp".into(), json!(now + self.settings().token_ttl_seconds));
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
            "exp": now + self.settings().token_ttl_seconds,
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
