//! Everything that touches Git: reading intent at a commit, building trees in memory,
//! committing with compare-and-swap on the branch. Nothing else in the server uses git2.

pub mod audit;
pub mod backup;
pub mod change;
mod global;
pub mod history;
mod identity;
mod locks;
mod message;
pub mod objects;
mod pack;
pub mod refs;
pub mod remote;
pub mod requests;
pub mod revision;
mod rollup;
mod signing;
mod snapshot;
pub mod tree;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use compiler::{Diagnostic, Intent};
use git2::{ErrorCode, Tree};

/// Object ids and repository handles, named through `gitops` by the rest of the server,
/// which calls no libgit2 function of its own: every operation is a function of this module.
pub use git2::{Oid, Repository};
pub use global::bound_pack_mappings;
pub use identity::Identity;
pub use locks::PROCESS_LOCK;
use locks::process_lock;
pub use message::{CommitMessage, Trailers, sanitize_line};
pub use objects::{Edit, NewObjects};
use rollup::Maintenance;
pub use rollup::PACKS_BEFORE_ROLLUP;
pub use signing::Signing;
pub use snapshot::Snapshot;

// --- Failpoints (tests/crash.rs) ---------------------------------------------------------
// With the `failpoints` cargo feature, `failpoint!("name")` is a fail-rs failpoint that the
// FAILPOINTS environment variable arms (`FAILPOINTS='gitops-ref-updated=sleep(60000)'`, or
// `=panic`); without it the macro expands to nothing, so release builds carry none.

/// A named failpoint; nothing unless the crate is built with the `failpoints` feature.
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}
pub(crate) use failpoint;

/// The failpoints on the way of an action to the branch, in the order a commit passes them.
pub const FAILPOINTS: [&str; 5] = [
    // Engine::commit (and Engine::import: `import-tree-written`): blobs and trees written
    // (in memory for an action, loose and fsynced for an import).
    "apply-tree-written",
    // GitOps::write_commit: the commit object is written, nothing points at it yet.
    "gitops-commit-written",
    // GitOps::write_pack: an action's objects are on disk as one pack, fsynced.
    "gitops-pack-written",
    // GitOps::move_ref: just before the compare-and-swap of the reference.
    "gitops-before-ref-update",
    // GitOps::move_ref: the reference points at the new commit.
    "gitops-ref-updated",
];
// Also, not on the way to the branch: the push failpoints, `service::push::FAILPOINTS`.

/// Arms the failpoints from FAILPOINTS once per process. fail-rs wants a `FailScenario` held
/// by `main` for the life of the process; `main.rs` stays thin, so the first `GitOps::open`
/// sets it up and leaks it (it holds fail-rs' global scenario lock, hence exactly once).
#[cfg(feature = "failpoints")]
fn setup_failpoints() {
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| std::mem::forget(fail::FailScenario::setup()));
}

/// Git failed, or the repository is not what we expect.
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    /// A libgit2 call failed.
    #[error("git operation failed")]
    Git(#[source] git2::Error),
    /// The branch moved between reading it and updating it.
    #[error("branch {branch} moved while committing")]
    Moved {
        /// The branch.
        branch: String,
    },
    /// Signing a commit failed.
    #[error("failed to sign the commit: {reason}")]
    Signing {
        /// What the signing tool said.
        reason: String,
    },
    /// A file that must be UTF-8 text is not.
    #[error("{path} is not UTF-8 text")]
    NotText {
        /// Path in the repository.
        path: String,
    },
    /// Opening or preparing the repository failed.
    #[error("failed to open the repository at {path}")]
    Open {
        /// Repository path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: git2::Error,
    },
    /// Writing or rolling up a pack failed.
    #[error("failed to write a pack in {path}")]
    Pack {
        /// The pack folder.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// An object read from the repository is not what it should be.
    #[error("object {id} is corrupt: {reason}")]
    Corrupt {
        /// The object id.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A revision does not name a commit.
    #[error("revision {rev:?} does not name a commit")]
    Revision {
        /// The revision as given.
        rev: String,
        /// What failed.
        #[source]
        source: git2::Error,
    },
    /// Taking the process lock (`hexabase.lock`) or removing stale lock files failed.
    #[error("failed to lock the repository at {path}")]
    Lock {
        /// The lock file, or the stale lock file that could not be removed.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The git folder of `repo` (for a bare repository, the repository itself).
pub fn git_dir(repo: &Repository) -> &Path {
    repo.path()
}

/// A repository and the branch Hexabase writes.
pub struct GitOps {
    path: PathBuf,
    branch: String,
    /// The snapshots read or written last, newest last, to answer readers of a recent
    /// head at once and to follow the branch by diffs (see [`GitOps::snapshot`]).
    recent: Mutex<VecDeque<Arc<Snapshot>>>,
    /// Held while a snapshot is computed: one computation at a time, which every other
    /// caller asking for the same commit waits for and shares.
    computing: Mutex<()>,
    /// A shared advisory lock on `<gitdir>/hexabase.lock`, held while this value lives (and
    /// released by the kernel when the process dies, however it dies): see [`process_lock`].
    _process_lock: File,
    /// How commits are signed, if at all.
    signing: Option<Signing>,
    /// Handles kept between actions (see [`GitOps::cached_repo`]).
    handles: Mutex<Vec<Kept>>,
    /// Trees read from disk, parsed (see [`objects`]).
    trees: Arc<objects::TreeCache>,
    /// The thread that rolls packs up, started when first asked (see
    /// [`GitOps::request_roll_up`]).
    maintenance: Mutex<Option<Maintenance>>,
}

/// A repository handle kept for reuse, and how often it was used.
struct Kept {
    repo: Repository,
    uses: usize,
}

/// How many handles are kept, and how often one is used before it is let go: a long-lived
/// handle learns about every new pack (a lookup that misses rescans the folder) but never
/// forgets one that a roll-up removed.
const HANDLES_KEPT: usize = 16;
const HANDLE_USES: usize = 64;

/// How many recent snapshots are kept: a request that read the head just before a commit
/// still finds its snapshot, instead of deriving it again (and displacing the newer one).
/// They share all but the workspaces that differ between them.
const SNAPSHOTS_KEPT: usize = 8;

/// A repository handle from [`GitOps::cached_repo`]; it goes back to be reused when dropped.
pub struct CachedRepo<'a> {
    kept: Option<Kept>,
    pool: &'a Mutex<Vec<Kept>>,
}

impl std::ops::Deref for CachedRepo<'_> {
    type Target = Repository;

    fn deref(&self) -> &Repository {
        &self.kept.as_ref().expect("present until dropped").repo
    }
}

impl Drop for CachedRepo<'_> {
    fn drop(&mut self) {
        let Some(mut kept) = self.kept.take() else {
            return;
        };
        kept.uses += 1;
        if kept.uses < HANDLE_USES {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < HANDLES_KEPT {
                pool.push(kept);
            }
        }
    }
}

impl GitOps {
    /// Opens (creating it as a bare repository if missing) the repository at `path`, with
    /// durable writes: objects and refs are fsynced before a ref points at them. Lock files
    /// left by a killed Hexabase process are removed when no other one is alive.
    pub fn open(path: &Path, branch: &str) -> Result<Self, GitOpsError> {
        #[cfg(feature = "failpoints")]
        setup_failpoints();
        let open_err = |source| GitOpsError::Open {
            path: path.to_owned(),
            source,
        };
        let repo = match Repository::open(path) {
            Ok(repo) => repo,
            Err(e) if e.code() == ErrorCode::NotFound => {
                Repository::init_bare(path).map_err(open_err)?
            }
            Err(e) => return Err(open_err(e)),
        };
        // Before anything below takes a git lock (config.lock, HEAD.lock) that might be stale.
        let process_lock = process_lock(repo.path())?;
        let mut config = repo.config().map_err(open_err)?;
        // git fsyncs what it writes here (objects and references) with `core.fsync`; libgit2
        // does by its process-wide switch (`bound_pack_mappings`). `core.fsyncObjectFiles`,
        // which older versions wrote, makes git warn on every clone: it is removed.
        // Written only when needed: every write takes config.lock, and processes opening the
        // repository at the same moment would otherwise fail on each other's lock.
        if config.get_entry("core.fsyncObjectFiles").is_ok() {
            config.remove("core.fsyncObjectFiles").map_err(open_err)?;
        }
        if config.get_entry("core.fsync").is_err() {
            config
                .set_str("core.fsync", "committed")
                .map_err(open_err)?;
        }
        let head = format!("refs/heads/{branch}");
        // Likewise HEAD (HEAD.lock): only when it names another branch.
        let head_is_branch = repo
            .find_reference("HEAD")
            .ok()
            .is_some_and(|r| r.symbolic_target().ok().flatten() == Some(head.as_str()));
        if repo.is_bare() && !head_is_branch {
            repo.set_head(&head).map_err(open_err)?;
        }
        Ok(Self {
            path: path.to_owned(),
            branch: branch.to_owned(),
            recent: Mutex::new(VecDeque::new()),
            computing: Mutex::new(()),
            _process_lock: process_lock,
            signing: None,
            handles: Mutex::new(Vec::new()),
            trees: Arc::default(),
            maintenance: Mutex::new(None),
        })
    }

    /// The repository path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The full name of the branch (`refs/heads/main`).
    pub fn branch_ref(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }

    /// A handle for this thread; git2 handles are not shared between threads.
    pub fn repo(&self) -> Result<Repository, GitOpsError> {
        Repository::open(&self.path).map_err(|source| GitOpsError::Open {
            path: self.path.clone(),
            source,
        })
    }

    /// A handle for this thread, reused from earlier calls when one is free: a handle keeps
    /// the packs it opened (and their delta base caches), so the objects every action reads
    /// are not looked up afresh each time. Objects are immutable; references are read afresh
    /// on every lookup; a pack written since is found by the rescan libgit2 does when a
    /// lookup misses, and a pack removed since is skipped.
    pub fn cached_repo(&self) -> Result<CachedRepo<'_>, GitOpsError> {
        let kept = self.handles.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let kept = match kept {
            Some(kept) => kept,
            None => Kept {
                repo: self.repo()?,
                uses: 0,
            },
        };
        Ok(CachedRepo {
            kept: Some(kept),
            pool: &self.handles,
        })
    }

    /// Lets every kept handle go. libgit2 maps a pack file while any handle has it open, and
    /// what reading touched stays resident; after reading the whole intent (at start), this
    /// gives those pages back. Handles in use are kept.
    pub fn release_handles(&self) {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// A reader of `repo` through this repository's tree cache that also sees `layers`,
    /// objects not on disk yet (see [`objects::Reader`]).
    pub fn reader<'a>(
        &'a self,
        repo: &'a Repository,
        layers: Vec<&'a NewObjects>,
    ) -> objects::Reader<'a> {
        objects::Reader::new(repo, &self.trees, layers)
    }

    /// The tree cache, to share with readers of the same repository (see
    /// [`audit::AuditRepo::with_tree_cache`]).
    pub fn tree_cache(&self) -> Arc<objects::TreeCache> {
        Arc::clone(&self.trees)
    }

    /// Writes `objects` as one pack into `objects/pack`, each object stored whole (no delta
    /// search: an action writes a few dozen small objects). Durable when it returns: the
    /// pack and its index are fsynced before they are renamed into place, then the folder;
    /// a reference may point at them next. See [`GitOps::keep_trees`].
    pub fn write_pack(&self, repo: &Repository, objects: &NewObjects) -> Result<(), GitOpsError> {
        if objects.is_empty() {
            return Ok(());
        }
        let mut pack = pack::PackWriter::new();
        // Commits first, side by side, as in roll-ups (see `GitOps::roll_up_packs`).
        let (commits, rest): (Vec<_>, Vec<_>) = objects
            .iter()
            .partition(|(_, kind, _)| *kind == git2::ObjectType::Commit);
        for (id, kind, data) in commits.into_iter().chain(rest) {
            pack.add(id, kind, data)
                .map_err(|source| self.pack_error(source))?;
        }
        pack.finish(&repo.path().join("objects").join("pack"))
            .map_err(|source| self.pack_error(source))?;
        failpoint!("gitops-pack-written");
        Ok(())
    }

    /// Keeps the trees of `objects` (packed by [`GitOps::write_pack`]) that make up the tree
    /// `root` in the tree cache: the next change reads them.
    pub fn keep_trees(&self, objects: &NewObjects, root: Oid) {
        self.trees.insert_reachable(objects, root);
    }

    fn pack_error(&self, source: std::io::Error) -> GitOpsError {
        GitOpsError::Pack {
            path: self.path.join("objects").join("pack"),
            source,
        }
    }

    /// The branch head, `None` while the branch has no commit.
    pub fn head(&self, repo: &Repository) -> Result<Option<Oid>, GitOpsError> {
        match repo.refname_to_id(&self.branch_ref()) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitOpsError::Git(e)),
        }
    }

    /// Writes a commit of `tree` on `parent` and moves the branch to it, if the branch still
    /// points at `parent` (compare-and-swap; [`GitOpsError::Moved`] otherwise).
    pub fn commit(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        tree: Oid,
        author: &Identity,
        committer: &Identity,
        message: &str,
    ) -> Result<Oid, GitOpsError> {
        self.commit_ref(
            repo,
            &self.branch_ref(),
            parent,
            parent,
            tree,
            author,
            committer,
            message,
        )
    }

    /// Writes a commit of `tree` on `parent` and moves `refname` from `current` to it
    /// (compare-and-swap; `current: None` means the reference must not exist yet).
    #[allow(clippy::too_many_arguments)]
    pub fn commit_ref(
        &self,
        repo: &Repository,
        refname: &str,
        parent: Option<Oid>,
        current: Option<Oid>,
        tree: Oid,
        author: &Identity,
        committer: &Identity,
        message: &str,
    ) -> Result<Oid, GitOpsError> {
        let id = self.write_commit(repo, parent, tree, author, committer, message)?;
        let subject = message.lines().next().unwrap_or_default();
        self.move_ref(repo, refname, current, id, &format!("hexabase: {subject}"))?;
        Ok(id)
    }

    /// Writes a commit object of `tree` on `parent`, signed when signing is configured, as a
    /// loose object (fsynced); no reference moves. Committing in two steps lets something
    /// durable (the push journal) be written between the commit object and the branch move.
    pub fn write_commit(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        tree: Oid,
        author: &Identity,
        committer: &Identity,
        message: &str,
    ) -> Result<Oid, GitOpsError> {
        let mut out = NewObjects::default();
        let id = self.commit_object(parent, tree, author, committer, message, &mut out)?;
        out.write_loose(repo)?;
        Ok(id)
    }

    /// Makes the commit object of `tree` on `parent`, signed when signing is configured, into
    /// `out`; nothing is written. The author and committer are dated now.
    pub fn commit_object(
        &self,
        parent: Option<Oid>,
        tree: Oid,
        author: &Identity,
        committer: &Identity,
        message: &str,
        out: &mut NewObjects,
    ) -> Result<Oid, GitOpsError> {
        let author = author.signature()?;
        let committer = committer.signature()?;
        let content = objects::commit_content(tree, parent, &author, &committer, message);
        let id = match &self.signing {
            None => out.add_commit(&content),
            Some(signing) => {
                let signature = signing.sign(&content)?;
                out.add_commit(&objects::signed_commit_content(&content, &signature))
            }
        };
        failpoint!("gitops-commit-written");
        Ok(id)
    }

    /// Moves `refname` from `current` to `target` (compare-and-swap; `current: None` means
    /// the reference must not exist yet). [`GitOpsError::Moved`] when it was elsewhere.
    pub fn move_ref(
        &self,
        repo: &Repository,
        refname: &str,
        current: Option<Oid>,
        target: Oid,
        reflog: &str,
    ) -> Result<(), GitOpsError> {
        let moved = |e: git2::Error| {
            if matches!(
                e.code(),
                ErrorCode::Modified | ErrorCode::Locked | ErrorCode::Exists
            ) {
                GitOpsError::Moved {
                    branch: refname
                        .strip_prefix("refs/heads/")
                        .unwrap_or(refname)
                        .to_owned(),
                }
            } else {
                GitOpsError::Git(e)
            }
        };
        failpoint!("gitops-before-ref-update");
        match current {
            Some(current) => repo
                .reference_matching(refname, target, true, current, reflog)
                .map_err(moved)?,
            None => repo
                .reference(refname, target, false, reflog)
                .map_err(moved)?,
        };
        failpoint!("gitops-ref-updated");
        Ok(())
    }

    /// Signs every commit from now on (for Flux's `GitRepository.spec.verify`).
    pub fn with_signing(mut self, signing: Option<Signing>) -> Self {
        self.signing = signing;
        self
    }

    /// Paths of generated files under `prefixes` in `tree`, for finding stale files.
    pub fn files_under(
        repo: &Repository,
        tree: &Tree<'_>,
        prefix: &str,
        out: &mut BTreeSet<String>,
    ) -> Result<(), GitOpsError> {
        let entry = if prefix.is_empty() {
            None
        } else {
            match tree.get_path(Path::new(prefix)) {
                Ok(e) => Some(e),
                Err(e) if e.code() == ErrorCode::NotFound => return Ok(()),
                Err(e) => return Err(GitOpsError::Git(e)),
            }
        };
        match entry {
            Some(e) if e.kind() == Some(git2::ObjectType::Blob) => {
                out.insert(prefix.to_owned());
                Ok(())
            }
            Some(e) => {
                let sub = repo.find_tree(e.id()).map_err(GitOpsError::Git)?;
                walk(repo, &sub, prefix, out)
            }
            None => walk(repo, tree, "", out),
        }
    }

    /// Reads a text file at `path` in `tree`, `None` when absent.
    pub fn read_file(
        repo: &Repository,
        tree: &Tree<'_>,
        path: &str,
    ) -> Result<Option<String>, GitOpsError> {
        match tree.get_path(Path::new(path)) {
            Ok(e) => {
                let blob = repo.find_blob(e.id()).map_err(GitOpsError::Git)?;
                String::from_utf8(blob.content().to_vec())
                    .map(Some)
                    .map_err(|_| GitOpsError::NotText {
                        path: path.to_owned(),
                    })
            }
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitOpsError::Git(e)),
        }
    }
}

fn walk(
    repo: &Repository,
    tree: &Tree<'_>,
    prefix: &str,
    out: &mut BTreeSet<String>,
) -> Result<(), GitOpsError> {
    for entry in tree.iter() {
        let Ok(name) = entry.name() else { continue };
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id()).map_err(GitOpsError::Git)?;
                walk(repo, &sub, &path, out)?;
            }
            Some(git2::ObjectType::Blob) => {
                out.insert(path);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Identity;

    #[test]
    fn every_name_and_email_becomes_a_signature_that_keeps_the_author_line_whole() {
        let who = |name: &str, email: &str| Identity {
            name: name.into(),
            email: email.into(),
        };
        for name in ["'", "\"\"", "<>", ";", "'\"\\", " . ", ""] {
            let sig = who(name, "ana@example.com").signature().expect(name);
            assert_eq!(sig.name().ok(), Some("ana"), "{name:?}");
        }
        let sig = who("Eve\n<x>", "eve<victim@a.test>\r\n")
            .signature()
            .expect("sig");
        assert_eq!(sig.name().ok(), Some("Eve x"));
        assert_eq!(sig.email().ok(), Some("evevictim@a.test"));
        let sig = who("'", "'@'").signature().expect("sig");
        assert_eq!(
            (sig.name().ok(), sig.email().ok()),
            (Some("unnamed"), Some("@"))
        );
        let sig = who("Ana", "").signature().expect("sig");
        assert_eq!(sig.email().ok(), Some("unknown@invalid"));
    }
}
