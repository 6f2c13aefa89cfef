//! The JSON body extractor every handler uses: like axum's `Json`, but its rejections are
//! problem+json naming the field at fault — 400 for a malformed body (with the serde path),
//! 415 for a body that is not JSON, 413 for one over the limit.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// A JSON request or response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(&request) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be JSON",
            )
            .detail("send the body with Content-Type: application/json")
            .field("Content-Type"));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| body_rejection(&rejection))?;
        parse(&bytes).map(Json).map_err(|problem| *problem)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

fn body_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The body is too large",
        )
        .detail(rejection.body_text())
    } else {
        ApiError::bad_request(format!(
            "failed to read the body: {}",
            rejection.body_text()
        ))
    }
}

/// Parses `bytes` as a `T`, naming the field at fault on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Box<ApiError>> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let field = field_of(&path, &inner.to_string());
        let mut problem = ApiError::bad_request(format!("{inner}"));
        if let Some(field) = field {
            problem = problem.field(field);
        }
        Box::new(problem)
    })?;
    deserializer.end().map_err(|error| {
        Box::new(ApiError::bad_request(format!(
            "trailing characters after the JSON value: {error}"
        )))
    })?;
    Ok(value)
}

/// The field a serde error is about: its path, with a missing field's name appended (serde
/// reports it at the enclosing object).
fn field_of(path: &str, message: &str) -> Option<String> {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix)?.split('`').next());
    let parent = (path != ".").then_some(path);
    // An unknown field is reported at its own path; a missing one at its parent's.
    if let (Some(path), Some(name)) = (parent, named)
        && path.rsplit('.').next() == Some(name)
    {
        return Some(path.to_owned());
    }
    match (parent, named) {
        (Some(parent), Some(name)) => Some(format!("{parent}.{name}")),
        (None, Some(name)) => Some(name.to_owned()),
        (Some(parent), None) => Some(parent.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn field(text: &str) -> Option<String> {
        parse::<Body>(text.as_bytes()).unwrap_err().field
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field(r#"{}"#).as_deref(), Some("name"));
        assert_eq!(field(r#"{"name": 1}"#).as_deref(), Some("name"));
        assert_eq!(
            field(r#"{"name": "a", "extra": 1}"#).as_deref(),
            Some("extra")
        );
        assert_eq!(
            field(r#"{"name": "a", "inner": {"count": -1}}"#).as_deref(),
            Some("inner.count")
        );
        assert_eq!(
            field(r#"{"name": "a", "inner": {}}"#).as_deref(),
            Some("inner.count")
        );
        let error = parse::<Body>(b"{\"name\": ").unwrap_err();
        assert_eq!((error.status, error.code.as_str()), (400, "bad-request"));
        assert!(parse::<Body>(br#"{"name": "a"} x"#).is_err());
        assert_eq!(parse::<Body>(br#"{"name": "a"}"#).unwrap().name, "a");
    }
}
