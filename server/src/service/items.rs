//! CronJobs and Functions of a project: kept in a list by name, each read and changed by the
//! same use cases through [`Item`], each request allowed or refused by the RBAC the intent
//! renders (`super::authz`). Each change is one submission.

use compiler::intent::{CronJob, Function, ProjectSpec};

use super::Services;
use super::action::Action;
use super::caller::Caller;
use super::projects::{ProjectRef, ProjectResult, in_project};
use super::submit::{CommitAnswer, RequestKey, submit};
use super::tenancy::{TenancyError, WorkspaceAccess};

/// Something kept in a list of a project by name, with its own actions.
pub trait Item: Clone + Send + 'static {
    /// The API group RBAC checks.
    const API_GROUP: &'static str;
    /// The resource RBAC checks.
    const RESOURCE: &'static str;
    /// How errors name it.
    const KIND: &'static str;
    /// Its name.
    fn name(&self) -> &str;
    /// The project's items of this kind.
    fn items(spec: &ProjectSpec) -> &[Self];
    /// The action creating it in a project.
    fn create(at: ProjectRef<'_>, item: Self) -> Action;
    /// The action replacing it in a project.
    fn update(at: ProjectRef<'_>, item: Self) -> Action;
    /// The action deleting the one named `name` from a project.
    fn delete(at: ProjectRef<'_>, name: String) -> Action;
}

/// Implements [`Item`] for a kind whose actions carry it in the field `$field`.
macro_rules! item {
    ($type:ty, $group:expr, $resource:expr, $kind:expr, $list:ident, $field:ident,
     $create:ident, $update:ident, $delete:ident) => {
        impl Item for $type {
            const API_GROUP: &'static str = $group;
            const RESOURCE: &'static str = $resource;
            const KIND: &'static str = $kind;
            fn name(&self) -> &str {
                &self.name
            }
            fn items(spec: &ProjectSpec) -> &[Self] {
                &spec.$list
            }
            fn create(at: ProjectRef<'_>, $field: Self) -> Action {
                let (org, workspace, project) = at.owned();
                Action::$create {
                    org,
                    workspace,
                    project,
                    $field,
                }
            }
            fn update(at: ProjectRef<'_>, $field: Self) -> Action {
                let (org, workspace, project) = at.owned();
                Action::$update {
                    org,
                    workspace,
                    project,
                    $field,
                }
            }
            fn delete(at: ProjectRef<'_>, name: String) -> Action {
                let (org, workspace, project) = at.owned();
                Action::$delete {
                    org,
                    workspace,
                    project,
                    name,
                }
            }
        }
    };
}

item!(
    CronJob,
    "batch",
    "cronjobs",
    "cron job",
    cron_jobs,
    cron_job,
    CreateCronJob,
    UpdateCronJob,
    DeleteCronJob
);
item!(
    Function,
    "serving.knative.dev",
    "services",
    "function",
    functions,
    function,
    CreateFunction,
    UpdateFunction,
    DeleteFunction
);

/// The workspace as the caller sees it, if RBAC allows `verb` on `T` in the project.
async fn allowed<T: Item>(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
    verb: &str,
) -> Result<WorkspaceAccess, TenancyError> {
    let access = in_project(services, caller, at).await?;
    access.require(verb, T::API_GROUP, T::RESOURCE, at.project)?;
    Ok(access)
}

/// The project's items of kind `T`.
pub async fn list<T: Item>(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
) -> ProjectResult<Vec<T>> {
    let access = allowed::<T>(services, caller, at, "list").await?;
    Ok(T::items(&access.project(at.project)?.spec).to_vec())
}

/// The project's item of kind `T` named `name`.
pub async fn get<T: Item>(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
    name: &str,
) -> ProjectResult<T> {
    let access = allowed::<T>(services, caller, at, "get").await?;
    Ok(T::items(&access.project(at.project)?.spec)
        .iter()
        .find(|i| i.name() == name)
        .cloned()
        .ok_or_else(|| TenancyError::NotFound(format!("{} {name}", T::KIND)))?)
}

/// Creates `item` in the project.
pub async fn create<T: Item>(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    item: T,
) -> ProjectResult<CommitAnswer> {
    allowed::<T>(services, caller, at, "create").await?;
    Ok(submit(services, caller, key, T::create(at, item)).await?)
}

/// Replaces the item named `name` with `item`, which must keep the name.
pub async fn update<T: Item>(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    name: &str,
    item: T,
) -> ProjectResult<CommitAnswer> {
    allowed::<T>(services, caller, at, "update").await?;
    if name != item.name() {
        return Err(TenancyError::invalid(
            "name",
            format!("must be {name:?}, the name in the path; renaming is delete and create"),
        )
        .into());
    }
    Ok(submit(services, caller, key, T::update(at, item)).await?)
}

/// Deletes the item named `name` from the project.
pub async fn delete<T: Item>(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    name: &str,
) -> ProjectResult<CommitAnswer> {
    allowed::<T>(services, caller, at, "delete").await?;
    Ok(submit(services, caller, key, T::delete(at, name.to_owned())).await?)
}
