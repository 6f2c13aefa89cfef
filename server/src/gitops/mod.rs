//! Everything that touches Git: reading intent at a commit, building trees in memory,
//! committing with compare-and-swap on the branch. Nothing else in the server uses git2.

mod message;
pub mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use compiler::{Diagnostic, Intent};
use git2::{Delta, ErrorCode, Oid, Repository, Tree};

pub use message::{CommitMessage, Trailers, sanitize_line};
pub use tree::Edit;

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
}

/// A person or bot, as Git records them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
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
    /// The last snapshot read or written, to follow the branch by diffs.
    last: Mutex<Option<Arc<Snapshot>>>,
}

impl GitOps {
    /// Opens (creating it as a bare repository if missing) the repository at `path`, with
    /// durable writes: objects and refs are fsynced before a ref points at them.
    pub fn open(path: &Path, branch: &str) -> Result<Self, GitOpsError> {
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
        let mut config = repo.config().map_err(open_err)?;
        // libgit2 fsyncs loose objects and refs when this is set (git itself reads it too).
        config
            .set_bool("core.fsyncObjectFiles", true)
            .map_err(open_err)?;
        if repo.is_bare() {
            repo.set_head(&format!("refs/heads/{branch}"))
                .map_err(open_err)?;
        }
        Ok(Self {
            path: path.to_owned(),
            branch: branch.to_owned(),
            last: Mutex::new(None),
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

    /// The branch head, `None` while the branch has no commit.
    pub fn head(&self, repo: &Repository) -> Result<Option<Oid>, GitOpsError> {
        match repo.refname_to_id(&self.branch_ref()) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitOpsError::Git(e)),
        }
    }

    /// The intent at `commit`, derived from the last snapshot by a tree diff.
    pub fn snapshot(
        &self,
        repo: &Repository,
        commit: Option<Oid>,
    ) -> Result<Arc<Snapshot>, GitOpsError> {
        let last = self
            .last
            .lock()
            .expect("snapshot lock is never poisoned: nothing panics under it")
            .clone();
        if let Some(last) = &last
            && last.commit == commit
        {
            return Ok(Arc::clone(last));
        }
        let tree = commit
            .map(|c| repo.find_commit(c).and_then(|c| c.tree()))
            .transpose()
            .map_err(GitOpsError::Git)?;
        let intent_tree = match &tree {
            Some(t) => match t.get_name("intent") {
                Some(e) if e.kind() == Some(git2::ObjectType::Tree) => Some(e.id()),
                _ => None,
            },
            None => None,
        };
        let base = last
            .filter(|l| l.intent_tree.is_some() || l.commit.is_none())
            .unwrap_or_default();
        let mut next = Snapshot {
            commit,
            tree: tree.as_ref().map(Tree::id),
            intent_tree,
            intent: base.intent.clone(),
            problems: base.problems.clone(),
        };
        if base.intent_tree != intent_tree {
            let old = base
                .intent_tree
                .map(|id| repo.find_tree(id))
                .transpose()
                .map_err(GitOpsError::Git)?;
            let new = intent_tree
                .map(|id| repo.find_tree(id))
                .transpose()
                .map_err(GitOpsError::Git)?;
            let diff = repo
                .diff_tree_to_tree(old.as_ref(), new.as_ref(), None)
                .map_err(GitOpsError::Git)?;
            for delta in diff.deltas() {
                let file = if delta.status() == Delta::Deleted {
                    delta.old_file()
                } else {
                    delta.new_file()
                };
                let Some(path) = file.path().and_then(Path::to_str).map(str::to_owned) else {
                    continue;
                };
                let text = if delta.status() == Delta::Deleted {
                    None
                } else {
                    let blob = repo.find_blob(file.id()).map_err(GitOpsError::Git)?;
                    Some(String::from_utf8_lossy(blob.content()).into_owned())
                };
                let problems = next.intent.set_file(&path, text.as_deref());
                if problems.is_empty() {
                    next.problems.remove(&path);
                } else {
                    next.problems.insert(path, problems);
                }
            }
        }
        let next = Arc::new(next);
        self.remember(&next);
        Ok(next)
    }

    /// Makes `snapshot` the base for the next diff.
    pub fn remember(&self, snapshot: &Arc<Snapshot>) {
        *self
            .last
            .lock()
            .expect("snapshot lock is never poisoned: nothing panics under it") =
            Some(Arc::clone(snapshot));
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
        let tree = repo.find_tree(tree).map_err(GitOpsError::Git)?;
        let author = git2::Signature::now(&author.name, &author.email).map_err(GitOpsError::Git)?;
        let committer =
            git2::Signature::now(&committer.name, &committer.email).map_err(GitOpsError::Git)?;
        let parents = parent
            .map(|p| repo.find_commit(p))
            .transpose()
            .map_err(GitOpsError::Git)?;
        let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let id = repo
            .commit(None, &author, &committer, message, &tree, &parent_refs)
            .map_err(GitOpsError::Git)?;
        let subject = message.lines().next().unwrap_or_default();
        let reflog = format!("hexabase: {subject}");
        let moved = |e: git2::Error| {
            if matches!(
                e.code(),
                ErrorCode::Modified | ErrorCode::Locked | ErrorCode::Exists
            ) {
                GitOpsError::Moved {
                    branch: self.branch.clone(),
                }
            } else {
                GitOpsError::Git(e)
            }
        };
        match current {
            Some(current) => repo
                .reference_matching(refname, id, true, current, &reflog)
                .map_err(moved)?,
            None => repo.reference(refname, id, false, &reflog).map_err(moved)?,
        };
        Ok(id)
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
