//! Workspaces under `/api/v1/orgs/{org}/workspaces`, their groups and members, and their
//! ClusterRole bindings. Projects and what is inside them are in [`super::projects`].
//!
//! Organization owners list, create and delete workspaces and change their plans; what is
//! inside a workspace is for its groups, as the RBAC rendered from the intent says
//! (`service::authz`). Anything the caller may not know exists answers 404.

use super::json::Json;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use compiler::intent::{ClusterRoleBinding, PresetClusterRole};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey};
use super::tenancy::access;
use super::{ApiError, ApiRoute, AppState};
use crate::service::action::Action;
use crate::service::authz::{Presets, uncovered};
use crate::service::submit::submit;
use crate::service::tenancy::{org_access, visible_workspaces};
use crate::service::workspaces::{self, NewWorkspace};
use crate::store::IndexedWorkspace;

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
    let access = org_access(&state.store, &caller.user, &org).await?;
    let rows = visible_workspaces(&state.store, &state.engine, &access, &caller.user).await?;
    Ok(Json(rows.into_iter().map(WorkspaceView::from).collect()))
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
    let access = access(&state, &caller, &org, &ws).await?;
    let intent = access.intent();
    let doc = intent
        .workspace
        .as_ref()
        .expect("workspace_access checked the workspace document exists");
    Ok(Json(WorkspaceDetail {
        workspace: WorkspaceView {
            name: ws,
            display_name: doc.spec.display_name.clone(),
            plan: doc.spec.plan.clone(),
            cluster: doc.spec.cluster.clone(),
            projects: i64::try_from(intent.projects.len()).unwrap_or(i64::MAX),
        },
        your_groups: access.groups.iter().cloned().collect(),
        admin: access.permissions.is_workspace_admin(Presets::builtin()),
    }))
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
    let access = access(&state, &caller, &org, &ws).await?;
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
    Ok(Json(out))
}

async fn bind_crb(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
    Json(body): Json<ClusterRoleBinding>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_admin("bind ClusterRoles")?;
    access.require_group("group", &body.group)?;
    // The escalation rule, workspace-wide: only what the caller holds everywhere.
    let rules = Presets::builtin().rules(body.cluster_role);
    if !uncovered(&access.permissions.cluster, rules).is_empty() {
        return Err(ApiError::forbidden(format!(
            "you do not hold every permission of {} yourself",
            body.cluster_role.as_str()
        ))
        .field("clusterRole"));
    }
    let answer = submit(
        &state,
        &caller,
        &key,
        Action::BindClusterRole {
            org: org.clone(),
            workspace: ws,
            group: body.group,
            cluster_role: body.cluster_role,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn unbind_crb(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
    Query(query): Query<ClusterRoleBindingQuery>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_admin("unbind ClusterRoles")?;
    let binding = ClusterRoleBinding {
        group: query.group.clone(),
        cluster_role: query.cluster_role,
    };
    if Presets::builtin().default_bindings.contains(&binding) {
        return Err(ApiError::conflict(format!(
            "the binding of {} to {} is every workspace's default and cannot be removed",
            query.cluster_role.as_str(),
            query.group
        )));
    }
    let answer = submit(
        &state,
        &caller,
        &key,
        Action::UnbindClusterRole {
            org: org.clone(),
            workspace: ws,
            group: query.group,
            cluster_role: query.cluster_role,
        },
    )
    .await?;
    Ok(Json(answer))
}
