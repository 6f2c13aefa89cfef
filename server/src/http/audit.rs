//! `GET /api/v1/orgs/{org}/audit`: who changed what in an organization, and when, read from
//! the commit trailers ([`crate::service::audit`]).
//!
//! Scoping: an organization owner sees every record of the organization; anyone else sees
//! the records of the workspaces where they are in a group, and nothing of the organization
//! itself; the `orgs` and `workspaces` lists of each record are cut to what the caller may
//! see. The answer is a list, newest first. A billing manager who is in no workspace group gets 403 (they can see the
//! organization exists); a stranger gets 404.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use serde::Deserialize;

use super::auth::Caller;
use super::problem::FieldProblem;
use super::{ApiError, ApiRoute, AppState};
use crate::service::audit::{self, AuditEntry, AuditQuery, TimeSpec};
use crate::store::{OrgRole, StoreError};

/// The most records one answer holds.
pub const MAX_LIMIT: usize = 10_000;
/// Records per answer when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

/// The filters of an audit query; every one given must match.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    /// Only this workspace of the organization.
    pub workspace: Option<String>,
    /// Only commits by this actor: `Name <email>`, the name, or the email (any case).
    pub actor: Option<String>,
    /// Only this action kind (`create-project`; `manual` for commits by people).
    pub action: Option<String>,
    /// At or after: RFC 3339, or a UTC date `YYYY-MM-DD`.
    pub since: Option<String>,
    /// At or before: RFC 3339, or a UTC date (the whole day).
    pub until: Option<String>,
    /// At most this many records, newest first (default 100, at most 10,000).
    pub limit: Option<usize>,
}

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::GET,
            "/api/v1/orgs/{org}/audit",
            "getAudit",
            "Who changed what in the organization, and when",
            get(get_audit),
        )
        .response::<Vec<AuditEntry>>(StatusCode::OK),
    ]
}

/// What the caller may read of an organization's log.
enum Scope {
    /// Everything (an owner).
    Organization,
    /// These workspaces only.
    Workspaces(BTreeSet<String>),
}

async fn scope(state: &AppState, org: &str, caller: &Caller) -> Result<Scope, ApiError> {
    let role = match state.store.org_role(org, &caller.user.id).await {
        Ok(role) => Some(role),
        Err(StoreError::NotFound) => None,
        Err(other) => return Err(other.into()),
    };
    if role == Some(OrgRole::Owner) {
        return Ok(Scope::Organization);
    }
    let workspaces: BTreeSet<String> = state
        .store
        .audit_workspaces(org, &caller.user.id)
        .await?
        .into_iter()
        .collect();
    match (workspaces.is_empty(), role) {
        (false, _) => Ok(Scope::Workspaces(workspaces)),
        (true, Some(_)) => Err(ApiError::forbidden(
            "the audit log is for organization owners and workspace members",
        )),
        (true, None) => Err(ApiError::not_found(format!("organization {org}"))),
    }
}

fn time(field: &str, value: Option<&str>) -> Result<Option<TimeSpec>, FieldProblem> {
    value
        .map(|text| {
            text.parse::<TimeSpec>().map_err(|e| FieldProblem {
                field: field.to_owned(),
                message: e.to_string(),
            })
        })
        .transpose()
}

async fn get_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let scope = scope(&state, &org, &caller).await?;
    let mut problems = Vec::new();
    let mut time_or_problem = |field: &str, value: Option<&str>| {
        time(field, value).unwrap_or_else(|e| {
            problems.push(e);
            None
        })
    };
    let since = time_or_problem("since", params.since.as_deref());
    let until = time_or_problem("until", params.until.as_deref());
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        problems.extend(
            ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")).errors,
        );
    }
    if let Some(ws) = &params.workspace
        && (ws.is_empty() || ws.contains('/'))
    {
        problems.extend(
            ApiError::invalid("workspace", "must be a workspace name of the organization").errors,
        );
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_all(problems));
    }
    let visible = match &scope {
        Scope::Organization => None,
        Scope::Workspaces(set) => {
            if let Some(ws) = &params.workspace
                && !set.contains(ws)
            {
                return Err(ApiError::not_found(format!("workspace {org}/{ws}")));
            }
            Some(set.clone())
        }
    };
    let query = AuditQuery {
        org: Some(org.clone()),
        workspace: params.workspace,
        actor: params.actor,
        action: params.action,
        since,
        until,
        // A member's records are filtered below, so the limit applies after that.
        limit: visible.is_none().then_some(limit),
    };
    let repo = state.settings.git_repo();
    let branch = state.settings.git.branch.clone();
    let (entries, refresh) =
        tokio::task::spawn_blocking(move || audit::audit(&repo, &branch, &query))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(|e| ApiError::internal(&e))?;
    if let Some(error) = refresh.store_error {
        tracing::warn!(error = %super::problem::ErrorChain(&error), "the audit index was not saved");
    }
    let items = entries
        .into_iter()
        .filter(|e| {
            visible.as_ref().is_none_or(|set| {
                e.org.as_deref() == Some(org.as_str())
                    && e.workspace.as_ref().is_some_and(|ws| set.contains(ws))
            })
        })
        .take(limit)
        .map(|e| record(e, &org, visible.as_ref()))
        .collect();
    Ok(Json(items))
}

fn record(mut entry: AuditEntry, org: &str, visible: Option<&BTreeSet<String>>) -> AuditEntry {
    let prefix = format!("{org}/");
    entry.orgs.retain(|o| o == org);
    entry.workspaces.retain(|full| {
        full.strip_prefix(&prefix)
            .is_some_and(|ws| visible.is_none_or(|set| set.contains(ws)))
    });
    entry
}
