//! The kubeconfig the API hands out for a workspace's vCluster: its endpoint and
//! `kubectl oidc-login` with the issuer and the workspace's client id, and no secret.

use crate::gitops::Snapshot;

/// A kubeconfig (the `v1` `Config` kind) as JSON, which kubectl reads like YAML.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    /// `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `Config`.
    pub kind: String,
    /// The vCluster's endpoint.
    pub clusters: Vec<NamedCluster>,
    /// The exec credential plugin.
    pub users: Vec<NamedUser>,
    /// The one context.
    pub contexts: Vec<NamedContext>,
    /// The context's name.
    pub current_context: String,
}

/// A kubeconfig cluster entry.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NamedCluster {
    /// `<org>-<workspace>`.
    pub name: String,
    /// The endpoint.
    pub cluster: ClusterEntry,
}

/// Where the vCluster's API server answers.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ClusterEntry {
    /// `https://ws-<org>-<ws>.<cluster domain>`.
    pub server: String,
    /// The CA certificates of the endpoint, PEM then base64 (`issuer.kubeconfig_ca_file`);
    /// absent when the endpoint's certificate chains to the system's roots.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
}

/// A kubeconfig user entry.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NamedUser {
    /// `<org>-<workspace>-oidc`.
    pub name: String,
    /// The credential plugin.
    pub user: UserEntry,
}

/// A user with an exec credential plugin and no secret.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct UserEntry {
    /// `kubectl oidc-login get-token …`.
    pub exec: ExecConfig,
}

/// An exec credential plugin (`client.authentication.k8s.io/v1`).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ExecConfig {
    /// `client.authentication.k8s.io/v1`.
    pub api_version: String,
    /// `kubectl`.
    pub command: String,
    /// `oidc-login get-token --oidc-issuer-url=… --oidc-client-id=…`.
    pub args: Vec<String>,
    /// `IfAvailable`: the plugin may open a browser.
    pub interactive_mode: String,
    /// Shown when kubectl cannot run the plugin.
    pub install_hint: String,
}

/// A kubeconfig context entry.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NamedContext {
    /// `<org>-<workspace>`.
    pub name: String,
    /// The cluster and user.
    pub context: ContextEntry,
}

/// A context: a cluster and a user.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ContextEntry {
    /// The cluster entry's name.
    pub cluster: String,
    /// The user entry's name.
    pub user: String,
}

/// The kubeconfig of workspace `ws` of `org` at the head: the vCluster's endpoint (the host
/// name the compiler adds to the vCluster's certificate, `ws-<org>-<ws>.<cluster domain>`)
/// and `kubectl oidc-login` with the issuer and the workspace's client id, with `ca_data`
/// (base64 PEM) as the cluster's `certificate-authority-data` when given. `None` when the
/// workspace, its cluster or the platform is missing.
pub fn kubeconfig(
    snapshot: &Snapshot,
    org: &str,
    ws: &str,
    ca_data: Option<&str>,
) -> Option<Kubeconfig> {
    let platform = snapshot.intent.platform.as_ref()?;
    let workspace = snapshot
        .intent
        .organizations
        .get(org)?
        .workspaces
        .get(ws)?
        .workspace
        .as_ref()?;
    let cluster = platform
        .spec
        .clusters
        .iter()
        .find(|c| c.name == workspace.spec.cluster)?;
    let client_id = compiler::workspace_client_id(org, ws);
    let name = format!("{org}-{ws}");
    let user = format!("{name}-oidc");
    Some(Kubeconfig {
        api_version: "v1".to_owned(),
        kind: "Config".to_owned(),
        clusters: vec![NamedCluster {
            name: name.clone(),
            cluster: ClusterEntry {
                server: format!("https://{client_id}.{}", cluster.domain),
                certificate_authority_data: ca_data.map(str::to_owned),
            },
        }],
        users: vec![NamedUser {
            name: user.clone(),
            user: UserEntry {
                exec: ExecConfig {
                    api_version: "client.authentication.k8s.io/v1".to_owned(),
                    command: "kubectl".to_owned(),
                    args: vec![
                        "oidc-login".to_owned(),
                        "get-token".to_owned(),
                        format!("--oidc-issuer-url={}", platform.spec.oidc.issuer_url),
                        format!("--oidc-client-id={client_id}"),
                        "--oidc-extra-scope=email".to_owned(),
                        "--oidc-extra-scope=groups".to_owned(),
                    ],
                    interactive_mode: "IfAvailable".to_owned(),
                    install_hint: "install the kubelogin plugin: kubectl krew install oidc-login"
                        .to_owned(),
                },
            },
        }],
        contexts: vec![NamedContext {
            name: name.clone(),
            context: ContextEntry {
                cluster: name.clone(),
                user,
            },
        }],
        current_context: name,
    })
}
