-- Analytics buckets and their Iceberg REST catalog (`/storage/v1/iceberg`, what storage-js's
-- `storage.analytics` and iceberg-js speak). Only the service role reaches these routes and
-- these tables: RLS is on with no policy, the API roles have no grants, and the routes run as
-- the caller (service_role bypasses RLS). Names follow Supabase Storage's tables
-- (`buckets_analytics`, `iceberg_namespaces`, `iceberg_tables`); table metadata lives here as
-- jsonb, and no data or metadata files are written anywhere.

-- An analytics bucket is an Iceberg warehouse. The API shows `name` as the bucket's id too, as
-- Supabase does; `id` is internal.
create table if not exists storage.buckets_analytics (
  id uuid primary key default gen_random_uuid(),
  -- 3 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit
  -- (the rule of S3 table buckets, which back Supabase's analytics buckets).
  name text collate "C" not null unique check (name ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
  type text not null default 'ANALYTICS' check (type = 'ANALYTICS'),
  format text not null default 'iceberg',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- A namespace is a path of levels (`{sales,eu}` for `sales.eu`); a nested one points at its
-- parent, so a parent cannot be dropped while it has children, and a child cannot be created
-- under a parent that is being dropped.
create table if not exists storage.iceberg_namespaces (
  id uuid primary key default gen_random_uuid(),
  catalog_id uuid not null references storage.buckets_analytics (id),
  parent_id uuid references storage.iceberg_namespaces (id),
  levels text[] collate "C" not null check (cardinality(levels) >= 1),
  properties jsonb not null default '{}' check (jsonb_typeof(properties) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (catalog_id, levels)
);
create index if not exists iceberg_namespaces_parent on storage.iceberg_namespaces (parent_id);

-- A table's current metadata (Iceberg TableMetadata, format version 2) and where a file-based
-- catalog would have written it: `<location>/metadata/<version>-<uuid>.metadata.json`.
-- `version` counts the table's commits; a commit locks the row, checks its requirements
-- against the locked metadata and writes the next version in the same transaction.
create table if not exists storage.iceberg_tables (
  id uuid primary key default gen_random_uuid(),
  namespace_id uuid not null references storage.iceberg_namespaces (id),
  name text collate "C" not null,
  location text not null,
  metadata_location text not null,
  metadata jsonb not null check (jsonb_typeof(metadata) = 'object'),
  version bigint not null default 0 check (version >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (namespace_id, name)
);

alter table storage.buckets_analytics enable row level security;
alter table storage.iceberg_namespaces enable row level security;
alter table storage.iceberg_tables enable row level security;
revoke all on storage.buckets_analytics, storage.iceberg_namespaces, storage.iceberg_tables
  from public, anon, authenticated;
grant select, insert, update, delete
  on storage.buckets_analytics, storage.iceberg_namespaces, storage.iceberg_tables
  to service_role;
