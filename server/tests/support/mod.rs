//! Helpers shared by the server's API and storage tests: a server over a temporary data
//! folder (SQLite and a bare repository), users with API tokens, organizations in SQL and
//! Git, requests through the router (as a token holder or as a client that keeps a session),
//! the repository's commits, and a fresh PostgreSQL database per test ([`postgres`]).
#![allow(dead_code)]

pub(crate) mod postgres;
pub(crate) mod routes;
pub(crate) mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use server::gitops::Identity;
use server::http::AppState;
use server::service::action::Action;
use server::service::apply::ActionMeta;
use server::service::credentials::{generate_token, hash_token};
use server::settings::Settings;
use server::store::{Organization, User};
use tower::ServiceExt as _;

/// A temporary folder, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hb-{name}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("create a temporary folder");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Settings for a test: everything under `dir`, no metrics listener.
pub(crate) fn settings(dir: &TempDir) -> Settings {
    Settings {
        data_dir: dir.0.clone(),
        metrics_listen: None,
        ..Settings::default()
    }
}

/// A server over a temporary data folder, and its one-time setup token.
pub(crate) struct TestServer {
    pub(crate) state: AppState,
    pub(crate) setup_token: String,
    pub(crate) dir: TempDir,
    /// Its PostgreSQL database, when it runs on one ([`on_postgres`]).
    pub(crate) database: Option<postgres::TestDatabase>,
}

/// Whether this test binary runs on PostgreSQL: `server/tests/on_postgres.rs` includes
/// other test files as modules, whose `support` then sits under `on_postgres::`, and every
/// server [`server_with`] opens there gets a fresh PostgreSQL database instead of SQLite in
/// its data folder.
pub(crate) fn on_postgres() -> bool {
    module_path!().starts_with("on_postgres::")
}

/// A fresh PostgreSQL database when [`on_postgres`] (`None` on SQLite, and when no
/// PostgreSQL answers outside CI: then SQLite, after [`postgres::fresh_database`] said so).
pub(crate) async fn database() -> Option<postgres::TestDatabase> {
    if on_postgres() {
        postgres::fresh_database().await
    } else {
        None
    }
}

/// Opens a server on a fresh data folder with `settings` changed by `change`.
pub(crate) async fn server_with(name: &str, change: impl FnOnce(&mut Settings)) -> TestServer {
    let dir = TempDir::new(name);
    let database = database().await;
    let mut settings = settings(&dir);
    settings.database_url = database
        .as_ref()
        .map(|d| server::settings::Secret::new(d.url.clone()));
    change(&mut settings);
    let state = server::serve::open(settings)
        .await
        .expect("open the server");
    let setup_token = server::serve::announce_setup(&state)
        .await
        .expect("announce the setup token")
        .expect("no account exists yet");
    TestServer {
        state,
        setup_token,
        dir,
        database,
    }
}

/// Opens a server with the default settings.
pub(crate) async fn server(name: &str) -> TestServer {
    server_with(name, |_| {}).await
}

/// A user, and an API token of theirs.
pub(crate) struct Person {
    pub(crate) user: User,
    pub(crate) token: String,
}

impl Person {
    /// `Name <email>`, as commits name their author.
    pub(crate) fn identity(&self) -> String {
        format!("{} <{}>", self.user.name, self.user.email)
    }

    /// A client sending this person's API token.
    pub(crate) fn client(&self) -> Client {
        Client {
            bearer: Some(self.token.clone()),
            ..Client::default()
        }
    }
}

/// A user of `state` named after `email`, with an API token.
pub(crate) async fn person(state: &AppState, email: &str) -> Person {
    person_with(state, email, None).await
}

/// [`person`] with a password (its hash) to sign in with.
pub(crate) async fn person_with(
    state: &AppState,
    email: &str,
    password_hash: Option<&str>,
) -> Person {
    person_as(state, email, password_hash, false).await
}

/// [`person_with`], the platform administrator when `is_admin`.
pub(crate) async fn person_as(
    state: &AppState,
    email: &str,
    password_hash: Option<&str>,
    is_admin: bool,
) -> Person {
    let name = email.split('@').next().unwrap_or(email);
    let user = state
        .store
        .create_user(email, name, password_hash, is_admin)
        .await
        .expect("create user");
    let token = generate_token("hbt_");
    state
        .store
        .create_api_token(&user.id, "test", &hash_token(&token), None)
        .await
        .expect("create token");
    Person { user, token }
}

impl TestServer {
    /// A user named after `email`, with an API token.
    pub(crate) async fn person(&self, email: &str) -> Person {
        person(&self.state, email).await
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
            actor_id: Some(owner.user.id.clone()),
            digest: None,
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

    /// [`TestServer::call`] with extra headers.
    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let client = who.map(Person::client).unwrap_or_default();
        client
            .send_with(&self.state, method, path, body, headers)
            .await
    }

    /// The commits on `main`, newest first.
    pub(crate) fn commits(&self) -> Vec<Commit> {
        commits(&self.state)
    }

    /// A copy of what this server keeps, for another server: its data folder copied into
    /// `dir`, and its PostgreSQL database, if any, copied too (close the store first: a
    /// database is copied only while no one is connected). Answers the copy's settings.
    pub(crate) async fn copy_into(
        &self,
        dir: &TempDir,
    ) -> (Settings, Option<postgres::TestDatabase>) {
        copy_dir(&self.dir.0, &dir.0);
        let database = match &self.database {
            Some(database) => Some(database.copy().await),
            None => None,
        };
        let mut settings = (*self.state.settings).clone();
        settings.data_dir = dir.0.clone();
        if let Some(copy) = &database {
            settings.database_url = Some(server::settings::Secret::new(copy.url.clone()));
        }
        (settings, database)
    }

    /// Runs one SQL statement on the server's database, binding `values` as text to `$1`,
    /// `$2`, …, on SQLite or PostgreSQL alike.
    pub(crate) async fn execute_sql(&self, statement: &str, values: &[&str]) {
        let url = self.state.settings.database_url().expose().to_owned();
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()));
            for value in values {
                query = query.bind(value.to_string());
            }
            query.execute(&pool).await.expect("the statement runs");
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{url}"))
                .await
                .expect("connect");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()));
            for value in values {
                query = query.bind(value.to_string());
            }
            query.execute(&pool).await.expect("the statement runs");
            pool.close().await;
        }
    }
}

/// Copies the folder `from` into `to`, recursively.
pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// The commits on `main` of the server's repository, newest first.
pub(crate) fn commits(state: &AppState) -> Vec<Commit> {
    let repo = git2::Repository::open(state.settings.git_repo()).expect("open repo");
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

/// An answer: status, headers and the body as JSON (`Null` when empty, a string when not
/// JSON).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// The `Set-Cookie` header that sets `name`.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

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

/// A client of the API: anonymous, or with a session (cookie and CSRF token) or a token.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub(crate) cookie: Option<String>,
    pub(crate) csrf: Option<String>,
    pub(crate) bearer: Option<String>,
    pub(crate) peer: Option<SocketAddr>,
}

impl Client {
    /// A client connecting from `peer`.
    pub(crate) fn from_peer(peer: &str) -> Self {
        Self {
            peer: Some(peer.parse().expect("a socket address")),
            ..Self::default()
        }
    }

    /// Sends a request with a JSON body (when given).
    pub(crate) async fn send(
        &self,
        state: &AppState,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.send_with(state, method, path, body, &[]).await
    }

    /// [`Client::send`] with extra headers.
    pub(crate) async fn send_with(
        &self,
        state: &AppState,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(csrf) = &self.csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(token) = &self.bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).expect("a request");
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        send(state, request).await
    }

    /// Takes the session the answer started (cookie and CSRF token).
    pub(crate) fn signed_in(mut self, answer: &Answer) -> Self {
        let cookie = answer
            .set_cookie("hb_session")
            .expect("the answer sets the session cookie");
        self.cookie = Some(cookie.split(';').next().expect("name=value").to_owned());
        self.csrf = answer.body["csrfToken"].as_str().map(str::to_owned);
        self
    }
}

/// Sends one request to the router.
pub(crate) async fn send(state: &AppState, request: Request<Body>) -> Answer {
    let response = server::http::app(state.clone())
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("read the body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Signs up `email` (with the setup token when given) and answers a signed-in client.
pub(crate) async fn sign_up(
    state: &AppState,
    email: &str,
    name: &str,
    setup_token: Option<&str>,
) -> (Client, Answer) {
    let mut body =
        serde_json::json!({"email": email, "name": name, "password": "correct horse battery"});
    if let Some(token) = setup_token {
        body["setupToken"] = Value::from(token);
    }
    let answer = Client::default()
        .send(state, Method::POST, "/api/v1/auth/signup", Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    (Client::default().signed_in(&answer), answer)
}

/// The running subscriptions of organization `org_id`, as `(workspace, plan)` by workspace.
pub(crate) async fn running_subscriptions(
    store: &server::store::Store,
    org_id: &str,
) -> Vec<(String, String)> {
    let mut running: Vec<(String, String)> = store
        .subscriptions(org_id)
        .await
        .expect("subscriptions")
        .into_iter()
        .filter(|s| s.ended_at.is_none())
        .map(|s| (s.workspace, s.plan))
        .collect();
    running.sort();
    running
}
