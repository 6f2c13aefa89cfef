//! `intent::load` + `Compiler::compile` on arbitrary intent files: see `checks/compile.rs`.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::compile::check(data));
