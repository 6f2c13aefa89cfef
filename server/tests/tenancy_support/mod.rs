//! Helpers for the tenancy tests: a server on a temporary data folder (SQLite and a bare
//! repository), users with API tokens, organizations in SQL and Git, requests through the
//! router, and the repository's commits.
#![allow(dead_code)]

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use server::gitops::Identity;
use server::http::AppState;
use server::service::action::Action;
use server::service::apply::ActionMeta;
use server::service::credentials::{generate_token, hash_token};
use server::settings::Settings;
use server::store::{Organization, User};
use tower::ServiceExt;

/// A running server's state on its own data folder, removed on drop.
pub(crate) struct Env {
    pub(crate) state: AppState,
    pub(crate) dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh data folder.
pub(crate) fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hb-tenancy-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("create the data folder");
    dir
}

/// A server on a fresh data folder, with `tweak` applied to its settings.
pub(crate) async fn env_with(tweak: impl FnOnce(&mut Settings)) -> Env {
    let dir = temp_dir();
    let mut settings = Settings {
        data_dir: dir.clone(),
        ..Settings::default()
    };
    tweak(&mut settings);
    let state = server::serve::open(settings)
        .await
        .expect("open the server");
    Env { state, dir }
}

/// A server on a fresh data folder with default settings.
pub(crate) async fn env() -> Env {
    env_with(|_| {}).await
}

/// A user, and an API token of theirs.
pub(crate) struct Person {
    pub(crate) user: User,
    pub(crate) token: String,
}

impl Env {
    /// A user named after `email`, with an API token.
    pub(crate) async fn person(&self, email: &str) -> Person {
        let name = email.split('@').next().unwrap_or(email);
        let user = self
            .state
            .store
            .create_user(email, name, None, false)
            .await
            .expect("create user");
        let token = generate_token("hbt_");
        self.state
            .store
            .create_api_token(&user.id, "test", &hash_token(&token), None)
            .await
            .expect("create token");
        Person { user, token }
    }

    /// An organization in Git and in SQL, owned by `owner`.
    pub(crate) async fn org(&self, slug: &str, owner: &Person) -> Organization {
        let engine = self.state.engine.clone();
        let meta = ActionMeta {
            actor: Identity {
                name: owner.user.name.clone(),
                email: owner.user.email.clone(),
            },
            request_id: format!("org-{slug}"),
        };
        let action = Action::CreateOrganization {
            org: slug.to_owned(),
            display_name: None,
        };
        tokio::task::spawn_blocking(move || engine.apply(&meta, &action))
            .await
            .expect("join")
            .expect("create the organization in Git");
        self.state
            .store
            .create_organization(slug, slug, false, &owner.user.id)
            .await
            .expect("create the organization in SQL")
    }

    /// Sends a request as `who` (anonymous when `None`) with an optional JSON body.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
    ) -> Answer {
        self.call_with(method, path, who, body, &[]).await
    }

    /// [`Env::call`] with extra headers.
    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(who) = who {
            request = request.header("authorization", format!("Bearer {}", who.token));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = server::http::app(self.state.clone())
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            body,
            headers,
        }
    }

    /// The commits on `main`, newest first.
    pub(crate) fn commits(&self) -> Vec<Commit> {
        let repo = git2::Repository::open(self.state.settings.git_repo()).expect("open repo");
        let mut walk = repo.revwalk().expect("walk");
        walk.push_ref("refs/heads/main").expect("main");
        walk.map(|id| {
            let commit = repo.find_commit(id.expect("id")).expect("commit");
            Commit {
                id: commit.id().to_string(),
                author: format!(
                    "{} <{}>",
                    commit.author().name().unwrap_or_default(),
                    commit.author().email().unwrap_or_default()
                ),
                message: commit.message().unwrap_or_default().to_owned(),
            }
        })
        .collect()
    }
}

/// What the router answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: HeaderMap,
}

impl Answer {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub(crate) fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }

    /// The `field` of a problem answer.
    pub(crate) fn field(&self) -> &str {
        self.body["field"].as_str().unwrap_or_default()
    }
}

/// One commit.
#[derive(Debug, Clone)]
pub(crate) struct Commit {
    pub(crate) id: String,
    pub(crate) author: String,
    pub(crate) message: String,
}

impl Commit {
    /// The value of a `Hexabase-*` trailer.
    pub(crate) fn trailer(&self, name: &str) -> Option<&str> {
        self.message
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }
}
