//! The web console in a real browser: the real `hb serve` on a free port, an organization
//! with a workspace and a project made through the API, then
//! `server/tests/python/console_journey.py` drives Debian's headless Chromium with Selenium
//! through the console's pages by their visible labels and button texts, injects axe-core into
//! every page (failing on serious or critical violations), saves a screenshot of every page to
//! `target/console-screens/`, and prints each page's Navigation Timing. A second session as
//! another organization's user finds every page of the first "Not found".
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver`, the venv or axe-core (both from
//! `scripts/tools.sh`) the test says SKIPPED, except in CI (`CI` set), where it fails.

mod oidc_support;
#[path = "support/skip.rs"]
mod skip;

use std::path::Path;

use oidc_support::hb_serve::{Server, admin_with_workspace, run_script, start, venv_python};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// `git log` of the server's repository, newest first: (id, message).
fn commits(server: &Server) -> Vec<(String, String)> {
    let repo = git2::Repository::open(server.dir.join("data/gitops.git")).expect("the repository");
    let mut walk = repo.revwalk().expect("walk");
    walk.push_ref("refs/heads/main").expect("main");
    walk.map(|id| {
        let commit = repo.find_commit(id.expect("id")).expect("commit");
        (
            commit.id().to_string(),
            commit.message().unwrap_or_default().to_owned(),
        )
    })
    .collect()
}

#[test]
fn a_person_reads_the_history_in_a_browser_and_a_stranger_sees_none_of_it() {
    if !(Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()) {
        skip::missing(
            "the console in a browser",
            "no /usr/bin/chromium or /usr/bin/chromedriver; apt-get install chromium \
             chromium-driver (make test does)",
        );
        return;
    }
    let Some(python) = venv_python("selenium", "the console in a browser (Selenium)") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let axe = root.join(".tools/axe-core/axe.min.js");
    if !axe.exists() {
        skip::missing(
            "the console in a browser",
            "no .tools/axe-core/axe.min.js; run scripts/tools.sh (make test does)",
        );
        return;
    }
    let server = start(&[]);
    // admin@acme.test owns acme and is in WSAdmins of acme/dev.
    let (http, session, csrf) = admin_with_workspace(&server);
    let call = |path: &str, body: Value| {
        let answer = http
            .post(format!("{}{path}", server.url))
            .header("cookie", format!("hb_session={session}"))
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
            .expect("a call");
        assert!(answer.status().is_success(), "{path}: {:?}", answer.text());
    };
    call(
        "/api/v1/orgs/acme/workspaces/dev/projects",
        json!({"name": "web"}),
    );
    // Another organization's user.
    let stranger = http
        .post(format!("{}/api/v1/auth/signup", server.url))
        .json(&json!({
            "email": "eve@globex.test",
            "name": "Eve",
            "password": "correct horse battery",
        }))
        .send()
        .expect("sign up");
    assert_eq!(stranger.status(), 201, "{:?}", stranger.text());

    let log = commits(&server);
    let project = log
        .iter()
        .find(|(_, message)| message.contains("Hexabase-Action: create-project"))
        .expect("the project's commit");
    let subject = |message: &str| message.lines().next().unwrap_or_default().to_owned();
    let subjects: Vec<String> = log
        .iter()
        .filter(|(_, m)| m.contains("Hexabase-Org: acme"))
        .map(|(_, m)| subject(m))
        .collect();
    let login = match reqwest::blocking::get(format!("{}/login", server.url)) {
        Ok(answer) if answer.status().is_success() => "/login",
        _ => "/signin",
    };
    let screens = root.join("target/console-screens");
    let config = json!({
        "base": server.url,
        "login": login,
        "org": "acme",
        "email": "admin@acme.test",
        "stranger_email": "eve@globex.test",
        "password": "correct horse battery",
        "subjects": subjects,
        "action": "create-project",
        "action_subject": subject(&project.1),
        "commit": project.0,
        "axe": axe,
        "screens": screens,
        "project": "/orgs/acme/workspaces/dev/projects/web",
    });
    let stdout = run_script(&python, &server, "console_journey.py", &config)
        .unwrap_or_else(|report| panic!("the console journey failed:\n{report}"));
    let cron = commits(&server);
    let (_, message) = cron.first().expect("a commit");
    assert!(
        message.contains("Hexabase-Action: create-cron-job")
            && message.contains("Hexabase-Actor: Admin <admin@acme.test>"),
        "the CronJob's commit: {message}"
    );
    eprintln!("console journey: {}", stdout.trim());
    for page in ["history", "history-filtered", "commit", "project"] {
        assert!(
            screens.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}
