//! `gitops-repo-example/` is exactly what the compiler renders from its `intent/`.
//! With `UPDATE_GOLDEN=1` the test rewrites the folder instead of failing.

use std::path::Path;

#[test]
fn example_repository_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gitops-repo-example");
    let files = server::tree::read_intent(&root.join("intent")).expect("example intent readable");
    let compiler = compiler::Compiler::new(&compiler::Catalog::builtin()).expect("catalog loads");
    let output = compiler
        .compile_files(&files, &compiler::Options::default())
        .expect("compiles");
    assert!(
        output.diagnostics.is_empty(),
        "example has diagnostics: {:#?}",
        output.diagnostics
    );
    let changes = server::tree::changes(&output, &root).expect("tree readable");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        server::tree::apply(&changes, &root).expect("tree written");
        return;
    }
    let missing: Vec<&String> = changes
        .write
        .keys()
        .filter(|p| !changes.old.contains_key(*p))
        .collect();
    let changed: Vec<&String> = changes
        .write
        .keys()
        .filter(|p| changes.old.contains_key(*p))
        .collect();
    assert!(
        changes.is_empty(),
        "gitops-repo-example is stale (run UPDATE_GOLDEN=1 cargo test -p tests --test example)\n\
         missing: {missing:?}\nchanged: {changed:?}\nextra: {:?}\n{}",
        changes.delete,
        server::cli::diff(&changes)
    );
}
