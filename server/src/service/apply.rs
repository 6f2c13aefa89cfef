//! Apply = read intent at the branch head → apply the action → compile the affected
//! workspaces → build the new tree from the parent's → commit → compare-and-swap the branch.
//! A moved branch means doing it again on the new head, never a text merge.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use compiler::{Catalog, Compiler, Diagnostic};
use git2::{Oid, Repository};

use super::action::{Action, ActionError};
use super::requests::RequestIndex;
use crate::gitops::{CommitMessage, Edit, GitOps, GitOpsError, Identity, Snapshot, Trailers};

/// How often a commit is retried when other processes keep moving the branch.
const MAX_ATTEMPTS: usize = 64;

/// Who asked for an action, and the request it came with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ActionMeta {
    /// The acting user: the commit's author.
    pub actor: Identity,
    /// The request id, for the `Hexabase-Request` trailer.
    pub request_id: String,
}

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
}

/// The commit engine for one repository and branch.
pub struct Engine {
    gitops: GitOps,
    compiler: Compiler,
    bot: Identity,
    /// Serializes the commit step inside this process; compiles run in parallel.
    commit_lock: Mutex<()>,
    /// Workspace folders (`tenants/<c>/<org>/<ws>`) as this engine last wrote them: a folder
    /// still at that tree id has not been edited by hand since.
    written: Mutex<BTreeMap<String, Oid>>,
    /// The request ids on the branch, for answering retries with their first commit.
    requests: RequestIndex,
}

/// A change computed against one parent, ready to commit.
struct Prepared {
    parent: Option<Oid>,
    snapshot: Snapshot,
    edits: BTreeMap<String, Edit>,
    /// The workspaces rendered again.
    workspaces: BTreeSet<(String, String)>,
    /// Hand-edited rendered files this change overwrites.
    drift: Vec<String>,
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
    (ok && git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))).then_some(branch)
}

impl Engine {
    /// An engine writing `gitops`' branch as `bot`.
    pub fn new(gitops: GitOps, bot: Identity) -> Result<Self, compiler::Error> {
        Ok(Self {
            gitops,
            compiler: Compiler::new(&Catalog::builtin())?,
            bot,
            commit_lock: Mutex::new(()),
            written: Mutex::new(BTreeMap::new()),
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
        let repo = self.gitops.repo()?;
        let head = self.gitops.head(&repo)?;
        self.gitops.snapshot(&repo, head)
    }

    /// Applies `action` as one commit on the branch. A request id already on the branch
    /// (a retry) makes no commit: the answer is [`Outcome::AlreadyApplied`] with its commit.
    pub fn apply(&self, meta: &ActionMeta, action: &Action) -> Result<Outcome, ApplyError> {
        let repo = self.gitops.repo()?;
        // A retry is answered before its action runs: the action would likely no longer apply.
        let head = self.gitops.head(&repo)?;
        if let Some(done) = self.already_applied(&repo, head, &meta.request_id)? {
            return Ok(done);
        }
        // Compile outside the lock, so concurrent actions compile in parallel.
        let prepared = match self.prepare_on(&repo, head, action) {
            Ok(prepared) => prepared,
            Err(e) => return self.unless_applied(&repo, &meta.request_id, e),
        };
        let _guard = self
            .commit_lock
            .lock()
            .expect("the commit lock is never poisoned: commit code does not panic");
        self.apply_locked(&repo, meta, action, prepared)
    }

    /// The commit step, with the commit lock held.
    fn apply_locked(
        &self,
        repo: &Repository,
        meta: &ActionMeta,
        action: &Action,
        mut prepared: Prepared,
    ) -> Result<Outcome, ApplyError> {
        for _ in 0..MAX_ATTEMPTS {
            let head = self.gitops.head(repo)?;
            // Checked against the very head the compare-and-swap expects, under the commit
            // lock: of two concurrent retries (threads or processes) only one can commit.
            if let Some(done) = self.already_applied(repo, head, &meta.request_id)? {
                return Ok(done);
            }
            if head != prepared.parent {
                prepared = self.prepare_on(repo, head, action)?;
            }
            let parent = prepared.parent;
            match self.commit(repo, meta, action, prepared, true) {
                Ok(outcome) => {
                    self.note_request(parent, &outcome, &meta.request_id);
                    return Ok(outcome);
                }
                Err(Retry::Moved(again)) => prepared = *again,
                // Also a failure to prepare again on a moved head.
                Err(Retry::Failed(e)) => return self.unless_applied(repo, &meta.request_id, e),
            }
        }
        Err(ApplyError::Contention(MAX_ATTEMPTS))
    }

    /// `Err(e)`, unless `request` is on the branch by now: a concurrent retry of the same
    /// request landed first, and `e` is only its action failing a second time.
    fn unless_applied(
        &self,
        repo: &Repository,
        request: &str,
        e: ApplyError,
    ) -> Result<Outcome, ApplyError> {
        let head = self.gitops.head(repo)?;
        self.already_applied(repo, head, request)?.ok_or(e)
    }

    /// [`Outcome::AlreadyApplied`] when `request` is already on the branch at `head`.
    fn already_applied(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        request: &str,
    ) -> Result<Option<Outcome>, ApplyError> {
        Ok(self
            .requests
            .find(repo, head, request)?
            .map(|commit| Outcome::AlreadyApplied {
                commit: commit.to_string(),
            }))
    }

    /// Tells the request index about a commit this engine put on the branch on `parent`.
    fn note_request(&self, parent: Option<Oid>, outcome: &Outcome, request: &str) {
        if let Outcome::Committed { commit, .. } = outcome
            && let Ok(commit) = Oid::from_str(commit)
        {
            self.requests.note(parent, commit, request);
        }
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
        let base = prepared
            .snapshot
            .tree
            .map(|t| repo.find_tree(t))
            .transpose()
            .map_err(GitOpsError::Git)?;
        let Some(tree) = crate::gitops::tree::apply(&repo, base.as_ref(), &prepared.edits)? else {
            return Ok(None);
        };
        if Some(tree) == prepared.snapshot.tree {
            return Ok(None);
        }
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
            &author(meta),
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
        match repo.refname_to_id(&format!("refs/heads/{branch}")) {
            Ok(id) => {
                let commit = repo.find_commit(id).map_err(GitOpsError::Git)?;
                let same = commit
                    .message()
                    .ok()
                    .and_then(CommitMessage::parse_trailers)
                    .is_some_and(|t| t.request == request);
                if same {
                    return Ok(Some(Proposal {
                        branch: branch.to_owned(),
                        commit: id.to_string(),
                        merged: false,
                    }));
                }
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => {}
            Err(e) => return Err(GitOpsError::Git(e).into()),
        }
        let head = self.gitops.head(repo)?;
        Ok(self
            .requests
            .find(repo, head, request)?
            .map(|commit| Proposal {
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
        if let Some(done) = self.already_applied(&repo, head, request_id)? {
            self.forget_review(&repo, &refname, request_id)?;
            return Ok(done);
        }
        let review = match repo.refname_to_id(&refname) {
            Ok(id) => id,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(ActionError::NotFound(format!("review branch {branch}")).into());
            }
            Err(e) => return Err(GitOpsError::Git(e).into()),
        };
        let record = self.read_review(request_id)?;
        let commit = repo.find_commit(review).map_err(GitOpsError::Git)?;
        let parent = commit.parent_ids().next();
        let _guard = self
            .commit_lock
            .lock()
            .expect("the commit lock is never poisoned: commit code does not panic");
        let head = self.gitops.head(&repo)?;
        let outcome = if parent == head {
            // Push outbox hook (service::push): journal the review commit's action before the
            // branch can reach it.
            super::push::record(&repo, review, &record.meta, &record.action)?;
            let moved = match head {
                Some(head) => repo.reference_matching(
                    &self.gitops.branch_ref(),
                    review,
                    true,
                    head,
                    "hexabase: merge review",
                ),
                None => repo.reference(
                    &self.gitops.branch_ref(),
                    review,
                    false,
                    "hexabase: merge review",
                ),
            };
            match moved {
                Ok(_) => {
                    self.requests.note(head, review, request_id);
                    Outcome::Committed {
                        commit: review.to_string(),
                        drift: Vec::new(),
                    }
                }
                Err(_) => {
                    let prepared = self.prepare(&repo, &record.action)?;
                    self.apply_locked(&repo, &record.meta, &record.action, prepared)?
                }
            }
        } else {
            let prepared = self.prepare(&repo, &record.action)?;
            self.apply_locked(&repo, &record.meta, &record.action, prepared)?
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
        if let Ok(mut reference) = repo.find_reference(refname) {
            reference.delete().map_err(GitOpsError::Git)?;
        }
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
        let _guard = self
            .commit_lock
            .lock()
            .expect("the commit lock is never poisoned: commit code does not panic");
        let output = self.compile_import(files)?;
        for _ in 0..MAX_ATTEMPTS {
            let head = self.gitops.head(&repo)?;
            if let Some(done) = self.already_applied(&repo, head, &meta.request_id)? {
                return Ok(done);
            }
            let Some(tree) = self.import_tree(&repo, head, files, &output)? else {
                return Ok(Outcome::Unchanged);
            };
            // Crash tests (`failpoints` feature): blobs and trees are written.
            crate::gitops::failpoint!("import-tree-written");
            let id = self.write_import(&repo, head, tree, meta, files, subject)?;
            let reflog = format!("hexabase: {}", crate::gitops::sanitize_line(subject, 200));
            match self
                .gitops
                .move_ref(&repo, &self.gitops.branch_ref(), head, id, &reflog)
            {
                Ok(()) => {
                    self.requests.note(head, id, &meta.request_id);
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
        let Some(tree) = self.import_tree(repo, parent, files, &output)? else {
            return Ok(Outcome::Unchanged);
        };
        let id = self.write_import(repo, parent, tree, meta, files, subject)?;
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

    /// The tree of `head` with its intent replaced by `files` and rendered as `output`;
    /// `None` when that is `head`'s tree already.
    fn import_tree(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        files: &compiler::IntentFiles,
        output: &compiler::Output,
    ) -> Result<Option<Oid>, ApplyError> {
        let base = head
            .map(|h| repo.find_commit(h).and_then(|c| c.tree()))
            .transpose()
            .map_err(GitOpsError::Git)?;
        let mut edits = BTreeMap::new();
        let mut existing = BTreeSet::new();
        if let Some(tree) = &base {
            GitOps::files_under(repo, tree, "", &mut existing)?;
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
        let tree = crate::gitops::tree::apply(repo, base.as_ref(), &edits)?;
        Ok(tree.filter(|&tree| base.as_ref().map(git2::Tree::id) != Some(tree)))
    }

    /// Writes the commit object of an import and journals it; no branch moves.
    fn write_import(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        tree: Oid,
        meta: &ActionMeta,
        files: &compiler::IntentFiles,
        subject: &str,
    ) -> Result<Oid, ApplyError> {
        let message = CommitMessage {
            subject: subject.to_owned(),
            body: None,
            trailers: Trailers {
                actor: format!("{} <{}>", meta.actor.name, meta.actor.email),
                action: "import".to_owned(),
                org: None,
                workspace: None,
                request: meta.request_id.clone(),
                compiler: compiler::VERSION.to_owned(),
            },
        };
        let id = self.gitops.write_commit(
            repo,
            parent,
            tree,
            &meta.actor,
            &self.bot,
            &message.render(),
        )?;
        super::push::record_import(repo, id, meta, files, subject)?;
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
        let prepared = self.prepare_on(repo, parent, action)?;
        match self.commit(repo, meta, action, prepared, false) {
            Ok(outcome) => Ok(outcome),
            Err(Retry::Failed(e)) => Err(e),
            // Only a branch move finds the branch moved, and there is none here.
            Err(Retry::Moved(_)) => Err(ApplyError::Contention(1)),
        }
    }

    /// [`Engine::prepare`] against `head` rather than the branch's head.
    fn prepare_on(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        action: &Action,
    ) -> Result<Prepared, ApplyError> {
        let base = self.gitops.snapshot(repo, head)?;
        let change = action.apply(&base.intent)?;
        if change.files.is_empty() {
            return Ok(Prepared {
                parent: head,
                snapshot: (*base).clone(),
                edits: BTreeMap::new(),
                workspaces: BTreeSet::new(),
                drift: Vec::new(),
            });
        }
        let mut snapshot = Snapshot {
            commit: None,
            tree: base.tree,
            intent_tree: None,
            intent: base.intent.clone(),
            problems: base.problems.clone(),
        };
        for (path, text) in &change.files {
            let problems = snapshot.intent.set_file(path, text.as_deref());
            if problems.is_empty() {
                snapshot.problems.remove(path);
            } else {
                snapshot.problems.insert(path.clone(), problems);
            }
        }
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
        let output = self
            .compiler
            .compile_workspaces(&snapshot.intent, &change.workspaces)?;
        if output.has_errors() {
            return Err(ApplyError::Invalid(output.diagnostics));
        }
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
        // Each affected workspace's folder is replaced as a whole, on every cluster (it may have moved).
        for (org, ws) in &change.workspaces {
            for cluster in &clusters {
                edits.insert(format!("tenants/{cluster}/{org}/{ws}"), Edit::Remove);
            }
        }
        for (path, text) in output.files {
            edits.insert(path, Edit::Write(text.into_bytes()));
        }
        // Shared files the output speaks for but no longer renders are stale.
        if let Some(tree) = base.tree {
            let tree = repo.find_tree(tree).map_err(GitOpsError::Git)?;
            let orgs: BTreeSet<&String> = change.workspaces.iter().map(|(o, _)| o).collect();
            let mut existing = BTreeSet::new();
            for cluster in &clusters {
                for org in &orgs {
                    for path in [
                        format!("tenants/{cluster}/{org}.yaml"),
                        format!("tenants/{cluster}/{org}/kustomization.yaml"),
                    ] {
                        GitOps::files_under(repo, &tree, &path, &mut existing)?;
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
        let drift = self.drift(repo, &base, &change.workspaces, &clusters)?;
        Ok(Prepared {
            parent: head,
            snapshot,
            edits,
            workspaces: change.workspaces,
            drift,
        })
    }

    /// Rendered files of `workspaces` in `base` that differ from what `base`'s intent
    /// renders: edits made by hand, which the new render overwrites.
    fn drift(
        &self,
        repo: &Repository,
        base: &Snapshot,
        workspaces: &BTreeSet<(String, String)>,
        clusters: &[String],
    ) -> Result<Vec<String>, ApplyError> {
        let Some(tree) = base.tree else {
            return Ok(Vec::new());
        };
        let tree = repo.find_tree(tree).map_err(GitOpsError::Git)?;
        let mut suspects = BTreeSet::new();
        let mut roots = Vec::new();
        {
            let written = self
                .written
                .lock()
                .expect("the written map is never poisoned");
            for (org, ws) in workspaces {
                for cluster in clusters {
                    let root = format!("tenants/{cluster}/{org}/{ws}");
                    let Ok(entry) = tree.get_path(std::path::Path::new(&root)) else {
                        continue;
                    };
                    if written.get(&root) != Some(&entry.id()) {
                        suspects.insert((org.clone(), ws.clone()));
                        roots.push(root);
                    }
                }
            }
        }
        if suspects.is_empty() {
            return Ok(Vec::new());
        }
        let expected = self.compiler.compile_workspaces(&base.intent, &suspects)?;
        if expected.has_errors() {
            return Ok(Vec::new());
        }
        let mut drift = Vec::new();
        for root in &roots {
            let mut existing = BTreeSet::new();
            GitOps::files_under(repo, &tree, root, &mut existing)?;
            let prefix = format!("{root}/");
            for path in &existing {
                let actual = GitOps::read_file(repo, &tree, path)?;
                if expected.files.get(path) != actual.as_ref() {
                    drift.push(path.clone());
                }
            }
            drift.extend(
                expected
                    .files
                    .keys()
                    .filter(|p| p.starts_with(&prefix) && !existing.contains(*p))
                    .cloned(),
            );
        }
        drift.sort();
        drift.dedup();
        Ok(drift)
    }

    /// Remembers the workspace folders as written in `tree`.
    fn remember_written(
        &self,
        repo: &Repository,
        tree: Oid,
        workspaces: &BTreeSet<(String, String)>,
    ) {
        let Ok(tree) = repo.find_tree(tree) else {
            return;
        };
        let Ok(tenants) = tree.get_path(std::path::Path::new("tenants")) else {
            return;
        };
        let Ok(tenants) = repo.find_tree(tenants.id()) else {
            return;
        };
        let mut written = self
            .written
            .lock()
            .expect("the written map is never poisoned");
        for cluster in tenants
            .iter()
            .filter_map(|e| e.name().ok().map(str::to_owned))
        {
            for (org, ws) in workspaces {
                let root = format!("tenants/{cluster}/{org}/{ws}");
                match tree.get_path(std::path::Path::new(&root)) {
                    Ok(entry) => written.insert(root, entry.id()),
                    Err(_) => written.remove(&root),
                };
            }
        }
    }

    fn commit(
        &self,
        repo: &Repository,
        meta: &ActionMeta,
        action: &Action,
        prepared: Prepared,
        move_branch: bool,
    ) -> Result<Outcome, Retry> {
        let Prepared {
            parent,
            mut snapshot,
            edits,
            workspaces,
            drift,
        } = prepared;
        let base = snapshot
            .tree
            .map(|t| repo.find_tree(t))
            .transpose()
            .map_err(|e| Retry::Failed(GitOpsError::Git(e).into()))?;
        let new_tree = crate::gitops::tree::apply(repo, base.as_ref(), &edits)
            .map_err(|e| Retry::Failed(e.into()))?;
        let new_tree = match new_tree {
            Some(t) => t,
            None => repo
                .treebuilder(None)
                .and_then(|b| b.write())
                .map_err(|e| Retry::Failed(GitOpsError::Git(e).into()))?,
        };
        if Some(new_tree) == snapshot.tree {
            return Ok(Outcome::Unchanged);
        }
        // Crash tests (`failpoints` feature): blobs and trees are written.
        crate::gitops::failpoint!("apply-tree-written");
        let message = message(meta, action);
        let author = author(meta);
        // Push outbox hook (service::push): the commit object is written, then its action is
        // journaled (fsynced), and only then does the branch move (not at all for `apply_on`).
        let text = message.render();
        let id = self
            .gitops
            .write_commit(repo, parent, new_tree, &author, &self.bot, &text)
            .map_err(ApplyError::from)
            .and_then(|id| super::push::record(repo, id, meta, action).map(|()| id))
            .map_err(Retry::Failed)?;
        let moved = if move_branch {
            let reflog = format!("hexabase: {}", text.lines().next().unwrap_or_default());
            let branch = self.gitops.branch_ref();
            self.gitops.move_ref(repo, &branch, parent, id, &reflog)
        } else {
            Ok(())
        };
        match moved {
            Ok(()) => {
                snapshot.commit = Some(id);
                snapshot.tree = Some(new_tree);
                snapshot.intent_tree = repo
                    .find_tree(new_tree)
                    .ok()
                    .and_then(|t| t.get_name("intent").map(|e| e.id()));
                self.gitops.remember(&Arc::new(snapshot));
                self.remember_written(repo, new_tree, &workspaces);
                Ok(Outcome::Committed {
                    commit: id.to_string(),
                    drift,
                })
            }
            Err(GitOpsError::Moved { .. }) => {
                let again = self.prepare(repo, action).map_err(Retry::Failed)?;
                Err(Retry::Moved(Box::new(again)))
            }
            Err(e) => Err(Retry::Failed(e.into())),
        }
    }
}

/// A commit attempt that must be redone on the new head, or a real failure.
enum Retry {
    Moved(Box<Prepared>),
    Failed(ApplyError),
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
            action: action.kind().to_owned(),
            org: Some(org.to_owned()),
            workspace: ws.map(str::to_owned),
            request: meta.request_id.clone(),
            compiler: compiler::VERSION.to_owned(),
        },
    }
}

/// The commit author: the actor, with nothing that could break the header line.
fn author(meta: &ActionMeta) -> Identity {
    Identity {
        name: crate::gitops::sanitize_line(&meta.actor.name, 100).replace(['<', '>'], ""),
        email: crate::gitops::sanitize_line(&meta.actor.email, 200).replace(['<', '>', ' '], ""),
    }
}
