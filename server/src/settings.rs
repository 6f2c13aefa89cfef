//! The server's configuration: defaults, then a TOML file, then `HEXABASE_` environment
//! variables (`__` nests: `HEXABASE_GIT__BRANCH=main`), then secrets read from files.
//!
//! Nothing below `main` reads the environment: [`Settings::load`] takes the variables as data.
//! Secrets sit in [`Secret`], which prints as `<redacted>` in `Debug`, logs and `print-config`.
//!
//! The settings of sign-in, sessions and the issuer are in `sign_in.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

mod sign_in;

pub use crate::gitops::remote::Credentials;
pub use sign_in::{
    AccountSettings, IssuerSettings, OidcProvider, ProviderKind, SessionSettings, SigningAlg,
};

/// A secret string: never printed.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Everything `hb serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the API and UI listen.
    pub listen: SocketAddr,
    /// Where Prometheus metrics are served (a separate listener); `off` turns them off.
    #[serde(with = "socket_or_off")]
    pub metrics_listen: Option<SocketAddr>,
    /// The URL people and clients reach the server at (the OIDC issuer, cookie security).
    /// Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// The folder holding the SQLite database and the Git repository by default.
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL, or a SQLite file path. Defaults to
    /// `<data_dir>/hexabase.db`. Also read from `DATABASE_URL`.
    pub database_url: Option<Secret>,
    /// A file holding `database_url` (for secrets mounted as files).
    pub database_url_file: Option<PathBuf>,
    /// The GitOps repository.
    pub git: GitSettings,
    /// Request limits.
    pub limits: Limits,
    /// Browser sessions.
    pub sessions: SessionSettings,
    /// External OpenID Connect providers people may sign in with.
    pub oidc_providers: Vec<OidcProvider>,
    /// The server as the OpenID Connect issuer of every vCluster.
    pub issuer: IssuerSettings,
    /// Accounts: sign-up and invitations.
    pub accounts: AccountSettings,
    /// Billing: plan prices.
    pub billing: BillingSettings,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
}

/// The GitOps repository the server writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitSettings {
    /// A bare repository; created when missing. Defaults to `<data_dir>/gitops.git`.
    pub repo: Option<PathBuf>,
    /// The branch Flux reads.
    pub branch: String,
    /// The remote to push to (`file://`, `https://`, `ssh://`); none for a local repository.
    /// With a remote, a background pusher pushes after every commit and every
    /// `push_interval_seconds`.
    pub remote: Option<String>,
    /// How to authenticate to the remote (`kind = "none" | "ssh" | "http"`; key, known_hosts
    /// and password are files).
    pub remote_credentials: Credentials,
    /// Seconds between pushes when no commit wakes the pusher (retries a remote that was down).
    pub push_interval_seconds: u64,
    /// `/readyz` fails when commits have waited this long with no successful push.
    pub push_stuck_seconds: u64,
    /// At shutdown, how long to wait for the last push.
    pub shutdown_push_seconds: u64,
    /// The committer of every commit.
    pub bot_name: String,
    /// The committer's email.
    pub bot_email: String,
    /// SSH private key file to sign commits with (`ssh-keygen -Y sign`).
    pub sign_ssh_key: Option<PathBuf>,
    /// OpenPGP key id to sign commits with (`gpg`).
    pub sign_gpg_key: Option<String>,
}

/// Request limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes; larger bodies get 413 before parsing.
    pub body_bytes: usize,
    /// Sign-in and sign-up attempts per client address per minute (0: no limit).
    pub logins_per_client_per_minute: u32,
    /// Failed sign-ins on one account before it backs off (an unknown email counts alike).
    pub login_free_failures_per_account: u32,
    /// Failed sign-ins from one client address before it backs off.
    pub login_free_failures_per_client: u32,
    /// The first back-off wait, in seconds; each further failure doubles it.
    pub login_backoff_first_seconds: i64,
    /// The longest back-off wait, in seconds.
    pub login_backoff_max_seconds: i64,
    /// Failed sign-ins are forgotten this many seconds after the last one.
    pub login_failures_forget_seconds: i64,
    /// Write actions per organization per second (sustained).
    pub actions_per_org_per_second: u32,
    /// Write actions per organization in a burst.
    pub actions_per_org_burst: u32,
    /// Connections the API listener serves at once (at least 1). Beyond it, a new connection
    /// takes the place of the least recently active idle one, or waits for a busy one to end.
    pub max_connections: usize,
    /// Seconds a connection may stay silent between requests (keep-alive) before it is closed.
    pub idle_seconds: u64,
    /// Seconds a request's headers may take to arrive, from their first byte (from the
    /// connection's start for its first request); slower connections are closed.
    pub header_read_seconds: u64,
}

/// The most connections `limits.max_connections` may allow (far beyond any open-files limit).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

impl Limits {
    /// Refuses limits the listener cannot work with, naming the key.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("max_connections", self.max_connections as u64),
            ("idle_seconds", self.idle_seconds),
            ("header_read_seconds", self.header_read_seconds),
        ] {
            if value == 0 {
                return Err(format!("{key}: must be at least 1"));
            }
        }
        if self.max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(format!(
                "max_connections: must be at most {MAX_CONNECTIONS_LIMIT}"
            ));
        }
        if self.login_backoff_first_seconds < 1 {
            return Err("login_backoff_first_seconds: must be at least 1".to_owned());
        }
        if self.login_backoff_max_seconds < self.login_backoff_first_seconds {
            return Err(
                "login_backoff_max_seconds: must be at least login_backoff_first_seconds"
                    .to_owned(),
            );
        }
        if self.login_failures_forget_seconds < self.login_backoff_max_seconds {
            return Err(
                "login_failures_forget_seconds: must be at least login_backoff_max_seconds"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// The bounds of the API listener's connections.
    pub fn connections(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            max: self.max_connections,
            idle: std::time::Duration::from_secs(self.idle_seconds),
            header_read: std::time::Duration::from_secs(self.header_read_seconds),
        }
    }
}

/// Billing: what the plans cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingSettings {
    /// The ISO 4217 currency of the prices.
    pub currency: String,
    /// Monthly price of each plan in the currency's smallest unit (`shared-small = 2900`).
    /// When set, it replaces the stored prices at start; when empty, they are left alone.
    pub monthly_cents: BTreeMap<String, i64>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            public_url: None,
            data_dir: PathBuf::from("hexabase-data"),
            database_url: None,
            database_url_file: None,
            git: GitSettings::default(),
            limits: Limits::default(),
            sessions: SessionSettings::default(),
            oidc_providers: Vec::new(),
            issuer: IssuerSettings::default(),
            accounts: AccountSettings::default(),
            billing: BillingSettings::default(),
            log_format: LogFormat::Text,
        }
    }
}

impl Default for GitSettings {
    fn default() -> Self {
        Self {
            repo: None,
            branch: "main".to_owned(),
            remote: None,
            remote_credentials: Credentials::None,
            push_interval_seconds: 30,
            push_stuck_seconds: 600,
            shutdown_push_seconds: 20,
            bot_name: "Hexabase".to_owned(),
            bot_email: "bot@hexabase.invalid".to_owned(),
            sign_ssh_key: None,
            sign_gpg_key: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            logins_per_client_per_minute: 60,
            login_free_failures_per_account: 5,
            login_free_failures_per_client: 20,
            login_backoff_first_seconds: 1,
            login_backoff_max_seconds: 3600,
            login_failures_forget_seconds: 24 * 3600,
            actions_per_org_per_second: 50,
            actions_per_org_burst: 200,
            max_connections: 512,
            idle_seconds: 60,
            header_read_seconds: 10,
        }
    }
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            currency: "USD".to_owned(),
            monthly_cents: BTreeMap::new(),
        }
    }
}

/// The environment variable prefix.
pub const ENV_PREFIX: &str = "HEXABASE_";

impl Settings {
    /// Loads the settings: defaults, then `file` (TOML) when given, then the `HEXABASE_`
    /// variables among `env` (and `DATABASE_URL`), then secrets from their files.
    pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Self> {
        let mut table = toml::Table::try_from(Self::default())
            .context("failed to serialise the default settings")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read settings from {}", path.display()))?;
            let from_file: toml::Table = toml::from_str(&text)
                .with_context(|| format!("failed to parse settings in {}", path.display()))?;
            merge(&mut table, from_file);
        }
        merge(&mut table, env_table(env)?);
        let mut settings: Self = table
            .try_into()
            .context("invalid settings (defaults, file and HEXABASE_ variables)")?;
        if let Some(url) = env.get("DATABASE_URL") {
            settings.database_url = Some(Secret::new(url.clone()));
        }
        settings.read_secret_files()?;
        settings.issuer.load_kubeconfig_ca()?;
        settings
            .limits
            .check()
            .map_err(|e| anyhow::anyhow!("limits.{e}"))?;
        Ok(settings)
    }

    fn read_secret_files(&mut self) -> Result<()> {
        if let Some(path) = &self.database_url_file {
            self.database_url = Some(read_secret(path, "database_url_file")?);
        }
        for provider in &mut self.oidc_providers {
            if let Some(path) = &provider.client_secret_file {
                provider.client_secret = Some(read_secret(
                    path,
                    &format!("oidc_providers[{}].client_secret_file", provider.name),
                )?);
            }
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> Secret {
        self.database_url
            .clone()
            .unwrap_or_else(|| Secret::new(self.data_dir.join("hexabase.db").display().to_string()))
    }

    /// The Git repository in effect.
    pub fn git_repo(&self) -> PathBuf {
        self.git
            .repo
            .clone()
            .unwrap_or_else(|| self.data_dir.join("gitops.git"))
    }

    /// The public URL in effect, without a trailing slash.
    pub fn public_url(&self) -> String {
        self.public_url
            .as_deref()
            .map_or_else(|| format!("http://{}", self.listen), str::to_owned)
            .trim_end_matches('/')
            .to_owned()
    }

    /// The effective settings as TOML, secrets redacted (`hb serve --print-config`).
    pub fn to_redacted_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("failed to print the settings")
    }
}

/// `Option<SocketAddr>` written as an address or `off` (TOML has no null).
mod socket_or_off {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(addr) => serializer.collect_str(addr),
            None => serializer.serialize_str("off"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "" | "off" => Ok(None),
            _ => text.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

fn read_secret(path: &Path, field: &str) -> Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{field}: failed to read {}", path.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// The `HEXABASE_` variables as a TOML table: `HEXABASE_GIT__BRANCH=x` is `git.branch = "x"`.
/// A value that parses as a TOML value (a number, a boolean, an array) is taken as one;
/// anything else is a string.
fn env_table(env: &BTreeMap<String, String>) -> Result<toml::Table> {
    let mut table = toml::Table::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // The settings file and the log filter (serve.rs) are read on their own.
        if key == "CONFIG" || key == "LOG" {
            continue;
        }
        let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            bail!("{name}: empty key segment");
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_table())
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, parents) = path
            .split_last()
            .expect("split yields at least one segment");
        let mut at = &mut table;
        for segment in parents {
            let entry = at
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(next) = entry else {
                bail!("{name}: {segment} is not a table");
            };
            at = next;
        }
        at.insert(last.clone(), parsed);
    }
    Ok(table)
}

/// Merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = std::env::temp_dir().join(format!("hb-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hexabase.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[git]\nbranch = \"prod\"\nbot_name = \"Bot\"\n",
        )
        .unwrap();
        let settings = Settings::load(
            Some(&file),
            &env(&[
                ("HEXABASE_GIT__BRANCH", "live"),
                ("HEXABASE_LIMITS__BODY_BYTES", "2048"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.git.branch, "live");
        assert_eq!(settings.git.bot_name, "Bot");
        assert_eq!(settings.limits.body_bytes, 2048);
        assert_eq!(settings.sessions.ttl_seconds, 12 * 3600);
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let dir = std::env::temp_dir().join(format!("hb-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db-url");
        std::fs::write(&file, "postgres://app:hunter2@db/app\n").unwrap();
        let settings = Settings::load(
            None,
            &env(&[("HEXABASE_DATABASE_URL_FILE", file.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(
            settings.database_url().expose(),
            "postgres://app:hunter2@db/app"
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(!settings.to_redacted_toml().unwrap().contains("hunter2"));
    }

    /// A self-signed CA certificate (the test data of the kubeconfig tests) and a private
    /// key, as PEM.
    fn ca_pem() -> (String, String) {
        let cert = include_str!("../tests/data/vcluster-ca.pem").to_owned();
        let (key, _) =
            crate::service::issuer::generate_key(SigningAlg::ES256).expect("a private key");
        (cert, key)
    }

    #[test]
    fn the_kubeconfig_ca_is_pem_certificates_only() {
        let dir = std::env::temp_dir().join(format!("hb-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = |name: &str, text: &str| {
            let file = dir.join(name);
            std::fs::write(&file, text).unwrap();
            Settings::load(
                None,
                &env(&[(
                    "HEXABASE_ISSUER__KUBECONFIG_CA_FILE",
                    file.to_str().unwrap(),
                )]),
            )
        };
        let (cert, key) = ca_pem();
        // Only the certificates are kept: a key in the same file never leaves.
        let settings = load("ca.pem", &format!("{key}{cert}")).unwrap();
        let data = settings.issuer.kubeconfig_ca_data.clone().expect("CA data");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&data)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), cert);
        assert!(!settings.to_redacted_toml().unwrap().contains(&data));
        for (name, text, reason) in [
            ("key.pem", key.as_str(), "holds no PEM certificate"),
            (
                "junk.pem",
                "not a certificate\n",
                "holds no PEM certificate",
            ),
            (
                "broken.pem",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "does not hold PEM certificates",
            ),
        ] {
            let error = format!("{:#}", load(name, text).unwrap_err());
            assert!(error.starts_with("issuer.kubeconfig_ca_file: "), "{error}");
            assert!(error.contains(reason), "{name}: {error}");
        }
        let missing = Settings::load(
            None,
            &env(&[("HEXABASE_ISSUER__KUBECONFIG_CA_FILE", "/nonexistent/ca.pem")]),
        )
        .unwrap_err();
        assert!(
            format!("{missing:#}").starts_with("issuer.kubeconfig_ca_file: failed to read"),
            "{missing:#}"
        );
        let without = Settings::load(None, &env(&[])).unwrap();
        assert_eq!(without.issuer.kubeconfig_ca_data, None);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let error = Settings::load(None, &env(&[("HEXABASE_LISTEN_ADDR", "x")])).unwrap_err();
        assert!(format!("{error:#}").contains("listen_addr"), "{error:#}");
    }
}
