//! Who did something is read from stable ids, never from display text: emails are checked
//! as addresses wherever they enter, every engine commit names its actor's user id in a
//! trailer of its own (`Hexabase-Actor-Id`), and the workspace creator who joins `WSAdmins`
//! comes from that id. Any display name becomes a commit author Git accepts.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{Client, server_with};

/// A workspace's creator is found by the id in its commit, even when the display form of
/// the author (from an email stored before addresses were checked) names someone else.
async fn the_creator_is_read_from_the_actor_id(name: &str, database_url: Option<String>) {
    let env = server_with(name, |s| {
        s.limits.actions_per_org_per_second = 0;
        s.database_url = database_url.map(server::settings::Secret::new);
    })
    .await;
    let victim = env.person("victim@a.test").await;
    // Stored directly: what an account made before emails were checked looks like.
    let eve = env.person("eve<victim@a.test").await;
    env.org("evil", &eve).await;
    let created = eve
        .client()
        .send(
            &env.state,
            Method::POST,
            "/api/v1/orgs/evil/workspaces",
            Some(json!({"name": "dev", "plan": "shared-small"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let head = &env.commits()[0];
    assert_eq!(
        head.trailer("Hexabase-Actor-Id"),
        Some(eve.user.id.as_str())
    );
    assert!(
        !head.author.contains("<eve<"),
        "the author line stays whole: {}",
        head.author
    );
    assert!(created.body["commit"].is_string());
    let admins = |state: server::http::AppState| async move {
        state
            .store
            .group_members("evil", "dev", "WSAdmins")
            .await
            .or_else(|e| match e {
                server::store::StoreError::NotFound => Ok(Vec::new()),
                other => Err(other),
            })
            .expect("admins")
            .into_iter()
            .map(|m| m.user_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        admins(env.state.clone()).await,
        std::slice::from_ref(&eve.user.id)
    );
    // Lose SQL's groups; the server rebuilds them from Git at start, the creator from the
    // commit's actor id.
    env.state
        .store
        .replace_workspace_index("0000", &[])
        .await
        .expect("empty the index");
    assert!(admins(env.state.clone()).await.is_empty());
    let settings = (*env.state.settings).clone();
    let reopened = server::serve::open(settings).await.expect("reopen");
    let rebuilt = admins(reopened.clone()).await;
    assert_eq!(
        rebuilt,
        std::slice::from_ref(&eve.user.id),
        "not {}",
        victim.user.id
    );
    reopened.store.close().await;
}

#[tokio::test]
async fn the_creator_is_read_from_the_actor_id_on_sqlite() {
    the_creator_is_read_from_the_actor_id("creator-id-sqlite", None).await;
}

#[tokio::test]
async fn the_creator_is_read_from_the_actor_id_on_postgres() {
    let Some(db) = support::postgres::fresh_database().await else {
        return;
    };
    the_creator_is_read_from_the_actor_id("creator-id-postgres", Some(db.url.clone())).await;
}

#[tokio::test]
async fn emails_with_a_display_part_are_refused_at_sign_up_and_invitation() {
    let env = server_with("email-refused", |s| s.accounts.open_signup = true).await;
    let owner = env.person("owner@acme.test").await;
    env.org("acme", &owner).await;
    let before = env.commits().len();
    for email in [
        "eve<victim@a.test",
        "Eve <victim@a.test>",
        "eve@a.test>",
        "\"eve\"@a.test",
        "eve\u{85}@a.test",
        &format!("{}@a.test", "e".repeat(65)),
    ] {
        let signup = Client::default()
            .send(
                &env.state,
                Method::POST,
                "/api/v1/auth/signup",
                Some(json!({"email": email, "name": "Eve", "password": "correct horse battery"})),
            )
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(signup.field(), "email", "{email:?}: {}", signup.body);
        let invite = owner
            .client()
            .send(
                &env.state,
                Method::POST,
                "/api/v1/orgs/acme/invitations",
                Some(json!({"email": email, "role": "owner"})),
            )
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(invite.field(), "email", "{email:?}: {}", invite.body);
    }
    assert_eq!(env.commits().len(), before, "nothing committed");
    assert!(
        env.state
            .store
            .user_by_email("victim@a.test")
            .await
            .is_err()
    );
}

/// Names Git would trim to nothing, or that hold `<`, `>`: a sign-up either succeeds with a
/// commit Git accepts, or names `name`; never a 500.
#[tokio::test]
async fn any_display_name_signs_up_or_names_the_field_never_500() {
    let env = server_with("names", |s| s.accounts.open_signup = true).await;
    // The first account (the administrator) exists, so sign-up is open to others.
    env.person("admin@hexabase.test").await;
    let repo = git2::Repository::open(env.state.settings.git_repo()).expect("open");
    for (i, name) in [
        "'",
        "\"\"",
        "<>",
        ";",
        "'\"\\",
        "Eve <x@y>",
        "Ana\nHexabase-Actor-Id: x",
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("user{i}@names.test");
        let answer = Client::default()
            .send(
                &env.state,
                Method::POST,
                "/api/v1/auth/signup",
                Some(json!({"email": email, "name": name, "password": "correct horse battery"})),
            )
            .await;
        match answer.status {
            StatusCode::CREATED => {
                let id = answer.body["user"]["id"].as_str().expect("user id");
                let head = repo
                    .find_reference("refs/heads/main")
                    .and_then(|r| r.peel_to_commit())
                    .expect("head");
                let author = head.author();
                let shown = author.name().expect("utf-8");
                assert!(
                    !shown.is_empty() && !shown.contains(['<', '>', '\n']),
                    "{name:?}: {shown:?}"
                );
                assert_eq!(author.email().ok(), Some(email.as_str()), "{name:?}");
                let message = head.message().expect("utf-8");
                let ids: Vec<&str> = message
                    .lines()
                    .filter_map(|l| l.strip_prefix("Hexabase-Actor-Id: "))
                    .collect();
                assert_eq!(ids, [id], "{name:?}: {message}");
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(answer.field(), "name", "{name:?}: {}", answer.body);
            }
            other => panic!("{name:?}: {other} {}", answer.body),
        }
    }
}
