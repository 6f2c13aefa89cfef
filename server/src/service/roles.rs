//! A project's custom Roles and its RoleBindings, each request allowed or refused by the RBAC
//! the intent renders for the caller's groups ([`super::authz`]), and nobody granting what
//! they do not hold themselves (the escalation rule). Each change is one submission.

use compiler::intent::{PolicyRule, Role, RoleBinding};

use super::Services;
use super::action::Action;
use super::authz::{Presets, uncovered};
use super::caller::Caller;
use super::projects::{ProjectRef, ProjectResult, in_project};
use super::submit::{CommitAnswer, RequestKey, submit};
use super::tenancy::{TenancyError, WorkspaceAccess};

/// The API group of Roles and RoleBindings.
const RBAC: &str = "rbac.authorization.k8s.io";

/// The escalation rule: refuses `rules` unless the caller's own rules in `project` cover
/// every one of them, naming the first rule that is not (`{field}[i]`).
fn check_escalation(
    access: &WorkspaceAccess,
    project: &str,
    field: &str,
    rules: &[PolicyRule],
) -> Result<(), TenancyError> {
    let held = access.permissions.rules_in(project);
    let missing = uncovered(&held, rules);
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(TenancyError::Escalation {
            field: format!("{field}[{first}]"),
            message: format!(
                "you may grant only permissions you hold yourself in project {project}; not held: {}",
                missing
                    .iter()
                    .map(|i| format!("{field}[{i}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The workspace as the caller sees it, if RBAC allows `verb` on `resource` in the project.
async fn allowed(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
    verb: &str,
    resource: &str,
) -> Result<WorkspaceAccess, TenancyError> {
    let access = in_project(services, caller, at).await?;
    access.require(verb, RBAC, resource, at.project)?;
    Ok(access)
}

/// The project's custom Roles.
pub async fn list_roles(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
) -> ProjectResult<Vec<Role>> {
    let access = allowed(services, caller, at, "list", "roles").await?;
    Ok(access.project(at.project)?.spec.roles)
}

/// The project's custom Role `role`.
pub async fn get_role(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
    role: &str,
) -> ProjectResult<Role> {
    let access = allowed(services, caller, at, "get", "roles").await?;
    Ok(access
        .project(at.project)?
        .spec
        .roles
        .into_iter()
        .find(|r| r.name == role)
        .ok_or_else(|| TenancyError::NotFound(format!("role {role}")))?)
}

/// Creates a custom Role, only with permissions the caller holds in the project.
pub async fn create_role(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    role: Role,
) -> ProjectResult<CommitAnswer> {
    let access = allowed(services, caller, at, "create", "roles").await?;
    check_escalation(&access, at.project, "rules", &role.rules)?;
    let (org, workspace, project) = at.owned();
    let action = Action::CreateRole {
        org,
        workspace,
        project,
        role,
    };
    Ok(submit(services, caller, key, action).await?)
}

/// Replaces the rules of custom Role `role`, only with permissions the caller holds.
pub async fn update_role(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    role: &str,
    rules: Vec<PolicyRule>,
) -> ProjectResult<CommitAnswer> {
    let access = allowed(services, caller, at, "update", "roles").await?;
    check_escalation(&access, at.project, "rules", &rules)?;
    let (org, workspace, project) = at.owned();
    let action = Action::UpdateRole {
        org,
        workspace,
        project,
        role: Role {
            name: role.to_owned(),
            rules,
        },
    };
    Ok(submit(services, caller, key, action).await?)
}

/// Deletes custom Role `role` and its bindings.
pub async fn delete_role(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    role: &str,
) -> ProjectResult<CommitAnswer> {
    allowed(services, caller, at, "delete", "roles").await?;
    let (org, workspace, project) = at.owned();
    let action = Action::DeleteRole {
        org,
        workspace,
        project,
        role: role.to_owned(),
    };
    Ok(submit(services, caller, key, action).await?)
}

/// The project's RoleBindings.
pub async fn list_bindings(
    services: &Services,
    caller: &Caller,
    at: ProjectRef<'_>,
) -> ProjectResult<Vec<RoleBinding>> {
    let access = allowed(services, caller, at, "list", "rolebindings").await?;
    Ok(access.project(at.project)?.spec.role_bindings)
}

/// A binding names none or both of a Role and a preset ClusterRole.
fn one_role_error() -> TenancyError {
    TenancyError::invalid("role", "give exactly one of role and clusterRole")
}

/// Binds a custom Role or a preset ClusterRole to a workspace group in the project, only
/// one whose permissions the caller holds there.
pub async fn bind(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    binding: RoleBinding,
) -> ProjectResult<CommitAnswer> {
    let access = allowed(services, caller, at, "create", "rolebindings").await?;
    access.require_group("group", &binding.group)?;
    let project = at.project;
    let (field, rules): (&str, Vec<PolicyRule>) = match (&binding.role, binding.cluster_role) {
        (Some(role), None) => {
            let found = access
                .project(project)?
                .spec
                .roles
                .into_iter()
                .find(|r| r.name == *role)
                .ok_or_else(|| {
                    TenancyError::invalid("role", format!("project {project} has no role {role}"))
                })?;
            ("role", found.rules)
        }
        (None, Some(preset)) => ("clusterRole", Presets::builtin().rules(preset).to_vec()),
        _ => return Err(one_role_error().into()),
    };
    if !uncovered(&access.permissions.rules_in(project), &rules).is_empty() {
        return Err(TenancyError::Escalation {
            field: field.to_owned(),
            message: format!(
                "you may bind only a role whose permissions you hold yourself in project {project}"
            ),
        }
        .into());
    }
    let (org, workspace, project) = at.owned();
    let action = Action::BindRole {
        org,
        workspace,
        project,
        binding,
    };
    Ok(submit(services, caller, key, action).await?)
}

/// Removes a RoleBinding: the group and exactly one of a Role and a preset ClusterRole.
pub async fn unbind(
    services: &Services,
    caller: &Caller,
    key: &RequestKey,
    at: ProjectRef<'_>,
    binding: RoleBinding,
) -> ProjectResult<CommitAnswer> {
    allowed(services, caller, at, "delete", "rolebindings").await?;
    if binding.role.is_some() == binding.cluster_role.is_some() {
        return Err(one_role_error().into());
    }
    let (org, workspace, project) = at.owned();
    let action = Action::UnbindRole {
        org,
        workspace,
        project,
        binding,
    };
    Ok(submit(services, caller, key, action).await?)
}
