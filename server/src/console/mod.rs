//! The web console: server-rendered pages for people who do not write YAML, a front door of
//! its own beside `http/` with the same rules: extract, call one `service/` function, render.
//!
//! Pages are minijinja templates in `server/web/templates/` (HTML auto-escaped by their
//! `.html` extension, see [`layout`]); the vendored assets in `server/web/assets/` are
//! embedded and served with content hashes ([`assets`]). Every response carries a strict
//! Content-Security-Policy and frame, referrer and sniffing headers ([`secure_headers`]);
//! every form carries the session's CSRF token ([`session`]). Forms work without JavaScript;
//! htmx only enhances them. The URL map is in docs/console.md.

pub mod accounts;
pub mod assets;
pub mod dashboard;
pub mod events;
pub mod history;
pub mod layout;
pub mod project;
pub mod session;
pub mod settings;
pub mod workspace;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use crate::http::AppState;

/// The Content-Security-Policy of every console response: nothing inline, nothing from
/// elsewhere, never framed. Pico's form controls draw their icons as `data:` SVG images.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The whole server: the API of [`crate::http::app`] with the console's pages mounted at `/`.
pub fn app(state: AppState) -> Router {
    crate::http::app_with(state, router())
}

/// The console's routes, with [`secure_headers`] on every answer.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/{file}", get(assets::serve))
        .route("/", get(dashboard::home))
        .route("/orgs/{org}", get(dashboard::org))
        .route("/orgs/{org}/workspaces/new", get(dashboard::new_form))
        .route("/orgs/{org}/workspaces/validate", get(dashboard::validate))
        .route("/orgs/{org}/workspaces", post(dashboard::create))
        .route("/orgs/{org}/workspaces/{ws}", get(workspace::page))
        .route(
            "/orgs/{org}/workspaces/{ws}/projects",
            post(workspace::create_project),
        )
        .route(
            "/orgs/{org}/workspaces/{ws}/plan",
            post(workspace::change_plan),
        )
        .route(
            "/orgs/{org}/workspaces/{ws}/delete",
            post(workspace::delete),
        )
        .route(
            "/orgs/{org}/workspaces/{ws}/kubeconfig",
            get(workspace::kubeconfig),
        )
        .route("/orgs/{org}/workspaces/{ws}/events", get(events::events))
        .route(
            "/orgs/{org}/workspaces/{ws}/groups",
            post(workspace::create_group),
        )
        .route(
            "/orgs/{org}/workspaces/{ws}/members",
            post(workspace::add_member),
        )
        .route("/login", get(accounts::login_form).post(accounts::login))
        .route("/signup", get(accounts::signup_form).post(accounts::signup))
        .route("/setup", get(accounts::setup_form).post(accounts::setup))
        .route("/logout", post(accounts::logout))
        .route(
            "/invitations/{token}",
            get(accounts::invitation).post(accounts::accept),
        )
        .merge(history::routes())
        .merge(project::routes())
        .merge(settings::routes())
        .layer(axum::middleware::from_fn(secure_headers))
}

/// Middleware: the security headers on every console answer, and `no-store` on pages (the
/// hashed assets set their own long cache).
pub async fn secure_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
