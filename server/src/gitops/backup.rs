//! The repository in a backup: a Git bundle of every ref (branches, the `hexabase/*` review
//! branches, tags) written with `git bundle create --all` (libgit2 has no bundle API), and
//! put back into a fresh bare repository with `git fetch` from it.
//!
//! A bundle is taken while the server commits: Git writes objects before it moves a ref, so
//! every ref the bundle lists is complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a bundle holds: the ref `HEAD` points at, and the commit of every ref.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BundledRefs {
    /// The ref `HEAD` names (`refs/heads/main`).
    pub head: String,
    /// Every ref and the object it points at.
    pub refs: BTreeMap<String, String>,
}

/// The repository could not be bundled or restored.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The repository does not open.
    #[error("the repository {path} does not open")]
    Open {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: git2::Error,
    },
    /// `HEAD` names no branch.
    #[error("HEAD of {0} names no branch")]
    NoHead(PathBuf),
    /// `git` could not run.
    #[error("could not run git (is it installed?)")]
    Spawn(#[source] std::io::Error),
    /// A `git` command failed.
    #[error("git {command} failed: {stderr}")]
    Git {
        /// The command.
        command: String,
        /// What it said.
        stderr: String,
    },
    /// The restored repository's refs are not the bundle's.
    #[error("after the restore, {name} is {found}, not {expected}")]
    Mismatch {
        /// The ref.
        name: String,
        /// The commit the manifest names.
        expected: String,
        /// The commit found.
        found: String,
    },
    /// Restoring needs a fresh place for the repository.
    #[error("{0} exists and is not empty: restore only into a fresh data folder")]
    NotEmpty(PathBuf),
}

/// Writes every ref of the repository at `repo` into the bundle `out`; answers what it holds.
pub fn bundle(repo: &Path, out: &Path) -> Result<BundledRefs, BundleError> {
    let open = git2::Repository::open_bare(repo).map_err(|source| BundleError::Open {
        path: repo.to_owned(),
        source,
    })?;
    let head = open
        .find_reference("HEAD")
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_owned))
        .ok_or_else(|| BundleError::NoHead(repo.to_owned()))?;
    drop(open);
    let mut create = git(Some(repo));
    create
        .args(["bundle", "create", "--quiet"])
        .arg(out)
        .arg("--all");
    run("bundle create", create)?;
    let refs = list_heads(out)?;
    Ok(BundledRefs { head, refs })
}

/// The refs a bundle holds (not `HEAD`).
fn list_heads(bundle: &Path) -> Result<BTreeMap<String, String>, BundleError> {
    let mut list = git(None);
    list.args(["bundle", "list-heads"]).arg(bundle);
    let text = run("bundle list-heads", list)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, name)| name.starts_with("refs/"))
        .map(|(id, name)| (name.to_owned(), id.to_owned()))
        .collect())
}

/// Makes a bare repository at `repo` (which must not exist, or be an empty folder) holding
/// exactly the refs of `bundle`, `HEAD` naming `refs.head`; checks them against `refs`.
pub fn unbundle(bundle: &Path, repo: &Path, refs: &BundledRefs) -> Result<(), BundleError> {
    if repo.exists()
        && std::fs::read_dir(repo)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(BundleError::NotEmpty(repo.to_owned()));
    }
    let mut init = git(None);
    init.args(["init", "--quiet", "--bare"]).arg(repo);
    run("init", init)?;
    let mut verify_in = git(Some(repo));
    verify_in.args(["bundle", "verify", "--quiet"]).arg(bundle);
    run("bundle verify", verify_in)?;
    let mut fetch = git(Some(repo));
    fetch
        .args(["fetch", "--quiet", "--no-write-fetch-head"])
        .arg(bundle)
        .arg("refs/*:refs/*");
    run("fetch", fetch)?;
    let mut head = git(Some(repo));
    head.args(["symbolic-ref", "HEAD", &refs.head]);
    run("symbolic-ref", head)?;
    let open = git2::Repository::open_bare(repo).map_err(|source| BundleError::Open {
        path: repo.to_owned(),
        source,
    })?;
    for (name, expected) in &refs.refs {
        let found = open
            .refname_to_id(name)
            .map(|id| id.to_string())
            .unwrap_or_else(|_| "missing".to_owned());
        if &found != expected {
            return Err(BundleError::Mismatch {
                name: name.clone(),
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(())
}

/// `git`, in `repo` when given, reading no user or system configuration.
fn git(repo: Option<&Path>) -> Command {
    let mut command = Command::new("git");
    command
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0");
    if let Some(repo) = repo {
        command.arg("--git-dir").arg(repo);
    }
    command
}

fn run(what: &str, mut command: Command) -> Result<String, BundleError> {
    let out = command.output().map_err(BundleError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(BundleError::Git {
            command: what.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
