//! Helpers of the issuer tests: PKCE pairs, form bodies, and forged tokens made with
//! OpenSSL directly (not with the server's signing code), so that what they hold the
//! validators to does not depend on the code under test.
#![allow(dead_code)]

pub(crate) mod hb_serve;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde_json::{Value, json};
use sha2::Digest as _;

/// A PKCE verifier and its S256 challenge.
pub(crate) fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let url = reqwest::Url::parse_with_params("http://x/", pairs).expect("a URL");
    url.query().unwrap_or_default().to_owned()
}

/// The query parameter `name` of `url`.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims of a JWT, unverified.
pub(crate) fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

/// Signs `header.claims` with the private key `pem` (RS256 or ES256, by the key's type).
pub(crate) fn sign(pem: &str, header: &Value, claims: &Value) -> String {
    let key = PKey::private_key_from_pem(pem.as_bytes()).expect("a private key");
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("a signer");
    signer.update(input.as_bytes()).expect("sign");
    let der = signer.sign_to_vec().expect("sign");
    let signature = match key.ec_key() {
        // JWS wants r || s, 32 bytes each, not DER.
        Ok(_) => {
            let sig = openssl::ecdsa::EcdsaSig::from_der(&der).expect("an ECDSA signature");
            let mut raw = sig.r().to_vec_padded(32).expect("r");
            raw.extend(sig.s().to_vec_padded(32).expect("s"));
            raw
        }
        Err(_) => der,
    };
    format!("{input}.{}", b64(&signature))
}

/// The public key of `pem` as SPKI PEM (what an attacker knows).
pub(crate) fn public_pem(pem: &str) -> Vec<u8> {
    PKey::private_key_from_pem(pem.as_bytes())
        .and_then(|k| k.public_key_to_pem())
        .expect("a public key")
}

/// Forged or misused variants of the genuine token `token`, signed where a signature is
/// needed with the issuer's own key `pem` (kid `kid`), each named after what is wrong with
/// it. The first entry, `control`, is the genuine claims signed again the same way: it must
/// verify, so the others fail for their own reason. `now` is the verifiers' time.
pub(crate) fn forgeries(token: &str, pem: &str, kid: &str, now: i64) -> Vec<(String, String)> {
    let genuine = claims(token);
    let header = json!({"alg": alg_of(pem), "kid": kid, "typ": "JWT"});
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = genuine.clone();
        change(&mut c);
        sign(pem, &header, &c)
    };
    let mut out = vec![("control".to_owned(), sign(pem, &header, &genuine))];
    let parts: Vec<&str> = token.split('.').collect();
    out.push((
        "alg none".to_owned(),
        format!(
            "{}.{}.",
            b64(json!({"alg": "none", "kid": kid, "typ": "JWT"})
                .to_string()
                .as_bytes()),
            parts[1]
        ),
    ));
    let hs_input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "kid": kid, "typ": "JWT"})
            .to_string()
            .as_bytes()),
        parts[1]
    );
    let hmac_key = PKey::hmac(&public_pem(pem)).expect("an HMAC key");
    let mut signer = Signer::new(MessageDigest::sha256(), &hmac_key).expect("a signer");
    signer.update(hs_input.as_bytes()).expect("sign");
    out.push((
        "HS256 with the public key".to_owned(),
        format!("{hs_input}.{}", b64(&signer.sign_to_vec().expect("sign"))),
    ));
    out.push((
        "unknown kid".to_owned(),
        sign(
            pem,
            &json!({"alg": alg_of(pem), "kid": "not-a-published-key", "typ": "JWT"}),
            &genuine,
        ),
    ));
    let mut tampered = genuine.clone();
    tampered["groups"] = json!(["system:masters"]);
    out.push((
        "tampered payload".to_owned(),
        format!(
            "{}.{}.{}",
            parts[0],
            b64(tampered.to_string().as_bytes()),
            parts[2]
        ),
    ));
    out.push((
        "wrong iss".to_owned(),
        with(&|c| c["iss"] = json!("https://evil.example.com")),
    ));
    out.push((
        "wrong aud".to_owned(),
        with(&|c| c["aud"] = json!("ws-evil-other")),
    ));
    out.push((
        "expired".to_owned(),
        with(&|c| {
            c["iat"] = json!(now - 3600);
            c["nbf"] = json!(now - 3600);
            c["exp"] = json!(now - 60);
        }),
    ));
    out.push((
        "not yet valid".to_owned(),
        with(&|c| {
            c["iat"] = json!(now + 3600);
            c["nbf"] = json!(now + 3600);
            c["exp"] = json!(now + 4000);
        }),
    ));
    out.push((
        "exp of the wrong type".to_owned(),
        with(&|c| c["exp"] = json!("tomorrow")),
    ));
    out.push((
        "exp as a numeric string".to_owned(),
        with(&|c| c["exp"] = json!((now + 600).to_string())),
    ));
    out
}

fn alg_of(pem: &str) -> &'static str {
    let key = PKey::private_key_from_pem(pem.as_bytes()).expect("a private key");
    if key.ec_key().is_ok() {
        "ES256"
    } else {
        "RS256"
    }
}
