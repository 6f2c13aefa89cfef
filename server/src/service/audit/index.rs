//! The audit index file: its binary format (fixed-size records, interned strings, text and
//! touched-scope tables, a checksum), how records are added from commit facts, and queries
//! over it.

use super::*;

const MAGIC: &[u8; 8] = b"HBAUDIT\0";
/// Bump when the file layout or the way records are derived changes: old files are rebuilt.
const VERSION: u32 = 1;
const OID_LEN: usize = 20;
const RECORD_LEN: usize = 100;
const CHECKSUM_LEN: usize = 32;
const NONE: u32 = u32::MAX;
const FLAG_TRAILERS: u32 = 1;

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
    pub(super) fn bytes<const N: usize>(self, at: usize) -> [u8; N] {
        self.0
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; N])
    }

    pub(super) fn u32(self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }

    fn span(self, at: usize) -> Span {
        Span {
            start: self.u32(at),
            len: self.u32(at + 4),
        }
    }

    pub(super) fn time(self) -> i64 {
        i64::from_le_bytes(self.bytes(R_TIME))
    }
}

/// The records of every commit reachable from `tip`, in memory in the layout of the file, so
/// that loading is a read, a checksum and two copies, and a query reads only the fields it
/// filters on.
#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    pub(super) tip: Option<[u8; OID_LEN]>,
    strings: Vec<String>,
    ids: HashMap<String, u32>,
    /// Subjects and request ids, UTF-8 (each span is decoded when read).
    text: Vec<u8>,
    /// (org, workspace) string ids, 8 bytes a pair.
    touched: Vec<u8>,
    /// [`RECORD_LEN`] bytes a record, oldest first.
    pub(super) records: Vec<u8>,
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
    pub(super) fn len(&self) -> usize {
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

    pub(super) fn push(&mut self, facts: &CommitFacts) -> Result<(), AuditError> {
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

    pub(super) fn string(&self, id: u32) -> Option<&str> {
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

    pub(super) fn encode(&self) -> Vec<u8> {
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
    pub(super) fn decode(mut bytes: Vec<u8>) -> Result<Self, IndexError> {
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

    pub(super) fn load(path: &Path) -> Result<Self, IndexError> {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::decode(bytes)
    }

    /// Writes the index atomically: temporary file, fsync, rename, fsync the folder.
    pub(super) fn store(&self, path: &Path) -> Result<(), IndexError> {
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

    pub(super) fn query(&self, q: &AuditQuery) -> Vec<AuditEntry> {
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
    pub(super) fn new(index: &Index, q: &AuditQuery) -> Option<Self> {
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

    pub(super) fn matches(&self, index: &Index, r: Rec<'_>) -> bool {
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
pub(super) fn actor_matches(actor: &str, wanted: &str) -> bool {
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

pub(super) fn oid_bytes(oid: Oid) -> [u8; OID_LEN] {
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
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
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

    pub(super) fn u32(&mut self) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}
