//! The bootstrap SQL every project database gets (roles, `auth` helpers, the
//! `supabase_realtime` publication and the DDL event trigger). See `sql/bootstrap.sql`.

use sqlx::PgPool;

use crate::error::ForgeError;

/// The bootstrap script. Idempotent: safe to run on every start.
pub const BOOTSTRAP_SQL: &str = include_str!("../sql/bootstrap.sql");

/// The channel the DDL event trigger notifies (PostgREST's), with payload `reload schema`.
pub const RELOAD_CHANNEL: &str = "pgrst";

/// Applies [`BOOTSTRAP_SQL`] in one transaction, serialized with other bootstraps of the same
/// database by an advisory lock.
#[tracing::instrument(skip_all)]
pub async fn apply(pool: &PgPool) -> Result<(), ForgeError> {
    let mut tx = pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1)").bind(crate::migrate::LOCK_KEY).execute(&mut *tx).await?;
    sqlx::raw_sql(BOOTSTRAP_SQL).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
