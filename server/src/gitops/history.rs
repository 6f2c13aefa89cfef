//! Reading commits: their trailers, parents and trees, and walks between two commits.

use git2::{Oid, Repository, Sort};

use super::{CommitMessage, GitOpsError, Trailers};

/// The `Hexabase-*` trailers of `commit`; `None` when its message is not UTF-8 or has none.
pub fn trailers(repo: &Repository, commit: Oid) -> Result<Option<Trailers>, GitOpsError> {
    let commit = repo.find_commit(commit).map_err(GitOpsError::Git)?;
    Ok(commit
        .message()
        .ok()
        .and_then(CommitMessage::parse_trailers))
}

/// The first parent of `commit`; `None` for a root commit.
pub fn first_parent(repo: &Repository, commit: Oid) -> Result<Option<Oid>, GitOpsError> {
    let commit = repo.find_commit(commit).map_err(GitOpsError::Git)?;
    Ok(commit.parent_ids().next())
}

/// The root tree of `commit`.
pub fn tree_of(repo: &Repository, commit: Oid) -> Result<Oid, GitOpsError> {
    repo.find_commit(commit)
        .map(|c| c.tree_id())
        .map_err(GitOpsError::Git)
}

/// Whether `commit` strictly descends from `ancestor`.
pub fn descends(repo: &Repository, commit: Oid, ancestor: Oid) -> Result<bool, GitOpsError> {
    repo.graph_descendant_of(commit, ancestor)
        .map_err(GitOpsError::Git)
}

/// Commits reachable from `from` and not from `hide`, oldest first.
pub fn between(repo: &Repository, from: Oid, hide: Option<Oid>) -> Result<Vec<Oid>, GitOpsError> {
    let git = GitOpsError::Git;
    let mut walk = repo.revwalk().map_err(git)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git)?;
    walk.push(from).map_err(git)?;
    if let Some(hide) = hide {
        walk.hide(hide).map_err(git)?;
    }
    walk.collect::<Result<Vec<_>, _>>().map_err(git)
}
