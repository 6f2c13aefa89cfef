//! CronJobs and Functions of a project: kept in a list by name, each served by the same
//! five routes and handlers through `Item`. Each change is one action, one commit; each
//! request is allowed or refused by the RBAC the intent renders (`service::authz`).

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use compiler::intent::{CronJob, Function, ProjectSpec};
use serde::Serialize;

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey};
use super::json::Json;
use super::projects::{ItemPath, ProjectPath, in_project};
use super::{ApiError, ApiRoute, AppState};
use crate::service::action::Action;
use crate::service::submit::submit;
use crate::service::tenancy::TenancyError;

/// The API group of CronJobs.
const BATCH: &str = "batch";
/// The API group of Knative Services (Functions).
const KNATIVE: &str = "serving.knative.dev";

const CRONJOBS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/cronjobs";
const CRONJOB: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/cronjobs/{name}";
const FUNCTIONS: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/functions";
const FUNCTION: &str = "/api/v1/orgs/{org}/workspaces/{ws}/projects/{project}/functions/{name}";

/// The routes of CronJobs and Functions.
pub(super) fn routes() -> Vec<ApiRoute> {
    let mut routes = item_routes::<CronJob>();
    routes.extend(item_routes::<Function>());
    routes
}

/// The five routes of an [`Item`] kind: list, create, get, replace, delete.
fn item_routes<T: Item + schemars::JsonSchema>() -> Vec<ApiRoute> {
    let [list, create, get_one, update, remove] = T::OPERATIONS;
    let [list_s, create_s, get_s, update_s, remove_s] = T::SUMMARIES;
    vec![
        ApiRoute::new(Method::GET, T::PATHS.0, list, list_s, get(list_items::<T>))
            .response::<Vec<T>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            T::PATHS.0,
            create,
            create_s,
            post(create_item::<T>),
        )
        .request::<T>()
        .response::<CommitAnswer>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(Method::GET, T::PATHS.1, get_one, get_s, get(get_item::<T>))
            .response::<T>(StatusCode::OK),
        ApiRoute::new(
            Method::PUT,
            T::PATHS.1,
            update,
            update_s,
            put(update_item::<T>),
        )
        .request::<T>()
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::DELETE,
            T::PATHS.1,
            remove,
            remove_s,
            delete(delete_item::<T>),
        )
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
    ]
}

/// Refuses a body whose name differs from the path's.
fn same_name(path: &str, body: &str) -> Result<(), TenancyError> {
    if path == body {
        Ok(())
    } else {
        Err(TenancyError::invalid(
            "name",
            format!("must be {path:?}, the name in the path; renaming is delete and create"),
        ))
    }
}

/// Something kept in a list of a project by name, with its own actions: CronJobs and
/// Functions are served by the same handlers through this.
trait Item: Clone + Serialize + serde::de::DeserializeOwned + Send + 'static {
    /// The API group RBAC checks.
    const API_GROUP: &'static str;
    /// The resource RBAC checks.
    const RESOURCE: &'static str;
    /// How errors name it.
    const KIND: &'static str;
    /// The collection's path and one item's path.
    const PATHS: (&'static str, &'static str);
    /// Operation ids of list, create, get, replace and delete.
    const OPERATIONS: [&'static str; 5];
    /// Their summaries.
    const SUMMARIES: [&'static str; 5];
    /// Its name.
    fn name(&self) -> &str;
    /// The project's items of this kind.
    fn items(spec: &ProjectSpec) -> &[Self];
    /// The action creating it.
    fn create(at: At, item: Self) -> Action;
    /// The action replacing it.
    fn update(at: At, item: Self) -> Action;
    /// The action deleting the one named `name`.
    fn delete(at: At, name: String) -> Action;
}

/// Where an item is: organization, workspace, project.
struct At {
    org: String,
    workspace: String,
    project: String,
}

impl Item for CronJob {
    const API_GROUP: &'static str = BATCH;
    const RESOURCE: &'static str = "cronjobs";
    const KIND: &'static str = "cron job";
    const PATHS: (&'static str, &'static str) = (CRONJOBS, CRONJOB);
    const OPERATIONS: [&'static str; 5] = [
        "listCronJobs",
        "createCronJob",
        "getCronJob",
        "updateCronJob",
        "deleteCronJob",
    ];
    const SUMMARIES: [&'static str; 5] = [
        "List a project's CronJobs",
        "Create a CronJob",
        "Get a CronJob",
        "Replace a CronJob",
        "Delete a CronJob",
    ];
    fn name(&self) -> &str {
        &self.name
    }
    fn items(spec: &ProjectSpec) -> &[Self] {
        &spec.cron_jobs
    }
    fn create(at: At, cron_job: Self) -> Action {
        let At {
            org,
            workspace,
            project,
        } = at;
        Action::CreateCronJob {
            org,
            workspace,
            project,
            cron_job,
        }
    }
    fn update(at: At, cron_job: Self) -> Action {
        let At {
            org,
            workspace,
            project,
        } = at;
        Action::UpdateCronJob {
            org,
            workspace,
            project,
            cron_job,
        }
    }
    fn delete(at: At, name: String) -> Action {
        let At {
            org,
            workspace,
            project,
        } = at;
        Action::DeleteCronJob {
            org,
            workspace,
            project,
            name,
        }
    }
}

impl Item for Function {
    const API_GROUP: &'static str = KNATIVE;
    const RESOURCE: &'static str = "services";
    const KIND: &'static str = "function";
    const PATHS: (&'static str, &'static str) = (FUNCTIONS, FUNCTION);
    const OPERATIONS: [&'static str; 5] = [
        "listFunctions",
        "createFunction",
        "getFunction",
        "updateFunction",
        "deleteFunction",
    ];
    const SUMMARIES: [&'static str; 5] = [
        "List a project's Functions",
        "Create a Function",
        "Get a Function",
        "Replace a Function",
        "Delete a Function",
    ];
    fn name(&self) -> &str {
        &self.name
    }
    fn items(spec: &ProjectSpec) -> &[Self] {
        &spec.functions
    }
    fn create(at: At, function: Self) -> Action {
        let At {
            org,
            workspace,
            project,
        } = at;
        Action::CreateFunction {
            org,
            workspace,
            project,
            function,
        }
    }
    fn update(at: At, function: Self) -> Action {
        let At {
            org,
            workspace,
            project,
        } = at;
        Action::UpdateFunction {
            org,
            workspace,
            project,
            function,
        }
    }
    fn delete(at: At, name: String) -> Action {
        let At {
            org,
            workspace,
            project,
        } = at;
        Action::DeleteFunction {
            org,
            workspace,
            project,
            name,
        }
    }
}

async fn list_items<T: Item>(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<Vec<T>>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("list", T::API_GROUP, T::RESOURCE, &project)?;
    Ok(Json(T::items(&access.project(&project)?.spec).to_vec()))
}

async fn get_item<T: Item>(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project, name)): ItemPath,
) -> Result<Json<T>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("get", T::API_GROUP, T::RESOURCE, &project)?;
    T::items(&access.project(&project)?.spec)
        .iter()
        .find(|i| i.name() == name)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("{} {name} does not exist", T::KIND)))
}

async fn create_item<T: Item>(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(item): Json<T>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("create", T::API_GROUP, T::RESOURCE, &project)?;
    let at = At {
        org: org.clone(),
        workspace: ws,
        project,
    };
    let answer = submit(&state, &caller, &key, T::create(at, item)).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn update_item<T: Item>(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, name)): ItemPath,
    Json(item): Json<T>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("update", T::API_GROUP, T::RESOURCE, &project)?;
    same_name(&name, item.name())?;
    let at = At {
        org: org.clone(),
        workspace: ws,
        project,
    };
    Ok(Json(
        submit(&state, &caller, &key, T::update(at, item)).await?,
    ))
}

async fn delete_item<T: Item>(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, name)): ItemPath,
) -> Result<Json<CommitAnswer>, ApiError> {
    let access = in_project(&state, &caller, &org, &ws, &project).await?;
    access.require("delete", T::API_GROUP, T::RESOURCE, &project)?;
    let at = At {
        org: org.clone(),
        workspace: ws,
        project,
    };
    Ok(Json(
        submit(&state, &caller, &key, T::delete(at, name)).await?,
    ))
}
