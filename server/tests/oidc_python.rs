//! The issuer against an independent client: the real `hb serve` on a free port, a user who
//! made a workspace, then `server/tests/python/oidc_client.py` (authlib and PyJWT, from the
//! venv `scripts/tools.sh` makes under `.tools/`) runs the code flow with PKCE and the
//! refresh, verifies the ID tokens against the published discovery document and key set, and
//! refuses every forged token this side makes with the issuer's own key.
//!
//! Without the venv the test says SKIPPED, except in CI (`CI` set), where it fails.

mod oidc_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The issuer of the starter platform when the public URL is not https.
const ISSUER: &str = "https://hexabase.example.com";

struct Server {
    child: Child,
    url: String,
    setup_token: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(env: &[(&str, &str)]) -> Server {
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

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python");
    let usable = venv.exists()
        && Command::new(&venv)
            .args(["-c", "import jwt, authlib, requests"])
            .output()
            .is_ok_and(|o| o.status.success());
    if usable {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs the venv with PyJWT and authlib at {}: run scripts/tools.sh",
        venv.display()
    );
    eprintln!(
        "\n*** SKIPPED the independent OIDC client: no venv with PyJWT and authlib at {}; \
         run scripts/tools.sh (make test does) ***\n",
        venv.display()
    );
    None
}

/// Signs up the first user and makes acme/dev (so they are in its `WSAdmins`); answers an
/// HTTP client that does not follow redirects, the session cookie's value and its CSRF token.
fn admin_with_workspace(server: &Server) -> (Client, String, String) {
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

#[test]
fn an_independent_client_verifies_tokens_and_refuses_forgeries() {
    let Some(python) = python() else { return };
    let server = start(&[]);
    let (http, session, _) = admin_with_workspace(&server);

    // A genuine token, through this side's own code flow, to make the forgeries from.
    let (verifier, challenge) = oidc_support::pkce();
    let redirect = "http://127.0.0.1:18000/cb";
    let authorize = http
        .get(format!("{}/oauth2/authorize", server.url))
        .query(&[
            ("response_type", "code"),
            ("client_id", "ws-acme-dev"),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", format!("hb_session={session}"))
        .send()
        .expect("authorize");
    let location = authorize
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a redirect")
        .to_owned();
    let code = oidc_support::query_param(&location, "code").expect("a code");
    let tokens: Value = http
        .post(format!("{}/oauth2/token", server.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", "ws-acme-dev"),
            ("code_verifier", &verifier),
        ])
        .send()
        .and_then(reqwest::blocking::Response::json)
        .expect("tokens");
    let genuine = tokens["id_token"].as_str().expect("an ID token");

    // The issuer's key, read from its database as an insider (or a thief) could.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let db = server.dir.join("data/hexabase.db");
    let key = runtime.block_on(async {
        let store = server::store::Store::connect(&db.display().to_string())
            .await
            .expect("open the server's database");
        let keys = store.signing_keys(wall_clock()).await.expect("keys");
        store.close().await;
        keys.into_iter().next().expect("a key")
    });
    let now = wall_clock();
    let forged = oidc_support::forgeries(genuine, &key.private_pem, &key.kid, now);
    assert!(forged.len() >= 10, "{}", forged.len());

    let config = server.dir.join("client.json");
    std::fs::write(
        &config,
        json!({
            "base": server.url,
            "issuer": ISSUER,
            "client_id": "ws-acme-dev",
            "groups_claim": "groups",
            "session": session,
            "forgeries": forged,
        })
        .to_string(),
    )
    .expect("write the client's configuration");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/oidc_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&config)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the independent client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}\n{stderr}");
    eprintln!("independent client: {}", stdout.trim());
}

#[test]
fn hb_signs_in_with_the_device_flow_and_prints_a_kubeconfig() {
    let server = start(&[("HEXABASE_ISSUER__DEVICE_POLL_SECONDS", "1")]);
    let (http, session, csrf) = admin_with_workspace(&server);
    let config = server.dir.join("hb.toml");
    let mut login = Command::new(env!("CARGO_BIN_EXE_hb"))
        .args(["login", &server.url, "--device"])
        .env("HB_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hb login runs");
    let mut told = BufReader::new(login.stderr.take().expect("stderr")).lines();
    let line = told
        .next()
        .expect("hb login printed the code")
        .expect("a line");
    let code = line
        .strip_prefix(&format!(
            "To sign in, open {ISSUER}/device and enter the code "
        ))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let approved = http
        .post(format!("{}/device", server.url))
        .header("cookie", format!("hb_session={session}"))
        .form(&[
            ("user_code", code.as_str()),
            ("decision", "approve"),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .expect("approve");
    assert_eq!(approved.status(), 200);
    let out = login.wait_with_output().expect("hb login ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("as admin@acme.test"));

    let hb = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hb"))
            .args(args)
            .env("HB_CONFIG", &config)
            .stdin(Stdio::null())
            .output()
            .expect("hb runs")
    };
    let out = hb(&["kubeconfig", "acme/dev"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{yaml}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "kind: Config",
        "oidc-login",
        "get-token",
        "--oidc-issuer-url=https://hexabase.example.com",
        "--oidc-client-id=ws-acme-dev",
        "server: https://ws-acme-dev.",
    ] {
        assert!(yaml.contains(expected), "{expected} in:\n{yaml}");
    }
    let json_out = hb(&["kubeconfig", "acme/dev", "-o", "json"]);
    let parsed: Value = serde_json::from_slice(&json_out.stdout).expect("JSON");
    assert_eq!(parsed["current-context"], "acme-dev");
    assert_eq!(hb(&["kubeconfig", "acme"]).status.code(), Some(2));
    assert_eq!(hb(&["kubeconfig", "acme/nope"]).status.code(), Some(1));
}
