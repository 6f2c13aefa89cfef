//! Problems found in the intent, reported all at once.

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
        if self.path.is_empty() {
            write!(f, "{severity}: {}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{severity}: {}: {}: {}",
                self.file, self.path, self.message
            )
        }
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
