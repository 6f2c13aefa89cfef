//! Field-level checks: names, quantities, images, schedules, labels.
//! Each returns `Err(reason)` in plain words so the caller can attach a path.

use std::cmp::Ordering;

/// A DNS-1123 label of at most `max` characters: the rules of [`crate::Slug`].
pub(crate) fn dns_label(value: &str, max: usize) -> Result<(), String> {
    crate::Slug::check(value, max).map_err(|e| e.to_string())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn dns_subdomain(value: &str) -> Result<(), String> {
    if value.len() > 253 {
        return Err(format!(
            "must be at most 253 characters, is {}",
            value.len()
        ));
    }
    value
        .split('.')
        .try_for_each(|label| dns_label(label, 63))
        .map_err(|e| format!("must be a DNS subdomain: {e}"))
}

/// A workspace group name: what goes into the `groups` claim after the prefix.
pub(crate) fn group_name(value: &str) -> Result<(), String> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(
            "must be 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
                .into(),
        )
    }
}

/// Label key prefixes owned by Kubernetes, Flux, Kyverno, vCluster and Hexabase itself.
const RESERVED_LABEL_PREFIXES: &[&str] = &[
    "kubernetes.io/",
    "k8s.io/",
    "fluxcd.io/",
    "kyverno.io/",
    "vcluster.loft.sh/",
    "loft.sh/",
    "pod-security.kubernetes.io/",
    "hexabase.ai/",
    "app.kubernetes.io/managed-by",
];

/// A label key a user may set: valid syntax and not under a reserved prefix.
pub(crate) fn user_label_key(key: &str) -> Result<(), String> {
    label_key(key)?;
    let (prefix, _) = key.rsplit_once('/').unwrap_or(("", key));
    let reserved = RESERVED_LABEL_PREFIXES.iter().any(|reserved| {
        if let Some(domain) = reserved.strip_suffix('/') {
            prefix == domain || prefix.ends_with(&format!(".{domain}"))
        } else {
            key == *reserved
        }
    });
    if reserved {
        return Err(format!(
            "label key {key:?} uses a reserved prefix (kubernetes.io/, *.fluxcd.io/, kyverno.io/, \
             vcluster.loft.sh/, pod-security.kubernetes.io/, hexabase.ai/)"
        ));
    }
    Ok(())
}

/// A Kubernetes label key: optional DNS-subdomain prefix and `/`, then a name of at most 63.
pub(crate) fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns_subdomain(prefix).map_err(|e| format!("label key prefix {prefix:?} {e}"))?;
    }
    if name.is_empty() || !qualified_name_part(name) {
        return Err(format!(
            "label key {key:?} must be at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A Kubernetes label value: empty, or at most 63 characters like a key's name part.
pub(crate) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} must be at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ))
    }
}

fn qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A Kubernetes quantity, as an exact value in units of 10^-9 (nano) so that comparisons are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Quantity(i128);

impl Quantity {
    /// Parses `500m`, `2`, `1.5Gi`, `1e3`, `128974848`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a Kubernetes quantity (like 500m, 2, 1.5Gi, 512Mi)");
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let number = number.strip_prefix('+').unwrap_or(number);
        if number.starts_with('-') {
            return Err(format!("{s:?} must not be negative"));
        }
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || int_part.len() + frac_part.len() > 24
        {
            return Err(bad());
        }
        // Value = digits * 10^-frac_len, scaled by the suffix.
        let digits: i128 = format!("{int_part}{frac_part}")
            .parse()
            .map_err(|_| bad())?;
        let (mul, exp10): (i128, i32) = match suffix {
            "" => (1, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            other => {
                let exp = other
                    .strip_prefix(['e', 'E'])
                    .and_then(|e| e.parse::<i32>().ok())
                    .filter(|e| (-9..=18).contains(e))
                    .ok_or_else(bad)?;
                (1, exp)
            }
        };
        // Scale to nano units: digits * mul * 10^(exp10 + 9 - frac_len).
        let shift = exp10 + 9 - i32::try_from(frac_part.len()).map_err(|_| bad())?;
        let scaled = digits.checked_mul(mul).ok_or_else(bad)?;
        let value = if shift >= 0 {
            scaled.checked_mul(10i128.checked_pow(shift.unsigned_abs()).ok_or_else(bad)?)
        } else {
            // Finer than a nano unit: round up, as Kubernetes does.
            let div = 10i128.checked_pow(shift.unsigned_abs()).ok_or_else(bad)?;
            Some((scaled + div - 1) / div)
        };
        value.map(Quantity).ok_or_else(bad)
    }
}

/// Compares two quantity strings; `None` when either does not parse.
pub(crate) fn compare_quantities(a: &str, b: &str) -> Option<Ordering> {
    Some(Quantity::parse(a).ok()?.cmp(&Quantity::parse(b).ok()?))
}

/// A container image reference, as the distribution reference grammar defines it:
/// `[host[:port]/]path[:tag][@algorithm:hex]`.
pub(crate) fn image_reference(image: &str) -> Result<(), String> {
    let bad = |why: &str| format!("{image:?} is not a valid image reference: {why}");
    if image.is_empty() {
        return Err("must not be empty".into());
    }
    if image.len() > 255 + 128 + 72 {
        return Err(bad("too long"));
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or_else(|| bad("digest needs algorithm:hex"))?;
        let algo_ok = !algorithm.is_empty()
            && algorithm.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'+' | b'.' | b'_' | b'-')
            });
        let hex_ok = hex.len() >= 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !algo_ok || !hex_ok {
            return Err(bad("malformed digest"));
        }
    }
    // A tag follows the last ':' after the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let b = tag.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return Err(bad("malformed tag"));
        }
    }
    if name.is_empty() || name.len() > 255 {
        return Err(bad("the repository name must be 1 to 255 characters"));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // The first component is a registry host when it has a '.' or ':' or is localhost.
    let first = components[0];
    if components.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        let (host, port) = match first.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (first, None),
        };
        if let Some(port) = port
            && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad("malformed registry port"));
        }
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            });
        if !host_ok {
            return Err(bad("malformed registry host"));
        }
        components.remove(0);
    }
    for component in components {
        // path-component: [a-z0-9]+ separated by '.', '_', '__' or one or more '-'.
        let b = component.as_bytes();
        let ok = !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
            })
            && !component.contains("..")
            && !component.contains("___")
            && !component.contains("._")
            && !component.contains("_.")
            && !component.contains(".-")
            && !component.contains("-.")
            && !component.contains("_-")
            && !component.contains("-_");
        if !ok {
            return Err(bad(
                "repository path components are lowercase letters, digits and separators",
            ));
        }
    }
    Ok(())
}

/// A cron schedule as `batch/v1` CronJob accepts it: five fields or a macro.
pub(crate) fn cron_schedule(schedule: &str) -> Result<(), String> {
    const MACROS: &[&str] = &[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    let bad = |why: String| format!("{schedule:?} is not a valid cron schedule: {why}");
    if schedule.starts_with('@') {
        return if MACROS.contains(&schedule) {
            Ok(())
        } else {
            Err(bad(format!(
                "unknown macro; use one of {}",
                MACROS.join(", ")
            )))
        };
    }
    if schedule.contains("TZ=") {
        return Err(bad(
            "set the time zone with timeZone, not TZ= in the schedule".into(),
        ));
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(bad(format!(
            "needs 5 fields (minute hour day month weekday), has {}",
            fields.len()
        )));
    }
    const MONTHS: &[&str] = &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let specs: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day of month", 1, 31, &[], 0),
        ("month", 1, 12, MONTHS, 1),
        ("day of week", 0, 7, DAYS, 0),
    ];
    for (field, (what, min, max, names, name_base)) in fields.iter().zip(specs) {
        cron_field(field, min, max, names, name_base)
            .map_err(|why| bad(format!("{what} field {field:?}: {why}")))?;
    }
    Ok(())
}

fn cron_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(), String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            return if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} is outside {min}-{max}"))
            };
        }
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| u32::try_from(i).unwrap_or(0) + name_base)
            .ok_or_else(|| format!("{s:?} is not a number or name"))
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s > 0 => {}
                _ => return Err(format!("step {step:?} must be a positive number")),
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a)?, value(b)?);
                if a > b {
                    return Err(format!("range {range:?} runs backwards"));
                }
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

/// An IANA time zone name such as `Europe/Berlin` or `UTC`, as the API server checks a
/// CronJob's `timeZone`: the characters and part lengths it allows, not `Local`, and a zone
/// the time zone database has (chrono-tz carries the IANA database as compiled-in data).
pub(crate) fn time_zone(tz: &str) -> Result<(), String> {
    let bad = || format!("{tz:?} is not an IANA time zone name (like Europe/Berlin)");
    let shaped = !tz.is_empty()
        && tz.split('/').all(|p| {
            !p.is_empty()
                && p.len() <= 14
                && p != "."
                && p != ".."
                && !p.starts_with('-')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
        });
    if !shaped {
        return Err(bad());
    }
    if tz.eq_ignore_ascii_case("local") {
        return Err(format!(
            "{tz:?} is the node's own zone; name an IANA time zone (like Europe/Berlin)"
        ));
    }
    match tz.parse::<chrono_tz::Tz>() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{tz:?} is not in the IANA time zone database (like Europe/Berlin or UTC)"
        )),
    }
}

/// A resource of an RBAC rule, as the API server names resources in request paths: a
/// lowercase DNS label (the plural of a kind, as CRDs must name it), optionally `/` and a
/// subresource of the same shape. `.`, `..`, `%` and further `/` can never match a request.
pub(crate) fn rbac_resource(resource: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!("{resource:?} is not a resource name (like pods, deployments or pods/log): {why}")
    };
    let mut parts = resource.split('/');
    let base = parts.next().unwrap_or("");
    let sub = parts.next();
    if parts.next().is_some() {
        return Err(bad("at most one '/subresource' may follow the resource"));
    }
    for part in std::iter::once(base).chain(sub) {
        let b = part.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_lowercase()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if !ok {
            return Err(bad(
                "each part is 1 to 63 lowercase letters, digits and '-', starting with a letter",
            ));
        }
    }
    Ok(())
}

/// An object name in an RBAC rule's `resourceNames`: a name the API server can put in a
/// request path, at most 253 characters, not `.` or `..`, without `/` or `%`.
pub(crate) fn object_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err(format!("must be at most 253 characters, is {}", name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} can never be an object name"));
    }
    // Control characters are refused for all text alike (`plan::text`).
    if name.contains(['/', '%']) {
        return Err(format!(
            "{name:?} is not an object name: '/' and '%' cannot be in one"
        ));
    }
    Ok(())
}

/// A Git branch name, by the rules of `git check-ref-format --branch`.
pub(crate) fn git_branch(branch: &str) -> Result<(), String> {
    let why = if branch.is_empty() {
        Some("must not be empty")
    } else if branch.len() > 255 {
        Some("may be at most 255 bytes")
    } else if branch.starts_with('-') {
        Some("must not start with '-'")
    } else if branch == "@" || branch == "HEAD" {
        Some("is a name Git reserves")
    } else if branch.starts_with('/') || branch.ends_with('/') || branch.contains("//") {
        Some("must not start or end with '/' or hold '//'")
    } else if branch.ends_with('.') {
        Some("must not end with '.'")
    } else if branch.contains("..") {
        Some("must not hold '..'")
    } else if branch.contains("@{") {
        Some("must not hold '@{'")
    } else if branch
        .split('/')
        .any(|part| part.starts_with('.') || part.ends_with(".lock"))
    {
        Some("has a part that starts with '.' or ends with '.lock'")
    } else if branch.chars().any(|c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        Some("must not hold spaces, control characters or any of ~ ^ : ? * [ \\")
    } else {
        None
    };
    match why {
        Some(why) => Err(format!("{branch:?} is not a Git branch name: it {why}")),
        None => Ok(()),
    }
}

/// An exact chart version: strict semantic versioning, with the optional leading `v` Helm
/// accepts (`0.36.1`, `v1.23.0`).
pub(crate) fn chart_version(version: &str) -> Result<semver::Version, String> {
    version
        .strip_prefix('v')
        .unwrap_or(version)
        .parse::<semver::Version>()
        .map_err(|e| {
            format!(
                "{version:?} is not an exact chart version (semantic versioning like 1.2.3, \
                 optionally with a leading v): {e}"
            )
        })
}

/// The chart versions this repository's rendered output works with, by chart field.
/// One place: change it together with what the templates and policies need.
///
/// - `kyverno`: the policies are `policies.kyverno.io/v1`, first served by Kyverno 1.19,
///   which is chart 3.9.0.
/// - `vcluster`: the values the templates write are tested against charts 0.35 and 0.36
///   (`/work/shared/upstream/charts`); 0.37 may change them.
pub(crate) const SUPPORTED_CHARTS: &[(&str, &str, &str)] = &[
    (
        "kyverno",
        ">=3.9.0",
        "policies.kyverno.io/v1 needs Kyverno 1.19 (chart 3.9.0) or later",
    ),
    (
        "vcluster",
        ">=0.35.0, <0.37.0",
        "the vCluster values are written and tested for charts 0.35 and 0.36",
    ),
];

/// Checks `version` of the chart field `field` against [`SUPPORTED_CHARTS`].
pub(crate) fn supported_chart(field: &str, version: &semver::Version) -> Result<(), String> {
    for (chart, range, why) in SUPPORTED_CHARTS {
        if *chart != field {
            continue;
        }
        let req = semver::VersionReq::parse(range).expect("the table holds valid ranges");
        // A pre-release only matches a range that names one; judge it by its release.
        let release = semver::Version::new(version.major, version.minor, version.patch);
        if !req.matches(&release) {
            return Err(format!(
                "version {version} is not supported: {why} (supported: {range})"
            ));
        }
    }
    Ok(())
}

/// Ports of Knative's queue-proxy sidecar (HTTP, HTTP/2, admin, two metrics ports, profiling):
/// a function's container may not listen on them.
const KNATIVE_RESERVED_PORTS: &[u16] = &[8008, 8012, 8013, 8022, 9090, 9091];

/// The port a function's container listens on, as Knative accepts it.
pub(crate) fn function_port(port: u16) -> Result<(), String> {
    if port == 0 {
        Err("must be between 1 and 65535".into())
    } else if KNATIVE_RESERVED_PORTS.contains(&port) {
        Err(format!(
            "{port} is used by Knative's queue-proxy; Knative reserves {}",
            KNATIVE_RESERVED_PORTS
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        Ok(())
    }
}

/// A C identifier-like environment variable name.
pub(crate) fn env_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid environment variable name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_exactly() {
        assert_eq!(compare_quantities("500m", "0.5"), Some(Ordering::Equal));
        assert_eq!(compare_quantities("1Gi", "1G"), Some(Ordering::Greater));
        assert_eq!(compare_quantities("1e3", "1k"), Some(Ordering::Equal));
        assert_eq!(compare_quantities("2", "1500m"), Some(Ordering::Greater));
        assert!(Quantity::parse("1.5.3").is_err());
        assert!(Quantity::parse("-1").is_err());
        assert!(Quantity::parse("12Qi").is_err());
        assert!(Quantity::parse("").is_err());
    }

    #[test]
    fn images() {
        for ok in [
            "nginx",
            "nginx:1.27",
            "ghcr.io/acme/api:v1.2.3",
            "localhost:5000/x/y",
            "registry.k8s.io/pause:3.10",
            "ghcr.io/acme/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Nginx",
            "ghcr.io/acme/api:",
            "a b",
            "ghcr.io//x",
            "x@sha256:zz",
            "-x",
            "x:t!",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules() {
        for ok in [
            "*/5 * * * *",
            "0 3 * * MON-FRI",
            "@daily",
            "0 0 1 JAN,JUL *",
            "15 2 * * 0",
        ] {
            assert_eq!(cron_schedule(ok), Ok(()), "{ok}");
        }
        for bad in [
            "* * * *",
            "60 * * * *",
            "@sometimes",
            "*/0 * * * *",
            "5-1 * * * *",
            "TZ=UTC 0 * * * *",
        ] {
            assert!(cron_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_come_from_the_iana_database() {
        for ok in [
            "Europe/Berlin",
            "UTC",
            "Etc/GMT+5",
            "America/Argentina/Buenos_Aires",
            "US/Pacific",
        ] {
            assert_eq!(time_zone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "Mars/Olympus",
            "Local",
            "local",
            "europe/berlin",
            "",
            "Europe/../UTC",
            "/UTC",
            "Europe/Berlin ",
        ] {
            assert!(time_zone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rbac_resources_are_path_segments() {
        for ok in [
            "pods",
            "pods/log",
            "deployments/scale",
            "custom-things",
            "v1beta1things",
        ] {
            assert_eq!(rbac_resource(ok), Ok(()), "{ok}");
        }
        for bad in [
            "pods/../secrets",
            "pods/log/x",
            "pods/",
            "/log",
            "Pods",
            "pods%2f",
            "..",
            "pods/.",
            "-pods",
            "1pods",
        ] {
            assert!(rbac_resource(bad).is_err(), "{bad}");
        }
        assert!(object_name("..").is_err());
        assert!(object_name("a/b").is_err());
        assert!(object_name(&"a".repeat(254)).is_err());
        assert_eq!(object_name("my.config-1"), Ok(()));
    }

    #[test]
    fn branches_follow_check_ref_format() {
        for ok in ["main", "release/1.2", "feature/x_y-z", "v1.0", "a@b"] {
            assert_eq!(git_branch(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "-x", "a..b", "a@{1}", "@", "HEAD", "/a", "a/", "a//b", "a.", "a.lock", "a/.b",
            "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "a\u{7f}", "a\tb",
        ] {
            assert!(git_branch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chart_versions_are_exact_and_supported() {
        for ok in ["1.2.3", "v1.23.0", "0.36.1-rc.1", "1.0.0+build.5"] {
            assert!(chart_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../../other",
            "${SECRET}",
            "yes",
            "1.2",
            "^1.2.3",
            "1.2.x",
            "",
            "v",
            "01.2.3",
        ] {
            assert!(chart_version(bad).is_err(), "{bad}");
        }
        let v = |s: &str| chart_version(s).expect("valid");
        assert!(supported_chart("kyverno", &v("3.9.0")).is_ok());
        assert!(supported_chart("kyverno", &v("3.8.9")).is_err());
        assert!(supported_chart("vcluster", &v("0.35.3")).is_ok());
        assert!(supported_chart("vcluster", &v("0.36.1")).is_ok());
        assert!(supported_chart("vcluster", &v("0.37.0-alpha.1")).is_err());
        assert!(supported_chart("vcluster", &v("0.34.9")).is_err());
        assert!(supported_chart("monitoringStack", &v("1.0.0")).is_ok());
    }

    #[test]
    fn function_ports_avoid_knative() {
        assert!(function_port(8080).is_ok());
        for bad in [0, 8008, 8012, 8013, 8022, 9090, 9091] {
            assert!(function_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert!(user_label_key("team").is_ok());
        assert!(user_label_key("acme.com/team").is_ok());
        assert!(user_label_key("kubernetes.io/x").is_err());
        assert!(user_label_key("foo.kubernetes.io/x").is_err());
        assert!(user_label_key("kustomize.toolkit.fluxcd.io/name").is_err());
        assert!(user_label_key("kyverno.io/x").is_err());
        assert!(user_label_key("pod-security.kubernetes.io/enforce").is_err());
        assert!(user_label_key("vcluster.loft.sh/x").is_err());
        assert!(label_value("a b").is_err());
        assert!(label_value("").is_ok());
    }
}
