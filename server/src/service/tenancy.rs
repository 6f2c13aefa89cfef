//! Workspaces and what is inside them, from the caller's side: who may see and change what
//! (organization role, workspace groups flattened through the hierarchy, and the RBAC the
//! intent renders, see [`super::authz`]); the workspace index kept in step with the branch;
//! and the per-organization limit on write actions.
//!
//! The index sync and the adoption of organizations made outside the server are in
//! `tenancy/index.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};

use compiler::intent::{Project, ProjectFile, WorkspaceIntent};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

mod index;

pub use index::{
    IndexSync, adopt_organizations, request_sync, sync_if_behind, sync_index,
    sync_index_after_commit,
};

use super::apply::Engine;
use super::authz::{Permissions, Presets};
use crate::gitops::{GitOpsError, Snapshot};
use crate::settings::Limits;
use crate::store::{IndexedWorkspace, OrgRole, Organization, Store, StoreError, User};

/// Why a tenancy request cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// It does not exist, or the caller may not know it does.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The caller can see it but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request would grant permissions the caller does not hold (the escalation rule).
    #[error("{field}: {message}")]
    Escalation {
        /// The field naming what would be granted.
        field: String,
        /// What is not held.
        message: String,
    },
    /// A field of the request is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a path into the request.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// It conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// Too many write actions in this organization; retry after this many seconds.
    #[error("too many write actions; retry after {0} s")]
    RateLimited(u64),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The repository could not be read.
    #[error("failed to read the repository")]
    GitOps(#[from] GitOpsError),
    /// A blocking task died.
    #[error("a blocking task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl TenancyError {
    /// A field is wrong.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The result of a tenancy call.
pub type TenancyResult<T> = Result<T, TenancyError>;

/// The intent at the branch head: at once when it is a recent snapshot (the usual case:
/// the engine remembers every head it makes), else derived on a blocking thread.
pub async fn head(engine: &Arc<Engine>) -> TenancyResult<Arc<Snapshot>> {
    if let Some(snapshot) = engine.gitops().known_head_snapshot()? {
        return Ok(snapshot);
    }
    let engine = Arc::clone(engine);
    Ok(tokio::task::spawn_blocking(move || engine.head_snapshot()).await??)
}

/// An organization as the caller sees it.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    /// The organization.
    pub org: Organization,
    /// The caller's organization role, if any.
    pub role: Option<OrgRole>,
}

impl OrgAccess {
    /// Whether the caller owns the organization.
    pub fn is_owner(&self) -> bool {
        self.role == Some(OrgRole::Owner)
    }

    /// Refuses unless the caller owns the organization.
    pub fn require_owner(&self, what: &str) -> TenancyResult<()> {
        if self.is_owner() {
            Ok(())
        } else {
            Err(TenancyError::Forbidden(format!(
                "only owners of organization {} may {what}",
                self.org.slug
            )))
        }
    }
}

/// The organization `slug`, if the caller has a role in it or is in a group of one of its
/// workspaces; otherwise `NotFound`, whether or not it exists.
pub async fn org_access(store: &Store, user: &User, slug: &str) -> TenancyResult<OrgAccess> {
    let missing = || TenancyError::NotFound(format!("organization {slug}"));
    let (org, role) = match store.organization_and_role(slug, &user.id).await {
        Ok(found) => found,
        Err(StoreError::NotFound) => return Err(missing()),
        Err(other) => return Err(other.into()),
    };
    if role.is_none() && !store.in_any_workspace_of(slug, &user.id).await? {
        return Err(missing());
    }
    Ok(OrgAccess { org, role })
}

/// A workspace as the caller sees it: the intent at the head, their groups and what the
/// RBAC rendered from the intent lets them do.
#[derive(Debug, Clone)]
pub struct WorkspaceAccess {
    /// The organization.
    pub org: OrgAccess,
    /// The workspace slug.
    pub name: String,
    /// The head the decision was made on.
    pub snapshot: Arc<Snapshot>,
    /// The caller's groups in the workspace, flattened through the hierarchy.
    pub groups: BTreeSet<String>,
    /// The workspace's group names.
    pub all_groups: BTreeSet<String>,
    /// What the caller may do inside.
    pub permissions: Permissions,
}

impl WorkspaceAccess {
    /// The workspace's intent.
    pub fn intent(&self) -> &WorkspaceIntent {
        self.snapshot
            .intent
            .organizations
            .get(&self.org.org.slug)
            .and_then(|o| o.workspaces.get(&self.name))
            .expect("workspace_access checked that the workspace exists in this snapshot")
    }

    /// Refuses unless the caller is in a group of the workspace (an organization owner who
    /// is not sees that it exists, nothing inside).
    pub fn require_member(&self) -> TenancyResult<()> {
        if self.groups.is_empty() {
            return Err(TenancyError::Forbidden(format!(
                "you are in no group of workspace {}; organization roles give nothing inside a workspace",
                self.name
            )));
        }
        Ok(())
    }

    /// Refuses unless the caller holds `hexabase:workspace-admin` workspace-wide.
    pub fn require_admin(&self, what: &str) -> TenancyResult<()> {
        if self.permissions.is_workspace_admin(Presets::builtin()) {
            return Ok(());
        }
        Err(TenancyError::Forbidden(format!(
            "only workspace administrators (hexabase:workspace-admin) may {what}"
        )))
    }

    /// Refuses unless RBAC allows `verb` on `resource` of `api_group` in `project`.
    pub fn require(
        &self,
        verb: &str,
        api_group: &str,
        resource: &str,
        project: &str,
    ) -> TenancyResult<()> {
        if self
            .permissions
            .allowed(verb, api_group, resource, Some(project))
        {
            return Ok(());
        }
        let kind = if api_group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{api_group}")
        };
        Err(TenancyError::Forbidden(format!(
            "you may not {verb} {kind} in project {project}"
        )))
    }

    /// A project of the workspace.
    pub fn project(&self, name: &str) -> TenancyResult<Project> {
        self.intent()
            .projects
            .get(name)
            .map(ProjectFile::project)
            .ok_or_else(|| {
                TenancyError::NotFound(format!(
                    "project {}/{}/{name}",
                    self.org.org.slug, self.name
                ))
            })
    }

    /// Refuses a group name the workspace does not have, naming `field`.
    pub fn require_group(&self, field: &str, group: &str) -> TenancyResult<()> {
        if self.all_groups.contains(group) {
            return Ok(());
        }
        Err(TenancyError::invalid(
            field,
            format!("workspace {} has no group {group}", self.name),
        ))
    }
}

/// The workspace `ws` of `org` if the caller may see it (an organization owner, or in one
/// of its groups); otherwise `NotFound`, whether or not it exists.
pub async fn workspace_access(
    store: &Store,
    engine: &Arc<Engine>,
    user: &User,
    org: &str,
    ws: &str,
) -> TenancyResult<WorkspaceAccess> {
    let org = org_access(store, user, org).await?;
    let missing = || TenancyError::NotFound(format!("workspace {}/{ws}", org.org.slug));
    let snapshot = head(engine).await?;
    let Some(intent) = snapshot
        .intent
        .organizations
        .get(&org.org.slug)
        .and_then(|o| o.workspaces.get(ws))
        .filter(|w| w.workspace.is_some())
    else {
        return Err(missing());
    };
    let mut hierarchy: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut direct = Vec::new();
    for (group, member) in store
        .workspace_groups_for(&org.org.slug, ws, &user.id)
        .await?
    {
        if member {
            direct.push(group.name.clone());
        }
        hierarchy.insert(group.name, group.parent);
    }
    let groups = super::authz::flatten(&hierarchy, &direct);
    if groups.is_empty() && !org.is_owner() {
        return Err(missing());
    }
    let permissions = Permissions::of(intent, &groups, Presets::builtin());
    Ok(WorkspaceAccess {
        all_groups: hierarchy.into_keys().collect(),
        name: ws.to_owned(),
        org,
        snapshot,
        groups,
        permissions,
    })
}

/// The groups of a workspace, each with its parent.
pub async fn group_hierarchy(
    store: &Store,
    org: &str,
    ws: &str,
) -> Result<BTreeMap<String, Option<String>>, StoreError> {
    Ok(store
        .workspace_groups(org, ws)
        .await?
        .into_iter()
        .map(|g| (g.name, g.parent))
        .collect())
}

/// The groups of a workspace `user_id` is in, flattened through the hierarchy (a member of
/// `WSAdmins` is in `WorkspaceMembers` too).
pub async fn flattened_groups(
    store: &Store,
    org: &str,
    ws: &str,
    user_id: &str,
) -> Result<BTreeSet<String>, StoreError> {
    let hierarchy = group_hierarchy(store, org, ws).await?;
    let direct = store.direct_groups(org, ws, user_id).await?;
    Ok(super::authz::flatten(&hierarchy, &direct))
}

/// The workspaces of `org` the caller may see: all of them for an owner, else those where
/// they are in a group. Read from the intent at the head, so a merged pull request shows up
/// at once and no list waits for a commit or an index sync in flight; when the index is
/// behind the head, a sync is started in the background (for the default groups of
/// workspaces made outside the server).
pub async fn visible_workspaces(
    store: &Store,
    engine: &Arc<Engine>,
    access: &OrgAccess,
    user: &User,
) -> TenancyResult<Vec<IndexedWorkspace>> {
    let snapshot = head(engine).await?;
    let slug = &access.org.slug;
    let member_of = if access.is_owner() {
        None
    } else {
        Some(store.member_workspaces(slug, &user.id).await?)
    };
    if snapshot.commit != index::synced_head(engine) {
        request_sync(store, engine);
    }
    let head_id = snapshot.commit.map(|c| c.to_string()).unwrap_or_default();
    let Some(organization) = snapshot.intent.organizations.get(slug) else {
        return Ok(Vec::new());
    };
    Ok(organization
        .workspaces
        .keys()
        .filter(|ws| member_of.as_ref().is_none_or(|m| m.contains(*ws)))
        .filter_map(|ws| index::indexed(&snapshot, slug, ws, &head_id))
        .collect())
}

type Limiter<C> =
    RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Limiters = Mutex<BTreeMap<(u32, u32), Arc<DefaultKeyedRateLimiter<String>>>>;

/// Admits one write action in organization `org`, or says how long to wait. Limiters are
/// kept per quota, so servers (or tests) with different settings in one process do not
/// share buckets; within one, each organization has its own.
pub fn admit_write(limits: &Limits, org: &str) -> TenancyResult<()> {
    static LIMITERS: OnceLock<Limiters> = OnceLock::new();
    let (Some(rate), Some(burst)) = (
        NonZeroU32::new(limits.actions_per_org_per_second),
        NonZeroU32::new(limits.actions_per_org_burst),
    ) else {
        // A zero rate or burst switches the limit off.
        return Ok(());
    };
    let limiter = {
        let mut map = LIMITERS
            .get_or_init(Limiters::default)
            .lock()
            .expect("the limiter map is never poisoned: nothing panics while holding it");
        Arc::clone(map.entry((rate.get(), burst.get())).or_insert_with(|| {
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        }))
    };
    match retry_after(&limiter, &DefaultClock::default(), org) {
        None => Ok(()),
        Some(seconds) => Err(TenancyError::RateLimited(seconds)),
    }
}

/// `None` when `limiter` admits one more action for `org`, else the whole seconds to wait
/// (rounded up, at least 1: a client retrying after them must be admitted).
fn retry_after<C: Clock>(limiter: &Limiter<C>, clock: &C, org: &str) -> Option<u64> {
    let not_until = limiter.check_key(&org.to_owned()).err()?;
    let wait = not_until.wait_time_from(clock.now());
    limiter.retain_recent();
    Some((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_beyond_the_burst_wait_for_the_next_token() {
        let clock = governor::clock::FakeRelativeClock::default();
        let quota = Quota::per_second(NonZeroU32::new(2).expect("nonzero"))
            .allow_burst(NonZeroU32::new(3).expect("nonzero"));
        let limiter: Limiter<_> = RateLimiter::dashmap_with_clock(quota, clock.clone());
        for _ in 0..3 {
            assert_eq!(retry_after(&limiter, &clock, "acme"), None);
        }
        assert_eq!(
            retry_after(&limiter, &clock, "acme"),
            Some(1),
            "half a second, rounded up"
        );
        assert_eq!(
            retry_after(&limiter, &clock, "globex"),
            None,
            "its own bucket"
        );
        clock.advance(std::time::Duration::from_millis(500));
        assert_eq!(retry_after(&limiter, &clock, "acme"), None);
    }

    #[test]
    fn a_zero_limit_admits_everything() {
        let limits = Limits {
            actions_per_org_per_second: 0,
            ..Limits::default()
        };
        for _ in 0..1000 {
            assert!(admit_write(&limits, "acme").is_ok());
        }
    }
}
