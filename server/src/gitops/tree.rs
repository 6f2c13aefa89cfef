//! Edits of a tree by path; the tree is built by [`super::objects::Reader::build`].

use std::collections::BTreeMap;

use git2::{Oid, Repository, Tree};

use super::GitOpsError;
use super::objects::{NewObjects, Reader, TreeCache};

/// What to do at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Write this file.
    Write(Vec<u8>),
    /// Remove the file or the whole folder at this path.
    Remove,
    /// Put this tree (in the repository, or among the new objects of the same build) at this
    /// path, replacing what is there.
    Tree(Oid),
}

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
