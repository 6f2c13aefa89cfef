//! Names people type for organizations, workspaces and projects follow one set of DNS-label
//! rules, the compiler's (`compiler::Slug`), through the API as in the intent files.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::server;

const WORKSPACES: &str = "/api/v1/orgs/acme/workspaces";

// The API used to refuse workspace and project names starting with a digit, which the
// compiler and Kubernetes accept.
#[tokio::test]
async fn workspace_and_project_names_follow_the_compilers_label_rules() {
    let env = server("slug-names").await;
    let owner = env.person("owner@acme.test").await;
    env.org("acme", &owner).await;
    env.call(
        Method::POST,
        WORKSPACES,
        Some(&owner),
        Some(json!({"name": "1dev", "plan": "shared-small"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let projects = format!("{WORKSPACES}/1dev/projects");
    env.call(
        Method::POST,
        &projects,
        Some(&owner),
        Some(json!({"name": "2web"})),
    )
    .await
    .expect(StatusCode::CREATED);

    let before = env.commits().len();
    let cases = [
        (
            WORKSPACES.to_owned(),
            json!({"name": "dev-", "plan": "shared-small"}),
            "must start and end with a letter or digit",
        ),
        (
            WORKSPACES.to_owned(),
            json!({"name": "a".repeat(64), "plan": "shared-small"}),
            "must be at most 63 characters, is 64",
        ),
        (
            projects.clone(),
            json!({"name": "Web"}),
            "may contain only lowercase letters, digits and '-'",
        ),
        (projects.clone(), json!({"name": ""}), "must not be empty"),
    ];
    for (path, body, reason) in cases {
        let refused = env
            .call(Method::POST, &path, Some(&owner), Some(body.clone()))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.field(), "name", "{body}");
        let answer = refused.body.to_string();
        assert!(answer.contains(reason), "{body}: {answer}");
    }
    assert_eq!(env.commits().len(), before, "no commit for a refused name");
}
