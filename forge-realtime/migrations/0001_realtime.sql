-- forge-realtime: the `realtime` schema as Supabase Realtime has it (supabase/realtime,
-- lib/realtime/tenants/repo/migrations/*), so Supabase migrations and policies written against
-- `realtime.messages`, `realtime.topic()`, `realtime.send(...)` and
-- `realtime.broadcast_changes(...)` run unchanged.
--
-- Left out on purpose: Supabase's old change capture (`realtime.subscription`,
-- `realtime.apply_rls`, `realtime.list_changes`, its types) and `realtime.schema_migrations`,
-- which forge-realtime does not use and user migrations do not reference; and the
-- `supabase_realtime_admin` owner role: the objects belong to the role that runs the
-- migrations (the owner Forge connects as), which therefore bypasses RLS on them.
--
-- Differences from upstream, each on purpose:
-- * `inserted_at` and `updated_at` default to `timezone('utc', now())` where upstream has
--   `now()`. Supabase databases run in UTC, so the values are the same there; Forge's own
--   cluster takes the host's time zone, and replay (`since`, in Unix milliseconds) and the
--   daily partitions need these columns in UTC.
-- * The message publication publishes inserts only and names changes after the partitioned
--   root (`publish_via_partition_root`): realtime.messages inserts are what become broadcasts;
--   partition maintenance (moving rows out of the default partition, dropping old days)
--   must not reach the change stream.
-- * Partitions are created ahead of time by `realtime.forge_maintain_partitions()` (upstream
--   does this from the Realtime server), and a default partition catches rows whose day has
--   no partition yet instead of failing the insert.

create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;

-- Partitioning: as upstream, `realtime.messages` is partitioned by day on `inserted_at`, with
-- the primary key (id, inserted_at). Messages are short-lived (replay looks back a few days at
-- most) and may be written at a high rate (every `realtime.send`, every trigger calling
-- `realtime.broadcast_changes`); dropping a whole day's partition costs nothing where a
-- DELETE would write WAL and leave dead rows to vacuum. Partitions are named
-- `messages_YYYY_MM_DD` (UTC days), as upstream's. `messages_default` takes rows for days
-- without a partition (the server did not run maintenance for a while, or a row with an odd
-- `inserted_at`); maintenance moves them into their day's partition when it creates it.
create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp not null default timezone('utc', now()),
  inserted_at timestamp not null default timezone('utc', now()),
  id uuid not null default gen_random_uuid(),
  binary_payload bytea,
  constraint messages_payload_exclusive check (payload is null or binary_payload is null),
  constraint messages_pkey primary key (id, inserted_at)
) partition by range (inserted_at);

create table if not exists realtime.messages_default partition of realtime.messages default;

-- Upstream's replay index.
create index if not exists messages_inserted_at_topic_index
  on realtime.messages (inserted_at desc, topic)
  where extension = 'broadcast' and private is true;

alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

-- The topic a Realtime authorization check (or `realtime.send`) is about, for policies.
create or replace function realtime.topic() returns text as $$
select nullif(current_setting('realtime.topic', true), '')::text;
$$ language sql stable;

-- Broadcasts `payload` as `event` on `topic` (upstream's latest version: the payload gets an
-- `id` when it has none, and failures, RLS refusals included, are only a warning).
create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    generated_id := gen_random_uuid();

    -- Check if payload has an 'id' key, if not, add the generated UUID
    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    end if;

    -- Set the topic configuration
    execute format('SET LOCAL realtime.topic TO %L', topic);

    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'WarnSendingBroadcastMessage: %', SQLERRM;
  end;
end;
$$
language plpgsql;

-- The same with a binary payload (sent to clients as a binary broadcast).
create or replace function realtime.send_binary(payload bytea, event text, topic text, private boolean default true)
returns void
as $$
declare
  generated_id uuid;
begin
  begin
    generated_id := gen_random_uuid();

    execute format('SET LOCAL realtime.topic TO %L', topic);

    insert into realtime.messages (id, binary_payload, event, topic, private, extension)
    values (generated_id, payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'WarnSendingBroadcastMessage: %', SQLERRM;
  end;
end;
$$
language plpgsql;

-- For row triggers: broadcasts the change as
-- `{old_record, record, operation, table, schema}` (plus the `id` `realtime.send` adds).
create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW'
)
returns void
as $$
declare
  -- Declare a variable to hold the JSONB representation of the row
  row_data jsonb := '{}'::jsonb;
begin
  if level = 'STATEMENT' then
    raise exception 'function can only be triggered for each row, not for each statement';
  end if;
  -- Check the operation type and handle accordingly
  if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
    row_data := jsonb_build_object('old_record', old, 'record', new, 'operation', operation, 'table', table_name, 'schema', table_schema);
    perform realtime.send(row_data, event_name, topic_name);
  else
    raise exception 'Unexpected operation type: %', operation;
  end if;
exception
  when others then
    raise exception 'Failed to process the row: %', SQLERRM;
end;
$$
language plpgsql;

grant execute on function
  realtime.topic(),
  realtime.send(jsonb, text, text, boolean),
  realtime.send_binary(bytea, text, text, boolean),
  realtime.broadcast_changes(text, text, text, text, text, record, record, text)
to anon, authenticated, service_role;

-- Creates the daily partitions from yesterday to `ahead_days` days ahead (UTC days), moving
-- rows the default partition holds for a day into that day's new partition, and drops the
-- partitions (and default-partition rows) of days more than `retain_days` before today.
-- Upstream creates yesterday .. today + 3 and deletes days older than 72 hours; the defaults
-- match. Forge runs it at migration and then periodically from the server. Only the owner
-- may run it.
create or replace function realtime.forge_maintain_partitions(retain_days integer default 3, ahead_days integer default 3)
returns void
as $$
declare
  today date := timezone('utc', now())::date;
  d date;
  part text;
  r record;
begin
  -- One maintainer at a time (several servers may share a database).
  perform pg_advisory_xact_lock(hashtext('realtime.forge_maintain_partitions'));

  for i in -least(1, greatest(retain_days, 0)) .. greatest(ahead_days, 0) loop
    d := today + i;
    part := 'messages_' || to_char(d, 'YYYY_MM_DD');
    continue when to_regclass(format('realtime.%I', part)) is not null;
    if exists (select 1 from realtime.messages_default where inserted_at >= d and inserted_at < d + 1) then
      -- A new partition may not overlap rows of the default one: move them over, then attach.
      execute format('create table realtime.%I (like realtime.messages including defaults including constraints)', part);
      execute format(
        'with moved as (delete from realtime.messages_default where inserted_at >= %L and inserted_at < %L returning *) insert into realtime.%I select * from moved',
        d, d + 1, part
      );
      execute format('alter table realtime.messages attach partition realtime.%I for values from (%L) to (%L)', part, d, d + 1);
    else
      execute format('create table realtime.%I partition of realtime.messages for values from (%L) to (%L)', part, d, d + 1);
    end if;
  end loop;

  for r in
    select c.relname
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'realtime.messages'::regclass
      and c.relname ~ '^messages_[0-9]{4}_[0-9]{2}_[0-9]{2}$'
  loop
    if to_date(substr(r.relname, 10), 'YYYY_MM_DD') < today - greatest(retain_days, 0) then
      execute format('drop table realtime.%I', r.relname);
    end if;
  end loop;

  delete from realtime.messages_default where inserted_at < today - greatest(retain_days, 0);
end;
$$
language plpgsql;

revoke all on function realtime.forge_maintain_partitions(integer, integer) from public;

select realtime.forge_maintain_partitions();

-- The change capture decodes this publication beside `supabase_realtime`: every row inserted
-- into realtime.messages (by `realtime.send`, `realtime.broadcast_changes` or any INSERT)
-- becomes a broadcast on its topic. Upstream's publication has the same name.
do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime_messages_publication') then
    create publication supabase_realtime_messages_publication for table realtime.messages
      with (publish = 'insert', publish_via_partition_root = true);
  end if;
end
$$;
