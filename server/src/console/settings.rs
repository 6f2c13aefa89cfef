//! The organization settings page (`/orgs/{org}/settings`): the organization's users and
//! their roles (owner, billing), inviting someone by email, and the signed-in person's API
//! tokens (a new token's secret is shown once, on the answer to the form that made it).
//!
//! Every form calls the same use case as the REST API (`service::orgs::{set_role, remove,
//! invite}`, `service::accounts::{create_token, delete_token}`); the service refuses what a
//! non-owner may not do, and the page does not show them the controls.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::dashboard::error_page;
use super::layout::{Problems, problems_of, render, status_of};
use super::session::{ConsoleSession, SignedForm};
use crate::http::{ApiError, AppState};
use crate::service::accounts;
use crate::service::audit::utc;
use crate::service::oidc::form_encode;
use crate::service::orgs;
use crate::store::{Member, OrgRole};

/// The routes of the settings page.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/orgs/{org}/settings", get(page))
        .route("/orgs/{org}/settings/tokens", post(create_token))
        .route(
            "/orgs/{org}/settings/tokens/{id}/revoke",
            post(revoke_token),
        )
        .route("/orgs/{org}/settings/invitations", post(invite))
        .route("/orgs/{org}/settings/users/{user}/role", post(set_role))
        .route("/orgs/{org}/settings/users/{user}/remove", post(remove))
}

fn page_url(org: &str) -> String {
    format!("/orgs/{}/settings", form_encode(org))
}

#[derive(Serialize)]
struct TokenRow {
    id: String,
    name: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    created: String,
    last_used: Option<String>,
    expires: Option<String>,
}

/// What a form's answer adds to the page: a secret shown once, the form's problems and the
/// values typed.
#[derive(Default, Serialize)]
struct Answer {
    /// A new API token's secret, shown on this answer only.
    secret: Option<String>,
    /// A new invitation's link, shown on this answer only.
    invitation: Option<String>,
    /// Which form the problems belong to.
    form: String,
    errors: Problems,
    values: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct SettingsView {
    org: String,
    name: String,
    owner: bool,
    me: String,
    users: Vec<Member>,
    tokens: Vec<TokenRow>,
    /// The person's organizations (slugs), for the switcher.
    #[serde(skip)]
    orgs: Vec<String>,
    answer: Answer,
}

async fn view(
    state: &AppState,
    session: &ConsoleSession,
    org: &str,
    answer: Answer,
) -> Result<SettingsView, ApiError> {
    let (found, role) = orgs::visible(state, &session.caller, org).await?;
    let users = orgs::members(state, &session.caller, org).await?;
    let tokens = state.store.api_tokens_of(&session.caller.user.id).await?;
    let orgs = state
        .store
        .organizations_of(&session.caller.user.id)
        .await?;
    Ok(SettingsView {
        org: found.slug,
        name: found.name,
        owner: role == OrgRole::Owner,
        me: session.caller.user.id.clone(),
        users,
        orgs: orgs.into_iter().map(|o| o.slug).collect(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                name: t.name,
                created: utc(t.created_at),
                last_used: t.last_used_at.map(utc),
                expires: t.expires_at.map(utc),
            })
            .collect(),
        answer,
    })
}

async fn show(
    state: &AppState,
    session: &ConsoleSession,
    org: &str,
    status: StatusCode,
    answer: Answer,
) -> Response {
    match view(state, session, org, answer).await {
        Ok(view) => {
            let chrome = super::layout::Chrome {
                org: Some(view.org.clone()),
                orgs: view.orgs.clone(),
                ..session.chrome("Settings")
            }
            .crumb(
                view.name.clone(),
                format!("/orgs/{}", form_encode(&view.org)),
            );
            render(status, "settings.html", &chrome, &view)
        }
        Err(error) => error_page(session, &error),
    }
}

/// A refused form: the page again with the problem next to the form's field.
async fn refused(
    state: &AppState,
    form: &SignedForm,
    org: &str,
    which: &str,
    error: ApiError,
) -> Response {
    if status_of(&error) == StatusCode::NOT_FOUND && which != "token" {
        // A stranger's or a gone organization: say nothing more.
        if orgs::visible(state, &form.session.caller, org)
            .await
            .is_err()
        {
            return error_page(&form.session, &error);
        }
    }
    let answer = Answer {
        form: which.to_owned(),
        errors: problems_of(&error),
        values: form.fields.kept(),
        ..Answer::default()
    };
    show(state, &form.session, org, status_of(&error), answer).await
}

/// `GET /orgs/{org}/settings`: the page.
pub async fn page(
    State(state): State<AppState>,
    session: ConsoleSession,
    Path(org): Path<String>,
) -> Response {
    show(&state, &session, &org, StatusCode::OK, Answer::default()).await
}

/// A refusal of form field `field` for `why`.
fn invalid(field: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "The request is invalid",
    )
    .detail(why)
    .field(field)
}

/// A required confirmation checkbox was not ticked.
fn unconfirmed(form: &SignedForm) -> Option<ApiError> {
    (form.fields.get("confirm") != "yes").then(|| invalid("confirm", "tick the box to confirm"))
}

/// `POST /orgs/{org}/settings/tokens`: a new API token, like `POST /api/v1/tokens`; its
/// secret is shown on this answer and never again.
pub async fn create_token(
    State(state): State<AppState>,
    Path(org): Path<String>,
    form: SignedForm,
) -> Response {
    if let Err(error) = orgs::visible(&state, &form.session.caller, &org).await {
        return error_page(&form.session, &ApiError::from(error));
    }
    match accounts::create_token(&state, &form.session.caller, form.fields.get("name"), None).await
    {
        Ok((_, secret)) => {
            let answer = Answer {
                secret: Some(secret),
                ..Answer::default()
            };
            show(&state, &form.session, &org, StatusCode::CREATED, answer).await
        }
        Err(error) => refused(&state, &form, &org, "token", ApiError::from(error)).await,
    }
}

/// `POST /orgs/{org}/settings/tokens/{id}/revoke`: deletes one of the person's tokens, like
/// `DELETE /api/v1/tokens/{id}`, once confirmed.
pub async fn revoke_token(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    if let Err(error) = orgs::visible(&state, &form.session.caller, &org).await {
        return error_page(&form.session, &ApiError::from(error));
    }
    if let Some(error) = unconfirmed(&form) {
        return refused(&state, &form, &org, &format!("revoke-{id}"), error).await;
    }
    match accounts::delete_token(&state, &form.session.caller, &id).await {
        Ok(()) => Redirect::to(&page_url(&org)).into_response(),
        Err(error) => refused(&state, &form, &org, "token", ApiError::from(error)).await,
    }
}

/// `POST /orgs/{org}/settings/invitations`: invites an email with a role, like
/// `POST /api/v1/orgs/{org}/invitations` (owners only); the link is shown once.
pub async fn invite(
    State(state): State<AppState>,
    Path(org): Path<String>,
    form: SignedForm,
) -> Response {
    let Some(role) = role_of(form.fields.get("role")) else {
        let error = invalid("role", "must be owner or billing");
        return refused(&state, &form, &org, "invite", error).await;
    };
    match orgs::invite(
        &state,
        &form.session.caller,
        &org,
        form.fields.get("email"),
        role,
    )
    .await
    {
        Ok((_, token)) => {
            let answer = Answer {
                invitation: Some(format!("/invitations/{}", form_encode(&token))),
                ..Answer::default()
            };
            show(&state, &form.session, &org, StatusCode::CREATED, answer).await
        }
        Err(error) => refused(&state, &form, &org, "invite", ApiError::from(error)).await,
    }
}

fn role_of(text: &str) -> Option<OrgRole> {
    match text {
        "owner" => Some(OrgRole::Owner),
        "billing" => Some(OrgRole::Billing),
        _ => None,
    }
}

/// `POST /orgs/{org}/settings/users/{user}/role`: changes a user's role, like
/// `POST /api/v1/orgs/{org}/members` (owners only).
pub async fn set_role(
    State(state): State<AppState>,
    Path((org, user)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    let which = format!("role-{user}");
    let Some(role) = role_of(form.fields.get("role")) else {
        let error = invalid("role", "must be owner or billing");
        return refused(&state, &form, &org, &which, error).await;
    };
    match orgs::set_role(&state, &form.session.caller, &org, &user, role).await {
        Ok(_) => Redirect::to(&page_url(&org)).into_response(),
        Err(error) => refused(&state, &form, &org, &which, ApiError::from(error)).await,
    }
}

/// `POST /orgs/{org}/settings/users/{user}/remove`: removes a user, like
/// `DELETE /api/v1/orgs/{org}/members/{user}`, once confirmed.
pub async fn remove(
    State(state): State<AppState>,
    Path((org, user)): Path<(String, String)>,
    form: SignedForm,
) -> Response {
    let which = format!("remove-{user}");
    if let Some(error) = unconfirmed(&form) {
        return refused(&state, &form, &org, &which, error).await;
    }
    match orgs::remove(&state, &form.session.caller, &org, &user).await {
        Ok(()) if user == form.session.caller.user.id => Redirect::to("/").into_response(),
        Ok(()) => Redirect::to(&page_url(&org)).into_response(),
        Err(error) => refused(&state, &form, &org, &which, ApiError::from(error)).await,
    }
}
