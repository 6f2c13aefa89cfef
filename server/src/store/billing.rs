//! Billing: plan prices (the plans themselves are platform configuration in Git). The
//! subscriptions of workspaces are kept with them in `tenancy.rs`.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreResult, on_pool, write_tx};

/// What a plan costs.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PlanPrice {
    /// The plan's name in the platform configuration.
    pub plan: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The monthly price in the currency's smallest unit.
    pub monthly_cents: i64,
}

impl Store {
    /// Replaces every plan price with `prices`.
    pub async fn set_plan_prices(&self, prices: &[PlanPrice]) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            sqlx::query("DELETE FROM plan_prices")
                .execute(&mut **tx)
                .await?;
            for price in prices {
                sqlx::query(
                    "INSERT INTO plan_prices (plan, currency, monthly_cents) VALUES ($1, $2, $3)",
                )
                .bind(&price.plan)
                .bind(&price.currency)
                .bind(price.monthly_cents)
                .execute(&mut **tx)
                .await?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Sets the price of one plan, whether or not it had one.
    pub async fn set_plan_price(&self, price: &PlanPrice) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO plan_prices (plan, currency, monthly_cents) VALUES ($1, $2, $3) \
                 ON CONFLICT (plan) DO UPDATE SET currency = excluded.currency, \
                 monthly_cents = excluded.monthly_cents",
            )
            .bind(&price.plan)
            .bind(&price.currency)
            .bind(price.monthly_cents)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(StoreError::from)
    }

    /// Every plan price, by plan.
    pub async fn plan_prices(&self) -> StoreResult<Vec<PlanPrice>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, PlanPrice>(
                "SELECT plan, currency, monthly_cents FROM plan_prices ORDER BY plan",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}
