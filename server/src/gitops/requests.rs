//! Exactly-once for retried requests: which request ids (`Hexabase-Request` trailers) a
//! branch already holds, and in which commit.
//!
//! A [`RequestIndex`] maps request ids to commits over the branch's recent history. It
//! remembers the head it last saw and, when asked about a newer head, reads only the
//! commits since then; when history was rewritten (the head no longer descends from it, as
//! after a push re-applied our actions on a newer remote head) it is rebuilt from the last
//! [`WINDOW`] commits. The engine tells it about its own commits ([`RequestIndex::note`]),
//! so an action on a branch only this process writes reads no history at all.
//!
//! The window: the index always covers at least the newest [`WINDOW`] commits of the branch
//! (it keeps the newest [`WINDOW`] commits that carry a request id, so commits by people
//! stretch it). A retry whose first commit is further back is not recognised, and is applied
//! again as a new request (most actions then fail their own precondition, "already exists").
//!
//! With each request id the index keeps the request's digest (`Hexabase-Request-Digest`),
//! so the engine can tell a retry (same digest) from another request that reuses the id.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use git2::{Oid, Repository};

use super::{CommitMessage, GitOpsError};

/// How many of a branch's newest commits the index covers, at least.
pub const WINDOW: usize = 10_000;

/// Request id → commit over the recent history of one branch (see the module docs).
#[derive(Debug)]
pub struct RequestIndex {
    window: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The head the index is up to date with; `None` before the first look.
    tip: Option<Oid>,
    /// The newest commit of each request id, and its request digest.
    by_request: HashMap<String, (Oid, Option<Box<str>>)>,
    /// The indexed commits, oldest first, at most `window`.
    order: VecDeque<(Oid, String)>,
}

impl Default for RequestIndex {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl RequestIndex {
    /// An empty index covering at least the newest `window` commits (at least one).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The commit reachable from `head` that carries `request`, if it is within the window,
    /// with the digest of the request that made it (`None` when the commit has none).
    /// An empty request id is never found.
    pub fn find(
        &self,
        repo: &Repository,
        head: Option<Oid>,
        request: &str,
    ) -> Result<Option<(Oid, Option<String>)>, GitOpsError> {
        let mut state = self.lock();
        state.catch_up(repo, head, self.window)?;
        if request.is_empty() {
            return Ok(None);
        }
        Ok(state
            .by_request
            .get(request)
            .map(|(commit, digest)| (*commit, digest.as_deref().map(str::to_owned))))
    }

    /// Records that `commit`, made on `parent`, carries `request` (with `digest`), when the
    /// index is up to date with `parent`; otherwise the next [`RequestIndex::find`] reads it
    /// from Git.
    pub fn note(&self, parent: Option<Oid>, commit: Oid, request: &str, digest: Option<&str>) {
        let mut state = self.lock();
        if state.tip.is_some() && state.tip == parent {
            state.push(
                commit,
                request.to_owned(),
                digest.map(Box::from),
                self.window,
            );
            state.tip = Some(commit);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("the request index is never poisoned: nothing panics under its lock")
    }
}

impl State {
    /// Brings the index up to `head`: the commits since the last tip, or the newest `window`
    /// commits when there is no usable tip.
    fn catch_up(
        &mut self,
        repo: &Repository,
        head: Option<Oid>,
        window: usize,
    ) -> Result<(), GitOpsError> {
        let git = GitOpsError::Git;
        let Some(head) = head else {
            *self = Self {
                tip: None,
                ..Self::default()
            };
            return Ok(());
        };
        if self.tip == Some(head) {
            return Ok(());
        }
        // A tip that is gone (garbage-collected after a rewrite) is no tip.
        let from = self
            .tip
            .filter(|&tip| repo.graph_descendant_of(head, tip).unwrap_or(false));
        let mut walk = repo.revwalk().map_err(git)?;
        walk.push(head).map_err(git)?;
        if let Some(tip) = from {
            walk.hide(tip).map_err(git)?;
        }
        let mut walked = 0;
        let mut found = Vec::new();
        for id in walk.take(window) {
            let id = id.map_err(git)?;
            walked += 1;
            let commit = repo.find_commit(id).map_err(git)?;
            let trailers = commit
                .message()
                .ok()
                .and_then(CommitMessage::parse_trailers)
                .filter(|t| !t.request.is_empty());
            if let Some(t) = trailers {
                found.push((id, t.request, t.digest.map(String::into_boxed_str)));
            }
        }
        if from.is_none() || walked >= window {
            self.by_request.clear();
            self.order.clear();
        }
        // The walk is newest first; the index keeps oldest first.
        for (id, request, digest) in found.into_iter().rev() {
            self.push(id, request, digest, window);
        }
        self.tip = Some(head);
        Ok(())
    }

    fn push(&mut self, commit: Oid, request: String, digest: Option<Box<str>>, window: usize) {
        if request.is_empty() {
            return;
        }
        self.by_request.insert(request.clone(), (commit, digest));
        self.order.push_back((commit, request));
        while self.order.len() > window {
            let Some((old, request)) = self.order.pop_front() else {
                break;
            };
            if self.by_request.get(&request).map(|(c, _)| *c) == Some(old) {
                self.by_request.remove(&request);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit on `parent` carrying `request` (none when empty), moving `main`.
    fn commit(repo: &Repository, parent: Option<Oid>, request: &str, n: usize) -> Oid {
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(n as i64, 0))
            .expect("signature");
        let tree = repo
            .treebuilder(None)
            .and_then(|b| b.write())
            .expect("tree");
        let tree = repo.find_tree(tree).expect("tree");
        let parents: Vec<git2::Commit<'_>> = parent
            .map(|p| repo.find_commit(p).expect("parent"))
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let message = if request.is_empty() {
            format!("by hand {n}\n")
        } else {
            format!(
                "change {n}\n\nHexabase-Action: x\nHexabase-Request: {request}\nHexabase-Request-Digest: d-{request}\n"
            )
        };
        let id = repo
            .commit(None, &sig, &sig, &message, &tree, &parents)
            .expect("commit");
        repo.reference("refs/heads/main", id, true, "test")
            .expect("branch");
        id
    }

    /// The commit `index` finds for `request` at `head`.
    fn at(
        index: &RequestIndex,
        repo: &Repository,
        head: Option<Oid>,
        request: &str,
    ) -> Option<Oid> {
        index
            .find(repo, head, request)
            .expect("find")
            .map(|(c, _)| c)
    }

    fn repo(name: &str) -> (std::path::PathBuf, Repository) {
        let path = std::env::temp_dir().join(format!("hb-requests-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let repo = Repository::init_bare(&path).expect("repository");
        (path, repo)
    }

    #[test]
    fn finds_requests_extends_from_its_tip_and_forgets_beyond_the_window() {
        let (path, repo) = repo("window");
        let index = RequestIndex::new(3);
        assert_eq!(at(&index, &repo, None, "a"), None);
        let a = commit(&repo, None, "a", 1);
        let manual = commit(&repo, Some(a), "", 2);
        let b = commit(&repo, Some(manual), "b", 3);
        assert_eq!(at(&index, &repo, Some(b), "a"), Some(a));
        assert_eq!(at(&index, &repo, Some(b), "b"), Some(b));
        assert_eq!(at(&index, &repo, Some(b), ""), None);
        // Extended by what the engine tells it, and by reading the commits since its tip.
        let c = commit(&repo, Some(b), "c", 4);
        index.note(Some(b), c, "c", Some("d-c"));
        let d = commit(&repo, Some(c), "d", 5);
        assert_eq!(at(&index, &repo, Some(d), "d"), Some(d));
        assert_eq!(at(&index, &repo, Some(d), "c"), Some(c));
        // Three commits with requests are kept: `a` has left the window.
        assert_eq!(at(&index, &repo, Some(d), "a"), None);
        // The digest comes back with the commit, from Git and from what the engine noted.
        assert_eq!(
            index.find(&repo, Some(d), "c").expect("find"),
            Some((c, Some("d-c".to_owned())))
        );
        assert_eq!(
            index.find(&repo, Some(d), "d").expect("find"),
            Some((d, Some("d-d".to_owned())))
        );
        assert_eq!(at(&index, &repo, Some(d), "b"), Some(b));
        let _ = std::fs::remove_dir_all(path);
    }

    #[test]
    fn rewritten_history_is_read_again() {
        let (path, repo) = repo("rewrite");
        let index = RequestIndex::default();
        let a = commit(&repo, None, "a", 1);
        let b = commit(&repo, Some(a), "b", 2);
        assert_eq!(at(&index, &repo, Some(b), "b"), Some(b));
        // `b` is replaced by `b2` on another parent: `b` must not be answered any more.
        let x = commit(&repo, Some(a), "x", 3);
        let b2 = commit(&repo, Some(x), "b", 4);
        assert_eq!(at(&index, &repo, Some(b2), "b"), Some(b2));
        assert_eq!(at(&index, &repo, Some(b2), "x"), Some(x));
        // A note against a head it has not seen is ignored rather than trusted.
        index.note(Some(b), a, "stale", None);
        assert_eq!(at(&index, &repo, Some(b2), "stale"), None);
        // Back to an unborn branch: nothing is known.
        assert_eq!(at(&index, &repo, None, "a"), None);
        let _ = std::fs::remove_dir_all(path);
    }
}
