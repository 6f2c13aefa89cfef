//! Access in Git (issue #19): a workspace's groups and members live in its `workspace.yaml`.
//!
//! - Adding and removing a member through the API is one commit each, authored by the
//!   administrator who did it, with the `Hexabase-*` trailers, in `git log` and the audit
//!   log; the file names members by user id, never by email or name.
//! - A commit that did not come through the API (a merged pull request, simulated by a
//!   commit straight onto the branch) that removes someone from a group counts in the next
//!   token: the `groups` claim loses the group, and with no group left no token is issued.
//! - The migration: groups that only SQL held are written to Git at the next start, one
//!   commit per workspace, once.
//!
//! `cargo test -p server --test access_in_git`; on PostgreSQL through `--test on_postgres`.

mod oidc_support;
mod support;

use axum::http::{Method, StatusCode, header};
use oidc_support::{claims, form, pkce, query_param};
use serde_json::{Value, json};
use support::{Answer, Client, TestServer, server_with, sign_up};

const ISSUER: &str = "https://hexabase.test/oidc";
const DEV: &str = "ws-acme-dev";
const REDIRECT: &str = "http://127.0.0.1:18000/callback";
const WS: &str = "/api/v1/orgs/acme/workspaces";

/// The code flow for `who` at acme/dev: the token answer, or the authorization's refusal.
async fn token(srv: &TestServer, who: &Client) -> Result<Value, String> {
    let (verifier, challenge) = pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", DEV),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email groups"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let answer = who
        .send(
            &srv.state,
            Method::GET,
            &format!("/oidc/oauth2/authorize?{}", form(&params)),
            None,
        )
        .await;
    let to = answer
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a redirect, got {} {}", answer.status, answer.body))
        .to_owned();
    if let Some(error) = query_param(&to, "error") {
        return Err(error);
    }
    let code = query_param(&to, "code").expect("a code");
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", DEV),
        ("code_verifier", verifier.as_str()),
    ];
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/oidc/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(form(&pairs)))
        .expect("a request");
    let answer: Answer = support::send(&srv.state, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    Ok(answer.body)
}

/// The groups claim of `who`'s ID token at acme/dev.
async fn groups_claim(srv: &TestServer, who: &Client) -> Result<Vec<String>, String> {
    let answer = token(srv, who).await?;
    let id_token = claims(answer["id_token"].as_str().expect("an ID token"));
    Ok(id_token["groups"]
        .as_array()
        .expect("a groups claim")
        .iter()
        .map(|g| g.as_str().expect("a string").to_owned())
        .collect())
}

/// `intent/acme/dev/workspace.yaml` at the branch head.
fn workspace_file(srv: &TestServer) -> String {
    let repo = git2::Repository::open(srv.state.settings.git_repo()).expect("open repo");
    let head = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_tree())
        .expect("a head");
    let entry = head
        .get_path(std::path::Path::new("intent/acme/dev/workspace.yaml"))
        .expect("the workspace file");
    let blob = repo.find_blob(entry.id()).expect("a blob");
    String::from_utf8(blob.content().to_vec()).expect("UTF-8")
}

/// Commits `text` as `intent/acme/dev/workspace.yaml` straight onto the branch, as a merged
/// pull request would land: not through the server.
fn commit_by_hand(srv: &TestServer, text: &str) {
    let repo = git2::Repository::open(srv.state.settings.git_repo()).expect("open repo");
    let parent = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("a head");
    let blob = repo.blob(text.as_bytes()).expect("a blob");
    let tree = parent.tree().expect("a tree");
    // Rebuild intent/acme/dev with the new file, then each parent folder up to the root.
    let path = ["intent", "acme", "dev"];
    let mut trees = vec![tree.clone()];
    for name in path {
        let next = trees
            .last()
            .expect("a tree")
            .get_name(name)
            .expect("the folder")
            .to_object(&repo)
            .and_then(|o| o.peel_to_tree())
            .expect("a folder");
        trees.push(next);
    }
    let mut id = {
        let mut b = repo
            .treebuilder(Some(trees.last().expect("dev")))
            .expect("a builder");
        b.insert("workspace.yaml", blob, 0o100_644).expect("insert");
        b.write().expect("write")
    };
    for (i, name) in path.iter().enumerate().rev() {
        let mut b = repo.treebuilder(Some(&trees[i])).expect("a builder");
        b.insert(name, id, 0o040_000).expect("insert");
        id = b.write().expect("write");
    }
    let tree = repo.find_tree(id).expect("the new tree");
    let who = git2::Signature::now("Reviewer", "reviewer@acme.test").expect("a signature");
    repo.commit(
        Some("refs/heads/main"),
        &who,
        &who,
        "Remove ana from oncall (merged pull request)",
        &tree,
        &[&parent],
    )
    .expect("commit");
}

/// `file` without the member `id`, and without a `members:` key it leaves empty.
fn without_member(file: &str, id: &str) -> String {
    let lines: Vec<&str> = file.lines().filter(|l| !l.contains(id)).collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let next_is_item = lines.get(i + 1).is_some_and(|n| {
            n.trim_start().starts_with("- ") && n.len() - n.trim_start().len() >= indent
        });
        if line.trim() == "members:" && !next_is_item {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

async fn post(srv: &TestServer, who: &Client, path: &str, body: Value) {
    who.send(&srv.state, Method::POST, path, Some(body))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn membership_changes_are_commits_and_a_merged_removal_counts_in_the_next_token() {
    let srv = server_with("access-in-git", |s| {
        s.public_url = Some(ISSUER.to_owned());
        s.limits.actions_per_org_per_second = 0;
    })
    .await;
    let state = &srv.state;
    let (admin, signed) = sign_up(state, "admin@acme.test", "Admin", Some(&srv.setup_token)).await;
    let admin_id = signed.body["user"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let (ana, signed) = sign_up(state, "ana@acme.test", "Ana", None).await;
    let ana_id = signed.body["user"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    post(
        &srv,
        &admin,
        "/api/v1/orgs",
        json!({"slug": "acme", "name": "Acme"}),
    )
    .await;
    post(
        &srv,
        &admin,
        WS,
        json!({"name": "dev", "plan": "shared-small"}),
    )
    .await;
    post(
        &srv,
        &admin,
        &format!("{WS}/dev/groups"),
        json!({"name": "oncall", "parent": "WSUsers"}),
    )
    .await;
    post(
        &srv,
        &admin,
        &format!("{WS}/dev/groups/oncall/members"),
        json!({"user": "ana@acme.test"}),
    )
    .await;

    // One commit, authored by the administrator, naming Ana by id only.
    let commits = srv.commits();
    let added = &commits[0];
    assert_eq!(added.author, "Admin <admin@acme.test>");
    assert_eq!(added.trailer("Hexabase-Action"), Some("add-group-member"));
    assert_eq!(added.trailer("Hexabase-Workspace"), Some("dev"));
    assert_eq!(added.trailer("Hexabase-Actor-Id"), Some(admin_id.as_str()));
    let file = workspace_file(&srv);
    assert!(file.contains(&ana_id), "{file}");
    assert!(
        file.contains(&admin_id),
        "the creator is in WSAdmins: {file}"
    );
    assert!(
        !file.contains("ana@acme.test") && !file.contains("Ana"),
        "{file}"
    );
    assert_eq!(
        commits[1].trailer("Hexabase-Action"),
        Some("create-group"),
        "creating the group was its own commit"
    );

    // The audit log shows it.
    let audit = admin
        .send(state, Method::GET, "/api/v1/orgs/acme/audit", None)
        .await
        .expect(StatusCode::OK)
        .body;
    let text = audit.to_string();
    assert!(text.contains("add-group-member"), "{text}");
    assert!(text.contains(&added.id), "{text}");

    // The token carries the group, flattened.
    let groups = groups_claim(&srv, &ana).await.expect("a token");
    for g in ["oncall", "WSUsers", "WorkspaceMembers"] {
        assert!(groups.iter().any(|x| x.ends_with(g)), "{g} in {groups:?}");
    }

    // A merged pull request removes Ana: the next token has no group of the workspace, so
    // there is none.
    let without = without_member(&file, &ana_id);
    assert!(
        !without.contains(&ana_id) && without.contains("oncall"),
        "{without}"
    );
    commit_by_hand(&srv, &without);
    assert_eq!(
        groups_claim(&srv, &ana).await,
        Err("access_denied".to_owned())
    );
    let members = admin
        .send(
            state,
            Method::GET,
            &format!("{WS}/dev/groups/oncall/members"),
            None,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(!members.to_string().contains(&ana_id), "{members}");

    // Added again and removed through the API: one commit each, by the administrator.
    post(
        &srv,
        &admin,
        &format!("{WS}/dev/groups/oncall/members"),
        json!({"user": ana_id}),
    )
    .await;
    assert!(groups_claim(&srv, &ana).await.is_ok());
    admin
        .send(
            state,
            Method::DELETE,
            &format!("{WS}/dev/groups/oncall/members/{ana_id}"),
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let removed = &srv.commits()[0];
    assert_eq!(removed.author, "Admin <admin@acme.test>");
    assert_eq!(
        removed.trailer("Hexabase-Action"),
        Some("remove-group-member")
    );
    assert_eq!(
        groups_claim(&srv, &ana).await,
        Err("access_denied".to_owned())
    );
}

#[tokio::test]
async fn groups_only_sql_held_move_to_git_once_at_start() {
    let srv = server_with("access-migration", |s| {
        s.limits.actions_per_org_per_second = 0;
    })
    .await;
    let (admin, signed) = sign_up(
        &srv.state,
        "admin@acme.test",
        "Admin",
        Some(&srv.setup_token),
    )
    .await;
    let admin_id = signed.body["user"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    post(
        &srv,
        &admin,
        "/api/v1/orgs",
        json!({"slug": "acme", "name": "Acme"}),
    )
    .await;
    post(
        &srv,
        &admin,
        WS,
        json!({"name": "dev", "plan": "shared-small"}),
    )
    .await;
    // As before access was in Git: the groups only in SQL (an extra one too), none in Git.
    let file = workspace_file(&srv);
    let legacy: String = file
        .lines()
        .take_while(|l| !l.starts_with("  groups:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        legacy, file,
        "the new workspace has its groups in Git: {file}"
    );
    commit_by_hand(&srv, &legacy);
    srv.state
        .store
        .create_group("acme", "dev", "oncall", Some("WSUsers"))
        .await
        .expect("a group in SQL");
    let before = srv.commits().len();

    // The next start writes them, in one commit by the bot; the one after writes nothing.
    let dir = support::TempDir::new("access-migration-copy");
    srv.state.store.close().await;
    let (settings, _database) = srv.copy_into(&dir).await;
    let reopened = server::serve::open(settings.clone())
        .await
        .expect("open again");
    let commits = support::commits(&reopened);
    assert_eq!(commits.len(), before + 1);
    assert_eq!(
        commits[0].trailer("Hexabase-Action"),
        Some("move-access-to-git")
    );
    let repo = git2::Repository::open(reopened.settings.git_repo()).expect("open repo");
    let text = {
        let tree = repo
            .find_reference("refs/heads/main")
            .and_then(|r| r.peel_to_tree())
            .expect("a head");
        let entry = tree
            .get_path(std::path::Path::new("intent/acme/dev/workspace.yaml"))
            .expect("the file");
        String::from_utf8(
            repo.find_blob(entry.id())
                .expect("a blob")
                .content()
                .to_vec(),
        )
        .expect("UTF-8")
    };
    assert!(
        text.contains("oncall") && text.contains(&admin_id),
        "{text}"
    );
    reopened.store.close().await;
    let again = server::serve::open(settings)
        .await
        .expect("open a third time");
    assert_eq!(support::commits(&again).len(), before + 1, "once only");
    again.store.close().await;
}
