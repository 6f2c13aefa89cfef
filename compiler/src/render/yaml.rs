//! YAML scalar quoting and the parse-back check of rendered documents.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Deserialize;

use super::scan::{self, Head, Scan};
use crate::Error;

/// Writes `s` as a YAML double-quoted scalar.
///
/// JSON escaping alone is not YAML-safe: YAML also treats U+007F, U+0080 to U+009F (NEL among
/// them), U+2028, U+2029 and U+FEFF specially, and U+FFFE/U+FFFF are not printable, so all of
/// those are written as `\u` escapes too.
pub(crate) fn quote(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a String cannot fail");
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The part of a document the check reads; everything else is skipped unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FullHead {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<HeadMetadata>,
}

#[derive(Deserialize)]
struct HeadMetadata {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads a document's head with the fast reader, falling back to the full parser outside its
/// subset. Debug builds (every test) run both and require them to agree.
fn read_head(doc: &str) -> Result<Head, String> {
    let fast = match scan::scan(doc) {
        Scan::Head(head) => Some(head),
        Scan::Unsupported => None,
    };
    if fast.is_none() || cfg!(debug_assertions) {
        let full = full_head(doc)?;
        if let Some(fast) = fast {
            let key = |h: &Head| {
                let tenant = h
                    .labels
                    .iter()
                    .find(|(k, _)| k == "toolkit.fluxcd.io/tenant")
                    .cloned();
                (
                    h.api_version.clone(),
                    h.kind.clone(),
                    h.has_metadata,
                    h.name.clone(),
                    h.namespace.clone(),
                    tenant,
                )
            };
            if key(&fast) != key(&full) {
                return Err(format!(
                    "the fast reader read {fast:?}, the YAML parser {full:?}"
                ));
            }
        }
        return Ok(full);
    }
    Ok(fast.expect("checked above"))
}

fn full_head(doc: &str) -> Result<Head, String> {
    let parsed: FullHead =
        serde_saphyr::from_str(doc).map_err(|e| format!("does not parse back: {e}"))?;
    let metadata = parsed.metadata;
    Ok(Head {
        api_version: parsed.api_version,
        kind: parsed.kind,
        has_metadata: metadata.is_some(),
        name: metadata.as_ref().and_then(|m| m.name.clone()),
        namespace: metadata.as_ref().and_then(|m| m.namespace.clone()),
        labels: metadata
            .map(|m| m.labels.into_iter().collect())
            .unwrap_or_default(),
    })
}

/// Identity of an object: (kind, namespace, name).
pub(crate) type ObjectKey = (String, String, String);

/// Parses every document of every file back and checks its head: `apiVersion`, `kind` and
/// `metadata.name` present, no object twice, and, when `tenant` is given, the tenant label.
/// Returns the objects seen.
pub(crate) fn check_documents<'a>(
    files: impl IntoIterator<Item = (&'a String, &'a String)>,
    tenant: Option<&str>,
) -> Result<BTreeSet<ObjectKey>, Error> {
    let mut seen = BTreeSet::new();
    for (path, text) in files {
        if !path.ends_with(".yaml") {
            continue;
        }
        let is_kustomization = path.ends_with("/kustomization.yaml");
        for doc in text.split("\n---\n") {
            let invalid = |reason: String| Error::InvalidOutput {
                path: path.clone(),
                reason,
            };
            let head = read_head(doc).map_err(invalid)?;
            let api_version = head
                .api_version
                .ok_or_else(|| invalid("a document has no apiVersion".into()))?;
            let kind = head
                .kind
                .ok_or_else(|| invalid("a document has no kind".into()))?;
            if is_kustomization {
                if api_version != "kustomize.config.k8s.io/v1beta1" || kind != "Kustomization" {
                    return Err(invalid(
                        "kustomization.yaml is not a kustomize Kustomization".into(),
                    ));
                }
                continue;
            }
            if !head.has_metadata {
                return Err(invalid(format!("{kind} has no metadata")));
            }
            let name = head
                .name
                .ok_or_else(|| invalid(format!("{kind} has no metadata.name")))?;
            let namespace = head.namespace.unwrap_or_default();
            let tenant_label = head
                .labels
                .iter()
                .find(|(k, _)| k == "toolkit.fluxcd.io/tenant")
                .map(|(_, v)| v.as_str());
            if let Some(tenant) = tenant
                && tenant_label != Some(tenant)
            {
                return Err(invalid(format!(
                    "{kind} {name} does not carry the tenant label {tenant:?}"
                )));
            }
            if !seen.insert((kind.clone(), namespace.clone(), name.clone())) {
                return Err(invalid(format!(
                    "{kind} {namespace}/{name} is rendered twice"
                )));
            }
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_a_yaml_parser() {
        let nasty = "a\"b\\c\nd: e\n---\n- \u{7f}\u{85}\u{2028}\u{2029}\u{feff}\u{fffe}\t#x 'y' {z} [w] & * ! | > % @ `";
        let mut quoted = String::new();
        quote(nasty, &mut quoted);
        assert!(!quoted.contains('\n'));
        let back: String = serde_saphyr::from_str(&quoted).expect("quoted scalar parses");
        assert_eq!(back, nasty);
    }
}
