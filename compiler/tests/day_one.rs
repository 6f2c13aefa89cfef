//! What the cluster needs from the rendered repository on day one (issue #22), read from the
//! compiler's output for the example intent:
//!
//! - the plan's registry policy admits exactly the platform images the rendered values pin
//!   (the vCluster's CoreDNS and hosts-rewrite init container, the shared monitoring agent)
//!   and the vCluster control plane's, whatever registries the plan allows;
//! - Kyverno's background controller gets the RBAC the sync-git-credentials policy needs, and
//!   write access to no Secret but the copies;
//! - the monitoring releases ask for nothing the workspace namespace denies, and the shared
//!   agent scrapes only the pods that ask for it.
//!
//! The conformance checker (`tests/conformance`) proves the same against the real charts and a
//! CEL implementation; these tests keep the compiler's side of the contract.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use compiler::IntentFiles;
use serde_json::Value;

fn compile(files: &IntentFiles) -> BTreeMap<String, String> {
    support::compile_clean(files)
}

fn docs(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| serde_saphyr::from_str::<Value>(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {docs:#?}"))
}

fn image(v: &Value) -> String {
    format!(
        "{}/{}:{}",
        v["registry"].as_str().expect("registry"),
        v["repository"].as_str().expect("repository"),
        v["tag"].as_str().expect("tag")
    )
}

/// Workspace roots (`tenants/<cluster>/<org>/<ws>`) with their plan, from the namespaces.
fn workspaces(files: &BTreeMap<String, String>) -> Vec<(String, String)> {
    files
        .iter()
        .filter_map(|(path, text)| {
            let root = path.strip_suffix("/host/namespace.yaml")?;
            let ns = docs(text)
                .into_iter()
                .find(|d| d["kind"] == "Namespace")
                .expect("a namespace");
            let plan = ns["metadata"]["labels"]["hexabase.ai/plan"]
                .as_str()
                .expect("plan label")
                .to_owned();
            Some((root.to_owned(), plan))
        })
        .collect()
}

fn variable(policy: &Value, name: &str) -> String {
    policy["spec"]["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["expression"].as_str())
        .unwrap_or_else(|| panic!("no variable {name}"))
        .to_owned()
}

/// The images a workspace's rendered values pin for pods the platform runs in its host
/// namespace, with where each comes from.
fn pinned_images(files: &BTreeMap<String, String>, root: &str) -> Vec<(&'static str, String)> {
    let vcluster = docs(&files[&format!("{root}/host/vcluster.yaml")]);
    let values = &find(&vcluster, "HelmRelease", "vcluster")["spec"]["values"];
    let mut out = vec![
        (
            "controlPlane.coredns.deployment.image",
            values["controlPlane"]["coredns"]["deployment"]["image"]
                .as_str()
                .expect("the vCluster's CoreDNS image is pinned")
                .to_owned(),
        ),
        (
            "sync.toHost.pods.rewriteHosts.initContainer.image",
            image(&values["sync"]["toHost"]["pods"]["rewriteHosts"]["initContainer"]["image"]),
        ),
    ];
    // The control plane runs the chart's default images: the syncer at the chart's version, the
    // Kubernetes distro at the version the values pin.
    let release = find(&vcluster, "HelmRelease", "vcluster");
    let control_plane = &values["controlPlane"];
    assert!(control_plane["statefulSet"]["image"].is_null(), "{root}");
    assert!(control_plane["distro"]["k8s"]["image"].is_null(), "{root}");
    out.push((
        "the vCluster syncer (chart default)",
        format!(
            "ghcr.io/loft-sh/vcluster-pro:{}",
            release["spec"]["chart"]["spec"]["version"]
                .as_str()
                .expect("chart version")
        ),
    ));
    out.push((
        "the vCluster's Kubernetes (chart default)",
        format!(
            "ghcr.io/loft-sh/kubernetes:{}",
            control_plane["distro"]["k8s"]["version"]
                .as_str()
                .expect("pinned version")
        ),
    ));
    let monitoring = docs(&files[&format!("{root}/host/monitoring.yaml")]);
    let release = find(&monitoring, "HelmRelease", "monitoring");
    if release["spec"]["chart"]["spec"]["chart"] == "alloy" {
        let values = &release["spec"]["values"];
        out.push(("alloy image", image(&values["image"])));
        out.push((
            "alloy configReloader.image",
            image(&values["configReloader"]["image"]),
        ));
    }
    out
}

#[test]
fn registry_policy_admits_exactly_the_pinned_platform_images() {
    let files = compile(&support::example_files());
    let mut checked = 0;
    for (root, plan) in workspaces(&files) {
        let path = format!("infrastructure/policies/{plan}/restrict-image-registries.yaml");
        let Some(text) = files.get(&path) else {
            continue;
        };
        let policy = docs(text).remove(0);
        // The compiler writes CEL string literals that are also JSON strings.
        let admitted: BTreeSet<String> =
            serde_json::from_str(&variable(&policy, "platformImages")).expect("a list of strings");
        let prefixes: Vec<String> =
            serde_json::from_str(&variable(&policy, "allowedRegistries")).expect("strings");
        for (field, image) in pinned_images(&files, &root) {
            assert!(
                admitted.contains(&image),
                "{root}: {field} = {image} is not admitted by {path}: {admitted:?}"
            );
            checked += 1;
        }
        // The images of the example's shared plan are outside its prefixes: without the exact
        // list, the vCluster's own pods would be denied (the defect this guards against).
        let outside: Vec<&String> = admitted
            .iter()
            .filter(|i| !prefixes.iter().any(|p| i.starts_with(p.as_str())))
            .collect();
        assert!(!outside.is_empty(), "{admitted:?} within {prefixes:?}");
        // Exact references, compared with `in`: never a prefix a tenant could extend.
        for i in &admitted {
            assert!(!i.ends_with('/') && !i.ends_with(':'), "{i}");
        }
        for v in policy["spec"]["validations"]
            .as_array()
            .expect("validations")
        {
            let expr = v["expression"].as_str().expect("expression");
            assert!(
                !expr.contains("platformImages.exists"),
                "platform images are matched exactly: {expr}"
            );
        }
    }
    assert!(
        checked >= 4,
        "the example has a shared plan with the registry policy"
    );
}

#[test]
fn kyverno_may_copy_the_git_credential_and_write_no_other_secret() {
    let files = compile(&support::example_files());
    let policy = docs(&files["infrastructure/policies/sync-git-credentials.yaml"]).remove(0);
    let source = variable(&policy, "sourceSecretName");
    let source: String = serde_json::from_str(&source).expect("a string literal");
    let controllers = docs(&files["infrastructure/controllers/controllers.yaml"]);

    // Cluster-wide: list and watch only, aggregated into the chart's background controller.
    let watch = controllers
        .iter()
        .find(|d| {
            d["kind"] == "ClusterRole"
                && d["metadata"]["labels"]["rbac.kyverno.io/aggregate-to-background-controller"]
                    == "true"
        })
        .expect("a ClusterRole aggregated to Kyverno's background controller");
    for rule in watch["rules"].as_array().expect("rules") {
        let verbs: BTreeSet<&str> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(verbs, BTreeSet::from(["list", "watch"]), "{rule}");
    }

    // The source: get, by name, in flux-system only.
    let binding = controllers
        .iter()
        .find(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == "flux-system")
        .expect("a RoleBinding in flux-system");
    assert_eq!(
        binding["subjects"][0]["name"],
        "kyverno-background-controller"
    );
    assert_eq!(binding["subjects"][0]["namespace"], "kyverno");
    let role = find(
        &controllers,
        "Role",
        binding["roleRef"]["name"].as_str().expect("role name"),
    );
    assert_eq!(role["metadata"]["namespace"], "flux-system");
    assert_eq!(
        role["rules"][0]["resourceNames"],
        serde_json::json!([source])
    );
    assert_eq!(role["rules"][0]["verbs"], serde_json::json!(["get"]));

    // Each tenant namespace: create there, and change or delete only the copy.
    for (root, _) in workspaces(&files) {
        let kustomization = &files[&format!("{root}/host/kustomization.yaml")];
        assert!(kustomization.contains("git-credentials.yaml"), "{root}");
        let rbac = docs(&files[&format!("{root}/host/git-credentials.yaml")]);
        let binding = rbac
            .iter()
            .find(|d| d["kind"] == "RoleBinding")
            .expect("binding");
        assert_eq!(
            binding["subjects"][0]["name"],
            "kyverno-background-controller"
        );
        let role = find(
            &rbac,
            "Role",
            binding["roleRef"]["name"].as_str().expect("name"),
        );
        for rule in role["rules"].as_array().expect("rules") {
            let verbs = &rule["verbs"];
            if verbs == &serde_json::json!(["create"]) {
                continue;
            }
            assert_eq!(
                rule["resourceNames"],
                serde_json::json!([source]),
                "{root}: {rule}"
            );
        }
    }
}

#[test]
fn without_a_git_credential_kyverno_gets_no_secret_rights() {
    let mut files = support::example_files();
    let platform = files["platform.yaml"].replace("    secretName: flux-system\n", "");
    assert_ne!(
        platform, files["platform.yaml"],
        "the example sets secretName"
    );
    files.insert("platform.yaml".into(), platform);
    let out = compile(&files);
    assert!(!out.contains_key("infrastructure/policies/sync-git-credentials.yaml"));
    assert!(!out["infrastructure/controllers/controllers.yaml"].contains("secrets"));
    assert!(!out.keys().any(|p| p.ends_with("/git-credentials.yaml")));
}

#[test]
fn monitoring_asks_for_nothing_the_namespace_denies() {
    let files = compile(&support::example_files());
    let mut seen = BTreeSet::new();
    for (root, _) in workspaces(&files) {
        let monitoring = docs(&files[&format!("{root}/host/monitoring.yaml")]);
        let release = find(&monitoring, "HelmRelease", "monitoring");
        let values = &release["spec"]["values"];
        let chart = release["spec"]["chart"]["spec"]["chart"]
            .as_str()
            .expect("chart");
        seen.insert(chart.to_owned());
        if chart == "kube-prometheus-stack" {
            // hostNetwork, hostPID and hostPath: denied by Pod Security and the plan's policies.
            assert_eq!(values["nodeExporter"]["enabled"], false, "{root}");
            continue;
        }
        assert_eq!(values["controller"]["type"], "deployment", "{root}");
        for (what, resources) in [
            ("alloy", &values["alloy"]["resources"]),
            ("config reloader", &values["configReloader"]["resources"]),
        ] {
            for (section, key) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "memory"),
            ] {
                assert!(
                    resources[section][key].is_string(),
                    "{root}: {what} sets no {section}.{key}"
                );
            }
        }
        let config = values["alloy"]["configMap"]["content"]
            .as_str()
            .expect("the Alloy configuration");
        assert!(
            !config.contains("prometheus.exporter.unix"),
            "a pod on a shared node may not export the node's metrics"
        );
        assert!(
            config.contains("targets    = discovery.relabel.metrics.output"),
            "the scrape takes only relabelled targets:\n{config}"
        );
        assert!(
            config.contains("\"__meta_kubernetes_pod_annotation_prometheus_io_scrape\"")
                && config.contains("action        = \"keep\""),
            "only pods that ask to be scraped:\n{config}"
        );
    }
    assert_eq!(
        seen,
        BTreeSet::from(["alloy".to_owned(), "kube-prometheus-stack".to_owned()])
    );
}
