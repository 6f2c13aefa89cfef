//! Images the platform itself runs in a workspace's host namespace, pinned by exact reference.
//!
//! The vCluster syncs CoreDNS and every pod made inside it to the host namespace, where the
//! plan's pod policies apply; the shared monitoring agent runs the same way. The compiler pins
//! each of these images in the Helm values it renders, and the plan's `restrict-image-registries`
//! policy admits exactly these references, and the vCluster control plane's (the chart's
//! defaults for the pinned chart and Kubernetes versions), besides the plan's registry prefixes:
//! an exact reference is all a tenant could reuse, and it names an image the platform already
//! trusts.
//! Nothing about a pod (labels, service account, owner) decides it, since a tenant controls all
//! of those for pods it makes inside its vCluster. See docs/day-one.md.

use serde::Serialize;

use crate::plan::{PlanModel, PlatformModel};

/// One container image: `<registry>/<repository>:<tag>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Image {
    pub(crate) registry: &'static str,
    pub(crate) repository: &'static str,
    pub(crate) tag: &'static str,
}

impl Image {
    /// The reference as Kubernetes sees it in the pod: `registry/repository:tag`.
    pub(crate) fn reference(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// The platform's own images in workspace host namespaces. Serialized for templates
/// (`platform.images.coredns.registry`, …) and into the platform fingerprint, so a change here
/// renders every workspace again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PlatformImages {
    /// The vCluster's CoreDNS (`controlPlane.coredns.deployment.image`). vCluster 0.36 picks
    /// `docker.io/coredns/coredns:1.14.x` by the virtual Kubernetes minor when this is unset.
    pub(crate) coredns: Image,
    /// The init container vCluster adds to StatefulSet pods to rewrite `/etc/hosts`
    /// (`sync.toHost.pods.rewriteHosts.initContainer.image`); the chart's default.
    pub(crate) hosts_rewrite: Image,
    /// The shared monitoring agent (chart `alloy` 1.4.0's default, `image`).
    pub(crate) alloy: Image,
    /// Its config reloader sidecar (chart `alloy` 1.4.0's default, `configReloader.image`).
    pub(crate) config_reloader: Image,
    /// `kubectl`, which re-applies Flux's binding inside the vCluster (`identity.yaml`).
    pub(crate) kubectl: Image,
}

/// The pins. Bumping the vCluster or Alloy chart means checking these against what the new
/// chart renders (the conformance checker runs the real `helm template`).
pub(crate) const PLATFORM_IMAGES: PlatformImages = PlatformImages {
    coredns: Image {
        registry: "docker.io",
        repository: "coredns/coredns",
        tag: "1.14.2",
    },
    hosts_rewrite: Image {
        registry: "mirror.gcr.io",
        repository: "library/alpine",
        tag: "3.20",
    },
    alloy: Image {
        registry: "docker.io",
        repository: "grafana/alloy",
        tag: "v1.11.3",
    },
    config_reloader: Image {
        registry: "quay.io",
        repository: "prometheus-operator/prometheus-config-reloader",
        tag: "v0.81.0",
    },
    kubectl: Image {
        registry: "registry.k8s.io",
        repository: "kubectl",
        tag: "v1.35.0",
    },
};

impl PlatformImages {
    /// Every reference, sorted: what the registry policy admits besides the plan's prefixes.
    pub(crate) fn references(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            self.coredns,
            self.hosts_rewrite,
            self.alloy,
            self.config_reloader,
            self.kubectl,
        ]
        .iter()
        .map(Image::reference)
        .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The vCluster control plane's images as the chart renders them by default: the syncer,
/// `ghcr.io/loft-sh/vcluster-pro:<chart appVersion>` (the chart's own version), and the
/// Kubernetes distro, `ghcr.io/loft-sh/kubernetes:<version>`, for every version a workspace of
/// the plan may run (the plan's pin, else each host cluster's version).
fn control_plane(platform: &PlatformModel, plan: &PlanModel) -> Vec<String> {
    let chart = &platform.charts.vcluster.version;
    let mut out = vec![format!(
        "ghcr.io/loft-sh/vcluster-pro:{}",
        chart.strip_prefix('v').unwrap_or(chart)
    )];
    match &plan.source.vcluster.kubernetes_version {
        Some(version) => out.push(format!("ghcr.io/loft-sh/kubernetes:{version}")),
        None => out.extend(
            platform
                .clusters
                .iter()
                .map(|c| format!("ghcr.io/loft-sh/kubernetes:{}", c.kubernetes_version)),
        ),
    }
    out
}

/// What a plan's `restrict-image-registries` admits besides its prefixes: the pinned images
/// and the vCluster control plane's, exact references, sorted.
pub(crate) fn admitted(platform: &PlatformModel, plan: &PlanModel) -> Vec<String> {
    let mut out = PLATFORM_IMAGES.references();
    out.extend(control_plane(platform, plan));
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_fully_qualified_sorted_and_valid() {
        let refs = PLATFORM_IMAGES.references();
        assert_eq!(refs.len(), 5, "one reference per pinned image");
        assert!(refs.windows(2).all(|w| w[0] < w[1]), "{refs:?}");
        for r in &refs {
            // A registry host with a dot, a repository and a tag: nothing a prefix could stretch.
            let (host, rest) = r.split_once('/').expect("registry/repository");
            assert!(host.contains('.'), "{r}");
            assert!(rest.contains(':') && !rest.ends_with(':'), "{r}");
            assert!(crate::plan::check::image_reference(r).is_ok(), "{r}");
        }
    }
}
