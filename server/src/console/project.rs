//! A project's page (`/orgs/{org}/workspaces/{ws}/projects/{project}`): its quota, custom
//! Roles with a rule editor, RoleBindings, CronJobs with their schedules in plain words, and
//! Functions; add a CronJob, a Function or a Role, and delete the project with its name typed
//! to confirm. Every action calls the same use case as the REST API and comes back to the
//! page with the commit it made; a refusal (a Role the person could not grant, a bad
//! schedule) is shown next to the field it names, with what was typed kept.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use compiler::intent::{CronJob, EnvVar, Function, PolicyRule, Role};
use serde::Serialize;

use super::dashboard::{Done, error_page};
use super::layout::{Problems, problems_of, render, status_of};
use super::session::{ConsoleSession, Fields, SignedForm};
use crate::http::{ApiError, AppState};
use crate::service::FieldProblem;
use crate::service::items;
use crate::service::oidc::form_encode;
use crate::service::project_page::{ProjectPage, ProjectPageError, project_page};
use crate::service::projects::{self, ProjectRef};
use crate::service::roles::create_role;
use crate::service::submit::CommitAnswer;

/// The verbs the rule editor offers.
const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The project routes.
pub fn routes() -> Router<AppState> {
    let base = "/orgs/{org}/workspaces/{ws}/projects/{project}";
    Router::new()
        .route(base, get(page))
        .route(&format!("{base}/cronjobs"), post(add_cron_job))
        .route(&format!("{base}/functions"), post(add_function))
        .route(&format!("{base}/roles"), post(add_role))
        .route(&format!("{base}/delete"), post(delete))
}

#[derive(Serialize)]
struct View {
    project: ProjectPage,
    verbs: [&'static str; 8],
    /// The fields the forms show their problems beside; the others go above the forms.
    fields: [&'static str; 12],
    values: BTreeMap<String, String>,
    /// The verbs ticked in the Role form, kept after a refusal.
    ticked: Vec<String>,
    errors: Problems,
}

fn page_url(org: &str, ws: &str, project: &str) -> String {
    format!(
        "/orgs/{}/workspaces/{}/projects/{}",
        form_encode(org),
        form_encode(ws),
        form_encode(project)
    )
}

fn api_error(error: ProjectPageError) -> ApiError {
    match error {
        ProjectPageError::Project(e) => e.into(),
        other => ApiError::internal(&other),
    }
}

async fn show(
    state: &AppState,
    session: &ConsoleSession,
    (org, ws, project): (&str, &str, &str),
    made: Option<&str>,
    (status, fields, errors): (StatusCode, Fields, Problems),
) -> Response {
    let at = ProjectRef {
        org,
        workspace: ws,
        project,
    };
    match project_page(state, &session.caller, at, made).await {
        Ok(page) => {
            let mut chrome = session
                .chrome(format!("Project {project}"))
                .crumb(org, format!("/orgs/{}", form_encode(org)))
                .crumb(
                    ws,
                    format!("/orgs/{}/workspaces/{}", form_encode(org), form_encode(ws)),
                );
            chrome.org = Some(org.to_owned());
            if let Some(made) = &page.made {
                chrome.flash = Some(super::layout::Flash {
                    id: made.commit.clone(),
                    short: made.commit.chars().take(12).collect(),
                    subject: made.subject.clone(),
                    href: format!("/orgs/{}/history/{}", form_encode(org), made.commit),
                });
            }
            let view = View {
                project: page,
                verbs: VERBS,
                fields: FIELDS,
                values: fields.kept(),
                ticked: fields.all("verbs"),
                errors,
            };
            render(status, "project.html", &chrome, &view)
        }
        Err(error) => error_page(session, &api_error(error)),
    }
}

/// `GET …/projects/{project}`.
async fn page(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path((org, ws, project)): Path<(String, String, String)>,
    Query(done): Query<Done>,
) -> Response {
    show(
        &state,
        &session,
        (&org, &ws, &project),
        done.commit.as_deref(),
        (StatusCode::OK, Fields::default(), Problems::new()),
    )
    .await
}

/// The fields of the page's forms.
const FIELDS: [&str; 12] = [
    "name",
    "schedule",
    "timeZone",
    "image",
    "command",
    "env",
    "apiGroups",
    "resources",
    "verbs",
    "confirm",
    "scaling.minScale",
    "scaling.maxScale",
];

/// The form field a problem names: the API's field (`schedule`), or the last part of an
/// intent path (`intent/…/web.yaml: spec.cronJobs[nightly].schedule`).
fn form_field(field: &str) -> Option<&'static str> {
    let path = field.rsplit(": ").next().unwrap_or(field);
    let parts: Vec<&str> = path
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .collect();
    let last_two = parts.len().checked_sub(2).map(|i| parts[i..].join("."));
    FIELDS
        .iter()
        .find(|f| last_two.as_deref() == Some(**f))
        .or_else(|| FIELDS.iter().find(|f| parts.last() == Some(*f)))
        .copied()
}

/// Back to the page with the commit, or the page again with the problem next to its field.
async fn after(
    state: &AppState,
    form: SignedForm,
    (org, ws, project): (&str, &str, &str),
    answer: Result<CommitAnswer, ApiError>,
) -> Response {
    match answer {
        Ok(answer) => Redirect::to(&format!(
            "{}?commit={}",
            page_url(org, ws, project),
            answer.commit.unwrap_or_default()
        ))
        .into_response(),
        Err(error) if error.status == 404 => error_page(&form.session, &error),
        Err(mut error) => {
            for p in &mut error.errors {
                if let Some(field) = form_field(&p.field) {
                    p.field = field.to_owned();
                }
            }
            show(
                state,
                &form.session,
                (org, ws, project),
                None,
                (status_of(&error), form.fields, problems_of(&error)),
            )
            .await
        }
    }
}

/// A problem of one field of the form, as the API would answer it.
fn invalid(problem: FieldProblem) -> ApiError {
    ApiError::invalid(problem.field, problem.message)
}

/// Words split on whitespace (a command line without quoting).
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// Comma-separated values, trimmed; an empty item stays (`""` is the core API group).
fn list(text: &str) -> Vec<String> {
    text.split(',').map(|s| s.trim().to_owned()).collect()
}

/// `NAME=value` lines as environment variables; a line without `=` is a problem of `env`.
fn env(text: &str) -> Result<Vec<EnvVar>, FieldProblem> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| match line.split_once('=') {
            Some((name, value)) => Ok(EnvVar {
                name: name.trim().to_owned(),
                value: value.to_owned(),
            }),
            None => Err(FieldProblem::new(
                "env",
                format!("{line:?} is not NAME=value"),
            )),
        })
        .collect()
}

/// A CronJob as the form describes it.
fn cron_job(f: &Fields) -> Result<CronJob, FieldProblem> {
    Ok(CronJob {
        name: f.get("name").trim().to_owned(),
        schedule: f.get("schedule").trim().to_owned(),
        time_zone: f.opt("timeZone"),
        image: f.get("image").trim().to_owned(),
        command: words(f.get("command")),
        args: Vec::new(),
        env: env(f.get("env"))?,
        concurrency_policy: Default::default(),
        suspend: false,
        resources: Default::default(),
    })
}

/// A Function as the form describes it.
fn function(f: &Fields) -> Result<Function, FieldProblem> {
    let number = |field: &str| -> Result<Option<u32>, FieldProblem> {
        f.opt(field)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| FieldProblem::new(field, "must be a whole number"))
            })
            .transpose()
    };
    Ok(Function {
        name: f.get("name").trim().to_owned(),
        image: f.get("image").trim().to_owned(),
        env: env(f.get("env"))?,
        port: None,
        scaling: compiler::intent::Scaling {
            min_scale: number("scaling.minScale")?,
            max_scale: number("scaling.maxScale")?,
            target: None,
        },
        resources: Default::default(),
    })
}

/// Creates the CronJob or Function the form describes, like `POST …/cronjobs` or
/// `POST …/functions` of the API.
async fn add_item<T: items::Item>(
    state: &AppState,
    (org, ws, project): (&str, &str, &str),
    form: SignedForm,
    item: fn(&Fields) -> Result<T, FieldProblem>,
) -> Response {
    let at = ProjectRef {
        org,
        workspace: ws,
        project,
    };
    let answer = match item(&form.fields) {
        Err(problem) => Err(invalid(problem)),
        Ok(item) => items::create(state, &form.session.caller, &form.key, at, item)
            .await
            .map_err(ApiError::from),
    };
    after(state, form, (org, ws, project), answer).await
}

/// `POST …/cronjobs`.
async fn add_cron_job(
    State(state): State<AppState>,
    Path((org, ws, project)): Path<(String, String, String)>,
    form: SignedForm,
) -> Response {
    add_item(&state, (&org, &ws, &project), form, cron_job).await
}

/// `POST …/functions`.
async fn add_function(
    State(state): State<AppState>,
    Path((org, ws, project)): Path<(String, String, String)>,
    form: SignedForm,
) -> Response {
    add_item(&state, (&org, &ws, &project), form, function).await
}

/// `POST …/roles`: like `POST …/roles` of the API; the service refuses a rule the person
/// does not hold, naming it.
async fn add_role(
    State(state): State<AppState>,
    Path((org, ws, project)): Path<(String, String, String)>,
    form: SignedForm,
) -> Response {
    let at = ProjectRef {
        org: &org,
        workspace: &ws,
        project: &project,
    };
    let f = &form.fields;
    let role = Role {
        name: f.get("name").trim().to_owned(),
        rules: vec![PolicyRule {
            api_groups: list(f.get("apiGroups")),
            resources: list(f.get("resources")),
            verbs: f.all("verbs"),
            resource_names: Vec::new(),
        }],
    };
    let answer = create_role(&state, &form.session.caller, &form.key, at, role)
        .await
        .map_err(|e| {
            // The form has one rule: its fields are the rule's.
            let mut error = ApiError::from(e);
            for p in &mut error.errors {
                if let Some(rest) = p.field.strip_prefix("rules[0].") {
                    p.field = rest.to_owned();
                } else if p.field.starts_with("rules") {
                    p.field = "verbs".to_owned();
                }
            }
            error
        });
    after(&state, form, (&org, &ws, &project), answer).await
}

/// `POST …/delete`: deletes the project once its name is typed, like `DELETE …/projects/{p}`
/// of the API, then back to the workspace.
async fn delete(
    State(state): State<AppState>,
    Path((org, ws, project)): Path<(String, String, String)>,
    form: SignedForm,
) -> Response {
    if form.fields.get("confirm").trim() != project {
        let error = ApiError::invalid(
            "confirm",
            format!("type the project's name, {project}, to delete it"),
        );
        return after(&state, form, (&org, &ws, &project), Err(error)).await;
    }
    let at = ProjectRef {
        org: &org,
        workspace: &ws,
        project: &project,
    };
    match projects::delete(&state, &form.session.caller, &form.key, at).await {
        Ok(answer) => Redirect::to(&format!(
            "/orgs/{}/workspaces/{}?commit={}",
            form_encode(&org),
            form_encode(&ws),
            answer.commit.unwrap_or_default()
        ))
        .into_response(),
        Err(error) => after(&state, form, (&org, &ws, &project), Err(error.into())).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_are_name_value_pairs() {
        let vars = env("A=1\n\n B = x=y \n").expect("valid");
        assert_eq!(vars.len(), 2);
        assert_eq!(
            (vars[1].name.as_str(), vars[1].value.as_str()),
            ("B", " x=y")
        );
        assert!(env("nope").is_err());
        assert_eq!(list("apps, ,batch"), ["apps", "", "batch"]);
        assert_eq!(
            form_field("intent/a/b/projects/web.yaml: spec.cronJobs[nightly].schedule"),
            Some("schedule")
        );
        assert_eq!(
            form_field("spec.functions[f].scaling.minScale"),
            Some("scaling.minScale")
        );
        assert_eq!(form_field("image"), Some("image"));
        assert_eq!(form_field("spec.quota"), None);
    }
}
