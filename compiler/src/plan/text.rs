//! One rule for every string of the intent, whatever field it is in.
//!
//! The documents are walked generically (as their JSON values), so a field added to the
//! intent types later is covered without being listed here. Two things are checked:
//!
//! - characters: no C0 control character but tab (and newline in fields that are multi-line
//!   by nature), no DEL, no C1 control character, no Unicode noncharacter. `kubectl kustomize`
//!   turns U+0085 into a space and refuses U+009B, DEL and U+FFFE, so such a value would reach
//!   the cluster changed, or fail the whole Kustomization;
//! - sizes: a limit per field ([`limit`]), per object that becomes one Kubernetes object of its
//!   own ([`OBJECT_MAX`]), and per document ([`DOCUMENT_MAX`]), so every rendered object stays
//!   within what the API server accepts (256 KiB of annotations, about 1.5 MiB per object).
//!
//! `docs/intent-limits.md` lists the figures.

use serde::Serialize;
use serde_json::Value;

use crate::diagnostic::Sink;

/// Largest intent document, as compact JSON.
pub(crate) const DOCUMENT_MAX: usize = 1024 * 1024;

/// Largest list item that becomes a Kubernetes object of its own (a Role, a CronJob, a
/// Function), as compact JSON: well below the API server's object limit even when the
/// server's managed fields double it.
pub(crate) const OBJECT_MAX: usize = 256 * 1024;

/// Lists whose items are named by their `name` in paths, as the other checks name them.
const NAMED_LISTS: &[&str] = &["roles", "cronJobs", "functions"];

/// Lists whose items each become one Kubernetes object.
const OBJECT_LISTS: &[&str] = &["roles", "cronJobs", "functions"];

/// Fields holding URLs.
const URL_FIELDS: &[&str] = &[
    "url",
    "issuerUrl",
    "apiServer",
    "repository",
    "remoteWriteUrl",
    "lokiUrl",
];

/// How long a field may be, and whether it may hold newlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    /// The most characters (for [`Unit::Characters`]) or UTF-8 bytes.
    pub(crate) max: usize,
    /// What `max` counts.
    pub(crate) unit: Unit,
    /// A newline is allowed.
    pub(crate) multi_line: bool,
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Unicode scalar values: for text people read.
    Characters,
    /// UTF-8 bytes: for what programs read.
    Bytes,
}

/// The limit of the field at `path` (keys from the document root; list items as `None`).
pub(crate) fn limit(path: &[Option<&str>]) -> Limit {
    let key = |back: usize| {
        path.len()
            .checked_sub(back + 1)
            .and_then(|i| path[i])
            .unwrap_or("")
    };
    let item = path.last().is_some_and(Option::is_none);
    let (max, unit, multi_line) = match (key(0), key(1), key(2)) {
        ("displayName", ..) => (256, Unit::Characters, false),
        // Entrypoint, arguments and environment values: multi-line scripts are common; Linux
        // refuses a single argument or variable of 128 KiB or more.
        ("", "command" | "args", _) if item => (32 * 1024, Unit::Bytes, true),
        ("value", "", "env") => (32 * 1024, Unit::Bytes, true),
        (field, ..) if URL_FIELDS.contains(&field) => (2048, Unit::Bytes, false),
        _ => (1024, Unit::Bytes, false),
    };
    Limit {
        max,
        unit,
        multi_line,
    }
}

/// Why `c` may not appear in intent text, or `None` when it may.
pub(crate) fn refused_char(c: char, multi_line: bool) -> Option<&'static str> {
    let u = u32::from(c);
    match c {
        '\t' => None,
        '\n' if multi_line => None,
        '\n' => Some("a line break"),
        '\r' => Some("a carriage return"),
        '\u{0}'..='\u{1f}' => Some("a control character"),
        '\u{7f}' => Some("the control character DEL"),
        '\u{80}'..='\u{9f}' => Some("a C1 control character"),
        _ if (0xfdd0..=0xfdef).contains(&u) || u & 0xfffe == 0xfffe => {
            Some("a Unicode noncharacter")
        }
        _ => None,
    }
}

/// Checks every string (and map key) of `document`, reporting with paths from its root.
pub(crate) fn check_document<T: Serialize>(sink: &mut Sink<'_>, document: &T) {
    let value = serde_json::to_value(document).expect("intent documents are plain data");
    let size = json_size(&value);
    if size > DOCUMENT_MAX {
        sink.error(
            "",
            format!(
                "the document is {size} bytes as JSON; an intent document may be at most {} KiB",
                DOCUMENT_MAX / 1024
            ),
        );
    }
    let mut keys = Vec::new();
    walk(sink, &value, &mut String::new(), &mut keys);
}

fn json_size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

fn walk<'v>(
    sink: &mut Sink<'_>,
    value: &'v Value,
    path: &mut String,
    keys: &mut Vec<Option<&'v str>>,
) {
    match value {
        Value::String(text) => string(sink, path, text, limit(keys)),
        Value::Array(items) => {
            let list = keys.last().copied().flatten().unwrap_or("");
            for (i, item) in items.iter().enumerate() {
                let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                let key = if NAMED_LISTS.contains(&list) {
                    super::display_key(name, i)
                } else {
                    i.to_string()
                };
                let len = path.len();
                path.push_str(&format!("[{key}]"));
                if OBJECT_LISTS.contains(&list) {
                    let size = json_size(item);
                    if size > OBJECT_MAX {
                        sink.error(
                            path.clone(),
                            format!(
                                "is {size} bytes as JSON; one item of {list} becomes one \
                                 Kubernetes object and may be at most {} KiB",
                                OBJECT_MAX / 1024
                            ),
                        );
                    }
                }
                keys.push(None);
                walk(sink, item, path, keys);
                keys.pop();
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if let Some(why) = key.chars().find_map(|c| refused_char(c, false)) {
                    sink.error(
                        path.clone(),
                        format!("the key {key:?} contains {why}; keys may not hold any"),
                    );
                    continue;
                }
                // Map keys that are not field names (labels, node selectors) go in brackets.
                let in_map = matches!(
                    keys.last().copied().flatten(),
                    Some("labels" | "nodeSelector")
                );
                if in_map || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    path.push_str(&format!("[{key}]"));
                } else {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                keys.push(Some(key));
                walk(sink, item, path, keys);
                keys.pop();
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn string(sink: &mut Sink<'_>, path: &str, text: &str, limit: Limit) {
    if let Some((at, c, why)) = text
        .chars()
        .enumerate()
        .find_map(|(i, c)| refused_char(c, limit.multi_line).map(|why| (i, c, why)))
    {
        let allowed = if limit.multi_line {
            "tab and newline are the only control characters this field may hold"
        } else {
            "tab is the only control character this field may hold"
        };
        sink.error(
            path,
            format!(
                "contains {why} (U+{:04X}) at character {}; {allowed}",
                u32::from(c),
                at + 1
            ),
        );
    }
    let (size, unit) = match limit.unit {
        Unit::Characters => (text.chars().count(), "characters"),
        Unit::Bytes => (text.len(), "bytes"),
    };
    if size > limit.max {
        sink.error(
            path,
            format!("may be at most {} {unit}, is {size}", limit.max),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused() {
        for c in [
            '\0', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{fffe}', '\u{ffff}',
        ] {
            assert!(refused_char(c, true).is_some(), "{c:?}");
        }
        for c in ['\u{fdd0}', '\u{1fffe}', '\u{10ffff}'] {
            assert_eq!(
                refused_char(c, false),
                Some("a Unicode noncharacter"),
                "{c:?}"
            );
        }
        for c in [
            '\t',
            'a',
            ' ',
            '\u{a0}',
            '\u{2028}',
            '\u{feff}',
            '\u{1f600}',
        ] {
            assert_eq!(refused_char(c, false), None, "{c:?}");
        }
        assert_eq!(refused_char('\n', true), None);
        assert!(refused_char('\n', false).is_some());
    }

    fn problems(document: &serde_json::Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut sink = Sink {
            file: "intent/a/b/projects/p.yaml",
            out: &mut out,
        };
        check_document(&mut sink, document);
        out.iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }

    #[test]
    fn sizes_are_limited_per_field_object_and_document() {
        let display = |n: usize| serde_json::json!({"spec": {"displayName": "é".repeat(n)}});
        assert!(problems(&display(256)).is_empty());
        assert_eq!(
            problems(&display(257)),
            ["spec.displayName: may be at most 256 characters, is 257"]
        );
        let arg = "x".repeat(32 * 1024);
        let job = |args: Vec<&str>| serde_json::json!({"spec": {"cronJobs": [{"name": "nightly", "args": args}]}});
        assert!(problems(&job(vec![&arg])).is_empty());
        let long = format!("{arg}x");
        assert_eq!(
            problems(&job(vec![&long])),
            ["spec.cronJobs[nightly].args[0]: may be at most 32768 bytes, is 32769"]
        );
        let found = problems(&job(vec![&arg; 9]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.cronJobs[nightly]: is 29"),
            "{found:?}"
        );
        let jobs: Vec<serde_json::Value> = (0..40)
            .map(|i| serde_json::json!({"name": format!("j{i}"), "args": [&arg]}))
            .collect();
        let found = problems(&serde_json::json!({"spec": {"cronJobs": jobs}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(": the document is"), "{found:?}");
        let key = serde_json::json!({"metadata": {"labels": {"a\u{85}": "b"}}});
        assert_eq!(
            problems(&key),
            [
                "metadata.labels: the key \"a\\u{85}\" contains a C1 control character; keys may not hold any"
            ]
        );
    }

    #[test]
    fn limits_follow_the_field() {
        let l = |p: &[Option<&str>]| limit(p);
        assert_eq!(l(&[Some("spec"), Some("displayName")]).max, 256);
        let arg = l(&[Some("spec"), Some("cronJobs"), None, Some("args"), None]);
        assert!(arg.multi_line);
        assert_eq!(arg.max, 32 * 1024);
        let value = l(&[
            Some("spec"),
            Some("functions"),
            None,
            Some("env"),
            None,
            Some("value"),
        ]);
        assert!(value.multi_line);
        let name = l(&[
            Some("spec"),
            Some("functions"),
            None,
            Some("env"),
            None,
            Some("name"),
        ]);
        assert!(!name.multi_line);
        assert_eq!(l(&[Some("spec"), Some("git"), Some("url")]).max, 2048);
        assert_eq!(l(&[Some("spec"), Some("git"), Some("branch")]).max, 1024);
    }
}
