//! The statements behind resumable uploads, on `storage.resumable_uploads`: no HTTP here.
//! The table is the service's own bookkeeping, read and written without RLS; the caller's
//! rights are checked on the object row when the upload finishes.

use std::time::Duration;

use forge_core::{ForgeError, Project};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;

/// An upload in progress (a row of `storage.resumable_uploads`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Upload {
    pub(crate) id: Uuid,
    pub(crate) bucket_id: String,
    pub(crate) name: String,
    /// The creator's role.
    pub(crate) role: String,
    /// The creator's `sub`.
    pub(crate) subject: Option<String>,
    pub(crate) owner_id: Option<String>,
    /// Created with a signed upload URL's token.
    pub(crate) signed: bool,
    pub(crate) upsert: bool,
    pub(crate) upload_length: i64,
    pub(crate) upload_offset: i64,
    /// The part blobs written so far, in order.
    pub(crate) parts: Vec<String>,
    pub(crate) content_type: String,
    pub(crate) cache_control: String,
    pub(crate) user_metadata: Option<Value>,
    /// `Upload-Metadata` as the client sent it.
    pub(crate) upload_metadata: Option<String>,
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) finished_at: Option<OffsetDateTime>,
}

impl Upload {
    /// Unfinished and past its expiry.
    pub(crate) fn expired(&self) -> bool {
        self.finished_at.is_none() && self.expires_at <= OffsetDateTime::now_utc()
    }

    pub(crate) fn length(&self) -> u64 {
        u64::try_from(self.upload_length).unwrap_or(0)
    }

    pub(crate) fn offset(&self) -> u64 {
        u64::try_from(self.upload_offset).unwrap_or(0)
    }
}

/// An upload to create.
#[derive(Debug)]
pub(crate) struct NewUpload<'a> {
    pub(crate) id: Uuid,
    pub(crate) bucket_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) role: &'a str,
    pub(crate) subject: Option<&'a str>,
    pub(crate) owner_id: Option<&'a str>,
    pub(crate) signed: bool,
    pub(crate) upsert: bool,
    pub(crate) upload_length: i64,
    pub(crate) content_type: &'a str,
    pub(crate) cache_control: &'a str,
    pub(crate) user_metadata: &'a Option<Value>,
    pub(crate) upload_metadata: Option<&'a str>,
    pub(crate) expires_at: OffsetDateTime,
}

const UPLOAD_COLUMNS: &str = "id, bucket_id, name, role, subject, owner_id, signed, upsert, upload_length, \
     upload_offset, parts, content_type, cache_control, user_metadata, upload_metadata, expires_at, finished_at";

fn db(e: sqlx::Error) -> crate::error::Error {
    ForgeError::from(e).into()
}

pub(crate) async fn insert(project: &Project, u: &NewUpload<'_>) -> Result<()> {
    sqlx::query(
        "insert into storage.resumable_uploads (id, bucket_id, name, role, subject, owner_id, signed, upsert, \
           upload_length, content_type, cache_control, user_metadata, upload_metadata, expires_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(u.id)
    .bind(u.bucket_id)
    .bind(u.name)
    .bind(u.role)
    .bind(u.subject)
    .bind(u.owner_id)
    .bind(u.signed)
    .bind(u.upsert)
    .bind(u.upload_length)
    .bind(u.content_type)
    .bind(u.cache_control)
    .bind(u.user_metadata)
    .bind(u.upload_metadata)
    .bind(u.expires_at)
    .execute(project.db().pool())
    .await
    .map_err(db)?;
    Ok(())
}

/// The upload `id` of `bucket/name`, if there is one.
pub(crate) async fn load(project: &Project, id: Uuid, bucket: &str, name: &str) -> Result<Option<Upload>> {
    let sql = format!(
        "select {UPLOAD_COLUMNS} from storage.resumable_uploads where id = $1 and bucket_id = $2 and name = $3"
    );
    sqlx::query_as::<_, Upload>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(bucket)
        .bind(name)
        .fetch_optional(project.db().pool())
        .await
        .map_err(db)
}

/// Takes the writer's lease `lease` on upload `id` for `ttl`, unless another writer holds an
/// unexpired one; the upload as it stands once taken.
pub(crate) async fn take_lease(project: &Project, id: Uuid, lease: Uuid, ttl: Duration) -> Result<Option<Upload>> {
    let sql = format!(
        "update storage.resumable_uploads set writer = $2, lease_until = now() + make_interval(secs => $3) \
         where id = $1 and (writer is null or lease_until < now()) returning {UPLOAD_COLUMNS}"
    );
    sqlx::query_as::<_, Upload>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(lease)
        .bind(ttl.as_secs_f64())
        .fetch_optional(project.db().pool())
        .await
        .map_err(db)
}

/// Extends a lease still held by `lease` to `ttl` from now.
pub(crate) async fn renew_lease(project: &Project, id: Uuid, lease: Uuid, ttl: Duration) -> Result<()> {
    sqlx::query(
        "update storage.resumable_uploads set lease_until = now() + make_interval(secs => $3) \
         where id = $1 and writer = $2",
    )
    .bind(id)
    .bind(lease)
    .bind(ttl.as_secs_f64())
    .execute(project.db().pool())
    .await
    .map_err(db)?;
    Ok(())
}

/// Gives a lease up without recording anything.
pub(crate) async fn release_lease(project: &Project, id: Uuid, lease: Uuid) -> Result<()> {
    as_writer(
        project,
        "update storage.resumable_uploads set writer = null, lease_until = null where id = $1 and writer = $2",
        id,
        lease,
    )
    .await
}

/// Runs `sql` on upload `id` (`$1`) as the writer holding `lease` (`$2`).
async fn as_writer(project: &Project, sql: &'static str, id: Uuid, lease: Uuid) -> Result<()> {
    sqlx::query(sql).bind(id).bind(lease).execute(project.db().pool()).await.map_err(db)?;
    Ok(())
}

/// Records where the upload stands and gives the lease up; false if `lease` no longer holds
/// it (another writer took it over).
pub(crate) async fn record(
    project: &Project,
    id: Uuid,
    lease: Uuid,
    offset: i64,
    parts: &[String],
    finished: bool,
) -> Result<bool> {
    let recorded = sqlx::query(
        "update storage.resumable_uploads set upload_offset = $3, parts = $4, \
           finished_at = case when $5 then now() end, writer = null, lease_until = null \
         where id = $1 and writer = $2",
    )
    .bind(id)
    .bind(lease)
    .bind(offset)
    .bind(parts)
    .bind(finished)
    .execute(project.db().pool())
    .await
    .map_err(db)?;
    Ok(recorded.rows_affected() > 0)
}

/// Deletes an upload its writer `lease` gives up on for good.
pub(crate) async fn abandon(project: &Project, id: Uuid, lease: Uuid) -> Result<()> {
    as_writer(project, "delete from storage.resumable_uploads where id = $1 and writer = $2", id, lease).await
}

/// Deletes an unfinished upload nobody is writing; false if one is.
pub(crate) async fn terminate(project: &Project, id: Uuid) -> Result<bool> {
    let deleted = sqlx::query(
        "delete from storage.resumable_uploads where id = $1 and finished_at is null \
           and (writer is null or lease_until < now())",
    )
    .bind(id)
    .execute(project.db().pool())
    .await
    .map_err(db)?;
    Ok(deleted.rows_affected() > 0)
}

/// Deletes up to `limit` expired uploads nobody is writing: their ids, each with whether it
/// was unfinished (its parts are then still in the store).
pub(crate) async fn delete_expired(project: &Project, limit: i64) -> Result<Vec<(Uuid, bool)>> {
    sqlx::query_as(
        "delete from storage.resumable_uploads where id in (select id from storage.resumable_uploads \
           where expires_at < now() and (writer is null or lease_until < now()) \
           order by expires_at limit $1 for update skip locked) \
         returning id, finished_at is null",
    )
    .bind(limit)
    .fetch_all(project.db().pool())
    .await
    .map_err(db)
}
