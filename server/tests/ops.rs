//! Operations: `/readyz` with the outbox, request metrics, the background pusher (after a
//! commit, and draining at shutdown), and the audit route's scoping — on SQLite, and on
//! PostgreSQL where one answers (see `support/postgres.rs`).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use server::gitops::Identity;
use server::http::AppState;
use server::service::action::Action;
use server::service::apply::{ActionMeta, Outcome};
use server::settings::Settings;
use support::{Client, TempDir};

/// Settings whose data folder is `data` under `dir` (a test's remote sits beside it).
fn settings(dir: &TempDir) -> Settings {
    Settings {
        data_dir: dir.0.join("data"),
        ..Settings::default()
    }
}

/// A bare repository to push to, as a `file://` URL.
fn bare_remote(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("remote.git");
    git2::Repository::init_bare(&path).expect("bare remote");
    let url = format!("file://{}", path.display());
    (path, url)
}

fn branch_head(repo: &Path) -> Option<String> {
    let repo = git2::Repository::open(repo).ok()?;
    let reference = repo.find_reference("refs/heads/main").ok()?;
    reference.target().map(|oid| oid.to_string())
}

async fn get(state: &AppState, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let client = Client {
        bearer: token.map(str::to_owned),
        ..Client::default()
    };
    let answer = client.send(state, Method::GET, path, None).await;
    (answer.status, answer.body)
}

fn commit(state: &AppState, user: &str, action: &Action) -> String {
    let meta = ActionMeta {
        actor: Identity {
            name: user.to_owned(),
            email: format!("{user}@example.com"),
        },
        request_id: format!("req-{user}-{}-{}", action.kind(), uuid::Uuid::now_v7()),
        actor_id: None,
        digest: None,
    };
    match state
        .engine
        .apply(&meta, action)
        .expect("the action applies")
    {
        Outcome::Committed { commit, .. } => commit,
        other => panic!("the action made no new commit: {other:?}"),
    }
}

fn create_org(org: &str) -> Action {
    Action::CreateOrganization {
        org: org.to_owned(),
        display_name: None,
    }
}

fn create_workspace(org: &str, ws: &str) -> Action {
    Action::CreateWorkspace {
        org: org.to_owned(),
        workspace: ws.to_owned(),
        plan: "shared-small".to_owned(),
        cluster: "home".to_owned(),
        display_name: None,
        admin: None,
    }
}

fn create_project(org: &str, ws: &str, project: &str) -> Action {
    Action::CreateProject {
        org: org.to_owned(),
        workspace: ws.to_owned(),
        project: project.to_owned(),
        display_name: None,
    }
}

#[tokio::test]
async fn readyz_reports_database_repository_and_an_empty_outbox() {
    let dir = TempDir::new("ops-ready");
    let state = server::serve::open(settings(&dir)).await.expect("opens");
    let (status, body) = get(&state, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["database"], true);
    assert_eq!(body["repository"], true);
    assert_eq!(
        body["outbox"],
        serde_json::json!({"remote": false, "depth": 0, "waitingSeconds": 0, "stuck": false})
    );
    state.store.close().await;
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let dir = TempDir::new("ops-metrics");
    let state = server::serve::open(settings(&dir)).await.expect("opens");
    assert_eq!(get(&state, "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(
        get(&state, "/api/v1/orgs/acme/audit", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&state, "/no/such/route", None).await.0,
        StatusCode::NOT_FOUND
    );
    let text = state.metrics.encode();
    for line in [
        r#"hexabase_http_requests_total{method="GET",route="/healthz",status="200"} 1"#,
        r#"hexabase_http_requests_total{method="GET",route="/api/v1/orgs/{org}/audit",status="401"} 1"#,
        r#"hexabase_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains("route=\"/api/v1/orgs/acme/audit\""),
        "raw paths must not become labels:\n{text}"
    );
    state.store.close().await;
}

#[tokio::test]
async fn a_commit_is_pushed_by_the_outbox_and_the_depth_follows() {
    let dir = TempDir::new("ops-push");
    let (remote, url) = bare_remote(&dir.0);
    let mut settings = settings(&dir);
    settings.git.remote = Some(url);
    let state = server::serve::open(settings).await.expect("opens");
    let local = state.settings.git_repo();
    // The empty remote got nothing yet; the seed commit is pending.
    assert_eq!(branch_head(&remote), None);
    let outbox = Arc::clone(&state.outbox);
    assert!(matches!(
        outbox.push_once(&state.metrics).await,
        Some(Ok(_))
    ));
    assert_eq!(branch_head(&remote), branch_head(&local));
    let made = commit(&state, "ana", &create_org("acme"));
    assert_eq!(branch_head(&local).as_deref(), Some(made.as_str()));
    let report = outbox.push_once(&state.metrics).await;
    assert!(
        matches!(report, Some(Ok(ref r)) if r.pushed.len() == 1),
        "{report:?}"
    );
    assert_eq!(branch_head(&remote).as_deref(), Some(made.as_str()));
    assert_eq!(outbox.status().depth, 0);
    let text = state.metrics.encode();
    assert!(text.contains("hexabase_outbox_depth 0"), "{text}");
    assert!(
        text.contains(r#"hexabase_pushes_total{result="ok"} 2"#),
        "{text}"
    );
    assert!(text.contains("hexabase_push_seconds_count 2"), "{text}");
    state.store.close().await;
}

#[tokio::test]
async fn a_stuck_outbox_makes_the_server_unready() {
    let dir = TempDir::new("ops-stuck");
    let (remote, url) = bare_remote(&dir.0);
    let mut settings = settings(&dir);
    settings.git.remote = Some(url);
    settings.git.push_stuck_seconds = 0;
    let state = server::serve::open(settings).await.expect("opens");
    // The remote goes away: pushes fail, the commits wait.
    std::fs::remove_dir_all(&remote).expect("remove the remote");
    commit(&state, "ana", &create_org("acme"));
    assert!(matches!(
        state.outbox.push_once(&state.metrics).await,
        Some(Err(_))
    ));
    let status = state.outbox.status();
    assert_eq!(status.depth, 2, "the seed and the organization wait");
    assert!(status.stuck);
    let (code, body) = get(&state, "/readyz", None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "unavailable");
    let text = state.metrics.encode();
    assert!(text.contains("hexabase_outbox_depth 2"), "{text}");
    assert!(
        text.contains(r#"hexabase_pushes_total{result="failed"} 1"#),
        "{text}"
    );
    state.store.close().await;
}

/// Runs `state`'s server on a free loopback port until the returned sender fires.
async fn serve(
    state: &AppState,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve::run(state.clone(), listener, None, async {
        let _ = stopped.await;
    }));
    (stop, served)
}

#[tokio::test]
async fn shutdown_pushes_what_the_last_requests_committed() {
    let dir = TempDir::new("ops-drain");
    let (remote, url) = bare_remote(&dir.0);
    let mut settings = settings(&dir);
    settings.git.remote = Some(url);
    // Long enough that only a wake-up or the drain pushes.
    settings.git.push_interval_seconds = 3600;
    settings.metrics_listen = None;
    let state = server::serve::open(settings).await.expect("opens");
    let (stop, served) = serve(&state).await;
    // Committed without waking the pusher: only the drain at shutdown can push it.
    let engine_state = state.clone();
    let made =
        tokio::task::spawn_blocking(move || commit(&engine_state, "ana", &create_org("acme")))
            .await
            .expect("commit task");
    stop.send(()).expect("the server is running");
    served.await.expect("server task").expect("clean shutdown");
    assert_eq!(branch_head(&remote).as_deref(), Some(made.as_str()));
    assert_eq!(state.outbox.status().depth, 0);
}

#[tokio::test]
async fn the_server_deletes_expired_sessions_once_it_runs() {
    use sqlx::Connection as _;
    let dir = TempDir::new("ops-housekeeping");
    let mut settings = settings(&dir);
    settings.metrics_listen = None;
    let state = server::serve::open(settings).await.expect("opens");
    let (user, _) = user_with_token(&state, "ana").await;
    state
        .store
        .create_session("expired", &user, "csrf", 1)
        .await
        .expect("session");
    state
        .store
        .create_session("live", &user, "csrf", i64::MAX)
        .await
        .expect("session");
    let url = format!(
        "sqlite://{}",
        state
            .settings
            .database_url()
            .expose()
            .trim_start_matches("sqlite://")
    );
    let mut db = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let sessions = async |db: &mut sqlx::SqliteConnection| -> Vec<String> {
        sqlx::query_scalar("SELECT token_hash FROM sessions ORDER BY token_hash")
            .fetch_all(db)
            .await
            .expect("sessions")
    };
    assert_eq!(sessions(&mut db).await, ["expired", "live"]);
    let (stop, served) = serve(&state).await;
    let mut left = sessions(&mut db).await;
    for _ in 0..200 {
        if left.len() < 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = sessions(&mut db).await;
    }
    assert_eq!(left, ["live"], "the expired session is deleted at start");
    stop.send(()).expect("the server is running");
    served.await.expect("server task").expect("clean shutdown");
}

/// Runs one statement on the database at `url` (PostgreSQL, or a SQLite file).
async fn execute(url: &str, sql: &'static str, args: &[&str]) {
    use sqlx::Connection as _;
    if url.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(url).await.expect("connect");
        let query = args.iter().fold(sqlx::query(sql), |q, a| q.bind(*a));
        query.execute(&mut db).await.expect(sql);
    } else {
        let sqlite = format!("sqlite://{url}");
        let mut db = sqlx::SqliteConnection::connect(&sqlite)
            .await
            .expect("connect");
        let query = args.iter().fold(sqlx::query(sql), |q, a| q.bind(*a));
        query.execute(&mut db).await.expect(sql);
    }
}

/// Adds `user` to a group of workspace `org/ws` (the tenancy routes do this for real).
async fn join_workspace(url: &str, org: &str, ws: &str, user_id: &str) {
    let group = uuid::Uuid::now_v7().to_string();
    let insert_group = "INSERT INTO workspace_groups \
                        (id, org_slug, workspace, name, parent_id, created_at) \
                        VALUES ($1, $2, $3, 'WSUsers', NULL, 0)";
    execute(url, insert_group, &[&group, org, ws]).await;
    let insert_member =
        "INSERT INTO group_members (group_id, user_id, created_at) VALUES ($1, $2, 0)";
    execute(url, insert_member, &[&group, user_id]).await;
}

/// Makes `user_id` a billing manager of `org`.
async fn join_billing(url: &str, org: &str, user_id: &str) {
    let sql = "INSERT INTO organization_members (org_id, user_id, role, created_at) \
               SELECT id, $1, 'billing', 0 FROM organizations WHERE slug = $2";
    execute(url, sql, &[user_id, org]).await;
}

async fn user_with_token(state: &AppState, name: &str) -> (String, String) {
    let person = support::person(state, &format!("{name}@example.com")).await;
    (person.user.id, person.token)
}

fn commits(body: &Value) -> Vec<(String, Option<String>)> {
    body.as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().expect("action").to_owned(),
                r["workspace"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// The audit route's scoping, on the store at `database_url` (`None`: SQLite).
async fn audit_is_scoped(name: &str, database_url: Option<String>) {
    let dir = TempDir::new(name);
    let mut settings = settings(&dir);
    settings.database_url = database_url.map(server::settings::Secret::new);
    let db_url = settings.database_url().expose().to_owned();
    let state = server::serve::open(settings).await.expect("opens");
    let (owner, owner_token) = user_with_token(&state, "olivia").await;
    let (member, member_token) = user_with_token(&state, "mia").await;
    let (billing, billing_token) = user_with_token(&state, "bill").await;
    let (_, stranger_token) = user_with_token(&state, "sam").await;
    state
        .store
        .create_organization("acme", "Acme", false, &owner)
        .await
        .expect("org");
    state
        .store
        .create_organization("other", "Other", false, &billing)
        .await
        .expect("other org");
    commit(&state, "olivia", &create_org("acme"));
    commit(&state, "olivia", &create_workspace("acme", "dev"));
    commit(&state, "olivia", &create_workspace("acme", "prod"));
    commit(&state, "mia", &create_project("acme", "dev", "web"));
    commit(&state, "olivia", &create_project("acme", "prod", "api"));
    join_workspace(&db_url, "acme", "dev", &member).await;
    // A billing manager of acme, in no workspace group.
    join_billing(&db_url, "acme", &billing).await;

    let (status, body) = get(&state, "/api/v1/orgs/acme/audit", Some(&owner_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        commits(&body),
        [
            ("create-project".to_owned(), Some("prod".to_owned())),
            ("create-project".to_owned(), Some("dev".to_owned())),
            ("create-workspace".to_owned(), Some("prod".to_owned())),
            ("create-workspace".to_owned(), Some("dev".to_owned())),
            ("create-organization".to_owned(), None),
        ]
    );
    assert_eq!(body[1]["actor"], "mia <mia@example.com>");

    let (status, body) = get(&state, "/api/v1/orgs/acme/audit", Some(&member_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        commits(&body),
        [
            ("create-project".to_owned(), Some("dev".to_owned())),
            ("create-workspace".to_owned(), Some("dev".to_owned())),
        ]
    );
    for record in body.as_array().expect("items") {
        assert_eq!(record["workspaces"], serde_json::json!(["acme/dev"]));
    }
    let path = "/api/v1/orgs/acme/audit?workspace=prod";
    assert_eq!(
        get(&state, path, Some(&member_token)).await.0,
        StatusCode::NOT_FOUND
    );
    let path = "/api/v1/orgs/acme/audit?actor=olivia&action=create-project&limit=1";
    let (status, body) = get(&state, path, Some(&owner_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        commits(&body),
        [("create-project".to_owned(), Some("prod".to_owned()))]
    );

    let (status, body) = get(&state, "/api/v1/orgs/acme/audit", Some(&billing_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = get(&state, "/api/v1/orgs/acme/audit", Some(&stranger_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.to_string().contains("create-"), "{body}");
    let (status, _) = get(&state, "/api/v1/orgs/nope/audit", Some(&owner_token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let path = "/api/v1/orgs/acme/audit?since=yesterday&until=2024-13-01&limit=0";
    let (status, body) = get(&state, path, Some(&owner_token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["since", "until", "limit"]);
    let (status, body) = get(
        &state,
        "/api/v1/orgs/acme/audit?color=red",
        Some(&owner_token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad-request");
    state.store.close().await;
}

#[tokio::test]
async fn audit_is_scoped_to_owners_and_workspace_members_on_sqlite() {
    audit_is_scoped("audit-sqlite", None).await;
}

#[tokio::test]
async fn audit_is_scoped_to_owners_and_workspace_members_on_postgres() {
    let Some(db) = support::postgres::fresh_database().await else {
        return;
    };
    audit_is_scoped("audit-postgres", Some(db.url.clone())).await;
}
