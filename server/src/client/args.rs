//! The arguments of the client commands, as clap reads them.

use std::path::PathBuf;

use super::kinds::Target;
use super::output::Format;

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
    pub(super) fn target(&self) -> Target {
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
    /// What to list: organizations, workspaces, projects, groups, members, roles,
    /// rolebindings, clusterrolebindings, cronjobs, functions, invitations, billing, tokens,
    /// plans, clusters, platform, issuer, openapi, me.
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
    /// The role (organization members and invitations: owner or billing; role bindings: a
    /// Role of the project).
    #[arg(long)]
    pub role: Option<String>,
    /// The preset ClusterRole (role and ClusterRole bindings: `hexabase:workspace-admin`,
    /// `hexabase:workspace-viewer`).
    #[arg(long)]
    pub cluster_role: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `hb apply` arguments.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// What to change: platform, plans, clusters, workspaces (their plan), quotas, groups,
    /// roles, cronjobs, functions; read from the file's `kind` when left out (`Platform`).
    pub kind: Option<String>,
    /// Its name; read from the file's name field when left out.
    pub name: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The new object as a JSON or YAML file (`-` for standard input); a whole
    /// `intent/platform.yaml` document is taken for its `spec`.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// A body field, `key=value` (`a.b=v` nests; a value that parses as JSON is taken as
    /// JSON); repeatable, set on top of the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `hb edit` arguments.
#[derive(Debug, clap::Args)]
pub struct EditArgs {
    /// What to edit: platform, plans, clusters, workspaces (their plan), groups, roles,
    /// cronjobs, functions.
    pub kind: String,
    /// Its name (none for the platform).
    pub name: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format of the answer.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `hb accept-invitation` arguments.
#[derive(Debug, clap::Args)]
pub struct AcceptArgs {
    /// The invitation's token (from the invitation).
    pub token: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `hb delete` arguments.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// What to delete (see `hb get`).
    pub kind: String,
    /// Its name (bindings: the group).
    pub name: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The bound Role (role bindings).
    #[arg(long)]
    pub role: Option<String>,
    /// The bound preset ClusterRole (role and ClusterRole bindings).
    #[arg(long)]
    pub cluster_role: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}
