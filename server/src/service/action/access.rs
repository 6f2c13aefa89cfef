//! Changes to who may access a workspace: its groups, their nesting and their members, kept
//! in `spec.groups` of its `workspace.yaml` (docs/access-in-git.md). Each is one action, so
//! one commit authored by the person who made it.

use compiler::intent::Group;
use serde::{Deserialize, Serialize};

use super::ActionError;
use crate::store::{ADMINS_GROUP, DEFAULT_GROUPS};

/// One change to a workspace's groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AccessChange {
    /// Create a group, at the top or under `parent`.
    CreateGroup {
        /// The new group.
        group: String,
        /// Its parent group.
        #[serde(default)]
        parent: Option<String>,
    },
    /// Move a group under `parent`, or to the top.
    SetGroupParent {
        /// The group.
        group: String,
        /// The new parent.
        #[serde(default)]
        parent: Option<String>,
    },
    /// Delete a group that has no subgroups.
    DeleteGroup {
        /// The group.
        group: String,
    },
    /// Add a user to a group.
    AddMember {
        /// The group.
        group: String,
        /// The user's id.
        user: String,
    },
    /// Remove a user from a group.
    RemoveMember {
        /// The group.
        group: String,
        /// The user's id.
        user: String,
    },
    /// Write the groups the SQL index held before access was in Git (once per workspace).
    Migrate {
        /// The groups, parents first.
        groups: Vec<Group>,
    },
}

impl AccessChange {
    /// The kind, as in the `Hexabase-Action` trailer.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CreateGroup { .. } => "create-group",
            Self::SetGroupParent { .. } => "set-group-parent",
            Self::DeleteGroup { .. } => "delete-group",
            Self::AddMember { .. } => "add-group-member",
            Self::RemoveMember { .. } => "remove-group-member",
            Self::Migrate { .. } => "move-access-to-git",
        }
    }

    /// What it does, in plain words, for the commit subject.
    pub fn subject(&self) -> String {
        match self {
            Self::CreateGroup {
                group,
                parent: Some(parent),
            } => format!("create group {group} in {parent}"),
            Self::CreateGroup {
                group,
                parent: None,
            } => format!("create group {group}"),
            Self::SetGroupParent {
                group,
                parent: Some(parent),
            } => format!("move group {group} into {parent}"),
            Self::SetGroupParent {
                group,
                parent: None,
            } => format!("move group {group} to the top"),
            Self::DeleteGroup { group } => format!("delete group {group}"),
            Self::AddMember { group, user } => format!("add user {user} to group {group}"),
            Self::RemoveMember { group, user } => {
                format!("remove user {user} from group {group}")
            }
            Self::Migrate { .. } => "move groups and members to Git".to_owned(),
        }
    }

    /// Applies the change to a workspace's `groups` (the default groups, without members,
    /// when the workspace has none in Git yet).
    pub fn apply(&self, groups: &mut Vec<Group>) -> Result<(), ActionError> {
        if let Self::Migrate { groups: from_sql } = self {
            if groups.is_empty() {
                groups.clone_from(from_sql);
            }
            return Ok(());
        }
        if groups.is_empty() {
            *groups = default_groups(None);
        }
        let find = |groups: &[Group], name: &str| groups.iter().position(|g| g.name == name);
        let require = |groups: &[Group], name: &str| {
            find(groups, name).ok_or_else(|| ActionError::NotFound(format!("group {name}")))
        };
        match self {
            Self::CreateGroup { group, parent } => {
                if find(groups, group).is_some() {
                    return Err(ActionError::AlreadyExists(format!("group {group}")));
                }
                if let Some(parent) = parent {
                    require(groups, parent)?;
                }
                groups.push(Group {
                    name: group.clone(),
                    parent: parent.clone(),
                    members: Vec::new(),
                });
            }
            Self::SetGroupParent { group, parent } => {
                let at = require(groups, group)?;
                if let Some(parent) = parent {
                    require(groups, parent)?;
                    let mut up = Some(parent.as_str());
                    while let Some(name) = up {
                        if name == group {
                            return Err(ActionError::Refused(format!(
                                "parent: group {parent} is {group} or inside it, which would make a cycle"
                            )));
                        }
                        up = find(groups, name).and_then(|i| groups[i].parent.as_deref());
                    }
                }
                groups[at].parent.clone_from(parent);
            }
            Self::DeleteGroup { group } => {
                require(groups, group)?;
                if groups.iter().any(|g| g.parent.as_ref() == Some(group)) {
                    return Err(ActionError::Refused(format!(
                        "group {group} has subgroups; move or delete them first"
                    )));
                }
                groups.retain(|g| g.name != *group);
            }
            Self::AddMember { group, user } => {
                let at = require(groups, group)?;
                if !groups[at].members.contains(user) {
                    groups[at].members.push(user.clone());
                    groups[at].members.sort();
                }
            }
            Self::RemoveMember { group, user } => {
                let at = require(groups, group)?;
                let members = &mut groups[at].members;
                let Some(i) = members.iter().position(|m| m == user) else {
                    return Err(ActionError::NotFound(format!(
                        "user {user} in group {group}"
                    )));
                };
                if group == ADMINS_GROUP && members.len() == 1 {
                    return Err(ActionError::Refused(format!(
                        "user {user} is the last member of {ADMINS_GROUP}; add another administrator first"
                    )));
                }
                members.remove(i);
            }
            Self::Migrate { .. } => unreachable!("handled above"),
        }
        Ok(())
    }
}

/// The default groups of a new workspace, with `admin` (its creator) in [`ADMINS_GROUP`].
pub fn default_groups(admin: Option<&str>) -> Vec<Group> {
    DEFAULT_GROUPS
        .iter()
        .map(|(name, parent)| Group {
            name: (*name).to_owned(),
            parent: parent.map(str::to_owned),
            members: match admin {
                Some(id) if *name == ADMINS_GROUP => vec![id.to_owned()],
                _ => Vec::new(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(groups: &[Group]) -> Vec<&str> {
        groups.iter().map(|g| g.name.as_str()).collect()
    }

    #[test]
    fn changes_edit_the_groups_and_refuse_what_cannot_be() {
        let mut groups = default_groups(Some("u1"));
        let add = |group: &str, user: &str| AccessChange::AddMember {
            group: group.into(),
            user: user.into(),
        };
        AccessChange::CreateGroup {
            group: "ops".into(),
            parent: Some("WSUsers".into()),
        }
        .apply(&mut groups)
        .expect("created");
        add("ops", "u2").apply(&mut groups).expect("added");
        add("ops", "u2").apply(&mut groups).expect("idempotent");
        assert_eq!(groups[3].members, ["u2"]);
        let cycle = AccessChange::SetGroupParent {
            group: "WSUsers".into(),
            parent: Some("ops".into()),
        };
        assert!(matches!(
            cycle.apply(&mut groups),
            Err(ActionError::Refused(_))
        ));
        let last = AccessChange::RemoveMember {
            group: ADMINS_GROUP.into(),
            user: "u1".into(),
        };
        assert!(matches!(
            last.apply(&mut groups),
            Err(ActionError::Refused(_))
        ));
        let delete = |group: &str| AccessChange::DeleteGroup {
            group: group.into(),
        };
        assert!(matches!(
            delete("WSUsers").apply(&mut groups),
            Err(ActionError::Refused(_))
        ));
        delete("ops").apply(&mut groups).expect("deleted");
        delete("WSUsers").apply(&mut groups).expect("deleted");
        assert_eq!(names(&groups), ["WorkspaceMembers", "WSAdmins"]);
    }

    #[test]
    fn the_migration_writes_only_where_git_has_no_groups() {
        let from_sql = default_groups(Some("u9"));
        let mut empty = Vec::new();
        let migrate = AccessChange::Migrate {
            groups: from_sql.clone(),
        };
        migrate.apply(&mut empty).expect("applies");
        assert_eq!(empty, from_sql);
        let mut in_git = default_groups(Some("u1"));
        migrate.apply(&mut in_git).expect("applies");
        assert_eq!(in_git, default_groups(Some("u1")), "Git wins");
    }
}
