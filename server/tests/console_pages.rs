//! The web console through its router, as a browser without JavaScript would use it: forms
//! posted with the page's CSRF token, cookies kept between requests.
//!
//! - every page and asset carries the security headers (strict CSP, frames denied,
//!   referrer policy, nosniff);
//! - a form without its CSRF token is refused and changes nothing;
//! - creating a workspace makes exactly one commit, authored by the signed-in person;
//! - another organization's pages answer 404;
//! - hostile names typed by people are escaped on every page that shows them.

mod support;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use server::http::AppState;
use support::{TestServer, commits, server};
use tower::ServiceExt as _;

/// A browser: its cookies, and the last page it read.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    html: String,
}

impl Page {
    /// The value of the first hidden input named `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').expect("closing quote") + start;
        self.html[start..end].to_owned()
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

fn encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                server::service::oidc::form_encode(k),
                server::service::oidc::form_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Browser {
    async fn send(
        &mut self,
        state: &AppState,
        method: Method,
        path: &str,
        form: Option<String>,
    ) -> Page {
        let mut request = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        let body = match form {
            Some(form) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form)
            }
            None => Body::empty(),
        };
        let response = server::console::app(state.clone())
            .oneshot(request.body(body).expect("a request"))
            .await
            .expect("the router answers");
        for value in response.headers().get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().expect("name=value");
            let (name, value) = pair.split_once('=').expect("name=value");
            if text.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body");
        Page {
            status,
            headers,
            html: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, state: &AppState, path: &str) -> Page {
        self.send(state, Method::GET, path, None).await
    }

    async fn post(&mut self, state: &AppState, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(state, Method::POST, path, Some(encode(fields)))
            .await
    }

    /// Signs up through the console (the first account with the setup token).
    async fn sign_up(&mut self, server: &TestServer, email: &str, name: &str, setup: bool) {
        let path = if setup { "/setup" } else { "/signup" };
        let form = self.get(&server.state, path).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.html);
        let csrf = form.hidden("csrf_token");
        let mut fields = vec![
            ("csrf_token", csrf.as_str()),
            ("name", name),
            ("email", email),
            ("password", "correct horse battery"),
        ];
        if setup {
            fields.push(("setupToken", server.setup_token.as_str()));
        }
        let done = self.post(&server.state, path, &fields).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
        assert!(self.cookies.contains_key("hb_session"), "signed in");
    }
}

/// The security headers every console answer carries.
#[track_caller]
fn assert_secure(page: &Page, what: &str) {
    let header = |name: header::HeaderName| {
        page.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_owned()
    };
    let csp = header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(header(header::X_FRAME_OPTIONS), "DENY", "{what}");
    assert_eq!(header(header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{what}");
    assert!(
        ["same-origin", "no-referrer"].contains(&header(header::REFERRER_POLICY).as_str()),
        "{what}"
    );
    assert!(
        !page.html.contains("<script>") && !page.html.contains(" style="),
        "{what}: inline script or style"
    );
}

#[tokio::test]
async fn pages_are_secure_and_forms_make_one_commit_each() {
    let server = server("console-pages").await;
    let state = &server.state;
    let mut admin = Browser::default();

    // Signed out: public pages, and a redirect to sign in with the way back.
    for path in ["/login", "/signup", "/setup"] {
        let page = admin.get(state, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_secure(&page, path);
    }
    let away = admin.get(state, "/orgs/x").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location(), "/login?return_to=%2Forgs%2Fx");

    admin
        .sign_up(
            &server,
            "admin@example.com",
            "Ada <script>alert(1)</script>",
            true,
        )
        .await;
    let home = admin.get(state, "/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.html);
    assert_secure(&home, "/");
    assert!(!home.html.contains("<script>alert"), "{}", home.html);
    let org = commits(state)[0]
        .trailer("Hexabase-Organization")
        .map(str::to_owned)
        .unwrap_or_else(|| "admin".to_owned());
    assert!(home.html.contains("Create workspace"), "{}", home.html);

    // The assets the layout links to are served, hashed and cached for long.
    let css = home
        .html
        .replace("&#x2f;", "/")
        .split("href=\"")
        .find_map(|rest| {
            rest.split('"')
                .next()
                .filter(|h| h.starts_with("/assets/pico.classless.min."))
        })
        .expect("the layout links Pico")
        .to_owned();
    let asset = admin.get(state, &css).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_secure(&asset, &css);
    assert_eq!(
        asset
            .headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=31536000, immutable")
    );

    let new = admin
        .get(state, &format!("/orgs/{org}/workspaces/new"))
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.html);
    assert_secure(&new, "new workspace");
    let plan = new
        .html
        .split("name=\"plan\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a plan to choose")
        .to_owned();

    // Without the CSRF token: refused, nothing committed.
    let before = commits(state).len();
    let refused = admin
        .post(
            state,
            &format!("/orgs/{org}/workspaces"),
            &[("name", "dev"), ("plan", &plan)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    assert!(refused.html.contains("csrf_token"), "{}", refused.html);
    let wrong = admin
        .post(
            state,
            &format!("/orgs/{org}/workspaces"),
            &[("csrf_token", "not-it"), ("name", "dev"), ("plan", &plan)],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(commits(state).len(), before);

    // A bad name: the problem next to the field, the typed values kept.
    let csrf = new.hidden("csrf_token");
    let bad = admin
        .post(
            state,
            &format!("/orgs/{org}/workspaces"),
            &[
                ("csrf_token", &csrf),
                ("name", "Bad_Name"),
                ("plan", &plan),
                ("display_name", "<b>x</b>"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    assert!(bad.html.contains("id=\"e-name\""), "{}", bad.html);
    assert!(bad.html.contains("value=\"Bad_Name\""), "{}", bad.html);
    assert!(
        !bad.html.contains("<b>x</b>") && bad.html.contains("&lt;b&gt;x&lt;"),
        "{}",
        bad.html
    );
    assert_eq!(commits(state).len(), before);

    // The name check htmx calls as the name is typed.
    let check = admin
        .get(
            state,
            &format!("/orgs/{org}/workspaces/validate?name=Bad_Name"),
        )
        .await;
    assert_eq!(check.status, StatusCode::OK);
    assert!(
        check.html.contains("id=\"e-name\"") && check.html.len() > 60,
        "{}",
        check.html
    );

    // A good one: exactly one commit, by the person.
    let request_id = new.hidden("request_id");
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("request_id", request_id.as_str()),
        ("name", "dev"),
        ("plan", plan.as_str()),
        ("display_name", "Dev \"<team>\""),
    ];
    let made = admin
        .post(state, &format!("/orgs/{org}/workspaces"), &fields)
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.html);
    let after = commits(state);
    assert_eq!(after.len(), before + 1, "one commit");
    assert!(
        after[0].author.contains("admin@example.com"),
        "{}",
        after[0].author
    );
    assert!(
        made.location().contains(&after[0].id),
        "{}",
        made.location()
    );
    // The same form again (a double click): no second commit.
    let again = admin
        .post(state, &format!("/orgs/{org}/workspaces"), &fields)
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.html);
    assert_eq!(commits(state).len(), before + 1, "a replay makes no commit");

    let dashboard = admin
        .get(state, &format!("/orgs/{org}?commit={}", after[0].id))
        .await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(
        dashboard.html.contains(&after[0].id[..12]),
        "the commit is shown: {}",
        dashboard.html
    );
    assert!(!dashboard.html.contains("\"<team>\""), "{}", dashboard.html);

    // The workspace page: create a project (one commit), download the kubeconfig, and a
    // delete without the name typed changes nothing.
    let ws_path = format!("/orgs/{org}/workspaces/dev");
    let ws_page = admin.get(state, &ws_path).await;
    assert_eq!(ws_page.status, StatusCode::OK, "{}", ws_page.html);
    assert_secure(&ws_page, &ws_path);
    assert!(ws_page.html.contains("No projects yet"), "{}", ws_page.html);
    let csrf = ws_page.hidden("csrf_token");
    // The page's event stream, open before the change.
    let stream = server::console::app(state.clone())
        .oneshot(
            Request::get(format!("{ws_path}/events"))
                .header(header::COOKIE, admin.cookie_header())
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("the router answers");
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(
        stream
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut stream = stream.into_body();
    let before = commits(state).len();
    let made = admin
        .post(
            state,
            &format!("{ws_path}/projects"),
            &[("csrf_token", &csrf), ("project", "web")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.html);
    let after = commits(state);
    assert_eq!(after.len(), before + 1);
    assert!(after[0].author.contains("admin@example.com"));
    // The stream pushes the new commit (it polls; wait for it, bounded).
    let mut seen = String::new();
    while !seen.contains("event: commit") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(30), stream.frame())
            .await
            .expect("the commit event comes")
            .expect("the stream is open")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(seen.contains(&after[0].id[..12]), "{seen}");
    let shown = admin.get(state, made.location()).await;
    assert!(shown.html.contains(&after[0].id[..12]), "{}", shown.html);
    assert!(shown.html.contains(">web</a>"), "{}", shown.html);
    // Groups: create one inside another, add a member by email; one commit each.
    let count = commits(state).len();
    let made = admin
        .post(
            state,
            &format!("{ws_path}/groups"),
            &[("csrf_token", &csrf), ("group", "ops"), ("parent", "")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.html);
    assert_eq!(commits(state).len(), count + 1);
    let added = admin
        .post(
            state,
            &format!("{ws_path}/members"),
            &[
                ("csrf_token", &csrf),
                ("user", "admin@example.com"),
                ("member_group", "ops"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    assert_eq!(commits(state).len(), count + 2);
    assert!(commits(state)[0].author.contains("admin@example.com"));
    let bad = admin
        .post(
            state,
            &format!("{ws_path}/members"),
            &[
                ("csrf_token", &csrf),
                ("user", "nobody@example.com"),
                ("member_group", "ops"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
    assert!(
        bad.html.contains("no user has this id or email"),
        "{}",
        bad.html
    );
    assert_eq!(commits(state).len(), count + 2);
    let page = admin.get(state, &ws_path).await;
    assert!(page.html.contains("ops <small"), "{}", page.html);
    let config = admin.get(state, &format!("{ws_path}/kubeconfig")).await;
    assert_eq!(config.status, StatusCode::OK, "{}", config.html);
    assert!(
        config
            .headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("attachment")),
    );
    assert!(
        config.html.contains("\"current-context\""),
        "{}",
        config.html
    );
    let kept = admin
        .post(
            state,
            &format!("{ws_path}/delete"),
            &[("csrf_token", &csrf), ("confirm", "nope")],
        )
        .await;
    assert_eq!(
        kept.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        kept.html
    );
    assert!(kept.html.contains("id=\"e-confirm\""), "{}", kept.html);
    assert_eq!(
        commits(state).len(),
        before + 3,
        "the project and the two group changes"
    );

    // Someone else: the first organization's pages are not found.
    let mut other = Browser::default();
    let page = other.get(state, "/signup").await;
    assert_secure(&page, "/signup");
    // Open sign-up may be closed; then the other person cannot exist and the check is moot.
    let csrf = page.hidden("csrf_token");
    let done = other
        .post(
            state,
            "/signup",
            &[
                ("csrf_token", &csrf),
                ("name", "Eve"),
                ("email", "eve@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    if done.status == StatusCode::SEE_OTHER {
        for path in [
            format!("/orgs/{org}"),
            format!("/orgs/{org}/workspaces/new"),
        ] {
            let page = other.get(state, &path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.html);
            assert_secure(&page, &path);
        }
    } else {
        assert_eq!(done.status, StatusCode::FORBIDDEN, "{}", done.html);
        assert!(done.html.contains("closed"), "{}", done.html);
    }

    // Signing out ends the session.
    let home = admin.get(state, "/").await;
    let csrf = home.hidden("csrf_token");
    let out = admin.post(state, "/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(admin.get(state, "/").await.status, StatusCode::SEE_OTHER);
}
