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

/// An action proposed for review on its own branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The review branch, `hexabase/<request-id>`.
    pub branch: String,
    /// The commit on it.
    pub commit: String,
    /// The request was proposed and merged before (a retry): `commit` is on the branch, and
    /// the review branch is gone.
    pub merged: bool,
}

/// What a review branch was made from, kept so it can be re-applied onto a newer head.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ReviewRecord {
    meta: ActionMeta,
    action: Action,
}

/// The review branch for a request id; `None` when the id cannot name a branch.
pub fn review_branch(request_id: &str) -> Option<String> {
    let ok = !request_id.is_empty()
        && request_id.len() <= 100
        && request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !request_id.starts_with('.')
        && !request_id.contains("..")
        && !request_id.ends_with(".lock");
    let branch = format!("hexabase/{request_id}");
    (ok && refs::is_valid_branch(&branch)).then_some(branch)
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

    /// Applies `action` as one commit on the branch. A request id already on the branch
    /// (a retry) makes no commit: the answer is [`Outcome::AlreadyApplied`] with its commit.
    ///
    /// The change is computed outside the commit lock, so concurrent actions compile in
    /// parallel. It then joins the queue; a thread that finds no batch under way commits
    /// everything queued, each action its own commit, chained, with one pack write and one
    /// compare-and-swap of the branch. A change computed on an older head is reused when
    /// only this engine's commits to other workspaces came in between; otherwise it is
    /// computed again on the new head (re-applying the action, never merging text).
    pub fn apply(&self, meta: &ActionMeta, action: &Action) -> Result<Outcome, ApplyError> {
        let prepared = {
            let _t = timing::span("apply.prepare");
            let repo = self.gitops.cached_repo()?;
            // A retry is answered before its action runs: the action would likely no
            // longer apply. The batch checks again under the commit lock.
            let head = self.gitops.head(&repo)?;
            if let Some(done) = self.already_applied(&repo, head, meta)? {
                return Ok(done);
            }
            match self.prepare_on(&repo, head, action) {
                Ok(prepared) => prepared,
                Err(e) => return self.unless_applied(&repo, meta, e),
            }
        };
        let job = Arc::new(Job {
            meta: meta.clone(),
            action: action.clone(),
            prepared: Mutex::new(Some(prepared)),
            outcome: Mutex::new(None),
        });
        // Leader and followers: when no batch is being committed, this thread commits
        // everything queued; otherwise it waits for that batch to end, and returns if its
        // job was in it. Outcomes are set before the batch ends (under the queue lock), so
        // a follower never waits for a lock only to learn that it is done.
        let waiting = timing::span("apply.wait_for_commit");
        let mut queue = lock(&self.queue);
        queue.jobs.push(Arc::clone(&job));
        let mut committed = false;
        while lock(&job.outcome).is_none() {
            if queue.committing {
                queue = self
                    .batch_done
                    .wait(queue)
                    .expect("the engine's locks are never poisoned: nothing panics under them");
                continue;
            }
            queue.committing = true;
            let batch = std::mem::take(&mut queue.jobs);
            drop(queue);
            {
                let _guard = lock(&self.commit_lock);
                self.commit_batch(&batch);
            }
            committed = true;
            queue = lock(&self.queue);
            queue.committing = false;
            self.batch_done.notify_all();
        }
        drop(queue);
        drop(waiting);
        if committed {
            // On the maintenance thread: never on an answer's way.
            self.gitops.request_roll_up();
        }
        lock(&job.outcome)
            .take()
            .expect("a job is done once its batch is")
    }

    /// [`Engine::apply`] with the commit lock already held, on the branch's current head.
    fn apply_locked(&self, meta: &ActionMeta, action: &Action) -> Result<Outcome, ApplyError> {
        let prepared = self.prepare(&*self.gitops.cached_repo()?, action)?;
        let job = Arc::new(Job {
            meta: meta.clone(),
            action: action.clone(),
            prepared: Mutex::new(Some(prepared)),
            outcome: Mutex::new(None),
        });
        self.commit_batch(std::slice::from_ref(&job));
        lock(&job.outcome)
            .take()
            .expect("a job is done once its batch is")
    }

    /// Commits `jobs` in order, with the commit lock held, and sets each one's outcome.
    fn commit_batch(&self, jobs: &[Arc<Job>]) {
        let _t = timing::span("batch");
        let outcomes = self
            .gitops
            .cached_repo()
            .map_err(ApplyError::from)
            .and_then(|repo| self.run_batch(&repo, jobs));
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in jobs.iter().zip(outcomes) {
                    *lock(&job.outcome) = Some(outcome);
                }
            }
            Err(e) => {
                // Nothing of the batch landed. Every job fails with the batch's error as
                // the source of its own.
                let e = Arc::new(e);
                for job in jobs {
                    *lock(&job.outcome) = Some(Err(ApplyError::Batch(Arc::clone(&e))));
                }
            }
        }
    }

    /// Commits `jobs` as a chain on the branch head and moves the branch once; the outcome
    /// of each, or an error when nothing landed.
    fn run_batch(
        &self,
        repo: &Repository,
        jobs: &[Arc<Job>],
    ) -> Result<Vec<Result<Outcome, ApplyError>>, ApplyError> {
        let mut prepared: Vec<Option<Prepared>> =
            jobs.iter().map(|j| lock(&j.prepared).take()).collect();
        let branch = self.gitops.branch_ref();
        for _ in 0..MAX_ATTEMPTS {
            let t = timing::span("batch.snapshot");
            let head = self.gitops.head(repo)?;
            let mut current = self.gitops.snapshot(repo, head)?;
            drop(t);
            let mut chain: Vec<(Landed, BTreeSet<(String, String)>)> = Vec::new();
            // The batch's objects, in memory until they are packed.
            let mut objects = NewObjects::default();
            let mut outcomes = Vec::with_capacity(jobs.len());
            // Request ids committed in this batch, and what to tell the request index once
            // the branch has moved: a retry is answered with its first commit, whether that
            // is on the branch (checked against the very head the compare-and-swap expects,
            // so of two concurrent retries only one commits) or earlier in this batch.
            let mut in_batch: BTreeMap<&str, (String, Option<&str>)> = BTreeMap::new();
            let mut notes: Vec<(Option<Oid>, Oid, &str, Option<&str>)> = Vec::new();
            for (job, slot) in jobs.iter().zip(prepared.iter_mut()) {
                let request = job.meta.request_id.as_str();
                let earlier = match in_batch.get(request) {
                    Some((commit, digest)) => same_request(*digest, job.meta.digest.as_deref())
                        .map(|()| {
                            Some(Outcome::AlreadyApplied {
                                commit: commit.clone(),
                            })
                        }),
                    None => self.already_applied(repo, head, &job.meta),
                };
                match earlier {
                    Ok(Some(done)) => {
                        slot.take();
                        outcomes.push(Ok(done));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                }
                let parent = current.commit;
                let outcome = self.commit_one(
                    repo,
                    job,
                    slot.take(),
                    &mut current,
                    &mut chain,
                    &mut objects,
                );
                if let Ok(Outcome::Committed { commit, .. }) = &outcome {
                    if let Ok(id) = Oid::from_str(commit) {
                        notes.push((parent, id, request, job.meta.digest.as_deref()));
                    }
                    in_batch.insert(request, (commit.clone(), job.meta.digest.as_deref()));
                }
                outcomes.push(outcome);
            }
            let Some((last, _)) = chain.last() else {
                return Ok(outcomes);
            };
            let t = timing::span("batch.write_pack");
            self.gitops.write_pack(repo, &objects)?;
            if let Some(tree) = current.tree {
                self.gitops.keep_trees(&objects, tree);
            }
            drop(t);
            // Readers that see the branch move find its snapshot at once instead of deriving
            // it. Its objects are on disk now, so it is sound even if the branch does not
            // move (it is then a snapshot of a commit nobody asks for).
            self.gitops.remember(&current);
            let t = timing::span("batch.move_ref");
            let reflog = match chain.len() {
                1 => "hexabase: 1 commit".to_owned(),
                n => format!("hexabase: {n} commits"),
            };
            match self
                .gitops
                .move_ref(repo, &branch, head, last.commit, &reflog)
            {
                Ok(()) => {
                    drop(t);
                    for (parent, commit, request, digest) in notes {
                        self.requests.note(parent, commit, request, digest);
                    }
                    let t = timing::span("batch.remember_written");
                    let reader = self.gitops.reader(repo, vec![&objects]);
                    let mut landed = lock(&self.landed);
                    for (commit, workspaces) in chain {
                        self.remember_written(&reader, commit.tree, &workspaces);
                        landed.push_back(commit);
                    }
                    while landed.len() > LANDED_KEPT {
                        landed.pop_front();
                    }
                    drop(landed);
                    drop(t);
                    return Ok(outcomes);
                }
                // Someone else moved the branch: every job again, on the new head.
                Err(GitOpsError::Moved { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApplyError::Contention(MAX_ATTEMPTS))
    }

    /// Commits one job on `current` (in memory: the objects go to `objects`, for the pack),
    /// and makes the new commit `current`.
    fn commit_one(
        &self,
        repo: &Repository,
        job: &Job,
        prepared: Option<Prepared>,
        current: &mut Arc<Snapshot>,
        chain: &mut Vec<(Landed, BTreeSet<(String, String)>)>,
        objects: &mut NewObjects,
    ) -> Result<Outcome, ApplyError> {
        let (prepared, rebased) = match prepared {
            Some(p) if p.parent == current.commit => (p, false),
            Some(p) if self.reusable(&p, current.commit, chain) => (p.rebase(current), true),
            _ => {
                let _t = timing::span("commit.prepare_again");
                let reader = self.gitops.reader(repo, vec![&*objects]);
                (self.prepare_from(&reader, current, &job.action)?, false)
            }
        };
        let t = timing::span("commit.tree");
        objects.extend(&prepared.objects);
        let new_tree = if rebased {
            let mut spine = NewObjects::default();
            let tree = {
                let reader = self.gitops.reader(repo, vec![&*objects]);
                self.rebased_tree(&reader, current, &prepared, &mut spine)?
            };
            objects.extend(&spine);
            tree
        } else {
            prepared.tree
        };
        drop(t);
        let Prepared {
            mut snapshot,
            files,
            workspaces,
            drift,
            rendered,
            ..
        } = prepared;
        let Some(new_tree) = new_tree.filter(|t| Some(*t) != current.tree) else {
            return Ok(Outcome::Unchanged);
        };
        self.record_rendered(
            &self.gitops.reader(repo, vec![&*objects]),
            new_tree,
            &rendered,
        );
        // Crash tests (`failpoints` feature): blobs and trees are written (in memory).
        crate::gitops::failpoint!("apply-tree-written");
        let t = timing::span("commit.object");
        let text = message(&job.meta, &job.action).render();
        let parent = current.commit;
        let id = self.gitops.commit_object(
            parent,
            new_tree,
            &job.meta.actor,
            &self.bot,
            &text,
            objects,
        )?;
        drop(t);
        let _t = timing::span("commit.journal_and_land");
        // Push outbox hook (service::push): the commit object is written, then its action is
        // journaled (fsynced), and only then does the branch move.
        super::journal::record(repo, id, &job.meta, &job.action)?;
        land(
            &mut snapshot,
            &self.gitops.reader(repo, vec![&*objects]),
            id,
            new_tree,
        );
        chain.push((
            Landed {
                commit: id,
                parent,
                tree: new_tree,
                footprint: Footprint::of(&files, &workspaces),
            },
            workspaces,
        ));
        *current = Arc::new(snapshot);
        Ok(Outcome::Committed {
            commit: id.to_string(),
            drift,
        })
    }

    /// True when `prepared` (computed on its parent) holds on `head` too: only this engine's
    /// commits lie between, and none of them conflicts with it.
    fn reusable(
        &self,
        prepared: &Prepared,
        head: Option<Oid>,
        chain: &[(Landed, BTreeSet<(String, String)>)],
    ) -> bool {
        let mine = Footprint::of(&prepared.files, &prepared.workspaces);
        if mine.structural {
            return false;
        }
        let landed = lock(&self.landed);
        let mut at = head;
        for _ in 0..=LANDED_KEPT + chain.len() {
            if at == prepared.parent {
                return true;
            }
            let Some(commit) = at else {
                return false;
            };
            let found = chain
                .iter()
                .rev()
                .map(|(l, _)| l)
                .chain(landed.iter().rev())
                .find(|l| l.commit == commit);
            match found {
                Some(l) if !l.footprint.conflicts(&mine) => at = l.parent,
                _ => return false,
            }
        }
        false
    }

    /// [`Outcome::AlreadyApplied`] when `meta`'s request is on the branch head already (a
    /// retry), [`ApplyError::KeyReused`] when its id is there from another request, and
    /// `None` otherwise; nothing is applied.
    pub fn replayed(&self, meta: &ActionMeta) -> Result<Option<Outcome>, ApplyError> {
        let repo = self.gitops.cached_repo()?;
        let head = self.gitops.head(&repo)?;
        self.already_applied(&repo, head, meta)
    }

    /// `Err(e)`, unless `request` is on the branch by now: a concurrent retry of the same
    /// request landed first, and `e` is only its action failing a second time.
    fn unless_applied(
        &self,
        repo: &Repository,
        meta: &ActionMeta,
        e: ApplyError,
    ) -> Result<Outcome, ApplyError> {
        let head = self.gitops.head(repo)?;
        self.already_applied(repo, head, meta)?.ok_or(e)
    }

    /// [`Outcome::AlreadyApplied`] when `meta`'s request is already on the branch at
    /// `head`; [`ApplyError::KeyReused`] when its id is there but from another request.
    fn already_applied(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        meta: &ActionMeta,
    ) -> Result<Option<Outcome>, ApplyError> {
        let Some((commit, digest)) = self.requests.find(repo, head, &meta.request_id)? else {
            return Ok(None);
        };
        same_request(digest.as_deref(), meta.digest.as_deref())?;
        Ok(Some(Outcome::AlreadyApplied {
            commit: commit.to_string(),
        }))
    }

    /// Puts `action` on its own branch `hexabase/<request-id>`, based on the head, for
    /// review, instead of on the branch. `None` when the action changes nothing. A retried
    /// request gets its first proposal back (marked `merged` once it is on the branch).
    pub fn propose(
        &self,
        meta: &ActionMeta,
        action: &Action,
    ) -> Result<Option<Proposal>, ApplyError> {
        let branch = review_branch(&meta.request_id).ok_or_else(|| {
            ActionError::Refused(format!(
                "request id {:?} cannot name a review branch",
                meta.request_id
            ))
        })?;
        let repo = self.gitops.repo()?;
        if let Some(proposal) = self.proposed(&repo, &branch, &meta.request_id)? {
            return Ok(Some(proposal));
        }
        let prepared = self.prepare(&repo, action)?;
        let Some(tree) = prepared.tree else {
            return Ok(None);
        };
        self.gitops.write_pack(&repo, &prepared.objects)?;
        let record = ReviewRecord {
            meta: meta.clone(),
            action: action.clone(),
        };
        self.write_review(&meta.request_id, &record)?;
        let refname = format!("refs/heads/{branch}");
        let committed = self.gitops.commit_ref(
            &repo,
            &refname,
            prepared.parent,
            None,
            tree,
            &meta.actor,
            &self.bot,
            &message(meta, action).render(),
        );
        match committed {
            Ok(commit) => Ok(Some(Proposal {
                branch,
                commit: commit.to_string(),
                merged: false,
            })),
            // The same request, proposed concurrently, or another use of the branch name.
            Err(GitOpsError::Moved { .. }) => {
                match self.proposed(&repo, &branch, &meta.request_id)? {
                    Some(proposal) => Ok(Some(proposal)),
                    None => {
                        Err(ActionError::AlreadyExists(format!("review branch {branch}")).into())
                    }
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The proposal `request` already made: its review branch when that carries the
    /// request, or its commit on the branch once merged.
    fn proposed(
        &self,
        repo: &Repository,
        branch: &str,
        request: &str,
    ) -> Result<Option<Proposal>, ApplyError> {
        if let Some(id) = refs::target(repo, &format!("refs/heads/{branch}"))? {
            let same = history::trailers(repo, id)?.is_some_and(|t| t.request == request);
            if same {
                return Ok(Some(Proposal {
                    branch: branch.to_owned(),
                    commit: id.to_string(),
                    merged: false,
                }));
            }
        }
        let head = self.gitops.head(repo)?;
        Ok(self
            .requests
            .find(repo, head, request)?
            .map(|(commit, _)| Proposal {
                branch: branch.to_owned(),
                commit: commit.to_string(),
                merged: true,
            }))
    }

    /// Lands a review branch: fast-forward when the branch has not moved since it was made,
    /// otherwise the action is applied again on the newer head. The review branch goes away.
    /// A retry, once the request is on the branch, is [`Outcome::AlreadyApplied`].
    pub fn merge_review(&self, request_id: &str) -> Result<Outcome, ApplyError> {
        let branch = review_branch(request_id)
            .ok_or_else(|| ActionError::NotFound(format!("review {request_id}")))?;
        let refname = format!("refs/heads/{branch}");
        let repo = self.gitops.repo()?;
        let head = self.gitops.head(&repo)?;
        // The review's own request: whatever carries its id on the branch is its commit.
        if let Some((commit, _)) = self.requests.find(&repo, head, request_id)? {
            self.forget_review(&repo, &refname, request_id)?;
            return Ok(Outcome::AlreadyApplied {
                commit: commit.to_string(),
            });
        }
        let Some(review) = refs::target(&repo, &refname)? else {
            return Err(ActionError::NotFound(format!("review branch {branch}")).into());
        };
        let record = self.read_review(request_id)?;
        let parent = history::first_parent(&repo, review)?;
        let _guard = lock(&self.commit_lock);
        let head = self.gitops.head(&repo)?;
        let outcome = if parent == head {
            // Push outbox hook (service::push): journal the review commit's action before the
            // branch can reach it.
            super::journal::record(&repo, review, &record.meta, &record.action)?;
            let moved = refs::update(
                &repo,
                &self.gitops.branch_ref(),
                review,
                head,
                "hexabase: merge review",
            );
            match moved {
                Ok(_) => {
                    self.requests
                        .note(head, review, request_id, record.meta.digest.as_deref());
                    Outcome::Committed {
                        commit: review.to_string(),
                        drift: Vec::new(),
                    }
                }
                Err(_) => self.apply_locked(&record.meta, &record.action)?,
            }
        } else {
            self.apply_locked(&record.meta, &record.action)?
        };
        self.forget_review(&repo, &refname, request_id)?;
        Ok(outcome)
    }

    /// Removes a landed review's branch and record.
    fn forget_review(
        &self,
        repo: &Repository,
        refname: &str,
        request_id: &str,
    ) -> Result<(), ApplyError> {
        refs::delete(repo, refname)?;
        let _ = std::fs::remove_file(self.review_path(request_id));
        Ok(())
    }

    fn review_path(&self, request_id: &str) -> std::path::PathBuf {
        self.gitops
            .path()
            .join("hexabase")
            .join("reviews")
            .join(format!("{request_id}.json"))
    }

    fn write_review(&self, request_id: &str, record: &ReviewRecord) -> Result<(), ApplyError> {
        let path = self.review_path(request_id);
        let io = |e: std::io::Error| ApplyError::Journal(path.display().to_string(), e);
        let dir = path.parent().expect("review files live in a folder");
        std::fs::create_dir_all(dir).map_err(io)?;
        let json = serde_json::to_vec(record).expect("actions serialize");
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&tmp).map_err(io)?;
            file.write_all(&json).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }

    fn read_review(&self, request_id: &str) -> Result<ReviewRecord, ApplyError> {
        let path = self.review_path(request_id);
        let text =
            std::fs::read(&path).map_err(|e| ApplyError::Journal(path.display().to_string(), e))?;
        serde_json::from_slice(&text).map_err(|e| {
            ApplyError::Journal(
                path.display().to_string(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Replaces the whole intent with `files` and renders everything: the first commit of a
    /// repository, or a re-render after people changed the platform by hand. Journaled like
    /// an action, so a push can import again on a newer remote head.
    pub fn import(
        &self,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
    ) -> Result<Outcome, ApplyError> {
        let repo = self.gitops.repo()?;
        let _guard = lock(&self.commit_lock);
        let output = self.compile_import(files)?;
        for _ in 0..MAX_ATTEMPTS {
            let head = self.gitops.head(&repo)?;
            if let Some(done) = self.already_applied(&repo, head, meta)? {
                return Ok(done);
            }
            let mut objects = NewObjects::default();
            let Some(tree) = self.import_tree(&repo, head, files, &output, &mut objects)? else {
                return Ok(Outcome::Unchanged);
            };
            // Crash tests (`failpoints` feature): blobs and trees are made (in memory).
            crate::gitops::failpoint!("import-tree-written");
            let id = self.write_import(&repo, head, tree, meta, files, subject, objects)?;
            let reflog = format!("hexabase: {}", crate::gitops::sanitize_line(subject, 200));
            match self
                .gitops
                .move_ref(&repo, &self.gitops.branch_ref(), head, id, &reflog)
            {
                Ok(()) => {
                    self.record_rendered(
                        &self.gitops.reader(&repo, Vec::new()),
                        tree,
                        &rendered_folders(&output),
                    );
                    self.requests
                        .note(head, id, &meta.request_id, meta.digest.as_deref());
                    return Ok(Outcome::Committed {
                        commit: id.to_string(),
                        drift: Vec::new(),
                    });
                }
                Err(GitOpsError::Moved { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApplyError::Contention(MAX_ATTEMPTS))
    }

    /// [`Engine::import`] as a commit on `parent` without moving any branch, journaled: the
    /// push side imports again on the remote's head with it (see [`super::push`]).
    pub fn import_on(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
    ) -> Result<Outcome, ApplyError> {
        let output = self.compile_import(files)?;
        let mut objects = NewObjects::default();
        let Some(tree) = self.import_tree(repo, parent, files, &output, &mut objects)? else {
            return Ok(Outcome::Unchanged);
        };
        let id = self.write_import(repo, parent, tree, meta, files, subject, objects)?;
        Ok(Outcome::Committed {
            commit: id.to_string(),
            drift: Vec::new(),
        })
    }

    /// Compiles a whole intent; its problems are [`ApplyError::Invalid`].
    fn compile_import(
        &self,
        files: &compiler::IntentFiles,
    ) -> Result<compiler::Output, ApplyError> {
        let (intent, problems) = compiler::intent::load(files);
        let mut output = self
            .compiler
            .compile(&intent, &compiler::Options::default())?;
        output.diagnostics.extend(problems);
        if output.has_errors() {
            return Err(ApplyError::Invalid(output.diagnostics));
        }
        Ok(output)
    }

    /// The tree of `head` with its intent replaced by `files` and rendered as `output`, its
    /// new objects made into `objects`; `None` when that is `head`'s tree already.
    fn import_tree(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        files: &compiler::IntentFiles,
        output: &compiler::Output,
        objects: &mut NewObjects,
    ) -> Result<Option<Oid>, ApplyError> {
        let reader = self.gitops.reader(repo, Vec::new());
        let base = head.map(|h| history::tree_of(repo, h)).transpose()?;
        let mut edits = BTreeMap::new();
        let mut existing = BTreeSet::new();
        if let Some(tree) = base {
            reader.files_under(tree, "", &mut existing)?;
        }
        for path in &existing {
            let stale =
                path.starts_with("intent/") && !files.contains_key(&path["intent/".len()..]);
            if stale || (output.owns(path) && !output.files.contains_key(path)) {
                edits.insert(path.clone(), Edit::Remove);
            }
        }
        for (path, text) in files {
            edits.insert(
                format!("intent/{path}"),
                Edit::Write(text.clone().into_bytes()),
            );
        }
        for (path, text) in &output.files {
            edits.insert(path.clone(), Edit::Write(text.clone().into_bytes()));
        }
        let tree = build_tree(&reader, base, &edits, objects)?;
        Ok(Some(tree).filter(|&tree| base != Some(tree)))
    }

    /// Makes the commit object of an import, packs it with `objects` and journals it; no
    /// branch moves.
    #[allow(clippy::too_many_arguments)]
    fn write_import(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        tree: Oid,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
        mut objects: NewObjects,
    ) -> Result<Oid, ApplyError> {
        let message = CommitMessage {
            subject: subject.to_owned(),
            body: None,
            trailers: Trailers {
                actor: format!("{} <{}>", meta.actor.name, meta.actor.email),
                actor_id: meta.actor_id.clone(),
                action: "import".to_owned(),
                org: None,
                workspace: None,
                request: meta.request_id.clone(),
                digest: meta.digest.clone(),
                compiler: compiler::VERSION.to_owned(),
            },
        };
        let id = self.gitops.commit_object(
            parent,
            tree,
            &meta.actor,
            &self.bot,
            &message.render(),
            &mut objects,
        )?;
        self.gitops.write_pack(repo, &objects)?;
        super::journal::record_import(repo, id, meta, files, subject)?;
        Ok(id)
    }

    fn prepare(&self, repo: &Repository, action: &Action) -> Result<Prepared, ApplyError> {
        let head = self.gitops.head(repo)?;
        self.prepare_on(repo, head, action)
    }

    /// Applies `action` as a commit on `parent` without moving any branch: the push side
    /// re-applies pending actions on the remote's head with it (see [`super::push`]). The
    /// commit's action is journaled like any other.
    pub fn apply_on(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        meta: &ActionMeta,
        action: &Action,
    ) -> Result<Outcome, ApplyError> {
        // One pack per commit: this path is rare, and `repo` is the caller's handle.
        let Prepared {
            mut snapshot,
            workspaces,
            drift,
            tree,
            mut objects,
            ..
        } = self.prepare_on(repo, parent, action)?;
        let Some(new_tree) = tree else {
            return Ok(Outcome::Unchanged);
        };
        crate::gitops::failpoint!("apply-tree-written");
        let text = message(meta, action).render();
        let id = self.gitops.commit_object(
            parent,
            new_tree,
            &meta.actor,
            &self.bot,
            &text,
            &mut objects,
        )?;
        self.gitops.write_pack(repo, &objects)?;
        super::journal::record(repo, id, meta, action)?;
        let reader = self.gitops.reader(repo, Vec::new());
        land(&mut snapshot, &reader, id, new_tree);
        self.gitops.remember(&Arc::new(snapshot));
        self.remember_written(&reader, new_tree, &workspaces);
        Ok(Outcome::Committed {
            commit: id.to_string(),
            drift,
        })
    }

    /// [`Engine::prepare`] against `head` rather than the branch's head.
    fn prepare_on(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        action: &Action,
    ) -> Result<Prepared, ApplyError> {
        let t = timing::span("prepare.snapshot");
        let base = self.gitops.snapshot(repo, head)?;
        drop(t);
        self.prepare_from(&self.gitops.reader(repo, Vec::new()), &base, action)
    }

    /// Computes `action`'s change against the intent and tree of `base`, read through
    /// `reader`.
    fn prepare_from(
        &self,
        reader: &Reader<'_>,
        base: &Snapshot,
        action: &Action,
    ) -> Result<Prepared, ApplyError> {
        let head = base.commit;
        let t = timing::span("prepare.action");
        let change = action.apply(&base.intent)?;
        if change.files.is_empty() {
            return Ok(Prepared {
                parent: head,
                snapshot: base.clone(),
                files: BTreeMap::new(),
                edits: BTreeMap::new(),
                workspaces: BTreeSet::new(),
                drift: Vec::new(),
                rendered: Vec::new(),
                tree: None,
                objects: NewObjects::default(),
            });
        }
        let snapshot = changed(base, &change.files);
        // A broken file in what this action renders would silently drop it: refuse instead.
        let blocking: Vec<Diagnostic> = snapshot
            .problems
            .iter()
            .filter(|(path, _)| {
                path.as_str() == "platform.yaml"
                    || change.files.contains_key(*path)
                    || change.workspaces.iter().any(|(o, w)| {
                        path.starts_with(&format!("{o}/{w}/"))
                            || **path == format!("{o}/organization.yaml")
                    })
            })
            .flat_map(|(_, d)| d.iter().cloned())
            .collect();
        if !blocking.is_empty() {
            return Err(ApplyError::Invalid(blocking));
        }
        drop(t);
        let t = timing::span("prepare.compile");
        let output = self
            .compiler
            .compile_workspaces(&snapshot.intent, &change.workspaces)?;
        if output.has_errors() {
            return Err(ApplyError::Invalid(output.diagnostics));
        }
        drop(t);
        let t = timing::span("prepare.edits");
        let rendered = rendered_folders(&output);
        let mut edits = BTreeMap::new();
        for (path, text) in &change.files {
            let edit = text
                .as_ref()
                .map_or(Edit::Remove, |t| Edit::Write(t.clone().into_bytes()));
            edits.insert(format!("intent/{path}"), edit);
        }
        let clusters: Vec<String> = snapshot
            .intent
            .platform
            .as_ref()
            .map(|p| p.spec.clusters.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        // Each affected workspace's folder is replaced as a whole, on every cluster where it
        // is (it may have moved). A removal of a folder that is not there would still walk
        // (and copy) the large trees above it.
        let base_tree = base.tree;
        for (org, ws) in &change.workspaces {
            for cluster in &clusters {
                let folder = format!("tenants/{cluster}/{org}/{ws}");
                if let Some(tree) = base_tree
                    && reader.entry(tree, &folder)?.is_some()
                {
                    edits.insert(folder, Edit::Remove);
                }
            }
        }
        for (path, text) in output.files {
            edits.insert(path, Edit::Write(text.into_bytes()));
        }
        // Shared files the output speaks for but no longer renders are stale.
        if let Some(tree) = base_tree {
            let orgs: BTreeSet<&String> = change.workspaces.iter().map(|(o, _)| o).collect();
            let mut existing = BTreeSet::new();
            for cluster in &clusters {
                for org in &orgs {
                    for path in [
                        format!("tenants/{cluster}/{org}.yaml"),
                        format!("tenants/{cluster}/{org}/kustomization.yaml"),
                    ] {
                        reader.files_under(tree, &path, &mut existing)?;
                    }
                }
            }
            for path in existing {
                if output_owns(&edits, &path) {
                    continue;
                }
                edits.insert(path, Edit::Remove);
            }
        }
        drop(t);
        let t = timing::span("prepare.drift");
        let drift = self.drift(reader, base, &change.workspaces, &clusters)?;
        drop(t);
        let t = timing::span("prepare.tree");
        let mut objects = NewObjects::default();
        let tree = build_tree(reader, base_tree, &edits, &mut objects)?;
        drop(t);
        Ok(Prepared {
            parent: head,
            snapshot,
            files: change.files,
            edits,
            workspaces: change.workspaces,
            drift,
            rendered,
            tree: (Some(tree) != base.tree).then_some(tree),
            objects,
        })
    }

    /// The root tree of `prepared` (computed on its parent) on `head` instead, where
    /// [`Engine::reusable`] says it holds: the folders of its workspaces (intent and
    /// renders, which no commit in between touched) are put in place whole, and its other
    /// edits are applied again; only the folders above them are written anew. `None` when it
    /// changes nothing.
    fn rebased_tree(
        &self,
        reader: &Reader<'_>,
        head: &Snapshot,
        prepared: &Prepared,
        written: &mut NewObjects,
    ) -> Result<Option<Oid>, ApplyError> {
        let Some(tree) = prepared.tree else {
            return Ok(None);
        };
        let mut folders: BTreeSet<String> = BTreeSet::new();
        for (org, ws) in &prepared.workspaces {
            folders.insert(format!("intent/{org}/{ws}"));
            // The workspace's rendered folder, on every cluster where it was or is now.
            for path in prepared.edits.keys() {
                let parts: Vec<&str> = path.splitn(5, '/').collect();
                if let ["tenants", cluster, o, w, ..] = parts.as_slice()
                    && o == org
                    && w == ws
                {
                    folders.insert(format!("tenants/{cluster}/{org}/{ws}"));
                }
            }
        }
        let within = |path: &str| {
            folders.iter().any(|f| {
                path.strip_prefix(f.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
        };
        let mut edits: BTreeMap<String, Edit> = prepared
            .edits
            .iter()
            .filter(|(path, _)| !within(path))
            .map(|(path, edit)| (path.clone(), edit.clone()))
            .collect();
        for folder in &folders {
            match reader.entry(tree, folder)? {
                Some(entry) => {
                    edits.insert(folder.clone(), Edit::Tree(entry.id));
                }
                None => {
                    if let Some(head_tree) = head.tree
                        && reader.entry(head_tree, folder)?.is_some()
                    {
                        edits.insert(folder.clone(), Edit::Remove);
                    }
                }
            }
        }
        let root = build_tree(reader, head.tree, &edits, written)?;
        Ok((Some(root) != head.tree).then_some(root))
    }

    /// Rendered files of `workspaces` in `base` that differ from what `base`'s intent
    /// renders: edits made by hand, which the new render overwrites.
    fn drift(
        &self,
        reader: &Reader<'_>,
        base: &Snapshot,
        workspaces: &BTreeSet<(String, String)>,
        clusters: &[String],
    ) -> Result<Vec<String>, ApplyError> {
        let Some(tree) = base.tree else {
            return Ok(Vec::new());
        };
        let mut candidates = Vec::new();
        {
            let written = self
                .written
                .lock()
                .expect("the written map is never poisoned");
            for (org, ws) in workspaces {
                for cluster in clusters {
                    let root = format!("tenants/{cluster}/{org}/{ws}");
                    let Some(entry) = reader.entry(tree, &root)? else {
                        continue;
                    };
                    if written.get(&root) != Some(&entry.id) {
                        candidates.push((org, ws, root, entry.id));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // A folder known to be the render of the very inputs `base` has for its workspace
        // is what `base` renders (same intent, same bytes): no need to compile it again.
        let names = candidates
            .iter()
            .map(|(o, w, _, _)| ((*o).clone(), (*w).clone()))
            .collect();
        let fingerprints = self.compiler.fingerprints(&base.intent, &names);
        let mut suspects = BTreeSet::new();
        let mut roots = Vec::new();
        {
            let mut rendered = lock(&self.rendered);
            let rendered = rendered.get_or_insert_with(|| self.load_rendered());
            for (org, ws, root, id) in candidates {
                let key = (org.clone(), ws.clone());
                if fingerprints
                    .get(&key)
                    .is_none_or(|f| rendered.get(&id) != Some(f))
                {
                    suspects.insert(key);
                    roots.push(root);
                }
            }
        }
        if suspects.is_empty() {
            return Ok(Vec::new());
        }
        let _t = timing::span("prepare.drift.compile_and_compare");
        let expected = self.compiler.compile_workspaces(&base.intent, &suspects)?;
        if expected.has_errors() {
            return Ok(Vec::new());
        }
        let mut drift = Vec::new();
        for root in &roots {
            // Compared by blob id: what was expected, hashed, against what is there, so no
            // file needs reading.
            let existing = reader.file_ids_under(tree, root)?;
            let prefix = format!("{root}/");
            for (path, id) in &existing {
                let expected_id = expected
                    .files
                    .get(path)
                    .map(|text| blob_id(text.as_bytes()));
                if expected_id != Some(*id) {
                    drift.push(path.clone());
                }
            }
            drift.extend(
                expected
                    .files
                    .keys()
                    .filter(|p| p.starts_with(&prefix) && !existing.contains_key(*p))
                    .cloned(),
            );
        }
        drift.sort();
        drift.dedup();
        Ok(drift)
    }

    /// Records that the folders `rendered` (root, fingerprint) in `tree` are the compiler's
    /// output for those fingerprints. That is a fact about content (a tree id and the hash
    /// of the inputs), true whether or not the commit lands, so it is kept in memory and
    /// appended to `<gitdir>/hexabase/rendered` (`<tree id> <fingerprint>` lines) without
    /// fsync: a line lost in a crash only costs a compile later, and a torn or garbled line
    /// is skipped when the file is read.
    fn record_rendered(&self, reader: &Reader<'_>, tree: Oid, rendered: &[(String, String)]) {
        if rendered.is_empty() {
            return;
        }
        let mut map = lock(&self.rendered);
        let map = map.get_or_insert_with(|| self.load_rendered());
        let mut lines = String::new();
        for (root, fingerprint) in rendered {
            let Ok(Some(entry)) = reader.entry(tree, root) else {
                continue;
            };
            if map.get(&entry.id) != Some(fingerprint) {
                map.insert(entry.id, fingerprint.clone());
                lines.push_str(&format!("{} {fingerprint}\n", entry.id));
            }
        }
        if lines.is_empty() {
            return;
        }
        let path = self.rendered_path();
        let append = || -> std::io::Result<()> {
            use std::io::Write as _;
            std::fs::create_dir_all(path.parent().expect("in a folder"))?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?
                .write_all(lines.as_bytes())
        };
        // A cache: failing to write it only costs compiles later.
        let _ = append();
    }

    fn rendered_path(&self) -> std::path::PathBuf {
        self.gitops.path().join("hexabase").join("rendered")
    }

    /// The folders known to be renders, from `<gitdir>/hexabase/rendered`.
    fn load_rendered(&self) -> HashMap<Oid, String> {
        let text = std::fs::read(self.rendered_path()).unwrap_or_default();
        let mut map = HashMap::new();
        // Only whole lines: the last one may be torn.
        for line in text
            .split(|b| *b == b'\n')
            .filter(|l| l.len() == 40 + 1 + 64)
        {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let Some((id, fingerprint)) = line.split_once(' ') else {
                continue;
            };
            let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
            if id.len() == 40
                && hex(id)
                && hex(fingerprint)
                && let Ok(id) = Oid::from_str(id)
            {
                map.insert(id, fingerprint.to_owned());
            }
        }
        map
    }

    /// Remembers the workspace folders as written in `tree`.
    fn remember_written(
        &self,
        reader: &Reader<'_>,
        tree: Oid,
        workspaces: &BTreeSet<(String, String)>,
    ) {
        let Ok(Some(tenants)) = reader.entry(tree, "tenants") else {
            return;
        };
        let Ok(tenants) = reader.tree(tenants.id) else {
            return;
        };
        let mut written = self
            .written
            .lock()
            .expect("the written map is never poisoned");
        for cluster in tenants
            .entries()
            .iter()
            .filter_map(|e| std::str::from_utf8(&e.name).ok())
        {
            for (org, ws) in workspaces {
                let root = format!("tenants/{cluster}/{org}/{ws}");
                match reader.entry(tree, &root) {
                    Ok(Some(entry)) => written.insert(root, entry.id),
                    _ => written.remove(&root),
                };
            }
        }
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

impl Prepared {
    /// This change on `head` instead of its parent, when [`Engine::reusable`] says it holds
    /// there: the same edits, and the action's intent files applied to `head`'s intent.
    fn rebase(self, head: &Snapshot) -> Self {
        Self {
            parent: head.commit,
            snapshot: changed(head, &self.files),
            ..self
        }
    }
}

/// `base`'s intent with `files` (relative to `intent/`; `None` deletes) written, on `base`'s
/// tree (the commit and intent tree are not known yet).
fn changed(base: &Snapshot, files: &BTreeMap<String, Option<String>>) -> Snapshot {
    let mut snapshot = Snapshot {
        commit: None,
        tree: base.tree,
        intent_tree: None,
        intent: base.intent.clone(),
        problems: base.problems.clone(),
    };
    for (path, text) in files {
        let problems = snapshot.intent.set_file(path, text.as_deref());
        if problems.is_empty() {
            snapshot.problems.remove(path);
        } else {
            snapshot.problems.insert(path.clone(), problems);
        }
    }
    snapshot
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
