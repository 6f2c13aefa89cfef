//! How a grant is refused: an OAuth error code with a description for the client, or the
//! step that failed with its source.

use super::IssuerError;
use crate::service::tenancy::TenancyError;
use crate::store::StoreError;

/// An OAuth error code (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 8628 §3.5, OpenID
/// Connect Core §3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client`.
    InvalidClient,
    /// `invalid_grant`.
    InvalidGrant,
    /// `invalid_scope`.
    InvalidScope,
    /// `invalid_token` (userinfo).
    InvalidToken,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `access_denied`.
    AccessDenied,
    /// `login_required`.
    LoginRequired,
    /// `authorization_pending`.
    AuthorizationPending,
    /// `slow_down`.
    SlowDown,
    /// `expired_token`.
    ExpiredToken,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
}

impl OAuthCode {
    /// The code as OAuth spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidToken => "invalid_token",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// Why a grant was not made.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The request is refused; the description is for the client.
    #[error("{}: {description}", .code.as_str())]
    Refused {
        /// The OAuth error code.
        code: OAuthCode,
        /// What is wrong, naming the field.
        description: String,
    },
    /// Reading or writing a grant, a user or a token failed.
    #[error("failed to read or write a grant")]
    Store(#[from] StoreError),
    /// Signing a token failed.
    #[error("failed to make the tokens")]
    Tokens(#[from] IssuerError),
    /// Reading the branch head or the groups index failed.
    #[error("failed to read the branch head")]
    Head(#[from] TenancyError),
}

impl GrantError {
    /// A refusal with `code`.
    pub fn refused(code: OAuthCode, description: impl Into<String>) -> Self {
        Self::Refused {
            code,
            description: description.into(),
        }
    }

    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Self::refused(OAuthCode::InvalidRequest, description)
    }

    pub(super) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::refused(OAuthCode::InvalidGrant, description)
    }
}
