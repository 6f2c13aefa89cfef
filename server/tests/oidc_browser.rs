//! The sign-in page in a real browser: the real `hb serve` on a free port, an administrator
//! with a workspace, `hb login --device` waiting for approval, then
//! `server/tests/python/browser_signin.py` drives Debian's headless Chromium with Selenium
//! (from the venv `scripts/tools.sh` makes under `.tools/`): the authorization code flow with
//! PKCE and a loopback redirect URI, as `kubectl oidc-login` runs it, through the sign-in
//! form; the device flow's approval after signing in; and `return_to` values naming another
//! host refused. The browser resolves no host name but the loopback's.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`, which `scripts/test.sh` installs) or without the venv the test says
//! SKIPPED, except in CI (`CI` set), where it fails.

mod oidc_support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use oidc_support::hb_serve::{
    DeviceLogin, ISSUER, admin_with_workspace, device_login, run_script, start, venv_python,
};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn chromium() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver; \
         scripts/test.sh does)"
    );
    // Written to the stderr handle: the harness hides `eprintln!` output of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED the browser sign-in: no {CHROMIUM} or {CHROMEDRIVER}; apt-get install \
         chromium chromium-driver (make test does) ***\n"
    );
    false
}

#[test]
fn a_person_signs_in_with_a_browser_for_kubectl_and_for_hb() {
    if !chromium() {
        return;
    }
    let Some(python) = venv_python(
        "selenium, jwt, requests",
        "the browser sign-in (Selenium, PyJWT)",
    ) else {
        return;
    };
    let server = start(&[("HEXABASE_ISSUER__DEVICE_POLL_SECONDS", "1")]);
    // admin@acme.test, in WSAdmins of acme/dev.
    let _ = admin_with_workspace(&server);

    // `hb login --device` prints where to approve and waits.
    let DeviceLogin {
        child: mut login,
        config,
        user_code,
        complete_uri,
    } = device_login(&server);
    // The issuer URL is the ingress's; here the server itself answers in its place.
    let device_uri = complete_uri.replacen(ISSUER, &server.url, 1);
    assert!(device_uri.starts_with(&server.url), "{device_uri}");

    let config_json = json!({
        "base": server.url,
        "issuer": ISSUER,
        "client_id": "ws-acme-dev",
        "groups_claim": "groups",
        "email": "admin@acme.test",
        "password": "correct horse battery",
        "device_uri": device_uri,
        "user_code": user_code,
    });
    let stdout = match run_script(&python, &server, "browser_signin.py", &config_json) {
        Ok(stdout) => stdout,
        Err(report) => {
            // hb login would wait for an approval that never comes.
            let _ = login.kill();
            panic!("the browser sign-in failed:\n{report}");
        }
    };
    eprintln!("browser sign-in: {}", stdout.trim());

    let done = login.wait_with_output().expect("hb login ends");
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{said}");
    assert!(said.contains("as admin@acme.test"), "{said}");
    let orgs = Command::new(env!("CARGO_BIN_EXE_hb"))
        .args(["get", "orgs", "-o", "json"])
        .env("HB_CONFIG", &config)
        .stdin(Stdio::null())
        .output()
        .expect("hb runs");
    let listed = String::from_utf8_lossy(&orgs.stdout);
    assert!(
        orgs.status.success() && listed.contains("\"acme\""),
        "{listed}"
    );
}
