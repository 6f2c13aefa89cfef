//! `hb` as a client of the server, in the manner of kubectl: `hb login` stores the server's
//! URL and an API token in a config file; `hb get|create|delete <kind>` and `hb audit` (without
//! `--repo`) call the REST API with it.
//!
//! The config file is `$HB_CONFIG`, else `$XDG_CONFIG_HOME/hexabase/config.toml`, else
//! `~/.config/hexabase/config.toml`, written with mode 0600. A password is never stored:
//! `hb login --email` signs in once, creates an API token (`POST /api/v1/tokens`) and signs
//! the session out again.
//!
//! Exit codes: 0 done; 1 the server refused (its problem is printed, with the field at
//! fault); 2 the command could not run (no config, server unreachable, bad arguments).
//!
//! This file holds the config and the HTTP client; `args` the commands' arguments,
//! `resources` `get`, `create`, `delete` and `audit`, `update` `apply`, `edit` and
//! `accept-invitation`, `coverage` the command of every API operation, `login` `login`,
//! `kubeconfig` and `admin`, `kinds` the kinds' API paths and `output` the printing.

mod args;
pub mod coverage;
pub mod kinds;
mod login;
pub mod output;
mod probe;
mod resources;
mod update;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::args::{
    AcceptArgs, AdminArgs, AdminCommand, ApplyArgs, CreateArgs, DeleteArgs, EditArgs, GetArgs,
    KubeconfigArgs, KubeconfigFormat, LoginArgs, TargetArgs,
};
pub use self::login::{admin, kubeconfig, login};
pub use self::probe::{DEFAULT_HEALTH_URL, health};
pub use self::resources::{audit, create, delete, get};
pub use self::update::{accept_invitation, apply, edit};
use crate::settings::Secret;

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "HB_CONFIG";
/// The environment variable `hb login --email` reads the password from.
pub const PASSWORD_ENV: &str = "HB_PASSWORD";

/// What `hb login` stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The server's URL (`http://127.0.0.1:8080`).
    pub server: String,
    /// The API token.
    pub token: Secret,
    /// Who the token belongs to (for people reading the file).
    #[serde(default)]
    pub user: Option<String>,
}

/// Serialises the token itself (the settings' [`Secret`] prints as `<redacted>`).
#[derive(Serialize)]
struct ConfigFile<'a> {
    server: &'a str,
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

/// The config file's path for the environment `env`.
pub fn config_path(env: &BTreeMap<String, String>) -> Result<PathBuf> {
    if let Some(path) = env.get(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let base = match (env.get("XDG_CONFIG_HOME"), env.get("HOME")) {
        (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg),
        (_, Some(home)) if !home.is_empty() => Path::new(home).join(".config"),
        _ => bail!("cannot place the config file: set {CONFIG_ENV}, XDG_CONFIG_HOME or HOME"),
    };
    Ok(base.join("hexabase").join("config.toml"))
}

impl Config {
    /// Reads the config file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "not logged in ({} does not exist): run `hb login <url>` first",
                    path.display()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))
    }

    /// Writes the config file at `path`, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write as _;
        let text = toml::to_string(&ConfigFile {
            server: &self.server,
            token: self.token.expose(),
            user: self.user.as_deref(),
        })
        .context("failed to encode the config")?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let tmp = path.with_extension("toml.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("failed to restrict {}", tmp.display()))?;
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("failed to write {}", path.display()))
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error (a problem document when it is ours).
    #[error("{}", describe_problem(*.status, .problem))]
    Refused {
        /// The status.
        status: u16,
        /// The body.
        problem: Value,
    },
    /// The call did not complete.
    #[error("failed to reach {url}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
}

fn describe_problem(status: u16, problem: &Value) -> String {
    let text = |key: &str| problem.get(key).and_then(Value::as_str);
    let mut out = format!(
        "{} ({status}{})",
        text("title").unwrap_or("the server refused"),
        text("code").map(|c| format!(" {c}")).unwrap_or_default()
    );
    if let Some(detail) = text("detail") {
        out.push_str(": ");
        out.push_str(detail);
    }
    if let Some(errors) = problem.get("errors").and_then(Value::as_array)
        && errors.len() > 1
    {
        for e in errors {
            let field = e.get("field").and_then(Value::as_str).unwrap_or("?");
            let message = e.get("message").and_then(Value::as_str).unwrap_or("?");
            out.push_str(&format!("\n  {field}: {message}"));
        }
    }
    if let Value::String(body) = problem {
        out.push_str(": ");
        out.push_str(body);
    }
    out
}

/// A server's answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`null` when empty, a string when not JSON).
    pub body: Value,
}

/// A client of one server.
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    headers: HeaderMap,
}

impl Client {
    /// A client of the server at `base`, sending `headers` with every request.
    pub fn new(base: &str, headers: HeaderMap) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("server URL {base:?}: must start with http:// or https://");
        }
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("hb/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("failed to set up the HTTP client")?;
        Ok(Self {
            base,
            http,
            headers,
        })
    }

    /// A client with the config's server and token.
    pub fn from_config(config: &Config) -> Result<Self> {
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer {}", config.token.expose()))
            .context("the token in the config file is not a valid header value")?;
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        Self::new(&config.server, headers)
    }

    /// The server's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Calls `method path` with a JSON `body`; any status but 2xx is [`CallError::Refused`].
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        extra: &[(HeaderName, String)],
    ) -> Result<Answer, CallError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .headers(self.headers.clone());
        for (name, value) in extra {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| CallError::Transport {
            url: url.clone(),
            source,
        };
        let response: Response = request.send().map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().map_err(transport)?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if (200..300).contains(&status) {
            Ok(Answer {
                status,
                headers,
                body,
            })
        } else {
            Err(CallError::Refused {
                status,
                problem: body,
            })
        }
    }
}

impl Client {
    /// Posts a form to `path`; answers the status and the body as JSON (`null` when not).
    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .form(form)
            .send()
            .with_context(|| format!("failed to reach {url}"))?;
        let status = response.status().as_u16();
        let body = response.json().unwrap_or(Value::Null);
        Ok((status, body))
    }
}

/// Runs a client command: prints what `run` returns, maps failures to exit codes.
pub(super) fn finish(result: Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match std::io::Write::write_all(&mut stdout, text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("hb: failed to write the answer: {e}");
                    ExitCode::from(2)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            eprintln!("hb: error: {error:#}");
            match error.downcast_ref::<CallError>() {
                Some(CallError::Refused { .. }) => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}
pub(super) fn connect(env: &BTreeMap<String, String>) -> Result<Client> {
    let config = Config::load(&config_path(env)?)?;
    Client::from_config(&config)
}

#[cfg(test)]
mod tests {
    use super::login::session_cookie;
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_config_file_is_found_by_hb_config_then_xdg_then_home() {
        let path = |pairs| config_path(&env(pairs)).unwrap();
        assert_eq!(
            path(&[("HB_CONFIG", "/c/hb.toml"), ("XDG_CONFIG_HOME", "/x")]),
            PathBuf::from("/c/hb.toml")
        );
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]),
            PathBuf::from("/x/hexabase/config.toml")
        );
        assert_eq!(
            path(&[("HOME", "/h")]),
            PathBuf::from("/h/.config/hexabase/config.toml")
        );
        assert!(config_path(&env(&[])).is_err());
    }

    #[test]
    fn the_config_file_is_private_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("hb-client-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("hexabase").join("config.toml");
        let config = Config {
            server: "http://127.0.0.1:8080".into(),
            token: Secret::new("hbt_secret"),
            user: Some("ana@example.com".into()),
        };
        config.save(&path).unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded.token.expose(), "hbt_secret");
        assert_eq!(loaded.server, config.server);
        assert!(!format!("{loaded:?}").contains("hbt_secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let missing = Config::load(&dir.join("none.toml")).unwrap_err();
        assert!(format!("{missing:#}").contains("hb login"), "{missing:#}");
    }

    #[test]
    fn problems_are_described_with_their_fields() {
        let problem = json!({
            "title": "The request is invalid", "status": 422, "code": "invalid",
            "detail": "plan: unknown; name: too long",
            "errors": [{"field": "plan", "message": "unknown"}, {"field": "name", "message": "too long"}]
        });
        assert_eq!(
            describe_problem(422, &problem),
            "The request is invalid (422 invalid): plan: unknown; name: too long\n  plan: unknown\n  name: too long"
        );
        let mut headers = HeaderMap::new();
        headers.append(
            reqwest::header::SET_COOKIE,
            HeaderValue::from_static("other=1; Path=/"),
        );
        headers.append(
            reqwest::header::SET_COOKIE,
            HeaderValue::from_static("hb_session=abc; HttpOnly; Path=/"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("hb_session=abc"));
    }
}
