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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::apply::{ApplyError, Engine, Outcome};
use super::journal::{Change, Journal, JournalError};
use crate::gitops::remote::{Remote, RemoteError};
use crate::gitops::requests::RequestIndex;
use crate::gitops::{GitOpsError, Oid, Repository, history};

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
    /// A journal file could not be read or written, or is damaged.
    #[error(transparent)]
    Journal(#[from] JournalError),
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
        Ok(history::between(&repo, local, tracking)?)
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
                Some(t) => t == local || history::descends(&repo, t, local)?,
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
                    let pushed = history::between(&repo, local, tracking)?;
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
            if local == remote || history::descends(repo, local, remote)? {
                return Ok(());
            }
            if history::descends(repo, remote, local)? {
                let reflog = "hexabase: fast-forward to the remote";
                match gitops.move_ref(repo, &branch_ref, Some(local), remote, reflog) {
                    Err(GitOpsError::Moved { .. }) => continue,
                    done => return Ok(done?),
                }
            }
            // Diverged: our pending actions again, in order, on the remote's head.
            let pending = history::between(repo, local, Some(remote))?;
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
