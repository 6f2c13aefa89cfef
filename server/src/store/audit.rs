//! What the audit route needs to scope its answer.

use super::{Store, StoreError, StoreResult, on_pool};

impl Store {
    /// The workspaces of organization `org_slug` where the user is in at least one group
    /// (any group makes a member), by name.
    pub async fn audit_workspaces(
        &self,
        org_slug: &str,
        user_id: &str,
    ) -> StoreResult<Vec<String>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT g.workspace FROM workspace_groups g \
                 JOIN group_members m ON m.group_id = g.id \
                 WHERE g.org_slug = $1 AND m.user_id = $2 ORDER BY g.workspace",
            )
            .bind(org_slug)
            .bind(user_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}
