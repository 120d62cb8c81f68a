-- TUS resumable uploads in progress. Only the service reads this table: no grants to the
-- API roles, and RLS on with no policy. Each upload's bytes live in part blobs under
-- `<project ref>/tus/<id>/` until the last one arrives; they are then joined into the
-- object's version `<project ref>/<id>` and the object row is written as the caller. A
-- request writing a chunk holds a lease on the upload (no transaction stays open while the
-- bytes arrive); others get 423 until it is released or runs out.
create table if not exists storage.resumable_uploads (
  -- Also the version of the object the upload becomes.
  id uuid primary key,
  bucket_id text not null,
  name text not null,
  -- Who created it: later requests must come from the same role and user, or (for a signed
  -- upload URL) carry a token for the same object.
  role text not null,
  -- The creator's `sub` as the token gave it; `owner_id` is the object's owner (a user id).
  subject text,
  owner_id text,
  signed boolean not null,
  upsert boolean not null,
  upload_length bigint not null check (upload_length >= 0),
  upload_offset bigint not null default 0 check (upload_offset >= 0 and upload_offset <= upload_length),
  -- The stored parts' names under the upload's folder, in order.
  parts text[] not null default '{}',
  -- The request writing a chunk now, and until when its lease holds (it renews it).
  writer uuid,
  lease_until timestamptz,
  content_type text not null,
  cache_control text not null,
  user_metadata jsonb,
  -- The Upload-Metadata header as sent, echoed by HEAD.
  upload_metadata text,
  expires_at timestamptz not null,
  finished_at timestamptz,
  created_at timestamptz not null default now()
);
create index if not exists resumable_uploads_expires on storage.resumable_uploads (expires_at);

alter table storage.resumable_uploads enable row level security;
revoke all on storage.resumable_uploads from public, anon, authenticated, service_role;

-- Finding whether any row still names a blob version (after an upsert, a delete or a move,
-- and when sweeping) must not scan the table.
create index if not exists objects_version on storage.objects (version);
