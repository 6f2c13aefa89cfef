//! Projects of a workspace and what is inside them: quota, custom Roles and RoleBindings
//! (CronJobs and Functions are in [`super::items`]). Each handler calls one use case of
//! [`crate::service::projects`] or [`crate::service::roles`].

use super::json::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use compiler::intent::{PolicyRule, PresetClusterRole, Quota, Role, RoleBinding};
use serde::Deserialize;

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey};
use super::{ApiError, ApiRoute, AppState};
pub use crate::service::projects::ProjectView;
use crate::service::projects::{self, ProjectError, ProjectRef};
use crate::service::roles;

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

/// Where the path says the project is.
pub(super) fn at<'a>(org: &'a str, workspace: &'a str, project: &'a str) -> ProjectRef<'a> {
    ProjectRef {
        org,
        workspace,
        project,
    }
}

impl From<ProjectError> for ApiError {
    fn from(error: ProjectError) -> Self {
        match error {
            ProjectError::Tenancy(error) => error.into(),
            ProjectError::Submit(error) => error.into(),
        }
    }
}

async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): WsPath,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    Ok(Json(projects::list(&state, &caller, &org, &ws).await?))
}

async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): WsPath,
    Json(body): Json<CreateProject>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let answer = projects::create(
        &state,
        &caller,
        &key,
        &org,
        &ws,
        &body.name,
        body.display_name,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<ProjectView>, ApiError> {
    Ok(Json(
        projects::get(&state, &caller, at(&org, &ws, &project)).await?,
    ))
}

async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<CommitAnswer>, ApiError> {
    let at = at(&org, &ws, &project);
    Ok(Json(projects::delete(&state, &caller, &key, at).await?))
}

async fn set_quota(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(quota): Json<Quota>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let at = at(&org, &ws, &project);
    Ok(Json(
        projects::set_quota(&state, &caller, &key, at, quota).await?,
    ))
}

async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<Vec<Role>>, ApiError> {
    Ok(Json(
        roles::list_roles(&state, &caller, at(&org, &ws, &project)).await?,
    ))
}

async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project, role)): ItemPath,
) -> Result<Json<Role>, ApiError> {
    let at = at(&org, &ws, &project);
    Ok(Json(roles::get_role(&state, &caller, at, &role).await?))
}

async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(role): Json<Role>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let at = at(&org, &ws, &project);
    let answer = roles::create_role(&state, &caller, &key, at, role).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn update_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, role)): ItemPath,
    Json(body): Json<RoleRules>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let at = at(&org, &ws, &project);
    Ok(Json(
        roles::update_role(&state, &caller, &key, at, &role, body.rules).await?,
    ))
}

async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, role)): ItemPath,
) -> Result<Json<CommitAnswer>, ApiError> {
    let at = at(&org, &ws, &project);
    Ok(Json(
        roles::delete_role(&state, &caller, &key, at, &role).await?,
    ))
}

async fn list_bindings(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<Vec<RoleBinding>>, ApiError> {
    Ok(Json(
        roles::list_bindings(&state, &caller, at(&org, &ws, &project)).await?,
    ))
}

async fn bind_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(binding): Json<RoleBinding>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let at = at(&org, &ws, &project);
    let answer = roles::bind(&state, &caller, &key, at, binding).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn unbind_role(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Query(query): Query<RoleBindingQuery>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let binding = RoleBinding {
        group: query.group,
        role: query.role,
        cluster_role: query.cluster_role,
    };
    let at = at(&org, &ws, &project);
    Ok(Json(
        roles::unbind(&state, &caller, &key, at, binding).await?,
    ))
}
