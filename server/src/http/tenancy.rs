//! Tenancy answers shared by the workspace and project routes: [`TenancyError`]s and
//! [`WorkspaceError`]s as problems.

use super::ApiError;
use crate::service::tenancy::TenancyError;
use crate::service::workspaces::WorkspaceError;

impl From<WorkspaceError> for ApiError {
    fn from(error: WorkspaceError) -> Self {
        match error {
            WorkspaceError::Tenancy(error) => error.into(),
            WorkspaceError::Submit(error) => error.into(),
            WorkspaceError::Store(error) => error.into(),
        }
    }
}

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
