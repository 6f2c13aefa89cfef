//! What is done to workspaces: organization owners create one (with its default groups),
//! delete one, move one to another plan; members list and read them and their ClusterRole
//! bindings, which workspace administrators bind and unbind. Each change is one submission
//! ([`super::submit`]).

use compiler::intent::{ClusterRoleBinding, PresetClusterRole};
use serde::{Deserialize, Serialize};

use super::Services;
use super::action::Action;
use super::authz::{Presets, uncovered};
use super::caller::Caller;
use super::submit::{CommitAnswer, RequestKey, SubmitError, submit};
use super::tenancy::{self, TenancyError};
use crate::store::{IndexedWorkspace, StoreError};

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

/// A workspace, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    /// Workspace slug.
    pub name: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Plan name.
    pub plan: String,
    /// Host cluster name.
    pub cluster: String,
    /// Number of projects.
    pub projects: i64,
}

impl From<IndexedWorkspace> for WorkspaceView {
    fn from(row: IndexedWorkspace) -> Self {
        Self {
            name: row.name,
            display_name: row.display_name,
            plan: row.plan,
            cluster: row.cluster,
            projects: row.projects,
        }
    }
}

/// One workspace, with the caller's place in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceDetail {
    /// The workspace.
    #[serde(flatten)]
    pub workspace: WorkspaceView,
    /// The caller's groups in it, flattened through the hierarchy.
    pub your_groups: Vec<String>,
    /// Whether the caller holds `hexabase:workspace-admin` there.
    pub admin: bool,
}

/// A ClusterRole binding of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRoleBindingView {
    /// Workspace group.
    pub group: String,
    /// Preset ClusterRole.
    pub cluster_role: PresetClusterRole,
    /// Every workspace has it; it cannot be removed.
    pub default: bool,
}

/// The workspaces of `org` the caller may see: all of them for an owner, else those where
/// they are in a group.
pub async fn list(
    services: &Services,
    caller: &Caller,
    org: &str,
) -> Result<Vec<WorkspaceView>, WorkspaceError> {
    let access = tenancy::org_access(&services.store, &caller.user, org).await?;
    let rows =
        tenancy::visible_workspaces(&services.store, &services.engine, &access, &caller.user)
            .await?;
    Ok(rows.into_iter().map(WorkspaceView::from).collect())
}

/// Workspace `ws` of `org` with the caller's groups in it; not found for who may not know
/// it exists.
pub async fn get(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> Result<WorkspaceDetail, WorkspaceError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    let intent = access.intent();
    let doc = intent
        .workspace
        .as_ref()
        .expect("workspace_access checked the workspace document exists");
    Ok(WorkspaceDetail {
        workspace: WorkspaceView {
            name: ws.to_owned(),
            display_name: doc.spec.display_name.clone(),
            plan: doc.spec.plan.clone(),
            cluster: doc.spec.cluster.clone(),
            projects: i64::try_from(intent.projects.len()).unwrap_or(i64::MAX),
        },
        your_groups: access.groups.iter().cloned().collect(),
        admin: access.permissions.is_workspace_admin(Presets::builtin()),
    })
}

/// The preset ClusterRole bindings of workspace `ws` (members): every workspace's defaults
/// first, then its own.
pub async fn cluster_role_bindings(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> Result<Vec<ClusterRoleBindingView>, WorkspaceError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.require_member()?;
    let presets = Presets::builtin();
    let mut out: Vec<ClusterRoleBindingView> = presets
        .default_bindings
        .iter()
        .map(|b| ClusterRoleBindingView {
            group: b.group.clone(),
            cluster_role: b.cluster_role,
            default: true,
        })
        .collect();
    if let Some(doc) = &access.intent().workspace {
        for b in &doc.spec.cluster_role_bindings {
            if !presets.default_bindings.contains(b) {
                out.push(ClusterRoleBindingView {
                    group: b.group.clone(),
                    cluster_role: b.cluster_role,
                    default: false,
                });
            }
        }
    }
    Ok(out)
}

/// Binds preset ClusterRole `binding.cluster_role` to `binding.group` in workspace `ws`
/// (workspace administrators, and only what the caller holds workspace-wide).
pub async fn bind_cluster_role(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    binding: ClusterRoleBinding,
) -> Result<CommitAnswer, WorkspaceError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.require_admin("bind ClusterRoles")?;
    access.require_group("group", &binding.group)?;
    // The escalation rule, workspace-wide: only what the caller holds everywhere.
    let rules = Presets::builtin().rules(binding.cluster_role);
    if !uncovered(&access.permissions.cluster, rules).is_empty() {
        return Err(TenancyError::Escalation {
            field: "clusterRole".to_owned(),
            message: format!(
                "you do not hold every permission of {} yourself",
                binding.cluster_role.as_str()
            ),
        }
        .into());
    }
    let action = Action::BindClusterRole {
        org: org.to_owned(),
        workspace: ws.to_owned(),
        group: binding.group,
        cluster_role: binding.cluster_role,
    };
    Ok(submit(services, caller, key, action).await?)
}

/// Removes the binding of `binding.cluster_role` to `binding.group` in workspace `ws`
/// (workspace administrators); every workspace's defaults stay.
pub async fn unbind_cluster_role(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    binding: ClusterRoleBinding,
) -> Result<CommitAnswer, WorkspaceError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.require_admin("unbind ClusterRoles")?;
    if Presets::builtin().default_bindings.contains(&binding) {
        return Err(TenancyError::Conflict(format!(
            "the binding of {} to {} is every workspace's default and cannot be removed",
            binding.cluster_role.as_str(),
            binding.group
        ))
        .into());
    }
    let action = Action::UnbindClusterRole {
        org: org.to_owned(),
        workspace: ws.to_owned(),
        group: binding.group,
        cluster_role: binding.cluster_role,
    };
    Ok(submit(services, caller, key, action).await?)
}
