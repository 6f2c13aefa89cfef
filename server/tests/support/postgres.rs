//! A fresh PostgreSQL database per test, for test binaries that include this file:
//!
//! ```ignore
//! #[path = "support/postgres.rs"]
//! mod postgres;
//!
//! let Some(db) = postgres::fresh_database().await else { return };
//! let store = server::store::Store::connect(&db.url).await?;
//! // ...
//! store.close().await;
//! db.drop().await;
//! ```
//!
//! The server is named by `HEXABASE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); `scripts/test.sh` starts a throwaway one and
//! sets it when nothing answers there. Each test gets its own database (`hb_<random>`), so
//! tests run in parallel. When the server does not answer, the test is skipped with a loud
//! message, except in CI (`CI` set), where it fails.
#![allow(dead_code)]

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The URL when `HEXABASE_TEST_POSTGRES` is not set.
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database made for one test.
pub(crate) struct TestDatabase {
    /// The URL of the new database.
    pub(crate) url: String,
    /// Its name.
    pub(crate) name: String,
    admin_url: String,
}

/// The server's URL, from `HEXABASE_TEST_POSTGRES`.
pub(crate) fn server_url() -> String {
    std::env::var("HEXABASE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Creates a fresh database, or returns `None` (after saying so) when no PostgreSQL answers
/// outside CI. Panics in CI when none answers: CI never skips.
pub(crate) async fn fresh_database() -> Option<TestDatabase> {
    let admin_url = server_url();
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(connection) => connection,
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs PostgreSQL at {admin_url} (HEXABASE_TEST_POSTGRES): {error}"
            );
            eprintln!(
                "SKIPPED: no PostgreSQL answers at {admin_url} ({error}); run `make test`, which \
                 starts one, or set HEXABASE_TEST_POSTGRES"
            );
            return None;
        }
    };
    let name = format!("hb_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.expect("close the admin connection");
    let url = with_database(&admin_url, &name);
    Some(TestDatabase {
        url,
        name,
        admin_url,
    })
}

impl TestDatabase {
    /// Drops the database (closing whatever still holds a connection to it).
    pub(crate) async fn drop(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to drop the test database");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
        let _ = admin.close().await;
    }
}

/// `url` with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
