//! The one way in for a change to tenant state. [`submit`] takes who acts, the request's
//! retry key and an [`Action`], and owns everything a submission needs: the organization's
//! write rate limit, idempotency (the retry key scoped to the caller and the route, with the
//! request's digest), a place in the engine, the engine call on a blocking thread, metrics,
//! waking the push queue, and bringing the workspace index up to the new head. The API, the
//! web console and the pull-request webhook all come in here.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::Services;
use super::action::{Action, ActionError};
use super::apply::{ActionMeta, ApplyError, Outcome};
use super::caller::Caller;
use super::tenancy::{TenancyError, admit_write, request_sync, sync_index_after_commit};
use crate::errors::ErrorChain;
use crate::gitops::Identity;

/// How many actions may be in the engine at once, per CPU. An action's work is CPU (compile,
/// trees) and the wait for its batch's commit; a few per CPU keep both cores busy and the
/// batches full. Beyond that, each one more only holds a blocking thread (its stack, and an
/// allocator arena of its own) and a prepared change in memory without committing more per
/// second: the others wait here, in order, holding nothing.
pub const APPLYING_PER_CPU: usize = 4;

/// The longest retry key kept, in characters (`Idempotency-Key` or `x-request-id`).
pub const KEY_MAX: usize = 100;

/// The stable problem code of a retry key reused for a different request.
pub const KEY_REUSED: &str = "idempotency-key-reused";

/// What a submission answers: the commit it made, or none when nothing changed.
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

/// Why a submission made no commit.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The organization's write rate limit refused it.
    #[error("the organization's write limit refused the action")]
    Admit(#[source] TenancyError),
    /// The retry key was used before, by the same caller on the same route, for a request
    /// with another digest.
    #[error("the retry key {key:?} from {header} was used before on {route} for another request")]
    KeyReused {
        /// The header the key came from.
        header: &'static str,
        /// The key, as the client sent it.
        key: String,
        /// `METHOD path`.
        route: String,
    },
    /// The engine refused or failed the action.
    #[error("failed to apply the action")]
    Apply(#[source] ApplyError),
    /// The engine's places are closed (the server is stopping).
    #[error("failed to get a place in the engine")]
    Queue(#[source] tokio::sync::AcquireError),
    /// The engine's blocking task failed.
    #[error("the engine's task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl SubmitError {
    /// The action found what it would create there already.
    pub fn is_already_exists(&self) -> bool {
        matches!(
            self,
            Self::Apply(ApplyError::Action(ActionError::AlreadyExists(_)))
        )
    }

    /// The action found nothing of what it acts on.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Apply(ApplyError::Action(ActionError::NotFound(_)))
        )
    }
}

/// A mutation's retry key and the request it came with (the idempotency contract, as the
/// IETF `Idempotency-Key` draft and Stripe have it):
///
/// - the key is the `Idempotency-Key` header, else the `x-request-id` one (the API makes up
///   a fresh one when the client sent none), at most [`KEY_MAX`] characters;
/// - it is scoped to the caller (by user id) and the route (method and path): the same key
///   from someone else, or on another route, is a different request, and the request id
///   written to the `Hexabase-Request` trailer is a hash of all three
///   ([`RequestKey::scoped`]);
/// - a digest of the method, path, query and body goes to the `Hexabase-Request-Digest`
///   trailer: a retry with the same key answers the first commit only when the digest is
///   the same, and is refused with [`KEY_REUSED`] otherwise.
///
/// The API's extractor (`http::commit`) takes it from the request's headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The header the key came from.
    header: &'static str,
    /// The key, as the client sent it.
    key: String,
    /// `METHOD path`.
    route: String,
    /// Hex blake3 of the method, path, query and body.
    digest: String,
}

impl RequestKey {
    /// The key `key` (from `header`) of a request with `method`, `path` (for the scope),
    /// `path_and_query` and the hash of its `body` (for the digest).
    pub fn new(
        header: &'static str,
        key: String,
        method: &str,
        path: &str,
        path_and_query: &str,
        body: blake3::Hash,
    ) -> Self {
        let mut digest = blake3::Hasher::new_derive_key("hexabase.ai request digest v1");
        for part in [
            method.as_bytes(),
            path_and_query.as_bytes(),
            body.as_bytes(),
        ] {
            digest.update(&(part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        Self {
            header,
            key,
            route: format!("{method} {path}"),
            digest: digest.finalize().to_hex().to_string(),
        }
    }

    /// The request id for the `Hexabase-Request` trailer: a hash of the caller's user id,
    /// the route and the key, so that a key means nothing outside its caller and route.
    pub fn scoped(&self, principal: &str) -> String {
        let mut id = blake3::Hasher::new_derive_key("hexabase.ai request id v1");
        for part in [principal, &self.route, &self.key] {
            id.update(&(part.len() as u64).to_le_bytes());
            id.update(part.as_bytes());
        }
        id.finalize().to_hex().to_string()
    }

    /// The same request's key for its `n`th commit, when one request may make several
    /// (a sign-up trying organization slugs).
    #[must_use]
    pub fn attempt(&self, n: u32) -> Self {
        Self {
            key: format!("{}-{n}", self.key),
            ..self.clone()
        }
    }

    /// The request's digest (`Hexabase-Request-Digest`).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Who acts and with which request, for the engine: `caller` as the author, the key
    /// scoped to them, their user id and the request's digest.
    pub(crate) fn meta(&self, caller: &Caller) -> ActionMeta {
        ActionMeta {
            actor: Identity {
                name: caller.user.name.clone(),
                email: caller.user.email.clone(),
            },
            request_id: self.scoped(&caller.user.id),
            actor_id: Some(caller.user.id.clone()),
            digest: Some(self.digest.clone()),
        }
    }

    /// The error for this key used before for a different request.
    fn reused(&self) -> SubmitError {
        SubmitError::KeyReused {
            header: self.header,
            key: self.key.clone(),
            route: self.route.clone(),
        }
    }
}

/// Submits `action` as `caller` with the retry key `key`. An action inside an organization
/// (not making or removing the organization itself) is first admitted by the
/// organization's write rate limit; after a commit, the workspace index is brought up to
/// the new head: before the answer when the action makes, removes or re-plans a workspace
/// (its groups and subscription follow), in the background otherwise (reads answer from the
/// head, not from the index).
pub async fn submit(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    action: Action,
) -> Result<CommitAnswer, SubmitError> {
    let organization = matches!(
        action,
        Action::CreateOrganization { .. } | Action::DeleteOrganization { .. }
    );
    if !organization {
        admit_write(&services.settings.limits, action.scope().0).map_err(SubmitError::Admit)?;
    }
    let structural = matches!(
        action,
        Action::CreateWorkspace { .. }
            | Action::DeleteWorkspace { .. }
            | Action::ChangePlan { .. }
            | Action::ChangeAccess { .. }
    );
    let answer = apply(services, caller, key, action).await?;
    if answer.commit.is_some() && !organization {
        if structural {
            reindex(services).await;
        } else {
            request_sync(&services.store, &services.engine);
        }
    }
    Ok(answer)
}

/// Runs `action` through the engine on a blocking thread, once there is a place in it
/// ([`Services::applying`]), and records the outcome in the metrics.
async fn apply(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    action: Action,
) -> Result<CommitAnswer, SubmitError> {
    let meta = key.meta(caller);
    let engine = services.engine.clone();
    let started = Instant::now();
    let place = Arc::clone(&services.applying)
        .acquire_owned()
        .await
        .map_err(SubmitError::Queue)?;
    let result = tokio::task::spawn_blocking(move || {
        let _place = place;
        engine.apply(&meta, &action)
    })
    .await
    .map_err(SubmitError::Task)?;
    let (label, answer) = match result {
        Ok(Outcome::Committed { commit, drift }) => {
            services.outbox.committed();
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
        Err(ApplyError::KeyReused) => ("rejected", Err(key.reused())),
        Err(error) => ("rejected", Err(SubmitError::Apply(error))),
    };
    services.metrics.action(label);
    if answer.is_ok() {
        services
            .metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    answer
}

/// The first answer to `caller`'s request `key` when it is a retry of one that made a
/// commit (`replayed`), or `None`; nothing is applied. For use cases that must know before
/// acting, such as a creation whose own precondition ("the name is free") a retry fails.
pub async fn replay(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
) -> Result<Option<CommitAnswer>, SubmitError> {
    let meta = key.meta(caller);
    let engine = services.engine.clone();
    let found = tokio::task::spawn_blocking(move || engine.replayed(&meta))
        .await
        .map_err(SubmitError::Task)?;
    match found {
        Ok(Some(Outcome::AlreadyApplied { commit })) => Ok(Some(CommitAnswer {
            commit: Some(commit),
            drift: Vec::new(),
            replayed: true,
        })),
        Ok(_) => Ok(None),
        Err(ApplyError::KeyReused) => Err(key.reused()),
        Err(other) => Err(SubmitError::Apply(other)),
    }
}

/// Brings the workspace index up to the head after a commit (unless a sync that began after
/// the commit has done so). The commit is made already, so a failure here is logged, not
/// answered: the next sync (every list and start) catches up.
pub async fn reindex(services: &Services) {
    if let Err(error) = sync_index_after_commit(&services.store, &services.engine).await {
        tracing::error!(error = %ErrorChain(&error), "failed to sync the workspace index");
    }
}
