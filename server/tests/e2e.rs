//! End to end: the real `hb serve` on a free port with a temp data folder and a remote to
//! push to, the first sign-up with the printed setup token through `hb login --signup`, a
//! workspace and a project through the `hb` CLI, the commits with the right author and
//! trailers in the repository, pushed, and a clean exit on SIGTERM. On SQLite here, and on
//! PostgreSQL in `on_postgres.rs`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

struct Server {
    child: Child,
    url: String,
    metrics: String,
    setup_token: String,
    log: mpsc::Receiver<String>,
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hb-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Starts `hb serve` on free ports and reads what it prints until the setup token.
fn start(dir: &Path, remote: &str, database: Option<&str>) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hb"))
        .arg("serve")
        .env_clear()
        .envs(database.map(|url| ("HEXABASE_DATABASE_URL", url)))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HEXABASE_LISTEN", "127.0.0.1:0")
        .env("HEXABASE_METRICS_LISTEN", "127.0.0.1:0")
        .env("HEXABASE_DATA_DIR", dir.join("data"))
        .env("HEXABASE_GIT__REMOTE", remote)
        .env("HEXABASE_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut metrics, mut setup_token) = (None, None, None);
    while setup_token.is_none() {
        let line = log
            .recv()
            .expect("hb serve printed no setup token before exiting");
        if let Some(rest) = line.strip_prefix("hb: serving ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.strip_prefix("hb: metrics at ") {
            metrics = Some(rest.trim().to_owned());
        }
        if let Some((_, token)) = line.split_once("--setup-token ") {
            setup_token = Some(token.trim().to_owned());
        }
    }
    Server {
        child,
        url: url.expect("the API URL was printed"),
        metrics: metrics.expect("the metrics URL was printed"),
        setup_token: setup_token.expect("token"),
        log,
    }
}

fn hb(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hb"))
        .args(args)
        .env("HB_CONFIG", config)
        .env("HB_PASSWORD", "correct horse battery staple")
        .stdin(Stdio::null())
        .output()
        .expect("hb runs")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    ok(&output)
}

fn get(url: &str) -> (u16, String) {
    let response = reqwest::blocking::get(url).expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().expect("body"))
}

#[test]
fn sign_up_create_a_workspace_and_a_project_through_the_cli_and_find_the_commits() {
    let dir = temp_dir();
    let remote = dir.join("remote.git");
    git2::Repository::init_bare(&remote).expect("bare remote");
    let database = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(support::database());
    let mut server = start(
        &dir,
        &format!("file://{}", remote.display()),
        database.as_ref().map(|d| d.url.as_str()),
    );
    let config = dir.join("config.toml");
    let repo = dir.join("data").join("gitops.git");

    assert_eq!(get(&format!("{}/healthz", server.url)).0, 200);
    let (status, ready) = get(&format!("{}/readyz", server.url));
    assert_eq!(status, 200, "{ready}");
    let (status, before) = get(&format!("{}/api/v1/orgs/acme/audit", server.url));
    assert_eq!(status, 401, "{before}");

    let login = hb(
        &config,
        &[
            "login",
            &server.url,
            "--signup",
            "--setup-token",
            &server.setup_token,
            "--email",
            "ana@example.com",
            "--name",
            "Ana",
        ],
    );
    assert!(ok(&login).contains("logged in"));
    let orgs: serde_json::Value =
        serde_json::from_str(&ok(&hb(&config, &["get", "orgs", "-o", "json"]))).expect("JSON");
    let org = orgs[0]["slug"].as_str().expect("a private organization");
    ok(&hb(
        &config,
        &[
            "create",
            "workspace",
            "dev",
            "--org",
            org,
            "--plan",
            "shared-small",
        ],
    ));
    let created = ok(&hb(
        &config,
        &["create", "project", "web", "--org", org, "-w", "dev"],
    ));
    assert!(
        created.starts_with("project web created (commit "),
        "{created}"
    );
    let listed = ok(&hb(
        &config,
        &["get", "projects", "--org", org, "-w", "dev"],
    ));
    assert!(listed.lines().any(|l| l.starts_with("web")), "{listed}");
    let refused = hb(
        &config,
        &["create", "project", "web", "--org", org, "-w", "dev"],
    );
    assert_eq!(refused.status.code(), Some(1), "a second web is refused");

    let audit = ok(&hb(&config, &["audit", "--org", org, "--json"]));
    let entries: serde_json::Value = serde_json::from_str(&audit).expect("JSON");
    let actions: Vec<&str> = entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert!(
        actions.starts_with(&["create-project", "create-workspace"]),
        "{actions:?}"
    );

    let log = git(
        &repo,
        &[
            "log",
            "-1",
            "--format=%an <%ae>%n%B",
            "--grep=^Hexabase-Action: create-project$",
        ],
    );
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("Ana <ana@example.com>"), "{log}");
    for trailer in [
        "Hexabase-Action: create-project",
        "Hexabase-Actor: Ana <ana@example.com>",
        &format!("Hexabase-Org: {org}"),
        "Hexabase-Workspace: dev",
    ] {
        assert!(
            log.lines().any(|l| l == trailer),
            "no {trailer:?} in\n{log}"
        );
    }
    assert!(
        log.lines().any(|l| l.starts_with("Hexabase-Request: ")),
        "{log}"
    );

    let (status, metrics) = get(&server.metrics);
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"hexabase_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{metrics}"
    );

    let pid = server.child.id().to_string();
    ok(&Command::new("kill")
        .args(["-TERM", &pid])
        .output()
        .expect("kill runs"));
    let status = server.child.wait().expect("hb serve exits");
    let rest: Vec<String> = server.log.iter().collect();
    assert!(status.success(), "{status:?}\n{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l.contains("shutting down")),
        "{}",
        rest.join("\n")
    );
    // Everything committed reached the remote before the exit.
    let local = git(&repo, &["rev-parse", "refs/heads/main"]);
    let pushed = git(&remote, &["rev-parse", "refs/heads/main"]);
    assert_eq!(local, pushed);
}
