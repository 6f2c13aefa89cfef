//! Password sign-in through the router under attack: failures back off exponentially per
//! account and per client address (429 with a growing `Retry-After`, on a clock the test
//! moves), an unknown email backs off exactly like a known one, the owner's right password
//! from a client with no failures gets through while the account is hammered, and a closed
//! sign-up refuses.

mod support;

use std::sync::Arc;

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use server::service::accounts::SignIn;
use server::service::issuer::ManualClock;
use server::settings::Settings;
use support::{Answer, Client, TestServer, server_with, sign_up};

const PASSWORD: &str = "correct horse battery";

/// A server whose back-off runs on a clock the test moves, with `change`d limits, and Ana's
/// account (signed up with [`PASSWORD`]).
async fn server(name: &str, change: impl FnOnce(&mut Settings)) -> (TestServer, Arc<ManualClock>) {
    let mut srv = server_with(name, |s| {
        s.limits.logins_per_client_per_minute = 0;
        s.limits.login_free_failures_per_account = 3;
        s.limits.login_free_failures_per_client = 100;
        s.limits.login_backoff_first_seconds = 1;
        s.limits.login_backoff_max_seconds = 16;
        change(s);
    })
    .await;
    let clock = Arc::new(ManualClock::new(1_000_000));
    srv.state.sign_in = Arc::new(SignIn::with_clock(&srv.state.settings, clock.clone()));
    sign_up(&srv.state, "ana@a.test", "Ana", Some(&srv.setup_token)).await;
    (srv, clock)
}

async fn login(srv: &TestServer, from: &str, email: &str, password: &str) -> Answer {
    Client::from_peer(from)
        .send(
            &srv.state,
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": email, "password": password})),
        )
        .await
}

/// A wrong password's answer, as [`outcome`] shows it.
const WRONG: (u16, Option<u64>) = (401, None);

/// A held-back attempt's answer, as [`outcome`] shows it: retry after `seconds`.
fn held(seconds: u64) -> (u16, Option<u64>) {
    (429, Some(seconds))
}

/// The answer's status and, for a 429, its `Retry-After`.
fn outcome(answer: &Answer) -> (u16, Option<u64>) {
    let retry = answer
        .headers
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(answer.body["code"], "rate-limited", "{}", answer.body);
    }
    (answer.status.as_u16(), retry)
}

/// Guesses on `email` from one address, waiting out each back-off as the server asks: the
/// answers, in order.
async fn hammer(srv: &TestServer, clock: &ManualClock, email: &str) -> Vec<(u16, Option<u64>)> {
    let mut seen = Vec::new();
    for _ in 0..9 {
        let answer = outcome(&login(srv, "10.0.0.66:4000", email, "wrong password!").await);
        seen.push(answer);
        if let (429, Some(wait)) = answer {
            clock.advance(i64::try_from(wait).unwrap());
        }
    }
    seen
}

#[tokio::test]
async fn guesses_back_off_exponentially_and_alike_for_unknown_emails() {
    let (srv, clock) = server("backoff", |_| {}).await;
    let known = hammer(&srv, &clock, "ana@a.test").await;
    // Three free failures, then each failure doubles the wait before the next attempt.
    let expected = [
        vec![WRONG; 4],
        vec![held(1), WRONG, held(2), WRONG, held(4)],
    ]
    .concat();
    assert_eq!(known, expected);
    // Up to the cap.
    for wait in [8, 16, 16] {
        assert_eq!(
            outcome(&login(&srv, "10.0.0.66:4000", "ana@a.test", "wrong password!").await),
            (401, None)
        );
        let held = login(&srv, "10.0.0.66:4000", "ana@a.test", "wrong password!").await;
        assert_eq!(outcome(&held), (429, Some(wait)));
        clock.advance(wait as i64);
    }
    // During the wait even the right password from that address is not checked.
    login(&srv, "10.0.0.66:4000", "ana@a.test", "wrong password!").await;
    assert_eq!(
        outcome(&login(&srv, "10.0.0.66:4000", "ana@a.test", PASSWORD).await).0,
        429
    );
    // An email nobody has backs off exactly alike: nothing tells the two apart.
    let unknown = hammer(&srv, &clock, "nobody@a.test").await;
    assert_eq!(unknown, known);
    srv.state.store.close().await;
}

#[tokio::test]
async fn the_owner_signs_in_from_a_clean_client_while_the_account_is_hammered() {
    let (srv, clock) = server("backoff-owner", |_| {}).await;
    hammer(&srv, &clock, "ana@a.test").await;
    // The attacker's address is held back…
    assert_eq!(
        outcome(&login(&srv, "10.0.0.66:4000", "ana@a.test", "wrong password!").await).0,
        401
    );
    assert_eq!(
        outcome(&login(&srv, "10.0.0.66:4000", "ana@a.test", PASSWORD).await).0,
        429
    );
    // …but Ana, from her own device, signs in at once.
    let signed_in = login(&srv, "192.0.2.10:5000", "ana@a.test", PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["user"]["email"], "ana@a.test");
    // Her success cleared the account's failures; the attacker starts over, and another
    // address gets one guess through the account's back-off, not two.
    for _ in 0..4 {
        let answer = login(&srv, "10.0.0.66:4000", "ana@a.test", "wrong password!").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        outcome(&login(&srv, "10.0.0.66:4000", "ana@a.test", "wrong password!").await),
        (429, Some(1))
    );
    assert_eq!(
        outcome(&login(&srv, "10.0.0.77:4000", "ana@a.test", "wrong password!").await).0,
        401
    );
    assert_eq!(
        outcome(&login(&srv, "10.0.0.77:4000", "ana@a.test", "wrong password!").await).0,
        429
    );
    // Ana signs in again from her device: her earlier success left it clean.
    let again = login(&srv, "192.0.2.10:5000", "ana@a.test", PASSWORD).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    srv.state.store.close().await;
}

#[tokio::test]
async fn one_address_guessing_many_accounts_backs_off() {
    let (srv, clock) = server("backoff-client", |s| {
        s.limits.login_free_failures_per_client = 4;
    })
    .await;
    let mut seen = Vec::new();
    for n in 0..8 {
        let answer = outcome(
            &login(
                &srv,
                "10.0.0.66:4000",
                &format!("user{n}@a.test"),
                "wrong password!",
            )
            .await,
        );
        seen.push(answer);
        if let (429, Some(wait)) = answer {
            clock.advance(i64::try_from(wait).unwrap());
        }
    }
    let expected = [vec![WRONG; 5], vec![held(1), WRONG, held(2)]].concat();
    assert_eq!(seen, expected);
    // Asking sign-up about taken emails counts the same.
    let signup = |email: &'static str| {
        let state = srv.state.clone();
        async move {
            Client::from_peer("10.0.0.88:4000")
                .send(
                    &state,
                    Method::POST,
                    "/api/v1/auth/signup",
                    Some(json!({"email": email, "name": "Eve", "password": PASSWORD})),
                )
                .await
        }
    };
    let mut taken = Vec::new();
    for _ in 0..6 {
        taken.push(outcome(&signup("ana@a.test").await));
    }
    assert_eq!(taken, [vec![(409, None); 5], vec![held(1)]].concat());
    srv.state.store.close().await;
}

#[tokio::test]
async fn a_closed_sign_up_refuses_everyone_but_the_first_account() {
    let (srv, _) = server("signup-closed-backoff", |s| s.accounts.open_signup = false).await;
    let answer = Client::from_peer("10.0.0.9:4000")
        .send(
            &srv.state,
            Method::POST,
            "/api/v1/auth/signup",
            Some(json!({"email": "eve@a.test", "name": "Eve", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{}",
        answer.body
    );
    assert!(srv.state.store.user_by_email("eve@a.test").await.is_err());
    srv.state.store.close().await;
}
