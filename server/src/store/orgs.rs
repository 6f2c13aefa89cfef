//! Organizations and their users.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, StoreResult, new_id, now, on_pool, write_tx};

/// An organization. Its slug is its name in Git (`intent/<slug>/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The organization's id.
    pub id: String,
    /// Its slug, a DNS label.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The private organization made at sign-up.
    pub personal: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// What an organization user may do there.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    /// Manages billing, organization users and workspaces.
    Owner,
    /// Manages billing only.
    Billing,
}

impl OrgRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Billing => "billing",
        }
    }

    fn parse(text: &str) -> StoreResult<Self> {
        match text {
            "owner" => Ok(Self::Owner),
            "billing" => Ok(Self::Billing),
            other => Err(StoreError::Conflict(format!("unknown role {other}"))),
        }
    }
}

const ORG_COLUMNS: &str = "o.id, o.slug, o.name, o.personal, o.created_at";

impl Store {
    /// Creates an organization with `owner` as its first owner, in one transaction.
    pub async fn create_organization(
        &self,
        slug: &str,
        name: &str,
        personal: bool,
        owner: &str,
    ) -> StoreResult<Organization> {
        let org = Organization {
            id: new_id(),
            slug: slug.to_owned(),
            name: name.to_owned(),
            personal,
            created_at: now(),
        };
        write_tx!(self, |tx| async {
            sqlx::query(
                "INSERT INTO organizations (id, slug, name, personal, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&org.id)
            .bind(&org.slug)
            .bind(&org.name)
            .bind(org.personal)
            .bind(org.created_at)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO organization_members (org_id, user_id, role, created_at) \
                 VALUES ($1, $2, 'owner', $3)",
            )
            .bind(&org.id)
            .bind(owner)
            .bind(org.created_at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(org)
    }

    /// The organization with this slug.
    pub async fn organization_by_slug(&self, slug: &str) -> StoreResult<Organization> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations o WHERE o.slug = $1");
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Organization>(sqlx::AssertSqlSafe(sql))
                .bind(slug)
                .fetch_one(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// The caller's role in the organization `slug`; `NotFound` when they have none (or it
    /// does not exist: the two are not told apart).
    pub async fn org_role(&self, slug: &str, user_id: &str) -> StoreResult<OrgRole> {
        let role: String = on_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(
                "SELECT m.role FROM organization_members m \
                 JOIN organizations o ON o.id = m.org_id \
                 WHERE o.slug = $1 AND m.user_id = $2",
            )
            .bind(slug)
            .bind(user_id)
            .fetch_one(pool)
            .await
        })?;
        OrgRole::parse(&role)
    }

    /// The organizations the user belongs to, by slug.
    pub async fn organizations_of(&self, user_id: &str) -> StoreResult<Vec<Organization>> {
        let sql = format!(
            "SELECT {ORG_COLUMNS} FROM organizations o \
             JOIN organization_members m ON m.org_id = o.id \
             WHERE m.user_id = $1 ORDER BY o.slug"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Organization>(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }
}
