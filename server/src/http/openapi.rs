//! The OpenAPI 3.1 document, generated from the route table ([`super::routes`]) and the
//! request and response types' JSON Schemas (schemars), served at `/api/v1/openapi.json`.

use axum::Json;
use axum::http::Method;
use axum::routing::get;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::problem::ApiError;
use super::{Access, ApiRoute};

pub(super) fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute::new(
            Method::GET,
            "/api/v1/openapi.json",
            "openapi",
            "This document",
            get(|| async { Json(document()) }),
        )
        .public(),
    ]
}

/// The OpenAPI document of every route.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let problem = generator.subschema_for::<ApiError>();
    let mut paths = Map::new();
    for route in super::routes() {
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(route.operation_id));
        operation.insert("summary".into(), json!(route.summary));
        let tag = route
            .path
            .strip_prefix("/api/v1/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("operations");
        operation.insert("tags".into(), json!([tag]));
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if route.mutates {
            parameters.push(idempotency_key());
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if route.access == Access::Public {
            operation.insert("security".into(), json!([]));
        }
        if let Some(request) = route.request {
            let schema = request(&mut generator);
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema}}}),
            );
        }
        let mut success = json!({"description": route.summary});
        if let Some(response) = route.response {
            let schema = response(&mut generator);
            success["content"] = json!({"application/json": {"schema": schema}});
        }
        let mut responses = Map::new();
        responses.insert(route.status.as_u16().to_string(), success);
        responses.insert(
            "default".into(),
            json!({"description": "An error", "content": {"application/problem+json": {"schema": problem}}}),
        );
        operation.insert("responses".into(), Value::Object(responses));
        if route.mutates {
            operation.insert("x-hexabase-commit".into(), json!(true));
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method.as_str().to_ascii_lowercase()] = Value::Object(operation);
    }
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Hexabase API", "version": crate::VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE},
            },
        },
        "security": [{"token": []}, {"session": []}],
    })
}

/// The `Idempotency-Key` header every mutation takes (see [`super::commit::RequestKey`]).
fn idempotency_key() -> Value {
    use super::commit::{KEY_MAX, KEY_REUSED};
    use crate::gitops::requests::WINDOW;
    json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "schema": {"type": "string", "pattern": format!("^[A-Za-z0-9._-]{{1,{KEY_MAX}}}$")},
        "description": format!(
            "Makes a retry safe. The key is scoped to the caller and the route (method and path); \
             `x-request-id` is used when it is absent (at most {KEY_MAX} visible ASCII characters). \
             The same key with the same request answers the first commit with `replayed: true` \
             and commits nothing; with another body or query it is refused with 422 `{KEY_REUSED}`. \
             Keys are remembered for at least the newest {WINDOW} commits of the branch."
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_once() {
        let doc = super::document();
        let mut seen = std::collections::BTreeSet::new();
        for route in super::super::routes() {
            assert!(
                seen.insert((route.method.clone(), route.path)),
                "{} {} twice",
                route.method,
                route.path
            );
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            assert_eq!(op["operationId"], route.operation_id);
            let takes_key = op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "Idempotency-Key"));
            assert_eq!(takes_key, route.mutates, "{} {}", route.method, route.path);
        }
    }
}
