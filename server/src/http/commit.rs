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

/// Applies `action` as `caller`, with the retry key `key` (scoped to the caller: see
/// [`RequestKey`]), on a blocking thread, once there is a place in the engine
/// ([`AppState::applying`]).
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    key: &RequestKey,
    action: Action,
) -> Result<CommitAnswer, ApiError> {
    let meta = key.meta(caller);
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
        Err(ApplyError::KeyReused) => ("rejected", Err(key.reused())),
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

/// The first answer to `caller`'s request `key` when it is a retry of one that made a
/// commit (`replayed`), or `None`; nothing is applied. For handlers that must know before
/// acting, such as a creation whose own precondition ("the name is free") a retry fails.
pub async fn replay(
    state: &AppState,
    caller: &Caller,
    key: &RequestKey,
) -> Result<Option<CommitAnswer>, ApiError> {
    let meta = key.meta(caller);
    let engine = state.engine.clone();
    let found = tokio::task::spawn_blocking(move || engine.replayed(&meta))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    match found {
        Ok(Some(Outcome::AlreadyApplied { commit })) => Ok(Some(CommitAnswer {
            commit: Some(commit),
            drift: Vec::new(),
            replayed: true,
        })),
        Ok(_) => Ok(None),
        Err(ApplyError::KeyReused) => Err(key.reused()),
        Err(other) => Err(apply_error(other)),
    }
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

/// The longest retry key kept, in characters (`Idempotency-Key` or `x-request-id`).
pub const KEY_MAX: usize = 100;

/// The stable problem code of a retry key reused for a different request.
pub const KEY_REUSED: &str = "idempotency-key-reused";

/// A mutation's retry key and the request it came with (the idempotency contract, as the
/// IETF `Idempotency-Key` draft and Stripe have it):
///
/// - the key is the `Idempotency-Key` header, else the `x-request-id` one (the middleware
///   makes up a fresh one when the client sent none), at most [`KEY_MAX`] characters;
/// - it is scoped to the caller (by user id) and the route (method and path): the same key
///   from someone else, or on another route, is a different request, and the request id
///   written to the `Hexabase-Request` trailer is a hash of all three
///   ([`RequestKey::scoped`]);
/// - a digest of the method, path, query and body goes to the `Hexabase-Request-Digest`
///   trailer: a retry with the same key answers the first commit only when the digest is
///   the same, and is refused with [`KEY_REUSED`] otherwise.
///
/// Taken from the request by its extractor; the body's hash comes from [`digest_body`].
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

/// The hash of a request's body, set by [`digest_body`] for the handlers' [`RequestKey`].
#[derive(Debug, Clone, Copy)]
struct BodyHash(blake3::Hash);

/// Middleware: hashes the body of every request that may change something (not `GET`,
/// `HEAD` or `OPTIONS`) for its [`RequestKey`], and hands the body on unchanged. It runs
/// inside the body limit, so a body over the limit is refused (413) before it is read whole.
pub async fn digest_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse as _;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The request body is too large",
        )
        .into_response();
    };
    parts.extensions.insert(BodyHash(blake3::hash(&bytes)));
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let body = parts
            .extensions
            .get::<BodyHash>()
            .map_or_else(|| blake3::hash(b""), |h| h.0);
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        Ok(Self::new(
            &parts.headers,
            parts.method.as_str(),
            parts.uri.path(),
            path_and_query,
            body,
        )?)
    }
}

/// A retry key header that is not kept: which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadKey(&'static str);

impl From<BadKey> for ApiError {
    fn from(BadKey(header): BadKey) -> Self {
        let rule = if header == "Idempotency-Key" {
            format!("must be 1 to {KEY_MAX} letters, digits, '.', '_' or '-'")
        } else {
            format!(
                "must be 1 to {KEY_MAX} visible ASCII characters: it is the request's retry key \
                 when there is no Idempotency-Key"
            )
        };
        ApiError::invalid(header, rule)
    }
}

impl RequestKey {
    /// The key of a request with `headers`, `method`, `path` (for the scope),
    /// `path_and_query` and the hash of its `body` (for the digest).
    fn new(
        headers: &axum::http::HeaderMap,
        method: &str,
        path: &str,
        path_and_query: &str,
        body: blake3::Hash,
    ) -> Result<Self, BadKey> {
        let (header, key) = if let Some(key) = headers.get("idempotency-key") {
            let valid = key.to_str().ok().filter(|k| {
                (1..=KEY_MAX).contains(&k.len())
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
            let key = valid.ok_or(BadKey("Idempotency-Key"))?;
            ("Idempotency-Key", key.to_owned())
        } else if let Some(id) = headers.get("x-request-id") {
            let valid = id.to_str().ok().filter(|k| {
                (1..=KEY_MAX).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
            });
            let key = valid.ok_or(BadKey("x-request-id"))?;
            ("x-request-id", key.to_owned())
        } else {
            ("x-request-id", uuid::Uuid::now_v7().to_string())
        };
        let mut digest = blake3::Hasher::new_derive_key("hexabase.ai request digest v1");
        for part in [
            method.as_bytes(),
            path_and_query.as_bytes(),
            body.as_bytes(),
        ] {
            digest.update(&(part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        Ok(Self {
            header,
            key,
            route: format!("{method} {path}"),
            digest: digest.finalize().to_hex().to_string(),
        })
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
    fn meta(&self, caller: &Caller) -> ActionMeta {
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

    /// The answer to a key used before for a different request.
    fn reused(&self) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            KEY_REUSED,
            "The retry key was used for a different request",
        )
        .detail(format!(
            "{} {:?} was used before on {} with another body; send a new key for a new request",
            self.header, self.key, self.route
        ))
        .field(self.header)
    }
}
