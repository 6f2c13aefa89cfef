//! The architecture test: the layering rules of `server/src` hold (issue #13).
//!
//! No module under `service/`, `store/` or `gitops/` imports `crate::http`; `git2` appears only
//! under `gitops/`; `sqlx` appears only under `store/`; the modules of `server/src` import each
//! other without a loop; and no file has more than 600 lines of non-test code without a
//! `//! Size: <reason>` line at its top.
//! The real tree is checked by the first test; the others break one rule at a time in a small
//! synthetic tree in a temp dir. See rules.rs for what counts as a module, an edge and test code.

mod rules;

use std::path::Path;

use rules::{SIZE_LIMIT, check};

#[test]
fn server_src_keeps_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = check(&src, "server/src");
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        violations.is_empty(),
        "{} architecture violation(s) in server/src (see ARCHITECTURE.md, \"The architecture test\"):\n{}",
        violations.len(),
        report.join("\n")
    );
}

/// Writes a synthetic `src` folder: `(path, text)` pairs.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
        std::fs::write(path, text).expect("write a file");
    }
    dir
}

fn violations(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tree(files);
    check(dir.path(), "src")
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The violations whose message contains `text`.
fn containing<'a>(found: &'a [String], text: &str) -> Vec<&'a String> {
    found.iter().filter(|v| v.contains(text)).collect()
}

/// The violations whose message starts with `text`.
fn starting<'a>(found: &'a [String], text: &str) -> Vec<&'a String> {
    found.iter().filter(|v| v.starts_with(text)).collect()
}

const LIB: &str = "pub mod http;\npub mod service;\npub mod store;\npub mod gitops;\n";

/// A layered tree that keeps every rule: the baseline the tests below break one rule at a time.
fn layered() -> Vec<(&'static str, &'static str)> {
    vec![
        ("lib.rs", LIB),
        ("main.rs", "fn main() { server::http::serve(); }\n"),
        (
            "http/mod.rs",
            "mod routes;\npub use routes::serve;\nuse crate::service::submit;\n\
             pub struct ApiError;\nfn handler() { submit::run(); }\n",
        ),
        (
            "http/routes.rs",
            "use super::ApiError;\npub fn serve() { let _ = ApiError; }\n",
        ),
        (
            "service/mod.rs",
            "pub mod submit;\npub enum ServiceError { Store(crate::store::StoreError) }\n",
        ),
        (
            "service/submit.rs",
            "use super::ServiceError;\npub fn run() -> Result<(), ServiceError> {\n    \
             crate::gitops::commit();\n    crate::store::save()\n}\n",
        ),
        (
            "store/mod.rs",
            "mod sql;\npub use sql::save;\npub struct StoreError(sqlx::Error);\n",
        ),
        (
            "store/sql.rs",
            "pub fn save() -> Result<(), super::StoreError> { sqlx::query(\"\"); Ok(()) }\n",
        ),
        (
            "gitops/mod.rs",
            "mod tree;\nmod objects;\npub fn commit() { tree::build(); }\n\
             pub struct GitOpsError(#[source] git2::Error);\n",
        ),
        (
            "gitops/tree.rs",
            "use super::objects;\npub fn build() { objects::write(); }\n",
        ),
        (
            "gitops/objects.rs",
            "pub fn write() { let _: Option<super::GitOpsError> = None; }\n",
        ),
    ]
}

fn with<'a>(replacements: &[(&'a str, &'a str)]) -> Vec<String> {
    let mut files: Vec<(&str, &str)> = layered();
    for (path, text) in replacements {
        match files.iter_mut().find(|(p, _)| p == path) {
            Some(file) => file.1 = *text,
            None => files.push((*path, *text)),
        }
    }
    violations(&files)
}

#[test]
fn a_layered_tree_passes() {
    let found = violations(&layered());
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn service_store_and_gitops_may_not_import_http() {
    let found = with(&[
        (
            "service/submit.rs",
            "use crate::http::ApiError;\npub fn run() {}\n",
        ),
        (
            "store/sql.rs",
            "pub fn save() { let _ = crate::http::ApiError; }\n",
        ),
        (
            "gitops/tree.rs",
            "pub fn build() { tracing::info!(\"{}\", crate::http::NAME); }\n",
        ),
    ]);
    let http = containing(&found, "must not import crate::http");
    assert_eq!(http.len(), 3, "{found:#?}");
    assert!(
        http[0].starts_with("src/gitops/tree.rs:1: names `crate::http::NAME`"),
        "{found:#?}"
    );
    assert!(http[1].starts_with("src/service/submit.rs:1: names `crate::http::ApiError`"));
    assert!(http[2].starts_with("src/store/sql.rs:1: names `crate::http::ApiError`"));
}

#[test]
fn service_store_and_gitops_may_not_import_the_console() {
    let found = with(&[
        ("console/mod.rs", "pub fn page() {}\n"),
        (
            "service/submit.rs",
            "use crate::console::page;\npub fn run() { page(); }\n",
        ),
    ]);
    let console = containing(&found, "must not import crate::http or crate::console");
    assert_eq!(console.len(), 1, "{found:#?}");
    assert!(
        console[0].starts_with("src/service/submit.rs:1: names `crate::console::page`"),
        "{found:#?}"
    );
}

#[test]
fn http_through_super_and_globs_counts_too() {
    let found = with(&[(
        "service/submit.rs",
        "use super::super::http::*;\npub fn run() {}\n",
    )]);
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("src/service/submit.rs:1: names `super::super::http`")),
        "{found:#?}"
    );
}

#[test]
fn git2_outside_gitops_fails() {
    let found = with(&[
        (
            "service/submit.rs",
            "pub fn run() {\n    let _oid = git2::Oid::zero();\n}\n",
        ),
        (
            "http/routes.rs",
            "use ::git2::{Oid, Repository};\npub fn serve() {}\n",
        ),
        (
            "main.rs",
            "fn main() { git2::opts::strict_hash_verification(true); }\n",
        ),
        ("store/sql.rs", "extern crate git2;\npub fn save() {}\n"),
    ]);
    let git = containing(&found, "may use git2");
    assert_eq!(git.len(), 5, "{found:#?}");
    assert!(
        git.iter()
            .any(|v| v.starts_with("src/store/sql.rs:1: names `git2`"))
    );
    assert!(
        git.iter()
            .any(|v| v.starts_with("src/http/routes.rs:1: names `git2::Oid`"))
    );
    assert!(
        git.iter()
            .any(|v| v.starts_with("src/http/routes.rs:1: names `git2::Repository`"))
    );
    assert!(
        git.iter()
            .any(|v| v.starts_with("src/main.rs:1: names `git2::opts"))
    );
    assert!(
        git.iter()
            .any(|v| v.starts_with("src/service/submit.rs:2: names `git2::Oid::zero`"))
    );
}

#[test]
fn sqlx_outside_store_fails_even_in_a_derive() {
    let found = with(&[(
        "service/submit.rs",
        "#[derive(sqlx::FromRow)]\npub struct Row;\npub fn run() {}\n",
    )]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with(
        "src/service/submit.rs:1: names `sqlx::FromRow`, but only server/src/store/ may use sqlx"
    ));
}

#[test]
fn test_code_may_cross_the_layers() {
    let found = with(&[(
        "service/submit.rs",
        "pub fn run() {}\n#[cfg(test)]\nmod tests {\n    use crate::http::ApiError;\n    \
         fn repo() -> git2::Repository { todo!() }\n}\n",
    )]);
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn a_test_module_in_its_own_file_is_test_code() {
    let found = with(&[
        (
            "service/submit.rs",
            "pub fn run() {}\n#[cfg(test)]\nmod tests;\n",
        ),
        (
            "service/submit/tests.rs",
            "use crate::http::ApiError;\nfn repo() -> git2::Repository { todo!() }\n",
        ),
    ]);
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn not_test_is_not_test_code() {
    let found = with(&[(
        "service/submit.rs",
        "pub fn run() {}\n#[cfg(not(test))]\nfn live() -> git2::Oid { todo!() }\n",
    )]);
    assert_eq!(found.len(), 1, "{found:#?}");
}

#[test]
fn a_loop_between_two_files_fails_with_both_edges() {
    let found = with(&[
        ("http/mod.rs", "pub mod projects;\npub mod workspaces;\n"),
        (
            "http/projects.rs",
            "use crate::http::workspaces::load;\npub fn list() { load(); }\n",
        ),
        (
            "http/workspaces.rs",
            "pub fn load() {}\n\npub fn more() { super::projects::list(); }\n",
        ),
    ]);
    assert_eq!(found.len(), 1, "{found:#?}");
    let cycle = &found[0];
    assert!(cycle.starts_with("import cycle between 2 modules (http::projects, http::workspaces)"));
    assert!(cycle.contains(
        "http::projects -> http::workspaces: src/http/projects.rs:1 names `crate::http::workspaces::load`"
    ), "{cycle}");
    assert!(cycle.contains(
        "http::workspaces -> http::projects: src/http/workspaces.rs:3 names `super::projects::list`"
    ), "{cycle}");
}

#[test]
fn a_loop_across_folders_fails() {
    // service -> http (the problem type) -> service (the handler's use case).
    let found = with(&[(
        "service/submit.rs",
        "pub fn run() -> crate::http::ApiError { todo!() }\n",
    )]);
    let cycle = starting(&found, "import cycle");
    assert_eq!(cycle.len(), 1, "{found:#?}");
    assert!(
        cycle[0].contains("http -> service::submit: src/http/mod.rs:3"),
        "{}",
        cycle[0]
    );
    assert!(
        cycle[0].contains("service::submit -> http: src/service/submit.rs:1"),
        "{}",
        cycle[0]
    );
}

#[test]
fn a_child_and_its_sibling_through_super_is_a_loop() {
    let found = with(&[(
        "gitops/objects.rs",
        "pub fn write() {}\npub fn read() { super::tree::build(); }\n",
    )]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("gitops::objects -> gitops::tree: src/gitops/objects.rs:2"));
    assert!(found[0].contains("gitops::tree -> gitops::objects: src/gitops/tree.rs:1"));
}

#[test]
fn a_parent_using_its_children_is_not_a_loop() {
    // gitops/mod.rs re-exports and calls its children, which use the parent's error type.
    let found = with(&[(
        "gitops/mod.rs",
        "mod tree;\nmod objects;\npub use objects::write;\npub use self::tree::*;\n\
         pub fn commit() { tree::build(); crate::gitops::objects::write(); }\n\
         pub struct GitOpsError(#[source] git2::Error);\n",
    )]);
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn a_loop_through_a_parent_that_names_others_fails() {
    // store/mod.rs -> service (not its child) -> store: a loop through the parent.
    let found = with(&[(
        "store/mod.rs",
        "mod sql;\npub use sql::save;\npub struct StoreError(sqlx::Error);\n\
         fn audit() { crate::service::submit::run(); }\n",
    )]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("store -> service::submit: src/store/mod.rs:4"),
        "{}",
        found[0]
    );
}

fn long_file(code_lines: usize, header: &str, test_lines: usize) -> String {
    let mut text = String::from(header);
    for i in 0..code_lines.saturating_sub(header.lines().count()) {
        text.push_str(&format!("pub fn f{i}() {{}}\n"));
    }
    if test_lines > 0 {
        text.push_str("#[cfg(test)]\nmod tests {\n");
        for i in 0..test_lines.saturating_sub(3) {
            text.push_str(&format!("    fn t{i}() {{}}\n"));
        }
        text.push_str("}\n");
    }
    text
}

#[test]
fn a_long_file_needs_a_reason_at_its_top() {
    let long = long_file(SIZE_LIMIT + 1, "", 0);
    let found = with(&[("service/submit.rs", &long)]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("src/service/submit.rs: 601 lines of non-test code (more than 600)")
    );

    let just = long_file(SIZE_LIMIT, "", 0);
    assert_eq!(with(&[("service/submit.rs", &just)]), Vec::<String>::new());

    let reasoned = long_file(
        SIZE_LIMIT + 50,
        "//! The submit path.\n//!\n//! Size: one state machine.\n",
        0,
    );
    assert_eq!(
        with(&[("service/submit.rs", &reasoned)]),
        Vec::<String>::new()
    );

    let empty_reason = long_file(SIZE_LIMIT + 50, "//! Size:\n", 0);
    assert_eq!(with(&[("service/submit.rs", &empty_reason)]).len(), 1);
}

#[test]
fn test_lines_do_not_count_towards_the_size() {
    let mostly_tests = long_file(500, "", 400);
    assert_eq!(
        with(&[("service/submit.rs", &mostly_tests)]),
        Vec::<String>::new()
    );
}

#[test]
fn every_violation_is_reported_at_once() {
    let long = long_file(SIZE_LIMIT + 10, "", 0);
    let found = with(&[
        (
            "service/submit.rs",
            "use crate::http::ApiError;\nfn x(_: git2::Oid) {}\npub fn run() {}\n",
        ),
        ("http/routes.rs", "pub fn serve() { sqlx::query(\"\"); }\n"),
        ("gitops/objects.rs", &long),
        ("store/sql.rs", "pub fn save( {\n"),
    ]);
    let kinds = [
        "must not import crate::http",
        "may use git2",
        "may use sqlx",
        "lines of non-test code",
        "does not parse as Rust",
        "import cycle",
    ];
    for kind in kinds {
        assert!(
            found.iter().any(|v| v.contains(kind)),
            "no `{kind}` in {found:#?}"
        );
    }
}
