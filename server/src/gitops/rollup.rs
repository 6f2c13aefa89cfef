//! Roll-ups: one pack per batch piles up, so a maintenance thread merges the small ones
//! (geometrically, as `git repack --geometric=2`), off every request's way.

use super::*;

/// A thread that rolls packs up in the background, off every request's way: a roll-up that
/// merges large packs reads, writes and fsyncs all of them.
pub(super) struct Maintenance {
    shared: Arc<MaintenanceState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct MaintenanceState {
    state: Mutex<MaintenanceFlags>,
    /// Wakes the thread.
    wake: std::sync::Condvar,
    /// Signalled when the thread has nothing to do.
    idle: std::sync::Condvar,
}

#[derive(Default)]
struct MaintenanceFlags {
    requested: bool,
    busy: bool,
    stop: bool,
}

impl Drop for Maintenance {
    /// Lets a roll-up under way finish (a process exiting is then never in the middle of
    /// one), then ends the thread.
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl GitOps {
    /// Asks the maintenance thread to roll packs up (see [`GitOps::roll_up_packs`]) and
    /// returns at once; the thread is started on first use. Requests made while one waits
    /// are one request. A roll-up that fails leaves more packs, and the next one tries again.
    pub fn request_roll_up(&self) {
        let mut maintenance = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        if maintenance.is_none() {
            let shared = Arc::new(MaintenanceState::default());
            let thread = std::thread::Builder::new()
                .name("hb-roll-up".to_owned())
                .spawn({
                    let (shared, path) = (Arc::clone(&shared), self.path.clone());
                    move || maintain(&shared, &path)
                })
                .ok();
            *maintenance = Some(Maintenance { shared, thread });
        }
        let Some(maintenance) = maintenance.as_ref() else {
            return;
        };
        maintenance
            .shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requested = true;
        maintenance.shared.wake.notify_one();
    }

    /// Waits until the maintenance thread has nothing left to do (for tests and tools that
    /// look at the packs).
    pub fn wait_for_maintenance(&self) {
        let maintenance = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        let Some(maintenance) = maintenance.as_ref() else {
            return;
        };
        let shared = &maintenance.shared;
        let mut flags = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        while (flags.requested || flags.busy) && maintenance.thread.is_some() {
            flags = shared.idle.wait(flags).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Rolls small packs up into one when there are more than [`PACKS_BEFORE_ROLLUP`], so
    /// that a pack per commit batch does not slow reads down over time (every object lookup
    /// that misses the last pack used searches the others' indexes). Packs are taken
    /// smallest first while each is smaller than twice the ones taken so far, as
    /// `git repack --geometric=2` does: the large base pack is left alone, and pack sizes
    /// stay a geometric progression, so there are O(log n) packs and each object is
    /// rewritten O(log n) times. Whole objects are copied as they are (no inflating, no
    /// delta search); deltas (from `git repack` or a fetch) are read and stored whole. The
    /// new pack is fsynced before the old ones are removed; readers that still map an old
    /// one keep it until they let go (POSIX unlink), and libgit2 rescans the folder when a
    /// lookup misses. Returns how many packs were merged.
    pub fn roll_up_packs(&self, repo: &Repository) -> Result<usize, GitOpsError> {
        roll_up_packs(repo)
    }
}

/// How many packs may pile up before [`GitOps::roll_up_packs`] merges the small ones.
pub const PACKS_BEFORE_ROLLUP: usize = 24;

/// The object count of a version 2 pack index (`.idx`): after the 8-byte header comes a
/// 256-entry fan-out table whose last entry is the count.
fn pack_index_count(path: &Path) -> std::io::Result<usize> {
    use std::io::Read as _;
    let mut head = [0u8; 8 + 256 * 4];
    File::open(path)?.read_exact(&mut head)?;
    if head[..8] != *b"\xfftOc\0\0\0\x02" {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a v2 pack index",
        ));
    }
    let last: [u8; 4] = head[8 + 255 * 4..].try_into().expect("four bytes");
    Ok(u32::from_be_bytes(last) as usize)
}

/// The maintenance thread: a roll-up per request, until asked to stop.
fn maintain(shared: &MaintenanceState, path: &Path) {
    loop {
        {
            let mut flags = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !flags.requested && !flags.stop {
                flags = shared.wake.wait(flags).unwrap_or_else(|e| e.into_inner());
            }
            if !flags.requested {
                return;
            }
            flags.requested = false;
            flags.busy = true;
        }
        if let Ok(repo) = Repository::open(path) {
            let _ = roll_up_packs(&repo);
        }
        shared.state.lock().unwrap_or_else(|e| e.into_inner()).busy = false;
        shared.idle.notify_all();
    }
}

/// See [`GitOps::roll_up_packs`].
pub(super) fn roll_up_packs(repo: &Repository) -> Result<usize, GitOpsError> {
    let dir = repo.path().join("objects").join("pack");
    let io = |source| GitOpsError::Pack {
        path: dir.clone(),
        source,
    };
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "idx")
            && path.with_extension("pack").exists()
            && !path.with_extension("keep").exists()
        {
            indexes.push(path);
        }
    }
    if indexes.len() <= PACKS_BEFORE_ROLLUP {
        return Ok(0);
    }
    // A pack whose index cannot be read is left alone.
    let mut packs: Vec<(usize, PathBuf)> = indexes
        .into_iter()
        .filter_map(|path| Some((pack_index_count(&path).ok()?, path)))
        .collect();
    if packs.len() <= PACKS_BEFORE_ROLLUP {
        return Ok(0);
    }
    packs.sort();
    let mut taken = 0;
    let mut objects = 0;
    for (n, _) in &packs {
        if taken >= 2 && *n >= 2 * objects {
            break;
        }
        taken += 1;
        objects += n;
    }
    if taken < 2 {
        return Ok(0);
    }
    let odb = repo.odb().map_err(GitOpsError::Git)?;
    // Streamed: one entry in memory at a time, however large the packs.
    let mut indexes = Vec::with_capacity(taken);
    let mut unique = BTreeSet::new();
    for (_, idx) in &packs[..taken] {
        let entries = pack::read_index(idx).map_err(io)?;
        unique.extend(entries.iter().map(|e| e.id));
        indexes.push((idx, entries));
    }
    let count = u32::try_from(unique.len()).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "too many objects to roll up",
        ))
    })?;
    let mut writer = pack::PackWriter::to_file(&dir, count).map_err(io)?;
    // Commits first, then the rest: whoever walks history (the index sync, the audit, a
    // reference update checking its target) then reads the first pages of the pack
    // instead of a page every few dozen kilobytes all through it (and the kernel maps
    // the pages around each one read).
    for commits in [true, false] {
        for (idx, entries) in &indexes {
            use std::os::unix::fs::FileExt as _;
            let file = File::open(idx.with_extension("pack")).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            let mut raw = Vec::new();
            for (entry, (start, stop)) in entries
                .iter()
                .zip(pack::entry_spans(len, entries).map_err(io)?)
            {
                if writer.contains(entry.id) {
                    continue;
                }
                if commits {
                    let mut first = [0u8];
                    file.read_exact_at(&mut first, start).map_err(io)?;
                    if !pack::is_commit(&first) {
                        continue;
                    }
                }
                let size = usize::try_from(stop - start).map_err(|_| {
                    io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "pack entry too large",
                    ))
                })?;
                raw.resize(size, 0);
                file.read_exact_at(&mut raw, start).map_err(io)?;
                let mut crc = flate2::Crc::new();
                crc.update(&raw);
                if crc.sum() != entry.crc {
                    return Err(io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} does not match its index", idx.display()),
                    )));
                }
                if pack::is_whole(&raw) {
                    writer.add_raw(entry.id, &raw, entry.crc).map_err(io)?;
                } else {
                    let object = odb.read(entry.id).map_err(GitOpsError::Git)?;
                    writer
                        .add(entry.id, object.kind(), object.data())
                        .map_err(io)?;
                }
            }
        }
    }
    debug_assert!(writer.len() <= objects);
    let new = format!("{}.idx", writer.finish(&dir).map_err(io)?);
    for (_, idx) in &packs[..taken] {
        // Same objects, same name: the new pack may have replaced this one.
        if idx.file_name().and_then(|n| n.to_str()) == Some(new.as_str()) {
            continue;
        }
        for path in [idx.clone(), idx.with_extension("pack")] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
    }
    Ok(taken)
}
