//! Everything that touches Git: reading intent at a commit, building trees in memory,
//! committing with compare-and-swap on the branch. Nothing else in the server uses git2.

pub mod audit;
mod global;
pub mod history;
mod message;
pub mod objects;
mod pack;
pub mod refs;
pub mod remote;
pub mod requests;
pub mod revision;
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
pub use message::{CommitMessage, Trailers, sanitize_line};
pub use objects::{Edit, NewObjects};

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

/// A person or bot, as Git records them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
}

/// Whether Git trims `c` from the ends of a signature's name or email (libgit2's "crud").
fn is_crud(c: char) -> bool {
    c <= ' ' || matches!(c, '.' | ',' | ':' | ';' | '<' | '>' | '"' | '\\' | '\'')
}

impl Identity {
    /// This identity as a Git signature dated now. Any name or email becomes one Git takes
    /// and that keeps the author line whole: control characters and line breaks become
    /// spaces, `<` and `>` are dropped (and whitespace from the email), and a name with
    /// nothing left once Git trims its ends (`'`, `""`, `<>`, `;`) is written as the
    /// email's local part, or `unnamed`. The display form is never read back for identity
    /// (the `Hexabase-Actor-Id` trailer carries the user's id).
    pub fn signature(&self) -> Result<git2::Signature<'static>, GitOpsError> {
        let email: String = sanitize_line(&self.email, 254)
            .chars()
            .filter(|c| !matches!(c, '<' | '>') && !c.is_whitespace())
            .collect();
        let email = match email.trim_matches(is_crud) {
            "" => "unknown@invalid",
            email => email,
        };
        let name = sanitize_line(&self.name, 100).replace(['<', '>'], "");
        let name = match name.trim_matches(is_crud) {
            "" => match email.split('@').next().unwrap_or("").trim_matches(is_crud) {
                "" => "unnamed",
                local => local,
            },
            name => name,
        };
        git2::Signature::now(name, email).map_err(GitOpsError::Git)
    }
}

/// The intent at one commit, with the problems of its files.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The commit, `None` for an unborn branch.
    pub commit: Option<Oid>,
    /// The commit's root tree.
    pub tree: Option<Oid>,
    /// The `intent/` tree.
    pub intent_tree: Option<Oid>,
    /// The intent.
    pub intent: Intent,
    /// Problems per intent file (path relative to `intent/`); files without problems are absent.
    pub problems: BTreeMap<String, Vec<Diagnostic>>,
}

impl Snapshot {
    /// Every problem in the intent.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.problems.values().flatten()
    }
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

/// A thread that rolls packs up in the background, off every request's way: a roll-up that
/// merges large packs reads, writes and fsyncs all of them.
struct Maintenance {
    shared: Arc<MaintenanceState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct MaintenanceState {
    state: Mutex<MaintenanceFlags>,
    /// Wakes the thread.
    wake: std::sync::Condvar,
    /// Signalled when the thread has nothing to do.
    idle: std::sync::Condvar,
}

#[derive(Default)]
struct MaintenanceFlags {
    requested: bool,
    busy: bool,
    stop: bool,
}

impl Drop for Maintenance {
    /// Lets a roll-up under way finish (a process exiting is then never in the middle of
    /// one), then ends the thread.
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

/// How commits are signed: the way `git` itself does it, by the standard tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// An SSH key (`ssh-keygen -Y sign -n git`).
    Ssh {
        /// The private key file.
        key: PathBuf,
    },
    /// An OpenPGP key in a GnuPG home (`gpg --detach-sign --armor`).
    OpenPgp {
        /// The key id or fingerprint.
        key_id: String,
        /// The GnuPG home; the default one when `None`.
        home: Option<PathBuf>,
    },
}

impl Signing {
    /// An armored detached signature of `content`.
    fn sign(&self, content: &[u8]) -> Result<String, GitOpsError> {
        let mut command = match self {
            Self::Ssh { key } => {
                let mut c = std::process::Command::new("ssh-keygen");
                c.args(["-Y", "sign", "-n", "git", "-f"]).arg(key);
                c
            }
            Self::OpenPgp { key_id, home } => {
                let mut c = std::process::Command::new("gpg");
                if let Some(home) = home {
                    c.arg("--homedir").arg(home);
                }
                c.args([
                    "--batch",
                    "--yes",
                    "--detach-sign",
                    "--armor",
                    "--local-user",
                    key_id,
                ]);
                c
            }
        };
        let failed = |reason: String| GitOpsError::Signing { reason };
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run the signing tool: {e}")))?;
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(content)
                .map_err(|e| failed(format!("cannot feed the signing tool: {e}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| failed(format!("the signing tool failed: {e}")))?;
        if !output.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ));
        }
        String::from_utf8(output.stdout).map_err(|_| failed("the signature is not text".into()))
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
        // libgit2 fsyncs loose objects and refs when this is set (git itself reads it too).
        // Written only when missing: every write takes config.lock, and processes opening the
        // repository at the same moment would otherwise fail on each other's lock.
        if !config.get_bool("core.fsyncObjectFiles").unwrap_or(false) {
            config
                .set_bool("core.fsyncObjectFiles", true)
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

    /// Asks the maintenance thread to roll packs up (see [`GitOps::roll_up_packs`]) and
    /// returns at once; the thread is started on first use. Requests made while one waits
    /// are one request. A roll-up that fails leaves more packs, and the next one tries again.
    pub fn request_roll_up(&self) {
        let mut maintenance = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        if maintenance.is_none() {
            let shared = Arc::new(MaintenanceState::default());
            let thread = std::thread::Builder::new()
                .name("hb-roll-up".to_owned())
                .spawn({
                    let (shared, path) = (Arc::clone(&shared), self.path.clone());
                    move || maintain(&shared, &path)
                })
                .ok();
            *maintenance = Some(Maintenance { shared, thread });
        }
        let Some(maintenance) = maintenance.as_ref() else {
            return;
        };
        maintenance
            .shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requested = true;
        maintenance.shared.wake.notify_one();
    }

    /// Waits until the maintenance thread has nothing left to do (for tests and tools that
    /// look at the packs).
    pub fn wait_for_maintenance(&self) {
        let maintenance = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        let Some(maintenance) = maintenance.as_ref() else {
            return;
        };
        let shared = &maintenance.shared;
        let mut flags = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        while (flags.requested || flags.busy) && maintenance.thread.is_some() {
            flags = shared.idle.wait(flags).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Rolls small packs up into one when there are more than [`PACKS_BEFORE_ROLLUP`], so
    /// that a pack per commit batch does not slow reads down over time (every object lookup
    /// that misses the last pack used searches the others' indexes). Packs are taken
    /// smallest first while each is smaller than twice the ones taken so far, as
    /// `git repack --geometric=2` does: the large base pack is left alone, and pack sizes
    /// stay a geometric progression, so there are O(log n) packs and each object is
    /// rewritten O(log n) times. Whole objects are copied as they are (no inflating, no
    /// delta search); deltas (from `git repack` or a fetch) are read and stored whole. The
    /// new pack is fsynced before the old ones are removed; readers that still map an old
    /// one keep it until they let go (POSIX unlink), and libgit2 rescans the folder when a
    /// lookup misses. Returns how many packs were merged.
    pub fn roll_up_packs(&self, repo: &Repository) -> Result<usize, GitOpsError> {
        roll_up_packs(repo)
    }

    /// The branch head, `None` while the branch has no commit.
    pub fn head(&self, repo: &Repository) -> Result<Option<Oid>, GitOpsError> {
        match repo.refname_to_id(&self.branch_ref()) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitOpsError::Git(e)),
        }
    }

    /// The intent at `commit`: one of the recent snapshots, or derived from the newest of
    /// them by a tree diff. Single-flight: while one caller derives a snapshot, the others
    /// wait for it and share the result rather than diffing the same trees again.
    pub fn snapshot(
        &self,
        repo: &Repository,
        commit: Option<Oid>,
    ) -> Result<Arc<Snapshot>, GitOpsError> {
        if let Some(found) = self.recent_snapshot(commit) {
            return Ok(found);
        }
        let _computing = self.computing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = self.recent_snapshot(commit) {
            return Ok(found);
        }
        let last = self.recent_lock().back().cloned();
        let next = Arc::new(derive(&self.reader(repo, Vec::new()), last, commit)?);
        self.remember(&next);
        Ok(next)
    }

    /// The snapshot of the branch head when it is one of the recent ones (`None` when it
    /// would have to be derived): a read of the reference and a lookup, cheap enough for an
    /// async task, so readers answer without waiting for a blocking thread.
    pub fn known_head_snapshot(&self) -> Result<Option<Arc<Snapshot>>, GitOpsError> {
        let repo = self.cached_repo()?;
        let head = self.head(&repo)?;
        Ok(self.recent_snapshot(head))
    }

    fn recent_lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Snapshot>>> {
        self.recent
            .lock()
            .expect("snapshot lock is never poisoned: nothing panics under it")
    }

    fn recent_snapshot(&self, commit: Option<Oid>) -> Option<Arc<Snapshot>> {
        self.recent_lock()
            .iter()
            .rev()
            .find(|s| s.commit == commit)
            .cloned()
    }

    /// Makes `snapshot` the newest recent one, the base for the next diff.
    pub fn remember(&self, snapshot: &Arc<Snapshot>) {
        let mut recent = self.recent_lock();
        recent.retain(|s| s.commit != snapshot.commit);
        recent.push_back(Arc::clone(snapshot));
        while recent.len() > SNAPSHOTS_KEPT {
            recent.pop_front();
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

/// How many packs may pile up before [`GitOps::roll_up_packs`] merges the small ones.
pub const PACKS_BEFORE_ROLLUP: usize = 24;

/// The object count of a version 2 pack index (`.idx`): after the 8-byte header comes a
/// 256-entry fan-out table whose last entry is the count.
fn pack_index_count(path: &Path) -> std::io::Result<usize> {
    use std::io::Read as _;
    let mut head = [0u8; 8 + 256 * 4];
    File::open(path)?.read_exact(&mut head)?;
    if head[..8] != *b"\xfftOc\0\0\0\x02" {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a v2 pack index",
        ));
    }
    let last: [u8; 4] = head[8 + 255 * 4..].try_into().expect("four bytes");
    Ok(u32::from_be_bytes(last) as usize)
}

// --- Stale lock recovery ------------------------------------------------------------------
//
// Git guards each ref, HEAD, packed-refs and config with a `<file>.lock` created with O_EXCL
// and renamed over the file when the update is complete. A process killed between the two
// leaves the `.lock` behind, and every later update of that ref fails with "locked" until
// someone deletes it. Deleting one is only safe when its owner is dead, which a lock file
// cannot tell. So every Hexabase process holds a *shared* advisory lock (flock) on
// `<gitdir>/hexabase.lock` from before its first write until it exits; the kernel drops it
// when the process dies, also on SIGKILL. If a process opening the repository gets the lock
// *exclusively*, no other Hexabase process has the repository open, so no live Hexabase
// writer owns any `.lock` file: they are all stale, and are removed before the lock is
// downgraded to shared (release, then wait for shared; a process that slips in between
// takes the exclusive lock itself, and this one waits for it to finish its own clean-up).
// A process that cannot get it exclusively removes nothing: the owner may be alive.
//
// What this assumes: the repository is Hexabase's own (the server's clone, or the bare
// repository of `hb`); a person or tool running git in it while no Hexabase process is
// alive does not take our lock, and a lock file of theirs could be removed under them. And
// flock must work on the file system (local disks do; some network file systems do not).
// `hexabase.lock` itself is never removed: a process could hold a lock on an unlinked file.

/// The file every Hexabase process locks while it has the repository open.
pub const PROCESS_LOCK: &str = "hexabase.lock";

/// Takes the shared process lock of the repository at `gitdir`, first removing stale lock
/// files if this is the only Hexabase process there.
fn process_lock(gitdir: &Path) -> Result<File, GitOpsError> {
    let path = gitdir.join(PROCESS_LOCK);
    let lock_err = |source| GitOpsError::Lock {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => {
            remove_stale_locks(gitdir)?;
            file.unlock().map_err(lock_err)?;
        }
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
    }
    file.lock_shared().map_err(lock_err)?;
    Ok(file)
}

/// Removes `refs/**/*.lock`, `packed-refs.lock`, `HEAD.lock`, `config.lock` and what a pack
/// write leaves when killed. Only call with the process lock held exclusively.
fn remove_stale_locks(gitdir: &Path) -> Result<(), GitOpsError> {
    let mut stale: Vec<PathBuf> = ["packed-refs.lock", "HEAD.lock", "config.lock"]
        .iter()
        .map(|name| gitdir.join(name))
        .collect();
    let mut dirs = vec![gitdir.join("refs")];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(GitOpsError::Lock { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| GitOpsError::Lock {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                stale.push(path);
            }
        }
    }
    // A pack write killed half way leaves its temporaries (`pack_hb_*` from ours, and
    // `pack_XXXXXX` and `pack-<hash>.idx.lock` from libgit2's); no reference can need them.
    let packs = gitdir.join("objects").join("pack");
    if let Ok(entries) = std::fs::read_dir(&packs) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("pack_") || name.ends_with(".lock") {
                stale.push(entry.path());
            }
        }
    }
    for path in stale {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(GitOpsError::Lock { path, source }),
        }
    }
    Ok(())
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

/// The intent at `commit`, derived from `last` (when it has an intent tree, or is of an
/// unborn branch) by a diff of the two `intent/` trees, read through `reader`.
fn derive(
    reader: &objects::Reader<'_>,
    last: Option<Arc<Snapshot>>,
    commit: Option<Oid>,
) -> Result<Snapshot, GitOpsError> {
    let tree = commit
        .map(|c| reader.repo().find_commit(c).map(|c| c.tree_id()))
        .transpose()
        .map_err(GitOpsError::Git)?;
    let intent_tree = match tree {
        Some(t) => reader
            .entry(t, "intent")?
            .filter(objects::TreeEntry::is_tree)
            .map(|e| e.id),
        None => None,
    };
    let base = last
        .filter(|l| l.intent_tree.is_some() || l.commit.is_none())
        .unwrap_or_default();
    let mut next = Snapshot {
        commit,
        tree,
        intent_tree,
        intent: base.intent.clone(),
        problems: base.problems.clone(),
    };
    if base.intent_tree != intent_tree {
        reader.diff(base.intent_tree, intent_tree, &mut |path, _, after| {
            let problems = match after {
                // A symbolic link (to a file or a folder) is refused, never followed.
                Some(entry) if entry.mode & 0o170_000 == 0o120_000 => next.intent.set_link(path),
                Some(entry) => {
                    let text = String::from_utf8_lossy(&reader.blob(entry.id)?).into_owned();
                    next.intent.set_file(path, Some(&text))
                }
                None => next.intent.set_file(path, None),
            };
            if problems.is_empty() {
                next.problems.remove(path);
            } else {
                next.problems.insert(path.to_owned(), problems);
            }
            Ok(())
        })?;
    }
    Ok(next)
}

/// The maintenance thread: a roll-up per request, until asked to stop.
fn maintain(shared: &MaintenanceState, path: &Path) {
    loop {
        {
            let mut flags = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !flags.requested && !flags.stop {
                flags = shared.wake.wait(flags).unwrap_or_else(|e| e.into_inner());
            }
            if !flags.requested {
                return;
            }
            flags.requested = false;
            flags.busy = true;
        }
        if let Ok(repo) = Repository::open(path) {
            let _ = roll_up_packs(&repo);
        }
        shared.state.lock().unwrap_or_else(|e| e.into_inner()).busy = false;
        shared.idle.notify_all();
    }
}

/// See [`GitOps::roll_up_packs`].
fn roll_up_packs(repo: &Repository) -> Result<usize, GitOpsError> {
    let dir = repo.path().join("objects").join("pack");
    let io = |source| GitOpsError::Pack {
        path: dir.clone(),
        source,
    };
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "idx")
            && path.with_extension("pack").exists()
            && !path.with_extension("keep").exists()
        {
            indexes.push(path);
        }
    }
    if indexes.len() <= PACKS_BEFORE_ROLLUP {
        return Ok(0);
    }
    // A pack whose index cannot be read is left alone.
    let mut packs: Vec<(usize, PathBuf)> = indexes
        .into_iter()
        .filter_map(|path| Some((pack_index_count(&path).ok()?, path)))
        .collect();
    if packs.len() <= PACKS_BEFORE_ROLLUP {
        return Ok(0);
    }
    packs.sort();
    let mut taken = 0;
    let mut objects = 0;
    for (n, _) in &packs {
        if taken >= 2 && *n >= 2 * objects {
            break;
        }
        taken += 1;
        objects += n;
    }
    if taken < 2 {
        return Ok(0);
    }
    let odb = repo.odb().map_err(GitOpsError::Git)?;
    // Streamed: one entry in memory at a time, however large the packs.
    let mut indexes = Vec::with_capacity(taken);
    let mut unique = BTreeSet::new();
    for (_, idx) in &packs[..taken] {
        let entries = pack::read_index(idx).map_err(io)?;
        unique.extend(entries.iter().map(|e| e.id));
        indexes.push((idx, entries));
    }
    let count = u32::try_from(unique.len()).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "too many objects to roll up",
        ))
    })?;
    let mut writer = pack::PackWriter::to_file(&dir, count).map_err(io)?;
    // Commits first, then the rest: whoever walks history (the index sync, the audit, a
    // reference update checking its target) then reads the first pages of the pack
    // instead of a page every few dozen kilobytes all through it (and the kernel maps
    // the pages around each one read).
    for commits in [true, false] {
        for (idx, entries) in &indexes {
            use std::os::unix::fs::FileExt as _;
            let file = File::open(idx.with_extension("pack")).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            let mut raw = Vec::new();
            for (entry, (start, stop)) in entries
                .iter()
                .zip(pack::entry_spans(len, entries).map_err(io)?)
            {
                if writer.contains(entry.id) {
                    continue;
                }
                if commits {
                    let mut first = [0u8];
                    file.read_exact_at(&mut first, start).map_err(io)?;
                    if !pack::is_commit(&first) {
                        continue;
                    }
                }
                let size = usize::try_from(stop - start).map_err(|_| {
                    io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "pack entry too large",
                    ))
                })?;
                raw.resize(size, 0);
                file.read_exact_at(&mut raw, start).map_err(io)?;
                let mut crc = flate2::Crc::new();
                crc.update(&raw);
                if crc.sum() != entry.crc {
                    return Err(io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} does not match its index", idx.display()),
                    )));
                }
                if pack::is_whole(&raw) {
                    writer.add_raw(entry.id, &raw, entry.crc).map_err(io)?;
                } else {
                    let object = odb.read(entry.id).map_err(GitOpsError::Git)?;
                    writer
                        .add(entry.id, object.kind(), object.data())
                        .map_err(io)?;
                }
            }
        }
    }
    debug_assert!(writer.len() <= objects);
    let new = format!("{}.idx", writer.finish(&dir).map_err(io)?);
    for (_, idx) in &packs[..taken] {
        // Same objects, same name: the new pack may have replaced this one.
        if idx.file_name().and_then(|n| n.to_str()) == Some(new.as_str()) {
            continue;
        }
        for path in [idx.clone(), idx.with_extension("pack")] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
    }
    Ok(taken)
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
