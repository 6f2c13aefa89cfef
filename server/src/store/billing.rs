//! Billing: plan prices (the plans themselves are platform configuration in Git) and the
//! subscriptions of organizations' workspaces.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreResult, new_id, now, on_pool, write_tx};

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

/// One workspace's plan over a stretch of time.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The subscription's id.
    pub id: String,
    /// The workspace's slug.
    pub workspace: String,
    /// The plan.
    pub plan: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; `None` while it runs.
    pub ended_at: Option<i64>,
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

    /// Starts the subscription of workspace `workspace` of organization `org_slug` to `plan`,
    /// ending the one it had (a change of plan). `NotFound` when the organization does not
    /// exist.
    pub async fn start_subscription(
        &self,
        org_slug: &str,
        workspace: &str,
        plan: &str,
    ) -> StoreResult<Subscription> {
        let at = now();
        let subscription = Subscription {
            id: new_id(),
            workspace: workspace.to_owned(),
            plan: plan.to_owned(),
            started_at: at,
            ended_at: None,
        };
        write_tx!(self, |tx| async {
            let org_id: String = sqlx::query_scalar("SELECT id FROM organizations WHERE slug = $1")
                .bind(org_slug)
                .fetch_one(&mut **tx)
                .await?;
            sqlx::query(
                "UPDATE subscriptions SET ended_at = $3 \
                 WHERE org_id = $1 AND workspace = $2 AND ended_at IS NULL",
            )
            .bind(&org_id)
            .bind(workspace)
            .bind(at)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO subscriptions (id, org_id, workspace, plan, started_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&subscription.id)
            .bind(&org_id)
            .bind(workspace)
            .bind(plan)
            .bind(at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(subscription)
    }

    /// Ends the running subscription of a workspace (it was deleted). Ending none is not an
    /// error.
    pub async fn end_subscription(&self, org_slug: &str, workspace: &str) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE subscriptions SET ended_at = $3 \
                 WHERE org_id = (SELECT id FROM organizations WHERE slug = $1) \
                 AND workspace = $2 AND ended_at IS NULL",
            )
            .bind(org_slug)
            .bind(workspace)
            .bind(now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    /// The organization's subscriptions, running and ended, oldest first.
    pub async fn subscriptions_of(&self, org_id: &str) -> StoreResult<Vec<Subscription>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Subscription>(
                "SELECT id, workspace, plan, started_at, ended_at FROM subscriptions \
                 WHERE org_id = $1 ORDER BY started_at, id",
            )
            .bind(org_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}
