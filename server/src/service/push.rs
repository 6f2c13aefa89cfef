//! The push side: the engine commits locally (fast), a [`Pusher`] makes the remote branch
//! catch up.
//!
//! The local branch is the ordered queue of unpushed commits: those reachable from it and
//! not from the remote-tracking reference. What a re-apply needs beyond Git is each commit's
//! action, kept in a durable journal, one file per commit:
//! `<gitdir>/hexabase/journal/<commit-id>.json`. The engine writes and fsyncs it after the
//! commit object and before the branch moves (`record`), so every commit the branch
//! reaches has its action on disk. A commit whose branch move failed leaves a journal file
//! no branch reaches; it is harmless, as only pending commits are ever read.
//!
//! A push the remote refuses (someone else pushed) is a fetch and a re-apply of our pending
//! actions, in order, on the remote's new head (never a text merge); the local branch then
//! moves there by compare-and-swap and the push is tried again. Commits people made on the
//! remote are fetched and become the new base. Journal files of pushed commits are removed.
//! A pending commit whose request id the remote already holds (our push reached it before a
//! crash, or another instance applied the same request) is not applied again.
//!
//! Imports are journaled with their intent files: on a newer remote head they import again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use git2::{Oid, Repository, Sort};

use super::action::Action;
use super::apply::{ActionMeta, ApplyError, Engine, Outcome};
use super::requests::RequestIndex;
use crate::gitops::GitOpsError;
use crate::gitops::remote::{Remote, RemoteError};

/// How many push, fetch and re-apply rounds before giving up on a busy remote.
const MAX_ROUNDS: usize = 16;

/// A journal file this old that no pending commit needs is an orphan (its commit's branch
/// move failed, or a crash interrupted its writing); younger ones may belong to a commit
/// whose branch is about to move.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// The failpoints of a push (crash tests, `failpoints` feature), in the order a push that
/// the remote refuses at first passes them.
pub const FAILPOINTS: [&str; 5] = [
    // Before the remote is asked to take the local branch.
    "push-before-push",
    // The remote-tracking branch points at the fetched remote head; nothing re-applied yet.
    "push-fetched",
    // Pending actions re-applied on the remote's head (commits and journal entries
    // written); the local branch has not moved.
    "push-replayed",
    // The local branch moved to the re-applied commits; the replaced journal entries remain.
    "push-branch-moved",
    // The remote took the push; the journal files of the pushed commits remain.
    "push-pushed",
];

/// What the journal keeps for one commit: enough to make the change again elsewhere.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    /// Who asked, and the request.
    pub meta: ActionMeta,
    /// The change: `"action": {...}` or `"import": {...}` in the file.
    #[serde(flatten)]
    pub change: Change,
}

/// A journaled change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// An action ([`Engine::apply`]), boxed: actions are large, imports larger still.
    Action(Box<Action>),
    /// A whole intent ([`Engine::import`]).
    Import {
        /// The intent files, relative to `intent/`.
        files: compiler::IntentFiles,
        /// The commit subject.
        subject: String,
    },
}

/// Why pushing failed. Nothing committed locally is lost by any of these: the next
/// [`Pusher::push_pending`] starts again from the local branch and the journal.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The remote failed or refused.
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A local Git operation failed.
    #[error("local git operation failed")]
    GitOps(#[from] GitOpsError),
    /// Re-applying an action on the remote's head failed for a reason other than the
    /// action itself (those are dropped and reported, see [`PushReport::dropped`]).
    #[error("failed to re-apply an action on the remote's head")]
    Apply(#[from] ApplyError),
    /// A journal file could not be read or written.
    #[error("failed to access the journal file {path}")]
    Journal {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A journal file is not what we wrote.
    #[error("the journal file {path} is damaged")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: serde_json::Error,
    },
    /// A pending commit has no journal entry (made by hand, or before pushing was set up),
    /// so it cannot be re-applied on the remote's new head.
    #[error(
        "commit {commit} waits to be pushed but has no recorded action, so it cannot be \
         re-applied on the remote's new head"
    )]
    Unjournaled {
        /// The commit.
        commit: Oid,
    },
    /// Others kept pushing.
    #[error("the remote kept moving; gave up after {0} rounds")]
    Contention(usize),
}

/// An action that no longer applies on the remote's head (someone did the same or the
/// opposite first). Its journal file is kept in `journal/dropped/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Our commit that carried it.
    pub commit: Oid,
    /// The action (or import).
    pub change: Change,
    /// Why it no longer applies.
    pub reason: String,
}

/// What a [`Pusher`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Commits the remote got from us, oldest first.
    pub pushed: Vec<Oid>,
    /// How many pushes the remote refused because it had moved.
    pub rejected: usize,
    /// Our commits applied again on a newer remote head: (old commit, new commit).
    pub replayed: Vec<(Oid, Oid)>,
    /// Our commits whose action changed nothing on the newer head (already done there).
    pub absorbed: Vec<Oid>,
    /// Our commits whose request id the remote already holds, so they were not applied
    /// again: (our commit, the remote's commit of that request).
    pub already_on_remote: Vec<(Oid, Oid)>,
    /// Our commits whose action no longer applies.
    pub dropped: Vec<Dropped>,
    /// The remote branch's head as last seen.
    pub remote_head: Option<Oid>,
}

/// The journal of one repository.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal of `repo` (`<gitdir>/hexabase/journal`), whether enabled or not.
    pub fn of(repo: &Repository) -> Self {
        Self {
            dir: repo.path().join("hexabase").join("journal"),
        }
    }

    /// Turns the journal on for `repo`: from now on every commit the engine makes records
    /// its action. The folder's existence is the switch, so it holds across restarts and
    /// for every process writing the repository.
    pub fn enable(repo: &Repository) -> Result<Self, PushError> {
        let journal = Self::of(repo);
        let io = |source| PushError::Journal {
            path: journal.dir.clone(),
            source,
        };
        if !journal.dir.is_dir() {
            std::fs::create_dir_all(&journal.dir).map_err(io)?;
            if let Some(parent) = journal.dir.parent() {
                sync_dir(parent).map_err(io)?;
            }
        }
        Ok(journal)
    }

    /// Whether the journal is on.
    pub fn is_enabled(&self) -> bool {
        self.dir.is_dir()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `commit`.
    pub fn path(&self, commit: Oid) -> PathBuf {
        self.dir.join(format!("{commit}.json"))
    }

    /// Writes `entry` for `commit` durably: to a temporary file, fsynced, renamed, and the
    /// folder fsynced.
    pub fn write(&self, commit: Oid, entry: &JournalEntry) -> std::io::Result<()> {
        use std::io::Write as _;
        let path = self.path(commit);
        let tmp = self.dir.join(format!("{commit}.json.tmp"));
        let json = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)
    }

    /// The entry of `commit`, `None` when there is none.
    pub fn read(&self, commit: Oid) -> Result<Option<JournalEntry>, PushError> {
        let path = self.path(commit);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PushError::Journal { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| PushError::Corrupt { path, source })
    }

    /// Forgets `commit` (pushed, or replaced by a re-applied commit).
    pub fn remove(&self, commit: Oid) -> Result<(), PushError> {
        let path = self.path(commit);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(PushError::Journal { path, source }),
        }
    }

    /// Removes entry and temporary files older than `age` whose commit is not in `keep`;
    /// returns how many.
    pub fn prune(&self, keep: &BTreeSet<Oid>, age: Duration) -> Result<usize, PushError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| PushError::Journal { path, source }
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(PushError::Journal {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let Some(commit) = name
                .to_str()
                .and_then(|n| n.split('.').next())
                .and_then(|id| Oid::from_str(id).ok())
            else {
                continue;
            };
            let path = entry.path();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(io(&path))?
                .elapsed()
                .is_ok_and(|elapsed| elapsed >= age);
            if entry.file_type().is_ok_and(|t| t.is_file()) && old && !keep.contains(&commit) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(PushError::Journal { path, source }),
                }
            }
        }
        Ok(removed)
    }

    /// Moves the entry of a dropped action to `dropped/`, for people to look at.
    pub fn set_aside(&self, commit: Oid) -> Result<(), PushError> {
        let dropped = self.dir.join("dropped");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| PushError::Journal { path, source }
        };
        std::fs::create_dir_all(&dropped).map_err(io(&dropped))?;
        let from = self.path(commit);
        match std::fs::rename(&from, dropped.join(format!("{commit}.json"))) {
            Ok(()) => sync_dir(&self.dir).map_err(io(&self.dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(PushError::Journal { path: from, source }),
        }
    }
}

/// The engine's hook: records `action` for `commit` when the journal of `repo` is on.
/// Called after the commit object is written and before any branch points at it.
pub(crate) fn record(
    repo: &Repository,
    commit: Oid,
    meta: &ActionMeta,
    action: &Action,
) -> Result<(), ApplyError> {
    record_change(repo, commit, meta, || {
        Change::Action(Box::new(action.clone()))
    })
}

/// [`record`] for an import of `files`.
pub(crate) fn record_import(
    repo: &Repository,
    commit: Oid,
    meta: &ActionMeta,
    files: &compiler::IntentFiles,
    subject: &str,
) -> Result<(), ApplyError> {
    record_change(repo, commit, meta, || Change::Import {
        files: files.clone(),
        subject: subject.to_owned(),
    })
}

/// Journals the change `change()` for `commit` when the journal of `repo` is on.
fn record_change(
    repo: &Repository,
    commit: Oid,
    meta: &ActionMeta,
    change: impl FnOnce() -> Change,
) -> Result<(), ApplyError> {
    let journal = Journal::of(repo);
    if !journal.is_enabled() {
        return Ok(());
    }
    let entry = JournalEntry {
        meta: meta.clone(),
        change: change(),
    };
    journal
        .write(commit, &entry)
        .map_err(|e| ApplyError::Journal(journal.path(commit).display().to_string(), e))
}

/// Fsyncs a folder, so that a rename or a new entry in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Makes a remote branch catch up with the engine's local branch.
pub struct Pusher {
    engine: Arc<Engine>,
    remote: Remote,
    journal: Journal,
    /// The request ids on the remote branch (as last fetched), so a pending commit the
    /// remote already holds is not applied twice.
    remote_requests: RequestIndex,
    /// One push or sync at a time in this process.
    lock: Mutex<()>,
}

impl Pusher {
    /// A pusher for `engine`'s branch to `remote`; turns the journal on.
    pub fn new(engine: Arc<Engine>, remote: Remote) -> Result<Self, PushError> {
        let repo = engine.gitops().repo()?;
        let journal = Journal::enable(&repo)?;
        Ok(Self {
            engine,
            remote,
            journal,
            remote_requests: RequestIndex::default(),
            lock: Mutex::new(()),
        })
    }

    /// The remote.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The branch's short name (`main`).
    fn branch(&self) -> String {
        let full = self.engine.gitops().branch_ref();
        full.strip_prefix("refs/heads/").unwrap_or(&full).to_owned()
    }

    /// Commits on the local branch the remote does not have yet (as last seen), oldest first.
    pub fn pending(&self) -> Result<Vec<Oid>, PushError> {
        let repo = self.engine.gitops().repo()?;
        let Some(local) = self.engine.gitops().head(&repo)? else {
            return Ok(Vec::new());
        };
        let tracking = self.remote.tracking(&repo, &self.branch())?;
        between(&repo, local, tracking)
    }

    /// Fetches the remote branch and brings the local branch up to it: a fast-forward when
    /// we have nothing pending, a re-apply of our pending actions on its head otherwise.
    /// Pushes nothing.
    pub fn sync(&self) -> Result<PushReport, PushError> {
        let _guard = self
            .lock
            .lock()
            .expect("the push lock is never poisoned: push code does not panic");
        let repo = self.engine.gitops().repo()?;
        let mut report = PushReport::default();
        self.integrate(&repo, &mut report)?;
        Ok(report)
    }

    /// Pushes every pending commit, in order. A refused push is a fetch, a re-apply of our
    /// pending actions on the remote's head, and another push. With the remote down this
    /// fails and keeps everything pending for the next call.
    pub fn push_pending(&self) -> Result<PushReport, PushError> {
        let _guard = self
            .lock
            .lock()
            .expect("the push lock is never poisoned: push code does not panic");
        let repo = self.engine.gitops().repo()?;
        let branch = self.branch();
        let mut report = PushReport::default();
        for _ in 0..MAX_ROUNDS {
            let Some(local) = self.engine.gitops().head(&repo)? else {
                return Ok(report);
            };
            let mut tracking = self.remote.tracking(&repo, &branch)?;
            if tracking.is_none() {
                // Never fetched (a fresh clone, a new remote): learn what the remote has, so
                // that only what it lacks is pending.
                tracking = self.remote.fetch(&repo, &branch)?;
            }
            let up_to_date = match tracking {
                Some(t) => t == local || graph_descends(&repo, t, local)?,
                None => false,
            };
            if up_to_date {
                report.remote_head = tracking;
                // Nothing is pending: old journal files are orphans.
                self.journal.prune(&BTreeSet::new(), ORPHAN_AGE)?;
                return Ok(report);
            }
            // Crash tests (`failpoints` feature): before the push, and after the remote took
            // it but before the journal files of the pushed commits are removed.
            crate::gitops::failpoint!("push-before-push");
            match self.remote.push(&repo, local, &branch) {
                Ok(()) => {
                    crate::gitops::failpoint!("push-pushed");
                    let pushed = between(&repo, local, tracking)?;
                    for commit in &pushed {
                        self.journal.remove(*commit)?;
                    }
                    report.pushed.extend(pushed);
                    report.remote_head = Some(local);
                }
                Err(rejected @ RemoteError::Rejected { .. }) => {
                    report.rejected += 1;
                    self.integrate(&repo, &mut report)?;
                    // Nothing new on the remote to build on: the refusal was not a race
                    // (a hook, a protected branch), and pushing again would not help.
                    if self.engine.gitops().head(&repo)? == Some(local) {
                        return Err(rejected.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(PushError::Contention(MAX_ROUNDS))
    }

    /// Fetches, then moves the local branch onto the remote's head (see [`Pusher::sync`]).
    fn integrate(&self, repo: &Repository, report: &mut PushReport) -> Result<(), PushError> {
        let gitops = self.engine.gitops();
        let branch_ref = gitops.branch_ref();
        let remote = self.remote.fetch(repo, &self.branch())?;
        crate::gitops::failpoint!("push-fetched");
        report.remote_head = remote;
        let Some(remote) = remote else {
            return Ok(());
        };
        for _ in 0..MAX_ROUNDS {
            let Some(local) = gitops.head(repo)? else {
                match gitops.move_ref(repo, &branch_ref, None, remote, "hexabase: fetch") {
                    Err(GitOpsError::Moved { .. }) => continue,
                    done => return Ok(done?),
                }
            };
            if local == remote || graph_descends(repo, local, remote)? {
                return Ok(());
            }
            if graph_descends(repo, remote, local)? {
                let reflog = "hexabase: fast-forward to the remote";
                match gitops.move_ref(repo, &branch_ref, Some(local), remote, reflog) {
                    Err(GitOpsError::Moved { .. }) => continue,
                    done => return Ok(done?),
                }
            }
            // Diverged: our pending actions again, in order, on the remote's head.
            let pending = between(repo, local, Some(remote))?;
            let mut replay = Replay {
                head: remote,
                replayed: Vec::new(),
                absorbed: Vec::new(),
                already_on_remote: Vec::new(),
                dropped: Vec::new(),
            };
            if let Err(e) = self.replay(repo, &pending, &mut replay) {
                self.forget(&replay.replayed)?;
                return Err(e);
            }
            crate::gitops::failpoint!("push-replayed");
            let reflog = "hexabase: re-apply pending actions on the remote";
            match gitops.move_ref(repo, &branch_ref, Some(local), replay.head, reflog) {
                Ok(()) => {
                    crate::gitops::failpoint!("push-branch-moved");
                    for (old, _) in &replay.replayed {
                        self.journal.remove(*old)?;
                    }
                    for old in &replay.absorbed {
                        self.journal.remove(*old)?;
                    }
                    for (old, _) in &replay.already_on_remote {
                        self.journal.remove(*old)?;
                    }
                    for dropped in &replay.dropped {
                        self.journal.set_aside(dropped.commit)?;
                    }
                    report.replayed.extend(replay.replayed);
                    report.absorbed.extend(replay.absorbed);
                    report.already_on_remote.extend(replay.already_on_remote);
                    report.dropped.extend(replay.dropped);
                    return Ok(());
                }
                // The engine committed meanwhile: start again with the longer queue.
                Err(GitOpsError::Moved { .. }) => self.forget(&replay.replayed)?,
                Err(e) => {
                    self.forget(&replay.replayed)?;
                    return Err(e.into());
                }
            }
        }
        Err(PushError::Contention(MAX_ROUNDS))
    }

    /// Applies the actions of `pending` one after the other from `replay.head`, skipping
    /// those whose request the remote already holds.
    fn replay(
        &self,
        repo: &Repository,
        pending: &[Oid],
        replay: &mut Replay,
    ) -> Result<(), PushError> {
        let remote = replay.head;
        for &commit in pending {
            let entry = self
                .journal
                .read(commit)?
                .ok_or(PushError::Unjournaled { commit })?;
            if let Some((theirs, _)) =
                self.remote_requests
                    .find(repo, Some(remote), &entry.meta.request_id)?
            {
                replay.already_on_remote.push((commit, theirs));
                continue;
            }
            let applied = match &entry.change {
                Change::Action(action) => {
                    self.engine
                        .apply_on(repo, Some(replay.head), &entry.meta, action)
                }
                Change::Import { files, subject } => {
                    self.engine
                        .import_on(repo, Some(replay.head), &entry.meta, files, subject)
                }
            };
            match applied {
                Ok(Outcome::Committed { commit: new, .. }) => {
                    let new = Oid::from_str(&new).map_err(GitOpsError::Git)?;
                    replay.replayed.push((commit, new));
                    replay.head = new;
                }
                Ok(Outcome::Unchanged) => replay.absorbed.push(commit),
                Ok(Outcome::AlreadyApplied { commit: theirs }) => {
                    let theirs = Oid::from_str(&theirs).map_err(GitOpsError::Git)?;
                    replay.already_on_remote.push((commit, theirs));
                }
                Err(e @ (ApplyError::Action(_) | ApplyError::Invalid(_))) => {
                    replay.dropped.push(Dropped {
                        commit,
                        change: entry.change,
                        reason: describe(&e),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes the journal entries of re-applied commits no branch will reach.
    fn forget(&self, replayed: &[(Oid, Oid)]) -> Result<(), PushError> {
        for (_, new) in replayed {
            self.journal.remove(*new)?;
        }
        Ok(())
    }
}

/// The outcome of re-applying a queue of actions.
struct Replay {
    head: Oid,
    replayed: Vec<(Oid, Oid)>,
    absorbed: Vec<Oid>,
    already_on_remote: Vec<(Oid, Oid)>,
    dropped: Vec<Dropped>,
}

/// An action's failure in plain words, with the compiler's findings.
fn describe(e: &ApplyError) -> String {
    match e {
        ApplyError::Invalid(diagnostics) => {
            let details: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            format!("{e}: {}", details.join("; "))
        }
        e => e.to_string(),
    }
}

/// Whether `commit` strictly descends from `ancestor`.
fn graph_descends(repo: &Repository, commit: Oid, ancestor: Oid) -> Result<bool, PushError> {
    repo.graph_descendant_of(commit, ancestor)
        .map_err(|e| GitOpsError::Git(e).into())
}

/// Commits reachable from `from` and not from `hide`, oldest first.
fn between(repo: &Repository, from: Oid, hide: Option<Oid>) -> Result<Vec<Oid>, PushError> {
    let git = |e| PushError::GitOps(GitOpsError::Git(e));
    let mut walk = repo.revwalk().map_err(git)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git)?;
    walk.push(from).map_err(git)?;
    if let Some(hide) = hide {
        walk.hide(hide).map_err(git)?;
    }
    walk.collect::<Result<Vec<_>, _>>().map_err(git)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_entries_of_actions_and_imports_round_trip_and_old_ones_still_read() {
        let meta = ActionMeta {
            actor: crate::gitops::Identity {
                name: "Ann".into(),
                email: "ann@example.com".into(),
            },
            request_id: "r1".into(),
            actor_id: None,
            digest: None,
        };
        let action = Action::CreateProject {
            org: "acme".into(),
            workspace: "dev".into(),
            project: "web".into(),
            display_name: None,
        };
        // What the journal held before imports were journaled.
        let old = serde_json::json!({"meta": meta, "action": action});
        let entry: JournalEntry = serde_json::from_value(old.clone()).expect("old entry");
        assert_eq!(entry.change, Change::Action(Box::new(action)));
        assert_eq!(serde_json::to_value(&entry).expect("json"), old);
        let import = JournalEntry {
            meta,
            change: Change::Import {
                files: [("platform.yaml".to_owned(), "x: 1\n".to_owned())].into(),
                subject: "platform: import intent".into(),
            },
        };
        let json = serde_json::to_string(&import).expect("json");
        let back: JournalEntry = serde_json::from_str(&json).expect("reads");
        assert_eq!(back.change, import.change);
        // Neither, or both: refused, not guessed.
        assert!(
            serde_json::from_str::<JournalEntry>(
                r#"{"meta":{"actor":{"name":"a","email":"b"},"request_id":"r"}}"#
            )
            .is_err()
        );
    }
}
