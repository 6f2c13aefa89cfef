//! The real `hb serve` as a child process over a data folder (and a PostgreSQL database),
//! and the administrator, token, organization and workspace the write-load tests start from.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The environment of `hb serve` and `hb admin` over `data` and `database`.
pub(crate) fn hb(data: &Path, database: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hb"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HEXABASE_LISTEN", "127.0.0.1:0")
        .env("HEXABASE_METRICS_LISTEN", "off")
        .env("HEXABASE_DATA_DIR", data)
        .env("HEXABASE_LIMITS__ACTIONS_PER_ORG_PER_SECOND", "0");
    if let Some(url) = database {
        command.env("HEXABASE_DATABASE_URL", url);
    }
    command
}

/// `hb serve`, killed when dropped.
pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Serve {
    /// Starts it and waits until it serves (and, with `want_token`, prints the setup token).
    pub(crate) fn start(
        data: &Path,
        database: Option<&str>,
        want_token: bool,
    ) -> (Self, Option<String>) {
        let mut child = hb(data, database)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hb serve starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (mut url, mut token, mut seen) = (None, None, Vec::new());
        while url.is_none() || (want_token && token.is_none()) {
            let Some(Ok(line)) = lines.next() else {
                panic!("hb serve exited before serving:\n{}", seen.join("\n"));
            };
            if let Some((_, t)) = line.split_once("--setup-token ") {
                token = Some(t.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("hb: serving ") {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
            seen.push(line);
        }
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let url = url.expect("a URL");
        (Self { child, url }, token)
    }

    /// SIGKILL, and wait for it to be gone.
    pub(crate) fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn http() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// Signs up the administrator, makes an API token, organization `acme`, workspace `dev`.
pub(crate) fn prepare(url: &str, setup_token: &str) -> String {
    let client = http();
    let signup = client
        .post(format!("{url}/api/v1/auth/signup"))
        .json(&json!({
            "email": "admin@acme.test", "name": "Admin",
            "password": "correct horse battery", "setupToken": setup_token,
        }))
        .send()
        .expect("sign up");
    assert_eq!(signup.status(), 201);
    let cookie = signup
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hb_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session")
        .to_owned();
    let body: Value = signup.json().expect("JSON");
    let token: Value = client
        .post(format!("{url}/api/v1/tokens"))
        .header("cookie", cookie)
        .header("x-csrf-token", body["csrfToken"].as_str().expect("CSRF"))
        .json(&json!({"name": "writers"}))
        .send()
        .expect("make a token")
        .json()
        .expect("JSON");
    let token = token["secret"].as_str().expect("a secret").to_owned();
    for (path, body) in [
        ("/api/v1/orgs", json!({"slug": "acme", "name": "Acme"})),
        (
            "/api/v1/orgs/acme/workspaces",
            json!({"name": "dev", "plan": "shared-small"}),
        ),
    ] {
        let answer = client
            .post(format!("{url}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .expect("a call");
        assert_eq!(answer.status(), 201, "{path}: {:?}", answer.text());
    }
    token
}
