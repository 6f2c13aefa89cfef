//! Workspaces and what SQL holds about them: the index of workspaces (rebuilt from Git, which
//! is the truth), workspace groups with their hierarchy and members, and subscriptions.
//! The groups and their members are changed through `tenancy/groups.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

mod groups;

use super::{Store, StoreError, StoreResult, new_id, now, on_pool, write_tx};

/// The default groups of a new workspace, as (name, parent).
pub const DEFAULT_GROUPS: [(&str, Option<&str>); 3] = [
    ("WorkspaceMembers", None),
    ("WSAdmins", Some("WorkspaceMembers")),
    ("WSUsers", Some("WorkspaceMembers")),
];

/// The default group a workspace's creator joins.
pub const ADMINS_GROUP: &str = "WSAdmins";

/// Rows per `INSERT` when the index is written in bulk (7 parameters each, well under
/// SQLite's limit of 32,766 parameters per statement).
const INSERT_CHUNK: usize = 500;

/// A workspace to give the default groups, and who made it (joins [`ADMINS_GROUP`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultGroupsOf {
    /// Organization slug.
    pub org: String,
    /// Workspace slug.
    pub workspace: String,
    /// The creator's user id, if known.
    pub creator: Option<String>,
}

/// One workspace as the index knows it: read from the intent at `commit_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct IndexedWorkspace {
    /// Organization slug.
    pub org_slug: String,
    /// Workspace slug.
    pub name: String,
    /// Plan name.
    pub plan: String,
    /// Host cluster name.
    pub cluster: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Number of projects.
    pub projects: i64,
    /// The head the row was read from.
    pub commit_id: String,
}

/// A workspace group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WorkspaceGroup {
    /// The group's id.
    pub id: String,
    /// Its name, unique in the workspace (the OIDC group, before the platform's prefix).
    pub name: String,
    /// The parent group's name; members of this group are members of the parent too.
    pub parent: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A user in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GroupMember {
    /// The user's id.
    pub user_id: String,
    /// Their email.
    pub email: String,
    /// Their display name.
    pub name: String,
}

/// A workspace's subscription to a plan, for billing: one plan over a stretch of time.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, sqlx::FromRow, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The subscription's id.
    pub id: String,
    /// The organization billed.
    pub org_id: String,
    /// Workspace slug.
    pub workspace: String,
    /// Plan name.
    pub plan: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; `None` while it runs.
    pub ended_at: Option<i64>,
}

const WS_COLUMNS: &str =
    "w.org_slug, w.name, w.plan, w.cluster, w.display_name, w.projects, w.commit_id";

/// The groups of workspaces the index does not hold.
const ORPHAN_GROUPS: &str = "FROM workspace_groups WHERE NOT EXISTS \
     (SELECT 1 FROM workspaces w WHERE w.org_slug = workspace_groups.org_slug \
      AND w.name = workspace_groups.workspace)";

// Removed groups are counted before the delete: SQLite does not count rows that go by a
// cascade (subgroups of a deleted parent), PostgreSQL does.

const SET_HEAD: &str = "INSERT INTO workspace_index_state (id, head) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET head = excluded.head";

/// Running subscriptions with their organization's slug (what the index sync compares).
const RUNNING_SUBSCRIPTIONS: &str = "SELECT s.id, o.slug AS org_slug, s.workspace, s.plan \
     FROM subscriptions s JOIN organizations o ON o.id = s.org_id WHERE s.ended_at IS NULL";

/// A running subscription as the index sync sees it.
#[derive(sqlx::FromRow)]
struct RunningSubscription {
    id: String,
    org_slug: String,
    workspace: String,
    plan: String,
}

/// What makes the running subscriptions follow the indexed workspaces `rows`: the ids of
/// those to end (their workspace is gone, or on another plan now, or a second one runs),
/// and the `(org id, workspace, plan)` to start. `orgs` maps slugs to ids; a workspace of an
/// organization SQL does not know (a hand edit of `intent/`) bills no one.
fn subscription_changes<'a>(
    running: &'a [RunningSubscription],
    rows: &'a [IndexedWorkspace],
    orgs: &BTreeMap<String, String>,
) -> (Vec<&'a str>, Vec<(String, &'a str, &'a str)>) {
    let wanted: BTreeMap<(&str, &str), &str> = rows
        .iter()
        .map(|r| ((r.org_slug.as_str(), r.name.as_str()), r.plan.as_str()))
        .collect();
    let mut kept = BTreeSet::new();
    let mut ends = Vec::new();
    for sub in running {
        let key = (sub.org_slug.as_str(), sub.workspace.as_str());
        if wanted.get(&key) == Some(&sub.plan.as_str()) && kept.insert(key) {
            continue;
        }
        ends.push(sub.id.as_str());
    }
    let starts = wanted
        .into_iter()
        .filter(|(key, _)| !kept.contains(key))
        .filter_map(|((org, ws), plan)| orgs.get(org).map(|id| (id.clone(), ws, plan)))
        .collect();
    (ends, starts)
}

/// Ends and starts subscriptions inside the transaction `$tx` as [`subscription_changes`]
/// says for `$running`, `$rows` and `$orgs`.
macro_rules! follow_subscriptions {
    ($tx:expr, $running:expr, $rows:expr, $orgs:expr) => {{
        let (ends, starts) = subscription_changes(&$running, $rows, &$orgs);
        let at = now();
        for chunk in ends.chunks(INSERT_CHUNK) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "UPDATE subscriptions SET ended_at = $1 WHERE id IN ({})",
                list.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **$tx).await?;
        }
        for chunk in starts.chunks(INSERT_CHUNK) {
            let sql = values_sql(
                "INSERT INTO subscriptions (id, org_id, workspace, plan, started_at)",
                chunk.len(),
                5,
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (org_id, ws, plan) in chunk {
                query = query
                    .bind(new_id())
                    .bind(org_id)
                    .bind(*ws)
                    .bind(*plan)
                    .bind(at);
            }
            query.execute(&mut **$tx).await?;
        }
    }};
}

/// `insert` (`INSERT INTO t (a, b)`) with `rows` rows of `columns` placeholders each.
fn values_sql(insert: &str, rows: usize, columns: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let placeholders: Vec<String> = (1..=columns)
                .map(|c| format!("${}", i * columns + c))
                .collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
    format!("{insert} VALUES {}", values.join(", "))
}

/// `INSERT INTO workspaces` with `rows` rows of placeholders.
fn insert_workspaces_sql(rows: usize) -> String {
    values_sql(
        "INSERT INTO workspaces (org_slug, name, plan, cluster, display_name, projects, commit_id)",
        rows,
        7,
    )
}

/// Inserts `rows` into the index inside the transaction `$tx`.
macro_rules! insert_workspaces {
    ($tx:expr, $rows:expr) => {
        for chunk in $rows.chunks(INSERT_CHUNK) {
            let sql = insert_workspaces_sql(chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(&row.org_slug)
                    .bind(&row.name)
                    .bind(&row.plan)
                    .bind(&row.cluster)
                    .bind(&row.display_name)
                    .bind(row.projects)
                    .bind(&row.commit_id);
            }
            query.execute(&mut **$tx).await?;
        }
    };
}

impl Store {
    /// The head the workspace index was last brought up to.
    pub async fn workspace_index_head(&self) -> StoreResult<Option<String>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>("SELECT head FROM workspace_index_state WHERE id = 1")
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Forgets which head the index was built at, so that the next sync rebuilds it whole.
    pub async fn forget_workspace_index_head(&self) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM workspace_index_state")
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// Replaces the whole index with `rows`, read at `head`, removes the groups of
    /// workspaces no longer there and makes subscriptions follow (one running per indexed
    /// workspace, on its plan); returns how many groups were removed.
    pub async fn replace_workspace_index(
        &self,
        head: &str,
        rows: &[IndexedWorkspace],
    ) -> StoreResult<u64> {
        write_tx!(self, |tx| async {
            sqlx::query("DELETE FROM workspaces")
                .execute(&mut **tx)
                .await?;
            insert_workspaces!(tx, rows);
            let removed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) {ORPHAN_GROUPS}"
            )))
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE {ORPHAN_GROUPS}")))
                .execute(&mut **tx)
                .await?;
            let running = sqlx::query_as::<_, RunningSubscription>(RUNNING_SUBSCRIPTIONS)
                .fetch_all(&mut **tx)
                .await?;
            let orgs: BTreeMap<String, String> =
                sqlx::query_as::<_, (String, String)>("SELECT slug, id FROM organizations")
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .collect();
            follow_subscriptions!(tx, running, rows, orgs);
            let removed = u64::try_from(removed).unwrap_or(0);
            sqlx::query(SET_HEAD).bind(head).execute(&mut **tx).await?;
            Ok::<_, StoreError>(removed)
        })
    }

    /// Brings the index entries of the workspaces in `scope` (`(org, workspace)`) up to
    /// `head`: `rows` are those of them that exist there; the others are removed, with their
    /// groups. Their subscriptions follow: ended when the workspace is gone or re-planned,
    /// started when it is new or re-planned. Returns how many groups were removed.
    pub async fn sync_workspace_index(
        &self,
        head: &str,
        scope: &[(String, String)],
        rows: &[IndexedWorkspace],
    ) -> StoreResult<u64> {
        write_tx!(self, |tx| async {
            let mut removed = 0;
            for (org, ws) in scope {
                sqlx::query("DELETE FROM workspaces WHERE org_slug = $1 AND name = $2")
                    .bind(org)
                    .bind(ws)
                    .execute(&mut **tx)
                    .await?;
                if !rows.iter().any(|r| r.org_slug == *org && r.name == *ws) {
                    let count: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM workspace_groups WHERE org_slug = $1 AND workspace = $2",
                    )
                    .bind(org)
                    .bind(ws)
                    .fetch_one(&mut **tx)
                    .await?;
                    sqlx::query(
                        "DELETE FROM workspace_groups WHERE org_slug = $1 AND workspace = $2",
                    )
                    .bind(org)
                    .bind(ws)
                    .execute(&mut **tx)
                    .await?;
                    removed += u64::try_from(count).unwrap_or(0);
                }
            }
            insert_workspaces!(tx, rows);
            let mut running = Vec::new();
            let mut orgs = BTreeMap::new();
            for (org, ws) in scope {
                if !orgs.contains_key(org) {
                    let id: Option<String> =
                        sqlx::query_scalar("SELECT id FROM organizations WHERE slug = $1")
                            .bind(org)
                            .fetch_optional(&mut **tx)
                            .await?;
                    orgs.extend(id.map(|id| (org.clone(), id)));
                }
                let sql = format!("{RUNNING_SUBSCRIPTIONS} AND o.slug = $1 AND s.workspace = $2");
                running.extend(
                    sqlx::query_as::<_, RunningSubscription>(sqlx::AssertSqlSafe(sql))
                        .bind(org)
                        .bind(ws)
                        .fetch_all(&mut **tx)
                        .await?,
                );
            }
            follow_subscriptions!(tx, running, rows, orgs);
            sqlx::query(SET_HEAD).bind(head).execute(&mut **tx).await?;
            Ok::<_, StoreError>(removed)
        })
    }

    /// Every indexed workspace of the organization `org`, by name.
    pub async fn indexed_workspaces(&self, org: &str) -> StoreResult<Vec<IndexedWorkspace>> {
        let sql =
            format!("SELECT {WS_COLUMNS} FROM workspaces w WHERE w.org_slug = $1 ORDER BY w.name");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, IndexedWorkspace>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// The indexed workspaces of `org` where `user_id` is in at least one group, by name.
    pub async fn indexed_workspaces_of_member(
        &self,
        org: &str,
        user_id: &str,
    ) -> StoreResult<Vec<IndexedWorkspace>> {
        let sql = format!(
            "SELECT {WS_COLUMNS} FROM workspaces w WHERE w.org_slug = $1 AND EXISTS \
             (SELECT 1 FROM workspace_groups g JOIN group_members m ON m.group_id = g.id \
              WHERE g.org_slug = w.org_slug AND g.workspace = w.name AND m.user_id = $2) \
             ORDER BY w.name"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, IndexedWorkspace>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(user_id)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// One indexed workspace.
    pub async fn indexed_workspace(&self, org: &str, ws: &str) -> StoreResult<IndexedWorkspace> {
        let sql =
            format!("SELECT {WS_COLUMNS} FROM workspaces w WHERE w.org_slug = $1 AND w.name = $2");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, IndexedWorkspace>(sqlx::AssertSqlSafe(sql))
                .bind(org)
                .bind(ws)
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Indexed workspaces that have no group at all, as `(org, workspace)`.
    pub async fn workspaces_without_groups(&self) -> StoreResult<Vec<(String, String)>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String)>(
                "SELECT w.org_slug, w.name FROM workspaces w WHERE NOT EXISTS \
                 (SELECT 1 FROM workspace_groups g \
                  WHERE g.org_slug = w.org_slug AND g.workspace = w.name) \
                 ORDER BY w.org_slug, w.name",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// The workspaces of `org` where `user_id` is in at least one group (directly: a group
    /// holds only its direct members, and a member of a subgroup is a member of its parent).
    pub async fn member_workspaces(
        &self,
        org: &str,
        user_id: &str,
    ) -> StoreResult<std::collections::BTreeSet<String>> {
        let names = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT g.workspace FROM workspace_groups g \
                 JOIN group_members m ON m.group_id = g.id \
                 WHERE g.org_slug = $1 AND m.user_id = $2",
            )
            .bind(org)
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(names.into_iter().collect())
    }

    /// Whether `user_id` is in any group of any workspace of `org`.
    pub async fn in_any_workspace_of(&self, org: &str, user_id: &str) -> StoreResult<bool> {
        Ok(!self.member_workspaces(org, user_id).await?.is_empty())
    }

    /// Starts a subscription of a workspace to `plan`, ending the one running, if any.
    pub async fn start_subscription(
        &self,
        org_id: &str,
        ws: &str,
        plan: &str,
    ) -> StoreResult<Subscription> {
        let subscription = Subscription {
            id: new_id(),
            org_id: org_id.to_owned(),
            workspace: ws.to_owned(),
            plan: plan.to_owned(),
            started_at: now(),
            ended_at: None,
        };
        write_tx!(self, |tx| async {
            sqlx::query(
                "UPDATE subscriptions SET ended_at = $1 \
                 WHERE org_id = $2 AND workspace = $3 AND ended_at IS NULL",
            )
            .bind(subscription.started_at)
            .bind(org_id)
            .bind(ws)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO subscriptions (id, org_id, workspace, plan, started_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&subscription.id)
            .bind(org_id)
            .bind(ws)
            .bind(plan)
            .bind(subscription.started_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(subscription)
    }

    /// Ends the running subscription of a workspace; how many were running (0 or 1).
    pub async fn end_subscription(&self, org_id: &str, ws: &str) -> StoreResult<u64> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE subscriptions SET ended_at = $1 \
                 WHERE org_id = $2 AND workspace = $3 AND ended_at IS NULL",
            )
            .bind(now())
            .bind(org_id)
            .bind(ws)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(StoreError::from)
    }

    /// Every subscription of an organization, oldest first.
    pub async fn subscriptions(&self, org_id: &str) -> StoreResult<Vec<Subscription>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Subscription>(
                "SELECT id, org_id, workspace, plan, started_at, ended_at FROM subscriptions \
                 WHERE org_id = $1 ORDER BY started_at, id",
            )
            .bind(org_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insert_names_every_placeholder_once() {
        assert_eq!(
            insert_workspaces_sql(2),
            "INSERT INTO workspaces (org_slug, name, plan, cluster, display_name, projects, commit_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)"
        );
    }
}
