//! The real `hb serve` under concurrent HTTP writes, on SQLite and on PostgreSQL.
//!
//! - Concurrent writers (each its own HTTP client, writing workspaces, which touch SQL, and
//!   projects, which touch only Git) all get their answer: no "database is locked", no 5xx.
//! - `kill -9` of the server while they write, then a restart on the same data folder and
//!   database: every acknowledged request is exactly one commit on the branch (the one it
//!   answered), the SQL rows (the workspace list, the running subscriptions) agree with the
//!   branch, and retrying every request with its `Idempotency-Key` and body applies each
//!   exactly once: the acknowledged ones answer their first commit, the ones cut off land
//!   once at most.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::TempDir;
use support::serve::{Serve, http, prepare};

/// Writers at once, and the most requests each sends.
const WRITERS: usize = 6;
const MOST: usize = 200;

/// One write: what it creates, where, and its retry key.
#[derive(Debug, Clone)]
struct Write {
    name: String,
    path: String,
    body: Value,
    key: String,
}

impl Write {
    /// Writer `w`'s `i`th write: a workspace every third time, else a project in `dev`.
    fn new(w: usize, i: usize) -> Self {
        let (name, path, body) = if i.is_multiple_of(3) {
            let name = format!("w{w}x{i}");
            (
                name.clone(),
                "/api/v1/orgs/acme/workspaces".to_owned(),
                json!({"name": name, "plan": "shared-small"}),
            )
        } else {
            let name = format!("p{w}x{i}");
            (
                name.clone(),
                "/api/v1/orgs/acme/workspaces/dev/projects".to_owned(),
                json!({"name": name}),
            )
        };
        Self {
            name,
            path,
            body,
            key: format!("key-{w}-{i}"),
        }
    }

    fn is_workspace(&self) -> bool {
        self.name.starts_with('w')
    }

    /// Sends it: the status and body, or `None` when no answer came (the server died).
    fn send(&self, client: &Client, url: &str, token: &str) -> Option<(u16, Value)> {
        let answer = client
            .post(format!("{url}{}", self.path))
            .bearer_auth(token)
            .header("idempotency-key", &self.key)
            .json(&self.body)
            .send()
            .ok()?;
        let status = answer.status().as_u16();
        let text = answer.text().ok()?;
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

/// What a writer sent: each write and its answer (`None`: cut off).
type Sent = Vec<(Write, Option<(u16, Value)>)>;

/// `WRITERS` writers, each sending its writes one after another until `stop` says so (or it
/// gets no answer, or it sent `MOST`); `acknowledged` counts the answers.
fn write_concurrently(
    url: &str,
    token: &str,
    acknowledged: &Arc<AtomicUsize>,
    stop: impl Fn(usize) -> bool + Send + Sync + Copy + 'static,
) -> Vec<std::thread::JoinHandle<Sent>> {
    (0..WRITERS)
        .map(|w| {
            let (url, token) = (url.to_owned(), token.to_owned());
            let acknowledged = Arc::clone(acknowledged);
            std::thread::spawn(move || {
                let client = http();
                let mut sent = Vec::new();
                for i in 0..MOST {
                    if stop(i) {
                        break;
                    }
                    let write = Write::new(w, i);
                    let answer = write.send(&client, &url, &token);
                    let cut = answer.is_none();
                    sent.push((write, answer));
                    if cut {
                        break;
                    }
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                sent
            })
        })
        .collect()
}

/// The commits on `main` of the server's repository, oldest first: (id, subject, message).
fn history(data: &Path) -> Vec<(String, String, String)> {
    let repo = git2::Repository::open(data.join("gitops.git")).expect("open the repository");
    let mut walk = repo.revwalk().expect("walk");
    walk.push_ref("refs/heads/main").expect("main");
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .expect("sort");
    walk.map(|id| {
        let commit = repo.find_commit(id.expect("an id")).expect("a commit");
        assert!(commit.parent_count() <= 1, "history is linear");
        (
            commit.id().to_string(),
            commit
                .summary()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_owned(),
            commit.message().unwrap_or_default().to_owned(),
        )
    })
    .collect()
}

/// The commits of `history` that create `write`'s object (by their subjects:
/// `acme/<ws>: create workspace on plan …`, `acme/dev: create project <project>`).
fn commits_of<'a>(history: &'a [(String, String, String)], write: &Write) -> Vec<&'a str> {
    let name = &write.name;
    history
        .iter()
        .filter(|(_, subject, _)| {
            if write.is_workspace() {
                subject.starts_with(&format!("acme/{name}: create workspace "))
            } else {
                *subject == format!("acme/dev: create project {name}")
            }
        })
        .map(|(id, _, _)| id.as_str())
        .collect()
}

/// The workspaces of `acme` on the branch head.
fn workspaces_on_branch(data: &Path) -> BTreeSet<String> {
    let repo = git2::Repository::open(data.join("gitops.git")).expect("open the repository");
    let tree = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_tree())
        .expect("the head's tree");
    let acme = tree
        .get_path(Path::new("intent/acme"))
        .and_then(|e| e.to_object(&repo))
        .expect("intent/acme");
    let acme = acme.as_tree().expect("a folder");
    acme.iter()
        .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
        .filter_map(|e| e.name().ok().map(str::to_owned))
        .filter(|name| {
            tree.get_path(&PathBuf::from(format!("intent/acme/{name}/workspace.yaml")))
                .is_ok()
        })
        .collect()
}

fn get(server: &Serve, token: &str, path: &str) -> Value {
    let answer = http()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .expect("a call");
    assert_eq!(answer.status(), 200, "{path}");
    answer.json().expect("JSON")
}

/// What SQL says: the workspaces listed, and those with a running subscription.
fn workspaces_in_sql(server: &Serve, token: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let listed = get(server, token, "/api/v1/orgs/acme/workspaces")
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|w| w["name"].as_str().map(str::to_owned))
        .collect();
    let billing = get(server, token, "/api/v1/orgs/acme/billing");
    let running = billing["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter(|s| s["endedAt"].is_null() && s["ended_at"].is_null())
        .filter_map(|s| s["workspace"].as_str().map(str::to_owned))
        .collect();
    (listed, running)
}

/// The workspaces SQL lists, and those it bills, are the branch's.
#[track_caller]
fn assert_sql_agrees_with_the_branch(server: &Serve, token: &str, data: &Path, when: &str) {
    let on_branch = workspaces_on_branch(data);
    let (listed, running) = workspaces_in_sql(server, token);
    assert_eq!(listed, on_branch, "the workspace list {when}");
    assert_eq!(running, on_branch, "the running subscriptions {when}");
}

/// Runs `test` on a thread of its own with a fresh data folder and, on PostgreSQL, a
/// fresh database (its URL); not at all when PostgreSQL is wanted and none answers outside
/// CI (see `support::postgres`).
async fn on_backend(backend: &str, test: fn(&Path, Option<&str>)) {
    let Some(db) = database(backend).await else {
        return;
    };
    let url = db.as_ref().map(|d| d.url.clone());
    let dir = TempDir::new(&format!("serve-{backend}"));
    tokio::task::spawn_blocking(move || test(&dir.0, url.as_deref()))
        .await
        .expect("the test's thread");
    drop(db);
}

/// A database for `backend`: `None` for SQLite in the data folder; `Some(None)` when
/// PostgreSQL is wanted but does not answer (the test is skipped, see `support::postgres`).
async fn database(backend: &str) -> Option<Option<support::postgres::TestDatabase>> {
    match backend {
        "sqlite" => Some(None),
        _ => support::postgres::fresh_database().await.map(Some),
    }
}

/// Concurrent writers on `backend`: every request answered 201, none "database is locked",
/// one commit each.
fn concurrent_writes_all_land(data: &Path, database: Option<&str>) {
    let (server, setup) = Serve::start(data, database, true);
    let token = prepare(&server.url, &setup.expect("a setup token"));
    let before = history(data).len();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let sent: Vec<_> = write_concurrently(&server.url, &token, &acknowledged, |i| i >= 8)
        .into_iter()
        .flat_map(|h| h.join().expect("a writer"))
        .collect();
    assert_eq!(sent.len(), WRITERS * 8);
    let after = history(data);
    for (write, answer) in &sent {
        let (status, body) = answer.as_ref().expect("an answer");
        assert_eq!(*status, 201, "{write:?}: {body}");
        assert!(
            !body.to_string().to_lowercase().contains("locked"),
            "{body}"
        );
        assert_eq!(
            commits_of(&after, write),
            [body["commit"].as_str().expect("a commit")],
            "{write:?}"
        );
    }
    assert_eq!(after.len(), before + sent.len(), "one commit per request");
    assert_sql_agrees_with_the_branch(&server, &token, data, "after the writes");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_sqlite_all_land() {
    on_backend("sqlite", concurrent_writes_all_land).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_postgres_all_land() {
    on_backend("postgres", concurrent_writes_all_land).await;
}

/// How many answers the writers get before the server is killed.
const KILL_AFTER: usize = 15;

fn kill_9_during_writes(data: &Path, database: Option<&str>) {
    let (mut server, setup) = Serve::start(data, database, true);
    let token = prepare(&server.url, &setup.expect("a setup token"));
    let before = history(data).len();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers = write_concurrently(&server.url, &token, &acknowledged, |_| false);
    // Kill it while the writers write (a count, not a clock, says when).
    while acknowledged.load(Ordering::SeqCst) < KILL_AFTER
        && !writers.iter().all(std::thread::JoinHandle::is_finished)
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    server.kill9();
    let sent: Vec<(Write, Option<(u16, Value)>)> = writers
        .into_iter()
        .flat_map(|h| h.join().expect("a writer"))
        .collect();
    let cut: Vec<&Write> = sent
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|(w, _)| w)
        .collect();
    assert_eq!(cut.len(), WRITERS, "each writer was cut off once: {cut:?}");
    let answered: BTreeMap<&str, (&Write, &str)> = sent
        .iter()
        .filter_map(|(write, answer)| {
            let (status, body) = answer.as_ref()?;
            assert_eq!(*status, 201, "{write:?}: {body}");
            Some((
                write.key.as_str(),
                (write, body["commit"].as_str().expect("a commit")),
            ))
        })
        .collect();
    assert!(answered.len() >= KILL_AFTER);

    // After a restart on the same data: one commit per acknowledged request (the one it
    // answered), at most one per request cut off, nothing else.
    let (server, _) = Serve::start(data, database, false);
    let after = history(data);
    for (write, commit) in answered.values() {
        assert_eq!(commits_of(&after, write), [*commit], "{write:?}");
    }
    let landed = cut
        .iter()
        .filter(|w| match commits_of(&after, w).len() {
            0 => false,
            1 => true,
            n => panic!("{w:?} made {n} commits"),
        })
        .count();
    assert_eq!(
        after.len(),
        before + answered.len() + landed,
        "commits that no request made"
    );
    assert_sql_agrees_with_the_branch(&server, &token, data, "after the restart");

    // Every request again, with its key and body: the acknowledged ones answer their
    // commit, and each lands exactly once.
    let client = http();
    for (write, _) in &sent {
        let (status, body) = write.send(&client, &server.url, &token).expect("an answer");
        assert!(
            status == 201 || status == 200,
            "retry of {write:?}: {status} {body}"
        );
        if let Some((_, commit)) = answered.get(write.key.as_str()) {
            assert_eq!(body["commit"].as_str(), Some(*commit), "{write:?}: {body}");
            assert_eq!(body["replayed"], json!(true), "{write:?}: {body}");
        }
    }
    let retried = history(data);
    for (write, _) in &sent {
        assert_eq!(commits_of(&retried, write).len(), 1, "{write:?}");
    }
    assert_eq!(retried.len(), before + sent.len());
    assert_sql_agrees_with_the_branch(&server, &token, data, "after the retries");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_writes_on_sqlite_loses_nothing() {
    on_backend("sqlite", kill_9_during_writes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_writes_on_postgres_loses_nothing() {
    on_backend("postgres", kill_9_during_writes).await;
}
