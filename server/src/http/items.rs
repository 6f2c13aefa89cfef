//! CronJobs and Functions of a project: each kind served by the same five routes and
//! handlers through `Routed`, each handler calling one use case of [`crate::service::items`].

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use compiler::intent::{CronJob, Function};

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey};
use super::json::Json;
use super::projects::{ItemPath, ProjectPath, at};
use super::{ApiError, ApiRoute, AppState};
use crate::service::items::{self, Item};

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

/// The five routes of a `Routed` kind: list, create, get, replace, delete.
fn item_routes<T: Routed>() -> Vec<ApiRoute> {
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

/// An [`Item`] kind as the API serves it: its paths, operation ids and summaries.
trait Routed: Item + serde::Serialize + serde::de::DeserializeOwned + schemars::JsonSchema {
    /// The collection's path and one item's path.
    const PATHS: (&'static str, &'static str);
    /// Operation ids of list, create, get, replace and delete.
    const OPERATIONS: [&'static str; 5];
    /// Their summaries.
    const SUMMARIES: [&'static str; 5];
}

impl Routed for CronJob {
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
}

impl Routed for Function {
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
}

async fn list_items<T: Routed>(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project)): ProjectPath,
) -> Result<Json<Vec<T>>, ApiError> {
    Ok(Json(
        items::list(&state, &caller, at(&org, &ws, &project)).await?,
    ))
}

async fn get_item<T: Routed>(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, ws, project, name)): ItemPath,
) -> Result<Json<T>, ApiError> {
    Ok(Json(
        items::get(&state, &caller, at(&org, &ws, &project), &name).await?,
    ))
}

async fn create_item<T: Routed>(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project)): ProjectPath,
    Json(item): Json<T>,
) -> Result<(StatusCode, Json<CommitAnswer>), ApiError> {
    let answer = items::create(&state, &caller, &key, at(&org, &ws, &project), item).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn update_item<T: Routed>(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, name)): ItemPath,
    Json(item): Json<T>,
) -> Result<Json<CommitAnswer>, ApiError> {
    let at = at(&org, &ws, &project);
    Ok(Json(
        items::update(&state, &caller, &key, at, &name, item).await?,
    ))
}

async fn delete_item<T: Routed>(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Path((org, ws, project, name)): ItemPath,
) -> Result<Json<CommitAnswer>, ApiError> {
    let at = at(&org, &ws, &project);
    Ok(Json(
        items::delete::<T>(&state, &caller, &key, at, &name).await?,
    ))
}
