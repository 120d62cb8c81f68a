-- Forge bootstrap: applied idempotently to every project database, on every start.
-- Roles are cluster-wide; everything else is per database.

-- 1. The API roles (the Supabase / PostgREST model).
do $$
declare
  r record;
begin
  for r in select * from (values
      ('anon', 'nologin noinherit'),
      ('authenticated', 'nologin noinherit'),
      ('service_role', 'nologin noinherit bypassrls'),
      ('authenticator', 'login noinherit')
    ) as t(name, attrs)
  loop
    if not exists (select 1 from pg_roles where rolname = r.name) then
      begin
        execute format('create role %I %s', r.name, r.attrs);
      exception when duplicate_object or unique_violation then
        null; -- created concurrently by another database's bootstrap
      end;
    end if;
  end loop;
end
$$;

do $$
begin
  grant anon, authenticated, service_role to authenticator;
  -- The connecting role switches to these roles too (SET ROLE discipline in one-database embeds).
  if not (select rolsuper from pg_roles where rolname = current_user) then
    execute format('grant anon, authenticated, service_role to %I', current_user);
  end if;
end
$$;

-- 2. Forge's own schema.
create schema if not exists forge;
revoke all on schema forge from public;

-- 3. Schema auth and the helpers Supabase policies use. They read the settings the RLS
--    gateway sets per transaction.
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role(), auth.email() to anon, authenticated, service_role;

-- 4. Schema public as Supabase sets it up: the API roles may use it, and tables created in it
--    are reachable through the API, guarded by RLS.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;

-- 4b. Schema extensions, where Supabase installs extensions (`create extension postgis schema
--     extensions`); it is on the REST search path, so the API roles may use it.
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
alter default privileges in schema extensions grant execute on functions to anon, authenticated, service_role;

-- 5. An empty publication, so Supabase migrations that alter it run unchanged.
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

-- 6. Schema changes announce themselves so schema caches reload (PostgREST's channel and
--    payload, so `notify pgrst, 'reload schema'` from users works the same).
create or replace function forge.notify_ddl() returns event_trigger
language plpgsql
as $$
begin
  perform pg_notify('pgrst', 'reload schema');
end
$$;

do $$
begin
  if not exists (select 1 from pg_event_trigger where evtname = 'forge_ddl_end') then
    create event trigger forge_ddl_end on ddl_command_end execute function forge.notify_ddl();
  end if;
  if not exists (select 1 from pg_event_trigger where evtname = 'forge_ddl_drop') then
    create event trigger forge_ddl_drop on sql_drop execute function forge.notify_ddl();
  end if;
exception when insufficient_privilege then
  raise warning 'forge: event triggers need a superuser; announce schema changes with: notify pgrst, ''reload schema''';
end
$$;

-- 7. The migrations ledger: one row per (owner crate, version), so crates never collide.
create table if not exists forge.migrations (
  owner      text        not null,
  version    bigint      not null,
  name       text        not null,
  checksum   bytea       not null,
  applied_at timestamptz not null default now(),
  primary key (owner, version)
);
