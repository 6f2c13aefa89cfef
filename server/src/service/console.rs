//! What the web console's pages show that the API has no single answer for: each page's
//! data in one call and a constant number of SQL queries, whatever the number of
//! workspaces (the dashboard reads the workspaces from the intent at the head and the last
//! change of each from the audit index, never one query per row).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Services;
use super::audit::{AuditEntry, AuditError, AuditQuery, audit};
use super::caller::Caller;
use super::tenancy::{self, TenancyError};
use crate::store::{OrgRole, StoreError};

/// Why a console page could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not found, not allowed or invalid (the tenancy rules).
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The audit index could not be read.
    #[error("the audit index could not be read")]
    Audit(#[source] AuditError),
    /// The audit task did not finish.
    #[error("the audit task was interrupted")]
    Interrupted(#[source] tokio::task::JoinError),
}

/// One organization of the person, for the switcher.
#[derive(Debug, Clone, Serialize)]
pub struct OrgLink {
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// The person's role there (`owner`, `billing`), if any.
    pub role: Option<String>,
}

/// The last change of a workspace: who, what, when.
#[derive(Debug, Clone, Serialize)]
pub struct LastChange {
    /// The commit id.
    pub commit: String,
    /// Who acted.
    pub actor: String,
    /// The commit's subject.
    pub subject: String,
    /// When, RFC 3339.
    pub time: String,
}

impl From<&AuditEntry> for LastChange {
    fn from(entry: &AuditEntry) -> Self {
        Self {
            commit: entry.commit.clone(),
            actor: entry.actor.clone(),
            subject: entry.subject.clone(),
            time: entry.time.clone(),
        }
    }
}

/// One workspace row of the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceRow {
    /// Its slug.
    pub name: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// Its plan.
    pub plan: String,
    /// Its host cluster.
    pub cluster: String,
    /// How many projects it has.
    pub projects: i64,
    /// Its last change, if the audit index has one.
    pub last: Option<LastChange>,
}

/// The dashboard of one organization.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Every organization of the person.
    pub orgs: Vec<OrgLink>,
    /// The organization shown (`None`: the person has none).
    pub org: Option<OrgLink>,
    /// Whether the person owns it (may create workspaces).
    pub owner: bool,
    /// Its workspaces the person may see, by name.
    pub workspaces: Vec<WorkspaceRow>,
    /// The commit named by the page's `commit` parameter, when it is one of this
    /// organization's.
    pub flash: Option<LastChange>,
}

fn role_name(role: OrgRole) -> String {
    match role {
        OrgRole::Owner => "owner".to_owned(),
        OrgRole::Billing => "billing".to_owned(),
    }
}

/// The audit records `query` asks for, newest first, from the audit index.
async fn entries(services: &Services, query: AuditQuery) -> Result<Vec<AuditEntry>, ConsoleError> {
    let repo = services.settings.git_repo();
    let branch = services.settings.git.branch.clone();
    let (entries, refresh) = tokio::task::spawn_blocking(move || audit(&repo, &branch, &query))
        .await
        .map_err(ConsoleError::Interrupted)?
        .map_err(ConsoleError::Audit)?;
    if let Some(error) = refresh.store_error {
        tracing::warn!(error = %crate::errors::ErrorChain(&error), "the audit index was not saved");
    }
    Ok(entries)
}

/// The audit records of `org` (all of them, newest first).
async fn org_entries(services: &Services, org: &str) -> Result<Vec<AuditEntry>, ConsoleError> {
    let query = AuditQuery {
        org: Some(org.to_owned()),
        ..AuditQuery::default()
    };
    entries(services, query).await
}

/// The dashboard of organization `org` (or the person's first) for `caller`: their
/// organizations, the workspaces they may see with plan, cluster, project count and last
/// change, and the commit `flash` when it belongs to the organization. Two or three SQL
/// queries, whatever the number of workspaces.
pub async fn dashboard(
    services: &Services,
    caller: &Caller,
    org: Option<&str>,
    flash: Option<&str>,
) -> Result<Dashboard, ConsoleError> {
    let memberships = services.store.memberships_of(&caller.user.id).await?;
    let orgs: Vec<OrgLink> = memberships
        .iter()
        .map(|(o, role)| OrgLink {
            slug: o.slug.clone(),
            name: o.name.clone(),
            role: Some(role_name(*role)),
        })
        .collect();
    let slug = match org {
        Some(slug) => slug.to_owned(),
        None => match orgs.first() {
            Some(first) => first.slug.clone(),
            None => {
                return Ok(Dashboard {
                    orgs,
                    org: None,
                    owner: false,
                    workspaces: Vec::new(),
                    flash: None,
                });
            }
        },
    };
    let access = tenancy::org_access(&services.store, &caller.user, &slug).await?;
    let rows =
        tenancy::visible_workspaces(&services.store, &services.engine, &access, &caller.user)
            .await?;
    let entries = org_entries(services, &slug).await?;
    let mut last: BTreeMap<&str, &AuditEntry> = BTreeMap::new();
    for entry in &entries {
        for full in &entry.workspaces {
            if let Some(ws) = full.strip_prefix(&format!("{slug}/")) {
                last.entry(ws).or_insert(entry);
            }
        }
        if let Some(ws) = entry.workspace.as_deref() {
            last.entry(ws).or_insert(entry);
        }
    }
    let workspaces: Vec<WorkspaceRow> = rows
        .into_iter()
        .map(|row| WorkspaceRow {
            last: last.get(row.name.as_str()).map(|e| LastChange::from(*e)),
            name: row.name,
            display_name: row.display_name,
            plan: row.plan,
            cluster: row.cluster,
            projects: row.projects,
        })
        .collect();
    let visible: std::collections::BTreeSet<&str> =
        workspaces.iter().map(|w| w.name.as_str()).collect();
    let flash = flash.and_then(|id| {
        entries
            .iter()
            .filter(|e| {
                access.is_owner() || e.workspace.as_deref().is_some_and(|w| visible.contains(w))
            })
            .find(|e| !id.is_empty() && e.commit.starts_with(id))
            .map(LastChange::from)
    });
    Ok(Dashboard {
        org: Some(OrgLink {
            slug: access.org.slug.clone(),
            name: access.org.name.clone(),
            role: access.role.map(role_name),
        }),
        owner: access.is_owner(),
        orgs,
        workspaces,
        flash,
    })
}

/// One plan a workspace may take, as the create and change-plan forms show it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanChoice {
    /// The plan's name.
    pub name: String,
    /// The workspace's quota on the host, in words (`limits.cpu 8, limits.memory 16Gi`).
    pub quota: String,
    /// Where its pods run: `shared nodes`, or `dedicated nodes (label=value)`.
    pub nodes: String,
    /// Its monthly price (`12.00 EUR`), when billing has one.
    pub price: Option<String>,
}

/// What the create-workspace form offers in organization `org`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceChoices {
    /// The platform's plans.
    pub plans: Vec<PlanChoice>,
    /// The platform's host clusters.
    pub clusters: Vec<String>,
    /// Whether the person may create workspaces there (owners).
    pub owner: bool,
}

/// The plans of the platform at `snapshot` with their prices.
fn plan_choices(
    snapshot: &crate::gitops::Snapshot,
    prices: &[crate::store::PlanPrice],
) -> Vec<PlanChoice> {
    let Some(platform) = snapshot.intent.platform.as_deref() else {
        return Vec::new();
    };
    platform
        .spec
        .plans
        .iter()
        .map(|plan| {
            let q = &plan.host_quota;
            let quota: Vec<String> = [
                ("requests.cpu", &q.requests_cpu),
                ("requests.memory", &q.requests_memory),
                ("limits.cpu", &q.limits_cpu),
                ("limits.memory", &q.limits_memory),
                ("requests.storage", &q.requests_storage),
                ("pods", &q.pods),
            ]
            .iter()
            .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} {v}")))
            .collect();
            let nodes = match plan.placement.mode {
                compiler::intent::PlacementMode::Shared => "shared nodes".to_owned(),
                compiler::intent::PlacementMode::Dedicated => {
                    let labels: Vec<String> = plan
                        .placement
                        .node_selector
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    format!("dedicated nodes ({})", labels.join(", "))
                }
            };
            let price = prices.iter().find(|p| p.plan == plan.name).map(|p| {
                format!(
                    "{}.{:02} {} a month",
                    p.monthly_cents / 100,
                    p.monthly_cents % 100,
                    p.currency
                )
            });
            PlanChoice {
                name: plan.name.clone(),
                quota: if quota.is_empty() {
                    "no quota".to_owned()
                } else {
                    quota.join(", ")
                },
                nodes,
                price,
            }
        })
        .collect()
}

/// The plans and clusters a new workspace of `org` may take (two SQL queries).
pub async fn workspace_choices(
    services: &Services,
    caller: &Caller,
    org: &str,
) -> Result<WorkspaceChoices, ConsoleError> {
    let access = tenancy::org_access(&services.store, &caller.user, org).await?;
    let snapshot = tenancy::head(&services.engine).await?;
    let prices = services.store.plan_prices().await?;
    let clusters = snapshot
        .intent
        .platform
        .as_deref()
        .map(|p| p.spec.clusters.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    Ok(WorkspaceChoices {
        plans: plan_choices(&snapshot, &prices),
        clusters,
        owner: access.is_owner(),
    })
}

/// One project row of a workspace page.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectRow {
    /// Its slug.
    pub name: String,
    /// Its display name.
    pub display_name: Option<String>,
}

/// A workspace as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspacePage {
    /// The organization's slug.
    pub org: String,
    /// The workspace's slug.
    pub name: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// Its plan.
    pub plan: String,
    /// Its host cluster.
    pub cluster: String,
    /// Its projects, by name.
    pub projects: Vec<ProjectRow>,
    /// Its groups as a tree, depth first: each with its depth, parent and member count.
    pub groups: Vec<GroupRow>,
    /// Its bindings of the preset ClusterRoles to groups (`group`, `role`).
    pub bindings: Vec<(String, String)>,
    /// Whether the person is in a group of it (sees inside, may download a kubeconfig).
    pub member: bool,
    /// Whether the person is a workspace administrator.
    pub admin: bool,
    /// Whether the person owns the organization (change plan, delete).
    pub owner: bool,
    /// The plans it may move to.
    pub plans: Vec<PlanChoice>,
    /// Its latest changes, newest first.
    pub history: Vec<LastChange>,
    /// The commit named by the page's `commit` parameter, when it is one of this workspace's.
    pub flash: Option<LastChange>,
}

/// One group on a workspace page.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    /// Its name.
    pub name: String,
    /// Its parent's name.
    pub parent: Option<String>,
    /// How deep it is nested (0 at the top).
    pub depth: usize,
    /// Its direct members.
    pub members: usize,
}

/// The groups of the intent (or, before they are in Git, the names the index has) as a tree,
/// depth first, siblings by name; a parent that is missing puts a group at the top.
fn group_tree(
    groups: &[compiler::intent::Group],
    names: &std::collections::BTreeSet<String>,
) -> Vec<GroupRow> {
    let mut by_parent: BTreeMap<Option<&str>, Vec<&compiler::intent::Group>> = BTreeMap::new();
    let known: std::collections::BTreeSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    for group in groups {
        let parent = group
            .parent
            .as_deref()
            .filter(|p| known.contains(p) && *p != group.name);
        by_parent.entry(parent).or_default().push(group);
    }
    let mut rows = Vec::new();
    let mut stack: Vec<(&compiler::intent::Group, usize)> = by_parent
        .get(&None)
        .map(|top| top.iter().rev().map(|g| (*g, 0)).collect())
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    while let Some((group, depth)) = stack.pop() {
        if !seen.insert(group.name.as_str()) {
            continue;
        }
        rows.push(GroupRow {
            name: group.name.clone(),
            parent: group.parent.clone(),
            depth,
            members: group.members.len(),
        });
        if let Some(children) = by_parent.get(&Some(group.name.as_str())) {
            stack.extend(children.iter().rev().map(|g| (*g, depth + 1)));
        }
    }
    // Groups only the index knows (not yet in Git), and any a loop left out.
    for name in names {
        if !rows.iter().any(|r| &r.name == name) {
            rows.push(GroupRow {
                name: name.clone(),
                parent: None,
                depth: 0,
                members: 0,
            });
        }
    }
    rows
}

/// How many changes a workspace page lists.
const PAGE_HISTORY: usize = 10;

/// Workspace `ws` of `org` as `caller` may see it (404 for anyone who may not), with the
/// commit `flash` when it is one of its latest. A constant number of SQL queries.
pub async fn workspace_page(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    flash: Option<&str>,
) -> Result<WorkspacePage, ConsoleError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    let intent = access.intent();
    let spec = intent.workspace.as_ref().map(|w| &w.spec);
    let member = !access.groups.is_empty();
    let projects = if member {
        intent
            .projects
            .iter()
            .map(|(name, file)| ProjectRow {
                name: name.clone(),
                display_name: file.project().spec.display_name,
            })
            .collect()
    } else {
        Vec::new()
    };
    let prices = services.store.plan_prices().await?;
    let query = AuditQuery {
        org: Some(org.to_owned()),
        workspace: Some(ws.to_owned()),
        limit: Some(PAGE_HISTORY.max(50)),
        ..AuditQuery::default()
    };
    let entries = entries(services, query).await?;
    let flash = flash.and_then(|id| {
        entries
            .iter()
            .find(|e| !id.is_empty() && e.commit.starts_with(id))
            .map(LastChange::from)
    });
    Ok(WorkspacePage {
        org: org.to_owned(),
        name: ws.to_owned(),
        display_name: spec.and_then(|s| s.display_name.clone()),
        plan: spec.map(|s| s.plan.clone()).unwrap_or_default(),
        cluster: spec.map(|s| s.cluster.clone()).unwrap_or_default(),
        projects,
        groups: if member {
            group_tree(
                spec.map(|s| s.groups.as_slice()).unwrap_or_default(),
                &access.all_groups,
            )
        } else {
            Vec::new()
        },
        bindings: spec
            .filter(|_| member)
            .map(|s| {
                s.cluster_role_bindings
                    .iter()
                    .map(|b| (b.group.clone(), b.cluster_role.as_str().to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        member,
        admin: member && access.require_admin("").is_ok(),
        owner: access.org.is_owner(),
        plans: plan_choices(&access.snapshot, &prices),
        history: entries
            .iter()
            .take(PAGE_HISTORY)
            .map(LastChange::from)
            .collect(),
        flash,
    })
}

/// The kubeconfig of workspace `ws` of `org` for a member: the same the API serves.
pub async fn workspace_kubeconfig(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
) -> Result<super::issuer::Kubeconfig, ConsoleError> {
    let access =
        tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    access.require_member()?;
    let ca = services.settings.issuer.kubeconfig_ca_data.as_deref();
    super::issuer::kubeconfig(&access.snapshot, org, ws, ca).ok_or_else(|| {
        TenancyError::NotFound(format!("workspace {org}/{ws} or the platform's issuer")).into()
    })
}

/// What changed in a workspace since a commit: for its page's event stream.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The newest commit touching the workspace (`None`: none recorded).
    pub newest: Option<String>,
    /// The commits after `since`, oldest first (empty on the first call).
    pub new: Vec<LastChange>,
}

/// The commits touching workspace `ws` of `org` after `since` (its newest when `None`), as
/// `caller` may see them: checked on every call, so a person who loses access stops getting
/// them. Commits from anyone count, pull request merges and hand edits on the branch too.
pub async fn workspace_changes(
    services: &Services,
    caller: &Caller,
    org: &str,
    ws: &str,
    since: Option<&str>,
) -> Result<Changes, ConsoleError> {
    tenancy::workspace_access(&services.store, &services.engine, &caller.user, org, ws).await?;
    let query = AuditQuery {
        org: Some(org.to_owned()),
        workspace: Some(ws.to_owned()),
        limit: Some(PAGE_HISTORY),
        ..AuditQuery::default()
    };
    let entries = entries(services, query).await?;
    let newest = entries.first().map(|e| e.commit.clone());
    let new = match since {
        None => Vec::new(),
        Some(since) => entries
            .iter()
            .take_while(|e| e.commit != since)
            .map(LastChange::from)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
    };
    Ok(Changes { newest, new })
}
