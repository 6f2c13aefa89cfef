//! What the server's benchmarks share: the cached repository of 10,000 rendered workspaces
//! (built once by `Engine::import` with fsync off during the build only, then packed by
//! `git repack`, under `target/bench-engine/<key>/`), the workload it is built from, and the
//! markdown report. Each bench includes it with `mod common;`; not every bench uses all of it.
#![allow(dead_code, unused_imports)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use git2::{Oid, Repository};
use server::gitops::{GitOps, Identity};
use server::service::apply::{ActionMeta, Engine, Outcome};

#[path = "../../../compiler/benches/workload/mod.rs"]
mod workload;
pub(crate) use workload::{ORGANIZATIONS, placement, workload};

pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Bump when the workload or the cache layout changes; the compiler version is added to it.
const CACHE_VERSION: &str = "engine-bench-v2";
pub(crate) const WORKSPACES: usize = 10_000;

/// The committer of the engine's commits in the benches.
pub(crate) fn bot() -> Identity {
    Identity {
        name: "Hexabase".into(),
        email: "bot@hexabase.invalid".into(),
    }
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------------------------
// The cached repository

pub(crate) struct Cache {
    /// The cache's folder.
    pub(crate) dir: PathBuf,
    /// The bare repository the engine writes.
    pub(crate) repo: PathBuf,
    /// A non-bare clone for the git CLI.
    pub(crate) clone: PathBuf,
    /// The base commit both start from.
    pub(crate) base: Oid,
    /// Files at the base commit.
    pub(crate) files: usize,
}

impl Cache {
    /// The cached repository and clone, built first if missing.
    pub(crate) fn ready(report: &mut Report) -> Result<Self> {
        let root = match std::env::var_os("HB_BENCH_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(
                    || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
                    PathBuf::from,
                )
                .join("bench-engine"),
        };
        let key = format!(
            "{CACHE_VERSION}-compiler-{}-{WORKSPACES}",
            compiler::VERSION
        );
        let dir = root.join(key);
        let marker = dir.join("ready");
        let (repo, clone) = (dir.join("repo.git"), dir.join("clone"));
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let mut parts = text.split_whitespace();
            if let (Some(base), Some(files)) = (parts.next(), parts.next()) {
                report.note("The repository came from the cache.".to_owned());
                return Ok(Self {
                    base: Oid::from_str(base)?,
                    files: files.parse()?,
                    dir,
                    repo,
                    clone,
                });
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        progress(&format!(
            "building the repository of {WORKSPACES} workspaces"
        ));
        let started = Instant::now();
        let files = workload(WORKSPACES);
        let engine = Engine::new(GitOps::open(&repo, "main")?, bot())?;
        // Setup only: a hundred thousand fsyncs would take minutes. Restored below.
        Repository::open(&repo)?
            .config()?
            .set_bool("core.fsyncObjectFiles", false)?;
        let meta = ActionMeta {
            actor: Identity {
                name: "bench".into(),
                email: "bench@example.com".into(),
            },
            request_id: "bench-import".into(),
            actor_id: None,
            digest: None,
        };
        let Outcome::Committed { commit, .. } =
            engine.import(&meta, &files, "platform: import intent")?
        else {
            return Err("the import made no commit".into());
        };
        drop(engine);
        Repository::open(&repo)?
            .config()?
            .set_bool("core.fsyncObjectFiles", true)?;
        let import = started.elapsed();
        git(&repo, &["repack", "-a", "-d", "-q"])?;
        git(&repo, &["prune-packed"])?;
        let out = Command::new("git")
            .args(["clone", "-q"])
            .arg(&repo)
            .arg(&clone)
            .output()?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        for (key, value) in [
            ("core.fsync", "committed"),
            ("user.name", "bench"),
            ("user.email", "bench@example.com"),
            ("gc.auto", "0"),
        ] {
            git(&clone, &["config", key, value])?;
        }
        let count = {
            let repo = Repository::open(&repo)?;
            let tree = repo.find_commit(Oid::from_str(&commit)?)?.tree()?;
            let mut paths = std::collections::BTreeSet::new();
            GitOps::files_under(&repo, &tree, "", &mut paths)?;
            paths.len()
        };
        std::fs::write(&marker, format!("{commit} {count}\n"))?;
        std::fs::write(dir.join("pruned"), "")?;
        report.note(format!(
            "Built the repository: `Engine::import` in {}, with packing and cloning {}.",
            fmt(import),
            fmt(started.elapsed())
        ));
        Ok(Self {
            base: Oid::from_str(&commit)?,
            files: count,
            dir,
            repo,
            clone,
        })
    }

    /// Both branches back to the base commit, and the objects of earlier runs pruned.
    ///
    /// Pruning (and building, which packs and then deletes every loose object) deletes
    /// thousands of files, and ext4 without a journal (as on this machine) skips inodes
    /// freed in the last ~30 s (`vm.dirty_expire_centisecs`) when it allocates one, scanning
    /// the inode table past them: every object written in that window costs far more. So
    /// runs prune when they end, note when, and the next run waits until 35 s after that.
    pub(crate) fn reset(&self) -> Result<()> {
        self.prune()?;
        let since = std::fs::metadata(self.dir.join("pruned"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(Duration::MAX);
        if let Some(wait) = Duration::from_secs(35).checked_sub(since) {
            progress(&format!(
                "waiting {} s: files were deleted here just now (ext4)",
                wait.as_secs()
            ));
            std::thread::sleep(wait);
        }
        Ok(())
    }

    /// Resets both branches to the base and prunes everything else; true if anything was
    /// there to prune.
    pub(crate) fn prune(&self) -> Result<bool> {
        let repo = Repository::open(&self.repo)?;
        let head = repo.refname_to_id("refs/heads/main")?;
        let packs = self.repo.join("objects/pack");
        let mut sizes: Vec<(u64, PathBuf)> = std::fs::read_dir(&packs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pack"))
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p)))
            .collect();
        let dirty = head != self.base
            || sizes.len() > 1
            || std::fs::read_dir(self.repo.join("objects"))?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().len() == 2);
        if !dirty {
            return Ok(false);
        }
        repo.reference("refs/heads/main", self.base, true, "bench: reset")?;
        let base = self.base.to_string();
        git(&self.clone, &["reset", "-q", "--hard", &base])?;
        // `git prune` leaves packed objects alone: drop the packs runs wrote, all but the
        // largest (the base commit's, from `git repack` when the cache was built).
        sizes.sort();
        sizes.pop();
        for (_, pack) in sizes {
            for ext in ["idx", "pack", "rev", "bitmap"] {
                let _ = std::fs::remove_file(pack.with_extension(ext));
            }
        }
        for dir in [&self.repo, &self.clone] {
            git(dir, &["reflog", "expire", "--expire=all", "--all"])?;
            git(dir, &["prune", "--expire=now"])?;
        }
        std::fs::write(self.dir.join("pruned"), "")?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

pub(crate) fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p`th percentile (nearest rank).
pub(crate) fn percentile(times: &mut [Duration], p: usize) -> Duration {
    times.sort_unstable();
    let rank = (times.len() * p).div_ceil(100).max(1);
    times[rank - 1]
}

pub(crate) fn fmt(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 1_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// CPU time (user + system) of this process so far, in 10 ms ticks.
pub(crate) fn cpu_time() -> Duration {
    cpu_time_of("self")
}

/// CPU time (user + system) of process `pid` (or `self`) so far, in 10 ms ticks.
pub(crate) fn cpu_time_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (which may hold spaces): utime and stime are fields 14 and 15.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

pub(crate) fn progress(what: &str) {
    eprintln!("{} bench: {what}", env!("CARGO_CRATE_NAME"));
}

#[derive(Default)]
pub(crate) struct Report {
    rows: Vec<[String; 5]>,
    notes: Vec<String>,
}

impl Report {
    pub(crate) fn row(
        &mut self,
        part: &str,
        what: String,
        result: String,
        target: &str,
        met: Option<bool>,
    ) {
        let status = match met {
            Some(true) => "met",
            Some(false) => "**MISSED**",
            None => "",
        };
        self.rows
            .push([part.into(), what, result, target.into(), status.into()]);
    }

    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub(crate) fn print(&self) {
        let mut out = String::new();
        let _ = writeln!(out, "\n| Part | Measurement | Result | Target | Status |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let _ = writeln!(out);
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        print!("{out}");
    }
}
