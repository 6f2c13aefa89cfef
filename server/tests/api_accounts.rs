//! Router-level tests of accounts and organizations: sign-up, sign-in, sessions, API tokens,
//! organizations with their users, invitations and billing, and sign-in through an external
//! OpenID Connect provider (a small provider in the test, on a loopback port).

mod support;

use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};
use server::service::action::Action;
use server::service::apply::ActionMeta;
use support::{Client, TestServer, server, server_with, sign_up};

/// The head commit's id and author email.
fn head(server: &TestServer) -> (String, String) {
    let repo = git2::Repository::open(server.state.settings.git_repo()).unwrap();
    let commit = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let email = commit.author().email().unwrap_or_default().to_owned();
    (commit.id().to_string(), email)
}

fn head_has(server: &TestServer, path: &str) -> bool {
    let repo = git2::Repository::open(server.state.settings.git_repo()).unwrap();
    repo.find_reference("refs/heads/main")
        .unwrap()
        .peel_to_tree()
        .unwrap()
        .get_path(std::path::Path::new(path))
        .is_ok()
}

/// Applies `action` straight through the engine, as a pull request would change the intent.
async fn apply_directly(server: &TestServer, action: Action) {
    let engine = server.state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let meta = ActionMeta {
            actor: server::gitops::Identity {
                name: "Ada".into(),
                email: "ada@example.com".into(),
            },
            request_id: uuid::Uuid::now_v7().to_string(),
            actor_id: None,
            digest: None,
        };
        engine.apply(&meta, &action).unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_first_account_needs_the_setup_token_and_everyone_gets_a_private_organization() {
    let server = server("signup").await;
    let state = &server.state;
    let body = |token: Option<&str>| {
        json!({"email": "Ada@Example.com ", "name": "Ada", "password": "correct horse battery",
               "setupToken": token})
    };
    let anonymous = Client::default();
    for token in [None, Some("hbs_wrong")] {
        let answer = anonymous
            .send(
                state,
                Method::POST,
                "/api/v1/auth/signup",
                Some(body(token)),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
        assert_eq!(answer.body["field"], "setupToken");
    }
    let answer = anonymous
        .send(
            state,
            Method::POST,
            "/api/v1/auth/signup",
            Some(body(Some(&server.setup_token))),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert_eq!(answer.body["user"]["email"], "ada@example.com");
    assert_eq!(answer.body["user"]["isAdmin"], true);
    let cookie = answer.set_cookie("hb_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "http public URL: {cookie}");
    let ada = Client::default().signed_in(&answer);

    // The private organization: in Git, authored by her, and hers in SQL.
    assert!(head_has(&server, "intent/ada/organization.yaml"));
    assert_eq!(head(&server).1, "ada@example.com");
    let orgs = ada.send(state, Method::GET, "/api/v1/orgs", None).await;
    assert_eq!(
        orgs.body,
        json!([{"slug": "ada", "name": "Ada", "personal": true, "role": "owner",
                "createdAt": orgs.body[0]["createdAt"]}])
    );

    // The setup token is spent; later sign-ups are open, never admins, and get unique slugs.
    let (_, other) = sign_up(state, "ada@elsewhere.org", "Other Ada", None).await;
    assert_eq!(other.body["user"]["isAdmin"], false);
    assert!(head_has(&server, "intent/ada-2/organization.yaml"));
    let again = anonymous
        .send(
            state,
            Method::POST,
            "/api/v1/auth/signup",
            Some(body(Some(&server.setup_token))),
        )
        .await;
    assert_eq!(
        (again.status, again.body["field"].as_str()),
        (StatusCode::CONFLICT, Some("email"))
    );
}

#[tokio::test]
async fn sign_up_names_every_bad_field_and_malformed_bodies_are_problems() {
    let server = server("signup-invalid").await;
    let state = &server.state;
    let anonymous = Client::default();
    let answer = anonymous
        .send(
            state,
            Method::POST,
            "/api/v1/auth/signup",
            Some(json!({"email": "nope", "name": " ", "password": "short"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = answer.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "password"]);

    for (body, field) in [
        (json!({"email": "a@b", "name": "A"}), "password"),
        (
            json!({"email": "a@b", "name": "A", "password": "x", "admin": true}),
            "admin",
        ),
        (json!({"email": 5, "name": "A", "password": "x"}), "email"),
    ] {
        let answer = anonymous
            .send(state, Method::POST, "/api/v1/auth/signup", Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
        assert_eq!(answer.body["field"], field);
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
    let raw = |content_type: &str, body: String| {
        axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let answer = support::send(state, raw("application/json", "{\"email\":".into())).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = support::send(state, raw("text/plain", "{}".into())).await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported-media-type")
        )
    );
    let huge = format!("{{\"email\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let answer = support::send(state, raw("application/json", huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn closed_sign_up_admits_only_the_first_account() {
    let server = server_with("signup-closed", |s| s.accounts.open_signup = false).await;
    let state = &server.state;
    sign_up(state, "root@example.com", "Root", Some(&server.setup_token)).await;
    let answer = Client::default()
        .send(
            state,
            Method::POST,
            "/api/v1/auth/signup",
            Some(
                json!({"email": "b@example.com", "name": "B", "password": "correct horse battery"}),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_and_out_with_a_session_and_its_csrf_token() {
    let server = server("login").await;
    let state = &server.state;
    sign_up(state, "ada@example.com", "Ada", Some(&server.setup_token)).await;
    let anonymous = Client::from_peer("10.0.0.1:5000");
    let login = |email: &str, password: &str| json!({"email": email, "password": password});
    let wrong_password = anonymous
        .send(
            state,
            Method::POST,
            "/api/v1/auth/login",
            Some(login("ada@example.com", "wrong password!")),
        )
        .await;
    let wrong_email = anonymous
        .send(
            state,
            Method::POST,
            "/api/v1/auth/login",
            Some(login("nobody@example.com", "correct horse battery")),
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.body, wrong_email.body);
    assert_eq!(wrong_password.status, wrong_email.status);

    let answer = anonymous
        .send(
            state,
            Method::POST,
            "/api/v1/auth/login",
            Some(login(" ADA@example.com", "correct horse battery")),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let ada = Client::default().signed_in(&answer);
    let me = ada.send(state, Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.body["email"], "ada@example.com");
    assert!(me.body.get("passwordHash").is_none());

    let no_csrf = Client {
        csrf: None,
        ..ada.clone()
    };
    let answer = no_csrf
        .send(state, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(
        (answer.status, answer.body["field"].as_str()),
        (StatusCode::FORBIDDEN, Some("X-CSRF-Token"))
    );
    let answer = ada
        .send(state, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(
        answer
            .set_cookie("hb_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    let me = ada.send(state, Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_account_and_per_client_address() {
    let server = server_with("login-limits", |s| {
        s.limits.login_free_failures_per_account = 1;
        s.limits.logins_per_client_per_minute = 3;
    })
    .await;
    let state = &server.state;
    let attempt = |client: &Client, email: &str| {
        let client = client.clone();
        let email = email.to_owned();
        async move {
            client
                .send(
                    state,
                    Method::POST,
                    "/api/v1/auth/login",
                    Some(json!({"email": email, "password": "wrong password!"})),
                )
                .await
        }
    };
    let here = Client::from_peer("10.0.0.1:5000");
    for _ in 0..2 {
        assert_eq!(
            attempt(&here, "ada@example.com").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = attempt(&here, "ADA@example.com").await;
    assert_eq!(
        (limited.status, limited.body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate-limited"))
    );
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // That was the client's third attempt: the fourth is refused whatever the account, and
    // whatever X-Forwarded-For claims; another address is not.
    let mut spoofed = support::send(state, {
        let mut request = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", "192.0.2.7")
            .body(axum::body::Body::from(
                json!({"email": "bob@example.com", "password": "wrong password!"}).to_string(),
            ))
            .unwrap();
        request.extensions_mut().insert(axum::extract::ConnectInfo(
            "10.0.0.1:6000".parse::<std::net::SocketAddr>().unwrap(),
        ));
        request
    })
    .await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS);
    spoofed = attempt(&Client::from_peer("10.0.0.2:5000"), "bob@example.com").await;
    assert_eq!(spoofed.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_tokens_are_shown_once_and_belong_to_their_owner() {
    let server = server("tokens").await;
    let state = &server.state;
    let (ada, _) = sign_up(state, "ada@example.com", "Ada", Some(&server.setup_token)).await;
    let (bob, _) = sign_up(state, "bob@example.com", "Bob", None).await;
    let invalid = ada
        .send(
            state,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "cli", "expiresInDays": 0})),
        )
        .await;
    assert_eq!(
        (invalid.status, invalid.body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("expiresInDays"))
    );
    let created = ada
        .send(
            state,
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "cli", "expiresInDays": 30})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let id = created.body["token"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("hbt_"));
    assert!(created.body["token"]["expiresAt"].as_i64().is_some());

    let listed = ada.send(state, Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&secret));
    assert_eq!(
        bob.send(state, Method::GET, "/api/v1/tokens", None)
            .await
            .body,
        json!([])
    );

    // The token signs in, and needs no CSRF token for unsafe requests.
    let with_token = Client {
        bearer: Some(secret.clone()),
        ..Client::default()
    };
    let me = with_token
        .send(state, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(me.body["email"], "ada@example.com");

    let path = format!("/api/v1/tokens/{id}");
    let answer = bob.send(state, Method::DELETE, &path, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = with_token.send(state, Method::DELETE, &path, None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let me = with_token
        .send(state, Method::GET, "/api/v1/me", None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn organizations_their_users_invitations_and_billing() {
    let server = server_with("orgs", |s| {
        s.billing.monthly_cents = [("shared-small".to_owned(), 2900)].into();
    })
    .await;
    let state = &server.state;
    let (ada, _) = sign_up(state, "ada@example.com", "Ada", Some(&server.setup_token)).await;
    let (bob, bob_answer) = sign_up(state, "bob@example.com", "Bob", None).await;
    let bob_id = bob_answer.body["user"]["id"].as_str().unwrap().to_owned();
    let (eve, _) = sign_up(state, "eve@example.com", "Eve", None).await;

    for (slug, field) in [("Acme", "slug"), ("a".repeat(31).as_str(), "slug")] {
        let answer = ada
            .send(
                state,
                Method::POST,
                "/api/v1/orgs",
                Some(json!({"slug": slug, "name": "Acme"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.body["field"], field);
    }
    let created = ada
        .send(
            state,
            Method::POST,
            "/api/v1/orgs",
            Some(json!({"slug": "acme", "name": "Acme Inc"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let commit = created.body["commit"].as_str().unwrap();
    assert_eq!(head(&server).0, commit);
    assert!(head_has(&server, "intent/acme/organization.yaml"));
    for slug in ["acme", "ada"] {
        let taken = eve
            .send(
                state,
                Method::POST,
                "/api/v1/orgs",
                Some(json!({"slug": slug, "name": "Mine"})),
            )
            .await;
        assert_eq!(
            (taken.status, taken.body["field"].as_str()),
            (StatusCode::CONFLICT, Some("slug"))
        );
    }

    // Outsiders see nothing of it.
    for (method, path) in [
        (Method::GET, "/api/v1/orgs/acme"),
        (Method::GET, "/api/v1/orgs/acme/members"),
        (Method::GET, "/api/v1/orgs/acme/billing"),
        (Method::DELETE, "/api/v1/orgs/acme"),
    ] {
        let answer = eve.send(state, method.clone(), path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let answer = eve
        .send(
            state,
            Method::POST,
            "/api/v1/orgs/acme/invitations",
            Some(json!({"email": "eve@example.com", "role": "owner"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // An invitation for Bob, accepted by Bob only.
    let invited = ada
        .send(
            state,
            Method::POST,
            "/api/v1/orgs/acme/invitations",
            Some(json!({"email": "Bob@Example.com", "role": "billing"})),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{:?}", invited.body);
    let accept = format!(
        "/api/v1/invitations/{}/accept",
        invited.body["token"].as_str().unwrap()
    );
    let answer = eve.send(state, Method::POST, &accept, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = bob.send(state, Method::POST, &accept, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["role"], "billing");
    let answer = bob.send(state, Method::POST, &accept, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // A billing manager sees the organization and its billing, and manages nothing else.
    let billing = bob
        .send(state, Method::GET, "/api/v1/orgs/acme/billing", None)
        .await;
    assert_eq!(billing.status, StatusCode::OK);
    assert_eq!(
        billing.body["prices"],
        json!([{"plan": "shared-small", "currency": "USD", "monthlyCents": 2900}])
    );
    assert_eq!(billing.body["subscriptions"], json!([]));
    let acme = state.store.organization_by_slug("acme").await.unwrap();
    state
        .store
        .start_subscription(&acme.id, "dev", "shared-small")
        .await
        .unwrap();
    let billing = ada
        .send(state, Method::GET, "/api/v1/orgs/acme/billing", None)
        .await;
    assert_eq!(billing.body["subscriptions"][0]["workspace"], "dev");
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/orgs/acme/invitations",
            Some(json!({"email": "eve@example.com", "role": "owner"})),
        ),
        (
            Method::POST,
            "/api/v1/orgs/acme/members",
            Some(json!({"userId": bob_id, "role": "owner"})),
        ),
        (Method::DELETE, "/api/v1/orgs/acme", None),
    ] {
        let answer = bob.send(state, method.clone(), path, body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let members = bob
        .send(state, Method::GET, "/api/v1/orgs/acme/members", None)
        .await;
    assert_eq!(members.body.as_array().unwrap().len(), 2);

    // Roles: the last owner stays one.
    let ada_id = ada.send(state, Method::GET, "/api/v1/me", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = ada
        .send(
            state,
            Method::POST,
            "/api/v1/orgs/acme/members",
            Some(json!({"userId": ada_id, "role": "billing"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let answer = ada
        .send(
            state,
            Method::DELETE,
            &format!("/api/v1/orgs/acme/members/{ada_id}"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let answer = ada
        .send(
            state,
            Method::POST,
            "/api/v1/orgs/acme/members",
            Some(json!({"userId": bob_id, "role": "owner"})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["role"].as_str()),
        (StatusCode::OK, Some("owner"))
    );
    let answer = ada
        .send(
            state,
            Method::POST,
            "/api/v1/orgs/acme/members",
            Some(json!({"userId": "nobody", "role": "owner"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Bob leaves; Ada is the last owner again.
    let answer = bob
        .send(
            state,
            Method::DELETE,
            &format!("/api/v1/orgs/acme/members/{bob_id}"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let answer = bob
        .send(state, Method::GET, "/api/v1/orgs/acme", None)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // Deleting: refused while it has workspaces and for the private organization.
    apply_directly(
        &server,
        Action::CreateWorkspace {
            org: "acme".into(),
            workspace: "dev".into(),
            plan: "shared-small".into(),
            cluster: "home".into(),
            display_name: None,
            admin: None,
        },
    )
    .await;
    let answer = ada
        .send(state, Method::DELETE, "/api/v1/orgs/acme", None)
        .await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (StatusCode::CONFLICT, Some("refused"))
    );
    apply_directly(
        &server,
        Action::DeleteWorkspace {
            org: "acme".into(),
            workspace: "dev".into(),
        },
    )
    .await;
    let answer = ada
        .send(state, Method::DELETE, "/api/v1/orgs/ada", None)
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let answer = ada
        .send(state, Method::DELETE, "/api/v1/orgs/acme", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.body["commit"].as_str(),
        Some(head(&server).0.as_str())
    );
    assert!(!head_has(&server, "intent/acme/organization.yaml"));
    let orgs = ada.send(state, Method::GET, "/api/v1/orgs", None).await;
    assert_eq!(orgs.body.as_array().unwrap().len(), 1);
}

/// A small OpenID Connect provider: discovery, JWKS, an authorization endpoint that signs
/// everyone in as one subject, and a token endpoint that checks the client and PKCE.
mod provider {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Form, Query, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::{get, post};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;
    use sha2::Digest as _;

    pub(crate) const CLIENT_ID: &str = "hexabase";
    pub(crate) const CLIENT_SECRET: &str = "s3cret";

    /// What an authorization code was issued for: nonce, code challenge, redirect URI.
    type Grant = (String, String, String);

    #[derive(Clone)]
    pub(crate) struct Provider {
        pub(crate) issuer: String,
        key: Arc<EncodingKey>,
        forged: Arc<EncodingKey>,
        jwks: serde_json::Value,
        codes: Arc<Mutex<HashMap<String, Grant>>>,
        /// Sign ID tokens with a key that is not in the JWKS.
        pub(crate) forge: Arc<Mutex<bool>>,
        /// Claims of the next ID tokens replaced by these (removed where `null`).
        pub(crate) claims: Arc<Mutex<serde_json::Map<String, serde_json::Value>>>,
    }

    fn rsa() -> (EncodingKey, serde_json::Value) {
        let key = openssl::rsa::Rsa::generate(2048).unwrap();
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "test-key",
            "n": URL_SAFE_NO_PAD.encode(key.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_vec()),
        });
        (
            EncodingKey::from_rsa_der(&key.private_key_to_der().unwrap()),
            jwk,
        )
    }

    pub(crate) async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let (key, jwk) = rsa();
        let (forged, _) = rsa();
        let provider = Provider {
            issuer,
            key: Arc::new(key),
            forged: Arc::new(forged),
            jwks: json!({"keys": [jwk]}),
            codes: Arc::default(),
            forge: Arc::default(),
            claims: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        provider
    }

    async fn discovery(State(p): State<Provider>) -> Response {
        axum::Json(json!({
            "issuer": p.issuer,
            "authorization_endpoint": format!("{}/authorize", p.issuer),
            "token_endpoint": format!("{}/token", p.issuer),
            "jwks_uri": format!("{}/jwks", p.issuer),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }))
        .into_response()
    }

    async fn jwks(State(p): State<Provider>) -> Response {
        axum::Json(p.jwks).into_response()
    }

    async fn authorize(
        State(p): State<Provider>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(q["scope"].split(' ').any(|s| s == "openid"));
        let code = uuid::Uuid::now_v7().simple().to_string();
        p.codes.lock().unwrap().insert(
            code.clone(),
            (
                q["nonce"].clone(),
                q["code_challenge"].clone(),
                q["redirect_uri"].clone(),
            ),
        );
        Redirect::to(&format!(
            "{}?code={code}&state={}",
            q["redirect_uri"], q["state"]
        ))
        .into_response()
    }

    async fn token(
        State(p): State<Provider>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&basic)
        {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        let Some((nonce, challenge, redirect)) = p.codes.lock().unwrap().remove(&form["code"])
        else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant"})),
            )
                .into_response();
        };
        let verified = URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(form["code_verifier"].as_bytes()))
            == challenge;
        if form["grant_type"] != "authorization_code"
            || form["redirect_uri"] != redirect
            || !verified
        {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant"})),
            )
                .into_response();
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "iss": p.issuer, "sub": "248289761001", "aud": CLIENT_ID,
            "exp": now + 300, "iat": now, "nonce": nonce,
            "email": "Jane.Doe@Example.com", "email_verified": true, "name": "Jane Doe",
        });
        for (name, value) in p.claims.lock().unwrap().iter() {
            match value {
                serde_json::Value::Null => claims.as_object_mut().unwrap().remove(name),
                value => claims
                    .as_object_mut()
                    .unwrap()
                    .insert(name.clone(), value.clone()),
            };
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-key".to_owned());
        let key = if *p.forge.lock().unwrap() {
            &p.forged
        } else {
            &p.key
        };
        let id_token = jsonwebtoken::encode(&header, &claims, key).unwrap();
        axum::Json(json!({
            "access_token": "SlAV32hkKG", "token_type": "Bearer", "expires_in": 3600,
            "scope": "openid email profile", "id_token": id_token,
        }))
        .into_response()
    }
}

/// A stand-in for GitHub (which cannot be reached here), answering what GitHub's OAuth app
/// endpoints and REST API answer (shapes from docs.github.com): the authorization page signs
/// everyone in as `octocat` (id 1), or as `hidden` (id 2), whose only email is unverified,
/// once `unverified` is set; the token endpoint checks the client, the code and PKCE and
/// reports errors with status 200, as GitHub does.
mod github {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Form, Query, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::{get, post};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;
    use sha2::Digest as _;

    pub(crate) const CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
    pub(crate) const CLIENT_SECRET: &str = "1a2b3c4d5e6f";
    const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

    /// What a code was issued for: code challenge, redirect URI, user id.
    type Grant = (String, String, u64);

    #[derive(Clone, Default)]
    pub(crate) struct GitHub {
        pub(crate) url: String,
        codes: Arc<Mutex<HashMap<String, Grant>>>,
        /// Access token → user id.
        tokens: Arc<Mutex<HashMap<String, u64>>>,
        pub(crate) unverified: Arc<Mutex<bool>>,
    }

    pub(crate) async fn start() -> GitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let github = GitHub {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..GitHub::default()
        };
        let app = axum::Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/api/v3/user", get(user))
            .route("/api/v3/user/emails", get(emails))
            .with_state(github.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        github
    }

    async fn authorize(
        State(g): State<GitHub>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["scope"], "read:user user:email");
        assert_eq!(q["code_challenge_method"], "S256");
        let user = if *g.unverified.lock().unwrap() { 2 } else { 1 };
        let code = uuid::Uuid::now_v7().simple().to_string()[..20].to_owned();
        g.codes.lock().unwrap().insert(
            code.clone(),
            (q["code_challenge"].clone(), q["redirect_uri"].clone(), user),
        );
        Redirect::temporary(&format!(
            "{}?code={code}&state={}",
            q["redirect_uri"], q["state"]
        ))
        .into_response()
    }

    fn error(code: &str, description: &str) -> Response {
        axum::Json(json!({
            "error": code,
            "error_description": description,
            "error_uri": format!("https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#{}", code.replace('_', "-")),
        }))
        .into_response()
    }

    async fn access_token(
        State(g): State<GitHub>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        assert_eq!(headers[header::ACCEPT], "application/json");
        if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        {
            return error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            );
        }
        let grant = form
            .get("code")
            .and_then(|code| g.codes.lock().unwrap().remove(code));
        let Some((challenge, redirect, user)) = grant else {
            return error(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            );
        };
        let verified = form.get("code_verifier").is_some_and(|v| {
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes())) == challenge
        });
        if form.get("redirect_uri") != Some(&redirect) || !verified {
            return error(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            );
        }
        let token = format!("{TOKEN}{user}");
        g.tokens.lock().unwrap().insert(token.clone(), user);
        axum::Json(json!({
            "access_token": token, "scope": "read:user,user:email", "token_type": "bearer",
        }))
        .into_response()
    }

    /// The user a REST request is authenticated as, or GitHub's refusal.
    fn caller(g: &GitHub, headers: &HeaderMap) -> Result<u64, Box<Response>> {
        if headers.get(header::USER_AGENT).is_none() {
            return Err(Box::new((
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            )
                .into_response()));
        }
        assert_eq!(headers[header::ACCEPT], "application/vnd.github+json");
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        token
            .and_then(|t| g.tokens.lock().unwrap().get(t).copied())
            .ok_or_else(|| {
                Box::new(
                    (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({
                        "message": "Requires authentication",
                        "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
                        "status": "401",
                    })),
                )
                    .into_response(),
                )
            })
    }

    async fn user(State(g): State<GitHub>, headers: HeaderMap) -> Response {
        let id = match caller(&g, &headers) {
            Ok(id) => id,
            Err(refused) => return *refused,
        };
        let (login, name) = if id == 1 {
            ("octocat", json!("monalisa octocat"))
        } else {
            ("hidden", json!(null))
        };
        axum::Json(json!({
            "login": login, "id": id, "node_id": "MDQ6VXNlcjE=",
            "avatar_url": "https://github.com/images/error/octocat_happy.gif",
            "type": "User", "site_admin": false, "name": name, "company": "GitHub",
            "email": null, "two_factor_authentication": true,
            "created_at": "2008-01-14T04:33:35Z", "updated_at": "2008-01-14T04:33:35Z",
        }))
        .into_response()
    }

    async fn emails(State(g): State<GitHub>, headers: HeaderMap) -> Response {
        let id = match caller(&g, &headers) {
            Ok(id) => id,
            Err(refused) => return *refused,
        };
        let list = if id == 1 {
            json!([
                {"email": "old@example.com", "verified": true, "primary": false, "visibility": null},
                {"email": "octocat@github.com", "verified": true, "primary": true, "visibility": "public"},
            ])
        } else {
            json!([
                {"email": "hidden@example.com", "verified": false, "primary": true, "visibility": "private"},
            ])
        };
        axum::Json(list).into_response()
    }
}

#[tokio::test]
async fn sign_in_with_github_reads_the_verified_primary_email() {
    let github = github::start().await;
    let url = github.url.clone();
    let server = server_with("github", move |s| {
        s.oidc_providers = vec![server::settings::OidcProvider {
            name: "github".into(),
            kind: server::settings::ProviderKind::Github,
            issuer: url.clone(),
            api_url: Some(format!("{url}/api/v3")),
            client_id: github::CLIENT_ID.into(),
            client_secret_file: None,
            client_secret: Some(server::settings::Secret::new(github::CLIENT_SECRET)),
        }];
    })
    .await;
    let state = &server.state;
    sign_up(state, "root@example.com", "Root", Some(&server.setup_token)).await;
    let start = "/api/v1/auth/oidc/github/start";
    let sign_in = || browser_sign_in_from(state, start);

    let answer = sign_in().await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{:?}", answer.body);
    let octocat = Client::default().signed_in(&answer);
    let me = octocat.send(state, Method::GET, "/api/v1/me", None).await;
    assert_eq!(
        (me.body["email"].as_str(), me.body["name"].as_str()),
        (Some("octocat@github.com"), Some("monalisa octocat"))
    );
    // Keyed by GitHub's numeric id, under the configured address.
    let by_id = state
        .store
        .user_by_external_identity(&github.url, "1")
        .await
        .unwrap();
    assert_eq!(by_id.email, "octocat@github.com");
    let users = state.store.user_count().await.unwrap();
    assert_eq!(sign_in().await.status, StatusCode::SEE_OTHER);
    assert_eq!(state.store.user_count().await.unwrap(), users);

    // A code GitHub does not know (GitHub says so with status 200) signs no one in.
    let (cookie, callback) = authorize_from(state, start).await;
    let tampered = callback.replacen("code=", "code=x", 1);
    let answer = Client {
        cookie: Some(cookie),
        ..Client::default()
    }
    .send(state, Method::GET, &tampered, None)
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("bad_verification_code")),
        "{:?}",
        answer.body
    );

    // Without a verified primary email, no account is made.
    *github.unverified.lock().unwrap() = true;
    let answer = sign_in().await;
    assert_eq!(
        (answer.status, answer.field()),
        (StatusCode::FORBIDDEN, "email"),
        "{:?}",
        answer.body
    );
    assert_eq!(state.store.user_count().await.unwrap(), users);
}

/// Starts a sign-in and passes the provider's authorization page like a browser would:
/// answers the state cookie (`hb_oidc=…`) and the callback path the provider sent back.
async fn authorize(state: &server::http::AppState) -> (String, String) {
    authorize_from(state, "/api/v1/auth/oidc/idp/start").await
}

/// [`authorize`], started at `start` (with a `return_to`, say).
async fn authorize_from(state: &server::http::AppState, start: &str) -> (String, String) {
    let start = Client::default()
        .send(state, Method::GET, start, None)
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{:?}", start.body);
    let cookie = start.set_cookie("hb_oidc").unwrap();
    assert!(cookie.contains("Path=/api/v1/auth/oidc"), "{cookie}");
    let location = start.headers[header::LOCATION].to_str().unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorized = browser.get(location).send().await.unwrap();
    let callback = authorized.headers()[header::LOCATION].to_str().unwrap();
    let callback = callback
        .strip_prefix(&state.settings.public_url())
        .unwrap()
        .to_owned();
    (cookie.split(';').next().unwrap().to_owned(), callback)
}

/// One whole sign-in through the provider: answers the callback's answer.
async fn browser_sign_in(state: &server::http::AppState) -> support::Answer {
    browser_sign_in_from(state, "/api/v1/auth/oidc/idp/start").await
}

/// A server that signs in through `provider` (named `idp`).
async fn with_provider(name: &str, provider: &provider::Provider) -> TestServer {
    let issuer = provider.issuer.clone();
    server_with(name, move |s| {
        s.oidc_providers = vec![server::settings::OidcProvider {
            name: "idp".into(),
            kind: server::settings::ProviderKind::Oidc,
            api_url: None,
            issuer,
            client_id: provider::CLIENT_ID.into(),
            client_secret_file: None,
            client_secret: Some(server::settings::Secret::new(provider::CLIENT_SECRET)),
        }];
    })
    .await
}

/// An ID token is refused when any claim the provider vouches with is not what this
/// sign-in expects: another issuer, another audience, another or no nonce, an expiry in the
/// past; and an email the provider says is unverified makes no account. Each refusal makes
/// no user, and the same provider signs the untampered token in afterwards.
#[tokio::test]
async fn an_id_token_with_a_wrong_claim_is_refused() {
    let provider = provider::start().await;
    let server = with_provider("oidc-claims", &provider).await;
    let state = &server.state;
    sign_up(state, "root@example.com", "Root", Some(&server.setup_token)).await;
    let users = state.store.user_count().await.unwrap();
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let cases = [
        (
            "iss",
            json!("https://evil.example"),
            StatusCode::UNAUTHORIZED,
        ),
        ("iss", Value::Null, StatusCode::UNAUTHORIZED),
        ("aud", json!("another-client"), StatusCode::UNAUTHORIZED),
        ("aud", Value::Null, StatusCode::UNAUTHORIZED),
        (
            "nonce",
            json!("someone-elses-nonce"),
            StatusCode::UNAUTHORIZED,
        ),
        ("nonce", Value::Null, StatusCode::UNAUTHORIZED),
        ("exp", json!(past), StatusCode::UNAUTHORIZED),
        ("exp", Value::Null, StatusCode::UNAUTHORIZED),
        ("email_verified", json!(false), StatusCode::FORBIDDEN),
    ];
    for (claim, value, status) in cases {
        *provider.claims.lock().unwrap() =
            serde_json::Map::from_iter([(claim.to_owned(), value.clone())]);
        let answer = browser_sign_in(state).await;
        assert_eq!(answer.status, status, "{claim}: {value}: {:?}", answer.body);
        assert!(
            answer.set_cookie("hb_session").is_none(),
            "{claim}: {value} started a session"
        );
        assert_eq!(
            state.store.user_count().await.unwrap(),
            users,
            "{claim}: {value} made an account"
        );
    }
    provider.claims.lock().unwrap().clear();
    let answer = browser_sign_in(state).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{:?}", answer.body);
    // The claims are not only checked when the account is made.
    let users = state.store.user_count().await.unwrap();
    for (claim, value) in [("aud", json!("another-client")), ("nonce", Value::Null)] {
        *provider.claims.lock().unwrap() =
            serde_json::Map::from_iter([(claim.to_owned(), value.clone())]);
        let answer = browser_sign_in(state).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{claim}: {value}: {:?}",
            answer.body
        );
        assert!(answer.set_cookie("hb_session").is_none());
    }
    assert_eq!(state.store.user_count().await.unwrap(), users);
}

/// [`browser_sign_in`], started at `start`.
async fn browser_sign_in_from(state: &server::http::AppState, start: &str) -> support::Answer {
    let (cookie, callback) = authorize_from(state, start).await;
    Client {
        cookie: Some(cookie),
        ..Client::default()
    }
    .send(state, Method::GET, &callback, None)
    .await
}

#[tokio::test]
async fn sign_in_through_an_external_provider_creates_the_account_once() {
    let provider = provider::start().await;
    let server = with_provider("oidc", &provider).await;
    let state = &server.state;

    // Before the administrator exists, no account is made this way.
    let answer = browser_sign_in(state).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
    sign_up(state, "root@example.com", "Root", Some(&server.setup_token)).await;

    let answer = browser_sign_in(state).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{:?}", answer.body);
    assert_eq!(answer.headers[header::LOCATION], "/");
    assert!(answer.set_cookie("hb_oidc").unwrap().contains("Max-Age=0"));
    let jane = Client::default().signed_in(&answer);
    let me = jane.send(state, Method::GET, "/api/v1/me", None).await;
    assert_eq!(
        (me.body["email"].as_str(), me.body["name"].as_str()),
        (Some("jane.doe@example.com"), Some("Jane Doe"))
    );
    let orgs = jane.send(state, Method::GET, "/api/v1/orgs", None).await;
    assert_eq!(orgs.body[0]["slug"], "jane-doe");
    assert!(head_has(&server, "intent/jane-doe/organization.yaml"));
    // She has no password to sign in with.
    let answer = Client::default()
        .send(
            state,
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "jane.doe@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // The same subject signs in again as the same user.
    let users = state.store.user_count().await.unwrap();
    let again = browser_sign_in(state).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{:?}", again.body);
    assert_eq!(state.store.user_count().await.unwrap(), users);

    // A token signed with a key the provider does not publish is refused.
    *provider.forge.lock().unwrap() = true;
    let forged = browser_sign_in(state).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{:?}", forged.body);
    *provider.forge.lock().unwrap() = false;

    // The callback works once, and only with the browser's own state cookie.
    let (cookie, callback) = authorize(state).await;
    let stranger = Client {
        cookie: Some("hb_oidc=someone-elses-state".to_owned()),
        ..Client::default()
    };
    let answer = stranger.send(state, Method::GET, &callback, None).await;
    assert_eq!(
        (answer.status, answer.body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("state"))
    );
    let owner = Client {
        cookie: Some(cookie),
        ..Client::default()
    };
    let first = owner.send(state, Method::GET, &callback, None).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{:?}", first.body);
    let replay = owner.send(state, Method::GET, &callback, None).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);

    let unknown = Client::default()
        .send(state, Method::GET, "/api/v1/auth/oidc/nope/start", None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Started from the sign-in page, the browser comes back where it was going; a return_to
    // naming another host is refused before the provider is asked.
    let back = "/oauth2/authorize?client_id=ws-acme-dev&state=x";
    let (cookie, callback) = authorize_from(
        state,
        &format!(
            "/api/v1/auth/oidc/idp/start?return_to={}",
            back.replace('?', "%3F")
                .replace('&', "%26")
                .replace('=', "%3D")
        ),
    )
    .await;
    let returned = Client {
        cookie: Some(cookie),
        ..Client::default()
    }
    .send(state, Method::GET, &callback, None)
    .await;
    assert_eq!(
        returned.status,
        StatusCode::SEE_OTHER,
        "{:?}",
        returned.body
    );
    assert_eq!(returned.headers[header::LOCATION], back);
    assert!(returned.set_cookie("hb_session").is_some());
    for evil in [
        "//evil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%5Cevil.example",
    ] {
        let refused = Client::default()
            .send(
                state,
                Method::GET,
                &format!("/api/v1/auth/oidc/idp/start?return_to={evil}"),
                None,
            )
            .await;
        assert_eq!(
            (refused.status, refused.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "return_to"),
            "{evil}"
        );
    }
}
