//! The HTTP face of the server: the REST API under `/api/v1`, health endpoints, and the
//! OpenAPI document, which is generated from the same route table the router is built from,
//! so the two cannot disagree.
//!
//! Handlers are thin: extract, call one service function, map the result. Nothing here
//! touches SQL or Git directly.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod commit;
pub mod groups;
pub mod health;
pub mod issuer;
pub mod items;
pub mod json;
pub mod oauth;
pub mod observe;
pub mod openapi;
pub mod orgs;
pub mod platform;
pub mod problem;
pub mod projects;
pub mod session;
pub mod signin;
pub mod tenancy;
pub mod workspaces;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, StatusCode};
use axum::routing::MethodRouter;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use problem::ApiError;

/// What every handler can reach: the use cases' [`Services`](crate::service::Services).
pub type AppState = crate::service::Services;

/// Builds a JSON Schema for one type, for the OpenAPI document.
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The schema of `T`, as a [`SchemaFn`].
pub fn schema_of<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Signed-in callers; what they may do is decided by the handler.
    SignedIn,
}

/// One route: how the router serves it and how the OpenAPI document describes it.
pub struct ApiRoute {
    /// The method.
    pub method: Method,
    /// The path, in OpenAPI and axum syntax (`/api/v1/orgs/{org}`).
    pub path: &'static str,
    /// The OpenAPI operation id.
    pub operation_id: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The request body's schema, if it takes one.
    pub request: Option<SchemaFn>,
    /// The success status.
    pub status: StatusCode,
    /// The success body's schema (`None` for no body).
    pub response: Option<SchemaFn>,
    /// Whether the route changes tenant state in Git (the answer carries the commit).
    pub mutates: bool,
    /// The handler.
    pub handler: MethodRouter<AppState>,
}

impl ApiRoute {
    /// A route with no body in or out, answering 200, open to signed-in callers.
    pub fn new(
        method: Method,
        path: &'static str,
        operation_id: &'static str,
        summary: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Self {
        Self {
            method,
            path,
            operation_id,
            summary,
            access: Access::SignedIn,
            request: None,
            status: StatusCode::OK,
            response: None,
            mutates: false,
            handler,
        }
    }

    /// Open to anonymous callers.
    #[must_use]
    pub fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    /// Takes a JSON body of type `T`.
    #[must_use]
    pub fn request<T: schemars::JsonSchema>(mut self) -> Self {
        self.request = Some(schema_of::<T>);
        self
    }

    /// Answers `status` with a JSON body of type `T`.
    #[must_use]
    pub fn response<T: schemars::JsonSchema>(mut self, status: StatusCode) -> Self {
        self.status = status;
        self.response = Some(schema_of::<T>);
        self
    }

    /// Answers `status` with no body.
    #[must_use]
    pub fn empty(mut self, status: StatusCode) -> Self {
        self.status = status;
        self.response = None;
        self
    }

    /// Changes tenant state in Git: one commit per successful call.
    #[must_use]
    pub fn mutates(mut self) -> Self {
        self.mutates = true;
        self
    }
}

/// Every API route, in document order.
pub fn routes() -> Vec<ApiRoute> {
    let mut routes = health::routes();
    routes.extend(openapi::routes());
    routes.extend(audit::routes());
    routes.extend(accounts::routes());
    routes.extend(orgs::routes());
    routes.extend(workspaces::routes());
    routes.extend(projects::routes());
    routes.extend(items::routes());
    routes.extend(issuer::routes());
    routes.extend(platform::routes());
    routes
}

/// The path as logs may show it: secrets in paths (invitation tokens) are replaced.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/api/v1/invitations/") {
        Some(rest) => {
            let tail = rest.split_once('/').map_or("", |(_, tail)| tail);
            format!("/api/v1/invitations/<token>/{tail}").into()
        }
        None => path.into(),
    }
}

/// The router: every route of [`routes`], with request ids, tracing (one line per request,
/// at its end, with the status; internal errors are logged once, by
/// [`ApiError::internal`], inside the request's span), request metrics, the body limit (413
/// before parsing) and panics turned into 500s.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `pages` (the web console, `crate::console::router`) mounted beside the API,
/// under the same layers.
pub fn app_with(state: AppState, pages: Router<AppState>) -> Router {
    let limit = state.settings.limits.body_bytes;
    let mut router = Router::new();
    for route in routes() {
        router = router.route(route.path, route.handler);
    }
    router = router.merge(pages);
    let request_id = HeaderName::from_static("x-request-id");
    let oidc = issuer::router(state.clone());
    router
        .fallback(|| async { ApiError::not_found("no such route") })
        // Retry keys: the digest of each mutation's body (see `commit::RequestKey`).
        .layer(axum::middleware::from_fn(commit::digest_body))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), oidc),
            issuer::dispatch,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::count,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(axum::middleware::map_response(problem::ensure_problem))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ))
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http()
            .on_request(())
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
            .on_failure(())
            .make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %loggable_path(request.uri().path()), request_id = %id)
            },
        ))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
