//! The background pusher of `hb serve`: with `git.remote` set, it runs
//! [`Pusher::push_pending`] after every commit (woken by [`Outbox::committed`]) and every
//! `git.push_interval_seconds`, keeps `hexabase_outbox_depth` and `hexabase_push_seconds`
//! current, and tells `/readyz` whether the outbox is stuck.
//!
//! The outbox is the local branch itself (see [`crate::service::push`]): its depth is the
//! number of commits the remote-tracking branch does not reach. A queue that grows but
//! drains is healthy; the outbox is *stuck* when commits have waited longer than
//! `git.push_stuck_seconds` with no successful push in that time, and only then does
//! readiness fail.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::errors::ErrorChain;
use crate::gitops::remote::{Remote, RemoteConfig};
use crate::metrics::Metrics;
use crate::service::apply::Engine;
use crate::service::push::{PushError, PushReport, Pusher};
use crate::settings::Settings;

/// The name of the remote's tracking references (`refs/remotes/origin/<branch>`).
pub const REMOTE_NAME: &str = "origin";

/// The push queue as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxStatus {
    /// Whether a remote is configured (without one, nothing is ever pending).
    pub remote: bool,
    /// Commits waiting to be pushed, as of the last attempt.
    pub depth: u64,
    /// Seconds since the queue was last empty or a push last succeeded, while commits wait.
    pub waiting_seconds: u64,
    /// Commits have waited longer than `git.push_stuck_seconds`: readiness fails.
    pub stuck: bool,
}

#[derive(Debug)]
struct State {
    depth: u64,
    /// The queue was last empty, or a push last succeeded, at this instant.
    progress: Instant,
}

/// The push queue of one server: the pusher (when a remote is configured), what wakes it,
/// and what it last saw.
pub struct Outbox {
    pusher: Option<Arc<Pusher>>,
    wake: Notify,
    state: Mutex<State>,
    stuck_after: Duration,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("remote", &self.pusher.is_some())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// No remote: commits stay local, nothing is ever pending.
    pub fn local() -> Self {
        Self::with(None, Duration::MAX)
    }

    /// The outbox `settings` ask for: a pusher for `engine`'s branch when `git.remote` is set
    /// (which turns the push journal on), none otherwise.
    pub fn open(settings: &Settings, engine: &Arc<Engine>) -> Result<Self, PushError> {
        let Some(url) = &settings.git.remote else {
            return Ok(Self::local());
        };
        let remote = Remote::new(RemoteConfig {
            name: REMOTE_NAME.to_owned(),
            url: url.clone(),
            credentials: settings.git.remote_credentials.clone(),
        });
        let pusher = Pusher::new(Arc::clone(engine), remote)?;
        Ok(Self::with(
            Some(Arc::new(pusher)),
            Duration::from_secs(settings.git.push_stuck_seconds),
        ))
    }

    fn with(pusher: Option<Arc<Pusher>>, stuck_after: Duration) -> Self {
        Self {
            pusher,
            wake: Notify::new(),
            state: Mutex::new(State {
                depth: 0,
                progress: Instant::now(),
            }),
            stuck_after,
        }
    }

    /// The pusher, when a remote is configured.
    pub fn pusher(&self) -> Option<&Arc<Pusher>> {
        self.pusher.as_ref()
    }

    /// A commit was made: wake the pusher (a wake-up during a push makes another round).
    pub fn committed(&self) {
        if self.pusher.is_some() {
            self.wake.notify_one();
        }
    }

    /// The queue as last seen.
    pub fn status(&self) -> OutboxStatus {
        let state = self.lock();
        let waiting = if state.depth == 0 {
            Duration::ZERO
        } else {
            state.progress.elapsed()
        };
        OutboxStatus {
            remote: self.pusher.is_some(),
            depth: state.depth,
            waiting_seconds: waiting.as_secs(),
            stuck: state.depth > 0 && waiting > self.stuck_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain values: a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pushes what is pending now, on a blocking thread, and records the outcome: the depth
    /// (gauge and readiness), the push's duration, and every failure or dropped action in
    /// the log. `None` without a remote.
    pub async fn push_once(&self, metrics: &Metrics) -> Option<Result<PushReport, String>> {
        let pusher = Arc::clone(self.pusher.as_ref()?);
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let result = pusher.push_pending();
            let depth = pusher.pending().map(|p| p.len());
            (result, depth)
        })
        .await;
        let (result, depth) = match joined {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "the push task failed");
                metrics.push("failed");
                return Some(Err(error.to_string()));
            }
        };
        let outcome = match result {
            Ok(report) => {
                if !report.pushed.is_empty() || report.rejected > 0 {
                    metrics
                        .push_seconds
                        .observe(started.elapsed().as_secs_f64());
                    tracing::info!(
                        pushed = report.pushed.len(),
                        rejected = report.rejected,
                        replayed = report.replayed.len(),
                        "pushed to the remote"
                    );
                }
                for dropped in &report.dropped {
                    tracing::error!(
                        commit = %dropped.commit,
                        change = ?dropped.change,
                        reason = %dropped.reason,
                        "an action no longer applies on the remote's head and was dropped \
                         (kept in the journal's dropped/ folder)"
                    );
                }
                metrics.push("ok");
                Ok(report)
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "push failed; will retry");
                metrics.push("failed");
                Err(ErrorChain(&error).to_string())
            }
        };
        let mut state = self.lock();
        match depth {
            Ok(depth) => {
                state.depth = u64::try_from(depth).unwrap_or(u64::MAX);
                metrics
                    .outbox_depth
                    .set(i64::try_from(depth).unwrap_or(i64::MAX));
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "failed to count the pending commits");
            }
        }
        if outcome.is_ok() || state.depth == 0 {
            state.progress = Instant::now();
        }
        Some(outcome)
    }

    /// Pushes after every commit and every `interval` until `stop` turns true. A push in
    /// flight when `stop` turns is finished first.
    pub async fn run(
        self: Arc<Self>,
        metrics: Arc<Metrics>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        if self.pusher.is_none() {
            return;
        }
        loop {
            self.push_once(&metrics).await;
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }
}

/// The running background pusher of [`crate::serve::run`].
pub struct Background {
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Starts the loop of [`Outbox::run`].
    pub fn start(outbox: Arc<Outbox>, metrics: Arc<Metrics>, interval: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(Arc::clone(&outbox).run(Arc::clone(&metrics), interval, stopped));
        Self {
            outbox,
            metrics,
            stop,
            task,
        }
    }

    /// Stops the loop, lets a push in flight finish, and pushes once more (what the last
    /// requests committed), waiting at most `bound` in all. Returns whether the queue was
    /// pushed empty in time.
    pub async fn drain(self, bound: Duration) -> bool {
        let Self {
            outbox,
            metrics,
            stop,
            task,
        } = self;
        let _ = stop.send(true);
        let drained = tokio::time::timeout(bound, async {
            let _ = task.await;
            outbox.push_once(&metrics).await
        })
        .await;
        match drained {
            Ok(Some(Ok(_)) | None) => {
                let depth = outbox.status().depth;
                if depth > 0 {
                    tracing::warn!(depth, "shutting down with commits still to push");
                }
                depth == 0
            }
            Ok(Some(Err(_))) => {
                tracing::warn!(
                    "shutting down with commits still to push: the last push failed (they \
                     are pushed at the next start)"
                );
                false
            }
            Err(_) => {
                tracing::warn!(
                    seconds = bound.as_secs(),
                    "shutting down before the last push finished (it is retried at the next start)"
                );
                false
            }
        }
    }
}
