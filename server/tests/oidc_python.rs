//! The issuer against an independent client: the real `hb serve` on a free port, a user who
//! made a workspace, then `server/tests/python/oidc_client.py` (authlib and PyJWT, from the
//! venv `scripts/tools.sh` makes under `.tools/`) runs the code flow with PKCE and the
//! refresh, verifies the ID tokens against the published discovery document and key set, and
//! refuses every forged token this side makes with the issuer's own key.
//!
//! Without the venv the test says SKIPPED, except in CI (`CI` set), where it fails.

mod oidc_support;

use std::process::{Command, Stdio};

use oidc_support::hb_serve::{
    DeviceLogin, ISSUER, admin_with_workspace, device_login, run_script, start, venv_python,
    wall_clock,
};
use serde_json::{Value, json};

#[test]
fn an_independent_client_verifies_tokens_and_refuses_forgeries() {
    let Some(python) = venv_python(
        "jwt, authlib, requests",
        "the independent OIDC client (PyJWT and authlib)",
    ) else {
        return;
    };
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

    let config = json!({
        "base": server.url,
        "issuer": ISSUER,
        "client_id": "ws-acme-dev",
        "groups_claim": "groups",
        "session": session,
        "forgeries": forged,
    });
    let stdout = run_script(&python, &server, "oidc_client.py", &config)
        .unwrap_or_else(|report| panic!("the independent client failed:\n{report}"));
    eprintln!("independent client: {}", stdout.trim());
}

#[test]
fn hb_signs_in_with_the_device_flow_and_prints_a_kubeconfig() {
    let server = start(&[("HEXABASE_ISSUER__DEVICE_POLL_SECONDS", "1")]);
    let (http, session, csrf) = admin_with_workspace(&server);
    let DeviceLogin {
        child: login,
        config,
        user_code: code,
        ..
    } = device_login(&server);
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
    assert!(!yaml.contains("certificate-authority-data"), "{yaml}");
    let json_out = hb(&["kubeconfig", "acme/dev", "-o", "json"]);
    let parsed: Value = serde_json::from_slice(&json_out.stdout).expect("JSON");
    assert_eq!(parsed["current-context"], "acme-dev");
    assert_eq!(hb(&["kubeconfig", "acme"]).status.code(), Some(2));
    assert_eq!(hb(&["kubeconfig", "acme/nope"]).status.code(), Some(1));

    // The administrator rotates the issuer's key: published now, signing an hour later.
    let out = hb(&["admin", "rotate-keys"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("published signing key "), "{said}");
    assert!(said.contains("it signs from"), "{said}");
    assert!(said.contains("stays published until"), "{said}");
    let again = hb(&["admin", "rotate-keys", "-o", "json"]);
    let again: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(again["created"], false);
    let jwks: Value = http
        .get(format!("{}/oauth2/keys", server.url))
        .send()
        .and_then(reqwest::blocking::Response::json)
        .expect("the key set");
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
}
