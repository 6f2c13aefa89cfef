//! A sample of the benchmarks' workload (`compiler/benches/workload/`), rendered by the
//! compiler, passes the independent conformance checker, day-one checks included
//! (`tests/conformance/check_tree.py`): one workspace for each cluster and plan.
//!
//! Needs the tools of `scripts/tools.sh` (`.tools/`) and the upstream snapshot
//! (`../shared/upstream` or `$HEXABASE_UPSTREAM`); without them it says SKIPPED, except in CI
//! (`CI` set), where it fails.

#[allow(dead_code)] // the benches use more of it than this test does
#[path = "../../compiler/benches/workload/mod.rs"]
mod workload;

/// Workspaces 0, 100, 200 and 300 are home/shared, edge/shared, home/dedicated and
/// edge/dedicated (see `workload::placement`).
const SAMPLE: [usize; 4] = [0, 100, 200, 300];

#[test]
fn bench_workload_sample_passes_the_conformance_checker() {
    let Some(conformance) = tests::Conformance::find() else {
        return;
    };

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

    let intent: Vec<(String, String)> = files
        .iter()
        .map(|(rel, text)| (format!("intent/{rel}"), text.clone()))
        .collect();
    let written = output
        .files
        .iter()
        .chain(intent.iter().map(|(p, t)| (p, t)));
    let (_tree, summary) = conformance.check("bench-sample", written, &[]);
    eprintln!(
        "bench workload sample ({} workspaces): {summary}",
        SAMPLE.len()
    );
}
