//! The OpenID Connect issuer through the router: discovery under the issuer URL's path, the
//! code flow with PKCE, refresh rotation and its revocation, the device flow, userinfo,
//! revocation, kubeconfigs, what the compiler renders into the vCluster agreeing with what
//! the tokens say, forged tokens refused, key rotation with a clock the test moves, and
//! group flattening over random hierarchies.

mod oidc_support;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use oidc_support::{claims, forgeries, form, pkce, query_param};
use serde_json::{Value, json};
use server::service::issuer::{Issuer, ManualClock, NO_WORKSPACE_ACCESS};
use server::settings::IssuerSettings;
use support::{Answer, Client, TestServer, server_with, sign_up};

const ISSUER: &str = "https://hexabase.test/oidc";
const DEV: &str = "ws-acme-dev";
const REDIRECT: &str = "http://127.0.0.1:18000/callback";

struct World {
    srv: TestServer,
    clock: Arc<ManualClock>,
    admin: Client,
    ana: Client,
    ana_id: String,
    outsider: Client,
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// acme/dev and acme/prod; the admin made both (so is in `WSAdmins`); ana is in `oncall`, a
/// group under `WSUsers`, in dev only; the outsider is in no workspace.
async fn world() -> World {
    world_with(|_| {}).await
}

/// [`world`] with the settings changed by `change`.
async fn world_with(change: impl FnOnce(&mut server::settings::Settings)) -> World {
    let mut srv = server_with("oidc", |s| {
        s.public_url = Some(ISSUER.to_owned());
        s.limits.actions_per_org_per_second = 0;
        change(s);
    })
    .await;
    let clock = Arc::new(ManualClock::new(wall_clock()));
    srv.state.issuer = Arc::new(Issuer::with_clock(
        srv.state.store.clone(),
        srv.state.settings.issuer.clone(),
        clock.clone(),
    ));
    let state = &srv.state;
    let (admin, _) = sign_up(state, "admin@acme.test", "Admin", Some(&srv.setup_token)).await;
    let (ana, signed) = sign_up(state, "ana@acme.test", "Ana", None).await;
    let ana_id = signed.body["user"]["id"]
        .as_str()
        .expect("the sign-up answers the user")
        .to_owned();
    let (outsider, _) = sign_up(state, "out@other.test", "Out", None).await;
    let ws = "/api/v1/orgs/acme/workspaces";
    #[rustfmt::skip]
    let steps = [
        ("/api/v1/orgs".to_owned(), json!({"slug": "acme", "name": "Acme"})),
        (ws.to_owned(), json!({"name": "dev", "plan": "shared-small"})),
        (ws.to_owned(), json!({"name": "prod", "plan": "shared-small"})),
        (format!("{ws}/dev/groups"), json!({"name": "oncall", "parent": "WSUsers"})),
        (format!("{ws}/dev/groups/oncall/members"), json!({"user": "ana@acme.test"})),
    ];
    for (path, body) in steps {
        admin
            .send(state, Method::POST, &path, Some(body))
            .await
            .expect(StatusCode::CREATED);
    }
    World {
        srv,
        clock,
        admin,
        ana,
        ana_id,
        outsider,
    }
}

/// Sends `method path` with a form body as `who`.
async fn send_form(
    w: &World,
    who: Option<&Client>,
    method: Method,
    path: &str,
    pairs: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = who.and_then(|c| c.cookie.as_ref()) {
        request = request.header(header::COOKIE, cookie);
    }
    let request = request.body(Body::from(form(pairs))).expect("a request");
    support::send(&w.srv.state, request).await
}

async fn post_token(w: &World, pairs: &[(&str, &str)]) -> Answer {
    send_form(w, None, Method::POST, "/oidc/oauth2/token", pairs).await
}

/// GET /authorize as `who` with the standard parameters changed by `extra`.
async fn authorize(
    w: &World,
    who: Option<&Client>,
    challenge: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", DEV),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email groups"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(key, _)| key != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    let client = who.cloned().unwrap_or_default();
    client
        .send(
            &w.srv.state,
            Method::GET,
            &format!("/oidc/oauth2/authorize?{}", form(&params)),
            None,
        )
        .await
}

fn location(answer: &Answer) -> String {
    answer
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a redirect, got {} {}", answer.status, answer.body))
        .to_owned()
}

/// The code flow for `who` at `client_id`: the token answer.
async fn code_flow(w: &World, who: &Client) -> Answer {
    let (verifier, challenge) = pkce();
    let answer = authorize(w, Some(who), &challenge, &[]).await;
    assert!(
        answer.status.is_redirection(),
        "{} {}",
        answer.status,
        answer.body
    );
    redeem(w, &answer, &verifier).await
}

/// Exchanges the code of an authorization's redirect to the client: the token answer.
async fn redeem(w: &World, authorized: &Answer, verifier: &str) -> Answer {
    let to = location(authorized);
    assert!(to.starts_with(REDIRECT), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("st4te"));
    assert_eq!(query_param(&to, "iss").as_deref(), Some(ISSUER));
    let code = query_param(&to, "code").expect("a code");
    post_token(
        w,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", DEV),
            ("code_verifier", verifier),
        ],
    )
    .await
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_code_flow_issues_tokens_with_the_flattened_groups_of_the_workspace() {
    let w = world().await;
    let state = &w.srv.state;
    let anon = Client::default();

    let discovery = anon
        .send(
            state,
            Method::GET,
            "/oidc/.well-known/openid-configuration",
            None,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(discovery["issuer"], ISSUER);
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "revocation_endpoint",
        "device_authorization_endpoint",
    ] {
        assert!(
            discovery[endpoint]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{ISSUER}/"))),
            "{endpoint}: {}",
            discovery[endpoint]
        );
    }
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    // Only under the issuer's path.
    anon.send(
        state,
        Method::GET,
        "/.well-known/openid-configuration",
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let jwks = anon
        .send(state, Method::GET, "/oidc/oauth2/keys", None)
        .await
        .expect(StatusCode::OK)
        .body;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["kty"], "RSA");
    assert!(keys[0].get("d").is_none(), "no private part: {jwks}");

    let tokens = code_flow(&w, &w.ana).await.expect(StatusCode::OK).body;
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let verified = state
        .issuer
        .verify(id_token, ISSUER, Some(DEV))
        .await
        .expect("the issuer's own validator accepts it");
    assert_eq!(verified["iss"], ISSUER);
    assert_eq!(verified["aud"], DEV);
    assert_eq!(verified["sub"], w.ana_id.as_str());
    assert_eq!(verified["email"], "ana@acme.test");
    assert_eq!(verified["nonce"], "n0nce");
    assert_eq!(
        strings(&verified["groups"]),
        ["WSUsers", "WorkspaceMembers", "oncall"]
            .map(str::to_owned)
            .into(),
        "flattened through the hierarchy"
    );
    let lifetime = verified["exp"].as_i64().unwrap_or(0) - verified["iat"].as_i64().unwrap_or(0);
    assert!((1..=900).contains(&lifetime), "{lifetime}");
    assert!(
        state
            .issuer
            .verify(id_token, ISSUER, Some("ws-acme-prod"))
            .await
            .is_err(),
        "a token for dev is refused by prod"
    );

    // Userinfo takes the access token, not the ID token.
    let access = tokens["access_token"].as_str().expect("an access token");
    let info = Client {
        bearer: Some(access.to_owned()),
        ..Client::default()
    }
    .send(state, Method::GET, "/oidc/oauth2/userinfo", None)
    .await
    .expect(StatusCode::OK)
    .body;
    assert_eq!(info["sub"], w.ana_id.as_str());
    assert_eq!(strings(&info["groups"]).len(), 3, "{info}");
    Client {
        bearer: Some(id_token.to_owned()),
        ..Client::default()
    }
    .send(state, Method::GET, "/oidc/oauth2/userinfo", None)
    .await
    .expect(StatusCode::UNAUTHORIZED);

    // The admin is in WSAdmins, and so in WorkspaceMembers; never in a system: group.
    let admin = code_flow(&w, &w.admin).await.expect(StatusCode::OK).body;
    let admin_claims = claims(admin["id_token"].as_str().expect("an ID token"));
    let groups = strings(&admin_claims["groups"]);
    assert!(
        groups.contains("WSAdmins") && groups.contains("WorkspaceMembers"),
        "{groups:?}"
    );
    assert!(groups.iter().all(|g| !g.starts_with("system:")));
}

#[tokio::test]
async fn refresh_rotates_and_stops_when_the_user_leaves_the_workspace() {
    let w = world().await;
    let state = &w.srv.state;
    let first = code_flow(&w, &w.ana).await.expect(StatusCode::OK).body;
    let r1 = first["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let refresh = |token: String| {
        let w = &w;
        async move {
            post_token(
                w,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", DEV),
                ],
            )
            .await
        }
    };
    let second = refresh(r1.clone()).await.expect(StatusCode::OK).body;
    let r2 = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(r1, r2);
    state
        .issuer
        .verify(
            second["id_token"].as_str().expect("an ID token"),
            ISSUER,
            Some(DEV),
        )
        .await
        .expect("a fresh ID token");
    // Reusing r1 revokes the family: r2 goes with it.
    let reused = refresh(r1).await.expect(StatusCode::BAD_REQUEST);
    assert_eq!(reused.body["error"], "invalid_grant");
    assert_eq!(
        refresh(r2).await.expect(StatusCode::BAD_REQUEST).body["error"],
        "invalid_grant"
    );

    // Another client's refresh token is refused.
    let third = code_flow(&w, &w.ana).await.expect(StatusCode::OK).body;
    let r3 = third["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let wrong = post_token(
        &w,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r3),
            ("client_id", "ws-acme-prod"),
        ],
    )
    .await;
    assert_eq!(
        wrong.expect(StatusCode::BAD_REQUEST).body["error"],
        "invalid_grant"
    );

    // Revocation (RFC 7009) ends the family.
    let fourth = code_flow(&w, &w.ana).await.expect(StatusCode::OK).body;
    let r4 = fourth["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    send_form(
        &w,
        None,
        Method::POST,
        "/oidc/oauth2/revoke",
        &[("token", &r4), ("client_id", DEV)],
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        refresh(r4).await.expect(StatusCode::BAD_REQUEST).body["error"],
        "invalid_grant"
    );

    // Ana leaves: her refresh token no longer works, and no code is issued.
    let fifth = code_flow(&w, &w.ana).await.expect(StatusCode::OK).body;
    let r5 = fifth["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    w.admin
        .send(
            state,
            Method::DELETE,
            &format!(
                "/api/v1/orgs/acme/workspaces/dev/groups/oncall/members/{}",
                w.ana_id
            ),
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let left = refresh(r5).await.expect(StatusCode::BAD_REQUEST);
    assert_eq!(left.body["error"], "invalid_grant");
    assert_eq!(
        left.body["error_description"], NO_WORKSPACE_ACCESS,
        "{}",
        left.body
    );
    let (_, challenge) = pkce();
    let denied = authorize(&w, Some(&w.ana), &challenge, &[]).await;
    assert_eq!(
        query_param(&location(&denied), "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn the_authorization_endpoint_refuses_misuse() {
    let w = world().await;
    let (verifier, challenge) = pkce();

    // Before the redirect URI is known good: an error answer, never a redirect.
    for (extra, error) in [
        (
            vec![("redirect_uri", "https://evil.example/callback")],
            "invalid_request",
        ),
        (
            vec![("redirect_uri", "http://evil.example:8000/")],
            "invalid_request",
        ),
        (vec![("client_id", "nobody")], "invalid_client"),
        (vec![("client_id", "ws-Acme-dev")], "invalid_client"),
        (vec![("client_id", "hb")], "unauthorized_client"),
    ] {
        let answer = authorize(&w, Some(&w.ana), &challenge, &extra).await;
        assert!(answer.headers.get(header::LOCATION).is_none(), "{extra:?}");
        assert_eq!(answer.body["error"], error, "{extra:?}: {}", answer.body);
    }
    // After: back to the client with the error.
    for (extra, error) in [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "email")], "invalid_scope"),
    ] {
        let answer = authorize(&w, Some(&w.ana), &challenge, &extra).await;
        let to = location(&answer);
        assert_eq!(
            query_param(&to, "error").as_deref(),
            Some(error),
            "{extra:?}: {to}"
        );
        assert_eq!(query_param(&to, "state").as_deref(), Some("st4te"));
    }
    // Signed out: sign in first (see a_signed_out_browser_signs_in_and_comes_back). Not in
    // the workspace: access denied.
    let signed_out = authorize(&w, None, &challenge, &[]).await;
    assert_eq!(signed_out.status, StatusCode::FOUND);
    assert!(location(&signed_out).starts_with("/oidc/signin?return_to="));
    let outsider = authorize(&w, Some(&w.outsider), &challenge, &[]).await;
    assert_eq!(
        query_param(&location(&outsider), "error").as_deref(),
        Some("access_denied")
    );

    // A code works once, with its verifier, redirect URI and client only.
    let code_of = |answer: &Answer| query_param(&location(answer), "code").expect("a code");
    let exchange =
        |code: String, verifier: String, redirect: &'static str, client: &'static str| {
            let w = &w;
            async move {
                post_token(
                    w,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", redirect),
                        ("client_id", client),
                        ("code_verifier", &verifier),
                    ],
                )
                .await
            }
        };
    let code = code_of(&authorize(&w, Some(&w.ana), &challenge, &[]).await);
    let (other_verifier, _) = pkce();
    assert_eq!(
        exchange(code.clone(), other_verifier, REDIRECT, DEV)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .body["error"],
        "invalid_grant"
    );
    assert_eq!(
        exchange(code, verifier.clone(), REDIRECT, DEV)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .body["error"],
        "invalid_grant",
        "used up by the failed try"
    );
    let code = code_of(&authorize(&w, Some(&w.ana), &challenge, &[]).await);
    assert_eq!(
        exchange(code, verifier.clone(), "http://127.0.0.1:9/other", DEV)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .body["error"],
        "invalid_grant"
    );
    let code = code_of(&authorize(&w, Some(&w.ana), &challenge, &[]).await);
    assert_eq!(
        exchange(code, verifier.clone(), REDIRECT, "ws-acme-prod")
            .await
            .expect(StatusCode::BAD_REQUEST)
            .body["error"],
        "invalid_grant"
    );
    let code = code_of(&authorize(&w, Some(&w.ana), &challenge, &[]).await);
    w.clock.advance(61);
    assert_eq!(
        exchange(code, verifier.clone(), REDIRECT, DEV)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .body["error"],
        "invalid_grant",
        "expired"
    );
    let code = code_of(&authorize(&w, Some(&w.ana), &challenge, &[]).await);
    exchange(code.clone(), verifier.clone(), REDIRECT, DEV)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        exchange(code, verifier, REDIRECT, DEV)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .body["error"],
        "invalid_grant",
        "single use"
    );

    // Bad bodies are OAuth errors, never panics.
    let bad = post_token(&w, &[("grant_type", "password"), ("client_id", DEV)]).await;
    assert_eq!(
        bad.expect(StatusCode::BAD_REQUEST).body["error"],
        "unsupported_grant_type"
    );
    let missing = post_token(
        &w,
        &[("grant_type", "authorization_code"), ("client_id", DEV)],
    )
    .await;
    assert_eq!(missing.body["error"], "invalid_request");
    assert!(
        missing.body["error_description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("code:"),
        "{}",
        missing.body
    );
    let nobody = post_token(&w, &[("grant_type", "authorization_code")]).await;
    assert_eq!(
        nobody.expect(StatusCode::UNAUTHORIZED).body["error"],
        "invalid_client"
    );
}

/// The `return_to` of a redirect to the sign-in page.
fn return_to_of(location: &str) -> String {
    assert!(location.starts_with("/oidc/signin?"), "{location}");
    query_param(&format!("http://server{location}"), "return_to").expect("a return_to")
}

/// The value of the hidden form field `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let start = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&start)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + start.len();
    html[at..].split('"').next().expect("a value").to_owned()
}

/// The `name=value` pair a `Set-Cookie` of `answer` sets.
fn cookie_pair(answer: &Answer, name: &str) -> String {
    answer
        .set_cookie(name)
        .unwrap_or_else(|| panic!("no {name} cookie: {:?}", answer.headers))
        .split(';')
        .next()
        .expect("name=value")
        .to_owned()
}

#[tokio::test]
async fn a_signed_out_browser_signs_in_and_comes_back() {
    let w = world_with(|s| s.limits.login_free_failures_per_account = 3).await;
    let state = &w.srv.state;
    let (verifier, challenge) = pkce();
    let signed_out = authorize(&w, None, &challenge, &[]).await;
    assert_eq!(signed_out.status, StatusCode::FOUND);
    let signin = location(&signed_out);
    let back = return_to_of(&signin);
    assert!(back.starts_with("/oidc/oauth2/authorize?"), "{back}");
    assert_eq!(
        query_param(&format!("http://server{back}"), "code_challenge").as_deref(),
        Some(challenge.as_str())
    );
    // prompt=none never shows a page: it answers login_required.
    let silent = authorize(&w, None, &challenge, &[("prompt", "none")]).await;
    assert_eq!(
        query_param(&location(&silent), "error").as_deref(),
        Some("login_required")
    );

    // The page: no script, no frames, no cache; a CSRF token in a cookie and in the form.
    let form_page = Client::default()
        .send(state, Method::GET, &signin, None)
        .await
        .expect(StatusCode::OK);
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'none'; form-action 'self' http://127.0.0.1:18000; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        assert_eq!(form_page.headers[name], value, "{name}");
    }
    let html = form_page.body.as_str().expect("HTML").to_owned();
    let csrf = hidden(&html, "csrf_token");
    assert_eq!(hidden(&html, "return_to"), back.replace('&', "&amp;"));
    assert!(
        form_page
            .set_cookie("hb_signin")
            .expect("a CSRF cookie")
            .contains("Path=/oidc/signin; Max-Age=3600; HttpOnly; SameSite=Lax"),
        "{:?}",
        form_page.headers
    );
    let browser = Client {
        cookie: Some(cookie_pair(&form_page, "hb_signin")),
        ..Client::default()
    };
    let submit = |who: Option<&Client>, pairs: Vec<(&'static str, String)>| {
        let (w, who) = (&w, who.cloned());
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send_form(w, who.as_ref(), Method::POST, "/oidc/signin", &pairs).await
        }
    };
    let fields = |password: &str, csrf: &str| {
        vec![
            ("email", "ana@acme.test".to_owned()),
            ("password", password.to_owned()),
            ("csrf_token", csrf.to_owned()),
            ("return_to", back.clone()),
        ]
    };
    let text = |answer: &Answer| answer.body.as_str().unwrap_or_default().to_owned();

    // Login CSRF: the token must be the cookie's.
    let forged = submit(Some(&browser), fields("correct horse battery", "forged")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(text(&forged).contains("csrf_token: "), "{}", text(&forged));
    let cookieless = submit(None, fields("correct horse battery", &csrf)).await;
    assert_eq!(cookieless.status, StatusCode::FORBIDDEN);
    // Fields are named with the reason; the email stays filled in.
    let missing = submit(Some(&browser), fields("", &csrf)).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&missing).contains("password: missing"),
        "{}",
        text(&missing)
    );
    let wrong = submit(Some(&browser), fields("wrong horse battery", &csrf)).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        text(&wrong).contains("the email or password is wrong"),
        "{}",
        text(&wrong)
    );
    assert!(text(&wrong).contains("value=\"ana@acme.test\""));
    // Another host is never where the sign-in goes.
    for evil in ["//evil.example", "https://evil.example", "/\\evil.example"] {
        let mut refused = fields("correct horse battery", &csrf);
        refused[3].1 = evil.to_owned();
        let answer = submit(Some(&browser), refused).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{evil}");
        assert!(text(&answer).contains("return_to: "), "{}", text(&answer));
        assert!(answer.set_cookie("hb_session").is_none(), "{evil}");
        let page = Client::default()
            .send(
                state,
                Method::GET,
                &format!("/oidc/signin?{}", form(&[("return_to", evil)])),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{evil}");
        let start = Client::default()
            .send(
                state,
                Method::GET,
                &format!(
                    "/api/v1/auth/oidc/any/start?{}",
                    form(&[("return_to", evil)])
                ),
                None,
            )
            .await;
        assert_eq!(
            (start.status, start.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "return_to"),
            "{evil}"
        );
    }

    // Signed in: a session, the form's cookie cleared, and back to the authorization request,
    // which now redirects to the client with a code.
    let signed_in = submit(Some(&browser), fields("correct horse battery", &csrf)).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        text(&signed_in)
    );
    assert_eq!(location(&signed_in), back);
    assert!(
        signed_in
            .set_cookie("hb_signin")
            .expect("cleared")
            .contains("Max-Age=0")
    );
    let session = Client {
        cookie: Some(cookie_pair(&signed_in, "hb_session")),
        ..Client::default()
    };
    let authorized = session.send(state, Method::GET, &back, None).await;
    let tokens = redeem(&w, &authorized, &verifier)
        .await
        .expect(StatusCode::OK)
        .body;
    let id = claims(tokens["id_token"].as_str().expect("an ID token"));
    assert_eq!(id["sub"], w.ana_id.as_str());
    assert!(strings(&id["groups"]).contains("oncall"), "{id}");
    // A signed-in browser opening the page goes straight back.
    let again = session.send(state, Method::GET, &signin, None).await;
    assert_eq!(
        (again.status, location(&again)),
        (StatusCode::SEE_OTHER, back.clone())
    );

    // The page shares the API's sign-in limits: the account is locked out for a while.
    let mut limited = None;
    for _ in 0..5 {
        let answer = submit(Some(&browser), fields("wrong horse battery", &csrf)).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("the sign-in page is rate-limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert!(text(&limited).contains("retry after"), "{}", text(&limited));
}

#[tokio::test]
async fn the_device_flow_signs_in_the_cli_and_kubectl() {
    let w = world().await;
    let state = &w.srv.state;
    for client_id in ["hb", DEV] {
        let started = send_form(
            &w,
            None,
            Method::POST,
            "/oidc/oauth2/device_authorization",
            &[("client_id", client_id), ("scope", "openid")],
        )
        .await
        .expect(StatusCode::OK)
        .body;
        assert_eq!(started["verification_uri"], format!("{ISSUER}/device"));
        let device_code = started["device_code"]
            .as_str()
            .expect("a device code")
            .to_owned();
        let user_code = started["user_code"]
            .as_str()
            .expect("a user code")
            .to_owned();
        let poll = || {
            let (w, device_code) = (&w, device_code.clone());
            async move {
                post_token(
                    w,
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                        ("device_code", &device_code),
                        ("client_id", client_id),
                    ],
                )
                .await
            }
        };
        w.clock.advance(5);
        assert_eq!(poll().await.body["error"], "authorization_pending");
        assert_eq!(
            poll().await.body["error"],
            "slow_down",
            "polled again at once"
        );

        // The page needs the session and its CSRF token.
        let page = w
            .ana
            .send(
                state,
                Method::GET,
                &format!("/oidc/device?user_code={user_code}"),
                None,
            )
            .await
            .expect(StatusCode::OK);
        assert!(
            page.body
                .as_str()
                .unwrap_or_default()
                .contains("ana@acme.test")
        );
        send_form(
            &w,
            Some(&w.ana),
            Method::POST,
            "/oidc/device",
            &[
                ("user_code", &user_code),
                ("decision", "approve"),
                ("csrf_token", "wrong"),
            ],
        )
        .await
        .expect(StatusCode::FORBIDDEN);
        // Signed out: to the sign-in page, and back to this page with the code filled in.
        let signed_out = send_form(
            &w,
            None,
            Method::POST,
            "/oidc/device",
            &[("user_code", &user_code), ("decision", "approve")],
        )
        .await;
        assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
        let back = return_to_of(&location(&signed_out));
        assert_eq!(back, format!("/oidc/device?user_code={user_code}"));
        let signed_out = Client::default()
            .send(state, Method::GET, &back, None)
            .await;
        assert_eq!(signed_out.status, StatusCode::FOUND);
        assert_eq!(return_to_of(&location(&signed_out)), back);
        let csrf = w.ana.csrf.clone().expect("a CSRF token");
        send_form(
            &w,
            Some(&w.ana),
            Method::POST,
            "/oidc/device",
            &[
                ("user_code", &user_code.to_lowercase()),
                ("decision", "approve"),
                ("csrf_token", &csrf),
            ],
        )
        .await
        .expect(StatusCode::OK);
        w.clock.advance(5);
        let tokens = poll().await.expect(StatusCode::OK).body;
        let id = state
            .issuer
            .verify(
                tokens["id_token"].as_str().expect("an ID token"),
                ISSUER,
                Some(client_id),
            )
            .await
            .expect("valid");
        assert_eq!(id["sub"], w.ana_id.as_str());
        if client_id == "hb" {
            // The access token is an API token of ana's.
            let me = Client {
                bearer: tokens["access_token"].as_str().map(str::to_owned),
                ..Client::default()
            }
            .send(state, Method::GET, "/api/v1/me", None)
            .await
            .expect(StatusCode::OK);
            assert_eq!(me.body["email"], "ana@acme.test");
        } else {
            assert_eq!(strings(&id["groups"]).len(), 3);
        }
        w.clock.advance(5);
        assert_eq!(poll().await.body["error"], "expired_token", "issued once");
    }
    // Denied, and expired.
    let started = send_form(
        &w,
        None,
        Method::POST,
        "/oidc/oauth2/device_authorization",
        &[("client_id", "hb")],
    )
    .await
    .body;
    let csrf = w.ana.csrf.clone().expect("a CSRF token");
    send_form(
        &w,
        Some(&w.ana),
        Method::POST,
        "/oidc/device",
        &[
            (
                "user_code",
                started["user_code"].as_str().unwrap_or_default(),
            ),
            ("decision", "deny"),
            ("csrf_token", &csrf),
        ],
    )
    .await
    .expect(StatusCode::OK);
    let denied = post_token(
        &w,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            (
                "device_code",
                started["device_code"].as_str().unwrap_or_default(),
            ),
            ("client_id", "hb"),
        ],
    )
    .await;
    assert_eq!(denied.body["error"], "access_denied");
    let started = send_form(
        &w,
        None,
        Method::POST,
        "/oidc/oauth2/device_authorization",
        &[("client_id", "hb")],
    )
    .await
    .body;
    w.clock.advance(601);
    let expired = post_token(
        &w,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            (
                "device_code",
                started["device_code"].as_str().unwrap_or_default(),
            ),
            ("client_id", "hb"),
        ],
    )
    .await;
    assert_eq!(expired.body["error"], "expired_token");
    let unknown = send_form(
        &w,
        None,
        Method::POST,
        "/oidc/oauth2/device_authorization",
        &[("client_id", "nobody")],
    )
    .await;
    assert_eq!(
        unknown.expect(StatusCode::UNAUTHORIZED).body["error"],
        "invalid_client"
    );
}

/// The text of `path` at the head of the server's repository.
fn file_at_head(w: &World, path: &str) -> Option<String> {
    let repo = git2::Repository::open(w.srv.state.settings.git_repo()).expect("open repo");
    let blob = repo
        .revparse_single(&format!("main:{path}"))
        .ok()?
        .peel_to_blob()
        .ok()?;
    Some(String::from_utf8_lossy(blob.content()).into_owned())
}

fn flag<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("--oidc-{name}=");
    text.lines()
        .find_map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .trim_matches('"')
                .strip_prefix(prefix.as_str())
        })
        .unwrap_or_else(|| panic!("no {prefix} flag in:\n{text}"))
}

#[tokio::test]
async fn the_rendered_vcluster_flags_the_tokens_and_the_kubeconfig_agree() {
    let w = world().await;
    let state = &w.srv.state;
    let (folder, values) = ["home", "edge"]
        .iter()
        .find_map(|c| {
            let folder = format!("tenants/{c}/acme/dev");
            file_at_head(&w, &format!("{folder}/host/vcluster.yaml")).map(|v| (folder, v))
        })
        .expect("the rendered vcluster.yaml of acme/dev");
    let rbac =
        file_at_head(&w, &format!("{folder}/inside/rbac.yaml")).expect("the rendered rbac.yaml");
    let tokens = code_flow(&w, &w.admin).await.expect(StatusCode::OK).body;
    let id = claims(tokens["id_token"].as_str().expect("an ID token"));
    assert_eq!(id["iss"], flag(&values, "issuer-url"));
    assert_eq!(id["aud"], flag(&values, "client-id"));
    let username = flag(&values, "username-claim");
    assert!(
        id[username].is_string(),
        "the username claim {username} is in {id}"
    );
    let groups = strings(&id[flag(&values, "groups-claim")]);
    let prefix = flag(&values, "groups-prefix");
    // What the vCluster sees (prefix + group) is what the rendered RBAC binds.
    assert!(rbac.contains(&format!("{prefix}WSAdmins")), "{rbac}");
    assert!(groups.contains("WSAdmins"), "{groups:?}");

    let kubeconfig = w
        .ana
        .send(
            state,
            Method::GET,
            "/api/v1/orgs/acme/workspaces/dev/kubeconfig",
            None,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    let exec = &kubeconfig["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], "kubectl");
    let args = strings(&exec["args"]);
    assert!(
        args.contains(&format!(
            "--oidc-issuer-url={}",
            flag(&values, "issuer-url")
        )),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("--oidc-client-id={}", flag(&values, "client-id"))),
        "{args:?}"
    );
    let server_url = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap_or_default();
    let host = server_url.trim_start_matches("https://");
    assert!(
        values.contains(host),
        "{host} is a name the vCluster's certificate has"
    );
    let text = kubeconfig.to_string();
    for secret in ["token", "client-key-data", "password", "client-secret"] {
        assert!(
            !text.contains(&format!("\"{secret}\"")),
            "no {secret}: {text}"
        );
    }
    w.outsider
        .send(
            state,
            Method::GET,
            "/api/v1/orgs/acme/workspaces/dev/kubeconfig",
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    let info = Client::default()
        .send(state, Method::GET, "/api/v1/auth/issuer", None)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(info["issuer"], ISSUER);
    assert_eq!(
        info["deviceAuthorizationPath"],
        "/oidc/oauth2/device_authorization"
    );
}

#[tokio::test]
async fn forged_and_misused_tokens_are_refused_by_the_own_validator() {
    let w = world().await;
    let state = &w.srv.state;
    let tokens = code_flow(&w, &w.ana).await.expect(StatusCode::OK).body;
    let token = tokens["id_token"].as_str().expect("an ID token");
    let now = w.clock_now();
    let key = &state.store.signing_keys(now).await.expect("keys")[0];
    for (name, forged) in forgeries(token, &key.private_pem, &key.kid, now) {
        let verdict = state.issuer.verify(&forged, ISSUER, Some(DEV)).await;
        if name == "control" {
            verdict.expect("the control token verifies");
        } else {
            assert!(verdict.is_err(), "{name} was accepted");
        }
    }
    // Garbage never panics.
    for junk in ["", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30.", "\u{0}"] {
        assert!(
            state.issuer.verify(junk, ISSUER, Some(DEV)).await.is_err(),
            "{junk:?}"
        );
    }
}

#[tokio::test]
async fn kubeconfigs_carry_the_configured_ca() {
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vcluster-ca.pem");
    let pem = std::fs::read_to_string(&ca).expect("the test CA");
    let get = |w: &World| {
        let (state, ana) = (w.srv.state.clone(), w.ana.clone());
        async move {
            ana.send(
                &state,
                Method::GET,
                "/api/v1/orgs/acme/workspaces/dev/kubeconfig",
                None,
            )
            .await
            .expect(StatusCode::OK)
            .body
        }
    };
    let without = get(&world().await).await;
    assert!(
        without["clusters"][0]["cluster"]
            .get("certificate-authority-data")
            .is_none(),
        "{without}"
    );
    let w = world_with(|s| {
        s.issuer.kubeconfig_ca_file = Some(ca.clone());
        s.issuer.load_kubeconfig_ca().expect("the test CA loads");
    })
    .await;
    let with = get(&w).await;
    let cluster = &with["clusters"][0]["cluster"];
    assert!(
        cluster["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://ws-acme-dev."))
    );
    let data = cluster["certificate-authority-data"]
        .as_str()
        .expect("certificate-authority-data");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    assert_eq!(String::from_utf8(decoded).expect("PEM"), pem);
}

/// The key id a token names.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a header")
        .kid
        .expect("a kid")
}

/// The key ids of a key set.
fn jwks_kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_administrator_rotates_keys_without_an_outage() {
    let w = world().await;
    let state = &w.srv.state;
    let path = "/api/v1/admin/issuer/rotate-keys";
    let kid = |answer: Answer| {
        let token = answer.expect(StatusCode::OK).body["id_token"]
            .as_str()
            .expect("an ID token")
            .to_owned();
        (kid_of(&token), token)
    };
    let kids = jwks_kids;
    let (a, _) = kid(code_flow(&w, &w.ana).await);

    // Only the platform administrator (the first account) may.
    let refused = w.ana.send(state, Method::POST, path, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    Client::default()
        .send(state, Method::POST, path, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(
        kids(&state.issuer.jwks().await.expect("jwks")),
        [a.clone()].into()
    );

    // The new key is published at once and signs only after publish_ahead; the old one stays
    // until its last token has expired.
    let settings = state.issuer.settings().clone();
    let now = w.clock_now();
    let rotation = w
        .admin
        .send(state, Method::POST, path, None)
        .await
        .expect(StatusCode::OK)
        .body;
    let b = rotation["kid"].as_str().expect("a kid").to_owned();
    assert_ne!(a, b);
    assert_eq!(rotation["created"], true);
    assert_eq!(rotation["publishedAt"], now);
    let activates = now + settings.publish_ahead_seconds;
    assert_eq!(rotation["activatesAt"], activates);
    let old = rotation["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == a.as_str())
        .expect("the old key is still published")
        .clone();
    let retires =
        activates + settings.token_ttl_seconds + server::service::issuer::RETIRE_MARGIN_SECONDS;
    assert_eq!(old["retiresAt"], retires);
    let published = state.issuer.jwks().await.expect("jwks");
    assert_eq!(kids(&published), [a.clone(), b.clone()].into());
    assert_eq!(
        kid(code_flow(&w, &w.ana).await).0,
        a,
        "the old key still signs"
    );

    // Asking again while b waits makes no key and does not put the switch off.
    let again = w
        .admin
        .send(state, Method::POST, path, None)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        (
            again["kid"].as_str(),
            &again["created"],
            &again["activatesAt"]
        ),
        (Some(b.as_str()), &json!(false), &json!(activates))
    );
    assert_eq!(state.store.signing_keys(now).await.expect("keys").len(), 2);

    // Across the switch: a's last token and b's first both verify.
    w.clock.set(activates - 1);
    let (by_a, last_of_a) = kid(code_flow(&w, &w.ana).await);
    w.clock.set(activates);
    let (by_b, first_of_b) = kid(code_flow(&w, &w.ana).await);
    assert_eq!((by_a, by_b.clone()), (a.clone(), b.clone()));
    w.clock.advance(settings.token_ttl_seconds - 2);
    for token in [&last_of_a, &first_of_b] {
        state
            .issuer
            .verify(token, ISSUER, Some(DEV))
            .await
            .expect("verifies across the rotation");
    }
    // Once a's tokens have all expired, it leaves the key set.
    w.clock.set(retires);
    assert_eq!(kids(&state.issuer.jwks().await.expect("jwks")), [b].into());
}

impl World {
    fn clock_now(&self) -> i64 {
        use server::service::issuer::Clock as _;
        self.clock.now()
    }
}

/// Rotation by the policy, with the clock moved by hand, on SQLite and PostgreSQL: a new key
/// is published an hour before it signs; tokens of the old key verify until it leaves the key
/// set, after every token it signed has expired; then they no longer do.
async fn rotation_on(store: server::store::Store) {
    let settings = IssuerSettings {
        rotate_after_seconds: 10 * 24 * 3600,
        publish_ahead_seconds: 3600,
        token_ttl_seconds: 600,
        ..IssuerSettings::default()
    };
    let start = 2_000_000_000;
    let clock = Arc::new(ManualClock::new(start));
    let issuer = Issuer::with_clock(store.clone(), settings.clone(), clock.clone());
    let sign = |sub: &str| {
        let claims = json!({"iss": ISSUER, "sub": sub, "aud": DEV});
        let issuer = &issuer;
        let clock = clock.clone();
        async move {
            use server::service::issuer::Clock as _;
            let now = clock.now();
            let mut c = claims;
            c["iat"] = json!(now);
            c["exp"] = json!(now + 600);
            issuer.sign("JWT", &c).await.expect("signed")
        }
    };
    let kid = kid_of;

    let old = sign("a").await;
    let a = kid(&old);
    let a_pem = store.signing_keys(start).await.expect("keys")[0]
        .private_pem
        .clone();
    assert_eq!(
        jwks_kids(&issuer.jwks().await.expect("jwks")),
        [a.clone()].into()
    );

    // Just before the publication point nothing changes; at it, b is published, a still signs.
    clock.set(start + settings.rotate_after_seconds - settings.publish_ahead_seconds - 1);
    assert_eq!(jwks_kids(&issuer.jwks().await.expect("jwks")).len(), 1);
    clock.advance(1);
    let published = jwks_kids(&issuer.jwks().await.expect("jwks"));
    assert_eq!(
        published.len(),
        2,
        "the next key is published before it signs"
    );
    let b = published.iter().find(|k| **k != a).expect("b").clone();
    let still_a = sign("a2").await;
    assert_eq!(kid(&still_a), a);
    issuer
        .verify(&still_a, ISSUER, Some(DEV))
        .await
        .expect("a's token verifies");

    // An hour later b signs; a's last token still verifies until it expires.
    clock.advance(settings.publish_ahead_seconds - 1);
    let last_of_a = sign("a3").await;
    assert_eq!(kid(&last_of_a), a);
    clock.advance(1);
    let by_b = sign("b").await;
    assert_eq!(kid(&by_b), b);
    clock.advance(590);
    issuer
        .verify(&last_of_a, ISSUER, Some(DEV))
        .await
        .expect("across the rotation");
    issuer
        .verify(&by_b, ISSUER, Some(DEV))
        .await
        .expect("the new key's token");
    assert_eq!(jwks_kids(&issuer.jwks().await.expect("jwks")).len(), 2);

    // After a's tokens have all expired (plus the margin), a leaves the key set, and a token
    // it signed (were it still in date) is refused.
    let b_activated = start + settings.rotate_after_seconds;
    clock.set(
        b_activated + settings.token_ttl_seconds + server::service::issuer::RETIRE_MARGIN_SECONDS,
    );
    assert_eq!(
        jwks_kids(&issuer.jwks().await.expect("jwks")),
        [b.clone()].into()
    );
    use server::service::issuer::Clock as _;
    let now = clock.now();
    let mut fresh = claims(&old);
    fresh["iat"] = json!(now);
    fresh["exp"] = json!(now + 60);
    let in_date = oidc_support::sign(
        &a_pem,
        &json!({"alg": "RS256", "kid": a, "typ": "JWT"}),
        &fresh,
    );
    let err = issuer
        .verify(&in_date, ISSUER, Some(DEV))
        .await
        .expect_err("a is gone");
    assert!(err.to_string().contains("not published"), "{err}");
    // A second issuer on the same database (a restart) agrees.
    let restarted = Issuer::with_clock(store, settings, clock.clone());
    assert_eq!(
        jwks_kids(&restarted.jwks().await.expect("jwks")),
        [b].into()
    );
    restarted
        .verify(&sign("b2").await, ISSUER, Some(DEV))
        .await
        .expect("b still signs");
}

#[tokio::test]
async fn keys_rotate_without_an_outage_on_sqlite() {
    let dir = support::TempDir::new("oidc-rotation");
    let store = server::store::Store::connect(&dir.0.join("db.sqlite").display().to_string())
        .await
        .expect("a SQLite store");
    rotation_on(store).await;
}

#[tokio::test]
async fn keys_rotate_without_an_outage_on_postgres() {
    let Some(db) = support::postgres::fresh_database().await else {
        return;
    };
    let store = server::store::Store::connect(&db.url)
        .await
        .expect("a PostgreSQL store");
    rotation_on(store).await;
}

mod flattening {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use server::service::authz::flatten;

    /// A random forest: group i's parent is one of the groups before it (so no cycles), or
    /// none.
    fn forest() -> impl Strategy<Value = (Vec<Option<usize>>, Vec<usize>)> {
        (1_usize..12).prop_flat_map(|n| {
            let parents = (0..n)
                .map(|i| {
                    if i == 0 {
                        Just(None).boxed()
                    } else {
                        proptest::option::of(0..i).boxed()
                    }
                })
                .collect::<Vec<_>>();
            (parents, proptest::collection::vec(0..n, 0..4))
        })
    }

    proptest! {
        /// The flattened groups are exactly the direct groups and all their ancestors.
        #[test]
        fn flattening_is_the_ancestor_closure((parents, direct) in forest()) {
            let name = |i: usize| format!("g{i}");
            let hierarchy: BTreeMap<String, Option<String>> = parents
                .iter()
                .enumerate()
                .map(|(i, p)| (name(i), p.map(name)))
                .collect();
            let direct_names: Vec<String> = direct.iter().map(|i| name(*i)).collect();
            let flat = flatten(&hierarchy, &direct_names);
            let mut expected = BTreeSet::new();
            for d in &direct {
                let mut at = Some(*d);
                while let Some(i) = at {
                    expected.insert(name(i));
                    at = parents[i];
                }
            }
            prop_assert_eq!(&flat, &expected);
            // Closed upwards: every group's parent is in too.
            for g in &flat {
                if let Some(Some(p)) = hierarchy.get(g) {
                    prop_assert!(flat.contains(p));
                }
            }
        }
    }
}

/// The issuer's store methods on one backend: codes once, device grants through their
/// states, refresh tokens rotated and their families revoked on reuse.
async fn issuer_store_on(store: server::store::Store) {
    use server::store::{AuthCode, DeviceGrant, RefreshToken, RefreshUse, StoreError};
    let user = store
        .create_user("s@example.test", "S", None, false)
        .await
        .expect("a user");
    let now = 2_000_000_000;
    let code = AuthCode {
        client_id: DEV.to_owned(),
        redirect_uri: REDIRECT.to_owned(),
        code_challenge: "c".repeat(43),
        user_id: user.id.clone(),
        nonce: None,
        scope: "openid".to_owned(),
        expires_at: now + 60,
    };
    store
        .create_auth_code("h1", &code, now)
        .await
        .expect("stored");
    assert_eq!(store.take_auth_code("h1", now).await.expect("taken"), code);
    assert!(matches!(
        store.take_auth_code("h1", now).await,
        Err(StoreError::NotFound)
    ));
    store
        .create_auth_code("h2", &code, now)
        .await
        .expect("stored");
    assert!(
        matches!(
            store.take_auth_code("h2", now + 60).await,
            Err(StoreError::NotFound)
        ),
        "expired"
    );

    let grant = DeviceGrant {
        client_id: "hb".to_owned(),
        scope: "openid".to_owned(),
        user_id: None,
        denied: 0,
        polled_at: now,
        expires_at: now + 600,
    };
    store
        .create_device_grant("d1", "u1", &grant, now)
        .await
        .expect("stored");
    assert!(matches!(
        store.create_device_grant("d2", "u1", &grant, now).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .pending_device_grant("u1", now)
        .await
        .expect("pending");
    assert_eq!(
        store
            .poll_device_grant("d1", now + 5)
            .await
            .expect("polled")
            .polled_at,
        now
    );
    assert_eq!(
        store
            .poll_device_grant("d1", now + 9)
            .await
            .expect("polled")
            .polled_at,
        now + 5
    );
    store
        .decide_device_grant("u1", Some(&user.id), now + 10)
        .await
        .expect("approved");
    assert!(
        matches!(
            store.decide_device_grant("u1", None, now + 10).await,
            Err(StoreError::NotFound)
        ),
        "decided once"
    );
    assert_eq!(
        store
            .poll_device_grant("d1", now + 15)
            .await
            .expect("approved")
            .user_id
            .as_deref(),
        Some(user.id.as_str())
    );
    assert!(
        matches!(
            store.poll_device_grant("d1", now + 20).await,
            Err(StoreError::NotFound)
        ),
        "read once"
    );

    let token = RefreshToken {
        family_id: "f1".to_owned(),
        client_id: DEV.to_owned(),
        user_id: user.id.clone(),
        scope: "openid".to_owned(),
        expires_at: now + 100,
        used_at: None,
    };
    store
        .create_refresh_token("r1", &token, now)
        .await
        .expect("stored");
    store
        .create_refresh_token("r2", &token, now)
        .await
        .expect("stored");
    assert!(matches!(
        store.use_refresh_token("r1", now).await.expect("used"),
        RefreshUse::Fresh(_)
    ));
    assert_eq!(
        store.use_refresh_token("r1", now).await.expect("reused"),
        RefreshUse::Reused
    );
    assert_eq!(
        store.use_refresh_token("r2", now).await.expect("revoked"),
        RefreshUse::Invalid,
        "the family went"
    );
    store
        .create_refresh_token(
            "r3",
            &RefreshToken {
                family_id: "f3".to_owned(),
                ..token.clone()
            },
            now,
        )
        .await
        .expect("stored");
    assert_eq!(
        store
            .use_refresh_token("r3", now + 100)
            .await
            .expect("expired"),
        RefreshUse::Invalid
    );
    store
        .create_refresh_token(
            "r4",
            &RefreshToken {
                family_id: "f4".to_owned(),
                ..token
            },
            now,
        )
        .await
        .expect("stored");
    assert_eq!(
        store
            .revoke_refresh_family("r4", "ws-acme-prod")
            .await
            .expect("revoked"),
        0,
        "another client's"
    );
    assert_eq!(
        store
            .revoke_refresh_family("r4", DEV)
            .await
            .expect("revoked"),
        1
    );
}

#[tokio::test]
async fn the_issuer_store_works_on_sqlite() {
    let dir = support::TempDir::new("oidc-store");
    let store = server::store::Store::connect(&dir.0.join("db.sqlite").display().to_string())
        .await
        .expect("a SQLite store");
    issuer_store_on(store).await;
}

#[tokio::test]
async fn the_issuer_store_works_on_postgres() {
    let Some(db) = support::postgres::fresh_database().await else {
        return;
    };
    let store = server::store::Store::connect(&db.url)
        .await
        .expect("a PostgreSQL store");
    issuer_store_on(store).await;
}

/// Status, `Cache-Control`, `Location` and body of an answer: what a client can tell apart.
fn seen(answer: &Answer) -> (StatusCode, Option<String>, Option<String>, String) {
    let header = |name| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    (
        answer.status,
        header(header::CACHE_CONTROL),
        header(header::LOCATION),
        answer.body.to_string(),
    )
}

/// Nobody who may not enter a workspace learns from the issuer whether it exists: anonymous
/// device sign-ins, the outsider's authorization and token requests and the sign-in to the
/// device flow are answered the same, byte for byte, for acme/prod (which exists) and for
/// acme/ghost (which does not).
#[tokio::test]
async fn the_issuer_answers_the_same_whether_a_workspace_exists_or_not() {
    let w = world().await;
    let (real, ghost) = ("ws-acme-prod", "ws-acme-ghost");
    let (_, challenge) = pkce();

    // The authorization endpoint: signed out, both go to the sign-in page (whose return
    // address names the client id it was given); signed in as the outsider, both come back
    // to the client with the same error.
    let signed_out = |id| {
        let (w, challenge) = (&w, challenge.clone());
        async move { authorize(w, None, &challenge, &[("client_id", id)]).await }
    };
    let (a, b) = (signed_out(real).await, signed_out(ghost).await);
    assert_eq!(a.status, StatusCode::FOUND);
    assert_eq!(
        location(&a).replace(real, "ID"),
        location(&b).replace(ghost, "ID")
    );
    for who in [&w.outsider, &w.ana] {
        let a = authorize(&w, Some(who), &challenge, &[("client_id", real)]).await;
        let b = authorize(&w, Some(who), &challenge, &[("client_id", ghost)]).await;
        assert_eq!(seen(&a), seen(&b));
        assert_eq!(
            query_param(&location(&a), "error").as_deref(),
            Some("access_denied")
        );
        assert_eq!(
            query_param(&location(&a), "error_description").as_deref(),
            Some(NO_WORKSPACE_ACCESS)
        );
    }

    // The device flow: anyone may start one for any well-formed client id; the outsider
    // approves both, and the token endpoint refuses both alike.
    let start = |id| {
        let w = &w;
        async move {
            send_form(
                w,
                None,
                Method::POST,
                "/oidc/oauth2/device_authorization",
                &[("client_id", id)],
            )
            .await
        }
    };
    let (a, b) = (start(real).await, start(ghost).await);
    let fixed = |answer: &Answer| {
        let mut body = answer.body.clone();
        for random in ["device_code", "user_code", "verification_uri_complete"] {
            assert!(body[random].is_string(), "{random}: {body}");
            body[random] = json!("…");
        }
        (answer.status, body)
    };
    assert_eq!(fixed(&a), fixed(&b));
    assert_eq!(a.status, StatusCode::OK);
    let poll = |id: &'static str, started: &Answer| {
        let (w, code) = (
            &w,
            started.body["device_code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        async move {
            post_token(
                w,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", &code),
                    ("client_id", id),
                ],
            )
            .await
        }
    };
    w.clock.advance(5);
    let (pending_a, pending_b) = (poll(real, &a).await, poll(ghost, &b).await);
    assert_eq!(seen(&pending_a), seen(&pending_b));
    assert_eq!(pending_a.body["error"], "authorization_pending");
    let csrf = w.outsider.csrf.clone().expect("a CSRF token");
    for started in [&a, &b] {
        let decided = send_form(
            &w,
            Some(&w.outsider),
            Method::POST,
            "/oidc/device",
            &[
                (
                    "user_code",
                    started.body["user_code"].as_str().unwrap_or_default(),
                ),
                ("decision", "approve"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
        assert_eq!(decided.status, StatusCode::OK, "{}", decided.body);
    }
    w.clock.advance(5);
    let (refused_a, refused_b) = (poll(real, &a).await, poll(ghost, &b).await);
    assert_eq!(seen(&refused_a), seen(&refused_b));
    assert_eq!(refused_a.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused_a.body["error"], "invalid_grant");
    assert_eq!(refused_a.body["error_description"], NO_WORKSPACE_ACCESS);

    // The token endpoint with a made-up code or refresh token: the same refusal.
    for grant in [
        vec![
            ("grant_type", "authorization_code"),
            ("code", "made-up"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "v".repeat(43).leak() as &str),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", "hbr_made-up"),
        ],
    ] {
        let with = |id| {
            let mut pairs = grant.clone();
            pairs.push(("client_id", id));
            pairs
        };
        let a = post_token(&w, &with(real)).await;
        let b = post_token(&w, &with(ghost)).await;
        assert_eq!(seen(&a), seen(&b), "{grant:?}");
        assert_eq!(a.body["error"], "invalid_grant", "{grant:?}");
    }
}
