//! Measures what ships, for the compiler's writer and incremental targets, and prints a
//! markdown table:
//!
//! 1. The writer `hb compile` uses (`server::tree::changes` then `server::tree::apply`: one
//!    thread, a temporary file and a rename per file) writing a fresh tree of 10,000 rendered
//!    workspaces, against `cp -r` of the same tree. Target: at most 1.5× `cp -r`.
//! 2. One changed project in 10,000 workspaces, on the engine's path: the new file through
//!    `Intent::set_file`, the changed workspace's fingerprint (`Compiler::fingerprints`) against
//!    the one recorded for its folder, and `Compiler::compile_workspaces` of what differs.
//!    Target: median < 2 ms.
//! 3. The same change through `hb compile` as it runs: load and compile the whole intent, then
//!    the changes against the tree on disk and `tree::apply`. Reported, no target.
//!
//! ```text
//! cargo bench -p server --bench hb_compile
//! ```
//!
//! Environment: `HB_BENCH_WORKSPACES` (default 10,000) shrinks the workload for a quick look;
//! `HB_BENCH_RUNS` the runs of part 2 (default 50).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use compiler::{Catalog, Compiler, Intent, Options, Output};
use server::tree;

mod common;

use common::{Report, Result, WORKSPACES, env_count, fmt, percentile, placement, progress};

fn main() -> Result<()> {
    let workspaces = env_count("HB_BENCH_WORKSPACES", WORKSPACES);
    let runs = env_count("HB_BENCH_RUNS", 50).max(1);
    let mut report = Report::default();
    let compiler = Compiler::new(&Catalog::builtin())?;
    progress(&format!("compiling {workspaces} workspaces"));
    let files = common::workload(workspaces);
    let (intent, diagnostics) = compiler::intent::load(&files);
    assert!(
        diagnostics.is_empty(),
        "the workload loads: {diagnostics:?}"
    );
    let output = compiler.compile(&intent, &Options::default())?;
    assert!(!output.has_errors(), "the workload compiles");
    let temp = TempDir::new()?;
    write(&mut report, &output, temp.0.as_path(), workspaces)?;
    incremental(&mut report, &compiler, intent, &output, runs, workspaces)?;
    hb_compile(&mut report, &compiler, &files, temp.0.as_path(), workspaces)?;
    report.print();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. The shipped writer against `cp -r`

fn write(report: &mut Report, output: &Output, temp: &Path, workspaces: usize) -> Result<()> {
    let source = temp.join("source");
    let changes = tree::changes(output, &source)?;
    tree::apply(&changes, &source)?;
    let mut ours = Vec::new();
    let mut cp = Vec::new();
    // Alternate, each after a `sync`, so neither pays for the other's writeback.
    for round in 0..3 {
        progress(&format!("write: round {}", round + 1));
        let target = temp.join(format!("apply-{round}"));
        run(&mut Command::new("sync"))?;
        let start = Instant::now();
        let changes = tree::changes(output, &target)?;
        tree::apply(&changes, &target)?;
        ours.push(start.elapsed());
        let target = temp.join(format!("cp-{round}"));
        run(&mut Command::new("sync"))?;
        let start = Instant::now();
        run(Command::new("cp").arg("-r").arg(&source).arg(&target))?;
        cp.push(start.elapsed());
    }
    let (ours, cp) = (percentile(&mut ours, 50), percentile(&mut cp, 50));
    let ratio = ours.as_secs_f64() / cp.as_secs_f64();
    report.row(
        "1",
        format!(
            "`hb compile`'s writer (`tree::changes` + `tree::apply`), fresh tree of {workspaces} \
             workspaces, {} files",
            output.files.len()
        ),
        fmt(ours),
        "",
        None,
    );
    report.row("1", "`cp -r` of that tree".into(), fmt(cp), "", None);
    report.row(
        "1",
        "Shipped writer / `cp -r`, wall time".into(),
        format!("{ratio:.2}×"),
        "≤ 1.5×",
        Some(ratio <= 1.5),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. One change on the engine's path

fn incremental(
    report: &mut Report,
    compiler: &Compiler,
    mut intent: Intent,
    output: &Output,
    runs: usize,
    workspaces: usize,
) -> Result<()> {
    let (org, ws, _, _) = placement((workspaces / 2 + 7) % workspaces);
    let path = format!("{org}/{ws}/projects/web.yaml");
    let key = (org.clone(), ws.clone());
    // What the writer recorded for each folder: the fingerprint it was rendered from.
    let recorded: BTreeMap<(String, String), String> = output
        .workspaces
        .iter()
        .filter_map(|(k, w)| {
            let (o, w2) = k.split_once('/')?;
            Some(((o.to_owned(), w2.to_owned()), w.fingerprint.clone()))
        })
        .collect();
    let original = intent.organizations[&org].workspaces[&ws].projects["web"].project();
    let mut times = Vec::new();
    for run in 0..runs {
        let mut changed = original.clone();
        changed.spec.quota.requests_cpu = Some(format!("{}", 5 + run % 3));
        let text = compiler::intent::to_yaml(&changed);
        let start = Instant::now();
        let problems = intent.set_file(&path, Some(&text));
        let names: BTreeSet<(String, String)> = [key.clone()].into();
        let now = compiler.fingerprints(&intent, &names);
        let stale: BTreeSet<(String, String)> = names
            .into_iter()
            .filter(|k| now.get(k) != recorded.get(k))
            .collect();
        let out = compiler.compile_workspaces(&intent, &stale)?;
        times.push(start.elapsed());
        assert!(problems.is_empty() && stale.len() == 1 && out.workspaces.len() == 1);
    }
    let p50 = percentile(&mut times, 50);
    let p90 = percentile(&mut times, 90);
    report.row(
        "2",
        format!(
            "Engine path: `set_file` + `fingerprints` + `compile_workspaces`, 1 changed project \
             of {workspaces} workspaces, {runs} runs"
        ),
        format!("median {} (p90 {})", fmt(p50), fmt(p90)),
        "< 2 ms",
        Some(p50 < Duration::from_millis(2)),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. The same change through `hb compile`

fn hb_compile(
    report: &mut Report,
    compiler: &Compiler,
    files: &compiler::IntentFiles,
    temp: &Path,
    workspaces: usize,
) -> Result<()> {
    let root = temp.join("source");
    let (org, ws, _, _) = placement((workspaces / 2 + 7) % workspaces);
    let path = format!("{org}/{ws}/projects/web.yaml");
    let mut files = files.clone();
    let mut times = Vec::new();
    for run in 0..3 {
        progress(&format!("hb compile: run {}", run + 1));
        let mut project: compiler::intent::Project = serde_saphyr::from_str(&files[&path])?;
        project.spec.quota.requests_cpu = Some(format!("{}", 5 + run));
        files.insert(path.clone(), compiler::intent::to_yaml(&project));
        let start = Instant::now();
        let (intent, _) = compiler::intent::load(&files);
        let output = compiler.compile(&intent, &Options::default())?;
        let changes = tree::changes(&output, &root)?;
        tree::apply(&changes, &root)?;
        times.push(start.elapsed());
        assert!(!changes.is_empty() && changes.delete.is_empty());
    }
    report.row(
        "3",
        format!(
            "`hb compile` after 1 changed project of {workspaces} workspaces (load, full \
             compile, changes against the tree, apply)"
        ),
        format!("median {}", fmt(percentile(&mut times, 50))),
        "",
        None,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn run(command: &mut Command) -> Result<()> {
    let status = command.status()?;
    if !status.success() {
        return Err(format!("{command:?} failed: {status}").into());
    }
    Ok(())
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("hb-bench-compile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
