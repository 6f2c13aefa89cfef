//! Authorization inside a workspace: the Kubernetes RBAC the compiler renders from the intent,
//! evaluated here for a caller's groups, so the API allows exactly what the vCluster would.
//!
//! Pure: no IO, no clock. Callers give it the workspace's intent and the caller's groups
//! flattened through the hierarchy ([`flatten`]); it answers whether a verb on a resource in
//! a namespace is allowed ([`Permissions::allowed`]) and whether a set of rules may be
//! granted by someone ([`uncovered`], the escalation rule).
//!
//! The preset ClusterRoles' rules and the default bindings are read from what the compiler
//! renders for a sample workspace ([`Presets::builtin`]), so they cannot disagree with the
//! templates. The viewer role renders as an aggregation of Kubernetes' own `view` role; its
//! rules are those of the upstream bootstrap policy ([`KUBERNETES_VIEW`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use compiler::intent::{ClusterRoleBinding, PolicyRule, PresetClusterRole, WorkspaceIntent};
use serde::Deserialize;

/// The read verbs of Kubernetes' bootstrap policy.
const READ: &[&str] = &["get", "list", "watch"];

/// Kubernetes' `view` ClusterRole (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), which
/// `hexabase:workspace-viewer` aggregates: (API group, resources), each with get, list, watch.
pub const KUBERNETES_VIEW: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "configmaps",
        ],
    ),
    (
        "",
        &[
            "limitranges",
            "resourcequotas",
            "bindings",
            "events",
            "pods/status",
            "resourcequotas/status",
            "namespaces/status",
            "replicationcontrollers/status",
            "pods/log",
        ],
    ),
    ("", &["namespaces"]),
    ("discovery.k8s.io", &["endpointslices"]),
    (
        "apps",
        &[
            "controllerrevisions",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
        ],
    ),
    (
        "autoscaling",
        &[
            "horizontalpodautoscalers",
            "horizontalpodautoscalers/status",
        ],
    ),
    (
        "batch",
        &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
    ),
    (
        "extensions",
        &[
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "ingresses",
            "ingresses/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "replicationcontrollers/scale",
            "networkpolicies",
        ],
    ),
    (
        "policy",
        &["poddisruptionbudgets", "poddisruptionbudgets/status"],
    ),
    (
        "networking.k8s.io",
        &["ingresses", "ingresses/status", "networkpolicies"],
    ),
];

/// The preset ClusterRoles and the bindings every workspace gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presets {
    /// Rules of `hexabase:workspace-admin`.
    pub admin: Vec<PolicyRule>,
    /// Rules of `hexabase:workspace-viewer`.
    pub viewer: Vec<PolicyRule>,
    /// ClusterRoleBindings every workspace has whatever its intent says (groups unprefixed).
    pub default_bindings: Vec<ClusterRoleBinding>,
}

/// Why the presets could not be read from the rendered templates (a bug in the templates or
/// here, found by the unit tests).
#[derive(Debug, thiserror::Error)]
pub enum PresetsError {
    /// The compiler failed on the sample.
    #[error("failed to compile the sample workspace")]
    Compile(#[source] compiler::Error),
    /// The sample did not compile cleanly or rendered no RBAC file.
    #[error("the sample workspace rendered no RBAC: {0}")]
    Missing(String),
    /// The rendered RBAC is not the YAML expected.
    #[error("failed to read the rendered RBAC")]
    Parse(#[source] serde_saphyr::Error),
}

const SAMPLE_PLATFORM: &str = include_str!("../../../gitops-repo-example/intent/platform.yaml");
const SAMPLE_ORG: &str =
    "apiVersion: hexabase.ai/v1alpha1\nkind: Organization\nmetadata:\n  name: sample\nspec: {}\n";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rendered {
    kind: String,
    metadata: RenderedMeta,
    #[serde(default)]
    rules: Vec<RenderedRule>,
    #[serde(default)]
    aggregation_rule: Option<serde_json::Value>,
    #[serde(default)]
    role_ref: Option<RenderedMeta>,
    #[serde(default)]
    subjects: Vec<RenderedMeta>,
}

#[derive(Deserialize)]
struct RenderedMeta {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenderedRule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

impl Presets {
    /// The presets as the built-in templates render them (read once).
    pub fn builtin() -> &'static Presets {
        static PRESETS: OnceLock<Presets> = OnceLock::new();
        PRESETS.get_or_init(|| {
            Self::render().expect("the built-in templates render the preset roles (unit-tested)")
        })
    }

    /// Renders a sample workspace with the built-in templates and reads the preset roles
    /// and the default bindings from it.
    pub fn render() -> Result<Self, PresetsError> {
        let compiler = compiler::Compiler::new(&compiler::Catalog::builtin())
            .map_err(PresetsError::Compile)?;
        let files: compiler::IntentFiles = [
            ("platform.yaml".to_owned(), SAMPLE_PLATFORM.to_owned()),
            ("sample/organization.yaml".to_owned(), SAMPLE_ORG.to_owned()),
            ("sample/ws/workspace.yaml".to_owned(), sample_workspace()),
        ]
        .into();
        let output = compiler
            .compile_files(&files, &compiler::Options::default())
            .map_err(PresetsError::Compile)?;
        if output.has_errors() {
            return Err(PresetsError::Missing(format!("{:?}", output.diagnostics)));
        }
        let rbac = output
            .files
            .iter()
            .find(|(path, _)| path.ends_with("/sample/ws/inside/rbac.yaml"))
            .map(|(_, text)| text)
            .ok_or_else(|| PresetsError::Missing("no inside/rbac.yaml".to_owned()))?;
        let documents: Vec<Rendered> =
            serde_saphyr::from_multiple(rbac).map_err(PresetsError::Parse)?;
        let (intent, _) = compiler::intent::load(&files);
        let prefix = intent
            .platform
            .as_ref()
            .map(|p| p.spec.oidc.groups_prefix.clone())
            .unwrap_or_default();
        let mut presets = Presets {
            admin: Vec::new(),
            viewer: Vec::new(),
            default_bindings: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        for doc in documents {
            match doc.kind.as_str() {
                "ClusterRole" => {
                    let Some(role) = preset_named(&doc.metadata.name) else {
                        return Err(PresetsError::Missing(format!(
                            "unknown ClusterRole {}",
                            doc.metadata.name
                        )));
                    };
                    seen.insert(role);
                    let mut rules: Vec<PolicyRule> = doc
                        .rules
                        .into_iter()
                        // Non-resource URLs (`/healthz`) are nothing the API serves.
                        .filter(|r| !r.resources.is_empty())
                        .map(|r| PolicyRule {
                            api_groups: r.api_groups,
                            resources: r.resources,
                            verbs: r.verbs,
                            resource_names: r.resource_names,
                        })
                        .collect();
                    if doc.aggregation_rule.is_some() {
                        rules.extend(kubernetes_view());
                    }
                    match role {
                        PresetClusterRole::WorkspaceAdmin => presets.admin = rules,
                        PresetClusterRole::WorkspaceViewer => presets.viewer = rules,
                    }
                }
                "ClusterRoleBinding" => {
                    let role = doc
                        .role_ref
                        .as_ref()
                        .and_then(|r| preset_named(&r.name))
                        .ok_or_else(|| {
                            PresetsError::Missing("a binding of an unknown role".to_owned())
                        })?;
                    for subject in doc.subjects {
                        let group = subject
                            .name
                            .strip_prefix(&prefix)
                            .unwrap_or(&subject.name)
                            .to_owned();
                        presets.default_bindings.push(ClusterRoleBinding {
                            group,
                            cluster_role: role,
                        });
                    }
                }
                other => {
                    return Err(PresetsError::Missing(format!("unexpected kind {other}")));
                }
            }
        }
        if seen.len() != 2 {
            return Err(PresetsError::Missing("both preset roles".to_owned()));
        }
        Ok(presets)
    }

    /// The rules of a preset ClusterRole.
    pub fn rules(&self, role: PresetClusterRole) -> &[PolicyRule] {
        match role {
            PresetClusterRole::WorkspaceAdmin => &self.admin,
            PresetClusterRole::WorkspaceViewer => &self.viewer,
        }
    }
}

/// A workspace on the sample platform's first plan and cluster, with no bindings of its own.
fn sample_workspace() -> String {
    let (intent, _) =
        compiler::intent::load(&[("platform.yaml".to_owned(), SAMPLE_PLATFORM.to_owned())].into());
    let (plan, cluster) = intent
        .platform
        .as_ref()
        .map(|p| {
            (
                p.spec
                    .plans
                    .first()
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
                p.spec
                    .clusters
                    .first()
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: hexabase.ai/v1alpha1\nkind: Workspace\nmetadata:\n  name: ws\nspec:\n  plan: {plan}\n  cluster: {cluster}\n"
    )
}

fn preset_named(name: &str) -> Option<PresetClusterRole> {
    [
        PresetClusterRole::WorkspaceAdmin,
        PresetClusterRole::WorkspaceViewer,
    ]
    .into_iter()
    .find(|r| r.as_str() == name)
}

fn kubernetes_view() -> impl Iterator<Item = PolicyRule> {
    KUBERNETES_VIEW.iter().map(|(group, resources)| PolicyRule {
        api_groups: vec![(*group).to_owned()],
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        verbs: READ.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: Vec::new(),
    })
}

/// One request RBAC decides on: a verb on a resource of an API group, optionally one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The verb (`create`).
    pub verb: &'a str,
    /// The API group (`""` for core, `batch`).
    pub api_group: &'a str,
    /// The resource, with `/subresource` if any.
    pub resource: &'a str,
    /// The object's name, when the request is about one.
    pub name: Option<&'a str>,
}

fn matches(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == "*" || v == wanted)
}

fn resource_matches(resources: &[String], wanted: &str) -> bool {
    resources.iter().any(|r| {
        r == "*"
            || r == wanted
            // `*/scale` matches the scale subresource of every resource.
            || r.strip_prefix("*/").is_some_and(|sub| {
                wanted.split_once('/').is_some_and(|(_, s)| s == sub)
            })
    })
}

/// Whether `rule` allows `request` (Kubernetes' `RuleAllows`).
pub fn rule_allows(rule: &PolicyRule, request: &Request<'_>) -> bool {
    matches(&rule.verbs, request.verb)
        && matches(&rule.api_groups, request.api_group)
        && resource_matches(&rule.resources, request.resource)
        && (rule.resource_names.is_empty()
            || request
                .name
                .is_some_and(|n| rule.resource_names.iter().any(|x| x == n)))
}

/// Whether any of `rules` allows `request`.
pub fn allows(rules: &[PolicyRule], request: &Request<'_>) -> bool {
    rules.iter().any(|r| rule_allows(r, request))
}

/// Whether `owner` covers `rule`: every request `rule` allows, `owner` allows too (Kubernetes'
/// `validation.Covers`, which breaks the rule into one verb, group, resource and name each;
/// a `*` in `rule` is covered only by a `*` in `owner`).
pub fn covers(owner: &[PolicyRule], rule: &PolicyRule) -> bool {
    let names: Vec<Option<&str>> = if rule.resource_names.is_empty() {
        vec![None]
    } else {
        rule.resource_names
            .iter()
            .map(|n| Some(n.as_str()))
            .collect()
    };
    rule.verbs.iter().all(|verb| {
        rule.api_groups.iter().all(|group| {
            rule.resources.iter().all(|resource| {
                names.iter().all(|name| {
                    owner.iter().any(|o| {
                        matches(&o.verbs, verb)
                            && matches(&o.api_groups, group)
                            && resource_matches(&o.resources, resource)
                            && match name {
                                None => o.resource_names.is_empty(),
                                Some(n) => {
                                    o.resource_names.is_empty()
                                        || o.resource_names.iter().any(|x| x == n)
                                }
                            }
                    })
                })
            })
        })
    })
}

/// The indexes of the rules in `rules` that `owner` does not cover (the escalation rule: a
/// user may grant only what they hold); empty when they may grant all of them.
pub fn uncovered(owner: &[PolicyRule], rules: &[PolicyRule]) -> Vec<usize> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| !covers(owner, r))
        .map(|(i, _)| i)
        .collect()
}

/// The groups of `direct`, with every ancestor in the hierarchy `groups` (name → parent).
/// A cycle (only hand edits to the database could make one) ends the walk, never loops.
pub fn flatten(groups: &BTreeMap<String, Option<String>>, direct: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for group in direct {
        let mut at = Some(group.as_str());
        while let Some(current) = at {
            if !out.insert(current.to_owned()) {
                break;
            }
            at = groups.get(current).and_then(|p| p.as_deref());
        }
    }
    out
}

/// What one caller may do in one workspace: rules everywhere (ClusterRoleBindings) and rules
/// per project namespace (RoleBindings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Rules bound to the caller's groups workspace-wide.
    pub cluster: Vec<PolicyRule>,
    /// Rules bound to the caller's groups in one project, by project.
    pub namespaced: BTreeMap<String, Vec<PolicyRule>>,
}

impl Permissions {
    /// The permissions that the RBAC rendered from `ws` gives to a member of `groups`.
    pub fn of(ws: &WorkspaceIntent, groups: &BTreeSet<String>, presets: &Presets) -> Self {
        let mut permissions = Self::default();
        let Some(workspace) = &ws.workspace else {
            return permissions;
        };
        let mut bound = BTreeSet::new();
        for binding in presets
            .default_bindings
            .iter()
            .chain(&workspace.spec.cluster_role_bindings)
        {
            if groups.contains(&binding.group) && bound.insert(binding.cluster_role) {
                permissions
                    .cluster
                    .extend_from_slice(presets.rules(binding.cluster_role));
            }
        }
        for (name, project) in &ws.projects {
            let project = project.project();
            let mut rules = Vec::new();
            for binding in &project.spec.role_bindings {
                if !groups.contains(&binding.group) {
                    continue;
                }
                if let Some(role) = binding.cluster_role {
                    rules.extend_from_slice(presets.rules(role));
                }
                if let Some(role) = &binding.role
                    && let Some(role) = project.spec.roles.iter().find(|r| r.name == *role)
                {
                    rules.extend(role.rules.iter().cloned());
                }
            }
            if !rules.is_empty() {
                permissions.namespaced.insert(name.clone(), rules);
            }
        }
        permissions
    }

    /// Every rule that applies in `namespace`: the workspace-wide ones and the project's.
    pub fn rules_in(&self, namespace: &str) -> Vec<PolicyRule> {
        let mut rules = self.cluster.clone();
        if let Some(local) = self.namespaced.get(namespace) {
            rules.extend(local.iter().cloned());
        }
        rules
    }

    /// Whether `verb` on `resource` of `api_group` is allowed in `namespace` (`None`:
    /// workspace-wide, where only ClusterRoleBindings count).
    pub fn allowed(
        &self,
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> bool {
        let request = Request {
            verb,
            api_group,
            resource,
            name: None,
        };
        allows(&self.cluster, &request)
            || namespace
                .and_then(|ns| self.namespaced.get(ns))
                .is_some_and(|rules| allows(rules, &request))
    }

    /// Whether the caller holds `hexabase:workspace-admin` workspace-wide: every rule of it
    /// is covered by their workspace-wide rules.
    pub fn is_workspace_admin(&self, presets: &Presets) -> bool {
        !presets.admin.is_empty() && presets.admin.iter().all(|r| covers(&self.cluster, r))
    }
}

#[cfg(test)]
mod tests {
    use compiler::intent::{
        API_VERSION, Metadata, Project, ProjectFile, ProjectSpec, Role, RoleBinding, Workspace,
        WorkspaceSpec,
    };
    use proptest::prelude::*;

    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
            resource_names: Vec::new(),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn workspace(
        bindings: Vec<ClusterRoleBinding>,
        projects: Vec<(&str, ProjectSpec)>,
    ) -> WorkspaceIntent {
        WorkspaceIntent {
            workspace: Some(Workspace {
                api_version: API_VERSION.into(),
                kind: "Workspace".into(),
                metadata: Metadata {
                    name: "dev".into(),
                    labels: BTreeMap::new(),
                },
                spec: WorkspaceSpec {
                    display_name: None,
                    plan: "p".into(),
                    cluster: "c".into(),
                    cluster_role_bindings: bindings,
                    dedicated_nodes: None,
                    groups: Vec::new(),
                },
            }),
            projects: projects
                .into_iter()
                .map(|(name, spec)| {
                    (
                        name.to_owned(),
                        ProjectFile::new(&Project {
                            api_version: API_VERSION.into(),
                            kind: "Project".into(),
                            metadata: Metadata {
                                name: name.into(),
                                labels: BTreeMap::new(),
                            },
                            spec,
                        }),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_presets_are_read_from_the_rendered_templates() {
        let presets = Presets::render().expect("renders");
        assert_eq!(presets.admin, vec![rule(&["*"], &["*"], &["*"])]);
        assert!(covers(
            &presets.viewer,
            &rule(&["batch"], &["cronjobs"], &["list"])
        ));
        assert!(!covers(
            &presets.viewer,
            &rule(&[""], &["secrets"], &["get"])
        ));
        assert!(!covers(
            &presets.viewer,
            &rule(&["batch"], &["cronjobs"], &["create"])
        ));
        assert_eq!(
            presets.default_bindings,
            vec![ClusterRoleBinding {
                group: "WSAdmins".into(),
                cluster_role: PresetClusterRole::WorkspaceAdmin,
            }]
        );
    }

    #[test]
    fn a_star_is_covered_only_by_a_star() {
        let owner = [rule(
            &["batch"],
            &["cronjobs", "jobs"],
            &["get", "list", "create"],
        )];
        assert!(covers(
            &owner,
            &rule(&["batch"], &["cronjobs"], &["get", "create"])
        ));
        assert!(!covers(&owner, &rule(&["batch"], &["cronjobs"], &["*"])));
        assert!(!covers(&owner, &rule(&["*"], &["cronjobs"], &["get"])));
        assert!(!covers(
            &owner,
            &rule(&["batch"], &["cronjobs"], &["delete"])
        ));
        assert!(covers(
            &[rule(&["*"], &["*"], &["*"])],
            &rule(&["*"], &["*"], &["*"])
        ));
    }

    #[test]
    fn resource_names_narrow_what_a_rule_covers() {
        let mut narrow = rule(&[""], &["configmaps"], &["get"]);
        narrow.resource_names = vec!["a".into()];
        let broad = rule(&[""], &["configmaps"], &["get"]);
        assert!(covers(std::slice::from_ref(&broad), &narrow));
        assert!(!covers(std::slice::from_ref(&narrow), &broad));
        let mut two = narrow.clone();
        two.resource_names.push("b".into());
        assert!(!covers(&[narrow], &two));
    }

    #[test]
    fn a_subresource_star_matches_every_resource() {
        let owner = [rule(&["apps"], &["*/scale"], &["update"])];
        assert!(covers(
            &owner,
            &rule(&["apps"], &["deployments/scale"], &["update"])
        ));
        assert!(!covers(
            &owner,
            &rule(&["apps"], &["deployments"], &["update"])
        ));
    }

    #[test]
    fn groups_are_flattened_through_the_hierarchy() {
        let hierarchy: BTreeMap<String, Option<String>> = [
            ("WorkspaceMembers".to_owned(), None),
            ("WSAdmins".to_owned(), Some("WorkspaceMembers".to_owned())),
            ("ops".to_owned(), Some("WSAdmins".to_owned())),
            ("loop-a".to_owned(), Some("loop-b".to_owned())),
            ("loop-b".to_owned(), Some("loop-a".to_owned())),
        ]
        .into();
        assert_eq!(
            flatten(&hierarchy, &["ops".to_owned()]),
            set(&["WorkspaceMembers", "WSAdmins", "ops"])
        );
        assert_eq!(
            flatten(&hierarchy, &["loop-a".to_owned()]),
            set(&["loop-a", "loop-b"])
        );
        assert!(flatten(&hierarchy, &[]).is_empty());
    }

    #[test]
    fn admins_hold_everything_and_members_only_what_is_bound() {
        let presets = Presets::builtin();
        let dev_role = Role {
            name: "jobs".into(),
            rules: vec![rule(&["batch"], &["cronjobs"], &["create", "list"])],
        };
        let ws = workspace(
            vec![ClusterRoleBinding {
                group: "WorkspaceMembers".into(),
                cluster_role: PresetClusterRole::WorkspaceViewer,
            }],
            vec![(
                "web",
                ProjectSpec {
                    roles: vec![dev_role],
                    role_bindings: vec![RoleBinding {
                        group: "WSUsers".into(),
                        role: Some("jobs".into()),
                        cluster_role: None,
                    }],
                    ..ProjectSpec::default()
                },
            )],
        );
        let admin = Permissions::of(&ws, &set(&["WSAdmins", "WorkspaceMembers"]), presets);
        assert!(admin.is_workspace_admin(presets));
        assert!(admin.allowed("delete", "batch", "cronjobs", Some("web")));

        let user = Permissions::of(&ws, &set(&["WSUsers", "WorkspaceMembers"]), presets);
        assert!(!user.is_workspace_admin(presets));
        assert!(user.allowed("create", "batch", "cronjobs", Some("web")));
        assert!(!user.allowed("create", "batch", "cronjobs", Some("api")));
        assert!(!user.allowed("delete", "batch", "cronjobs", Some("web")));
        assert!(
            user.allowed("list", "batch", "cronjobs", Some("api")),
            "the viewer binding"
        );
        assert!(!user.allowed("get", "", "secrets", Some("web")));

        let outsider = Permissions::of(&ws, &BTreeSet::new(), presets);
        assert_eq!(outsider, Permissions::default());
    }

    #[test]
    fn a_workspace_without_its_document_grants_nothing() {
        let ws = WorkspaceIntent {
            workspace: None,
            projects: BTreeMap::new(),
        };
        let p = Permissions::of(&ws, &set(&["WSAdmins"]), Presets::builtin());
        assert!(!p.is_workspace_admin(Presets::builtin()));
    }

    const VERBS: &[&str] = &["get", "list", "create", "update", "delete", "*"];
    const GROUPS: &[&str] = &["", "batch", "apps", "*"];
    const RESOURCES: &[&str] = &[
        "pods",
        "cronjobs",
        "deployments",
        "deployments/scale",
        "*/scale",
        "*",
    ];
    const NAMES: &[&str] = &["a", "b"];

    fn pick(from: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(from.to_vec(), 1..=from.len().min(3))
            .prop_map(|v| v.into_iter().map(str::to_owned).collect())
    }

    fn arb_rule() -> impl Strategy<Value = PolicyRule> {
        (
            pick(GROUPS),
            pick(RESOURCES),
            pick(VERBS),
            proptest::sample::subsequence(NAMES.to_vec(), 0..=2),
        )
            .prop_map(|(api_groups, resources, verbs, names)| PolicyRule {
                api_groups,
                resources,
                verbs,
                resource_names: names.into_iter().map(str::to_owned).collect(),
            })
    }

    /// Every concrete request of the sample universe (no wildcards: what a client asks).
    fn requests() -> Vec<(String, String, String, Option<String>)> {
        let mut out = Vec::new();
        for verb in VERBS.iter().filter(|v| **v != "*") {
            for group in GROUPS.iter().filter(|g| **g != "*") {
                for resource in RESOURCES.iter().filter(|r| !r.contains('*')) {
                    for name in [None, Some("a"), Some("b"), Some("c")] {
                        out.push((
                            (*verb).to_owned(),
                            (*group).to_owned(),
                            (*resource).to_owned(),
                            name.map(str::to_owned),
                        ));
                    }
                }
            }
        }
        out
    }

    /// What one value of an owner's rule lets a narrower rule name: itself, and every value
    /// of `universe` it matches (a `*` matches all of them, `*/scale` every scale
    /// subresource).
    fn narrower(value: &str, universe: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = universe
            .iter()
            .filter(|u| {
                value == "*"
                    || **u == value
                    || value
                        .strip_prefix("*/")
                        .is_some_and(|sub| u.split_once('/').is_some_and(|(_, s)| s == sub))
            })
            .map(|u| (*u).to_owned())
            .collect();
        if !out.iter().any(|v| v == value) {
            out.push(value.to_owned());
        }
        out
    }

    /// A non-empty subset (at most three) of what `values` let a narrower rule name.
    fn narrow_list(values: &[String], universe: &[&str]) -> BoxedStrategy<Vec<String>> {
        let mut choices: Vec<String> = values.iter().flat_map(|v| narrower(v, universe)).collect();
        choices.sort();
        choices.dedup();
        let most = choices.len().min(3);
        proptest::sample::subsequence(choices, 1..=most).boxed()
    }

    /// A rule that allows nothing `rule` does not: each of its lists a subset of what the
    /// rule's matches, and its resource names a non-empty subset of the rule's (any names,
    /// or none, when the rule names none).
    fn narrow(rule: &PolicyRule) -> BoxedStrategy<PolicyRule> {
        let names = if rule.resource_names.is_empty() {
            proptest::sample::subsequence(
                NAMES.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
                0..=2,
            )
            .boxed()
        } else {
            let held = rule.resource_names.clone();
            let most = held.len();
            proptest::sample::subsequence(held, 1..=most).boxed()
        };
        (
            narrow_list(&rule.api_groups, GROUPS),
            narrow_list(&rule.resources, RESOURCES),
            narrow_list(&rule.verbs, VERBS),
            names,
        )
            .prop_map(
                |(api_groups, resources, verbs, resource_names)| PolicyRule {
                    api_groups,
                    resources,
                    verbs,
                    resource_names,
                },
            )
            .boxed()
    }

    /// `rule` made wider in one way: one more verb, API group or resource (which may or may
    /// not be one it had), or its resource names dropped.
    fn widen(rule: &PolicyRule) -> BoxedStrategy<PolicyRule> {
        let (verb, group, resource, all) = (rule.clone(), rule.clone(), rule.clone(), rule.clone());
        prop_oneof![
            proptest::sample::select(VERBS).prop_map(move |v| {
                let mut r = verb.clone();
                r.verbs.push(v.to_owned());
                r
            }),
            proptest::sample::select(GROUPS).prop_map(move |g| {
                let mut r = group.clone();
                r.api_groups.push(g.to_owned());
                r
            }),
            proptest::sample::select(RESOURCES).prop_map(move |x| {
                let mut r = resource.clone();
                r.resources.push(x.to_owned());
                r
            }),
            Just(PolicyRule {
                resource_names: Vec::new(),
                ..all
            }),
        ]
        .boxed()
    }

    /// An owner and a role made of narrowings of the owner's rules (so covered by
    /// construction), half the time with one rule then widened (so just beside what the
    /// owner holds, or still inside it), and whether it was widened.
    fn owner_and_role() -> impl Strategy<Value = (Vec<PolicyRule>, Vec<PolicyRule>, bool)> {
        proptest::collection::vec(arb_rule(), 1..4)
            .prop_flat_map(|owner| {
                let role = proptest::collection::vec(
                    proptest::sample::select(owner.clone()).prop_flat_map(|r| narrow(&r)),
                    1..4,
                );
                (
                    Just(owner),
                    role,
                    any::<bool>(),
                    any::<proptest::sample::Index>(),
                )
            })
            .prop_flat_map(|(owner, role, widened, index)| {
                if !widened {
                    return Just((owner, role, false)).boxed();
                }
                let i = index.index(role.len());
                widen(&role[i])
                    .prop_map(move |wider| {
                        let mut role = role.clone();
                        role[i] = wider;
                        (owner.clone(), role, true)
                    })
                    .boxed()
            })
    }

    proptest! {
        /// The escalation rule: a role made only of narrowings of its creator's rules passes
        /// the check (it is not stricter than Kubernetes'); a role that passes, narrowed or
        /// widened, never allows a request its creator could not make; a role made of the
        /// creator's own rules passes.
        #[test]
        fn a_role_that_passes_the_escalation_check_grants_nothing_more(
            (owner, role, widened) in owner_and_role(),
        ) {
            let passes = uncovered(&owner, &role).is_empty();
            prop_assert!(passes || widened, "{role:?} narrows {owner:?} but is refused");
            if passes {
                for (verb, group, resource, name) in requests() {
                    let request = Request {
                        verb: &verb,
                        api_group: &group,
                        resource: &resource,
                        name: name.as_deref(),
                    };
                    prop_assert!(
                        !allows(&role, &request) || allows(&owner, &request),
                        "{request:?} is allowed by the role but not its creator"
                    );
                }
            }
            prop_assert!(uncovered(&owner, &owner).is_empty());
        }

        /// A role that allows a concrete request its creator cannot make is refused.
        #[test]
        fn a_role_granting_more_than_its_creator_holds_is_refused(
            owner in proptest::collection::vec(arb_rule(), 0..4),
            role in proptest::collection::vec(arb_rule(), 1..4),
        ) {
            let escalates = requests().iter().any(|(verb, group, resource, name)| {
                let request = Request {
                    verb,
                    api_group: group,
                    resource,
                    name: name.as_deref(),
                };
                allows(&role, &request) && !allows(&owner, &request)
            });
            if escalates {
                prop_assert!(!uncovered(&owner, &role).is_empty());
            }
        }
    }
}
