//! References besides the engine's own branch move ([`super::GitOps::move_ref`]): review
//! branches looked up, moved by compare-and-swap and deleted.

use git2::{ErrorCode, Oid, Reference, Repository};

use super::GitOpsError;

/// Whether `branch` is a valid branch name (`refs/heads/<branch>` is a valid reference).
pub fn is_valid_branch(branch: &str) -> bool {
    Reference::is_valid_name(&format!("refs/heads/{branch}"))
}

/// The commit `refname` points at; `None` when there is no such reference.
pub fn target(repo: &Repository, refname: &str) -> Result<Option<Oid>, GitOpsError> {
    match repo.refname_to_id(refname) {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(GitOpsError::Git(e)),
    }
}

/// Points `refname` at `new` if it points at `expected`, or, with `expected` `None`, if it
/// does not exist yet; an error when it does not (or the update failed).
pub fn update(
    repo: &Repository,
    refname: &str,
    new: Oid,
    expected: Option<Oid>,
    reflog: &str,
) -> Result<(), GitOpsError> {
    match expected {
        Some(expected) => repo.reference_matching(refname, new, true, expected, reflog),
        None => repo.reference(refname, new, false, reflog),
    }
    .map(drop)
    .map_err(GitOpsError::Git)
}

/// Deletes `refname` when it exists.
pub fn delete(repo: &Repository, refname: &str) -> Result<(), GitOpsError> {
    if let Ok(mut reference) = repo.find_reference(refname) {
        reference.delete().map_err(GitOpsError::Git)?;
    }
    Ok(())
}
