//! Workspace groups and their members under `/api/v1/orgs/{org}/workspaces/{ws}/groups`:
//! who is in a workspace, kept in SQL as the index the issuer reads. Any member may look;
//! workspace administrators change them.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::commit::RequestKey;
use super::json::Json;
use super::{ApiError, ApiRoute, AppState};
use crate::service::groups::{self, GroupError};
use crate::store::{GroupMember, WorkspaceGroup};

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

/// A user added to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddedMember {
    /// The user.
    #[serde(flatten)]
    pub member: MemberView,
    /// This answers a retry (the same `Idempotency-Key`) of a request that was committed;
    /// absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// A group created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedGroup {
    /// The group.
    #[serde(flatten)]
    pub group: GroupView,
    /// This answers a retry (the same `Idempotency-Key`) of a request that was committed;
    /// absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
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

const GROUPS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups";
const GROUP: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups/{group}";
const MEMBERS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups/{group}/members";
const MEMBER: &str = "/api/v1/orgs/{org}/workspaces/{ws}/groups/{group}/members/{user}";

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
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
        .response::<CreatedGroup>(StatusCode::CREATED)
        .mutates(),
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
        .response::<GroupView>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::DELETE,
            GROUP,
            "deleteGroup",
            "Delete a group (workspace administrators)",
            delete(delete_group),
        )
        .empty(StatusCode::NO_CONTENT)
        .mutates(),
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
        .response::<AddedMember>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::DELETE,
            MEMBER,
            "removeGroupMember",
            "Remove a user (id or email) from a group (workspace administrators)",
            delete(remove_member),
        )
        .empty(StatusCode::NO_CONTENT)
        .mutates(),
    ]
}

impl From<GroupError> for ApiError {
    fn from(error: GroupError) -> Self {
        match error {
            GroupError::Tenancy(error) => error.into(),
            GroupError::Exists(name) => {
                ApiError::conflict(format!("group {name} already exists")).field("name")
            }
            GroupError::NotInGroup { who, group } => {
                ApiError::not_found(format!("{who} is not in group {group}"))
            }
            GroupError::Store(error) => error.into(),
            GroupError::Submit(error) => error.into(),
        }
    }
}

impl From<WorkspaceGroup> for GroupView {
    fn from(group: WorkspaceGroup) -> Self {
        Self {
            name: group.name,
            parent: group.parent,
        }
    }
}

async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws)): Path<(String, String)>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let groups = groups::list(&state, &caller, &org, &ws).await?;
    Ok(Json(groups.into_iter().map(GroupView::from).collect()))
}

async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws)): Path<(String, String)>,
    Json(body): Json<CreateGroup>,
) -> Result<(StatusCode, Json<CreatedGroup>), ApiError> {
    let (group, answer) = groups::create(
        &state,
        &caller,
        &key,
        &org,
        &ws,
        &body.name,
        body.parent.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedGroup {
            group: group.into(),
            replayed: answer.replayed,
        }),
    ))
}

async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group)): Path<(String, String, String)>,
) -> Result<Json<GroupDetail>, ApiError> {
    let (group, members) = groups::get(&state, &caller, &org, &ws, &group).await?;
    Ok(Json(GroupDetail {
        group: group.into(),
        members: members.into_iter().map(MemberView::from).collect(),
    }))
}

async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, group)): Path<(String, String, String)>,
    Json(body): Json<UpdateGroup>,
) -> Result<Json<GroupView>, ApiError> {
    groups::set_parent(
        &state,
        &caller,
        &key,
        &org,
        &ws,
        &group,
        body.parent.as_deref(),
    )
    .await?;
    Ok(Json(GroupView {
        name: group,
        parent: body.parent,
    }))
}

async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, group)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    groups::delete(&state, &caller, &key, &org, &ws, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, group)): Path<(String, String, String)>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let members = groups::members(&state, &caller, &org, &ws, &group).await?;
    Ok(Json(members.into_iter().map(MemberView::from).collect()))
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, group)): Path<(String, String, String)>,
    Json(body): Json<AddMember>,
) -> Result<(StatusCode, Json<AddedMember>), ApiError> {
    let (user, answer) =
        groups::add_member(&state, &caller, &key, &org, &ws, &group, &body.user).await?;
    Ok((
        StatusCode::CREATED,
        Json(AddedMember {
            member: MemberView {
                user_id: user.id,
                email: user.email,
                name: user.name,
            },
            replayed: answer.replayed,
        }),
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, group, who)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    groups::remove_member(&state, &caller, &key, &org, &ws, &group, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}
