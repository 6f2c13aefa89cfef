//! The dashboard (`/`, `/orgs/{org}`): the person's organizations and the workspaces they
//! can see; and creating a workspace (`/orgs/{org}/workspaces/new`), its name checked as
//! typed (`/orgs/{org}/workspaces/validate`, the compiler's rule, the same the service
//! applies).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::layout::{Chrome, Problems, message, problems_of, render, status_of};
use super::session::{ConsoleSession, SignedForm};
use crate::http::{ApiError, AppState};
use crate::service::console::{self, ConsoleError, Dashboard, WorkspaceChoices};
use crate::service::oidc::form_encode;
use crate::service::workspaces::{self, NewWorkspace};

impl From<ConsoleError> for ApiError {
    fn from(error: ConsoleError) -> Self {
        match error {
            ConsoleError::Tenancy(error) => error.into(),
            ConsoleError::Store(error) => error.into(),
            other => ApiError::internal(&other),
        }
    }
}

/// The page for a refused request: 404 says nothing more than that.
pub fn error_page(session: &ConsoleSession, error: &ApiError) -> Response {
    let status = status_of(error);
    let (title, text) = match status {
        StatusCode::NOT_FOUND => (
            "Not found",
            "There is nothing here, or nothing you may see.".to_owned(),
        ),
        StatusCode::FORBIDDEN => (
            "Not allowed",
            error.detail.clone().unwrap_or_else(|| error.title.clone()),
        ),
        s if s.is_server_error() => (
            "Something went wrong",
            "An internal error happened; try again later.".to_owned(),
        ),
        _ => (
            "Refused",
            error.detail.clone().unwrap_or_else(|| error.title.clone()),
        ),
    };
    message(status, &session.chrome(title), title, &text)
}

/// `?commit=`: the commit the last action made, to show it.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    pub commit: Option<String>,
}

/// The chrome of `org`'s pages, with the switcher.
pub fn org_chrome(session: &ConsoleSession, title: &str, dashboard: &Dashboard) -> Chrome {
    Chrome {
        orgs: dashboard.orgs.iter().map(|o| o.slug.clone()).collect(),
        org: dashboard.org.as_ref().map(|o| o.slug.clone()),
        ..session.chrome(title)
    }
}

async fn show(
    state: &AppState,
    session: &ConsoleSession,
    org: Option<&str>,
    done: &Done,
) -> Response {
    match console::dashboard(state, &session.caller, org, done.commit.as_deref()).await {
        Ok(dashboard) => {
            let title = dashboard
                .org
                .as_ref()
                .map_or_else(|| "Dashboard".to_owned(), |o| o.name.clone());
            let chrome = org_chrome(session, &title, &dashboard);
            render(StatusCode::OK, "dashboard.html", &chrome, &dashboard)
        }
        Err(error) => error_page(session, &error.into()),
    }
}

/// `GET /`: the dashboard of the person's first organization.
pub async fn home(
    State(state): State<AppState>,
    session: ConsoleSession,
    Query(done): Query<Done>,
) -> Response {
    show(&state, &session, None, &done).await
}

/// `GET /orgs/{org}`: the dashboard of one organization.
pub async fn org(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    show(&state, &session, Some(&org), &done).await
}

#[derive(Serialize)]
struct NewView<'a> {
    org: &'a str,
    choices: WorkspaceChoices,
    values: std::collections::BTreeMap<String, String>,
    errors: Problems,
}

fn new_chrome(session: &ConsoleSession, org: &str) -> Chrome {
    session
        .chrome("Create workspace")
        .crumb(org, format!("/orgs/{}", form_encode(org)))
}

/// `GET /orgs/{org}/workspaces/new`: the form.
pub async fn new_form(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path(org): Path<String>,
) -> Response {
    match console::workspace_choices(&state, &session.caller, &org).await {
        Ok(choices) if choices.owner => {
            let view = NewView {
                org: &org,
                choices,
                values: std::collections::BTreeMap::new(),
                errors: Problems::new(),
            };
            render(
                StatusCode::OK,
                "workspace_new.html",
                &new_chrome(&session, &org),
                &view,
            )
        }
        Ok(_) => error_page(
            &session,
            &ApiError::forbidden(format!(
                "only owners of organization {org} may create workspaces"
            )),
        ),
        Err(error) => error_page(&session, &error.into()),
    }
}

/// `POST /orgs/{org}/workspaces`: creates it, like `POST /api/v1/orgs/{org}/workspaces`,
/// then opens it with the commit shown.
pub async fn create(
    State(state): State<AppState>,
    Path(org): Path<String>,
    form: SignedForm,
) -> Response {
    let fields = &form.fields;
    let new = NewWorkspace {
        name: fields.get("name").trim().to_owned(),
        plan: fields.get("plan").to_owned(),
        cluster: fields.opt("cluster"),
        display_name: fields.opt("display_name"),
    };
    let name = new.name.clone();
    match workspaces::create(&state, &form.session.caller, &form.key, &org, new).await {
        Ok(answer) => Redirect::to(&format!(
            "/orgs/{}/workspaces/{}?commit={}",
            form_encode(&org),
            form_encode(&name),
            answer.commit.unwrap_or_default()
        ))
        .into_response(),
        Err(error) => {
            let error = ApiError::from(error);
            let Ok(choices) = console::workspace_choices(&state, &form.session.caller, &org).await
            else {
                return error_page(&form.session, &error);
            };
            let view = NewView {
                org: &org,
                choices,
                values: fields.kept(),
                errors: problems_of(&error),
            };
            render(
                status_of(&error),
                "workspace_new.html",
                &new_chrome(&form.session, &org),
                &view,
            )
        }
    }
}

/// `?name=` of the name check.
#[derive(Debug, Default, Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

/// `GET /orgs/{org}/workspaces/validate?name=`: the name's problem, as the fragment htmx
/// swaps in under the field (empty when the name is good).
pub async fn validate(session: ConsoleSession, Query(query): Query<NameQuery>) -> Response {
    let name = query.name.unwrap_or_default();
    let mut errors = Problems::new();
    if let Err(error) = workspaces::check_label("name", name.trim()) {
        errors = problems_of(&ApiError::from(error));
    }
    #[derive(Serialize)]
    struct View {
        errors: Problems,
    }
    render(
        StatusCode::OK,
        "name_check.html",
        &session.chrome("Name"),
        &View { errors },
    )
}
