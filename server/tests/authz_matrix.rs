//! The authorization matrix: every operation of the OpenAPI document × owner, organization
//! user (billing), workspace administrator, workspace user, outsider and anonymous, each
//! against the victim organization's real objects, on a fresh copy of one prepared server.
//!
//! What it holds the server to:
//! - each persona gets exactly the status [`EXPECTED`] says (the product's authorization);
//! - anonymous callers get 401 on every route that is not public, and the outsider gets 404
//!   on everything under `/api/v1/orgs/{org}` of the victim — never 403, never 2xx;
//! - a success of an operation marked `x-hexabase-commit` made exactly one commit, by the
//!   caller (none when it answers `commit: null`); anything else made no commit;
//! - callers who may not see inside a workspace get the same answer for a missing object as
//!   for an existing one (nothing's existence leaks);
//! - a session cookie without its CSRF token gets 403 and no commit on every unsafe route.
//!
//! A new route cannot slip through: an operation missing from [`EXPECTED`], a path parameter
//! missing from [`World::params`], or a request body without an example in [`BODIES`] fails
//! the test.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use server::http::AppState;
use server::settings::Settings;
use support::routes::{BODIES, Operation, QUERIES, is_safe, operations};
use support::{Client, Person, TempDir, TestServer, commits, server_with};

/// The personas, in the column order of [`EXPECTED`].
const PERSONAS: [&str; 6] = [
    "owner",
    "billing",
    "wsadmin",
    "wsuser",
    "outsider",
    "anonymous",
];
const OWNER: usize = 0;
const BILLING: usize = 1;
const OUTSIDER: usize = 4;
const ANONYMOUS: usize = 5;

/// What each persona gets, by operation id. Columns:
/// owner, billing (organization user), workspace admin, workspace user, outsider, anonymous.
///
/// The victim: organization `acme` (owner; `billing` with role billing; `dana`, another
/// billing user in group `ops`) with workspace `dev` whose `WSAdmins` is the workspace admin
/// alone (the owner created it and left), whose `WSUsers` holds the workspace user and is
/// bound to `hexabase:workspace-viewer`, and project `web` with Role `cron-editor` (CronJobs,
/// every verb) bound to `WSUsers`, CronJob `tick` and Function `tick`. The admin and the
/// user are not organization users. The outsider owns organization `other`, which has a
/// workspace `dev` with a project `web` too. The owner is also the platform administrator
/// (the first account), which gives nothing inside organizations or workspaces.
#[rustfmt::skip]
const EXPECTED: &[(&str, [u16; 6])] = &[
    // operation                 owner bill admin user  out  anon
    ("healthz",                 [200, 200, 200, 200, 200, 200]),
    ("readyz",                  [200, 200, 200, 200, 200, 200]),
    ("openapi",                 [200, 200, 200, 200, 200, 200]),
    ("getAudit",                [200, 403, 200, 200, 404, 401]),
    ("signup",                  [201, 201, 201, 201, 201, 201]),
    ("login",                   [200, 200, 200, 200, 200, 200]),
    ("logout",                  [204, 204, 204, 204, 204, 401]),
    ("oidcStart",               [404, 404, 404, 404, 404, 404]),
    ("oidcCallback",            [404, 404, 404, 404, 404, 404]),
    ("getIssuer",               [200, 200, 200, 200, 200, 200]),
    ("me",                      [200, 200, 200, 200, 200, 401]),
    ("listTokens",              [200, 200, 200, 200, 200, 401]),
    ("createToken",             [201, 201, 201, 201, 201, 401]),
    ("deleteToken",             [204, 404, 404, 404, 404, 401]),
    ("listOrgs",                [200, 200, 200, 200, 200, 401]),
    ("createOrg",               [201, 201, 201, 201, 201, 401]),
    ("getOrg",                  [200, 200, 404, 404, 404, 401]),
    ("deleteOrg",               [409, 403, 404, 404, 404, 401]),
    ("listOrgMembers",          [200, 200, 404, 404, 404, 401]),
    ("setOrgMemberRole",        [200, 403, 404, 404, 404, 401]),
    ("removeOrgMember",         [204, 403, 404, 404, 404, 401]),
    ("inviteToOrg",             [201, 403, 404, 404, 404, 401]),
    ("acceptInvitation",        [404, 404, 404, 404, 200, 401]),
    ("getOrgBilling",           [200, 200, 404, 404, 404, 401]),
    ("listWorkspaces",          [200, 200, 200, 200, 404, 401]),
    ("createWorkspace",         [201, 403, 403, 403, 404, 401]),
    ("getWorkspace",            [200, 404, 200, 200, 404, 401]),
    ("deleteWorkspace",         [200, 404, 403, 403, 404, 401]),
    ("changePlan",              [200, 404, 403, 403, 404, 401]),
    ("getKubeconfig",           [403, 404, 200, 200, 404, 401]),
    ("rotateSigningKeys",       [200, 403, 403, 403, 403, 401]),
    ("getPlatform",             [200, 403, 403, 403, 403, 401]),
    ("setPlatform",             [200, 403, 403, 403, 403, 401]),
    ("setPlatformCluster",      [200, 403, 403, 403, 403, 401]),
    ("setPlatformPlan",         [200, 403, 403, 403, 403, 401]),
    // 422 for the administrator: the matrix's plan `lab` is not a plan at the head.
    ("setPlanPrice",            [422, 403, 403, 403, 403, 401]),
    ("listPlans",               [200, 200, 200, 200, 200, 401]),
    ("listClusters",            [200, 200, 200, 200, 200, 401]),
    ("listGroups",              [403, 404, 200, 200, 404, 401]),
    ("createGroup",             [403, 404, 201, 403, 404, 401]),
    ("getGroup",                [403, 404, 200, 200, 404, 401]),
    ("updateGroup",             [403, 404, 200, 403, 404, 401]),
    ("deleteGroup",             [403, 404, 204, 403, 404, 401]),
    ("listGroupMembers",        [403, 404, 200, 200, 404, 401]),
    ("addGroupMember",          [403, 404, 201, 403, 404, 401]),
    ("removeGroupMember",       [403, 404, 204, 403, 404, 401]),
    ("listClusterRoleBindings", [403, 404, 200, 200, 404, 401]),
    ("bindClusterRole",         [403, 404, 201, 403, 404, 401]),
    ("unbindClusterRole",       [403, 404, 200, 403, 404, 401]),
    ("listProjects",            [403, 404, 200, 200, 404, 401]),
    ("createProject",           [403, 404, 201, 403, 404, 401]),
    ("getProject",              [403, 404, 200, 200, 404, 401]),
    ("deleteProject",           [403, 404, 200, 403, 404, 401]),
    ("setProjectQuota",         [403, 404, 200, 403, 404, 401]),
    ("listRoles",               [403, 404, 200, 403, 404, 401]),
    ("createRole",              [403, 404, 201, 403, 404, 401]),
    ("getRole",                 [403, 404, 200, 403, 404, 401]),
    ("updateRole",              [403, 404, 200, 403, 404, 401]),
    ("deleteRole",              [403, 404, 200, 403, 404, 401]),
    ("listRoleBindings",        [403, 404, 200, 403, 404, 401]),
    ("bindRole",                [403, 404, 201, 403, 404, 401]),
    ("unbindRole",              [403, 404, 200, 403, 404, 401]),
    ("listCronJobs",            [403, 404, 200, 200, 404, 401]),
    ("createCronJob",           [403, 404, 201, 201, 404, 401]),
    ("getCronJob",              [403, 404, 200, 200, 404, 401]),
    ("updateCronJob",           [403, 404, 200, 200, 404, 401]),
    ("deleteCronJob",           [403, 404, 200, 200, 404, 401]),
    ("listFunctions",           [403, 404, 200, 403, 404, 401]),
    ("createFunction",          [403, 404, 201, 403, 404, 401]),
    ("getFunction",             [403, 404, 200, 403, 404, 401]),
    ("updateFunction",          [403, 404, 200, 403, 404, 401]),
    ("deleteFunction",          [403, 404, 200, 403, 404, 401]),
];

/// The path parameters naming something inside a workspace, which callers who may not see
/// inside must not learn exists.
const INSIDE: [&str; 4] = ["project", "role", "group", "name"];

/// What a copy of the prepared server keeps: its data folder, and its database on PostgreSQL.
type Kept = (TempDir, Option<support::postgres::TestDatabase>);

/// The prepared server (its data folder is copied for every row) and what names its objects.
struct World {
    base: TestServer,
    people: Vec<Option<Person>>,
    params: BTreeMap<&'static str, String>,
    session: Client,
}

fn tweak(settings: &mut Settings) {
    settings.limits.actions_per_org_per_second = 0;
    settings.accounts.open_signup = true;
}

#[track_caller]
fn ok(answer: support::Answer, status: StatusCode) -> Value {
    answer.expect(status).body
}

impl World {
    async fn new() -> Self {
        let base = server_with("authz-matrix", tweak).await;
        let owner = person_with_password(&base, "owner@acme.test", true).await;
        let billing = base.person("billing@acme.test").await;
        let wsadmin = base.person("wsadmin@example.test").await;
        let wsuser = base.person("wsuser@example.test").await;
        let outsider = base.person("outsider@other.test").await;
        let dana = base.person("dana@acme.test").await;
        let call = |method: Method, path: String, who: &Person, body: Option<Value>| {
            let client = who.client();
            let state = base.state.clone();
            async move { client.send(&state, method, &path, body).await }
        };
        let post = |path: &str, who: &Person, body: Value| {
            call(Method::POST, path.to_owned(), who, Some(body))
        };
        let o = "/api/v1/orgs/acme";
        let ws = "/api/v1/orgs/acme/workspaces/dev";
        let web = format!("{ws}/projects/web");

        ok(
            post(
                "/api/v1/orgs",
                &owner,
                json!({"slug": "acme", "name": "Acme"}),
            )
            .await,
            StatusCode::CREATED,
        );
        for who in [&billing, &dana] {
            let invited = ok(
                post(
                    &format!("{o}/invitations"),
                    &owner,
                    json!({"email": who.user.email, "role": "billing"}),
                )
                .await,
                StatusCode::CREATED,
            );
            let token = invited["token"].as_str().expect("a token");
            ok(
                call(
                    Method::POST,
                    format!("/api/v1/invitations/{token}/accept"),
                    who,
                    None,
                )
                .await,
                StatusCode::OK,
            );
        }
        // What the victim and the outsider make, in order: (who, method, path, body, status).
        let other = "/api/v1/orgs/other";
        let created = StatusCode::CREATED;
        #[rustfmt::skip]
        let steps = [
            (&owner, Method::POST, format!("{o}/workspaces"), Some(json!({"name": "dev", "plan": "shared-small"})), created),
            (&owner, Method::POST, format!("{ws}/groups/WSAdmins/members"), Some(json!({"user": wsadmin.user.email})), created),
            // The owner leaves: organization roles alone give nothing inside.
            (&wsadmin, Method::DELETE, format!("{ws}/groups/WSAdmins/members/{}", owner.user.id), None, StatusCode::NO_CONTENT),
            (&wsadmin, Method::POST, format!("{ws}/groups/WSUsers/members"), Some(json!({"user": wsuser.user.email})), created),
            (&wsadmin, Method::POST, format!("{ws}/groups"), Some(json!({"name": "ops", "parent": "WorkspaceMembers"})), created),
            (&wsadmin, Method::POST, format!("{ws}/groups/ops/members"), Some(json!({"user": dana.user.id})), created),
            (&wsadmin, Method::POST, format!("{ws}/clusterrolebindings"), Some(json!({"group": "WSUsers", "clusterRole": "hexabase:workspace-viewer"})), created),
            (&wsadmin, Method::POST, format!("{ws}/projects"), Some(json!({"name": "web"})), created),
            (&wsadmin, Method::POST, format!("{web}/roles"), Some(json!({"name": "cron-editor", "rules": [
                {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list", "watch", "create", "update", "delete"]},
            ]})), created),
            (&wsadmin, Method::POST, format!("{web}/rolebindings"), Some(json!({"group": "WSUsers", "role": "cron-editor"})), created),
            (&wsadmin, Method::POST, format!("{web}/cronjobs"), Some(json!({"name": "tick", "schedule": "0 3 * * *", "image": "busybox:1.36"})), created),
            (&wsadmin, Method::POST, format!("{web}/functions"), Some(json!({"name": "tick", "image": "ghcr.io/x/hello:1"})), created),
            // The outsider has the same names at home.
            (&outsider, Method::POST, "/api/v1/orgs".to_owned(), Some(json!({"slug": "other", "name": "Other"})), created),
            (&outsider, Method::POST, format!("{other}/workspaces"), Some(json!({"name": "dev", "plan": "shared-small"})), created),
            (&outsider, Method::POST, format!("{other}/workspaces/dev/projects"), Some(json!({"name": "web"})), created),
        ];
        for (who, method, path, body, status) in steps {
            ok(call(method, path, who, body).await, status);
        }

        let spare = ok(
            post("/api/v1/tokens", &owner, json!({"name": "spare"})).await,
            StatusCode::CREATED,
        );
        let invitation = ok(
            post(
                &format!("{o}/invitations"),
                &owner,
                json!({"email": outsider.user.email, "role": "billing"}),
            )
            .await,
            StatusCode::CREATED,
        );
        let login = Client::default()
            .send(
                &base.state,
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"email": owner.user.email, "password": PASSWORD})),
            )
            .await;
        let session = Client::default().signed_in(&login.expect(StatusCode::OK));

        let params = BTreeMap::from([
            ("org", "acme".to_owned()),
            ("ws", "dev".to_owned()),
            ("project", "web".to_owned()),
            ("role", "cron-editor".to_owned()),
            ("group", "ops".to_owned()),
            // Both an organization user (removeOrgMember) and in group ops (removeGroupMember).
            ("user", dana.user.id.clone()),
            // CronJob and Function share the name, as they share the parameter.
            ("name", "tick".to_owned()),
            (
                "id",
                spare["token"]["id"]
                    .as_str()
                    .expect("a token id")
                    .to_owned(),
            ),
            (
                "token",
                invitation["token"].as_str().expect("a token").to_owned(),
            ),
            ("provider", "github".to_owned()),
            ("cluster", "lab".to_owned()),
            ("plan", "lab".to_owned()),
        ]);
        base.state.store.close().await;
        Self {
            base,
            people: vec![
                Some(owner),
                Some(billing),
                Some(wsadmin),
                Some(wsuser),
                Some(outsider),
                None,
            ],
            params,
            session,
        }
    }

    /// A fresh server: a copy of the prepared one (its folder, and its database on
    /// PostgreSQL), kept while the second half lives.
    async fn fresh(&self) -> (AppState, Kept) {
        let dir = TempDir::new("authz-row");
        let (settings, database) = self.base.copy_into(&dir).await;
        let state = server::serve::open(settings).await.expect("open the copy");
        (state, (dir, database))
    }

    /// The operation's path with the victim's objects (`ghost` replaces the last parameter,
    /// when it names something inside a workspace), and its query.
    fn uri(&self, op: &Operation, ghost: bool) -> Option<String> {
        let inside = op.parameters().last().is_some_and(|l| INSIDE.contains(l));
        if ghost && !inside {
            return None;
        }
        Some(op.uri(&self.params, ghost.then_some("ghost")))
    }

    fn body(&self, op: &Operation, who: &str) -> Option<Value> {
        op.body(who, &self.params)
    }
}

const PASSWORD: &str = "correct horse battery";

/// A user who can sign in with [`PASSWORD`], with an API token; the platform
/// administrator when `is_admin`.
async fn person_with_password(server: &TestServer, email: &str, is_admin: bool) -> Person {
    let hash = tokio::task::spawn_blocking(|| {
        server::service::credentials::hash_password(PASSWORD).expect("hash")
    })
    .await
    .expect("join");
    support::person_as(&server.state, email, Some(&hash), is_admin).await
}

fn expected(op: &Operation) -> [u16; 6] {
    EXPECTED
        .iter()
        .find(|(id, _)| *id == op.id)
        .unwrap_or_else(|| {
            panic!(
                "{} {} ({}) is not in the authorization matrix: add what each persona gets to EXPECTED",
                op.method, op.path, op.id
            )
        })
        .1
}

/// The server rows run on: kept while requests change nothing, replaced by a fresh copy of
/// the prepared one after a request that may have changed something (a success of an unsafe
/// method), so every row meets the victim's objects as prepared.
struct Current {
    state: AppState,
    _dir: Kept,
    dirty: bool,
}

impl Current {
    async fn new(world: &World) -> Self {
        let (state, dir) = world.fresh().await;
        Self {
            state,
            _dir: dir,
            dirty: false,
        }
    }

    /// The server, fresh if the last request may have changed it.
    async fn get(&mut self, world: &World) -> &AppState {
        if self.dirty {
            self.state.store.close().await;
            *self = Self::new(world).await;
        }
        &self.state
    }
}

/// One request's outcome, for the failure report.
struct Row {
    label: String,
    problems: Vec<String>,
}

/// Sends `op` as persona `who` on a fresh server and checks the status and the commits.
async fn run_row(
    world: &World,
    current: &mut Current,
    op: &Operation,
    who: usize,
    ghost: bool,
) -> Option<(u16, Row)> {
    let uri = world.uri(op, ghost)?;
    let name = PERSONAS[who];
    let client = world.people[who]
        .as_ref()
        .map(Person::client)
        .unwrap_or_default();
    let state = current.get(world).await;
    let before = commits(state);
    let answer = client
        .send(state, op.method.clone(), &uri, world.body(op, name))
        .await;
    let after = commits(state);
    current.dirty = answer.status.is_success() && !is_safe(&op.method);
    let new = &after[..after.len() - before.len()];
    let status = answer.status.as_u16();
    let mut problems = Vec::new();
    if answer.status.is_success() && op.commits {
        let commit = answer.body.get("commit");
        let author = match (op.id.as_str(), &world.people[who]) {
            // A sign-up's commit is the new account's.
            ("signup", _) => format!(
                "{} <{}>",
                answer.body["user"]["name"].as_str().unwrap_or_default(),
                answer.body["user"]["email"].as_str().unwrap_or_default()
            ),
            (_, Some(person)) => person.identity(),
            (_, None) => "nobody".to_owned(),
        };
        match commit {
            Some(Value::Null) if new.is_empty() => {}
            Some(Value::Null) => problems.push(format!(
                "answered commit: null but made {} commits",
                new.len()
            )),
            _ if new.len() != 1 => {
                problems.push(format!("made {} commits, not exactly one", new.len()))
            }
            Some(Value::String(id)) if *id != new[0].id => {
                problems.push(format!("answered commit {id}, but made {}", new[0].id));
            }
            _ if new[0].author != author => problems.push(format!(
                "the commit's author is {}, not {author}",
                new[0].author
            )),
            _ => {}
        }
    } else if !new.is_empty() {
        problems.push(format!(
            "answered {status} but made {} commit(s): {:?}",
            new.len(),
            new.iter().map(|c| &c.message).collect::<Vec<_>>()
        ));
    }
    Some((
        status,
        Row {
            label: format!("{:<24} {:<9} {} {uri}", op.id, name, op.method),
            problems: {
                if !problems.is_empty() {
                    problems.push(format!("body: {}", answer.body));
                }
                problems
            },
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_persona_as_the_product_says() {
    let started = std::time::Instant::now();
    let world = World::new().await;
    let prepared = started.elapsed();
    let document = server::http::openapi::document();
    let ops = operations(&document);
    let ids: BTreeSet<&str> = ops.iter().map(|o| o.id.as_str()).collect();
    for (id, _) in EXPECTED {
        assert!(
            ids.contains(id),
            "EXPECTED names {id}, which the document does not have"
        );
    }
    for (id, _) in BODIES.iter().chain(QUERIES) {
        assert!(
            ids.contains(id),
            "an example names {id}, which the document does not have"
        );
    }
    let mut current = Current::new(&world).await;
    let mut failures = Vec::new();
    let mut rows = 0;
    for op in &ops {
        let want = expected(op);
        let in_victim = op.path.starts_with("/api/v1/orgs/{org}");
        // The table itself must keep the invariants.
        if !op.public {
            assert_eq!(want[ANONYMOUS], 401, "{}: anonymous must get 401", op.id);
        }
        if in_victim {
            assert_eq!(want[OUTSIDER], 404, "{}: the outsider must get 404", op.id);
        }
        for (who, &wanted) in want.iter().enumerate() {
            let (status, outcome) = run_row(&world, &mut current, op, who, false)
                .await
                .expect("a row");
            rows += 1;
            let mut problems = outcome.problems;
            if status != wanted {
                problems.insert(0, format!("answered {status}, the matrix says {wanted}"));
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{}\n    {}",
                    outcome.label,
                    problems.join("\n    ")
                ));
            }
            // Nothing inside a workspace leaks to who may not see inside: a refusal is the
            // same for a missing object.
            let blind = [OWNER, BILLING, OUTSIDER, ANONYMOUS].contains(&who);
            if blind
                && matches!(status, 401 | 403 | 404)
                && let Some((ghost, probe)) = run_row(&world, &mut current, op, who, true).await
            {
                rows += 1;
                if ghost != status {
                    failures.push(format!(
                        "{}\n    answered {ghost} for a missing object but {status} for an existing one",
                        probe.label
                    ));
                }
            }
        }
    }
    current.state.store.close().await;
    eprintln!(
        "authorization matrix: {} operations × {} personas, {rows} requests; prepared in {prepared:?}, all in {:?}",
        ops.len(),
        PERSONAS.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_its_csrf_token_changes_nothing() {
    let world = World::new().await;
    let document = server::http::openapi::document();
    let (state, _dir) = world.fresh().await;
    // The session is good: a safe request passes.
    let me = world
        .session
        .send(&state, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(me.expect(StatusCode::OK).body["email"], "owner@acme.test");
    let without = Client {
        csrf: None,
        ..world.session.clone()
    };
    let before = commits(&state).len();
    let mut checked = 0;
    for op in operations(&document) {
        if op.public || is_safe(&op.method) {
            continue;
        }
        let uri = world.uri(&op, false).expect("a uri");
        let answer = without
            .send(&state, op.method.clone(), &uri, world.body(&op, "owner"))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{} {uri}: {}",
            op.method,
            answer.body
        );
        assert_eq!(answer.field(), "X-CSRF-Token", "{} {uri}", op.method);
        checked += 1;
    }
    assert!(checked > 30, "only {checked} unsafe routes");
    assert_eq!(
        commits(&state).len(),
        before,
        "a refused request made a commit"
    );
    // And with the token, the same session may change things.
    let created = world
        .session
        .send(
            &state,
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "with-csrf", "name": "With CSRF"})),
        )
        .await;
    created.expect(StatusCode::CREATED);
    assert_eq!(commits(&state).len(), before + 1);
    state.store.close().await;
}

/// Every request body must be a JSON object: serde reads a struct from an array too, so `[]`
/// once erased a quota override and an array of a body's values created a project. Each
/// route that takes a body refuses every other JSON value with 400 naming the root (`""`),
/// and nothing is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_that_is_not_an_object_is_refused_and_changes_nothing() {
    let world = World::new().await;
    let document = server::http::openapi::document();
    let (state, _dir) = world.fresh().await;
    let before = commits(&state).len();
    let (mut checked, mut nested) = (0, 0);
    for op in operations(&document) {
        if !op.body {
            continue;
        }
        let uri = world.uri(&op, false).expect("a uri");
        let example = world.body(&op, "owner").expect("an example body");
        // The example's values in order: what serde maps onto the struct's fields.
        let positional = Value::Array(
            example
                .as_object()
                .expect("the example is an object")
                .values()
                .cloned()
                .collect(),
        );
        for body in [json!([]), positional, json!(null), json!("x"), json!(1)] {
            let answer = world
                .session
                .send(&state, op.method.clone(), &uri, Some(body.clone()))
                .await;
            assert_eq!(
                (answer.status, answer.body["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("bad-request")),
                "{} {uri} with {body}: {}",
                op.method,
                answer.body
            );
            assert_eq!(answer.body["field"], "", "{} {uri} with {body}", op.method);
        }
        // Inside the body too: every object in the example, given as the array of its
        // values, is refused naming where it is.
        for (field, body) in objects_as_arrays(&example) {
            let answer = world
                .session
                .send(&state, op.method.clone(), &uri, Some(body.clone()))
                .await;
            assert_eq!(
                (answer.status, answer.field()),
                (StatusCode::BAD_REQUEST, field.as_str()),
                "{} {uri} with {body}: {}",
                op.method,
                answer.body
            );
            nested += 1;
        }
        checked += 1;
    }
    assert!(checked > 15, "only {checked} routes take a body");
    assert!(nested > 0, "no example body holds an object");
    assert_eq!(
        commits(&state).len(),
        before,
        "a body that is not an object made a commit"
    );
    state.store.close().await;
}

/// Copies of `body` with one object inside it (a field's value, or an element of a field's
/// array) replaced by the array of its values, each with the path of the object.
fn objects_as_arrays(body: &Value) -> Vec<(String, Value)> {
    let as_array =
        |object: &serde_json::Map<String, Value>| Value::Array(object.values().cloned().collect());
    let mut out = Vec::new();
    for (key, value) in body.as_object().expect("an object") {
        match value {
            Value::Object(inner) => {
                let mut changed = body.clone();
                changed[key] = as_array(inner);
                out.push((key.clone(), changed));
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(inner) = item {
                        let mut changed = body.clone();
                        changed[key][i] = as_array(inner);
                        out.push((format!("{key}[{i}]"), changed));
                    }
                }
            }
            _ => {}
        }
    }
    out
}
