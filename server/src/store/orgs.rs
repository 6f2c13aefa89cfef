//! Organizations and their users.

use std::collections::BTreeSet;

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

/// An organization and someone's role in it, if any.
#[derive(sqlx::FromRow)]
struct OrgAndMaybeRole {
    #[sqlx(flatten)]
    org: Organization,
    role: Option<String>,
}

/// Slugs per `IN (…)` list.
const SLUG_CHUNK: usize = 500;

const ORG_COLUMNS: &str = "o.id, o.slug, o.name, o.personal, o.created_at";

/// Fails with `Conflict(LAST_OWNER)` when `$user` is the organization's only owner; `$tx` is
/// a write transaction of either backend.
macro_rules! refuse_last_owner {
    ($tx:expr, $org:expr, $user:expr) => {{
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM organization_members \
             WHERE org_id = $1 AND role = 'owner' AND user_id <> $2",
        )
        .bind($org)
        .bind($user)
        .fetch_one(&mut **$tx)
        .await?;
        if others == 0 {
            return Err(StoreError::Conflict(LAST_OWNER.to_owned()));
        }
    }};
}

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

    /// Which of `slugs` name an organization here.
    pub async fn known_organizations(&self, slugs: &[&str]) -> StoreResult<BTreeSet<String>> {
        let mut known = BTreeSet::new();
        for chunk in slugs.chunks(SLUG_CHUNK) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT slug FROM organizations WHERE slug IN ({})",
                list.join(", ")
            );
            let found = on_pool!(self, |pool| {
                let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
                for slug in chunk {
                    query = query.bind(*slug);
                }
                query.fetch_all(pool).await
            })?;
            known.extend(found);
        }
        Ok(known)
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

    /// The organization with this slug and `user_id`'s role in it, if any, in one query.
    pub async fn organization_and_role(
        &self,
        slug: &str,
        user_id: &str,
    ) -> StoreResult<(Organization, Option<OrgRole>)> {
        let sql = format!(
            "SELECT {ORG_COLUMNS}, m.role FROM organizations o \
             LEFT JOIN organization_members m ON m.org_id = o.id AND m.user_id = $2 \
             WHERE o.slug = $1"
        );
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, OrgAndMaybeRole>(sqlx::AssertSqlSafe(sql))
                .bind(slug)
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?;
        let role = row.role.as_deref().map(OrgRole::parse).transpose()?;
        Ok((row.org, role))
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

/// An organization user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The user's id.
    pub user_id: String,
    /// Their email.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// What they may do in the organization.
    pub role: OrgRole,
    /// Unix seconds.
    pub joined_at: i64,
}

/// An invitation to join an organization (its token is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The invitation's id.
    pub id: String,
    /// The organization's id.
    pub org_id: String,
    /// Who may accept it (normalised email).
    pub email: String,
    /// The role it gives.
    pub role: OrgRole,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Why the last owner may not go.
pub const LAST_OWNER: &str = "the organization's last owner cannot be removed or demoted";

impl Store {
    /// The organization `slug` and the user's role there; `NotFound` when they have none (or
    /// it does not exist: the two are not told apart).
    pub async fn membership(
        &self,
        slug: &str,
        user_id: &str,
    ) -> StoreResult<(Organization, OrgRole)> {
        let sql = format!(
            "SELECT {ORG_COLUMNS}, m.role FROM organizations o \
             JOIN organization_members m ON m.org_id = o.id \
             WHERE o.slug = $1 AND m.user_id = $2"
        );
        let (org, role) = on_pool!(self, |pool| {
            sqlx::query_as::<_, OrgWithRole>(sqlx::AssertSqlSafe(sql))
                .bind(slug)
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?
        .split()?;
        Ok((org, role))
    }

    /// The organizations the user belongs to and their role in each, by slug.
    pub async fn memberships_of(&self, user_id: &str) -> StoreResult<Vec<(Organization, OrgRole)>> {
        let sql = format!(
            "SELECT {ORG_COLUMNS}, m.role FROM organizations o \
             JOIN organization_members m ON m.org_id = o.id \
             WHERE m.user_id = $1 ORDER BY o.slug"
        );
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, OrgWithRole>(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(OrgWithRole::split).collect()
    }

    /// The organization's users, by email.
    pub async fn members(&self, org_id: &str) -> StoreResult<Vec<Member>> {
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, String, String, i64)>(
                "SELECT u.id, u.email, u.name, m.role, m.created_at \
                 FROM organization_members m JOIN users u ON u.id = m.user_id \
                 WHERE m.org_id = $1 ORDER BY u.email",
            )
            .bind(org_id)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(user_id, email, name, role, joined_at)| {
                Ok(Member {
                    user_id,
                    email,
                    name,
                    role: OrgRole::parse(&role)?,
                    joined_at,
                })
            })
            .collect()
    }

    /// Changes the role of someone who is already an organization user; `NotFound` when they
    /// are not one, `Conflict(LAST_OWNER)` when it would leave no owner.
    pub async fn set_member_role(
        &self,
        org_id: &str,
        user_id: &str,
        role: OrgRole,
    ) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            if role != OrgRole::Owner {
                refuse_last_owner!(tx, org_id, user_id);
            }
            let done = sqlx::query(
                "UPDATE organization_members SET role = $3 WHERE org_id = $1 AND user_id = $2",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Removes an organization user; `NotFound` when they are not one, `Conflict(LAST_OWNER)`
    /// when they are its last owner.
    pub async fn remove_member(&self, org_id: &str, user_id: &str) -> StoreResult<()> {
        write_tx!(self, |tx| async {
            refuse_last_owner!(tx, org_id, user_id);
            let done =
                sqlx::query("DELETE FROM organization_members WHERE org_id = $1 AND user_id = $2")
                    .bind(org_id)
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Deletes the organization's SQL side: its users, invitations and subscriptions go too.
    pub async fn delete_organization(&self, org_id: &str) -> StoreResult<()> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM organizations WHERE id = $1")
                .bind(org_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records an invitation; `token_hash` is the hash of its one-time token.
    pub async fn create_invitation(
        &self,
        org_id: &str,
        email: &str,
        role: OrgRole,
        token_hash: &str,
        invited_by: &str,
        expires_at: i64,
    ) -> StoreResult<Invitation> {
        let invitation = Invitation {
            id: new_id(),
            org_id: org_id.to_owned(),
            email: email.to_owned(),
            role,
            expires_at,
        };
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO invitations \
                 (id, org_id, email, role, token_hash, invited_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&invitation.id)
            .bind(org_id)
            .bind(email)
            .bind(role.as_str())
            .bind(token_hash)
            .bind(invited_by)
            .bind(now())
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(invitation)
    }

    /// Accepts the unexpired, unaccepted invitation with this token hash for the user whose
    /// normalised email is `email`: they join with its role (someone already there keeps the
    /// higher of the two). `NotFound` for any other invitation, told apart from nothing.
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        user_id: &str,
        email: &str,
    ) -> StoreResult<(Organization, OrgRole)> {
        let at = now();
        let org_id = write_tx!(self, |tx| async {
            let (org_id, role): (String, String) = sqlx::query_as(
                "UPDATE invitations SET accepted_at = $4 \
                 WHERE token_hash = $1 AND email = $2 AND accepted_at IS NULL AND expires_at > $3 \
                 RETURNING org_id, role",
            )
            .bind(token_hash)
            .bind(email)
            .bind(at)
            .bind(at)
            .fetch_one(&mut **tx)
            .await?;
            // 'billing' never replaces 'owner'; 'owner' upgrades 'billing'.
            sqlx::query(
                "INSERT INTO organization_members (org_id, user_id, role, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id, user_id) DO UPDATE SET role = \
                 CASE WHEN excluded.role = 'owner' THEN 'owner' ELSE organization_members.role END",
            )
            .bind(&org_id)
            .bind(user_id)
            .bind(&role)
            .bind(at)
            .execute(&mut **tx)
            .await?;
            Ok::<_, StoreError>(org_id)
        })?;
        let sql = format!(
            "SELECT {ORG_COLUMNS}, m.role FROM organizations o \
             JOIN organization_members m ON m.org_id = o.id \
             WHERE o.id = $1 AND m.user_id = $2"
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, OrgWithRole>(sqlx::AssertSqlSafe(sql))
                .bind(&org_id)
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?
        .split()
    }
}

/// A row of an organization joined with one user's role.
#[derive(sqlx::FromRow)]
struct OrgWithRole {
    id: String,
    slug: String,
    name: String,
    personal: bool,
    created_at: i64,
    role: String,
}

impl OrgWithRole {
    fn split(self) -> StoreResult<(Organization, OrgRole)> {
        let role = OrgRole::parse(&self.role)?;
        Ok((
            Organization {
                id: self.id,
                slug: self.slug,
                name: self.name,
                personal: self.personal,
                created_at: self.created_at,
            },
            role,
        ))
    }
}
