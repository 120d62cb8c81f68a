-- Vector buckets (`/storage/v1/vector`, the S3 Vectors API storage-js and storage3 speak).
-- Only the service role reaches these routes, and only the service reads these tables: no
-- grants to the API roles, and RLS on with no policy. Names follow Supabase's tables
-- (`buckets_vectors`, `vector_indexes`); the vectors themselves live in `storage.vectors`.
create table if not exists storage.buckets_vectors (
  id text collate "C" primary key,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists storage.vector_indexes (
  id uuid primary key default gen_random_uuid(),
  name text collate "C" not null,
  bucket_id text collate "C" not null references storage.buckets_vectors (id),
  data_type text not null check (data_type = 'float32'),
  dimension integer not null check (dimension between 1 and 4096),
  distance_metric text not null check (distance_metric in ('cosine', 'euclidean')),
  metadata_configuration jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (bucket_id, name)
);

create table if not exists storage.vectors (
  index_id uuid not null references storage.vector_indexes (id) on delete cascade,
  -- Byte order ("C"): pages, and the order batches lock their rows in, follow it.
  key text collate "C" not null,
  -- The components as little-endian float32s.
  data bytea not null,
  metadata jsonb,
  primary key (index_id, key)
);

revoke all on storage.buckets_vectors, storage.vector_indexes, storage.vectors from public, anon, authenticated;
alter table storage.buckets_vectors enable row level security;
alter table storage.vector_indexes enable row level security;
alter table storage.vectors enable row level security;
