//! Rendering: the [`Console`] holds the minijinja environment with every template of
//! `server/web/templates/` embedded, HTML auto-escaped because their names end in `.html`;
//! [`Chrome`] is what the base layout shows around a page (title, breadcrumbs, the
//! organization switcher, the commit the last action made, the CSRF token of the forms).
//!
//! A template sees `chrome`, `page` (the page's own view, any `Serialize`) and the function
//! `asset(name)`, the hashed URL of an embedded asset.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;

use super::assets;
use crate::http::ApiError;

/// Every template, by name; a page's template extends `base.html`.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../web/templates/base.html")),
    (
        "macros.html",
        include_str!("../../web/templates/macros.html"),
    ),
    (
        "message.html",
        include_str!("../../web/templates/message.html"),
    ),
    ("login.html", include_str!("../../web/templates/login.html")),
    (
        "signup.html",
        include_str!("../../web/templates/signup.html"),
    ),
    (
        "invitation.html",
        include_str!("../../web/templates/invitation.html"),
    ),
    (
        "dashboard.html",
        include_str!("../../web/templates/dashboard.html"),
    ),
    (
        "workspace_new.html",
        include_str!("../../web/templates/workspace_new.html"),
    ),
    (
        "name_check.html",
        include_str!("../../web/templates/name_check.html"),
    ),
    (
        "workspace.html",
        include_str!("../../web/templates/workspace.html"),
    ),
    (
        "change_item.html",
        include_str!("../../web/templates/change_item.html"),
    ),
    (
        "history.html",
        include_str!("../../web/templates/history.html"),
    ),
    (
        "commit.html",
        include_str!("../../web/templates/commit.html"),
    ),
    (
        "project.html",
        include_str!("../../web/templates/project.html"),
    ),
    (
        "settings.html",
        include_str!("../../web/templates/settings.html"),
    ),
];

/// The console's template environment, built once.
pub struct Console {
    env: Environment<'static>,
}

static CONSOLE: LazyLock<Console> = LazyLock::new(Console::new);

impl Console {
    fn new() -> Self {
        let mut env = Environment::new();
        // Auto-escape by extension (`.html`): every value a person typed is escaped.
        env.set_auto_escape_callback(minijinja::default_auto_escape_callback);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the console's templates parse (tested)");
        }
        env.add_function("asset", |name: &str| -> Result<String, minijinja::Error> {
            assets::url(name).map(str::to_owned).ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("no asset named {name:?}"),
                )
            })
        });
        Self { env }
    }

    /// The console.
    pub fn get() -> &'static Self {
        &CONSOLE
    }

    /// Renders template `name` with `chrome` and `page`.
    pub fn render_str(
        &self,
        name: &str,
        chrome: &Chrome,
        page: &impl Serialize,
    ) -> Result<String, minijinja::Error> {
        let template = self.env.get_template(name)?;
        template.render(minijinja::context! {
            chrome => Value::from(Serde(chrome)),
            page => Value::from(Serde(page)),
        })
    }
}

/// One step of the breadcrumbs.
#[derive(Debug, Clone, Serialize)]
pub struct Crumb {
    /// What it says.
    pub label: String,
    /// Where it leads.
    pub href: String,
}

/// The commit the last action made, shown at the top of the next page.
#[derive(Debug, Clone, Serialize)]
pub struct Flash {
    /// The commit id.
    pub id: String,
    /// Its first 12 hex digits.
    pub short: String,
    /// Its subject line.
    pub subject: String,
    /// Its page in History.
    pub href: String,
}

/// What the base layout shows around every page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chrome {
    /// The page's title (the layout adds " · Hexabase").
    pub title: String,
    /// The way here, from the dashboard; the page itself last, without a link.
    pub crumbs: Vec<Crumb>,
    /// Who is signed in (their email), `None` on public pages.
    pub user: Option<String>,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// The organizations the person belongs to (slugs), for the switcher.
    pub orgs: Vec<String>,
    /// The organization the page belongs to.
    pub org: Option<String>,
    /// The commit the last action made.
    pub flash: Option<Flash>,
    /// The retry key of this page's forms (`request_id`), new on every render.
    pub request_id: String,
}

impl Chrome {
    /// A page titled `title`.
    pub fn titled(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            request_id: uuid::Uuid::now_v7().to_string(),
            ..Self::default()
        }
    }

    /// Adds a breadcrumb.
    #[must_use]
    pub fn crumb(mut self, label: impl Into<String>, href: impl Into<String>) -> Self {
        self.crumbs.push(Crumb {
            label: label.into(),
            href: href.into(),
        });
        self
    }
}

/// A rendered page with `status`, or a plain 500 page when rendering fails (a bug: logged).
pub fn render(status: StatusCode, name: &str, chrome: &Chrome, page: &impl Serialize) -> Response {
    match Console::get().render_str(name, chrome, page) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(
                error = %crate::errors::ErrorChain(&error),
                template = name,
                "a console template failed to render"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>Internal error; try again later.</p>"),
            )
                .into_response()
        }
    }
}

/// The problems of a form: the field's name to what is wrong with it; `""` for the form as
/// a whole.
pub type Problems = BTreeMap<String, String>;

/// A service's answer as the problems of the form that asked: each field it names next to
/// that field, the rest at the top of the form.
pub fn problems_of(error: &ApiError) -> Problems {
    let mut problems = Problems::new();
    for problem in &error.errors {
        problems
            .entry(problem.field.clone())
            .or_insert_with(|| problem.message.clone());
    }
    if problems.is_empty() {
        let detail = error.detail.clone().unwrap_or_else(|| error.title.clone());
        let field = error.field.clone().unwrap_or_default();
        problems.insert(field, detail);
    }
    problems
}

/// The status a form answers with when the service refused it.
pub fn status_of(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A page that only says something: `heading` and `text` (errors, confirmations).
pub fn message(status: StatusCode, chrome: &Chrome, heading: &str, text: &str) -> Response {
    #[derive(Serialize)]
    struct View<'a> {
        heading: &'a str,
        text: &'a str,
    }
    render(status, "message.html", chrome, &View { heading, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_typed_by_people_are_escaped() {
        let chrome = Chrome::titled("<script>alert(1)</script>").crumb("\"><b>x</b>", "/");
        let html = Console::get()
            .render_str(
                "message.html",
                &chrome,
                &serde_json::json!({"heading": "<img src=x>", "text": "'&"}),
            )
            .expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>x</b>"), "{html}");
        assert!(!html.contains("<img src=x>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}

#[cfg(test)]
mod every_template {
    use super::*;

    /// A page with every field some template of this file's owner reads, empty.
    fn empty_page() -> serde_json::Value {
        let change = serde_json::json!({"commit": "0123456789abcdef", "actor": "a", "subject": "s", "time": "t"});
        serde_json::json!({
            "errors": {}, "values": {}, "email": "", "return_to": "/", "providers": [],
            "setup": false, "password_min": 12, "token": "t", "org": "o", "change": change,
            "orgs": [], "owner": true, "workspaces": [],
            "choices": {"plans": [], "clusters": [], "owner": true},
            "ws": {"org": "o", "name": "w", "plan": "p", "cluster": "c", "projects": [],
                   "groups": [], "bindings": [], "member": true, "admin": true, "owner": true,
                   "plans": [], "history": [change]},
        })
    }

    #[test]
    fn my_templates_render() {
        for (name, _) in TEMPLATES {
            // The history, commit, project and settings pages have their own tests.
            if ["history", "commit", "project", "settings"]
                .iter()
                .any(|n| name.contains(n))
            {
                continue;
            }
            if let Err(e) = Console::get().render_str(name, &Chrome::titled("t"), &empty_page()) {
                panic!("{name}: {e:#}");
            }
        }
    }
}
