//! Router-level tests of workspaces, groups, projects and what is inside them, on SQLite
//! with a real bare repository: every mutation is exactly one commit by the caller, every
//! refusal is none, and other organizations get 404.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Person, TestServer, server, server_with};

const WS: &str = "/api/v1/orgs/acme/workspaces/dev";

/// An organization `acme` owned by `owner` with workspace `dev` made by them.
async fn with_workspace(env: &TestServer) -> Person {
    let owner = env.person("owner@acme.test").await;
    env.org("acme", &owner).await;
    env.call(
        Method::POST,
        "/api/v1/orgs/acme/workspaces",
        Some(&owner),
        Some(json!({"name": "dev", "plan": "shared-small"})),
    )
    .await
    .expect(StatusCode::CREATED);
    owner
}

/// Asserts that the call made exactly one commit, by `who`, of `action`, and returns it.
#[track_caller]
fn one_commit(
    env: &TestServer,
    before: usize,
    who: &Person,
    action: &str,
    answer: &Value,
) -> String {
    let commits = env.commits();
    assert_eq!(commits.len(), before + 1, "exactly one commit");
    let head = &commits[0];
    assert_eq!(answer["commit"].as_str(), Some(head.id.as_str()));
    assert_eq!(
        head.author,
        format!("{} <{}>", who.user.name, who.user.email)
    );
    assert_eq!(head.trailer("Hexabase-Action"), Some(action));
    assert_eq!(
        head.trailer("Hexabase-Actor"),
        Some(format!("{} <{}>", who.user.name, who.user.email).as_str())
    );
    assert_eq!(head.trailer("Hexabase-Org"), Some("acme"));
    head.id.clone()
}

fn names(value: &Value, key: &str) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn owners_create_workspaces_whose_creator_administers_them() {
    let env = server("workspaces").await;
    let owner = env.person("owner@acme.test").await;
    let org = env.org("acme", &owner).await;
    let before = env.commits().len();
    let created = env
        .call_with(
            Method::POST,
            "/api/v1/orgs/acme/workspaces",
            Some(&owner),
            Some(json!({"name": "dev", "plan": "shared-small", "displayName": "Dev"})),
            &[("idempotency-key", "create-dev-1")],
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &owner, "create-workspace", &created.body);
    let head = &env.commits()[0];
    assert_eq!(head.trailer("Hexabase-Workspace"), Some("dev"));
    // The key scoped to the caller and the route, hashed (see tests/retry_keys.rs).
    let request = head.trailer("Hexabase-Request").expect("request");
    assert!(
        request.len() == 64 && request != "create-dev-1",
        "{request}"
    );
    assert_eq!(
        head.trailer("Hexabase-Actor-Id"),
        Some(owner.user.id.as_str())
    );

    let list = env
        .call(
            Method::GET,
            "/api/v1/orgs/acme/workspaces",
            Some(&owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        list.body,
        json!([{"name": "dev", "displayName": "Dev", "plan": "shared-small", "cluster": "home", "projects": 0}])
    );
    let one = env
        .call(Method::GET, WS, Some(&owner), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(one.body["admin"], json!(true));
    assert_eq!(
        one.body["yourGroups"],
        json!(["WSAdmins", "WorkspaceMembers"])
    );
    let groups = env
        .call(Method::GET, &format!("{WS}/groups"), Some(&owner), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        groups.body,
        json!([
            {"name": "WSAdmins", "parent": "WorkspaceMembers"},
            {"name": "WSUsers", "parent": "WorkspaceMembers"},
            {"name": "WorkspaceMembers"}
        ])
    );
    let admins = env
        .call(
            Method::GET,
            &format!("{WS}/groups/WSAdmins"),
            Some(&owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&admins.body["members"], "email"), ["owner@acme.test"]);
    let subscriptions = env.state.store.subscriptions(&org.id).await.expect("subs");
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].plan, "shared-small");
    assert_eq!(subscriptions[0].ended_at, None);
}

#[tokio::test]
async fn a_refused_workspace_request_names_the_field_and_makes_no_commit() {
    let env = server("workspaces").await;
    let owner = with_workspace(&env).await;
    let before = env.commits().len();
    let cases = [
        (json!({"name": "x", "plan": "gold"}), "plan"),
        (
            json!({"name": "x", "plan": "shared-small", "cluster": "mars"}),
            "cluster",
        ),
        (
            json!({"name": "Not A Label", "plan": "shared-small"}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let answer = env
            .call(
                Method::POST,
                "/api/v1/orgs/acme/workspaces",
                Some(&owner),
                Some(body),
            )
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.field(), field);
    }
    env.call(
        Method::POST,
        "/api/v1/orgs/acme/workspaces",
        Some(&owner),
        Some(json!({"name": "dev", "plan": "shared-small"})),
    )
    .await
    .expect(StatusCode::CONFLICT);
    env.call_with(
        Method::POST,
        "/api/v1/orgs/acme/workspaces",
        Some(&owner),
        Some(json!({"name": "x", "plan": "shared-small"})),
        &[("idempotency-key", "no spaces")],
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    env.call(Method::GET, "/api/v1/orgs/acme/workspaces", None, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(
        env.commits().len(),
        before,
        "no commit for a refused request"
    );
}

#[tokio::test]
async fn other_organizations_get_404_for_everything() {
    let env = server("workspaces").await;
    let owner = with_workspace(&env).await;
    let stranger = env.person("boss@globex.test").await;
    env.org("globex", &stranger).await;
    let before = env.commits().len();
    let paths = [
        (Method::GET, "/api/v1/orgs/acme/workspaces".to_owned(), None),
        (
            Method::POST,
            "/api/v1/orgs/acme/workspaces".to_owned(),
            Some(json!({"name": "x", "plan": "shared-small"})),
        ),
        (Method::GET, WS.to_owned(), None),
        (Method::DELETE, WS.to_owned(), None),
        (
            Method::PUT,
            format!("{WS}/plan"),
            Some(json!({"plan": "shared-small"})),
        ),
        (Method::GET, format!("{WS}/groups"), None),
        (
            Method::POST,
            format!("{WS}/groups"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("{WS}/projects"), None),
        (
            Method::POST,
            format!("{WS}/projects"),
            Some(json!({"name": "web"})),
        ),
        (Method::GET, format!("{WS}/clusterrolebindings"), None),
        (
            Method::GET,
            "/api/v1/orgs/nowhere/workspaces".to_owned(),
            None,
        ),
        (
            Method::GET,
            "/api/v1/orgs/globex/workspaces/dev".to_owned(),
            None,
        ),
    ];
    for (method, path, body) in paths {
        let answer = env.call(method.clone(), &path, Some(&stranger), body).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            answer.body
        );
    }
    // The owner of acme is a stranger to globex too.
    env.call(
        Method::GET,
        "/api/v1/orgs/globex/workspaces",
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    assert_eq!(env.commits().len(), before);
}

#[tokio::test]
async fn organization_owners_see_a_workspace_but_nothing_inside() {
    let env = server("workspaces").await;
    let _creator = with_workspace(&env).await;
    let co_owner = env.person("co@acme.test").await;
    let org = env
        .state
        .store
        .organization_by_slug("acme")
        .await
        .expect("org");
    // A second owner, added straight in SQL (the accounts slice serves organization users).
    env.execute_sql(
        "INSERT INTO organization_members (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', 0)",
        &[&org.id, &co_owner.user.id],
    )
    .await;

    let listed = env
        .call(
            Method::GET,
            "/api/v1/orgs/acme/workspaces",
            Some(&co_owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&listed.body, "name"), ["dev"]);
    let seen = env
        .call(Method::GET, WS, Some(&co_owner), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(seen.body["yourGroups"], json!([]));
    assert_eq!(seen.body["admin"], json!(false));
    let before = env.commits().len();
    for (method, path, body) in [
        (Method::GET, format!("{WS}/groups"), None),
        (Method::GET, format!("{WS}/projects"), None),
        (Method::GET, format!("{WS}/clusterrolebindings"), None),
        (
            Method::POST,
            format!("{WS}/projects"),
            Some(json!({"name": "web"})),
        ),
        (
            Method::POST,
            format!("{WS}/groups"),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::POST,
            format!("{WS}/groups/WSAdmins/members"),
            Some(json!({"user": "co@acme.test"})),
        ),
    ] {
        let answer = env.call(method.clone(), &path, Some(&co_owner), body).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            answer.body
        );
    }
    assert_eq!(env.commits().len(), before);
    // What owners do manage: the plan.
    env.call(
        Method::PUT,
        &format!("{WS}/plan"),
        Some(&co_owner),
        Some(json!({"plan": "dedicated-large"})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(env.commits().len(), before + 1);
}

#[tokio::test]
async fn groups_nest_and_refuse_cycles_naming_the_parent() {
    let env = server("workspaces").await;
    let owner = with_workspace(&env).await;
    let dev = env.person("dev@acme.test").await;
    let before = env.commits().len();
    env.call(
        Method::POST,
        &format!("{WS}/groups"),
        Some(&owner),
        Some(json!({"name": "devs", "parent": "WSUsers"})),
    )
    .await
    .expect(StatusCode::CREATED);
    env.call(
        Method::POST,
        &format!("{WS}/groups"),
        Some(&owner),
        Some(json!({"name": "devs"})),
    )
    .await
    .expect(StatusCode::CONFLICT);
    let bad_parent = env
        .call(
            Method::POST,
            &format!("{WS}/groups"),
            Some(&owner),
            Some(json!({"name": "x", "parent": "nobody"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_parent.field(), "parent");
    let cycle = env
        .call(
            Method::PUT,
            &format!("{WS}/groups/WorkspaceMembers"),
            Some(&owner),
            Some(json!({"parent": "devs"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cycle.field(), "parent");
    assert!(
        cycle.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("cycle")
    );

    // Not a member yet: the workspace does not exist for them.
    env.call(Method::GET, WS, Some(&dev), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    env.call(
        Method::POST,
        &format!("{WS}/groups/devs/members"),
        Some(&owner),
        Some(json!({"user": "DEV@acme.test"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let unknown = env
        .call(
            Method::POST,
            &format!("{WS}/groups/devs/members"),
            Some(&owner),
            Some(json!({"user": "nobody@acme.test"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.field(), "user");
    let seen = env
        .call(Method::GET, WS, Some(&dev), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        seen.body["yourGroups"],
        json!(["WSUsers", "WorkspaceMembers", "devs"]),
        "flattened through the hierarchy"
    );
    assert_eq!(seen.body["admin"], json!(false));
    let listed = env
        .call(
            Method::GET,
            "/api/v1/orgs/acme/workspaces",
            Some(&dev),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&listed.body, "name"), ["dev"]);
    let members = env
        .call(
            Method::GET,
            &format!("{WS}/groups/devs/members"),
            Some(&dev),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&members.body, "email"), ["dev@acme.test"]);
    // Members are not administrators.
    env.call(
        Method::POST,
        &format!("{WS}/groups"),
        Some(&dev),
        Some(json!({"name": "mine"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    env.call(Method::DELETE, WS, Some(&dev), None)
        .await
        .expect(StatusCode::FORBIDDEN);

    env.call(
        Method::DELETE,
        &format!("{WS}/groups/WSUsers"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::CONFLICT);
    env.call(
        Method::DELETE,
        &format!("{WS}/groups/WSAdmins"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::CONFLICT);
    env.call(
        Method::DELETE,
        &format!("{WS}/groups/WSAdmins/members/{}", owner.user.id),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::CONFLICT);
    env.call(
        Method::DELETE,
        &format!("{WS}/groups/devs/members/dev@acme.test"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    env.call(
        Method::DELETE,
        &format!("{WS}/groups/devs"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    env.call(
        Method::GET,
        &format!("{WS}/groups/devs"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // Groups live in Git: each change is one commit by the owner who made it.
    let commits = env.commits();
    let changes = &commits[..commits.len() - before];
    assert!(!changes.is_empty());
    for c in changes {
        assert!(
            c.trailer("Hexabase-Action")
                .is_some_and(|a| a.contains("group")),
            "{}",
            c.message
        );
        assert_eq!(c.author, owner.identity());
    }
}

#[tokio::test]
async fn members_act_inside_as_their_roles_allow_and_grant_no_more_than_they_hold() {
    let env = server("workspaces").await;
    let owner = with_workspace(&env).await;
    let dev = env.person("dev@acme.test").await;
    env.call(
        Method::POST,
        &format!("{WS}/groups"),
        Some(&owner),
        Some(json!({"name": "devs", "parent": "WSUsers"})),
    )
    .await
    .expect(StatusCode::CREATED);
    env.call(
        Method::POST,
        &format!("{WS}/groups/devs/members"),
        Some(&owner),
        Some(json!({"user": dev.user.id})),
    )
    .await
    .expect(StatusCode::CREATED);

    let mut before = env.commits().len();
    let project = env
        .call(
            Method::POST,
            &format!("{WS}/projects"),
            Some(&owner),
            Some(json!({"name": "web"})),
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &owner, "create-project", &project.body);
    env.call(
        Method::POST,
        &format!("{WS}/projects"),
        Some(&dev),
        Some(json!({"name": "api"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    before = env.commits().len();
    let quota = env
        .call(
            Method::PUT,
            &format!("{WS}/projects/web/quota"),
            Some(&owner),
            Some(json!({"pods": "20"})),
        )
        .await
        .expect(StatusCode::OK);
    one_commit(&env, before, &owner, "set-project-quota", &quota.body);

    let p = format!("{WS}/projects/web");
    let jobs_role = json!({"name": "jobs", "rules": [
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list", "create", "update", "delete"]},
    ]});
    before = env.commits().len();
    let role = env
        .call(
            Method::POST,
            &format!("{p}/roles"),
            Some(&owner),
            Some(jobs_role),
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &owner, "create-role", &role.body);
    before = env.commits().len();
    let bound = env
        .call(
            Method::POST,
            &format!("{p}/rolebindings"),
            Some(&owner),
            Some(json!({"group": "devs", "role": "jobs"})),
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &owner, "bind-role", &bound.body);
    let bindings = env
        .call(
            Method::GET,
            &format!("{p}/rolebindings"),
            Some(&owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(bindings.body, json!([{"group": "devs", "role": "jobs"}]));

    // The member now creates CronJobs in web, and only there.
    let job = json!({"name": "nightly", "schedule": "0 3 * * *", "image": "busybox:1.36"});
    before = env.commits().len();
    let created = env
        .call(
            Method::POST,
            &format!("{p}/cronjobs"),
            Some(&dev),
            Some(job.clone()),
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &dev, "create-cron-job", &created.body);
    let mut changed = job.clone();
    changed["schedule"] = json!("0 4 * * *");
    before = env.commits().len();
    let updated = env
        .call(
            Method::PUT,
            &format!("{p}/cronjobs/nightly"),
            Some(&dev),
            Some(changed),
        )
        .await
        .expect(StatusCode::OK);
    one_commit(&env, before, &dev, "update-cron-job", &updated.body);
    let renamed = env
        .call(
            Method::PUT,
            &format!("{p}/cronjobs/nightly"),
            Some(&dev),
            Some(json!({"name": "other", "schedule": "@daily", "image": "busybox"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(renamed.field(), "name");
    let got = env
        .call(
            Method::GET,
            &format!("{p}/cronjobs/nightly"),
            Some(&dev),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.body["schedule"], json!("0 4 * * *"));
    let listed = env
        .call(Method::GET, &format!("{p}/cronjobs"), Some(&dev), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&listed.body, "name"), ["nightly"]);
    // Not Functions, not project deletion, not role bindings.
    let before_refusals = env.commits().len();
    env.call(
        Method::POST,
        &format!("{p}/functions"),
        Some(&dev),
        Some(json!({"name": "hello", "image": "ghcr.io/x/hello:1"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    env.call(Method::DELETE, &p, Some(&dev), None)
        .await
        .expect(StatusCode::FORBIDDEN);
    env.call(
        Method::POST,
        &format!("{p}/rolebindings"),
        Some(&dev),
        Some(json!({"group": "devs", "clusterRole": "hexabase:workspace-admin"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);

    // Roles are RBAC: the member may not create one.
    env.call(
        Method::POST,
        &format!("{p}/roles"),
        Some(&dev),
        Some(json!({"name": "reader", "rules": [
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]},
        ]})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    assert_eq!(
        env.commits().len(),
        before_refusals,
        "no commit for refusals"
    );
    // Bound as administrator of this one project, they may: the rules are theirs there.
    env.call(
        Method::POST,
        &format!("{p}/rolebindings"),
        Some(&owner),
        Some(json!({"group": "devs", "clusterRole": "hexabase:workspace-admin"})),
    )
    .await
    .expect(StatusCode::CREATED);
    before = env.commits().len();
    let lesser = env
        .call(
            Method::POST,
            &format!("{p}/roles"),
            Some(&dev),
            Some(json!({"name": "reader", "rules": [
                {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list"]},
            ]})),
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &dev, "create-role", &lesser.body);
    env.call(
        Method::DELETE,
        &format!("{p}/rolebindings?group=devs&clusterRole=hexabase:workspace-admin"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let roles = env
        .call(Method::GET, &format!("{p}/roles"), Some(&owner), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&roles.body, "name"), ["jobs", "reader"]);
    before = env.commits().len();
    env.call(
        Method::DELETE,
        &format!("{p}/cronjobs/nightly"),
        Some(&dev),
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(env.commits().len(), before + 1);

    // Administrators do the rest.
    before = env.commits().len();
    let updated_role = env
        .call(
            Method::PUT,
            &format!("{p}/roles/reader"),
            Some(&owner),
            Some(json!({"rules": [
                {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]},
            ]})),
        )
        .await
        .expect(StatusCode::OK);
    one_commit(&env, before, &owner, "update-role", &updated_role.body);
    let reader = env
        .call(
            Method::GET,
            &format!("{p}/roles/reader"),
            Some(&owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reader.body["rules"][0]["verbs"], json!(["get"]));
    let function = json!({"name": "hello", "image": "ghcr.io/x/hello:1"});
    before = env.commits().len();
    let f = env
        .call(
            Method::POST,
            &format!("{p}/functions"),
            Some(&owner),
            Some(function),
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &owner, "create-function", &f.body);
    env.call(
        Method::PUT,
        &format!("{p}/functions/hello"),
        Some(&owner),
        Some(json!({"name": "hello", "image": "ghcr.io/x/hello:2"})),
    )
    .await
    .expect(StatusCode::OK);
    let got = env
        .call(
            Method::GET,
            &format!("{p}/functions/hello"),
            Some(&owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(got.body["image"], json!("ghcr.io/x/hello:2"));
    let functions = env
        .call(Method::GET, &format!("{p}/functions"), Some(&owner), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&functions.body, "name"), ["hello"]);
    env.call(
        Method::DELETE,
        &format!("{p}/functions/hello"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::OK);
    env.call(
        Method::DELETE,
        &format!("{p}/rolebindings?group=devs&role=jobs"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::OK);
    env.call(
        Method::DELETE,
        &format!("{p}/roles/reader"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::OK);
    env.call(
        Method::GET,
        &format!("{p}/roles/reader"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let project_view = env
        .call(Method::GET, &p, Some(&dev), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(project_view.body["spec"]["quota"], json!({"pods": "20"}));
    let projects = env
        .call(Method::GET, &format!("{WS}/projects"), Some(&dev), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&projects.body, "name"), ["web"]);
    // Without the binding, the member holds nothing in web any more.
    env.call(Method::GET, &format!("{p}/cronjobs"), Some(&dev), None)
        .await
        .expect(StatusCode::FORBIDDEN);
    before = env.commits().len();
    env.call(Method::DELETE, &p, Some(&owner), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(env.commits().len(), before + 1);
    env.call(Method::GET, &p, Some(&owner), None)
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn administrators_bind_preset_cluster_roles_to_groups() {
    let env = server("workspaces").await;
    let owner = with_workspace(&env).await;
    let user = env.person("user@acme.test").await;
    env.call(
        Method::POST,
        &format!("{WS}/groups/WSUsers/members"),
        Some(&owner),
        Some(json!({"user": "user@acme.test"})),
    )
    .await
    .expect(StatusCode::CREATED);
    env.call(
        Method::POST,
        &format!("{WS}/projects"),
        Some(&owner),
        Some(json!({"name": "web"})),
    )
    .await
    .expect(StatusCode::CREATED);
    // Nothing bound to WSUsers yet: no reading of CronJobs.
    env.call(
        Method::GET,
        &format!("{WS}/projects/web/cronjobs"),
        Some(&user),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let before = env.commits().len();
    let bound = env
        .call(
            Method::POST,
            &format!("{WS}/clusterrolebindings"),
            Some(&owner),
            Some(json!({"group": "WSUsers", "clusterRole": "hexabase:workspace-viewer"})),
        )
        .await
        .expect(StatusCode::CREATED);
    one_commit(&env, before, &owner, "bind-cluster-role", &bound.body);
    let listed = env
        .call(
            Method::GET,
            &format!("{WS}/clusterrolebindings"),
            Some(&user),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        listed.body,
        json!([
            {"group": "WSAdmins", "clusterRole": "hexabase:workspace-admin", "default": true},
            {"group": "WSUsers", "clusterRole": "hexabase:workspace-viewer", "default": false}
        ])
    );
    env.call(
        Method::GET,
        &format!("{WS}/projects/web/cronjobs"),
        Some(&user),
        None,
    )
    .await
    .expect(StatusCode::OK);
    env.call(
        Method::POST,
        &format!("{WS}/projects/web/cronjobs"),
        Some(&user),
        Some(json!({"name": "n", "schedule": "@daily", "image": "busybox"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let refused = env.commits().len();
    env.call(
        Method::POST,
        &format!("{WS}/clusterrolebindings"),
        Some(&user),
        Some(json!({"group": "WSUsers", "clusterRole": "hexabase:workspace-admin"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let no_group = env
        .call(
            Method::POST,
            &format!("{WS}/clusterrolebindings"),
            Some(&owner),
            Some(json!({"group": "ghosts", "clusterRole": "hexabase:workspace-viewer"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_group.field(), "group");
    env.call(
        Method::DELETE,
        &format!("{WS}/clusterrolebindings?group=WSAdmins&clusterRole=hexabase:workspace-admin"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::CONFLICT);
    assert_eq!(env.commits().len(), refused);
    env.call(
        Method::DELETE,
        &format!("{WS}/clusterrolebindings?group=WSUsers&clusterRole=hexabase:workspace-viewer"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(env.commits().len(), refused + 1);
    env.call(
        Method::DELETE,
        &format!("{WS}/clusterrolebindings?group=WSUsers&clusterRole=hexabase:workspace-viewer"),
        Some(&owner),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn owners_change_plans_and_delete_workspaces_with_their_groups() {
    let env = server("workspaces").await;
    let owner = with_workspace(&env).await;
    let org = env
        .state
        .store
        .organization_by_slug("acme")
        .await
        .expect("org");
    let mut before = env.commits().len();
    let bad = env
        .call(
            Method::PUT,
            &format!("{WS}/plan"),
            Some(&owner),
            Some(json!({"plan": "platinum"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field(), "plan");
    assert_eq!(env.commits().len(), before);
    let changed = env
        .call(
            Method::PUT,
            &format!("{WS}/plan"),
            Some(&owner),
            Some(json!({"plan": "dedicated-large"})),
        )
        .await
        .expect(StatusCode::OK);
    one_commit(&env, before, &owner, "change-plan", &changed.body);
    let subscriptions = env.state.store.subscriptions(&org.id).await.expect("subs");
    assert_eq!(subscriptions.len(), 2);
    assert!(subscriptions[0].ended_at.is_some());
    assert_eq!(subscriptions[1].plan, "dedicated-large");
    let listed = env
        .call(
            Method::GET,
            "/api/v1/orgs/acme/workspaces",
            Some(&owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body[0]["plan"], json!("dedicated-large"));

    before = env.commits().len();
    let deleted = env
        .call(Method::DELETE, WS, Some(&owner), None)
        .await
        .expect(StatusCode::OK);
    one_commit(&env, before, &owner, "delete-workspace", &deleted.body);
    assert!(
        env.state
            .store
            .workspace_groups("acme", "dev")
            .await
            .expect("groups")
            .is_empty()
    );
    let subscriptions = env.state.store.subscriptions(&org.id).await.expect("subs");
    assert!(subscriptions.iter().all(|s| s.ended_at.is_some()));
    env.call(Method::GET, WS, Some(&owner), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    let listed = env
        .call(
            Method::GET,
            "/api/v1/orgs/acme/workspaces",
            Some(&owner),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body, json!([]));
}

#[tokio::test]
async fn the_index_is_rebuilt_at_start_and_reconciles_default_groups() {
    let env = server("workspaces").await;
    let owner = with_workspace(&env).await;
    // Lose SQL's side: the index and the groups, as if the database were restored from an
    // older backup. Opening the server again rebuilds both from Git.
    let store = &env.state.store;
    store
        .replace_workspace_index("0000", &[])
        .await
        .expect("empty the index");
    assert!(
        store
            .workspace_groups("acme", "dev")
            .await
            .expect("groups")
            .is_empty()
    );
    let settings = (*env.state.settings).clone();
    let reopened = server::serve::open(settings).await.expect("reopen");
    let rows = reopened
        .store
        .indexed_workspaces("acme")
        .await
        .expect("index");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "dev");
    let admins = reopened
        .store
        .group_members("acme", "dev", "WSAdmins")
        .await
        .expect("admins");
    assert_eq!(
        admins.len(),
        1,
        "the creator, from the commit's Hexabase-Actor"
    );
    assert_eq!(admins[0].user_id, owner.user.id);
}

#[tokio::test]
async fn write_actions_beyond_the_organization_limit_wait() {
    let env = server_with("workspaces", |s| {
        s.limits.actions_per_org_per_second = 1;
        s.limits.actions_per_org_burst = 1;
    })
    .await;
    let owner = env.person("owner@acme.test").await;
    env.org("acme", &owner).await;
    let before = env.commits().len();
    let mut made = 0;
    let mut limited = None;
    // One action a second: among consecutive requests, one soon comes too early.
    for i in 0..20 {
        let answer = env
            .call(
                Method::POST,
                "/api/v1/orgs/acme/workspaces",
                Some(&owner),
                Some(json!({"name": format!("ws{i}"), "plan": "shared-small"})),
            )
            .await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
            break;
        }
        answer.expect(StatusCode::CREATED);
        made += 1;
    }
    let limited = limited.expect("a request over the limit");
    assert_eq!(limited.body["code"], json!("rate-limited"));
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    assert_eq!(
        env.commits().len(),
        before + made,
        "no commit for the limited request"
    );
}

/// Commits `files` (path, content) on `main` as a person, without the engine: what a merged
/// pull request or a hand edit looks like.
fn commit_by_hand(env: &TestServer, files: &[(&str, &str)]) -> git2::Oid {
    let repo = git2::Repository::open(env.state.settings.git_repo()).expect("open");
    let head = repo
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("head");
    let edits: std::collections::BTreeMap<String, server::gitops::Edit> = files
        .iter()
        .map(|(path, text)| {
            (
                (*path).to_owned(),
                server::gitops::Edit::Write((*text).into()),
            )
        })
        .collect();
    let tree = server::gitops::tree::apply(&repo, Some(&head.tree().expect("tree")), &edits)
        .expect("tree")
        .expect("not empty");
    let person = git2::Signature::now("Person", "person@acme.test").expect("signature");
    repo.commit(
        Some("refs/heads/main"),
        &person,
        &person,
        "change by hand",
        &repo.find_tree(tree).expect("tree"),
        &[&head],
    )
    .expect("commit")
}

#[tokio::test]
async fn organizations_in_git_without_rows_are_adopted() {
    use server::service::tenancy::{adopt_organizations, sync_index};
    let env = server("adopt").await;
    let (store, engine) = (&env.state.store, &env.state.engine);
    let admin = support::person_as(&env.state, "admin@hexabase.test", None, true).await;
    let ana = env.person("ana@acme.test").await;
    sync_index(store, engine).await.expect("sync");
    // An organization made through the engine whose rows were never written (the server
    // died between the commit and the rows): a running server leaves it to its request.
    let made = |slug: &str, by: &str, id: Option<&str>| {
        let engine = engine.clone();
        let meta = server::service::apply::ActionMeta {
            actor: server::gitops::Identity {
                name: by.to_owned(),
                email: by.to_owned(),
            },
            request_id: format!("org-{slug}"),
            actor_id: id.map(str::to_owned),
            digest: None,
        };
        let action = server::service::action::Action::CreateOrganization {
            org: slug.to_owned(),
            display_name: Some(format!("{slug} Inc.")),
        };
        move || engine.apply(&meta, &action).expect("commit")
    };
    tokio::task::spawn_blocking(made("acme", "ana@acme.test", Some(&ana.user.id)))
        .await
        .expect("join");
    tokio::task::spawn_blocking(made("ghost", "ghost@nowhere.test", Some("no-such-user")))
        .await
        .expect("join");
    // Made by the engine without an actor id (older history, `hb act`): its author's
    // display form names Ana, but no identity is read from it.
    tokio::task::spawn_blocking(made("legacy", "ana@acme.test", None))
        .await
        .expect("join");
    assert_eq!(sync_index(store, engine).await.expect("sync").adopted, 0);
    // An organization with a workspace added by a person's commit: adopted by the next sync,
    // owned by the administrator, its workspace billed.
    let org = "apiVersion: hexabase.ai/v1alpha1\nkind: Organization\nmetadata:\n  name: initech\n\
               spec:\n  displayName: Initech\n";
    let lab = "apiVersion: hexabase.ai/v1alpha1\nkind: Workspace\nmetadata:\n  name: lab\n\
               spec:\n  plan: shared-small\n  cluster: home\n";
    commit_by_hand(
        &env,
        &[
            ("intent/initech/organization.yaml", org),
            ("intent/initech/lab/workspace.yaml", lab),
        ],
    );
    let synced = sync_index(store, engine).await.expect("sync");
    assert_eq!(synced.adopted, 1);
    let initech = store.organization_by_slug("initech").await.expect("rows");
    assert_eq!(
        (initech.name.as_str(), initech.personal),
        ("Initech", false)
    );
    let members = store.members(&initech.id).await.expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, admin.user.id);
    assert_eq!(
        support::running_subscriptions(store, &initech.id).await,
        [("lab".to_owned(), "shared-small".to_owned())]
    );
    assert!(matches!(
        store.organization_by_slug("acme").await,
        Err(server::store::StoreError::NotFound)
    ));
    // At start: the one whose creator has an account is hers; the one whose creator has
    // none (a sign-up that did not finish) is left alone; the one without a creator id
    // goes to the administrator.
    assert_eq!(adopt_organizations(store, engine).await.expect("adopt"), 2);
    let legacy = store.organization_by_slug("legacy").await.expect("rows");
    let members = store.members(&legacy.id).await.expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, admin.user.id);
    let acme = store.organization_by_slug("acme").await.expect("rows");
    assert_eq!(acme.name, "acme Inc.");
    let members = store.members(&acme.id).await.expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, ana.user.id);
    assert!(matches!(
        store.organization_by_slug("ghost").await,
        Err(server::store::StoreError::NotFound)
    ));
    assert_eq!(adopt_organizations(store, engine).await.expect("again"), 0);
    assert!(
        sync_index(store, engine).await.expect("sync").full,
        "adopting at start rebuilds the index"
    );
}

#[tokio::test]
async fn the_index_follows_commits_by_people_and_rewritten_history() {
    let env = server("index-follows").await;
    with_workspace(&env).await;
    let sync = || server::service::tenancy::sync_index(&env.state.store, &env.state.engine);
    sync().await.expect("sync");
    let before_workspace = env.commits()[1].id.clone();
    // A person adds a project to `dev` by a commit of their own.
    let project =
        "apiVersion: hexabase.ai/v1alpha1\nkind: Project\nmetadata:\n  name: handmade\nspec: {}\n";
    // And a workspace `staging`, which SQL did not hear of.
    let staging = "apiVersion: hexabase.ai/v1alpha1\nkind: Workspace\nmetadata:\n  name: staging\n\
                   spec:\n  plan: dedicated-large\n  cluster: home\n";
    let by_hand = commit_by_hand(
        &env,
        &[
            ("intent/acme/dev/projects/handmade.yaml", project),
            ("intent/acme/staging/workspace.yaml", staging),
        ],
    );
    let synced = sync().await.expect("sync");
    assert!(
        !synced.full,
        "a descendant of the indexed head is synced incrementally"
    );
    let rows = env
        .state
        .store
        .indexed_workspaces("acme")
        .await
        .expect("index");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].projects, 1);
    assert_eq!(rows[0].commit_id, by_hand.to_string());
    assert_eq!(
        (rows[1].name.as_str(), rows[1].plan.as_str()),
        ("staging", "dedicated-large")
    );
    // Billing follows Git: the workspace made by hand is subscribed to its plan.
    let acme = env
        .state
        .store
        .organization_by_slug("acme")
        .await
        .expect("org");
    let running = || support::running_subscriptions(&env.state.store, &acme.id);
    assert_eq!(
        running().await,
        [
            ("dev".to_owned(), "shared-small".to_owned()),
            ("staging".to_owned(), "dedicated-large".to_owned())
        ]
    );
    // History rewritten to before the workspace: the index is rebuilt, and `dev` is gone.
    let repo = git2::Repository::open(env.state.settings.git_repo()).expect("open");
    repo.reference(
        "refs/heads/main",
        git2::Oid::from_str(&before_workspace).expect("id"),
        true,
        "rewrite",
    )
    .expect("reset");
    let synced = sync().await.expect("sync");
    assert!(
        synced.full,
        "a head that does not descend from the indexed one rebuilds"
    );
    assert!(
        env.state
            .store
            .indexed_workspaces("acme")
            .await
            .expect("index")
            .is_empty()
    );
    assert!(running().await.is_empty(), "nothing left to bill");
}
