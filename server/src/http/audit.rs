//! `GET /api/v1/orgs/{org}/audit`: who changed what in an organization, and when, read from
//! the commit trailers ([`crate::service::audit`]).
//!
//! Scoping (in [`crate::service::audit::scoped`], which the console's History pages share):
//! an organization owner sees every record of the organization; anyone else sees the records
//! of the workspaces where they are in a group, and nothing of the organization itself; the
//! `orgs` and `workspaces` lists of each record are cut to what the caller may see. The answer
//! is a list, newest first. A billing manager who is in no workspace group gets 403 (they can
//! see the organization exists); a stranger gets 404.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, ApiRoute, AppState};
use crate::service::audit::AuditEntry;
/// The most records one answer holds, and the records per answer when `limit` is not given.
pub use crate::service::audit::scoped::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::service::audit::scoped::{HistoryError, HistoryFilter, org_history};

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

async fn get_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = HistoryFilter {
        workspace: params.workspace,
        actor: params.actor,
        action: params.action,
        since: params.since,
        until: params.until,
        limit: params.limit,
    };
    let entries = org_history(&state, &caller, &org, filter).await?;
    Ok(Json(entries))
}

impl From<HistoryError> for ApiError {
    fn from(error: HistoryError) -> Self {
        match error {
            HistoryError::NotFound(what) => ApiError::not_found(what),
            HistoryError::Forbidden => ApiError::forbidden(error.to_string()),
            HistoryError::Invalid(problems) => ApiError::invalid_all(problems),
            other => ApiError::internal(&other),
        }
    }
}
