//! The control plane's tables (`forge.*` in the platform database), read and written with
//! bound parameters only. Sealing and hashing happen in the callers; this module stores bytes.

use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::platform::error::{Error, Result};

/// A member's role in an organization, as Supabase names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Everything, including deleting the organization and managing owners.
    Owner,
    /// Everything but owners' business.
    Administrator,
    /// Projects' keys, SQL and settings, not members or billing.
    Developer,
    /// Reads only.
    ReadOnly,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Administrator => "administrator",
            Role::Developer => "developer",
            Role::ReadOnly => "read_only",
        }
    }

    /// The name the Management API shows (`role_name`).
    pub fn display(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Administrator => "Administrator",
            Role::Developer => "Developer",
            Role::ReadOnly => "Read only",
        }
    }

    /// Reads a stored or shown name.
    pub fn parse(name: &str) -> Option<Role> {
        match name.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
            "owner" => Some(Role::Owner),
            "administrator" | "admin" => Some(Role::Administrator),
            "developer" => Some(Role::Developer),
            "read_only" | "readonly" => Some(Role::ReadOnly),
            _ => None,
        }
    }

    /// May change projects, keys and data (everyone but read-only members).
    pub fn can_write(self) -> bool {
        self != Role::ReadOnly
    }

    /// May see secret keys, manage members and delete projects.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Administrator)
    }
}

/// An organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Organization {
    /// Its internal id.
    pub id: Uuid,
    /// Its id on the wire.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// A member of an organization.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    /// The platform user.
    pub user_id: Uuid,
    /// Their email.
    pub email: Option<String>,
    /// Their stored role name.
    pub role: String,
}

/// A project's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its database is being made.
    ComingUp,
    /// Serving.
    Active,
    /// Pools closed; requests answer 503.
    Paused,
    /// Being deleted.
    Removing,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::ComingUp => "coming_up",
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Removing => "removing",
        }
    }

    /// The Management API's name (Supabase's project statuses).
    pub fn wire(self) -> &'static str {
        match self {
            Status::ComingUp => "COMING_UP",
            Status::Active => "ACTIVE_HEALTHY",
            Status::Paused => "INACTIVE",
            Status::Removing => "GOING_DOWN",
        }
    }

    fn parse(name: &str) -> Status {
        match name {
            "coming_up" => Status::ComingUp,
            "paused" => Status::Paused,
            "removing" => Status::Removing,
            _ => Status::Active,
        }
    }
}

/// A project as the control plane records it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    /// Its ref.
    #[sqlx(rename = "ref")]
    pub reference: String,
    /// The owning organization.
    pub organization_id: Uuid,
    /// The owning organization's slug.
    pub organization_slug: String,
    /// Its name.
    pub name: String,
    #[sqlx(rename = "status")]
    status_name: String,
    /// The cluster its database lives on (`None`: the server's configured database).
    pub cluster_id: Option<String>,
    /// Its database's name on that cluster.
    pub database: Option<String>,
    /// Its plan.
    pub plan: String,
    /// Its region.
    pub region: String,
    /// The revision of its last change.
    pub revision: i64,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Which migrations its database has (see [`crate::platform::schema::project_migrations`]).
    pub migrations: Option<String>,
}

impl ProjectRow {
    /// Its status.
    pub fn status(&self) -> Status {
        Status::parse(&self.status_name)
    }
}

const PROJECT_COLUMNS: &str = "p.ref, p.organization_id, o.slug as organization_slug, p.name, p.status, \
     p.cluster_id, p.database, p.plan, p.region, p.revision, p.created_at, p.migrations";

/// An API key's stored row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Its id.
    pub id: Uuid,
    /// `publishable`, `secret`, `legacy_anon` or `legacy_service_role`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// What a listing shows of it.
    pub prefix: String,
    /// The key, sealed.
    pub sealed: Vec<u8>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// A signing key's stored row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// Its id.
    pub id: Uuid,
    /// `current`, `standby` or `previous`.
    pub status: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    /// Its key id.
    pub kid: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// The private key, sealed.
    pub private_key: Vec<u8>,
}

/// A personal access token's stored row (never the token).
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct AccessTokenRow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its first characters.
    pub prefix: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// One audit-log entry.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct AuditRow {
    /// Its position.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who (user id), if a user.
    pub actor_id: Option<Uuid>,
    /// Who, as shown (email, or `system`).
    pub actor: String,
    /// What.
    pub action: String,
    /// Which project, if one.
    pub project_ref: Option<String>,
    /// More.
    pub details: serde_json::Value,
}

/// Who does something, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The platform user, or `None` for the server itself (the command line).
    pub user_id: Option<Uuid>,
    /// Shown in the log.
    pub name: String,
}

impl Actor {
    /// The server itself (command-line operations).
    pub fn system() -> Self {
        Actor { user_id: None, name: "system".into() }
    }
}

/// The control plane's tables.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// The store on the platform database's pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The platform database's pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    // ----- installation -----

    /// Whether the first owner exists.
    pub async fn has_owner(&self) -> Result<bool> {
        Ok(sqlx::query_scalar("select owner_created_at is not null from forge.installation")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Replaces the setup link's token (its hash).
    pub async fn set_setup_token(&self, hash: &[u8]) -> Result<()> {
        sqlx::query("update forge.installation set setup_token_hash = $1 where owner_created_at is null")
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether `hash` is the live setup token's.
    pub async fn setup_token_matches(&self, hash: &[u8]) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "select coalesce(setup_token_hash = $1 and owner_created_at is null, false) from forge.installation",
        )
        .bind(hash)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Marks the first owner made; false when another request did first.
    pub async fn finish_setup<'e>(&self, executor: impl PgExecutor<'e>) -> Result<bool> {
        let done = sqlx::query(
            "update forge.installation set owner_created_at = now(), setup_token_hash = null \
             where owner_created_at is null",
        )
        .execute(executor)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ----- organizations and members -----

    /// Creates an organization.
    pub async fn create_organization<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        slug: &str,
        name: &str,
    ) -> Result<Organization> {
        sqlx::query_as("insert into forge.organizations (slug, name) values ($1, $2) returning *")
            .bind(slug)
            .bind(name)
            .fetch_one(executor)
            .await
            .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
                Some(c) if c == "23505" => Error::conflict("An organization with this id exists"),
                _ => e.into(),
            })
    }

    /// The organization with this slug.
    pub async fn organization(&self, slug: &str) -> Result<Option<Organization>> {
        Ok(sqlx::query_as("select * from forge.organizations where slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The organizations `user` belongs to, with their role in each.
    pub async fn organizations_of(&self, user: Uuid) -> Result<Vec<(Organization, Role)>> {
        let rows: Vec<(Uuid, String, String, OffsetDateTime, String)> = sqlx::query_as(
            "select o.id, o.slug, o.name, o.created_at, m.role from forge.organizations o \
             join forge.members m on m.organization_id = o.id where m.user_id = $1 order by o.created_at, o.slug",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, slug, name, created_at, role)| {
                Some((Organization { id, slug, name, created_at }, Role::parse(&role)?))
            })
            .collect())
    }

    /// `user`'s role in the organization, if a member.
    pub async fn role(&self, organization: Uuid, user: Uuid) -> Result<Option<Role>> {
        let role: Option<String> =
            sqlx::query_scalar("select role from forge.members where organization_id = $1 and user_id = $2")
                .bind(organization)
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
        Ok(role.as_deref().and_then(Role::parse))
    }

    /// Adds or changes a member.
    pub async fn put_member<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        organization: Uuid,
        user: Uuid,
        role: Role,
    ) -> Result<()> {
        sqlx::query(
            "insert into forge.members (organization_id, user_id, role) values ($1, $2, $3) \
             on conflict (organization_id, user_id) do update set role = excluded.role",
        )
        .bind(organization)
        .bind(user)
        .bind(role.as_str())
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Removes a member; false when not one.
    pub async fn remove_member(&self, organization: Uuid, user: Uuid) -> Result<bool> {
        let done = sqlx::query("delete from forge.members where organization_id = $1 and user_id = $2")
            .bind(organization)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many owners the organization has.
    pub async fn owners(&self, organization: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from forge.members where organization_id = $1 and role = 'owner'")
            .bind(organization)
            .fetch_one(&self.pool)
            .await?)
    }

    /// The organization's members.
    pub async fn members(&self, organization: Uuid) -> Result<Vec<Member>> {
        Ok(sqlx::query_as(
            "select m.user_id, u.email::text as email, m.role from forge.members m \
             join auth.users u on u.id = m.user_id where m.organization_id = $1 order by m.created_at, u.email",
        )
        .bind(organization)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The platform user with this email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar("select id from auth.users where lower(email) = lower($1) and deleted_at is null")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A platform user's email.
    pub async fn user_email(&self, user: Uuid) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("select email::text from auth.users where id = $1 and deleted_at is null")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    // ----- invitations -----

    /// Records an invitation.
    pub async fn invite(
        &self,
        organization: Uuid,
        email: &str,
        role: Role,
        token_hash: &[u8],
        by: Option<Uuid>,
    ) -> Result<Uuid> {
        Ok(sqlx::query_scalar(
            "insert into forge.invitations (organization_id, email, role, token_hash, invited_by, expires_at) \
             values ($1, lower($2), $3, $4, $5, now() + interval '7 days') returning id",
        )
        .bind(organization)
        .bind(email)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(by)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Takes a live invitation for `email` by its token: (organization, role).
    pub async fn accept_invitation<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        token_hash: &[u8],
        email: &str,
    ) -> Result<Option<(Uuid, Role)>> {
        let row: Option<(Uuid, String)> = sqlx::query_as(
            "update forge.invitations set accepted_at = now() where token_hash = $1 and lower(email) = lower($2) \
             and accepted_at is null and expires_at > now() returning organization_id, role",
        )
        .bind(token_hash)
        .bind(email)
        .fetch_optional(executor)
        .await?;
        Ok(row.and_then(|(org, role)| Some((org, Role::parse(&role)?))))
    }

    // ----- clusters -----

    /// Records a cluster (its URLs sealed), or updates it.
    pub async fn put_cluster(&self, id: &str, url: &[u8], gateway_url: Option<&[u8]>) -> Result<()> {
        sqlx::query(
            "insert into forge.clusters (id, url, gateway_url) values ($1, $2, $3) \
             on conflict (id) do update set url = excluded.url, gateway_url = excluded.gateway_url",
        )
        .bind(id)
        .bind(url)
        .bind(gateway_url)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every cluster: id, sealed URL, sealed gateway URL.
    pub async fn clusters(&self) -> Result<Vec<(String, Vec<u8>, Option<Vec<u8>>)>> {
        Ok(sqlx::query_as("select id, url, gateway_url from forge.clusters order by id").fetch_all(&self.pool).await?)
    }

    /// How many projects each cluster holds.
    pub async fn cluster_loads(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "select c.id, count(p.ref) from forge.clusters c left join forge.projects p on p.cluster_id = c.id \
             group by c.id order by c.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    // ----- projects -----

    /// Records a new project.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_project<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        reference: &str,
        organization: Uuid,
        name: &str,
        status: Status,
        cluster: Option<&str>,
        database: Option<&str>,
        region: &str,
    ) -> Result<()> {
        sqlx::query(
            "insert into forge.projects (ref, organization_id, name, status, cluster_id, database, region) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(reference)
        .bind(organization)
        .bind(name)
        .bind(status.as_str())
        .bind(cluster)
        .bind(database)
        .bind(region)
        .execute(executor)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.code()) {
            Some(c) if c == "23505" => Error::conflict("A project with this ref exists"),
            _ => e.into(),
        })?;
        Ok(())
    }

    /// One project.
    pub async fn project(&self, reference: &str) -> Result<Option<ProjectRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {PROJECT_COLUMNS} from forge.projects p join forge.organizations o on o.id = p.organization_id \
             where p.ref = $1"
        )))
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The projects `user` may see (those of their organizations), or every project (`None`).
    pub async fn projects(&self, user: Option<Uuid>) -> Result<Vec<ProjectRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {PROJECT_COLUMNS} from forge.projects p join forge.organizations o on o.id = p.organization_id \
             where $1::uuid is null or exists (select from forge.members m \
                 where m.organization_id = p.organization_id and m.user_id = $1) \
             order by p.created_at, p.ref"
        )))
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sets a project's status (a new revision, so every node notices).
    pub async fn set_status<'e>(&self, executor: impl PgExecutor<'e>, reference: &str, status: Status) -> Result<()> {
        sqlx::query(
            "update forge.projects set status = $2, revision = nextval('forge.revision'), updated_at = now() \
             where ref = $1",
        )
        .bind(reference)
        .bind(status.as_str())
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Records which migrations a project's database has (no new revision: nothing a node
    /// holds changes).
    pub async fn set_migrations(&self, reference: &str, migrations: &str) -> Result<()> {
        sqlx::query("update forge.projects set migrations = $2 where ref = $1")
            .bind(reference)
            .bind(migrations)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives a project a new revision (its keys changed).
    pub async fn touch<'e>(&self, executor: impl PgExecutor<'e>, reference: &str) -> Result<()> {
        sqlx::query(
            "update forge.projects set revision = nextval('forge.revision'), updated_at = now() where ref = $1",
        )
        .bind(reference)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Moves a project to another organization.
    pub async fn transfer<'e>(&self, executor: impl PgExecutor<'e>, reference: &str, organization: Uuid) -> Result<()> {
        sqlx::query(
            "update forge.projects set organization_id = $2, revision = nextval('forge.revision'), \
             updated_at = now() where ref = $1",
        )
        .bind(reference)
        .bind(organization)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Forgets a project (its keys and secrets go with it).
    pub async fn delete_project(&self, reference: &str) -> Result<()> {
        sqlx::query("delete from forge.projects where ref = $1").bind(reference).execute(&self.pool).await?;
        Ok(())
    }

    /// The projects changed after `revision`: (ref, revision), and the newest revision.
    pub async fn changed_since(&self, revision: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("select ref, revision from forge.projects where revision > $1 order by revision")
            .bind(revision)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The newest revision of any project (deleted ones leave a gap; the sequence's value
    /// counts those too).
    pub async fn revision(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select coalesce(max(revision), 0) from forge.projects").fetch_one(&self.pool).await?)
    }

    /// Which of `refs` still exist.
    pub async fn existing(&self, refs: &[String]) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("select ref from forge.projects where ref = any($1)")
            .bind(refs)
            .fetch_all(&self.pool)
            .await?)
    }

    // ----- secrets and keys -----

    /// Stores a project's sealed JWT secret.
    pub async fn put_secret<'e>(&self, executor: impl PgExecutor<'e>, reference: &str, sealed: &[u8]) -> Result<()> {
        sqlx::query(
            "insert into forge.project_secrets (ref, jwt_secret) values ($1, $2) \
             on conflict (ref) do update set jwt_secret = excluded.jwt_secret",
        )
        .bind(reference)
        .bind(sealed)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Stores a project's sealed owner password.
    pub async fn put_owner_password(&self, reference: &str, sealed: &[u8]) -> Result<()> {
        sqlx::query("update forge.project_secrets set owner_password = $2 where ref = $1")
            .bind(reference)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A project's sealed owner password.
    pub async fn owner_password(&self, reference: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("select owner_password from forge.project_secrets where ref = $1")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?
            .flatten())
    }

    /// A project's sealed JWT secret.
    pub async fn secret(&self, reference: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("select jwt_secret from forge.project_secrets where ref = $1")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Stores a signing key (sealed PKCS#8).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_signing_key<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        id: Uuid,
        reference: &str,
        status: &str,
        algorithm: &str,
        kid: &str,
        sealed: &[u8],
    ) -> Result<()> {
        sqlx::query(
            "insert into forge.signing_keys (id, ref, status, algorithm, kid, private_key) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(reference)
        .bind(status)
        .bind(algorithm)
        .bind(kid)
        .bind(sealed)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// A project's signing keys: (id, status, sealed PKCS#8), current first.
    pub async fn signing_keys(&self, reference: &str) -> Result<Vec<(Uuid, String, Vec<u8>)>> {
        Ok(sqlx::query_as(
            "select id, status, private_key from forge.signing_keys where ref = $1 \
             order by case status when 'current' then 0 when 'standby' then 1 else 2 end, created_at desc",
        )
        .bind(reference)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Rotates a project's signing keys: the current one becomes previous, the standby one
    /// current. The caller inserts the new standby key in the same transaction.
    pub async fn rotate_signing_keys(&self, conn: &mut sqlx::PgConnection, reference: &str) -> Result<bool> {
        let standby: i64 =
            sqlx::query_scalar("select count(*) from forge.signing_keys where ref = $1 and status = 'standby'")
                .bind(reference)
                .fetch_one(&mut *conn)
                .await?;
        if standby == 0 {
            return Ok(false);
        }
        sqlx::query("update forge.signing_keys set status = 'previous' where ref = $1 and status = 'current'")
            .bind(reference)
            .execute(&mut *conn)
            .await?;
        sqlx::query("update forge.signing_keys set status = 'current' where ref = $1 and status = 'standby'")
            .bind(reference)
            .execute(&mut *conn)
            .await?;
        Ok(true)
    }

    /// Deletes a previous signing key (never the current or standby one); false when there
    /// is no such previous key.
    pub async fn delete_signing_key<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        reference: &str,
        id: Uuid,
    ) -> Result<bool> {
        let done = sqlx::query("delete from forge.signing_keys where ref = $1 and id = $2 and status = 'previous'")
            .bind(reference)
            .bind(id)
            .execute(executor)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A project's signing keys as listed: id, status, algorithm, kid, created, sealed key.
    pub async fn signing_key_rows(&self, reference: &str) -> Result<Vec<SigningKeyRow>> {
        Ok(sqlx::query_as(
            "select id, status, algorithm, kid, created_at, private_key from forge.signing_keys where ref = $1 \
             order by case status when 'current' then 0 when 'standby' then 1 else 2 end, created_at desc",
        )
        .bind(reference)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stores an API key.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_api_key<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        id: Uuid,
        reference: &str,
        kind: &str,
        name: &str,
        prefix: &str,
        hash: &[u8],
        sealed: &[u8],
        by: Option<Uuid>,
    ) -> Result<()> {
        sqlx::query(
            "insert into forge.api_keys (id, ref, kind, name, prefix, key_hash, sealed, created_by) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(reference)
        .bind(kind)
        .bind(name)
        .bind(prefix)
        .bind(hash)
        .bind(sealed)
        .bind(by)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// A project's live API keys, oldest first.
    pub async fn api_keys(&self, reference: &str) -> Result<Vec<ApiKeyRow>> {
        Ok(sqlx::query_as(
            "select id, kind, name, prefix, sealed, created_at from forge.api_keys \
             where ref = $1 and revoked_at is null order by created_at, id",
        )
        .bind(reference)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes one key; false when there is no such live key.
    pub async fn revoke_api_key<'e>(&self, executor: impl PgExecutor<'e>, reference: &str, id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "update forge.api_keys set revoked_at = now() where ref = $1 and id = $2 and revoked_at is null",
        )
        .bind(reference)
        .bind(id)
        .execute(executor)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ----- personal access tokens -----

    /// Stores a token's hash.
    pub async fn insert_access_token(
        &self,
        user: Uuid,
        name: &str,
        prefix: &str,
        hash: &[u8],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<AccessTokenRow> {
        Ok(sqlx::query_as(
            "insert into forge.access_tokens (user_id, name, prefix, token_hash, expires_at) \
             values ($1, $2, $3, $4, $5) returning id, name, prefix, created_at, expires_at, last_used_at",
        )
        .bind(user)
        .bind(name)
        .bind(prefix)
        .bind(hash)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The user a live token belongs to (and notes its use, at most once a minute).
    pub async fn access_token_user(&self, hash: &[u8]) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar(
            "with t as (select id, user_id from forge.access_tokens \
                 where token_hash = $1 and (expires_at is null or expires_at > now())), \
             used as (update forge.access_tokens a set last_used_at = now() from t \
                 where a.id = t.id and (a.last_used_at is null or a.last_used_at < now() - interval '1 minute')) \
             select t.user_id from t join auth.users u on u.id = t.user_id \
             where u.deleted_at is null and (u.banned_until is null or u.banned_until < now())",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A user's tokens.
    pub async fn access_tokens(&self, user: Uuid) -> Result<Vec<AccessTokenRow>> {
        Ok(sqlx::query_as(
            "select id, name, prefix, created_at, expires_at, last_used_at from forge.access_tokens \
             where user_id = $1 order by created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes a user's token; false when there is none.
    pub async fn delete_access_token(&self, user: Uuid, id: Uuid) -> Result<bool> {
        let done = sqlx::query("delete from forge.access_tokens where user_id = $1 and id = $2")
            .bind(user)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ----- audit -----

    /// Appends to the audit log.
    pub async fn audit<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        actor: &Actor,
        action: &str,
        organization: Option<Uuid>,
        project: Option<&str>,
        details: serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "insert into forge.audit_log (actor_id, actor, action, organization_id, project_ref, details) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(actor.user_id)
        .bind(&actor.name)
        .bind(action)
        .bind(organization)
        .bind(project)
        .bind(details)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// An organization's audit log, newest first.
    pub async fn audit_log(&self, organization: Uuid, limit: i64) -> Result<Vec<AuditRow>> {
        Ok(sqlx::query_as(
            "select id, at, actor_id, actor, action, project_ref, details from forge.audit_log \
             where organization_id = $1 order by id desc limit $2",
        )
        .bind(organization)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
