//! libgit2's process-wide options: the bounds on how much of the pack files it maps, and
//! fsync of what it writes into a repository.

use super::GitOpsError;

/// libgit2 maps pack files in windows of this size …
const PACK_WINDOW: usize = 4 << 20;

/// … and keeps at most this much mapped, unmapping the least recently used windows beyond.
/// Its defaults (1 GiB windows, 8 GiB in all) keep every page a read touched resident for as
/// long as a handle has the pack open: under a stream of actions that was half the server's
/// resident memory.
const PACK_MAPPED_LIMIT: usize = 32 << 20;

/// Sets libgit2's pack mapping bounds (`PACK_WINDOW`, `PACK_MAPPED_LIMIT`) and makes it
/// fsync the loose objects, packs and references it writes (what `core.fsyncObjectFiles`
/// did; git deprecated that key and warns about it on every clone, so the repository's
/// config now holds `core.fsync` for git instead). Must run before any other thread starts
/// (`hb` calls it first thing on the main thread).
#[allow(unsafe_code)]
pub fn bound_pack_mappings() -> Result<(), GitOpsError> {
    // SAFETY: these write libgit2's process-wide options without synchronisation; the caller
    // (`serve::command`) calls this on the main thread before it starts the runtime, the
    // tracing writer or any other thread, so nothing reads them concurrently.
    unsafe {
        git2::opts::set_mwindow_size(PACK_WINDOW).map_err(GitOpsError::Git)?;
        git2::opts::set_mwindow_mapped_limit(PACK_MAPPED_LIMIT).map_err(GitOpsError::Git)?;
        // libgit2 is initialised by the calls above.
        let fsync = libgit2_sys::GIT_OPT_ENABLE_FSYNC_GITDIR as std::ffi::c_int;
        let on: std::ffi::c_int = 1;
        if libgit2_sys::git_libgit2_opts(fsync, on) < 0 {
            return Err(GitOpsError::Git(git2::Error::from_str(
                "libgit2 refused to fsync what it writes",
            )));
        }
    }
    Ok(())
}
