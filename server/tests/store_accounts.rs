//! The storage story of accounts, organizations and billing: every store method of the
//! accounts slice, on SQLite always and on PostgreSQL (a fresh database per test).

mod support;

use server::store::{
    LAST_OWNER, NewAccount, OidcFlow, OrgRole, PlanPrice, Store, StoreError, new_id,
};

fn account(email: &str, slug: &str, external: Option<(&str, &str)>) -> NewAccount {
    NewAccount {
        user_id: new_id(),
        email: email.to_owned(),
        name: email.split('@').next().unwrap_or("x").to_owned(),
        password_hash: external.is_none().then(|| "$argon2id$fake".to_owned()),
        is_admin: false,
        external: external.map(|(i, s)| (i.to_owned(), s.to_owned())),
        org_slug: slug.to_owned(),
        org_name: format!("{slug} org"),
    }
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("in range")
}

async fn story(store: &Store) {
    // Accounts with their private organizations, in one transaction each.
    let (ada, ada_org) = store
        .create_account(&account("ada@example.com", "ada", None))
        .await
        .unwrap();
    assert!(ada_org.personal);
    assert_eq!(store.platform_admin().await.unwrap(), None);
    assert_eq!(store.user_by_email("ada@example.com").await.unwrap(), ada);
    let (bob, _) = store
        .create_account(&account(
            "bob@example.com",
            "bob",
            Some(("https://idp.example", "sub-1")),
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_external_identity("https://idp.example", "sub-1")
            .await
            .unwrap(),
        bob
    );
    assert!(matches!(
        store
            .user_by_external_identity("https://other.example", "sub-1")
            .await,
        Err(StoreError::NotFound)
    ));
    let root = store
        .create_user("root@example.com", "root", None, true)
        .await
        .unwrap();
    store
        .create_user("root-2@example.com", "root 2", None, true)
        .await
        .unwrap();
    assert_eq!(store.platform_admin().await.unwrap(), Some(root));
    let slugs: Vec<String> = (0..1200).map(|i| format!("org-{i}")).collect();
    let mut asked: Vec<&str> = slugs.iter().map(String::as_str).collect();
    asked.extend(["ada", "bob"]);
    assert_eq!(
        store.known_organizations(&asked).await.unwrap(),
        ["ada".to_owned(), "bob".to_owned()].into()
    );
    // A taken email or slug leaves nothing behind.
    let before = store.user_count().await.unwrap();
    assert!(matches!(
        store
            .create_account(&account("ada@example.com", "ada-2", None))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_account(&account("eve@example.com", "ada", None))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_count().await.unwrap(), before);
    assert!(matches!(
        store.organization_by_slug("ada-2").await,
        Err(StoreError::NotFound)
    ));

    // API tokens: listed by owner, deleted only by their owner.
    let first = store
        .create_api_token(&ada.id, "laptop", "hash-1", None)
        .await
        .unwrap();
    let second = store
        .create_api_token(&ada.id, "ci", "hash-2", Some(i64::MAX))
        .await
        .unwrap();
    let listed = store.api_tokens_of(&ada.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [second.id.as_str(), first.id.as_str()]
    );
    assert!(store.api_tokens_of(&bob.id).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_api_token(&bob.id, &first.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_api_token(&ada.id, &first.id).await.unwrap();
    assert_eq!(store.api_tokens_of(&ada.id).await.unwrap(), [second]);
    // Using a token records when (not again within a minute: the answer is cached).
    let before_use = now();
    assert_eq!(store.user_by_api_token("hash-2").await.unwrap(), ada);
    let used = store.api_tokens_of(&ada.id).await.unwrap()[0].last_used_at;
    assert!(
        used.is_some_and(|at| at >= before_use && at <= now()),
        "{used:?}"
    );
    assert!(matches!(
        store.user_by_api_token("hash-1").await,
        Err(StoreError::NotFound)
    ));

    // Sign-ins in progress work once and only before they expire.
    let flow = OidcFlow {
        provider: "idp".to_owned(),
        nonce: "n".to_owned(),
        code_verifier: "v".to_owned(),
        return_to: Some("/oidc/oauth2/authorize?client_id=ws-acme-dev".to_owned()),
        expires_at: i64::MAX,
    };
    store.start_oidc_flow("state-1", &flow).await.unwrap();
    store
        .start_oidc_flow(
            "state-old",
            &OidcFlow {
                return_to: None,
                expires_at: 1,
                ..flow.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.take_oidc_flow("state-1").await.unwrap(), flow);
    assert!(matches!(
        store.take_oidc_flow("state-1").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.take_oidc_flow("state-old").await,
        Err(StoreError::NotFound)
    ));

    // Organizations, memberships and roles.
    let acme = store
        .create_organization("acme", "Acme", false, &ada.id)
        .await
        .unwrap();
    let mine = store.memberships_of(&ada.id).await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|(o, r)| (o.slug.as_str(), *r))
            .collect::<Vec<_>>(),
        [("acme", OrgRole::Owner), ("ada", OrgRole::Owner)]
    );
    assert_eq!(
        store.membership("acme", &ada.id).await.unwrap(),
        (acme.clone(), OrgRole::Owner)
    );
    assert!(matches!(
        store.membership("acme", &bob.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_member_role(&acme.id, &bob.id, OrgRole::Owner)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        matches!(store.set_member_role(&acme.id, &ada.id, OrgRole::Billing).await, Err(StoreError::Conflict(why)) if why == LAST_OWNER)
    );
    assert!(
        matches!(store.remove_member(&acme.id, &ada.id).await, Err(StoreError::Conflict(why)) if why == LAST_OWNER)
    );

    // Invitations: only the invited email, only once, only before expiry.
    let invitation = store
        .create_invitation(
            &acme.id,
            "bob@example.com",
            OrgRole::Billing,
            "inv-1",
            &ada.id,
            i64::MAX,
        )
        .await
        .unwrap();
    assert_eq!(invitation.role, OrgRole::Billing);
    store
        .create_invitation(
            &acme.id,
            "bob@example.com",
            OrgRole::Owner,
            "inv-old",
            &ada.id,
            1,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .accept_invitation("inv-1", &ada.id, "ada@example.com")
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .accept_invitation("inv-old", &bob.id, "bob@example.com")
            .await,
        Err(StoreError::NotFound)
    ));
    let (org, role) = store
        .accept_invitation("inv-1", &bob.id, "bob@example.com")
        .await
        .unwrap();
    assert_eq!((org.slug.as_str(), role), ("acme", OrgRole::Billing));
    assert!(matches!(
        store
            .accept_invitation("inv-1", &bob.id, "bob@example.com")
            .await,
        Err(StoreError::NotFound)
    ));
    // An owner invitation upgrades; a billing one never downgrades.
    store
        .create_invitation(
            &acme.id,
            "bob@example.com",
            OrgRole::Owner,
            "inv-2",
            &ada.id,
            i64::MAX,
        )
        .await
        .unwrap();
    store
        .create_invitation(
            &acme.id,
            "bob@example.com",
            OrgRole::Billing,
            "inv-3",
            &ada.id,
            i64::MAX,
        )
        .await
        .unwrap();
    let (_, role) = store
        .accept_invitation("inv-2", &bob.id, "bob@example.com")
        .await
        .unwrap();
    assert_eq!(role, OrgRole::Owner);
    let (_, role) = store
        .accept_invitation("inv-3", &bob.id, "bob@example.com")
        .await
        .unwrap();
    assert_eq!(role, OrgRole::Owner);
    let members = store.members(&acme.id).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.email.as_str(), m.role))
            .collect::<Vec<_>>(),
        [
            ("ada@example.com", OrgRole::Owner),
            ("bob@example.com", OrgRole::Owner)
        ]
    );
    // With two owners, one may step down, and then the other is the last.
    store
        .set_member_role(&acme.id, &ada.id, OrgRole::Billing)
        .await
        .unwrap();
    assert!(matches!(
        store.remove_member(&acme.id, &bob.id).await,
        Err(StoreError::Conflict(_))
    ));
    store.remove_member(&acme.id, &ada.id).await.unwrap();
    assert!(matches!(
        store.remove_member(&acme.id, &ada.id).await,
        Err(StoreError::NotFound)
    ));

    // Billing: prices replace each other; subscriptions follow plan changes.
    let prices = [
        PlanPrice {
            plan: "shared-small".to_owned(),
            currency: "EUR".to_owned(),
            monthly_cents: 900,
        },
        PlanPrice {
            plan: "dedicated-large".to_owned(),
            currency: "EUR".to_owned(),
            monthly_cents: 90_000,
        },
    ];
    store.set_plan_prices(&prices).await.unwrap();
    store.set_plan_prices(&prices[..1]).await.unwrap();
    assert_eq!(store.plan_prices().await.unwrap(), prices[..1]);
    store
        .start_subscription(&acme.id, "dev", "shared-small")
        .await
        .unwrap();
    store
        .start_subscription(&acme.id, "dev", "dedicated-large")
        .await
        .unwrap();
    store.end_subscription(&acme.id, "dev").await.unwrap();
    store.end_subscription(&acme.id, "gone").await.unwrap();
    let subscriptions = store.subscriptions(&acme.id).await.unwrap();
    assert_eq!(
        subscriptions
            .iter()
            .map(|s| (s.plan.as_str(), s.ended_at.is_some()))
            .collect::<Vec<_>>(),
        [("shared-small", true), ("dedicated-large", true)]
    );

    // Expired sessions, unaccepted invitations and sign-in flows are purged; live ones stay.
    store
        .create_session("session-old", &ada.id, "csrf", 1)
        .await
        .unwrap();
    store
        .create_session("session-live", &ada.id, "csrf", i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        store.purge_expired(now()).await.unwrap(),
        3,
        "session-old, inv-old and state-old"
    );
    assert_eq!(store.purge_expired(now()).await.unwrap(), 0);
    assert_eq!(store.session("session-live").await.unwrap().user_id, ada.id);

    // Deleting an organization takes its rows with it.
    store.delete_organization(&acme.id).await.unwrap();
    assert!(matches!(
        store.delete_organization(&acme.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.subscriptions(&acme.id).await.unwrap().is_empty());
    assert_eq!(store.memberships_of(&bob.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn accounts_story_on_sqlite() {
    let dir = support::TempDir::new("store-accounts");
    let store = Store::connect(&dir.0.join("hexabase.db").display().to_string())
        .await
        .unwrap();
    story(&store).await;
    store.close().await;
}

#[tokio::test]
async fn accounts_story_on_postgres() {
    let Some(db) = support::postgres::fresh_database().await else {
        return;
    };
    let store = Store::connect(&db.url).await.unwrap();
    story(&store).await;
    store.close().await;
}
