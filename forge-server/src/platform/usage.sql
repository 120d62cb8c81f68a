-- Usage metering: what each project used, in hourly buckets (platform::usage).
--
-- Every forge-server node counts in memory and adds its counts here in batches, so a row is
-- the sum over all nodes. A `counter` row is added to (`value + excluded.value`); a `gauge`
-- row keeps the largest value sampled in its hour (`greatest`). Hours are UTC hour starts.
-- No foreign key to forge.projects: the usage of a deleted project stays for billing.

create table if not exists forge.usage_hourly (
  ref text not null,
  hour timestamptz not null check (extract(epoch from hour) % 3600 = 0),
  metric text not null,
  dimension text not null default '',
  kind text not null default 'counter' check (kind in ('counter', 'gauge')),
  value bigint not null default 0,
  primary key (ref, hour, metric, dimension)
);

-- Billing and reports read every project in a period.
create index if not exists usage_hourly_hour_idx on forge.usage_hourly (hour);

-- The flushes already added, by the id a node gives each batch: a batch whose write had an
-- unknown outcome (connection lost, flush cancelled) is sent again with the same id and is
-- then added at most once. Ids older than a week are swept by the nodes.
create table if not exists forge.usage_flushes (
  id uuid primary key,
  at timestamptz not null default now()
);
create index if not exists usage_flushes_at_idx on forge.usage_flushes (at);
