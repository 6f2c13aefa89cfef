//! Parse the files of an `intent/` tree into [`Intent`], reporting every problem at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{
    API_VERSION, Intent, Metadata, Organization, OrganizationIntent, Platform, Project,
    ProjectFile, Workspace, WorkspaceIntent,
};
use crate::diagnostic::Diagnostic;

/// The intent tree as text: path relative to `intent/` (`acme/dev/workspace.yaml`) to contents.
/// The caller reads the files; the compiler never does.
pub type IntentFiles = BTreeMap<String, String>;

/// Where a file sits in the intent layout.
enum Slot<'a> {
    Platform,
    Organization(&'a str),
    Workspace(&'a str, &'a str),
    Project(&'a str, &'a str, &'a str),
}

fn classify(path: &str) -> Option<Slot<'_>> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["platform.yaml"] => Some(Slot::Platform),
        [org, "organization.yaml"] => Some(Slot::Organization(org)),
        [org, ws, "workspace.yaml"] => Some(Slot::Workspace(org, ws)),
        [org, ws, "projects", file] => file
            .strip_suffix(".yaml")
            .map(|project| Slot::Project(org, ws, project)),
        _ => None,
    }
}

/// The largest intent file the loader parses. Documents are held to 1 MiB as JSON by the
/// compiler; this guard keeps a huge file from being parsed at all.
pub(crate) const FILE_MAX: usize = 4 * 1024 * 1024;

/// Parses every file; a file that does not parse is reported and left out.
pub fn load(files: &IntentFiles) -> (Intent, Vec<Diagnostic>) {
    let mut intent = Intent::default();
    let mut diagnostics = Vec::new();
    for (path, text) in files {
        diagnostics.extend(intent.set_file(path, Some(text)));
    }
    (intent, diagnostics)
}

impl Intent {
    /// Sets the file at `path` (relative to `intent/`) to `text`, or removes it (`None`),
    /// and returns the problems of that file. The rest of the intent is untouched, so a
    /// caller can follow a tree from commit to commit by its changed files alone.
    pub fn set_file(&mut self, path: &str, text: Option<&str>) -> Vec<Diagnostic> {
        let mut diagnostics = Vec::new();
        let file = format!("intent/{path}");
        self.unreadable.remove(path);
        let Some(slot) = classify(path) else {
            if text.is_some() && (path.ends_with(".yaml") || path.ends_with(".yml")) {
                diagnostics.push(Diagnostic::error(
                    &file,
                    "",
                    "file is not part of the intent layout (platform.yaml, <org>/organization.yaml, \
                     <org>/<workspace>/workspace.yaml, <org>/<workspace>/projects/<project>.yaml)",
                ));
            }
            return diagnostics;
        };
        let text = match text {
            Some(t) if t.len() > FILE_MAX => {
                diagnostics.push(Diagnostic::error(
                    &file,
                    "",
                    format!(
                        "the file is {} bytes; an intent file may be at most {} MiB",
                        t.len(),
                        FILE_MAX / (1024 * 1024)
                    ),
                ));
                None
            }
            other => other,
        };
        match slot {
            Slot::Platform => {
                self.platform = text
                    .and_then(|t| parse::<Platform>(&file, t, "Platform", None, &mut diagnostics))
                    .map(|d| Arc::new(d.0));
            }
            Slot::Organization(org) => {
                let parsed = text.and_then(|t| {
                    parse::<Organization>(&file, t, "Organization", Some(org), &mut diagnostics)
                });
                Arc::make_mut(org_entry(self, org)).organization = parsed.map(|d| d.0);
                self.prune(org, None);
            }
            Slot::Workspace(org, ws) => {
                let parsed = text.and_then(|t| {
                    parse::<Workspace>(&file, t, "Workspace", Some(ws), &mut diagnostics)
                });
                Arc::make_mut(ws_entry(self, org, ws)).workspace = parsed.map(|d| d.0);
                self.prune(org, Some(ws));
            }
            Slot::Project(org, ws, project) => {
                let parsed = text.and_then(|t| {
                    parse::<Project>(&file, t, "Project", Some(project), &mut diagnostics)
                });
                let projects = &mut Arc::make_mut(ws_entry(self, org, ws)).projects;
                match parsed {
                    Some(p) => projects.insert(project.to_owned(), ProjectFile::new(&p.0)),
                    None => projects.remove(project),
                };
                self.prune(org, Some(ws));
            }
        }
        if !diagnostics.is_empty() {
            self.unreadable.insert(path.to_owned());
        }
        diagnostics
    }

    /// Records that the caller found a symbolic link at `path` (relative to `intent/`; a file
    /// or a folder). Links are never followed: what was loaded from the path is dropped and
    /// the link is reported, so a tree cannot pull in files from elsewhere unnoticed.
    pub fn set_link(&mut self, path: &str) -> Vec<Diagnostic> {
        let mut diagnostics = self.set_file(path, None);
        self.unreadable.insert(path.to_owned());
        diagnostics.push(Diagnostic::error(
            format!("intent/{path}"),
            "",
            "is a symbolic link; intent files and folders must be regular files and folders \
             (links are not followed)",
        ));
        diagnostics
    }

    /// Drops a workspace or organization entry that no file describes any more.
    fn prune(&mut self, org: &str, ws: Option<&str>) {
        let Some(o) = self.organizations.get_mut(org) else {
            return;
        };
        if let Some(ws) = ws
            && o.workspaces
                .get(ws)
                .is_some_and(|w| w.workspace.is_none() && w.projects.is_empty())
        {
            Arc::make_mut(o).workspaces.remove(ws);
        }
        if o.organization.is_none() && o.workspaces.is_empty() {
            self.organizations.remove(org);
        }
    }
}

/// Writes an intent document as YAML that [`load`] reads back to the same value.
pub fn to_yaml<T: serde::Serialize>(document: &T) -> String {
    serde_saphyr::to_string(document).expect("intent documents are plain data and always serialize")
}

fn org_entry<'a>(intent: &'a mut Intent, org: &str) -> &'a mut Arc<OrganizationIntent> {
    intent
        .organizations
        .entry(org.to_owned())
        .or_insert_with(|| {
            Arc::new(OrganizationIntent {
                organization: None,
                workspaces: BTreeMap::new(),
            })
        })
}

fn ws_entry<'a>(intent: &'a mut Intent, org: &str, ws: &str) -> &'a mut Arc<WorkspaceIntent> {
    Arc::make_mut(org_entry(intent, org))
        .workspaces
        .entry(ws.to_owned())
        .or_insert_with(|| {
            Arc::new(WorkspaceIntent {
                workspace: None,
                projects: BTreeMap::new(),
            })
        })
}

/// Access to the common header of every document kind.
trait Document {
    fn header(&self) -> (&str, &str, &Metadata);
}

macro_rules! impl_document {
    ($($t:ty),*) => {$(
        impl Document for $t {
            fn header(&self) -> (&str, &str, &Metadata) {
                (&self.api_version, &self.kind, &self.metadata)
            }
        }
    )*};
}
impl_document!(Platform, Organization, Workspace, Project);

/// Wrapper so `parse` can return the typed document.
struct Parsed<T>(T);

fn parse<T: DeserializeOwned + Document>(
    file: &str,
    text: &str,
    kind: &str,
    expected_name: Option<&str>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Parsed<T>> {
    let doc: T = match parse_yaml(text) {
        Ok(doc) => doc,
        Err((path, message)) => {
            diagnostics.push(Diagnostic::error(file, path, message));
            return None;
        }
    };
    let (api_version, doc_kind, metadata) = doc.header();
    let before = diagnostics.len();
    if api_version != API_VERSION {
        diagnostics.push(Diagnostic::error(
            file,
            "apiVersion",
            format!("must be {API_VERSION}, not {api_version:?}"),
        ));
    }
    if doc_kind != kind {
        diagnostics.push(Diagnostic::error(
            file,
            "kind",
            format!("a file at this place must be a {kind}, not {doc_kind:?}"),
        ));
    }
    if let Some(expected) = expected_name
        && metadata.name != expected
    {
        diagnostics.push(Diagnostic::error(
            file,
            "metadata.name",
            format!(
                "must equal the file or folder name {expected:?}, not {:?}",
                metadata.name
            ),
        ));
    }
    (diagnostics.len() == before).then_some(Parsed(doc))
}

/// Parses one YAML document strictly into `T`; on failure returns the field path and the reason.
pub(crate) fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    let mut failed_at: Option<String> = None;
    let options = serde_saphyr::options! {
        with_snippet: false,
        // `!Secret value` or `!Secret key: value` would otherwise be read as the plain value.
        reject_unsupported_tags: true,
        reject_tagged_field_names: true,
    };
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            failed_at = Some(e.path().to_string());
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let path = failed_at.filter(|p| p != ".").unwrap_or_default();
        (
            path,
            plain_words(&e.render_with_formatter(&serde_saphyr::UserMessageFormatter)),
        )
    })
}

/// Rewrites the parser's and serde's wording into plain words: `invalid type: null, expected
/// a string` becomes `expected a string, found null`, `invalid u16` says which numbers fit.
fn plain_words(message: &str) -> String {
    const PLAIN: &[(&str, &str)] = &[
        ("null is not allowed here", "expected a value, found null"),
        ("expected sequence start", "expected a list"),
        (
            "expected mapping start",
            "expected a mapping (key: value lines)",
        ),
        ("expected string scalar", "expected a string"),
        ("invalid boolean", "expected true or false"),
        ("invalid u8", "expected a whole number from 0 to 255"),
        ("invalid u16", "expected a whole number from 0 to 65535"),
        (
            "invalid u32",
            "expected a whole number from 0 to 4294967295",
        ),
        (
            "invalid u64",
            "expected a whole number from 0 to 18446744073709551615",
        ),
        (
            "invalid i32",
            "expected a whole number from -2147483648 to 2147483647",
        ),
        ("invalid i64", "expected a whole number"),
        ("invalid f64", "expected a number"),
    ];
    let (message, at) = match message.rfind(" at line ") {
        Some(i) => message.split_at(i),
        None => (message, ""),
    };
    let plain = PLAIN
        .iter()
        .find(|(words, _)| message == *words)
        .map(|(_, plain)| (*plain).to_owned());
    let plain = plain.or_else(|| {
        let tag = message.strip_prefix("unsupported tag ")?;
        Some(format!(
            "the YAML tag {tag} is not supported: intent files hold plain values"
        ))
    });
    let plain = plain.or_else(|| {
        ["invalid type: ", "invalid value: ", "invalid length "]
            .iter()
            .find_map(|prefix| {
                let rest = message.strip_prefix(prefix)?;
                let (found, expected) = rest.rsplit_once(", expected ")?;
                Some(format!("expected {expected}, found {found}"))
            })
    });
    let text = plain.as_deref().unwrap_or(message);
    match at.strip_prefix(" at ") {
        Some(place) => format!("{text} ({place})"),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(path: &str, text: &str) -> Vec<String> {
        let mut intent = Intent::default();
        intent
            .set_file(path, Some(text))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const PROJECT: &str =
        "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: web\n";

    #[test]
    fn custom_tags_are_refused() {
        for spec in [
            "spec:\n  displayName: !Secret shop\n",
            "spec:\n  !Secret displayName: shop\n",
            "spec: !Secret\n  displayName: shop\n",
        ] {
            let found = problems("acme/dev/projects/web.yaml", &format!("{PROJECT}{spec}"));
            assert_eq!(found.len(), 1, "{spec}: {found:?}");
            assert!(found[0].contains("Secret"), "{found:?}");
        }
        assert!(
            problems(
                "acme/dev/projects/web.yaml",
                &format!("{PROJECT}spec:\n  displayName: !!str 1\n")
            )
            .is_empty()
        );
    }

    #[test]
    fn messages_are_plain_words() {
        let found = problems(
            "acme/dev/projects/web.yaml",
            &format!("{PROJECT}spec:\n  cronJobs:\n    - name: ~\n"),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("spec.cronJobs[0].name: expected a value, found null"),
            "{found:?}"
        );
        assert!(
            !found[0].contains("Option<") && !found[0].contains("deserialize"),
            "{found:?}"
        );
        let found = problems(
            "acme/dev/projects/web.yaml",
            &format!(
                "{PROJECT}spec:\n  functions:\n    - name: f\n      image: x\n      port: web\n"
            ),
        );
        assert!(
            found[0].contains("expected a whole number from 0 to 65535"),
            "{found:?}"
        );
    }

    #[test]
    fn a_name_mismatch_is_not_also_a_missing_file() {
        let mut intent = Intent::default();
        let found = intent.set_file(
            "acme/dev/workspace.yaml",
            Some("apiVersion: hexabase.ai/v1alpha1\nkind: Workspace\nmetadata:\n  name: prod\nspec:\n  plan: p\n  cluster: c\n"),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(intent.unreadable.contains("acme/dev/workspace.yaml"));
        intent.set_file("acme/dev/workspace.yaml", None);
        assert!(intent.unreadable.is_empty());
    }

    #[test]
    fn links_are_refused_and_drop_what_was_loaded() {
        let mut intent = Intent::default();
        let text = format!("{PROJECT}spec: {{}}\n");
        assert!(
            intent
                .set_file("acme/dev/projects/web.yaml", Some(&text))
                .is_empty()
        );
        let found = intent.set_link("acme/dev/projects/web.yaml");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("symbolic link"));
        assert!(intent.organizations.is_empty());
    }

    #[test]
    fn huge_files_are_not_parsed() {
        let text = format!(
            "{PROJECT}spec:\n  displayName: \"{}\"\n",
            "x".repeat(FILE_MAX)
        );
        let found = problems("acme/dev/projects/web.yaml", &text);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("at most 4 MiB"), "{found:?}");
    }
}
