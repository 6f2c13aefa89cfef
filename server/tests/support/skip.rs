//! A test that cannot run here because something is missing (PostgreSQL, a browser, a tool)
//! calls [`missing`]: in CI (`CI` set; `.ci/run` sets it) that fails the test; elsewhere the
//! test returns early after a SKIPPED line. The line is written to the stderr handle, not with
//! `eprintln!`, which the test harness captures and hides for a passing test.

use std::io::Write as _;

/// Fails in CI; elsewhere prints `*** SKIPPED <what>: <why> ***` where the summary shows it.
pub(crate) fn missing(what: &str, why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI needs {what}: {why}");
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {what}: {why} ***\n");
}
