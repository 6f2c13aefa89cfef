//! Use cases: applying actions as commits, and the credentials people hold.
//!
//! Every use case takes the [`Services`] it needs and a [`caller::Caller`], and returns its
//! own error type; `http/` (and any other front door) only translates.

pub mod accounts;
pub mod action;
pub mod apply;
pub mod audit;
pub mod authz;
pub mod backup;
pub mod caller;
pub mod console;
pub mod credentials;
pub mod groups;
pub mod issuer;
pub mod items;
pub mod journal;
pub mod oidc;
pub mod orgs;
pub mod outbox;
pub mod platform;
pub mod project_page;
pub mod projects;
pub mod push;
pub mod roles;
pub mod submit;
pub mod tenancy;
pub mod throttle;
pub mod workspaces;

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::Store;

/// What the use cases work with: one per server, shared by every front door.
#[derive(Clone)]
pub struct Services {
    /// The SQL store.
    pub store: Store,
    /// The commit engine (blocking: call it through `spawn_blocking`).
    pub engine: Arc<apply::Engine>,
    /// The settings in effect.
    pub settings: Arc<Settings>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The push queue: wake it after a commit, ask it for readiness.
    pub outbox: Arc<outbox::Outbox>,
    /// Sign-in rate limits and the client for external identity providers.
    pub sign_in: Arc<accounts::SignIn>,
    /// The OpenID Connect issuer every vCluster trusts.
    pub issuer: Arc<issuer::Issuer>,
    /// Places in the engine: actions running in it at once (see [`submit::submit`]).
    pub applying: Arc<tokio::sync::Semaphore>,
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct FieldProblem {
    /// The field, as a path into the request (`quota.cpu`), or the intent file and path.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
