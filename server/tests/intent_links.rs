//! Symbolic links in an intent tree are refused with their path, never followed: on disk
//! (`hb compile`, `hb validate`), in a revision `hb check` reads, and in the branch the server
//! reads its intent from.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example_intent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitops-repo-example/intent")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A work tree whose intent is the example's, with the `globex/research` workspace folder and
/// the `acme/dev` project `api` moved out of `intent/` and linked back in.
fn linked_tree(name: &str) -> tempfile::TempDir {
    let temp = tempfile::Builder::new()
        .prefix(&format!("hb-links-{name}-"))
        .tempdir()
        .expect("temp dir");
    let dir = temp.path();
    let intent = dir.join("intent");
    copy_dir(&example_intent(), &intent);
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::rename(intent.join("globex/research"), elsewhere.join("research")).expect("move");
    std::fs::rename(
        intent.join("acme/dev/projects/api.yaml"),
        elsewhere.join("api.yaml"),
    )
    .expect("move");
    std::os::unix::fs::symlink("../../elsewhere/research", intent.join("globex/research"))
        .expect("link a folder");
    std::os::unix::fs::symlink(
        "../../../../elsewhere/api.yaml",
        intent.join("acme/dev/projects/api.yaml"),
    )
    .expect("link a file");
    temp
}

const LINKED: [&str; 2] = [
    "intent/acme/dev/projects/api.yaml",
    "intent/globex/research",
];

fn assert_links_refused(stderr: &str) {
    for path in LINKED {
        assert!(
            stderr.contains(&format!("error: {path}: is a symbolic link")),
            "{path} is not refused:\n{stderr}"
        );
    }
}

#[test]
fn links_on_disk_are_refused_by_compile_and_validate() {
    let temp = linked_tree("disk");
    let dir = temp.path();
    let out = dir.join("out");
    let compile = Command::new(env!("CARGO_BIN_EXE_hb"))
        .arg("compile")
        .arg(dir.join("intent"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert_eq!(compile.status.code(), Some(1));
    assert_links_refused(&String::from_utf8_lossy(&compile.stderr));
    assert!(!out.exists());

    let validate = Command::new(env!("CARGO_BIN_EXE_hb"))
        .args(["validate", "--json"])
        .arg(dir.join("intent"))
        .output()
        .expect("runs");
    assert_eq!(validate.status.code(), Some(1));
    let diagnostics: serde_json::Value = serde_json::from_slice(&validate.stdout).expect("json");
    let files: Vec<&str> = diagnostics
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["file"].as_str())
        .collect();
    for path in LINKED {
        assert!(files.contains(&path), "{path} not in {files:?}");
    }
}

#[test]
fn links_in_git_are_refused_by_check_and_by_the_server() {
    let temp = linked_tree("git");
    let dir = temp.path();
    run(dir, "git", &["init", "--quiet", "-b", "main"]);
    run(dir, "git", &["add", "intent"]);
    run(
        dir,
        "git",
        &[
            "-c",
            "user.name=Pat",
            "-c",
            "user.email=pat@example.com",
            "commit",
            "--quiet",
            "-m",
            "link intent in",
        ],
    );
    let check = Command::new(env!("CARGO_BIN_EXE_hb"))
        .arg("check")
        .arg("--repo")
        .arg(dir)
        .output()
        .expect("runs");
    assert_eq!(check.status.code(), Some(1));
    assert_links_refused(&String::from_utf8_lossy(&check.stderr));

    // The server reads its intent from the branch through GitOps snapshots.
    let gitops = server::gitops::GitOps::open(dir, "main").expect("open");
    let repo = gitops.repo().expect("repo");
    let head = gitops.head(&repo).expect("head");
    let snapshot = gitops.snapshot(&repo, head).expect("snapshot");
    let problems: Vec<String> = snapshot.diagnostics().map(ToString::to_string).collect();
    assert_links_refused(&problems.join("\n"));
    let acme = &snapshot.intent.organizations["acme"];
    assert!(!acme.workspaces["dev"].projects.contains_key("api"));
    assert!(
        !snapshot.intent.organizations["globex"]
            .workspaces
            .contains_key("research")
    );
}
