//! Replays the fuzz corpora (`fuzz/corpus/<target>/*`) through the fuzz targets' own bodies
//! (`fuzz/checks/`), on the stable toolchain, without cargo-fuzz or libFuzzer: every input a
//! fuzzing run kept, and every seed, is checked again in `make test`.
//!
//! The cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`) are one line around the same functions,
//! so what runs here is what the fuzzer runs.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks/mod.rs"]
mod checks;

/// The inputs of `fuzz/corpus/<target>/`, sorted by name.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    inputs
}

/// Runs `check` on every input of the target's corpus and fails naming each input that
/// panicked (the panic itself is printed above the failure).
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= 10,
        "fuzz/corpus/{target}/ has {} inputs; the seed corpus has more",
        inputs.len()
    );
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("read a corpus input");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "the {target} check fails on {} of {} inputs:\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
}

#[test]
fn compile_corpus_replays_cleanly() {
    replay("compile", checks::compile::check);
}

#[test]
fn quote_corpus_replays_cleanly() {
    replay("quote", checks::quote::check);
}
