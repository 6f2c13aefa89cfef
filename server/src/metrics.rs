//! Prometheus metrics, served on their own listener: actions by result, commit and push
//! latency, outbox depth, HTTP requests.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `hexabase_actions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// `committed`, `unchanged`, `rejected` or `failed`.
    pub result: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Actions by result.
    pub actions: Family<ActionLabels, Counter>,
    /// Seconds from an action's start to its commit on the branch.
    pub commit_seconds: Histogram,
    /// Seconds per push to the remote.
    pub push_seconds: Histogram,
    /// Commits waiting to be pushed.
    pub outbox_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hexabase");
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register("actions", "Actions by result", actions.clone());
        let commit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register(
            "commit_seconds",
            "Seconds from an action's start to its commit",
            commit_seconds.clone(),
        );
        let push_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("push_seconds", "Seconds per push", push_seconds.clone());
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Commits waiting to be pushed",
            outbox_depth.clone(),
        );
        Self {
            registry,
            actions,
            commit_seconds,
            push_seconds,
            outbox_depth,
        }
    }
}

impl Metrics {
    /// Counts an action by its result.
    pub fn action(&self, result: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
