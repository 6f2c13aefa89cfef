//! libgit2's process-wide options: the bounds on how much of the pack files it maps.

use super::GitOpsError;

/// libgit2 maps pack files in windows of this size …
const PACK_WINDOW: usize = 4 << 20;

/// … and keeps at most this much mapped, unmapping the least recently used windows beyond.
/// Its defaults (1 GiB windows, 8 GiB in all) keep every page a read touched resident for as
/// long as a handle has the pack open: under a stream of actions that was half the server's
/// resident memory.
const PACK_MAPPED_LIMIT: usize = 32 << 20;

/// Sets libgit2's pack mapping bounds (`PACK_WINDOW`, `PACK_MAPPED_LIMIT`). Must run
/// before any other thread starts (`hb serve` calls it first thing on the main thread).
#[allow(unsafe_code)]
pub fn bound_pack_mappings() -> Result<(), GitOpsError> {
    // SAFETY: these write libgit2's process-wide options without synchronisation; the caller
    // (`serve::command`) calls this on the main thread before it starts the runtime, the
    // tracing writer or any other thread, so nothing reads them concurrently.
    unsafe {
        git2::opts::set_mwindow_size(PACK_WINDOW).map_err(GitOpsError::Git)?;
        git2::opts::set_mwindow_mapped_limit(PACK_MAPPED_LIMIT).map_err(GitOpsError::Git)?;
    }
    Ok(())
}
