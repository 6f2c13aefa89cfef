//! Running an action through the engine on behalf of a caller: the caller is the commit's
//! author, the request id its `Hexabase-Request` trailer, and the answer the commit.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;
use super::auth::Caller;
use super::problem::{ApiError, FieldProblem};
use crate::gitops::Identity;
use crate::service::action::{Action, ActionError};
use crate::service::apply::{ActionMeta, ApplyError, Outcome};

/// What a mutation answers: the commit it made, or none when nothing changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitAnswer {
    /// The new commit on the branch; `None` when the action changed nothing.
    pub commit: Option<String>,
    /// Rendered files that had been edited by hand and were overwritten.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// The request id was on the branch already (a retry): `commit` is the one it made then,
    /// and nothing new was committed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// How many actions may be in the engine at once, per CPU. An action's work is CPU (compile,
/// trees) and the wait for its batch's commit; a few per CPU keep both cores busy and the
/// batches full. Beyond that, each one more only holds a blocking thread (its stack, and an
/// allocator arena of its own) and a prepared change in memory without committing more per
/// second: the others wait here, in order, holding nothing.
pub const APPLYING_PER_CPU: usize = 4;

/// Applies `action` as `caller`, with `request_id`, on a blocking thread, once there is a
/// place in the engine ([`AppState::applying`]).
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    request_id: String,
    action: Action,
) -> Result<CommitAnswer, ApiError> {
    let meta = ActionMeta {
        actor: Identity {
            name: caller.user.name.clone(),
            email: caller.user.email.clone(),
        },
        request_id,
    };
    let engine = state.engine.clone();
    let started = Instant::now();
    let place = Arc::clone(&state.applying)
        .acquire_owned()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let result = tokio::task::spawn_blocking(move || {
        let _place = place;
        engine.apply(&meta, &action)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    let (label, answer) = match result {
        Ok(Outcome::Committed { commit, drift }) => {
            state.outbox.committed();
            (
                "committed",
                Ok(CommitAnswer {
                    commit: Some(commit),
                    drift,
                    replayed: false,
                }),
            )
        }
        Ok(Outcome::AlreadyApplied { commit }) => (
            "replayed",
            Ok(CommitAnswer {
                commit: Some(commit),
                drift: Vec::new(),
                replayed: true,
            }),
        ),
        Ok(Outcome::Unchanged) => (
            "unchanged",
            Ok(CommitAnswer {
                commit: None,
                drift: Vec::new(),
                replayed: false,
            }),
        ),
        Err(error) => ("rejected", Err(apply_error(error))),
    };
    state.metrics.action(label);
    if answer.is_ok() {
        state
            .metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    answer
}

/// An engine error as an API error: bad input names the field, our failures are logged.
pub fn apply_error(error: ApplyError) -> ApiError {
    match error {
        ApplyError::Action(ActionError::NotFound(what)) => {
            ApiError::not_found(format!("{what} does not exist"))
        }
        ApplyError::Action(ActionError::AlreadyExists(what)) => {
            ApiError::conflict(format!("{what} already exists"))
        }
        ApplyError::Action(ActionError::Refused(why)) => {
            ApiError::new(StatusCode::CONFLICT, "refused", "The change is refused").detail(why)
        }
        ApplyError::Invalid(diagnostics) => ApiError::invalid_all(
            diagnostics
                .into_iter()
                .filter(compiler::Diagnostic::is_error)
                .map(|d| FieldProblem {
                    field: if d.path.is_empty() {
                        d.file
                    } else {
                        format!("{}: {}", d.file, d.path)
                    },
                    message: d.message,
                })
                .collect(),
        ),
        ApplyError::Contention(_) => {
            ApiError::unavailable("the branch is busy; retry with the same request id")
        }
        other => ApiError::internal(&other),
    }
}

/// An `Idempotency-Key` header that is not `[A-Za-z0-9._-]{1,100}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadIdempotencyKey;

impl From<BadIdempotencyKey> for ApiError {
    fn from(_: BadIdempotencyKey) -> Self {
        ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 100 letters, digits, '.', '_' or '-'",
        )
    }
}

/// The request id a mutation's commit carries: the `Idempotency-Key` header when the client
/// sent one (`[A-Za-z0-9._-]{1,100}`), else the `x-request-id` the middleware set.
pub fn request_id(headers: &axum::http::HeaderMap) -> Result<String, BadIdempotencyKey> {
    if let Some(key) = headers.get("idempotency-key") {
        let valid = key.to_str().ok().filter(|k| {
            (1..=100).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
        return valid.map(str::to_owned).ok_or(BadIdempotencyKey);
    }
    Ok(headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned))
}
