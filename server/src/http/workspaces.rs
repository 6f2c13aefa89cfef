//! Workspaces under `/api/v1/orgs/{org}/workspaces`, their groups and members, and their
//! ClusterRole bindings. Projects and what is inside them are in [`super::projects`].
//!
//! Each handler calls one use case of [`crate::service::workspaces`] (or
//! [`crate::service::groups`]), where the access decisions are made: organization owners
//! create and delete workspaces and change their plans; what is inside a workspace is for
//! its groups, as the RBAC rendered from the intent says. Anything the caller may not know
//! exists answers 404.

use super::json::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use compiler::intent::{ClusterRoleBinding, PresetClusterRole};
use serde::Deserialize;

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey};
use super::{ApiError, ApiRoute, AppState};
use crate::service::workspaces::{self, NewWorkspace};
pub use crate::service::workspaces::{ClusterRoleBindingView, WorkspaceDetail, WorkspaceView};

/// Create a workspace.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkspace {
    /// Workspace slug, a DNS label.
    pub name: String,
    /// A plan of the platform.
    pub plan: String,
    /// A host cluster of the platform; the first one when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Move a workspace to another plan.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePlan {
    /// A plan of the platform.
    pub plan: String,
}

/// Which ClusterRole binding to remove.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterRoleBindingQuery {
    /// Workspace group.
    pub group: String,
    /// Preset ClusterRole.
    pub cluster_role: PresetClusterRole,
}

const LIST: &str = "/api/v1/orgs/{org}/workspaces";
const ONE: &str = "/api/v1/orgs/{org}/workspaces/{ws}";
const PLAN: &str = "/api/v1/orgs/{org}/workspaces/{ws}/plan";
const CRBS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/clusterrolebindings";

pub(super) fn routes() -> Vec<ApiRoute> {
    let mut routes = vec![
        ApiRoute::new(
            Method::GET,
            LIST,
            "listWorkspaces",
            "List the workspaces you may see",
            get(list_workspaces),
        )
        .response::<Vec<WorkspaceView>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            LIST,
            "createWorkspace",
            "Create a workspace (organization owners)",
            post(create_workspace),
        )
        .request::<CreateWorkspace>()
        .response::<CommitAnswer>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::GET,
            ONE,
            "getWorkspace",
            "Get a workspace",
            get(get_workspace),
        )
        .response::<WorkspaceDetail>(StatusCode::OK),
        ApiRoute::new(
            Method::DELETE,
            ONE,
            "deleteWorkspace",
            "Delete a workspace (organization owners)",
            delete(delete_workspace),
        )
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::PUT,
            PLAN,
            "changePlan",
            "Move a workspace to another plan (organization owners)",
            put(change_plan),
        )
        .request::<ChangePlan>()
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
    ];
    routes.extend(super::groups::routes());
    routes.extend([
        ApiRoute::new(
            Method::GET,
            CRBS,
            "listClusterRoleBindings",
            "List the workspace's preset ClusterRole bindings",
            get(list_crbs),
        )
        .response::<Vec<ClusterRoleBindingView>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            CRBS,
            "bindClusterRole",
            "Bind a preset ClusterRole to a group (workspace administrators)",
            post(bind_crb),
        )
        .request::<ClusterRoleBinding>()
        .response::<CommitAnswer>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::DELETE,
            CRBS,
            "unbindClusterRole",
            "Remove a preset ClusterRole binding (?group=&clusterRole=; workspace administrators)",
            delete(unbind_crb),
        )
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
    ]);
    routes
}

async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Vec<WorkspaceView>>, ApiError> {
    Ok(Json(workspaces::list(&state, &caller, &org).await?))
}

async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path(org): Path<String>,
    Json(body): Json<CreateWorkspace>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let new = NewWorkspace {
        name: body.name,
        plan: body.plan,
        cluster: body.cluster,
        display_name: body.display_name,
    };
    let answer = workspaces::create(&state, &caller, &key, &org, new).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): Path<(String, String)>,
) -> Result<Json<WorkspaceDetail>, ApiError> {
    Ok(Json(workspaces::get(&state, &caller, &org, &ws).await?))
}

async fn delete_workspace(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
) -> Result<Json<CommitAnswer>, ApiError> {
    Ok(Json(
        workspaces::delete(&state, &caller, &key, &org, &ws).await?,
    ))
}

async fn change_plan(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
    Json(body): Json<ChangePlan>,
) -> Result<Json<CommitAnswer>, ApiError> {
    Ok(Json(
        workspaces::change_plan(&state, &caller, &key, &org, &ws, &body.plan).await?,
    ))
}

async fn list_crbs(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): Path<(String, String)>,
) -> Result<Json<Vec<ClusterRoleBindingView>>, ApiError> {
    Ok(Json(
        workspaces::cluster_role_bindings(&state, &caller, &org, &ws).await?,
    ))
}

async fn bind_crb(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
    Json(body): Json<ClusterRoleBinding>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let answer = workspaces::bind_cluster_role(&state, &caller, &key, &org, &ws, body).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn unbind_crb(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
    Query(query): Query<ClusterRoleBindingQuery>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let binding = ClusterRoleBinding {
        group: query.group,
        cluster_role: query.cluster_role,
    };
    Ok(Json(
        workspaces::unbind_cluster_role(&state, &caller, &key, &org, &ws, binding).await?,
    ))
}
