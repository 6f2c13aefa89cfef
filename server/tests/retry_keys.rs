//! Retry keys (`Idempotency-Key`, or `x-request-id` without one) are scoped to the caller
//! and the route: the same key from another organization is a new request that never sees
//! the first one's commit; the same key with another body is refused with a stable code and
//! no commit; the same key and body is a replay of the first answer, also after a restart;
//! a key longer than what is kept is refused. On SQLite and on PostgreSQL. Group changes
//! follow the same rule.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Person, server_with};

const KEY: &str = "create-dev-1";

/// `POST path` of `state` as `who` with `body` and the retry key `key` in `header`.
async fn post(
    state: &server::http::AppState,
    who: &Person,
    path: &str,
    body: Value,
    header: (&str, &str),
) -> support::Answer {
    who.client()
        .send_with(state, Method::POST, path, Some(body), &[header])
        .await
}

async fn retry_keys_are_per_caller_and_route(name: &str, database_url: Option<String>) {
    let env = server_with(name, |s| {
        s.limits.actions_per_org_per_second = 0;
        s.database_url = database_url.map(server::settings::Secret::new);
    })
    .await;
    let ana = env.person("ana@acme.test").await;
    let bob = env.person("bob@globex.test").await;
    env.org("acme", &ana).await;
    env.org("globex", &bob).await;
    let state = env.state.clone();
    let dev = json!({"name": "dev", "plan": "shared-small"});
    let key = ("idempotency-key", KEY);

    // Ana's first request commits.
    let before = env.commits().len();
    let first = post(
        &state,
        &ana,
        "/api/v1/orgs/acme/workspaces",
        dev.clone(),
        key,
    )
    .await
    .expect(StatusCode::CREATED);
    let ana_commit = first.body["commit"].as_str().expect("a commit").to_owned();
    assert_eq!(first.body.get("replayed"), None);
    assert_eq!(env.commits().len(), before + 1);
    let head = &env.commits()[0];
    let request = head.trailer("Hexabase-Request").expect("request trailer");
    assert_ne!(
        request, KEY,
        "the trailer holds the scoped id, not the raw key"
    );
    assert_eq!(
        head.trailer("Hexabase-Actor-Id"),
        Some(ana.user.id.as_str())
    );
    assert!(head.trailer("Hexabase-Request-Digest").is_some());

    // The same key and body from another organization is a new request: a commit of its
    // own, and nothing of Ana's commit.
    let theirs = post(
        &state,
        &bob,
        "/api/v1/orgs/globex/workspaces",
        dev.clone(),
        key,
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(theirs.body.get("replayed"), None, "{}", theirs.body);
    let bob_commit = theirs.body["commit"].as_str().expect("a commit").to_owned();
    assert_ne!(bob_commit, ana_commit);
    assert_eq!(
        env.commits().len(),
        before + 2,
        "two commits for two callers"
    );
    assert_ne!(env.commits()[0].trailer("Hexabase-Request"), Some(request));
    for (who, org) in [(&ana, "acme"), (&bob, "globex")] {
        let list = who
            .client()
            .send(
                &state,
                Method::GET,
                &format!("/api/v1/orgs/{org}/workspaces"),
                None,
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(
            list.body.as_array().map(Vec::len),
            Some(1),
            "{org}: {}",
            list.body
        );
    }

    // Ana's retry with the same body is a replay of her first answer.
    let again = post(
        &state,
        &ana,
        "/api/v1/orgs/acme/workspaces",
        dev.clone(),
        key,
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(again.body["replayed"], json!(true));
    assert_eq!(again.body["commit"], json!(ana_commit));

    // The same key with another body: refused with a stable code, no commit, no commit id.
    let other = json!({"name": "qa", "plan": "shared-small"});
    let reused = post(
        &state,
        &ana,
        "/api/v1/orgs/acme/workspaces",
        other.clone(),
        key,
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["code"], "idempotency-key-reused");
    assert_eq!(reused.body["field"], "Idempotency-Key");
    assert!(!reused.body.to_string().contains(&ana_commit));
    assert_eq!(
        env.commits().len(),
        before + 2,
        "no commit for a reused key"
    );

    // A creation that a retry would find done ("the slug is taken") is replayed too; the
    // same key from someone else finds the slug taken.
    let initech = json!({"slug": "initech", "name": "Initech"});
    let org_key = ("idempotency-key", "org-1");
    let made = post(&state, &ana, "/api/v1/orgs", initech.clone(), org_key)
        .await
        .expect(StatusCode::CREATED);
    let again = post(&state, &ana, "/api/v1/orgs", initech.clone(), org_key)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(again.body, made.body);
    let renamed = json!({"slug": "initech", "name": "Other"});
    let reused = post(&state, &ana, "/api/v1/orgs", renamed, org_key)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["code"], "idempotency-key-reused");
    let taken = post(&state, &bob, "/api/v1/orgs", initech, org_key)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(taken.body["field"], "slug");
    assert_eq!(
        env.commits().len(),
        before + 3,
        "one commit for the organization"
    );

    // `x-request-id` is the key when there is no Idempotency-Key, with the same rules.
    let rid = ("x-request-id", "trace-7");
    let web = json!({"name": "web"});
    let projects = "/api/v1/orgs/acme/workspaces/dev/projects";
    let made = post(&state, &ana, projects, web.clone(), rid)
        .await
        .expect(StatusCode::CREATED);
    let replay = post(&state, &ana, projects, web.clone(), rid)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(replay.body["replayed"], json!(true));
    assert_eq!(replay.body["commit"], made.body["commit"]);
    let changed = post(&state, &ana, projects, json!({"name": "api"}), rid)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (
            changed.body["code"].as_str(),
            changed.body["field"].as_str()
        ),
        (Some("idempotency-key-reused"), Some("x-request-id"))
    );
    // The same key on another route is another request.
    let elsewhere = post(
        &state,
        &ana,
        "/api/v1/orgs/acme/workspaces",
        json!({"name": "staging", "plan": "shared-small"}),
        rid,
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(elsewhere.body.get("replayed"), None);

    // Keys longer than what is kept are refused, naming the header, with no commit.
    let count = env.commits().len();
    let long = "k".repeat(350);
    for header in ["x-request-id", "idempotency-key"] {
        let answer = post(
            &state,
            &ana,
            "/api/v1/orgs/acme/workspaces",
            json!({"name": "long", "plan": "shared-small"}),
            (header, &long),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            answer.body["field"].as_str().map(str::to_ascii_lowercase),
            Some(header.to_owned()),
            "{}",
            answer.body
        );
    }
    assert_eq!(env.commits().len(), count, "no commit for an over-long key");

    // After a restart (the request index is read from Git again) the replay and the
    // refusal hold.
    let settings = (*env.state.settings).clone();
    env.state.store.close().await;
    let reopened = server::serve::open(settings).await.expect("reopen");
    let again = post(&reopened, &ana, "/api/v1/orgs/acme/workspaces", dev, key)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(again.body["replayed"], json!(true));
    assert_eq!(again.body["commit"], json!(ana_commit));
    let reused = post(&reopened, &ana, "/api/v1/orgs/acme/workspaces", other, key)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["code"], "idempotency-key-reused");
    let theirs_again = post(
        &reopened,
        &bob,
        "/api/v1/orgs/globex/workspaces",
        json!({"name": "dev", "plan": "shared-small"}),
        key,
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(theirs_again.body["commit"], json!(bob_commit));
    assert_eq!(env.commits().len(), count, "replays make no commit");
    reopened.store.close().await;
}

#[tokio::test]
async fn retry_keys_are_per_caller_and_route_on_sqlite() {
    retry_keys_are_per_caller_and_route("retry-keys-sqlite", None).await;
}

#[tokio::test]
async fn retry_keys_are_per_caller_and_route_on_postgres() {
    let Some(db) = support::postgres::fresh_database().await else {
        return;
    };
    retry_keys_are_per_caller_and_route("retry-keys-postgres", Some(db.url.clone())).await;
}

#[tokio::test]
async fn a_retried_group_member_add_is_one_commit() {
    let env = server_with("retry-keys-groups", |s| {
        s.limits.actions_per_org_per_second = 0;
    })
    .await;
    let ana = env.person("ana@acme.test").await;
    let carl = env.person("carl@acme.test").await;
    env.org("acme", &ana).await;
    let state = env.state.clone();
    post(
        &state,
        &ana,
        "/api/v1/orgs/acme/workspaces",
        json!({"name": "dev", "plan": "shared-small"}),
        ("idempotency-key", "create-dev"),
    )
    .await
    .expect(StatusCode::CREATED);
    let path = "/api/v1/orgs/acme/workspaces/dev/groups/WSUsers/members";
    let body = json!({"user": "carl@acme.test"});
    let key = ("idempotency-key", "add-carl-1");

    let before = env.commits().len();
    let first = post(&state, &ana, path, body.clone(), key)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(first.body["userId"], json!(carl.user.id));
    assert_eq!(first.body.get("replayed"), None, "{}", first.body);
    assert_eq!(env.commits().len(), before + 1);
    let head = &env.commits()[0];
    assert_eq!(head.trailer("Hexabase-Action"), Some("add-group-member"));

    let again = post(&state, &ana, path, body, key)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(again.body["replayed"], json!(true), "{}", again.body);
    assert_eq!(again.body["userId"], json!(carl.user.id));
    assert_eq!(env.commits().len(), before + 1, "a replay makes no commit");

    // The same key with another body is refused, with no commit.
    let reused = post(&state, &ana, path, json!({"user": "ana@acme.test"}), key)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["code"], "idempotency-key-reused");
    assert_eq!(env.commits().len(), before + 1);
}
