//! Reading the files of one revision without changing the repository (for `hb check`).

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::GitOpsError;

/// The mode of a symbolic link in a Git tree.
const LINK_MODE: i32 = 0o120_000;

/// Some files of one commit.
#[derive(Debug, Clone)]
pub struct RevisionFiles {
    /// The commit the revision names.
    pub commit: Oid,
    /// The files asked for, by `/`-separated path.
    pub files: BTreeMap<String, String>,
    /// Every symbolic link (mode 120000) of the revision, by path; never in `files`.
    pub links: Vec<String>,
}

/// The files of revision `rev` (anything `git rev-parse` takes: `HEAD`, a branch, a commit
/// id) of the repository at `path` (a bare repository or a work tree) whose path `wanted`
/// accepts. Opens the repository read-only: no lock, no configuration written.
pub fn read(
    path: &Path,
    rev: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<RevisionFiles, GitOpsError> {
    let repo = Repository::open(path).map_err(|source| GitOpsError::Open {
        path: path.to_owned(),
        source,
    })?;
    let revision = |source| GitOpsError::Revision {
        rev: rev.to_owned(),
        source,
    };
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(revision)?;
    let tree = commit.tree().map_err(GitOpsError::Git)?;
    let mut blobs = Vec::new();
    let mut links = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(ObjectType::Blob)
            && let Ok(name) = entry.name()
        {
            let path = format!("{dir}{name}");
            if entry.filemode() == LINK_MODE {
                // A link to a folder can have any name: every link is listed.
                links.push(path);
            } else if wanted(&path) {
                blobs.push((path, entry.id()));
            }
        }
        TreeWalkResult::Ok
    })
    .map_err(GitOpsError::Git)?;
    let mut files = BTreeMap::new();
    for (path, id) in blobs {
        let blob = repo.find_blob(id).map_err(GitOpsError::Git)?;
        let Ok(text) = String::from_utf8(blob.content().to_vec()) else {
            return Err(GitOpsError::NotText { path });
        };
        files.insert(path, text);
    }
    Ok(RevisionFiles {
        commit: commit.id(),
        files,
        links,
    })
}
