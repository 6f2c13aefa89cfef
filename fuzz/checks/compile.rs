//! Arbitrary bytes as intent files: load + compile must give diagnostics, never panic, never
//! return a compiler `Error`, and never render a path outside the tree or a workspace's folder.
//!
//! Input layout: the first byte picks the example file the first chunk replaces; the rest is
//! split at 0xFF bytes (never valid UTF-8, so free for use) into at most three chunks, each read
//! as UTF-8 lossily and put in place of the next example file. Every other file stays as in
//! `gitops-repo-example/intent/`.

use super::common;

/// The `compile` target: panics when the input shows a bug.
pub(crate) fn check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut files = common::example_files();
    for (i, chunk) in rest.split(|&b| b == 0xFF).take(3).enumerate() {
        let slot = (usize::from(first) + i) % common::EXAMPLE.len();
        let path = common::EXAMPLE[slot].0;
        files.insert(path.to_owned(), String::from_utf8_lossy(chunk).into_owned());
    }
    let (output, diagnostics) = common::compile(&files);
    common::assert_paths_safe(&output.files);
    if diagnostics.iter().any(compiler::Diagnostic::is_error) {
        return;
    }
    for (key, ws) in &output.workspaces {
        let (org, name) = key.split_once('/').expect("workspace keys are <org>/<ws>");
        assert!(
            ws.root.starts_with("tenants/") && ws.root.ends_with(&format!("/{org}/{name}")),
            "workspace {key} has root {:?}",
            ws.root
        );
        for path in output.files.keys() {
            let parts: Vec<&str> = path.split('/').collect();
            if let ["tenants", _, o, w, _, ..] = parts.as_slice()
                && *o == org
                && *w == name
            {
                assert!(
                    path.starts_with(&format!("{}/", ws.root)),
                    "{path} is outside {}",
                    ws.root
                );
            }
        }
    }
}
