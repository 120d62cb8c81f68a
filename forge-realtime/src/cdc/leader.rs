//! Which node captures: the holder of a session advisory lock.
//!
//! Only one node may read the slot (Postgres refuses a second reader anyway, but the loser
//! would spin on errors). The lock is held on a dedicated connection, not a pooled one, so a
//! pool recycling its connections never drops it silently. When the leader's process or
//! connection dies, Postgres releases the lock and another node's next [`try_lead`] wins.
//! Advisory locks are per database, so one fixed key serves every project database.

use sqlx::{Connection as _, PgConnection, PgPool};

use super::slot::fnv1a;

/// The advisory lock key: a hash of "forge-realtime capture", fixed across versions.
pub(crate) fn lock_key() -> i64 {
    i64::from_ne_bytes(fnv1a(b"forge-realtime capture").to_ne_bytes())
}

/// Leadership while this lives: a dedicated connection holding the lock.
#[derive(Debug)]
pub(crate) struct LeaderGuard {
    conn: PgConnection,
}

/// Tries to become the capture leader of the pool's database, on a new connection made
/// with the pool's options. `None` when another session holds the lock.
pub(crate) async fn try_lead(pool: &PgPool) -> Result<Option<LeaderGuard>, sqlx::Error> {
    let options = pool.connect_options();
    let mut conn = PgConnection::connect_with(&options).await?;
    let won: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)").bind(lock_key()).fetch_one(&mut conn).await?;
    if won {
        Ok(Some(LeaderGuard { conn }))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

impl LeaderGuard {
    /// Whether leadership still holds: the connection answers and still holds the lock.
    /// Call it before each poll; on `false`, stop capturing and drop the guard.
    pub(crate) async fn is_alive(&mut self) -> bool {
        let held: Result<bool, _> = sqlx::query_scalar(
            "select exists (select 1 from pg_locks \
             where locktype = 'advisory' and pid = pg_backend_pid() and granted \
               and database = (select oid from pg_database where datname = current_database()) \
               and classid::int8 = ($1 >> 32) & 4294967295 and objid::int8 = $1 & 4294967295 and objsubid = 1)",
        )
        .bind(lock_key())
        .fetch_one(&mut self.conn)
        .await;
        held.unwrap_or(false)
    }

    /// Gives leadership up: unlocks and closes the connection.
    pub(crate) async fn release(mut self) {
        let _ = sqlx::query("select pg_advisory_unlock($1)").bind(lock_key()).execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }

    /// The backend pid holding the lock, for tests that kill it.
    #[cfg(test)]
    pub(crate) async fn backend_pid(&mut self) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("select pg_backend_pid()").fetch_one(&mut self.conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_and_takeover() {
        let db = forge_core::testing::test_db().await;
        let pool = db.pool();
        let mut first = try_lead(pool).await.unwrap().expect("the first node leads");
        assert!(first.is_alive().await);
        assert!(try_lead(pool).await.unwrap().is_none(), "a second node must not lead");

        // Orderly hand-over.
        first.release().await;
        let mut second = try_lead(pool).await.unwrap().expect("leads after release");

        // The leader's connection dies (process crash, network): the lock goes with it.
        let pid = second.backend_pid().await.unwrap();
        assert!(try_lead(pool).await.unwrap().is_none());
        let killed: bool =
            sqlx::query_scalar("select pg_terminate_backend($1)").bind(pid).fetch_one(pool).await.unwrap();
        assert!(killed);
        assert!(!second.is_alive().await, "a dead connection is not leadership");
        let mut third = None;
        for _ in 0..50 {
            third = try_lead(pool).await.unwrap();
            if third.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut third = third.expect("another node takes over");
        assert!(third.is_alive().await);
        drop(second);
        third.release().await;
    }

    #[tokio::test]
    async fn lock_is_per_database() {
        let (a, b) = (forge_core::testing::test_db().await, forge_core::testing::test_db().await);
        let la = try_lead(a.pool()).await.unwrap();
        let lb = try_lead(b.pool()).await.unwrap();
        assert!(la.is_some() && lb.is_some());
        assert_eq!(lock_key(), lock_key());
    }
}
