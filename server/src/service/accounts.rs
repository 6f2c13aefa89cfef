//! Accounts: sign-up (with the private organization every account gets), sign-in with a
//! password, sessions, API tokens, and the rate limits that guard sign-in.
//!
//! Failures are [`AccountError`]s: each is one the client must be able to tell apart.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::caller::{Caller, Via};
use super::submit::{self, RequestKey, SubmitError};
use super::{FieldProblem, Services};
use crate::service::action::Action;
use crate::service::credentials::{
    self, API_TOKEN_PREFIX, dummy_password_hash, generate_token, hash_token,
};
use crate::service::issuer::{Clock as IssuerClock, SystemClock};
use crate::service::throttle;
use crate::settings::Settings;
use crate::store::{ApiToken, NewAccount, Organization, StoreError, User, new_id, now};

/// Passwords have at least this many characters.
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Passwords have at most this many bytes (argon2 takes any length; this bounds the work).
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// Organization slugs have at most this many characters, leaving room for workspace names
/// in the host namespace `ws-<org>-<workspace>` (63 characters in all).
pub const ORG_SLUG_MAX: usize = 30;
/// A derived private organization slug's base has at most this many characters (room for a
/// `-<n>` suffix).
const DERIVED_SLUG_BASE_MAX: usize = 20;
/// Keyed limiters forget idle keys once they hold this many.
const LIMITER_KEYS_MAX: usize = 10_000;

/// Sign-in limits (a rate per client address, and the back-off of failed passwords per
/// account and per client) and the HTTP client for external identity providers; one per
/// server.
#[derive(Debug)]
pub struct SignIn {
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// The back-off of failed passwords (see [`throttle`]).
    pub backoff: throttle::LoginBackoff,
    /// The client that talks to external OpenID Connect providers.
    pub http: reqwest::Client,
}

impl SignIn {
    /// Limits from `settings.limits` (a rate of 0 turns that rate off).
    pub fn new(settings: &Settings) -> Self {
        Self::with_clock(settings, std::sync::Arc::new(SystemClock))
    }

    /// [`SignIn::new`] with the back-off on `clock` (tests move it by hand).
    pub fn with_clock(settings: &Settings, clock: std::sync::Arc<dyn IssuerClock>) -> Self {
        Self {
            per_client: per_minute(settings.limits.logins_per_client_per_minute),
            backoff: throttle::LoginBackoff::with_clock(
                throttle::Figures::from_limits(&settings.limits),
                clock,
            ),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    /// Counts an attempt from `client`: 429 with `Retry-After` once over the limit.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), RateLimited> {
        match (&self.per_client, client) {
            (Some(limiter), Some(ip)) => check(limiter, &ip),
            _ => Ok(()),
        }
    }
}

fn per_minute<K>(n: u32) -> Option<DefaultKeyedRateLimiter<K>>
where
    K: Clone + Eq + std::hash::Hash,
{
    NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// Over a rate limit: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited(pub u64);

impl From<RateLimited> for AccountError {
    fn from(RateLimited(seconds): RateLimited) -> Self {
        Self::RateLimited(seconds)
    }
}

impl From<throttle::Wait> for AccountError {
    fn from(throttle::Wait(seconds): throttle::Wait) -> Self {
        Self::RateLimited(seconds)
    }
}

/// Why an account use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Too many attempts: retry after this many seconds.
    #[error("too many attempts; retry after {0} s")]
    RateLimited(u64),
    /// Fields of the request are invalid (every problem found).
    #[error("the request is invalid")]
    Invalid(Vec<FieldProblem>),
    /// No account exists yet, and the sign-up did not bring the setup token.
    #[error("the first sign-up needs the setup token")]
    SetupTokenNeeded,
    /// Sign-up is closed (`accounts.open_signup`).
    #[error("sign-up is closed")]
    SignupClosed,
    /// An account with this email exists.
    #[error("an account with this email exists")]
    EmailTaken,
    /// Every private organization slug tried was taken.
    #[error("no free organization slug was found for this account")]
    NoFreeSlug,
    /// The email or the password is wrong (the same answer for both).
    #[error("the email or password is wrong")]
    WrongPassword,
    /// The caller has no API token with this id.
    #[error("no token {0}")]
    NoToken(String),
    /// The private organization's commit failed.
    #[error("failed to create the private organization")]
    CreateOrganization(#[source] SubmitError),
    /// Hashing or checking a password failed.
    #[error("failed to hash a password")]
    HashPassword(#[source] PasswordHashError),
    /// The blocking task hashing or checking a password failed.
    #[error("the password task failed")]
    PasswordTask(#[source] tokio::task::JoinError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

fn check<K>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), RateLimited>
where
    K: Clone + Eq + std::hash::Hash,
{
    if limiter.len() > LIMITER_KEYS_MAX {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

/// An email as stored: trimmed and lowercased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The longest email address kept (RFC 5321's path limit, less the angle brackets).
pub const EMAIL_MAX: usize = 254;
/// The longest local part (before the `@`) of an email address (RFC 5321).
pub const EMAIL_LOCAL_MAX: usize = 64;

/// Problems with a normalised email, if any. An address is `local@domain` with exactly one
/// `@`: the local part a dot-atom (letters, digits, non-ASCII letters and
/// ``!#$%&'*+-/=?^_`{|}~``, dots only between them), at most [`EMAIL_LOCAL_MAX`] bytes; the
/// domain dot-separated labels of letters, digits and inner hyphens, at most 63 bytes each;
/// at most [`EMAIL_MAX`] bytes in all. Quoted local parts, comments, `<`, `>`, whitespace
/// and control characters are refused: an address never carries a display part.
pub fn email_problem(email: &str) -> Option<&'static str> {
    const SHAPE: &str = "must be an email address (name@domain) without spaces, quotes, '<' or '>'";
    if email.len() > EMAIL_MAX {
        return Some("must be at most 254 characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Some(SHAPE);
    };
    if local.len() > EMAIL_LOCAL_MAX {
        return Some("must have at most 64 characters before the '@'");
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    let dot_atom = |text: &str, label: &dyn Fn(&str) -> bool| {
        !text.is_empty() && text.split('.').all(|part| !part.is_empty() && label(part))
    };
    let local_ok = dot_atom(local, &|part| part.chars().all(atext));
    let domain_ok = dot_atom(domain, &|label| {
        label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
            })
    });
    (!local_ok || !domain_ok).then_some(SHAPE)
}

/// Problems with a display name, if any.
pub fn name_problem(name: &str) -> Option<&'static str> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 {
        return Some("must be 1 to 100 characters");
    }
    if trimmed.chars().any(char::is_control) {
        return Some("must not contain control characters");
    }
    None
}

/// Problems with a new password, if any.
pub fn password_problem(password: &str) -> Option<String> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Some(format!("must be at least {PASSWORD_MIN_CHARS} characters"));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Some(format!("must be at most {PASSWORD_MAX_BYTES} bytes"));
    }
    None
}

/// Problems with an organization slug, if any: a DNS label ([`compiler::Slug`]) of at most
/// [`ORG_SLUG_MAX`].
pub fn slug_problem(slug: &str) -> Option<String> {
    compiler::Slug::check(slug, ORG_SLUG_MAX)
        .err()
        .map(|reason| reason.to_string())
}

/// The base of a private organization's slug: the email's local part as a DNS label.
pub fn derived_slug(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let mut slug = String::new();
    for c in local.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= DERIVED_SLUG_BASE_MAX {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "user".to_owned()
    } else {
        slug.to_owned()
    }
}

/// Hashes a password on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(AccountError::PasswordTask)?
        .map_err(|e| AccountError::HashPassword(PasswordHashError(e)))
}

/// argon2 failed (its error is not a `std::error::Error`).
#[derive(Debug, thiserror::Error)]
#[error("argon2: {0}")]
pub struct PasswordHashError(argon2::password_hash::Error);

/// What a sign-up asks for.
#[derive(Debug, Clone)]
pub struct Signup {
    /// Email, as typed.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Password.
    pub password: String,
    /// The one-time setup token (the first account only).
    pub setup_token: Option<String>,
}

/// Signs someone up: the first account needs the setup token and becomes the platform
/// administrator; later ones need `accounts.open_signup`. Makes their private organization.
pub async fn signup(
    state: &Services,
    request: Signup,
    client: Option<IpAddr>,
    key: &RequestKey,
) -> Result<User, AccountError> {
    state.sign_in.check_client(client)?;
    state.sign_in.backoff.admit_client(client)?;
    let email = normalize_email(&request.email);
    let name = request.name.trim().to_owned();
    let mut problems = Vec::new();
    if let Some(p) = email_problem(&email) {
        problems.push(field_problem("email", p));
    }
    if let Some(p) = name_problem(&name) {
        problems.push(field_problem("name", p));
    }
    if let Some(p) = password_problem(&request.password) {
        problems.push(field_problem("password", &p));
    }
    if !problems.is_empty() {
        return Err(AccountError::Invalid(problems));
    }
    let first = state.store.user_count().await? == 0;
    if first {
        let spent = match &request.setup_token {
            Some(token) => state.store.take_setup_token(&hash_token(token)).await?,
            None => false,
        };
        if !spent {
            return Err(AccountError::SetupTokenNeeded);
        }
    } else if !state.settings.accounts.open_signup {
        return Err(AccountError::SignupClosed);
    }
    let password_hash = hash_password(request.password).await?;
    let (user, _) = create_account(
        state,
        AccountDraft {
            email,
            name,
            password_hash: Some(password_hash),
            is_admin: first,
            external: None,
        },
        key,
    )
    .await
    .inspect_err(|error| {
        // "An account with this email exists" tells about someone else's account: it counts
        // against the client's back-off like a wrong password.
        if matches!(error, AccountError::EmailTaken) {
            state.sign_in.backoff.failed_client(client);
        }
    })?;
    Ok(user)
}

pub(crate) fn field_problem(field: &str, message: &str) -> FieldProblem {
    FieldProblem::new(field, message)
}

/// A new account before it exists.
#[derive(Debug, Clone)]
pub struct AccountDraft {
    /// Email, normalised and checked.
    pub email: String,
    /// Display name, checked.
    pub name: String,
    /// argon2id PHC string, for a local account.
    pub password_hash: Option<String>,
    /// Platform administrator.
    pub is_admin: bool,
    /// `(issuer, subject)` of an external identity.
    pub external: Option<(String, String)>,
}

/// Creates an account and its private organization: the organization in Git first (one
/// commit authored by the new user), then the user, identity and organization rows in one
/// transaction. The slug is derived from the email and made unique with a numeric suffix.
pub async fn create_account(
    state: &Services,
    draft: AccountDraft,
    key: &RequestKey,
) -> Result<(User, Organization), AccountError> {
    if state.store.user_by_email(&draft.email).await.is_ok() {
        return Err(AccountError::EmailTaken);
    }
    let user = User {
        id: new_id(),
        email: draft.email.clone(),
        name: draft.name.clone(),
        password_hash: draft.password_hash.clone(),
        is_admin: draft.is_admin,
        created_at: now(),
    };
    let author = Caller {
        user: user.clone(),
        via: Via::Token,
    };
    let base = derived_slug(&draft.email);
    for attempt in 0..50_u32 {
        let slug = match attempt {
            0 => base.clone(),
            n if n < 20 => format!("{base}-{}", n + 1),
            _ => format!("{base}-{}", &hash_token(&new_id())[..6]),
        };
        if slug_problem(&slug).is_some() {
            continue;
        }
        match state.store.organization_by_slug(&slug).await {
            Ok(_) => continue,
            Err(StoreError::NotFound) => {}
            Err(other) => return Err(other.into()),
        }
        let action = Action::CreateOrganization {
            org: slug.clone(),
            display_name: Some(draft.name.clone()),
        };
        match submit::submit(state, &author, &key.attempt(attempt), action).await {
            Ok(_) => {}
            // The slug exists in Git without a SQL row: take the next one.
            Err(error) if error.is_already_exists() => continue,
            Err(error) => return Err(AccountError::CreateOrganization(error)),
        }
        let account = NewAccount {
            user_id: user.id.clone(),
            email: draft.email.clone(),
            name: draft.name.clone(),
            password_hash: draft.password_hash.clone(),
            is_admin: draft.is_admin,
            external: draft.external.clone(),
            org_slug: slug.clone(),
            org_name: draft.name.clone(),
        };
        match state.store.create_account(&account).await {
            Ok(created) => return Ok(created),
            Err(StoreError::Conflict(_)) => {
                tracing::warn!(org = %slug, "organization created in Git but its SQL rows lost a race; the next start adopts it (tenancy::adopt_organizations)");
                if state.store.user_by_email(&draft.email).await.is_ok() {
                    return Err(AccountError::EmailTaken);
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(AccountError::NoFreeSlug)
}

/// Checks an email and password; a wrong email and a wrong password answer the same, take
/// the same time (the password is checked against a dummy hash) and back off alike (see
/// [`throttle`]).
pub async fn login(
    state: &Services,
    email: &str,
    password: String,
    client: Option<IpAddr>,
) -> Result<User, AccountError> {
    state.sign_in.check_client(client)?;
    let email = normalize_email(email);
    let backoff = &state.sign_in.backoff;
    backoff.admit(&email, client)?;
    let user = match state.store.user_by_email(&email).await {
        Ok(user) => Some(user),
        Err(StoreError::NotFound) => None,
        Err(other) => return Err(other.into()),
    };
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_password_hash().to_owned());
    let matches =
        tokio::task::spawn_blocking(move || credentials::verify_password(&password, &hash))
            .await
            .map_err(AccountError::PasswordTask)?;
    match user {
        Some(user) if matches && user.password_hash.is_some() => {
            backoff.succeeded(&email, client);
            Ok(user)
        }
        _ => {
            backoff.failed(&email, client);
            Err(AccountError::WrongPassword)
        }
    }
}

/// A new session: the cookie value (only its hash is stored) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The `hb_session` cookie's value.
    pub cookie: String,
    /// The token unsafe requests echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// Seconds it lasts.
    pub ttl_seconds: i64,
}

/// Starts a session for `user`.
pub async fn start_session(state: &Services, user: &User) -> Result<NewSession, AccountError> {
    let cookie = generate_token("hbc_");
    let csrf_token = generate_token("");
    let ttl_seconds = state.settings.sessions.ttl_seconds;
    state
        .store
        .create_session(
            &hash_token(&cookie),
            &user.id,
            &csrf_token,
            now().saturating_add(ttl_seconds),
        )
        .await?;
    Ok(NewSession {
        cookie,
        csrf_token,
        ttl_seconds,
    })
}

/// Ends the caller's session (a token caller has none to end).
pub async fn logout(state: &Services, caller: &Caller) -> Result<(), AccountError> {
    if let Via::Session { token_hash } = &caller.via {
        state.store.delete_session(token_hash).await?;
    }
    Ok(())
}

/// Creates an API token for the caller: the token and its secret, shown once.
pub async fn create_token(
    state: &Services,
    caller: &Caller,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<(ApiToken, String), AccountError> {
    let name = name.trim();
    let mut problems = Vec::new();
    if let Some(p) = name_problem(name) {
        problems.push(field_problem("name", p));
    }
    if expires_in_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        problems.push(field_problem("expiresInDays", "must be 1 to 3650"));
    }
    if !problems.is_empty() {
        return Err(AccountError::Invalid(problems));
    }
    let secret = generate_token(API_TOKEN_PREFIX);
    let expires_at = expires_in_days.map(|d| now().saturating_add(i64::from(d) * 86_400));
    let token = state
        .store
        .create_api_token(&caller.user.id, name, &hash_token(&secret), expires_at)
        .await?;
    Ok((token, secret))
}

/// Deletes one of the caller's API tokens; someone else's is 404 like a missing one.
pub async fn delete_token(state: &Services, caller: &Caller, id: &str) -> Result<(), AccountError> {
    match state.store.delete_api_token(&caller.user.id, id).await {
        Err(StoreError::NotFound) => Err(AccountError::NoToken(id.to_owned())),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_slugs_are_dns_labels() {
        for (email, slug) in [
            ("Ada.Lovelace@example.com", "ada-lovelace"),
            ("__x__@example.com", "x"),
            ("@example.com", "user"),
            ("ünï@example.com", "n"),
            (
                "a-very-long-local-part-indeed-yes@example.com",
                "a-very-long-local-pa",
            ),
            ("ab--------------------cd@example.com", "ab-cd"),
        ] {
            let derived = derived_slug(email);
            assert_eq!(derived, slug, "{email}");
            assert_eq!(slug_problem(&derived), None, "{email}");
        }
    }

    #[test]
    fn input_rules_name_what_is_wrong() {
        assert!(email_problem("a@b").is_none());
        assert!(email_problem("a b@c").is_some());
        assert!(email_problem("ab").is_some());
        assert!(email_problem("a@b@c").is_some());
        for bad in [
            "eve<victim@a.test",
            "eve@a.test>",
            "Eve <eve@a.test>",
            "\"eve\"@a.test",
            "eve@a.test\n",
            "eve\u{85}@a.test",
            ".eve@a.test",
            "eve..x@a.test",
            "eve@-a.test",
            "eve@a..test",
            "eve@",
            "@a.test",
            "eve(x)@a.test",
            "eve,x@a.test",
            "eve@[127.0.0.1]",
        ] {
            assert!(email_problem(bad).is_some(), "{bad:?}");
        }
        let local = "a".repeat(64);
        assert!(email_problem(&format!("{local}@a.test")).is_none());
        assert!(email_problem(&format!("{local}b@a.test")).is_some());
        let long = format!("a@{}.test", vec!["b".repeat(63); 4].join("."));
        assert!(long.len() > 254 && email_problem(&long).is_some());
        for good in [
            "o'brien+x@a.test",
            "ana@example.com",
            "jörg@bücher.example",
            "a@b",
        ] {
            assert!(email_problem(good).is_none(), "{good:?}");
        }
        assert!(password_problem("elevenchars").is_some());
        assert!(password_problem("twelve chars").is_none());
        assert!(password_problem(&"x".repeat(2000)).is_some());
        assert!(name_problem("  ").is_some());
        assert!(name_problem("a\u{7}").is_some());
        assert!(slug_problem("acme").is_none());
        assert!(slug_problem("-acme").is_some());
        assert!(slug_problem("Acme").is_some());
        assert!(slug_problem(&"a".repeat(ORG_SLUG_MAX + 1)).is_some());
    }
}
