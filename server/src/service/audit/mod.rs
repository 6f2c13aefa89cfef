//! The audit log: who changed what, when. It is `git log` read through the `Hexabase-*`
//! trailers (actor, action, organization, workspace, request, compiler), with a diff summary
//! per commit, answered from an index that Git can always rebuild.
//!
//! # Records
//!
//! Every commit reachable from the branch tip gets one record, made by people or by Hexabase.
//! A commit with trailers is reported as its trailers say. A commit without them (made by a
//! person: a merged pull request, a revert, a hand edit) gets the Git author as actor, the
//! action [`MANUAL`], and the organization and workspace its changed paths belong to when
//! there is exactly one (see [`crate::gitops::audit::scope_of_path`]). Every record also lists
//! all the organizations and workspaces its changed paths belong to, and counts the files
//! added, modified and deleted against the first parent (no rename detection: a rename is a
//! deletion and an addition). Time is the committer time, as `git log --since` uses it.
//!
//! # The index
//!
//! One file per branch, `<gitdir>/hexabase/audit-index/<branch>.idx` (the branch name
//! percent-encoded), holding one record per commit and the tip it was built up to. On every
//! refresh:
//!
//! - the tip is the indexed tip: the index is used as it is;
//! - the tip descends from the indexed tip: only the new commits are read (a walk from the tip
//!   that stops at the indexed tip) and appended;
//! - anything else (history rewritten, a force-push, the indexed tip pruned): rebuilt from
//!   scratch;
//! - the file is missing, unreadable, corrupt (checksum), or of another format version:
//!   rebuilt from scratch, silently.
//!
//! A record depends only on its commit, so an extended index equals a rebuilt one, up to the
//! order of commits on parallel branches (both orders put parents before children). The index
//! is written whole to a temporary file in the same folder, fsynced, renamed over the old one,
//! and the folder fsynced: readers see the old index or the new one, never a torn one.
//! Concurrent writers each write a complete index; the last rename wins. A failure to write
//! is reported ([`Refresh::store_error`]) but never fails a query.
//!
//! ## File format (version 1, little-endian)
//!
//! ```text
//! magic "HBAUDIT\0" | version u32 | oid length u32 (20) | tip oid
//! record count u32 | string count u32 | text length u32 | touched count u32
//! strings: (length u32, UTF-8 bytes) * string count   -- interned: actors, actions, orgs, ...
//! text: UTF-8 bytes                                   -- subjects and request ids
//! touched: (org string u32, workspace string u32 or u32::MAX) * touched count
//! records: 100 bytes each, oldest first:
//!   oid [20] | committer time i64 | offset minutes i32 | flags u32 (1 = has trailers)
//!   actor, action, org, workspace, author, committer, compiler: string u32 (u32::MAX = none)
//!   subject, request: text (start u32, length u32)
//!   added, modified, deleted u32 | touched (start u32, count u32)
//! blake3 of everything above [32]
//! ```
//!
//! ## Cost
//!
//! A query on an up-to-date index reads the branch tip from the ref files (no libgit2, see
//! [`AuditLog::refresh`]), reads the file (130 to 150 bytes a commit: 14.5 MB for the
//! benchmark's 100,000), checks its checksum, and scans the records in place, comparing
//! interned string ids; only the matching records are decoded. No per-workspace or per-actor lists are kept: the scan is
//! a small part of the cost, reading the file the larger (`benches/audit.rs` measures both).
//! Extending the index costs the new commits plus rewriting the file. [`AuditLog`] keeps the
//! index in memory between queries for a long-running server.
//!
//! ## Trust
//!
//! Trailers are taken as written. Hexabase's own commits cannot carry forged ones (see
//! [`crate::gitops::CommitMessage`]), but a person can write `Hexabase-*` lines into a commit
//! by hand; such a record still shows the real Git author and committer.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::gitops::audit::{AuditRepo, CommitFacts, peek_tip};
use crate::gitops::{GitOpsError, Oid};

pub mod commit;
mod index;
pub mod scoped;
mod time;

use index::*;
pub use time::utc;
use time::*;

/// The action of a commit without trailers (made by a person).
pub const MANUAL: &str = "manual";
/// The action of a commit whose trailers name none.
const UNKNOWN: &str = "unknown";

/// The audit log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Git failed, or the repository or branch could not be opened.
    #[error("failed to read the history")]
    GitOps(#[from] GitOpsError),
    /// The history does not fit the index's 32-bit offsets.
    #[error("the history is too large for the audit index: {0}")]
    TooLarge(&'static str),
}

/// The index file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing the file failed.
    #[error("failed to access the audit index at {path}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid index of this version.
    #[error("invalid audit index: {0}")]
    Invalid(&'static str),
}

/// Why the index was built from scratch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildReason {
    /// There was no index file.
    Missing,
    /// The file was unreadable, corrupt or of another version (the message says which).
    Invalid(String),
    /// The branch tip does not descend from the indexed tip: history was rewritten.
    Rewritten,
}

/// What a refresh did to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// The branch has no commits.
    Empty,
    /// The index was already up to date.
    Fresh,
    /// New commits were read and appended.
    Extended {
        /// How many.
        commits: usize,
    },
    /// The index was built from scratch.
    Rebuilt {
        /// Why.
        reason: RebuildReason,
        /// How many commits it holds.
        commits: usize,
    },
}

/// The outcome of [`AuditLog::refresh`].
#[derive(Debug)]
pub struct Refresh {
    /// What happened to the index.
    pub state: IndexState,
    /// Where the index file is.
    pub path: PathBuf,
    /// Writing the updated index failed; the in-memory index is still correct.
    pub store_error: Option<IndexError>,
}

/// A point in time for `--since` / `--until`: an RFC 3339 timestamp, or a whole day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// Seconds since the Unix epoch.
    At(i64),
    /// Days since the Unix epoch: as a lower bound its first second, as an upper bound its
    /// last.
    Day(i64),
}

/// A time that is neither an RFC 3339 timestamp nor a date.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither an RFC 3339 timestamp (2024-05-01T12:00:00Z) nor a date (2024-05-01)")]
pub struct TimeError(String);

impl FromStr for TimeSpec {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, TimeError> {
        parse_time(s).ok_or_else(|| TimeError(s.to_owned()))
    }
}

impl TimeSpec {
    fn lower(self) -> i64 {
        match self {
            Self::At(t) => t,
            Self::Day(d) => d.saturating_mul(86_400),
        }
    }

    fn upper(self) -> i64 {
        match self {
            Self::At(t) => t,
            Self::Day(d) => d.saturating_add(1).saturating_mul(86_400).saturating_sub(1),
        }
    }
}

/// Which records to return; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Commits for this organization (by trailer or by a changed path).
    pub org: Option<String>,
    /// Commits for this workspace (by trailer or by a changed path): `ws`, or `org/ws`. With
    /// [`AuditQuery::org`] and a bare `ws`, the workspace of that organization.
    pub workspace: Option<String>,
    /// Commits by this actor: `Name <email>`, the name alone, or the email alone (any case).
    pub actor: Option<String>,
    /// Commits of this action kind (`create-project`, or [`MANUAL`]).
    pub action: Option<String>,
    /// Commits at or after this time.
    pub since: Option<TimeSpec>,
    /// Commits at or before this time.
    pub until: Option<TimeSpec>,
    /// At most this many records, newest first.
    pub limit: Option<usize>,
}

/// Files changed by a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileCounts {
    /// Added.
    pub added: u32,
    /// Modified.
    pub modified: u32,
    /// Deleted.
    pub deleted: u32,
}

/// One commit in the audit log (every field name is one word, so the JSON is the same in
/// `hb audit --json` and the API's camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// The commit id.
    pub commit: String,
    /// Committer time, RFC 3339 in the committer's offset.
    pub time: String,
    /// Committer time, seconds since the Unix epoch.
    pub timestamp: i64,
    /// Who acted: the `Hexabase-Actor` trailer, or the Git author of a manual commit.
    pub actor: String,
    /// The action kind, [`MANUAL`] for commits without trailers.
    pub action: String,
    /// The organization: trailer, or the only one the changed paths belong to.
    pub org: Option<String>,
    /// The workspace: trailer, or the only one the changed paths belong to.
    pub workspace: Option<String>,
    /// The subject line.
    pub subject: String,
    /// The request id (`Hexabase-Request`), for commits with trailers.
    pub request: Option<String>,
    /// The compiler version (`Hexabase-Compiler`), for commits with trailers.
    pub compiler: Option<String>,
    /// True for commits without trailers.
    pub manual: bool,
    /// The Git author, `Name <email>`.
    pub author: String,
    /// The Git committer, `Name <email>`.
    pub committer: String,
    /// Files added, modified, deleted.
    pub files: FileCounts,
    /// Every organization the changed paths belong to.
    pub orgs: Vec<String>,
    /// Every workspace the changed paths belong to, as `org/ws`.
    pub workspaces: Vec<String>,
}

/// The index file of `branch` in the Git directory `git_dir`.
pub fn index_file(git_dir: &Path, branch: &str) -> PathBuf {
    let mut name = String::with_capacity(branch.len() + 4);
    for b in branch.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            name.push(char::from(b));
        } else {
            let _ = write!(name, "%{b:02X}");
        }
    }
    name.push_str(".idx");
    git_dir.join("hexabase").join("audit-index").join(name)
}

/// The audit log of one branch, kept in memory between refreshes (for a server answering many
/// queries); the index file is read on the first refresh and written after every change.
pub struct AuditLog {
    repo: PathBuf,
    branch: String,
    index: Index,
}

impl AuditLog {
    /// The audit log of `branch` in the repository at `repo`; nothing is read until
    /// [`AuditLog::refresh`].
    pub fn new(repo: &Path, branch: &str) -> Self {
        Self {
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            index: Index::default(),
        }
    }

    /// Brings the index up to the branch tip: as it is, extended, or rebuilt (see the module
    /// documentation).
    ///
    /// When the ref files name the indexed tip, this opens no repository: libgit2's start-up
    /// alone (it loads the system's TLS certificates) costs more than a query. Anything else
    /// goes through libgit2 ([`AuditRepo`]).
    pub fn refresh(&mut self) -> Result<Refresh, AuditError> {
        let fresh = |path| Refresh {
            state: IndexState::Fresh,
            path,
            store_error: None,
        };
        let mut loaded = None;
        if let Some((git_dir, tip)) = peek_tip(&self.repo, &self.branch) {
            let path = index_file(&git_dir, &self.branch);
            if self.index.tip == Some(tip) {
                return Ok(fresh(path));
            }
            if self.index.tip.is_none() {
                match Index::load(&path) {
                    Ok(index) if index.tip == Some(tip) => {
                        self.index = index;
                        return Ok(fresh(path));
                    }
                    other => loaded = Some(other),
                }
            }
        }
        let git = AuditRepo::open(&self.repo, &self.branch)?;
        let path = index_file(git.git_dir(), &self.branch);
        let Some(tip) = git.tip()? else {
            self.index = Index::default();
            return Ok(Refresh {
                state: IndexState::Empty,
                path,
                store_error: None,
            });
        };
        let tip_bytes = oid_bytes(tip);
        if self.index.tip == Some(tip_bytes) {
            return Ok(fresh(path));
        }
        let mut reason = RebuildReason::Rewritten;
        if self.index.tip.is_none() {
            match loaded.unwrap_or_else(|| Index::load(&path)) {
                Ok(index) => self.index = index,
                Err(IndexError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    reason = RebuildReason::Missing;
                }
                Err(e) => reason = RebuildReason::Invalid(error_chain(&e)),
            }
        }
        let known = match self.index.tip {
            Some(known) if known == tip_bytes => return Ok(fresh(path)),
            Some(known) => {
                let known = Oid::from_bytes(&known).map_err(GitOpsError::Git)?;
                git.reaches(tip, known)?.then_some(known)
            }
            None => None,
        };
        let state = if let Some(known) = known {
            let facts = git.commits(tip, Some(known))?;
            for f in &facts {
                self.index.push(f)?;
            }
            IndexState::Extended {
                commits: facts.len(),
            }
        } else {
            let facts = git.commits(tip, None)?;
            let mut index = Index::default();
            for f in &facts {
                index.push(f)?;
            }
            self.index = index;
            IndexState::Rebuilt {
                reason,
                commits: facts.len(),
            }
        };
        self.index.tip = Some(tip_bytes);
        let store_error = self.index.store(&path).err();
        Ok(Refresh {
            state,
            path,
            store_error,
        })
    }

    /// The records that match `query`, newest first, as of the last refresh.
    pub fn query(&self, query: &AuditQuery) -> Vec<AuditEntry> {
        self.index.query(query)
    }

    /// How many commits the index holds.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the index holds no commit.
    pub fn is_empty(&self) -> bool {
        self.index.records.is_empty()
    }
}

/// Refreshes the index of `branch` in `repo` and answers `query`: what `hb audit` runs.
pub fn audit(
    repo: &Path,
    branch: &str,
    query: &AuditQuery,
) -> Result<(Vec<AuditEntry>, Refresh), AuditError> {
    let mut log = AuditLog::new(repo, branch);
    let refresh = log.refresh()?;
    Ok((log.query(query), refresh))
}

/// `entries` as a plain-text table: time (UTC), actor, action, org/workspace, subject, short
/// commit id, files added/modified/deleted.
pub fn render_table(entries: &[AuditEntry]) -> String {
    const HEADER: [&str; 7] = [
        "TIME (UTC)",
        "ACTOR",
        "ACTION",
        "ORG/WORKSPACE",
        "SUBJECT",
        "COMMIT",
        "FILES",
    ];
    const MAX: [usize; 7] = [20, 40, 24, 32, 72, 10, 20];
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                utc(e.timestamp),
                e.actor.clone(),
                e.action.clone(),
                scope_label(e),
                e.subject.clone(),
                e.commit.chars().take(10).collect(),
                format!(
                    "+{} ~{} -{}",
                    e.files.added, e.files.modified, e.files.deleted
                ),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count().min(MAX[i]));
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let cell = truncate(cell, MAX[i]);
            if i + 1 == cells.len() {
                text.push_str(&cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&HEADER.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    out
}

fn scope_label(e: &AuditEntry) -> String {
    match (&e.org, &e.workspace) {
        (Some(org), Some(ws)) => format!("{org}/{ws}"),
        (Some(org), None) => org.clone(),
        (None, Some(ws)) => ws.clone(),
        (None, None) => match e.workspaces.as_slice() {
            [] => "-".to_owned(),
            [one] => one.clone(),
            many => format!("{} workspaces", many.len()),
        },
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_dates() {
        assert_eq!(
            "1970-01-01".parse::<TimeSpec>().ok(),
            Some(TimeSpec::Day(0))
        );
        assert_eq!(
            "2024-02-29".parse::<TimeSpec>().ok(),
            Some(TimeSpec::Day(19_782))
        );
        assert_eq!(
            "2024-05-01T12:00:00Z".parse::<TimeSpec>().ok(),
            Some(TimeSpec::At(1_714_564_800))
        );
        assert_eq!(
            "2024-05-01T14:30:00.123+02:30".parse::<TimeSpec>().ok(),
            Some(TimeSpec::At(1_714_564_800))
        );
        assert_eq!(
            "2024-05-01 07:00:00-05:00".parse::<TimeSpec>().ok(),
            Some(TimeSpec::At(1_714_564_800))
        );
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-5-1",
            "yesterday",
            "2024-05-01T12:00:00",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00.Z",
        ] {
            assert!(bad.parse::<TimeSpec>().is_err(), "{bad}");
        }
        assert_eq!(TimeSpec::Day(1).lower(), 86_400);
        assert_eq!(TimeSpec::Day(1).upper(), 2 * 86_400 - 1);
    }

    #[test]
    fn calendar_round_trips() {
        for day in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(utc(1_714_564_800), "2024-05-01 12:00:00");
        assert_eq!(rfc3339(1_714_564_800, 0), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(1_714_564_800, -330), "2024-05-01T06:30:00-05:30");
    }

    #[test]
    fn actors_match_by_whole_name_or_email() {
        let actor = "Alice Liddell <Alice@Example.com>";
        assert!(actor_matches(actor, actor));
        assert!(actor_matches(actor, "Alice Liddell"));
        assert!(actor_matches(actor, "alice@example.com"));
        assert!(!actor_matches(actor, "Alice"));
        assert!(!actor_matches(actor, "bob@example.com"));
    }

    #[test]
    fn branch_names_make_safe_file_names() {
        assert_eq!(
            index_file(Path::new("/g"), "feature/x y"),
            Path::new("/g/hexabase/audit-index/feature%2Fx%20y.idx")
        );
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_invalid_not_a_panic() {
        let mut index = Index::default();
        let facts = CommitFacts {
            id: Oid::from_bytes(&[7; 20]).expect("oid"),
            time: 1,
            offset_minutes: 60,
            author: "A <a@x>".into(),
            committer: "B <b@x>".into(),
            subject: "s".into(),
            trailers: None,
            added: 1,
            modified: 2,
            deleted: 3,
            touched: BTreeSet::new(),
        };
        index.push(&facts).expect("push");
        index.tip = Some(oid_bytes(facts.id));
        let bytes = index.encode();
        let back = Index::decode(bytes.clone()).expect("decodes");
        assert_eq!(back.len(), 1);
        assert_eq!(
            back.query(&AuditQuery::default()),
            index.query(&AuditQuery::default())
        );
        for cut in 0..bytes.len() {
            assert!(Index::decode(bytes[..cut].to_vec()).is_err());
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(Index::decode(flipped).is_err(), "byte {i}");
        }
    }
}
