//! Rebuilds the server when a migration is added: `sqlx::migrate!` embeds the migrations at
//! compile time, and Cargo does not otherwise notice a new file in their folder.
//!
//! Also records the Git commit `hb` is built from as `HB_BUILT_FROM_COMMIT` (`hb --version`):
//! `HEXABASE_BUILD_COMMIT` when set (a build from a tarball), else `git rev-parse`, else
//! `unknown`. Not a `HEXABASE_` name: `cargo run` and `cargo test` hand `rustc-env` values to
//! the process too, and `hb serve` refuses `HEXABASE_` variables it does not know.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=HEXABASE_BUILD_COMMIT");
    let commit = match std::env::var("HEXABASE_BUILD_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => from_git().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=HB_BUILT_FROM_COMMIT={commit}");
}

/// The short commit id of `HEAD`, watching the files that move it.
fn from_git() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    watch(&git_dir.join("HEAD"));
    if let Some(name) = git(&["symbolic-ref", "-q", "HEAD"]) {
        // A loose ref, or packed: watch whichever exists (a missing file would rebuild always).
        let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
            .map_or(git_dir, PathBuf::from);
        watch(&common.join(&name));
        watch(&common.join("packed-refs"));
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
