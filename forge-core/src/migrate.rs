//! Migrations owned per crate.
//!
//! Each crate ships a [`MigrationSet`] named after itself. The ledger `forge.migrations` is
//! keyed by (owner, version), so two crates' version 1 never collide in one database. Applied
//! migrations are checksummed: editing one after release is refused rather than silently
//! ignored, and a database that has migrations this build does not know is refused too.

use aws_lc_rs::digest;
use sqlx::PgPool;

use crate::error::ForgeError;

/// Serializes bootstrap and migrations on one database (an arbitrary, fixed advisory-lock key).
pub(crate) const LOCK_KEY: i64 = 0x466f_7267_654d_6967; // "ForgeMig"

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version, unique and increasing within its set.
    pub version: i64,
    /// A short name.
    pub name: &'static str,
    /// The SQL; may hold several statements.
    pub sql: &'static str,
}

/// The migrations one crate owns.
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    /// The owner, conventionally the crate name (`forge-auth`).
    pub owner: &'static str,
    /// The migrations, in version order.
    pub migrations: &'static [Migration],
}

/// Why migrating failed (beyond database errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// Versions in a set are not strictly increasing.
    #[error("migrations of {owner} are not in strictly increasing version order at version {version}")]
    Unordered {
        /// The set's owner.
        owner: String,
        /// The out-of-order version.
        version: i64,
    },
    /// An applied migration's SQL changed.
    #[error("migration {owner} v{version} was changed after it was applied")]
    Changed {
        /// The set's owner.
        owner: String,
        /// The version.
        version: i64,
    },
    /// The database has a migration this build does not know (a newer build ran here).
    #[error("the database has migration {owner} v{version}, which this build does not know")]
    Unknown {
        /// The set's owner.
        owner: String,
        /// The version.
        version: i64,
    },
    /// A database error.
    #[error(transparent)]
    Database(#[from] ForgeError),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        MigrateError::Database(e.into())
    }
}

/// Applies every pending migration of `sets`, in order, each in its own transaction.
/// Returns how many were applied. Bootstrap must have run first (it creates the ledger).
#[tracing::instrument(skip_all)]
pub async fn run(pool: &PgPool, sets: &[MigrationSet]) -> Result<usize, MigrateError> {
    let mut applied = 0;
    for set in sets {
        if let Some(w) = set.migrations.windows(2).find(|w| w[1].version <= w[0].version) {
            return Err(MigrateError::Unordered { owner: set.owner.into(), version: w[1].version });
        }
        for migration in set.migrations {
            let mut tx = pool.begin().await?;
            sqlx::query("select pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(&mut *tx).await?;
            let checksum = digest::digest(&digest::SHA256, migration.sql.as_bytes()).as_ref().to_vec();
            let existing: Option<Vec<u8>> =
                sqlx::query_scalar("select checksum from forge.migrations where owner = $1 and version = $2")
                    .bind(set.owner)
                    .bind(migration.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            match existing {
                Some(c) if c == checksum => continue,
                Some(_) => {
                    return Err(MigrateError::Changed { owner: set.owner.into(), version: migration.version });
                }
                None => {}
            }
            sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
            sqlx::query("insert into forge.migrations (owner, version, name, checksum) values ($1, $2, $3, $4)")
                .bind(set.owner)
                .bind(migration.version)
                .bind(migration.name)
                .bind(&checksum)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(owner = set.owner, version = migration.version, name = migration.name, "applied migration");
            applied += 1;
        }
        let newest = set.migrations.last().map_or(0, |m| m.version);
        let unknown: Option<i64> =
            sqlx::query_scalar("select min(version) from forge.migrations where owner = $1 and version > $2")
                .bind(set.owner)
                .bind(newest)
                .fetch_one(pool)
                .await?;
        if let Some(version) = unknown {
            return Err(MigrateError::Unknown { owner: set.owner.into(), version });
        }
    }
    Ok(applied)
}
