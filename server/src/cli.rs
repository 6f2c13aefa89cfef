//! The `hb` subcommands: `compile`, `validate`, `schema`, `check`, `import`, `act`, `push`,
//! `audit`.
//!
//! Exit codes: 0 success; 1 the intent has errors, `--check` or `hb check` found stale
//! output, or an action does not apply (or no longer applies, for `hb push`); 2 trouble
//! (unreadable files, bad arguments, Git or remote failures).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use compiler::{Catalog, Compiler, IntentFiles, Options, Output};

use crate::gitops::remote::{Credentials, Remote, RemoteConfig};
use crate::gitops::{GitOps, Identity, Signing};
use crate::service::action::Action;
use crate::service::apply::{ActionMeta, ApplyError, Engine, Outcome};
use crate::service::push::Pusher;
use crate::tree;

/// The intent has errors, or the output is stale.
pub const EXIT_FAILED: u8 = 1;
/// The command could not run.
pub const EXIT_TROUBLE: u8 = 2;

fn compile_dir(intent_dir: &Path) -> Result<Output> {
    let tree = tree::read_intent_tree(intent_dir)?;
    compile_files(&tree.files, &tree.links)
}

/// A full compile; with any error, no files. `links` are paths of symbolic links in the tree,
/// each refused.
fn compile_files(files: &IntentFiles, links: &[String]) -> Result<Output> {
    let (mut intent, mut diagnostics) = compiler::intent::load(files);
    for link in links {
        diagnostics.extend(intent.set_link(link));
    }
    let compiler = Compiler::new(&Catalog::builtin()).context("loading the built-in templates")?;
    let mut output = compiler
        .compile(&intent, &Options::default())
        .context("compiling")?;
    diagnostics.append(&mut output.diagnostics);
    diagnostics.sort();
    if diagnostics.iter().any(compiler::Diagnostic::is_error) {
        output.files.clear();
    }
    output.diagnostics = diagnostics;
    Ok(output)
}

fn print_diagnostics(output: &Output) {
    for d in &output.diagnostics {
        eprintln!("{d}");
    }
    let errors = output.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!("hb: {errors} error(s) in the intent; nothing written");
    }
}

/// `hb compile <intent> --out <root> [--check]`.
pub fn compile(intent_dir: &Path, out: &Path, check: bool) -> Result<ExitCode> {
    let output = compile_dir(intent_dir)?;
    print_diagnostics(&output);
    if output.has_errors() {
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let changes = tree::changes(&output, out)?;
    if check {
        if changes.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        return Ok(report_stale(&changes, "run hb compile"));
    }
    tree::apply(&changes, out)?;
    eprintln!(
        "hb: {} file(s) written, {} removed",
        changes.write.len(),
        changes.delete.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints the diff of stale rendered files and says what to do; exit code 1.
fn report_stale(changes: &tree::Changes, remedy: &str) -> ExitCode {
    print!("{}", diff(changes));
    eprintln!(
        "hb: the rendered files are stale ({} to write, {} to delete); {remedy}",
        changes.write.len(),
        changes.delete.len()
    );
    ExitCode::from(EXIT_FAILED)
}

/// `hb check --repo <git-dir> [--rev <rev>]`: whether the rendered files committed at `rev`
/// are what its intent compiles to (for pull requests that edit `intent/` by hand).
pub fn check(repo: &Path, rev: &str) -> Result<ExitCode> {
    let revision = crate::gitops::revision::read(repo, rev, |path| {
        path.strip_prefix("intent/")
            .is_some_and(tree::is_intent_file)
            || compiler::is_generated(path)
    })
    .with_context(|| format!("reading {rev} in {}", repo.display()))?;
    let intent: IntentFiles = revision
        .files
        .iter()
        .filter_map(|(path, text)| Some((path.strip_prefix("intent/")?.to_owned(), text.clone())))
        .collect();
    let links: Vec<String> = revision
        .links
        .iter()
        .filter_map(|path| Some(path.strip_prefix("intent/")?.to_owned()))
        .collect();
    let output = compile_files(&intent, &links)?;
    print_diagnostics(&output);
    if output.has_errors() {
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let changes = tree::changes_from(&output, &revision.files);
    if changes.is_empty() {
        eprintln!("hb: {}: the rendered files are current", revision.commit);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "hb: {}: rendered files differ from the intent",
        revision.commit
    );
    Ok(report_stale(
        &changes,
        "run hb compile on the intent and commit the result",
    ))
}

/// A unified diff of the changes, old on disk against new.
pub fn diff(changes: &tree::Changes) -> String {
    let mut out = String::new();
    let empty = String::new();
    for (path, new) in &changes.write {
        let old = changes.old.get(path).unwrap_or(&empty);
        let (a, b) = if changes.old.contains_key(path) {
            (format!("a/{path}"), format!("b/{path}"))
        } else {
            ("/dev/null".to_owned(), format!("b/{path}"))
        };
        let _ = write!(
            out,
            "{}",
            similar::TextDiff::from_lines(old, new)
                .unified_diff()
                .header(&a, &b)
        );
    }
    for path in &changes.delete {
        let old = changes.old.get(path).unwrap_or(&empty);
        let a = format!("a/{path}");
        let _ = write!(
            out,
            "{}",
            similar::TextDiff::from_lines(old, &empty)
                .unified_diff()
                .header(&a, "/dev/null")
        );
    }
    out
}

/// `hb validate <intent> [--json]`.
pub fn validate(intent_dir: &Path, json: bool) -> Result<ExitCode> {
    let output = compile_dir(intent_dir)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&output.diagnostics).context("encoding diagnostics")?
        );
    } else {
        for d in &output.diagnostics {
            println!("{d}");
        }
    }
    Ok(if output.has_errors() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `hb schema`.
pub fn schema() -> Result<ExitCode> {
    let schema = compiler::intent::json_schema();
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).context("encoding the schema")?
    );
    Ok(ExitCode::SUCCESS)
}

/// Where `import` and `act` commit, and as whom.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The Git repository (created as a bare repository if missing).
    #[arg(long)]
    pub repo: std::path::PathBuf,
    /// The branch to commit to.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The acting user's name (the commit author).
    #[arg(long)]
    pub actor_name: String,
    /// The acting user's email.
    #[arg(long)]
    pub actor_email: String,
    /// The request id for the `Hexabase-Request` trailer: the same id again is a retry,
    /// answered with the first commit. Default: a fresh id (a UUID v7).
    #[arg(long)]
    pub request: Option<String>,
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// How `hb` signs the commits it makes.
#[derive(Debug, clap::Args)]
pub struct SigningArgs {
    /// Sign commits with this SSH private key (as `git` does with `gpg.format=ssh`).
    #[arg(long, conflicts_with = "sign_gpg_key")]
    pub sign_ssh_key: Option<PathBuf>,
    /// Sign commits with this OpenPGP key id, from the default GnuPG home.
    #[arg(long)]
    pub sign_gpg_key: Option<String>,
}

impl SigningArgs {
    fn signing(&self) -> Option<Signing> {
        match (&self.sign_ssh_key, &self.sign_gpg_key) {
            (Some(key), _) => Some(Signing::Ssh { key: key.clone() }),
            (None, Some(key_id)) => Some(Signing::OpenPgp {
                key_id: key_id.clone(),
                home: None,
            }),
            (None, None) => None,
        }
    }
}

/// The engine for `repo`'s `branch`, committing as the Hexabase bot.
fn open_engine(repo: &Path, branch: &str, signing: &SigningArgs) -> Result<Engine> {
    let gitops = GitOps::open(repo, branch)
        .context("opening the repository")?
        .with_signing(signing.signing());
    let bot = Identity {
        name: "Hexabase".into(),
        email: "bot@hexabase.invalid".into(),
    };
    Engine::new(gitops, bot).context("loading the built-in templates")
}

fn engine(target: &Target) -> Result<(Engine, ActionMeta)> {
    let engine = open_engine(&target.repo, &target.branch, &target.signing)?;
    let meta = ActionMeta {
        actor: Identity {
            name: target.actor_name.clone(),
            email: target.actor_email.clone(),
        },
        request_id: target
            .request
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        actor_id: None,
        digest: None,
    };
    Ok((engine, meta))
}

fn report(result: std::result::Result<Outcome, ApplyError>) -> Result<ExitCode> {
    match result {
        Ok(Outcome::Committed { commit, drift }) => {
            for path in drift {
                eprintln!("hb: warning: {path} had been edited by hand; the render overwrote it");
            }
            println!("{commit}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::Unchanged) => {
            eprintln!("hb: nothing changed; no commit");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Outcome::AlreadyApplied { commit }) => {
            eprintln!("hb: this request is already on the branch; no new commit");
            println!("{commit}");
            Ok(ExitCode::SUCCESS)
        }
        Err(ApplyError::Invalid(diagnostics)) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!("hb: the change leaves the intent invalid; nothing committed");
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Err(ApplyError::Action(e)) => {
            eprintln!("hb: {e}; nothing committed");
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Err(e) => Err(e.into()),
    }
}

/// `hb import <intent> --repo ...`.
pub fn import(intent_dir: &Path, target: &Target) -> Result<ExitCode> {
    let files = tree::read_intent(intent_dir)?;
    let (engine, meta) = engine(target)?;
    report(engine.import(&meta, &files, "platform: import intent"))
}

/// `hb act '<json>' --repo ...`.
pub fn act(action: &str, target: &Target) -> Result<ExitCode> {
    let action: Action = serde_json::from_str(action).context("reading the action")?;
    let (engine, meta) = engine(target)?;
    report(engine.apply(&meta, &action))
}

/// `hb push --repo <git-dir> [--remote <url>] [--config <file>]`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The Git repository whose pending commits to push.
    #[arg(long)]
    pub repo: PathBuf,
    /// The branch to push.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The remote's URL (`file://`, `http(s)://`, `ssh://`, `user@host:path`). Default: the
    /// `url` of `--config`, then the repository's `remote.<name>.url`.
    #[arg(long)]
    pub remote: Option<String>,
    /// A TOML file with a `[remote]` table: `name`, `url` and `[remote.credentials]`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// The configuration file of `hb push`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PushConfig {
    #[serde(default)]
    remote: RemoteSection,
}

/// `[remote]`: where to push and how to authenticate.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteSection {
    /// The name for remote-tracking references and `remote.<name>.url` (`origin`).
    name: Option<String>,
    url: Option<String>,
    #[serde(default)]
    credentials: Credentials,
}

fn read_push_config(path: &Path) -> Result<PushConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// `hb push`: pushes the branch's pending commits; a refused push is a fetch, a re-apply of
/// the pending actions on the remote's head, and another push.
pub fn push(args: &PushArgs) -> Result<ExitCode> {
    let config = match &args.config {
        Some(path) => read_push_config(path)?,
        None => PushConfig::default(),
    };
    let name = config.remote.name.unwrap_or_else(|| "origin".to_owned());
    if !args.repo.exists() {
        anyhow::bail!("the repository {} does not exist", args.repo.display());
    }
    let url = match args.remote.clone().or(config.remote.url) {
        Some(url) => url,
        None => crate::gitops::remote::configured_url(&args.repo, &name)
            .context("reading the repository's configuration")?
            .with_context(|| {
                format!(
                    "no remote to push to: pass --remote <url>, set url in [remote] of \
                     --config, or set remote.{name}.url in the repository"
                )
            })?,
    };
    let engine = Arc::new(open_engine(&args.repo, &args.branch, &args.signing)?);
    let remote = Remote::new(RemoteConfig {
        name: name.clone(),
        url,
        credentials: config.remote.credentials,
    });
    let pusher = Pusher::new(engine, remote).context("setting up the push journal")?;
    let report = pusher
        .push_pending()
        .with_context(|| format!("failed to push branch {} to {name}", args.branch))?;
    for (old, new) in &report.replayed {
        println!("replayed {old} as {new}");
    }
    for old in &report.absorbed {
        println!("absorbed {old}: the remote already has its change");
    }
    for (ours, theirs) in &report.already_on_remote {
        println!("already on the remote {ours} as {theirs}");
    }
    for dropped in &report.dropped {
        println!("dropped {}: {}", dropped.commit, dropped.reason);
    }
    for commit in &report.pushed {
        println!("pushed {commit}");
    }
    if report.pushed.is_empty() {
        eprintln!("hb: nothing to push to {name}");
    } else {
        eprintln!(
            "hb: pushed {} commit(s) to {name} {}",
            report.pushed.len(),
            args.branch
        );
    }
    if report.dropped.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "hb: {} action(s) no longer apply on the remote's head and were dropped; their \
             journal entries are in {}",
            report.dropped.len(),
            pusher.journal().dir().join("dropped").display()
        );
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// `hb audit --repo <path> [filters] [--json]`: who changed what and when.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The Git repository; without it, the audit log comes from the server `hb login`
    /// named (then --org is needed).
    #[arg(long)]
    pub repo: Option<std::path::PathBuf>,
    /// The branch to read.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Only commits for this organization.
    #[arg(long)]
    pub org: Option<String>,
    /// Only commits for this workspace (`ws`, or `org/ws`).
    #[arg(long)]
    pub workspace: Option<String>,
    /// Only commits by this actor (`Name <email>`, the name, or the email).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only commits of this action kind (`create-project`; `manual` for commits by people).
    #[arg(long)]
    pub action: Option<String>,
    /// Only commits at or after this time (RFC 3339, or a UTC date YYYY-MM-DD).
    #[arg(long, value_parser = time_text)]
    pub since: Option<String>,
    /// Only commits at or before this time (RFC 3339, or a UTC date YYYY-MM-DD: the whole day).
    #[arg(long, value_parser = time_text)]
    pub until: Option<String>,
    /// At most this many commits, newest first.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A time as `--since`/`--until` take it, checked and kept as written (the server parses
/// it again).
fn time_text(text: &str) -> Result<String, crate::service::audit::TimeError> {
    text.parse::<crate::service::audit::TimeSpec>()
        .map(|_| text.to_owned())
}

/// `hb audit --repo`.
pub fn audit(args: &AuditArgs) -> Result<ExitCode> {
    use crate::service::audit::{self, AuditQuery, TimeSpec};
    let Some(repo) = &args.repo else {
        anyhow::bail!("--repo is needed for a local audit");
    };
    let time = |text: &Option<String>, flag: &str| {
        text.as_deref()
            .map(str::parse::<TimeSpec>)
            .transpose()
            .with_context(|| format!("--{flag}"))
    };
    let query = AuditQuery {
        org: args.org.clone(),
        workspace: args.workspace.clone(),
        actor: args.actor.clone(),
        action: args.action.clone(),
        since: time(&args.since, "since")?,
        until: time(&args.until, "until")?,
        limit: args.limit,
    };
    let (entries, mut refresh) =
        audit::audit(repo, &args.branch, &query).context("reading the audit log")?;
    if let Some(e) = refresh.store_error.take() {
        eprintln!(
            "hb: warning: the audit index was not saved: {:#}",
            anyhow::Error::new(e)
        );
    }
    if refresh.state == audit::IndexState::Empty {
        eprintln!("hb: branch {} has no commits", args.branch);
    }
    let mut stdout = std::io::stdout().lock();
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&entries).context("encoding the audit log")?;
        text.push('\n');
        text
    } else {
        audit::render_table(&entries)
    };
    match std::io::Write::write_all(&mut stdout, text.as_bytes()) {
        // `hb audit | head` closes the pipe early; that is not trouble.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing the audit log")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `hb admin backup <dir>` and `hb admin restore <dir>`: the server's settings name the
/// database and the repository (docs/operations.md, "Backup and restore").
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup folder: created for a backup (it must not exist or be empty); read for a
    /// restore.
    pub dir: PathBuf,
    /// The server's TOML settings file (also `HEXABASE_CONFIG`); `HEXABASE_` variables as for
    /// `hb serve`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Backs up the server `args` and `env` configure, while it serves; prints the manifest.
pub fn backup(
    args: &BackupArgs,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<ExitCode> {
    let settings = admin_settings(args, env)?;
    let manifest = runtime()?
        .block_on(crate::service::backup::backup(&settings, &args.dir))
        .with_context(|| format!("backing up into {}", args.dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(ExitCode::SUCCESS)
}

/// Restores a backup into the fresh data folder and database `args` and `env` configure.
pub fn restore(
    args: &BackupArgs,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<ExitCode> {
    let settings = admin_settings(args, env)?;
    let manifest = runtime()?
        .block_on(crate::service::backup::restore(&settings, &args.dir))
        .with_context(|| format!("restoring {}", args.dir.display()))?;
    eprintln!(
        "hb: restored the database and {} refs ({} at {}) taken by hb {}",
        manifest.refs.refs.len(),
        manifest.refs.head,
        manifest
            .refs
            .refs
            .get(&manifest.refs.head)
            .map_or("?", String::as_str),
        manifest.hexabase_version
    );
    Ok(ExitCode::SUCCESS)
}

fn admin_settings(
    args: &BackupArgs,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<crate::settings::Settings> {
    let config = args
        .config
        .clone()
        .or_else(|| env.get("HEXABASE_CONFIG").map(PathBuf::from));
    crate::settings::Settings::load(config.as_deref(), env)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}
