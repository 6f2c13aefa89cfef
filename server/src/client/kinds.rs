//! What `hb get|create|delete` can name: each kind maps to its API collection path, the
//! scope it lives in (organization, workspace, project, group), the body field its name
//! goes to, and the columns of its table.

use std::fmt::Write as _;

/// The scope flags a kind's paths need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Top level.
    Root,
    /// `--org`.
    Org,
    /// `--org --workspace`.
    Workspace,
    /// `--org --workspace --project`.
    Project,
    /// `--org --workspace --group`.
    Group,
}

/// One kind of thing the CLI manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Its plural name, as printed.
    pub plural: &'static str,
    /// Every name it is known by on the command line.
    pub aliases: &'static [&'static str],
    /// Where it lives.
    pub scope: Scope,
    /// Its collection under the scope's path.
    pub collection: &'static str,
    /// The field of a create request that carries the name.
    pub name_field: &'static str,
    /// The columns of the table, as JSON keys of the listed objects.
    pub columns: &'static [&'static str],
    /// How `hb apply` and `hb edit` change one.
    pub update: Update,
    /// The keys of what `GET` answers that `PUT` takes back (`hb edit`); all when empty.
    pub editable: &'static [&'static str],
}

/// How `hb apply` and `hb edit` change a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// They cannot: the API has no update for it.
    None,
    /// `PUT <collection>/<name>`.
    Item,
    /// `PUT <collection>/<name>/<suffix>` (a workspace's `plan`).
    Sub(&'static str),
    /// `PUT <collection>`: the collection is one object (the platform, a project's quota).
    Object,
}

/// Every kind.
pub const KINDS: &[Kind] = &[
    Kind {
        plural: "organizations",
        aliases: &["organizations", "organization", "orgs", "org"],
        scope: Scope::Root,
        collection: "orgs",
        name_field: "slug",
        columns: &["slug", "name", "role", "personal"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "workspaces",
        aliases: &["workspaces", "workspace", "ws"],
        scope: Scope::Org,
        collection: "workspaces",
        name_field: "name",
        columns: &["name", "plan", "cluster", "projects"],
        update: Update::Sub("plan"),
        editable: &["plan"],
    },
    Kind {
        plural: "projects",
        aliases: &["projects", "project", "proj"],
        scope: Scope::Workspace,
        collection: "projects",
        name_field: "name",
        columns: &["name", "displayName"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "groups",
        aliases: &["groups", "group"],
        scope: Scope::Workspace,
        collection: "groups",
        name_field: "name",
        columns: &["name", "parent"],
        update: Update::Item,
        editable: &["parent"],
    },
    Kind {
        plural: "members",
        aliases: &["members", "member"],
        scope: Scope::Org,
        collection: "members",
        name_field: "userId",
        columns: &["userId", "email", "name", "role"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "roles",
        aliases: &["roles", "role"],
        scope: Scope::Project,
        collection: "roles",
        name_field: "name",
        columns: &["name", "rules"],
        update: Update::Item,
        editable: &["rules"],
    },
    Kind {
        plural: "cronjobs",
        aliases: &["cronjobs", "cronjob", "cj"],
        scope: Scope::Project,
        collection: "cronjobs",
        name_field: "name",
        columns: &["name", "schedule", "image"],
        update: Update::Item,
        editable: &[],
    },
    Kind {
        plural: "functions",
        aliases: &["functions", "function", "fn"],
        scope: Scope::Project,
        collection: "functions",
        name_field: "name",
        columns: &["name", "image", "runtime"],
        update: Update::Item,
        editable: &[],
    },
    Kind {
        plural: "rolebindings",
        aliases: &["rolebindings", "rolebinding", "rb"],
        scope: Scope::Project,
        collection: "rolebindings",
        name_field: "group",
        columns: &["group", "role", "clusterRole"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "clusterrolebindings",
        aliases: &["clusterrolebindings", "clusterrolebinding", "crb"],
        scope: Scope::Workspace,
        collection: "clusterrolebindings",
        name_field: "group",
        columns: &["group", "clusterRole", "default"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "quotas",
        aliases: &["quotas", "quota"],
        scope: Scope::Project,
        collection: "quota",
        name_field: "",
        columns: &[],
        update: Update::Object,
        editable: &[],
    },
    Kind {
        plural: "invitations",
        aliases: &["invitations", "invitation", "invite"],
        scope: Scope::Org,
        collection: "invitations",
        name_field: "email",
        columns: &["email", "role", "token", "expiresAt"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "billing",
        aliases: &["billing"],
        scope: Scope::Org,
        collection: "billing",
        name_field: "",
        columns: &[],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "tokens",
        aliases: &["tokens", "token"],
        scope: Scope::Root,
        collection: "tokens",
        name_field: "name",
        columns: &["id", "name", "createdAt", "lastUsedAt"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "plans",
        aliases: &["plans", "plan"],
        scope: Scope::Root,
        collection: "plans",
        name_field: "name",
        columns: &[
            "name",
            "placement",
            "monitoring",
            "policies",
            "currency",
            "monthlyCents",
        ],
        update: Update::Item,
        editable: &[],
    },
    Kind {
        plural: "prices",
        aliases: &["prices", "price"],
        scope: Scope::Root,
        collection: "plans",
        name_field: "plan",
        columns: &["name", "currency", "monthlyCents"],
        update: Update::Sub("price"),
        editable: &[],
    },
    Kind {
        plural: "clusters",
        aliases: &["clusters", "cluster"],
        scope: Scope::Root,
        collection: "clusters",
        name_field: "name",
        columns: &["name", "apiServer", "domain", "kubernetesVersion"],
        update: Update::Item,
        editable: &[],
    },
    Kind {
        plural: "platform",
        aliases: &["platform", "platforms"],
        scope: Scope::Root,
        collection: "platform",
        name_field: "",
        columns: &[],
        update: Update::Object,
        editable: &["spec"],
    },
    Kind {
        plural: "issuer",
        aliases: &["issuer"],
        scope: Scope::Root,
        collection: "auth/issuer",
        name_field: "",
        columns: &[],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "me",
        aliases: &["me", "whoami"],
        scope: Scope::Root,
        collection: "me",
        name_field: "",
        columns: &["id", "email", "name", "isAdmin"],
        update: Update::None,
        editable: &[],
    },
    Kind {
        plural: "openapi",
        aliases: &["openapi"],
        scope: Scope::Root,
        collection: "openapi.json",
        name_field: "",
        columns: &[],
        update: Update::None,
        editable: &[],
    },
];

/// The kind `name` names (any alias, any case).
pub fn find(name: &str) -> Option<&'static Kind> {
    let name = name.to_ascii_lowercase();
    KINDS.iter().find(|k| k.aliases.contains(&name.as_str()))
}

/// The names every kind is known by, for error messages.
pub fn known() -> String {
    KINDS
        .iter()
        .map(|k| k.plural)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a command points: the scope flags given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// `--org`.
    pub org: Option<String>,
    /// `--workspace`.
    pub workspace: Option<String>,
    /// `--project`.
    pub project: Option<String>,
    /// `--group` (members of a workspace group instead of the organization's users).
    pub group: Option<String>,
}

/// A kind's collection path for `target` and the kind in effect (members with `--group`
/// are the group's), or what is wrong: a missing flag, a name that is not one segment.
pub fn collection_path(
    kind: &'static Kind,
    target: &Target,
) -> Result<(String, &'static Kind), String> {
    let kind = if kind.plural == GROUP_MEMBERS.plural && target.group.is_some() {
        &GROUP_MEMBERS
    } else {
        kind
    };
    let need = |value: &Option<String>, flag: &str| match value {
        Some(value) => segment(value).map_err(|e| format!("{flag}: {e}")),
        None => Err(format!("{} need {flag}", kind.plural)),
    };
    let mut path = "/api/v1".to_owned();
    if kind.scope != Scope::Root {
        path = format!("{path}/orgs/{}", need(&target.org, "--org")?);
    }
    if matches!(kind.scope, Scope::Workspace | Scope::Project | Scope::Group) {
        path = format!(
            "{path}/workspaces/{}",
            need(&target.workspace, "--workspace")?
        );
    }
    match kind.scope {
        Scope::Project => path = format!("{path}/projects/{}", need(&target.project, "--project")?),
        Scope::Group => path = format!("{path}/groups/{}", need(&target.group, "--group")?),
        Scope::Root | Scope::Org | Scope::Workspace => {}
    }
    Ok((format!("{path}/{}", kind.collection), kind))
}

/// Members of a workspace group (`--group`).
const GROUP_MEMBERS: Kind = Kind {
    plural: "members",
    aliases: &[],
    scope: Scope::Group,
    collection: "members",
    name_field: "user",
    columns: &["userId", "email", "name"],
    update: Update::None,
    editable: &[],
};

/// `value` as one path segment: percent-encodes everything but unreserved characters, so a
/// name can never add segments; refuses the names URL parsers treat as `.` and `..`.
pub fn segment(value: &str) -> Result<String, String> {
    if matches!(value, "" | "." | "..") {
        return Err(format!("{value:?} is not a name"));
    }
    Ok(encode(value))
}

/// `value` percent-encoded but for unreserved characters (RFC 3986), for a path segment or a
/// query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(org: &str, ws: &str, project: &str) -> Target {
        Target {
            org: Some(org.into()),
            workspace: Some(ws.into()),
            project: Some(project.into()),
            group: None,
        }
    }

    #[test]
    fn paths_follow_the_api() {
        let t = target("acme", "dev", "web");
        let path = |kind: &str, t: &Target| collection_path(find(kind).unwrap(), t).map(|p| p.0);
        assert_eq!(path("org", &t).unwrap(), "/api/v1/orgs");
        assert_eq!(path("ws", &t).unwrap(), "/api/v1/orgs/acme/workspaces");
        assert_eq!(
            path("projects", &t).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/projects"
        );
        assert_eq!(
            path("CronJob", &t).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/projects/web/cronjobs"
        );
        assert_eq!(
            path("functions", &t).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/projects/web/functions"
        );
        assert_eq!(
            path("role", &t).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/projects/web/roles"
        );
        assert_eq!(
            path("groups", &t).unwrap(),
            "/api/v1/orgs/acme/workspaces/dev/groups"
        );
        assert_eq!(path("members", &t).unwrap(), "/api/v1/orgs/acme/members");
        let grouped = Target {
            group: Some("WSAdmins".into()),
            ..t
        };
        let (members, kind) = collection_path(find("member").unwrap(), &grouped).unwrap();
        assert_eq!(
            members,
            "/api/v1/orgs/acme/workspaces/dev/groups/WSAdmins/members"
        );
        assert_eq!(kind.name_field, "user");
    }

    #[test]
    fn a_missing_scope_names_the_flag() {
        let none = Target::default();
        let error = collection_path(find("projects").unwrap(), &none).unwrap_err();
        assert_eq!(error, "projects need --org");
        let org_only = Target {
            org: Some("acme".into()),
            ..Target::default()
        };
        let error = collection_path(find("cronjobs").unwrap(), &org_only).unwrap_err();
        assert_eq!(error, "cronjobs need --workspace");
        assert!(find("pods").is_none());
    }

    #[test]
    fn names_cannot_leave_their_segment() {
        assert_eq!(segment("web-1_a.b~").unwrap(), "web-1_a.b~");
        assert_eq!(segment("../x").unwrap(), "..%2Fx");
        assert_eq!(segment("a b/c?d#e").unwrap(), "a%20b%2Fc%3Fd%23e");
        assert_eq!(segment("ana@example.com").unwrap(), "ana%40example.com");
        for bad in ["", ".", ".."] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
        let dots = Target {
            org: Some("..".into()),
            ..Target::default()
        };
        let error = collection_path(find("ws").unwrap(), &dots).unwrap_err();
        assert!(error.starts_with("--org: "), "{error}");
    }
}
