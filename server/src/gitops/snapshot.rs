//! Snapshots: the intent at a commit, derived from a recent one by a diff of the two
//! `intent/` trees, kept for the next reader (single-flight while one is derived).

use super::*;

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

impl GitOps {
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
}

/// The intent at `commit`, derived from `last` (when it has an intent tree, or is of an
/// unborn branch) by a diff of the two `intent/` trees, read through `reader`.
pub(super) fn derive(
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
