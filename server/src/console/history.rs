//! History pages: an organization's (or one workspace's) audit log as a timeline, filterable
//! like `hb audit`, and one commit's change (the intent diff and the rendered objects added,
//! changed and removed). Both read through `service::audit` with the audit API's rule of who
//! may see what.
//!
//! - `GET /orgs/{org}/history?workspace=&actor=&action=&since=&until=&limit=`
//! - `GET /orgs/{org}/workspaces/{ws}/history` (the same, for one workspace)
//! - `GET /orgs/{org}/history/{commit}`

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::layout::{Chrome, message, render};
use super::session::{ConsoleSession, internal};
use crate::http::AppState;
use crate::service::audit::commit::{CommitView, commit_view};
use crate::service::audit::scoped::{HistoryError, HistoryFilter, org_history};
use crate::service::audit::{AuditEntry, utc};

/// The history routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/history", get(org_page))
        .route("/orgs/{org}/workspaces/{ws}/history", get(workspace_page))
        .route("/orgs/{org}/history/{commit}", get(commit_page))
}

/// The filters as typed; every one is kept to show the form again.
#[derive(Debug, Default, Deserialize, Serialize)]
struct Params {
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    limit: String,
}

/// One line of the timeline.
#[derive(Debug, Serialize)]
struct Row {
    commit: String,
    short: String,
    time: String,
    actor: String,
    action: String,
    workspace: Option<String>,
    subject: String,
    manual: bool,
    files: String,
}

#[derive(Debug, Serialize)]
struct HistoryPage<'a> {
    org: &'a str,
    /// The workspace when the page is a workspace's history.
    workspace: Option<&'a str>,
    filter: &'a Params,
    errors: BTreeMap<String, String>,
    rows: Vec<Row>,
    filtered: bool,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn row(e: AuditEntry) -> Row {
    Row {
        short: e.commit.chars().take(10).collect(),
        commit: e.commit,
        time: utc(e.timestamp),
        actor: e.actor,
        action: e.action,
        workspace: e.workspace,
        subject: e.subject,
        manual: e.manual,
        files: format!(
            "+{} ~{} -{}",
            e.files.added, e.files.modified, e.files.deleted
        ),
    }
}

/// The error page for a history error, or `None` for field problems (shown in the form).
fn refused(chrome: &Chrome, error: &HistoryError) -> Option<Response> {
    // Nothing of the page asked for: not its title, breadcrumbs or organization.
    let titled = |title: &str| Chrome {
        title: title.to_owned(),
        crumbs: Vec::new(),
        org: None,
        flash: None,
        ..chrome.clone()
    };
    Some(match error {
        HistoryError::NotFound(what) => message(
            StatusCode::NOT_FOUND,
            &titled("Not found"),
            "Not found",
            &format!("There is no {what}, or you may not see it."),
        ),
        HistoryError::Forbidden => message(
            StatusCode::FORBIDDEN,
            &titled("Not allowed"),
            "Not allowed",
            "The history is for organization owners and workspace members.",
        ),
        HistoryError::Invalid(_) => return None,
        other => internal(other),
    })
}

async fn org_page(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path(org): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    history(&state, &session, &org, None, params).await
}

async fn workspace_page(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((org, ws)): Path<(String, String)>,
    Query(mut params): Query<Params>,
) -> Response {
    params.workspace.clone_from(&ws);
    history(&state, &session, &org, Some(&ws), params).await
}

async fn history(
    state: &AppState,
    session: &ConsoleSession,
    org: &str,
    workspace: Option<&str>,
    params: Params,
) -> Response {
    let mut chrome = session
        .chrome(match workspace {
            Some(ws) => format!("History of {ws}"),
            None => "History".to_owned(),
        })
        .crumb(org, format!("/orgs/{org}"));
    if let Some(ws) = workspace {
        chrome = chrome.crumb(ws, format!("/orgs/{org}/workspaces/{ws}"));
    }
    chrome.org = Some(org.to_owned());
    let mut errors = BTreeMap::new();
    let limit = match opt(&params.limit).map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            errors.insert("limit".to_owned(), "must be a whole number".to_owned());
            Some(0)
        }
    };
    let filter = HistoryFilter {
        workspace: opt(&params.workspace),
        actor: opt(&params.actor),
        action: opt(&params.action),
        since: opt(&params.since),
        until: opt(&params.until),
        limit,
    };
    let filtered = [&params.actor, &params.action, &params.since, &params.until]
        .iter()
        .any(|v| !v.trim().is_empty())
        || (workspace.is_none() && !params.workspace.trim().is_empty());
    let (status, rows) = match org_history(state, &session.caller, org, filter).await {
        Ok(entries) if errors.is_empty() => {
            (StatusCode::OK, entries.into_iter().map(row).collect())
        }
        Ok(_) => (StatusCode::UNPROCESSABLE_ENTITY, Vec::new()),
        Err(HistoryError::Invalid(problems)) => {
            for p in problems {
                errors.entry(p.field).or_insert(p.message);
            }
            (StatusCode::UNPROCESSABLE_ENTITY, Vec::new())
        }
        Err(other) => return refused(&chrome, &other).unwrap_or_else(|| internal(&other)),
    };
    let page = HistoryPage {
        org,
        workspace,
        filter: &params,
        errors,
        rows,
        filtered,
    };
    render(status, "history.html", &chrome, &page)
}

/// One line of a unified diff, with how it reads.
#[derive(Debug, Serialize)]
struct DiffLine {
    /// `add`, `del`, `hunk`, `head` or `same`.
    class: &'static str,
    text: String,
}

#[derive(Debug, Serialize)]
struct CommitPage {
    org: String,
    view: CommitView,
    diffs: Vec<(String, Vec<DiffLine>)>,
}

fn lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|line| DiffLine {
            class: if line.starts_with("+++") || line.starts_with("---") {
                "head"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                "same"
            },
            text: line.to_owned(),
        })
        .collect()
}

async fn commit_page(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((org, commit)): Path<(String, String)>,
) -> Response {
    let short: String = commit.chars().take(10).collect();
    let mut chrome = session
        .chrome(format!("Commit {short}"))
        .crumb(&org, format!("/orgs/{org}"))
        .crumb("History", format!("/orgs/{org}/history"));
    chrome.org = Some(org.clone());
    match commit_view(&state, &session.caller, &org, &commit).await {
        Ok(view) => {
            let diffs = view
                .intent
                .iter()
                .map(|d| (d.path.clone(), lines(&d.diff)))
                .collect();
            let page = CommitPage { org, view, diffs };
            render(StatusCode::OK, "commit.html", &chrome, &page)
        }
        Err(error) => refused(&chrome, &error).unwrap_or_else(|| internal(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::layout::Console;

    #[test]
    fn the_history_pages_render() {
        let params = Params::default();
        let page = HistoryPage {
            org: "acme",
            workspace: None,
            filter: &params,
            errors: BTreeMap::new(),
            rows: vec![row(AuditEntry {
                commit: "0123456789abcdef".into(),
                time: String::new(),
                timestamp: 0,
                actor: "A <a@x>".into(),
                action: "create-project".into(),
                org: Some("acme".into()),
                workspace: Some("shop".into()),
                subject: "<b>s</b>".into(),
                request: None,
                compiler: None,
                manual: false,
                author: String::new(),
                committer: String::new(),
                files: crate::service::audit::FileCounts {
                    added: 1,
                    modified: 0,
                    deleted: 0,
                },
                orgs: vec![],
                workspaces: vec![],
            })],
            filtered: false,
        };
        let html = Console::get()
            .render_str("history.html", &Chrome::titled("History"), &page)
            .map_err(|e| format!("{e:#}"));
        let html = html.expect("history.html renders");
        assert!(html.contains("&lt;b&gt;s"), "{html}");
        assert!(!html.contains("<b>s"), "{html}");
    }
}
