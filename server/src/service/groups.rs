//! A workspace's groups and their members, kept in SQL as the index the issuer reads. Any
//! member of the workspace may look; its administrators change them, within the
//! organization's write rate limit. Who may not know the workspace exists gets the same
//! "not found" as for a missing one (see [`tenancy::workspace_access`]).

use super::Services;
use super::authz::Presets;
use super::caller::Caller;
use super::tenancy::{self, TenancyError, WorkspaceAccess, admit_write};
use crate::store::{ADMINS_GROUP, GroupMember, StoreError, User, WorkspaceGroup};

/// Why a group use case failed, beyond what [`TenancyError`] says.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Access, validation, rate limits and "not found" of the workspace or the group.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// A group of this name exists in the workspace.
    #[error("group {0} already exists")]
    Exists(String),
    /// The user is not a member of the group.
    #[error("{who} is not in group {group}")]
    NotInGroup {
        /// The user, as the caller named them.
        who: String,
        /// The group.
        group: String,
    },
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

type GroupResult<T> = Result<T, GroupError>;

fn no_group(group: &str) -> GroupError {
    TenancyError::NotFound(format!("group {group}")).into()
}

/// `result`, with the store's "not found" read as "no group `group`".
fn of_group<T>(result: Result<T, StoreError>, group: &str) -> GroupResult<T> {
    result.map_err(|error| match error {
        StoreError::NotFound => no_group(group),
        other => other.into(),
    })
}

async fn access(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> Result<WorkspaceAccess, TenancyError> {
    tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await
}

/// Whether `name` may name a group.
fn check_name(name: &str) -> Result<(), TenancyError> {
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

/// The workspace's groups (members of the workspace).
pub async fn list(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> GroupResult<Vec<WorkspaceGroup>> {
    access(services, caller, org, ws).await?.require_member()?;
    Ok(services.store.workspace_groups(org, ws).await?)
}

/// One group and its direct members (members of the workspace).
pub async fn get(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    group: &str,
) -> GroupResult<(WorkspaceGroup, Vec<GroupMember>)> {
    access(services, caller, org, ws).await?.require_member()?;
    let found = services
        .store
        .workspace_groups(org, ws)
        .await?
        .into_iter()
        .find(|g| g.name == group)
        .ok_or_else(|| no_group(group))?;
    let members = services.store.group_members(org, ws, group).await?;
    Ok((found, members))
}

/// Creates group `name` under `parent` (administrators).
pub async fn create(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    name: &str,
    parent: Option<&str>,
) -> GroupResult<WorkspaceGroup> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage groups")?;
    check_name(name)?;
    if let Some(parent) = parent {
        access.require_group("parent", parent)?;
    }
    admit_write(&services.settings.limits, org)?;
    match services.store.create_group(org, ws, name, parent).await {
        Ok(group) => Ok(group),
        Err(StoreError::Conflict(_)) => Err(GroupError::Exists(name.to_owned())),
        Err(StoreError::NotFound) => {
            Err(TenancyError::invalid("parent", "the parent group no longer exists").into())
        }
        Err(other) => Err(other.into()),
    }
}

/// Moves `group` under `parent`, or to the top (administrators).
pub async fn set_parent(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    group: &str,
    parent: Option<&str>,
) -> GroupResult<()> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage groups")?;
    if !access.all_groups.contains(group) {
        return Err(no_group(group));
    }
    if let Some(parent) = parent {
        access.require_group("parent", parent)?;
    }
    admit_write(&services.settings.limits, org)?;
    match services
        .store
        .set_group_parent(org, ws, group, parent)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(why)) => Err(TenancyError::invalid(
            "parent",
            why.strip_prefix("parent: ").unwrap_or(&why).to_owned(),
        )
        .into()),
        Err(StoreError::NotFound) => {
            Err(TenancyError::NotFound(format!("group {group} or its new parent")).into())
        }
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

/// Deletes `group` (administrators); never one the default bindings name.
pub async fn delete(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    group: &str,
) -> GroupResult<()> {
    access(services, caller, org, ws)
        .await?
        .require_admin("manage groups")?;
    if is_default_bound(group) {
        return Err(TenancyError::Conflict(format!(
            "group {group} holds the workspace's default administrator binding and cannot be deleted"
        ))
        .into());
    }
    admit_write(&services.settings.limits, org)?;
    of_group(services.store.delete_group(org, ws, group).await, group)
}

/// The direct members of `group` (members of the workspace).
pub async fn members(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    group: &str,
) -> GroupResult<Vec<GroupMember>> {
    access(services, caller, org, ws).await?.require_member()?;
    of_group(services.store.group_members(org, ws, group).await, group)
}

/// A user by id, or by email when `who` has an `@`.
async fn find_user(services: &Services, who: &str) -> GroupResult<Option<User>> {
    let found = if who.contains('@') {
        services
            .store
            .user_by_email(&who.trim().to_lowercase())
            .await
    } else {
        services.store.user(who).await
    };
    match found {
        Ok(user) => Ok(Some(user)),
        Err(StoreError::NotFound) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// Adds the user `who` (an id or an email) to `group` (administrators).
pub async fn add_member(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    group: &str,
    who: &str,
) -> GroupResult<User> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage group members")?;
    if !access.all_groups.contains(group) {
        return Err(no_group(group));
    }
    let user = find_user(services, who)
        .await?
        .ok_or_else(|| TenancyError::invalid("user", "no user has this id or email"))?;
    admit_write(&services.settings.limits, org)?;
    of_group(
        services
            .store
            .add_group_member(org, ws, group, &user.id)
            .await,
        group,
    )?;
    Ok(user)
}

/// Removes the user `who` (an id or an email) from `group` (administrators); never the last
/// member of the administrators' group.
pub async fn remove_member(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    group: &str,
    who: &str,
) -> GroupResult<()> {
    access(services, caller, org, ws)
        .await?
        .require_admin("manage group members")?;
    let missing = || GroupError::NotInGroup {
        who: who.to_owned(),
        group: group.to_owned(),
    };
    let user = find_user(services, who).await?.ok_or_else(missing)?;
    if group == ADMINS_GROUP {
        let admins = services.store.group_members(org, ws, group).await?;
        if admins.len() == 1 && admins[0].user_id == user.id {
            return Err(TenancyError::Conflict(format!(
                "{who} is the last member of {ADMINS_GROUP}; add another administrator first"
            ))
            .into());
        }
    }
    admit_write(&services.settings.limits, org)?;
    match services
        .store
        .remove_group_member(org, ws, group, &user.id)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(missing()),
        Err(other) => Err(other.into()),
    }
}
