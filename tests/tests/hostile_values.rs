//! Hostile text through the real consumers: the example intent (`gitops-repo-example/intent/`)
//! with every free-text field (display names, CronJob commands and arguments, environment
//! values) set to strings the compiler accepts but YAML, templates and shells treat specially
//! (quotes, YAML indicators and document markers, `{{ }}`, words YAML 1.1 reads as booleans or
//! numbers, Unicode line separators, BOM, right-to-left marks, values at their size limit) is
//! compiled; the tree passes `tests/conformance/check_tree.py` (the real `kubectl kustomize`
//! and `helm`, strict schemas, the day-one checks); and every value comes out of
//! `kubectl kustomize` exactly as it went in.
//!
//! Needs the tools of `scripts/tools.sh` (`.tools/`) and the upstream snapshot; without them it
//! says SKIPPED, except in CI (`CI` set), where it fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use compiler::IntentFiles;
use serde_json::Value;

#[path = "../../compiler/tests/support/text_rule.rs"]
mod text_rule;

/// Single-line values (display names hold no newline), each under the 256-character limit.
fn single_line() -> Vec<String> {
    let mut values: Vec<String> = [
        "\"double\" 'single' \\back\\slash: #hash - item, [flow] {map}",
        "{{ .Values.secret }} {% if true %}x{% endif %}{# c #} ${HOME} $(id) `id`",
        "--- ... &anchor *alias !!binary !tag | > <<: ? @ ~ %YAML 1.2",
        "null",
        "no",
        "0x1F",
        "1e3",
        ".inf",
        " leading and trailing spaces ",
        "\u{a0}nbsp \u{2028}ls \u{2029}ps \u{feff}bom \u{202e}rtl \u{200b}zw 😀 Ωẞ中文",
        "- item",
        "key: value",
        "'",
        "\"",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // Exactly the limit, in characters, with multi-byte ones.
    values.push("é😀\"':{".repeat(256 / 6) + &"x".repeat(256 % 6));
    values
}

/// Multi-line values (arguments, commands and environment values may hold newlines).
fn multi_line() -> Vec<String> {
    let mut values: Vec<String> = [
        "line one\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\n...\n",
        "#!/bin/sh\nset -eu\necho \"{{ x }}\" | tr : ' '\n\t- item\n  key: value # comment\n",
        "\n\nleading newlines, trailing spaces   \n  ",
        "trailing newline\n",
        "|\n  block\n>\n  folded\n",
        "\u{2028}\u{2029}\n\u{feff}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // Near the 32 KiB limit of one argument or value.
    let line = "- {{ x }}: \"q\" 'q' # c ---\n";
    values.push(line.repeat(30 * 1024 / line.len()));
    values
}

fn example(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gitops-repo-example/intent")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

const EXAMPLE: [&str; 10] = [
    "platform.yaml",
    "acme/organization.yaml",
    "acme/dev/workspace.yaml",
    "acme/dev/projects/web.yaml",
    "acme/dev/projects/api.yaml",
    "acme/prod/workspace.yaml",
    "acme/prod/projects/shop.yaml",
    "globex/organization.yaml",
    "globex/research/workspace.yaml",
    "globex/research/projects/models.yaml",
];

/// Environment variables holding every value.
fn hostile_env(values: &[String]) -> Vec<Value> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({ "name": format!("HB_HOSTILE_{i}"), "value": v }))
        .collect()
}

/// The example with every free-text field hostile: each organization, workspace and project
/// gets a display name (in turn from [`single_line`]); each CronJob gets every multi-line value
/// as its command and arguments; each CronJob and Function gets one environment variable per
/// value, single- and multi-line.
fn hostile_intent() -> IntentFiles {
    let names = single_line();
    let texts = multi_line();
    let every: Vec<String> = names.iter().chain(&texts).cloned().collect();
    let mut next_name = names.iter().cycle();
    let mut files = IntentFiles::new();
    for rel in EXAMPLE {
        let mut doc: Value = serde_saphyr::from_str(&example(rel)).expect("example parses");
        if rel != "platform.yaml" {
            let spec = doc["spec"].as_object_mut().expect("a spec");
            spec.insert(
                "displayName".into(),
                next_name.next().unwrap().clone().into(),
            );
            for list in ["cronJobs", "functions"] {
                for item in spec
                    .get_mut(list)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let item = item.as_object_mut().expect("an item");
                    let mut env = item
                        .get("env")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    env.extend(hostile_env(&every));
                    item.insert("env".into(), env.into());
                    if list == "cronJobs" {
                        item.insert("command".into(), texts.clone().into());
                        item.insert("args".into(), texts.clone().into());
                    }
                }
            }
        }
        files.insert(rel.to_owned(), compiler::intent::to_yaml(&doc));
    }
    files
}

/// Every string leaf of `value`.
fn leaves(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        _ => {}
    }
}

fn kustomization_dirs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    if dir.join("kustomization.yaml").is_file() {
        out.push(dir.to_owned());
    }
    for entry in std::fs::read_dir(dir).expect("read a folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            kustomization_dirs(&path, out);
        }
    }
}

#[test]
fn hostile_values_pass_kustomize_and_the_strict_schemas_unchanged() {
    let Some(conformance) = tests::Conformance::find() else {
        return;
    };
    let files = hostile_intent();
    // The values are ones the compiler accepts: the rule it holds text to refuses none of them.
    for value in single_line() {
        assert!(
            !value.chars().any(|c| text_rule::refused(c, false)),
            "{value:?}"
        );
    }
    for value in multi_line() {
        assert!(
            !value.chars().any(|c| text_rule::refused(c, true)),
            "{value:?}"
        );
    }
    let compiler = compiler::Compiler::new(&compiler::Catalog::builtin()).expect("catalog loads");
    let output = compiler
        .compile_files(&files, &compiler::Options::default())
        .expect("compiles");
    assert!(
        output.diagnostics.is_empty(),
        "the hostile intent has diagnostics: {:#?}",
        output.diagnostics
    );

    let intent: Vec<(String, String)> = files
        .iter()
        .map(|(rel, text)| (format!("intent/{rel}"), text.clone()))
        .collect();
    let written = output
        .files
        .iter()
        .chain(intent.iter().map(|(p, t)| (p, t)));
    let (tree, summary) = conformance.check("hostile-values", written, &[]);

    // What the cluster gets: every Kustomization under tenants/, built by the real kustomize.
    let mut dirs = Vec::new();
    kustomization_dirs(&tree.0.join("tenants"), &mut dirs);
    assert!(!dirs.is_empty(), "no kustomization under tenants/");
    let mut built = BTreeSet::new();
    for dir in &dirs {
        let result = Command::new(conformance.kubectl())
            .arg("kustomize")
            .arg(dir)
            .output()
            .expect("kubectl runs");
        assert!(
            result.status.success(),
            "kubectl kustomize {} fails:\n{}",
            dir.display(),
            String::from_utf8_lossy(&result.stderr)
        );
        let text = String::from_utf8(result.stdout).expect("kustomize writes UTF-8");
        for doc in serde_saphyr::from_multiple::<Value>(&text)
            .unwrap_or_else(|e| panic!("kustomize output of {} parses: {e}", dir.display()))
        {
            leaves(&doc, &mut built);
        }
    }
    let lost: Vec<String> = single_line()
        .into_iter()
        .chain(multi_line())
        .filter(|v| !built.contains(v))
        .collect();
    assert!(
        lost.is_empty(),
        "values kubectl kustomize does not give back exactly: {lost:#?}"
    );
    eprintln!("hostile values: {summary}");
}
