//! YAML quoting round-trips of any string: see `checks/quote.rs`.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::quote::check(data));
