//! Workspace groups and their members under `/api/v1/orgs/{org}/workspaces/{ws}/groups`:
//! who is in a workspace, kept in SQL as the index the issuer reads. Any member may look;
//! workspace administrators change them.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::json::Json;
use super::tenancy::access;
use super::{ApiError, ApiRoute, AppState};
use crate::service::authz::Presets;
use crate::service::tenancy::{TenancyError, admit_write};
use crate::store::{ADMINS_GROUP, GroupMember, StoreError, User};

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
    ]
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
