//! `hb admin backup` under write load and `hb admin restore` into a fresh data folder and
//! database, on SQLite and on PostgreSQL: every action acknowledged before the backup began
//! is there after the restore (its commit, its object through the API), API tokens still
//! work, the review refs came along, and `git fsck --full --strict` is clean.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use support::TempDir;
use support::serve::{Serve, hb, http, prepare};

/// Writers at once.
const WRITERS: usize = 4;
/// Acknowledged writes before the backup starts.
const BEFORE: usize = 12;

/// An acknowledged write: what it made, its commit, and whether it was acknowledged before
/// the backup began.
#[derive(Debug)]
struct Acked {
    workspace: bool,
    name: String,
    commit: String,
    before_backup: bool,
}

/// Writers creating workspaces (SQL and Git) and projects (Git) until `stop`.
fn writers(
    url: &str,
    token: &str,
    backup_began: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
    acked: &Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Vec<Acked>>> {
    (0..WRITERS)
        .map(|w| {
            let (url, token) = (url.to_owned(), token.to_owned());
            let (began, stop, count) = (backup_began.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let client = http();
                let mut done = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let workspace = i % 3 == 0;
                    let (name, path, body) = if workspace {
                        let name = format!("w{w}x{i}");
                        let body = json!({"name": name, "plan": "shared-small"});
                        (name, "/api/v1/orgs/acme/workspaces", body)
                    } else {
                        let name = format!("p{w}x{i}");
                        let body = json!({"name": name});
                        (name, "/api/v1/orgs/acme/workspaces/dev/projects", body)
                    };
                    let answer = client
                        .post(format!("{url}{path}"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .expect("an answer");
                    // Read before the answer is looked at: acknowledged before the backup.
                    let before_backup = !began.load(Ordering::SeqCst);
                    assert_eq!(answer.status(), 201, "{name}");
                    let body: Value = answer.json().expect("JSON");
                    let commit = body["commit"].as_str().expect("a commit").to_owned();
                    done.push(Acked {
                        workspace,
                        name,
                        commit,
                        before_backup,
                    });
                    count.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
                done
            })
        })
        .collect()
}

fn names(server: &str, token: &str, path: &str) -> BTreeSet<String> {
    let answer = http()
        .get(format!("{server}{path}"))
        .bearer_auth(token)
        .send()
        .expect("a call");
    assert_eq!(answer.status(), 200, "{path}");
    let list: Value = answer.json().expect("JSON");
    list.as_array()
        .expect("a list")
        .iter()
        .filter_map(|o| o["name"].as_str().map(str::to_owned))
        .collect()
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn backup_and_restore(work: &Path, databases: Option<(&str, &str)>) {
    let (data, restored) = (work.join("data"), work.join("restored"));
    let backup = work.join("backup");
    let (db, db2) = databases.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let (server, setup) = Serve::start(&data, db, true);
    let token = prepare(&server.url, &setup.expect("a setup token"));
    let repo = data.join("gitops.git");
    // A review branch, as the engine keeps them: it must come back too.
    let head = git(&repo, &["rev-parse", "refs/heads/main"]);
    git(
        &repo,
        &["update-ref", "refs/heads/hexabase/review-1", head.trim()],
    );

    let (began, stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let handles = writers(&server.url, &token, &began, &stop, &acked);
    while acked.load(Ordering::SeqCst) < BEFORE {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    began.store(true, Ordering::SeqCst);
    let out = hb(&data, db)
        .args(["admin", "backup"])
        .arg(&backup)
        .output()
        .expect("hb admin backup");
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = acked.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let done: Vec<Acked> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("a writer"))
        .collect();
    drop(server);
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("the manifest on stdout");
    assert_eq!(
        manifest,
        serde_json::from_str::<Value>(
            &std::fs::read_to_string(backup.join("manifest.json")).unwrap()
        )
        .unwrap()
    );
    assert_eq!(manifest["refs"]["head"], "refs/heads/main");
    assert!(manifest["refs"]["refs"]["refs/heads/hexabase/review-1"].is_string());
    assert_eq!(manifest["hexabaseVersion"], env!("CARGO_PKG_VERSION"));
    assert!(during > BEFORE, "the writers wrote while the backup ran");

    // A backup in a folder that is not empty is refused, naming it.
    let again = hb(&data, db)
        .args(["admin", "backup"])
        .arg(&backup)
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // A corrupted copy is refused before anything is written.
    let corrupt = work.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    for entry in std::fs::read_dir(&backup).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), corrupt.join(entry.file_name())).unwrap();
    }
    let mut bundle = std::fs::read(corrupt.join("repository.bundle")).unwrap();
    let last = bundle.len() - 1;
    bundle[last] ^= 0xff;
    std::fs::write(corrupt.join("repository.bundle"), bundle).unwrap();
    let refused = hb(&restored, db2)
        .args(["admin", "restore"])
        .arg(&corrupt)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("repository.bundle: sha256"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!restored.join("gitops.git").exists() && !restored.join("hexabase.db").exists());

    let out = hb(&restored, db2)
        .args(["admin", "restore"])
        .arg(&backup)
        .output()
        .expect("restore");
    assert!(
        out.status.success(),
        "restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo2 = restored.join("gitops.git");
    git(&repo2, &["fsck", "--full", "--strict", "--no-progress"]);
    for (name, id) in manifest["refs"]["refs"].as_object().expect("refs") {
        assert_eq!(
            git(&repo2, &["rev-parse", name]).trim(),
            id.as_str().unwrap(),
            "{name}"
        );
    }

    // The restored server has its accounts: the old token signs in.
    let (server, _) = Serve::start(&restored, db2, false);
    let workspaces = names(&server.url, &token, "/api/v1/orgs/acme/workspaces");
    let projects = names(
        &server.url,
        &token,
        "/api/v1/orgs/acme/workspaces/dev/projects",
    );
    let before: Vec<&Acked> = done.iter().filter(|a| a.before_backup).collect();
    assert!(before.len() >= BEFORE);
    for write in before {
        let commit = format!("{}^{{commit}}", write.commit);
        git(&repo2, &["cat-file", "-e", &commit]);
        git(
            &repo2,
            &[
                "merge-base",
                "--is-ancestor",
                &write.commit,
                "refs/heads/main",
            ],
        );
        let found = if write.workspace {
            &workspaces
        } else {
            &projects
        };
        assert!(
            found.contains(&write.name),
            "{write:?} is missing after the restore"
        );
    }
    // The token still works for writing, too.
    let answer = http()
        .post(format!(
            "{}/api/v1/orgs/acme/workspaces/dev/projects",
            server.url
        ))
        .bearer_auth(&token)
        .json(&json!({"name": "after-restore"}))
        .send()
        .expect("a call");
    assert_eq!(answer.status(), 201);
}

#[test]
fn backup_under_load_restores_on_sqlite() {
    let work = TempDir::new("backup-sqlite");
    backup_and_restore(&work.0, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_on_postgres() {
    let Some(first) = support::postgres::fresh_database().await else {
        return;
    };
    let Some(second) = support::postgres::fresh_database().await else {
        return;
    };
    let work = TempDir::new("backup-postgres");
    let (a, b) = (first.url.clone(), second.url.clone());
    let dir = work.0.clone();
    tokio::task::spawn_blocking(move || backup_and_restore(&dir, Some((&a, &b))))
        .await
        .expect("the test's thread");
    drop((first, second, work));
}
