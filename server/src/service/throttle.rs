//! Exponential back-off of password sign-ins, per account and per client address, that an
//! attacker cannot turn against the account's owner.
//!
//! Each failed sign-in counts against the account (the email as typed, normalised: an
//! unknown email is treated exactly like a known one) and against the client's address. Past
//! a number of free failures, each further failure makes the next attempt wait, twice as long
//! as the one before, up to a cap; attempts during the wait are answered 429 with
//! `Retry-After` and check no password.
//!
//! An account's back-off does not hold back a client that has no failure on record: such a
//! client gets one attempt through it, so the owner can still sign in from their own device
//! while someone hammers the account from elsewhere. A wrong password there puts the client on
//! record (and through the account's back-off no more); a right one clears the account's
//! failures. A client's own back-off always applies.
//!
//! The state lives in this process's memory: a restart forgets it, and several replicas count
//! separately (each holds an attacker to the same figures).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::service::issuer::{Clock, SystemClock};
use crate::settings::Limits;

/// Records kept per map at most; beyond it the ones whose last failure is oldest go first.
const KEYS_MAX: usize = 100_000;

/// The figures (from `limits.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Failures on one account before it backs off.
    pub free_per_account: u32,
    /// Failures from one client address before it backs off.
    pub free_per_client: u32,
    /// The first wait, in seconds; each further failure doubles it.
    pub first_seconds: i64,
    /// The longest wait, in seconds.
    pub max_seconds: i64,
    /// Failures are forgotten this many seconds after the last one.
    pub forget_seconds: i64,
}

impl Figures {
    /// The figures `limits` sets.
    pub fn from_limits(limits: &Limits) -> Self {
        Self {
            free_per_account: limits.login_free_failures_per_account,
            free_per_client: limits.login_free_failures_per_client,
            first_seconds: limits.login_backoff_first_seconds,
            max_seconds: limits.login_backoff_max_seconds,
            forget_seconds: limits.login_failures_forget_seconds,
        }
    }

    /// The wait after `failures` failures when `free` of them are free: none up to `free`,
    /// then `first_seconds`, doubling, at most `max_seconds`.
    pub fn wait(&self, failures: u32, free: u32) -> i64 {
        if failures <= free {
            return 0;
        }
        let doublings = (failures - free - 1).min(62);
        self.first_seconds
            .saturating_mul(1_i64 << doublings)
            .min(self.max_seconds)
    }
}

/// What is on record for one account or one client.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    /// Failures since the record started.
    failures: u32,
    /// Unix seconds of the last failure.
    last_failure: i64,
    /// For a client: it was let through an account's back-off and has not signed in since.
    passed: bool,
    /// Unix seconds of the last change; the record is forgotten `forget_seconds` later.
    touched: i64,
}

impl Record {
    /// Seconds until the next attempt is allowed, if it must wait.
    fn waiting(&self, figures: &Figures, free: u32, now: i64) -> Option<i64> {
        let until = self
            .last_failure
            .saturating_add(figures.wait(self.failures, free));
        (until > now).then(|| until - now)
    }
}

/// Records by key, forgetting old ones.
#[derive(Debug)]
struct Book<K>(Mutex<HashMap<K, Record>>);

impl<K: Eq + Hash + Clone> Book<K> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Record>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record of `key`, unless it is forgotten.
    fn get(&self, key: &K, figures: &Figures, now: i64) -> Option<Record> {
        let mut book = self.lock();
        let record = *book.get(key)?;
        if record.touched.saturating_add(figures.forget_seconds) <= now {
            book.remove(key);
            return None;
        }
        Some(record)
    }

    fn update(&self, key: &K, figures: &Figures, now: i64, change: impl FnOnce(&mut Record)) {
        let mut book = self.lock();
        if book.len() >= KEYS_MAX && !book.contains_key(key) {
            book.retain(|_, r| r.touched.saturating_add(figures.forget_seconds) > now);
            if book.len() >= KEYS_MAX {
                // Still full of recent failures: drop the older half.
                let mut times: Vec<i64> = book.values().map(|r| r.touched).collect();
                times.sort_unstable();
                let median = times[times.len() / 2];
                book.retain(|_, r| r.touched > median);
            }
        }
        let record = book.entry(key.clone()).or_default();
        if record.touched.saturating_add(figures.forget_seconds) <= now {
            *record = Record::default();
        }
        change(record);
        record.touched = now;
    }

    fn remove(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// Too early: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub u64);

/// The back-off of password sign-ins (see the module's documentation).
#[derive(Debug)]
pub struct LoginBackoff {
    figures: Figures,
    clock: Arc<dyn Clock>,
    accounts: Book<String>,
    clients: Book<IpAddr>,
}

impl LoginBackoff {
    /// Back-off with `figures` on the system clock.
    pub fn new(figures: Figures) -> Self {
        Self::with_clock(figures, Arc::new(SystemClock))
    }

    /// Back-off with `figures` on `clock` (tests move it by hand).
    pub fn with_clock(figures: Figures, clock: Arc<dyn Clock>) -> Self {
        Self {
            figures,
            clock,
            accounts: Book::new(),
            clients: Book::new(),
        }
    }

    /// Whether `client` may try a password on `account` now: the wait otherwise.
    pub fn admit(&self, account: &str, client: Option<IpAddr>) -> Result<(), Wait> {
        let (figures, now) = (&self.figures, self.clock.now());
        let on_record = client.and_then(|ip| self.clients.get(&ip, figures, now));
        if let Some(wait) = on_record.and_then(|r| r.waiting(figures, figures.free_per_client, now))
        {
            return Err(seconds(wait));
        }
        let account_wait = self
            .accounts
            .get(&account.to_owned(), figures, now)
            .and_then(|r| r.waiting(figures, figures.free_per_account, now));
        let Some(wait) = account_wait else {
            return Ok(());
        };
        match client {
            // A client with nothing on record passes, once.
            Some(ip) if on_record.is_none() => {
                self.clients
                    .update(&ip, figures, now, |record| record.passed = true);
                Ok(())
            }
            _ => Err(seconds(wait)),
        }
    }

    /// Whether `client` may try now, whatever the account (sign-up): the wait otherwise.
    pub fn admit_client(&self, client: Option<IpAddr>) -> Result<(), Wait> {
        let (figures, now) = (&self.figures, self.clock.now());
        let wait = client
            .and_then(|ip| self.clients.get(&ip, figures, now))
            .and_then(|r| r.waiting(figures, figures.free_per_client, now));
        wait.map_or(Ok(()), |wait| Err(seconds(wait)))
    }

    /// Counts a wrong password (or an unknown account) against both.
    pub fn failed(&self, account: &str, client: Option<IpAddr>) {
        let (figures, now) = (&self.figures, self.clock.now());
        let fail = |record: &mut Record| {
            record.failures = record.failures.saturating_add(1);
            record.last_failure = now;
        };
        self.accounts
            .update(&account.to_owned(), figures, now, fail);
        if let Some(ip) = client {
            self.clients.update(&ip, figures, now, fail);
        }
    }

    /// Counts a failure against the client only (for answers that tell about an account
    /// without checking a password, such as "this email has an account" at sign-up).
    pub fn failed_client(&self, client: Option<IpAddr>) {
        let (figures, now) = (&self.figures, self.clock.now());
        if let Some(ip) = client {
            self.clients.update(&ip, figures, now, |record| {
                record.failures = record.failures.saturating_add(1);
                record.last_failure = now;
            });
        }
    }

    /// A right password: the account's failures are cleared, and the client may pass an
    /// account's back-off again (its own failures stay on record).
    pub fn succeeded(&self, account: &str, client: Option<IpAddr>) {
        let (figures, now) = (&self.figures, self.clock.now());
        self.accounts.remove(&account.to_owned());
        if let Some(ip) = client
            && let Some(record) = self.clients.get(&ip, figures, now)
        {
            if record.failures == 0 {
                self.clients.remove(&ip);
            } else {
                self.clients
                    .update(&ip, figures, now, |record| record.passed = false);
            }
        }
    }
}

fn seconds(wait: i64) -> Wait {
    Wait(u64::try_from(wait).unwrap_or(1).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::issuer::ManualClock;

    const FIGURES: Figures = Figures {
        free_per_account: 3,
        free_per_client: 5,
        first_seconds: 1,
        max_seconds: 60,
        forget_seconds: 3600,
    };

    #[test]
    fn waits_double_up_to_the_cap() {
        let waits: Vec<i64> = (0..12).map(|n| FIGURES.wait(n, 3)).collect();
        assert_eq!(waits, [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(FIGURES.wait(u32::MAX, 0), 60);
    }

    #[test]
    fn the_owner_passes_a_hammered_account_once_per_clean_client() {
        let clock = Arc::new(ManualClock::new(1_000));
        let backoff = LoginBackoff::with_clock(FIGURES, clock.clone());
        let attacker = Some(IpAddr::from([10, 0, 0, 66]));
        let owner = Some(IpAddr::from([10, 0, 0, 7]));
        for _ in 0..4 {
            backoff.admit("ana@a.test", attacker).unwrap();
            backoff.failed("ana@a.test", attacker);
        }
        assert_eq!(backoff.admit("ana@a.test", attacker), Err(Wait(1)));
        // The owner's device has nothing on record: it passes, and again after signing in.
        backoff.admit("ana@a.test", owner).unwrap();
        backoff.succeeded("ana@a.test", owner);
        // Signing in cleared the account's failures.
        backoff.admit("ana@a.test", attacker).unwrap();
        for _ in 0..4 {
            backoff.failed("ana@a.test", attacker);
        }
        backoff.admit("ana@a.test", owner).unwrap();
        // A wrong password from a client let through puts it on record: no second pass.
        backoff.failed("ana@a.test", owner);
        assert_eq!(backoff.admit("ana@a.test", owner), Err(Wait(2)));
        // Forgotten after a quiet hour.
        clock.advance(3600);
        backoff.admit("ana@a.test", attacker).unwrap();
    }
}
