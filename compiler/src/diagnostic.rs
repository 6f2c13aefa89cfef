//! Problems found in the intent, reported all at once.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The intent cannot be compiled.
    Error,
    /// Compiled, but probably not what was meant.
    Warning,
}

/// One problem in the intent: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// File, relative to the repository root (`intent/acme/dev/projects/web.yaml`).
    pub file: String,
    /// Path inside the document (`spec.roles[deployer].rules[0].verbs[1]`); empty for the whole file.
    pub path: String,
    /// Error or warning.
    pub severity: Severity,
    /// Plain words, lowercase, no trailing period.
    pub message: String,
}

impl Diagnostic {
    /// An error at `file`/`path`.
    pub fn error(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            path: path.into(),
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let (file, path) = (printable(&self.file), printable(&self.path));
        if self.path.is_empty() {
            write!(f, "{severity}: {file}: {}", self.message)
        } else {
            write!(f, "{severity}: {file}: {path}: {}", self.message)
        }
    }
}

/// `text` as it is, or quoted with Rust's escapes when it holds a character a terminal would
/// act on or not show (a line break, a control or format character): file names and map keys
/// come from the tree and may hold anything.
pub fn printable(text: &str) -> Cow<'_, str> {
    let plain = text
        .chars()
        .all(|c| matches!(c, '"' | '\\' | '\'') || c.escape_debug().count() == 1);
    if plain {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{text:?}"))
    }
}

/// Collects diagnostics for one file, with a path prefix.
pub(crate) struct Sink<'a> {
    pub(crate) file: &'a str,
    pub(crate) out: &'a mut Vec<Diagnostic>,
}

impl Sink<'_> {
    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Diagnostic::error(self.file, path, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_escaped_when_printed() {
        let d = Diagnostic::error("intent/acme/de\nv/workspace.yaml", "spec.x", "bad");
        assert_eq!(
            d.to_string(),
            "error: \"intent/acme/de\\nv/workspace.yaml\": spec.x: bad"
        );
        for name in ["a\u{85}b", "a\u{202e}b", "a\u{1b}[31mb", "a\rb"] {
            assert!(printable(name).starts_with('"'), "{name:?}");
        }
        for name in ["intent/acme/dev/workspace.yaml", "caf\u{e9}", "a b", "a\"b"] {
            assert_eq!(printable(name), name);
        }
    }
}
