//! Typed actions: every change a user can make, as data. An action applied to an intent gives
//! the intent files to write and the workspaces to render again; it never touches Git.
//!
//! Size: one `Action` enum (22 kinds, also the format of the push journal and of reviews) and
//! the one match that applies each to the intent; split, what an action means would scatter.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use compiler::Intent;
use compiler::intent::{
    API_VERSION, ClusterRoleBinding, CronJob, Function, Metadata, Organization, OrganizationSpec,
    PresetClusterRole, Project, ProjectSpec, Quota, Role, RoleBinding, Workspace, WorkspaceSpec,
};
use serde::{Deserialize, Serialize};

mod access;
pub use access::{AccessChange, default_groups};

/// Who asked for an action, and the request it came with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ActionMeta {
    /// The acting user: the commit's author.
    pub actor: crate::gitops::Identity,
    /// The request id, for the `Hexabase-Request` trailer.
    pub request_id: String,
    /// The acting user's stable id, for the `Hexabase-Actor-Id` trailer: what every
    /// decision about who acted reads (never the display form in `actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The digest of the request (`Hexabase-Request-Digest`): the same request id with
    /// another digest is refused (the engine's
    /// `ApplyError::KeyReused`) instead of replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One change to tenant state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Create an organization.
    CreateOrganization {
        /// Organization slug.
        org: String,
        /// Display name.
        #[serde(default)]
        display_name: Option<String>,
    },
    /// Delete an organization; it must have no workspaces.
    DeleteOrganization {
        /// Organization slug.
        org: String,
    },
    /// Create a workspace (one vCluster).
    CreateWorkspace {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Plan name.
        plan: String,
        /// Host cluster name.
        cluster: String,
        /// Display name.
        #[serde(default)]
        display_name: Option<String>,
        /// The creator's user id: the first member of `WSAdmins`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        admin: Option<String>,
    },
    /// Delete a workspace and all its projects.
    DeleteWorkspace {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
    },
    /// Move a workspace to another plan.
    ChangePlan {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// New plan name.
        plan: String,
    },
    /// Bind a preset ClusterRole to a workspace group.
    BindClusterRole {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Group name.
        group: String,
        /// Preset ClusterRole.
        cluster_role: PresetClusterRole,
    },
    /// Remove a preset ClusterRole binding.
    UnbindClusterRole {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Group name.
        group: String,
        /// Preset ClusterRole.
        cluster_role: PresetClusterRole,
    },
    /// Create a project (namespace).
    CreateProject {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// Display name.
        #[serde(default)]
        display_name: Option<String>,
    },
    /// Delete a project.
    DeleteProject {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
    },
    /// Replace a project's quota overrides.
    SetProjectQuota {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The overrides.
        quota: Quota,
    },
    /// Create a custom Role.
    CreateRole {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The role.
        role: Role,
    },
    /// Replace a custom Role's rules.
    UpdateRole {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The role.
        role: Role,
    },
    /// Delete a custom Role and its bindings.
    DeleteRole {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// Role name.
        role: String,
    },
    /// Bind a Role or preset ClusterRole to a group in a project.
    BindRole {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The binding.
        binding: RoleBinding,
    },
    /// Remove a binding from a project.
    UnbindRole {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The binding.
        binding: RoleBinding,
    },
    /// Create a CronJob.
    CreateCronJob {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The job.
        cron_job: CronJob,
    },
    /// Replace a CronJob.
    UpdateCronJob {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The job.
        cron_job: CronJob,
    },
    /// Delete a CronJob.
    DeleteCronJob {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// Job name.
        name: String,
    },
    /// Create a Function.
    CreateFunction {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The function.
        function: Function,
    },
    /// Replace a Function.
    UpdateFunction {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// The function.
        function: Function,
    },
    /// Delete a Function.
    DeleteFunction {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// Project slug.
        project: String,
        /// Function name.
        name: String,
    },
    /// Change who may access a workspace: its groups, nesting or members.
    ChangeAccess {
        /// Organization slug.
        org: String,
        /// Workspace slug.
        workspace: String,
        /// The change.
        change: AccessChange,
    },
}

/// Why an action does not apply to the current intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// What it acts on does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// What it creates exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// It cannot be done in this state.
    #[error("{0}")]
    Refused(String),
}

/// What an action changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Intent files to write (`Some`) or delete (`None`), relative to `intent/`.
    pub files: BTreeMap<String, Option<String>>,
    /// Workspaces to render again (`(org, workspace)`).
    pub workspaces: BTreeSet<(String, String)>,
}

impl Action {
    /// The action's kind, as in the `Hexabase-Action` trailer.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CreateOrganization { .. } => "create-organization",
            Self::DeleteOrganization { .. } => "delete-organization",
            Self::CreateWorkspace { .. } => "create-workspace",
            Self::DeleteWorkspace { .. } => "delete-workspace",
            Self::ChangePlan { .. } => "change-plan",
            Self::BindClusterRole { .. } => "bind-cluster-role",
            Self::UnbindClusterRole { .. } => "unbind-cluster-role",
            Self::CreateProject { .. } => "create-project",
            Self::DeleteProject { .. } => "delete-project",
            Self::SetProjectQuota { .. } => "set-project-quota",
            Self::CreateRole { .. } => "create-role",
            Self::UpdateRole { .. } => "update-role",
            Self::DeleteRole { .. } => "delete-role",
            Self::BindRole { .. } => "bind-role",
            Self::UnbindRole { .. } => "unbind-role",
            Self::CreateCronJob { .. } => "create-cron-job",
            Self::UpdateCronJob { .. } => "update-cron-job",
            Self::DeleteCronJob { .. } => "delete-cron-job",
            Self::CreateFunction { .. } => "create-function",
            Self::UpdateFunction { .. } => "update-function",
            Self::DeleteFunction { .. } => "delete-function",
            Self::ChangeAccess { change, .. } => change.kind(),
        }
    }

    /// The organization and workspace the action is about.
    pub fn scope(&self) -> (&str, Option<&str>) {
        match self {
            Self::CreateOrganization { org, .. } | Self::DeleteOrganization { org } => (org, None),
            Self::CreateWorkspace { org, workspace, .. }
            | Self::DeleteWorkspace { org, workspace }
            | Self::ChangePlan { org, workspace, .. }
            | Self::BindClusterRole { org, workspace, .. }
            | Self::UnbindClusterRole { org, workspace, .. }
            | Self::CreateProject { org, workspace, .. }
            | Self::DeleteProject { org, workspace, .. }
            | Self::SetProjectQuota { org, workspace, .. }
            | Self::CreateRole { org, workspace, .. }
            | Self::UpdateRole { org, workspace, .. }
            | Self::DeleteRole { org, workspace, .. }
            | Self::BindRole { org, workspace, .. }
            | Self::UnbindRole { org, workspace, .. }
            | Self::CreateCronJob { org, workspace, .. }
            | Self::UpdateCronJob { org, workspace, .. }
            | Self::DeleteCronJob { org, workspace, .. }
            | Self::CreateFunction { org, workspace, .. }
            | Self::UpdateFunction { org, workspace, .. }
            | Self::DeleteFunction { org, workspace, .. }
            | Self::ChangeAccess { org, workspace, .. } => (org, Some(workspace)),
        }
    }

    /// The commit subject, in plain words: `acme/dev: create project web`.
    pub fn subject(&self) -> String {
        let (org, ws) = self.scope();
        let at = ws.map_or_else(|| org.to_owned(), |ws| format!("{org}/{ws}"));
        let what = match self {
            Self::CreateOrganization { .. } => "create organization".to_owned(),
            Self::DeleteOrganization { .. } => "delete organization".to_owned(),
            Self::CreateWorkspace { plan, cluster, .. } => {
                format!("create workspace on plan {plan} in cluster {cluster}")
            }
            Self::DeleteWorkspace { .. } => "delete workspace".to_owned(),
            Self::ChangePlan { plan, .. } => format!("change plan to {plan}"),
            Self::BindClusterRole {
                group,
                cluster_role,
                ..
            } => {
                format!("bind {} to group {group}", cluster_role.as_str())
            }
            Self::UnbindClusterRole {
                group,
                cluster_role,
                ..
            } => {
                format!("unbind {} from group {group}", cluster_role.as_str())
            }
            Self::CreateProject { project, .. } => format!("create project {project}"),
            Self::DeleteProject { project, .. } => format!("delete project {project}"),
            Self::SetProjectQuota { project, .. } => format!("set quota of project {project}"),
            Self::CreateRole { project, role, .. } => {
                format!("create role {} in project {project}", role.name)
            }
            Self::UpdateRole { project, role, .. } => {
                format!("change role {} in project {project}", role.name)
            }
            Self::DeleteRole { project, role, .. } => {
                format!("delete role {role} in project {project}")
            }
            Self::BindRole {
                project, binding, ..
            } => format!(
                "bind {} to group {} in project {project}",
                binding_target(binding),
                binding.group
            ),
            Self::UnbindRole {
                project, binding, ..
            } => {
                format!(
                    "unbind {} from group {} in project {project}",
                    binding_target(binding),
                    binding.group
                )
            }
            Self::CreateCronJob {
                project, cron_job, ..
            } => format!("create cron job {} in project {project}", cron_job.name),
            Self::UpdateCronJob {
                project, cron_job, ..
            } => format!("change cron job {} in project {project}", cron_job.name),
            Self::DeleteCronJob { project, name, .. } => {
                format!("delete cron job {name} in project {project}")
            }
            Self::CreateFunction {
                project, function, ..
            } => format!("create function {} in project {project}", function.name),
            Self::UpdateFunction {
                project, function, ..
            } => format!("change function {} in project {project}", function.name),
            Self::DeleteFunction { project, name, .. } => {
                format!("delete function {name} in project {project}")
            }
            Self::ChangeAccess { change, .. } => change.subject(),
        };
        format!("{at}: {what}")
    }

    /// Applies the action to `intent`. Validity of names and values is the compiler's to
    /// judge afterwards; this checks only existence.
    pub fn apply(&self, intent: &Intent) -> Result<Change, ActionError> {
        let mut change = Change::default();
        match self {
            Self::CreateOrganization { org, display_name } => {
                if intent
                    .organizations
                    .get(org)
                    .is_some_and(|o| o.organization.is_some())
                {
                    return Err(ActionError::AlreadyExists(format!("organization {org}")));
                }
                let doc = Organization {
                    api_version: API_VERSION.into(),
                    kind: "Organization".into(),
                    metadata: Metadata {
                        name: org.clone(),
                        labels: BTreeMap::new(),
                    },
                    spec: OrganizationSpec {
                        display_name: display_name.clone(),
                    },
                };
                change.files.insert(
                    format!("{org}/organization.yaml"),
                    Some(compiler::intent::to_yaml(&doc)),
                );
            }
            Self::DeleteOrganization { org } => {
                let o = intent
                    .organizations
                    .get(org)
                    .ok_or_else(|| ActionError::NotFound(format!("organization {org}")))?;
                if !o.workspaces.is_empty() {
                    return Err(ActionError::Refused(format!(
                        "organization {org} still has workspaces"
                    )));
                }
                change
                    .files
                    .insert(format!("{org}/organization.yaml"), None);
            }
            Self::CreateWorkspace {
                org,
                workspace,
                plan,
                cluster,
                display_name,
                admin,
            } => {
                if intent
                    .organizations
                    .get(org)
                    .is_none_or(|o| o.organization.is_none())
                {
                    return Err(ActionError::NotFound(format!("organization {org}")));
                }
                if find_workspace(intent, org, workspace).is_ok() {
                    return Err(ActionError::AlreadyExists(format!(
                        "workspace {org}/{workspace}"
                    )));
                }
                let doc = Workspace {
                    api_version: API_VERSION.into(),
                    kind: "Workspace".into(),
                    metadata: Metadata {
                        name: workspace.clone(),
                        labels: BTreeMap::new(),
                    },
                    spec: WorkspaceSpec {
                        display_name: display_name.clone(),
                        plan: plan.clone(),
                        cluster: cluster.clone(),
                        cluster_role_bindings: Vec::new(),
                        dedicated_nodes: None,
                        // Without a known creator, the server's index gives the default
                        // groups later (from the commit's actor id) and writes them here.
                        groups: admin
                            .as_deref()
                            .map(|id| default_groups(Some(id)))
                            .unwrap_or_default(),
                    },
                };
                change.files.insert(
                    format!("{org}/{workspace}/workspace.yaml"),
                    Some(compiler::intent::to_yaml(&doc)),
                );
                change.workspaces.insert((org.clone(), workspace.clone()));
            }
            Self::DeleteWorkspace { org, workspace } => {
                let ws = find_workspace(intent, org, workspace)?;
                change
                    .files
                    .insert(format!("{org}/{workspace}/workspace.yaml"), None);
                for project in ws.projects.keys() {
                    change
                        .files
                        .insert(format!("{org}/{workspace}/projects/{project}.yaml"), None);
                }
                change.workspaces.insert((org.clone(), workspace.clone()));
            }
            Self::ChangePlan {
                org,
                workspace,
                plan,
            } => {
                edit_workspace(intent, org, workspace, &mut change, |w| {
                    w.spec.plan.clone_from(plan);
                    Ok(())
                })?;
            }
            Self::BindClusterRole {
                org,
                workspace,
                group,
                cluster_role,
            } => {
                edit_workspace(intent, org, workspace, &mut change, |w| {
                    let binding = ClusterRoleBinding {
                        group: group.clone(),
                        cluster_role: *cluster_role,
                    };
                    if !w.spec.cluster_role_bindings.contains(&binding) {
                        w.spec.cluster_role_bindings.push(binding);
                    }
                    Ok(())
                })?;
            }
            Self::UnbindClusterRole {
                org,
                workspace,
                group,
                cluster_role,
            } => {
                edit_workspace(intent, org, workspace, &mut change, |w| {
                    let before = w.spec.cluster_role_bindings.len();
                    w.spec
                        .cluster_role_bindings
                        .retain(|b| !(b.group == *group && b.cluster_role == *cluster_role));
                    if w.spec.cluster_role_bindings.len() == before {
                        return Err(ActionError::NotFound(format!(
                            "binding of {} to group {group}",
                            cluster_role.as_str()
                        )));
                    }
                    Ok(())
                })?;
            }
            Self::CreateProject {
                org,
                workspace,
                project,
                display_name,
            } => {
                let ws = find_workspace(intent, org, workspace)?;
                if ws.projects.contains_key(project) {
                    return Err(ActionError::AlreadyExists(format!(
                        "project {org}/{workspace}/{project}"
                    )));
                }
                let doc = Project {
                    api_version: API_VERSION.into(),
                    kind: "Project".into(),
                    metadata: Metadata {
                        name: project.clone(),
                        labels: BTreeMap::new(),
                    },
                    spec: ProjectSpec {
                        display_name: display_name.clone(),
                        ..ProjectSpec::default()
                    },
                };
                change.files.insert(
                    project_path(org, workspace, project),
                    Some(compiler::intent::to_yaml(&doc)),
                );
                change.workspaces.insert((org.clone(), workspace.clone()));
            }
            Self::DeleteProject {
                org,
                workspace,
                project,
            } => {
                find_project(intent, org, workspace, project)?;
                change
                    .files
                    .insert(project_path(org, workspace, project), None);
                change.workspaces.insert((org.clone(), workspace.clone()));
            }
            Self::SetProjectQuota {
                org,
                workspace,
                project,
                quota,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    p.quota = quota.clone();
                    Ok(())
                })?;
            }
            Self::CreateRole {
                org,
                workspace,
                project,
                role,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    if p.roles.iter().any(|r| r.name == role.name) {
                        return Err(ActionError::AlreadyExists(format!("role {}", role.name)));
                    }
                    p.roles.push(role.clone());
                    Ok(())
                })?;
            }
            Self::UpdateRole {
                org,
                workspace,
                project,
                role,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    let slot = p
                        .roles
                        .iter_mut()
                        .find(|r| r.name == role.name)
                        .ok_or_else(|| ActionError::NotFound(format!("role {}", role.name)))?;
                    *slot = role.clone();
                    Ok(())
                })?;
            }
            Self::DeleteRole {
                org,
                workspace,
                project,
                role,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    let before = p.roles.len();
                    p.roles.retain(|r| r.name != *role);
                    if p.roles.len() == before {
                        return Err(ActionError::NotFound(format!("role {role}")));
                    }
                    p.role_bindings.retain(|b| b.role.as_deref() != Some(role));
                    Ok(())
                })?;
            }
            Self::BindRole {
                org,
                workspace,
                project,
                binding,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    if !p.role_bindings.contains(binding) {
                        p.role_bindings.push(binding.clone());
                    }
                    Ok(())
                })?;
            }
            Self::UnbindRole {
                org,
                workspace,
                project,
                binding,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    let before = p.role_bindings.len();
                    p.role_bindings.retain(|b| b != binding);
                    if p.role_bindings.len() == before {
                        return Err(ActionError::NotFound(format!(
                            "binding of {} to group {}",
                            binding_target(binding),
                            binding.group
                        )));
                    }
                    Ok(())
                })?;
            }
            Self::CreateCronJob {
                org,
                workspace,
                project,
                cron_job,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    if p.cron_jobs.iter().any(|j| j.name == cron_job.name) {
                        return Err(ActionError::AlreadyExists(format!(
                            "cron job {}",
                            cron_job.name
                        )));
                    }
                    p.cron_jobs.push(cron_job.clone());
                    Ok(())
                })?;
            }
            Self::UpdateCronJob {
                org,
                workspace,
                project,
                cron_job,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    let slot = p
                        .cron_jobs
                        .iter_mut()
                        .find(|j| j.name == cron_job.name)
                        .ok_or_else(|| {
                            ActionError::NotFound(format!("cron job {}", cron_job.name))
                        })?;
                    *slot = cron_job.clone();
                    Ok(())
                })?;
            }
            Self::DeleteCronJob {
                org,
                workspace,
                project,
                name,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    let before = p.cron_jobs.len();
                    p.cron_jobs.retain(|j| j.name != *name);
                    if p.cron_jobs.len() == before {
                        return Err(ActionError::NotFound(format!("cron job {name}")));
                    }
                    Ok(())
                })?;
            }
            Self::CreateFunction {
                org,
                workspace,
                project,
                function,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    if p.functions.iter().any(|f| f.name == function.name) {
                        return Err(ActionError::AlreadyExists(format!(
                            "function {}",
                            function.name
                        )));
                    }
                    p.functions.push(function.clone());
                    Ok(())
                })?;
            }
            Self::UpdateFunction {
                org,
                workspace,
                project,
                function,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    let slot = p
                        .functions
                        .iter_mut()
                        .find(|f| f.name == function.name)
                        .ok_or_else(|| {
                            ActionError::NotFound(format!("function {}", function.name))
                        })?;
                    *slot = function.clone();
                    Ok(())
                })?;
            }
            Self::DeleteFunction {
                org,
                workspace,
                project,
                name,
            } => {
                edit_project(intent, org, workspace, project, &mut change, |p| {
                    let before = p.functions.len();
                    p.functions.retain(|f| f.name != *name);
                    if p.functions.len() == before {
                        return Err(ActionError::NotFound(format!("function {name}")));
                    }
                    Ok(())
                })?;
            }
            Self::ChangeAccess {
                org,
                workspace,
                change: access,
            } => {
                edit_workspace(intent, org, workspace, &mut change, |w| {
                    access.apply(&mut w.spec.groups)
                })?;
            }
        }
        Ok(change)
    }
}

fn binding_target(binding: &RoleBinding) -> String {
    match (&binding.role, binding.cluster_role) {
        (Some(role), _) => format!("role {role}"),
        (None, Some(cr)) => cr.as_str().to_owned(),
        (None, None) => "nothing".to_owned(),
    }
}

fn project_path(org: &str, ws: &str, project: &str) -> String {
    format!("{org}/{ws}/projects/{project}.yaml")
}

fn find_workspace<'a>(
    intent: &'a Intent,
    org: &str,
    ws: &str,
) -> Result<&'a Arc<compiler::intent::WorkspaceIntent>, ActionError> {
    intent
        .organizations
        .get(org)
        .and_then(|o| o.workspaces.get(ws))
        .filter(|w| w.workspace.is_some())
        .ok_or_else(|| ActionError::NotFound(format!("workspace {org}/{ws}")))
}

fn find_project(
    intent: &Intent,
    org: &str,
    ws: &str,
    project: &str,
) -> Result<Project, ActionError> {
    find_workspace(intent, org, ws)?
        .projects
        .get(project)
        .map(compiler::intent::ProjectFile::project)
        .ok_or_else(|| ActionError::NotFound(format!("project {org}/{ws}/{project}")))
}

fn edit_workspace(
    intent: &Intent,
    org: &str,
    ws: &str,
    change: &mut Change,
    edit: impl FnOnce(&mut Workspace) -> Result<(), ActionError>,
) -> Result<(), ActionError> {
    let before = find_workspace(intent, org, ws)?
        .workspace
        .as_ref()
        .expect("find_workspace checks the document exists");
    let mut doc = before.clone();
    edit(&mut doc)?;
    if doc == *before {
        return Ok(());
    }
    change.files.insert(
        format!("{org}/{ws}/workspace.yaml"),
        Some(compiler::intent::to_yaml(&doc)),
    );
    change.workspaces.insert((org.to_owned(), ws.to_owned()));
    Ok(())
}

fn edit_project(
    intent: &Intent,
    org: &str,
    ws: &str,
    project: &str,
    change: &mut Change,
    edit: impl FnOnce(&mut ProjectSpec) -> Result<(), ActionError>,
) -> Result<(), ActionError> {
    let before = find_project(intent, org, ws, project)?;
    let mut doc = before.clone();
    edit(&mut doc.spec)?;
    if doc == before {
        return Ok(());
    }
    change.files.insert(
        project_path(org, ws, project),
        Some(compiler::intent::to_yaml(&doc)),
    );
    change.workspaces.insert((org.to_owned(), ws.to_owned()));
    Ok(())
}
