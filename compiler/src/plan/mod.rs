//! Intent → validated, defaulted, resolved model.
//!
//! Every problem is collected, with the file and the path inside the document.
//! The model is what templates see; it is internal and holds only validated values.

pub(crate) mod access;
pub(crate) mod admission;
pub(crate) mod check;
mod text;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::diagnostic::{Diagnostic, Sink};
use crate::intent::{
    self, Intent, LimitRange, PlacementMode, PresetClusterRole, Quota, Toleration, WorkspaceIntent,
};

/// Room for the `ws-` prefix and the `-` between organization and workspace in the host namespace.
const HOST_NAMESPACE_MAX: usize = 63;

/// Verbs a custom Role may never hold.
const FORBIDDEN_VERBS: &[&str] = &["escalate", "bind", "impersonate", "*"];

/// The whole platform, validated.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlatformModel {
    pub(crate) git: intent::GitSource,
    pub(crate) oidc: intent::Oidc,
    pub(crate) charts: intent::Charts,
    pub(crate) monitoring: intent::MonitoringEndpoints,
    pub(crate) clusters: Vec<ClusterModel>,
    pub(crate) plans: BTreeMap<String, PlanModel>,
    /// The read-only Git credential copied into tenant namespaces (`git.tenantSecretName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tenant_git_secret: Option<String>,
}

/// One host cluster and what runs on it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClusterModel {
    pub(crate) name: String,
    pub(crate) api_server: String,
    pub(crate) domain: String,
    pub(crate) kubernetes_version: String,
    /// Organizations with at least one workspace on this cluster.
    pub(crate) organizations: Vec<String>,
    /// Plans used on this cluster.
    pub(crate) plans: Vec<String>,
}

/// A plan, validated.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlanModel {
    pub(crate) name: String,
    pub(crate) policies: Vec<String>,
    pub(crate) allowed_registries: Vec<String>,
    #[serde(skip)]
    pub(crate) source: intent::Plan,
}

/// A key/value pair, for quotas and limit ranges in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// One workspace, ready to render.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkspaceModel {
    pub(crate) org: String,
    pub(crate) name: String,
    /// `<org>-<workspace>`: the Flux tenant name.
    pub(crate) tenant: String,
    /// `ws-<org>-<workspace>`: the host namespace.
    pub(crate) namespace: String,
    /// The OIDC client id (token audience) of this workspace's vCluster.
    pub(crate) client_id: String,
    pub(crate) cluster: String,
    pub(crate) cluster_domain: String,
    pub(crate) plan: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) vcluster: intent::VClusterSizing,
    /// The vCluster's Kubernetes version: the plan's, else the host cluster's.
    pub(crate) kubernetes_version: String,
    pub(crate) host_quota: Vec<Entry>,
    pub(crate) host_limit_range: BTreeMap<String, Vec<Entry>>,
    pub(crate) dedicated: bool,
    pub(crate) node_selector: BTreeMap<String, String>,
    pub(crate) tolerations: Vec<TolerationModel>,
    pub(crate) monitoring: &'static str,
    pub(crate) cluster_role_bindings: Vec<BindingModel>,
    pub(crate) projects: Vec<ProjectModel>,
    pub(crate) functions: Vec<FunctionModel>,
}

/// A toleration as Kubernetes spells it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TolerationModel {
    pub(crate) key: String,
    pub(crate) operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<String>,
    pub(crate) effect: &'static str,
}

/// A (Cluster)RoleBinding to one group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BindingModel {
    pub(crate) name: String,
    /// The group as it appears in tokens: prefix + name.
    pub(crate) group: String,
    pub(crate) role_kind: &'static str,
    pub(crate) role: String,
}

/// One project namespace inside the vCluster.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProjectModel {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) quota: Vec<Entry>,
    pub(crate) limit_range: BTreeMap<String, Vec<Entry>>,
    pub(crate) roles: Vec<intent::Role>,
    pub(crate) role_bindings: Vec<BindingModel>,
    pub(crate) cron_jobs: Vec<intent::CronJob>,
}

/// A Function, placed in the workspace's host namespace.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FunctionModel {
    /// `<project>-<function>`: unique in the host namespace.
    pub(crate) name: String,
    pub(crate) project: String,
    pub(crate) function: String,
    pub(crate) image: String,
    pub(crate) env: Vec<intent::EnvVar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
    pub(crate) scaling: intent::Scaling,
    pub(crate) resources: intent::Resources,
}

/// Validates the platform; `None` when it is missing or too broken to compile against.
pub(crate) fn platform(intent: &Intent, out: &mut Vec<Diagnostic>) -> Option<PlatformModel> {
    const FILE: &str = "intent/platform.yaml";
    let Some(platform) = &intent.platform else {
        if !out.iter().any(|d| d.file == FILE) && !intent.unreadable.contains("platform.yaml") {
            out.push(Diagnostic::error(FILE, "", "the platform file is missing"));
        }
        return None;
    };
    let before = out.len();
    let mut sink = Sink { file: FILE, out };
    let spec = &platform.spec;
    text::check_document(&mut sink, &**platform);
    url(
        &mut sink,
        "spec.git.url",
        &spec.git.url,
        &["https://", "http://", "ssh://"],
    );
    if let Err(e) = check::git_branch(&spec.git.branch) {
        sink.error("spec.git.branch", e);
    }
    if let Some(secret) = &spec.git.secret_name
        && let Err(e) = check::dns_subdomain(secret)
    {
        sink.error("spec.git.secretName", e);
    }
    let tenant_git_secret = spec.git.tenant_secret_name.clone().or_else(|| {
        spec.git
            .secret_name
            .as_ref()
            .map(|_| DEFAULT_TENANT_GIT_SECRET.to_owned())
    });
    if let Some(tenant) = &spec.git.tenant_secret_name
        && let Err(e) = check::dns_subdomain(tenant)
    {
        sink.error("spec.git.tenantSecretName", e);
    }
    if let Some(tenant) = &tenant_git_secret
        && spec.git.secret_name.as_ref() == Some(tenant)
    {
        sink.error(
            "spec.git.tenantSecretName",
            "must name a read-only credential, not the platform's own secretName: it is copied into every tenant namespace",
        );
    }
    // A server on one machine (`hb serve` with no public URL) is its own issuer at its
    // loopback address; anything a cluster or another machine reaches must be https.
    let loopback = ["http://127.0.0.1:", "http://localhost:"];
    if loopback.iter().any(|p| spec.oidc.issuer_url.starts_with(p)) {
        url(
            &mut sink,
            "spec.oidc.issuerUrl",
            &spec.oidc.issuer_url,
            &loopback,
        );
    } else {
        url(
            &mut sink,
            "spec.oidc.issuerUrl",
            &spec.oidc.issuer_url,
            &["https://"],
        );
    }
    if spec.oidc.issuer_url.contains(['?', '#']) {
        sink.error(
            "spec.oidc.issuerUrl",
            "must not have a query or fragment (OIDC discovery)",
        );
    }
    for (field, value) in [
        ("usernameClaim", &spec.oidc.username_claim),
        ("groupsClaim", &spec.oidc.groups_claim),
    ] {
        if value.is_empty()
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            sink.error(
                format!("spec.oidc.{field}"),
                "must be a claim name (letters, digits, '_')",
            );
        }
    }
    for (field, value) in [
        ("usernamePrefix", &spec.oidc.username_prefix),
        ("groupsPrefix", &spec.oidc.groups_prefix),
    ] {
        if value.is_empty() || value.starts_with("system:") || value.contains([',', '=', ' ', '\n'])
        {
            sink.error(
                format!("spec.oidc.{field}"),
                "must be non-empty, must not start with system: and must not contain ',', '=' or spaces",
            );
        }
    }
    if spec.clusters.is_empty() {
        sink.error("spec.clusters", "the platform needs at least one cluster");
    }
    let mut seen = BTreeSet::new();
    for (i, cluster) in spec.clusters.iter().enumerate() {
        let path = format!("spec.clusters[{i}]");
        if let Err(e) = check::dns_label(&cluster.name, 63) {
            sink.error(format!("{path}.name"), e);
        }
        if !seen.insert(&cluster.name) {
            sink.error(
                format!("{path}.name"),
                format!("duplicate cluster name {:?}", cluster.name),
            );
        }
        url(
            &mut sink,
            &format!("{path}.apiServer"),
            &cluster.api_server,
            &["https://"],
        );
        if let Err(e) = check::dns_subdomain(&cluster.domain) {
            sink.error(format!("{path}.domain"), e);
        }
        if kubernetes_version(&cluster.kubernetes_version).is_none() {
            sink.error(
                format!("{path}.kubernetesVersion"),
                "must look like v1.35.0",
            );
        }
    }
    let charts = &spec.charts;
    for (field, chart) in [
        ("vcluster", &charts.vcluster),
        ("kyverno", &charts.kyverno),
        ("knativeOperator", &charts.knative_operator),
        ("monitoringAgent", &charts.monitoring_agent),
        ("monitoringStack", &charts.monitoring_stack),
    ] {
        let path = format!("spec.charts.{field}");
        url(
            &mut sink,
            &format!("{path}.repository"),
            &chart.repository,
            &["https://", "oci://"],
        );
        if let Err(e) = check::dns_label(&chart.chart, 63) {
            sink.error(format!("{path}.chart"), e);
        }
        if let Err(e) = check::chart_version(&chart.version)
            .and_then(|version| check::supported_chart(field, &version))
        {
            sink.error(format!("{path}.version"), e);
        }
    }
    for (field, value) in [
        ("remoteWriteUrl", &spec.monitoring.remote_write_url),
        ("lokiUrl", &spec.monitoring.loki_url),
    ] {
        if let Some(value) = value {
            url(
                &mut sink,
                &format!("spec.monitoring.{field}"),
                value,
                &["https://", "http://"],
            );
        }
    }
    if let Some(sops) = &spec.sops {
        for (i, r) in sops.age_recipients.iter().enumerate() {
            let ok = r.starts_with("age1")
                && r.len() > 10
                && r.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok {
                sink.error(
                    format!("spec.sops.ageRecipients[{i}]"),
                    "must be an age recipient (age1…)",
                );
            }
        }
    }
    let mut plans = BTreeMap::new();
    for (i, plan) in spec.plans.iter().enumerate() {
        let path = format!("spec.plans[{i}]");
        if let Err(e) = check::dns_label(&plan.name, 63) {
            sink.error(format!("{path}.name"), e);
        }
        if plans.contains_key(&plan.name) {
            sink.error(
                format!("{path}.name"),
                format!("duplicate plan name {:?}", plan.name),
            );
        }
        quota(&mut sink, &format!("{path}.hostQuota"), &plan.host_quota);
        quota(
            &mut sink,
            &format!("{path}.projectQuota"),
            &plan.project_quota,
        );
        limit_range(
            &mut sink,
            &format!("{path}.hostLimitRange"),
            &plan.host_limit_range,
        );
        limit_range(
            &mut sink,
            &format!("{path}.projectLimitRange"),
            &plan.project_limit_range,
        );
        for (field, value) in [
            ("cpu", &plan.vcluster.cpu),
            ("memory", &plan.vcluster.memory),
            ("storage", &plan.vcluster.storage),
        ] {
            if let Some(value) = value
                && let Err(e) = check::Quantity::parse(value)
            {
                sink.error(format!("{path}.vcluster.{field}"), e);
            }
        }
        if let Some(version) = &plan.vcluster.kubernetes_version {
            let ok = version.strip_prefix('v').is_some_and(|v| {
                let parts: Vec<&str> = v.split('.').collect();
                parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            });
            if !ok {
                sink.error(
                    format!("{path}.vcluster.kubernetesVersion"),
                    "must look like v1.35.0",
                );
            }
        }
        placement(&mut sink, &format!("{path}.placement"), plan);
        for (j, registry) in plan.allowed_registries.iter().enumerate() {
            if registry.is_empty()
                || registry.contains(char::is_whitespace)
                || registry.contains(['"', '\\'])
            {
                sink.error(
                    format!("{path}.allowedRegistries[{j}]"),
                    "must be a registry prefix such as ghcr.io/acme/",
                );
            }
        }
        let mut seen = BTreeSet::new();
        for (j, policy) in plan.policies.iter().enumerate() {
            if !seen.insert(policy) {
                sink.error(
                    format!("{path}.policies[{j}]"),
                    format!("policy {policy:?} is listed twice"),
                );
            }
        }
        plans.insert(
            plan.name.clone(),
            PlanModel {
                name: plan.name.clone(),
                policies: plan.policies.clone(),
                allowed_registries: plan.allowed_registries.clone(),
                source: plan.clone(),
            },
        );
    }
    if plans.is_empty() {
        sink.error("spec.plans", "the platform needs at least one plan");
    }
    if out.len() > before {
        return None;
    }
    Some(PlatformModel {
        git: spec.git.clone(),
        oidc: spec.oidc.clone(),
        charts: spec.charts.clone(),
        monitoring: spec.monitoring.clone(),
        clusters: spec
            .clusters
            .iter()
            .map(|c| ClusterModel {
                name: c.name.clone(),
                api_server: c.api_server.clone(),
                domain: c.domain.clone(),
                kubernetes_version: c.kubernetes_version.clone(),
                organizations: Vec::new(),
                plans: Vec::new(),
            })
            .collect(),
        plans,
        tenant_git_secret,
    })
}

/// The Secret tenant namespaces get when `git.secretName` is set and `git.tenantSecretName` is not.
const DEFAULT_TENANT_GIT_SECRET: &str = "hexabase-tenant-read";

/// `v1.35.0` as numbers, or `None` when it is not written that way.
fn kubernetes_version(value: &str) -> Option<(u64, u64, u64)> {
    let mut parts = value.strip_prefix('v')?.split('.').map(|p| {
        if !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u64>().ok()
        } else {
            None
        }
    });
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The version a workspace's vCluster runs: the plan's pin, else its host cluster's. A plan may
/// not pin a version newer than the host (Kubernetes' version-skew policy).
fn virtual_kubernetes_version(
    sink: &mut Sink<'_>,
    plan: &PlanModel,
    cluster: &ClusterModel,
) -> String {
    let Some(pinned) = &plan.source.vcluster.kubernetes_version else {
        return cluster.kubernetes_version.clone();
    };
    if let (Some(v), Some(host)) = (
        kubernetes_version(pinned),
        kubernetes_version(&cluster.kubernetes_version),
    ) && v > host
    {
        sink.error(
            "spec.cluster",
            format!(
                "plan {:?} runs Kubernetes {pinned} in the vCluster, newer than cluster {:?} ({}); a vCluster may not be newer than its host",
                plan.name, cluster.name, cluster.kubernetes_version
            ),
        );
    }
    pinned.clone()
}

fn url(sink: &mut Sink<'_>, path: &str, value: &str, schemes: &[&str]) {
    let Some(rest) = schemes.iter().find_map(|s| value.strip_prefix(s)) else {
        sink.error(
            path,
            format!("must be a URL starting with {}", schemes.join(" or ")),
        );
        return;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // URLs also go into configuration files of other programs (Alloy), so they are held to
    // the characters that need no quoting anywhere: letters, digits and `._:/@+=?&%~-`.
    let plain = value.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'_' | b':' | b'/' | b'@' | b'+' | b'=' | b'?' | b'&' | b'%' | b'~' | b'-'
            )
    });
    if host.is_empty() {
        sink.error(path, "must be a URL with a host");
    } else if !plain {
        sink.error(
            path,
            "may contain only letters, digits and . _ : / @ + = ? & % ~ - (percent-encode anything else)",
        );
    }
}

fn quota(sink: &mut Sink<'_>, path: &str, quota: &Quota) {
    for (field, _, value) in quota.entries() {
        if let Some(value) = value
            && let Err(e) = check::Quantity::parse(value)
        {
            sink.error(format!("{path}.{field}"), e);
        }
    }
}

fn limit_range(sink: &mut Sink<'_>, path: &str, range: &LimitRange) {
    for (field, _, _, value) in range.entries() {
        if let Some(value) = value
            && let Err(e) = check::Quantity::parse(value)
        {
            sink.error(format!("{path}.{field}"), e);
        }
    }
}

fn placement(sink: &mut Sink<'_>, path: &str, plan: &intent::Plan) {
    let p = &plan.placement;
    if p.mode == PlacementMode::Shared && (!p.node_selector.is_empty() || !p.tolerations.is_empty())
    {
        sink.error(path, "nodeSelector and tolerations need mode Dedicated");
    }
    if p.mode == PlacementMode::Dedicated && p.node_selector.is_empty() {
        sink.error(
            format!("{path}.nodeSelector"),
            "a Dedicated plan must select nodes",
        );
    }
    node_selection(sink, path, &p.node_selector, &p.tolerations);
}

fn node_selection(
    sink: &mut Sink<'_>,
    path: &str,
    selector: &BTreeMap<String, String>,
    tolerations: &[Toleration],
) {
    for (key, value) in selector {
        if let Err(e) = check::label_key(key).and_then(|()| check::label_value(value)) {
            sink.error(format!("{path}.nodeSelector[{key}]"), e);
        }
    }
    for (i, t) in tolerations.iter().enumerate() {
        if let Err(e) = check::label_key(&t.key) {
            sink.error(format!("{path}.tolerations[{i}].key"), e);
        }
        if let Some(value) = &t.value
            && let Err(e) = check::label_value(value)
        {
            sink.error(format!("{path}.tolerations[{i}].value"), e);
        }
    }
}

fn tolerations(list: &[Toleration]) -> Vec<TolerationModel> {
    list.iter()
        .map(|t| TolerationModel {
            key: t.key.clone(),
            operator: if t.value.is_some() { "Equal" } else { "Exists" },
            value: t.value.clone(),
            effect: t.effect.as_str(),
        })
        .collect()
}

/// Validates organizations without workspaces' contents (only those in `only`, when given);
/// returns the valid org slugs.
pub(crate) fn organizations(
    intent: &Intent,
    only: Option<&BTreeSet<&str>>,
    out: &mut Vec<Diagnostic>,
) -> BTreeSet<String> {
    let mut valid = BTreeSet::new();
    for (slug, org) in &intent.organizations {
        if only.is_some_and(|o| !o.contains(slug.as_str())) {
            continue;
        }
        let file = format!("intent/{slug}/organization.yaml");
        let before = out.len();
        let mut sink = Sink { file: &file, out };
        if let Err(e) = check::dns_label(slug, HOST_NAMESPACE_MAX - 5) {
            sink.error("metadata.name", format!("organization name {e}"));
        }
        match &org.organization {
            None if !sink.out.iter().any(|d| d.file == file)
                && !intent
                    .unreadable
                    .contains(&format!("{slug}/organization.yaml")) =>
            {
                sink.error("", "the organization file is missing");
            }
            Some(o) => {
                labels(&mut sink, &o.metadata.labels);
                text::check_document(&mut sink, o);
            }
            None => {}
        }
        if out.len() == before {
            valid.insert(slug.clone());
        }
    }
    valid
}

fn labels(sink: &mut Sink<'_>, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        if let Err(e) = check::user_label_key(key).and_then(|()| check::label_value(value)) {
            sink.error(format!("metadata.labels[{key}]"), e);
        }
    }
}

/// Validates one workspace and builds its model; `None` when it has errors.
pub(crate) fn workspace(
    platform: &PlatformModel,
    org: &str,
    slug: &str,
    ws: &WorkspaceIntent,
    unreadable: &BTreeSet<String>,
    out: &mut Vec<Diagnostic>,
) -> Option<WorkspaceModel> {
    let file = format!("intent/{org}/{slug}/workspace.yaml");
    let before = out.len();
    let Some(workspace) = &ws.workspace else {
        // A file that is there but did not load was reported by the loader.
        if !out.iter().any(|d| d.file == file)
            && !unreadable.contains(&format!("{org}/{slug}/workspace.yaml"))
        {
            out.push(Diagnostic::error(
                &file,
                "",
                "the workspace file is missing",
            ));
        }
        return None;
    };
    let mut sink = Sink { file: &file, out };
    let spec = &workspace.spec;
    if let Err(e) = check::dns_label(slug, 63) {
        sink.error("metadata.name", format!("workspace name {e}"));
    }
    let namespace = crate::workspace_client_id(org, slug);
    if namespace.len() > HOST_NAMESPACE_MAX {
        sink.error(
            "metadata.name",
            format!(
                "the host namespace {namespace:?} would be {} characters; organization and workspace \
                 names together may have at most {} characters",
                namespace.len(),
                HOST_NAMESPACE_MAX - 4
            ),
        );
    }
    labels(&mut sink, &workspace.metadata.labels);
    text::check_document(&mut sink, workspace);
    let plan = platform.plans.get(&spec.plan);
    if plan.is_none() {
        sink.error(
            "spec.plan",
            format!(
                "unknown plan {:?}; the platform has {}",
                spec.plan,
                list(platform.plans.keys())
            ),
        );
    }
    let cluster = platform.clusters.iter().find(|c| c.name == spec.cluster);
    if cluster.is_none() {
        sink.error(
            "spec.cluster",
            format!(
                "unknown cluster {:?}; the platform has {}",
                spec.cluster,
                list(platform.clusters.iter().map(|c| &c.name))
            ),
        );
    }
    let mut crb_seen = BTreeSet::new();
    for (i, b) in spec.cluster_role_bindings.iter().enumerate() {
        if let Err(e) = check::group_name(&b.group) {
            sink.error(format!("spec.clusterRoleBindings[{i}].group"), e);
        }
        if !crb_seen.insert((&b.group, b.cluster_role)) {
            sink.error(
                format!("spec.clusterRoleBindings[{i}]"),
                "duplicate binding",
            );
        }
    }
    access::groups(&mut sink, &spec.groups);
    if let Some(dedicated) = &spec.dedicated_nodes {
        if plan.is_some_and(|p| p.source.placement.mode != PlacementMode::Dedicated) {
            sink.error(
                "spec.dedicatedNodes",
                format!("plan {:?} does not offer dedicated nodes", spec.plan),
            );
        }
        node_selection(
            &mut sink,
            "spec.dedicatedNodes",
            &dedicated.node_selector,
            &dedicated.tolerations,
        );
    }
    let kubernetes_version = match (plan, cluster) {
        (Some(plan), Some(cluster)) => virtual_kubernetes_version(&mut sink, plan, cluster),
        _ => String::new(),
    };
    // Decoded once for the whole plan of this workspace (see `intent::ProjectFile`).
    let decoded: Vec<(&String, intent::Project)> = ws
        .projects
        .iter()
        .map(|(name, file)| (name, file.project()))
        .collect();
    let projects: Vec<ProjectModel> = decoded
        .iter()
        .filter_map(|(name, project)| {
            self::project(platform, plan, org, slug, name, project, sink.out)
        })
        .collect();
    let functions = function_models(platform, plan, org, slug, &decoded, sink.out);
    if out.len() > before {
        return None;
    }
    let (plan, cluster) = (plan?, cluster?);
    let p = &plan.source;
    let mut node_selector = p.placement.node_selector.clone();
    let mut all_tolerations = p.placement.tolerations.clone();
    if let Some(d) = &spec.dedicated_nodes {
        node_selector.extend(d.node_selector.clone());
        all_tolerations.extend(d.tolerations.iter().cloned());
    }
    let prefix = &platform.oidc.groups_prefix;
    let mut cluster_role_bindings = vec![BindingModel {
        name: "hexabase:workspace-admin:WSAdmins".into(),
        group: format!("{prefix}WSAdmins"),
        role_kind: "ClusterRole",
        role: PresetClusterRole::WorkspaceAdmin.as_str().into(),
    }];
    for b in &spec.cluster_role_bindings {
        let name = format!("{}:{}", b.cluster_role.as_str(), b.group);
        if cluster_role_bindings.iter().any(|x| x.name == name) {
            continue;
        }
        cluster_role_bindings.push(BindingModel {
            name,
            group: format!("{prefix}{}", b.group),
            role_kind: "ClusterRole",
            role: b.cluster_role.as_str().into(),
        });
    }
    cluster_role_bindings.sort_by(|a, b| a.name.cmp(&b.name));
    Some(WorkspaceModel {
        org: org.to_owned(),
        name: slug.to_owned(),
        tenant: format!("{org}-{slug}"),
        client_id: namespace.clone(),
        namespace,
        cluster: cluster.name.clone(),
        cluster_domain: cluster.domain.clone(),
        plan: plan.name.clone(),
        display_name: spec.display_name.clone(),
        labels: workspace.metadata.labels.clone(),
        vcluster: p.vcluster.clone(),
        kubernetes_version,
        host_quota: quota_entries(&p.host_quota, &Quota::default()),
        host_limit_range: limit_range_entries(&p.host_limit_range),
        dedicated: p.placement.mode == PlacementMode::Dedicated,
        node_selector,
        tolerations: tolerations(&all_tolerations),
        monitoring: match p.monitoring {
            intent::MonitoringMode::Shared => "Shared",
            intent::MonitoringMode::Dedicated => "Dedicated",
        },
        cluster_role_bindings,
        projects,
        functions,
    })
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn quota_entries(quota: &Quota, overrides: &Quota) -> Vec<Entry> {
    quota
        .entries()
        .iter()
        .zip(overrides.entries())
        .filter_map(|((_, key, base), (_, _, over))| {
            over.or(*base).map(|v| Entry {
                key: (*key).into(),
                value: v.into(),
            })
        })
        .collect()
}

fn limit_range_entries(range: &LimitRange) -> BTreeMap<String, Vec<Entry>> {
    let mut sections: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for (_, section, resource, value) in range.entries() {
        if let Some(value) = value {
            sections.entry(section.into()).or_default().push(Entry {
                key: resource.into(),
                value: value.into(),
            });
        }
    }
    sections
}

#[allow(clippy::too_many_arguments)]
fn project(
    platform: &PlatformModel,
    plan: Option<&PlanModel>,
    org: &str,
    ws: &str,
    name: &str,
    project: &intent::Project,
    out: &mut Vec<Diagnostic>,
) -> Option<ProjectModel> {
    let file = format!("intent/{org}/{ws}/projects/{name}.yaml");
    let before = out.len();
    let mut sink = Sink { file: &file, out };
    let spec = &project.spec;
    if let Err(e) = check::dns_label(name, 63) {
        sink.error("metadata.name", format!("project name {e}"));
    }
    if matches!(
        name,
        "default" | "kube-system" | "kube-public" | "kube-node-lease"
    ) || name.starts_with("kube-")
    {
        sink.error(
            "metadata.name",
            format!("{name:?} is a namespace Kubernetes reserves"),
        );
    }
    labels(&mut sink, &project.metadata.labels);
    text::check_document(&mut sink, project);
    quota(&mut sink, "spec.quota", &spec.quota);
    // An override may not exceed what the plan gives the whole workspace.
    if let Some(plan) = plan {
        for ((field, _, value), (_, _, max)) in spec
            .quota
            .entries()
            .iter()
            .zip(plan.source.host_quota.entries())
        {
            if let (Some(value), Some(max)) = (value, max)
                && check::compare_quantities(value, max) == Some(std::cmp::Ordering::Greater)
            {
                sink.error(
                    format!("spec.quota.{field}"),
                    format!(
                        "{value} exceeds the plan {:?}, which allows {max} for the whole workspace",
                        plan.name
                    ),
                );
            }
        }
    }
    let mut role_names = BTreeSet::new();
    for (i, role) in spec.roles.iter().enumerate() {
        let path = format!("spec.roles[{}]", display_key(&role.name, i));
        if let Err(e) = check::dns_subdomain(&role.name) {
            sink.error(format!("{path}.name"), e);
        }
        if !role_names.insert(role.name.as_str()) {
            sink.error(
                format!("{path}.name"),
                format!("duplicate role name {:?}", role.name),
            );
        }
        if role.rules.is_empty() {
            sink.error(format!("{path}.rules"), "a role needs at least one rule");
        }
        for (j, rule) in role.rules.iter().enumerate() {
            policy_rule(&mut sink, &format!("{path}.rules[{j}]"), rule);
        }
    }
    let prefix = &platform.oidc.groups_prefix;
    let mut role_bindings = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, b) in spec.role_bindings.iter().enumerate() {
        let path = format!("spec.roleBindings[{i}]");
        if let Err(e) = check::group_name(&b.group) {
            sink.error(format!("{path}.group"), e);
        }
        let (kind, role) = match (&b.role, b.cluster_role) {
            (Some(role), None) => {
                if !role_names.contains(role.as_str()) {
                    sink.error(
                        format!("{path}.role"),
                        format!("no role {role:?} in this project"),
                    );
                }
                ("Role", role.clone())
            }
            (None, Some(cr)) => ("ClusterRole", cr.as_str().to_owned()),
            _ => {
                sink.error(path.clone(), "set exactly one of role and clusterRole");
                continue;
            }
        };
        let name = format!("{}:{role}", b.group);
        if !seen.insert(name.clone()) {
            sink.error(
                path,
                format!("group {:?} is bound to {role:?} twice", b.group),
            );
            continue;
        }
        role_bindings.push(BindingModel {
            name,
            group: format!("{prefix}{}", b.group),
            role_kind: kind,
            role,
        });
    }
    role_bindings.sort_by(|a, b| a.name.cmp(&b.name));
    let mut cron_names = BTreeSet::new();
    for (i, job) in spec.cron_jobs.iter().enumerate() {
        let path = format!("spec.cronJobs[{}]", display_key(&job.name, i));
        // CronJob names leave room for the Job suffix Kubernetes appends (52 characters).
        if let Err(e) = check::dns_label(&job.name, 52) {
            sink.error(format!("{path}.name"), e);
        }
        if !cron_names.insert(job.name.as_str()) {
            sink.error(
                format!("{path}.name"),
                format!("duplicate CronJob name {:?}", job.name),
            );
        }
        if let Err(e) = check::cron_schedule(&job.schedule) {
            sink.error(format!("{path}.schedule"), e);
        }
        if let Some(tz) = &job.time_zone
            && let Err(e) = check::time_zone(tz)
        {
            sink.error(format!("{path}.timeZone"), e);
        }
        if let Err(e) = check::image_reference(&job.image) {
            sink.error(format!("{path}.image"), e);
        } else if let Some(plan) = plan {
            // A CronJob's pods are admitted inside the vCluster (the project's limit range
            // defaults them) and again on the host, where the plan's policies act.
            admission::container(
                &mut sink,
                &path,
                platform,
                plan,
                &job.image,
                &job.resources,
                &plan.source.project_limit_range,
            );
        }
        env(&mut sink, &path, &job.env);
        resources(&mut sink, &path, &job.resources);
    }
    if out.len() > before {
        return None;
    }
    let plan = plan?;
    Some(ProjectModel {
        name: name.to_owned(),
        display_name: spec.display_name.clone(),
        labels: project.metadata.labels.clone(),
        quota: quota_entries(&plan.source.project_quota, &spec.quota),
        limit_range: limit_range_entries(&plan.source.project_limit_range),
        roles: spec.roles.clone(),
        role_bindings,
        cron_jobs: spec.cron_jobs.clone(),
    })
}

/// Names list items by their `name` when it is usable, by index otherwise.
fn display_key(name: &str, index: usize) -> String {
    if !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        name.to_owned()
    } else {
        index.to_string()
    }
}

fn policy_rule(sink: &mut Sink<'_>, path: &str, rule: &intent::PolicyRule) {
    const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
    for (field, list) in [
        ("apiGroups", &rule.api_groups),
        ("resources", &rule.resources),
        ("verbs", &rule.verbs),
    ] {
        if list.is_empty() {
            sink.error(format!("{path}.{field}"), "must not be empty");
        }
    }
    for (i, group) in rule.api_groups.iter().enumerate() {
        if group.contains('*') {
            sink.error(
                format!("{path}.apiGroups[{i}]"),
                "wildcards are not allowed in custom roles",
            );
        } else if group == RBAC_GROUP {
            sink.error(
                format!("{path}.apiGroups[{i}]"),
                "custom roles may not grant access to RBAC resources",
            );
        } else if !group.is_empty() && check::dns_subdomain(group).is_err() {
            sink.error(
                format!("{path}.apiGroups[{i}]"),
                format!("{group:?} is not an API group name"),
            );
        }
    }
    for (i, resource) in rule.resources.iter().enumerate() {
        let base = resource.split('/').next().unwrap_or("");
        let shape = check::rbac_resource(resource);
        if resource.contains('*') {
            sink.error(
                format!("{path}.resources[{i}]"),
                "wildcards are not allowed in custom roles",
            );
        } else if matches!(
            base,
            "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings"
        ) {
            sink.error(
                format!("{path}.resources[{i}]"),
                "custom roles may not grant access to RBAC resources",
            );
        } else if let Err(e) = shape {
            sink.error(format!("{path}.resources[{i}]"), e);
        }
    }
    for (i, verb) in rule.verbs.iter().enumerate() {
        if FORBIDDEN_VERBS.contains(&verb.as_str()) {
            let why = if verb == "*" {
                "wildcards are not allowed in custom roles".to_owned()
            } else {
                format!("custom roles may not hold {verb:?}")
            };
            sink.error(format!("{path}.verbs[{i}]"), why);
        } else if verb.is_empty() || !verb.bytes().all(|b| b.is_ascii_lowercase()) {
            sink.error(
                format!("{path}.verbs[{i}]"),
                format!("{verb:?} is not a verb"),
            );
        }
    }
    for (i, name) in rule.resource_names.iter().enumerate() {
        if let Err(e) = check::object_name(name) {
            sink.error(format!("{path}.resourceNames[{i}]"), e);
        }
    }
}

fn env(sink: &mut Sink<'_>, path: &str, env: &[intent::EnvVar]) {
    let mut seen = BTreeSet::new();
    for (i, var) in env.iter().enumerate() {
        if let Err(e) = check::env_name(&var.name) {
            sink.error(format!("{path}.env[{i}].name"), e);
        }
        if !seen.insert(&var.name) {
            sink.error(
                format!("{path}.env[{i}].name"),
                format!("duplicate variable {:?}", var.name),
            );
        }
    }
}

fn resources(sink: &mut Sink<'_>, path: &str, r: &intent::Resources) {
    for (field, value) in [("cpu", &r.cpu), ("memory", &r.memory)] {
        if let Some(value) = value
            && let Err(e) = check::Quantity::parse(value)
        {
            sink.error(format!("{path}.resources.{field}"), e);
        }
    }
}

/// Environment variables Knative sets in every revision and refuses in a Service.
const KNATIVE_RESERVED_ENV: &[&str] = &["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];

/// Knative revision names append `-00001` to the service name, which must stay a DNS label.
const FUNCTION_NAME_MAX: usize = 57;

fn function_models(
    platform: &PlatformModel,
    plan: Option<&PlanModel>,
    org: &str,
    ws: &str,
    projects: &[(&String, intent::Project)],
    out: &mut Vec<Diagnostic>,
) -> Vec<FunctionModel> {
    let mut models = Vec::new();
    let mut host_names: BTreeMap<String, String> = BTreeMap::new();
    for (project, p) in projects {
        let file = format!("intent/{org}/{ws}/projects/{project}.yaml");
        let mut sink = Sink { file: &file, out };
        for (i, f) in p.spec.functions.iter().enumerate() {
            let path = format!("spec.functions[{}]", display_key(&f.name, i));
            let host_name = format!("{project}-{}", f.name);
            if let Err(e) = check::dns_label(&f.name, 63) {
                sink.error(format!("{path}.name"), e);
            } else if host_name.len() > FUNCTION_NAME_MAX {
                sink.error(
                    format!("{path}.name"),
                    format!(
                        "the function's host name {host_name:?} would be {} characters; project and \
                         function names together may have at most {} characters",
                        host_name.len(),
                        FUNCTION_NAME_MAX - 1
                    ),
                );
            }
            if let Some(other) =
                host_names.insert(host_name.clone(), format!("{project}/{}", f.name))
            {
                sink.error(
                    format!("{path}.name"),
                    format!("its host name {host_name:?} clashes with function {other}"),
                );
            }
            if let Err(e) = check::image_reference(&f.image) {
                sink.error(format!("{path}.image"), e);
            } else if let Some(plan) = plan {
                // A Function's pods run in the host namespace, under its limit range.
                admission::container(
                    &mut sink,
                    &path,
                    platform,
                    plan,
                    &f.image,
                    &f.resources,
                    &plan.source.host_limit_range,
                );
            }
            env(&mut sink, &path, &f.env);
            resources(&mut sink, &path, &f.resources);
            if let Some(port) = f.port
                && let Err(e) = check::function_port(port)
            {
                sink.error(format!("{path}.port"), e);
            }
            for (j, var) in f.env.iter().enumerate() {
                if KNATIVE_RESERVED_ENV.contains(&var.name.as_str()) {
                    sink.error(
                        format!("{path}.env[{j}].name"),
                        format!(
                            "{:?} is set by Knative and may not be set by a function",
                            var.name
                        ),
                    );
                }
            }
            if f.scaling.target == Some(0) {
                sink.error(
                    format!("{path}.scaling.target"),
                    "must be at least 1 (Knative needs a target above 0)",
                );
            }
            if let (Some(min), Some(max)) = (f.scaling.min_scale, f.scaling.max_scale)
                && min > max
            {
                sink.error(
                    format!("{path}.scaling.minScale"),
                    format!("{min} is above maxScale {max}"),
                );
            }
            if f.scaling.max_scale == Some(0) {
                sink.error(format!("{path}.scaling.maxScale"), "must be at least 1");
            }
            models.push(FunctionModel {
                name: host_name,
                project: (*project).clone(),
                function: f.name.clone(),
                image: f.image.clone(),
                env: f.env.clone(),
                port: f.port,
                scaling: f.scaling.clone(),
                resources: f.resources.clone(),
            });
        }
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    models
}
