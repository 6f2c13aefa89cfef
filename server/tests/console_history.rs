//! The console's History pages through the whole router (`server::console::app`): the
//! timeline and one commit's page render for the owner, a hand-made commit and people's
//! names carrying markup come out escaped on every page, and a stranger finds nothing.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{Client, sign_up};
use tower::ServiceExt as _;

/// Markup people could type into their name, an organization's display name or a commit.
const HOSTILE: [&str; 4] = [
    "<script>alert(1)</script>",
    "<b>acme</b>",
    "<img src=x onerror=alert(2)>",
    // Git refuses angle brackets in a name: this one tries to break out of an attribute.
    "Pat\" onmouseover=\"alert(3)",
];

async fn page(state: &server::http::AppState, client: &Client, path: &str) -> (StatusCode, String) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    if let Some(cookie) = &client.cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = server::console::app(state.clone())
        .oneshot(request.body(Body::empty()).expect("a request"))
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn assert_no_markup(path: &str, html: &str) {
    for bad in HOSTILE {
        assert!(!html.contains(bad), "{path} shows {bad} as markup:\n{html}");
    }
}

#[tokio::test]
async fn history_pages_escape_every_name_and_hide_everything_from_strangers() {
    let server = support::server("console-history").await;
    let state = &server.state;
    let (owner, _) = sign_up(
        state,
        "owner@example.com",
        HOSTILE[0],
        Some(&server.setup_token),
    )
    .await;
    for (path, body) in [
        ("/api/v1/orgs", json!({"slug": "acme", "name": HOSTILE[1]})),
        (
            "/api/v1/orgs/acme/workspaces",
            json!({"name": "shop", "plan": "shared-small"}),
        ),
        (
            "/api/v1/orgs/acme/workspaces/shop/projects",
            json!({"name": "web"}),
        ),
    ] {
        let answer = owner.send(state, Method::POST, path, Some(body)).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.body);
    }
    // A person commits by hand, with markup in the subject and in their name.
    let repo = git2::Repository::open(state.settings.git_repo()).expect("open");
    let head = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("head");
    let edits = std::iter::once((
        "intent/acme/shop/notes.yaml".to_owned(),
        server::gitops::Edit::Write(format!("note: {:?}\n", HOSTILE[2]).into_bytes()),
    ))
    .collect();
    let tree = server::gitops::tree::apply(&repo, Some(&head.tree().expect("tree")), &edits)
        .expect("tree")
        .expect("non-empty");
    let tree = repo.find_tree(tree).expect("tree");
    let person = git2::Signature::now(HOSTILE[3], "pat@example.com").expect("signature");
    let hand = repo
        .commit(
            Some("refs/heads/main"),
            &person,
            &person,
            &format!("{}\n", HOSTILE[2]),
            &tree,
            &[&head],
        )
        .expect("commit")
        .to_string();

    let (status, html) = page(state, &owner, "/orgs/acme/history").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_no_markup("history", &html);
    assert!(
        html.contains("Create project web") || html.contains("web"),
        "{html}"
    );
    assert!(
        html.contains(&format!("/orgs/acme/history/{hand}")),
        "{html}"
    );
    let mut paths = vec![
        "/orgs/acme/workspaces/shop/history".to_owned(),
        "/orgs/acme/history?actor=%3Cscript%3E&since=%3Cb%3Ex%3C%2Fb%3E".to_owned(),
        format!("/orgs/acme/history/{hand}"),
    ];
    for commit in support::commits(state).iter().take(3) {
        paths.push(format!("/orgs/acme/history/{}", commit.id));
    }
    for path in &paths {
        let (status, html) = page(state, &owner, path).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {status}\n{html}"
        );
        assert_no_markup(path, &html);
    }
    let (_, html) = page(state, &owner, &format!("/orgs/acme/history/{hand}")).await;
    assert!(html.contains("&lt;img src=x"), "{html}");
    assert!(html.contains("<ins>"), "the diff marks added lines: {html}");
    let (status, html) = page(state, &owner, "/orgs/acme/history?since=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"e-since\""), "{html}");
    assert!(html.contains("value=\"yesterday\""), "{html}");

    // A stranger (another organization's user) finds nothing; a signed-out browser signs in.
    let (stranger, _) = sign_up(state, "eve@example.com", "Eve", None).await;
    for path in &paths {
        let (status, html) = page(state, &stranger, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {html}");
        assert!(!html.contains(&hand), "{path}: {html}");
    }
    let (status, _) = page(state, &Client::default(), "/orgs/acme/history").await;
    assert!(status.is_redirection(), "{status}");
}
