//! Organizations: creating and deleting them (Git first, then SQL), their users, invitations
//! and billing. Someone who is not an organization user gets 404 for everything of it;
//! a user who can see it but may not do something gets 403.

use super::caller::Caller;
use super::submit::{self, CommitAnswer, RequestKey, SubmitError};
use super::{FieldProblem, Services};
use crate::service::accounts::{
    email_problem, field_problem, name_problem, normalize_email, slug_problem,
};
use crate::service::action::Action;
use crate::service::credentials::{generate_token, hash_token};
use crate::store::{
    Invitation, LAST_OWNER, Member, OrgRole, Organization, PlanPrice, StoreError, Subscription, now,
};

/// Why an organization use case failed.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// No such organization, or the caller is none of its users.
    #[error("no organization {0}")]
    NotFound(String),
    /// The caller is not an owner of the organization.
    #[error("only owners of organization {0} may do this")]
    NotOwner(String),
    /// Fields of the request are invalid (every problem found).
    #[error("the request is invalid")]
    Invalid(Vec<FieldProblem>),
    /// The slug is taken.
    #[error("organization {0} exists")]
    SlugTaken(String),
    /// A private organization cannot be deleted.
    #[error("a private organization cannot be deleted")]
    Private,
    /// The user is not a user of the organization (changing a role).
    #[error("{user_id} is not a user of organization {org}; invite them")]
    NotInvited {
        /// The user.
        user_id: String,
        /// The organization.
        org: String,
    },
    /// The new role conflicts with the organization's users (the last owner).
    #[error("{0}")]
    RoleConflict(String),
    /// The user left while their role changed.
    #[error("{user_id} left organization {org}")]
    Left {
        /// The user.
        user_id: String,
        /// The organization.
        org: String,
    },
    /// Someone other than an owner tried to remove another user.
    #[error("only owners of organization {0} may remove its users")]
    MayNotRemove(String),
    /// The user is not a user of the organization (removing them).
    #[error("{user_id} is not a user of organization {org}")]
    NotAUser {
        /// The user.
        user_id: String,
        /// The organization.
        org: String,
    },
    /// Removing the user would leave the organization without an owner.
    #[error("{0}")]
    LastOwner(String),
    /// No open invitation for the caller has this token.
    #[error("no open invitation with this token for your email")]
    NoInvitation,
    /// The organization's commit failed.
    #[error("failed to commit the organization's change")]
    Submit(#[source] SubmitError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// The organization `slug` and the caller's role there; 404 for anyone who has none.
pub async fn visible(
    state: &Services,
    caller: &Caller,
    slug: &str,
) -> Result<(Organization, OrgRole), OrgError> {
    match state.store.membership(slug, &caller.user.id).await {
        Err(StoreError::NotFound) => Err(OrgError::NotFound(slug.to_owned())),
        other => Ok(other?),
    }
}

/// The organization `slug`, which the caller must own (403 for its billing managers).
pub async fn owned(
    state: &Services,
    caller: &Caller,
    slug: &str,
) -> Result<Organization, OrgError> {
    let (org, role) = visible(state, caller, slug).await?;
    if role != OrgRole::Owner {
        return Err(OrgError::NotOwner(slug.to_owned()));
    }
    Ok(org)
}

/// Creates an organization owned by the caller: `CreateOrganization` in Git, then the rows.
pub async fn create(
    state: &Services,
    caller: &Caller,
    slug: &str,
    name: &str,
    key: &RequestKey,
) -> Result<(Organization, CommitAnswer), OrgError> {
    let name = name.trim();
    let mut problems = Vec::new();
    if let Some(p) = slug_problem(slug) {
        problems.push(field_problem("slug", &p));
    }
    if let Some(p) = name_problem(name) {
        problems.push(field_problem("name", p));
    }
    if !problems.is_empty() {
        return Err(OrgError::Invalid(problems));
    }
    let action = Action::CreateOrganization {
        org: slug.to_owned(),
        display_name: Some(name.to_owned()),
    };
    match state.store.organization_by_slug(slug).await {
        Ok(_) => {
            // Taken; unless it is the caller's own and this is a retry of the request that
            // made it, which is answered with its first commit.
            if let Ok(org) = owned(state, caller, slug).await
                && let Some(answer) = submit::replay(state, caller, key)
                    .await
                    .map_err(OrgError::Submit)?
            {
                return Ok((org, answer));
            }
            return Err(slug_taken(slug));
        }
        Err(StoreError::NotFound) => {}
        Err(other) => return Err(other.into()),
    }
    let answer = submit::submit(state, caller, key, action)
        .await
        .map_err(|e| {
            if e.is_already_exists() {
                slug_taken(slug)
            } else {
                OrgError::Submit(e)
            }
        })?;
    match state
        .store
        .create_organization(slug, name, false, &caller.user.id)
        .await
    {
        Ok(org) => Ok((org, answer)),
        Err(StoreError::Conflict(_)) => Err(slug_taken(slug)),
        Err(other) => Err(other.into()),
    }
}

fn slug_taken(slug: &str) -> OrgError {
    OrgError::SlugTaken(slug.to_owned())
}

/// Deletes an organization the caller owns: `DeleteOrganization` in Git (refused while it
/// has workspaces), then the rows. The private organization stays.
pub async fn delete(
    state: &Services,
    caller: &Caller,
    slug: &str,
    key: &RequestKey,
) -> Result<CommitAnswer, OrgError> {
    let org = owned(state, caller, slug).await?;
    if org.personal {
        return Err(OrgError::Private);
    }
    let action = Action::DeleteOrganization {
        org: slug.to_owned(),
    };
    let answer = match submit::submit(state, caller, key, action).await {
        Ok(answer) => answer,
        // Gone from Git already (a pull request removed it): only the rows are left.
        Err(error) if error.is_not_found() => CommitAnswer::default(),
        Err(error) => return Err(OrgError::Submit(error)),
    };
    state.store.delete_organization(&org.id).await?;
    Ok(answer)
}

/// The organization's users; any of them may see the list.
pub async fn members(
    state: &Services,
    caller: &Caller,
    slug: &str,
) -> Result<Vec<Member>, OrgError> {
    let (org, _) = visible(state, caller, slug).await?;
    Ok(state.store.members(&org.id).await?)
}

/// Changes the role of an organization user (owners only; the last owner stays one).
pub async fn set_role(
    state: &Services,
    caller: &Caller,
    slug: &str,
    user_id: &str,
    role: OrgRole,
) -> Result<Member, OrgError> {
    let org = owned(state, caller, slug).await?;
    match state.store.set_member_role(&org.id, user_id, role).await {
        Err(StoreError::NotFound) => {
            return Err(OrgError::NotInvited {
                user_id: user_id.to_owned(),
                org: slug.to_owned(),
            });
        }
        Err(StoreError::Conflict(why)) => return Err(OrgError::RoleConflict(why)),
        other => other?,
    }
    state
        .store
        .members(&org.id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id)
        .ok_or_else(|| OrgError::Left {
            user_id: user_id.to_owned(),
            org: slug.to_owned(),
        })
}

/// Removes an organization user: owners may remove anyone, anyone may leave; never the
/// last owner.
pub async fn remove(
    state: &Services,
    caller: &Caller,
    slug: &str,
    user_id: &str,
) -> Result<(), OrgError> {
    let (org, role) = visible(state, caller, slug).await?;
    if role != OrgRole::Owner && user_id != caller.user.id {
        return Err(OrgError::MayNotRemove(slug.to_owned()));
    }
    match state.store.remove_member(&org.id, user_id).await {
        Err(StoreError::NotFound) => Err(OrgError::NotAUser {
            user_id: user_id.to_owned(),
            org: slug.to_owned(),
        }),
        Err(StoreError::Conflict(why)) if why == LAST_OWNER => Err(OrgError::LastOwner(why)),
        other => Ok(other?),
    }
}

/// Invites `email` to the organization with `role` (owners only): the invitation and its
/// one-time token, which only the inviter sees.
pub async fn invite(
    state: &Services,
    caller: &Caller,
    slug: &str,
    email: &str,
    role: OrgRole,
) -> Result<(Invitation, String), OrgError> {
    let org = owned(state, caller, slug).await?;
    let email = normalize_email(email);
    if let Some(p) = email_problem(&email) {
        return Err(OrgError::Invalid(vec![FieldProblem::new("email", p)]));
    }
    let token = generate_token("hbi_");
    let expires_at = now().saturating_add(state.settings.accounts.invitation_ttl_seconds);
    let invitation = state
        .store
        .create_invitation(
            &org.id,
            &email,
            role,
            &hash_token(&token),
            &caller.user.id,
            expires_at,
        )
        .await?;
    Ok((invitation, token))
}

/// Accepts an invitation as the caller, whose email must be the invited one. Anything else
/// (unknown, spent, expired, someone else's) is the same 404.
pub async fn accept(
    state: &Services,
    caller: &Caller,
    token: &str,
) -> Result<(Organization, OrgRole), OrgError> {
    match state
        .store
        .accept_invitation(&hash_token(token), &caller.user.id, &caller.user.email)
        .await
    {
        Err(StoreError::NotFound) => Err(OrgError::NoInvitation),
        other => Ok(other?),
    }
}

/// The organization's billing: plan prices and its subscriptions (owners and billing
/// managers).
pub async fn billing(
    state: &Services,
    caller: &Caller,
    slug: &str,
) -> Result<(Vec<PlanPrice>, Vec<Subscription>), OrgError> {
    let (org, _) = visible(state, caller, slug).await?;
    let prices = state.store.plan_prices().await?;
    let subscriptions = state.store.subscriptions(&org.id).await?;
    Ok((prices, subscriptions))
}
