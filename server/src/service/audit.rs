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

/// The action of a commit without trailers (made by a person).
pub const MANUAL: &str = "manual";
/// The action of a commit whose trailers name none.
const UNKNOWN: &str = "unknown";

const MAGIC: &[u8; 8] = b"HBAUDIT\0";
/// Bump when the file layout or the way records are derived changes: old files are rebuilt.
const VERSION: u32 = 1;
const OID_LEN: usize = 20;
const RECORD_LEN: usize = 100;
const CHECKSUM_LEN: usize = 32;
const NONE: u32 = u32::MAX;
const FLAG_TRAILERS: u32 = 1;

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

/// A range of the index's text or touched list: start and length.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        let start = self.start as usize;
        start..start.saturating_add(self.len as usize)
    }
}

// Field offsets in a record (see the file format above).
const R_TIME: usize = 20;
const R_OFFSET: usize = 28;
const R_FLAGS: usize = 32;
const R_ACTOR: usize = 36;
const R_ACTION: usize = 40;
const R_ORG: usize = 44;
const R_WORKSPACE: usize = 48;
const R_AUTHOR: usize = 52;
const R_COMMITTER: usize = 56;
const R_COMPILER: usize = 60;
const R_SUBJECT: usize = 64;
const R_REQUEST: usize = 72;
const R_ADDED: usize = 80;
const R_MODIFIED: usize = 84;
const R_DELETED: usize = 88;
const R_TOUCHED: usize = 92;

/// One record, read in place from the index's record bytes.
#[derive(Clone, Copy)]
struct Rec<'a>(&'a [u8]);

impl Rec<'_> {
    fn bytes<const N: usize>(self, at: usize) -> [u8; N] {
        self.0
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; N])
    }

    fn u32(self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }

    fn span(self, at: usize) -> Span {
        Span {
            start: self.u32(at),
            len: self.u32(at + 4),
        }
    }

    fn time(self) -> i64 {
        i64::from_le_bytes(self.bytes(R_TIME))
    }
}

/// The records of every commit reachable from `tip`, in memory in the layout of the file, so
/// that loading is a read, a checksum and two copies, and a query reads only the fields it
/// filters on.
#[derive(Debug, Clone, Default)]
struct Index {
    tip: Option<[u8; OID_LEN]>,
    strings: Vec<String>,
    ids: HashMap<String, u32>,
    /// Subjects and request ids, UTF-8 (each span is decoded when read).
    text: Vec<u8>,
    /// (org, workspace) string ids, 8 bytes a pair.
    touched: Vec<u8>,
    /// [`RECORD_LEN`] bytes a record, oldest first.
    records: Vec<u8>,
}

fn too_large<T>(_: T) -> AuditError {
    AuditError::TooLarge("more than 4 GiB of text or 2^32 entries")
}

fn fits_u32(n: usize) -> Result<u32, AuditError> {
    u32::try_from(n)
        .ok()
        .filter(|n| *n != NONE)
        .ok_or_else(|| too_large(()))
}

impl Index {
    fn len(&self) -> usize {
        self.records.len() / RECORD_LEN
    }

    fn intern(&mut self, s: &str) -> Result<u32, AuditError> {
        if let Some(id) = self.ids.get(s) {
            return Ok(*id);
        }
        let id = fits_u32(self.strings.len())?;
        self.strings.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        Ok(id)
    }

    fn intern_opt(&mut self, s: Option<&str>) -> Result<u32, AuditError> {
        s.map_or(Ok(NONE), |s| self.intern(s))
    }

    fn put_text(&mut self, s: &str) -> Result<Span, AuditError> {
        let start = fits_u32(self.text.len())?;
        let len = fits_u32(s.len())?;
        fits_u32(self.text.len() + s.len())?;
        self.text.extend_from_slice(s.as_bytes());
        Ok(Span { start, len })
    }

    fn push(&mut self, facts: &CommitFacts) -> Result<(), AuditError> {
        let touched = Span {
            start: fits_u32(self.touched.len() / 8)?,
            len: fits_u32(facts.touched.len())?,
        };
        for scope in &facts.touched {
            let org = self.intern(&scope.org)?;
            let ws = self.intern_opt(scope.workspace.as_deref())?;
            self.touched.extend_from_slice(&org.to_le_bytes());
            self.touched.extend_from_slice(&ws.to_le_bytes());
        }
        let (flags, actor, action, org, workspace, request, compiler) = match &facts.trailers {
            Some(t) => {
                let actor = if t.actor.is_empty() {
                    &facts.author
                } else {
                    &t.actor
                };
                let action = if t.action.is_empty() {
                    UNKNOWN
                } else {
                    &t.action
                };
                (
                    FLAG_TRAILERS,
                    self.intern(actor)?,
                    self.intern(action)?,
                    self.intern_opt(t.org.as_deref())?,
                    self.intern_opt(t.workspace.as_deref())?,
                    self.put_text(&t.request)?,
                    self.intern(&t.compiler)?,
                )
            }
            None => {
                let orgs: BTreeSet<&str> = facts.touched.iter().map(|s| s.org.as_str()).collect();
                let org = match orgs.iter().next() {
                    Some(org) if orgs.len() == 1 => Some(*org),
                    _ => None,
                };
                let mut workspaces = facts.touched.iter().filter_map(|s| s.workspace.as_deref());
                let workspace = match (org, workspaces.next(), workspaces.next()) {
                    (Some(_), Some(ws), None) => Some(ws),
                    _ => None,
                };
                (
                    0,
                    self.intern(&facts.author)?,
                    self.intern(MANUAL)?,
                    self.intern_opt(org)?,
                    self.intern_opt(workspace)?,
                    Span::default(),
                    NONE,
                )
            }
        };
        let author = self.intern(&facts.author)?;
        let committer = self.intern(&facts.committer)?;
        let subject = self.put_text(&facts.subject)?;
        fits_u32(self.len() + 1)?;
        let r = &mut self.records;
        r.reserve(RECORD_LEN);
        r.extend_from_slice(facts.id.as_bytes());
        r.extend_from_slice(&facts.time.to_le_bytes());
        r.extend_from_slice(&facts.offset_minutes.to_le_bytes());
        for v in [
            flags,
            actor,
            action,
            org,
            workspace,
            author,
            committer,
            compiler,
            subject.start,
            subject.len,
            request.start,
            request.len,
            facts.added,
            facts.modified,
            facts.deleted,
            touched.start,
            touched.len,
        ] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }

    fn records(&self) -> impl DoubleEndedIterator<Item = Rec<'_>> {
        self.records.chunks_exact(RECORD_LEN).map(Rec)
    }

    fn string(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(String::as_str)
    }

    fn text(&self, span: Span) -> String {
        self.text
            .get(span.range())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    /// The (org, workspace) pairs of a record.
    fn touched(&self, r: Rec<'_>) -> impl Iterator<Item = (u32, u32)> + '_ {
        let span = r.span(R_TOUCHED);
        let (start, end) = (span.range().start * 8, span.range().end.saturating_mul(8));
        self.touched
            .get(start..end)
            .unwrap_or_default()
            .chunks_exact(8)
            .map(|p| {
                let pair = Rec(p);
                (pair.u32(0), pair.u32(4))
            })
    }

    fn encode(&self) -> Vec<u8> {
        let strings_len: usize = self.strings.iter().map(|s| 4 + s.len()).sum();
        let mut out = Vec::with_capacity(
            64 + strings_len
                + self.text.len()
                + self.touched.len()
                + self.records.len()
                + CHECKSUM_LEN,
        );
        // Every count and length below was checked to fit in a u32 when it was added.
        let len32 = |n: usize| u32::try_from(n).unwrap_or(NONE).to_le_bytes();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&len32(OID_LEN));
        out.extend_from_slice(&self.tip.unwrap_or_default());
        out.extend_from_slice(&len32(self.len()));
        out.extend_from_slice(&len32(self.strings.len()));
        out.extend_from_slice(&len32(self.text.len()));
        out.extend_from_slice(&len32(self.touched.len() / 8));
        for s in &self.strings {
            out.extend_from_slice(&len32(s.len()));
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&self.text);
        out.extend_from_slice(&self.touched);
        out.extend_from_slice(&self.records);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Checks the file's checksum and layout. Records are not checked field by field: every
    /// read of them is bounds-checked, so a file with a valid checksum that was not written by
    /// [`Index::encode`] gives wrong answers, never a crash.
    fn decode(mut bytes: Vec<u8>) -> Result<Self, IndexError> {
        let body_len = bytes
            .len()
            .checked_sub(CHECKSUM_LEN)
            .ok_or(IndexError::Invalid("truncated"))?;
        let (body, sum) = bytes.split_at(body_len);
        if blake3::hash(body).as_bytes().as_slice() != sum {
            return Err(IndexError::Invalid("checksum mismatch"));
        }
        bytes.truncate(body_len);
        let mut r = Reader(&bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(IndexError::Invalid("not an audit index"));
        }
        if r.u32()? != VERSION {
            return Err(IndexError::Invalid("another format version"));
        }
        if r.u32()? as usize != OID_LEN {
            return Err(IndexError::Invalid("another object id length"));
        }
        let tip = r.array::<OID_LEN>()?;
        let records = r.u32()? as usize;
        let strings = r.u32()? as usize;
        let text_len = r.u32()? as usize;
        let touched_len = r.u32()? as usize;
        let mut index = Self {
            tip: Some(tip),
            strings: Vec::with_capacity(strings.min(r.0.len() / 4)),
            ..Self::default()
        };
        for id in 0..strings {
            let len = r.u32()? as usize;
            let s = std::str::from_utf8(r.take(len)?)
                .map_err(|_| IndexError::Invalid("a string is not UTF-8"))?;
            let id = u32::try_from(id).map_err(|_| IndexError::Invalid("too many strings"))?;
            index.ids.insert(s.to_owned(), id);
            index.strings.push(s.to_owned());
        }
        index.text = r.take(text_len)?.to_vec();
        index.touched = r.take(touched_len.saturating_mul(8))?.to_vec();
        if records.checked_mul(RECORD_LEN) != Some(r.0.len()) {
            return Err(IndexError::Invalid("record count does not match the size"));
        }
        // The records are the rest of the file: keep its buffer rather than copy them.
        let start = body_len - r.0.len();
        bytes.drain(..start);
        index.records = bytes;
        Ok(index)
    }

    fn load(path: &Path) -> Result<Self, IndexError> {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::decode(bytes)
    }

    /// Writes the index atomically: temporary file, fsync, rename, fsync the folder.
    fn store(&self, path: &Path) -> Result<(), IndexError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| IndexError::Io { path, source }
        };
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let bytes = self.encode();
        let written = (|| {
            let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            file.write_all(&bytes).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
            drop(file);
            std::fs::rename(&tmp, path).map_err(io(path))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn entry(&self, r: Rec<'_>) -> AuditEntry {
        let string = |at: usize| self.string(r.u32(at)).unwrap_or_default().to_owned();
        let optional = |at: usize| self.string(r.u32(at)).map(str::to_owned);
        let trailers = r.u32(R_FLAGS) & FLAG_TRAILERS != 0;
        let orgs: BTreeSet<&str> = self
            .touched(r)
            .filter_map(|(o, _)| self.string(o))
            .collect();
        let workspaces: BTreeSet<String> = self
            .touched(r)
            .filter_map(|(o, w)| Some(format!("{}/{}", self.string(o)?, self.string(w)?)))
            .collect();
        let time = r.time();
        AuditEntry {
            commit: hex(&r.bytes::<OID_LEN>(0)),
            time: rfc3339(time, i32::from_le_bytes(r.bytes(R_OFFSET))),
            timestamp: time,
            actor: string(R_ACTOR),
            action: string(R_ACTION),
            org: optional(R_ORG),
            workspace: optional(R_WORKSPACE),
            subject: self.text(r.span(R_SUBJECT)),
            request: trailers.then(|| self.text(r.span(R_REQUEST))),
            compiler: optional(R_COMPILER),
            manual: !trailers,
            author: string(R_AUTHOR),
            committer: string(R_COMMITTER),
            files: FileCounts {
                added: r.u32(R_ADDED),
                modified: r.u32(R_MODIFIED),
                deleted: r.u32(R_DELETED),
            },
            orgs: orgs.into_iter().map(str::to_owned).collect(),
            workspaces: workspaces.into_iter().collect(),
        }
    }

    fn query(&self, q: &AuditQuery) -> Vec<AuditEntry> {
        let Some(filter) = Filter::new(self, q) else {
            return Vec::new();
        };
        self.records()
            .rev()
            .filter(|r| filter.matches(self, *r))
            .take(q.limit.unwrap_or(usize::MAX))
            .map(|r| self.entry(r))
            .collect()
    }
}

/// A query resolved to string ids, so that matching a record compares integers.
struct Filter {
    org: Option<u32>,
    /// (organization or any, workspace)
    workspace: Option<(Option<u32>, u32)>,
    /// Which strings the actor filter accepts, by id.
    actors: Option<Vec<bool>>,
    action: Option<u32>,
    since: i64,
    until: i64,
}

impl Filter {
    /// `None` when nothing can match (a name the index has never seen).
    fn new(index: &Index, q: &AuditQuery) -> Option<Self> {
        let id = |s: &str| index.ids.get(s).copied();
        let org = match &q.org {
            Some(org) => Some(id(org)?),
            None => None,
        };
        let workspace = match &q.workspace {
            Some(ws) => {
                let (org_name, ws) = match ws.split_once('/') {
                    Some((o, w)) => (Some(o), w),
                    None => (q.org.as_deref(), ws.as_str()),
                };
                let org = match org_name {
                    Some(o) => Some(id(o)?),
                    None => None,
                };
                Some((org, id(ws)?))
            }
            None => None,
        };
        let actors = q.actor.as_deref().map(|wanted| {
            index
                .strings
                .iter()
                .map(|s| actor_matches(s, wanted))
                .collect()
        });
        let action = match &q.action {
            Some(action) => Some(id(action)?),
            None => None,
        };
        Some(Self {
            org,
            workspace,
            actors,
            action,
            since: q.since.map_or(i64::MIN, TimeSpec::lower),
            until: q.until.map_or(i64::MAX, TimeSpec::upper),
        })
    }

    fn matches(&self, index: &Index, r: Rec<'_>) -> bool {
        let time = r.time();
        if time < self.since || time > self.until {
            return false;
        }
        if self.action.is_some_and(|a| a != r.u32(R_ACTION)) {
            return false;
        }
        if let Some(actors) = &self.actors
            && !actors
                .get(r.u32(R_ACTOR) as usize)
                .copied()
                .unwrap_or(false)
        {
            return false;
        }
        if let Some(org) = self.org
            && r.u32(R_ORG) != org
            && !index.touched(r).any(|(o, _)| o == org)
        {
            return false;
        }
        if let Some((org, ws)) = self.workspace {
            let fits = |o: u32, w: u32| w == ws && org.is_none_or(|org| org == o);
            if !fits(r.u32(R_ORG), r.u32(R_WORKSPACE)) && !index.touched(r).any(|(o, w)| fits(o, w))
            {
                return false;
            }
        }
        true
    }
}

/// `Name <email>` matches the whole, the name, or the email in any case.
fn actor_matches(actor: &str, wanted: &str) -> bool {
    if actor == wanted {
        return true;
    }
    match actor.rsplit_once(" <") {
        Some((name, email)) => {
            let email = email.strip_suffix('>').unwrap_or(email);
            name == wanted || email.eq_ignore_ascii_case(wanted)
        }
        None => false,
    }
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

fn oid_bytes(oid: Oid) -> [u8; OID_LEN] {
    oid.as_bytes().try_into().unwrap_or([0; OID_LEN])
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A little-endian cursor that fails instead of panicking on short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if n > self.0.len() {
            return Err(IndexError::Invalid("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IndexError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

// Calendar arithmetic (proleptic Gregorian, UTC), after Howard Hinnant's `days_from_civil`.

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |n, d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// `YYYY-MM-DD`, or RFC 3339 `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (`t`, `z` and a space
/// separator accepted, as RFC 3339 allows).
fn parse_time(s: &str) -> Option<TimeSpec> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || !(1..=days_in_month(y, m)).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d);
    if b.len() == 10 {
        return Some(TimeSpec::Day(day));
    }
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    Some(TimeSpec::At(
        day * 86_400 + hh * 3600 + mm * 60 + ss - offset * 60,
    ))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// RFC 3339 in the given offset (`Z` for UTC).
fn rfc3339(t: i64, offset_minutes: i32) -> String {
    let offset = i64::from(offset_minutes);
    let local = t + offset * 60;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    let zone = if offset == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60)
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{zone}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
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
