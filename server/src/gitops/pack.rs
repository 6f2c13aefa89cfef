//! Writing packs directly: every object stored whole (zlib-compressed, no delta search) and
//! the version 2 index (`.idx`) built alongside, both fsynced before they are renamed into
//! place, then the pack folder fsynced. libgit2's packbuilder spent most of a commit looking
//! for deltas among an action's few dozen objects, and its indexer reads every object back
//! (and fsyncs only when a process-wide option is set); neither is needed here.
//!
//! Formats: `Documentation/gitformat-pack.txt` in git. A pack is `PACK`, version 2, the
//! object count, then per object a type-and-size header and the zlib stream of its content,
//! then the SHA-1 of all that. The index holds a 256-entry fan-out table, the sorted ids, a
//! CRC-32 of each object's bytes in the pack, their offsets (31 bits, or an index into a
//! table of 64-bit offsets), the pack's checksum and its own.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid};

/// A pack being written: in memory (an action's, small: its object count is filled in at the
/// end), or streamed to a temporary file (a roll-up, which may be large: its object count is
/// known up front), so that memory never holds more than one object at a time.
pub(crate) struct PackWriter {
    /// Taken by [`PackWriter::finish`]; a temporary file left behind is removed on drop.
    out: Option<Out>,
    /// Bytes written so far: where the next entry starts.
    len: u64,
    entries: Vec<Entry>,
    ids: BTreeSet<Oid>,
    /// One zlib stream for every object, reset between them: a new stream allocates and
    /// clears about 256 KB, far more than the small objects it compresses.
    zlib: flate2::Compress,
    /// A zlib stream that stores without compressing (level 0), for trees.
    stored: flate2::Compress,
    /// One entry's bytes on their way out.
    entry: Vec<u8>,
}

enum Out {
    Memory(Vec<u8>),
    File {
        file: std::io::BufWriter<std::fs::File>,
        path: PathBuf,
        count: u32,
        /// The SHA-1 of what was written so far.
        hasher: sha1::Sha1,
        /// Bytes written since the file's data was last synced.
        unsynced: u64,
    },
}

/// How much of a streamed pack may be written before its data is synced. On ext4 (ordered
/// data) every fsync waits for the dirty data of files written in the same journal
/// transaction: a roll-up that left a hundred megabytes to write back would hold up every
/// commit's fsync for seconds. Synced as it goes, it holds them up by a few milliseconds.
const SYNC_EVERY: u64 = 4 << 20;

/// One object of a pack: its id, where its entry starts, and the CRC-32 of the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: Oid,
    pub(crate) offset: u64,
    pub(crate) crc: u32,
}

const HEADER_LEN: usize = 12;
const TRAILER_LEN: u64 = 20;

fn header(count: u32) -> [u8; HEADER_LEN] {
    let mut header = *b"PACK\0\0\0\x02\0\0\0\0";
    header[8..].copy_from_slice(&count.to_be_bytes());
    header
}

impl PackWriter {
    /// A pack built in memory.
    pub(crate) fn new() -> Self {
        let mut data = Vec::with_capacity(64 * 1024);
        data.extend_from_slice(&header(0));
        Self::with(Out::Memory(data))
    }

    /// A pack streamed to a new temporary file in `dir`, which will hold exactly `count`
    /// objects.
    pub(crate) fn to_file(dir: &Path, count: u32) -> std::io::Result<Self> {
        use sha1::Digest as _;
        let path = temporary(dir, "pack");
        let mut file = std::io::BufWriter::with_capacity(256 * 1024, create_new(&path)?);
        let header = header(count);
        file.write_all(&header)?;
        let mut hasher = sha1::Sha1::new();
        hasher.update(header);
        Ok(Self::with(Out::File {
            file,
            path,
            count,
            hasher,
            unsynced: 0,
        }))
    }

    fn with(out: Out) -> Self {
        Self {
            out: Some(out),
            len: HEADER_LEN as u64,
            entries: Vec::new(),
            ids: BTreeSet::new(),
            // Level 1: these are small text files, and the pack is rolled up later anyway.
            zlib: flate2::Compress::new(flate2::Compression::fast(), true),
            stored: flate2::Compress::new(flate2::Compression::none(), true),
            entry: Vec::new(),
        }
    }

    /// True when `id` is in the pack already.
    pub(crate) fn contains(&self, id: Oid) -> bool {
        self.ids.contains(&id)
    }

    /// Adds an object, stored whole; a repeat is ignored. Trees are stored without
    /// compression: they are mostly object ids, which do not compress, and make most of an
    /// action's bytes (the large trees on the way to its workspace), so compressing them cost
    /// more CPU than anything else in writing a pack. Blobs and commits are compressed.
    pub(crate) fn add(&mut self, id: Oid, kind: ObjectType, content: &[u8]) -> std::io::Result<()> {
        if self.ids.contains(&id) {
            return Ok(());
        }
        let code = match kind {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            ObjectType::Tag => 4,
            ObjectType::Any => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "an object without a type",
                ));
            }
        };
        let mut entry = std::mem::take(&mut self.entry);
        entry.clear();
        let mut size = content.len() as u64;
        let mut byte = (code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            entry.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        entry.push(byte);
        let zlib = if kind == ObjectType::Tree {
            &mut self.stored
        } else {
            &mut self.zlib
        };
        zlib.reset();
        loop {
            entry.reserve(content.len() / 2 + 64);
            let consumed = usize::try_from(zlib.total_in()).unwrap_or(usize::MAX);
            let status = zlib
                .compress_vec(
                    content.get(consumed..).unwrap_or_default(),
                    &mut entry,
                    flate2::FlushCompress::Finish,
                )
                .map_err(std::io::Error::other)?;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(&entry);
        let written = self.add_raw(id, &entry, crc.sum());
        self.entry = entry;
        written
    }

    /// Adds an entry copied as it is from another pack (a whole object, not a delta: a
    /// delta's base may not come along); a repeat is ignored.
    pub(crate) fn add_raw(&mut self, id: Oid, entry: &[u8], crc: u32) -> std::io::Result<()> {
        if !self.ids.insert(id) {
            return Ok(());
        }
        self.entries.push(Entry {
            id,
            offset: self.len,
            crc,
        });
        match &mut self.out {
            Some(Out::Memory(data)) => data.extend_from_slice(entry),
            Some(Out::File {
                file,
                hasher,
                unsynced,
                ..
            }) => {
                use sha1::Digest as _;
                file.write_all(entry)?;
                hasher.update(entry);
                *unsynced += entry.len() as u64;
                if *unsynced >= SYNC_EVERY {
                    file.flush()?;
                    file.get_ref().sync_data()?;
                    *unsynced = 0;
                }
            }
            None => return Err(invalid("the pack is finished")),
        }
        self.len += entry.len() as u64;
        Ok(())
    }

    /// How many objects the pack holds.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Writes the pack and its index into `dir` (`objects/pack`), durably: each file is
    /// fsynced under a temporary name (`pack_…`, which the stale-lock clean-up removes),
    /// renamed into place (the pack first: readers find a pack by its index), and the folder
    /// fsynced. Returns the pack's name (`pack-<checksum>`).
    pub(crate) fn finish(mut self, dir: &Path) -> std::io::Result<String> {
        let count = u32::try_from(self.entries.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many objects")
        })?;
        let out = self
            .out
            .take()
            .ok_or_else(|| invalid("the pack is finished"))?;
        let (pack_file, pack_tmp, checksum) = match out {
            Out::Memory(mut data) => {
                data[..HEADER_LEN].copy_from_slice(&header(count));
                let checksum = sha1_digest(&data);
                data.extend_from_slice(&checksum);
                let pack_tmp = temporary(dir, "pack");
                let file = create_new(&pack_tmp).and_then(|mut file| {
                    file.write_all(&data)?;
                    Ok(file)
                });
                match file {
                    Ok(file) => (file, pack_tmp, checksum),
                    Err(e) => {
                        let _ = std::fs::remove_file(&pack_tmp);
                        return Err(e);
                    }
                }
            }
            Out::File {
                file,
                path,
                count: expected,
                hasher,
                ..
            } => {
                use sha1::Digest as _;
                let checksum: [u8; 20] = hasher.finalize().into();
                let closed = (|| {
                    if count != expected {
                        return Err(invalid("the pack holds another number of objects"));
                    }
                    let mut file = file.into_inner().map_err(|e| e.into_error())?;
                    file.write_all(&checksum)?;
                    Ok(file)
                })();
                match closed {
                    Ok(file) => (file, path, checksum),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        return Err(e);
                    }
                }
            }
        };
        let index = index_bytes(&mut self.entries, &checksum);
        let name = format!("pack-{}", hex(&checksum));
        let pack = dir.join(format!("{name}.pack"));
        let idx = dir.join(format!("{name}.idx"));
        if pack.exists() && idx.exists() {
            // The same objects in the same order: already there (and durable, since a
            // reference may have pointed into it before).
            let _ = std::fs::remove_file(&pack_tmp);
            return Ok(name);
        }
        let idx_tmp = temporary(dir, "idx");
        let written = create_new(&idx_tmp)
            .and_then(|mut idx| {
                idx.write_all(&index)?;
                Ok(idx)
            })
            .and_then(|idx| sync_both(&pack_file, &idx))
            .and_then(|()| std::fs::rename(&pack_tmp, &pack))
            .and_then(|()| std::fs::rename(&idx_tmp, &idx))
            .and_then(|()| std::fs::File::open(dir)?.sync_all());
        if written.is_err() {
            let _ = std::fs::remove_file(&pack_tmp);
            let _ = std::fs::remove_file(&idx_tmp);
        }
        written.map(|()| name)
    }
}

impl Drop for PackWriter {
    /// A pack streamed to a file and never finished (an error on the way) leaves nothing.
    fn drop(&mut self) {
        if let Some(Out::File { path, .. }) = self.out.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A fresh temporary name in `dir`, starting with `pack_` like libgit2's.
fn temporary(dir: &Path, ext: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!("pack_hb_{}_{n}_{nanos}.{ext}", std::process::id()))
}

/// A new file at `path`, read-only as git makes packs (the handle can still write).
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
}

/// Fsyncs `a` and `b` at the same time: the file system can commit both in one journal
/// transaction instead of one after the other.
fn sync_both(a: &std::fs::File, b: &std::fs::File) -> std::io::Result<()> {
    std::thread::scope(|scope| {
        let other = scope.spawn(|| b.sync_all());
        let first = a.sync_all();
        let second = other
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread failed")));
        first.and(second)
    })
}

/// The version 2 index of a pack with `entries` (sorted here by id) and `checksum`.
fn index_bytes(entries: &mut [Entry], checksum: &[u8; 20]) -> Vec<u8> {
    entries.sort_by_key(|e| e.id);
    let mut out = Vec::with_capacity(8 + 256 * 4 + entries.len() * 28 + 40);
    out.extend_from_slice(b"\xfftOc\0\0\0\x02");
    let mut fanout = [0u32; 256];
    for e in entries.iter() {
        fanout[e.id.as_bytes()[0] as usize] += 1;
    }
    let mut total = 0;
    for n in fanout {
        total += n;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(e.id.as_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(&e.crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for e in entries.iter() {
        let small = match u32::try_from(e.offset) {
            Ok(o) if o < 0x8000_0000 => o,
            _ => {
                large.push(e.offset);
                0x8000_0000 | (large.len() as u32 - 1)
            }
        };
        out.extend_from_slice(&small.to_be_bytes());
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(checksum);
    let own = sha1_digest(&out);
    out.extend_from_slice(&own);
    out
}

fn sha1_digest(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// The entries of a version 2 pack index, in pack order (by offset).
pub(crate) fn read_index(path: &Path) -> std::io::Result<Vec<Entry>> {
    let bytes = std::fs::read(path)?;
    if bytes.get(..8) != Some(b"\xfftOc\0\0\0\x02".as_slice()) {
        return Err(invalid("not a v2 pack index"));
    }
    let word = |at: usize| -> std::io::Result<u32> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("four bytes")))
            .ok_or_else(|| invalid("truncated pack index"))
    };
    let count = word(8 + 255 * 4)? as usize;
    let ids = 8 + 256 * 4;
    let crcs = ids + count * 20;
    let offsets = crcs + count * 4;
    let large = offsets + count * 4;
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let id = bytes
            .get(ids + i * 20..ids + i * 20 + 20)
            .ok_or_else(|| invalid("truncated pack index"))?;
        let small = word(offsets + i * 4)?;
        let offset = if small & 0x8000_0000 == 0 {
            u64::from(small)
        } else {
            let at = large + (small & 0x7fff_ffff) as usize * 8;
            bytes
                .get(at..at + 8)
                .map(|b| u64::from_be_bytes(b.try_into().expect("eight bytes")))
                .ok_or_else(|| invalid("truncated pack index"))?
        };
        entries.push(Entry {
            id: Oid::from_bytes(id).map_err(|_| invalid("bad id in pack index"))?,
            offset,
            crc: word(crcs + i * 4)?,
        });
    }
    entries.sort_by_key(|e| e.offset);
    Ok(entries)
}

/// Where each entry of a pack of `pack_len` bytes starts and ends (`entries` from its index,
/// in pack order).
pub(crate) fn entry_spans(pack_len: u64, entries: &[Entry]) -> std::io::Result<Vec<(u64, u64)>> {
    let end = pack_len
        .checked_sub(TRAILER_LEN)
        .filter(|&e| e >= HEADER_LEN as u64)
        .ok_or_else(|| invalid("not a pack"))?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let stop = entries.get(i + 1).map_or(end, |next| next.offset);
            if e.offset < HEADER_LEN as u64 || stop <= e.offset || stop > end {
                return Err(invalid("pack entry out of bounds"));
            }
            Ok((e.offset, stop))
        })
        .collect()
}

/// True when a pack entry (its bytes, or just the first) holds a whole commit.
pub(crate) fn is_commit(entry: &[u8]) -> bool {
    entry.first().is_some_and(|b| (b >> 4) & 0x07 == 1)
}

/// True when a pack entry (its bytes) holds a whole object rather than a delta.
pub(crate) fn is_whole(entry: &[u8]) -> bool {
    entry
        .first()
        .is_some_and(|b| (1..=4).contains(&((b >> 4) & 0x07)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_of_any_size_read_back_through_libgit2() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init_bare(dir.path()).expect("init");
        // Empty, small, and large and incompressible (pseudo-random bytes).
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let blobs: Vec<Vec<u8>> = vec![Vec::new(), b"kind: Namespace\n".to_vec(), noise];
        let mut pack = PackWriter::new();
        for blob in &blobs {
            let id = super::super::objects::object_id(ObjectType::Blob, blob);
            pack.add(id, ObjectType::Blob, blob).expect("add");
            pack.add(id, ObjectType::Blob, blob)
                .expect("a repeat is ignored");
        }
        // A tree, which is stored without compression, naming the small blob.
        let small = super::super::objects::object_id(ObjectType::Blob, &blobs[1]);
        let mut tree = b"100644 a\0".to_vec();
        tree.extend_from_slice(small.as_bytes());
        let tree_id = super::super::objects::object_id(ObjectType::Tree, &tree);
        pack.add(tree_id, ObjectType::Tree, &tree).expect("add");
        assert_eq!(pack.len(), blobs.len() + 1);
        pack.finish(&dir.path().join("objects").join("pack"))
            .expect("finish");
        let found = repo.find_tree(tree_id).expect("the tree is readable");
        assert_eq!(found.get_name("a").map(|e| e.id()), Some(small));
        for blob in &blobs {
            let id = super::super::objects::object_id(ObjectType::Blob, blob);
            let found = repo.find_blob(id).expect("readable from the pack");
            assert_eq!(found.content(), blob.as_slice());
        }
    }

    #[test]
    fn a_streamed_pack_copies_entries_and_leaves_nothing_when_it_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init_bare(dir.path()).expect("init");
        let packs = dir.path().join("objects").join("pack");
        let blobs: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("object {i}\n").repeat(i + 1).into_bytes())
            .collect();
        let ids: Vec<Oid> = blobs
            .iter()
            .map(|b| super::super::objects::object_id(ObjectType::Blob, b))
            .collect();
        // One pack in memory, then its entries copied into a streamed one.
        let mut first = PackWriter::new();
        for (id, blob) in ids.iter().zip(&blobs) {
            first.add(*id, ObjectType::Blob, blob).expect("add");
        }
        let name = first.finish(&packs).expect("finish");
        let index = packs.join(format!("{name}.idx"));
        let entries = read_index(&index).expect("index");
        let bytes = std::fs::read(index.with_extension("pack")).expect("pack");
        let spans = entry_spans(bytes.len() as u64, &entries).expect("spans");
        let mut second =
            PackWriter::to_file(&packs, u32::try_from(entries.len()).expect("few")).expect("file");
        for (entry, (start, stop)) in entries.iter().zip(spans) {
            let raw = &bytes[start as usize..stop as usize];
            assert!(is_whole(raw));
            second.add_raw(entry.id, raw, entry.crc).expect("copy");
        }
        let copied = second.finish(&packs).expect("finish");
        assert_eq!(
            copied, name,
            "the same entries in the same order: the same pack"
        );
        for (id, blob) in ids.iter().zip(&blobs) {
            assert_eq!(
                repo.find_blob(*id).expect("read").content(),
                blob.as_slice()
            );
        }
        // A streamed pack that does not get the objects it announced is refused, and a
        // dropped one leaves no temporary file.
        let mut short = PackWriter::to_file(&packs, 2).expect("file");
        short.add(ids[0], ObjectType::Blob, &blobs[0]).expect("add");
        assert!(short.finish(&packs).is_err());
        let mut dropped = PackWriter::to_file(&packs, 1).expect("file");
        dropped
            .add(ids[1], ObjectType::Blob, &blobs[1])
            .expect("add");
        drop(dropped);
        let left: Vec<String> = std::fs::read_dir(&packs)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("pack_"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}
