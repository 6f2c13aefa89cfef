//! The one place golden tests call the compiler API.
#![allow(clippy::disallowed_methods, dead_code)] // tests read fixtures from disk

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use compiler::{Catalog, Compiler, IntentFiles, Options};

/// The example intent, as files.
pub(crate) fn example_files() -> IntentFiles {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitops-repo-example/intent");
    let mut files = IntentFiles::new();
    read(&root, &root, &mut files);
    files
}

fn read(root: &Path, dir: &Path, files: &mut IntentFiles) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(rel, std::fs::read_to_string(&path).expect("fixture file"));
        }
    }
}

/// Applies an overlay: documents separated by `---`, each starting with `# path: <file>` (the
/// document replaces or adds that intent file) or `# delete: <file>`.
pub(crate) fn apply_overlay(files: &mut IntentFiles, overlay: &str) -> BTreeSet<(String, String)> {
    let mut touched = BTreeSet::new();
    for doc in overlay.split("\n---\n") {
        let doc = doc.trim_start_matches("---\n");
        let (first, body) = doc.split_once('\n').unwrap_or((doc, ""));
        let (verb, path) = first
            .strip_prefix("# ")
            .and_then(|s| s.split_once(": "))
            .expect("each overlay document starts with `# path: <file>` or `# delete: <file>`");
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() >= 3 {
            touched.insert((parts[0].to_owned(), parts[1].to_owned()));
        }
        match verb {
            "path" => {
                files.insert(path.to_owned(), body.to_owned());
            }
            "delete" => {
                files.remove(path);
            }
            other => panic!("unknown overlay verb {other}"),
        }
    }
    touched
}

/// Compiles the example with `overlay` applied; returns the touched workspaces' files and
/// every diagnostic as one text.
pub(crate) fn render_case(overlay: &str) -> String {
    let mut files = example_files();
    let touched = apply_overlay(&mut files, overlay);
    let compiler = Compiler::new(&Catalog::builtin()).expect("built-in catalog loads");
    let output = compiler
        .compile_files(&files, &Options::default())
        .expect("compiler does not fail");
    let diagnostics = &output.diagnostics;
    let mut text = String::new();
    for (path, content) in &output.files {
        let parts: Vec<&str> = path.split('/').collect();
        let in_case = matches!(parts.as_slice(), ["tenants", _, org, ws, ..] if touched.contains(&((*org).to_owned(), (*ws).to_owned())));
        if in_case {
            let _ = write!(text, "# ---- {path} ----\n{content}");
        }
    }
    for d in diagnostics {
        let _ = writeln!(text, "{d}");
    }
    if text.is_empty() {
        text.push_str("(no files, no diagnostics)\n");
    }
    text
}

/// Compiles `files`; panics on any diagnostic. Returns the rendered files.
pub(crate) fn compile_clean(files: &IntentFiles) -> std::collections::BTreeMap<String, String> {
    let compiler = Compiler::new(&Catalog::builtin()).expect("catalog loads");
    let output = compiler
        .compile_files(files, &Options::default())
        .expect("compiles");
    assert!(output.diagnostics.is_empty(), "{:#?}", output.diagnostics);
    output.files
}

/// Every diagnostic of compiling `files`, one `file: path: message` line each.
pub(crate) fn diagnostics(files: &IntentFiles) -> Vec<String> {
    let compiler = Compiler::new(&Catalog::builtin()).expect("catalog loads");
    compiler
        .compile_files(files, &Options::default())
        .expect("compiles")
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The documents of one rendered YAML file, as JSON values.
pub(crate) fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    text.split("\n---\n")
        .map(|d| serde_saphyr::from_str::<serde_json::Value>(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}
