//! The JSON body extractor every handler uses: like axum's `Json`, but its rejections are
//! problem+json naming the field at fault — 400 for a malformed body (with the serde path),
//! 415 for a body that is not JSON, 413 for one over the limit.
//!
//! Every body is a JSON object: serde would otherwise read a struct from an array (`[]` is a
//! `Quota` with every field unset), so anything else at the top is refused before parsing.

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

/// The `field` of a problem with the body as a whole: the empty path, its root.
pub const ROOT_FIELD: &str = "";

/// Parses `bytes` as a `T`, naming the field at fault on failure. The body must be a JSON
/// object (see the module's documentation).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Box<ApiError>> {
    if let Some(found) = not_an_object(bytes) {
        return Err(Box::new(
            ApiError::bad_request(format!(
                "the body must be a JSON object ({{…}}), not {found}"
            ))
            .field(ROOT_FIELD),
        ));
    }
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

/// What the body holds at the top when that is not an object (`None` for an object, or for
/// malformed JSON, which the parser then reports).
fn not_an_object(bytes: &[u8]) -> Option<&'static str> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    Some(match first {
        b'{' => return None,
        b'[' => "an array",
        b'"' => "a string",
        b'n' => "null",
        b't' | b'f' => "a boolean",
        b'-' | b'0'..=b'9' => "a number",
        _ => return None,
    })
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

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct AllOptional {
        count: Option<u32>,
    }

    #[test]
    fn only_an_object_is_a_body() {
        for (text, found) in [
            ("[]", "an array"),
            (" \n[1]", "an array"),
            ("null", "null"),
            ("\"x\"", "a string"),
            ("true", "a boolean"),
            ("-1", "a number"),
        ] {
            let error = parse::<AllOptional>(text.as_bytes()).unwrap_err();
            assert_eq!((error.status, error.code.as_str()), (400, "bad-request"));
            assert_eq!(error.field.as_deref(), Some(ROOT_FIELD), "{text}");
            assert!(error.detail.as_deref().unwrap().contains(found), "{text}");
        }
        assert_eq!(parse::<AllOptional>(b" {}").unwrap().count, None);
    }
}
