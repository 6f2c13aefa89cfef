//! Many `hb act` processes on one branch at once: every action is exactly one commit on a
//! linear history, nothing is lost, and the head is what its intent compiles to. Separate
//! processes share nothing but the repository (no in-process commit lock, no snapshot cache),
//! so this exercises the compare-and-swap on the branch and the process lock of `GitOps::open`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use server::gitops::CommitMessage;

const WRITERS: usize = 4;
const ACTIONS: usize = 10;

fn example_intent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitops-repo-example/intent")
}

fn hb(repo: &Path, args: &[&str], request: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hb"));
    cmd.args(args)
        .arg("--repo")
        .arg(repo)
        .args([
            "--actor-name",
            "writer",
            "--actor-email",
            "writer@example.com",
        ])
        .args(["--request", request])
        .stdin(Stdio::null());
    cmd
}

fn project(w: usize, a: usize) -> (&'static str, String) {
    let ws = if (w + a).is_multiple_of(2) {
        "dev"
    } else {
        "prod"
    };
    (ws, format!("w{w}-a{a}"))
}

#[test]
fn concurrent_hb_processes_make_one_commit_per_action_on_a_linear_history() {
    let path = std::env::temp_dir().join(format!("hb-processes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    let intent = example_intent();
    let out = hb(&path, &["import", intent.to_str().expect("UTF-8")], "seed")
        .output()
        .expect("hb runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seed = git2::Repository::open(&path)
        .and_then(|r| r.refname_to_id("refs/heads/main"))
        .expect("seeded");

    // Each writer runs its actions one after another, each in its own `hb act` process.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                (0..ACTIONS)
                    .map(|a| {
                        let (ws, project) = project(w, a);
                        let action = format!(
                            r#"{{"action":"create-project","org":"acme","workspace":"{ws}","project":"{project}"}}"#
                        );
                        let out = hb(&path, &["act", &action], &format!("req-{project}"))
                            .output()
                            .expect("hb runs");
                        assert!(
                            out.status.success(),
                            "{project}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        let commit = String::from_utf8(out.stdout).expect("UTF-8");
                        git2::Oid::from_str(commit.trim()).expect("hb prints the commit")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let reported: Vec<git2::Oid> = writers
        .into_iter()
        .flat_map(|h| h.join().expect("writer finished"))
        .collect();

    // Linear: every commit after the seed has exactly one parent, back to the seed.
    let repo = git2::Repository::open(&path).expect("open");
    let mut history = Vec::new();
    let mut at = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("head");
    while at.id() != seed {
        assert_eq!(at.parent_count(), 1, "history is linear");
        history.push(at.id());
        at = at.parent(0).expect("parent");
    }
    assert_eq!(history.len(), WRITERS * ACTIONS, "one commit per action");
    let on_branch: BTreeSet<git2::Oid> = history.iter().copied().collect();
    let reported_set: BTreeSet<git2::Oid> = reported.iter().copied().collect();
    assert_eq!(
        on_branch, reported_set,
        "the commits hb printed are the branch's"
    );

    // Exactly one commit per request, and each action's project is in the final intent.
    let mut requests: BTreeMap<String, usize> = BTreeMap::new();
    for id in &history {
        let commit = repo.find_commit(*id).expect("commit");
        let trailers =
            CommitMessage::parse_trailers(commit.message().expect("UTF-8")).expect("trailers");
        *requests.entry(trailers.request).or_default() += 1;
    }
    let files = common::head_files(&path);
    for w in 0..WRITERS {
        for a in 0..ACTIONS {
            let (ws, project) = project(w, a);
            assert_eq!(
                requests.get(&format!("req-{project}")),
                Some(&1),
                "{project}"
            );
            assert!(
                files.contains_key(&format!("intent/acme/{ws}/projects/{project}.yaml")),
                "{project} lost"
            );
        }
    }
    common::assert_compiled(&files);

    let fsck = Command::new("git")
        .arg("-C")
        .arg(&path)
        .args(["fsck", "--full", "--strict", "--no-progress"])
        .output()
        .expect("git runs");
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    let _ = std::fs::remove_dir_all(&path);
}
