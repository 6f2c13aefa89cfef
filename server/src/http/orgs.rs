//! Organizations, their users, invitations and billing.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::commit::{CommitAnswer, RequestKey};
use super::json::Json;
use super::{ApiError, ApiRoute, AppState};
use crate::service::orgs::{self, OrgError};
use crate::store::{Member, OrgRole, Organization, PlanPrice, Subscription};

impl From<OrgError> for ApiError {
    fn from(error: OrgError) -> Self {
        match error {
            OrgError::NotFound(slug) => ApiError::not_found(format!("no organization {slug}")),
            OrgError::NotOwner(slug) => {
                ApiError::forbidden(format!("only owners of organization {slug} may do this"))
            }
            OrgError::Invalid(problems) => ApiError::invalid_all(problems),
            OrgError::SlugTaken(slug) => {
                ApiError::conflict(format!("organization {slug} exists")).field("slug")
            }
            OrgError::Private => {
                ApiError::new(StatusCode::CONFLICT, "refused", "The change is refused")
                    .detail("a private organization cannot be deleted")
            }
            OrgError::NotInvited { user_id, org } => ApiError::not_found(format!(
                "{user_id} is not a user of organization {org}; invite them"
            ))
            .field("userId"),
            OrgError::RoleConflict(why) => ApiError::conflict(why).field("role"),
            OrgError::Left { user_id, org } => {
                ApiError::not_found(format!("{user_id} left organization {org}"))
            }
            OrgError::MayNotRemove(slug) => ApiError::forbidden(format!(
                "only owners of organization {slug} may remove its users"
            )),
            OrgError::NotAUser { user_id, org } => {
                ApiError::not_found(format!("{user_id} is not a user of organization {org}"))
            }
            OrgError::LastOwner(why) => ApiError::conflict(why),
            OrgError::NoInvitation => {
                ApiError::not_found("no open invitation with this token for your email")
            }
            OrgError::Submit(error) => error.into(),
            OrgError::Store(error) => error.into(),
        }
    }
}

/// An organization, as its users see it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    /// Its slug: its name in Git and in URLs.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The private organization made at sign-up.
    pub personal: bool,
    /// The caller's role there.
    pub role: OrgRole,
    /// Unix seconds.
    pub created_at: i64,
}

impl OrgView {
    fn new(org: Organization, role: OrgRole) -> Self {
        Self {
            slug: org.slug,
            name: org.name,
            personal: org.personal,
            role,
            created_at: org.created_at,
        }
    }
}

/// A new organization.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgRequest {
    /// A DNS label of at most 30 characters.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// A created organization and the commit that made it.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOrg {
    /// The organization.
    pub organization: OrgView,
    /// The commit.
    pub commit: Option<String>,
}

/// A change of an organization user's role.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberRequest {
    /// The user's id; they must already be an organization user (invite them first).
    pub user_id: String,
    /// Their new role.
    pub role: OrgRole,
}

/// An invitation to send.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvitationRequest {
    /// Who may accept it.
    pub email: String,
    /// The role it gives.
    pub role: OrgRole,
}

/// A sent invitation, with its one-time token (shown once, to the inviter).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedInvitation {
    /// The invitation's id.
    pub id: String,
    /// Who may accept it.
    pub email: String,
    /// The role it gives.
    pub role: OrgRole,
    /// Unix seconds.
    pub expires_at: i64,
    /// The token to accept it with (`POST /api/v1/invitations/{token}/accept`).
    pub token: String,
}

/// An organization's billing.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Billing {
    /// What each plan costs.
    pub prices: Vec<PlanPrice>,
    /// The organization's workspaces' plans over time.
    pub subscriptions: Vec<Subscription>,
}

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::GET,
            "/api/v1/orgs",
            "listOrgs",
            "The caller's organizations",
            get(list),
        )
        .response::<Vec<OrgView>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            "/api/v1/orgs",
            "createOrg",
            "Create an organization owned by the caller",
            post(create),
        )
        .request::<OrgRequest>()
        .response::<CreatedOrg>(StatusCode::CREATED)
        .mutates(),
        ApiRoute::new(
            Method::GET,
            "/api/v1/orgs/{org}",
            "getOrg",
            "One of the caller's organizations",
            get(show),
        )
        .response::<OrgView>(StatusCode::OK),
        ApiRoute::new(
            Method::DELETE,
            "/api/v1/orgs/{org}",
            "deleteOrg",
            "Delete an organization without workspaces (owners)",
            delete(remove),
        )
        .response::<CommitAnswer>(StatusCode::OK)
        .mutates(),
        ApiRoute::new(
            Method::GET,
            "/api/v1/orgs/{org}/members",
            "listOrgMembers",
            "The organization's users",
            get(members),
        )
        .response::<Vec<Member>>(StatusCode::OK),
        ApiRoute::new(
            Method::POST,
            "/api/v1/orgs/{org}/members",
            "setOrgMemberRole",
            "Change an organization user's role (owners)",
            post(set_role),
        )
        .request::<MemberRequest>()
        .response::<Member>(StatusCode::OK),
        ApiRoute::new(
            Method::DELETE,
            "/api/v1/orgs/{org}/members/{user}",
            "removeOrgMember",
            "Remove an organization user (owners), or leave",
            delete(remove_member),
        )
        .empty(StatusCode::NO_CONTENT),
        ApiRoute::new(
            Method::POST,
            "/api/v1/orgs/{org}/invitations",
            "inviteToOrg",
            "Invite someone by email (owners); answers the one-time token",
            post(invite),
        )
        .request::<InvitationRequest>()
        .response::<CreatedInvitation>(StatusCode::CREATED),
        ApiRoute::new(
            Method::POST,
            "/api/v1/invitations/{token}/accept",
            "acceptInvitation",
            "Accept an invitation sent to the caller's email",
            post(accept),
        )
        .response::<OrgView>(StatusCode::OK),
        ApiRoute::new(
            Method::GET,
            "/api/v1/orgs/{org}/billing",
            "getOrgBilling",
            "Plan prices and the organization's subscriptions",
            get(billing),
        )
        .response::<Billing>(StatusCode::OK),
    ]
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<OrgView>>, ApiError> {
    let orgs = state.store.memberships_of(&caller.user.id).await?;
    Ok(Json(
        orgs.into_iter()
            .map(|(org, role)| OrgView::new(org, role))
            .collect(),
    ))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    key: RequestKey,
    Json(body): Json<OrgRequest>,
) -> Result<(StatusCode, Json<CreatedOrg>), ApiError> {
    let (org, answer) = orgs::create(&state, &caller, &body.slug, &body.name, &key).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrg {
            organization: OrgView::new(org, OrgRole::Owner),
            commit: answer.commit,
        }),
    ))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<OrgView>, ApiError> {
    let (org, role) = orgs::visible(&state, &caller, &slug).await?;
    Ok(Json(OrgView::new(org, role)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    key: RequestKey,
) -> Result<Json<CommitAnswer>, ApiError> {
    Ok(Json(orgs::delete(&state, &caller, &slug, &key).await?))
}

async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(orgs::members(&state, &caller, &slug).await?))
}

async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(body): Json<MemberRequest>,
) -> Result<Json<Member>, ApiError> {
    Ok(Json(
        orgs::set_role(&state, &caller, &slug, &body.user_id, body.role).await?,
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    orgs::remove(&state, &caller, &slug, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(body): Json<InvitationRequest>,
) -> Result<(StatusCode, Json<CreatedInvitation>), ApiError> {
    let (invitation, token) = orgs::invite(&state, &caller, &slug, &body.email, body.role).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            id: invitation.id,
            email: invitation.email,
            role: invitation.role,
            expires_at: invitation.expires_at,
            token,
        }),
    ))
}

async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Json<OrgView>, ApiError> {
    let (org, role) = orgs::accept(&state, &caller, &token).await?;
    Ok(Json(OrgView::new(org, role)))
}

async fn billing(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Billing>, ApiError> {
    let (prices, subscriptions) = orgs::billing(&state, &caller, &slug).await?;
    Ok(Json(Billing {
        prices,
        subscriptions,
    }))
}
