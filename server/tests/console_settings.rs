//! The console's organization settings page through the whole router
//! (`server::console::app`): an invitation made by form and accepted; an API token shown
//! once on the answer and never again, then revoked once confirmed; a non-owner sees no
//! admin controls and their forms are refused; a form without its CSRF token is refused;
//! markup in names escaped; another organization's user gets 404.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{Client, sign_up};
use tower::ServiceExt as _;

const PAGE: &str = "/orgs/acme/settings";

struct Answer {
    status: StatusCode,
    location: String,
    html: String,
}

/// Sends a console request as `client` (a form carries its CSRF token unless `csrf` is false).
async fn send(
    state: &server::http::AppState,
    client: &Client,
    path: &str,
    form: Option<&[(&str, &str)]>,
    csrf: bool,
) -> Answer {
    let method = if form.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = &client.cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = match form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            let mut pairs: Vec<(&str, &str)> = form.to_vec();
            if let Some(token) = client.csrf.as_deref().filter(|_| csrf) {
                pairs.push(("csrf_token", token));
            }
            let url = reqwest::Url::parse_with_params("http://x/", &pairs).expect("a URL");
            Body::from(url.query().unwrap_or_default().to_owned())
        }
        None => Body::empty(),
    };
    let response = server::console::app(state.clone())
        .oneshot(request.body(body).expect("a request"))
        .await
        .expect("the router answers");
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body");
    Answer {
        status,
        location,
        html: String::from_utf8_lossy(&bytes).replace("&#x2f;", "/"),
    }
}

/// The text after `marker` up to the next `end`.
fn after(html: &str, marker: &str, end: char) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    html[start..].split(end).next().map(str::to_owned)
}

#[tokio::test]
async fn settings_manage_users_invitations_and_tokens() {
    let server = support::server("console-settings").await;
    let state = &server.state;
    let (owner, _) = sign_up(
        state,
        "owner@example.com",
        "<script>alert(1)</script>",
        Some(&server.setup_token),
    )
    .await;
    owner
        .send(
            state,
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "acme", "name": "<b>Acme</b>"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let (billing, _) = sign_up(state, "bill@example.com", "<img src=x onerror=1>", None).await;
    let (stranger, _) = sign_up(state, "eve@example.com", "Eve", None).await;

    // The owner's page: users, the invitation form, the token form; names escaped.
    let page = send(state, &owner, PAGE, None, true).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("Invite</button>"), "{}", page.html);
    assert!(page.html.contains("Create token</button>"), "{}", page.html);
    assert!(!page.html.contains("<script>alert"), "{}", page.html);
    assert!(!page.html.contains("<b>Acme</b>"), "{}", page.html);
    assert!(page.html.contains("&lt;b&gt;Acme"), "{}", page.html);
    assert!(
        page.html.contains("id=\"org-switcher\"")
            && page.html.contains("/orgs/acme/settings\">Settings<"),
        "the switcher links the settings: {}",
        page.html
    );

    // A bad email: refused next to its field, what was typed kept (escaped), nothing made.
    let bad = send(
        state,
        &owner,
        &format!("{PAGE}/invitations"),
        Some(&[("email", "no-at-sign<i>"), ("role", "billing")]),
        true,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    let problem = after(&bad.html, "<small id=\"e-email\" class=\"error\">", '<').expect("e-email");
    assert!(!problem.is_empty(), "{}", bad.html);
    assert!(
        bad.html.contains("value=\"no-at-sign&lt;i&gt;\""),
        "{}",
        bad.html
    );
    assert!(!bad.html.contains("/invitations/hbi_"), "{}", bad.html);

    // An invitation by form, its link shown once; the invitee accepts it.
    let invited = send(
        state,
        &owner,
        &format!("{PAGE}/invitations"),
        Some(&[("email", "bill@example.com"), ("role", "billing")]),
        true,
    )
    .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.html);
    let token = after(&invited.html, "/invitations/", '<').expect("the invitation link");
    assert!(token.starts_with("hbi_"), "{token}");
    billing
        .send(
            state,
            Method::POST,
            &format!("/api/v1/invitations/{token}/accept"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let page = send(state, &owner, PAGE, None, true).await;
    assert!(page.html.contains("bill@example.com"), "{}", page.html);
    assert!(!page.html.contains("<img src=x"), "{}", page.html);
    assert!(
        !page.html.contains(&token),
        "the invitation link is shown once"
    );

    // The billing user sees the users but no admin controls, and the forms refuse them.
    let page = send(state, &billing, PAGE, None, true).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("owner@example.com"), "{}", page.html);
    for control in [
        "Invite</button>",
        "Change role</button>",
        "Remove user</button>",
    ] {
        assert!(!page.html.contains(control), "{control}: {}", page.html);
    }
    let refused = send(
        state,
        &billing,
        &format!("{PAGE}/invitations"),
        Some(&[("email", "mallory@example.com"), ("role", "owner")]),
        true,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    assert!(refused.html.contains("only owners"), "{}", refused.html);
    assert!(
        !refused.html.contains("/invitations/hbi_"),
        "{}",
        refused.html
    );
    let members = owner
        .send(state, Method::GET, "/api/v1/orgs/acme/members", None)
        .await
        .expect(StatusCode::OK);
    let bill_id = members
        .body
        .as_array()
        .expect("users")
        .iter()
        .find(|m| m["email"] == "bill@example.com")
        .and_then(|m| m["userId"].as_str())
        .expect("bill is a user")
        .to_owned();
    let promoted = send(
        state,
        &billing,
        &format!("{PAGE}/users/{bill_id}/role"),
        Some(&[("role", "owner")]),
        true,
    )
    .await;
    assert_eq!(promoted.status, StatusCode::FORBIDDEN, "{}", promoted.html);
    let members = owner
        .send(state, Method::GET, "/api/v1/orgs/acme/members", None)
        .await;
    assert!(
        members
            .body
            .as_array()
            .expect("users")
            .iter()
            .any(|m| m["email"] == "bill@example.com" && m["role"] == "billing"),
        "{}",
        members.body
    );

    // The owner changes the role by form.
    let changed = send(
        state,
        &owner,
        &format!("{PAGE}/users/{bill_id}/role"),
        Some(&[("role", "owner")]),
        true,
    )
    .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.html);
    let page = send(state, &billing, PAGE, None, true).await;
    assert!(
        page.html.contains("Invite</button>"),
        "now an owner: {}",
        page.html
    );

    // Without the CSRF token: refused, no token made.
    let forged = send(
        state,
        &owner,
        &format!("{PAGE}/tokens"),
        Some(&[("name", "forged")]),
        false,
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    let page = send(state, &owner, PAGE, None, true).await;
    assert!(!page.html.contains("forged"), "{}", page.html);

    // A token: its secret on the answer, never again; it works until revoked.
    let made = send(
        state,
        &owner,
        &format!("{PAGE}/tokens"),
        Some(&[("name", "ci <b>deploy</b>")]),
        true,
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.html);
    let secret = after(&made.html, "shown only once): <code>", '<').expect("the secret");
    assert!(secret.starts_with("hbt_"), "{secret}");
    assert!(made.html.contains("ci &lt;b&gt;deploy"), "{}", made.html);
    let bearer = Client {
        bearer: Some(secret.clone()),
        ..Client::default()
    };
    bearer
        .send(state, Method::GET, "/api/v1/me", None)
        .await
        .expect(StatusCode::OK);
    let page = send(state, &owner, PAGE, None, true).await;
    assert!(!page.html.contains(&secret), "shown once: {}", page.html);
    assert!(page.html.contains("ci &lt;b&gt;deploy"), "{}", page.html);
    let revoke = format!(
        "{PAGE}/tokens/{}",
        after(&page.html, &format!("{PAGE}/tokens/"), '"').expect("a revoke form")
    );
    assert!(revoke.ends_with("/revoke"), "{revoke}");

    // Another organization's user: 404 on the page and its forms, the token untouched.
    for (path, form) in [
        (PAGE.to_owned(), None),
        (revoke.clone(), Some(&[("confirm", "yes")][..])),
        (
            format!("{PAGE}/invitations"),
            Some(&[("email", "x@example.com"), ("role", "owner")][..]),
        ),
    ] {
        let answer = send(state, &stranger, &path, form, true).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            answer.html
        );
        assert!(!answer.html.contains("Acme"), "{path}: {}", answer.html);
    }

    // Revoking needs the confirmation.
    let unconfirmed = send(state, &owner, &revoke, Some(&[]), true).await;
    assert_eq!(
        unconfirmed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unconfirmed.html
    );
    bearer
        .send(state, Method::GET, "/api/v1/me", None)
        .await
        .expect(StatusCode::OK);
    let revoked = send(state, &owner, &revoke, Some(&[("confirm", "yes")]), true).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.html);
    assert_eq!(revoked.location, PAGE);
    bearer
        .send(state, Method::GET, "/api/v1/me", None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let page = send(state, &owner, PAGE, None, true).await;
    assert!(!page.html.contains("deploy"), "{}", page.html);
    assert!(
        page.html.contains("You have no API tokens"),
        "{}",
        page.html
    );
}
