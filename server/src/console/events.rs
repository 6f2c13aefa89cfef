//! `GET /orgs/{org}/workspaces/{ws}/events`: server-sent events for a workspace's open page.
//! Each new commit touching the workspace (by anyone: the console, the API, a merged pull
//! request, a hand edit on the branch) is an event `commit` whose data is the `<li>` the
//! page's "Latest changes" list prepends (htmx's SSE extension swaps it in).
//!
//! The stream asks the service every [`POLL`] and re-checks the person's access each time;
//! a comment line every [`KEEPALIVE`] finds closed connections. Other kinds of events (the
//! Flux status of the workspace) are further `event:` names on the same stream: add a case
//! to [`Event`].

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::Channel;
use serde::Serialize;

use super::dashboard::error_page;
use super::layout::{Chrome, Console};
use super::session::ConsoleSession;
use crate::http::AppState;
use crate::service::console::{self, LastChange};

/// How often the stream looks for new commits.
pub const POLL: Duration = Duration::from_secs(2);
/// How often an idle stream sends a comment, to find out the browser has gone.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// One event of the stream.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new commit touching the workspace.
    Commit(LastChange),
}

/// `event: <name>` and `data: <html>` lines: the HTML on one line (SSE data lines end at a
/// newline), escaped by the template.
fn frame(org: &str, event: &Event) -> Option<Bytes> {
    let Event::Commit(change) = event;
    #[derive(Serialize)]
    struct View<'a> {
        org: &'a str,
        change: &'a LastChange,
    }
    let html = Console::get()
        .render_str("change_item.html", &Chrome::default(), &View { org, change })
        .inspect_err(|error| {
            tracing::error!(error = %crate::errors::ErrorChain(error), "the change item failed to render");
        })
        .ok()?;
    let line = html.replace(['\r', '\n'], " ");
    Some(Bytes::from(format!(
        "event: commit\ndata: {}\n\n",
        line.trim()
    )))
}

/// The stream, or the page saying why not (404 for a workspace the person may not see).
pub async fn events(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((org, ws)): Path<(String, String)>,
) -> Response {
    let first = match console::workspace_changes(&state, &session.caller, &org, &ws, None).await {
        Ok(first) => first,
        Err(error) => return error_page(&session, &error.into()),
    };
    let (mut sender, body) = Channel::<Bytes>::new(8);
    tokio::spawn(async move {
        let mut seen = first.newest;
        let mut idle = Duration::ZERO;
        if sender
            .send_data(Bytes::from_static(b": open\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(POLL).await;
            idle += POLL;
            // Access lost, or the workspace is gone: end the stream.
            let Ok(changes) =
                console::workspace_changes(&state, &session.caller, &org, &ws, seen.as_deref())
                    .await
            else {
                return;
            };
            for change in changes.new {
                if let Some(bytes) = frame(&org, &Event::Commit(change)) {
                    if sender.send_data(bytes).await.is_err() {
                        return;
                    }
                    idle = Duration::ZERO;
                }
            }
            if changes.newest.is_some() {
                seen = changes.newest;
            }
            if idle >= KEEPALIVE {
                if sender
                    .send_data(Bytes::from_static(b": keep-alive\n\n"))
                    .await
                    .is_err()
                {
                    return;
                }
                idle = Duration::ZERO;
            }
        }
    });
    let mut response = (StatusCode::OK, Body::new(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
