//! Helpers shared by the server's integration tests; each test binary uses a subset.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use server::gitops::GitOps;

/// Every file at the head of `main`.
pub(crate) fn head_files(path: &Path) -> BTreeMap<String, String> {
    let repo = git2::Repository::open(path).expect("open");
    let tree = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_tree())
        .expect("the branch points at a commit with a tree");
    let mut paths = BTreeSet::new();
    GitOps::files_under(&repo, &tree, "", &mut paths).expect("walk");
    paths
        .into_iter()
        .map(|p| {
            let text = GitOps::read_file(&repo, &tree, &p)
                .expect("read")
                .expect("exists");
            (p, text)
        })
        .collect()
}

/// The rendered files among `files` are exactly what a full compile of their intent gives.
pub(crate) fn assert_compiled(files: &BTreeMap<String, String>) {
    let intent: compiler::IntentFiles = files
        .iter()
        .filter_map(|(p, t)| p.strip_prefix("intent/").map(|p| (p.to_owned(), t.clone())))
        .collect();
    let compiler = compiler::Compiler::new(&compiler::Catalog::builtin()).expect("catalog");
    let output = compiler
        .compile_files(&intent, &compiler::Options::default())
        .expect("compiles");
    assert!(output.diagnostics.is_empty(), "{:?}", output.diagnostics);
    let rendered: BTreeMap<&String, &String> = files
        .iter()
        .filter(|(p, _)| compiler::is_generated(p))
        .collect();
    let expected: BTreeMap<&String, &String> = output.files.iter().collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|p| !rendered.contains_key(*p))
        .collect();
    let extra: Vec<_> = rendered
        .keys()
        .filter(|p| !expected.contains_key(*p))
        .collect();
    let changed: Vec<_> = expected
        .iter()
        .filter(|(p, t)| rendered.get(*p).is_some_and(|r| r != *t))
        .map(|(p, _)| p)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && changed.is_empty(),
        "missing {missing:?}\nextra {extra:?}\nchanged {changed:?}"
    );
}

/// The head's rendered files are exactly what a full compile of the head's intent gives.
pub(crate) fn assert_head_is_compiled(path: &Path) {
    assert_compiled(&head_files(path));
}

/// `git fsck --full --strict` (the git CLI, not libgit2) finds nothing wrong; dangling
/// objects (written by a commit whose branch move failed) are fine.
pub(crate) fn assert_fsck_clean(path: &Path) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["fsck", "--full", "--strict", "--no-progress"])
        .output()
        .expect("git runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let found = String::from_utf8_lossy(&out.stdout);
    let problems: Vec<&str> = err
        .lines()
        .chain(found.lines())
        .filter(|l| !l.starts_with("dangling "))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "git fsck: {}\n{problems:#?}",
        out.status
    );
}

/// Loose objects, and packs, in the repository at `path`.
pub(crate) fn object_files(path: &Path) -> (usize, usize) {
    let objects = path.join("objects");
    let mut loose = 0;
    for dir in std::fs::read_dir(&objects).expect("objects") {
        let dir = dir.expect("entry");
        if dir.file_name().len() == 2 {
            loose += std::fs::read_dir(dir.path()).expect("fan-out").count();
        }
    }
    let packs = std::fs::read_dir(objects.join("pack"))
        .expect("pack folder")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pack"))
        })
        .count();
    (loose, packs)
}
