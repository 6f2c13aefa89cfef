//! What a workspace's groups do to its projects: list and read them (members), create and
//! delete them and change their quotas (workspace administrators). What is inside a project
//! is in [`super::roles`] (Roles and RoleBindings) and [`super::items`] (CronJobs and
//! Functions). Each change is one submission ([`super::submit`]).

use compiler::intent::{ProjectSpec, Quota};
use serde::{Deserialize, Serialize};

use super::Services;
use super::action::Action;
use super::caller::Caller;
use super::submit::{CommitAnswer, RequestKey, SubmitError, submit};
use super::tenancy::{TenancyError, WorkspaceAccess, workspace_access};
use super::workspaces::check_label;

/// Why a use case on a project, or on something inside one, failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// Access, validation and "not found".
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The commit failed.
    #[error("failed to commit the project's change")]
    Submit(#[from] SubmitError),
}

/// The result of a project use case.
pub type ProjectResult<T> = Result<T, ProjectError>;

/// Where a project is: organization, workspace and project slugs, as the caller named them.
#[derive(Debug, Clone, Copy)]
pub struct ProjectRef<'a> {
    /// The organization slug.
    pub org: &'a str,
    /// The workspace slug.
    pub workspace: &'a str,
    /// The project slug.
    pub project: &'a str,
}

impl ProjectRef<'_> {
    /// Organization, workspace and project, owned (as actions hold them).
    pub fn owned(self) -> (String, String, String) {
        (
            self.org.to_owned(),
            self.workspace.to_owned(),
            self.project.to_owned(),
        )
    }
}

/// A project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    /// Project slug: the namespace inside the vCluster.
    pub name: String,
    /// What the intent says of it.
    pub spec: ProjectSpec,
}

/// The workspace as the caller sees it, with the project required to exist in it. Who is
/// in no group (an organization owner) is refused before the project is looked up: they see
/// that the workspace exists, not which projects it has.
pub async fn in_project(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
) -> Result<WorkspaceAccess, TenancyError> {
    let access = workspace_access(
        &services.store,
        &services.engine,
        &caller.user,
        at.org,
        at.workspace,
    )
    .await?;
    access.require_member()?;
    access.project(at.project)?;
    Ok(access)
}

/// The workspace's projects (members).
pub async fn list(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> ProjectResult<Vec<ProjectView>> {
    let access = workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.require_member()?;
    Ok(access
        .intent()
        .projects
        .iter()
        .map(|(name, p)| ProjectView {
            name: name.clone(),
            spec: p.project().spec,
        })
        .collect())
}

/// One project (members).
pub async fn get(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
) -> ProjectResult<ProjectView> {
    let access = in_project(services, caller, at).await?;
    let spec = access.project(at.project)?.spec;
    Ok(ProjectView {
        name: at.project.to_owned(),
        spec,
    })
}

/// Creates project `name` in workspace `ws` of `org` (workspace administrators).
pub async fn create(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    name: &str,
    display_name: Option<String>,
) -> ProjectResult<CommitAnswer> {
    let access = workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.require_admin("create projects")?;
    check_label("name", name)?;
    let action = Action::CreateProject {
        org: org.to_owned(),
        workspace: ws.to_owned(),
        project: name.to_owned(),
        display_name,
    };
    Ok(submit(services, caller, key, action).await?)
}

/// Deletes a project and everything in it (workspace administrators).
pub async fn delete(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
) -> ProjectResult<CommitAnswer> {
    let access = in_project(services, caller, at).await?;
    access.require_admin("delete projects")?;
    let (org, workspace, project) = at.owned();
    let action = Action::DeleteProject {
        org,
        workspace,
        project,
    };
    Ok(submit(services, caller, key, action).await?)
}

/// Replaces a project's quota overrides (workspace administrators).
pub async fn set_quota(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    quota: Quota,
) -> ProjectResult<CommitAnswer> {
    let access = in_project(services, caller, at).await?;
    access.require_admin("change project quotas")?;
    let (org, workspace, project) = at.owned();
    let action = Action::SetProjectQuota {
        org,
        workspace,
        project,
        quota,
    };
    Ok(submit(services, caller, key, action).await?)
}
