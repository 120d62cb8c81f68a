//! Reading a logical replication slot through the SQL interface.
//!
//! [`Capture`] peeks at the slot with `pg_logical_slot_peek_binary_changes` (pgoutput,
//! protocol 1), decodes whole transactions in commit order into [`Change`]s, and moves the
//! slot on only when the caller says the changes were handed on ([`Capture::confirm`]). A
//! crash between the two re-delivers the batch rather than losing it.
//!
//! Architecture invariant: the slot's confirmed position only ever lands on a transaction
//! boundary (the end of a commit record, or the WAL flush position read before the peek, which
//! every transaction that committed before it lies behind), and never moves inside
//! [`Capture::next_batch`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use sqlx::{Acquire as _, PgConnection, PgPool};

use super::pgoutput::{DecodeError, Decoder, Lsn, Message, OldKind, Relation, TupleValue};
use super::value::{TypeCache, oid_of};
use super::{Change, ChangeKind, Column};

/// The publication users add their tables to (created by forge-core's bootstrap).
pub(crate) const PUBLICATION: &str = "supabase_realtime";
/// The publication of `realtime.messages` (broadcast from the database).
pub(crate) const MESSAGES_PUBLICATION: &str = "supabase_realtime_messages_publication";
/// What Supabase puts in `errors` for an INSERT or UPDATE on a table without a primary key
/// (upstream `realtime.apply_rls`).
pub(crate) const NO_PRIMARY_KEY: &str = "Error 400: Bad Request, no primary key";

/// Why capture failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CaptureError {
    /// A query failed.
    #[error("change capture query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// pgoutput sent something we could not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The slot is gone (dropped by an operator, or never made).
    #[error("replication slot {0} does not exist")]
    SlotMissing(String),
    /// Another session is reading the slot (another node that thinks it leads).
    #[error("replication slot {0} is in use by another session")]
    SlotInUse(String),
}

/// The changes of whole transactions, in commit order, and where the slot may move once
/// they are handed on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Batch {
    /// The row changes.
    pub(crate) changes: Vec<Change>,
    /// Pass this to [`Capture::confirm`] after handing the changes on.
    pub(crate) confirm: Lsn,
}

/// A table's shape as the payload needs it, built from a `Relation` message and the catalog.
#[derive(Debug)]
struct Shape {
    relation: Arc<Relation>,
    schema: Arc<str>,
    table: Arc<str>,
    columns: Arc<Vec<Column>>,
    primary_key: Arc<Vec<String>>,
}

/// A decoded row change waiting for its table's shape.
#[derive(Debug)]
struct RawChange {
    relation: Arc<Relation>,
    kind: ChangeKind,
    new: Option<Vec<TupleValue>>,
    old: Option<(OldKind, Vec<TupleValue>)>,
}

/// Reads one logical slot of one database. Only the leader (see `leader`) should hold one.
#[derive(Debug)]
pub(crate) struct Capture {
    /// Whether opening found the slot invalidated and made it anew (changes were lost).
    pub(crate) lost: bool,
    pool: PgPool,
    slot: String,
    decoder: Decoder,
    types: TypeCache,
    shapes: HashMap<u32, Shape>,
}

/// The slot name for the pool's database: `forge_realtime_<database>`, lowercase letters,
/// digits and underscores, at most 63 bytes (slot names are cluster-wide).
pub(crate) async fn slot_name(pool: &PgPool) -> Result<String, CaptureError> {
    let db: String = sqlx::query_scalar("select current_database()::text").fetch_one(pool).await?;
    Ok(slot_name_for(&db))
}

fn slot_name_for(database: &str) -> String {
    const PREFIX: &str = "forge_realtime_";
    let sanitized: String =
        database.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if sanitized == database && PREFIX.len() + sanitized.len() <= 63 {
        return format!("{PREFIX}{sanitized}");
    }
    // Lossy or too long: a hash of the real name keeps different databases apart.
    let hash = format!("{:016x}", fnv1a(database.as_bytes()));
    let keep = (63 - PREFIX.len() - 1 - hash.len()).min(sanitized.len());
    format!("{PREFIX}{}_{hash}", &sanitized[..keep])
}

/// 64-bit FNV-1a: a small hash that is the same on every platform and version.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Whether the error is the SQLSTATE `code`.
fn is_code(e: &sqlx::Error, code: &str) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == code)
}

/// Runs a `create ...` that another node may run at the same moment: `duplicate_object`
/// (42710) means it exists, which is what we wanted.
async fn create_racy(
    conn: &mut PgConnection,
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<(), sqlx::Error> {
    match query.execute(conn).await {
        Err(e) if is_code(&e, "42710") => Ok(()),
        other => other.map(|_| ()),
    }
}

impl Capture {
    /// Opens the slot `slot_name`, creating the publications and the slot if missing.
    ///
    /// `supabase_realtime` comes from forge-core's bootstrap (and is created here if someone
    /// dropped it). `supabase_realtime_messages_publication` is created when
    /// `realtime.messages` exists. Publications are made before the slot, so the slot never
    /// decodes WAL from before they existed (pgoutput fails on a publication its historic
    /// snapshot cannot see).
    #[tracing::instrument(skip_all, fields(slot = slot_name))]
    pub(crate) async fn open(pool: &PgPool, slot_name: &str) -> Result<Capture, CaptureError> {
        let mut conn = pool.acquire().await?;
        let (realtime, messages_table, messages): (bool, bool, bool) = sqlx::query_as(
            "select exists (select 1 from pg_publication where pubname = $1), \
                    to_regclass('realtime.messages') is not null, \
                    exists (select 1 from pg_publication where pubname = $2)",
        )
        .bind(PUBLICATION)
        .bind(MESSAGES_PUBLICATION)
        .fetch_one(&mut *conn)
        .await?;
        if !realtime {
            create_racy(&mut conn, sqlx::query("create publication supabase_realtime")).await?;
        }
        if messages_table && !messages {
            create_racy(
                &mut conn,
                sqlx::query("create publication supabase_realtime_messages_publication for table realtime.messages"),
            )
            .await?;
        }
        let status: Option<Option<String>> =
            sqlx::query_scalar("select wal_status from pg_replication_slots where slot_name = $1")
                .bind(slot_name)
                .fetch_optional(&mut *conn)
                .await?;
        // A slot Postgres invalidated (it kept more WAL than max_slot_wal_keep_size while no
        // one read it) can never be read again: drop it and start from now. The changes it
        // lost are gone; the caller is told.
        let lost = matches!(&status, Some(Some(s)) if s == "lost");
        if lost {
            tracing::error!(
                slot = slot_name,
                "the replication slot was invalidated; changes committed meanwhile are lost"
            );
            sqlx::query("select pg_drop_replication_slot($1)").bind(slot_name).execute(&mut *conn).await?;
        }
        if status.is_none() || lost {
            create_racy(
                &mut conn,
                sqlx::query("select pg_create_logical_replication_slot($1, 'pgoutput')").bind(slot_name),
            )
            .await?;
            tracing::info!(slot = slot_name, "created the logical replication slot");
        }
        Ok(Capture {
            lost,
            pool: pool.clone(),
            slot: slot_name.to_owned(),
            decoder: Decoder::default(),
            types: TypeCache::default(),
            shapes: HashMap::new(),
        })
    }

    /// The slot's name.
    #[cfg(test)]
    pub(crate) fn slot(&self) -> &str {
        &self.slot
    }

    /// The pool it reads with.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Reads the next whole transactions, at most about `max_changes` pgoutput messages
    /// (a transaction is never split, so a large one can exceed it; `0` or less is no limit).
    /// Does not move the slot: call [`Capture::confirm`] with [`Batch::confirm`] after the
    /// changes were handed on.
    #[tracing::instrument(skip_all, fields(slot = %self.slot))]
    pub(crate) async fn next_batch(&mut self, max_changes: i32) -> Result<Batch, CaptureError> {
        let mut conn = self.pool.acquire().await?;
        let (flush, confirmed, messages): (String, Option<String>, bool) = sqlx::query_as(
            "select pg_current_wal_flush_lsn()::text, \
                    (select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1), \
                    exists (select 1 from pg_publication where pubname = $2)",
        )
        .bind(&self.slot)
        .bind(MESSAGES_PUBLICATION)
        .fetch_one(&mut *conn)
        .await?;
        let upto: Lsn = flush.parse()?;
        let confirmed: Lsn = confirmed.ok_or_else(|| CaptureError::SlotMissing(self.slot.clone()))?.parse()?;
        let limit = (max_changes > 0).then_some(max_changes);

        let rows = if messages {
            let both = format!("{PUBLICATION},{MESSAGES_PUBLICATION}");
            match self.peek(&mut conn, upto, limit, &both).await {
                // undefined_object: the messages publication is newer than the WAL being
                // decoded, so its historic snapshot cannot see it. Nothing before its
                // creation was published through it; read that part without it.
                Err(CaptureError::Database(e)) if is_code(&e, "42704") => {
                    self.peek(&mut conn, upto, limit, PUBLICATION).await?
                }
                other => other?,
            }
        } else {
            self.peek(&mut conn, upto, limit, PUBLICATION).await?
        };

        // Decode: whole transactions only, in commit order.
        let row_count = rows.len();
        let mut done: Vec<(i64, Vec<RawChange>)> = Vec::new();
        let mut commits: Vec<Lsn> = Vec::new();
        let mut current: Option<(i64, Vec<RawChange>)> = None;
        let mut last_commit: Option<Lsn> = None;
        for data in rows {
            match self.decoder.decode(&data)? {
                Message::Begin { timestamp, .. } => current = Some((timestamp, Vec::new())),
                Message::Commit { end_lsn, .. } => {
                    if let Some(txn) = current.take() {
                        if !txn.1.is_empty() {
                            done.push(txn);
                            commits.push(end_lsn);
                        }
                        last_commit = Some(end_lsn);
                    }
                }
                Message::Relation(rel) => {
                    // A new session or a changed table: rebuild its shape (and re-read its
                    // primary key) before using it.
                    self.shapes.remove(&rel.oid);
                }
                Message::Type { oid, .. } => self.types.invalidate(oid),
                Message::Insert { relation, new } => {
                    push(&mut current, RawChange { relation, kind: ChangeKind::Insert, new: Some(new), old: None })
                }
                Message::Update { relation, old, new } => {
                    push(&mut current, RawChange { relation, kind: ChangeKind::Update, new: Some(new), old })
                }
                Message::Delete { relation, old } => {
                    push(&mut current, RawChange { relation, kind: ChangeKind::Delete, new: None, old: Some(old) })
                }
                Message::Truncate { .. } | Message::Origin { .. } | Message::Logical { .. } => {}
            }
        }

        self.load_shapes(&mut conn, &done).await?;
        let mut changes = Vec::with_capacity(done.iter().map(|t| t.1.len()).sum());
        for ((timestamp, raw), commit) in done.into_iter().zip(commits) {
            let commit_timestamp = commit_timestamp(timestamp);
            for (seq, change) in raw.into_iter().enumerate() {
                let mut change = self.build(change, &commit_timestamp);
                change.position = (commit.0, u32::try_from(seq).unwrap_or(u32::MAX));
                changes.push(change);
            }
        }

        // Everything up to `upto` was decoded unless the limit stopped the peek early; then
        // resume after the last whole transaction returned.
        let confirm = match limit {
            Some(l) if row_count >= usize::try_from(l).unwrap_or(usize::MAX) => last_commit.unwrap_or(confirmed),
            _ => upto,
        };
        Ok(Batch { changes, confirm: confirm.max(confirmed) })
    }

    async fn peek(
        &self,
        conn: &mut PgConnection,
        upto: Lsn,
        limit: Option<i32>,
        publications: &str,
    ) -> Result<Vec<Vec<u8>>, CaptureError> {
        let mut tx = conn.begin().await?;
        // Text output depends on these; render as Supabase's session does.
        sqlx::query(
            "select set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, MDY', true), \
                    set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true), \
                    set_config('bytea_output', 'hex', true)",
        )
        .execute(&mut *tx)
        .await?;
        let rows: Result<Vec<Vec<u8>>, sqlx::Error> = sqlx::query_scalar(
            "select data from pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3, \
                 'proto_version', '1', 'publication_names', $4)",
        )
        .bind(&self.slot)
        .bind(upto.to_string())
        .bind(limit)
        .bind(publications)
        .fetch_all(&mut *tx)
        .await;
        match rows {
            Ok(rows) => {
                tx.commit().await?;
                Ok(rows)
            }
            Err(e) if is_code(&e, "55006") => Err(CaptureError::SlotInUse(self.slot.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Builds the shapes of the relations in `txns` that have none: their column types and
    /// primary keys from the catalog.
    async fn load_shapes(
        &mut self,
        conn: &mut PgConnection,
        txns: &[(i64, Vec<RawChange>)],
    ) -> Result<(), CaptureError> {
        let mut needed: HashMap<u32, Arc<Relation>> = HashMap::new();
        let mut type_oids: HashSet<u32> = HashSet::new();
        for change in txns.iter().flat_map(|t| &t.1) {
            let fresh =
                self.shapes.get(&change.relation.oid).is_some_and(|s| Arc::ptr_eq(&s.relation, &change.relation));
            if !fresh {
                // A table altered inside the batch has two shapes: keep the latest, and load
                // the types of both.
                type_oids.extend(change.relation.columns.iter().map(|c| c.type_oid));
                needed.insert(change.relation.oid, change.relation.clone());
            }
        }
        if needed.is_empty() {
            return Ok(());
        }
        let missing = self.types.missing(type_oids);
        if !missing.is_empty() {
            self.types.load(conn, missing).await?;
        }
        let oids: Vec<i64> = needed.keys().map(|&o| i64::from(o)).collect();
        let keys: Vec<(i64, Vec<String>)> = sqlx::query_as(
            "select i.indrelid::int8, array_agg(a.attname::text order by a.attnum) \
             from pg_index i \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey::int2[]) \
             where i.indrelid = any($1::int8[]::oid[]) and i.indisprimary \
             group by i.indrelid",
        )
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await?;
        let mut keys: HashMap<u32, Vec<String>> = keys.into_iter().map(|(o, k)| (oid_of(o), k)).collect();
        for (oid, relation) in needed {
            let shape = Shape {
                schema: relation.namespace.as_str().into(),
                table: relation.name.as_str().into(),
                columns: Arc::new(self.columns(&relation)),
                primary_key: Arc::new(keys.remove(&oid).unwrap_or_default()),
                relation,
            };
            self.shapes.insert(oid, shape);
        }
        Ok(())
    }

    fn columns(&self, relation: &Relation) -> Vec<Column> {
        relation
            .columns
            .iter()
            .map(|c| Column { name: c.name.clone(), type_name: self.types.name(c.type_oid) })
            .collect()
    }

    /// One [`Change`] as Supabase's `realtime.apply_rls` shapes it (before RLS and column
    /// privileges, which the subscriber side applies).
    fn build(&self, raw: RawChange, commit_timestamp: &str) -> Change {
        let shape = &self.shapes[&raw.relation.oid];
        let rel = &raw.relation;
        let value = |i: usize, tuple: &[TupleValue]| -> Option<Value> {
            match tuple.get(i)? {
                TupleValue::Null => Some(Value::Null),
                TupleValue::Text(s) => Some(self.types.to_json(rel.columns[i].type_oid, s)),
                TupleValue::Binary(b) => Some(Value::String(b.iter().fold(String::from("\\x"), |mut s, x| {
                    s.push_str(&format!("{x:02x}"));
                    s
                }))),
                TupleValue::UnchangedToast => None,
            }
        };
        // Which old-tuple columns carry data: all with FULL, the identity's with K.
        let old_has = |i: usize, kind: OldKind| kind == OldKind::Full || rel.columns[i].key;

        let record = raw.new.as_ref().map(|new| {
            let mut map = Map::new();
            for (i, col) in rel.columns.iter().enumerate() {
                let v = value(i, new).or_else(|| {
                    // Unchanged TOAST: upstream `apply_rls` builds `record` from wal2json's
                    // columns (which leave unchanged TOAST out) full-outer-joined with the old
                    // identity, taking the old value when the new one is missing. So the value
                    // comes from the old row when it was sent (REPLICA IDENTITY FULL), and
                    // otherwise the key is absent from `record`.
                    // (supabase/realtime priv/repo/tenant_schema/realtime/functions/apply_rls.sql)
                    let (kind, old) = raw.old.as_ref()?;
                    if old_has(i, *kind) { value(i, old) } else { None }
                });
                if let Some(v) = v {
                    map.insert(col.name.clone(), v);
                }
            }
            map
        });

        let old_record = match (raw.kind, &raw.old, &raw.new) {
            (ChangeKind::Insert, ..) => None,
            (_, Some((kind, old)), _) => {
                let mut map = Map::new();
                for (i, col) in rel.columns.iter().enumerate() {
                    if old_has(i, *kind)
                        && let Some(v) = value(i, old)
                    {
                        map.insert(col.name.clone(), v);
                    }
                }
                Some(map)
            }
            // UPDATE that kept its key: wal2json (which Supabase decodes with) takes the
            // identity from the new row, so `old_record` has the key's columns
            // (eulerto/wal2json wal2json.c, "identity can be obtained from new tuple"). With
            // REPLICA IDENTITY NOTHING its identity bitmap is empty and it prints every column.
            (_, None, Some(new)) => {
                let all = rel.replica_identity == b'n' && !shape.primary_key.is_empty();
                let mut map = Map::new();
                for (i, col) in rel.columns.iter().enumerate() {
                    if (all || col.key)
                        && let Some(v) = value(i, new)
                    {
                        map.insert(col.name.clone(), v);
                    }
                }
                Some(map)
            }
            (_, None, None) => None,
        };

        let errors =
            (raw.kind != ChangeKind::Delete && shape.primary_key.is_empty()).then(|| vec![NO_PRIMARY_KEY.to_owned()]);
        Change {
            schema: shape.schema.clone(),
            table: shape.table.clone(),
            kind: raw.kind,
            commit_timestamp: commit_timestamp.to_owned(),
            columns: if Arc::ptr_eq(&shape.relation, rel) {
                shape.columns.clone()
            } else {
                Arc::new(self.columns(rel)) // the table's shape before an ALTER in this batch
            },
            record,
            old_record,
            primary_key: shape.primary_key.clone(),
            errors,
            position: (0, 0),
        }
    }

    /// Moves the slot to `lsn` (a [`Batch::confirm`]) once the batch was handed on, so the
    /// slot stops retaining that WAL. Positions at or behind the slot's are ignored.
    #[tracing::instrument(skip_all, fields(slot = %self.slot, %lsn))]
    pub(crate) async fn confirm(&mut self, lsn: Lsn) -> Result<(), CaptureError> {
        let result = sqlx::query(
            "select pg_replication_slot_advance(slot_name, $2::text::pg_lsn) from pg_replication_slots \
             where slot_name = $1 and confirmed_flush_lsn < $2::text::pg_lsn",
        )
        .bind(&self.slot)
        .bind(lsn.to_string())
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "55006") => Err(CaptureError::SlotInUse(self.slot.clone())),
            Err(e) => Err(e.into()),
        }
    }
}

fn push(current: &mut Option<(i64, Vec<RawChange>)>, change: RawChange) {
    // pgoutput only sends changes inside Begin/Commit; one outside would be a protocol error
    // we have no transaction (and no timestamp) for, so it is dropped.
    if let Some((_, changes)) = current.as_mut() {
        changes.push(change);
    }
}

/// A pgoutput timestamp (microseconds since 2000-01-01 UTC) as Supabase formats
/// `commit_timestamp`: `to_char(ts at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`,
/// milliseconds truncated (upstream `apply_rls.sql`).
pub(crate) fn commit_timestamp(pg_micros: i64) -> String {
    const UNIX_TO_PG_EPOCH_MICROS: i128 = 946_684_800_000_000;
    let nanos = (i128::from(pg_micros) + UNIX_TO_PG_EPOCH_MICROS) * 1000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => String::new(),
    }
}

/// How many bytes of WAL the slot holds back (`pg_current_wal_lsn()` minus its confirmed
/// position), for metrics.
pub(crate) async fn lag_bytes(pool: &PgPool, slot: &str) -> Result<i64, CaptureError> {
    let lag: Option<i64> = sqlx::query_scalar(
        "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 \
         from pg_replication_slots where slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    lag.ok_or_else(|| CaptureError::SlotMissing(slot.to_owned()))
}

/// Drops the slot if it exists; whether it did.
#[allow(dead_code)] // for removing a project (the platform's project deletion)
pub(crate) async fn drop_slot(pool: &PgPool, slot: &str) -> Result<bool, CaptureError> {
    let dropped =
        sqlx::query("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1")
            .bind(slot)
            .execute(pool)
            .await;
    match dropped {
        Ok(r) => Ok(r.rows_affected() > 0),
        Err(e) if is_code(&e, "55006") => Err(CaptureError::SlotInUse(slot.to_owned())),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names() {
        assert_eq!(slot_name_for("forge_test_1_2"), "forge_realtime_forge_test_1_2");
        let odd = slot_name_for("My-DB");
        assert!(odd.starts_with("forge_realtime_my_db_"), "{odd}");
        assert_ne!(odd, slot_name_for("my_db"));
        assert_ne!(slot_name_for("My-DB"), slot_name_for("My.DB"));
        let long = slot_name_for(&"x".repeat(100));
        assert_eq!(long.len(), 63);
        assert_ne!(long, slot_name_for(&"x".repeat(101)));
        for name in [odd, long, slot_name_for("ünï cødé")] {
            assert!(name.len() <= 63);
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}");
        }
    }

    #[test]
    fn commit_timestamps_like_supabase() {
        // 2024-05-01 12:34:56.789999 UTC: milliseconds are truncated, as `to_char` does.
        let unix_micros: i64 = 1_714_566_896_789_999;
        assert_eq!(commit_timestamp(unix_micros - 946_684_800_000_000), "2024-05-01T12:34:56.789Z");
        assert_eq!(commit_timestamp(0), "2000-01-01T00:00:00.000Z");
    }
}
