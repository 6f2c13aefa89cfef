//! The groups index rebuilt from Git: a workspace's groups, nesting and members as its
//! `workspace.yaml` holds them (`spec.groups`), written into the SQL rows the issuer and the
//! API read. Git is the truth; these rows follow it (docs/access-in-git.md).

use std::collections::BTreeMap;

use compiler::intent::Group;

use super::{Store, StoreError, StoreResult, new_id, now, write_tx};

impl Store {
    /// Makes the SQL groups of workspace `ws` of `org` exactly `groups` (from Git): groups
    /// that stay keep their id, new ones get one, the others go; members are replaced, and a
    /// member id with no account is left out (it has nobody to sign in as). One transaction.
    pub async fn replace_workspace_groups(
        &self,
        org: &str,
        ws: &str,
        groups: &[Group],
    ) -> StoreResult<()> {
        let at = now();
        write_tx!(self, |tx| async {
            let existing: BTreeMap<String, String> = sqlx::query_as::<_, (String, String)>(
                "SELECT name, id FROM workspace_groups WHERE org_slug = $1 AND workspace = $2",
            )
            .bind(org)
            .bind(ws)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
            let mut ids: BTreeMap<&str, String> = BTreeMap::new();
            for g in groups {
                if ids.contains_key(g.name.as_str()) {
                    continue;
                }
                let id = match existing.get(&g.name) {
                    Some(id) => id.clone(),
                    None => {
                        let id = new_id();
                        sqlx::query(
                            "INSERT INTO workspace_groups \
                             (id, org_slug, workspace, name, parent_id, created_at) \
                             VALUES ($1, $2, $3, $4, NULL, $5)",
                        )
                        .bind(&id)
                        .bind(org)
                        .bind(ws)
                        .bind(&g.name)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                        id
                    }
                };
                ids.insert(&g.name, id);
            }
            // Parents first, deletions after: a deleted parent cascades to its children.
            for g in groups {
                let parent = g.parent.as_deref().and_then(|p| ids.get(p));
                sqlx::query("UPDATE workspace_groups SET parent_id = $1 WHERE id = $2")
                    .bind(parent)
                    .bind(&ids[g.name.as_str()])
                    .execute(&mut **tx)
                    .await?;
            }
            for (name, id) in &existing {
                if !ids.contains_key(name.as_str()) {
                    sqlx::query(
                        "UPDATE workspace_groups SET parent_id = NULL WHERE parent_id = $1",
                    )
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query("DELETE FROM workspace_groups WHERE id = $1")
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                }
            }
            for g in groups {
                let id = &ids[g.name.as_str()];
                sqlx::query("DELETE FROM group_members WHERE group_id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                for user in &g.members {
                    sqlx::query(
                        "INSERT INTO group_members (group_id, user_id, created_at) \
                         SELECT $1, id, $3 FROM users WHERE id = $2 \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(user)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?;
                }
            }
            Ok::<_, StoreError>(())
        })
    }

    /// The groups of workspace `ws` of `org` as the intent writes them: each with its parent
    /// and its direct members' ids, parents before children where the nesting allows. What
    /// the migration to access in Git writes once per workspace.
    pub async fn workspace_groups_as_intent(&self, org: &str, ws: &str) -> StoreResult<Vec<Group>> {
        let mut groups: Vec<Group> = Vec::new();
        for g in self.workspace_groups(org, ws).await? {
            let mut members: Vec<String> = self
                .group_members(org, ws, &g.name)
                .await?
                .into_iter()
                .map(|m| m.user_id)
                .collect();
            members.sort();
            groups.push(Group {
                name: g.name,
                parent: g.parent,
                members,
            });
        }
        Ok(ordered(groups))
    }
}

/// `groups` with every parent before its children (the order of a tree walked from its
/// roots, by name); a group in a cycle (impossible from SQL) goes last, as it was.
pub(crate) fn ordered(mut groups: Vec<Group>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::with_capacity(groups.len());
    loop {
        let before = groups.len();
        let (ready, rest): (Vec<Group>, Vec<Group>) = groups.into_iter().partition(|g| {
            g.parent
                .as_deref()
                .is_none_or(|p| out.iter().any(|o| o.name == p))
        });
        out.extend(ready);
        groups = rest;
        if groups.is_empty() || groups.len() == before {
            break;
        }
    }
    out.extend(groups);
    out
}
