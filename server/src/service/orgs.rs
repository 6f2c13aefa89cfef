//! Organizations: creating and deleting them (Git first, then SQL), their users, invitations
//! and billing. Someone who is not an organization user gets 404 for everything of it;
//! a user who can see it but may not do something gets 403.

use crate::http::auth::Caller;
use crate::http::commit::{self, CommitAnswer, RequestKey};
use crate::http::{ApiError, AppState};
use crate::service::accounts::{
    email_problem, field_problem, name_problem, normalize_email, slug_problem,
};
use crate::service::action::Action;
use crate::service::credentials::{generate_token, hash_token};
use crate::store::{
    Invitation, LAST_OWNER, Member, OrgRole, Organization, PlanPrice, StoreError, Subscription, now,
};

/// The organization `slug` and the caller's role there; 404 for anyone who has none.
pub async fn visible(
    state: &AppState,
    caller: &Caller,
    slug: &str,
) -> Result<(Organization, OrgRole), ApiError> {
    match state.store.membership(slug, &caller.user.id).await {
        Err(StoreError::NotFound) => Err(ApiError::not_found(format!("no organization {slug}"))),
        other => Ok(other?),
    }
}

/// The organization `slug`, which the caller must own (403 for its billing managers).
pub async fn owned(
    state: &AppState,
    caller: &Caller,
    slug: &str,
) -> Result<Organization, ApiError> {
    let (org, role) = visible(state, caller, slug).await?;
    if role != OrgRole::Owner {
        return Err(ApiError::forbidden(format!(
            "only owners of organization {slug} may do this"
        )));
    }
    Ok(org)
}

/// Creates an organization owned by the caller: `CreateOrganization` in Git, then the rows.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    name: &str,
    key: &RequestKey,
) -> Result<(Organization, CommitAnswer), ApiError> {
    let name = name.trim();
    let mut problems = Vec::new();
    if let Some(p) = slug_problem(slug) {
        problems.push(field_problem("slug", &p));
    }
    if let Some(p) = name_problem(name) {
        problems.push(field_problem("name", p));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_all(problems));
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
                && let Some(answer) = commit::replay(state, caller, key).await?
            {
                return Ok((org, answer));
            }
            return Err(slug_taken(slug));
        }
        Err(StoreError::NotFound) => {}
        Err(other) => return Err(other.into()),
    }
    let answer = commit::apply(state, caller, key, action)
        .await
        .map_err(|e| {
            if e.code == "conflict" {
                slug_taken(slug)
            } else {
                e
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

fn slug_taken(slug: &str) -> ApiError {
    ApiError::conflict(format!("organization {slug} exists")).field("slug")
}

/// Deletes an organization the caller owns: `DeleteOrganization` in Git (refused while it
/// has workspaces), then the rows. The private organization stays.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    key: &RequestKey,
) -> Result<CommitAnswer, ApiError> {
    let org = owned(state, caller, slug).await?;
    if org.personal {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "refused",
            "The change is refused",
        )
        .detail("a private organization cannot be deleted"));
    }
    let action = Action::DeleteOrganization {
        org: slug.to_owned(),
    };
    let answer = match commit::apply(state, caller, key, action).await {
        Ok(answer) => answer,
        // Gone from Git already (a pull request removed it): only the rows are left.
        Err(error) if error.code == "not-found" => CommitAnswer::default(),
        Err(error) => return Err(error),
    };
    state.store.delete_organization(&org.id).await?;
    Ok(answer)
}

/// The organization's users; any of them may see the list.
pub async fn members(
    state: &AppState,
    caller: &Caller,
    slug: &str,
) -> Result<Vec<Member>, ApiError> {
    let (org, _) = visible(state, caller, slug).await?;
    Ok(state.store.members(&org.id).await?)
}

/// Changes the role of an organization user (owners only; the last owner stays one).
pub async fn set_role(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    user_id: &str,
    role: OrgRole,
) -> Result<Member, ApiError> {
    let org = owned(state, caller, slug).await?;
    match state.store.set_member_role(&org.id, user_id, role).await {
        Err(StoreError::NotFound) => {
            return Err(ApiError::not_found(format!(
                "{user_id} is not a user of organization {slug}; invite them"
            ))
            .field("userId"));
        }
        Err(StoreError::Conflict(why)) => return Err(ApiError::conflict(why).field("role")),
        other => other?,
    }
    state
        .store
        .members(&org.id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id)
        .ok_or_else(|| ApiError::not_found(format!("{user_id} left organization {slug}")))
}

/// Removes an organization user: owners may remove anyone, anyone may leave; never the
/// last owner.
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    user_id: &str,
) -> Result<(), ApiError> {
    let (org, role) = visible(state, caller, slug).await?;
    if role != OrgRole::Owner && user_id != caller.user.id {
        return Err(ApiError::forbidden(format!(
            "only owners of organization {slug} may remove its users"
        )));
    }
    match state.store.remove_member(&org.id, user_id).await {
        Err(StoreError::NotFound) => Err(ApiError::not_found(format!(
            "{user_id} is not a user of organization {slug}"
        ))),
        Err(StoreError::Conflict(why)) if why == LAST_OWNER => Err(ApiError::conflict(why)),
        other => Ok(other?),
    }
}

/// Invites `email` to the organization with `role` (owners only): the invitation and its
/// one-time token, which only the inviter sees.
pub async fn invite(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    email: &str,
    role: OrgRole,
) -> Result<(Invitation, String), ApiError> {
    let org = owned(state, caller, slug).await?;
    let email = normalize_email(email);
    if let Some(p) = email_problem(&email) {
        return Err(ApiError::invalid("email", p));
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
    state: &AppState,
    caller: &Caller,
    token: &str,
) -> Result<(Organization, OrgRole), ApiError> {
    match state
        .store
        .accept_invitation(&hash_token(token), &caller.user.id, &caller.user.email)
        .await
    {
        Err(StoreError::NotFound) => Err(ApiError::not_found(
            "no open invitation with this token for your email",
        )),
        other => Ok(other?),
    }
}

/// The organization's billing: plan prices and its subscriptions (owners and billing
/// managers).
pub async fn billing(
    state: &AppState,
    caller: &Caller,
    slug: &str,
) -> Result<(Vec<PlanPrice>, Vec<Subscription>), ApiError> {
    let (org, _) = visible(state, caller, slug).await?;
    let prices = state.store.plan_prices().await?;
    let subscriptions = state.store.subscriptions(&org.id).await?;
    Ok((prices, subscriptions))
}
