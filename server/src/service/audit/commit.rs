//! One commit, read for a person of one organization: what it changed in the intent, as a
//! unified diff per file, and which rendered Kubernetes objects it added, changed and removed,
//! per workspace and cluster. The console's commit page shows it.
//!
//! Authorization is the audit log's ([`super::scoped`]): an organization owner sees every
//! file of the organization; anyone else sees the files of the workspaces where they are in a
//! group; a commit that changed nothing the caller may see is not found. Files outside the
//! organization (the platform's, other organizations') are never shown.

use std::collections::BTreeMap;

use serde::Serialize;

use super::scoped::{HistoryError, visible};
use super::utc;
use crate::gitops::audit::scope_of_path;
use crate::gitops::change::{FileChange, read_change};
use crate::service::Services;
use crate::service::caller::Caller;

/// How an intent file or a rendered object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// It is new.
    Added,
    /// It existed and is different.
    Changed,
    /// It is gone.
    Removed,
}

/// One intent file's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntentDiff {
    /// Path in the repository (`intent/acme/shop/workspace.yaml`).
    pub path: String,
    /// How the file changed.
    pub change: ChangeKind,
    /// A unified diff (`---`, `+++`, `@@` hunks); empty when the content was left out.
    pub diff: String,
    /// The content was left out: binary, not UTF-8 or too large.
    pub omitted: bool,
}

/// One rendered object's change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// How it changed.
    pub change: ChangeKind,
    /// `kind` of the object.
    pub kind: String,
    /// `metadata.namespace`, when it has one.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// The rendered file it is in.
    pub path: String,
}

/// The rendered objects of one workspace on one cluster that a commit changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderedChange {
    /// The host cluster.
    pub cluster: String,
    /// The workspace; `None` for the organization's own files on the cluster.
    pub workspace: Option<String>,
    /// Objects added, changed and removed, in that order, then by kind, namespace and name.
    pub objects: Vec<ObjectChange>,
    /// Counts, in the same order.
    pub added: usize,
    /// Changed.
    pub changed: usize,
    /// Removed.
    pub removed: usize,
}

/// One commit as the commit page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitView {
    /// The full commit id.
    pub commit: String,
    /// The first ten digits.
    pub short: String,
    /// The first parent, when there is one.
    pub parent: Option<String>,
    /// The subject line.
    pub subject: String,
    /// Who acted: the `Hexabase-Actor` trailer, or the Git author.
    pub actor: String,
    /// The action kind (`create-project`), or `manual` for commits made by people.
    pub action: String,
    /// The workspace of the trailer, when the action has one.
    pub workspace: Option<String>,
    /// The request id, for commits made by Hexabase.
    pub request: Option<String>,
    /// The Git author, `Name <email>`.
    pub author: String,
    /// The Git committer.
    pub committer: String,
    /// Committer time, UTC (`2024-05-01 12:00:00`).
    pub time: String,
    /// Committer time, seconds since the Unix epoch.
    pub timestamp: i64,
    /// The intent files the caller may see, in path order.
    pub intent: Vec<IntentDiff>,
    /// The rendered objects, per cluster and workspace.
    pub rendered: Vec<RenderedChange>,
    /// Files of this commit the caller may not see, or that were too many to read.
    pub hidden_files: usize,
}

/// Commit `commit` (a full id or an abbreviation of at least 7 hex digits, on the branch) as
/// `caller` may see it in organization `org`.
pub async fn commit_view(
    services: &Services,
    caller: &Caller,
    org: &str,
    commit: &str,
) -> Result<CommitView, HistoryError> {
    let not_found = || HistoryError::NotFound(format!("commit {commit} in organization {org}"));
    let visible = visible(services, caller, org).await?;
    let repo = services.settings.git_repo();
    let branch = services.settings.git.branch.clone();
    let id = commit.to_owned();
    let change = tokio::task::spawn_blocking(move || {
        read_change(&repo, &branch, &id, &["intent/", "tenants/"])
    })
    .await
    .map_err(HistoryError::Interrupted)?
    .map_err(HistoryError::GitOps)?
    .ok_or_else(not_found)?;
    let total = change.files.len() + change.more;
    let files: Vec<&FileChange> = change
        .files
        .iter()
        .filter(|f| visible.allows_path(org, &f.path))
        .collect();
    if files.is_empty() {
        return Err(not_found());
    }
    let trailers = change.trailers.as_ref();
    Ok(CommitView {
        short: change.id.chars().take(10).collect(),
        commit: change.id.clone(),
        parent: change.parent.clone(),
        subject: change.subject.clone(),
        actor: trailers.map_or_else(|| change.author.clone(), |t| t.actor.clone()),
        action: trailers.map_or_else(|| super::MANUAL.to_owned(), |t| t.action.clone()),
        workspace: trailers
            .filter(|t| t.org.as_deref() == Some(org))
            .and_then(|t| t.workspace.clone()),
        request: trailers.map(|t| t.request.clone()),
        author: change.author.clone(),
        committer: change.committer.clone(),
        time: utc(change.time),
        timestamp: change.time,
        intent: files
            .iter()
            .filter(|f| f.path.starts_with("intent/"))
            .map(|f| intent_diff(f))
            .collect(),
        rendered: rendered(&files),
        hidden_files: total - files.len(),
    })
}

fn change_kind(file: &FileChange) -> ChangeKind {
    match (file.existed, file.exists) {
        (false, _) => ChangeKind::Added,
        (true, false) => ChangeKind::Removed,
        (true, true) => ChangeKind::Changed,
    }
}

fn intent_diff(file: &FileChange) -> IntentDiff {
    let (a, b) = (
        if file.existed {
            format!("a/{}", file.path)
        } else {
            "/dev/null".to_owned()
        },
        if file.exists {
            format!("b/{}", file.path)
        } else {
            "/dev/null".to_owned()
        },
    );
    let diff = if file.omitted {
        String::new()
    } else {
        let old = file.old.as_deref().unwrap_or_default();
        let new = file.new.as_deref().unwrap_or_default();
        similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .header(&a, &b)
            .to_string()
    };
    IntentDiff {
        path: file.path.clone(),
        change: change_kind(file),
        diff,
        omitted: file.omitted,
    }
}

/// (kind, namespace, name) of an object, and the object as parsed.
type Objects = BTreeMap<(String, Option<String>, String), serde_json::Value>;

/// The objects of a rendered YAML file, by identity; documents that are not objects
/// (kustomizations, empty documents, what does not parse) are left out.
fn objects(text: Option<&str>) -> Objects {
    let mut out = Objects::new();
    for doc in text.unwrap_or_default().split("\n---\n") {
        let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(doc) else {
            continue;
        };
        let field = |v: &serde_json::Value, key: &str| {
            v.get(key).and_then(|s| s.as_str()).map(str::to_owned)
        };
        let Some(kind) = field(&value, "kind") else {
            continue;
        };
        let Some(meta) = value.get("metadata") else {
            continue;
        };
        let Some(name) = field(meta, "name") else {
            continue;
        };
        if kind == "Kustomization"
            && field(&value, "apiVersion").as_deref() == Some("kustomize.config.k8s.io/v1beta1")
        {
            continue;
        }
        let namespace = field(meta, "namespace");
        out.insert((kind, namespace, name), value);
    }
    out
}

/// The rendered objects added, changed and removed by the `tenants/` files among `files`.
fn rendered(files: &[&FileChange]) -> Vec<RenderedChange> {
    let mut groups: BTreeMap<(String, Option<String>), Vec<ObjectChange>> = BTreeMap::new();
    for file in files {
        let Some(rest) = file.path.strip_prefix("tenants/") else {
            continue;
        };
        let Some((cluster, _)) = rest.split_once('/') else {
            continue;
        };
        let workspace = scope_of_path(&file.path).and_then(|(_, ws)| ws.map(str::to_owned));
        let before = objects(file.old.as_deref());
        let after = objects(file.new.as_deref());
        let entry = groups.entry((cluster.to_owned(), workspace)).or_default();
        let mut push = |change, (kind, namespace, name): &(String, Option<String>, String)| {
            entry.push(ObjectChange {
                change,
                kind: kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                path: file.path.clone(),
            });
        };
        for (key, value) in &after {
            match before.get(key) {
                None => push(ChangeKind::Added, key),
                Some(old) if old != value => push(ChangeKind::Changed, key),
                Some(_) => {}
            }
        }
        for key in before.keys().filter(|k| !after.contains_key(*k)) {
            push(ChangeKind::Removed, key);
        }
    }
    groups
        .into_iter()
        .filter(|(_, objects)| !objects.is_empty())
        .map(|((cluster, workspace), mut objects)| {
            objects.sort();
            let count = |c| objects.iter().filter(|o| o.change == c).count();
            RenderedChange {
                added: count(ChangeKind::Added),
                changed: count(ChangeKind::Changed),
                removed: count(ChangeKind::Removed),
                cluster,
                workspace,
                objects,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, old: Option<&str>, new: Option<&str>) -> FileChange {
        FileChange {
            path: path.to_owned(),
            old: old.map(str::to_owned),
            new: new.map(str::to_owned),
            existed: old.is_some(),
            exists: new.is_some(),
            omitted: false,
        }
    }

    #[test]
    fn rendered_objects_are_added_changed_and_removed_by_identity() {
        let old = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: n\ndata:\n  x: \"1\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: gone\n";
        let new = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: n\ndata:\n  x: \"2\"\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: new\n";
        let same = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- a.yaml\n";
        let files = [
            file("tenants/home/acme/shop/host/a.yaml", Some(old), Some(new)),
            file(
                "tenants/home/acme/shop/host/kustomization.yaml",
                None,
                Some(same),
            ),
        ];
        let refs: Vec<&FileChange> = files.iter().collect();
        let out = rendered(&refs);
        assert_eq!(out.len(), 1);
        let group = &out[0];
        assert_eq!(
            (group.cluster.as_str(), group.workspace.as_deref()),
            ("home", Some("shop"))
        );
        let seen: Vec<(ChangeKind, &str, &str)> = group
            .objects
            .iter()
            .map(|o| (o.change, o.kind.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (ChangeKind::Added, "ServiceAccount", "new"),
                (ChangeKind::Changed, "ConfigMap", "a"),
                (ChangeKind::Removed, "Secret", "gone"),
            ]
        );
        assert_eq!((group.added, group.changed, group.removed), (1, 1, 1));
    }

    #[test]
    fn intent_diffs_are_unified_with_dev_null_for_new_files() {
        let d = intent_diff(&file(
            "intent/acme/shop/workspace.yaml",
            None,
            Some("a: 1\n"),
        ));
        assert_eq!(d.change, ChangeKind::Added);
        assert!(
            d.diff
                .starts_with("--- /dev/null\n+++ b/intent/acme/shop/workspace.yaml\n"),
            "{}",
            d.diff
        );
        assert!(d.diff.contains("\n+a: 1\n"), "{}", d.diff);
    }
}
