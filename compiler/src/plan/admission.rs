//! Policy before commit: what the plan's Kyverno policies will deny in the cluster is refused
//! here, with the field at fault, before any commit (docs/policies.md).
//!
//! The data both sides read is one: the plan's `allowedRegistries` and the platform's pinned
//! images ([`crate::images::admitted`]) are what the compiler writes into the rendered
//! `restrict-image-registries` policy's variables and what [`image_admitted`] reads. The
//! rules are written twice, once in the policy's CEL and once here, and
//! `tests/conformance/test_policy_before_commit.py` renders the policies and holds the two
//! to the same verdict on a table of cases (evaluating the CEL with the day-one checker).

use crate::diagnostic::Sink;
use crate::intent::{LimitRange, Resources};

use super::{PlanModel, PlatformModel};

/// The plan policy that admits only allowed registries.
pub(crate) const RESTRICT_IMAGE_REGISTRIES: &str = "restrict-image-registries";
/// The plan policy that requires CPU and memory requests and a memory limit.
pub(crate) const REQUIRE_REQUESTS_LIMITS: &str = "require-requests-limits";

/// The image as Kyverno's registry rule reads it: an image whose first path component is not
/// a registry host (no `.` or `:` in it, and not `localhost`) is on Docker Hub, under
/// `library/` when it has no path at all (`nginx` is `docker.io/library/nginx`,
/// `acme/app` is `docker.io/acme/app`). The policy's `normalized` variable says the same in
/// CEL.
pub(crate) fn normalize_image(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => image.to_owned(),
        Some(_) => format!("docker.io/{image}"),
        None => format!("docker.io/library/{image}"),
    }
}

/// Whether `restrict-image-registries` admits `image`: exactly one of `platform_images`, or
/// normalized, under one of the `allowed` prefixes.
pub(crate) fn image_admitted(image: &str, allowed: &[String], platform_images: &[String]) -> bool {
    if platform_images.iter().any(|p| p == image) {
        return true;
    }
    let normalized = normalize_image(image);
    allowed
        .iter()
        .any(|prefix| normalized.starts_with(prefix.as_str()))
}

/// What of a container's requests and limit `require-requests-limits` misses, after the
/// `limit_range` of its namespace defaults it (Kubernetes' LimitRanger runs before admission
/// webhooks; a default limit is also the default request): the intent fields at fault.
pub(crate) fn missing_resources(
    resources: &Resources,
    limit_range: &LimitRange,
) -> Vec<&'static str> {
    let mut missing = Vec::new();
    let cpu_request = resources.cpu.is_some()
        || limit_range.default_request_cpu.is_some()
        || limit_range.default_cpu.is_some();
    if !cpu_request {
        missing.push("cpu");
    }
    // `resources.memory` sets both the memory request and the limit.
    let memory_limit = resources.memory.is_some() || limit_range.default_memory.is_some();
    if !memory_limit {
        missing.push("memory");
    }
    missing
}

/// Refuses, under `path`, a container of a workload that the plan's policies would deny:
/// its `image` (the registry rule) and its `resources` (the requests rule, with the
/// namespace's `limit_range` defaults).
pub(crate) fn container(
    sink: &mut Sink<'_>,
    path: &str,
    platform: &PlatformModel,
    plan: &PlanModel,
    image: &str,
    resources: &Resources,
    limit_range: &LimitRange,
) {
    let has = |name: &str| plan.policies.iter().any(|p| p == name);
    if has(RESTRICT_IMAGE_REGISTRIES)
        && !image_admitted(
            image,
            &plan.allowed_registries,
            &crate::images::admitted(platform, plan),
        )
    {
        let normalized = normalize_image(image);
        let read = if normalized == image {
            String::new()
        } else {
            format!(" (read as {normalized:?})")
        };
        sink.error(
            format!("{path}.image"),
            format!(
                "image {image:?}{read} is not from a registry plan {:?} allows ({}); its policy \
                 {RESTRICT_IMAGE_REGISTRIES} would deny the pod",
                plan.name,
                if plan.allowed_registries.is_empty() {
                    "none".to_owned()
                } else {
                    plan.allowed_registries.join(", ")
                }
            ),
        );
    }
    if has(REQUIRE_REQUESTS_LIMITS) {
        for field in missing_resources(resources, limit_range) {
            let what = match field {
                "cpu" => "a CPU request",
                _ => "a memory request and limit",
            };
            sink.error(
                format!("{path}.resources.{field}"),
                format!(
                    "plan {:?} requires {what} ({REQUIRE_REQUESTS_LIMITS}) and its limit range \
                     gives no default; set resources.{field}",
                    plan.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_without_a_registry_are_on_docker_hub() {
        for (image, normalized) in [
            ("nginx", "docker.io/library/nginx"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("acme/app@sha256:00", "docker.io/acme/app@sha256:00"),
            ("ghcr.io/acme/app", "ghcr.io/acme/app"),
            ("localhost/app", "localhost/app"),
            ("registry:5000/app", "registry:5000/app"),
            ("docker.io/library/nginx", "docker.io/library/nginx"),
        ] {
            assert_eq!(normalize_image(image), normalized, "{image}");
        }
        let allowed = ["docker.io/library/".to_owned(), "ghcr.io/acme/".to_owned()];
        assert!(image_admitted("nginx", &allowed, &[]));
        assert!(!image_admitted("acme/app", &allowed, &[]));
        assert!(image_admitted("ghcr.io/acme/app:1", &allowed, &[]));
        assert!(!image_admitted("ghcr.io/acmecorp/app", &allowed, &[]));
        assert!(image_admitted(
            "quay.io/x:1",
            &allowed,
            &["quay.io/x:1".to_owned()]
        ));
    }

    #[test]
    fn limit_range_defaults_fill_what_the_container_leaves_out() {
        let none = Resources::default();
        let empty = LimitRange::default();
        assert_eq!(missing_resources(&none, &empty), ["cpu", "memory"]);
        let defaults = LimitRange {
            default_cpu: Some("500m".into()),
            default_memory: Some("256Mi".into()),
            ..LimitRange::default()
        };
        assert!(missing_resources(&none, &defaults).is_empty());
        let set = Resources {
            cpu: Some("100m".into()),
            memory: Some("64Mi".into()),
        };
        assert!(missing_resources(&set, &empty).is_empty());
    }
}
