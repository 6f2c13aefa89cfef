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

/// A pack being built in memory.
pub(crate) struct PackWriter {
    data: Vec<u8>,
    entries: Vec<Entry>,
    ids: BTreeSet<Oid>,
    /// One zlib stream for every object, reset between them: a new stream allocates and
    /// clears about 256 KB, far more than the small objects it compresses.
    zlib: flate2::Compress,
    /// A zlib stream that stores without compressing (level 0), for trees.
    stored: flate2::Compress,
}

/// One object of a pack: its id, where its entry starts, and the CRC-32 of the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: Oid,
    pub(crate) offset: u64,
    pub(crate) crc: u32,
}

const HEADER_LEN: usize = 12;
const TRAILER_LEN: usize = 20;

impl PackWriter {
    pub(crate) fn new() -> Self {
        let mut data = Vec::with_capacity(64 * 1024);
        data.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\0");
        Self {
            data,
            entries: Vec::new(),
            ids: BTreeSet::new(),
            // Level 1: these are small text files, and the pack is rolled up later anyway.
            zlib: flate2::Compress::new(flate2::Compression::fast(), true),
            stored: flate2::Compress::new(flate2::Compression::none(), true),
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
        if !self.ids.insert(id) {
            return Ok(());
        }
        let offset = self.data.len();
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
        let mut size = content.len() as u64;
        let mut byte = (code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            self.data.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        self.data.push(byte);
        let zlib = if kind == ObjectType::Tree {
            &mut self.stored
        } else {
            &mut self.zlib
        };
        zlib.reset();
        loop {
            self.data.reserve(content.len() / 2 + 64);
            let consumed = usize::try_from(zlib.total_in()).unwrap_or(usize::MAX);
            let status = zlib
                .compress_vec(
                    content.get(consumed..).unwrap_or_default(),
                    &mut self.data,
                    flate2::FlushCompress::Finish,
                )
                .map_err(std::io::Error::other)?;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(&self.data[offset..]);
        self.entries.push(Entry {
            id,
            offset: offset as u64,
            crc: crc.sum(),
        });
        Ok(())
    }

    /// Adds an entry copied as it is from another pack (a whole object, not a delta: a
    /// delta's base may not come along); a repeat is ignored.
    pub(crate) fn add_raw(&mut self, id: Oid, entry: &[u8], crc: u32) {
        if !self.ids.insert(id) {
            return;
        }
        self.entries.push(Entry {
            id,
            offset: self.data.len() as u64,
            crc,
        });
        self.data.extend_from_slice(entry);
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
        self.data[8..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
        let checksum = sha1_digest(&self.data);
        self.data.extend_from_slice(&checksum);
        let index = index_bytes(&mut self.entries, &checksum);
        let name = format!("pack-{}", hex(&checksum));
        let pack = dir.join(format!("{name}.pack"));
        let idx = dir.join(format!("{name}.idx"));
        if pack.exists() && idx.exists() {
            // The same objects in the same order: already there (and durable, since a
            // reference may have pointed into it before).
            return Ok(name);
        }
        let pack_tmp = temporary(dir, "pack");
        let idx_tmp = temporary(dir, "idx");
        let written = write_new(&pack_tmp, &self.data)
            .and_then(|pack| Ok((pack, write_new(&idx_tmp, &index)?)))
            .and_then(|(pack, idx)| sync_both(&pack, &idx))
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

/// Writes `bytes` to a new file at `path`, read-only as git makes packs (not fsynced yet).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(file)
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

/// The bytes of each entry of `pack` (the pack file's content, `entries` from its index in
/// pack order), with whether the entry is a whole object rather than a delta.
pub(crate) fn entry_bytes<'a>(
    pack: &'a [u8],
    entries: &[Entry],
) -> std::io::Result<Vec<(&'a [u8], bool)>> {
    let end = pack
        .len()
        .checked_sub(TRAILER_LEN)
        .filter(|&e| e >= HEADER_LEN && pack.starts_with(b"PACK"))
        .ok_or_else(|| invalid("not a pack"))?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let start = usize::try_from(e.offset).map_err(|_| invalid("offset too large"))?;
        let stop = match entries.get(i + 1) {
            Some(next) => usize::try_from(next.offset).map_err(|_| invalid("offset too large"))?,
            None => end,
        };
        let bytes = pack
            .get(start..stop)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("pack entry out of bounds"))?;
        let code = (bytes[0] >> 4) & 0x07;
        out.push((bytes, (1..=4).contains(&code)));
    }
    Ok(out)
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
}
