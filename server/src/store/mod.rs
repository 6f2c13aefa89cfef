//! The SQL store: users, organizations, groups, tokens, sessions, billing and the workspace
//! index (DESIGN.md §2); the outbox is Git's (docs/engine.md, "Pushing, and the outbox").
//! PostgreSQL in production, SQLite as the embedded default.
//!
//! One `Store` type serves both backends. Every query is written once, in the SQL both
//! accept (`$1` placeholders, `RETURNING`, `ON CONFLICT`, integers for times), and run on
//! whichever pool is open through `on_pool!`; each backend has its own migration set in
//! `server/migrations/<backend>/`. Methods are named after use cases, not tables.
//!
//! SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
//! `BEGIN IMMEDIATE` (`write_tx!`), so a read-then-write transaction can never fail with
//! "database is locked" when another connection commits in between.

mod access;
mod accounts;
mod audit;
pub mod backup;
mod billing;
mod issuer;
mod orgs;
mod tenancy;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{ApiToken, NewAccount, OidcFlow, Session, TOKEN_USE_PRECISION, User};
pub use billing::PlanPrice;
pub use issuer::{AuthCode, DeviceGrant, RefreshToken, RefreshUse, SigningKey};
pub use orgs::{Invitation, LAST_OWNER, Member, OrgRole, Organization};
pub use tenancy::{
    ADMINS_GROUP, DEFAULT_GROUPS, DefaultGroupsOf, GroupMember, IndexedWorkspace, Subscription,
    WorkspaceGroup,
};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (or is not visible to the caller).
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule refused the write; the message names it.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error")]
    Backend(#[source] sqlx::Error),
    /// Running the migrations failed.
    #[error("failed to migrate the database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::Conflict(db.constraint().unwrap_or("reference").to_owned())
            }
            _ => Self::Backend(error),
        }
    }
}

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query code on whichever pool the store has: `$pool` is bound to a
/// `&SqlitePool` in one arm and a `&PgPool` in the other, so the body is type-checked
/// against both backends.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs a write transaction on whichever backend the store has: `$tx` is a
/// `&mut Transaction` of that backend, begun with `BEGIN IMMEDIATE` on SQLite. The body is an
/// `async` block returning `StoreResult<T>`; the transaction commits when it is `Ok` and
/// rolls back otherwise.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let result = {
                    let $tx = &mut tx;
                    $body.await
                };
                match result {
                    Ok(value) => {
                        tx.commit().await?;
                        Ok(value)
                    }
                    Err(error) => Err(error),
                }
            }
            $crate::store::Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let result = {
                    let $tx = &mut tx;
                    $body.await
                };
                match result {
                    Ok(value) => {
                        tx.commit().await?;
                        Ok(value)
                    }
                    Err(error) => Err(error),
                }
            }
        }
    };
}
pub(crate) use write_tx;

/// The SQL store. Cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// API tokens looked up lately (see [`Store::user_by_api_token`]).
    tokens: std::sync::Arc<accounts::TokenCache>,
}

impl Store {
    /// Opens the database `url` and runs the migrations: `postgres://…` or `postgresql://…`
    /// for PostgreSQL, anything else is a SQLite file path (`sqlite://` prefix optional),
    /// created when missing.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(32)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Self {
                db: Db::Postgres(pool),
                tokens: std::sync::Arc::default(),
            }
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Self::open_sqlite(Path::new(path)).await?
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn open_sqlite(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable across application crashes; a power loss may lose
            // the last transactions but never corrupts the database.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Self {
            db: Db::Sqlite(pool),
            tokens: std::sync::Arc::default(),
        })
    }

    async fn migrate(&self) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        }
        .map_err(StoreError::Migrate)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Deletes what has expired by `now` (Unix seconds) and can never be used again:
    /// sessions, invitations never accepted, sign-in flows with external providers, and the
    /// issuer's authorization codes, device grants and refresh tokens. Returns how many rows
    /// went. The server runs it at start and every hour; every look-up checks expiry itself,
    /// so this only keeps the tables small.
    pub async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        const EXPIRED: [&str; 6] = [
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM invitations WHERE accepted_at IS NULL AND expires_at <= $1",
            "DELETE FROM oidc_flows WHERE expires_at <= $1",
            "DELETE FROM oidc_codes WHERE expires_at <= $1",
            "DELETE FROM oidc_device_grants WHERE expires_at <= $1",
            "DELETE FROM oidc_refresh_tokens WHERE expires_at <= $1",
        ];
        write_tx!(self, |tx| async {
            let mut purged = 0;
            for sql in EXPIRED {
                purged += sqlx::query(sql)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
            }
            Ok::<_, StoreError>(purged)
        })
    }

    /// Closes the pools, waiting for connections in use.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A fresh id: a UUID v7 (time-ordered), as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
