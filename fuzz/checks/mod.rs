//! The bodies of the fuzz targets, one function each, so that two builds share them: the
//! cargo-fuzz binaries in `fuzz_targets/` (one line each around `fuzz_target!`), and the
//! workspace test `tests/tests/fuzz_corpus.rs`, which replays every input of `corpus/` on the
//! stable toolchain in `make test`. Each function panics when its input shows a bug.
//!
//! Included by path (`#[path = ".../fuzz/checks/mod.rs"] mod checks;`): each includer uses
//! part of it.
#![allow(dead_code)]

mod common;
pub(crate) mod compile;
pub(crate) mod quote;
#[path = "../../compiler/tests/support/text_rule.rs"]
mod text_rule;
