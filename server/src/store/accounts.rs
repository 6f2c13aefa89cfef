//! Users, sessions, API tokens and the setup token.

use serde::Serialize;

use super::{Organization, Store, StoreError, StoreResult, new_id, now, on_pool, write_tx};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// Email, lowercased; unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// argon2id PHC string; `None` for accounts that sign in only through an external issuer.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Platform administrator.
    pub is_admin: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A user and the API token they were found by: its id, expiry and last use.
#[derive(sqlx::FromRow)]
struct UserOfToken {
    #[sqlx(flatten)]
    user: User,
    token_id: String,
    token_expires_at: Option<i64>,
    token_last_used_at: Option<i64>,
}

/// An API token's `last_used_at` is written at most once in this many seconds (a token in
/// steady use would otherwise make a write of every request the cache misses).
pub const TOKEN_USE_PRECISION: i64 = 60;

/// How long an API token's user is kept by [`Store::user_by_api_token`].
const TOKEN_CACHE_SECONDS: i64 = 5;

/// At most this many tokens are kept; past it the cache starts afresh.
const TOKENS_KEPT: usize = 4096;

/// API tokens looked up lately, by hash: the user, and until when the answer holds.
#[derive(Debug, Default)]
pub(super) struct TokenCache(std::sync::Mutex<std::collections::HashMap<String, (User, i64)>>);

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (User, i64)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, token_hash: &str, now: i64) -> Option<User> {
        let cache = self.lock();
        let (user, until) = cache.get(token_hash)?;
        (now < *until).then(|| user.clone())
    }

    fn put(&self, token_hash: &str, user: &User, expires_at: Option<i64>, now: i64) {
        let until = expires_at.map_or(now + TOKEN_CACHE_SECONDS, |e| {
            e.min(now + TOKEN_CACHE_SECONDS)
        });
        let mut cache = self.lock();
        if cache.len() >= TOKENS_KEPT {
            cache.clear();
        }
        cache.insert(token_hash.to_owned(), (user.clone(), until));
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// A browser session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    /// The user signed in.
    pub user_id: String,
    /// The CSRF token the session's unsafe requests must echo.
    pub csrf_token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An API token (its secret is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    /// The token's id.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// A name its owner chose.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` for no expiry.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
}

const USER_COLUMNS: &str = "id, email, name, password_hash, is_admin, created_at";

impl Store {
    /// Creates a user. `email` must already be normalised (lowercased, trimmed).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> StoreResult<User> {
        let user = User {
            id: new_id(),
            email: email.to_owned(),
            name: name.to_owned(),
            password_hash: password_hash.map(str::to_owned),
            is_admin,
            created_at: now(),
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, is_admin, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(user.created_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(user)
    }

    /// The user with this id.
    pub async fn user(&self, id: &str) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// The user with this (normalised) email.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(sql))
                .bind(email)
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// The platform administrator: the first account (the earliest one marked admin).
    pub async fn platform_admin(&self) -> StoreResult<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE is_admin ORDER BY created_at, id LIMIT 1"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(sql))
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Number of users (the first sign-up needs the setup token).
    pub async fn user_count(&self) -> StoreResult<i64> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Starts a session; `token_hash` is the hash of the cookie value.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now())
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The live session with this token hash.
    pub async fn session(&self, token_hash: &str) -> StoreResult<Session> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Session>(
                "SELECT user_id, csrf_token, expires_at FROM sessions \
                 WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now())
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Ends a session (sign-out). Ending one that does not exist is not an error.
    pub async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Creates an API token; `token_hash` is the hash of its secret.
    pub async fn create_api_token(
        &self,
        user_id: &str,
        name: &str,
        token_hash: &str,
        expires_at: Option<i64>,
    ) -> StoreResult<ApiToken> {
        let token = ApiToken {
            id: new_id(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            created_at: now(),
            expires_at,
            last_used_at: None,
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&token.id)
            .bind(&token.user_id)
            .bind(&token.name)
            .bind(token_hash)
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(token)
    }

    /// The user an unexpired API token belongs to. Answers are kept for a few seconds
    /// (5 seconds, never past the token's expiry), as every API request asks;
    /// deleting a token through this store forgets them at once. The token's
    /// `last_used_at` is brought up to now when it is [`TOKEN_USE_PRECISION`] old or more.
    pub async fn user_by_api_token(&self, token_hash: &str) -> StoreResult<User> {
        let at = now();
        if let Some(user) = self.tokens.get(token_hash, at) {
            return Ok(user);
        }
        let sql = format!(
            "SELECT {}, t.id AS token_id, t.expires_at AS token_expires_at, \
             t.last_used_at AS token_last_used_at FROM users u \
             JOIN api_tokens t ON t.user_id = u.id \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
            prefixed_user_columns()
        );
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserOfToken>(sqlx::AssertSqlSafe(sql))
                .bind(token_hash)
                .bind(at)
                .fetch_one(pool)
                .await
        })?;
        if row
            .token_last_used_at
            .is_none_or(|last| last <= at - TOKEN_USE_PRECISION)
        {
            on_pool!(self, |pool| {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(&row.token_id)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        self.tokens
            .put(token_hash, &row.user, row.token_expires_at, at);
        Ok(row.user)
    }

    /// Stores the hash of the one-time setup token, replacing any earlier one.
    pub async fn set_setup_token(&self, token_hash: &str) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO setup (id, token_hash, created_at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, \
                 created_at = excluded.created_at",
            )
            .bind(token_hash)
            .bind(now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Consumes the setup token: true when `token_hash` matched (and it is now spent).
    pub async fn take_setup_token(&self, token_hash: &str) -> StoreResult<bool> {
        write_tx!(self, |tx| async {
            let done =
                sqlx::query("UPDATE setup SET token_hash = NULL WHERE id = 1 AND token_hash = $1")
                    .bind(token_hash)
                    .execute(&mut **tx)
                    .await?;
            Ok::<_, StoreError>(done.rows_affected() == 1)
        })
    }
}

/// What a new account is made of: the user, how they sign in, and their private organization.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The user's id, chosen before the organization's commit names them as its author.
    pub user_id: String,
    /// Email, normalised.
    pub email: String,
    /// Display name.
    pub name: String,
    /// argon2id PHC string, for a local account.
    pub password_hash: Option<String>,
    /// Platform administrator (the first account).
    pub is_admin: bool,
    /// `(issuer, subject)` of the external identity the account signs in with.
    pub external: Option<(String, String)>,
    /// The private organization's slug (already created in Git).
    pub org_slug: String,
    /// The private organization's display name.
    pub org_name: String,
}

/// A sign-in through an external provider in progress.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OidcFlow {
    /// The provider's configured name.
    pub provider: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub code_verifier: String,
    /// Where the browser goes once signed in (a path on this server).
    pub return_to: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Store {
    /// Creates a user, their external identity if any, and their private organization with
    /// them as its owner, in one transaction.
    pub async fn create_account(&self, account: &NewAccount) -> StoreResult<(User, Organization)> {
        let created_at = now();
        let user = User {
            id: account.user_id.clone(),
            email: account.email.clone(),
            name: account.name.clone(),
            password_hash: account.password_hash.clone(),
            is_admin: account.is_admin,
            created_at,
        };
        let org = Organization {
            id: new_id(),
            slug: account.org_slug.clone(),
            name: account.org_name.clone(),
            personal: true,
            created_at,
        };
        write_tx!(self, |tx| async {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, is_admin, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(created_at)
            .execute(&mut **tx)
            .await?;
            if let Some((issuer, subject)) = &account.external {
                sqlx::query(
                    "INSERT INTO external_identities (issuer, subject, user_id, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(issuer)
                .bind(subject)
                .bind(&user.id)
                .bind(created_at)
                .execute(&mut **tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO organizations (id, slug, name, personal, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&org.id)
            .bind(&org.slug)
            .bind(&org.name)
            .bind(org.personal)
            .bind(created_at)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO organization_members (org_id, user_id, role, created_at) \
                 VALUES ($1, $2, 'owner', $3)",
            )
            .bind(&org.id)
            .bind(&user.id)
            .bind(created_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })?;
        Ok((user, org))
    }

    /// The user who signs in with this external identity.
    pub async fn user_by_external_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<User> {
        let sql = format!(
            "SELECT {} FROM users u JOIN external_identities e ON e.user_id = u.id \
             WHERE e.issuer = $1 AND e.subject = $2",
            prefixed_user_columns()
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(sql))
                .bind(issuer)
                .bind(subject)
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// The user's API tokens, newest first.
    pub async fn api_tokens_of(&self, user_id: &str) -> StoreResult<Vec<ApiToken>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, ApiToken>(
                "SELECT id, user_id, name, created_at, expires_at, last_used_at FROM api_tokens \
                 WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Deletes one of the user's API tokens; `NotFound` when the user has no token `id`.
    pub async fn delete_api_token(&self, user_id: &str, id: &str) -> StoreResult<()> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        // Its hash is not known here: forget every cached token.
        self.tokens.clear();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records a sign-in through an external provider in progress, under the hash of its
    /// state, and forgets flows that expired.
    pub async fn start_oidc_flow(&self, state_hash: &str, flow: &OidcFlow) -> StoreResult<()> {
        let created_at = now();
        write_tx!(self, |tx| async {
            sqlx::query("DELETE FROM oidc_flows WHERE expires_at <= $1")
                .bind(created_at)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "INSERT INTO oidc_flows \
                 (state_hash, provider, nonce, code_verifier, return_to, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(state_hash)
            .bind(&flow.provider)
            .bind(&flow.nonce)
            .bind(&flow.code_verifier)
            .bind(&flow.return_to)
            .bind(created_at)
            .bind(flow.expires_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Takes (and forgets) the unexpired flow with this state hash: each works once.
    pub async fn take_oidc_flow(&self, state_hash: &str) -> StoreResult<OidcFlow> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, OidcFlow>(
                "DELETE FROM oidc_flows WHERE state_hash = $1 AND expires_at > $2 \
                 RETURNING provider, nonce, code_verifier, return_to, expires_at",
            )
            .bind(state_hash)
            .bind(now())
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}

fn prefixed_user_columns() -> String {
    USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
