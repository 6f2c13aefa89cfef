//! Request metrics: every request counted by method, route template and status, with its
//! latency (`hexabase_http_requests_total`, `hexabase_http_request_seconds`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Counts the request under its route template (never the raw path: the label set stays
/// bounded whatever clients send).
pub(super) async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
