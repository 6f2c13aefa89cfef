//! `hb`: the Hexabase command. Parsing and dispatch only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Hexabase: GitOps-native control plane for multi-tenant Kubernetes.
#[derive(Parser)]
#[command(
    name = "hb",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("HB_BUILT_FROM_COMMIT"), ")")
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render an intent tree into a GitOps repository, writing only what changed.
    Compile {
        /// The `intent/` folder.
        intent: PathBuf,
        /// The repository root to write to.
        #[arg(long)]
        out: PathBuf,
        /// Write nothing; exit 1 and print a diff when the output is stale.
        #[arg(long)]
        check: bool,
    },
    /// Check an intent tree and print its diagnostics.
    Validate {
        /// The `intent/` folder.
        intent: PathBuf,
        /// Print diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the intent format.
    Schema,
    /// Replace a repository's intent with a folder's and render everything, as one commit.
    Import {
        /// The `intent/` folder.
        intent: PathBuf,
        #[command(flatten)]
        target: server::cli::Target,
    },
    /// Apply one action (JSON, as the API takes it) as one commit.
    Act {
        /// The action, e.g. '{"action":"create-project","org":"acme","workspace":"dev","project":"web"}'.
        action: String,
        #[command(flatten)]
        target: server::cli::Target,
    },
    /// Push the branch's pending commits to its remote, re-applying them on a newer head.
    Push(server::cli::PushArgs),
    /// Check that the rendered files at a revision are what its intent compiles to.
    Check {
        /// The Git repository (bare, or a work tree).
        #[arg(long)]
        repo: PathBuf,
        /// The revision to check (a branch, a commit id, `HEAD`).
        #[arg(long, default_value = "HEAD")]
        rev: String,
    },
    /// Who changed what and when: the branch's commits, read through their trailers (from
    /// `--repo`, or from the server `hb login` named).
    Audit(server::cli::AuditArgs),
    /// Sign in to a server and keep its URL and an API token in the config file.
    Login(server::client::LoginArgs),
    /// List a kind, or show one by name (`hb get --help` names the kinds).
    ///
    /// Lists: organizations, workspaces, projects, groups, members, roles, rolebindings,
    /// clusterrolebindings, cronjobs, functions, invitations, tokens, plans, clusters.
    /// One object: platform (with the placeholders to replace), billing, issuer, me, openapi.
    Get(server::client::GetArgs),
    /// Create one: `hb create workspace dev --org acme --plan shared-small`.
    ///
    /// Bind: `hb create rolebinding <group> --role <role>|--cluster-role <preset> ...`;
    /// invite: `hb create invitation <email> --org acme --role billing`; an API token:
    /// `hb create token <name>`.
    Create(server::client::CreateArgs),
    /// Delete one: `hb delete project web --org acme -w dev`.
    ///
    /// A binding by its group and what it binds: `hb delete rolebinding ops --role
    /// cron-editor ...`.
    Delete(server::client::DeleteArgs),
    /// Change one from a file, as kubectl apply: `hb apply -f platform.yaml`.
    ///
    /// `hb apply plan shared-small -f plan.yaml`, `hb apply quota --org acme -w dev -p web
    /// --set 'pods="30"'`, `hb apply workspace dev --org acme --set plan=dedicated-large`.
    Apply(server::client::ApplyArgs),
    /// Change one in $EDITOR, as kubectl edit: `hb edit platform`.
    Edit(server::client::EditArgs),
    /// Join an organization with the token of an invitation (`hb create invitation`).
    AcceptInvitation(server::client::AcceptArgs),
    /// Print a kubeconfig for a workspace's vCluster (`kubectl oidc-login`, no secret).
    Kubeconfig(server::client::KubeconfigArgs),
    /// What only the platform administrator may do: `hb admin rotate-keys` (through the
    /// server), `hb admin backup` and `hb admin restore` (on the server's machine).
    Admin(AdminCli),
    /// Ask a server's health endpoint once: exit 0 when it answers 2xx, 1 on another status,
    /// 2 when nothing answers (the container image's HEALTHCHECK; no curl needed).
    Health {
        /// The URL to GET (`/healthz`: the process answers; `/readyz`: it can serve).
        #[arg(long, default_value = server::client::DEFAULT_HEALTH_URL)]
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout_seconds: u64,
    },
    /// Run the control plane: the API, sign-in, and every change as a commit.
    Serve {
        /// A TOML settings file (also `HEXABASE_CONFIG`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the effective settings, secrets redacted, and exit.
        #[arg(long)]
        print_config: bool,
    },
}

#[derive(clap::Args)]
struct AdminCli {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    #[command(flatten)]
    Server(server::client::AdminCommand),
    /// Back up the server while it serves: the database (SQLite online copy, or pg_dump),
    /// then the repository as a Git bundle of every ref, and manifest.json with versions,
    /// refs, sizes and SHA-256 checksums. Reads the settings `hb serve` reads.
    Backup(server::cli::BackupArgs),
    /// Restore a backup into a fresh data folder and database (the settings `hb serve`
    /// reads), checking every checksum first; then start `hb serve` on them.
    Restore(server::cli::BackupArgs),
}

fn main() -> ExitCode {
    // Before any thread starts: libgit2's process-wide options (pack mappings, fsync).
    if let Err(error) = server::gitops::bound_pack_mappings() {
        eprintln!("hb: {error}");
        return ExitCode::from(server::cli::EXIT_TROUBLE);
    }
    let cli = Cli::parse();
    let env = || std::env::vars().collect::<std::collections::BTreeMap<_, _>>();
    let result = match cli.command {
        Command::Audit(args) if args.repo.is_none() => {
            return server::client::audit(&args, &env());
        }
        Command::Login(args) => {
            return server::client::login(&args, &env(), &mut std::io::stdin().lock());
        }
        Command::Get(args) => return server::client::get(&args, &env()),
        Command::Create(args) => return server::client::create(&args, &env()),
        Command::Delete(args) => return server::client::delete(&args, &env()),
        Command::Apply(args) => return server::client::apply(&args, &env()),
        Command::Edit(args) => return server::client::edit(&args, &env()),
        Command::AcceptInvitation(args) => {
            return server::client::accept_invitation(&args, &env());
        }
        Command::Kubeconfig(args) => return server::client::kubeconfig(&args, &env()),
        Command::Admin(AdminCli {
            command: AdminCommand::Server(command),
        }) => {
            let args = server::client::AdminArgs { command };
            return server::client::admin(&args, &env());
        }
        Command::Admin(AdminCli {
            command: AdminCommand::Backup(args),
        }) => server::cli::backup(&args, &env()),
        Command::Admin(AdminCli {
            command: AdminCommand::Restore(args),
        }) => server::cli::restore(&args, &env()),
        Command::Health {
            url,
            timeout_seconds,
        } => {
            let timeout = std::time::Duration::from_secs(timeout_seconds);
            return server::client::health(&url, timeout);
        }
        Command::Compile { intent, out, check } => server::cli::compile(&intent, &out, check),
        Command::Validate { intent, json } => server::cli::validate(&intent, json),
        Command::Schema => server::cli::schema(),
        Command::Import { intent, target } => server::cli::import(&intent, &target),
        Command::Act { action, target } => server::cli::act(&action, &target),
        Command::Push(args) => server::cli::push(&args),
        Command::Check { repo, rev } => server::cli::check(&repo, &rev),
        Command::Audit(args) => server::cli::audit(&args),
        Command::Serve {
            config,
            print_config,
        } => server::serve::command(config.as_deref(), print_config, &env()),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hb: {error:#}");
            ExitCode::from(server::cli::EXIT_TROUBLE)
        }
    }
}
