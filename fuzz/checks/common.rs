//! Shared by the checks: the example intent and one compiler.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use compiler::{Catalog, Compiler, Diagnostic, IntentFiles, Options, Output};

/// The example intent (`gitops-repo-example/intent/`), path relative to `intent/`.
pub(crate) const EXAMPLE: &[(&str, &str)] = &[
    (
        "platform.yaml",
        include_str!("../../gitops-repo-example/intent/platform.yaml"),
    ),
    (
        "acme/organization.yaml",
        include_str!("../../gitops-repo-example/intent/acme/organization.yaml"),
    ),
    (
        "acme/dev/workspace.yaml",
        include_str!("../../gitops-repo-example/intent/acme/dev/workspace.yaml"),
    ),
    (
        "acme/dev/projects/web.yaml",
        include_str!("../../gitops-repo-example/intent/acme/dev/projects/web.yaml"),
    ),
    (
        "acme/dev/projects/api.yaml",
        include_str!("../../gitops-repo-example/intent/acme/dev/projects/api.yaml"),
    ),
    (
        "acme/prod/workspace.yaml",
        include_str!("../../gitops-repo-example/intent/acme/prod/workspace.yaml"),
    ),
    (
        "acme/prod/projects/shop.yaml",
        include_str!("../../gitops-repo-example/intent/acme/prod/projects/shop.yaml"),
    ),
    (
        "globex/organization.yaml",
        include_str!("../../gitops-repo-example/intent/globex/organization.yaml"),
    ),
    (
        "globex/research/workspace.yaml",
        include_str!("../../gitops-repo-example/intent/globex/research/workspace.yaml"),
    ),
    (
        "globex/research/projects/models.yaml",
        include_str!("../../gitops-repo-example/intent/globex/research/projects/models.yaml"),
    ),
];

pub(crate) fn example_files() -> IntentFiles {
    EXAMPLE
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect()
}

pub(crate) fn example(path: &str) -> &'static str {
    EXAMPLE
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, t)| *t)
        .expect("an example file")
}

fn compiler() -> &'static Compiler {
    static COMPILER: OnceLock<Compiler> = OnceLock::new();
    COMPILER.get_or_init(|| Compiler::new(&Catalog::builtin()).expect("built-in catalog loads"))
}

/// What `hb compile` does: load, compile, merge diagnostics. A compiler `Error` is a bug (bad
/// intent must give diagnostics), so it panics.
pub(crate) fn compile(files: &IntentFiles) -> (Output, Vec<Diagnostic>) {
    let (intent, mut diagnostics) = compiler::intent::load(files);
    let output = compiler()
        .compile(&intent, &Options::default())
        .unwrap_or_else(|e| panic!("the compiler failed instead of reporting diagnostics: {e:?}"));
    diagnostics.extend(output.diagnostics.iter().cloned());
    (output, diagnostics)
}

/// Every rendered path is relative, has no `.`/`..`/empty segment and is one the compiler owns.
pub(crate) fn assert_paths_safe(files: &BTreeMap<String, String>) {
    for path in files.keys() {
        let bad = path.starts_with('/')
            || path.contains('\\')
            || path
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
            || !compiler::is_generated(path);
        assert!(!bad, "unsafe rendered path {path:?}");
    }
}
