//! Private channel authorization: Supabase's row-level security checks on `realtime.messages`.
//!
//! A channel joined with `config.private: true` is guarded by the policies users write on
//! `realtime.messages` (SERVER-BEHAVIOUR.md §4d; upstream `Realtime.Tenants.Authorization`).
//! Every check runs in one transaction that is always rolled back, with these settings made
//! transaction-local, as upstream sets them: `role`, `realtime.topic` (the channel name without
//! `realtime:`, what `realtime.topic()` returns), `request.jwt.claims`,
//! `request.jwt.claim.sub`, `request.jwt.claim.role` and `request.headers` (`{}`: a
//! websocket has no per-channel request), plus a `statement_timeout` so that a slow policy
//! cannot hold a connection.
//!
//! - [`read_access`]: as the owner, insert a probe row per extension, switch to the caller,
//!   and see which probes the caller's SELECT policies let through.
//! - [`write_access`]: as the caller, try an INSERT per extension under a savepoint;
//!   SQLSTATE 42501 (a privilege or policy refusal) means no.
//! - [`replay`]: the private broadcasts of a topic since a moment, as the caller sees them.
//!
//! Architecture invariant: nothing a check writes survives it (probe rows are rolled back and
//! so never reach the change stream), and every input is a bound parameter.

use std::time::Duration;

use forge_core::{DbErrorKind, Principal};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, PgConnection, PgPool, Postgres};
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// The most messages one replay returns (upstream's `@hard_limit`).
pub(crate) const REPLAY_MAX_LIMIT: i64 = 25;

/// 0001-01-01T00:00:00Z in Unix milliseconds: earlier `since` values replay from here (no
/// message is older, and Postgres timestamps stop at 4713 BC).
const REPLAY_SINCE_FLOOR_MS: i64 = -62_135_596_800_000;

/// The extensions a channel's policies decide, as `realtime.messages.extension` names them.
const BROADCAST: &str = "broadcast";
const PRESENCE: &str = "presence";

/// What the caller may do on a private channel's topic: for [`read_access`], receive
/// broadcasts / presence; for [`write_access`], send broadcasts / track presence. An
/// extension that was not checked (presence with `presence: false`) is `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Access {
    /// The `broadcast` extension.
    pub(crate) broadcast: bool,
    /// The `presence` extension.
    pub(crate) presence: bool,
}

/// Why a check could not decide. Each variant names the join reply Supabase sends for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AuthzError {
    /// The check itself failed inside the database: a policy raised, ran past the timeout
    /// ([`AuthzError::is_timeout`]), or the caller's role does not exist or lacks a grant. A
    /// join answers `Unauthorized: You do not have permissions to read from this Channel
    /// topic: <topic>`; a replay answers `UnableToReplayMessages: Realtime was unable to
    /// replay messages`. Log the source; never send it to the client.
    #[error("the realtime.messages policies failed")]
    Policy(#[source] sqlx::Error),
    /// Every pooled connection was busy until the pool's acquire timeout:
    /// `IncreaseConnectionPool: Please increase your connection pool size`.
    #[error("no database connection was free in time")]
    Saturated,
    /// The database cannot be reached or did not answer in time: `UnableToConnectToProject:
    /// Realtime was unable to connect to the project database`.
    #[error("the database is unavailable")]
    Unavailable(#[source] Option<sqlx::Error>),
    /// `config.broadcast.replay` is not `{since: <integer ms>, limit?: <integer>}` or `since`
    /// is out of range: `UnableToReplayMessages: Replay params are not valid`.
    #[error("replay params are not valid")]
    InvalidReplayParams,
}

impl AuthzError {
    /// Whether a policy ran past the check's timeout (upstream logs these as `QueryCanceled`).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, AuthzError::Policy(e) if DbErrorKind::of_sqlx(e) == Some(DbErrorKind::QueryCanceled))
    }

    fn from_sqlx(pool: &PgPool, err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(ref db) => {
                // SQLSTATE classes Forge's `DbErrorKind` does not name: 08 connection
                // exception, 53 insufficient resources (too many connections), 57P
                // operator intervention (shutdown, starting up). 57014 (a cancelled statement:
                // the policy timeout) stays a policy failure.
                let code = db.code().unwrap_or_default();
                if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
                    AuthzError::Unavailable(Some(err))
                } else {
                    AuthzError::Policy(err)
                }
            }
            // The pool timed out: saturated when all its connections are open (and busy),
            // unavailable when it could not open the ones it lacks.
            sqlx::Error::PoolTimedOut if pool.size() >= pool.options().get_max_connections() => AuthzError::Saturated,
            other => AuthzError::Unavailable(Some(other)),
        }
    }
}

/// Validated `config.broadcast.replay` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayParams {
    /// Replay messages inserted at or after this moment (Unix milliseconds).
    pub(crate) since_ms: i64,
    /// At most this many (clamped to 1..=25 by [`replay`]).
    pub(crate) limit: i64,
}

impl ReplayParams {
    /// Reads a join's `config.broadcast.replay` value as upstream does. `Ok(None)` when it is
    /// not an object: upstream then replays nothing and the join goes on. `since` must be an
    /// integer; `limit` an integer, or absent, `null` or `false` for 25; anything else is
    /// [`AuthzError::InvalidReplayParams`]. (Whether replay is allowed at all, on a public
    /// channel or without broadcast read, is the join's decision.)
    pub(crate) fn from_json(replay: &Value) -> Result<Option<Self>, AuthzError> {
        let Some(params) = replay.as_object() else {
            return Ok(None);
        };
        let since_ms = params.get("since").and_then(Value::as_i64).ok_or(AuthzError::InvalidReplayParams)?;
        let limit = match params.get("limit") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => REPLAY_MAX_LIMIT,
            // An integer beyond i64 is still an integer to upstream, clamped to the maximum.
            Some(Value::Number(n)) if n.is_u64() && n.as_i64().is_none() => REPLAY_MAX_LIMIT,
            Some(v) => v.as_i64().ok_or(AuthzError::InvalidReplayParams)?,
        };
        Ok(Some(Self { since_ms, limit }))
    }
}

/// A replayed broadcast, pushed to the joining client with `meta: {id, replayed: true}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplayedMessage {
    /// The message's id (`realtime.messages.id`).
    pub(crate) id: Uuid,
    /// The broadcast event.
    pub(crate) event: Option<String>,
    /// The JSON payload (`None` for a binary message).
    pub(crate) payload: Option<Value>,
    /// The binary payload of a `realtime.send_binary` message (not representable to v1
    /// clients; upstream skips it for them).
    pub(crate) binary_payload: Option<Vec<u8>>,
    /// When it was inserted (UTC).
    pub(crate) inserted_at: PrimitiveDateTime,
}

/// Which of the `broadcast` (and, when `presence`, `presence`) extensions the caller may read
/// on `topic` (the channel name without `realtime:`). Runs at join and on every token refresh.
#[tracing::instrument(skip_all, fields(topic = topic))]
pub(crate) async fn read_access(
    pool: &PgPool,
    topic: &str,
    who: &Principal,
    presence: bool,
    timeout: Duration,
) -> Result<Access, AuthzError> {
    let extensions = extensions(presence);
    let mut conn = acquire(pool).await?;
    let checked = tokio::time::timeout(guard(timeout), read_check(&mut conn, topic, who, extensions, timeout)).await;
    let visible = settle(pool, conn, checked)?;
    Ok(access_of(extensions, &visible))
}

/// Which extensions the caller may write on `topic`: send broadcasts, and (when `presence`)
/// track presence. Run lazily on the first client broadcast or track; cache the answer until
/// the next token refresh.
#[tracing::instrument(skip_all, fields(topic = topic))]
pub(crate) async fn write_access(
    pool: &PgPool,
    topic: &str,
    who: &Principal,
    presence: bool,
    timeout: Duration,
) -> Result<Access, AuthzError> {
    let extensions = extensions(presence);
    let mut conn = acquire(pool).await?;
    let checked = tokio::time::timeout(guard(timeout), write_check(&mut conn, topic, who, extensions, timeout)).await;
    let allowed = settle(pool, conn, checked)?;
    Ok(access_of(extensions, &allowed))
}

/// Broadcast replay for a private channel (`config.broadcast.replay`): the newest `limit`
/// (clamped to 1..=25) private broadcasts on `topic` inserted since `since_ms` (and at most a
/// minute in the future), that the caller's SELECT policies let through, oldest first.
/// Messages inserted in one transaction share `inserted_at`; their order is unspecified, as
/// upstream's.
#[tracing::instrument(skip_all, fields(topic = topic))]
pub(crate) async fn replay(
    pool: &PgPool,
    topic: &str,
    who: &Principal,
    since_ms: i64,
    limit: i64,
    timeout: Duration,
) -> Result<Vec<ReplayedMessage>, AuthzError> {
    let limit = limit.clamp(1, REPLAY_MAX_LIMIT);
    // Upstream: `DateTime.from_unix(since, :millisecond)`, which accepts years -9999..=9999.
    let since = OffsetDateTime::from_unix_timestamp_nanos(i128::from(since_ms) * 1_000_000)
        .map_err(|_| AuthzError::InvalidReplayParams)?;
    let since = if since_ms < REPLAY_SINCE_FLOOR_MS {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(REPLAY_SINCE_FLOOR_MS) * 1_000_000)
            .map_err(|_| AuthzError::InvalidReplayParams)?
    } else {
        since
    };
    let since = PrimitiveDateTime::new(since.date(), since.time());
    let mut conn = acquire(pool).await?;
    let queried =
        tokio::time::timeout(guard(timeout), replay_query(&mut conn, topic, who, since, limit, timeout)).await;
    let mut messages = settle(pool, conn, queried)?;
    messages.reverse();
    Ok(messages)
}

fn extensions(presence: bool) -> &'static [&'static str] {
    if presence { &[BROADCAST, PRESENCE] } else { &[BROADCAST] }
}

fn access_of(extensions: &[&str], granted: &[bool]) -> Access {
    let mut access = Access::default();
    for (extension, granted) in extensions.iter().zip(granted) {
        match *extension {
            BROADCAST => access.broadcast = *granted,
            PRESENCE => access.presence = *granted,
            _ => {}
        }
    }
    access
}

async fn acquire(pool: &PgPool) -> Result<PoolConnection<Postgres>, AuthzError> {
    pool.acquire().await.map_err(|e| AuthzError::from_sqlx(pool, e))
}

/// How long a check may take on our side. Its statements are bounded by `statement_timeout`
/// in the database; this catches a database that stops answering.
fn guard(timeout: Duration) -> Duration {
    timeout.saturating_mul(3).saturating_add(Duration::from_secs(5))
}

/// The outcome of a check run under [`guard`]. A check cut short leaves its connection in an
/// unknown state: it is discarded rather than returned to the pool.
fn settle<T>(
    pool: &PgPool,
    conn: PoolConnection<Postgres>,
    outcome: Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed>,
) -> Result<T, AuthzError> {
    match outcome {
        Ok(result) => result.map_err(|e| AuthzError::from_sqlx(pool, e)),
        Err(_) => {
            tracing::warn!("a realtime authorization check did not finish in time; dropping its connection");
            drop(conn.detach());
            Err(AuthzError::Unavailable(None))
        }
    }
}

/// `statement_timeout` for the rest of the transaction, in milliseconds (0 would disable it).
async fn set_statement_timeout(conn: &mut PgConnection, timeout: Duration) -> Result<(), sqlx::Error> {
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
    sqlx::query("select set_config('statement_timeout', $1, true)").bind(ms).execute(&mut *conn).await?;
    Ok(())
}

/// Becomes the caller for the rest of the transaction, with the settings policies read.
async fn become_caller(conn: &mut PgConnection, topic: &str, who: &Principal) -> Result<(), sqlx::Error> {
    sqlx::query(
        "select set_config('role', $1, true), set_config('realtime.topic', $2, true), \
         set_config('request.jwt.claims', $3, true), set_config('request.jwt.claim.sub', $4, true), \
         set_config('request.jwt.claim.role', $1, true), set_config('request.headers', '{}', true)",
    )
    .bind(who.role())
    .bind(topic)
    .bind(who.claims_json())
    .bind(who.claims().sub().unwrap_or_default())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether each extension's probe is visible to the caller.
async fn read_check(
    conn: &mut PgConnection,
    topic: &str,
    who: &Principal,
    extensions: &[&str],
    timeout: Duration,
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    set_statement_timeout(&mut tx, timeout).await?;
    // As the owner (RLS does not apply): one probe per extension.
    let probes: Vec<(Uuid, String)> = sqlx::query_as(
        "insert into realtime.messages (topic, extension) select $1, e from unnest($2::text[]) as e \
         returning id, extension",
    )
    .bind(topic)
    .bind(extensions)
    .fetch_all(&mut *tx)
    .await?;
    become_caller(&mut tx, topic, who).await?;
    let ids: Vec<Uuid> = probes.iter().map(|(id, _)| *id).collect();
    let visible: Vec<Uuid> = sqlx::query_scalar("select id from realtime.messages where id = any($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(extensions.iter().map(|extension| probes.iter().any(|(id, e)| e == extension && visible.contains(id))).collect())
}

/// Whether the caller may insert a message of each extension.
async fn write_check(
    conn: &mut PgConnection,
    topic: &str,
    who: &Principal,
    extensions: &[&str],
    timeout: Duration,
) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    set_statement_timeout(&mut tx, timeout).await?;
    become_caller(&mut tx, topic, who).await?;
    let mut allowed = Vec::with_capacity(extensions.len());
    for extension in extensions {
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        // No RETURNING: that would need the SELECT policies too.
        let inserted = sqlx::query("insert into realtime.messages (topic, extension) values ($1, $2)")
            .bind(topic)
            .bind(*extension)
            .execute(&mut *savepoint)
            .await;
        savepoint.rollback().await?;
        match inserted {
            Ok(_) => allowed.push(true),
            Err(e) if DbErrorKind::of_sqlx(&e) == Some(DbErrorKind::InsufficientPrivilege) => allowed.push(false),
            Err(e) => return Err(e),
        }
    }
    tx.rollback().await?;
    Ok(allowed)
}

type ReplayRow = (Uuid, Option<String>, Option<Value>, Option<Vec<u8>>, PrimitiveDateTime);

/// The newest `limit` messages since `since`, newest first.
async fn replay_query(
    conn: &mut PgConnection,
    topic: &str,
    who: &Principal,
    since: PrimitiveDateTime,
    limit: i64,
    timeout: Duration,
) -> Result<Vec<ReplayedMessage>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    set_statement_timeout(&mut tx, timeout).await?;
    become_caller(&mut tx, topic, who).await?;
    // Upstream's query; the bound a minute ahead keeps future partitions out of the scan.
    let rows: Vec<ReplayRow> = sqlx::query_as(
        "select id, event, payload, binary_payload, inserted_at from realtime.messages \
         where topic = $1 and private is true and extension = 'broadcast' \
           and inserted_at >= $2 and inserted_at < timezone('utc', now()) + interval '1 minute' \
         order by inserted_at desc limit $3",
    )
    .bind(topic)
    .bind(since)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|(id, event, payload, binary_payload, inserted_at)| ReplayedMessage {
            id,
            event,
            payload,
            binary_payload,
            inserted_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    /// A `realtime.messages` row as the tests read it: id, topic, extension, event, private, payload.
    type MessageRow = (Uuid, String, String, Option<String>, Option<bool>, Value);
    /// The same without the id.
    type MessageShape = (String, String, Option<String>, Option<bool>, Value);

    use std::time::Instant;

    use forge_core::Claims;
    use forge_core::migrate::{Migration, MigrationSet};
    use forge_core::testing::{TestDb, test_db};
    use serde_json::json;
    use sqlx::postgres::PgPoolOptions;

    use super::*;

    const MIGRATION_SQL: &str = include_str!("../migrations/0001_realtime.sql");
    const MIGRATIONS: &[Migration] = &[Migration { version: 1, name: "realtime schema", sql: MIGRATION_SQL }];
    const SETS: &[MigrationSet] = &[MigrationSet { owner: "forge-realtime", migrations: MIGRATIONS }];
    const TIMEOUT: Duration = Duration::from_secs(5);

    /// Supabase's documented policies: user X may receive and send broadcasts on `room:<X>`,
    /// and see and track presence on `presence:<X>`.
    const POLICIES: &str = r#"
        create policy "authenticated can receive broadcasts" on realtime.messages
          for select to authenticated
          using (realtime.topic() = 'room:' || auth.uid()::text and realtime.messages.extension in ('broadcast'));
        create policy "authenticated can send broadcasts" on realtime.messages
          for insert to authenticated
          with check (realtime.topic() = 'room:' || auth.uid()::text and realtime.messages.extension in ('broadcast'));
        create policy "authenticated can see presence" on realtime.messages
          for select to authenticated
          using (realtime.topic() = 'presence:' || auth.uid()::text and realtime.messages.extension in ('presence'));
        create policy "authenticated can track presence" on realtime.messages
          for insert to authenticated
          with check (realtime.topic() = 'presence:' || auth.uid()::text and realtime.messages.extension in ('presence'));
    "#;

    async fn db() -> TestDb {
        let db = test_db().await;
        forge_core::migrate::run(db.pool(), SETS).await.expect("the realtime migration applies");
        db
    }

    async fn exec(db: &TestDb, sql: &'static str) {
        sqlx::raw_sql(sql).execute(db.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn messages(db: &TestDb) -> i64 {
        sqlx::query_scalar("select count(*) from realtime.messages").fetch_one(db.pool()).await.expect("count")
    }

    fn user(id: Uuid) -> Principal {
        let Value::Object(claims) = json!({"role": "authenticated", "sub": id.to_string(), "exp": 4_102_444_800_i64})
        else {
            unreachable!()
        };
        Principal::from_claims(Claims::new(claims))
    }

    fn access(broadcast: bool, presence: bool) -> Access {
        Access { broadcast, presence }
    }

    #[tokio::test]
    async fn the_schema_has_supabases_shape() {
        let db = db().await;
        let columns: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "select column_name::text, data_type::text, is_nullable::text, column_default::text \
             from information_schema.columns where table_schema = 'realtime' and table_name = 'messages' \
             order by ordinal_position",
        )
        .fetch_all(db.pool())
        .await
        .expect("columns");
        let shape: Vec<(&str, &str, &str)> =
            columns.iter().map(|(n, t, null, _)| (n.as_str(), t.as_str(), null.as_str())).collect();
        assert_eq!(
            shape,
            [
                ("topic", "text", "NO"),
                ("extension", "text", "NO"),
                ("payload", "jsonb", "YES"),
                ("event", "text", "YES"),
                ("private", "boolean", "YES"),
                ("updated_at", "timestamp without time zone", "NO"),
                ("inserted_at", "timestamp without time zone", "NO"),
                ("id", "uuid", "NO"),
                ("binary_payload", "bytea", "YES"),
            ]
        );
        assert_eq!(columns[4].3.as_deref(), Some("false"));
        assert_eq!(columns[7].3.as_deref(), Some("gen_random_uuid()"));

        let (kind, rls, key): (String, bool, Vec<String>) = sqlx::query_as(
            "select c.relkind::text, c.relrowsecurity, \
               array(select a.attname::text from unnest(i.indkey) with ordinality k(n, o) \
                     join pg_attribute a on a.attrelid = c.oid and a.attnum = k.n order by k.o) \
             from pg_class c join pg_index i on i.indrelid = c.oid and i.indisprimary \
             where c.oid = 'realtime.messages'::regclass",
        )
        .fetch_one(db.pool())
        .await
        .expect("table");
        assert_eq!((kind.as_str(), rls, key), ("p", true, vec!["id".to_owned(), "inserted_at".to_owned()]));

        for role in ["anon", "authenticated", "service_role"] {
            let (usage, sel, ins, upd, del): (bool, bool, bool, bool, bool) = sqlx::query_as(
                "select has_schema_privilege($1, 'realtime', 'usage'), \
                   has_table_privilege($1, 'realtime.messages', 'select'), \
                   has_table_privilege($1, 'realtime.messages', 'insert'), \
                   has_table_privilege($1, 'realtime.messages', 'update'), \
                   has_table_privilege($1, 'realtime.messages', 'delete')",
            )
            .bind(role)
            .fetch_one(db.pool())
            .await
            .expect("privileges");
            assert_eq!((usage, sel, ins, upd, del), (true, true, true, true, false), "{role}");
            let maintain: bool = sqlx::query_scalar(
                "select has_function_privilege($1, 'realtime.forge_maintain_partitions(integer, integer)', 'execute')",
            )
            .bind(role)
            .fetch_one(db.pool())
            .await
            .expect("function privilege");
            assert!(!maintain, "{role} may not maintain partitions");
        }

        // Partitions: the default one and yesterday .. today + 3.
        let partitions: Vec<String> = sqlx::query_scalar(
            "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid \
             where i.inhparent = 'realtime.messages'::regclass order by 1",
        )
        .fetch_all(db.pool())
        .await
        .expect("partitions");
        let expected: Vec<String> = sqlx::query_scalar(
            "select 'messages_' || to_char(timezone('utc', now())::date + i, 'YYYY_MM_DD') \
             from generate_series(-1, 3) i union all select 'messages_default' order by 1",
        )
        .fetch_all(db.pool())
        .await
        .expect("expected partitions");
        assert_eq!(partitions, expected);

        let publication: (bool, bool, bool, bool, Vec<String>) = sqlx::query_as(
            "select p.pubinsert, p.pubupdate, p.pubdelete, p.pubviaroot, \
               array(select schemaname || '.' || tablename from pg_publication_tables t where t.pubname = p.pubname) \
             from pg_publication p where p.pubname = 'supabase_realtime_messages_publication'",
        )
        .fetch_one(db.pool())
        .await
        .expect("publication");
        assert_eq!(publication, (true, false, false, true, vec!["realtime.messages".to_owned()]));

        // realtime.topic() reads the transaction's setting; empty is null.
        let mut tx = db.pool().begin().await.expect("begin");
        let topic: Option<String> =
            sqlx::query_scalar("select realtime.topic()").fetch_one(&mut *tx).await.expect("topic");
        assert_eq!(topic, None);
        let topic: Option<String> =
            sqlx::query_scalar("select realtime.topic() from (select set_config('realtime.topic', 'room:1', true)) s")
                .fetch_one(&mut *tx)
                .await
                .expect("topic");
        assert_eq!(topic.as_deref(), Some("room:1"));
        tx.rollback().await.expect("rollback");

        // Applying it again is harmless, through the runner or raw.
        assert_eq!(forge_core::migrate::run(db.pool(), SETS).await.expect("rerun"), 0);
        sqlx::raw_sql(MIGRATION_SQL).execute(db.pool()).await.expect("the SQL is idempotent");
    }

    #[tokio::test]
    async fn send_inserts_a_broadcast_and_swallows_failures() {
        let db = db().await;
        exec(&db, "select realtime.send('{\"a\": 1}', 'greet', 'room:1')").await;
        exec(&db, "select realtime.send('{\"a\": 2, \"id\": \"mine\"}', 'greet', 'room:2', false)").await;
        let rows: Vec<MessageRow> = sqlx::query_as(
            "select id, topic, extension, event, private, payload from realtime.messages order by topic",
        )
        .fetch_all(db.pool())
        .await
        .expect("rows");
        assert_eq!(rows.len(), 2);
        let (id, topic, extension, event, private, payload) = &rows[0];
        assert_eq!(
            (topic.as_str(), extension.as_str(), event.as_deref(), *private),
            ("room:1", "broadcast", Some("greet"), Some(true))
        );
        assert_eq!(payload, &json!({"a": 1, "id": id.to_string()}));
        let (_, _, _, _, private, payload) = &rows[1];
        assert_eq!((*private, payload), (Some(false), &json!({"a": 2, "id": "mine"})));

        // As anon with no INSERT policy the insert is refused: a warning, not an error.
        let mut tx = db.pool().begin().await.expect("begin");
        sqlx::query("select set_config('role', 'anon', true)").execute(&mut *tx).await.expect("role");
        sqlx::query("select realtime.send('{}', 'e', 'room:1')").execute(&mut *tx).await.expect("send does not fail");
        tx.commit().await.expect("commit");
        assert_eq!(messages(&db).await, 2);

        exec(&db, "select realtime.send_binary('\\x0102', 'bin', 'room:3')").await;
        let binary: (Option<Value>, Option<Vec<u8>>) =
            sqlx::query_as("select payload, binary_payload from realtime.messages where topic = 'room:3'")
                .fetch_one(db.pool())
                .await
                .expect("binary row");
        assert_eq!(binary, (None, Some(vec![1, 2])));
    }

    #[tokio::test]
    async fn broadcast_changes_from_a_trigger_sends_supabases_payload() {
        let db = db().await;
        exec(
            &db,
            r#"
            create table public.notes (id int primary key, body text);
            create function public.notes_changes() returns trigger security definer language plpgsql as $$
            begin
              perform realtime.broadcast_changes(
                'notes:' || coalesce(new.id, old.id)::text, tg_op, tg_op, tg_table_name, tg_table_schema, new, old);
              return null;
            end $$;
            create trigger notes_broadcast after insert or update or delete on public.notes
              for each row execute function public.notes_changes();
            insert into public.notes values (1, 'first');
            update public.notes set body = 'second' where id = 1;
            delete from public.notes where id = 1;
            "#,
        )
        .await;
        let rows: Vec<MessageRow> = sqlx::query_as(
            "select id, topic, extension, event, private, payload from realtime.messages order by inserted_at, event desc",
        )
        .fetch_all(db.pool())
        .await
        .expect("rows");
        let shapes: Vec<MessageShape> = rows
            .iter()
            .map(|(id, topic, extension, event, private, payload)| {
                let mut payload = payload.clone();
                assert_eq!(payload["id"], json!(id.to_string()), "realtime.send adds the message id");
                payload.as_object_mut().expect("object").remove("id");
                (topic.clone(), extension.clone(), event.clone(), *private, payload)
            })
            .collect();
        let row = |body: &str| json!({"id": 1, "body": body});
        let change = |op: &str, old: Value, new: Value| json!({"old_record": old, "record": new, "operation": op, "table": "notes", "schema": "public"});
        let expected = [
            ("UPDATE", change("UPDATE", row("first"), row("second"))),
            ("INSERT", change("INSERT", Value::Null, row("first"))),
            ("DELETE", change("DELETE", row("second"), Value::Null)),
        ];
        assert_eq!(shapes.len(), 3);
        for (op, payload) in expected {
            let found = shapes.iter().find(|s| s.2.as_deref() == Some(op)).expect(op);
            assert_eq!(
                found,
                &("notes:1".to_owned(), "broadcast".to_owned(), Some(op.to_owned()), Some(true), payload)
            );
        }

        let err = sqlx::query(
            "select realtime.broadcast_changes('t', 'e', 'INSERT', 'notes', 'public', null::record, null::record, 'STATEMENT')",
        )
        .execute(db.pool())
        .await
        .expect_err("statement level is refused");
        let message = err.as_database_error().expect("database error").message().to_owned();
        assert_eq!(
            message,
            "Failed to process the row: function can only be triggered for each row, not for each statement"
        );
    }

    #[tokio::test]
    async fn policies_decide_read_and_write_per_user_and_extension() {
        let db = db().await;
        exec(&db, POLICIES).await;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (user_a, user_b) = (user(a), user(b));
        let room_a = format!("room:{a}");
        let presence_a = format!("presence:{a}");
        let pool = db.pool();

        assert_eq!(read_access(pool, &room_a, &user_a, true, TIMEOUT).await.expect("read"), access(true, false));
        assert_eq!(read_access(pool, &room_a, &user_a, false, TIMEOUT).await.expect("read"), access(true, false));
        assert_eq!(write_access(pool, &room_a, &user_a, true, TIMEOUT).await.expect("write"), access(true, false));
        assert_eq!(read_access(pool, &presence_a, &user_a, true, TIMEOUT).await.expect("read"), access(false, true));
        // Presence not asked for: not checked, so false.
        assert_eq!(read_access(pool, &presence_a, &user_a, false, TIMEOUT).await.expect("read"), access(false, false));
        assert_eq!(write_access(pool, &presence_a, &user_a, true, TIMEOUT).await.expect("write"), access(false, true));
        assert!(read_access(pool, &presence_a, &user_a, true, TIMEOUT).await.expect("read").presence);

        // B gets nothing on A's topics, and A's policies hold for B's own.
        for topic in [&room_a, &presence_a] {
            assert_eq!(read_access(pool, topic, &user_b, true, TIMEOUT).await.expect("read"), Access::default());
            assert_eq!(write_access(pool, topic, &user_b, true, TIMEOUT).await.expect("write"), Access::default());
        }
        assert_eq!(
            read_access(pool, &format!("room:{b}"), &user_b, true, TIMEOUT).await.expect("read"),
            access(true, false)
        );

        // anon has no policies; service_role bypasses RLS.
        let anon = Principal::anon();
        assert_eq!(read_access(pool, &room_a, &anon, true, TIMEOUT).await.expect("read"), Access::default());
        assert_eq!(write_access(pool, &room_a, &anon, true, TIMEOUT).await.expect("write"), Access::default());
        let service = Principal::service();
        assert_eq!(read_access(pool, &room_a, &service, true, TIMEOUT).await.expect("read"), access(true, true));
        assert_eq!(write_access(pool, &room_a, &service, true, TIMEOUT).await.expect("write"), access(true, true));

        // A role that does not exist cannot be assumed: a policy failure (Unauthorized).
        let Value::Object(claims) = json!({"role": "nobody", "sub": a.to_string()}) else { unreachable!() };
        let nobody = Principal::from_claims(Claims::new(claims));
        assert!(matches!(read_access(pool, &room_a, &nobody, true, TIMEOUT).await, Err(AuthzError::Policy(_))));

        // Probes never remain, and nothing reached the change stream's table.
        assert_eq!(messages(&db).await, 0);
    }

    #[tokio::test]
    async fn failing_and_slow_policies_are_policy_errors_promptly() {
        let db = db().await;
        exec(
            &db,
            r#"
            create function public.boom() returns boolean language plpgsql as $$
            begin raise exception 'policy exploded'; end $$;
            create function public.slow() returns boolean language plpgsql as $$
            begin perform pg_sleep(5); return true; end $$;
            create policy "raises or sleeps" on realtime.messages for select to authenticated
              using (case realtime.topic() when 'raise' then public.boom() when 'sleep' then public.slow() else true end);
            create policy "raises or sleeps on insert" on realtime.messages for insert to authenticated
              with check (case realtime.topic() when 'raise' then public.boom() when 'sleep' then public.slow() else true end);
            "#,
        )
        .await;
        // One connection, so the checks below and the final look at the settings share it.
        let pool = PgPoolOptions::new().max_connections(1).connect(db.url()).await.expect("pool");
        let who = user(Uuid::new_v4());
        let timeout = Duration::from_millis(200);
        for topic in ["raise", "sleep"] {
            let started = Instant::now();
            let read = read_access(&pool, topic, &who, true, timeout).await;
            assert!(matches!(read, Err(AuthzError::Policy(_))), "{topic}: {read:?}");
            assert_eq!(read.as_ref().err().map(AuthzError::is_timeout), Some(topic == "sleep"));
            let write = write_access(&pool, topic, &who, true, timeout).await;
            assert!(matches!(write, Err(AuthzError::Policy(_))), "{topic}: {write:?}");
            assert!(started.elapsed() < Duration::from_secs(2), "{topic} took {:?}", started.elapsed());
        }
        // Other topics pass the policies.
        assert_eq!(read_access(&pool, "other", &who, true, timeout).await.expect("read"), access(true, true));
        // The pool's connections are clean afterwards: back to the owner, no timeout left.
        let settings: (String, String, String) = sqlx::query_as(
            "select current_user::text, current_setting('statement_timeout'), \
             coalesce(current_setting('realtime.topic', true), '')",
        )
        .fetch_one(&pool)
        .await
        .expect("settings");
        let owner: String = sqlx::query_scalar("select current_user::text").fetch_one(db.pool()).await.expect("owner");
        assert_eq!(settings, (owner, "0".to_owned(), String::new()));
        assert_eq!(messages(&db).await, 0);
    }

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable_and_a_busy_pool_saturated() {
        let nowhere = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(500))
            .connect_lazy("postgres://forge@localhost/forge?host=/nonexistent-forge-socket-dir")
            .expect("lazy pool");
        let read = read_access(&nowhere, "room", &Principal::anon(), true, TIMEOUT).await;
        assert!(matches!(read, Err(AuthzError::Unavailable(_))), "{read:?}");

        let db = db().await;
        let busy = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(300))
            .connect(db.url())
            .await
            .expect("pool");
        let held = busy.acquire().await.expect("the only connection");
        let read = read_access(&busy, "room", &Principal::anon(), true, TIMEOUT).await;
        assert!(matches!(read, Err(AuthzError::Saturated)), "{read:?}");
        drop(held);
        assert_eq!(
            read_access(&busy, "room", &Principal::anon(), true, TIMEOUT).await.expect("read"),
            Access::default()
        );
    }

    #[tokio::test]
    async fn replay_returns_the_newest_visible_messages_oldest_first() {
        let db = db().await;
        exec(
            &db,
            r#"
            create policy "room members read broadcasts but not secrets" on realtime.messages
              for select to authenticated
              using (realtime.topic() = 'room:' || auth.uid()::text and extension = 'broadcast'
                     and coalesce(payload ->> 'secret', '') <> 'yes');
            "#,
        )
        .await;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let room = format!("room:{a}");
        // (seconds ago, topic, extension, private, payload)
        let rows: [(i32, &str, &str, bool, Value); 9] = [
            (600, &room, "broadcast", true, json!({"n": 0})), // before `since`
            (50, &room, "broadcast", true, json!({"n": 1})),
            (40, &room, "broadcast", true, json!({"n": 2})),
            (35, &room, "broadcast", false, json!({"n": 99})), // not private
            (30, &room, "presence", true, json!({"n": 98})),   // not a broadcast
            (25, &room, "broadcast", true, json!({"n": 97, "secret": "yes"})), // hidden by RLS
            (20, &room, "broadcast", true, json!({"n": 3})),
            (10, "room:other", "broadcast", true, json!({"n": 96})), // another topic
            (-300, &room, "broadcast", true, json!({"n": 95})),      // in the future
        ];
        for (ago, topic, extension, private, payload) in rows {
            sqlx::query(
                "insert into realtime.messages (topic, extension, private, payload, event, inserted_at) \
                 values ($1, $2, $3, $4, 'msg', timezone('utc', now()) - make_interval(secs => $5))",
            )
            .bind(topic)
            .bind(extension)
            .bind(private)
            .bind(payload)
            .bind(f64::from(ago))
            .execute(db.pool())
            .await
            .expect("insert");
        }
        let since = (OffsetDateTime::now_utc() - time::Duration::seconds(300)).unix_timestamp() * 1000;
        let numbers = |messages: &[ReplayedMessage]| -> Vec<i64> {
            messages.iter().map(|m| m.payload.as_ref().and_then(|p| p["n"].as_i64()).expect("n")).collect()
        };
        let who = user(a);

        let all = replay(db.pool(), &room, &who, since, 25, TIMEOUT).await.expect("replay");
        assert_eq!(numbers(&all), [1, 2, 3]);
        assert!(all.windows(2).all(|w| w[0].inserted_at < w[1].inserted_at));
        assert!(all.iter().all(|m| m.event.as_deref() == Some("msg") && m.binary_payload.is_none()));

        let newest_two = replay(db.pool(), &room, &who, since, 2, TIMEOUT).await.expect("replay");
        assert_eq!(numbers(&newest_two), [2, 3]);
        assert_eq!(newest_two[1].id, all[2].id);
        // Limits are clamped to 1..=25.
        assert_eq!(numbers(&replay(db.pool(), &room, &who, since, 0, TIMEOUT).await.expect("replay")), [3]);
        assert_eq!(numbers(&replay(db.pool(), &room, &who, since, 1000, TIMEOUT).await.expect("replay")), [1, 2, 3]);
        // A `since` older than any message takes them all (the one 10 minutes ago too).
        assert_eq!(numbers(&replay(db.pool(), &room, &who, 0, 25, TIMEOUT).await.expect("replay")), [0, 1, 2, 3]);
        assert_eq!(
            numbers(&replay(db.pool(), &room, &who, -377_705_116_800_000, 25, TIMEOUT).await.expect("replay")),
            [0, 1, 2, 3]
        );

        // B sees nothing; an out-of-range `since` is invalid.
        assert!(replay(db.pool(), &room, &user(b), since, 25, TIMEOUT).await.expect("replay").is_empty());
        assert!(matches!(
            replay(db.pool(), &room, &who, i64::MAX, 25, TIMEOUT).await,
            Err(AuthzError::InvalidReplayParams)
        ));
        assert!(matches!(
            replay(db.pool(), &room, &who, 253_402_300_800_000, 25, TIMEOUT).await,
            Err(AuthzError::InvalidReplayParams)
        ));
        assert_eq!(messages(&db).await, 9);
    }

    #[test]
    fn replay_params_are_read_as_upstream_reads_them() {
        let params = |v: Value| ReplayParams::from_json(&v);
        let ok = |since_ms, limit| Ok(Some(ReplayParams { since_ms, limit }));
        assert_eq!(params(json!({"since": 1000, "limit": 5})).map_err(|e| e.to_string()), ok(1000, 5));
        for limit in [json!(null), json!(false)] {
            assert_eq!(params(json!({"since": 1, "limit": limit})).map_err(|e| e.to_string()), ok(1, 25));
        }
        assert_eq!(params(json!({"since": 1})).map_err(|e| e.to_string()), ok(1, 25));
        assert_eq!(params(json!({"since": -5, "limit": -3})).map_err(|e| e.to_string()), ok(-5, -3));
        assert_eq!(params(json!({"since": 1, "limit": u64::MAX})).map_err(|e| e.to_string()), ok(1, 25));
        // Not an object: no replay at all.
        for v in [json!(true), json!(null), json!([1]), json!("x")] {
            assert_eq!(params(v).map_err(|e| e.to_string()), Ok(None));
        }
        for bad in [
            json!({}),
            json!({"since": null}),
            json!({"since": "1000"}),
            json!({"since": 1.5}),
            json!({"since": 1000.0}),
            json!({"since": u64::MAX}),
            json!({"since": 1, "limit": "5"}),
            json!({"since": 1, "limit": 2.0}),
            json!({"since": 1, "limit": true}),
        ] {
            assert!(matches!(params(bad.clone()), Err(AuthzError::InvalidReplayParams)), "{bad}");
        }
    }

    #[tokio::test]
    async fn maintenance_moves_default_rows_into_new_partitions_and_drops_old_days() {
        let db = db().await;
        // Rows for a day without a partition land in the default partition.
        exec(
            &db,
            r#"
            insert into realtime.messages (topic, extension, inserted_at)
              values ('future', 'broadcast', timezone('utc', now())::date + 10 + time '12:00');
            insert into realtime.messages (topic, extension, inserted_at)
              values ('ancient', 'broadcast', timezone('utc', now())::date - 10 + time '12:00');
            create table realtime.messages_2000_01_01 partition of realtime.messages
              for values from ('2000-01-01') to ('2000-01-02');
            insert into realtime.messages (topic, extension, inserted_at) values ('y2k', 'broadcast', '2000-01-01 10:00');
            "#,
        )
        .await;
        let partition_of = |topic: &'static str| {
            sqlx::query_scalar::<_, String>("select tableoid::regclass::text from realtime.messages where topic = $1")
                .bind(topic)
                .fetch_optional(db.pool())
        };
        assert_eq!(partition_of("future").await.expect("row").as_deref(), Some("realtime.messages_default"));

        exec(&db, "select realtime.forge_maintain_partitions(3, 10)").await;
        let future_day: String = sqlx::query_scalar(
            "select 'realtime.messages_' || to_char(timezone('utc', now())::date + 10, 'YYYY_MM_DD')",
        )
        .fetch_one(db.pool())
        .await
        .expect("name");
        assert_eq!(partition_of("future").await.expect("row"), Some(future_day));
        assert_eq!(partition_of("ancient").await.expect("query"), None, "old default rows are deleted");
        assert_eq!(partition_of("y2k").await.expect("query"), None, "old partitions are dropped");
        let old: Option<String> = sqlx::query_scalar("select to_regclass('realtime.messages_2000_01_01')::text")
            .fetch_one(db.pool())
            .await
            .expect("regclass");
        assert_eq!(old, None);
        // The moved partition is a full member: RLS and grants still come from the parent.
        let today_rows: i64 =
            sqlx::query_scalar("select count(*) from realtime.messages").fetch_one(db.pool()).await.expect("count");
        assert_eq!(today_rows, 1);
        exec(&db, "select realtime.forge_maintain_partitions()").await;
    }
}
