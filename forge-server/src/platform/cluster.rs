//! The Postgres clusters project databases live on, and what the control plane does to them:
//! keep a bootstrapped, migrated template, clone it into a new project's database, drop a
//! project's database with its replication slots, count what each cluster holds.
//!
//! A cluster is known by an admin URL (a role that may create databases) and, optionally,
//! the URL the RLS gateway connects with (`authenticator`); a project's URLs are these with
//! the project's database put in. Database names are made here, from the platform database's
//! name and a project ref, never from other input.

use std::str::FromStr as _;

use forge_core::DatabaseConfig;
use forge_core::migrate::MigrateError;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{Connection as _, PgConnection};

use crate::platform::error::{Error, Result};

/// A cluster the control plane may place project databases on.
#[derive(Clone)]
pub struct Cluster {
    /// Its id (`default` for the server's own).
    pub id: String,
    url: SecretString,
    gateway_url: Option<SecretString>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("id", &self.id).finish_non_exhaustive()
    }
}

/// How big a project's pools are.
#[derive(Debug, Clone, Copy)]
pub struct PoolSizes {
    /// The services' sqlx pool.
    pub sqlx: u32,
    /// The RLS gateway's pool.
    pub gateway: usize,
}

impl PoolSizes {
    /// Both together: what one open project may hold.
    pub fn total(self) -> usize {
        self.sqlx as usize + self.gateway
    }
}

impl Cluster {
    /// A cluster reached at `url` (its admin URL) and, for the gateway, `gateway_url`.
    pub fn new(id: impl Into<String>, url: SecretString, gateway_url: Option<SecretString>) -> Result<Self> {
        for u in std::iter::once(&url).chain(gateway_url.as_ref()) {
            sqlx::postgres::PgConnectOptions::from_str(u.expose_secret())
                .map_err(|_| Error::internal("a cluster URL is not a Postgres URL"))?;
        }
        Ok(Self { id: id.into(), url, gateway_url })
    }

    /// The admin URL (sealed into the control plane as it is).
    pub fn url(&self) -> &SecretString {
        &self.url
    }

    /// The gateway URL, if any.
    pub fn gateway_url(&self) -> Option<&SecretString> {
        self.gateway_url.as_ref()
    }

    /// The database the admin URL names: the cluster's own, never a project's.
    pub fn admin_database(&self) -> String {
        sqlx::postgres::PgConnectOptions::from_str(self.url.expose_secret())
            .ok()
            .and_then(|o| o.get_database().map(str::to_owned))
            .unwrap_or_else(|| "postgres".to_owned())
    }

    /// How to reach `database` on this cluster with pools of `sizes`, connecting as
    /// `application_name` (letters, digits and `-`), which tells this node's connections apart
    /// in `pg_stat_activity`.
    pub fn database_config(&self, database: &str, sizes: PoolSizes, application_name: &str) -> Result<DatabaseConfig> {
        let named = |url: &str| with_application_name(&with_database(url, database)?, application_name);
        let mut config =
            DatabaseConfig::new(named(self.url.expose_secret())?).with_pool_sizes(sizes.sqlx, sizes.gateway);
        if let Some(gateway) = &self.gateway_url {
            config = config.with_gateway_url(named(gateway.expose_secret())?);
        }
        Ok(config)
    }

    /// How many connections to `database` named `application_name` Postgres still has (those a
    /// node closed leave a moment after their sockets do). Asked on `platform`, a pool on this
    /// cluster, when there is one; otherwise on a new connection.
    pub async fn connections_named(
        &self,
        platform: Option<&sqlx::PgPool>,
        database: &str,
        application_name: &str,
    ) -> Result<i64> {
        let sql = "select count(*) from pg_stat_activity where datname = $1 and application_name = $2";
        let query = sqlx::query_scalar(sql).bind(database).bind(application_name);
        Ok(match platform {
            Some(pool) => query.fetch_one(pool).await?,
            None => {
                let mut conn = self.admin().await?;
                let n = query.fetch_one(&mut conn).await?;
                let _ = conn.close().await;
                n
            }
        })
    }

    /// A connection to the cluster's own database, for creating and dropping databases.
    async fn admin(&self) -> Result<PgConnection> {
        PgConnection::connect(self.url.expose_secret()).await.map_err(|e| Error::Core(e.into()))
    }

    /// Whether `database` exists here.
    pub async fn has_database(&self, database: &str) -> Result<bool> {
        let mut conn = self.admin().await?;
        let found: bool = sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(found)
    }

    /// Creates an empty `database` (another node making it at the same time is no error).
    pub async fn create_empty_database(&self, database: &str) -> Result<()> {
        check_name(database)?;
        let mut conn = self.admin().await?;
        let created =
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {database}"))).execute(&mut conn).await;
        let _ = conn.close().await;
        match created {
            Ok(_) => {
                tracing::info!(database, cluster = %self.id, "created a database");
                Ok(())
            }
            Err(e) if is_duplicate_database(&e) => Ok(()),
            Err(e) => Err(Error::Core(e.into())),
        }
    }

    /// Makes `template` a bootstrapped, migrated template database (creating it when missing;
    /// migrating it when this build has newer migrations). Nothing may stay connected to it,
    /// or cloning would fail: the pool used here is closed before returning.
    pub async fn prepare_template(&self, template: &str) -> Result<()> {
        check_name(template)?;
        if !self.has_database(template).await? {
            self.create_empty_database(template).await?;
        }
        let url = with_database(self.url.expose_secret(), template)?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .map_err(|e| Error::Core(e.into()))?;
        let migrated = async {
            forge_core::bootstrap::apply(&pool).await.map_err(MigrateError::from)?;
            forge_core::migrate::run(&pool, &crate::migrations()).await
        }
        .await;
        pool.close().await;
        migrated.map_err(|e| Error::internal(format!("migrating the template database: {e}")))?;
        self.restrict_connect(template).await
    }

    /// Lets only superusers and the gateway connect to `database` (not every role, as
    /// Postgres does by default): projects' owner roles reach their own database only.
    pub async fn restrict_connect(&self, database: &str) -> Result<()> {
        check_name(database)?;
        let mut conn = self.admin().await?;
        let sql = format!(
            "revoke connect, temporary on database {database} from public; \
             grant connect, temporary on database {database} to authenticator"
        );
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
        let _ = conn.close().await;
        result.map(drop).map_err(|e| Error::Core(e.into()))
    }

    /// Creates `database` as a copy of `template`.
    pub async fn create_database(&self, database: &str, template: &str) -> Result<()> {
        check_name(database)?;
        check_name(template)?;
        let mut conn = self.admin().await?;
        let sql = format!("create database {database} template {template}");
        // A template someone is connected to cannot be copied: a node migrating it, for a
        // moment. Try a few times.
        let mut tries = 0;
        let result = loop {
            match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&mut conn).await {
                Err(e) if is_template_busy(&e) && tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => break other,
            }
        };
        let _ = conn.close().await;
        result.map(drop).map_err(|e| Error::Core(e.into()))
    }

    /// Makes `role` (a login role with `password`, neither superuser nor able to create
    /// roles or databases) the owner of a project's database, through the shared role
    /// [`OWNERS`] it inherits from and acts as (its sessions start with `SET ROLE`, so what it
    /// creates is `OWNERS`'s and gets the API roles' grants by default, as tables a Supabase
    /// project's `postgres` makes do): `OWNERS` owns the `public` schema and what it holds, the
    /// tables storage and realtime policies go on and the realtime publication, may read and
    /// put triggers on `auth` tables, and may create in the database. Only `role`, the gateway
    /// and superusers may connect to `database`, so `OWNERS`'s grants in other projects'
    /// databases are out of `role`'s reach. A dump names `OWNERS`, never `role`, so it
    /// restores into another project.
    pub async fn create_owner_role(&self, database: &str, role: &str, password: &SecretString) -> Result<()> {
        check_name(database)?;
        check_name(role)?;
        if !password.expose_secret().bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::internal("an owner password must be alphanumeric"));
        }
        let mut conn = self.admin().await?;
        let setup = format!(
            "do $$ begin
               if not exists (select from pg_roles where rolname = '{OWNERS}') then
                 begin
                   create role {OWNERS} nologin;
                 exception when duplicate_object or unique_violation then null;
                 end;
               end if;
               if not exists (select from pg_roles where rolname = '{role}') then
                 create role {role} login inherit nosuperuser nocreatedb nocreaterole password '{password}' in role {OWNERS};
               end if;
             end $$;
             alter role {role} set role = '{OWNERS}';
             grant anon, authenticated, service_role to {OWNERS};
             revoke connect, temporary on database {database} from public;
             grant connect, temporary on database {database} to {role}, authenticator;
             grant create on database {database} to {OWNERS};",
            password = password.expose_secret(),
        );
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(setup)).execute(&mut conn).await;
        let _ = conn.close().await;
        result.map_err(|e| Error::Core(e.into()))?;
        let options = control_options(&with_database(self.url.expose_secret(), database)?)?;
        let mut conn = PgConnection::connect_with(&options).await.map_err(|e| Error::Core(e.into()))?;
        let grants = format!(
            "alter schema public owner to {OWNERS};
             alter default privileges for role {OWNERS} in schema public grant all on tables to anon, authenticated, service_role;
             alter default privileges for role {OWNERS} in schema public grant all on sequences to anon, authenticated, service_role;
             alter default privileges for role {OWNERS} in schema public grant all on functions to anon, authenticated, service_role;
             grant usage on schema auth, storage, realtime to {OWNERS};
             grant select, references, trigger on all tables in schema auth to {OWNERS};
             alter table storage.objects owner to {OWNERS};
             alter table storage.buckets owner to {OWNERS};
             alter table realtime.messages owner to {OWNERS};
             alter publication supabase_realtime owner to {OWNERS};
             do $$
             declare o record;
             begin
               -- What the public schema holds is the owner's (a restored dump's tables too).
               for o in select c.relname, c.relkind from pg_class c
                          where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
                            and not exists (select from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i'))
               loop
                 execute format('alter %s public.%I owner to {OWNERS}',
                   case o.relkind when 'v' then 'view' when 'm' then 'materialized view'
                     when 'S' then 'sequence' when 'f' then 'foreign table' else 'table' end, o.relname);
               end loop;
               for o in select p.oid::regprocedure as f from pg_proc p
                          where p.pronamespace = 'public'::regnamespace and p.prokind in ('f', 'p')
               loop
                 execute format('alter routine %s owner to {OWNERS}', o.f);
               end loop;
             end $$;"
        );
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(grants)).execute(&mut conn).await;
        let _ = conn.close().await;
        result.map(drop).map_err(|e| Error::Core(e.into()))
    }

    /// Drops a project's owner role (after its database is gone); none is no error.
    pub async fn drop_owner_role(&self, role: &str) -> Result<()> {
        check_name(role)?;
        let mut conn = self.admin().await?;
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop role if exists {role}"))).execute(&mut conn).await;
        let _ = conn.close().await;
        result.map(drop).map_err(|e| Error::Core(e.into()))
    }

    /// A connection to `database` as `role`, for SQL a project's members send.
    pub async fn connect_as(&self, database: &str, role: &str, password: &SecretString) -> Result<PgConnection> {
        check_name(database)?;
        check_name(role)?;
        let options = control_options(self.url.expose_secret())?
            .database(database)
            .username(role)
            .password(password.expose_secret());
        PgConnection::connect_with(&options).await.map_err(|e| Error::Core(e.into()))
    }

    /// Drops `database` and the replication slots on it; connections to it are ended first.
    /// A database that is not there is no error.
    pub async fn drop_database(&self, database: &str) -> Result<()> {
        check_name(database)?;
        let mut conn = self.admin().await?;
        let result = async {
            // A slot in use cannot be dropped: end its session, then drop it.
            sqlx::query(
                "select pg_terminate_backend(active_pid) from pg_replication_slots where database = $1 and active",
            )
            .bind(database)
            .execute(&mut conn)
            .await?;
            for _ in 0..50 {
                let dropped = sqlx::query(
                    "select pg_drop_replication_slot(slot_name) from pg_replication_slots \
                     where database = $1 and not active",
                )
                .bind(database)
                .execute(&mut conn)
                .await;
                let left: i64 = sqlx::query_scalar("select count(*) from pg_replication_slots where database = $1")
                    .bind(database)
                    .fetch_one(&mut conn)
                    .await?;
                if dropped.is_ok() && left == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop database if exists {database} with (force)")))
                .execute(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        let _ = conn.close().await;
        result.map_err(|e| Error::Core(e.into()))
    }

    /// The databases here whose names start with `prefix`.
    pub async fn databases(&self, prefix: &str) -> Result<Vec<String>> {
        let mut conn = self.admin().await?;
        let names = sqlx::query_scalar(
            "select datname::text from pg_database where starts_with(datname, $1) and not datistemplate order by 1",
        )
        .bind(prefix)
        .fetch_all(&mut conn)
        .await;
        let _ = conn.close().await;
        names.map_err(|e| Error::Core(e.into()))
    }
}

/// `url` naming `database` instead of its own: the path between the authority and the query
/// is replaced. Names made by the control plane need no escaping; others are refused.
pub(crate) fn with_database(url: &str, database: &str) -> Result<String> {
    check_name(database)?;
    let bad = || Error::internal("a cluster URL is not a postgres:// URL");
    let scheme_end = url.find("://").ok_or_else(bad)? + 3;
    let rest = &url[scheme_end..];
    let authority_end = scheme_end + rest.find(['/', '?']).unwrap_or(rest.len());
    let query = url[authority_end..].find('?').map(|i| &url[authority_end + i..]).unwrap_or("");
    Ok(format!("{}/{database}{query}", &url[..authority_end]))
}

/// The `application_name` of the control plane's own connections to project databases
/// (creating, importing, `database/query`): short-lived, one per operation under way, and
/// outside the projects' connection budget, which covers the pools that serve requests.
pub const CONTROL_APPLICATION_NAME: &str = "forge-control";

/// Options for a control-plane connection to `url`.
pub(crate) fn control_options(url: &str) -> Result<sqlx::postgres::PgConnectOptions> {
    Ok(sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|_| Error::internal("a cluster URL is not a Postgres URL"))?
        .application_name(CONTROL_APPLICATION_NAME))
}

/// `url` with `application_name` set (replacing one it had).
fn with_application_name(url: &str, name: &str) -> Result<String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::internal(format!("not an application name the control plane makes: {name:?}")));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> =
        query.split('&').filter(|p| !p.is_empty() && !p.starts_with("application_name=")).collect();
    let own = format!("application_name={name}");
    params.push(&own);
    Ok(format!("{base}?{}", params.join("&")))
}

/// Database names the control plane makes: lower-case letters, digits and `_`, at most 63.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok { Ok(()) } else { Err(Error::internal(format!("not a database name the control plane makes: {name:?}"))) }
}

/// The role that owns what every project's owner role manages, in each project's database.
pub const OWNERS: &str = "forge_owners";

/// The name of a project's owner role: `forge_` and the ref with `-` as `_`.
pub fn owner_role_name(reference: &str) -> String {
    format!("forge_{}", reference.replace('-', "_"))
}

/// The name of a project's database: the platform database's name, `_`, the ref with `-`
/// as `_`.
pub fn project_database_name(platform_database: &str, reference: &str) -> String {
    format!("{platform_database}_{}", reference.replace('-', "_"))
}

fn is_duplicate_database(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P04")
}

fn is_template_busy(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "55006")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_database_put_in() {
        let cases = [
            ("postgres://u:p@host:5432/app", "postgres://u:p@host:5432/forge_x"),
            ("postgres://u@%2Ftmp%2Frun:5432/postgres", "postgres://u@%2Ftmp%2Frun:5432/forge_x"),
            ("postgresql://u@host/app?sslmode=require", "postgresql://u@host/forge_x?sslmode=require"),
            ("postgres://u@host?host=/run/pg", "postgres://u@host/forge_x?host=/run/pg"),
            ("postgres://host", "postgres://host/forge_x"),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "forge_x").expect(url), want);
        }
        assert!(with_database("postgres://h/db", "x; drop").is_err());
        assert!(with_database("postgres://h/db", "Upper").is_err());
        assert!(with_database("not a url", "forge_x").is_err());
    }

    #[test]
    fn urls_get_the_application_name_put_in() {
        let cases = [
            ("postgres://u@h/db", "postgres://u@h/db?application_name=forge-1a"),
            ("postgres://u@h/db?sslmode=require", "postgres://u@h/db?sslmode=require&application_name=forge-1a"),
            ("postgres://u@h/db?application_name=x&a=b", "postgres://u@h/db?a=b&application_name=forge-1a"),
        ];
        for (url, want) in cases {
            assert_eq!(with_application_name(url, "forge-1a").expect(url), want);
        }
        assert!(with_application_name("postgres://h/db", "a b").is_err());
        assert!(with_application_name("postgres://h/db", "a&x=1").is_err());
    }

    #[test]
    fn project_database_names_are_made_from_the_ref() {
        assert_eq!(project_database_name("forge_platform", "abcd-ef"), "forge_platform_abcd_ef");
        assert!(check_name(&project_database_name("forge_platform", &"a".repeat(20))).is_ok());
    }
}
