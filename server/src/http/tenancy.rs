//! Tenancy answers shared by the workspace, group and project routes: [`TenancyError`]s as
//! problems, and the rule for the names people give workspaces and projects.

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::service::tenancy::{TenancyError, WorkspaceAccess, workspace_access};

impl From<TenancyError> for ApiError {
    fn from(error: TenancyError) -> Self {
        match error {
            TenancyError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            TenancyError::Forbidden(why) => ApiError::forbidden(why),
            TenancyError::Invalid { field, message } => ApiError::invalid(field, message),
            TenancyError::Escalation { field, message } => {
                ApiError::forbidden(message).field(field)
            }
            TenancyError::Conflict(why) => ApiError::conflict(why),
            TenancyError::RateLimited(seconds) => ApiError::rate_limited(seconds),
            TenancyError::Store(store) => store.into(),
            other => ApiError::internal(&other),
        }
    }
}

/// Whether `name` is a DNS label (what workspaces and projects are named with).
pub(super) fn check_label(field: &str, name: &str) -> Result<(), TenancyError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TenancyError::invalid(
            field,
            "must be a DNS label: 1 to 63 lowercase letters, digits or '-', starting with a letter and not ending with '-'",
        ))
    }
}

/// The caller's access to workspace `ws` of `org`; 404 for what they may not know exists.
pub(super) async fn access(
    state: &AppState,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> Result<WorkspaceAccess, ApiError> {
    Ok(workspace_access(&state.store, &state.engine, &caller.user, org, ws).await?)
}
