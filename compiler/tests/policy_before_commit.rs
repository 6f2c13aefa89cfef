//! Policy before commit: the compiler's verdict on a table of CronJob containers (images
//! and resources) under plan `shared-small` of the example, with the plan's project limit
//! range and with none, written to `tests/conformance/testdata/policy-before-commit.json`.
//! `tests/conformance/test_policy_before_commit.py` evaluates the rendered policies of
//! `gitops-repo-example/` on the same containers (after the rendered limit range, with the
//! day-one checker's CEL evaluator) and fails unless they deny exactly what the compiler
//! refused. `UPDATE_GOLDEN=1` rewrites the table; a stale one fails here.
#![allow(clippy::disallowed_methods)] // reads and writes the fixture

mod support;

use std::path::Path;

use serde_json::{Value, json};

const IMAGES: &[&str] = &[
    "ghcr.io/acme/app:1",
    "nginx",
    "nginx:1.27",
    "library/nginx",
    "docker.io/library/nginx:1",
    "acme/app:2",
    "docker.io/acme/app",
    "evil.example.com/x:1",
    "ghcr.io.evil.example.com/x",
    "localhost/app",
    "registry:5000/app",
    "registry.k8s.io/pause:3.10",
];

const RESOURCES: &[(Option<&str>, Option<&str>)] = &[
    (Some("100m"), Some("64Mi")),
    (None, None),
    (Some("100m"), None),
    (None, Some("64Mi")),
];

/// The cases and the compiler's verdicts, with the example's platform `platform`.
fn verdicts(platform: &str) -> Vec<Value> {
    let mut files = support::example_files();
    files.insert("platform.yaml".to_owned(), platform.to_owned());
    let mut jobs = Vec::new();
    let mut cases = Vec::new();
    for (i, image) in IMAGES.iter().enumerate() {
        for (j, (cpu, memory)) in RESOURCES.iter().enumerate() {
            let name = format!("c{i}-{j}");
            let mut resources = serde_json::Map::new();
            if let Some(cpu) = cpu {
                resources.insert("cpu".into(), json!(cpu));
            }
            if let Some(memory) = memory {
                resources.insert("memory".into(), json!(memory));
            }
            jobs.push(json!({
                "name": name, "schedule": "@daily", "image": image, "resources": resources,
            }));
            cases.push((name, *image, *cpu, *memory));
        }
    }
    let project = json!({
        "apiVersion": "hexabase.ai/v1alpha1", "kind": "Project",
        "metadata": {"name": "cases"}, "spec": {"cronJobs": jobs},
    });
    files.insert(
        "acme/dev/projects/cases.yaml".to_owned(),
        serde_json::to_string_pretty(&project).expect("JSON is YAML"),
    );
    let diagnostics = support::diagnostics(&files);
    let file = "intent/acme/dev/projects/cases.yaml";
    for d in &diagnostics {
        assert!(
            d.contains(file) && (d.contains("].image") || d.contains("].resources.")),
            "only the policy rules refuse: {d}"
        );
    }
    cases
        .into_iter()
        .map(|(name, image, cpu, memory)| {
            let at = format!("spec.cronJobs[{name}].");
            let refused: Vec<String> = diagnostics
                .iter()
                .filter(|d| d.contains(&at))
                .map(|d| {
                    let field = d.split(&at).nth(1).unwrap_or_default();
                    field.split(':').next().unwrap_or_default().to_owned()
                })
                .collect();
            json!({"name": name, "image": image, "cpu": cpu, "memory": memory, "refused": refused})
        })
        .collect()
}

#[test]
fn the_compiler_refuses_what_the_plan_policies_deny() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let platform = std::fs::read_to_string(root.join("gitops-repo-example/intent/platform.yaml"))
        .expect("the example platform");
    // The same platform, with no defaults in shared-small's project limit range.
    let marker = "      projectLimitRange:\n        defaultMemory: 256Mi\n        defaultRequestCpu: 50m\n        defaultRequestMemory: 64Mi\n";
    assert!(platform.contains(marker), "the example's limit range moved");
    let bare = platform.replace(marker, "      projectLimitRange:\n");
    let table = json!({
        "plan": "shared-small",
        "workspace": "acme/dev",
        "withLimitRange": verdicts(&platform),
        "withoutLimitRange": verdicts(&bare),
    });
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&table).expect("serializes")
    );
    let path = root.join("tests/conformance/testdata/policy-before-commit.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write the table");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "tests/conformance/testdata/policy-before-commit.json is stale: run \
         `UPDATE_GOLDEN=1 cargo test -p compiler --test policy_before_commit`"
    );
    // Some of each, or the table proves little.
    let all = table["withoutLimitRange"].as_array().expect("cases");
    assert!(all.iter().any(|c| c["refused"] == json!([])));
    assert!(all.iter().any(|c| c["refused"] == json!(["image"])));
    assert!(
        all.iter()
            .any(|c| c["refused"] == json!(["resources.cpu", "resources.memory"]))
    );
}
