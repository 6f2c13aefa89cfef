//! Edits of a tree by path; the tree is built by [`super::objects::Reader::build`].

use std::collections::BTreeMap;

use git2::{Oid, Repository, Tree};

use super::GitOpsError;
pub use super::objects::Edit;
use super::objects::{NewObjects, Reader, TreeCache};

/// Applies `edits` (path from the repository root to edit) to `base` and writes the new
/// objects into `repo` as loose objects; the new tree, `None` when nothing is left. For
/// commits made outside the engine (tests, tools); the engine packs its objects instead.
pub fn apply(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    edits: &BTreeMap<String, Edit>,
) -> Result<Option<Oid>, GitOpsError> {
    let cache = TreeCache::default();
    let mut out = NewObjects::default();
    let tree = Reader::new(repo, &cache, Vec::new()).build(base.map(Tree::id), edits, &mut out)?;
    out.write_loose(repo)?;
    Ok(tree)
}
