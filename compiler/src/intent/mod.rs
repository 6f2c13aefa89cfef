//! The intent format, `hexabase.ai/v1alpha1`: what people and the server write under `intent/`.
//!
//! These are wire types: serde + schemars, `deny_unknown_fields`, camelCase.
//! They say what the user wants, not whether it is valid; the compiler's plan step checks that.

mod load;

pub(crate) use load::parse_yaml;
pub use load::{IntentFiles, load, to_yaml};

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API version every intent document carries.
pub const API_VERSION: &str = "hexabase.ai/v1alpha1";

/// All intent, as loaded from one tree.
///
/// Organizations and workspaces sit behind [`Arc`], so cloning an intent of thousands of
/// workspaces copies pointers, and a change copies only the path to what it changes
/// ([`Arc::make_mut`]): the server keeps one intent per head and derives the next from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intent {
    /// `intent/platform.yaml`; `None` when the file is missing (a diagnostic says so).
    pub platform: Option<Arc<Platform>>,
    /// Organizations by slug (the folder name under `intent/`).
    pub organizations: BTreeMap<String, Arc<OrganizationIntent>>,
    /// Paths (relative to `intent/`) of files that are there but did not load; the loader
    /// has said why, so the compiler does not also call them missing.
    pub unreadable: std::collections::BTreeSet<String>,
}

/// One organization folder: `intent/<org>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationIntent {
    /// `intent/<org>/organization.yaml`; `None` when missing.
    pub organization: Option<Organization>,
    /// Workspaces by slug.
    pub workspaces: BTreeMap<String, Arc<WorkspaceIntent>>,
}

/// One workspace folder: `intent/<org>/<workspace>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceIntent {
    /// `workspace.yaml`; `None` when missing.
    pub workspace: Option<Workspace>,
    /// Projects by slug (the file stem under `projects/`).
    pub projects: BTreeMap<String, ProjectFile>,
}

/// A project, kept as compact JSON and decoded when used ([`ProjectFile::project`]).
///
/// A server keeps the intent of every workspace in memory, tens of thousands of projects;
/// parsed, each string of a project is an allocation of its own and a project takes about
/// seven times the bytes of its text. JSON keeps it at about the size of the YAML file and
/// decodes in microseconds (the YAML file is parsed once, when it is set). Two projects are
/// equal when their values are: the JSON is written from the value, never from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile(Arc<str>);

impl ProjectFile {
    /// Keeps `project`.
    pub fn new(project: &Project) -> Self {
        Self(
            serde_json::to_string(project)
                .expect("intent documents are plain data and always serialize")
                .into(),
        )
    }

    /// The project.
    pub fn project(&self) -> Project {
        serde_json::from_str(&self.0)
            .expect("the JSON was written from a Project by ProjectFile::new, and reads back")
    }

    /// The project as JSON, for hashing: equal projects have equal JSON.
    pub fn json(&self) -> &str {
        &self.0
    }
}

/// Object metadata of an intent document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The object's name; must equal its file or folder name.
    pub name: String,
    /// Labels copied onto the Kubernetes objects this document becomes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

macro_rules! document {
    ($(#[$doc:meta])* $name:ident, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// Always `hexabase.ai/v1alpha1`.
            pub api_version: String,
            /// The document's kind.
            pub kind: String,
            /// Name and labels.
            pub metadata: Metadata,
            /// What the user wants.
            pub spec: $spec,
        }
    };
}

document!(
    /// `intent/platform.yaml`: what the platform team offers.
    Platform,
    PlatformSpec
);
document!(
    /// `intent/<org>/organization.yaml`.
    Organization,
    OrganizationSpec
);
document!(
    /// `intent/<org>/<workspace>/workspace.yaml`: one vCluster.
    Workspace,
    WorkspaceSpec
);
document!(
    /// `intent/<org>/<workspace>/projects/<project>.yaml`: one namespace inside the vCluster.
    Project,
    ProjectSpec
);

/// The platform: host clusters, plans, chart versions and identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformSpec {
    /// The Git repository Flux pulls this tree from.
    pub git: GitSource,
    /// The OIDC issuer every vCluster API server trusts.
    pub oidc: Oidc,
    /// Host K3s clusters.
    pub clusters: Vec<Cluster>,
    /// Helm charts the platform deploys.
    pub charts: Charts,
    /// Plans a workspace can be on.
    pub plans: Vec<Plan>,
    /// Where shared monitoring agents send data.
    #[serde(default)]
    pub monitoring: MonitoringEndpoints,
    /// SOPS settings, for any secret the compiler has to emit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sops: Option<Sops>,
}

/// The Git repository Flux reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSource {
    /// Clone URL as Flux sees it (`https://`, `ssh://`).
    pub url: String,
    /// Branch Flux follows.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Name of the Secret in `flux-system` holding the platform's Git credentials, used by the
    /// platform's own Kustomizations only; never committed, never copied to tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Name of the Secret in `flux-system` holding a read-only credential (a read-only deploy
    /// key) that a Kyverno policy copies into every tenant namespace for the workspace's
    /// GitRepository. Must not be `secretName`. Defaults to `hexabase-tenant-read` when
    /// `secretName` is set; unset with no `secretName` (a public repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_secret_name: Option<String>,
}

fn default_branch() -> String {
    "main".to_owned()
}

/// OIDC settings shared by the issuer and every vCluster API server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Oidc {
    /// Issuer URL, rendered into `--oidc-issuer-url`; must be `https://` (or `http://` at a
    /// loopback address, `127.0.0.1` or `localhost` with a port, for one machine).
    pub issuer_url: String,
    /// Claim used as the Kubernetes user name.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Prefix added to user names, so they never clash with `system:` users.
    #[serde(default = "default_prefix")]
    pub username_prefix: String,
    /// Claim holding the flattened groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Prefix added to group names.
    #[serde(default = "default_prefix")]
    pub groups_prefix: String,
}

fn default_username_claim() -> String {
    "sub".to_owned()
}
fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_prefix() -> String {
    "hexabase:".to_owned()
}

/// A host K3s cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// Cluster name, a DNS label.
    pub name: String,
    /// Public API endpoint of the host cluster.
    pub api_server: String,
    /// DNS domain under which workspaces' vCluster endpoints and Functions are exposed.
    pub domain: String,
    /// Kubernetes version of the host cluster (`v1.35.0`). Every vCluster on it runs this
    /// version unless its plan pins an older one; a plan may never pin a newer one.
    #[serde(default = "default_host_kubernetes_version")]
    pub kubernetes_version: String,
}

fn default_host_kubernetes_version() -> String {
    "v1.35.0".to_owned()
}

/// Chart sources and versions, pinned by the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Charts {
    /// The `vcluster` chart.
    pub vcluster: ChartRef,
    /// The `kyverno` chart.
    pub kyverno: ChartRef,
    /// The `knative-operator` chart; Knative Serving is installed through it.
    pub knative_operator: ChartRef,
    /// The monitoring agent for shared plans (`alloy`).
    pub monitoring_agent: ChartRef,
    /// The dedicated monitoring stack (`kube-prometheus-stack`).
    pub monitoring_stack: ChartRef,
}

/// A Helm chart in a Helm repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChartRef {
    /// Helm repository URL (`https://` or `oci://`).
    pub repository: String,
    /// Chart name in that repository.
    pub chart: String,
    /// Exact chart version.
    pub version: String,
}

/// Central endpoints that shared monitoring agents write to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitoringEndpoints {
    /// Prometheus remote-write URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_write_url: Option<String>,
    /// Loki push URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loki_url: Option<String>,
}

/// SOPS encryption settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sops {
    /// age recipients (`age1…`) secrets are encrypted to.
    pub age_recipients: Vec<String>,
}

/// A plan: what a workspace gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// Plan name, a DNS label.
    pub name: String,
    /// Sizing of the vCluster control plane.
    #[serde(default)]
    pub vcluster: VClusterSizing,
    /// Quota of the whole vCluster on the host.
    #[serde(default)]
    pub host_quota: Quota,
    /// Limit range of the whole vCluster on the host.
    #[serde(default)]
    pub host_limit_range: LimitRange,
    /// Default ResourceQuota of every project.
    #[serde(default)]
    pub project_quota: Quota,
    /// Default LimitRange of every project.
    #[serde(default)]
    pub project_limit_range: LimitRange,
    /// Where the workspace's pods run.
    #[serde(default)]
    pub placement: Placement,
    /// Shared agents or a dedicated stack.
    #[serde(default)]
    pub monitoring: MonitoringMode,
    /// Kyverno policies (file stems in `policies/`) applied to the plan's workspaces.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Registry prefixes images may come from (`restrict-image-registries`).
    #[serde(default)]
    pub allowed_registries: Vec<String>,
}

/// vCluster control-plane sizing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VClusterSizing {
    /// Kubernetes version of the vCluster (`v1.35.0`), at most the host cluster's; the host
    /// cluster's `kubernetesVersion` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// CPU request of the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory request and limit of the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Size of the control plane's persistent volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// A resource quota; every field is a Kubernetes quantity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// `requests.cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_cpu: Option<String>,
    /// `requests.memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_memory: Option<String>,
    /// `limits.cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_cpu: Option<String>,
    /// `limits.memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_memory: Option<String>,
    /// `requests.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_storage: Option<String>,
    /// `pods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<String>,
    /// `services`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<String>,
    /// `persistentvolumeclaims`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claims: Option<String>,
}

impl Quota {
    /// The quota's entries as (intent field, Kubernetes key, value), in a fixed order.
    pub fn entries(&self) -> [(&'static str, &'static str, Option<&str>); 8] {
        [
            ("requestsCpu", "requests.cpu", self.requests_cpu.as_deref()),
            (
                "requestsMemory",
                "requests.memory",
                self.requests_memory.as_deref(),
            ),
            ("limitsCpu", "limits.cpu", self.limits_cpu.as_deref()),
            (
                "limitsMemory",
                "limits.memory",
                self.limits_memory.as_deref(),
            ),
            (
                "requestsStorage",
                "requests.storage",
                self.requests_storage.as_deref(),
            ),
            ("pods", "pods", self.pods.as_deref()),
            ("services", "services", self.services.as_deref()),
            (
                "persistentVolumeClaims",
                "persistentvolumeclaims",
                self.persistent_volume_claims.as_deref(),
            ),
        ]
    }
}

/// Container defaults and maxima; every field is a Kubernetes quantity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRange {
    /// Default CPU limit of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cpu: Option<String>,
    /// Default memory limit of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_memory: Option<String>,
    /// Default CPU request of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_request_cpu: Option<String>,
    /// Default memory request of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_request_memory: Option<String>,
    /// Largest CPU limit of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu: Option<String>,
    /// Largest memory limit of a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
}

impl LimitRange {
    /// The limit range's entries as (intent field, LimitRange section, resource, value).
    pub fn entries(&self) -> [(&'static str, &'static str, &'static str, Option<&str>); 6] {
        [
            ("defaultCpu", "default", "cpu", self.default_cpu.as_deref()),
            (
                "defaultMemory",
                "default",
                "memory",
                self.default_memory.as_deref(),
            ),
            (
                "defaultRequestCpu",
                "defaultRequest",
                "cpu",
                self.default_request_cpu.as_deref(),
            ),
            (
                "defaultRequestMemory",
                "defaultRequest",
                "memory",
                self.default_request_memory.as_deref(),
            ),
            ("maxCpu", "max", "cpu", self.max_cpu.as_deref()),
            ("maxMemory", "max", "memory", self.max_memory.as_deref()),
        ]
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.entries().iter().all(|(_, _, _, v)| v.is_none())
    }
}

/// Where a workspace's pods run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// `Shared` nodes, or `Dedicated` nodes chosen by `nodeSelector` and `tolerations`.
    #[serde(default)]
    pub mode: PlacementMode,
    /// Node labels a dedicated workspace's pods must land on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints of the dedicated nodes the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// Shared or dedicated nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PlacementMode {
    /// Pods share the host's general nodes.
    #[default]
    Shared,
    /// Pods run only on nodes set aside for the workspace.
    Dedicated,
}

/// A toleration of a node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// Taint key.
    pub key: String,
    /// Taint value; tolerated with `Equal` when set, `Exists` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: TaintEffect,
}

/// Effect of a node taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    /// Pods without the toleration are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods without the toleration are evicted.
    NoExecute,
}

impl TaintEffect {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

/// How a workspace is monitored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MonitoringMode {
    /// Light agents in the vCluster ship to the central stack.
    #[default]
    Shared,
    /// A full Prometheus and Grafana stack inside the vCluster.
    Dedicated,
}

/// An organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationSpec {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A workspace: one vCluster on one host cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Plan name from the platform.
    pub plan: String,
    /// Host cluster name from the platform.
    pub cluster: String,
    /// Preset ClusterRoles granted to workspace groups (beyond the default admin binding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// Dedicated-node selection for this workspace; needs a `Dedicated` plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_nodes: Option<DedicatedNodes>,
    /// Who may access the workspace: its groups, their nesting and their members (by opaque
    /// user id, never an email or a name). Empty in a workspace whose groups are still only
    /// in the server's SQL index (before the server's first start with access in Git).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
}

/// A workspace group: an OIDC group (after the platform's prefix) in the `groups` claim of
/// its members and, flattened through the nesting, of the members of its descendants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Group {
    /// Group name, unique in the workspace.
    pub name: String,
    /// The parent group: members of this group are members of the parent too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Direct members, by the server's stable opaque user id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// A preset ClusterRole bound to a workspace group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterRoleBinding {
    /// Workspace group name.
    pub group: String,
    /// The preset ClusterRole.
    pub cluster_role: PresetClusterRole,
}

/// The preset ClusterRoles present in every vCluster. Custom ClusterRoles are not allowed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum PresetClusterRole {
    /// Full control of the workspace.
    #[serde(rename = "hexabase:workspace-admin")]
    WorkspaceAdmin,
    /// Read-only access to the workspace.
    #[serde(rename = "hexabase:workspace-viewer")]
    WorkspaceViewer,
}

impl PresetClusterRole {
    /// The ClusterRole's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceAdmin => "hexabase:workspace-admin",
            Self::WorkspaceViewer => "hexabase:workspace-viewer",
        }
    }
}

/// Extra node selection for a workspace on a dedicated plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DedicatedNodes {
    /// Node labels added to the plan's selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations added to the plan's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// A project: one namespace inside the workspace's vCluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectSpec {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Overrides of the plan's default project quota; may not exceed the plan's host quota.
    #[serde(default, skip_serializing_if = "is_default")]
    pub quota: Quota,
    /// Custom Roles in the project namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Bindings of Roles or preset ClusterRoles to workspace groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_bindings: Vec<RoleBinding>,
    /// Scheduled jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron_jobs: Vec<CronJob>,
    /// Serverless functions (Knative Services on the host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<Function>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A custom Role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// What the role allows.
    pub rules: Vec<PolicyRule>,
}

/// One RBAC rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// Resources, with optional `/subresource`.
    pub resources: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
    /// Restrict the rule to these object names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// A binding of a custom Role or a preset ClusterRole to a workspace group, in one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBinding {
    /// Workspace group name.
    pub group: String,
    /// A custom Role of this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A preset ClusterRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_role: Option<PresetClusterRole>,
}

/// An environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value.
    pub value: String,
}

/// CPU and memory of one container; quantities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory request and limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A scheduled job (`batch/v1` CronJob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJob {
    /// CronJob name.
    pub name: String,
    /// Five-field cron schedule, or a macro such as `@daily`.
    pub schedule: String,
    /// IANA time zone of the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Container image.
    pub image: String,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// What happens when a run is still going at the next time.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Pause the schedule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Container resources.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: Resources,
}

/// `spec.concurrencyPolicy` of a CronJob.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    Allow,
    /// Skip a run while the previous one goes on.
    #[default]
    Forbid,
    /// Replace the running one.
    Replace,
}

impl ConcurrencyPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Forbid => "Forbid",
            Self::Replace => "Replace",
        }
    }
}

/// A serverless function, rendered as a Knative Service on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Function {
    /// Function name.
    pub name: String,
    /// Container image.
    pub image: String,
    /// Environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Port the container listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Autoscaling bounds.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scaling: Scaling,
    /// Container resources.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: Resources,
}

/// Knative autoscaling of a function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scaling {
    /// Fewest replicas; 0 scales to zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_scale: Option<u32>,
    /// Most replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_scale: Option<u32>,
    /// Concurrent requests per replica the autoscaler aims for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
}

/// The JSON Schema of every intent document kind, as `hb schema` prints it.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut generator = generator;
    let kinds = [
        ("Platform", generator.subschema_for::<Platform>()),
        ("Organization", generator.subschema_for::<Organization>()),
        ("Workspace", generator.subschema_for::<Workspace>()),
        ("Project", generator.subschema_for::<Project>()),
    ];
    let one_of: Vec<serde_json::Value> = kinds
        .iter()
        .map(|(_, schema)| serde_json::to_value(schema).expect("schemas serialize"))
        .collect();
    let mut root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hexabase.ai/schemas/v1alpha1/intent.json",
        "title": "Hexabase intent (hexabase.ai/v1alpha1)",
        "description": "One intent document: Platform, Organization, Workspace or Project.",
        "oneOf": one_of,
    });
    let defs = generator.take_definitions(true);
    root["$defs"] = serde_json::Value::Object(defs.into_iter().collect());
    root
}
