//! The device flow (RFC 8628): a device starts a sign-in and shows a user code, a person
//! approves or denies it on the verification page, and the device polls the token endpoint
//! until then.

use serde_json::{Value, json};

use super::grants::{Form, Grant, IssuerContext, field, issue, requested};
use super::refusal::{GrantError, OAuthCode};
use super::{Issuer, OidcClient, scopes};
use crate::service::credentials::{generate_token, hash_token};
use crate::store::{DeviceGrant, Store, StoreError, User};

/// Letters of user codes: no vowels (no words), no look-alikes (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

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

/// Starts a device sign-in for `client_id` with the scope in `form`: the device authorization
/// answer, with `verification` (the approval page's URL) for people to open.
pub async fn start_device(
    store: &Store,
    issuer: &Issuer,
    ctx: &IssuerContext,
    client_id: String,
    form: &Form,
    verification: &str,
) -> Result<Value, GrantError> {
    // Any well-formed client id starts a sign-in: whether its workspace exists, and whether
    // the person who approves may enter it, is decided when the token is asked for.
    requested(ctx, &client_id)?;
    let scope = form
        .get("scope")
        .cloned()
        .unwrap_or_else(|| "openid".to_owned());
    if !scopes(&scope).contains("openid") {
        return Err(GrantError::refused(
            OAuthCode::InvalidScope,
            "scope: must include openid",
        ));
    }
    let settings = issuer.settings();
    let now = issuer.now();
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
        match store
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
    let mut complete = reqwest::Url::parse(verification).map_err(|_| {
        GrantError::refused(OAuthCode::InvalidRequest, "the issuer URL is not a URL")
    })?;
    complete.query_pairs_mut().append_pair("user_code", &code);
    Ok(json!({
        "device_code": device_code,
        "user_code": code,
        "verification_uri": verification,
        "verification_uri_complete": complete.as_str(),
        "expires_in": settings.device_code_ttl_seconds,
        "interval": settings.device_poll_seconds,
    }))
}

/// What became of a person's decision on a user code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceDecision {
    /// The device signs in as the person on its next poll.
    Approved,
    /// The device is refused.
    Denied,
    /// No sign-in waits for this code: unknown, expired or decided already.
    Unknown,
}

/// Records `user`'s decision on the sign-in showing `user_code`.
pub async fn decide_device(
    store: &Store,
    issuer: &Issuer,
    user_code: &str,
    approve: bool,
    user: &User,
) -> Result<DeviceDecision, GrantError> {
    let now = issuer.now();
    let decided = store
        .decide_device_grant(
            &user_code_hash(user_code),
            approve.then_some(user.id.as_str()),
            now,
        )
        .await;
    match decided {
        Ok(()) if approve => Ok(DeviceDecision::Approved),
        Ok(()) => Ok(DeviceDecision::Denied),
        Err(StoreError::NotFound) => Ok(DeviceDecision::Unknown),
        Err(other) => Err(other.into()),
    }
}

/// The token endpoint's device code grant: the tokens once a person approved, or why not yet.
pub(super) async fn device_grant(
    store: &Store,
    issuer: &Issuer,
    ctx: &IssuerContext,
    client: &OidcClient,
    form: &Form,
) -> Result<Value, GrantError> {
    let device_code = field(form, "device_code")?;
    let now = issuer.now();
    let grant = match store.poll_device_grant(&hash_token(device_code), now).await {
        Ok(grant) => grant,
        Err(StoreError::NotFound) => {
            return Err(GrantError::refused(
                OAuthCode::ExpiredToken,
                "device_code: unknown or expired; start again",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    if grant.client_id != client.id() {
        return Err(GrantError::invalid_grant(
            "device_code: issued to another client",
        ));
    }
    if grant.denied != 0 {
        return Err(GrantError::refused(
            OAuthCode::AccessDenied,
            "the user refused the sign-in",
        ));
    }
    let Some(user_id) = grant.user_id else {
        let code = if now - grant.polled_at < issuer.settings().device_poll_seconds {
            OAuthCode::SlowDown
        } else {
            OAuthCode::AuthorizationPending
        };
        return Err(GrantError::refused(
            code,
            "the user has not approved the sign-in yet",
        ));
    };
    let user = store.user(&user_id).await?;
    let granted = Grant {
        scope: &grant.scope,
        nonce: None,
        family: None,
    };
    issue(store, issuer, ctx, client, &user, granted).await
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
}
