//! Helpers for the server's API and storage tests: an `AppState` over a temporary data
//! folder (SQLite and a bare repository), a client that keeps a session, and a fresh
//! PostgreSQL database per test.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use server::http::AppState;
use server::settings::Settings;
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

/// A server over a temporary data folder, and its one-time setup token.
pub(crate) struct TestServer {
    pub(crate) state: AppState,
    pub(crate) setup_token: String,
    pub(crate) dir: TempDir,
}

/// Settings for a test: everything under `dir`, no metrics listener.
pub(crate) fn settings(dir: &TempDir) -> Settings {
    Settings {
        data_dir: dir.0.clone(),
        metrics_listen: None,
        ..Settings::default()
    }
}

/// Opens a server with `settings` changed by `change`.
pub(crate) async fn server_with(name: &str, change: impl FnOnce(&mut Settings)) -> TestServer {
    let dir = TempDir::new(name);
    let mut settings = settings(&dir);
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
    }
}

/// Opens a server with the default settings.
pub(crate) async fn server(name: &str) -> TestServer {
    server_with(name, |_| {}).await
}

/// An answer: status, headers and the body as JSON (`Null` when empty or not JSON).
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
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
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

/// A fresh PostgreSQL database, dropped (with its connections) when this is dropped.
pub(crate) struct PgDatabase {
    pub(crate) url: String,
    admin_url: String,
    name: String,
}

fn admin_url() -> String {
    std::env::var("HEXABASE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates a fresh database; `None` (with a loud message) when PostgreSQL does not answer,
/// except under CI, where that fails the test.
pub(crate) async fn postgres() -> Option<PgDatabase> {
    use sqlx::Connection as _;
    let admin = admin_url();
    let mut connection = match sqlx::PgConnection::connect(&admin).await {
        Ok(connection) => connection,
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL at {admin} does not answer ({error}); CI must test PostgreSQL"
            );
            eprintln!(
                "\n*** SKIPPING the PostgreSQL half: {admin} does not answer ({error}) ***\n"
            );
            return None;
        }
    };
    let name = format!("hb_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    let _ = connection.close().await;
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the PostgreSQL URL names a database");
    Some(PgDatabase {
        url: format!("{base}/{name}"),
        admin_url: admin,
        name,
    })
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                use sqlx::Connection as _;
                if let Ok(mut connection) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut connection)
                    .await;
                }
            });
        })
        .join();
    }
}
