//! Measures the commit engine on a repository of 10,000 rendered workspaces and prints a
//! markdown table. Nothing here asserts on time; it only reports.
//!
//! ```text
//! cargo bench -p server --bench engine
//! ```
//!
//! Measurements:
//! 1. One action end to end in-process (`Engine::apply`: read the head, apply the action,
//!    compile the workspace, write blobs and trees, write the commit, move the branch; no
//!    push), p50 and p99 over [`ACTIONS`] actions. Targets: p50 < 5 ms, p99 < 20 ms.
//! 2. The git CLI making the same changes (the engine's commits replayed: changed files
//!    written into a non-bare clone's working tree, `git add` + `git commit`), for the first
//!    [`GIT_SAMPLES`] of those actions. Target: the engine ≥10× faster. Git gets the rendered
//!    files for free: its time has no compile in it.
//! 3. [`THREADS`] writer threads on one engine and branch, each action its own commit:
//!    actions per second. Target ≥300/s.
//!
//! The repository (built once by `Engine::import`, with fsync off during the build only, then
//! packed by `git repack`) and its clone are cached under `target/bench-engine/<key>/`; each
//! run resets both branches to the cached base commit. Both sides fsync objects and refs:
//! `core.fsyncObjectFiles` (libgit2) and `core.fsync=committed` (git).
//!
//! With `HB_TIMING=1` it also prints where an action's time goes, phase by phase
//! (`server::timing`).
//!
//! Environment: `HB_BENCH_ACTIONS`, `HB_BENCH_GIT_SAMPLES`, `HB_BENCH_THREAD_ACTIONS` change
//! the counts; `HB_BENCH_DIR` puts the cache elsewhere than `target/bench-engine` (about
//! 1.2 GB). On a file system where others build (a shared `target/`), creating files is
//! slower, and the engine creates one per object.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::{Oid, Repository};
use server::gitops::{GitOps, Identity};
use server::service::action::Action;
use server::service::apply::{ActionMeta, Engine, Outcome};

mod common;

use common::{
    Cache, ORGANIZATIONS, Report, Result, WORKSPACES, bot, cpu_time, env_count, fmt, git,
    load_average, percentile, placement, progress,
};

const ACTIONS: usize = 200;
const GIT_SAMPLES: usize = 30;
const THREADS: usize = 16;
const THREAD_ACTIONS: usize = 25;

fn main() -> Result<()> {
    let actions = env_count("HB_BENCH_ACTIONS", ACTIONS);
    let git_samples = env_count("HB_BENCH_GIT_SAMPLES", GIT_SAMPLES).min(actions);
    let thread_actions = env_count("HB_BENCH_THREAD_ACTIONS", THREAD_ACTIONS);
    let mut report = Report::default();
    let load_at_start = load_average();
    let cache = Cache::ready(&mut report)?;
    cache.reset()?;

    // 1. One action at a time, in-process.
    let engine = Arc::new(Engine::new(GitOps::open(&cache.repo, "main")?, bot())?);
    progress("first action (loads the intent of every workspace)");
    let started = Instant::now();
    let warm_up = apply(&engine, 0, &create_project(0, "warm-up"))?;
    let first = started.elapsed();
    progress(&format!("{actions} actions, one at a time"));
    let mut times = Vec::with_capacity(actions);
    let mut commits = Vec::with_capacity(actions);
    let cpu_before = cpu_time();
    let _ = server::timing::take();
    for i in 0..actions {
        let action = create_project(spread(i + 1), &format!("bench-{i}"));
        let started = Instant::now();
        let commit = apply(&engine, i + 1, &action)?;
        times.push(started.elapsed());
        commits.push(commit);
    }
    let cpu = cpu_time().saturating_sub(cpu_before);
    let sequential_phases = server::timing::take();
    let (p50, p99) = (percentile(&mut times, 50), percentile(&mut times, 99));
    let loose = loose_objects(&cache.repo)?;
    report.row(
        "1",
        format!("First action after start (loads the intent of {WORKSPACES} workspaces)"),
        fmt(first),
        "",
        None,
    );
    report.row(
        "1",
        format!("One action end to end, in-process: p50 of {actions}"),
        fmt(p50),
        "< 5 ms",
        Some(p50 < Duration::from_millis(5)),
    );
    report.row(
        "1",
        format!("One action end to end, in-process: p99 of {actions}"),
        fmt(p99),
        "< 20 ms",
        Some(p99 < Duration::from_millis(20)),
    );

    let wall: Duration = times.iter().sum();
    report.row(
        "1",
        "… CPU time per action (the process's, mean; the rest of the wall time is waiting: \
         fsync, other processes)"
            .to_owned(),
        format!(
            "{} of {} wall",
            fmt(cpu / actions.max(1) as u32),
            fmt(wall / actions.max(1) as u32)
        ),
        "",
        None,
    );
    // Where part of that goes: the compiler on one workspace of the loaded intent.
    {
        let repo = Repository::open(&cache.repo)?;
        let head = engine.gitops().head(&repo)?;
        let snapshot = engine.gitops().snapshot(&repo, head)?;
        let compiler = compiler::Compiler::new(&compiler::Catalog::builtin())?;
        let mut compiles: Vec<Duration> = (0..20)
            .map(|i| {
                let (org, ws, _, _) = placement(spread(50_000 + i));
                let only = std::collections::BTreeSet::from([(org, ws)]);
                let started = Instant::now();
                let out = compiler.compile_workspaces(&snapshot.intent, &only);
                let elapsed = started.elapsed();
                out.map(|_| elapsed)
            })
            .collect::<std::result::Result<_, _>>()?;
        report.row(
            "1",
            format!("… of which `compile_workspaces` of one workspace in {WORKSPACES}: p50 of 20"),
            fmt(percentile(&mut compiles, 50)),
            "",
            None,
        );
    }

    // 2. The git CLI making the same changes.
    progress(&format!("git CLI: the first {git_samples} changes again"));
    let repo = Repository::open(&cache.repo)?;
    let mut git_times = Vec::with_capacity(git_samples);
    git_cli_commit(&repo, &cache.clone, warm_up, 0)?;
    for (i, commit) in commits.iter().take(git_samples).enumerate() {
        git_times.push(git_cli_commit(&repo, &cache.clone, *commit, i + 1)?);
    }
    if let Some(last) = commits.get(git_samples.wrapping_sub(1)) {
        let ours = repo.find_commit(*last)?.tree_id();
        let theirs = git(&cache.clone, &["rev-parse", "HEAD^{tree}"])?;
        assert_eq!(ours.to_string(), theirs.trim(), "git made other trees");
    }
    let mut ours: Vec<Duration> = times.clone();
    if git_times.is_empty() {
        git_times.push(Duration::ZERO);
    }
    let git_p50 = percentile(&mut git_times, 50);
    let ours_p50 = percentile(&mut ours, 50);
    let ratio = git_p50.as_secs_f64() / ours_p50.as_secs_f64().max(1e-9);
    report.row(
        "2",
        format!(
            "git CLI, same change (write files, `git add`, `git commit`): p50 of {git_samples}"
        ),
        format!(
            "{}; p99 {}",
            fmt(git_p50),
            fmt(percentile(&mut git_times, 99))
        ),
        "",
        None,
    );
    report.row(
        "2",
        "Engine faster than the git CLI by".to_owned(),
        format!("{ratio:.1}×"),
        "≥ 10×",
        Some(ratio >= 10.0),
    );

    // 3. Writer threads on one branch.
    progress(&format!("{THREADS} threads × {thread_actions} actions"));
    let before = history_len(&repo)?;
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || -> std::result::Result<(), String> {
                for a in 0..thread_actions {
                    let n = 100_000 + t * thread_actions + a;
                    apply(&engine, n, &create_project(spread(n), &format!("t{t}-{a}")))
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a writer panicked")??;
    }
    let wall = started.elapsed();
    let threaded_phases = server::timing::take();
    let total = THREADS * thread_actions;
    assert_eq!(history_len(&repo)? - before, total, "one commit per action");
    let rate = total as f64 / wall.as_secs_f64().max(1e-9);
    report.row(
        "3",
        format!("{THREADS} writer threads, one branch, one commit per action ({total} actions)"),
        format!("{rate:.0} actions/s ({} wall)", fmt(wall)),
        "≥ 300/s",
        Some(rate >= 300.0),
    );
    let sequential = actions as f64 / times.iter().sum::<Duration>().as_secs_f64();
    report.row(
        "3",
        "One writer, same actions (from part 1)".to_owned(),
        format!("{sequential:.0} actions/s"),
        "",
        None,
    );

    report.note(format!(
        "Repository: {WORKSPACES} workspaces (5 projects, 3 custom roles, 2 Functions, 1 CronJob \
         each; {ORGANIZATIONS} organizations, 2 clusters, 2 plans), {} files at the base \
         commit, packed; cached in `{}`.",
        cache.files,
        cache.dir.display()
    ));
    report.note(format!(
        "Loose objects written per action (part 1; actions write packs, so 0 is expected): {:.1}.",
        loose as f64 / (actions + 1) as f64
    ));
    report.note(format!(
        "Each action creates a project in a different workspace (so the workspace is rendered \
         again); {} CPUs; load average (1 min) before {load_at_start}, after {}. Other \
         processes on the machine slow wall times down.",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average()
    ));
    progress("pruning this run's objects");
    drop(engine);
    cache.prune()?;
    report.print();
    print_phases(
        &format!("one action at a time, per action of {actions}"),
        &sequential_phases,
        actions,
    );
    print_phases(
        &format!("{THREADS} threads, per action of {total}"),
        &threaded_phases,
        total,
    );
    Ok(())
}

/// The per-phase breakdown of `server::timing` (only with `HB_TIMING=1`).
fn print_phases(title: &str, phases: &[(&'static str, u64, Duration)], actions: usize) {
    if phases.is_empty() {
        return;
    }
    let mut out = format!("\nPhases ({title}; wall time summed over threads):\n\n");
    let _ = writeln!(out, "| Phase | Runs | Total | Per action |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
    for (phase, runs, total) in phases {
        let _ = writeln!(
            out,
            "| {phase} | {runs} | {} | {} |",
            fmt(*total),
            fmt(*total / actions.max(1) as u32)
        );
    }
    print!("{out}");
}

// ---------------------------------------------------------------------------------------------
// Actions

/// Workspace number `i`'s place, spread so that consecutive actions hit other workspaces.
fn spread(i: usize) -> usize {
    (i * 7_919) % WORKSPACES
}

fn create_project(workspace: usize, project: &str) -> Action {
    let (org, ws, _, _) = placement(workspace);
    Action::CreateProject {
        org,
        workspace: ws,
        project: project.to_owned(),
        display_name: None,
    }
}

/// Applies `action` as request `n`; it must make a commit.
fn apply(engine: &Engine, n: usize, action: &Action) -> Result<Oid> {
    let meta = ActionMeta {
        actor: Identity {
            name: "bench".into(),
            email: "bench@example.com".into(),
        },
        request_id: format!("bench-{n}"),
        actor_id: None,
        digest: None,
    };
    match engine.apply(&meta, action)? {
        Outcome::Committed { commit, .. } => Ok(Oid::from_str(&commit)?),
        other => Err(format!("expected a commit, got {other:?}").into()),
    }
}

/// Loose objects in the repository at `path`.
fn loose_objects(path: &Path) -> Result<usize> {
    let mut n = 0;
    for dir in std::fs::read_dir(path.join("objects"))? {
        let dir = dir?;
        if dir.file_name().len() == 2 {
            n += std::fs::read_dir(dir.path())?.count();
        }
    }
    Ok(n)
}

fn history_len(repo: &Repository) -> Result<usize> {
    let mut walk = repo.revwalk()?;
    walk.push_ref("refs/heads/main")?;
    Ok(walk.count())
}

// ---------------------------------------------------------------------------------------------
// The git CLI

/// Writes `commit`'s changes against its parent into the clone's working tree, then
/// `git add` and `git commit`; returns the time of all three.
fn git_cli_commit(repo: &Repository, clone: &Path, commit: Oid, n: usize) -> Result<Duration> {
    let commit = repo.find_commit(commit)?;
    let old = commit.parent(0)?.tree()?;
    let new = commit.tree()?;
    let diff = repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
    let mut changes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    for delta in diff.deltas() {
        let file = delta.new_file();
        let path = file
            .path()
            .or_else(|| delta.old_file().path())
            .and_then(Path::to_str)
            .ok_or("a non-UTF-8 path")?
            .to_owned();
        let bytes = if delta.status() == git2::Delta::Deleted {
            None
        } else {
            Some(repo.find_blob(file.id())?.content().to_vec())
        };
        changes.push((path, bytes));
    }
    let started = Instant::now();
    for (path, bytes) in &changes {
        let target = clone.join(path);
        match bytes {
            Some(bytes) => {
                if let Some(dir) = target.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&target, bytes)?;
            }
            None => std::fs::remove_file(&target)?,
        }
    }
    let mut add = vec!["add", "-A", "--"];
    add.extend(changes.iter().map(|(p, _)| p.as_str()));
    git(clone, &add)?;
    git(
        clone,
        &[
            "commit",
            "-q",
            "--no-verify",
            "-m",
            &format!("bench change {n}"),
        ],
    )?;
    Ok(started.elapsed())
}
