//! `/healthz` (the process answers) and `/readyz` (the database, the repository and the
//! outbox can do their work).

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use serde::Serialize;

use super::{ApiError, ApiRoute, AppState};
use crate::service::outbox::OutboxStatus;

/// What `/readyz` checked.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Readiness {
    /// The database answers.
    pub database: bool,
    /// The Git repository opens and its branch resolves.
    pub repository: bool,
    /// The push queue; only a stuck queue (commits waiting longer than
    /// `git.push_stuck_seconds` with no successful push) makes the server unready.
    pub outbox: OutboxStatus,
}

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::GET,
            "/healthz",
            "healthz",
            "Liveness: the process answers",
            get(|| async { "ok" }),
        )
        .public(),
        ApiRoute::new(
            Method::GET,
            "/readyz",
            "readyz",
            "Readiness: database, repository and outbox",
            get(readyz),
        )
        .public()
        .response::<Readiness>(StatusCode::OK),
    ]
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let database = state.store.ping().await.is_ok();
    let engine = state.engine.clone();
    let repository = tokio::task::spawn_blocking(move || {
        engine
            .gitops()
            .repo()
            .and_then(|repo| engine.gitops().head(&repo).map(|_| ()))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    let outbox = state.outbox.status();
    let stuck = outbox.stuck;
    let readiness = Readiness {
        database,
        repository,
        outbox,
    };
    if database && repository && !stuck {
        Ok(Json(readiness))
    } else {
        Err(ApiError::unavailable(format!(
            "database ready: {database}, repository ready: {repository}, outbox stuck: {stuck} \
             ({} commits waiting {} s)",
            readiness.outbox.depth, readiness.outbox.waiting_seconds
        )))
    }
}
