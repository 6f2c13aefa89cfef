//! A sample of the benchmarks' workload (`compiler/benches/workload/`), rendered by the
//! compiler, passes the independent conformance checker, day-one checks included
//! (`tests/conformance/check_tree.py`): one workspace for each cluster and plan.
//!
//! Needs the tools of `scripts/tools.sh` (`.tools/`) and the upstream snapshot
//! (`../shared/upstream` or `$HEXABASE_UPSTREAM`); without them it says SKIPPED, except in CI
//! (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)] // the benches use more of it than this test does
#[path = "../../compiler/benches/workload/mod.rs"]
mod workload;

/// Workspaces 0, 100, 200 and 300 are home/shared, edge/shared, home/dedicated and
/// edge/dedicated (see `workload::placement`).
const SAMPLE: [usize; 4] = [0, 100, 200, 300];

fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI needs {why}");
    eprintln!("SKIPPED: {why}");
}

#[test]
fn bench_workload_sample_passes_the_conformance_checker() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = repo.join(".tools/venv/bin/python");
    let (kubectl, helm) = (
        repo.join(".tools/bin/kubectl"),
        repo.join(".tools/bin/helm"),
    );
    let upstream = std::env::var_os("HEXABASE_UPSTREAM")
        .map_or_else(|| repo.join("../shared/upstream"), PathBuf::from);
    for tool in [&python, &kubectl, &helm] {
        if !tool.is_file() {
            return skip(&format!("{} (run scripts/tools.sh)", tool.display()));
        }
    }
    if !upstream.is_dir() {
        return skip(&format!("the upstream snapshot at {}", upstream.display()));
    }

    let wanted: Vec<(String, String)> = SAMPLE
        .iter()
        .map(|&i| {
            let (org, ws, _, _) = workload::placement(i);
            (org, ws)
        })
        .collect();
    let files: compiler::intent::IntentFiles = workload::workload(SAMPLE[SAMPLE.len() - 1] + 1)
        .into_iter()
        .filter(|(path, _)| {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                ["platform.yaml"] => true,
                [org, "organization.yaml"] => wanted.iter().any(|(o, _)| o == org),
                [org, ws, ..] => wanted.iter().any(|(o, w)| o == org && w == ws),
                _ => false,
            }
        })
        .collect();
    let compiler = compiler::Compiler::new(&compiler::Catalog::builtin()).expect("catalog loads");
    let output = compiler
        .compile_files(&files, &compiler::Options::default())
        .expect("compiles");
    assert!(
        output.diagnostics.is_empty(),
        "the sample has diagnostics: {:#?}",
        output.diagnostics
    );

    let tree = std::env::temp_dir().join(format!("hexabase-bench-sample-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tree);
    let written = output
        .files
        .iter()
        .map(|(rel, text)| (rel.clone(), text.clone()))
        .chain(
            files
                .iter()
                .map(|(rel, text)| (format!("intent/{rel}"), text.clone())),
        );
    for (rel, text) in written {
        let path = tree.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a folder")).expect("folder");
        std::fs::write(&path, text).expect("file written");
    }
    let result = Command::new(&python)
        .arg(repo.join("tests/conformance/check_tree.py"))
        .arg("--tree")
        .arg(&tree)
        .arg("--upstream")
        .arg(&upstream)
        .arg("--kubectl")
        .arg(&kubectl)
        .arg("--helm")
        .arg(&helm)
        .output()
        .expect("the checker runs");
    let _ = std::fs::remove_dir_all(&tree);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "the bench workload sample fails the conformance checker:\n{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("conformance: "))
        .unwrap_or_default();
    assert!(
        summary.ends_with(" passed, 0 failed"),
        "no summary line:\n{stdout}"
    );
    eprintln!(
        "bench workload sample ({} workspaces): {summary}",
        SAMPLE.len()
    );
}
