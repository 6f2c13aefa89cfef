//! `hb login` (an API token from a password or the device flow), `hb kubeconfig` and
//! `hb admin`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::{Value, json};

use super::args::{AdminArgs, AdminCommand, KubeconfigArgs, KubeconfigFormat, LoginArgs};
use super::output::{self, Format};
use super::{Answer, Client, Config, PASSWORD_ENV, config_path, connect, finish};
use crate::settings::Secret;

/// The session cookie a sign-in answer set.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    let prefix = format!("{}=", crate::http::auth::SESSION_COOKIE);
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?.trim();
            pair.strip_prefix(&prefix)
                .filter(|value| !value.is_empty())
                .map(|value| format!("{prefix}{value}"))
        })
}

/// `hb login`. `stdin` gives the password when HB_PASSWORD is not set.
pub fn login(
    args: &LoginArgs,
    env: &BTreeMap<String, String>,
    stdin: &mut dyn BufRead,
) -> ExitCode {
    finish((|| {
        let path = config_path(env)?;
        let client = Client::new(&args.url, HeaderMap::new())?;
        let config = match (&args.token, &args.email) {
            (Some(token), _) => {
                let checked = Client::from_config(&Config {
                    server: client.base().to_owned(),
                    token: Secret::new(token.clone()),
                    user: None,
                })?;
                let me = checked.call(Method::GET, "/api/v1/me", None, &[])?;
                Config {
                    server: client.base().to_owned(),
                    token: Secret::new(token.clone()),
                    user: me
                        .body
                        .get("email")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }
            }
            (None, Some(email)) => {
                let password = match env.get(PASSWORD_ENV) {
                    Some(password) => password.clone(),
                    None => {
                        let mut line = String::new();
                        stdin
                            .read_line(&mut line)
                            .context("failed to read the password from standard input")?;
                        line.trim_end_matches(['\n', '\r']).to_owned()
                    }
                };
                if password.is_empty() {
                    bail!("no password: set {PASSWORD_ENV} or write it to standard input");
                }
                let signed_in = if args.signup {
                    let mut body = json!({
                        "email": email,
                        "name": args.name.clone().unwrap_or_else(|| email.clone()),
                        "password": password,
                    });
                    if let Some(setup) = &args.setup_token {
                        body["setupToken"] = json!(setup);
                    }
                    client.call(Method::POST, "/api/v1/auth/signup", Some(&body), &[])?
                } else {
                    let body = json!({"email": email, "password": password});
                    client.call(Method::POST, "/api/v1/auth/login", Some(&body), &[])?
                };
                let token = token_for_session(&client, &signed_in, &args.token_name)?;
                Config {
                    server: client.base().to_owned(),
                    token: Secret::new(token),
                    user: Some(email.clone()),
                }
            }
            (None, None) if args.device => {
                let token = device_sign_in(&client, &mut std::io::stderr())?;
                let checked = Client::from_config(&Config {
                    server: client.base().to_owned(),
                    token: Secret::new(token.clone()),
                    user: None,
                })?;
                let me = checked.call(Method::GET, "/api/v1/me", None, &[])?;
                Config {
                    server: client.base().to_owned(),
                    token: Secret::new(token),
                    user: me
                        .body
                        .get("email")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }
            }
            (None, None) => bail!(
                "give --device (sign in in a browser), --token, or --email (with --signup to create the account)"
            ),
        };
        config.save(&path)?;
        Ok(format!(
            "logged in to {} as {}; the token is in {}\n",
            config.server,
            config.user.as_deref().unwrap_or("the token's owner"),
            path.display()
        ))
    })())
}

/// The OAuth device flow (RFC 8628) with the `hb` client: asks for a code, tells the person
/// where to approve it, and polls the token endpoint until they have; the access token it
/// gets is an API token.
fn device_sign_in(client: &Client, tell: &mut dyn std::io::Write) -> Result<String> {
    let info = client.call(Method::GET, "/api/v1/auth/issuer", None, &[])?;
    let path = |key: &str| -> Result<String> {
        info.body
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the server's issuer answer has no {key}"))
    };
    let (device_path, token_path) = (path("deviceAuthorizationPath")?, path("tokenPath")?);
    let client_id = path("cliClientId")?;
    let started = client.post_form(
        &device_path,
        &[("client_id", client_id.as_str()), ("scope", "openid")],
    )?;
    if started.0 != 200 {
        bail!(
            "the server refused the device sign-in: {}",
            oauth_error(&started.1)
        );
    }
    let field = |key: &str| {
        started
            .1
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let device_code =
        field("device_code").ok_or_else(|| anyhow!("no device_code in the answer"))?;
    let user_code = field("user_code").ok_or_else(|| anyhow!("no user_code in the answer"))?;
    let uri =
        field("verification_uri").ok_or_else(|| anyhow!("no verification_uri in the answer"))?;
    let mut interval = started
        .1
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .max(1);
    let expires_in = started
        .1
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    writeln!(
        tell,
        "To sign in, open {uri} and enter the code {user_code}"
    )
    .context("failed to print the code")?;
    if let Some(complete) = field("verification_uri_complete") {
        writeln!(tell, "(or open {complete})").context("failed to print the code")?;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(expires_in);
    loop {
        std::thread::sleep(Duration::from_secs(interval));
        if std::time::Instant::now() > deadline {
            bail!("the code expired before it was approved; run hb login --device again");
        }
        let (status, body) = client.post_form(
            &token_path,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code.as_str()),
                ("client_id", client_id.as_str()),
            ],
        )?;
        if status == 200 {
            return body
                .get("access_token")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("the token answer has no access_token"));
        }
        match body.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            _ => bail!("the sign-in failed: {}", oauth_error(&body)),
        }
    }
}

/// An OAuth error answer as one line.
fn oauth_error(body: &Value) -> String {
    match (
        body.get("error").and_then(Value::as_str),
        body.get("error_description").and_then(Value::as_str),
    ) {
        (Some(error), Some(description)) => format!("{error}: {description}"),
        (Some(error), None) => error.to_owned(),
        _ => body.to_string(),
    }
}

/// `hb kubeconfig <org>/<workspace>`: prints a kubeconfig for the workspace's vCluster.
pub fn kubeconfig(args: &KubeconfigArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let (org, ws) = args
            .workspace
            .split_once('/')
            .filter(|(o, w)| !o.is_empty() && !w.is_empty() && !w.contains('/'))
            .ok_or_else(|| {
                anyhow!(
                    "workspace {:?}: give it as <org>/<workspace>",
                    args.workspace
                )
            })?;
        let client = connect(env)?;
        let answer = client.call(
            Method::GET,
            &format!("/api/v1/orgs/{org}/workspaces/{ws}/kubeconfig"),
            None,
            &[],
        )?;
        match args.output {
            KubeconfigFormat::Json => serde_json::to_string_pretty(&answer.body)
                .map(|s| s + "\n")
                .context("failed to print the kubeconfig"),
            KubeconfigFormat::Yaml => serde_saphyr::to_string(&answer.body)
                .map_err(|e| anyhow!("failed to print the kubeconfig as YAML: {e}")),
        }
    })())
}

/// `hb admin`.
pub fn admin(args: &AdminArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| match &args.command {
        AdminCommand::RotateKeys { output } => {
            let answer =
                connect(env)?.call(Method::POST, "/api/v1/admin/issuer/rotate-keys", None, &[])?;
            match output {
                Format::Table => {
                    let rotation: crate::service::issuer::Rotation =
                        serde_json::from_value(answer.body)
                            .context("the server's rotation answer")?;
                    Ok(describe_rotation(&rotation))
                }
                format => output::render(&answer.body, *format, &[]).map_err(|e| anyhow!(e)),
            }
        }
    })())
}

/// A rotation in words: the new key, when it signs, and until when the others stay.
fn describe_rotation(rotation: &crate::service::issuer::Rotation) -> String {
    use crate::service::audit::utc;
    let mut out = if rotation.created {
        format!(
            "published signing key {} ({}) at {} UTC; it signs from {} UTC\n",
            rotation.kid,
            rotation.alg,
            utc(rotation.published_at),
            utc(rotation.activates_at)
        )
    } else {
        format!(
            "a rotation is already under way: signing key {} ({}) signs from {} UTC; no key \
             was made\n",
            rotation.kid,
            rotation.alg,
            utc(rotation.activates_at)
        )
    };
    for key in rotation.keys.iter().filter(|k| k.kid != rotation.kid) {
        if let Some(retires) = key.retires_at {
            out.push_str(&format!(
                "key {} stays published until {} UTC, when every token it signed has expired\n",
                key.kid,
                utc(retires)
            ));
        }
    }
    out
}

/// Creates an API token with the session a sign-in answer started, then signs the session
/// out.
fn token_for_session(client: &Client, signed_in: &Answer, name: &str) -> Result<String> {
    let cookie = session_cookie(&signed_in.headers)
        .ok_or_else(|| anyhow!("the server started no session (no session cookie)"))?;
    let csrf = signed_in
        .body
        .get("csrfToken")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the server's sign-in answer has no csrfToken"))?
        .to_owned();
    let headers = [
        (reqwest::header::COOKIE, cookie),
        (
            HeaderName::from_static(crate::http::auth::CSRF_HEADER),
            csrf,
        ),
    ];
    let created = client.call(
        Method::POST,
        "/api/v1/tokens",
        Some(&json!({"name": name})),
        &headers,
    )?;
    let secret = created
        .body
        .get("secret")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the server's token answer has no secret"))?
        .to_owned();
    if let Err(error) = client.call(Method::POST, "/api/v1/auth/logout", None, &headers) {
        eprintln!("hb: warning: failed to sign the temporary session out: {error}");
    }
    Ok(secret)
}
