//! The `hb` binary end to end: exit codes, writes only what changed, `--check` diffs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn hb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hb"))
}

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

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hb-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

#[test]
fn compile_writes_then_check_passes_then_detects_hand_edits() {
    let out = temp_dir("compile");
    let status = hb()
        .args(["compile"])
        .arg(example_intent())
        .arg("--out")
        .arg(&out)
        .status()
        .expect("runs");
    assert!(status.success());
    let vcluster = out.join("tenants/home/acme/dev/host/vcluster.yaml");
    assert!(vcluster.is_file());
    // A file we do not own is kept; a stale generated file is removed.
    std::fs::create_dir_all(out.join("clusters/home/flux-system")).expect("mkdir");
    std::fs::write(
        out.join("clusters/home/flux-system/gotk-sync.yaml"),
        "keep: me\n",
    )
    .expect("write");
    std::fs::create_dir_all(out.join("tenants/home/acme/gone/host")).expect("mkdir");
    std::fs::write(
        out.join("tenants/home/acme/gone/host/vcluster.yaml"),
        "stale: true\n",
    )
    .expect("write");
    std::fs::write(&vcluster, "hand: edit\n").expect("write");

    let check = hb()
        .args(["compile"])
        .arg(example_intent())
        .arg("--out")
        .arg(&out)
        .arg("--check")
        .output()
        .expect("runs");
    assert_eq!(check.status.code(), Some(1));
    let diff = String::from_utf8_lossy(&check.stdout);
    assert!(diff.contains("-hand: edit"), "{diff}");
    assert!(diff.contains("+++ /dev/null"), "{diff}");

    let status = hb()
        .args(["compile"])
        .arg(example_intent())
        .arg("--out")
        .arg(&out)
        .status()
        .expect("runs");
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&vcluster)
            .expect("read")
            .contains("kind: HelmRelease")
    );
    assert!(!out.join("tenants/home/acme/gone").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("clusters/home/flux-system/gotk-sync.yaml"))
            .expect("kept"),
        "keep: me\n"
    );
    let check = hb()
        .args(["compile"])
        .arg(example_intent())
        .arg("--out")
        .arg(&out)
        .arg("--check")
        .status()
        .expect("runs");
    assert!(check.success());
}

#[test]
fn invalid_intent_exits_one_names_file_and_path_and_writes_nothing() {
    let intent = temp_dir("invalid").join("intent");
    copy_dir(&example_intent(), &intent);
    let web = intent.join("acme/dev/projects/web.yaml");
    let text = std::fs::read_to_string(&web)
        .expect("read")
        .replace("requestsCpu: \"4\"", "requestsCpu: \"400\"");
    std::fs::write(&web, text).expect("write");
    let out = intent.parent().expect("parent").join("out");
    let result = hb()
        .args(["compile"])
        .arg(&intent)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("intent/acme/dev/projects/web.yaml: spec.quota.requestsCpu: 400 exceeds"),
        "{stderr}"
    );
    assert!(!out.exists());

    let validate = hb()
        .args(["validate", "--json"])
        .arg(&intent)
        .output()
        .expect("runs");
    assert_eq!(validate.status.code(), Some(1));
    let diagnostics: serde_json::Value = serde_json::from_slice(&validate.stdout).expect("json");
    assert_eq!(diagnostics[0]["path"], "spec.quota.requestsCpu");
}

#[test]
fn missing_folder_exits_two_and_schema_prints_json() {
    let result = hb()
        .args(["validate", "/nonexistent/intent"])
        .output()
        .expect("runs");
    assert_eq!(result.status.code(), Some(2));
    let schema = hb().arg("schema").output().expect("runs");
    assert!(schema.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).expect("json");
    assert_eq!(schema["oneOf"].as_array().map(Vec::len), Some(4));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Pat", "-c", "user.email=pat@example.com"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `hb <args> --repo <repo>` as actor Ann.
fn hb_as_ann(args: &[&str], repo: &Path) -> Command {
    let mut cmd = hb();
    cmd.args(args).arg("--repo").arg(repo).args([
        "--actor-name",
        "Ann",
        "--actor-email",
        "ann@example.com",
    ]);
    cmd
}

fn import(repo: &Path) {
    let out = hb_as_ann(&["import"], repo)
        .arg(example_intent())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
}

fn act(repo: &Path, project: &str, request: Option<&str>) -> std::process::Output {
    let action = format!(
        r#"{{"action":"create-project","org":"acme","workspace":"dev","project":"{project}"}}"#
    );
    let mut cmd = hb_as_ann(&["act", &action], repo);
    if let Some(request) = request {
        cmd.args(["--request", request]);
    }
    cmd.output().expect("runs")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn act_without_a_request_id_gets_a_fresh_one_and_a_retry_gets_its_first_commit() {
    let repo = temp_dir("request").join("repo.git");
    import(&repo);
    for project in ["one", "two"] {
        let out = act(&repo, project, None);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let requests = git(
        &repo,
        &["log", "--format=%(trailers:key=Hexabase-Request,valueonly)"],
    );
    let requests: Vec<&str> = requests.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests[0] != requests[1] && requests[1] != requests[2] && requests[0] != requests[2],
        "{requests:?}"
    );
    assert!(requests.iter().all(|r| r.len() == 36), "{requests:?}");

    let first = act(&repo, "three", Some("req-3"));
    assert!(first.status.success(), "{}", stderr(&first));
    let retry = act(&repo, "three", Some("req-3"));
    assert!(retry.status.success(), "{}", stderr(&retry));
    assert_eq!(stdout(&retry), stdout(&first));
    assert!(
        stderr(&retry).contains("already on the branch"),
        "{}",
        stderr(&retry)
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), stdout(&first));
}

#[test]
fn check_passes_on_a_rendered_revision_and_fails_with_the_diff_on_a_stale_one() {
    let dir = temp_dir("check");
    let bare = dir.join("repo.git");
    import(&bare);
    let check = |repo: &Path, rev: Option<&str>| {
        let mut cmd = hb();
        cmd.arg("check").arg("--repo").arg(repo);
        if let Some(rev) = rev {
            cmd.args(["--rev", rev]);
        }
        cmd.output().expect("runs")
    };
    let out = check(&bare, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    // A pull request that adds a project to intent/ and forgets to render it.
    let work = dir.join("work");
    git(
        &dir,
        &["clone", "--quiet", bare.to_str().expect("utf-8"), "work"],
    );
    std::fs::write(
        work.join("intent/acme/dev/projects/extra.yaml"),
        "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: extra\nspec: {}\n",
    )
    .expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "--quiet", "-m", "add a project by hand"]);
    let out = check(&work, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let diff = stdout(&out);
    assert!(
        diff.contains("+++ b/tenants/home/acme/dev/inside/projects/extra.yaml"),
        "{diff}"
    );
    assert!(diff.contains("+  name: \"extra\""), "{diff}");
    assert!(stderr(&out).contains("stale"), "{}", stderr(&out));
    // The revision before it is fine; a revision that names nothing is trouble.
    let out = check(&work, Some("HEAD~1"));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = check(&work, Some("no-such-branch"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"no-such-branch\" does not name a commit"),
        "{}",
        stderr(&out)
    );

    // Rendered by hand too, but with an invalid quota: the diagnostics, exit 1.
    let web = work.join("intent/acme/dev/projects/web.yaml");
    let text = std::fs::read_to_string(&web)
        .expect("read")
        .replace("requestsCpu: \"4\"", "requestsCpu: \"400\"");
    std::fs::write(&web, text).expect("write");
    git(
        &work,
        &["commit", "--quiet", "-am", "raise a quota too far"],
    );
    let out = check(&work, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("intent/acme/dev/projects/web.yaml: spec.quota.requestsCpu"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn push_sends_pending_commits_to_the_configured_remote_and_reports_drops() {
    let dir = temp_dir("push");
    let remote = dir.join("remote.git");
    git(
        &dir,
        &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
    );
    let url = format!("file://{}", remote.display());
    let local = dir.join("local.git");
    import(&local);
    let push = |repo: &Path, extra: &[&str]| {
        hb().arg("push")
            .arg("--repo")
            .arg(repo)
            .args(extra)
            .output()
            .expect("runs")
    };

    // No remote anywhere: trouble, and it says where one can come from.
    let out = push(&local, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--remote"), "{}", stderr(&out));

    // The repository's configured remote.
    git(&local, &["config", "remote.origin.url", &url]);
    let out = push(&local, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let head = git(&local, &["rev-parse", "main"]);
    assert_eq!(stdout(&out), format!("pushed {head}"));
    assert_eq!(git(&remote, &["rev-parse", "main"]), head);

    // A configuration file; an unknown key in it is named.
    let config = dir.join("push.toml");
    std::fs::write(
        &config,
        "[remote]\nurl = \"file:///nowhere\"\ncolour = \"blue\"\n",
    )
    .expect("write");
    let out = push(&local, &["--config", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("colour"), "{}", stderr(&out));
    std::fs::write(
        &config,
        format!("[remote]\nname = \"upstream\"\nurl = \"{url}\"\n[remote.credentials]\nkind = \"none\"\n"),
    )
    .expect("write");

    // Someone else creates the same project first: ours is dropped, the rest pushed, exit 1.
    let other = dir.join("other.git");
    git(
        &dir,
        &[
            "clone",
            "--quiet",
            "--bare",
            remote.to_str().expect("utf-8"),
            "other.git",
        ],
    );
    let out = push(&other, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).is_empty(),
        "a fresh clone has nothing to push: {}",
        stdout(&out)
    );
    assert!(act(&local, "same", Some("ours")).status.success());
    assert!(act(&local, "later", Some("ours-later")).status.success());
    assert!(act(&other, "same", Some("theirs")).status.success());
    let out = push(&other, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = push(&local, &["--config", config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("dropped "), "{report}");
    assert!(report.contains("already exists"), "{report}");
    assert!(report.contains("replayed "), "{report}");
    assert!(report.contains("pushed "), "{report}");
    let requests = git(
        &remote,
        &["log", "--format=%(trailers:key=Hexabase-Request,valueonly)"],
    );
    let requests: Vec<&str> = requests.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[..2], ["ours-later", "theirs"], "{requests:?}");
    // Nothing left to push.
    let out = push(&local, &["--config", config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
