//! Where an action's time goes, phase by phase, when `HB_TIMING` is set in the environment
//! (the engine benchmark sets it and prints the table). Off, a span costs one relaxed load.
//!
//! Wall time per phase, summed over all threads: with one writer and an idle machine that is
//! CPU time plus the fsyncs' waits.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// 0: not read yet, 1: off, 2: on.
static STATE: AtomicU8 = AtomicU8::new(0);
static TOTALS: Mutex<BTreeMap<&'static str, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var_os("HB_TIMING").is_some_and(|v| !v.is_empty() && v != "0");
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        state => state == 2,
    }
}

/// Adds the time until it is dropped to its phase.
#[must_use = "a span measures until it is dropped"]
pub struct Span {
    phase: &'static str,
    started: Instant,
}

impl Drop for Span {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
        let entry = totals.entry(self.phase).or_default();
        entry.0 += 1;
        entry.1 += elapsed;
    }
}

/// Starts timing `phase` (named `area.step`), when timing is on.
pub fn span(phase: &'static str) -> Option<Span> {
    enabled().then(|| Span {
        phase,
        started: Instant::now(),
    })
}

/// The phases timed since the last call, with how often each ran and their total time;
/// starts over.
pub fn take() -> Vec<(&'static str, u64, Duration)> {
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *totals)
        .into_iter()
        .map(|(phase, (n, d))| (phase, n, d))
        .collect()
}
