//! A workspace's groups and their members. Git holds them (`spec.groups` of the workspace's
//! `workspace.yaml`, members by user id): every change is an action through
//! [`submit`], so one commit authored by the person who made it, and
//! the SQL index the issuer reads follows the branch head (docs/access-in-git.md). Any
//! member of the workspace may look; its administrators change them, within the
//! organization's write rate limit. Who may not know the workspace exists gets the same
//! "not found" as for a missing one (see [`tenancy::workspace_access`]).

use std::sync::Arc;

use super::Services;
use super::action::{AccessChange, Action, ActionMeta};
use super::apply::{ApplyError, Engine};
use super::authz::Presets;
use super::caller::Caller;
use super::submit::{CommitAnswer, RequestKey, SubmitError, replay, submit};
use super::tenancy::{self, TenancyError, WorkspaceAccess};
use crate::gitops::Identity;
use crate::store::{ADMINS_GROUP, GroupMember, Store, StoreError, User, WorkspaceGroup};

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
    /// The commit was refused or failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
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
    // The index follows the head: a merged pull request counts at once.
    tenancy::sync_if_behind(&services.store, &services.engine).await?;
    tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await
}

/// Whether `name` may name a group (the compiler's rule, for the intent too).
fn check_name(name: &str) -> Result<(), TenancyError> {
    compiler::check_group_name(name).map_err(|why| TenancyError::invalid("name", why))
}

/// Commits `change` to workspace `ws` of `org` as `caller`, first writing the groups the SQL
/// index holds into Git when the workspace has none there yet (see
/// [`move_access_to_git`]). The change is committed under the request's retry `key`, so a
/// retry answers the first commit; the migration, when there is one, under its first
/// attempt.
async fn commit(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    access: &WorkspaceAccess,
    change: AccessChange,
) -> GroupResult<CommitAnswer> {
    let org = access.org.org.slug.clone();
    let ws = access.name.clone();
    let in_git = access
        .intent()
        .workspace
        .as_ref()
        .is_some_and(|w| !w.spec.groups.is_empty());
    if !in_git {
        let groups = services.store.workspace_groups_as_intent(&org, &ws).await?;
        if !groups.is_empty() {
            let migrate = Action::ChangeAccess {
                org: org.clone(),
                workspace: ws.clone(),
                change: AccessChange::Migrate { groups },
            };
            submit(services, caller, &key.attempt(0), migrate).await?;
        }
    }
    let action = Action::ChangeAccess {
        org,
        workspace: ws,
        change,
    };
    Ok(submit(services, caller, key, action).await?)
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
    let found = find_group(services, org, ws, group).await?;
    let members = services.store.group_members(org, ws, group).await?;
    Ok((found, members))
}

async fn find_group(
    services: &Services,
    org: &str,
    ws: &str,
    group: &str,
) -> GroupResult<WorkspaceGroup> {
    services
        .store
        .workspace_groups(org, ws)
        .await?
        .into_iter()
        .find(|g| g.name == group)
        .ok_or_else(|| no_group(group))
}

/// Creates group `name` under `parent` (administrators): one commit.
pub async fn create(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    name: &str,
    parent: Option<&str>,
) -> GroupResult<(WorkspaceGroup, CommitAnswer)> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage groups")?;
    if let Some(answer) = replay(services, caller, key).await? {
        return Ok((find_group(services, org, ws, name).await?, answer));
    }
    check_name(name)?;
    if let Some(parent) = parent {
        access.require_group("parent", parent)?;
    }
    let change = AccessChange::CreateGroup {
        group: name.to_owned(),
        parent: parent.map(str::to_owned),
    };
    let answer = match commit(services, caller, key, &access, change).await {
        Ok(answer) => answer,
        Err(GroupError::Submit(e)) if e.is_already_exists() => {
            return Err(GroupError::Exists(name.to_owned()));
        }
        Err(GroupError::Submit(e)) if e.is_not_found() => {
            return Err(
                TenancyError::invalid("parent", "the parent group no longer exists").into(),
            );
        }
        Err(other) => return Err(other),
    };
    Ok((find_group(services, org, ws, name).await?, answer))
}

/// Moves `group` under `parent`, or to the top (administrators): one commit.
pub async fn set_parent(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    group: &str,
    parent: Option<&str>,
) -> GroupResult<CommitAnswer> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage groups")?;
    if let Some(answer) = replay(services, caller, key).await? {
        return Ok(answer);
    }
    if !access.all_groups.contains(group) {
        return Err(no_group(group));
    }
    if let Some(parent) = parent {
        access.require_group("parent", parent)?;
    }
    let change = AccessChange::SetGroupParent {
        group: group.to_owned(),
        parent: parent.map(str::to_owned),
    };
    match commit(services, caller, key, &access, change).await {
        Err(GroupError::Submit(SubmitError::Apply(ApplyError::Action(
            super::action::ActionError::Refused(why),
        )))) => Err(TenancyError::invalid(
            "parent",
            why.strip_prefix("parent: ").unwrap_or(&why).to_owned(),
        )
        .into()),
        Err(GroupError::Submit(e)) if e.is_not_found() => {
            Err(TenancyError::NotFound(format!("group {group} or its new parent")).into())
        }
        other => other,
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

/// Deletes `group` (administrators): one commit; never one the default bindings name, nor
/// one with subgroups.
pub async fn delete(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    group: &str,
) -> GroupResult<CommitAnswer> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage groups")?;
    if let Some(answer) = replay(services, caller, key).await? {
        return Ok(answer);
    }
    if is_default_bound(group) {
        return Err(TenancyError::Conflict(format!(
            "group {group} holds the workspace's default administrator binding and cannot be deleted"
        ))
        .into());
    }
    if !access.all_groups.contains(group) {
        return Err(no_group(group));
    }
    let change = AccessChange::DeleteGroup {
        group: group.to_owned(),
    };
    match commit(services, caller, key, &access, change).await {
        Err(GroupError::Submit(e)) if e.is_not_found() => Err(no_group(group)),
        other => other,
    }
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

/// Adds the user `who` (an id or an email) to `group` (administrators): one commit naming
/// them by id.
pub async fn add_member(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    group: &str,
    who: &str,
) -> GroupResult<(User, CommitAnswer)> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage group members")?;
    if !access.all_groups.contains(group) {
        return Err(no_group(group));
    }
    let user = find_user(services, who)
        .await?
        .ok_or_else(|| TenancyError::invalid("user", "no user has this id or email"))?;
    if let Some(answer) = replay(services, caller, key).await? {
        return Ok((user, answer));
    }
    let change = AccessChange::AddMember {
        group: group.to_owned(),
        user: user.id.clone(),
    };
    match commit(services, caller, key, &access, change).await {
        Err(GroupError::Submit(e)) if e.is_not_found() => Err(no_group(group)),
        Err(other) => Err(other),
        Ok(answer) => Ok((user, answer)),
    }
}

/// Removes the user `who` (an id or an email) from `group` (administrators): one commit;
/// never the last member of the administrators' group.
pub async fn remove_member(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    org: &str,
    ws: &str,
    group: &str,
    who: &str,
) -> GroupResult<CommitAnswer> {
    let access = access(services, caller, org, ws).await?;
    access.require_admin("manage group members")?;
    if let Some(answer) = replay(services, caller, key).await? {
        return Ok(answer);
    }
    let missing = || GroupError::NotInGroup {
        who: who.to_owned(),
        group: group.to_owned(),
    };
    let user = find_user(services, who).await?.ok_or_else(missing)?;
    let members = of_group(services.store.group_members(org, ws, group).await, group)?;
    if !members.iter().any(|m| m.user_id == user.id) {
        return Err(missing());
    }
    if group == ADMINS_GROUP && members.len() == 1 {
        return Err(TenancyError::Conflict(format!(
            "{who} is the last member of {ADMINS_GROUP}; add another administrator first"
        ))
        .into());
    }
    let change = AccessChange::RemoveMember {
        group: group.to_owned(),
        user: user.id.clone(),
    };
    match commit(services, caller, key, &access, change).await {
        Err(GroupError::Submit(e)) if e.is_not_found() => Err(missing()),
        other => other,
    }
}

/// The migration to access in Git, run at every start after the index sync: each workspace
/// at the head with no groups in Git but groups in the SQL index gets them written, in one
/// commit per workspace by the platform's bot. A workspace whose groups are in Git is never
/// touched again, and the request id is derived from the workspace, so a start that
/// crashed half-way and runs it again makes no second commit. Returns how many workspaces
/// were moved.
pub async fn move_access_to_git(
    store: &Store,
    engine: &Arc<Engine>,
    bot: Identity,
) -> Result<usize, GroupError> {
    let snapshot = tenancy::head(engine).await?;
    let mut pending = Vec::new();
    for (org, o) in &snapshot.intent.organizations {
        for (ws, w) in &o.workspaces {
            if w.workspace
                .as_ref()
                .is_some_and(|d| d.spec.groups.is_empty())
            {
                pending.push((org.clone(), ws.clone()));
            }
        }
    }
    let mut moved = 0;
    for (org, ws) in pending {
        let groups = store.workspace_groups_as_intent(&org, &ws).await?;
        if groups.is_empty() {
            continue;
        }
        let meta = ActionMeta {
            actor: bot.clone(),
            request_id: format!("move-access-to-git-{org}-{ws}"),
            actor_id: None,
            digest: None,
        };
        let action = Action::ChangeAccess {
            org,
            workspace: ws,
            change: AccessChange::Migrate { groups },
        };
        let engine = Arc::clone(engine);
        let outcome = tokio::task::spawn_blocking(move || engine.apply(&meta, &action))
            .await
            .map_err(TenancyError::from)?
            .map_err(SubmitError::Apply)?;
        if matches!(outcome, super::apply::Outcome::Committed { .. }) {
            moved += 1;
        }
    }
    if moved > 0 {
        tenancy::sync_index(store, engine).await?;
    }
    Ok(moved)
}
