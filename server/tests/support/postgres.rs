//! A fresh PostgreSQL database per test:
//!
//! ```ignore
//! let Some(db) = support::postgres::fresh_database().await else { return };
//! let store = server::store::Store::connect(&db.url).await?;
//! // ... the database is dropped with `db`, even when the test fails.
//! ```
//!
//! The server is named by `HEXABASE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); `scripts/test.sh` starts a throwaway one and
//! sets it when nothing answers there. Each test gets its own database (`hb_<random>`), so
//! tests run in parallel. When the server does not answer, the test is skipped with a loud
//! message ([`skip::missing`]), except in CI (`CI` set), where it fails; and the
//! suite's own `support::postgres::postgresql_answers` test fails in CI too.

// Here rather than in `support/mod.rs`: the API bench includes this file alone.
#[path = "skip.rs"]
pub(crate) mod skip;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The URL when `HEXABASE_TEST_POSTGRES` is not set.
pub(crate) const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database made for one test, dropped (with its connections) when this is dropped.
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

/// Creates a fresh database, or returns `None` (after saying so loudly) when no PostgreSQL
/// answers outside CI. Panics in CI when none answers: CI never skips.
pub(crate) async fn fresh_database() -> Option<TestDatabase> {
    let admin_url = server_url();
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(connection) => connection,
        Err(error) => {
            skip::missing("the PostgreSQL half", &no_answer(&admin_url, &error));
            return None;
        }
    };
    let name = format!("hb_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    let url = with_database(&admin_url, &name);
    Some(TestDatabase {
        url,
        name,
        admin_url,
    })
}

impl TestDatabase {
    /// A new database holding what this one holds (`CREATE DATABASE … TEMPLATE`: nobody may
    /// be connected to this one meanwhile).
    pub(crate) async fn copy(&self) -> TestDatabase {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to PostgreSQL");
        let name = format!("hb_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {}",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("copy a test database");
        let _ = admin.close().await;
        TestDatabase {
            url: with_database(&self.admin_url, &name),
            name,
            admin_url: self.admin_url.clone(),
        }
    }
}

fn no_answer(url: &str, error: &sqlx::Error) -> String {
    format!(
        "no PostgreSQL answers at {url} (HEXABASE_TEST_POSTGRES): {error}; run `make test`, \
         which starts one, or set HEXABASE_TEST_POSTGRES"
    )
}

/// A test of its own in every suite that includes `support`, so that a missing PostgreSQL
/// shows in the summary under its own name (`support::postgres::postgresql_answers`) rather
/// than only inside the tests that skip their PostgreSQL half: in CI it fails.
#[test]
fn postgresql_answers() {
    let url = server_url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(PgConnection::connect(&url)) {
        Ok(connection) => {
            let _ = runtime.block_on(connection.close());
        }
        Err(error) => skip::missing("PostgreSQL", &no_answer(&url, &error)),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
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
