//! The walls between workspaces, and the escalation rule, through the API.
//!
//! - Two workspaces of one organization, built alike (the same project, role, group,
//!   CronJob and Function names): the administrator and a user of each get 404 for every
//!   route of the other workspace (every operation of the OpenAPI document under
//!   `/api/v1/orgs/{org}/workspaces/{ws}`), change nothing, and see nothing of it in the
//!   workspace list or the audit log.
//! - Only a workspace administrator (who holds `*`) may manage roles, and no custom role can
//!   hand that on: so the escalation refusal cannot be reached by a request, and the test
//!   holds the refusals that make it so (see its comment).

mod support;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use server::http::AppState;
use support::routes::{is_safe, operations};
use support::{Person, TestServer, commits, server_with};

const WORKSPACES: [&str; 2] = ["dev", "prod"];

/// `method path` as `who`, expecting `status`; answers the body.
#[track_caller]
fn expect(answer: support::Answer, status: StatusCode, what: &str) -> Value {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    answer.body
}

/// The people of one workspace: its administrator, a user (in `WSUsers`), and a member of
/// its group `ops`.
struct Crew {
    admin: Person,
    user: Person,
    ops: Person,
}

async fn call(
    state: &AppState,
    who: &Person,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> support::Answer {
    who.client().send(state, method, path, body).await
}

/// Organization `acme` with workspaces `dev` and `prod`, each holding project `web` with
/// role `cron-editor` (bound to `WSUsers`), CronJob `tick` and Function `tick`, group `ops`,
/// and `WSUsers` bound to the viewer role.
async fn two_workspaces(name: &str) -> (TestServer, BTreeMap<&'static str, Crew>) {
    let server = server_with(name, |s| s.limits.actions_per_org_per_second = 0).await;
    let state = server.state.clone();
    let owner = server.person("owner@acme.test").await;
    expect(
        call(
            &state,
            &owner,
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "acme", "name": "Acme"})),
        )
        .await,
        StatusCode::CREATED,
        "create acme",
    );
    let mut crews = BTreeMap::new();
    for ws in WORKSPACES {
        let crew = Crew {
            admin: server.person(&format!("{ws}-admin@example.test")).await,
            user: server.person(&format!("{ws}-user@example.test")).await,
            ops: server.person(&format!("{ws}-ops@example.test")).await,
        };
        let base = format!("/api/v1/orgs/acme/workspaces/{ws}");
        let web = format!("{base}/projects/web");
        let created = StatusCode::CREATED;
        #[rustfmt::skip]
        let steps = [
            (&owner, "/api/v1/orgs/acme/workspaces".to_owned(), json!({"name": ws, "plan": "shared-small"})),
            (&owner, format!("{base}/groups/WSAdmins/members"), json!({"user": crew.admin.user.email})),
            (&crew.admin, format!("{base}/groups/WSUsers/members"), json!({"user": crew.user.user.email})),
            (&crew.admin, format!("{base}/groups"), json!({"name": "ops", "parent": "WorkspaceMembers"})),
            (&crew.admin, format!("{base}/groups/ops/members"), json!({"user": crew.ops.user.id})),
            (&crew.admin, format!("{base}/clusterrolebindings"), json!({"group": "WSUsers", "clusterRole": "hexabase:workspace-viewer"})),
            (&crew.admin, format!("{base}/projects"), json!({"name": "web"})),
            (&crew.admin, format!("{web}/roles"), json!({"name": "cron-editor", "rules": [
                {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list", "watch", "create", "update", "delete"]},
            ]})),
            (&crew.admin, format!("{web}/rolebindings"), json!({"group": "WSUsers", "role": "cron-editor"})),
            (&crew.admin, format!("{web}/cronjobs"), json!({"name": "tick", "schedule": "0 3 * * *", "image": "busybox:1.36"})),
            (&crew.admin, format!("{web}/functions"), json!({"name": "tick", "image": "ghcr.io/x/hello:1"})),
        ];
        for (who, path, body) in steps {
            expect(
                call(&state, who, Method::POST, &path, Some(body)).await,
                created,
                &path,
            );
        }
        crews.insert(ws, crew);
    }
    (server, crews)
}

/// The values of the path parameters naming `ws`'s objects.
fn params(ws: &str, crew: &Crew) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("org", "acme".to_owned()),
        ("ws", ws.to_owned()),
        ("project", "web".to_owned()),
        ("role", "cron-editor".to_owned()),
        ("group", "ops".to_owned()),
        ("user", crew.ops.user.id.clone()),
        ("name", "tick".to_owned()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_people_of_one_workspace_get_404_for_everything_of_another() {
    let (server, crews) = two_workspaces("tenancy-walls").await;
    let state = &server.state;
    let document = server::http::openapi::document();
    let ops: Vec<_> = operations(&document)
        .into_iter()
        .filter(|op| op.path.starts_with("/api/v1/orgs/{org}/workspaces/{ws}"))
        .collect();
    assert!(ops.len() > 30, "only {} workspace routes", ops.len());
    let mut failures = Vec::new();
    let mut requests = 0;
    for (home, crew) in &crews {
        let (away, theirs) = crews
            .iter()
            .find(|(ws, _)| *ws != home)
            .expect("the other workspace");
        let there = params(away, theirs);
        for op in &ops {
            let uri = op.uri(&there, None);
            // The object exists there: its own administrator sees it.
            if is_safe(&op.method) {
                let answer = call(state, &theirs.admin, op.method.clone(), &uri, None).await;
                assert_eq!(
                    answer.status,
                    StatusCode::OK,
                    "{away}'s admin: {} {uri}: {}",
                    op.method,
                    answer.body
                );
            }
            for (role, who) in [
                ("admin", &crew.admin),
                ("user", &crew.user),
                ("ops member", &crew.ops),
            ] {
                let before = commits(state).len();
                let answer = call(state, who, op.method.clone(), &uri, op.body(home, &there)).await;
                requests += 1;
                let made = commits(state).len() - before;
                if answer.status != StatusCode::NOT_FOUND || made != 0 {
                    failures.push(format!(
                        "{home}'s {role}: {} {uri} ({}) answered {} and made {made} commit(s): {}",
                        op.method, op.id, answer.status, answer.body
                    ));
                }
            }
        }
        // Nor do they see the other workspace in the organization's list or its audit log.
        for who in [&crew.admin, &crew.user, &crew.ops] {
            let listed = expect(
                call(
                    state,
                    who,
                    Method::GET,
                    "/api/v1/orgs/acme/workspaces",
                    None,
                )
                .await,
                StatusCode::OK,
                "list workspaces",
            );
            let names: Vec<&str> = listed
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|w| w["name"].as_str())
                .collect();
            assert_eq!(names, [*home], "{} lists {names:?}", who.user.email);
            let audit = expect(
                call(
                    state,
                    who,
                    Method::GET,
                    "/api/v1/orgs/acme/audit?limit=1000",
                    None,
                )
                .await,
                StatusCode::OK,
                "audit",
            );
            let records = audit.as_array().expect("a list");
            assert!(
                !records.is_empty(),
                "{} sees no record of {home}",
                who.user.email
            );
            for record in records {
                assert!(
                    !record.to_string().contains(&format!("\"{away}\"")),
                    "{} sees {away} in the audit: {record}",
                    who.user.email
                );
            }
            let filtered = call(
                state,
                who,
                Method::GET,
                &format!("/api/v1/orgs/acme/audit?workspace={away}"),
                None,
            )
            .await;
            assert!(
                filtered.status == StatusCode::NOT_FOUND
                    || filtered.body.as_array().is_some_and(Vec::is_empty),
                "{} asked the audit for {away}: {} {}",
                who.user.email,
                filtered.status,
                filtered.body
            );
        }
    }
    assert!(requests > 200, "only {requests} requests");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    server.state.store.close().await;
}

/// The escalation refusal (a role or binding granting more than its author holds) cannot be
/// reached by any request: creating or binding a role needs `create` on `roles` or
/// `rolebindings`, which only the preset `hexabase:workspace-admin` grants, and it grants
/// `*`, which covers every rule. No custom role can hand out a narrower right to manage
/// roles, because the compiler refuses custom roles that touch RBAC resources, use wildcards
/// or hold `escalate`, `bind` or `impersonate`. (The rule itself is held to the property
/// test in `service/authz.rs`.) So this tests the refusals that keep it unreachable: the
/// administrator cannot write such a role, and a member holding every verb on CronJobs (and
/// the viewer role) may not create, change or bind roles, even ones within what they hold.
/// Nothing refused makes a commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_workspace_admin_may_manage_roles_and_no_role_can_delegate_it() {
    let (server, crews) = two_workspaces("tenancy-escalation").await;
    let state = &server.state;
    let dev = &crews["dev"];
    let web = "/api/v1/orgs/acme/workspaces/dev/projects/web";
    let before = commits(state).len();
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| {
        json!({"name": "delegate", "rules": [
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]},
            {"apiGroups": groups, "resources": resources, "verbs": verbs},
        ]})
    };
    let rbac = "rbac.authorization.k8s.io";
    #[rustfmt::skip]
    let delegating = [
        (rule(&[rbac], &["roles"], &["create"]), "rules[1].apiGroups[0]"),
        (rule(&["batch"], &["rolebindings"], &["create"]), "rules[1].resources[0]"),
        (rule(&["*"], &["cronjobs"], &["get"]), "rules[1].apiGroups[0]"),
        (rule(&["batch"], &["*"], &["get"]), "rules[1].resources[0]"),
        (rule(&["batch"], &["cronjobs"], &["*"]), "rules[1].verbs[0]"),
        (rule(&["batch"], &["cronjobs"], &["escalate"]), "rules[1].verbs[0]"),
        (rule(&["batch"], &["cronjobs"], &["bind"]), "rules[1].verbs[0]"),
        (rule(&[""], &["users"], &["impersonate"]), "rules[1].verbs[0]"),
    ];
    for (body, field) in delegating {
        let answer = call(
            state,
            &dev.admin,
            Method::POST,
            &format!("{web}/roles"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        let fields: Vec<&str> = answer.body["errors"]
            .as_array()
            .expect("the problems")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.iter().any(|f| f.ends_with(field)),
            "{body}: {fields:?}"
        );
        assert_eq!(commits(state).len(), before, "{body} made a commit");
    }

    // The user holds every verb on CronJobs in `web` (cron-editor) and the viewer role; the
    // ops member holds nothing. Neither may touch roles or bindings, within what they hold
    // or not.
    let reader = json!({"name": "cron-reader", "rules": [
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list"]},
    ]});
    #[rustfmt::skip]
    let attempts = [
        (Method::POST, format!("{web}/roles"), Some(reader)),
        (Method::PUT, format!("{web}/roles/cron-editor"), Some(json!({"rules": [
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]},
        ]}))),
        (Method::DELETE, format!("{web}/roles/cron-editor"), None),
        (Method::POST, format!("{web}/rolebindings"), Some(json!({"group": "ops", "role": "cron-editor"}))),
        (Method::POST, format!("{web}/rolebindings"), Some(json!({"group": "WSUsers", "clusterRole": "hexabase:workspace-admin"}))),
        (Method::DELETE, format!("{web}/rolebindings?group=WSUsers&role=cron-editor"), None),
        (Method::POST, "/api/v1/orgs/acme/workspaces/dev/clusterrolebindings".to_owned(), Some(json!({"group": "WSUsers", "clusterRole": "hexabase:workspace-admin"}))),
    ];
    for who in [&dev.user, &dev.ops] {
        for (method, path, body) in &attempts {
            let answer = call(state, who, method.clone(), path, body.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{} {method} {path}: {}",
                who.user.email,
                answer.body
            );
            assert_eq!(
                commits(state).len(),
                before,
                "{method} {path} made a commit"
            );
        }
    }
    // And the user does hold what the role says: a CronJob of their own is theirs to make.
    expect(
        call(
            state,
            &dev.user,
            Method::POST,
            &format!("{web}/cronjobs"),
            Some(json!({"name": "mine", "schedule": "0 5 * * *", "image": "busybox:1.36"})),
        )
        .await,
        StatusCode::CREATED,
        "a CronJob within the role",
    );
    server.state.store.close().await;
}
