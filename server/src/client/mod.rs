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

pub mod kinds;
pub mod output;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use self::kinds::Target;
use self::output::Format;
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

/// `hb login` arguments.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The server's URL (`http://127.0.0.1:8080`).
    pub url: String,
    /// Use this API token (made in the UI or with `POST /api/v1/tokens`).
    #[arg(long, conflicts_with_all = ["email", "signup"])]
    pub token: Option<String>,
    /// Sign in with this email; the password is read from HB_PASSWORD or the first line of
    /// standard input.
    #[arg(long)]
    pub email: Option<String>,
    /// Create the account instead of signing in (with --email, --name, and --setup-token for
    /// the first account of a new server).
    #[arg(long, requires = "email")]
    pub signup: bool,
    /// Your name, for --signup.
    #[arg(long, requires = "signup")]
    pub name: Option<String>,
    /// The one-time setup token `hb serve` printed, for the first account.
    #[arg(long, requires = "signup")]
    pub setup_token: Option<String>,
    /// The name of the API token to create.
    #[arg(long, default_value = "hb CLI")]
    pub token_name: String,
    /// Sign in in a browser (the OAuth device flow): prints a URL and a code to approve
    /// there, and waits.
    #[arg(long, conflicts_with_all = ["token", "email"])]
    pub device: bool,
}

/// `hb kubeconfig` arguments.
#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {
    /// The workspace, `<org>/<workspace>`.
    pub workspace: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = KubeconfigFormat::Yaml)]
    pub output: KubeconfigFormat,
}

/// How `hb kubeconfig` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeconfigFormat {
    /// YAML, as kubeconfig files usually are.
    Yaml,
    /// JSON (kubectl reads it too).
    Json,
}

/// `hb admin` arguments: what only the platform administrator may do.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The platform administrator's commands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Rotate the issuer's signing key without an outage: a new key is published now and
    /// signs after issuer.publish_ahead_seconds; the old key stays published until every
    /// token it signed has expired. Asking again while a new key waits to sign changes
    /// nothing.
    RotateKeys {
        /// Output format (`table`: a summary).
        #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

/// The scope flags of `hb get|create|delete`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// The organization.
    #[arg(long)]
    pub org: Option<String>,
    /// The workspace.
    #[arg(long, short = 'w')]
    pub workspace: Option<String>,
    /// The project.
    #[arg(long, short = 'p')]
    pub project: Option<String>,
    /// The workspace group (members of a group instead of the organization's users).
    #[arg(long)]
    pub group: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        Target {
            org: self.org.clone(),
            workspace: self.workspace.clone(),
            project: self.project.clone(),
            group: self.group.clone(),
        }
    }
}

/// `hb get` arguments.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// What to list: organizations, workspaces, projects, groups, members, roles, cronjobs,
    /// functions.
    pub kind: String,
    /// One of them, by name; all when left out.
    pub name: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `hb create` arguments.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// What to create (see `hb get`).
    pub kind: String,
    /// Its name (for members: the user's id, or for group members their id or email).
    pub name: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The request body as a JSON or YAML file (`-` for standard input); the name and the
    /// flags below are set on top of it.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// A body field, `key=value` (`a.b=v` nests; a value that parses as JSON is taken as
    /// JSON); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The plan (workspaces).
    #[arg(long)]
    pub plan: Option<String>,
    /// The host cluster (workspaces).
    #[arg(long)]
    pub cluster: Option<String>,
    /// The display name (organizations: their name).
    #[arg(long)]
    pub display_name: Option<String>,
    /// The parent group (groups).
    #[arg(long)]
    pub parent: Option<String>,
    /// The role (organization members: owner or billing).
    #[arg(long)]
    pub role: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `hb delete` arguments.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// What to delete (see `hb get`).
    pub kind: String,
    /// Its name.
    pub name: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Runs a client command: prints what `run` returns, maps failures to exit codes.
fn finish(result: Result<String>) -> ExitCode {
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

fn kind_of(name: &str) -> Result<&'static kinds::Kind> {
    kinds::find(name).ok_or_else(|| anyhow!("unknown kind {name:?}; one of: {}", kinds::known()))
}

fn connect(env: &BTreeMap<String, String>) -> Result<Client> {
    let config = Config::load(&config_path(env)?)?;
    Client::from_config(&config)
}

/// `hb get`.
pub fn get(args: &GetArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let kind = kind_of(&args.kind)?;
        let (mut path, kind) =
            kinds::collection_path(kind, &args.target.target()).map_err(|e| anyhow!(e))?;
        if let Some(name) = &args.name {
            path = format!(
                "{path}/{}",
                kinds::segment(name).map_err(|e| anyhow!("name: {e}"))?
            );
        }
        let answer = connect(env)?.call(Method::GET, &path, None, &[])?;
        output::render(&answer.body, args.output, kind.columns).map_err(|e| anyhow!(e))
    })())
}

/// Sets `key` (dotted for nesting) to `value` in `body`.
fn set_field(body: &mut Map<String, Value>, key: &str, value: Value) -> Result<()> {
    let mut parts = key.split('.').peekable();
    let mut at = body;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            bail!("--set {key}: empty key");
        }
        if parts.peek().is_none() {
            at.insert(part.to_owned(), value);
            return Ok(());
        }
        let next = at
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        at = next
            .as_object_mut()
            .ok_or_else(|| anyhow!("--set {key}: {part} is not an object"))?;
    }
    Ok(())
}

/// The body of `hb create`: the file, then the name, the typed flags and `--set`.
fn create_body(args: &CreateArgs, kind: &kinds::Kind) -> Result<Value> {
    let mut body = match &args.file {
        None => Map::new(),
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("failed to read the body")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("--file: failed to read {}", path.display()))?
            };
            let value: Value = serde_json::from_str(&text).or_else(|_| {
                serde_saphyr::from_str(&text)
                    .map_err(|e| anyhow!("--file {}: neither JSON nor YAML: {e}", path.display()))
            })?;
            match value {
                Value::Object(map) => map,
                _ => bail!("--file {}: must hold an object", path.display()),
            }
        }
    };
    body.insert(kind.name_field.to_owned(), json!(args.name));
    let display_key = if kind.plural == "organizations" {
        "name"
    } else {
        "displayName"
    };
    if kind.plural == "organizations" {
        let display = args.display_name.as_deref().unwrap_or(&args.name);
        body.entry("name").or_insert_with(|| json!(display));
    }
    for (key, value) in [
        ("plan", &args.plan),
        ("cluster", &args.cluster),
        (display_key, &args.display_name),
        ("parent", &args.parent),
        ("role", &args.role),
    ] {
        if let Some(value) = value {
            body.insert(key.to_owned(), json!(value));
        }
    }
    for pair in &args.set {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {pair}: expected KEY=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        set_field(&mut body, key, value)?;
    }
    Ok(Value::Object(body))
}

/// What a create or delete answers, in a line: the commit when there is one.
fn done_line(verb: &str, kind: &kinds::Kind, name: &str, answer: &Value) -> String {
    let singular = kind.plural.strip_suffix('s').unwrap_or(kind.plural);
    match answer.get("commit").and_then(Value::as_str) {
        Some(commit) => format!("{singular} {name} {verb} (commit {commit})\n"),
        None if answer.get("commit").is_some() => {
            format!("{singular} {name} unchanged (nothing to commit)\n")
        }
        None => format!("{singular} {name} {verb}\n"),
    }
}

/// `hb create`.
pub fn create(args: &CreateArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let kind = kind_of(&args.kind)?;
        let (path, kind) =
            kinds::collection_path(kind, &args.target.target()).map_err(|e| anyhow!(e))?;
        let body = create_body(args, kind)?;
        let answer = connect(env)?.call(Method::POST, &path, Some(&body), &[])?;
        match args.output {
            Format::Table => Ok(done_line("created", kind, &args.name, &answer.body)),
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

/// `hb delete`.
pub fn delete(args: &DeleteArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let kind = kind_of(&args.kind)?;
        let (path, kind) =
            kinds::collection_path(kind, &args.target.target()).map_err(|e| anyhow!(e))?;
        let name = kinds::segment(&args.name).map_err(|e| anyhow!("name: {e}"))?;
        let answer = connect(env)?.call(Method::DELETE, &format!("{path}/{name}"), None, &[])?;
        match args.output {
            Format::Table => Ok(done_line("deleted", kind, &args.name, &answer.body)),
            format => output::render(&answer.body, format, &[]).map_err(|e| anyhow!(e)),
        }
    })())
}

/// `hb audit` against the server (no `--repo`): `GET /api/v1/orgs/{org}/audit`.
pub fn audit(args: &crate::cli::AuditArgs, env: &BTreeMap<String, String>) -> ExitCode {
    finish((|| {
        let org = args
            .org
            .as_deref()
            .ok_or_else(|| anyhow!("--org is needed against the server (or give --repo)"))?;
        let limit = args.limit.map(|l| l.to_string());
        let query: Vec<String> = [
            ("workspace", args.workspace.as_deref()),
            ("actor", args.actor.as_deref()),
            ("action", args.action.as_deref()),
            ("since", args.since.as_deref()),
            ("until", args.until.as_deref()),
            ("limit", limit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some(format!("{key}={}", kinds::encode(value?))))
        .collect();
        let query = query.join("&");
        let org = kinds::segment(org).map_err(|e| anyhow!("--org: {e}"))?;
        let path = if query.is_empty() {
            format!("/api/v1/orgs/{org}/audit")
        } else {
            format!("/api/v1/orgs/{org}/audit?{query}")
        };
        let answer = connect(env)?.call(Method::GET, &path, None, &[])?;
        if args.json {
            return output::render(&answer.body, Format::Json, &[]).map_err(|e| anyhow!(e));
        }
        let entries: Vec<crate::service::audit::AuditEntry> =
            serde_json::from_value(answer.body).context("the server's audit answer")?;
        Ok(crate::service::audit::render_table(&entries))
    })())
}

/// The session cookie a sign-in answer set.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn create_bodies_take_the_file_the_name_the_flags_and_set() {
        let dir = std::env::temp_dir().join(format!("hb-client-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cron.yaml");
        std::fs::write(
            &file,
            "schedule: '*/5 * * * *'\nimage: busybox\nname: ignored\n",
        )
        .unwrap();
        let args = CreateArgs {
            kind: "cronjobs".into(),
            name: "tick".into(),
            target: TargetArgs::default(),
            file: Some(file),
            set: vec!["suspend=true".into(), "resources.cpu=250m".into()],
            plan: None,
            cluster: None,
            display_name: Some("Tick".into()),
            parent: None,
            role: None,
            output: Format::Table,
        };
        let body = create_body(&args, kinds::find("cronjob").unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "schedule": "*/5 * * * *",
                "image": "busybox",
                "name": "tick",
                "displayName": "Tick",
                "suspend": true,
                "resources": {"cpu": "250m"}
            })
        );
        let org = CreateArgs {
            kind: "org".into(),
            name: "acme".into(),
            file: None,
            set: Vec::new(),
            display_name: None,
            ..args
        };
        let body = create_body(&org, kinds::find("org").unwrap()).unwrap();
        assert_eq!(body, json!({"slug": "acme", "name": "acme"}));
        let bad = CreateArgs {
            set: vec!["novalue".into()],
            ..org
        };
        let error = create_body(&bad, kinds::find("org").unwrap()).unwrap_err();
        assert!(error.to_string().contains("--set novalue"), "{error}");
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
