//! Sampling a project's database for the gauges, and reading usage back.

use forge_core::ProjectRef;
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{DATABASE_SIZE_BYTES, MONTHLY_ACTIVE_USERS, Meter, STORAGE_BYTES, STORAGE_OBJECTS};

/// One metric and dimension of a project's usage over a period: counters summed over the
/// period's hours, gauges their largest hourly value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UsageRow {
    /// The metric, e.g. `requests` or `storage_bytes`.
    pub metric: String,
    /// The dimension, e.g. `rest:2xx`; `""` when the metric has none.
    pub dimension: String,
    /// `counter` or `gauge`.
    pub kind: String,
    /// The total (counter) or peak (gauge).
    pub value: i64,
}

/// `reference`'s usage in the hours that overlap `[from, to)`, by metric and dimension.
#[tracing::instrument(skip_all, fields(project = %reference))]
pub async fn usage(
    pool: &PgPool,
    reference: &ProjectRef,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    sqlx::query_as(
        "select metric, dimension, \
                case when bool_or(kind = 'gauge') then 'gauge' else 'counter' end as kind, \
                case when bool_or(kind = 'gauge') then max(value) else sum(value)::int8 end as value \
         from forge.usage_hourly \
         where ref = $1 and hour > $2 - interval '1 hour' and hour < $3 \
         group by metric, dimension \
         order by metric, dimension",
    )
    .bind(reference.as_str())
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// Samples `reference`'s database into the meter's gauges: its size, its stored objects'
/// bytes and count, and its users who signed in this calendar month (UTC). `pool` is the
/// project's own database; a schema it lacks (no storage, no auth) is skipped.
#[tracing::instrument(skip_all, fields(project = %reference))]
pub async fn sample_database(meter: &Meter, reference: &ProjectRef, pool: &PgPool) -> Result<(), sqlx::Error> {
    let (size, has_storage, has_auth): (i64, bool, bool) = sqlx::query_as(
        "select pg_database_size(current_database()), \
                to_regclass('storage.objects') is not null, \
                to_regclass('auth.users') is not null",
    )
    .fetch_one(pool)
    .await?;
    meter.record_gauge(reference, DATABASE_SIZE_BYTES, size);
    if has_storage {
        let (bytes, objects): (i64, i64) = sqlx::query_as(
            "select coalesce(sum(case when jsonb_typeof(metadata -> 'size') = 'number' \
                                      then (metadata ->> 'size')::numeric end), 0)::int8, \
                    count(*) \
             from storage.objects",
        )
        .fetch_one(pool)
        .await?;
        meter.record_gauge(reference, STORAGE_BYTES, bytes);
        meter.record_gauge(reference, STORAGE_OBJECTS, objects);
    }
    if has_auth {
        let active: i64 = sqlx::query_scalar(
            "select count(*) from auth.users \
             where last_sign_in_at >= date_trunc('month', now(), 'UTC')",
        )
        .fetch_one(pool)
        .await?;
        meter.record_gauge(reference, MONTHLY_ACTIVE_USERS, active);
    }
    Ok(())
}
