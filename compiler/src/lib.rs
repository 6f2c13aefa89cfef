//! The Hexabase compiler: tenant intent in, the files of a Flux GitOps repository out.
//!
//! ```text
//! IntentFiles --intent::load--> Intent --plan--> models --render--> files + diagnostics
//! ```
//!
//! It is pure: no IO, no clock, no environment, no async, no git, no SQL. The caller reads
//! the intent files and writes the output; the same intent always gives the same bytes.
//! Every problem in the intent is reported at once as a [`Diagnostic`]; an [`Error`] means
//! the compiler itself could not proceed (a template bug), never bad input.
//!
//! Each workspace renders on its own, and [`WorkspaceOutput::fingerprint`] hashes everything
//! it was rendered from, so callers can skip unchanged workspaces ([`Options::previous`]) or
//! compile only the workspaces an action touched ([`Compiler::compile_workspaces`]).

#![forbid(unsafe_code)]

pub mod catalog;
pub mod cron;
pub mod diagnostic;
mod images;
pub mod intent;
mod plan;
mod policy;
mod render;
pub mod slug;

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

pub use catalog::Catalog;
pub use diagnostic::{Diagnostic, Severity};
pub use intent::{Intent, IntentFiles};
pub use plan::access::{check_group_name, check_user_id};
pub use slug::{Slug, SlugError};

use plan::PlatformModel;
use policy::PolicyDocument;
use render::Renderer;

/// The host namespace of a workspace, `ws-<org>-<workspace>`, which is also its vCluster's
/// OIDC client id (`--oidc-client-id`): the issuer uses this function too, so the tokens it
/// issues name the audience every vCluster expects.
pub fn workspace_client_id(org: &str, workspace: &str) -> String {
    format!("ws-{org}-{workspace}")
}

/// The compiler's version, for the `Hexabase-Compiler` commit trailer (never in files).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The compiler could not proceed. Bad intent is never an `Error`: it is a [`Diagnostic`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template in the catalog does not parse.
    #[error("template {name} is invalid")]
    TemplateInvalid {
        /// Template name.
        name: String,
        /// What minijinja said.
        #[source]
        source: Box<minijinja::Error>,
    },
    /// A template the compiler needs is not in the catalog.
    #[error("template {name} is not in the catalog")]
    TemplateNotFound {
        /// Template name.
        name: String,
    },
    /// Rendering a template failed.
    #[error("failed to render template {template}")]
    RenderFailed {
        /// Template name.
        template: String,
        /// What minijinja said.
        #[source]
        source: Box<minijinja::Error>,
    },
    /// A rendered file failed the parse-back check.
    #[error("rendered file {path} is invalid: {reason}")]
    InvalidOutput {
        /// Path of the file in the tree.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A computed path left its workspace folder.
    #[error("rendered path {path} is outside its workspace folder {root}")]
    PathEscapes {
        /// The path.
        path: String,
        /// The workspace folder.
        root: String,
    },
    /// A policy in the catalog is invalid.
    #[error("policy {name} is invalid: {reason}")]
    PolicyInvalid {
        /// Policy name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Behaviour switches; all have defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fingerprints from an earlier compile (`<org>/<workspace>` to fingerprint). A workspace
    /// whose fingerprint is unchanged is neither validated nor rendered again; its
    /// [`WorkspaceOutput::rendered`] is false and its files are absent from [`Output::files`].
    pub previous: BTreeMap<String, String>,
}

/// What one workspace compiled to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceOutput {
    /// Hex blake3 hash of everything the workspace renders from.
    pub fingerprint: String,
    /// The workspace's folder in the tree (`tenants/<cluster>/<org>/<workspace>`).
    pub root: String,
    /// False when skipped because the fingerprint was unchanged.
    pub rendered: bool,
}

/// Which part of the tree an [`Output`] speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole tree (apart from workspaces skipped as unchanged).
    Full,
    /// Only these workspaces (`(org, workspace)`), their organizations' index files, and the
    /// per-cluster lists of organizations (`tenants/<c>/kustomization.yaml`). Files that
    /// depend on the platform alone are neither rendered nor owned.
    Workspaces(BTreeSet<(String, String)>),
}

/// The result of a compile.
#[derive(Debug, Clone)]
pub struct Output {
    /// Rendered files by path from the repository root. Empty when there are errors.
    pub files: BTreeMap<String, String>,
    /// Per workspace (`<org>/<workspace>`), for the workspaces in scope that are valid.
    pub workspaces: BTreeMap<String, WorkspaceOutput>,
    /// Every problem found, sorted by file and path.
    pub diagnostics: Vec<Diagnostic>,
    /// What the output speaks for.
    pub scope: Scope,
}

impl Output {
    /// True when any diagnostic is an error; then nothing may be written.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// True when `path` is under this output's authority: if it exists in the tree and is
    /// absent from [`Output::files`], it is stale and must be deleted. Files of workspaces
    /// skipped as unchanged are not stale.
    pub fn owns(&self, path: &str) -> bool {
        if !is_generated(path) {
            return false;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let skipped = |org: &str, ws: &str| {
            self.workspaces
                .get(&format!("{org}/{ws}"))
                .is_some_and(|w| !w.rendered)
        };
        let in_set = |org: &str| match &self.scope {
            Scope::Full => true,
            Scope::Workspaces(set) => set.iter().any(|(o, _)| o == org),
        };
        match (&self.scope, parts.as_slice()) {
            (Scope::Full, ["tenants", _, org, ws, _, ..]) => !skipped(org, ws),
            (Scope::Workspaces(set), ["tenants", _, org, ws, _, ..]) => {
                set.contains(&((*org).to_owned(), (*ws).to_owned()))
            }
            (_, ["tenants", _, "kustomization.yaml"]) => true,
            (_, ["tenants", _, org_file]) => org_file.strip_suffix(".yaml").is_some_and(in_set),
            (_, ["tenants", _, org, "kustomization.yaml"]) => in_set(org),
            (Scope::Workspaces(_), _) => false,
            (Scope::Full, _) => true,
        }
    }
}

/// True for paths the compiler generates and may overwrite or delete; everything else in the
/// repository (intent/, `clusters/<c>/flux-system/`, files people add) is left alone.
pub fn is_generated(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    matches!(
        parts.as_slice(),
        ["README.md" | ".sourceignore"]
            | ["infrastructure" | "tenants", _, ..]
            | ["clusters", _, "infrastructure.yaml" | "tenants.yaml"]
    )
}

/// A compiler with its templates and policies loaded; reuse it across compiles.
pub struct Compiler {
    renderer: Renderer,
    policies: BTreeMap<String, PolicyDocument>,
    catalog_hash: blake3::Hash,
}

impl Compiler {
    /// Loads and checks the catalog.
    pub fn new(catalog: &Catalog) -> Result<Self, Error> {
        let renderer = Renderer::new(catalog)?;
        let policies = catalog
            .policies
            .iter()
            .map(|(name, text)| Ok((name.clone(), PolicyDocument::parse(name, text)?)))
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            renderer,
            policies,
            catalog_hash: catalog.fingerprint(),
        })
    }

    /// Loads the intent files and compiles them: the front door for callers holding files.
    /// Problems in loading and in compiling come back together; with any error, no files.
    pub fn compile_files(&self, files: &IntentFiles, options: &Options) -> Result<Output, Error> {
        let (intent, load_diagnostics) = intent::load(files);
        let output = self.compile(&intent, options)?;
        let Output {
            files,
            workspaces,
            mut diagnostics,
            scope,
        } = output;
        diagnostics.extend(load_diagnostics);
        Ok(finish(files, workspaces, diagnostics, scope))
    }

    /// Compiles an already loaded intent. Problems found while loading it are the caller's to
    /// report; [`Compiler::compile_files`] does both.
    pub fn compile(&self, intent: &Intent, options: &Options) -> Result<Output, Error> {
        self.run(intent, None, &options.previous)
    }

    /// Compiles only the named workspaces (`(org, workspace)`), plus the index files of their
    /// organizations and the per-cluster organization lists. A named workspace that no longer exists
    /// renders nothing, and the output speaks for its folder: that is how deletions look. The rest of the intent is assumed valid, as
    /// it was when last compiled; cross-workspace rules (unique host namespaces) are still checked.
    pub fn compile_workspaces(
        &self,
        intent: &Intent,
        workspaces: &BTreeSet<(String, String)>,
    ) -> Result<Output, Error> {
        self.run(intent, Some(workspaces), &BTreeMap::new())
    }

    /// The fingerprints ([`WorkspaceOutput::fingerprint`]) the named workspaces
    /// (`(org, workspace)`) would get, without compiling them: a writer that knows what a
    /// folder was rendered from can tell whether it is still what the intent renders. A
    /// workspace that does not exist, or an intent without a valid platform, has none.
    pub fn fingerprints(
        &self,
        intent: &Intent,
        workspaces: &BTreeSet<(String, String)>,
    ) -> BTreeMap<(String, String), String> {
        let Some(platform) = plan::platform(intent, &mut Vec::new()) else {
            return BTreeMap::new();
        };
        let platform_hash = platform_fingerprint(&self.catalog_hash, &platform);
        workspaces
            .iter()
            .filter_map(|(org, ws)| {
                let w = intent.organizations.get(org)?.workspaces.get(ws)?;
                let fingerprint = workspace_fingerprint(&platform_hash, org, ws, w);
                Some(((org.clone(), ws.clone()), fingerprint))
            })
            .collect()
    }

    fn run(
        &self,
        intent: &Intent,
        only: Option<&BTreeSet<(String, String)>>,
        previous: &BTreeMap<String, String>,
    ) -> Result<Output, Error> {
        let scope = only.map_or(Scope::Full, |s| Scope::Workspaces(s.clone()));
        let mut diagnostics = Vec::new();
        let platform = plan::platform(intent, &mut diagnostics);
        self.check_plan_policies(intent, &mut diagnostics);
        let in_scope: Option<BTreeSet<&str>> =
            only.map(|s| s.iter().map(|(o, _)| o.as_str()).collect());
        let valid_orgs = plan::organizations(intent, in_scope.as_ref(), &mut diagnostics);
        match only {
            Some(only) => check_host_namespaces_of(intent, only, &mut diagnostics),
            None => check_host_namespaces(intent, &mut diagnostics),
        }
        let Some(platform) = platform else {
            return Ok(finish(BTreeMap::new(), BTreeMap::new(), diagnostics, scope));
        };
        let platform_hash = platform_fingerprint(&self.catalog_hash, &platform);
        let platform_value = render::val(&platform);

        // A partial compile looks up its workspaces instead of walking all of them, so an
        // action on one workspace costs the same among ten or ten thousand.
        let selected: Vec<(&String, &String, &intent::WorkspaceIntent)> = match only {
            Some(only) => only
                .iter()
                .filter(|(org, _)| valid_orgs.contains(org))
                .filter_map(|(org, ws)| {
                    let (org, o) = intent.organizations.get_key_value(org)?;
                    let (ws, w) = o.workspaces.get_key_value(ws)?;
                    Some((org, ws, w.as_ref()))
                })
                .collect(),
            None => intent
                .organizations
                .iter()
                .filter(|(org, _)| valid_orgs.contains(*org))
                .flat_map(|(org, o)| {
                    o.workspaces
                        .iter()
                        .map(move |(ws, w)| (org, ws, w.as_ref()))
                })
                .collect(),
        };
        type Compiled = Result<
            (
                String,
                WorkspaceOutput,
                Vec<Diagnostic>,
                BTreeMap<String, String>,
            ),
            Error,
        >;
        let compile_one =
            |(org, ws, w): &(&String, &String, &intent::WorkspaceIntent)| -> Compiled {
                let key = format!("{org}/{ws}");
                let fingerprint = workspace_fingerprint(&platform_hash, org, ws, w);
                if previous.get(&key) == Some(&fingerprint) {
                    let root = w
                        .workspace
                        .as_ref()
                        .map(|d| format!("tenants/{}/{org}/{ws}", d.spec.cluster))
                        .unwrap_or_default();
                    let out = WorkspaceOutput {
                        fingerprint,
                        root,
                        rendered: false,
                    };
                    return Ok((key, out, Vec::new(), BTreeMap::new()));
                }
                let mut diags = Vec::new();
                let Some(model) =
                    plan::workspace(&platform, org, ws, w, &intent.unreadable, &mut diags)
                else {
                    let out = WorkspaceOutput {
                        fingerprint,
                        root: String::new(),
                        rendered: false,
                    };
                    return Ok((key, out, diags, BTreeMap::new()));
                };
                let files = render::workspace(&self.renderer, &platform_value, &model)?;
                // host/ goes to the host cluster, inside/ to the vCluster: two sets of objects.
                let inside = |p: &String| p.contains("/inside/");
                render::check_documents(
                    files.iter().filter(|(p, _)| !inside(p)),
                    Some(&model.tenant),
                )?;
                render::check_documents(
                    files.iter().filter(|(p, _)| inside(p)),
                    Some(&model.tenant),
                )?;
                let out = WorkspaceOutput {
                    fingerprint,
                    root: render::workspace_root(&model),
                    rendered: true,
                };
                Ok((key, out, diags, files))
            };
        // An action compiles one workspace: handing it to the thread pool and waiting would
        // cost more than it saves.
        let results: Vec<Compiled> = if selected.len() < 2 {
            selected.iter().map(compile_one).collect()
        } else {
            selected.par_iter().map(compile_one).collect()
        };

        let mut files = BTreeMap::new();
        let mut workspaces = BTreeMap::new();
        for result in results {
            let (key, out, diags, ws_files) = result?;
            let failed = !diags.is_empty();
            diagnostics.extend(diags);
            if !failed {
                workspaces.insert(key, out);
            }
            files.extend(ws_files);
        }
        if diagnostics.iter().any(Diagnostic::is_error) {
            return Ok(finish(BTreeMap::new(), workspaces, diagnostics, scope));
        }
        let shared = self.render_shared(intent, &platform, only)?;
        // Each cluster is its own namespace of objects; check each cluster's files apart.
        let mut groups: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
        for (path, text) in &shared {
            let group = match path.split('/').collect::<Vec<_>>().as_slice() {
                ["clusters" | "tenants", c, ..] | ["infrastructure", "config", c, ..] => c,
                _ => "",
            };
            groups
                .entry(group)
                .or_default()
                .insert(path.clone(), text.clone());
        }
        for group in groups.values() {
            render::check_documents(group, None)?;
        }
        files.extend(shared);
        Ok(finish(files, workspaces, diagnostics, scope))
    }

    fn check_plan_policies(&self, intent: &Intent, out: &mut Vec<Diagnostic>) {
        let Some(platform) = &intent.platform else {
            return;
        };
        let available: Vec<&str> = self
            .policies
            .iter()
            .filter(|(_, p)| p.per_plan())
            .map(|(n, _)| n.as_str())
            .collect();
        for (i, plan) in platform.spec.plans.iter().enumerate() {
            for (j, name) in plan.policies.iter().enumerate() {
                if !available.contains(&name.as_str()) {
                    out.push(Diagnostic::error(
                        "intent/platform.yaml",
                        format!("spec.plans[{i}].policies[{j}]"),
                        format!(
                            "unknown policy {name:?}; plans can select {}",
                            available.join(", ")
                        ),
                    ));
                }
            }
            if plan
                .policies
                .iter()
                .any(|p| p == "restrict-image-registries")
                && plan.allowed_registries.is_empty()
            {
                out.push(Diagnostic::error(
                    "intent/platform.yaml",
                    format!("spec.plans[{i}].allowedRegistries"),
                    "restrict-image-registries needs at least one allowed registry",
                ));
            }
        }
    }

    /// Files shared by workspaces: cluster entry points, infrastructure, policies, indexes.
    fn render_shared(
        &self,
        intent: &Intent,
        platform: &PlatformModel,
        only: Option<&BTreeSet<(String, String)>>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let mut files = self.render_tenant_indexes(intent, platform, only)?;
        // Files that depend on the platform alone: a partial compile neither renders nor owns
        // them (actions do not change the platform; an import compiles everything).
        if only.is_none() {
            files.extend(self.render_platform(platform)?);
        }
        Ok(files)
    }

    /// `tenants/<c>/kustomization.yaml` (organizations on a cluster) and, for organizations
    /// in scope, `tenants/<c>/<org>.yaml` and `tenants/<c>/<org>/kustomization.yaml`.
    fn render_tenant_indexes(
        &self,
        intent: &Intent,
        platform: &PlatformModel,
        only: Option<&BTreeSet<(String, String)>>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let r = &self.renderer;
        let mut files = BTreeMap::new();
        let on_cluster = |w: &intent::WorkspaceIntent, c: &str| {
            w.workspace.as_ref().is_some_and(|d| d.spec.cluster == c)
        };
        for cluster in &platform.clusters {
            let c = cluster.name.as_str();
            // An organization is listed when any of its workspaces is on the cluster: the
            // search stops at the first, so this stays cheap for large organizations.
            let orgs: Vec<&String> = intent
                .organizations
                .iter()
                .filter(|(_, o)| o.workspaces.values().any(|w| on_cluster(w, c)))
                .map(|(org, _)| org)
                .collect();
            let org_files: Vec<String> = orgs.iter().map(|o| format!("{o}.yaml")).collect();
            files.insert(
                format!("tenants/{c}/kustomization.yaml"),
                render::kustomization(r, &org_files)?,
            );
            for org in orgs {
                if only.is_some_and(|s| !s.iter().any(|(o, _)| o == org)) {
                    continue;
                }
                let ctx =
                    minijinja::context! { cluster => render::val(cluster), org => org.as_str() };
                files.insert(
                    format!("tenants/{c}/{org}.yaml"),
                    r.render("cluster/organization.yaml.j2", &ctx)?,
                );
                let ws_files: Vec<String> = intent.organizations[org]
                    .workspaces
                    .iter()
                    .filter(|(_, w)| on_cluster(w, c))
                    .map(|(ws, _)| format!("{ws}/flux.yaml"))
                    .collect();
                files.insert(
                    format!("tenants/{c}/{org}/kustomization.yaml"),
                    render::kustomization(r, &ws_files)?,
                );
            }
        }
        Ok(files)
    }

    /// Cluster entry points, infrastructure, policies, README and `.sourceignore`.
    fn render_platform(&self, platform: &PlatformModel) -> Result<BTreeMap<String, String>, Error> {
        let r = &self.renderer;
        let mut files = BTreeMap::new();
        let pctx = render::val(platform);
        for cluster in &platform.clusters {
            let c = cluster.name.as_str();
            let ctx =
                minijinja::context! { cluster => render::val(cluster), platform => pctx.clone() };
            files.insert(
                format!("clusters/{c}/infrastructure.yaml"),
                r.render("cluster/infrastructure.yaml.j2", &ctx)?,
            );
            files.insert(
                format!("clusters/{c}/tenants.yaml"),
                r.render("cluster/tenants.yaml.j2", &ctx)?,
            );
            files.insert(
                format!("infrastructure/config/{c}/config.yaml"),
                r.render("cluster/config.yaml.j2", &ctx)?,
            );
            files.insert(
                format!("infrastructure/config/{c}/kustomization.yaml"),
                render::kustomization(r, &["config.yaml"])?,
            );
        }
        files.insert(
            "infrastructure/controllers/controllers.yaml".into(),
            r.render(
                "infrastructure/controllers.yaml.j2",
                &minijinja::context! { platform => pctx },
            )?,
        );
        files.insert(
            "infrastructure/controllers/kustomization.yaml".into(),
            render::kustomization(r, &["controllers.yaml"])?,
        );
        let mut policy_files = Vec::new();
        for (name, doc) in &self.policies {
            if doc.per_plan() {
                continue;
            }
            let mut doc = doc.clone();
            if name == "sync-git-credentials" {
                // Tenants get the read-only credential, never the platform's own.
                let Some(secret) = &platform.tenant_git_secret else {
                    continue;
                };
                doc.set_variable("sourceSecretName", policy::cel_string(secret));
            }
            policy_files.push(format!("{name}.yaml"));
            files.insert(
                format!("infrastructure/policies/{name}.yaml"),
                doc.labelled().to_yaml()?,
            );
        }
        for (plan_name, plan) in &platform.plans {
            for policy in &plan.policies {
                let Some(doc) = self.policies.get(policy) else {
                    continue;
                };
                let doc = doc
                    .for_plan(
                        plan_name,
                        &plan.allowed_registries,
                        &images::admitted(platform, plan),
                    )
                    .labelled();
                let file = format!("{plan_name}/{policy}.yaml");
                files.insert(format!("infrastructure/policies/{file}"), doc.to_yaml()?);
                policy_files.push(file);
            }
        }
        policy_files.sort();
        files.insert(
            "infrastructure/policies/kustomization.yaml".into(),
            render::kustomization(r, &policy_files)?,
        );
        let readme_ctx = minijinja::context! { clusters => render::val(&platform.clusters) };
        files.insert("README.md".into(), r.render("README.md.j2", &readme_ctx)?);
        files.insert(
            ".sourceignore".into(),
            r.render("sourceignore", &readme_ctx)?,
        );
        Ok(files)
    }
}

fn finish(
    files: BTreeMap<String, String>,
    workspaces: BTreeMap<String, WorkspaceOutput>,
    mut diagnostics: Vec<Diagnostic>,
    scope: Scope,
) -> Output {
    diagnostics.sort();
    diagnostics.dedup();
    let files = if diagnostics.iter().any(Diagnostic::is_error) {
        BTreeMap::new()
    } else {
        files
    };
    Output {
        files,
        workspaces,
        diagnostics,
        scope,
    }
}

/// Two workspaces must not share a host namespace: `ws-a-b-c` is both `a-b/c` and `a/b-c`.
fn check_host_namespaces(intent: &Intent, out: &mut Vec<Diagnostic>) {
    let mut owners: BTreeMap<String, Vec<(&str, &str)>> = BTreeMap::new();
    for (org, o) in &intent.organizations {
        for ws in o.workspaces.keys() {
            owners
                .entry(workspace_client_id(org, ws))
                .or_default()
                .push((org, ws));
        }
    }
    for (namespace, list) in owners.iter().filter(|(_, l)| l.len() > 1) {
        for (org, ws) in list {
            let others: Vec<String> = list
                .iter()
                .filter(|(o, w)| (o, w) != (org, ws))
                .map(|(o, w)| format!("{o}/{w}"))
                .collect();
            out.push(Diagnostic::error(
                format!("intent/{org}/{ws}/workspace.yaml"),
                "metadata.name",
                format!(
                    "host namespace {namespace:?} is also the namespace of {}",
                    others.join(", ")
                ),
            ));
        }
    }
}

/// [`check_host_namespaces`] for a few workspaces: `ws-<org>-<ws>` can only collide with a
/// split of `<org>-<ws>` at another `-`, so only those are looked up.
fn check_host_namespaces_of(
    intent: &Intent,
    only: &BTreeSet<(String, String)>,
    out: &mut Vec<Diagnostic>,
) {
    for (org, ws) in only {
        let exists = intent
            .organizations
            .get(org)
            .is_some_and(|o| o.workspaces.contains_key(ws));
        if !exists {
            continue;
        }
        let joined = format!("{org}-{ws}");
        let others: Vec<String> = joined
            .match_indices('-')
            .map(|(i, _)| (&joined[..i], &joined[i + 1..]))
            .filter(|(o, w)| (*o, *w) != (org.as_str(), ws.as_str()))
            .filter(|(o, w)| {
                intent
                    .organizations
                    .get(*o)
                    .is_some_and(|x| x.workspaces.contains_key(*w))
            })
            .map(|(o, w)| format!("{o}/{w}"))
            .collect();
        if !others.is_empty() {
            out.push(Diagnostic::error(
                format!("intent/{org}/{ws}/workspace.yaml"),
                "metadata.name",
                format!(
                    "host namespace \"ws-{joined}\" is also the namespace of {}",
                    others.join(", ")
                ),
            ));
        }
    }
}

fn platform_fingerprint(catalog: &blake3::Hash, platform: &PlatformModel) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(VERSION.as_bytes());
    h.update(catalog.as_bytes());
    // The pinned platform images are rendered into workspaces and policies, like the templates.
    h.update(&serde_json::to_vec(&images::PLATFORM_IMAGES).expect("the images serialize"));
    let plans: Vec<&intent::Plan> = platform.plans.values().map(|p| &p.source).collect();
    let json = serde_json::to_vec(&(platform, plans)).expect("the platform model serializes");
    h.update(&json);
    h.finalize()
}

fn workspace_fingerprint(
    platform: &blake3::Hash,
    org: &str,
    ws: &str,
    w: &intent::WorkspaceIntent,
) -> String {
    let mut h = blake3::Hasher::new();
    h.update(platform.as_bytes());
    for part in [org, ws] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    // The JSON of `(workspace, {project: project, …})`, the projects' JSON as kept.
    let workspace = serde_json::to_vec(&w.workspace).expect("intent serializes");
    h.update(b"[");
    h.update(&workspace);
    h.update(b",{");
    for (i, (name, project)) in w.projects.iter().enumerate() {
        if i > 0 {
            h.update(b",");
        }
        h.update(&serde_json::to_vec(name).expect("a string serializes"));
        h.update(b":");
        h.update(project.json().as_bytes());
    }
    h.update(b"}]");
    h.finalize().to_hex().to_string()
}
