//! What a release ships, checked against the one version in the workspace `Cargo.toml`:
//! `hb --version`, the chart's `appVersion` and image, the changelog.

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The value of a top-level `key: value` line of a YAML file.
fn top_level(yaml: &str, key: &str) -> String {
    yaml.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no top-level {key}"))
}

#[test]
fn hb_version_names_the_version_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_hb"))
        .arg("--version")
        .output()
        .expect("run hb --version");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let commit = text
        .trim()
        .strip_prefix(&format!("hb {VERSION} (commit "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("hb --version said {text:?}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "commit {commit:?}"
    );
    assert_eq!(server::COMMIT, commit);
}

#[test]
fn the_chart_deploys_this_version() {
    let chart = read("charts/hexabase/Chart.yaml");
    assert_eq!(
        top_level(&chart, "appVersion"),
        VERSION,
        "Chart.yaml appVersion"
    );
    let values = read("charts/hexabase/values.yaml");
    assert!(
        values.contains("repository: ghcr.io/hexabase/hexabase"),
        "values.yaml names the image the Containerfile builds"
    );
}

#[test]
fn the_changelog_starts_with_this_version() {
    let changelog = read("CHANGELOG.md");
    let first = changelog
        .lines()
        .filter_map(|l| l.strip_prefix("## ["))
        .find(|l| !l.starts_with("Unreleased"))
        .expect("a version heading");
    assert!(
        first.starts_with(&format!("{VERSION}]")),
        "first release in CHANGELOG.md: {first}"
    );
}

#[test]
fn the_compiler_trailer_carries_the_release_version() {
    assert_eq!(compiler::VERSION, VERSION);
}

#[test]
fn the_image_script_builds_what_the_containerfile_does() {
    let containerfile = read("Containerfile");
    let script = read("scripts/image.sh");
    let runtime: Vec<&str> = containerfile
        .lines()
        .find_map(|l| l.split("--no-install-recommends ").nth(1))
        .expect("the runtime apt-get install")
        .split_whitespace()
        .take_while(|w| *w != "\\" && *w != "&&")
        .collect();
    let packages = format!("packages=\"{}\"", runtime.join(","));
    assert!(
        script.contains(&packages),
        "image.sh must install {runtime:?}"
    );
    for same in [
        "bookworm",
        "10001",
        "HEXABASE_LISTEN=0.0.0.0:8080",
        "HEXABASE_DATA_DIR=/data",
    ] {
        assert!(
            containerfile.contains(same) && script.contains(same),
            "{same} in both"
        );
    }
    assert!(containerfile.contains("ghcr.io/hexabase/hexabase:"));
    assert!(containerfile.contains(r#"CMD ["serve"]"#));
}
