//! A workspace's page (`/orgs/{org}/workspaces/{ws}`): its projects (list, create), groups,
//! the kubeconfig download and the `kubectl` command, change plan and delete with the name
//! typed to confirm. Every action calls the same use case as the REST API and comes back to
//! the page with the commit it made.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use super::dashboard::{Done, error_page};
use super::layout::{Problems, problems_of, render, status_of};
use super::session::{ConsoleSession, SignedForm};
use crate::http::{ApiError, AppState};
use crate::service::console::{self, WorkspacePage};
use crate::service::oidc::form_encode;
use crate::service::submit::CommitAnswer;
use crate::service::{groups, projects, workspaces};

#[derive(Serialize)]
struct View {
    ws: WorkspacePage,
    values: std::collections::BTreeMap<String, String>,
    errors: Problems,
}

fn page_url(org: &str, ws: &str) -> String {
    format!("/orgs/{}/workspaces/{}", form_encode(org), form_encode(ws))
}

async fn show(
    state: &AppState,
    session: &ConsoleSession,
    (org, ws): (&str, &str),
    flash: Option<&str>,
    (status, values, errors): (
        StatusCode,
        std::collections::BTreeMap<String, String>,
        Problems,
    ),
) -> Response {
    match console::workspace_page(state, &session.caller, org, ws, flash).await {
        Ok(page) => {
            let chrome = session
                .chrome(page.display_name.clone().unwrap_or_else(|| ws.to_owned()))
                .crumb(org, format!("/orgs/{}", form_encode(org)));
            let chrome = super::layout::Chrome {
                org: Some(org.to_owned()),
                ..chrome
            };
            render(
                status,
                "workspace.html",
                &chrome,
                &View {
                    ws: page,
                    values,
                    errors,
                },
            )
        }
        Err(error) => error_page(session, &error.into()),
    }
}

/// `GET /orgs/{org}/workspaces/{ws}`.
pub async fn page(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((org, ws)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> Response {
    show(
        &state,
        &session,
        (&org, &ws),
        done.commit.as_deref(),
        (StatusCode::OK, Default::default(), Problems::new()),
    )
    .await
}

/// After an action: back to the page with its commit, or the page again with the problem
/// next to the field and the values kept.
async fn after(
    state: &AppState,
    form: &SignedForm,
    (org, ws): (&str, &str),
    answer: Result<CommitAnswer, ApiError>,
) -> Response {
    match answer {
        Ok(answer) => Redirect::to(&format!(
            "{}?commit={}",
            page_url(org, ws),
            answer.commit.unwrap_or_default()
        ))
        .into_response(),
        Err(error) if error.status == 404 => error_page(&form.session, &error),
        Err(error) => {
            show(
                state,
                &form.session,
                (org, ws),
                None,
                (status_of(&error), form.fields.kept(), problems_of(&error)),
            )
            .await
        }
    }
}

/// `POST /orgs/{org}/workspaces/{ws}/projects`: like `POST …/projects` of the API.
pub async fn create_project(
    State(state): State<AppState>,
    Path((org, ws)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    let name = form.fields.get("project").trim().to_owned();
    let answer = projects::create(
        &state,
        &form.session.caller,
        &form.key,
        &org,
        &ws,
        &name,
        None,
    )
    .await
    .map_err(|e| {
        let mut error = ApiError::from(e);
        // The API names the field `name`; here it is `project`.
        if error.field.as_deref() == Some("name") {
            error.field = Some("project".to_owned());
        }
        for p in &mut error.errors {
            if p.field == "name" {
                p.field = "project".to_owned();
            }
        }
        error
    });
    after(&state, &form, (&org, &ws), answer).await
}

/// `POST /orgs/{org}/workspaces/{ws}/plan`: like `PUT …/plan` of the API.
pub async fn change_plan(
    State(state): State<AppState>,
    Path((org, ws)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    let plan = form.fields.get("plan").to_owned();
    let answer = workspaces::change_plan(&state, &form.session.caller, &form.key, &org, &ws, &plan)
        .await
        .map_err(ApiError::from);
    after(&state, &form, (&org, &ws), answer).await
}

/// `POST /orgs/{org}/workspaces/{ws}/delete`: deletes it once its name is typed, like
/// `DELETE …/workspaces/{ws}` of the API, then back to the organization.
pub async fn delete(
    State(state): State<AppState>,
    Path((org, ws)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    if form.fields.get("confirm").trim() != ws {
        let error = ApiError::invalid(
            "confirm",
            format!("type the workspace's name, {ws}, to delete it"),
        );
        return after(&state, &form, (&org, &ws), Err(error)).await;
    }
    match workspaces::delete(&state, &form.session.caller, &form.key, &org, &ws).await {
        Ok(answer) => Redirect::to(&format!(
            "/orgs/{}?commit={}",
            form_encode(&org),
            answer.commit.unwrap_or_default()
        ))
        .into_response(),
        Err(error) => after(&state, &form, (&org, &ws), Err(error.into())).await,
    }
}

/// `GET /orgs/{org}/workspaces/{ws}/kubeconfig`: the API's kubeconfig, as a file.
pub async fn kubeconfig(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((org, ws)): Path<(String, String)>,
) -> Response {
    match console::workspace_kubeconfig(&state, &session.caller, &org, &ws).await {
        Ok(config) => {
            let body = serde_json::to_vec_pretty(&config).expect("a kubeconfig serialises");
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // Slugs are DNS labels: safe in a header and a file name.
            if let Ok(value) =
                HeaderValue::from_str(&format!("attachment; filename=\"{org}-{ws}.kubeconfig\""))
            {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(error) => error_page(&session, &error.into()),
    }
}

/// Renames the API's field `from` to the form's `to` in `error`.
fn field_as(mut error: ApiError, from: &str, to: &str) -> ApiError {
    if error.field.as_deref() == Some(from) {
        error.field = Some(to.to_owned());
    }
    for p in &mut error.errors {
        if p.field == from {
            p.field = to.to_owned();
        }
    }
    error
}

/// `POST /orgs/{org}/workspaces/{ws}/groups`: like `POST …/groups` of the API.
pub async fn create_group(
    State(state): State<AppState>,
    Path((org, ws)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    let name = form.fields.get("group").trim().to_owned();
    let parent = form.fields.opt("parent");
    let answer = groups::create(
        &state,
        &form.session.caller,
        &form.key,
        &org,
        &ws,
        &name,
        parent.as_deref(),
    )
    .await
    .map(|(_, answer)| answer)
    .map_err(|e| field_as(ApiError::from(e), "name", "group"));
    after(&state, &form, (&org, &ws), answer).await
}

/// `POST /orgs/{org}/workspaces/{ws}/members`: like `POST …/groups/{group}/members`.
pub async fn add_member(
    State(state): State<AppState>,
    Path((org, ws)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    let group = form.fields.get("member_group").to_owned();
    let who = form.fields.get("user").trim().to_owned();
    let caller = &form.session.caller;
    let answer = groups::add_member(&state, caller, &form.key, &org, &ws, &group, &who)
        .await
        .map(|(_, answer)| answer)
        .map_err(ApiError::from);
    after(&state, &form, (&org, &ws), answer).await
}
