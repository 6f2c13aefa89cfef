//! What the OpenID Connect issuer keeps: signing keys, authorization codes, device grants and
//! refresh tokens (migration 0004). Codes and tokens are stored as blake3 hashes only. Every
//! method takes the time as an argument, so rotation and expiry are tested with a clock the
//! test sets.

use super::{Store, StoreError, StoreResult, on_pool, write_tx};

/// A signing key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKey {
    /// The key id (`kid`).
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: String,
    /// The private key, PKCS#8 PEM.
    pub private_pem: String,
    /// The public key as a JWK (JSON).
    pub public_jwk: String,
    /// Published from (Unix seconds).
    pub created_at: i64,
    /// Signs from.
    pub activate_at: i64,
    /// Leaves the key set at (set when a newer key signs).
    pub retire_at: Option<i64>,
}

/// An authorization code, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuthCode {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI it was sent to.
    pub redirect_uri: String,
    /// The S256 code challenge.
    pub code_challenge: String,
    /// Who signed in.
    pub user_id: String,
    /// The client's nonce, echoed in the ID token.
    pub nonce: Option<String>,
    /// The granted scope.
    pub scope: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A device authorization grant, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceGrant {
    /// The client that asked.
    pub client_id: String,
    /// The requested scope.
    pub scope: String,
    /// The user who approved it, once they have.
    pub user_id: Option<String>,
    /// 1 when the user refused it.
    pub denied: i64,
    /// When the client last polled.
    pub polled_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A refresh token, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    /// The rotation family: every token rotated from the same first one.
    pub family_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Whose it is.
    pub user_id: String,
    /// The granted scope.
    pub scope: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// When it was rotated (used); a second use revokes the family.
    pub used_at: Option<i64>,
}

/// What happened to a refresh token presented at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// It was valid and is now used: issue its successor in the same family.
    Fresh(RefreshToken),
    /// It was used before: the family is revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

const KEY_COLUMNS: &str = "kid, alg, private_pem, public_jwk, created_at, activate_at, retire_at";

impl Store {
    /// Every signing key not yet past its retirement at `now`, oldest activation first.
    pub async fn signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKey>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM oidc_keys WHERE retire_at IS NULL OR retire_at > $1 \
             ORDER BY activate_at, kid"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, SigningKey>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Adds a signing key; every older key without a retirement time that will no longer
    /// sign once this one does gets `retire_previous_at`, and keys past their retirement at
    /// `now` are deleted.
    pub async fn add_signing_key(
        &self,
        key: &SigningKey,
        retire_previous_at: i64,
        now: i64,
    ) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            sqlx::query("DELETE FROM oidc_keys WHERE retire_at IS NOT NULL AND retire_at <= $1")
                .bind(now)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "UPDATE oidc_keys SET retire_at = $1 WHERE retire_at IS NULL AND activate_at < $2",
            )
            .bind(retire_previous_at)
            .bind(key.activate_at)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO oidc_keys \
                 (kid, alg, private_pem, public_jwk, created_at, activate_at, retire_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_pem)
            .bind(&key.public_jwk)
            .bind(key.created_at)
            .bind(key.activate_at)
            .bind(key.retire_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Stores an authorization code (by hash) and drops expired ones.
    pub async fn create_auth_code(
        &self,
        code_hash: &str,
        code: &AuthCode,
        now: i64,
    ) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            sqlx::query("DELETE FROM oidc_codes WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO oidc_codes (code_hash, client_id, redirect_uri, code_challenge, \
                 user_id, nonce, scope, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(code_hash)
            .bind(&code.client_id)
            .bind(&code.redirect_uri)
            .bind(&code.code_challenge)
            .bind(&code.user_id)
            .bind(&code.nonce)
            .bind(&code.scope)
            .bind(now)
            .bind(code.expires_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Takes (and forgets) the unexpired code with this hash: each works once, whatever
    /// happens next.
    pub async fn take_auth_code(&self, code_hash: &str, now: i64) -> StoreResult<AuthCode> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, AuthCode>(
                "DELETE FROM oidc_codes WHERE code_hash = $1 AND expires_at > $2 \
                 RETURNING client_id, redirect_uri, code_challenge, user_id, nonce, scope, \
                 expires_at",
            )
            .bind(code_hash)
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Starts a device grant and drops expired ones. `Conflict` when the user code's hash is
    /// taken (the caller draws another).
    pub async fn create_device_grant(
        &self,
        device_code_hash: &str,
        user_code_hash: &str,
        grant: &DeviceGrant,
        now: i64,
    ) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            sqlx::query("DELETE FROM oidc_device_grants WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO oidc_device_grants (device_code_hash, user_code_hash, client_id, \
                 scope, user_id, denied, polled_at, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, NULL, 0, $5, $5, $6)",
            )
            .bind(device_code_hash)
            .bind(user_code_hash)
            .bind(&grant.client_id)
            .bind(&grant.scope)
            .bind(now)
            .bind(grant.expires_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// The unexpired, undecided device grant with this user code, for the approval page.
    pub async fn pending_device_grant(
        &self,
        user_code_hash: &str,
        now: i64,
    ) -> StoreResult<DeviceGrant> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, DeviceGrant>(
                "SELECT client_id, scope, user_id, denied, polled_at, expires_at \
                 FROM oidc_device_grants WHERE user_code_hash = $1 AND expires_at > $2 \
                 AND user_id IS NULL AND denied = 0",
            )
            .bind(user_code_hash)
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Approves (with `user_id`) or denies (`None`) the pending device grant with this user
    /// code. `NotFound` when there is none (expired, decided, or never made).
    pub async fn decide_device_grant(
        &self,
        user_code_hash: &str,
        user_id: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE oidc_device_grants SET user_id = $1, denied = $2 \
                 WHERE user_code_hash = $3 AND expires_at > $4 AND user_id IS NULL AND denied = 0",
            )
            .bind(user_id)
            .bind(i64::from(user_id.is_none()))
            .bind(user_code_hash)
            .bind(now)
            .execute(pool)
            .await
            .map(|d| d.rows_affected())
        })?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A poll of the device grant with this device code: returns it as it was before this
    /// poll and records the poll's time. An approved or denied grant is deleted by the poll
    /// that reads it, so its tokens are issued once. `NotFound` when unknown or expired.
    pub async fn poll_device_grant(
        &self,
        device_code_hash: &str,
        now: i64,
    ) -> StoreResult<DeviceGrant> {
        write_tx!(self, |tx| async {
            let grant = sqlx::query_as::<_, DeviceGrant>(
                "SELECT client_id, scope, user_id, denied, polled_at, expires_at \
                 FROM oidc_device_grants WHERE device_code_hash = $1 AND expires_at > $2",
            )
            .bind(device_code_hash)
            .bind(now)
            .fetch_one(&mut **tx)
            .await?;
            if grant.user_id.is_some() || grant.denied != 0 {
                sqlx::query("DELETE FROM oidc_device_grants WHERE device_code_hash = $1")
                    .bind(device_code_hash)
                    .execute(&mut **tx)
                    .await?;
            } else {
                sqlx::query(
                    "UPDATE oidc_device_grants SET polled_at = $1 WHERE device_code_hash = $2",
                )
                .bind(now)
                .bind(device_code_hash)
                .execute(&mut **tx)
                .await?;
            }
            Ok::<_, StoreError>(grant)
        })
    }

    /// Stores a refresh token (by hash) and drops expired ones.
    pub async fn create_refresh_token(
        &self,
        token_hash: &str,
        token: &RefreshToken,
        now: i64,
    ) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            sqlx::query("DELETE FROM oidc_refresh_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO oidc_refresh_tokens (token_hash, family_id, client_id, user_id, \
                 scope, created_at, expires_at, used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
            )
            .bind(token_hash)
            .bind(&token.family_id)
            .bind(&token.client_id)
            .bind(&token.user_id)
            .bind(&token.scope)
            .bind(now)
            .bind(token.expires_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Uses the refresh token with this hash: marks it used and returns it when it is
    /// unexpired and unused; revokes its whole family when it was used before.
    pub async fn use_refresh_token(&self, token_hash: &str, now: i64) -> StoreResult<RefreshUse> {
        write_tx!(self, |tx| async {
            let found = sqlx::query_as::<_, RefreshToken>(
                "SELECT family_id, client_id, user_id, scope, expires_at, used_at \
                 FROM oidc_refresh_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(token) = found else {
                return Ok::<_, StoreError>(RefreshUse::Invalid);
            };
            if token.used_at.is_some() {
                sqlx::query("DELETE FROM oidc_refresh_tokens WHERE family_id = $1")
                    .bind(&token.family_id)
                    .execute(&mut **tx)
                    .await?;
                return Ok(RefreshUse::Reused);
            }
            if token.expires_at <= now {
                return Ok(RefreshUse::Invalid);
            }
            sqlx::query("UPDATE oidc_refresh_tokens SET used_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(&mut **tx)
                .await?;
            Ok(RefreshUse::Fresh(token))
        })
    }

    /// Revokes the family of the refresh token with this hash (RFC 7009); how many tokens
    /// went.
    pub async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        client_id: &str,
    ) -> StoreResult<u64> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM oidc_refresh_tokens WHERE family_id IN \
                 (SELECT family_id FROM oidc_refresh_tokens WHERE token_hash = $1 AND client_id = $2)",
            )
            .bind(token_hash)
            .bind(client_id)
            .execute(pool)
            .await
            .map(|d| d.rows_affected())
        })?;
        Ok(done)
    }

    /// Revokes every refresh token family of `family_id`.
    pub async fn revoke_family(&self, family_id: &str) -> StoreResult<u64> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM oidc_refresh_tokens WHERE family_id = $1")
                .bind(family_id)
                .execute(pool)
                .await
                .map(|d| d.rows_affected())
        })?;
        Ok(done)
    }
}
