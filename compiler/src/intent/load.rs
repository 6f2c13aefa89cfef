//! Parse the files of an `intent/` tree into [`Intent`], reporting every problem at once.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::{
    API_VERSION, Intent, Metadata, Organization, OrganizationIntent, Platform, Project, Workspace,
    WorkspaceIntent,
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

/// Parses every file; a file that does not parse is reported and left out.
pub fn load(files: &IntentFiles) -> (Intent, Vec<Diagnostic>) {
    let mut intent = Intent::default();
    let mut diagnostics = Vec::new();
    for (path, text) in files {
        let file = format!("intent/{path}");
        let Some(slot) = classify(path) else {
            if path.ends_with(".yaml") || path.ends_with(".yml") {
                diagnostics.push(Diagnostic::error(
                    &file,
                    "",
                    "file is not part of the intent layout (platform.yaml, <org>/organization.yaml, \
                     <org>/<workspace>/workspace.yaml, <org>/<workspace>/projects/<project>.yaml)",
                ));
            }
            continue;
        };
        match slot {
            Slot::Platform => {
                intent.platform =
                    parse::<Platform>(&file, text, "Platform", None, &mut diagnostics).map(|d| d.0);
            }
            Slot::Organization(org) => {
                let parsed =
                    parse::<Organization>(&file, text, "Organization", Some(org), &mut diagnostics);
                org_entry(&mut intent, org).organization = parsed.map(|d| d.0);
            }
            Slot::Workspace(org, ws) => {
                let parsed =
                    parse::<Workspace>(&file, text, "Workspace", Some(ws), &mut diagnostics);
                ws_entry(&mut intent, org, ws).workspace = parsed.map(|d| d.0);
            }
            Slot::Project(org, ws, project) => {
                if let Some(parsed) =
                    parse::<Project>(&file, text, "Project", Some(project), &mut diagnostics)
                {
                    ws_entry(&mut intent, org, ws)
                        .projects
                        .insert(project.to_owned(), parsed.0);
                }
            }
        }
    }
    (intent, diagnostics)
}

fn org_entry<'a>(intent: &'a mut Intent, org: &str) -> &'a mut OrganizationIntent {
    intent
        .organizations
        .entry(org.to_owned())
        .or_insert_with(|| OrganizationIntent {
            organization: None,
            workspaces: BTreeMap::new(),
        })
}

fn ws_entry<'a>(intent: &'a mut Intent, org: &str, ws: &str) -> &'a mut WorkspaceIntent {
    org_entry(intent, org)
        .workspaces
        .entry(ws.to_owned())
        .or_insert_with(|| WorkspaceIntent {
            workspace: None,
            projects: BTreeMap::new(),
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
    let options = serde_saphyr::options! { with_snippet: false };
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            failed_at = Some(e.path().to_string());
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let path = failed_at.filter(|p| p != ".").unwrap_or_default();
        (path, e.to_string())
    })
}
