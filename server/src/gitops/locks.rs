//! The process lock (`hexabase.lock`) and the recovery of git lock files a killed
//! process left behind.

use super::*;

// --- Stale lock recovery ------------------------------------------------------------------
//
// Git guards each ref, HEAD, packed-refs and config with a `<file>.lock` created with O_EXCL
// and renamed over the file when the update is complete. A process killed between the two
// leaves the `.lock` behind, and every later update of that ref fails with "locked" until
// someone deletes it. Deleting one is only safe when its owner is dead, which a lock file
// cannot tell. So every Hexabase process holds a *shared* advisory lock (flock) on
// `<gitdir>/hexabase.lock` from before its first write until it exits; the kernel drops it
// when the process dies, also on SIGKILL. If a process opening the repository gets the lock
// *exclusively*, no other Hexabase process has the repository open, so no live Hexabase
// writer owns any `.lock` file: they are all stale, and are removed before the lock is
// downgraded to shared (release, then wait for shared; a process that slips in between
// takes the exclusive lock itself, and this one waits for it to finish its own clean-up).
// A process that cannot get it exclusively removes nothing: the owner may be alive.
//
// What this assumes: the repository is Hexabase's own (the server's clone, or the bare
// repository of `hb`); a person or tool running git in it while no Hexabase process is
// alive does not take our lock, and a lock file of theirs could be removed under them. And
// flock must work on the file system (local disks do; some network file systems do not).
// `hexabase.lock` itself is never removed: a process could hold a lock on an unlinked file.

/// The file every Hexabase process locks while it has the repository open.
pub const PROCESS_LOCK: &str = "hexabase.lock";

/// Takes the shared process lock of the repository at `gitdir`, first removing stale lock
/// files if this is the only Hexabase process there.
pub(super) fn process_lock(gitdir: &Path) -> Result<File, GitOpsError> {
    let path = gitdir.join(PROCESS_LOCK);
    let lock_err = |source| GitOpsError::Lock {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => {
            remove_stale_locks(gitdir)?;
            file.unlock().map_err(lock_err)?;
        }
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
    }
    file.lock_shared().map_err(lock_err)?;
    Ok(file)
}

/// Removes `refs/**/*.lock`, `packed-refs.lock`, `HEAD.lock`, `config.lock` and what a pack
/// write leaves when killed. Only call with the process lock held exclusively.
fn remove_stale_locks(gitdir: &Path) -> Result<(), GitOpsError> {
    let mut stale: Vec<PathBuf> = ["packed-refs.lock", "HEAD.lock", "config.lock"]
        .iter()
        .map(|name| gitdir.join(name))
        .collect();
    let mut dirs = vec![gitdir.join("refs")];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(GitOpsError::Lock { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| GitOpsError::Lock {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                stale.push(path);
            }
        }
    }
    // A pack write killed half way leaves its temporaries (`pack_hb_*` from ours, and
    // `pack_XXXXXX` and `pack-<hash>.idx.lock` from libgit2's); no reference can need them.
    let packs = gitdir.join("objects").join("pack");
    if let Ok(entries) = std::fs::read_dir(&packs) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("pack_") || name.ends_with(".lock") {
                stale.push(entry.path());
            }
        }
    }
    for path in stale {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(GitOpsError::Lock { path, source }),
        }
    }
    Ok(())
}
