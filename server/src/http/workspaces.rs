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
use super::commit::{self, CommitAnswer, RequestKey};
use super::{ApiError, ApiRoute, AppState};
use crate::service::action::Action;
use crate::service::authz::{Presets, uncovered};
use crate::service::tenancy::{
    self, OrgAccess, TenancyError, WorkspaceAccess, admit_write, org_access, request_sync,
    sync_index_after_commit, visible_workspaces, workspace_access,
};
use crate::store::{ADMINS_GROUP, GroupMember, IndexedWorkspace, StoreError, User};

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

/// Runs one write action of organization `org` as `caller`: admitted by the organization's
/// rate limit, committed, and the workspace index brought up to the new head: before the
/// answer when the action makes, removes or re-plans a workspace (its groups and
/// subscription follow), in the background otherwise (reads answer from the head, not from
/// the index).
pub(super) async fn write(
    state: &AppState,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    action: Action,
) -> Result<CommitAnswer, ApiError> {
    admit_write(&state.settings.limits, org)?;
    let structural = matches!(
        action,
        Action::CreateWorkspace { .. } | Action::DeleteWorkspace { .. } | Action::ChangePlan { .. }
    );
    let answer = commit::apply(state, caller, key, action).await?;
    if answer.commit.is_some() {
        if structural {
            reindex(state).await;
        } else {
            request_sync(&state.store, &state.engine);
        }
    }
    Ok(answer)
}

/// Brings the workspace index up to the head after a commit (unless a sync that began after
/// the commit has done so). The commit is made already, so a failure here is logged, not
/// answered: the next sync (every list and start) catches up.
pub(super) async fn reindex(state: &AppState) {
    if let Err(error) = sync_index_after_commit(&state.store, &state.engine).await {
        tracing::error!(error = %super::problem::ErrorChain(&error), "failed to sync the workspace index");
    }
}

/// Whether `name` is a DNS label (what workspaces and projects are named with).
pub(super) fn check_label(field: &str, name: &str) -> Result<(), TenancyError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TenancyError::invalid(
            field,
            "must be a DNS label: 1 to 63 lowercase letters, digits or '-', starting with a letter and not ending with '-'",
        ))
    }
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

/// A workspace group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    /// Group name.
    pub name: String,
    /// The parent group: members of this group are members of it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A group with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupDetail {
    /// The group.
    #[serde(flatten)]
    pub group: GroupView,
    /// Users directly in it.
    pub members: Vec<MemberView>,
}

/// Create a group.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroup {
    /// Group name: letters, digits, '.', '_' or '-', at most 63.
    pub name: String,
    /// A group of the workspace to put it under.
    #[serde(default)]
    pub parent: Option<String>,
}

/// Move a group in the hierarchy.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateGroup {
    /// The new parent; absent or null for the top.
    #[serde(default)]
    pub parent: Option<String>,
}

/// A user in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The user's id.
    pub user_id: String,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
}

impl From<GroupMember> for MemberView {
    fn from(m: GroupMember) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
        }
    }
}

/// Add a user to a group.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMember {
    /// The user's id or email.
    pub user: String,
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
const GROUPS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups";
const GROUP: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups/{group}";
const MEMBERS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups/{group}/members";
const MEMBER: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups/{group}/members/{user}";
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
        ApiRoute::new(
            Method::GET,
            GROUPS,
            "listGroups",
            "List the workspace's groups",
            get(list_groups),
        )
        .response::<Vec<GroupView>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            GROUPS,
            "createGroup",
            "Create a group (workspace administrators)",
            post(create_group),
        )
        .request::<CreateGroup>()
        .response::<GroupView>(StatusCode::CREATED),
        ApiRoute::new(
            Method::GET,
            GROUP,
            "getGroup",
            "Get a group and its members",
            get(get_group),
        )
        .response::<GroupDetail>(StatusCode::OK),
        ApiRoute::new(
            Method::PUT,
            GROUP,
            "updateGroup",
            "Move a group in the hierarchy (workspace administrators)",
            put(update_group),
        )
        .request::<UpdateGroup>()
        .response::<GroupView>(StatusCode::OK),
        ApiRoute::new(
            Method::DELETE,
            GROUP,
            "deleteGroup",
            "Delete a group (workspace administrators)",
            delete(delete_group),
        )
        .empty(StatusCode::NO_CONTENT),
        ApiRoute::new(
            Method::GET,
            MEMBERS,
            "listGroupMembers",
            "List a group's members",
            get(list_members),
        )
        .response::<Vec<MemberView>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            MEMBERS,
            "addGroupMember",
            "Add a user to a group by id or email (workspace administrators)",
            post(add_member),
        )
        .request::<AddMember>()
        .response::<MemberView>(StatusCode::CREATED),
        ApiRoute::new(
            Method::DELETE,
            MEMBER,
            "removeGroupMember",
            "Remove a user (id or email) from a group (workspace administrators)",
            delete(remove_member),
        )
        .empty(StatusCode::NO_CONTENT),
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
    ];
    routes.extend(super::projects::routes());
    routes
}

async fn access(
    state: &AppState,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> Result<WorkspaceAccess, ApiError> {
    Ok(workspace_access(&state.store, &state.engine, &caller.user, org, ws).await?)
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

/// Names the plan's field when the platform does not offer it.
fn check_plan(platform: &PlatformOf<'_>, plan: &str) -> Result<(), TenancyError> {
    let plans: Vec<&str> = platform
        .platform()
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

/// The platform as the head has it, for checking plans and clusters.
struct PlatformOf<'a>(&'a crate::gitops::Snapshot);

impl PlatformOf<'_> {
    fn platform(&self) -> Option<&compiler::intent::Platform> {
        self.0.intent.platform.as_deref()
    }
}

async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path(org): Path<String>,
    Json(body): Json<CreateWorkspace>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let access: OrgAccess = org_access(&state.store, &caller.user, &org).await?;
    access.require_owner("create workspaces")?;
    check_label("name", &body.name)?;
    let snapshot = tenancy::head(&state.engine).await?;
    let platform = PlatformOf(&snapshot);
    check_plan(&platform, &body.plan)?;
    let clusters: Vec<&str> = platform
        .platform()
        .map(|p| p.spec.clusters.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let cluster = match body.cluster {
        Some(cluster) if clusters.contains(&cluster.as_str()) => cluster,
        Some(cluster) => {
            return Err(ApiError::invalid(
                "cluster",
                format!(
                    "the platform has no cluster {cluster:?}; it has {}",
                    clusters.join(", ")
                ),
            ));
        }
        None => clusters
            .first()
            .map(|c| (*c).to_owned())
            .ok_or_else(|| ApiError::invalid("cluster", "the platform has no cluster"))?,
    };
    let answer = write(
        &state,
        &caller,
        &key,
        &org,
        Action::CreateWorkspace {
            org: org.clone(),
            workspace: body.name.clone(),
            plan: body.plan.clone(),
            cluster,
            display_name: body.display_name,
        },
    )
    .await?;
    state
        .store
        .create_default_groups(&org, &body.name, Some(&caller.user.id))
        .await?;
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
    let access = access(&state, &caller, &org, &ws).await?;
    access.org.require_owner("delete workspaces")?;
    let answer = write(
        &state,
        &caller,
        &key,
        &org,
        Action::DeleteWorkspace {
            org: org.clone(),
            workspace: ws.clone(),
        },
    )
    .await?;
    Ok(Json(answer))
}

async fn change_plan(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
    Json(body): Json<ChangePlan>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.org.require_owner("change plans")?;
    check_plan(&PlatformOf(&access.snapshot), &body.plan)?;
    let answer = write(
        &state,
        &caller,
        &key,
        &org,
        Action::ChangePlan {
            org: org.clone(),
            workspace: ws.clone(),
            plan: body.plan.clone(),
        },
    )
    .await?;
    Ok(Json(answer))
}

async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): Path<(String, String)>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_member()?;
    let groups = state.store.workspace_groups(&org, &ws).await?;
    Ok(Json(
        groups
            .into_iter()
            .map(|g| GroupView {
                name: g.name,
                parent: g.parent,
            })
            .collect(),
    ))
}

fn check_group_name(name: &str) -> Result<(), TenancyError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TenancyError::invalid(
            "name",
            "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): Path<(String, String)>,
    Json(body): Json<CreateGroup>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_admin("manage groups")?;
    check_group_name(&body.name)?;
    if let Some(parent) = &body.parent {
        access.require_group("parent", parent)?;
    }
    admit_write(&state.settings.limits, &org)?;
    let group = match state
        .store
        .create_group(&org, &ws, &body.name, body.parent.as_deref())
        .await
    {
        Ok(group) => group,
        Err(StoreError::Conflict(_)) => {
            return Err(
                ApiError::conflict(format!("group {} already exists", body.name)).field("name"),
            );
        }
        Err(StoreError::NotFound) => {
            return Err(ApiError::invalid(
                "parent",
                "the parent group no longer exists",
            ));
        }
        Err(other) => return Err(other.into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(GroupView {
            name: group.name,
            parent: group.parent,
        }),
    ))
}

async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group)): Path<(String, String, String)>,
) -> Result<Json<GroupDetail>, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_member()?;
    let groups = state.store.workspace_groups(&org, &ws).await?;
    let found = groups
        .into_iter()
        .find(|g| g.name == group)
        .ok_or_else(|| ApiError::not_found(format!("group {group} does not exist")))?;
    let members = state.store.group_members(&org, &ws, &group).await?;
    Ok(Json(GroupDetail {
        group: GroupView {
            name: found.name,
            parent: found.parent,
        },
        members: members.into_iter().map(MemberView::from).collect(),
    }))
}

async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group)): Path<(String, String, String)>,
    Json(body): Json<UpdateGroup>,
) -> Result<Json<GroupView>, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_admin("manage groups")?;
    if !access.all_groups.contains(&group) {
        return Err(ApiError::not_found(format!("group {group} does not exist")));
    }
    if let Some(parent) = &body.parent {
        access.require_group("parent", parent)?;
    }
    admit_write(&state.settings.limits, &org)?;
    match state
        .store
        .set_group_parent(&org, &ws, &group, body.parent.as_deref())
        .await
    {
        Ok(()) => Ok(Json(GroupView {
            name: group,
            parent: body.parent,
        })),
        Err(StoreError::Conflict(why)) => Err(ApiError::invalid(
            "parent",
            why.strip_prefix("parent: ").unwrap_or(&why).to_owned(),
        )),
        Err(StoreError::NotFound) => Err(ApiError::not_found(format!(
            "group {group} or its new parent does not exist"
        ))),
        Err(other) => Err(other.into()),
    }
}

/// Groups the default bindings name: deleting one would leave the workspace without the
/// administrators its RBAC expects.
fn is_default_bound(group: &str) -> bool {
    Presets::builtin()
        .default_bindings
        .iter()
        .any(|b| b.group == group)
}

async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_admin("manage groups")?;
    if is_default_bound(&group) {
        return Err(ApiError::conflict(format!(
            "group {group} holds the workspace's default administrator binding and cannot be deleted"
        )));
    }
    admit_write(&state.settings.limits, &org)?;
    match state.store.delete_group(&org, &ws, &group).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => {
            Err(ApiError::not_found(format!("group {group} does not exist")))
        }
        Err(other) => Err(other.into()),
    }
}

async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group)): Path<(String, String, String)>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_member()?;
    match state.store.group_members(&org, &ws, &group).await {
        Ok(members) => Ok(Json(members.into_iter().map(MemberView::from).collect())),
        Err(StoreError::NotFound) => {
            Err(ApiError::not_found(format!("group {group} does not exist")))
        }
        Err(other) => Err(other.into()),
    }
}

/// A user by id, or by email when `who` has an `@`.
async fn find_user(state: &AppState, who: &str) -> Result<Option<User>, ApiError> {
    let found = if who.contains('@') {
        state.store.user_by_email(&who.trim().to_lowercase()).await
    } else {
        state.store.user(who).await
    };
    match found {
        Ok(user) => Ok(Some(user)),
        Err(StoreError::NotFound) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group)): Path<(String, String, String)>,
    Json(body): Json<AddMember>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_admin("manage group members")?;
    if !access.all_groups.contains(&group) {
        return Err(ApiError::not_found(format!("group {group} does not exist")));
    }
    let user = find_user(&state, &body.user)
        .await?
        .ok_or_else(|| ApiError::invalid("user", "no user has this id or email"))?;
    admit_write(&state.settings.limits, &org)?;
    match state
        .store
        .add_group_member(&org, &ws, &group, &user.id)
        .await
    {
        Ok(_) => Ok((
            StatusCode::CREATED,
            Json(MemberView {
                user_id: user.id,
                email: user.email,
                name: user.name,
            }),
        )),
        Err(StoreError::NotFound) => {
            Err(ApiError::not_found(format!("group {group} does not exist")))
        }
        Err(other) => Err(other.into()),
    }
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group, who)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let access = access(&state, &caller, &org, &ws).await?;
    access.require_admin("manage group members")?;
    let missing = || ApiError::not_found(format!("{who} is not in group {group}"));
    let user = find_user(&state, &who).await?.ok_or_else(missing)?;
    if group == ADMINS_GROUP {
        let admins = state.store.group_members(&org, &ws, &group).await?;
        if admins.len() == 1 && admins[0].user_id == user.id {
            return Err(ApiError::conflict(format!(
                "{who} is the last member of {ADMINS_GROUP}; add another administrator first"
            )));
        }
    }
    admit_write(&state.settings.limits, &org)?;
    match state
        .store
        .remove_group_member(&org, &ws, &group, &user.id)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(missing()),
        Err(other) => Err(other.into()),
    }
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
    let answer = write(
        &state,
        &caller,
        &key,
        &org,
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
    let answer = write(
        &state,
        &caller,
        &key,
        &org,
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
