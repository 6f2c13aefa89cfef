//! The platform administrator sets a plan's price through the API
//! (`PUT /api/v1/plans/{plan}/price`): stored in SQL, no commit, and refused with the field at
//! fault for an unknown plan or an amount out of range. Runs on PostgreSQL too
//! (`on_postgres.rs`).
//!
//! `cargo test -p server --test plan_prices`.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::person_as;

#[tokio::test]
async fn the_administrator_sets_a_plans_price_without_a_commit() {
    let server = support::server("plan-prices").await;
    let admin = person_as(&server.state, "root@example.test", None, true).await;
    let ana = server.person("ana@example.test").await;
    let before = server.commits().len();
    let path = "/api/v1/plans/shared-small/price";

    let answer = server
        .call(
            Method::PUT,
            path,
            Some(&admin),
            Some(json!({"monthly": 2900})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body["name"], "shared-small", "{}", answer.body);
    assert_eq!(
        answer.body["price"]["monthlyCents"], 2900,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["price"]["currency"], "USD", "{}", answer.body);

    // The currency stays the plan's own unless the body names another.
    let answer = server
        .call(
            Method::PUT,
            path,
            Some(&admin),
            Some(json!({"monthly": 3100, "currency": "EUR"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body["price"]["currency"], "EUR", "{}", answer.body);
    server
        .call(Method::PUT, path, Some(&admin), Some(json!({"monthly": 0})))
        .await
        .expect(StatusCode::OK);
    let stored = server.state.store.plan_prices().await.expect("prices");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (
            stored[0].plan.as_str(),
            stored[0].currency.as_str(),
            stored[0].monthly_cents
        ),
        ("shared-small", "EUR", 0)
    );

    // Everyone signed in sees the prices with the plans.
    let plans = server
        .call(Method::GET, "/api/v1/plans", Some(&ana), None)
        .await
        .expect(StatusCode::OK)
        .body;
    let listed = plans
        .as_array()
        .expect("a list")
        .iter()
        .find(|p| p["name"] == "shared-small")
        .expect("shared-small listed");
    assert_eq!(listed["price"]["currency"], "EUR", "{plans}");
    assert!(
        plans
            .as_array()
            .expect("a list")
            .iter()
            .any(|p| p["price"].is_null()),
        "a plan without a price: {plans}"
    );

    // Only the administrator, and never with a bad plan or amount.
    server
        .call(Method::PUT, path, Some(&ana), Some(json!({"monthly": 1})))
        .await
        .expect(StatusCode::FORBIDDEN);
    server
        .call(Method::PUT, path, None, Some(json!({"monthly": 1})))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let huge: Value = serde_json::from_str("1e30").expect("a number");
    for (plan, body, field) in [
        ("no-such-plan", json!({"monthly": 1}), "plan"),
        ("<script>", json!({"monthly": 1}), "plan"),
        ("shared-small", json!({"monthly": -1}), "monthly"),
        (
            "shared-small",
            json!({"monthly": 9_223_372_036_854_775_808_u64}),
            "monthly",
        ),
        ("shared-small", json!({"monthly": huge}), "monthly"),
        ("shared-small", json!({"monthly": 12.5}), "monthly"),
        (
            "shared-small",
            json!({"monthly": 1, "currency": "euro"}),
            "currency",
        ),
    ] {
        let plan = plan.replace('<', "%3C").replace('>', "%3E");
        let answer = server
            .call(
                Method::PUT,
                &format!("/api/v1/plans/{plan}/price"),
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{plan} {body}: {}",
            answer.body
        );
        assert_eq!(answer.field(), field, "{plan} {body}: {}", answer.body);
    }
    let after = server.state.store.plan_prices().await.expect("prices");
    assert_eq!(after, stored, "a refused price changes nothing");
    assert_eq!(server.commits().len(), before, "prices make no commit");
    server.state.store.close().await;
}
