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

/// `systemd-analyze verify` of packaging/systemd/hexabase.service (its `ExecStart` pointed at
/// the `hb` under test, which must exist) and `systemd-analyze security`'s rating of it.
#[test]
fn the_systemd_unit_verifies_and_rates_ok() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|out| out.status.success()) {
        support::postgres::skip::missing(
            "the systemd unit test",
            "systemd-analyze is not installed",
        );
        return;
    }
    let unit = read("packaging/systemd/hexabase.service");
    assert!(
        unit.contains("\nExecStart=/usr/local/bin/hb serve\n"),
        "ExecStart"
    );
    let dir = support::TempDir::new("systemd");
    let path = dir.0.join("hexabase.service");
    let here = unit.replace(
        "\nExecStart=/usr/local/bin/hb ",
        &format!("\nExecStart={} ", env!("CARGO_BIN_EXE_hb")),
    );
    std::fs::write(&path, here).expect("write the unit");

    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze verify");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&security.stdout);
    let rating = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for hexabase.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("no rating in {text}"));
    let exposure: f64 = rating
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number");
    assert!(exposure <= 2.0, "exposure {rating}, more than 2.0:\n{text}");
}

/// Every setting hexabase.env sets (commented or not) is one `hb serve` knows.
#[test]
fn the_systemd_environment_file_holds_known_settings() {
    let env = read("packaging/systemd/hexabase.env");
    let dir = support::TempDir::new("systemd-env");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_hb"));
    serve
        .args(["serve", "--print-config"])
        .env_clear()
        .env("HEXABASE_DATA_DIR", &dir.0);
    let mut count = 0;
    for line in env.lines() {
        let line = line.trim_start_matches('#');
        if let Some((key, value)) = line
            .split_once('=')
            .filter(|(k, _)| k.starts_with("HEXABASE_"))
        {
            serve.env(key, value);
            count += 1;
        }
    }
    // An SSH remote's key files are read at start; point them at nothing it must open.
    serve.env_remove("HEXABASE_GIT__REMOTE_CREDENTIALS__KIND");
    assert!(count >= 5, "hexabase.env sets {count} settings");
    let out = serve.output().expect("hb serve --print-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
