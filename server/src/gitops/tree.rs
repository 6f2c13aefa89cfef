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
    build(repo, base, &refs, written)
}

/// Returns the new tree's id, or `None` when it would be empty.
fn build(
    repo: &Repository,
    base: Option<&Tree<'_>>,
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
        if let Some(Edit::Write(bytes)) = own.iter().find(|e| matches!(e, Edit::Write(_))) {
            let id = Oid::hash_object(ObjectType::Blob, bytes).map_err(GitOpsError::Git)?;
            if existing != Some((id, Some(ObjectType::Blob))) {
                let blob = repo.blob(bytes).map_err(GitOpsError::Git)?;
                written.push(blob);
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
        let sub_base = match existing {
            Some((id, Some(ObjectType::Tree))) if !removed => {
                Some(repo.find_tree(id).map_err(GitOpsError::Git)?)
            }
            _ => None,
        };
        match build(repo, sub_base.as_ref(), &below, written)? {
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
    written.push(tree);
    Ok(Some(tree))
}
