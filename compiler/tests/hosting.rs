//! How each workspace's vCluster is hosted (issues #12 item 9 and #22 items 4, 6, 7, 8), read
//! from the compiler's output for the example intent:
//!
//! - no tenant identity may write cluster-scoped RBAC; a dedicated vCluster's node rights come
//!   from the platform's own Kustomization, bound to that vCluster's service account only;
//! - the host quota and limit range after Helm's merge over the chart's defaults are the plan's;
//! - the vCluster API is routed by SNI and admitted by the NetworkPolicy;
//! - tenants get a read-only Git credential and check out only their own folder;
//! - releases retry without hands, and the virtual Kubernetes is never newer than the host.
//!
//! The conformance checker (`tests/conformance`) proves the same with the real `helm template`.
#![allow(clippy::disallowed_methods)] // reads the upstream chart's default values

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

fn example() -> BTreeMap<String, String> {
    support::compile_clean(&support::example_files())
}

fn all_docs(files: &BTreeMap<String, String>) -> Vec<(String, Value)> {
    files
        .iter()
        .filter(|(path, _)| path.ends_with(".yaml") && !path.starts_with("intent/"))
        .flat_map(|(path, text)| {
            support::yaml_docs(text)
                .into_iter()
                .map(move |d| (path.clone(), d))
        })
        .collect()
}

/// `(namespace, HelmRelease vcluster)` of every workspace.
fn vclusters(files: &BTreeMap<String, String>) -> Vec<(String, String, Value)> {
    all_docs(files)
        .into_iter()
        .filter(|(_, d)| d["kind"] == "HelmRelease" && d["metadata"]["name"] == "vcluster")
        .map(|(path, d)| {
            let ns = d["metadata"]["namespace"]
                .as_str()
                .expect("namespace")
                .to_owned();
            (path, ns, d)
        })
        .collect()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

const WRITE: &[&str] = &[
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
];

/// Whether a rule lets its holder write ClusterRoles or ClusterRoleBindings.
fn writes_cluster_rbac(rule: &Value) -> bool {
    let groups = strings(&rule["apiGroups"]);
    let resources = strings(&rule["resources"]);
    let verbs = strings(&rule["verbs"]);
    (groups.contains("rbac.authorization.k8s.io") || groups.contains("*"))
        && ["clusterroles", "clusterrolebindings", "*"]
            .iter()
            .any(|r| resources.contains(*r))
        && WRITE.iter().any(|v| verbs.contains(*v))
}

#[test]
fn no_tenant_identity_may_write_cluster_rbac() {
    let docs = all_docs(&example());
    let roles: BTreeMap<&str, &Value> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ClusterRole")
        .filter_map(|(_, d)| Some((d["metadata"]["name"].as_str()?, d)))
        .collect();
    let mut bindings = 0;
    for (path, binding) in docs
        .iter()
        .filter(|(_, d)| d["kind"] == "ClusterRoleBinding")
    {
        // Tenant identities: each workspace's Flux account and the vCluster's own.
        let tenant = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["namespace"]
                        .as_str()
                        .is_some_and(|ns| ns.starts_with("ws-"))
            });
        if !tenant {
            continue;
        }
        bindings += 1;
        let role = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        assert_ne!(role, "cluster-admin", "{path}: a tenant is cluster-admin");
        let role = roles
            .get(role)
            .unwrap_or_else(|| panic!("{path}: {role} is not rendered, its rules are unknown"));
        for rule in role["rules"].as_array().into_iter().flatten() {
            assert!(
                !writes_cluster_rbac(rule),
                "{path}: a tenant identity may write cluster RBAC through {rule}"
            );
        }
    }
    assert!(
        bindings > 0,
        "the dedicated workspace's vCluster binding is rendered"
    );
}

#[test]
fn dedicated_node_rights_come_from_the_platform_and_exclude_the_kubelet_api() {
    let files = example();
    let root = "tenants/home/acme/prod";
    // host/ is applied by the platform's kustomize-controller, not the tenant's account.
    let entry = &support::yaml_docs(&files[&format!("{root}/flux.yaml")])[0];
    assert_eq!(entry["metadata"]["namespace"], "flux-system");
    assert_eq!(entry["spec"]["serviceAccountName"], "kustomize-controller");
    assert_eq!(entry["spec"]["path"], format!("./{root}/host"));
    let docs = support::yaml_docs(&files[&format!("{root}/host/namespace.yaml")]);
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("the platform renders the dedicated vCluster's ClusterRole");
    let name = role["metadata"]["name"].as_str().expect("name");
    let rules = role["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        strings(&rules[0]["apiGroups"]),
        BTreeSet::from(["".to_owned()])
    );
    assert_eq!(
        strings(&rules[0]["resources"]),
        ["nodes", "nodes/status", "pods"].map(str::to_owned).into()
    );
    assert_eq!(
        strings(&rules[0]["verbs"]),
        ["get", "list", "watch"].map(str::to_owned).into()
    );
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .expect("binding");
    assert_eq!(binding["roleRef"]["name"], name);
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "vc-vcluster", "namespace": "ws-acme-prod"}])
    );
    for (path, _, release) in vclusters(&files) {
        let values = &release["spec"]["values"];
        assert_eq!(values["rbac"]["clusterRole"]["enabled"], false, "{path}");
        let proxy = &values["networking"]["advanced"]["proxyKubelets"];
        assert_eq!(proxy["byHostname"], false, "{path}");
        assert_eq!(proxy["byIP"], false, "{path}");
    }
}

/// Helm's merge of user values over chart defaults: maps merge, `null` deletes the key.
fn helm_merge(defaults: &Value, user: &Value) -> Value {
    match (defaults, user) {
        (Value::Object(d), Value::Object(u)) => {
            let mut out: Map<String, Value> = d.clone();
            for (k, v) in u {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = out.get(k).map_or_else(|| v.clone(), |d| helm_merge(d, v));
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (_, u) => u.clone(),
    }
}

fn chart_defaults() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/upstream/vcluster-0.36.1/values.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the upstream vCluster values at {}: {e}", path.display()));
    serde_saphyr::from_str(&text).expect("chart values parse")
}

fn plan_of(files: &BTreeMap<String, String>, namespace: &str) -> String {
    all_docs(files)
        .into_iter()
        .find(|(_, d)| d["kind"] == "Namespace" && d["metadata"]["name"] == namespace)
        .and_then(|(_, d)| {
            d["metadata"]["labels"]["hexabase.ai/plan"]
                .as_str()
                .map(str::to_owned)
        })
        .expect("namespace with a plan label")
}

#[test]
fn host_quota_and_limit_range_after_helms_merge_are_the_plans() {
    let intent = support::example_files();
    let platform: Value =
        serde_saphyr::from_str(&intent["platform.yaml"]).expect("platform parses");
    let plans: BTreeMap<String, &Value> = platform["spec"]["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| (p["name"].as_str().expect("name").to_owned(), p))
        .collect();
    let files = example();
    let defaults = chart_defaults();
    let releases = vclusters(&files);
    assert_eq!(releases.len(), 3);
    for (path, ns, release) in releases {
        let plan = plans[&plan_of(&files, &ns)];
        let merged = helm_merge(
            &defaults["policies"],
            &release["spec"]["values"]["policies"],
        );
        let quota: compiler::intent::Quota =
            serde_json::from_value(plan["hostQuota"].clone()).expect("plan quota");
        let want: Map<String, Value> = quota
            .entries()
            .iter()
            .filter_map(|(_, key, v)| Some(((*key).to_owned(), Value::from((*v)?))))
            .collect();
        let rq = &merged["resourceQuota"];
        if want.is_empty() {
            assert_eq!(rq["enabled"], false, "{path}");
        } else {
            assert_eq!(rq["enabled"], true, "{path}");
            assert_eq!(rq["quota"], Value::Object(want), "{path}");
        }
        let range: compiler::intent::LimitRange = serde_json::from_value(
            plan.get("hostLimitRange")
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
        )
        .expect("plan limit range");
        let lr = &merged["limitRange"];
        if range.is_empty() {
            assert_eq!(lr["enabled"], false, "{path}");
            continue;
        }
        assert_eq!(lr["enabled"], true, "{path}");
        let mut want: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for (_, section, resource, value) in range.entries() {
            let entry = want.entry(section).or_default();
            if let Some(value) = value {
                entry.insert(resource.to_owned(), Value::from(value));
            }
        }
        for section in ["default", "defaultRequest", "max", "min"] {
            let got = lr[section].as_object().cloned().unwrap_or_default();
            assert_eq!(
                got,
                want.get(section).cloned().unwrap_or_default(),
                "{path}: limitRange.{section}"
            );
        }
    }
}

#[test]
fn the_vcluster_api_is_routed_by_sni_and_admitted() {
    let files = example();
    for (path, ns, release) in vclusters(&files) {
        let root = path.strip_suffix("/host/vcluster.yaml").expect("host file");
        let network = support::yaml_docs(&files[&format!("{root}/host/network.yaml")]);
        let sans = strings(&release["spec"]["values"]["controlPlane"]["proxy"]["extraSANs"]);
        let route = network
            .iter()
            .find(|d| d["kind"] == "IngressRouteTCP")
            .unwrap_or_else(|| panic!("{root}: no route to the vCluster API"));
        assert_eq!(route["spec"]["tls"]["passthrough"], true, "{root}");
        let routes = route["spec"]["routes"].as_array().expect("routes");
        assert_eq!(routes.len(), 1);
        let host = routes[0]["match"]
            .as_str()
            .and_then(|m| m.strip_prefix("HostSNI(`"))
            .and_then(|m| m.strip_suffix("`)"))
            .expect("HostSNI match");
        assert!(host.starts_with(&format!("{ns}.")), "{root}: {host}");
        assert!(
            sans.contains(host),
            "{root}: {host} is not a certificate SAN"
        );
        assert_eq!(
            routes[0]["services"],
            serde_json::json!([{"name": "vcluster", "port": 443}])
        );
        let admits_traefik = network.iter().any(|p| {
            p["kind"] == "NetworkPolicy"
                && p["spec"]["podSelector"]["matchLabels"]["app"] == "vcluster"
                && p["spec"]["ingress"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|rule| {
                        rule["ports"] == serde_json::json!([{"protocol": "TCP", "port": 8443}])
                            && rule["from"].as_array().into_iter().flatten().any(|f| {
                                f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                                    == "kube-system"
                                    && f["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                                        == "traefik"
                            })
                    })
        });
        assert!(
            admits_traefik,
            "{root}: Traefik may not reach the vCluster API"
        );
    }
}

#[test]
fn tenants_read_only_their_folder_with_a_read_only_credential() {
    let files = example();
    let policy = support::yaml_docs(&files["infrastructure/policies/sync-git-credentials.yaml"]);
    let copied = policy[0]["spec"]["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "sourceSecretName")
        .and_then(|v| v["expression"].as_str())
        .expect("sourceSecretName");
    assert_eq!(copied, "\"hexabase-tenant-read\"");
    for (_, ns, _) in vclusters(&files) {
        let (path, repo) = all_docs(&files)
            .into_iter()
            .find(|(_, d)| {
                d["kind"] == "GitRepository" && d["metadata"]["namespace"] == ns.as_str()
            })
            .expect("tenant GitRepository");
        assert_eq!(
            repo["spec"]["secretRef"]["name"], "hexabase-tenant-read",
            "{path}"
        );
        let root = path.strip_suffix("/host/sources.yaml").expect("host file");
        assert_eq!(
            repo["spec"]["sparseCheckout"],
            serde_json::json!([format!("{root}/inside")]),
            "{path}"
        );
        assert_eq!(repo["spec"]["interval"], "10m", "{path}");
    }
    // The platform's own credential may not be named as the tenants' one.
    let mut intent = support::example_files();
    let platform = intent["platform.yaml"].replace(
        "    secretName: flux-system\n",
        "    secretName: flux-system\n    tenantSecretName: flux-system\n",
    );
    intent.insert("platform.yaml".to_owned(), platform);
    let errors = support::diagnostics(&intent);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.git.tenantSecretName") && e.contains("read-only")),
        "{errors:#?}"
    );
}

#[test]
fn releases_retry_without_hands_and_functions_do_not_hold_the_workspace() {
    let files = example();
    for (path, ns, release) in vclusters(&files) {
        for action in ["install", "upgrade"] {
            assert_eq!(
                release["spec"][action]["strategy"]["name"], "RetryOnFailure",
                "{path}: {action}"
            );
        }
        let root = path.strip_suffix("/host/vcluster.yaml").expect("host file");
        let entry = &support::yaml_docs(&files[&format!("{root}/flux.yaml")])[0];
        assert_ne!(
            entry["spec"]["wait"], true,
            "{root}: wait ties health to every object"
        );
        let checks: BTreeSet<(String, String)> = entry["spec"]["healthChecks"]
            .as_array()
            .expect("healthChecks")
            .iter()
            .map(|c| {
                assert_eq!(c["namespace"], ns.as_str());
                (
                    c["kind"].as_str().expect("kind").to_owned(),
                    c["name"].as_str().expect("name").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            checks,
            BTreeSet::from([
                ("HelmRelease".to_owned(), "vcluster".to_owned()),
                ("Kustomization".to_owned(), "inside".to_owned()),
            ])
        );
    }
}

#[test]
fn the_virtual_kubernetes_is_never_newer_than_the_host() {
    let files = example();
    for (path, _, release) in vclusters(&files) {
        // The example's clusters default to v1.35.0; the dedicated plan pins v1.35.0 too.
        assert_eq!(
            release["spec"]["values"]["controlPlane"]["distro"]["k8s"]["version"], "v1.35.0",
            "{path}"
        );
    }
    let mut intent = support::example_files();
    let platform = intent["platform.yaml"].replace(
        "        kubernetesVersion: v1.35.0\n",
        "        kubernetesVersion: v1.36.0\n",
    );
    assert_ne!(platform, intent["platform.yaml"]);
    intent.insert("platform.yaml".to_owned(), platform);
    let errors = support::diagnostics(&intent);
    assert!(
        errors.iter().any(|e| e.contains("acme/prod/workspace.yaml")
            && e.contains("spec.cluster")
            && e.contains("newer than cluster")),
        "{errors:#?}"
    );
    let mut intent = support::example_files();
    let platform = intent["platform.yaml"].replace(
        "      domain: home.example.com\n",
        "      domain: home.example.com\n      kubernetesVersion: latest\n",
    );
    intent.insert("platform.yaml".to_owned(), platform);
    let errors = support::diagnostics(&intent);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.clusters[0].kubernetesVersion")),
        "{errors:#?}"
    );
}

#[test]
fn fluxs_identity_inside_is_put_back_from_the_host() {
    let files = example();
    for (path, ns, release) in vclusters(&files) {
        let root = path.strip_suffix("/host/vcluster.yaml").expect("host file");
        // Flux impersonates this user inside the vCluster.
        let sync = &support::yaml_docs(&files[&format!("{root}/host/sync.yaml")])[0];
        let user = format!(
            "system:serviceaccount:{ns}:{}",
            sync["spec"]["serviceAccountName"]
                .as_str()
                .expect("serviceAccountName")
        );
        let manifests =
            release["spec"]["values"]["experimental"]["deploy"]["vcluster"]["manifests"]
                .as_str()
                .expect("deploy manifests");
        let docs = support::yaml_docs(&files[&format!("{root}/host/identity.yaml")]);
        let config = docs
            .iter()
            .find(|d| d["kind"] == "ConfigMap")
            .expect("ConfigMap");
        let binding_text = config["data"]["binding.yaml"]
            .as_str()
            .expect("binding.yaml");
        // The same binding the vCluster creates at start.
        assert_eq!(binding_text.trim(), manifests.trim(), "{root}");
        let binding = &support::yaml_docs(binding_text)[0];
        assert_eq!(binding["kind"], "ClusterRoleBinding");
        assert_eq!(binding["subjects"][0]["name"], user.as_str(), "{root}");
        let job = docs
            .iter()
            .find(|d| d["kind"] == "CronJob")
            .expect("CronJob");
        let pod = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let args = strings(&pod["containers"][0]["args"]);
        assert!(
            args.contains("--kubeconfig=/etc/vcluster/config"),
            "{args:?}"
        );
        assert!(
            args.contains("--filename=/etc/identity/binding.yaml"),
            "{args:?}"
        );
        let volumes = pod["volumes"].as_array().expect("volumes");
        // The vCluster's own admin kubeconfig, which nothing inside the vCluster can revoke.
        assert!(
            volumes
                .iter()
                .any(|v| v["secret"]["secretName"]
                    == sync["spec"]["kubeConfig"]["secretRef"]["name"]),
            "{root}: {volumes:?}"
        );
        assert!(
            volumes
                .iter()
                .any(|v| v["configMap"]["name"] == config["metadata"]["name"]),
            "{root}: {volumes:?}"
        );
    }
}
