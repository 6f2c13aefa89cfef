//! Helpers of the cross-crate and end-to-end tests in `tests/tests/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Says that a test cannot run here because `what` is missing. In CI (`CI` set; `.ci/run`
/// sets it) that is a failure. Elsewhere the line goes straight to the stderr handle, not
/// through `eprintln!`, which the test harness captures and hides for a passing test.
pub fn skip(what: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI needs {what}");
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: {what} is missing ***\n");
}

/// The real tools of `scripts/tools.sh` and the upstream snapshot, for
/// `tests/conformance/check_tree.py`.
pub struct Conformance {
    repo: PathBuf,
    python: PathBuf,
    kubectl: PathBuf,
    helm: PathBuf,
    upstream: PathBuf,
}

impl Conformance {
    /// The tools under `.tools/` and the upstream snapshot (`../shared/upstream` or
    /// `$HEXABASE_UPSTREAM`), or `None` after [`skip`] when one is missing.
    pub fn find() -> Option<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let found = Self {
            python: repo.join(".tools/venv/bin/python"),
            kubectl: repo.join(".tools/bin/kubectl"),
            helm: repo.join(".tools/bin/helm"),
            upstream: std::env::var_os("HEXABASE_UPSTREAM")
                .map_or_else(|| repo.join("../shared/upstream"), PathBuf::from),
            repo,
        };
        for tool in [&found.python, &found.kubectl, &found.helm] {
            if !tool.is_file() {
                skip(&format!("{} (run scripts/tools.sh)", tool.display()));
                return None;
            }
        }
        if !found.upstream.is_dir() {
            skip(&format!(
                "the upstream snapshot at {}",
                found.upstream.display()
            ));
            return None;
        }
        Some(found)
    }

    /// The real `kubectl`.
    pub fn kubectl(&self) -> &Path {
        &self.kubectl
    }

    /// Writes `files` (paths relative to the repository root) to a fresh folder named after
    /// `name` and runs the checker on it with `args`; fails the test with the checker's
    /// output unless every check passes. Returns the folder (removed by the caller) and the
    /// checker's summary line.
    pub fn check<'a>(
        &self,
        name: &str,
        files: impl IntoIterator<Item = (&'a String, &'a String)>,
        args: &[&str],
    ) -> (TempTree, String) {
        let tree = TempTree::new(name);
        for (rel, text) in files {
            let path = tree.0.join(rel);
            std::fs::create_dir_all(path.parent().expect("a file has a folder")).expect("folder");
            std::fs::write(&path, text).expect("file written");
        }
        let result = Command::new(&self.python)
            .arg(self.repo.join("tests/conformance/check_tree.py"))
            .arg("--tree")
            .arg(&tree.0)
            .arg("--upstream")
            .arg(&self.upstream)
            .arg("--kubectl")
            .arg(&self.kubectl)
            .arg("--helm")
            .arg(&self.helm)
            .args(args)
            .output()
            .expect("the checker runs");
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success(),
            "{name} fails the conformance checker:\n{stdout}\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        let summary = stdout
            .lines()
            .find(|line| line.starts_with("conformance: "))
            .unwrap_or_default()
            .to_owned();
        assert!(
            summary.ends_with(" passed, 0 failed"),
            "no summary line:\n{stdout}"
        );
        (tree, summary)
    }
}

/// A folder under the temporary directory, removed when dropped.
pub struct TempTree(pub PathBuf);

impl TempTree {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hexabase-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        Self(dir)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
