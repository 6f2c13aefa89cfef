//! What organization owners do to workspaces: create one (with its default groups), delete
//! one, move one to another plan. Each is one submission ([`super::submit`]).

use super::Services;
use super::action::Action;
use super::caller::Caller;
use super::submit::{CommitAnswer, RequestKey, SubmitError, submit};
use super::tenancy::{self, TenancyError};
use crate::store::StoreError;

/// Why a workspace use case failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// Access, validation and "not found".
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The commit failed.
    #[error("failed to commit the workspace's change")]
    Submit(#[from] SubmitError),
    /// The store failed (the default groups of a new workspace).
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// A workspace to create.
#[derive(Debug, Clone)]
pub struct NewWorkspace {
    /// Its slug, a DNS label.
    pub name: String,
    /// A plan of the platform.
    pub plan: String,
    /// A host cluster of the platform; the first one when `None`.
    pub cluster: Option<String>,
    /// Its display name.
    pub display_name: Option<String>,
}

/// Whether `name` is a DNS label (what workspaces and projects are named with), by the
/// compiler's rules ([`compiler::Slug`]).
pub fn check_label(field: &str, name: &str) -> Result<(), TenancyError> {
    compiler::Slug::check(name, compiler::Slug::MAX)
        .map_err(|reason| TenancyError::invalid(field, reason.to_string()))
}

/// The platform as the head has it.
fn platform(snapshot: &crate::gitops::Snapshot) -> Option<&compiler::intent::Platform> {
    snapshot.intent.platform.as_deref()
}

/// Names the plan's field when the platform does not offer it.
fn check_plan(snapshot: &crate::gitops::Snapshot, plan: &str) -> Result<(), TenancyError> {
    let plans: Vec<&str> = platform(snapshot)
        .map(|p| p.spec.plans.iter().map(|x| x.name.as_str()).collect())
        .unwrap_or_default();
    if plans.contains(&plan) {
        return Ok(());
    }
    Err(TenancyError::invalid(
        "plan",
        format!(
            "the platform offers no plan {plan:?}; it offers {}",
            plans.join(", ")
        ),
    ))
}

/// Creates workspace `new` in `org` (owners), with its default groups and the caller in
/// `WSAdmins`.
pub async fn create(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    new: NewWorkspace,
) -> Result<CommitAnswer, WorkspaceError> {
    let access = tenancy::org_access(&services.store, &caller.user, org).await?;
    access.require_owner("create workspaces")?;
    check_label("name", &new.name)?;
    let snapshot = tenancy::head(&services.engine).await?;
    check_plan(&snapshot, &new.plan)?;
    let clusters: Vec<&str> = platform(&snapshot)
        .map(|p| p.spec.clusters.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let cluster = match new.cluster {
        Some(cluster) if clusters.contains(&cluster.as_str()) => cluster,
        Some(cluster) => {
            return Err(TenancyError::invalid(
                "cluster",
                format!(
                    "the platform has no cluster {cluster:?}; it has {}",
                    clusters.join(", ")
                ),
            )
            .into());
        }
        None => clusters
            .first()
            .map(|c| (*c).to_owned())
            .ok_or_else(|| TenancyError::invalid("cluster", "the platform has no cluster"))?,
    };
    let answer = submit(
        services,
        caller,
        key,
        Action::CreateWorkspace {
            org: org.to_owned(),
            workspace: new.name.clone(),
            plan: new.plan,
            cluster,
            display_name: new.display_name,
            admin: Some(caller.user.id.clone()),
        },
    )
    .await?;
    services
        .store
        .create_default_groups(org, &new.name, Some(&caller.user.id))
        .await?;
    Ok(answer)
}

/// Deletes workspace `ws` of `org` (owners).
pub async fn delete(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
) -> Result<CommitAnswer, WorkspaceError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.org.require_owner("delete workspaces")?;
    let action = Action::DeleteWorkspace {
        org: org.to_owned(),
        workspace: ws.to_owned(),
    };
    Ok(submit(services, caller, key, action).await?)
}

/// Moves workspace `ws` of `org` to `plan` (owners).
pub async fn change_plan(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    plan: &str,
) -> Result<CommitAnswer, WorkspaceError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.org.require_owner("change plans")?;
    check_plan(&access.snapshot, plan)?;
    let action = Action::ChangePlan {
        org: org.to_owned(),
        workspace: ws.to_owned(),
        plan: plan.to_owned(),
    };
    Ok(submit(services, caller, key, action).await?)
}
