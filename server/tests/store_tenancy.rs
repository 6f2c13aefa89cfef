//! The storage story of workspaces: the index, groups and their hierarchy, members and
//! subscriptions, on SQLite always and on PostgreSQL (a fresh database per test; skipped
//! loudly when none answers, but failing when `CI` is set).

mod support;

use server::store::{DefaultGroupsOf, IndexedWorkspace, OrgRole, Store, StoreError};

fn row(org: &str, name: &str, plan: &str, head: &str) -> IndexedWorkspace {
    IndexedWorkspace {
        org_slug: org.to_owned(),
        name: name.to_owned(),
        plan: plan.to_owned(),
        cluster: "home".to_owned(),
        display_name: None,
        projects: 2,
        commit_id: head.to_owned(),
    }
}

async fn running(store: &Store, org_id: &str) -> Vec<(String, String)> {
    support::running_subscriptions(store, org_id).await
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn story(store: &Store) {
    let owner = store
        .create_user("owner@acme.test", "owner", None, false)
        .await
        .expect("user");
    let dev = store
        .create_user("dev@acme.test", "dev", None, false)
        .await
        .expect("user");
    let org = store
        .create_organization("acme", "ACME", false, &owner.id)
        .await
        .expect("org");

    // The index: replaced whole, then synced per workspace.
    assert_eq!(store.workspace_index_head().await.expect("head"), None);
    let rows: Vec<IndexedWorkspace> = (0..1203)
        .map(|i| row("acme", &format!("ws{i:04}"), "shared-small", "h1"))
        .collect();
    assert_eq!(
        store
            .replace_workspace_index("h1", &rows)
            .await
            .expect("replace"),
        0
    );
    assert_eq!(
        store.workspace_index_head().await.expect("head").as_deref(),
        Some("h1")
    );
    assert_eq!(
        store.indexed_workspaces("acme").await.expect("list").len(),
        1203
    );
    assert_eq!(
        store.workspaces_without_groups().await.expect("bare").len(),
        1203
    );
    // Subscriptions follow the index: one running per workspace, on its plan.
    assert_eq!(running(store, &org.id).await.len(), 1203);
    store
        .replace_workspace_index(
            "h2",
            &[
                row("acme", "dev", "shared-small", "h2"),
                row("acme", "prod", "shared-small", "h2"),
            ],
        )
        .await
        .expect("replace");
    assert_eq!(
        store.indexed_workspace("acme", "dev").await.expect("one"),
        row("acme", "dev", "shared-small", "h2")
    );
    assert_eq!(
        running(store, &org.id).await,
        pairs(&[("dev", "shared-small"), ("prod", "shared-small")])
    );
    assert_eq!(store.subscriptions(&org.id).await.expect("all").len(), 1205);
    assert!(matches!(
        store.indexed_workspace("acme", "ws0001").await,
        Err(StoreError::NotFound)
    ));

    // Default groups, once, with the creator in WSAdmins.
    assert!(
        store
            .create_default_groups("acme", "dev", Some(&owner.id))
            .await
            .expect("defaults")
    );
    assert!(
        !store
            .create_default_groups("acme", "dev", Some(&dev.id))
            .await
            .expect("again")
    );
    assert!(
        store
            .create_default_groups("acme", "prod", None)
            .await
            .expect("no creator")
    );
    assert!(
        store
            .workspaces_without_groups()
            .await
            .expect("bare")
            .is_empty()
    );
    let groups = store.workspace_groups("acme", "dev").await.expect("groups");
    let shape: Vec<(&str, Option<&str>)> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.parent.as_deref()))
        .collect();
    assert_eq!(
        shape,
        [
            ("WSAdmins", Some("WorkspaceMembers")),
            ("WSUsers", Some("WorkspaceMembers")),
            ("WorkspaceMembers", None)
        ]
    );
    assert_eq!(
        store
            .direct_groups("acme", "dev", &owner.id)
            .await
            .expect("direct"),
        ["WSAdmins"]
    );
    assert!(
        store
            .group_members("acme", "prod", "WSAdmins")
            .await
            .expect("members")
            .is_empty()
    );

    // Groups: nesting, names, cycles, subgroups.
    store
        .create_group("acme", "dev", "devs", Some("WSUsers"))
        .await
        .expect("group");
    assert!(matches!(
        store.create_group("acme", "dev", "devs", None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_group("acme", "dev", "x", Some("nobody")).await,
        Err(StoreError::NotFound)
    ));
    store
        .create_group("acme", "prod", "devs", None)
        .await
        .expect("same name elsewhere");
    match store
        .set_group_parent("acme", "dev", "WorkspaceMembers", Some("devs"))
        .await
    {
        Err(StoreError::Conflict(why)) => assert!(why.starts_with("parent:"), "{why}"),
        other => panic!("a cycle must be refused, got {other:?}"),
    }
    store
        .set_group_parent("acme", "dev", "devs", None)
        .await
        .expect("to the top");
    store
        .set_group_parent("acme", "dev", "devs", Some("WSAdmins"))
        .await
        .expect("under admins");
    assert!(matches!(
        store.delete_group("acme", "dev", "WSAdmins").await,
        Err(StoreError::Conflict(_))
    ));

    // Members.
    assert!(
        !store
            .in_any_workspace_of("acme", &dev.id)
            .await
            .expect("in any")
    );
    assert!(
        store
            .add_group_member("acme", "dev", "devs", &dev.id)
            .await
            .expect("add")
    );
    assert!(
        !store
            .add_group_member("acme", "dev", "devs", &dev.id)
            .await
            .expect("again")
    );
    assert!(matches!(
        store
            .add_group_member("acme", "dev", "ghosts", &dev.id)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .in_any_workspace_of("acme", &dev.id)
            .await
            .expect("in any")
    );
    let members = store
        .group_members("acme", "dev", "devs")
        .await
        .expect("members");
    assert_eq!(
        members.iter().map(|m| m.email.as_str()).collect::<Vec<_>>(),
        ["dev@acme.test"]
    );
    let mine: Vec<String> = store
        .indexed_workspaces_of_member("acme", &dev.id)
        .await
        .expect("mine")
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(mine, ["dev"]);
    assert_eq!(
        store
            .member_workspaces("acme", &dev.id)
            .await
            .expect("member of")
            .into_iter()
            .collect::<Vec<_>>(),
        ["dev"]
    );
    let with_membership: Vec<(String, bool)> = store
        .workspace_groups_for("acme", "dev", &owner.id)
        .await
        .expect("groups for")
        .into_iter()
        .map(|(g, member)| (g.name, member))
        .collect();
    assert!(with_membership.contains(&("WSAdmins".to_owned(), true)));
    assert!(with_membership.contains(&("WSUsers".to_owned(), false)));
    assert_eq!(
        with_membership.len(),
        store
            .workspace_groups("acme", "dev")
            .await
            .expect("all")
            .len()
    );
    assert_eq!(
        store
            .organization_and_role("acme", &owner.id)
            .await
            .expect("owner"),
        (org.clone(), Some(OrgRole::Owner))
    );
    assert_eq!(
        store
            .organization_and_role("acme", &dev.id)
            .await
            .expect("no role")
            .1,
        None
    );
    assert!(matches!(
        store.organization_and_role("nope", &dev.id).await,
        Err(StoreError::NotFound)
    ));

    store
        .remove_group_member("acme", "dev", "devs", &dev.id)
        .await
        .expect("remove");
    assert!(matches!(
        store
            .remove_group_member("acme", "dev", "devs", &dev.id)
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_group("acme", "dev", "devs")
        .await
        .expect("delete");
    assert!(matches!(
        store.delete_group("acme", "dev", "devs").await,
        Err(StoreError::NotFound)
    ));

    // A sync: dev changes plan, prod is gone (with its groups), test appears.
    let removed = store
        .sync_workspace_index(
            "h3",
            &[
                ("acme".to_owned(), "dev".to_owned()),
                ("acme".to_owned(), "prod".to_owned()),
                ("acme".to_owned(), "test".to_owned()),
            ],
            &[
                row("acme", "dev", "dedicated-large", "h3"),
                row("acme", "test", "shared-small", "h3"),
            ],
        )
        .await
        .expect("sync");
    assert_eq!(removed, 4, "prod's three default groups and its devs");
    assert_eq!(
        running(store, &org.id).await,
        pairs(&[("dev", "dedicated-large"), ("test", "shared-small")]),
        "dev re-planned, prod ended, test started"
    );
    assert_eq!(store.subscriptions(&org.id).await.expect("all").len(), 1207);
    let names: Vec<(String, String)> = store
        .indexed_workspaces("acme")
        .await
        .expect("list")
        .into_iter()
        .map(|w| (w.name, w.plan))
        .collect();
    assert_eq!(
        names,
        [
            ("dev".to_owned(), "dedicated-large".to_owned()),
            ("test".to_owned(), "shared-small".to_owned())
        ]
    );
    assert_eq!(
        store
            .workspace_groups("acme", "dev")
            .await
            .expect("kept")
            .len(),
        3
    );
    assert_eq!(
        store.workspaces_without_groups().await.expect("bare"),
        [("acme".to_owned(), "test".to_owned())]
    );
    // A full replace removes groups of workspaces no longer there.
    assert_eq!(
        store
            .replace_workspace_index("h4", &[row("ghost", "x", "shared-small", "h4")])
            .await
            .expect("replace"),
        3
    );
    assert!(
        running(store, &org.id).await.is_empty(),
        "no workspace of acme is left to bill; ghost's organization is unknown to SQL"
    );
    let before = store.subscriptions(&org.id).await.expect("all").len();
    store.forget_workspace_index_head().await.expect("forget");
    assert_eq!(store.workspace_index_head().await.expect("head"), None);

    // Subscriptions: one running per workspace.
    store
        .start_subscription(&org.id, "dev", "shared-small")
        .await
        .expect("start");
    store
        .start_subscription(&org.id, "dev", "dedicated-large")
        .await
        .expect("rotate");
    store
        .start_subscription(&org.id, "test", "shared-small")
        .await
        .expect("start");
    assert_eq!(
        store.end_subscription(&org.id, "dev").await.expect("end"),
        1
    );
    assert_eq!(
        store
            .end_subscription(&org.id, "dev")
            .await
            .expect("end again"),
        0
    );
    let subs = store.subscriptions(&org.id).await.expect("subs");
    let running: Vec<&str> = subs
        .iter()
        .filter(|s| s.ended_at.is_none())
        .map(|s| s.workspace.as_str())
        .collect();
    assert_eq!(running, ["test"]);
    assert_eq!(subs.len(), before + 3);

    // Default groups for many workspaces at once (more than are looked up one by one):
    // those with groups keep theirs, repeats count once.
    let mut many: Vec<DefaultGroupsOf> = (0..40)
        .map(|i| DefaultGroupsOf {
            org: "acme".to_owned(),
            workspace: format!("bulk{i:02}"),
            creator: (i % 2 == 0).then(|| dev.id.clone()),
        })
        .collect();
    many.push(many[0].clone());
    assert!(
        store
            .create_default_groups("acme", "keep", Some(&owner.id))
            .await
            .expect("one")
    );
    many.push(DefaultGroupsOf {
        org: "acme".to_owned(),
        workspace: "keep".to_owned(),
        creator: Some(dev.id.clone()),
    });
    assert_eq!(
        store
            .create_default_groups_of(&many)
            .await
            .expect("bulk defaults"),
        40
    );
    assert_eq!(
        store
            .create_default_groups_of(&many[..3])
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        store
            .direct_groups("acme", "bulk00", &dev.id)
            .await
            .expect("creator"),
        ["WSAdmins"]
    );
    assert!(
        store
            .group_members("acme", "bulk01", "WSAdmins")
            .await
            .expect("no creator")
            .is_empty()
    );
    assert_eq!(
        store
            .workspace_groups("acme", "bulk39")
            .await
            .expect("groups")
            .len(),
        3
    );
    assert!(
        !store
            .direct_groups("acme", "keep", &dev.id)
            .await
            .expect("keep kept its groups")
            .contains(&"WSAdmins".to_owned())
    );
}

#[tokio::test]
async fn the_tenancy_story_on_sqlite() {
    let dir = support::TempDir::new("store-tenancy");
    let store = Store::connect(&dir.0.join("story.db").display().to_string())
        .await
        .expect("open");
    story(&store).await;
    store.close().await;
}

#[tokio::test]
async fn the_tenancy_story_on_postgres() {
    let Some(db) = support::postgres::fresh_database().await else {
        return;
    };
    let store = Store::connect(&db.url).await.expect("open");
    story(&store).await;
    store.close().await;
}
