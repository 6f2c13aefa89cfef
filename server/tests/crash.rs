//! Crash safety of the commit path: the real `hb` binary, built with the `failpoints` feature,
//! is killed with SIGKILL while it sleeps at each failpoint of a commit and at random
//! moments. After every crash the repository must pass `git fsck --full --strict`, the branch
//! must point at a commit whose rendered files are exactly what its intent compiles to, no
//! stale lock may block the next `hb act`, and a retried request lands exactly once.
//!
//! The same for `hb push` (a push the remote refuses at first, so that it fetches, re-applies
//! and moves the local branch): killed at every failpoint on that way and at random moments,
//! both repositories stay clean, and the next `hb push` finishes the outbox exactly once.
//!
//! Which binary: under `cargo test --features failpoints` the `hb` that cargo built for this
//! test has the failpoints, and is used as is. Under a plain `cargo test` it has none (and
//! building it with them in the same target directory would replace `target/debug/hb` under
//! the other tests), so the first test builds one with
//! `cargo build -p server --features failpoints --bin hb` into `target/failpoints/` (a minute
//! the first time, seconds afterwards) and all tests share it.
//!
//! Linux only: a process is known to be waiting at a failpoint (`sleep(ms)`) when its main
//! thread sleeps in `nanosleep`, read from `/proc/<pid>/wchan`.
//!
//! `HB_CRASH_SEED=<n>` repeats a run of the random-kill test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use server::gitops::{CommitMessage, FAILPOINTS};
use server::service::push::FAILPOINTS as PUSH_FAILPOINTS;

// ---------------------------------------------------------------------------------------------
// The binary and the repository

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `hb` binary with failpoints (see the module docs for which one).
fn hb_path() -> &'static Path {
    static HB: OnceLock<PathBuf> = OnceLock::new();
    HB.get_or_init(|| {
        if cfg!(feature = "failpoints") {
            return PathBuf::from(env!("CARGO_BIN_EXE_hb"));
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| manifest_dir().join("../target"), PathBuf::from)
            .join("failpoints");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "server",
                "--features",
                "failpoints",
                "--bin",
                "hb",
            ])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(manifest_dir())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building hb with failpoints failed");
        target.join("debug/hb")
    })
}

struct Repo {
    path: PathBuf,
}

impl Repo {
    /// A fresh repository with the example intent imported.
    fn seeded(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("hb-crash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let repo = Self { path };
        let out = repo.import().output().expect("hb runs");
        assert!(out.status.success(), "import: {}", stderr(&out));
        repo
    }

    /// `hb <args> --repo <this> --request <request>`, as actor `crash`, failpoints unarmed.
    fn hb(&self, args: &[&str], request: &str) -> Command {
        let mut cmd = Command::new(hb_path());
        cmd.args(args)
            .arg("--repo")
            .arg(&self.path)
            .args([
                "--actor-name",
                "crash",
                "--actor-email",
                "crash@example.com",
            ])
            .args(["--request", request])
            .env_remove("FAILPOINTS")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null());
        cmd
    }

    /// `hb import` of the example intent, request `seed`.
    fn import(&self) -> Command {
        let intent = manifest_dir().join("../gitops-repo-example/intent");
        let intent = intent.to_str().expect("a UTF-8 path");
        self.hb(&["import", intent], "seed")
    }

    /// `hb act <action> --request <request>`.
    fn act(&self, action: &str, request: &str) -> Command {
        self.hb(&["act", action], request)
    }

    fn head(&self) -> Option<git2::Oid> {
        let repo = git2::Repository::open(&self.path).expect("open");
        repo.refname_to_id("refs/heads/main").ok()
    }

    /// How many commits on the branch carry `Hexabase-Request: <request>`.
    fn commits_for(&self, request: &str) -> usize {
        let repo = git2::Repository::open(&self.path).expect("open");
        let mut walk = repo.revwalk().expect("revwalk");
        walk.push_ref("refs/heads/main").expect("branch");
        walk.map(|id| repo.find_commit(id.expect("walk")).expect("commit"))
            .filter(|c| {
                c.message()
                    .ok()
                    .and_then(CommitMessage::parse_trailers)
                    .is_some_and(|t| t.request == request)
            })
            .count()
    }

    /// Lock files anywhere in the repository, except our own process lock.
    fn lock_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "lock")
                    && path.file_name().is_some_and(|n| n != "hexabase.lock")
                {
                    out.push(path);
                }
            }
        }
        out
    }

    /// `git fsck --full --strict` (the git CLI, not libgit2) finds nothing wrong.
    fn assert_fsck_clean(&self) {
        common::assert_fsck_clean(&self.path);
    }

    /// The head's rendered files are exactly what a full compile of the head's intent gives.
    fn assert_head_is_compiled(&self) {
        common::assert_head_is_compiled(&self.path);
    }

    /// `hb push --repo <this>` to its configured remote, failpoints unarmed.
    fn push(&self) -> Command {
        let mut cmd = Command::new(hb_path());
        cmd.arg("push")
            .arg("--repo")
            .arg(&self.path)
            .env_remove("FAILPOINTS")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null());
        cmd
    }

    /// The `Hexabase-Request` trailers on the branch, oldest first.
    fn requests(&self) -> Vec<String> {
        let repo = git2::Repository::open(&self.path).expect("open");
        let mut walk = repo.revwalk().expect("revwalk");
        walk.push_ref("refs/heads/main").expect("branch");
        let mut out: Vec<String> = walk
            .filter_map(|id| {
                let commit = repo.find_commit(id.expect("walk")).expect("commit");
                CommitMessage::parse_trailers(commit.message().ok()?).map(|t| t.request)
            })
            .collect();
        out.reverse();
        out
    }

    /// fsck is clean, the branch names a commit, and that commit is compiled.
    fn assert_sound(&self) {
        self.assert_fsck_clean();
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["rev-parse", "--verify", "--quiet", "main^{commit}"])
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "{}: main names no commit",
            self.path.display()
        );
        self.assert_head_is_compiled();
    }

    fn has_project(&self, project: &str) -> bool {
        common::head_files(&self.path)
            .contains_key(&format!("intent/acme/dev/projects/{project}.yaml"))
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn create_project(project: &str) -> String {
    format!(r#"{{"action":"create-project","org":"acme","workspace":"dev","project":"{project}"}}"#)
}

/// Waits until `child`'s main thread sleeps (at the armed failpoint); panics if it exits.
fn wait_until_sleeping(child: &mut Child, point: &str) {
    let wchan = format!("/proc/{}/wchan", child.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
            }
            panic!("hb exited ({status}) without reaching failpoint {point}: {err}");
        }
        if std::fs::read_to_string(&wchan).is_ok_and(|w| w.contains("nanosleep")) {
            return;
        }
        assert!(Instant::now() < deadline, "hb never reached {point}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `cmd` with the failpoint `point` armed as `action` (a sleep), and SIGKILLs it there.
fn kill_at(cmd: &mut Command, point: &str, action: &str) {
    let mut child = cmd
        .env("FAILPOINTS", format!("{point}={action}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb starts");
    wait_until_sleeping(&mut child, point);
    kill9(&mut child);
}

/// SIGKILL (`Child::kill` sends SIGKILL on Unix) and reap.
fn kill9(child: &mut Child) {
    let _ = child.kill();
    child.wait().expect("reaped");
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Crashes at one failpoint, checks the repository, retries the same request, then acts again.
fn crash_at(point: &str, action: &str) {
    let repo = Repo::seeded(&format!("{point}-{action}"));
    let before = repo.head();
    let request = "req-crash";
    let mut child = repo
        .act(&create_project("crashed"), request)
        .env("FAILPOINTS", format!("{point}={action}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb starts");
    if action == "panic" {
        let out = child.wait_with_output().expect("hb ends");
        assert!(
            stderr(&out).contains(&format!("failpoint {point} panic")),
            "hb did not panic at {point}: {}",
            stderr(&out)
        );
    } else {
        wait_until_sleeping(&mut child, point);
        kill9(&mut child);
    }
    // Only a crash after the branch moved leaves the commit in.
    let after = repo.head();
    let landed = after != before;
    assert_eq!(landed, point == "gitops-ref-updated", "crash at {point}");
    repo.assert_fsck_clean();
    repo.assert_head_is_compiled();
    assert!(repo.lock_files().is_empty(), "{:?}", repo.lock_files());

    // The client retries the same request.
    let retry = repo
        .act(&create_project("crashed"), request)
        .output()
        .expect("hb runs");
    assert!(retry.status.success(), "retry: {}", stderr(&retry));
    if landed {
        // The retry is answered with the commit the crashed process made.
        let first = after.expect("landed").to_string();
        assert_eq!(String::from_utf8_lossy(&retry.stdout).trim(), first);
        assert!(
            stderr(&retry).contains("already on the branch"),
            "{}",
            stderr(&retry)
        );
    }
    assert_eq!(repo.commits_for(request), 1, "exactly once after {point}");
    assert!(repo.has_project("crashed"));

    // And the next action goes through.
    let next = repo
        .act(&create_project("after"), "req-after")
        .output()
        .expect("hb runs");
    assert!(next.status.success(), "next act: {}", stderr(&next));
    assert_eq!(repo.commits_for("req-after"), 1);
    repo.assert_fsck_clean();
    repo.assert_head_is_compiled();
}

#[test]
fn sigkill_at_every_failpoint_leaves_a_clean_repository() {
    for point in FAILPOINTS {
        crash_at(point, "sleep(600000)");
    }
}

#[test]
fn a_panic_at_every_failpoint_leaves_a_clean_repository() {
    for point in FAILPOINTS {
        crash_at(point, "panic");
    }
}

#[test]
fn a_crashed_import_leaves_no_branch_and_can_be_run_again() {
    for point in ["import-tree-written", "gitops-before-ref-update"] {
        let path =
            std::env::temp_dir().join(format!("hb-crash-import-{point}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let repo = Repo { path };
        kill_at(&mut repo.import(), point, "sleep(600000)");
        assert_eq!(
            repo.head(),
            None,
            "the branch is unborn after a crash at {point}"
        );
        let out = repo.import().output().expect("hb runs");
        assert!(out.status.success(), "import again: {}", stderr(&out));
        assert_eq!(repo.commits_for("seed"), 1);
        repo.assert_fsck_clean();
        repo.assert_head_is_compiled();
    }
}

#[test]
fn stale_locks_are_removed_only_when_no_hexabase_process_is_alive() {
    let repo = Repo::seeded("locks");
    let gitdir = &repo.path;
    let head = repo.head().expect("seeded").to_string();
    // What a process killed inside a ref, packed-refs, HEAD or config update leaves behind.
    let stale = [
        gitdir.join("refs/heads/main.lock"),
        gitdir.join("packed-refs.lock"),
        gitdir.join("HEAD.lock"),
        gitdir.join("config.lock"),
    ];
    let plant = || {
        for path in &stale {
            std::fs::write(path, format!("{head}\n")).expect("plant a lock file");
        }
    };

    // A live hb (asleep before its ref update) holds the process lock: another hb must not
    // take the locks away from it, and cannot move the branch past the ref lock.
    let mut alive = repo
        .act(&create_project("sleeper"), "req-sleeper")
        .env("FAILPOINTS", "gitops-before-ref-update=sleep(600000)")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb starts");
    wait_until_sleeping(&mut alive, "gitops-before-ref-update");
    plant();
    let blocked = repo
        .act(&create_project("blocked"), "req-blocked")
        .output()
        .expect("hb runs");
    assert!(
        !blocked.status.success(),
        "moved the branch past a live ref lock"
    );
    for path in &stale {
        assert!(
            path.exists(),
            "{} removed while a process was alive",
            path.display()
        );
    }
    assert_eq!(repo.commits_for("req-blocked"), 0);

    // Once it is dead, the next hb removes them and goes through.
    kill9(&mut alive);
    let out = repo
        .act(&create_project("unblocked"), "req-unblocked")
        .output()
        .expect("hb runs");
    assert!(out.status.success(), "after the crash: {}", stderr(&out));
    assert!(repo.lock_files().is_empty(), "{:?}", repo.lock_files());
    assert_eq!(repo.commits_for("req-unblocked"), 1);
    assert_eq!(repo.commits_for("req-sleeper"), 0);
    repo.assert_fsck_clean();
    repo.assert_head_is_compiled();
}

/// A small xorshift generator: the test needs a few random delays, not a dependency.
struct Rng(u64);

impl Rng {
    /// Seeded by HB_CRASH_SEED, or by the clock (and the seed printed, to repeat a run).
    fn from_env(what: &str) -> Self {
        let seed = std::env::var("HB_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("{what}: HB_CRASH_SEED={seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_applies_nothing_twice() {
    const KILLS: usize = 20;
    let repo = Repo::seeded("random");
    let mut rng = Rng::from_env("random kills");
    // How long an uninterrupted `hb act` takes here (the median of three).
    let mut spans: Vec<u64> = (0..3)
        .map(|i| {
            let started = Instant::now();
            let out = repo
                .act(
                    &create_project(&format!("timing{i}")),
                    &format!("req-timing{i}"),
                )
                .output()
                .expect("hb runs");
            assert!(out.status.success(), "{}", stderr(&out));
            started.elapsed().as_micros() as u64
        })
        .collect();
    spans.sort_unstable();
    let span = spans[1].max(1_000);
    let (mut landed, mut stale) = (0, 0);
    for i in 0..KILLS {
        let mut child = repo
            .act(&create_project(&format!("r{i}")), &format!("req-r{i}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("hb starts");
        // Half the kills anywhere in the run, half in its last part, where it commits.
        let delay = if i % 2 == 0 {
            rng.below(span + span / 5)
        } else {
            span / 2 + rng.below(span * 7 / 10)
        };
        std::thread::sleep(Duration::from_micros(delay));
        kill9(&mut child);
        landed += repo.commits_for(&format!("req-r{i}"));
        // Left for the next `hb act` to clear.
        stale += repo.lock_files().len();
    }
    eprintln!(
        "random kills: {landed} of {KILLS} killed actions had landed, {stale} lock files \
         left behind ({span} us per act)"
    );
    repo.assert_fsck_clean();
    repo.assert_head_is_compiled();
    // Every client retries its request: each lands exactly once.
    for i in 0..KILLS {
        let request = format!("req-r{i}");
        let landed = repo.commits_for(&request) == 1;
        let out = repo
            .act(&create_project(&format!("r{i}")), &request)
            .output()
            .expect("hb runs");
        assert!(out.status.success(), "retry {i}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).contains("already on the branch"),
            landed,
            "retry {i}: {}",
            stderr(&out)
        );
        assert_eq!(repo.commits_for(&request), 1, "{request}");
        assert!(repo.has_project(&format!("r{i}")));
    }
    assert!(repo.lock_files().is_empty(), "{:?}", repo.lock_files());
    repo.assert_fsck_clean();
    repo.assert_head_is_compiled();
}

// ---------------------------------------------------------------------------------------------
// Pushes

/// A seeded repository pushed to a bare remote, and a second Hexabase repository cloned
/// from that remote: `(local, other, remote)`. Both push to the remote configured in them.
fn pushing(name: &str) -> (Repo, Repo, Repo) {
    let local = Repo::seeded(name);
    let remote = Repo {
        path: local.path.with_extension("remote"),
    };
    let other = Repo {
        path: local.path.with_extension("other"),
    };
    for repo in [&remote, &other] {
        let _ = std::fs::remove_dir_all(&repo.path);
    }
    let path = |repo: &Repo| repo.path.to_str().expect("a UTF-8 path").to_owned();
    git(&["init", "--quiet", "--bare", "-b", "main", &path(&remote)]);
    let url = format!("file://{}", remote.path.display());
    git(&["-C", &path(&local), "config", "remote.origin.url", &url]);
    run(&mut local.push());
    git(&["clone", "--quiet", "--bare", &url, &path(&other)]);
    // Turns the other repository's journal on before it commits.
    run(&mut other.push());
    (local, other, remote)
}

fn git(args: &[&str]) {
    let out = Command::new("git").args(args).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("hb runs");
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    out
}

/// Round `i`: one action in each repository; the other one pushes first, so that the next
/// push of `local` is refused and has to fetch and re-apply.
fn diverge(local: &Repo, other: &Repo, i: usize) {
    run(&mut local.act(&create_project(&format!("l{i}")), &format!("req-l{i}")));
    run(&mut other.act(&create_project(&format!("o{i}")), &format!("req-o{i}")));
    run(&mut other.push());
}

/// After the outbox of both repositories finished: every request exactly once on the remote,
/// and both repositories where the remote is.
fn assert_pushed_exactly_once(local: &Repo, other: &Repo, remote: &Repo, rounds: usize) {
    run(&mut local.push());
    run(&mut other.push());
    let requests = remote.requests();
    let mut expected = vec!["seed".to_owned()];
    for i in 0..rounds {
        expected.push(format!("req-l{i}"));
        expected.push(format!("req-o{i}"));
    }
    for request in &expected {
        let n = requests.iter().filter(|r| *r == request).count();
        assert_eq!(n, 1, "{request} on the remote {n} times: {requests:?}");
    }
    assert_eq!(requests.len(), expected.len(), "{requests:?}");
    assert_eq!(local.head(), remote.head());
    // The other repository pushed everything it had; it fetches only when it must.
    let theirs = other.head().expect("other has commits");
    let repo = git2::Repository::open(&remote.path).expect("open");
    let head = remote.head().expect("remote has commits");
    assert!(
        head == theirs || repo.graph_descendant_of(head, theirs).expect("graph"),
        "the remote holds the other repository's head"
    );
    for repo in [local, other, remote] {
        repo.assert_sound();
    }
}

#[test]
fn sigkill_at_every_push_failpoint_finishes_the_outbox_exactly_once() {
    // Every push failpoint, the commit failpoints the re-apply passes, and the second
    // `push-before-push` (after the re-apply), in the order a refused push meets them.
    let mut points: Vec<(&str, &str)> = vec![("push-before-push", "sleep(600000)")];
    // The re-apply writes loose objects, never a pack: `gitops-pack-written` is the batch
    // commit's alone.
    points.extend(
        FAILPOINTS
            .iter()
            .filter(|p| **p != "gitops-pack-written")
            .map(|p| (*p, "sleep(600000)")),
    );
    points.extend(
        PUSH_FAILPOINTS
            .iter()
            .skip(1)
            .map(|p| (*p, "sleep(600000)")),
    );
    points.push(("push-before-push", "1*off->sleep(600000)"));
    for (n, (point, action)) in points.into_iter().enumerate() {
        let (local, other, remote) = pushing(&format!("push-{n}"));
        diverge(&local, &other, 0);
        kill_at(&mut local.push(), point, action);
        for repo in [&local, &remote] {
            repo.assert_sound();
        }
        assert!(
            remote.requests().iter().filter(|r| *r == "req-l0").count() <= 1,
            "{point}: {:?}",
            remote.requests()
        );
        assert_pushed_exactly_once(&local, &other, &remote, 1);
    }
}

#[test]
fn sigkill_at_random_moments_during_pushes_finishes_the_outbox_exactly_once() {
    const KILLS: usize = 12;
    let (local, other, remote) = pushing("push-random");
    let mut rng = Rng::from_env("random push kills");
    // How long an uninterrupted refused-then-re-applied push takes here (the longer of two).
    let mut span = 1_000;
    for i in 0..2 {
        diverge(&local, &other, i);
        let started = Instant::now();
        run(&mut local.push());
        span = span.max(started.elapsed().as_micros() as u64);
    }
    let mut landed = 0;
    for i in 2..2 + KILLS {
        diverge(&local, &other, i);
        let mut child = local
            .push()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("hb starts");
        // Half the kills anywhere in the run, half in its second half, where it re-applies,
        // moves the branch and pushes.
        let delay = if i % 2 == 0 {
            rng.below(span + span / 5)
        } else {
            span / 2 + rng.below(span * 7 / 10)
        };
        std::thread::sleep(Duration::from_micros(delay));
        kill9(&mut child);
        landed += remote.requests().contains(&format!("req-l{i}")) as usize;
        for repo in [&local, &remote] {
            repo.assert_sound();
        }
        // Restart: the next push finishes what the killed one left, exactly once.
        assert_pushed_exactly_once(&local, &other, &remote, i + 1);
    }
    eprintln!(
        "random push kills: {landed} of {KILLS} killed pushes had reached the remote ({span} us per push)"
    );
}
