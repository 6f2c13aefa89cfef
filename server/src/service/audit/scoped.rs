//! An organization's history as one person may read it: the audit log cut to what they may
//! see, for the console's History pages (the same rule as `GET /api/v1/orgs/{org}/audit`).
//!
//! An organization owner sees every record of the organization; anyone else sees the records
//! of the workspaces where they are in a group, and nothing of the organization itself; the
//! `orgs` and `workspaces` lists of each record are cut to what they may see. A billing
//! manager who is in no workspace group is refused; a stranger is told nothing exists.

use std::collections::BTreeSet;

use super::{AuditEntry, AuditError, AuditQuery, TimeSpec, audit};
use crate::gitops::GitOpsError;
use crate::gitops::audit::scope_of_path;
use crate::service::caller::Caller;
use crate::service::{FieldProblem, Services};
use crate::store::{OrgRole, StoreError};

/// The most records one page of history holds.
pub const MAX_LIMIT: usize = 10_000;
/// Records per page when no limit is given.
pub const DEFAULT_LIMIT: usize = 100;

/// The history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// No such organization for the caller, or nothing in it they may see.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller holds an organization role that does not include reading the history.
    #[error("the history is for organization owners and workspace members")]
    Forbidden,
    /// A filter is invalid; every problem names its field.
    #[error("invalid history filter")]
    Invalid(Vec<FieldProblem>),
    /// The store failed.
    #[error("failed to read who may see the history")]
    Store(#[source] StoreError),
    /// Git failed while reading one commit.
    #[error("failed to read the commit")]
    GitOps(#[source] GitOpsError),
    /// The audit log could not be read.
    #[error("failed to read the audit log")]
    Audit(#[source] AuditError),
    /// The blocking read did not finish.
    #[error("the history read was interrupted")]
    Interrupted(#[source] tokio::task::JoinError),
}

/// What a person may see of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// All of it (an owner).
    Organization,
    /// These workspaces only.
    Workspaces(BTreeSet<String>),
}

impl Visible {
    /// Whether the repository file `path` is one the person may see in organization `org`.
    pub fn allows_path(&self, org: &str, path: &str) -> bool {
        match scope_of_path(path) {
            Some((o, ws)) if o == org => self.allows_workspace(ws),
            _ => false,
        }
    }

    /// Whether workspace `ws` (`None`: the organization's own files) is visible.
    pub fn allows_workspace(&self, ws: Option<&str>) -> bool {
        match (self, ws) {
            (Self::Organization, _) => true,
            (Self::Workspaces(set), Some(ws)) => set.contains(ws),
            (Self::Workspaces(_), None) => false,
        }
    }
}

/// What `caller` may see of organization `org`'s history.
pub async fn visible(
    services: &Services,
    caller: &Caller,
    org: &str,
) -> Result<Visible, HistoryError> {
    let role = match services.store.org_role(org, &caller.user.id).await {
        Ok(role) => Some(role),
        Err(StoreError::NotFound) => None,
        Err(other) => return Err(HistoryError::Store(other)),
    };
    if role == Some(OrgRole::Owner) {
        return Ok(Visible::Organization);
    }
    let workspaces: BTreeSet<String> = services
        .store
        .audit_workspaces(org, &caller.user.id)
        .await
        .map_err(HistoryError::Store)?
        .into_iter()
        .collect();
    match (workspaces.is_empty(), role) {
        (false, _) => Ok(Visible::Workspaces(workspaces)),
        (true, Some(_)) => Err(HistoryError::Forbidden),
        (true, None) => Err(HistoryError::NotFound(format!("organization {org}"))),
    }
}

/// The filters of a history page, as typed (`hb audit`'s flags).
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only this workspace of the organization.
    pub workspace: Option<String>,
    /// Only commits by this actor: `Name <email>`, the name, or the email.
    pub actor: Option<String>,
    /// Only this action kind (`create-project`, `manual`).
    pub action: Option<String>,
    /// At or after: RFC 3339, or a UTC date.
    pub since: Option<String>,
    /// At or before: RFC 3339, or a UTC date (the whole day).
    pub until: Option<String>,
    /// At most this many records (default [`DEFAULT_LIMIT`]).
    pub limit: Option<usize>,
}

/// Organization `org`'s history, newest first, as `caller` may see it.
pub async fn org_history(
    services: &Services,
    caller: &Caller,
    org: &str,
    filter: HistoryFilter,
) -> Result<Vec<AuditEntry>, HistoryError> {
    let visible = visible(services, caller, org).await?;
    let mut problems = Vec::new();
    let mut time = |field: &str, value: Option<&str>| {
        value.and_then(|text| match text.parse::<TimeSpec>() {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(FieldProblem::new(field, e.to_string()));
                None
            }
        })
    };
    let since = time("since", filter.since.as_deref());
    let until = time("until", filter.until.as_deref());
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        problems.push(FieldProblem::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    if let Some(ws) = &filter.workspace
        && (ws.is_empty() || ws.contains('/'))
    {
        problems.push(FieldProblem::new(
            "workspace",
            "must be a workspace name of the organization",
        ));
    }
    if !problems.is_empty() {
        return Err(HistoryError::Invalid(problems));
    }
    if let Some(ws) = &filter.workspace
        && !visible.allows_workspace(Some(ws))
    {
        return Err(HistoryError::NotFound(format!("workspace {org}/{ws}")));
    }
    let everything = visible == Visible::Organization;
    let query = AuditQuery {
        org: Some(org.to_owned()),
        workspace: filter.workspace,
        actor: filter.actor,
        action: filter.action,
        since,
        until,
        // A member's records are filtered below, so the limit applies after that.
        limit: everything.then_some(limit),
    };
    let repo = services.settings.git_repo();
    let branch = services.settings.git.branch.clone();
    let (entries, refresh) = tokio::task::spawn_blocking(move || audit(&repo, &branch, &query))
        .await
        .map_err(HistoryError::Interrupted)?
        .map_err(HistoryError::Audit)?;
    if let Some(error) = refresh.store_error {
        tracing::warn!(error = %crate::errors::ErrorChain(&error), "the audit index was not saved");
    }
    let prefix = format!("{org}/");
    Ok(entries
        .into_iter()
        .filter(|e| {
            everything
                || (e.org.as_deref() == Some(org)
                    && visible.allows_workspace(e.workspace.as_deref()))
        })
        .take(limit)
        .map(|mut e| {
            e.orgs.retain(|o| o == org);
            e.workspaces.retain(|full| {
                full.strip_prefix(&prefix)
                    .is_some_and(|ws| visible.allows_workspace(Some(ws)))
            });
            e
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_see_their_workspaces_only() {
        let member = Visible::Workspaces(BTreeSet::from(["shop".to_owned()]));
        assert!(member.allows_path("acme", "intent/acme/shop/workspace.yaml"));
        assert!(member.allows_path("acme", "tenants/home/acme/shop/host/a.yaml"));
        assert!(!member.allows_path("acme", "intent/acme/other/workspace.yaml"));
        assert!(!member.allows_path("acme", "intent/acme/organization.yaml"));
        assert!(!member.allows_path("acme", "intent/globex/shop/workspace.yaml"));
        assert!(!member.allows_path("acme", "intent/platform.yaml"));
        assert!(Visible::Organization.allows_path("acme", "intent/acme/organization.yaml"));
        assert!(!Visible::Organization.allows_path("acme", "tenants/home/kustomization.yaml"));
    }
}
