//! Who may access a workspace: its groups, their nesting and their members, as the intent
//! holds them (`spec.groups` of `workspace.yaml`). Nothing renders from membership; the
//! server's SQL index and its OIDC issuer read it. See docs/access-in-git.md.

use std::collections::{BTreeMap, BTreeSet};

use super::check;
use crate::diagnostic::Sink;
use crate::intent::Group;

/// Longest user id accepted: the server's are UUIDs (36 characters).
const USER_ID_MAX: usize = 64;

/// Whether `name` may name a workspace group (what goes into the `groups` claim after the
/// platform's prefix): the one rule for the intent, the API and the CLI.
pub fn check_group_name(name: &str) -> Result<(), String> {
    check::group_name(name)
}

/// Whether `id` is a well-formed opaque user id: 1 to 64 ASCII letters, digits, `-` or
/// `_`. An email or a display name is never one (they have `@`, spaces or dots).
pub fn check_user_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= USER_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "must be a user id (1 to {USER_ID_MAX} letters, digits, '-' or '_'), never an email or a name"
        ))
    }
}

/// Checks `spec.groups`: names well-formed and unique, parents that exist, no cycle in the
/// nesting, member ids well-formed and not repeated in a group.
pub(crate) fn groups(sink: &mut Sink<'_>, groups: &[Group]) {
    let mut seen = BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        let path = format!("spec.groups[{i}]");
        if let Err(e) = check_group_name(&g.name) {
            sink.error(format!("{path}.name"), e);
        } else if !seen.insert(g.name.as_str()) {
            sink.error(
                format!("{path}.name"),
                format!("duplicate group {:?}", g.name),
            );
        }
        let mut members = BTreeSet::new();
        for (j, m) in g.members.iter().enumerate() {
            if let Err(e) = check_user_id(m) {
                sink.error(format!("{path}.members[{j}]"), e);
            } else if !members.insert(m.as_str()) {
                sink.error(format!("{path}.members[{j}]"), "listed twice in this group");
            }
        }
    }
    // The first group of a name counts (a later one is reported as a duplicate).
    let mut parents: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for g in groups {
        parents
            .entry(g.name.as_str())
            .or_insert(g.parent.as_deref());
    }
    for (i, g) in groups.iter().enumerate() {
        let Some(parent) = g.parent.as_deref() else {
            continue;
        };
        let path = format!("spec.groups[{i}].parent");
        if !parents.contains_key(parent) {
            sink.error(path, format!("no group {parent:?} in this workspace"));
            continue;
        }
        // Walk up from the parent; reaching the group again is a cycle.
        let mut at = Some(parent);
        let mut steps = 0;
        while let Some(name) = at {
            if name == g.name || steps > groups.len() {
                sink.error(
                    path,
                    format!(
                        "group {:?} would be inside itself, which makes a cycle",
                        g.name
                    ),
                );
                break;
            }
            at = parents.get(name).copied().flatten();
            steps += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Diagnostic;

    fn group(name: &str, parent: Option<&str>, members: &[&str]) -> Group {
        Group {
            name: name.into(),
            parent: parent.map(str::to_owned),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn paths(list: &[Group]) -> Vec<String> {
        let mut out: Vec<Diagnostic> = Vec::new();
        groups(
            &mut Sink {
                file: "w.yaml",
                out: &mut out,
            },
            list,
        );
        out.into_iter().map(|d| d.path).collect()
    }

    #[test]
    fn the_default_groups_pass() {
        let ok = [
            group("WorkspaceMembers", None, &[]),
            group(
                "WSAdmins",
                Some("WorkspaceMembers"),
                &["0190d0a8-7c1e-7b1a-9f2e-1c2d3e4f5a6b"],
            ),
            group("WSUsers", Some("WorkspaceMembers"), &[]),
        ];
        assert!(paths(&ok).is_empty());
    }

    #[test]
    fn bad_names_parents_cycles_and_ids_name_their_field() {
        let bad = [
            group("a", Some("b"), &["ana@example.com", "u1", "u1"]),
            group("b", Some("a"), &["Ana Lee"]),
            group("a", Some("missing"), &[]),
            group("-x", None, &[]),
        ];
        assert_eq!(
            paths(&bad),
            [
                "spec.groups[0].members[0]",
                "spec.groups[0].members[2]",
                "spec.groups[1].members[0]",
                "spec.groups[2].name",
                "spec.groups[3].name",
                "spec.groups[0].parent",
                "spec.groups[1].parent",
                "spec.groups[2].parent",
            ]
        );
    }
}
