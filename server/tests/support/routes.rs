//! The operations of the OpenAPI document, with a valid example body and query for each
//! that needs one, so tests can send every route (the authorization matrix, the tenancy
//! tests) and a new route cannot slip through: a request body without an example, or a
//! path parameter without a value, fails the test that meets it.

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{Value, json};

/// A valid example body for every operation that takes one. `{who}` becomes the caller's
/// name (so two callers' creations do not collide); `{param}` a value of the test's
/// parameters.
#[rustfmt::skip]
pub(crate) const BODIES: &[(&str, &str)] = &[
    ("signup", r#"{"email": "new-{who}@example.test", "name": "New {who}", "password": "correct horse battery"}"#),
    ("login", r#"{"email": "owner@acme.test", "password": "correct horse battery"}"#),
    ("createToken", r#"{"name": "cli"}"#),
    ("createOrg", r#"{"slug": "new-{who}", "name": "New"}"#),
    ("setOrgMemberRole", r#"{"userId": "{user}", "role": "owner"}"#),
    ("inviteToOrg", r#"{"email": "invitee-{who}@example.test", "role": "billing"}"#),
    ("createWorkspace", r#"{"name": "ws-{who}", "plan": "shared-small"}"#),
    ("changePlan", r#"{"plan": "dedicated-large"}"#),
    ("createGroup", r#"{"name": "g-{who}", "parent": "WorkspaceMembers"}"#),
    ("updateGroup", r#"{"parent": "WSUsers"}"#),
    ("addGroupMember", r#"{"user": "billing@acme.test"}"#),
    ("bindClusterRole", r#"{"group": "ops", "clusterRole": "hexabase:workspace-viewer"}"#),
    ("createProject", r#"{"name": "p-{who}"}"#),
    ("setPlatform", r#"{"git": {"url": "ssh://git@git.example.com/platform/tenants.git", "branch": "main", "secretName": "flux-system"}, "oidc": {"issuerUrl": "https://hexabase.example.com"}, "clusters": [{"name": "home", "apiServer": "https://home.k3s.example.com:6443", "domain": "home.example.com"}, {"name": "edge", "apiServer": "https://edge.k3s.example.com:6443", "domain": "edge.example.com"}], "charts": {"vcluster": {"repository": "https://charts.loft.sh", "chart": "vcluster", "version": "0.36.1"}, "kyverno": {"repository": "https://kyverno.github.io/kyverno/", "chart": "kyverno", "version": "3.9.0"}, "knativeOperator": {"repository": "https://knative.github.io/operator", "chart": "knative-operator", "version": "v1.23.0"}, "monitoringAgent": {"repository": "https://grafana.github.io/helm-charts", "chart": "alloy", "version": "1.4.0"}, "monitoringStack": {"repository": "https://prometheus-community.github.io/helm-charts", "chart": "kube-prometheus-stack", "version": "79.0.0"}}, "monitoring": {"remoteWriteUrl": "https://metrics.example.com/api/v1/write", "lokiUrl": "https://logs.example.com/loki/api/v1/push"}, "plans": [{"name": "shared-small", "vcluster": {"cpu": "200m", "memory": "512Mi", "storage": "5Gi"}, "hostQuota": {"requestsCpu": "8", "requestsMemory": "16Gi", "limitsMemory": "32Gi", "pods": "100"}, "hostLimitRange": {"defaultCpu": "500m", "defaultMemory": "512Mi", "defaultRequestCpu": "100m", "defaultRequestMemory": "128Mi"}, "projectQuota": {"requestsCpu": "2", "requestsMemory": "4Gi", "pods": "20"}, "projectLimitRange": {"defaultMemory": "256Mi", "defaultRequestCpu": "50m", "defaultRequestMemory": "64Mi", "maxMemory": "4Gi"}, "monitoring": "Shared", "policies": ["disallow-privileged", "disallow-host-namespaces", "disallow-host-path", "require-requests-limits", "restrict-image-registries"], "allowedRegistries": ["ghcr.io/", "registry.k8s.io/", "gcr.io/knative-releases/", "docker.io/library/"]}, {"name": "dedicated-large", "vcluster": {"kubernetesVersion": "v1.35.0", "cpu": "1", "memory": "2Gi", "storage": "20Gi"}, "hostQuota": {"requestsCpu": "64", "requestsMemory": "256Gi", "pods": "1000"}, "projectQuota": {"requestsCpu": "16", "requestsMemory": "64Gi"}, "placement": {"mode": "Dedicated", "nodeSelector": {"hexabase.ai/pool": "dedicated"}, "tolerations": [{"key": "hexabase.ai/dedicated", "effect": "NoSchedule"}]}, "monitoring": "Dedicated", "policies": ["disallow-privileged", "disallow-host-namespaces", "disallow-host-path"]}]}"#),
    ("setPlatformCluster", r#"{"name": "{cluster}", "apiServer": "https://lab.k3s.example.test:6443", "domain": "lab.example.test"}"#),
    ("setPlatformPlan", r#"{"name": "{plan}", "projectQuota": {"pods": "10"}, "policies": ["disallow-privileged"]}"#),
    ("setPlanPrice", r#"{"monthly": 2900}"#),
    ("setProjectQuota", r#"{"pods": "20"}"#),
    ("createRole", r#"{"name": "r-{who}", "rules": [{"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list"]}]}"#),
    ("updateRole", r#"{"rules": [{"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]}]}"#),
    ("bindRole", r#"{"group": "ops", "role": "cron-editor"}"#),
    ("createCronJob", r#"{"name": "c-{who}", "schedule": "0 3 * * *", "image": "busybox:1.36"}"#),
    ("updateCronJob", r#"{"name": "tick", "schedule": "0 4 * * *", "image": "busybox:1.37"}"#),
    ("createFunction", r#"{"name": "f-{who}", "image": "ghcr.io/x/hello:1"}"#),
    ("updateFunction", r#"{"name": "tick", "image": "ghcr.io/x/hello:2"}"#),
];

/// Query strings of the operations that need one.
pub(crate) const QUERIES: &[(&str, &str)] = &[
    (
        "unbindClusterRole",
        "group=WSUsers&clusterRole=hexabase:workspace-viewer",
    ),
    ("unbindRole", "group=WSUsers&role=cron-editor"),
    ("oidcCallback", "code=c0de&state=5tate"),
];

/// One operation of the document.
pub(crate) struct Operation {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) id: String,
    pub(crate) public: bool,
    pub(crate) commits: bool,
    pub(crate) body: bool,
}

/// Every operation of `document`.
pub(crate) fn operations(document: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            out.push(Operation {
                method: method.to_uppercase().parse().expect("an HTTP method"),
                path: path.clone(),
                id: op["operationId"]
                    .as_str()
                    .expect("an operationId")
                    .to_owned(),
                public: op.get("security") == Some(&json!([])),
                commits: op.get("x-hexabase-commit") == Some(&json!(true)),
                body: op.get("requestBody").is_some(),
            });
        }
    }
    out
}

impl Operation {
    /// The names of the path parameters, in order.
    pub(crate) fn parameters(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect()
    }

    /// The path with every parameter replaced by its value in `params` (the last one by
    /// `last` when given), and the operation's query.
    pub(crate) fn uri(
        &self,
        params: &BTreeMap<&'static str, String>,
        last: Option<&str>,
    ) -> String {
        let names = self.parameters();
        let mut uri = self.path.clone();
        for (i, name) in names.iter().enumerate() {
            let value = params.get(name).unwrap_or_else(|| {
                panic!(
                    "{} {} has a path parameter {{{name}}} the test does not know: add a \
                     value to its parameters",
                    self.method, self.path
                )
            });
            let value = match last {
                Some(last) if i + 1 == names.len() => last,
                _ => value.as_str(),
            };
            uri = uri.replace(&format!("{{{name}}}"), value);
        }
        if let Some((_, query)) = QUERIES.iter().find(|(id, _)| *id == self.id) {
            uri = format!("{uri}?{query}");
        }
        uri
    }

    /// The example body, for `who`, with `params` filled in; `None` when the operation takes
    /// none.
    pub(crate) fn body(&self, who: &str, params: &BTreeMap<&'static str, String>) -> Option<Value> {
        let example = BODIES.iter().find(|(id, _)| *id == self.id);
        match (self.body, example) {
            (false, None) => None,
            (false, Some(_)) => panic!("{} takes no body, but BODIES has one", self.id),
            (true, None) => panic!(
                "{} {} ({}) takes a request body no test has an example of: add one to BODIES",
                self.method, self.path, self.id
            ),
            (true, Some((_, template))) => {
                let mut text = template.replace("{who}", who);
                for (name, value) in params {
                    text = text.replace(&format!("{{{name}}}"), value);
                }
                Some(serde_json::from_str(&text).expect("BODIES holds JSON"))
            }
        }
    }
}

/// Whether `method` is safe (changes nothing).
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
