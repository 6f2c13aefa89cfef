//! The API tests, the authorization matrix, the workspace walls and the end-to-end test
//! again, on PostgreSQL: each file is included here as a module, so its `support` sits under
//! `on_postgres::` and [`support::on_postgres`] gives every server it opens a fresh
//! PostgreSQL database (`HEXABASE_TEST_POSTGRES`, see `support/postgres.rs`) instead of
//! SQLite. Nothing is copied: a test added to those files runs on both.
//!
//! `cargo test -p server --test on_postgres`.

// Each included file has its own `mod support;`: a copy per file, as in their own binaries.
#![allow(clippy::duplicate_mod)]

mod support;

#[path = "access_in_git.rs"]
mod access_in_git;
#[path = "api_accounts.rs"]
mod api_accounts;
#[path = "api_workspaces.rs"]
mod api_workspaces;
#[path = "authz_matrix.rs"]
mod authz_matrix;
#[path = "e2e.rs"]
mod e2e;
#[path = "plan_prices.rs"]
mod plan_prices;
#[path = "tenancy_api.rs"]
mod tenancy_api;

/// The including works: when PostgreSQL answers, the modules' servers run on it (when none
/// answers outside CI, `support::postgres` says SKIPPED and they run on SQLite).
#[tokio::test]
async fn the_included_tests_run_on_postgres() {
    let answers = support::postgres::fresh_database().await.is_some();
    let server = support::server("on-postgres").await;
    let url = server.state.settings.database_url().expose().to_owned();
    assert_eq!(
        url.starts_with("postgres://"),
        answers,
        "PostgreSQL answers: {answers}; the server's database: {url}"
    );
    assert_eq!(server.database.is_some(), answers);
    server.state.store.close().await;
}
