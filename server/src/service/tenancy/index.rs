//! The workspace index kept in step with the branch: each sync brings the SQL rows of the
//! workspaces (and their groups) to the head, and organizations made outside the server are
//! adopted (given their SQL rows and an owner).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use super::{TenancyResult, head};
use crate::gitops::audit::AuditRepo;
use crate::gitops::{GitOpsError, Oid, Snapshot, Trailers};
use crate::service::apply::Engine;
use crate::store::{DefaultGroupsOf, IndexedWorkspace, Store, StoreError};

/// What a sync of the workspace index did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSync {
    /// The head the index is now at (`None`: the branch has no commit).
    pub head: Option<String>,
    /// True when the whole index was rebuilt, false when only changed workspaces were.
    pub full: bool,
    /// Workspaces written.
    pub written: usize,
    /// Workspaces that got the default groups.
    pub defaulted: usize,
    /// Groups removed with their workspaces.
    pub groups_removed: u64,
    /// Organizations found in Git without SQL rows that got them (see
    /// [`adopt_organizations`]).
    pub adopted: usize,
}

/// One sync at a time in this process: two syncs of different heads must not interleave
/// their writes. Every sync reads the newest head under the lock, so none writes stale rows.
fn sync_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// What this process knows of the syncs of one repository's index.
#[derive(Debug, Default)]
struct SyncState {
    /// Syncs begun so far (the head read under the lock): see [`sync_index_after_commit`].
    begun: u64,
    /// A background sync is queued and has not begun yet: see [`request_sync`].
    queued: bool,
    /// The head the last sync brought the index to.
    synced: Option<Oid>,
}

/// The sync state by repository path: tests run several servers in one process.
fn sync_states() -> &'static Mutex<BTreeMap<std::path::PathBuf, SyncState>> {
    static STATES: OnceLock<Mutex<BTreeMap<std::path::PathBuf, SyncState>>> = OnceLock::new();
    STATES.get_or_init(Mutex::default)
}

fn with_sync_state<T>(engine: &Engine, f: impl FnOnce(&mut SyncState) -> T) -> T {
    let mut states = sync_states()
        .lock()
        .expect("the sync states are never poisoned: nothing panics while holding them");
    f(states.entry(engine.gitops().path().to_owned()).or_default())
}

fn begun(engine: &Engine) -> u64 {
    with_sync_state(engine, |s| s.begun)
}

/// The head the index was last brought to by this process (`None` before the first sync).
pub(super) fn synced_head(engine: &Engine) -> Option<Oid> {
    with_sync_state(engine, |s| s.synced)
}

/// [`sync_index`] for a writer whose commit is made: when a sync began after it (and has
/// finished, as this one holds the lock now), that sync read a head with the commit in it,
/// so there is nothing left to do (had it failed, it logged so, and the next sync catches up
/// as after any failed sync). Under concurrent writes one sync then serves many commits
/// instead of each commit waiting for its own. `None` when it was skipped.
pub async fn sync_index_after_commit(
    store: &Store,
    engine: &Arc<Engine>,
) -> TenancyResult<Option<IndexSync>> {
    let seen = begun(engine);
    let guard = sync_lock().lock().await;
    if begun(engine) != seen {
        return Ok(None);
    }
    sync_locked(store, engine, guard).await.map(Some)
}

/// Brings the index up to the head in the background, without making the caller wait:
/// for writes whose answer does not depend on the index, and for lists that find it behind.
/// At most one sync waits to begin at any time; every request made before it begins is
/// served by it (it reads the head when it begins). A failure is logged; the next sync
/// catches up.
pub fn request_sync(store: &Store, engine: &Arc<Engine>) {
    if with_sync_state(engine, |s| std::mem::replace(&mut s.queued, true)) {
        return;
    }
    let (store, engine) = (store.clone(), Arc::clone(engine));
    tokio::spawn(async move {
        let guard = sync_lock().lock().await;
        with_sync_state(&engine, |s| s.queued = false);
        if let Err(error) = sync_locked(&store, &engine, guard).await {
            let error = anyhow::Error::from(error);
            tracing::error!(
                error = format!("{error:#}"),
                "failed to sync the workspace index"
            );
        }
    });
}

/// Brings the index up to the branch head when this process has not yet (a commit that did
/// not come through the API: a merged pull request, a hand edit), waiting for it: for
/// answers that depend on the index, such as a token's `groups` claim.
pub async fn sync_if_behind(store: &Store, engine: &Arc<Engine>) -> TenancyResult<()> {
    let snapshot = head(engine).await?;
    if snapshot.commit.is_some() && snapshot.commit != synced_head(engine) {
        sync_index(store, engine).await?;
    }
    Ok(())
}

/// Brings the workspace index up to the branch head: organizations added by people's commits
/// since the index's head get their rows (see [`adopt_organizations`]); the workspaces
/// touched by those commits are rewritten (all of them when the index has no head or history
/// was rewritten); workspaces gone from Git lose their groups; workspaces without groups get
/// the default ones, with the author of their `create-workspace` commit in `WSAdmins` when
/// that names a user.
pub async fn sync_index(store: &Store, engine: &Arc<Engine>) -> TenancyResult<IndexSync> {
    let guard = sync_lock().lock().await;
    sync_locked(store, engine, guard).await
}

async fn sync_locked(
    store: &Store,
    engine: &Arc<Engine>,
    _guard: tokio::sync::MutexGuard<'static, ()>,
) -> TenancyResult<IndexSync> {
    with_sync_state(engine, |s| s.begun += 1);
    let snapshot = head(engine).await?;
    let Some(head_id) = snapshot.commit.map(|c| c.to_string()) else {
        return Ok(IndexSync::default());
    };
    let known = store.workspace_index_head().await?;
    if known.as_deref() == Some(head_id.as_str()) {
        with_sync_state(engine, |s| s.synced = snapshot.commit);
        return Ok(IndexSync {
            head: Some(head_id),
            ..IndexSync::default()
        });
    }
    let (path, branch) = repository_of(engine);
    let trees = engine.gitops().tree_cache();
    let tip = snapshot.commit.expect("checked above");
    let walked = tokio::task::spawn_blocking(move || -> Result<_, GitOpsError> {
        let repo = AuditRepo::open(&path, &branch)?.with_tree_cache(trees);
        let Some(Ok(known)) = known.as_deref().map(Oid::from_str) else {
            return Ok(None);
        };
        // Who created workspaces: the trailers of the commits since; what changed: one
        // comparison of the two heads' trees (the newest in the tree cache).
        match repo.trailers_since(tip, known)? {
            Some(trailers) => Ok(Some((repo.changed_scopes(known, tip)?, trailers))),
            None => Ok(None),
        }
    })
    .await??;
    let rows_of = |pairs: &mut dyn Iterator<Item = (&String, &String)>| -> Vec<IndexedWorkspace> {
        pairs
            .filter_map(|(org, ws)| indexed(&snapshot, org, ws, &head_id))
            .collect()
    };
    let mut result = IndexSync {
        head: Some(head_id.clone()),
        ..IndexSync::default()
    };
    let (written, creators) = match &walked {
        Some((touched, trailers)) => {
            let orgs: BTreeSet<&str> = touched.iter().map(|s| s.org.as_str()).collect();
            let missing = without_rows(store, &orgs.into_iter().collect::<Vec<_>>()).await?;
            if !missing.is_empty() {
                result.adopted =
                    adopt(store, &snapshot, &missing, &org_creators(trailers), false).await?;
            }
            let scope: Vec<(String, String)> = touched
                .iter()
                .filter_map(|s| s.workspace.as_ref().map(|w| (s.org.clone(), w.clone())))
                .collect();
            let rows = rows_of(&mut scope.iter().map(|(o, w)| (o, w)));
            result.groups_removed = store.sync_workspace_index(&head_id, &scope, &rows).await?;
            (rows, creators_of(trailers))
        }
        None => {
            let all: Vec<(&String, &String)> = snapshot
                .intent
                .organizations
                .iter()
                .flat_map(|(o, oi)| oi.workspaces.keys().map(move |w| (o, w)))
                .collect();
            let rows = rows_of(&mut all.into_iter());
            result.full = true;
            result.groups_removed = store.replace_workspace_index(&head_id, &rows).await?;
            (rows, BTreeMap::new())
        }
    };
    index_groups(store, &snapshot, &written).await?;
    with_sync_state(engine, |s| s.synced = Some(tip));
    result.written = written.len();
    let mut without = Vec::new();
    if result.full {
        without = store.workspaces_without_groups().await?;
    } else {
        for row in &written {
            if store
                .workspace_groups(&row.org_slug, &row.name)
                .await?
                .is_empty()
            {
                without.push((row.org_slug.clone(), row.name.clone()));
            }
        }
    }
    if without.is_empty() {
        return Ok(result);
    }
    let creators = if result.full {
        // Only now is the whole history worth reading: some workspace has no groups.
        let (path, branch) = repository_of(engine);
        let trailers = tokio::task::spawn_blocking(move || -> Result<_, GitOpsError> {
            AuditRepo::open(&path, &branch)?.trailers(tip)
        })
        .await??;
        creators_of(&trailers)
    } else {
        creators
    };
    // One look-up per creator, and one transaction for all the groups.
    let mut users: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut batch = Vec::with_capacity(without.len());
    let mut unknown = Vec::new();
    for (org, ws) in without {
        let creator = match creators.get(&(org.clone(), ws.clone())) {
            Some(actor) => match users.get(actor) {
                Some(id) => id.clone(),
                None => {
                    let id = match store.user(actor).await {
                        Ok(user) => Some(user.id),
                        Err(StoreError::NotFound) => None,
                        Err(other) => return Err(other.into()),
                    };
                    users.insert(actor.clone(), id.clone());
                    id
                }
            },
            None => None,
        };
        if creator.is_none() {
            unknown.push(format!("{org}/{ws}"));
        }
        batch.push(DefaultGroupsOf {
            org,
            workspace: ws,
            creator,
        });
    }
    result.defaulted = store.create_default_groups_of(&batch).await?;
    if !unknown.is_empty() {
        const NAMED: usize = 10;
        let more = unknown.len().saturating_sub(NAMED);
        unknown.truncate(NAMED);
        tracing::warn!(
            workspaces = %unknown.join(", "),
            more,
            "workspaces without groups and without a known creator: default groups made with no administrator"
        );
    }
    Ok(result)
}

/// Brings the SQL groups of the workspaces `rows` to what Git holds at `snapshot`
/// (docs/access-in-git.md); a workspace with no groups in Git yet keeps its SQL ones, which
/// the migration writes to Git ([`crate::service::groups::move_access_to_git`]).
async fn index_groups(
    store: &Store,
    snapshot: &Snapshot,
    rows: &[IndexedWorkspace],
) -> TenancyResult<()> {
    for row in rows {
        let Some(doc) = snapshot
            .intent
            .organizations
            .get(&row.org_slug)
            .and_then(|o| o.workspaces.get(&row.name))
            .and_then(|w| w.workspace.as_ref())
        else {
            continue;
        };
        if !doc.spec.groups.is_empty() {
            store
                .replace_workspace_groups(&row.org_slug, &row.name, &doc.spec.groups)
                .await?;
        }
    }
    Ok(())
}

/// Gives the organizations in Git at the head that have no SQL rows their rows, before the
/// first sync at start, so that Git and SQL agree after a crash between an organization's
/// commit and its rows (DESIGN.md §5.5), and an organization added by people (a pull
/// request, a hand edit, an import) has an owner. The owner is the author of its
/// `create-organization` commit when that names a user (none does when a sign-up failed
/// after its commit: that organization is left alone), else the platform administrator.
/// When any is adopted, the workspace index is rebuilt whole by the next sync (their
/// workspaces' subscriptions start). Returns how many were adopted.
pub async fn adopt_organizations(store: &Store, engine: &Arc<Engine>) -> TenancyResult<usize> {
    let snapshot = head(engine).await?;
    let Some(tip) = snapshot.commit else {
        return Ok(0);
    };
    let slugs: Vec<&str> = snapshot
        .intent
        .organizations
        .keys()
        .map(String::as_str)
        .collect();
    let missing = without_rows(store, &slugs).await?;
    if missing.is_empty() {
        return Ok(0);
    }
    // Only now is the whole history worth reading: some organization has no rows.
    let (path, branch) = repository_of(engine);
    let trailers = tokio::task::spawn_blocking(move || -> Result<_, GitOpsError> {
        AuditRepo::open(&path, &branch)?.trailers(tip)
    })
    .await??;
    let adopted = adopt(store, &snapshot, &missing, &org_creators(&trailers), true).await?;
    if adopted > 0 {
        store.forget_workspace_index_head().await?;
    }
    Ok(adopted)
}

/// Those of the organizations `slugs` that have no SQL rows.
async fn without_rows<'a>(store: &Store, slugs: &[&'a str]) -> TenancyResult<Vec<&'a str>> {
    let known = store.known_organizations(slugs).await?;
    Ok(slugs
        .iter()
        .copied()
        .filter(|s| !known.contains(*s))
        .collect())
}

/// Adopts the organizations `missing` (without SQL rows) that exist at `snapshot` (see
/// [`adopt_organizations`]); `creators` are the authors of `create-organization` commits by
/// organization. While serving (`at_start` false) an organization made through the API is
/// never adopted: the request that made it writes its rows, and could otherwise find them
/// taken.
async fn adopt(
    store: &Store,
    snapshot: &Snapshot,
    missing: &[&str],
    creators: &BTreeMap<String, Option<String>>,
    at_start: bool,
) -> TenancyResult<usize> {
    let admin = if missing
        .iter()
        .any(|s| !matches!(creators.get(*s), Some(Some(_))))
    {
        store.platform_admin().await?
    } else {
        None
    };
    let mut adopted = 0;
    for slug in missing {
        let Some(doc) = snapshot
            .intent
            .organizations
            .get(*slug)
            .and_then(|o| o.organization.as_ref())
        else {
            continue;
        };
        let owner = match creators.get(*slug) {
            Some(_) if !at_start => continue,
            Some(Some(id)) => match store.user(id).await {
                Ok(user) => user,
                Err(StoreError::NotFound) => {
                    tracing::info!(org = %slug, creator = %id, "organization in Git whose creator has no account (a sign-up that did not finish): left without rows");
                    continue;
                }
                Err(other) => return Err(other.into()),
            },
            // Made by the engine, but the commit names no user id (older history, the CLI):
            // no identity is read from its display text; it goes to the administrator, like
            // an organization people added.
            Some(None) | None => match &admin {
                Some(user) => user.clone(),
                None => {
                    tracing::warn!(org = %slug, "organization in Git without rows, and no administrator yet to own it");
                    continue;
                }
            },
        };
        let name = doc.spec.display_name.as_deref().unwrap_or(slug);
        match store
            .create_organization(slug, name, false, &owner.id)
            .await
        {
            Ok(_) => {
                adopted += 1;
                tracing::info!(org = %slug, owner = %owner.email, "organization found in Git without rows: adopted");
            }
            // Made meanwhile by someone else.
            Err(StoreError::Conflict(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(adopted)
}

/// The user id (`Hexabase-Actor-Id`) of the actor of the last `create-organization` commit
/// of each organization, from the trailers of commits in order, parents first; `None` for a
/// commit without one (never guessed from the display form `Hexabase-Actor`).
fn org_creators(trailers: &[Trailers]) -> BTreeMap<String, Option<String>> {
    trailers
        .iter()
        .filter(|t| t.action == "create-organization")
        .filter_map(|t| Some((t.org.clone()?, t.actor_id.clone())))
        .collect()
}

/// The repository's path and branch name, for reading its history.
fn repository_of(engine: &Engine) -> (std::path::PathBuf, String) {
    let branch = engine.gitops().branch_ref();
    let branch = branch
        .strip_prefix("refs/heads/")
        .unwrap_or(&branch)
        .to_owned();
    (engine.gitops().path().to_owned(), branch)
}

/// The user id (`Hexabase-Actor-Id`) of the actor of the last `create-workspace` commit of
/// each workspace, from the trailers of commits in order, parents first. A commit without
/// the id (older history, the CLI) names no creator: the workspace gets its default groups
/// with no administrator, never one guessed from the display form.
fn creators_of(trailers: &[Trailers]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for t in trailers {
        if t.action != "create-workspace" {
            continue;
        }
        let (Some(org), Some(ws)) = (&t.org, &t.workspace) else {
            continue;
        };
        match &t.actor_id {
            Some(id) => out.insert((org.clone(), ws.clone()), id.clone()),
            // A later creation without an id replaces an earlier creator.
            None => out.remove(&(org.clone(), ws.clone())),
        };
    }
    out
}

/// The index row of one workspace at the snapshot, if it exists there.
pub(super) fn indexed(
    snapshot: &Snapshot,
    org: &str,
    ws: &str,
    head: &str,
) -> Option<IndexedWorkspace> {
    let intent = snapshot.intent.organizations.get(org)?.workspaces.get(ws)?;
    let doc = intent.workspace.as_ref()?;
    Some(IndexedWorkspace {
        org_slug: org.to_owned(),
        name: ws.to_owned(),
        plan: doc.spec.plan.clone(),
        cluster: doc.spec.cluster.clone(),
        display_name: doc.spec.display_name.clone(),
        projects: i64::try_from(intent.projects.len()).unwrap_or(i64::MAX),
        commit_id: head.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creators_are_user_ids_from_their_own_trailer_never_the_display_form() {
        let made = |action: &str, ws: Option<&str>, actor: &str, id: Option<&str>| Trailers {
            actor: actor.into(),
            actor_id: id.map(str::to_owned),
            action: action.into(),
            org: Some("acme".into()),
            workspace: ws.map(str::to_owned),
            ..Trailers::default()
        };
        let trailers = [
            made(
                "create-organization",
                None,
                "Eve <eve<victim@a.test>",
                Some("eve-id"),
            ),
            made(
                "create-workspace",
                Some("dev"),
                "Eve <eve<victim@a.test>",
                Some("eve-id"),
            ),
            made("create-workspace", Some("old"), "Ada <ada@a.test>", None),
        ];
        let key = |ws: &str| ("acme".to_owned(), ws.to_owned());
        let creators = creators_of(&trailers);
        assert_eq!(
            creators.get(&key("dev")).map(String::as_str),
            Some("eve-id")
        );
        assert_eq!(creators.get(&key("old")), None, "no id, no creator");
        assert_eq!(
            org_creators(&trailers).get("acme"),
            Some(&Some("eve-id".to_owned()))
        );
        let unnamed = [made("create-organization", None, "Ada <ada@a.test>", None)];
        assert_eq!(org_creators(&unnamed).get("acme"), Some(&None));
    }
}
