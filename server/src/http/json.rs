//! The JSON body extractor every handler uses: like axum's `Json`, but its rejections are
//! problem+json naming the field at fault — 400 for a malformed body (with the serde path),
//! 415 for a body that is not JSON, 413 for one over the limit.
//!
//! Every body is a JSON object, and so is every struct inside it: serde would otherwise read
//! a struct from an array (`[]` is a `Quota` with every field unset, `[["batch"], …]` a
//! policy rule), so anything else at the top is refused before parsing, and the parser is
//! wrapped in `strict::Objects`, which reads every struct from an object only.

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
    let strict = strict::Objects(&mut deserializer);
    let value = serde_path_to_error::deserialize(strict).map_err(|error| {
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

/// A deserializer that reads structs from maps only.
mod strict {
    use std::fmt;

    use serde::de::{
        DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
    };

    /// Wraps a deserializer (and, through [`Wrap`], every one it hands on): a struct is read
    /// with `deserialize_map`, so an array where a struct belongs is a type error.
    pub(super) struct Objects<D>(pub(super) D);

    /// Wraps what a deserializer hands back: visitors, their accessors, seeds.
    pub(super) struct Wrap<T>(T);

    macro_rules! forward {
        ($($method:ident),* $(,)?) => {$(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method(Wrap(visitor))
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Objects<D> {
        type Error = D::Error;

        forward!(
            deserialize_any,
            deserialize_bool,
            deserialize_i8,
            deserialize_i16,
            deserialize_i32,
            deserialize_i64,
            deserialize_i128,
            deserialize_u8,
            deserialize_u16,
            deserialize_u32,
            deserialize_u64,
            deserialize_u128,
            deserialize_f32,
            deserialize_f64,
            deserialize_char,
            deserialize_str,
            deserialize_string,
            deserialize_bytes,
            deserialize_byte_buf,
            deserialize_option,
            deserialize_unit,
            deserialize_seq,
            deserialize_map,
            deserialize_identifier,
            deserialize_ignored_any,
        );

        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_unit_struct(name, Wrap(visitor))
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_newtype_struct(name, Wrap(visitor))
        }

        fn deserialize_tuple<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple(len, Wrap(visitor))
        }

        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
        }

        /// The point of it all: an object, never an array.
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(Wrap(visitor))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_enum(name, variants, Wrap(visitor))
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }
    }

    macro_rules! visit {
        ($($method:ident($ty:ty)),* $(,)?) => {$(
            fn $method<E: serde::de::Error>(self, value: $ty) -> Result<V::Value, E> {
                self.0.$method(value)
            }
        )*};
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        visit!(
            visit_bool(bool),
            visit_i8(i8),
            visit_i16(i16),
            visit_i32(i32),
            visit_i64(i64),
            visit_i128(i128),
            visit_u8(u8),
            visit_u16(u16),
            visit_u32(u32),
            visit_u64(u64),
            visit_u128(u128),
            visit_f32(f32),
            visit_f64(f64),
            visit_char(char),
            visit_str(&str),
            visit_borrowed_str(&'de str),
            visit_string(String),
            visit_bytes(&[u8]),
            visit_borrowed_bytes(&'de [u8]),
            visit_byte_buf(Vec<u8>),
        );

        fn visit_none<E: serde::de::Error>(self) -> Result<V::Value, E> {
            self.0.visit_none()
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<V::Value, E> {
            self.0.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_some(Objects(d))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_newtype_struct(Objects(d))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.0.visit_seq(Wrap(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_map(Wrap(map))
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            self.0.visit_enum(Wrap(data))
        }
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<S> {
        type Value = S::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(Objects(d))
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.0.next_element_seed(Wrap(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.0.next_key_seed(Wrap(seed))
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.next_value_seed(Wrap(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
        type Error = A::Error;
        type Variant = Wrap<A::Variant>;

        fn variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<(T::Value, Self::Variant), A::Error> {
            self.0
                .variant_seed(Wrap(seed))
                .map(|(value, variant)| (value, Wrap(variant)))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
        type Error = A::Error;

        fn unit_variant(self) -> Result<(), A::Error> {
            self.0.unit_variant()
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.newtype_variant_seed(Wrap(seed))
        }

        fn tuple_variant<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.tuple_variant(len, Wrap(visitor))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.struct_variant(fields, Wrap(visitor))
        }
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        inner: Option<Inner>,
        list: Vec<Inner>,
    }

    #[test]
    fn structs_inside_are_objects_too() {
        for (text, at) in [
            (r#"{"inner": [1], "list": []}"#, "inner"),
            (r#"{"list": [{"count": 1}, [2]]}"#, "list[1]"),
        ] {
            let error = parse::<Nested>(text.as_bytes()).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(at), "{text}");
            assert!(
                error
                    .detail
                    .as_deref()
                    .unwrap()
                    .contains("expected struct Inner"),
                "{text}: {error:?}"
            );
        }
        let read = parse::<Nested>(br#"{"inner": {"count": 1}, "list": [{"count": 2}]}"#);
        assert_eq!(read.unwrap().list[0].count, 2);
    }
}
