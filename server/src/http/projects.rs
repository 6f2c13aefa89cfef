//! Projects of a workspace and what is inside them: quota, custom Roles and RoleBindings
//! (CronJobs and Functions are in [`super::items`]). Each change is one action, one commit;
//! each request is allowed or refused by the RBAC the intent renders for the caller's groups
//! (`service::authz`).

use super::json::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use compiler::intent::{PolicyRule, PresetClusterRole, ProjectSpec, Quota, Role, RoleBinding};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey};
use super::{ApiError, ApiRoute, AppState};
use crate::service::action::Action;
use crate::service::authz::{Presets, uncovered};
use crate::service::submit::submit;
use crate::service::tenancy::{TenancyError, WorkspaceAccess, workspace_access};
use crate::service::workspaces::check_label;

/// The API group of Roles and RoleBindings.
const RBAC: &str = "rbac.authorization.k8s.io";
/// A project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    /// Project slug: the namespace inside the vCluster.
    pub name: String,
    /// What the intent says of it.
    pub spec: ProjectSpec,
}

/// Create a project.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProject {
    /// Project slug, a DNS label.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Replace a Role's rules.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRules {
    /// What the role allows.
    pub rules: Vec<PolicyRule>,
}

/// Which RoleBinding to remove: the group and exactly one of `role` and `clusterRole`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBindingQuery {
    /// Workspace group.
    pub group: String,
    /// A custom Role of the project.
    #[serde(default)]
    pub role: Option<String>,
    /// A preset ClusterRole.
    #[serde(default)]
    pub cluster_role: Option<PresetClusterRole>,
}

const PROJECTS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects";
const PROJECT: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}";
const QUOTA: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/quota";
const ROLES: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/roles";
const ROLE: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/roles/{role}";
const BINDINGS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/rolebindings";
pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::GET,
            PROJECTS,
            "listProjects",
            "List the workspace's projects",
            get(list_projects),
        )
        .response::<Vec<ProjectView>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            PROJECTS,
            "createProject",
            "Create a project (workspace administrators)",
            post(create_project),
        )
        .request::<CreateProject>()
        .response::<CommitAnswer>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::GET,
            PROJECT,
            "getProject",
            "Get a project",
            get(get_project),
        )
        .response::<ProjectView>(StatusCode::OK),
        ApiRoute::new(
            Method::DELETE,
            PROJECT,
            "deleteProject",
            "Delete a project (workspace administrators)",
            delete(delete_project),
        )
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::PUT,
            QUOTA,
            "setProjectQuota",
            "Replace a project's quota overrides (workspace administrators)",
            put(set_quota),
        )
        .request::<Quota>()
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::GET,
            ROLES,
            "listRoles",
            "List a project's custom Roles",
            get(list_roles),
        )
        .response::<Vec<Role>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            ROLES,
            "createRole",
            "Create a custom Role (only with permissions you hold)",
            post(create_role),
        )
        .request::<Role>()
        .response::<CommitAnswer>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::GET,
            ROLE,
            "getRole",
            "Get a custom Role",
            get(get_role),
        )
        .response::<Role>(StatusCode::OK),
        ApiRoute::new(
            Method::PUT,
            ROLE,
            "updateRole",
            "Replace a custom Role's rules (only with permissions you hold)",
            put(update_role),
        )
        .request::<RoleRules>()
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::DELETE,
            ROLE,
            "deleteRole",
            "Delete a custom Role and its bindings",
            delete(delete_role),
        )
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::GET,
            BINDINGS,
            "listRoleBindings",
            "List a project's RoleBindings",
            get(list_bindings),
        )
        .response::<Vec<RoleBinding>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            BINDINGS,
            "bindRole",
            "Bind a Role or preset ClusterRole to a group in a project (only one you hold)",
            post(bind_role),
        )
        .request::<RoleBinding>()
        .response::<CommitAnswer>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::DELETE,
            BINDINGS,
            "unbindRole",
            "Remove a RoleBinding (?group=&role= or &clusterRole=)",
            delete(unbind_role),
        )
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
    ]
}

type WsPath = Path<(String, String)>;
pub(super) type ProjectPath = Path<(String, String, String)>;
pub(super) type ItemPath = Path<(String, String, String, String)>;

/// The workspace as the caller sees it, with `project` required to exist in it. Who is in
/// no group (an organization owner) is refused before the project is looked up: they see
/// that the workspace exists, not which projects it has.
pub(super) async fn in_project(
    state: &AppState,
    caller: &Caller,
    org: &str,
    ws: &str,
    project: &str,
) -> Result<WorkspaceAccess, ApiError> {
    let access = workspace_access(&state.store, &state.engine, &caller.user, org, ws).await?;
    access.require_member()?;
    access.project(project)?;
    Ok(access)
}

/// The escalation rule: refuses `rules` unless the caller's own rules in `project` cover
/// every one of them, naming the first rule that is not (`{field}[i]`).
fn check_escalation(
    access: &WorkspaceAccess,
    project: &str,
    field: &str,
    rules: &[PolicyRule],
) -> Result<(), TenancyError> {
    let held = access.permissions.rules_in(project);
    let missing = uncovered(&held, rules);
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(TenancyError::Escalation {
            field: format!("{field}[{first}]"),
            message: format!(
                "you may grant only permissions you hold yourself in project {project}; not held: {}",
                missing
                    .iter()
                    .map(|i| format!("{field}[{i}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): WsPath,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    let access = workspace_access(&state.store, &state.engine, &caller.user, &org, &ws).await?;
    access.require_member()?;
    Ok(Json(
        access
            .intent()
            .projects
            .iter()
            .map(|(name, p)| ProjectView {
                name: name.clone(),
                spec: p.project().spec,
            })
            .collect(),
    ))
}

async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): WsPath,
    Json(body): Json<CreateProject>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let access = workspace_access(&state.store, &state.engine, &caller.user, &org, &ws).await?;
    access.require_admin("create projects")?;
    check_label("name", &body.name)?;
    let action = Action::CreateProject {
        org: org.clone(),
        workspace: ws,
        project: body.name,
        display_name: body.display_name,
    };
    let answer = submit(&state, &caller, &key, action).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<ProjectView>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require_member()?;
    let spec = access.project(&project)?.spec;
    Ok(Json(ProjectView {
        name: project,
        spec,
    }))
}

async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require_admin("delete projects")?;
    let action = Action::DeleteProject {
        org: org.clone(),
        workspace: ws,
        project,
    };
    Ok(Json(submit(&state, &caller, &key, action).await?))
}

async fn set_quota(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(quota): Json<Quota>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require_admin("change project quotas")?;
    let action = Action::SetProjectQuota {
        org: org.clone(),
        workspace: ws,
        project,
        quota,
    };
    Ok(Json(submit(&state, &caller, &key, action).await?))
}

async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<Vec<Role>>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("list", RBAC, "roles", &project)?;
    Ok(Json(access.project(&project)?.spec.roles))
}

async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project, role)): ItemPath,
) -> Result<Json<Role>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("get", RBAC, "roles", &project)?;
    access
        .project(&project)?
        .spec
        .roles
        .iter()
        .find(|r| r.name == role)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("role {role} does not exist")))
}

async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(role): Json<Role>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("create", RBAC, "roles", &project)?;
    check_escalation(&access, &project, "rules", &role.rules)?;
    let action = Action::CreateRole {
        org: org.clone(),
        workspace: ws,
        project,
        role,
    };
    let answer = submit(&state, &caller, &key, action).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, role)): ItemPath,
    Json(body): Json<RoleRules>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("update", RBAC, "roles", &project)?;
    check_escalation(&access, &project, "rules", &body.rules)?;
    let action = Action::UpdateRole {
        org: org.clone(),
        workspace: ws,
        project,
        role: Role {
            name: role,
            rules: body.rules,
        },
    };
    Ok(Json(submit(&state, &caller, &key, action).await?))
}

async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, role)): ItemPath,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("delete", RBAC, "roles", &project)?;
    let action = Action::DeleteRole {
        org: org.clone(),
        workspace: ws,
        project,
        role,
    };
    Ok(Json(submit(&state, &caller, &key, action).await?))
}

async fn list_bindings(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<Vec<RoleBinding>>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("list", RBAC, "rolebindings", &project)?;
    Ok(Json(access.project(&project)?.spec.role_bindings))
}

async fn bind_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(binding): Json<RoleBinding>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("create", RBAC, "rolebindings", &project)?;
    access.require_group("group", &binding.group)?;
    let (field, rules): (&str, Vec<PolicyRule>) = match (&binding.role, binding.cluster_role) {
        (Some(role), None) => {
            let found = access
                .project(&project)?
                .spec
                .roles
                .into_iter()
                .find(|r| r.name == *role)
                .ok_or_else(|| {
                    ApiError::invalid("role", format!("project {project} has no role {role}"))
                })?;
            ("role", found.rules)
        }
        (None, Some(preset)) => ("clusterRole", Presets::builtin().rules(preset).to_vec()),
        _ => {
            return Err(ApiError::invalid(
                "role",
                "give exactly one of role and clusterRole",
            ));
        }
    };
    if !uncovered(&access.permissions.rules_in(&project), &rules).is_empty() {
        return Err(ApiError::forbidden(format!(
            "you may bind only a role whose permissions you hold yourself in project {project}"
        ))
        .field(field));
    }
    let action = Action::BindRole {
        org: org.clone(),
        workspace: ws,
        project,
        binding,
    };
    let answer = submit(&state, &caller, &key, action).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn unbind_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Query(query): Query<RoleBindingQuery>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("delete", RBAC, "rolebindings", &project)?;
    if query.role.is_some() == query.cluster_role.is_some() {
        return Err(ApiError::invalid(
            "role",
            "give exactly one of role and clusterRole",
        ));
    }
    let action = Action::UnbindRole {
        org: org.clone(),
        workspace: ws,
        project,
        binding: RoleBinding {
            group: query.group,
            role: query.role,
            cluster_role: query.cluster_role,
        },
    };
    Ok(Json(submit(&state, &caller, &key, action).await?))
}
