//! Templates and policies as data. [`Catalog::builtin`] embeds the shipped set at build time;
//! tests can build their own.

use std::collections::BTreeMap;

/// The templates and Kyverno policies the compiler renders with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// minijinja templates by name (`workspace/vcluster.yaml.j2`).
    pub templates: BTreeMap<String, String>,
    /// Kyverno policy documents by name (the file stem in `policies/`).
    pub policies: BTreeMap<String, String>,
}

macro_rules! embed {
    ($dir:literal, $($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../", $dir, "/", $name)))),*]
    };
}

impl Catalog {
    /// The templates in `templates/` and the policies in `policies/`, embedded.
    pub fn builtin() -> Self {
        let templates = embed!(
            "templates",
            "kustomization.yaml.j2",
            "README.md.j2",
            "sourceignore",
            "cluster/config.yaml.j2",
            "cluster/infrastructure.yaml.j2",
            "cluster/organization.yaml.j2",
            "cluster/tenants.yaml.j2",
            "infrastructure/controllers.yaml.j2",
            "workspace/flux.yaml.j2",
            "workspace/functions.yaml.j2",
            "workspace/git-credentials.yaml.j2",
            "workspace/identity.yaml.j2",
            "workspace/monitoring.yaml.j2",
            "workspace/namespace.yaml.j2",
            "workspace/network.yaml.j2",
            "workspace/project.yaml.j2",
            "workspace/rbac.yaml.j2",
            "workspace/sources.yaml.j2",
            "workspace/sync.yaml.j2",
            "workspace/vcluster.yaml.j2",
        );
        let policies = embed!(
            "policies",
            "disallow-host-namespaces.yaml",
            "disallow-host-path.yaml",
            "disallow-privileged.yaml",
            "flux-multi-tenancy.yaml",
            "require-requests-limits.yaml",
            "restrict-image-registries.yaml",
            "sync-git-credentials.yaml",
        );
        Self {
            templates: templates
                .iter()
                .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
                .collect(),
            policies: policies
                .iter()
                .map(|(n, s)| (n.trim_end_matches(".yaml").to_owned(), (*s).to_owned()))
                .collect(),
        }
    }

    /// A hash of every template and policy, part of every workspace fingerprint.
    pub fn fingerprint(&self) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        for (name, text) in self.templates.iter().chain(&self.policies) {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        h.finalize()
    }
}
