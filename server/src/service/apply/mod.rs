//! Apply = read intent at the branch head → apply the action → compile the affected
//! workspaces → build the new tree from the parent's → commit → compare-and-swap the branch.
//! A moved branch means doing it again on the new head, never a text merge.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

pub use super::action::ActionMeta;
use super::action::{Action, ActionError};
use super::journal::JournalError;
use crate::gitops::objects::{Reader, blob_id};
use crate::gitops::requests::RequestIndex;
use crate::gitops::{
    CommitMessage, Edit, GitOps, GitOpsError, Identity, NewObjects, Oid, Repository, Snapshot,
    Trailers, history, refs,
};
use crate::timing;
use compiler::{Catalog, Compiler, Diagnostic};

mod batch;
mod import;
mod platform;
mod prepare;
mod review;
mod written;

pub use review::{Proposal, review_branch};

/// How often a commit is retried when other processes keep moving the branch.
const MAX_ATTEMPTS: usize = 64;

/// What an applied action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One new commit on the branch.
    Committed {
        /// The commit id.
        commit: String,
        /// Rendered files that had been edited by hand and were overwritten (drift).
        drift: Vec<String>,
    },
    /// The action changed nothing, so there is no commit.
    Unchanged,
    /// The request id is already on the branch (a retry): nothing new was committed, and
    /// this is the commit the request made.
    AlreadyApplied {
        /// The request's commit.
        commit: String,
    },
}

/// Why an action was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The action does not fit the current intent.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// The resulting intent has problems; nothing was committed.
    #[error("the change leaves the intent invalid")]
    Invalid(Vec<Diagnostic>),
    /// Git failed.
    #[error("failed to commit the change")]
    GitOps(#[from] GitOpsError),
    /// The compiler failed (a bug, not bad input).
    #[error("failed to compile the change")]
    Compiler(#[from] compiler::Error),
    /// A review or journal file could not be written or read.
    #[error("failed to access {0}")]
    Journal(String, #[source] std::io::Error),
    /// Others kept moving the branch.
    #[error("the branch kept moving; gave up after {0} attempts")]
    Contention(usize),
    /// Committing the batch this action was queued in failed as a whole (nothing of the
    /// batch landed); the batch's error, shared by every action in it, is the source.
    #[error("failed to commit the batch of changes this one was in")]
    Batch(#[source] Arc<ApplyError>),
    /// The request id is on the branch already, made by a different request (another
    /// method, path or body): the id was reused, and nothing was committed.
    #[error("the request id was used before for a different request")]
    KeyReused,
}

impl From<JournalError> for ApplyError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::Access { path, source } => {
                Self::Journal(path.display().to_string(), source)
            }
            JournalError::Corrupt { path, source } => {
                Self::Journal(path.display().to_string(), std::io::Error::other(source))
            }
        }
    }
}

/// The commit engine for one repository and branch.
pub struct Engine {
    gitops: GitOps,
    compiler: Compiler,
    bot: Identity,
    /// Serializes the commit step inside this process; compiles run in parallel.
    commit_lock: Mutex<()>,
    /// Actions prepared and waiting for the commit step. A thread that finds no batch being
    /// committed takes all of them and commits them as a chain (under the commit lock), each
    /// its own commit, with one pack and one branch move for the lot (group commit).
    queue: Mutex<Queue>,
    /// Signalled when a batch is done: its threads return without taking the commit lock.
    batch_done: Condvar,
    /// Workspace folders (`tenants/<c>/<org>/<ws>`) as this engine last wrote them: a folder
    /// still at that tree id has not been edited by hand since.
    written: Mutex<BTreeMap<String, Oid>>,
    /// The last commits this engine put on the branch, oldest first, with what each changed.
    /// A change prepared on an older head is reused on a newer one when only these commits
    /// lie between and none of them touched what the change was computed from.
    landed: Mutex<VecDeque<Landed>>,
    /// What workspace folders were rendered from: a folder's tree id to the fingerprint of
    /// the compiler's inputs ([`compiler::WorkspaceOutput::fingerprint`]), loaded on first
    /// use from `<gitdir>/hexabase/rendered` (see [`Engine::record_rendered`]).
    rendered: Mutex<Option<HashMap<Oid, String>>>,
    /// The request ids on the branch, for answering retries with their first commit.
    requests: RequestIndex,
}

/// Actions waiting for the commit step, and whether a thread is committing a batch.
#[derive(Default)]
struct Queue {
    jobs: Vec<Arc<Job>>,
    committing: bool,
}

/// How many of its own commits the engine remembers for reusing prepared changes.
const LANDED_KEPT: usize = 256;

/// One action on its way to the commit step.
struct Job {
    meta: ActionMeta,
    action: Action,
    /// Computed outside the lock, against the head of the moment.
    prepared: Mutex<Option<Prepared>>,
    /// Set by the thread that committed it.
    outcome: Mutex<Option<Result<Outcome, ApplyError>>>,
}

/// A commit this engine made: its parent, and what it changed.
#[derive(Debug, Clone)]
struct Landed {
    commit: Oid,
    parent: Option<Oid>,
    tree: Oid,
    footprint: Footprint,
}

/// What a change reads and writes, coarsely: the workspaces it renders, and whether it
/// touches anything beyond their projects (the platform, an organization, a workspace file),
/// which other workspaces' renders or shared index files may depend on.
#[derive(Debug, Clone, Default)]
struct Footprint {
    structural: bool,
    workspaces: BTreeSet<(String, String)>,
}

impl Footprint {
    fn of(
        files: &BTreeMap<String, Option<String>>,
        workspaces: &BTreeSet<(String, String)>,
    ) -> Self {
        let project_file = |path: &str| {
            matches!(
                path.split('/').collect::<Vec<_>>().as_slice(),
                [_, _, "projects", file] if file.ends_with(".yaml")
            )
        };
        Self {
            structural: files.keys().any(|p| !project_file(p)),
            workspaces: workspaces.clone(),
        }
    }

    /// True when a change with this footprint, computed before `other` landed, could come
    /// out differently after it.
    fn conflicts(&self, other: &Self) -> bool {
        self.structural || other.structural || !self.workspaces.is_disjoint(&other.workspaces)
    }
}

/// A change computed against one parent, ready to commit.
struct Prepared {
    parent: Option<Oid>,
    /// The intent after the change; its `tree` is the parent's.
    snapshot: Snapshot,
    /// The action's intent files (relative to `intent/`; `None` deletes), to re-apply them
    /// on another parent.
    files: BTreeMap<String, Option<String>>,
    edits: BTreeMap<String, Edit>,
    /// The workspaces rendered again.
    workspaces: BTreeSet<(String, String)>,
    /// Hand-edited rendered files this change overwrites.
    drift: Vec<String>,
    /// The folders rendered (`tenants/<cluster>/<org>/<ws>`) and their fingerprints.
    rendered: Vec<(String, String)>,
    /// The new root tree on `parent`, built outside the commit lock; `None` when the
    /// change leaves the tree as it is.
    tree: Option<Oid>,
    /// The objects building `tree` made, in memory until the batch packs them.
    objects: NewObjects,
}

impl Engine {
    /// An engine writing `gitops`' branch as `bot`.
    pub fn new(gitops: GitOps, bot: Identity) -> Result<Self, compiler::Error> {
        Ok(Self {
            gitops,
            compiler: Compiler::new(&Catalog::builtin())?,
            bot,
            commit_lock: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            batch_done: Condvar::new(),
            written: Mutex::new(BTreeMap::new()),
            landed: Mutex::new(VecDeque::new()),
            rendered: Mutex::new(None),
            requests: RequestIndex::default(),
        })
    }

    /// The repository.
    pub fn gitops(&self) -> &GitOps {
        &self.gitops
    }

    /// The intent at the branch head (cached by commit: cheap when the head has not moved).
    /// Reads answer from here, never from a cache Git could contradict.
    pub fn head_snapshot(&self) -> Result<Arc<crate::gitops::Snapshot>, GitOpsError> {
        let repo = self.gitops.cached_repo()?;
        let head = self.gitops.head(&repo)?;
        self.gitops.snapshot(&repo, head)
    }
}

/// The tree `edits` make of the tree `base` (an empty tree when nothing is left), read
/// through `reader`; its new objects go to `out`.
fn build_tree(
    reader: &Reader<'_>,
    base: Option<Oid>,
    edits: &BTreeMap<String, Edit>,
    out: &mut NewObjects,
) -> Result<Oid, GitOpsError> {
    match reader.build(base, edits, out)? {
        Some(tree) => Ok(tree),
        None => Ok(out.add_tree(crate::gitops::objects::Tree::default())),
    }
}

/// Makes `snapshot` the one at `commit`, whose tree is `tree`.
fn land(snapshot: &mut Snapshot, reader: &Reader<'_>, commit: Oid, tree: Oid) {
    snapshot.commit = Some(commit);
    snapshot.tree = Some(tree);
    snapshot.intent_tree = reader
        .entry(tree, "intent")
        .ok()
        .flatten()
        .filter(|e| e.is_tree())
        .map(|e| e.id);
}

/// The folders `output` rendered, with the fingerprints of what they were rendered from.
fn rendered_folders(output: &compiler::Output) -> Vec<(String, String)> {
    output
        .workspaces
        .values()
        .filter(|w| w.rendered && !w.root.is_empty())
        .map(|w| (w.root.clone(), w.fingerprint.clone()))
        .collect()
}

/// `Ok` when a request id found on the branch with digest `found` may answer a request with
/// digest `asked` as a retry: equal digests, or a side without one (commits made before
/// digests were kept, or by the CLI, which sends none).
fn same_request(found: Option<&str>, asked: Option<&str>) -> Result<(), ApplyError> {
    match (found, asked) {
        (Some(found), Some(asked)) if found != asked => Err(ApplyError::KeyReused),
        _ => Ok(()),
    }
}

/// Locks `mutex`; nothing panics while holding the engine's locks.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("the engine's locks are never poisoned: nothing panics under them")
}

/// True when the edits already decide `path` (written, or under a replaced folder).
fn output_owns(edits: &BTreeMap<String, Edit>, path: &str) -> bool {
    edits.contains_key(path)
        || edits.iter().any(|(p, e)| {
            matches!(e, Edit::Remove)
                && path.starts_with(p.as_str())
                && path.as_bytes().get(p.len()) == Some(&b'/')
        })
}

/// The commit message of an action.
fn message(meta: &ActionMeta, action: &Action) -> CommitMessage {
    let (org, ws) = action.scope();
    CommitMessage {
        subject: action.subject(),
        body: None,
        trailers: Trailers {
            actor: format!("{} <{}>", meta.actor.name, meta.actor.email),
            actor_id: meta.actor_id.clone(),
            action: action.kind().to_owned(),
            org: Some(org.to_owned()),
            workspace: ws.map(str::to_owned),
            request: meta.request_id.clone(),
            digest: meta.digest.clone(),
            compiler: compiler::VERSION.to_owned(),
        },
    }
}
