//! The console's project page through the whole router (`server::console::app`): a CronJob,
//! a Function and a Role added by form, each one commit shown with its schedule in plain
//! words; a bad schedule refused next to its field with what was typed kept; the project
//! deleted once its name is typed; markup in names escaped; a stranger finds nothing.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{Client, sign_up};
use tower::ServiceExt as _;

const PAGE: &str = "/orgs/acme/workspaces/shop/projects/web";

struct Answer {
    status: StatusCode,
    location: String,
    html: String,
}

async fn send(
    state: &server::http::AppState,
    client: &Client,
    method: Method,
    path: &str,
    form: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method.clone()).uri(path);
    if let Some(cookie) = &client.cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = if method == Method::POST {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        if let Some(csrf) = &client.csrf {
            pairs.push(("csrf_token", csrf));
        }
        let url = reqwest::Url::parse_with_params("http://x/", &pairs).expect("a URL");
        Body::from(url.query().unwrap_or_default().to_owned())
    } else {
        Body::empty()
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
        html: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[tokio::test]
async fn a_project_is_managed_by_forms_one_commit_each() {
    let server = support::server("console-project").await;
    let state = &server.state;
    let (owner, _) = sign_up(
        state,
        "owner@example.com",
        "<script>alert(1)</script>",
        Some(&server.setup_token),
    )
    .await;
    for (path, body) in [
        (
            "/api/v1/orgs",
            json!({"slug": "acme", "name": "<b>Acme</b>"}),
        ),
        (
            "/api/v1/orgs/acme/workspaces",
            json!({"name": "shop", "plan": "shared-small"}),
        ),
        (
            "/api/v1/orgs/acme/workspaces/shop/projects",
            json!({"name": "web", "displayName": "<i>Web</i>"}),
        ),
    ] {
        let answer = owner.send(state, Method::POST, path, Some(body)).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.body);
    }

    let page = send(state, &owner, Method::GET, PAGE, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    for bad in ["<script>alert", "<b>Acme", "<i>Web"] {
        assert!(!page.html.contains(bad), "{bad}: {}", page.html);
    }
    assert!(page.html.contains("No CronJob yet"), "{}", page.html);

    // A CronJob: one commit, then the page says when it runs.
    let before = server.commits().len();
    let added = send(
        state,
        &owner,
        Method::POST,
        &format!("{PAGE}/cronjobs"),
        &[
            ("name", "nightly"),
            ("schedule", "0 2 * * *"),
            ("timeZone", ""),
            ("image", "busybox:1.36"),
            ("command", "sh -c date"),
            ("env", "GREETING=hello"),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let commits = server.commits();
    assert_eq!(commits.len(), before + 1);
    let commit = &commits[0];
    assert_eq!(commit.trailer("Hexabase-Action"), Some("create-cron-job"));
    assert!(
        commit.author.ends_with("<owner@example.com>"),
        "{}",
        commit.author
    );
    assert!(
        added.location.ends_with(&format!("?commit={}", commit.id)),
        "{}",
        added.location
    );
    let shown = send(state, &owner, Method::GET, &added.location, &[]).await;
    assert!(
        shown.html.contains("every day at 02:00 UTC"),
        "{}",
        shown.html
    );
    assert!(
        shown.html.contains(&commit.id[..12]),
        "the page shows the commit: {}",
        shown.html
    );

    // A bad schedule: refused next to the field, nothing committed, what was typed kept.
    let refused = send(
        state,
        &owner,
        Method::POST,
        &format!("{PAGE}/cronjobs"),
        &[
            ("name", "weekly"),
            ("schedule", "every day"),
            ("image", "busybox:1.36"),
        ],
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(
        refused.html.contains("id=\"e-schedule\""),
        "{}",
        refused.html
    );
    assert!(
        refused.html.contains("value=\"every day\""),
        "{}",
        refused.html
    );
    assert_eq!(server.commits().len(), before + 1);

    // A Function and a Role.
    for (path, form) in [
        (
            "functions",
            vec![
                ("name", "hello"),
                ("image", "ghcr.io/x/hello:1"),
                ("scaling.minScale", "0"),
            ],
        ),
        (
            "roles",
            vec![
                ("name", "cron-reader"),
                ("apiGroups", "batch"),
                ("resources", "cronjobs"),
                ("verbs", "get"),
                ("verbs", "list"),
            ],
        ),
    ] {
        let answer = send(
            state,
            &owner,
            Method::POST,
            &format!("{PAGE}/{path}"),
            &form,
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{path}: {}",
            answer.html
        );
    }
    let shown = send(state, &owner, Method::GET, PAGE, &[]).await;
    assert!(shown.html.contains("cron-reader"), "{}", shown.html);
    assert!(shown.html.contains("hello:1"), "{}", shown.html);

    // A stranger finds nothing, and cannot post either.
    let (stranger, _) = sign_up(state, "eve@example.com", "Eve", None).await;
    let seen = send(state, &stranger, Method::GET, PAGE, &[]).await;
    assert_eq!(seen.status, StatusCode::NOT_FOUND, "{}", seen.html);
    let posted = send(
        state,
        &stranger,
        Method::POST,
        &format!("{PAGE}/delete"),
        &[("confirm", "web")],
    )
    .await;
    assert_eq!(posted.status, StatusCode::NOT_FOUND, "{}", posted.html);

    // Delete: the name must be typed.
    let count = server.commits().len();
    let wrong = send(
        state,
        &owner,
        Method::POST,
        &format!("{PAGE}/delete"),
        &[("confirm", "we")],
    )
    .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.html
    );
    assert!(wrong.html.contains("id=\"e-confirm\""), "{}", wrong.html);
    assert_eq!(server.commits().len(), count);
    let gone = send(
        state,
        &owner,
        Method::POST,
        &format!("{PAGE}/delete"),
        &[("confirm", "web")],
    )
    .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.html);
    assert!(
        gone.location
            .starts_with("/orgs/acme/workspaces/shop?commit="),
        "{}",
        gone.location
    );
    assert_eq!(
        server.commits()[0].trailer("Hexabase-Action"),
        Some("delete-project")
    );
}
