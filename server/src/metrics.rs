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

/// Labels of `hexabase_pushes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushLabels {
    /// `ok` or `failed`.
    pub result: String,
}

/// Labels of `hexabase_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The method.
    pub method: String,
    /// The route template (`/api/v1/orgs/{org}`), `unmatched` for no route: never the raw
    /// path, so the label set stays bounded.
    pub route: String,
    /// The status code.
    pub status: u16,
}

/// Labels of `hexabase_http_request_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The method.
    pub method: String,
    /// The route template.
    pub route: String,
}

fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
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
    /// Push rounds by result.
    pub pushes: Family<PushLabels, Counter>,
    /// HTTP requests by method, route template and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// HTTP request latency by method and route template.
    pub http_request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
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
        let pushes = Family::<PushLabels, Counter>::default();
        registry.register("pushes", "Push rounds by result", pushes.clone());
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        let http_request_seconds =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                http_histogram,
            );
        registry.register(
            "http_request_seconds",
            "HTTP request latency by method and route",
            http_request_seconds.clone(),
        );
        Self {
            registry,
            pushes,
            http_requests,
            http_request_seconds,
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

    /// Counts a push round by its result (`ok`, `failed`).
    pub fn push(&self, result: &str) {
        self.pushes
            .get_or_create(&PushLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one HTTP request and its latency.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_request_seconds
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
