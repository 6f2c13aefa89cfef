//! Workspace groups, their hierarchy and their members in SQL: the default groups of new
//! workspaces, and each change to a group or a membership.

use std::collections::BTreeSet;

use super::{
    ADMINS_GROUP, DEFAULT_GROUPS, DefaultGroupsOf, GroupMember, INSERT_CHUNK, WorkspaceGroup,
    values_sql,
};
use crate::store::{Store, StoreError, StoreResult, new_id, now, on_pool, write_tx};

/// Group rows per `INSERT` (6 parameters each): whole workspaces of [`DEFAULT_GROUPS`].
const GROUP_CHUNK: usize = 3 * 300;

/// Up to this many workspaces, [`Store::create_default_groups_of`] looks up each one's
/// groups; beyond, it reads which workspaces have any in one scan.
const FEW: usize = 32;

/// A group and whether someone is directly in it.
#[derive(sqlx::FromRow)]
struct GroupWithMembership {
    #[sqlx(flatten)]
    group: WorkspaceGroup,
    member: bool,
}

const GROUP_COLUMNS: &str = "g.id, g.name, p.name AS parent, g.created_at";
const GROUPS_OF_WS: &str = "FROM workspace_groups g LEFT JOIN workspace_groups p ON p.id = g.parent_id \
     WHERE g.org_slug = $1 AND g.workspace = $2";

impl Store {
    /// Creates the default groups of a workspace ([`DEFAULT_GROUPS`]) with `creator` in
    /// [`ADMINS_GROUP`], unless the workspace has groups already; true when it made them.
    pub async fn create_default_groups(
        &self,
        org: &str,
        ws: &str,
        creator: Option<&str>,
    ) -> StoreResult<bool> {
        let one = [DefaultGroupsOf {
            org: org.to_owned(),
            workspace: ws.to_owned(),
            creator: creator.map(str::to_owned),
        }];
        Ok(self.create_default_groups_of(&one).await? == 1)
    }

    /// [`Store::create_default_groups`] for many workspaces at once, in one transaction with
    /// multi-row inserts (the start after a restore gives thousands of workspaces their
    /// groups); returns how many got them (the others had groups already).
    pub async fn create_default_groups_of(
        &self,
        workspaces: &[DefaultGroupsOf],
    ) -> StoreResult<usize> {
        if workspaces.is_empty() {
            return Ok(0);
        }
        write_tx!(self, |tx| async {
            // Which of them have groups: one look each for a few, one scan for many.
            let mut grouped: BTreeSet<(String, String)> = BTreeSet::new();
            if workspaces.len() <= FEW {
                for w in workspaces {
                    let existing: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM workspace_groups WHERE org_slug = $1 AND workspace = $2",
                    )
                    .bind(&w.org)
                    .bind(&w.workspace)
                    .fetch_one(&mut **tx)
                    .await?;
                    if existing > 0 {
                        grouped.insert((w.org.clone(), w.workspace.clone()));
                    }
                }
            } else {
                grouped = sqlx::query_as::<_, (String, String)>(
                    "SELECT DISTINCT org_slug, workspace FROM workspace_groups",
                )
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .collect();
            }
            let created_at = now();
            let mut groups: Vec<(String, &str, &str, &str, Option<String>)> = Vec::new();
            let mut members: Vec<(String, &str)> = Vec::new();
            for w in workspaces {
                if !grouped.insert((w.org.clone(), w.workspace.clone())) {
                    continue;
                }
                let mut ids: Vec<(&str, String)> = Vec::new();
                for (name, parent) in DEFAULT_GROUPS {
                    let id = new_id();
                    let parent_id = parent
                        .and_then(|p| ids.iter().find(|(n, _)| *n == p))
                        .map(|(_, id)| id.clone());
                    groups.push((id.clone(), &w.org, &w.workspace, name, parent_id));
                    ids.push((name, id));
                }
                if let Some(user) = &w.creator
                    && let Some((_, admins)) = ids.iter().find(|(n, _)| *n == ADMINS_GROUP)
                {
                    members.push((admins.clone(), user));
                }
            }
            // Parents come before their children in each statement (and chunk: three rows
            // per workspace, and a chunk holds whole workspaces).
            for chunk in groups.chunks(GROUP_CHUNK) {
                let sql = values_sql(
                    "INSERT INTO workspace_groups (id, org_slug, workspace, name, parent_id, created_at)",
                    chunk.len(),
                    6,
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, org, ws, name, parent) in chunk {
                    query = query
                        .bind(id)
                        .bind(*org)
                        .bind(*ws)
                        .bind(*name)
                        .bind(parent)
                        .bind(created_at);
                }
                query.execute(&mut **tx).await?;
            }
            for chunk in members.chunks(INSERT_CHUNK) {
                let sql = values_sql(
                    "INSERT INTO group_members (group_id, user_id, created_at)",
                    chunk.len(),
                    3,
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (group, user) in chunk {
                    query = query.bind(group).bind(*user).bind(created_at);
                }
                query.execute(&mut **tx).await?;
            }
            Ok::<_, StoreError>(groups.len() / DEFAULT_GROUPS.len())
        })
    }

    /// The groups of a workspace, by name.
    pub async fn workspace_groups(&self, org: &str, ws: &str) -> StoreResult<Vec<WorkspaceGroup>> {
        let sql = format!("SELECT {GROUP_COLUMNS} {GROUPS_OF_WS} ORDER BY g.name");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, WorkspaceGroup>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(ws)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// The groups of a workspace, by name, each with whether `user_id` is directly in it:
    /// [`Store::workspace_groups`] and [`Store::direct_groups`] in one query.
    pub async fn workspace_groups_for(
        &self,
        org: &str,
        ws: &str,
        user_id: &str,
    ) -> StoreResult<Vec<(WorkspaceGroup, bool)>> {
        let sql = format!(
            "SELECT {GROUP_COLUMNS}, EXISTS (SELECT 1 FROM group_members m \
             WHERE m.group_id = g.id AND m.user_id = $3) AS member {GROUPS_OF_WS} ORDER BY g.name"
        );
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, GroupWithMembership>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(ws)
                .bind(user_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(|r| (r.group, r.member)).collect())
    }

    /// The names of the groups of a workspace `user_id` is directly in (not flattened).
    pub async fn direct_groups(
        &self,
        org: &str,
        ws: &str,
        user_id: &str,
    ) -> StoreResult<Vec<String>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT g.name FROM workspace_groups g JOIN group_members m ON m.group_id = g.id \
                 WHERE g.org_slug = $1 AND g.workspace = $2 AND m.user_id = $3 ORDER BY g.name",
            )
            .bind(org)
            .bind(ws)
            .bind(user_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Creates a group under `parent` (a group of the same workspace). `NotFound` when the
    /// parent does not exist; `Conflict` when the name is taken.
    pub async fn create_group(
        &self,
        org: &str,
        ws: &str,
        name: &str,
        parent: Option<&str>,
    ) -> StoreResult<WorkspaceGroup> {
        let group = WorkspaceGroup {
            id: new_id(),
            name: name.to_owned(),
            parent: parent.map(str::to_owned),
            created_at: now(),
        };
        write_tx!(self, |tx| async {
            let parent_id = match parent {
                Some(p) => Some(
                    sqlx::query_scalar::<_, String>(
                        "SELECT id FROM workspace_groups \
                         WHERE org_slug = $1 AND workspace = $2 AND name = $3",
                    )
                    .bind(org)
                    .bind(ws)
                    .bind(p)
                    .fetch_one(&mut **tx)
                    .await?,
                ),
                None => None,
            };
            sqlx::query(
                "INSERT INTO workspace_groups (id, org_slug, workspace, name, parent_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&group.id)
            .bind(org)
            .bind(ws)
            .bind(name)
            .bind(parent_id)
            .bind(group.created_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(group)
    }

    /// Moves the group `name` under `parent` (or to the top). `NotFound` when either group
    /// does not exist; `Conflict` naming `parent` when the move would make a cycle.
    pub async fn set_group_parent(
        &self,
        org: &str,
        ws: &str,
        name: &str,
        parent: Option<&str>,
    ) -> StoreResult<()> {
        let sql = format!("SELECT {GROUP_COLUMNS} {GROUPS_OF_WS}");
        write_tx!(self, |tx| async {
            // Read inside the write transaction, so no concurrent move can slip a cycle in.
            let groups = sqlx::query_as::<_, WorkspaceGroup>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(ws)
                .fetch_all(&mut **tx)
                .await?;
            let group = groups
                .iter()
                .find(|g| g.name == name)
                .ok_or(StoreError::NotFound)?;
            let parent_id = match parent {
                Some(p) => {
                    let parent = groups
                        .iter()
                        .find(|g| g.name == p)
                        .ok_or(StoreError::NotFound)?;
                    if makes_cycle(&groups, name, p) {
                        return Err(StoreError::Conflict(format!(
                            "parent: group {p} is {name} or inside it, which would make a cycle"
                        )));
                    }
                    Some(parent.id.clone())
                }
                None => None,
            };
            sqlx::query("UPDATE workspace_groups SET parent_id = $1 WHERE id = $2")
                .bind(parent_id)
                .bind(&group.id)
                .execute(&mut **tx)
                .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Deletes a group and its memberships. `NotFound` when it does not exist; `Conflict`
    /// when it still has subgroups (they would go with it).
    pub async fn delete_group(&self, org: &str, ws: &str, name: &str) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            let id: String = sqlx::query_scalar(
                "SELECT id FROM workspace_groups WHERE org_slug = $1 AND workspace = $2 AND name = $3",
            )
            .bind(org)
            .bind(ws)
            .bind(name)
            .fetch_one(&mut **tx)
            .await?;
            let children: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM workspace_groups WHERE parent_id = $1")
                    .bind(&id)
                    .fetch_one(&mut **tx)
                    .await?;
            if children > 0 {
                return Err(StoreError::Conflict(format!(
                    "group {name} has subgroups; move or delete them first"
                )));
            }
            sqlx::query("DELETE FROM workspace_groups WHERE id = $1")
                .bind(&id)
                .execute(&mut **tx)
                .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// The users directly in a group, by email. `NotFound` when the group does not exist.
    pub async fn group_members(
        &self,
        org: &str,
        ws: &str,
        group: &str,
    ) -> StoreResult<Vec<GroupMember>> {
        let id = self.group_id(org, ws, group).await?;
        on_pool!(self, |pool| {
            sqlx::query_as::<_, GroupMember>(
                "SELECT u.id AS user_id, u.email, u.name FROM group_members m \
                 JOIN users u ON u.id = m.user_id WHERE m.group_id = $1 ORDER BY u.email",
            )
            .bind(&id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    async fn group_id(&self, org: &str, ws: &str, group: &str) -> StoreResult<String> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT id FROM workspace_groups WHERE org_slug = $1 AND workspace = $2 AND name = $3",
            )
            .bind(org)
            .bind(ws)
            .bind(group)
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Puts `user_id` in a group; true when they were not in it already. `NotFound` when the
    /// group does not exist.
    pub async fn add_group_member(
        &self,
        org: &str,
        ws: &str,
        group: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        let id = self.group_id(org, ws, group).await?;
        let added = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO group_members (group_id, user_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (group_id, user_id) DO NOTHING",
            )
            .bind(&id)
            .bind(user_id)
            .bind(now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(added > 0)
    }

    /// Takes `user_id` out of a group. `NotFound` when the group does not exist or they are
    /// not in it.
    pub async fn remove_group_member(
        &self,
        org: &str,
        ws: &str,
        group: &str,
        user_id: &str,
    ) -> StoreResult<()> {
        let id = self.group_id(org, ws, group).await?;
        let removed = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                .bind(&id)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

/// Whether putting `name` under `parent` makes a cycle: `parent` is `name` or below it.
fn makes_cycle(groups: &[WorkspaceGroup], name: &str, parent: &str) -> bool {
    let mut at = Some(parent);
    let mut steps = 0;
    while let Some(current) = at {
        if current == name {
            return true;
        }
        steps += 1;
        if steps > groups.len() {
            // Already a cycle above (only hand edits could make one): refuse to add to it.
            return true;
        }
        at = groups
            .iter()
            .find(|g| g.name == current)
            .and_then(|g| g.parent.as_deref());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, parent: Option<&str>) -> WorkspaceGroup {
        WorkspaceGroup {
            id: name.to_owned(),
            name: name.to_owned(),
            parent: parent.map(str::to_owned),
            created_at: 0,
        }
    }

    #[test]
    fn a_group_cannot_go_under_itself_or_its_descendants() {
        let groups = [
            group("top", None),
            group("mid", Some("top")),
            group("low", Some("mid")),
            group("other", None),
        ];
        assert!(makes_cycle(&groups, "top", "low"));
        assert!(makes_cycle(&groups, "mid", "mid"));
        assert!(!makes_cycle(&groups, "low", "top"));
        assert!(!makes_cycle(&groups, "top", "other"));
    }
}
