//! The push journal: each commit's change (an action or an import), kept durably beside the
//! repository (`<gitdir>/hexabase/journal/<commit-id>.json`) so that a push the remote
//! refuses can make it again on the remote's new head ([`super::push`]). The engine writes an
//! entry after the commit object and before the branch moves (`record`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::action::{Action, ActionMeta};
use crate::gitops::{Oid, Repository};

/// A journal file could not be read or written, or is not what we wrote.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A journal file could not be read or written.
    #[error("failed to access the journal file {path}")]
    Access {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A journal file is not what we wrote.
    #[error("the journal file {path} is damaged")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: serde_json::Error,
    },
}

/// What the journal keeps for one commit: enough to make the change again elsewhere.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    /// Who asked, and the request.
    pub meta: ActionMeta,
    /// The change: `"action": {...}` or `"import": {...}` in the file.
    #[serde(flatten)]
    pub change: Change,
}

/// A journaled change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// An action ([`Engine::apply`](crate::service::apply::Engine::apply)), boxed: actions are large, imports larger still.
    Action(Box<Action>),
    /// A whole intent ([`Engine::import`](crate::service::apply::Engine::import)).
    Import {
        /// The intent files, relative to `intent/`.
        files: compiler::IntentFiles,
        /// The commit subject.
        subject: String,
    },
}

/// The journal of one repository.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal of `repo` (`<gitdir>/hexabase/journal`), whether enabled or not.
    pub fn of(repo: &Repository) -> Self {
        Self {
            dir: crate::gitops::git_dir(repo)
                .join("hexabase")
                .join("journal"),
        }
    }

    /// Turns the journal on for `repo`: from now on every commit the engine makes records
    /// its action. The folder's existence is the switch, so it holds across restarts and
    /// for every process writing the repository.
    pub fn enable(repo: &Repository) -> Result<Self, JournalError> {
        let journal = Self::of(repo);
        let io = |source| JournalError::Access {
            path: journal.dir.clone(),
            source,
        };
        if !journal.dir.is_dir() {
            std::fs::create_dir_all(&journal.dir).map_err(io)?;
            if let Some(parent) = journal.dir.parent() {
                sync_dir(parent).map_err(io)?;
            }
        }
        Ok(journal)
    }

    /// Whether the journal is on.
    pub fn is_enabled(&self) -> bool {
        self.dir.is_dir()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `commit`.
    pub fn path(&self, commit: Oid) -> PathBuf {
        self.dir.join(format!("{commit}.json"))
    }

    /// Writes `entry` for `commit` durably: to a temporary file, fsynced, renamed, and the
    /// folder fsynced.
    pub fn write(&self, commit: Oid, entry: &JournalEntry) -> std::io::Result<()> {
        use std::io::Write as _;
        let path = self.path(commit);
        let tmp = self.dir.join(format!("{commit}.json.tmp"));
        let json = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)
    }

    /// The entry of `commit`, `None` when there is none.
    pub fn read(&self, commit: Oid) -> Result<Option<JournalEntry>, JournalError> {
        let path = self.path(commit);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(JournalError::Access { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| JournalError::Corrupt { path, source })
    }

    /// Forgets `commit` (pushed, or replaced by a re-applied commit).
    pub fn remove(&self, commit: Oid) -> Result<(), JournalError> {
        let path = self.path(commit);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Access { path, source }),
        }
    }

    /// Removes entry and temporary files older than `age` whose commit is not in `keep`;
    /// returns how many.
    pub fn prune(&self, keep: &BTreeSet<Oid>, age: Duration) -> Result<usize, JournalError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Access { path, source }
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(JournalError::Access {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let Some(commit) = name
                .to_str()
                .and_then(|n| n.split('.').next())
                .and_then(|id| Oid::from_str(id).ok())
            else {
                continue;
            };
            let path = entry.path();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(io(&path))?
                .elapsed()
                .is_ok_and(|elapsed| elapsed >= age);
            if entry.file_type().is_ok_and(|t| t.is_file()) && old && !keep.contains(&commit) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(JournalError::Access { path, source }),
                }
            }
        }
        Ok(removed)
    }

    /// Moves the entry of a dropped action to `dropped/`, for people to look at.
    pub fn set_aside(&self, commit: Oid) -> Result<(), JournalError> {
        let dropped = self.dir.join("dropped");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Access { path, source }
        };
        std::fs::create_dir_all(&dropped).map_err(io(&dropped))?;
        let from = self.path(commit);
        match std::fs::rename(&from, dropped.join(format!("{commit}.json"))) {
            Ok(()) => sync_dir(&self.dir).map_err(io(&self.dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Access { path: from, source }),
        }
    }
}

/// The engine's hook: records `action` for `commit` when the journal of `repo` is on.
/// Called after the commit object is written and before any branch points at it.
pub(crate) fn record(
    repo: &Repository,
    commit: Oid,
    meta: &ActionMeta,
    action: &Action,
) -> Result<(), JournalError> {
    record_change(repo, commit, meta, || {
        Change::Action(Box::new(action.clone()))
    })
}

/// [`record`] for an import of `files`.
pub(crate) fn record_import(
    repo: &Repository,
    commit: Oid,
    meta: &ActionMeta,
    files: &compiler::IntentFiles,
    subject: &str,
) -> Result<(), JournalError> {
    record_change(repo, commit, meta, || Change::Import {
        files: files.clone(),
        subject: subject.to_owned(),
    })
}

/// Journals the change `change()` for `commit` when the journal of `repo` is on.
fn record_change(
    repo: &Repository,
    commit: Oid,
    meta: &ActionMeta,
    change: impl FnOnce() -> Change,
) -> Result<(), JournalError> {
    let journal = Journal::of(repo);
    if !journal.is_enabled() {
        return Ok(());
    }
    let entry = JournalEntry {
        meta: meta.clone(),
        change: change(),
    };
    journal
        .write(commit, &entry)
        .map_err(|source| JournalError::Access {
            path: journal.path(commit),
            source,
        })
}

/// Fsyncs a folder, so that a rename or a new entry in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::Identity;

    #[test]
    fn journal_entries_of_actions_and_imports_round_trip_and_old_ones_still_read() {
        let meta = ActionMeta {
            actor: Identity {
                name: "Ann".into(),
                email: "ann@example.com".into(),
            },
            request_id: "r1".into(),
            actor_id: None,
            digest: None,
        };
        let action = Action::CreateProject {
            org: "acme".into(),
            workspace: "dev".into(),
            project: "web".into(),
            display_name: None,
        };
        // What the journal held before imports were journaled.
        let old = serde_json::json!({"meta": meta, "action": action});
        let entry: JournalEntry = serde_json::from_value(old.clone()).expect("old entry");
        assert_eq!(entry.change, Change::Action(Box::new(action)));
        assert_eq!(serde_json::to_value(&entry).expect("json"), old);
        let import = JournalEntry {
            meta,
            change: Change::Import {
                files: [("platform.yaml".to_owned(), "x: 1\n".to_owned())].into(),
                subject: "platform: import intent".into(),
            },
        };
        let json = serde_json::to_string(&import).expect("json");
        let back: JournalEntry = serde_json::from_str(&json).expect("reads");
        assert_eq!(back.change, import.change);
        // Neither, or both: refused, not guessed.
        assert!(
            serde_json::from_str::<JournalEntry>(
                r#"{"meta":{"actor":{"name":"a","email":"b"},"request_id":"r"}}"#
            )
            .is_err()
        );
    }
}
