//! What the console's project page shows: the project (quota, Roles, RoleBindings, CronJobs
//! with their schedules in plain words, Functions), whether the person administers the
//! workspace, and the commit the last action made. Members only, like `GET …/projects/{p}`.

use compiler::intent::{CronJob, ProjectSpec};
use serde::Serialize;

use super::Services;
use super::audit::{AuditError, AuditQuery, audit};
use super::caller::Caller;
use super::projects::{ProjectError, ProjectRef, in_project};
use super::tenancy::TenancyError;

/// Changes of the workspace searched for the commit the last action made.
const RECENT: usize = 50;

/// The project page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectPageError {
    /// Access or "not found".
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The audit log could not be read.
    #[error("failed to read the workspace's recent changes")]
    Audit(#[source] AuditError),
    /// The blocking read did not finish.
    #[error("the read was interrupted")]
    Interrupted(#[source] tokio::task::JoinError),
}

impl From<TenancyError> for ProjectPageError {
    fn from(error: TenancyError) -> Self {
        Self::Project(error.into())
    }
}

/// A CronJob with its schedule in plain words.
#[derive(Debug, Clone, Serialize)]
pub struct CronRow {
    /// The CronJob.
    pub job: CronJob,
    /// "every day at 02:00 UTC", or why the schedule is not valid.
    pub words: String,
}

/// A commit of the workspace, for the note after an action.
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    /// The commit id.
    pub commit: String,
    /// Its subject.
    pub subject: String,
}

/// The project page.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectPage {
    /// Organization slug.
    pub org: String,
    /// Workspace slug.
    pub workspace: String,
    /// Project slug.
    pub name: String,
    /// What the intent says of it.
    pub spec: ProjectSpec,
    /// Its CronJobs with their schedules in words.
    pub cron_jobs: Vec<CronRow>,
    /// The person administers the workspace (may delete the project).
    pub admin: bool,
    /// The commit named by the page's `commit` parameter, when it is a recent one of the
    /// workspace.
    pub made: Option<Made>,
}

/// `schedule` in `time_zone` in plain words ("every day at 02:00 UTC"), or the reason the
/// compiler refuses it.
pub fn schedule_words(schedule: &str, time_zone: Option<&str>) -> Result<String, String> {
    compiler::cron::describe(schedule, time_zone)
}

/// Project `at` as `caller` may see it, with the commit `made` when it is recent.
pub async fn project_page(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
    made: Option<&str>,
) -> Result<ProjectPage, ProjectPageError> {
    let access = in_project(services, caller, at).await?;
    let spec = access.project(at.project)?.spec;
    let made = match made.filter(|id| id.len() >= 7) {
        None => None,
        Some(id) => {
            let query = AuditQuery {
                org: Some(at.org.to_owned()),
                workspace: Some(at.workspace.to_owned()),
                limit: Some(RECENT),
                ..AuditQuery::default()
            };
            let repo = services.settings.git_repo();
            let branch = services.settings.git.branch.clone();
            let (entries, _) = tokio::task::spawn_blocking(move || audit(&repo, &branch, &query))
                .await
                .map_err(ProjectPageError::Interrupted)?
                .map_err(ProjectPageError::Audit)?;
            entries
                .into_iter()
                .find(|e| e.commit.starts_with(id))
                .map(|e| Made {
                    commit: e.commit,
                    subject: e.subject,
                })
        }
    };
    Ok(ProjectPage {
        org: at.org.to_owned(),
        workspace: at.workspace.to_owned(),
        name: at.project.to_owned(),
        cron_jobs: spec
            .cron_jobs
            .iter()
            .map(|job| CronRow {
                words: schedule_words(&job.schedule, job.time_zone.as_deref())
                    .unwrap_or_else(|why| why),
                job: job.clone(),
            })
            .collect(),
        spec,
        admin: access.require_admin("").is_ok(),
        made,
    })
}
