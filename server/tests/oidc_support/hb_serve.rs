//! The real `hb serve` on a free port for the tests that drive it from outside (Python
//! clients, a browser): start it, sign up its administrator and make a workspace, and find
//! the project's venv.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The issuer of the starter platform when the public URL is not https.
pub(crate) const ISSUER: &str = "https://hexabase.example.com";

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) setup_token: String,
    pub(crate) dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn start(env: &[(&str, &str)]) -> Server {
    let dir = std::env::temp_dir().join(format!("hb-oidc-python-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hb"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HEXABASE_LISTEN", "127.0.0.1:0")
        .env("HEXABASE_METRICS_LISTEN", "off")
        .env("HEXABASE_DATA_DIR", dir.join("data"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (mut url, mut setup_token) = (None, None);
    while setup_token.is_none() {
        let line = lines
            .next()
            .expect("hb serve printed no setup token before exiting")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("hb: serving ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some((_, token)) = line.split_once("--setup-token ") {
            setup_token = Some(token.trim().to_owned());
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server {
        child,
        url: url.expect("the API URL was printed"),
        setup_token: setup_token.expect("a token"),
        dir,
    }
}

pub(crate) fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The venv's Python when it imports `modules`; otherwise None after saying SKIPPED, except
/// in CI (`CI` set), where it fails: `what` says what the venv is needed for.
pub(crate) fn venv_python(modules: &str, what: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python");
    let usable = venv.exists()
        && Command::new(&venv)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success());
    if usable {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs the venv with {modules} at {}: run scripts/tools.sh",
        venv.display()
    );
    // Written to the stderr handle: the harness hides `eprintln!` output of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {what}: no venv with {modules} at {}; run scripts/tools.sh (make test \
         does) ***\n",
        venv.display()
    );
    None
}

/// Signs up the first user and makes acme/dev (so they are in its `WSAdmins`); answers an
/// HTTP client that does not follow redirects, the session cookie's value and its CSRF token.
pub(crate) fn admin_with_workspace(server: &Server) -> (Client, String, String) {
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let signup = http
        .post(format!("{}/api/v1/auth/signup", server.url))
        .json(&json!({
            "email": "admin@acme.test",
            "name": "Admin",
            "password": "correct horse battery",
            "setupToken": server.setup_token,
        }))
        .send()
        .expect("sign up");
    assert_eq!(signup.status(), 201);
    let session = signup
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next()?.strip_prefix("hb_session="))
        .expect("a session cookie")
        .to_owned();
    let body: Value = signup.json().expect("JSON");
    let csrf = body["csrfToken"].as_str().expect("a CSRF token").to_owned();
    for (path, payload) in [
        ("/api/v1/orgs", json!({"slug": "acme", "name": "Acme"})),
        (
            "/api/v1/orgs/acme/workspaces",
            json!({"name": "dev", "plan": "shared-small"}),
        ),
    ] {
        let answer = http
            .post(format!("{}{path}", server.url))
            .header("cookie", format!("hb_session={session}"))
            .header("x-csrf-token", &csrf)
            .json(&payload)
            .send()
            .expect("a call");
        assert_eq!(answer.status(), 201, "{path}: {:?}", answer.text());
    }

    (http, session, csrf)
}

/// Runs `server/tests/python/<script>` with `python`, its configuration `config` written
/// into the server's folder: its standard output when it exited 0 and printed
/// `N passed, 0 failed`, else both outputs.
pub(crate) fn run_script(
    python: &Path,
    server: &Server,
    script: &str,
    config: &Value,
) -> Result<String, String> {
    let path = server.dir.join(format!("{script}.json"));
    std::fs::write(&path, config.to_string()).expect("write the script's configuration");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new(python)
        .arg(script)
        .arg(&path)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stdout.contains(" passed, 0 failed") {
        Ok(stdout)
    } else {
        Err(format!("{stdout}\n{stderr}"))
    }
}

/// `hb login <server> --device` started, waiting for approval: the process, its config
/// file, and the code and URLs it printed.
pub(crate) struct DeviceLogin {
    pub(crate) child: Child,
    pub(crate) config: PathBuf,
    pub(crate) user_code: String,
    /// The verification URI with the code (`…/device?user_code=…`), under the issuer URL.
    pub(crate) complete_uri: String,
}

/// Starts `hb login --device` against `server` and reads what it tells the person.
pub(crate) fn device_login(server: &Server) -> DeviceLogin {
    let config = server.dir.join("hb.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hb"))
        .args(["login", &server.url, "--device"])
        .env("HB_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb login runs");
    let mut told = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut line = || told.next().expect("hb login told more").expect("a line");
    let first = line();
    let user_code = first
        .strip_prefix(&format!(
            "To sign in, open {ISSUER}/device and enter the code "
        ))
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let second = line();
    let complete_uri = second
        .strip_prefix("(or open ")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{second}"))
        .to_owned();
    DeviceLogin {
        child,
        config,
        user_code,
        complete_uri,
    }
}
