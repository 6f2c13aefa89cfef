//! One commit's change, read for a person: its facts and the old and new content of every
//! changed file under the given folders, against its first parent. What the change means
//! (a diff of the intent, the rendered objects added, changed and removed) is worked out in
//! `service::audit::commit`; this module only reads Git.

use std::path::Path;

use git2::{Delta, DiffOptions, ErrorCode, ObjectType, Oid, Repository};

use super::{CommitMessage, GitOpsError, Trailers};

/// Files larger than this are reported without their content.
pub const MAX_FILE_BYTES: usize = 512 * 1024;
/// At most this many changed files are read; the rest are counted in [`CommitChange::more`].
pub const MAX_FILES: usize = 2_000;

/// One changed file: `None` content on a side means the file does not exist there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path in the repository.
    pub path: String,
    /// The content before, when it existed, is UTF-8 and not too large.
    pub old: Option<String>,
    /// The content after, under the same conditions.
    pub new: Option<String>,
    /// The file existed before.
    pub existed: bool,
    /// The file exists after.
    pub exists: bool,
    /// A side was left out: binary, not UTF-8, or over [`MAX_FILE_BYTES`].
    pub omitted: bool,
}

/// A commit and its changed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitChange {
    /// The full commit id.
    pub id: String,
    /// The first parent, when there is one.
    pub parent: Option<String>,
    /// The Git author, `Name <email>`.
    pub author: String,
    /// The Git committer, `Name <email>`.
    pub committer: String,
    /// Committer time, seconds since the Unix epoch.
    pub time: i64,
    /// The committer's UTC offset, in minutes.
    pub offset_minutes: i32,
    /// The first line of the message.
    pub subject: String,
    /// The `Hexabase-*` trailers; `None` for commits made by people.
    pub trailers: Option<Trailers>,
    /// The changed files under the asked folders, in path order.
    pub files: Vec<FileChange>,
    /// Changed files not read because of [`MAX_FILES`].
    pub more: usize,
}

/// Reads the commit `id` (40 hex digits, or an abbreviation of at least 7) of the repository
/// at `repo_path` when it is the tip of `branch` or one of its ancestors, with its changes
/// under `folders` (`"intent/"`): `None` when there is no such commit on the branch.
pub fn read_change(
    repo_path: &Path,
    branch: &str,
    id: &str,
    folders: &[&str],
) -> Result<Option<CommitChange>, GitOpsError> {
    if !(7..=40).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let git = GitOpsError::Git;
    let repo = Repository::open(repo_path).map_err(|source| GitOpsError::Open {
        path: repo_path.to_owned(),
        source,
    })?;
    let commit = match repo.find_object_by_prefix(id, Some(ObjectType::Commit)) {
        Ok(object) => object.peel_to_commit().map_err(git)?,
        Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::Ambiguous) => {
            return Ok(None);
        }
        Err(e) => return Err(git(e)),
    };
    let tip = match repo.refname_to_id(&format!("refs/heads/{branch}")) {
        Ok(tip) => tip,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(git(e)),
    };
    if tip != commit.id() && !repo.graph_descendant_of(tip, commit.id()).map_err(git)? {
        return Ok(None);
    }
    let parent = commit.parents().next();
    let old_tree = parent.as_ref().map(|p| p.tree()).transpose().map_err(git)?;
    let new_tree = commit.tree().map_err(git)?;
    let mut options = DiffOptions::new();
    for folder in folders {
        options.pathspec(*folder);
    }
    let diff = repo
        .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), Some(&mut options))
        .map_err(git)?;
    let mut files = Vec::new();
    let mut more = 0;
    for delta in diff.deltas() {
        let Some(path) = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .and_then(Path::to_str)
        else {
            continue;
        };
        if files.len() >= MAX_FILES {
            more += 1;
            continue;
        }
        let existed = !matches!(delta.status(), Delta::Added);
        let exists = !matches!(delta.status(), Delta::Deleted);
        let mut omitted = false;
        let mut text = |present: bool, oid: Oid| -> Result<Option<String>, GitOpsError> {
            if !present {
                return Ok(None);
            }
            let blob = repo.find_blob(oid).map_err(git)?;
            if blob.size() > MAX_FILE_BYTES || blob.is_binary() {
                omitted = true;
                return Ok(None);
            }
            let content = std::str::from_utf8(blob.content()).ok().map(str::to_owned);
            omitted |= content.is_none();
            Ok(content)
        };
        let old = text(existed, delta.old_file().id())?;
        let new = text(exists, delta.new_file().id())?;
        files.push(FileChange {
            path: path.to_owned(),
            old,
            new,
            existed,
            exists,
            omitted,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let signature = |s: git2::Signature<'_>| {
        format!(
            "{} <{}>",
            String::from_utf8_lossy(s.name_bytes()),
            String::from_utf8_lossy(s.email_bytes())
        )
    };
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    Ok(Some(CommitChange {
        id: commit.id().to_string(),
        parent: parent.map(|p| p.id().to_string()),
        author: signature(commit.author()),
        committer: signature(commit.committer()),
        time: commit.time().seconds(),
        offset_minutes: commit.time().offset_minutes(),
        subject: message.lines().next().unwrap_or_default().to_owned(),
        trailers: CommitMessage::parse_trailers(&message),
        files,
        more,
    }))
}
