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

/// Whether `name` is a DNS label (what workspaces and projects are named with), by the
/// compiler's rules ([`compiler::Slug`]).
pub(super) fn check_label(field: &str, name: &str) -> Result<(), TenancyError> {
    compiler::Slug::check(name, compiler::Slug::MAX)
        .map_err(|reason| TenancyError::invalid(field, reason.to_string()))
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
