//! Building a new tree from a parent tree in memory, touching only the changed paths.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, Repository, Tree};

use super::GitOpsError;

const FILE_MODE: i32 = 0o100_644;
const TREE_MODE: i32 = 0o040_000;

/// What to do at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Write this file.
    Write(Vec<u8>),
    /// Remove the file or the whole folder at this path.
    Remove,
    /// Put this tree (already in the object database) at this path, replacing what is there.
    Tree(Oid),
}

/// Applies `edits` (path from the repository root to edit) to `base`. A removal and writes
/// below the same folder mean "replace the folder". Folders left empty disappear.
/// Unchanged blobs are not written again, so an edit that changes nothing costs no IO.
pub fn apply(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    edits: &BTreeMap<String, Edit>,
) -> Result<Option<Oid>, GitOpsError> {
    apply_into(repo, base, edits, &mut Vec::new())
}

/// [`apply`], adding the ids of the blobs and trees it writes to `written` (for
/// [`super::GitOps::write_pack`]).
pub fn apply_into(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    edits: &BTreeMap<String, Edit>,
    written: &mut Vec<Oid>,
) -> Result<Option<Oid>, GitOpsError> {
    // Sorted by components, not by text, so that everything under one folder is contiguous
    // ("a/b" and "a/b/c" around "a/b-c" in text order).
    let mut edits: Vec<(Vec<&str>, &Edit)> = edits
        .iter()
        .map(|(p, e)| (p.split('/').collect(), e))
        .collect();
    edits.sort_by(|a, b| a.0.cmp(&b.0));
    let refs: Vec<(&[&str], &Edit)> = edits.iter().map(|(p, e)| (p.as_slice(), *e)).collect();
    build(repo, base, None, &refs, written)
}

/// Returns the new tree's id, or `None` when it would be empty.
/// `old` is what stood at this path before a removal of the whole folder (which `base` is
/// then not): its objects are on disk already, so a file or folder written again exactly as
/// it was is not written, nor packed, again.
fn build(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    old: Option<&Tree<'_>>,
    edits: &[(&[&str], &Edit)],
    written: &mut Vec<Oid>,
) -> Result<Option<Oid>, GitOpsError> {
    let mut builder = repo.treebuilder(base).map_err(GitOpsError::Git)?;
    // Whether any entry changed: an untouched tree is not written again (a removal of a
    // folder that is not there, say, walks down without changing anything).
    let mut changed = false;
    // Group edits by their first path component, keeping their order (paths are sorted).
    let mut i = 0;
    while i < edits.len() {
        let name = edits[i].0[0];
        let mut j = i;
        while j < edits.len() && edits[j].0[0] == name {
            j += 1;
        }
        let group = &edits[i..j];
        i = j;
        // The entry itself: a file write, or a removal of the file or folder.
        let own: Vec<&Edit> = group
            .iter()
            .filter(|(p, _)| p.len() == 1)
            .map(|(_, e)| *e)
            .collect();
        let below: Vec<(&[&str], &Edit)> = group
            .iter()
            .filter(|(p, _)| p.len() > 1)
            .map(|(p, e)| (&p[1..], *e))
            .collect();
        let existing = builder
            .get(name)
            .map_err(GitOpsError::Git)?
            .map(|e| (e.id(), e.kind()));
        let removed = own.iter().any(|e| matches!(e, Edit::Remove));
        if let Some(Edit::Tree(id)) = own.iter().find(|e| matches!(e, Edit::Tree(_))) {
            if existing != Some((*id, Some(ObjectType::Tree))) {
                builder
                    .insert(name, *id, TREE_MODE)
                    .map_err(GitOpsError::Git)?;
                changed = true;
            }
            continue;
        }
        if let Some(Edit::Write(bytes)) = own.iter().find(|e| matches!(e, Edit::Write(_))) {
            let id = Oid::hash_object(ObjectType::Blob, bytes).map_err(GitOpsError::Git)?;
            if existing != Some((id, Some(ObjectType::Blob))) {
                let stored = old
                    .and_then(|o| o.get_name(name))
                    .is_some_and(|e| e.id() == id && e.kind() == Some(ObjectType::Blob));
                let blob = if stored {
                    id
                } else {
                    let blob = repo.blob(bytes).map_err(GitOpsError::Git)?;
                    written.push(blob);
                    blob
                };
                builder
                    .insert(name, blob, FILE_MODE)
                    .map_err(GitOpsError::Git)?;
                changed = true;
            }
            continue;
        }
        if below.is_empty() {
            if removed && existing.is_some() {
                builder.remove(name).map_err(GitOpsError::Git)?;
                changed = true;
            }
            continue;
        }
        let (sub_base, sub_old) = match existing {
            Some((id, Some(ObjectType::Tree))) => {
                let tree = repo.find_tree(id).map_err(GitOpsError::Git)?;
                if removed {
                    (None, Some(tree))
                } else {
                    (Some(tree), None)
                }
            }
            // Below a replaced folder: what stood here before it was replaced.
            _ => match old.and_then(|o| o.get_name(name)) {
                Some(e) if e.kind() == Some(ObjectType::Tree) => (
                    None,
                    Some(repo.find_tree(e.id()).map_err(GitOpsError::Git)?),
                ),
                _ => (None, None),
            },
        };
        match build(repo, sub_base.as_ref(), sub_old.as_ref(), &below, written)? {
            Some(id) => {
                if existing != Some((id, Some(ObjectType::Tree))) {
                    builder
                        .insert(name, id, TREE_MODE)
                        .map_err(GitOpsError::Git)?;
                    changed = true;
                }
            }
            None => {
                if existing.is_some() {
                    builder.remove(name).map_err(GitOpsError::Git)?;
                    changed = true;
                }
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    if let Some(base) = base
        && !changed
    {
        return Ok(Some(base.id()));
    }
    let tree = builder.write().map_err(GitOpsError::Git)?;
    if old.map(Tree::id) != Some(tree) {
        written.push(tree);
    }
    Ok(Some(tree))
}
