//! Submissions as the API takes and answers them: the [`RequestKey`] extractor (the retry
//! key from the headers, the digest from the body hashed by [`digest_body`]), and
//! [`SubmitError`]s as problems. The submission itself is [`crate::service::submit`].

use axum::http::StatusCode;

use super::problem::{ApiError, FieldProblem};
use crate::service::action::ActionError;
use crate::service::apply::ApplyError;
use crate::service::submit::SubmitError;
pub use crate::service::submit::{CommitAnswer, KEY_MAX, KEY_REUSED, RequestKey};

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Admit(error) => error.into(),
            SubmitError::KeyReused { header, key, route } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                KEY_REUSED,
                "The retry key was used for a different request",
            )
            .detail(format!(
                "{header} {key:?} was used before on {route} with another body; send a new key \
                 for a new request"
            ))
            .field(header),
            SubmitError::Apply(error) => apply_error(error),
            other => ApiError::internal(&other),
        }
    }
}

/// An engine error as an API error: bad input names the field, our failures are logged.
pub fn apply_error(error: ApplyError) -> ApiError {
    match error {
        ApplyError::Action(ActionError::NotFound(what)) => {
            ApiError::not_found(format!("{what} does not exist"))
        }
        ApplyError::Action(ActionError::AlreadyExists(what)) => {
            ApiError::conflict(format!("{what} already exists"))
        }
        ApplyError::Action(ActionError::Refused(why)) => {
            ApiError::new(StatusCode::CONFLICT, "refused", "The change is refused").detail(why)
        }
        ApplyError::Invalid(diagnostics) => ApiError::invalid_all(
            diagnostics
                .into_iter()
                .filter(compiler::Diagnostic::is_error)
                .map(|d| FieldProblem {
                    field: if d.path.is_empty() {
                        d.file
                    } else {
                        format!("{}: {}", d.file, d.path)
                    },
                    message: d.message,
                })
                .collect(),
        ),
        ApplyError::Contention(_) => {
            ApiError::unavailable("the branch is busy; retry with the same request id")
        }
        other => ApiError::internal(&other),
    }
}

/// The hash of a request's body, set by [`digest_body`] for the handlers' [`RequestKey`].
#[derive(Debug, Clone, Copy)]
struct BodyHash(blake3::Hash);

/// Middleware: hashes the body of every request that may change something (not `GET`,
/// `HEAD` or `OPTIONS`) for its [`RequestKey`], and hands the body on unchanged. It runs
/// inside the body limit, so a body over the limit is refused (413) before it is read whole.
pub async fn digest_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse as _;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The request body is too large",
        )
        .into_response();
    };
    parts.extensions.insert(BodyHash(blake3::hash(&bytes)));
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let body = parts
            .extensions
            .get::<BodyHash>()
            .map_or_else(|| blake3::hash(b""), |h| h.0);
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        let (header, key) = retry_key(&parts.headers)?;
        Ok(RequestKey::new(
            header,
            key,
            parts.method.as_str(),
            parts.uri.path(),
            path_and_query,
            body,
        ))
    }
}

/// The retry key of a request with `headers` and the header it came from: the
/// `Idempotency-Key`, else the `x-request-id`, else a fresh one.
fn retry_key(headers: &axum::http::HeaderMap) -> Result<(&'static str, String), BadKey> {
    if let Some(key) = headers.get("idempotency-key") {
        let valid = key.to_str().ok().filter(|k| {
            (1..=KEY_MAX).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
        let key = valid.ok_or(BadKey("Idempotency-Key"))?;
        Ok(("Idempotency-Key", key.to_owned()))
    } else if let Some(id) = headers.get("x-request-id") {
        let valid = id.to_str().ok().filter(|k| {
            (1..=KEY_MAX).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
        });
        let key = valid.ok_or(BadKey("x-request-id"))?;
        Ok(("x-request-id", key.to_owned()))
    } else {
        Ok(("x-request-id", uuid::Uuid::now_v7().to_string()))
    }
}

/// A retry key header that is not kept: which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadKey(&'static str);

impl From<BadKey> for ApiError {
    fn from(BadKey(header): BadKey) -> Self {
        let rule = if header == "Idempotency-Key" {
            format!("must be 1 to {KEY_MAX} letters, digits, '.', '_' or '-'")
        } else {
            format!(
                "must be 1 to {KEY_MAX} visible ASCII characters: it is the request's retry key \
                 when there is no Idempotency-Key"
            )
        };
        ApiError::invalid(header, rule)
    }
}
