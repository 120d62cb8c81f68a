-- The control plane, in the platform database (which is also the platform project's
-- database: `auth.users` holds the platform's users). Nothing here is granted to the API
-- roles; only forge-server, as the database owner, reads and writes it.

create table forge.installation (
    id boolean primary key default true check (id),
    -- The one-time setup link's token (SHA-256), until the first owner exists.
    setup_token_hash bytea,
    owner_created_at timestamptz
);
insert into forge.installation default values;

create table forge.organizations (
    id uuid primary key default gen_random_uuid(),
    -- The organization's id on the wire (the Management API's `id`/`slug`).
    slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name text not null check (length(name) between 1 and 256),
    created_at timestamptz not null default now()
);

create table forge.members (
    organization_id uuid not null references forge.organizations on delete cascade,
    user_id uuid not null references auth.users on delete cascade,
    role text not null check (role in ('owner', 'administrator', 'developer', 'read_only')),
    created_at timestamptz not null default now(),
    primary key (organization_id, user_id)
);
create index members_user on forge.members (user_id);

create table forge.invitations (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references forge.organizations on delete cascade,
    email text not null check (length(email) between 3 and 320),
    role text not null check (role in ('owner', 'administrator', 'developer', 'read_only')),
    token_hash bytea not null unique,
    invited_by uuid references auth.users on delete set null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    accepted_at timestamptz
);

-- Postgres clusters that hold project databases. `url` is sealed under the master key (it
-- may hold a password); `database` is null for the cluster of the default project.
create table forge.clusters (
    id text primary key check (id ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    url bytea not null,
    gateway_url bytea,
    created_at timestamptz not null default now()
);

-- Every change that nodes must notice (a key revoked, a project paused) takes a new
-- revision; nodes poll for revisions above the last one they saw.
create sequence forge.revision;

create table forge.projects (
    ref text primary key check (ref ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    organization_id uuid not null references forge.organizations,
    name text not null check (length(name) between 1 and 256),
    status text not null check (status in ('coming_up', 'active', 'paused', 'removing')),
    -- Where the database lives: a cluster and a database name; null for the default
    -- project, which is the server's configured database.
    cluster_id text references forge.clusters,
    database text,
    plan text not null default 'free',
    region text not null default 'local',
    revision bigint not null default nextval('forge.revision'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index projects_organization on forge.projects (organization_id);
create index projects_revision on forge.projects (revision);

-- Sealed secrets: the legacy JWT secret (purpose `project:<ref>:jwt_secret`).
create table forge.project_secrets (
    ref text primary key references forge.projects on delete cascade,
    jwt_secret bytea not null
);

create table forge.signing_keys (
    id uuid primary key default gen_random_uuid(),
    ref text not null references forge.projects on delete cascade,
    status text not null check (status in ('current', 'standby', 'previous')),
    algorithm text not null,
    kid text not null,
    -- PKCS#8 DER, sealed (purpose `project:<ref>:signing_key:<id>`).
    private_key bytea not null,
    created_at timestamptz not null default now()
);
create unique index signing_keys_one_current on forge.signing_keys (ref) where status = 'current';
create unique index signing_keys_one_standby on forge.signing_keys (ref) where status = 'standby';

create table forge.api_keys (
    id uuid primary key default gen_random_uuid(),
    ref text not null references forge.projects on delete cascade,
    kind text not null check (kind in ('publishable', 'secret', 'legacy_anon', 'legacy_service_role')),
    name text not null check (length(name) between 1 and 128),
    -- What a listing shows: the publishable key whole, else its first characters.
    prefix text not null,
    key_hash bytea not null unique,
    -- The key, sealed (purpose `project:<ref>:api_key:<id>`), for revealing.
    sealed bytea not null,
    created_by uuid references auth.users on delete set null,
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);
create index api_keys_ref on forge.api_keys (ref);

-- Personal access tokens for the Management API: only their SHA-256 is kept.
create table forge.access_tokens (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references auth.users on delete cascade,
    name text not null check (length(name) between 1 and 128),
    prefix text not null,
    token_hash bytea not null unique,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    last_used_at timestamptz
);
create index access_tokens_user on forge.access_tokens (user_id);

-- Who did what to which organization or project. Append-only: updates, deletes and
-- truncation are refused by triggers, so even a bug in forge-server cannot rewrite it.
create table forge.audit_log (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    actor_id uuid,
    actor text not null,
    action text not null,
    organization_id uuid,
    project_ref text,
    details jsonb not null default '{}'
);
create index audit_log_organization on forge.audit_log (organization_id, id);
create index audit_log_project on forge.audit_log (project_ref, id);

create function forge.audit_log_is_append_only() returns trigger
language plpgsql as $$
begin
    raise exception 'the audit log is append-only' using errcode = '42501';
end
$$;
create trigger audit_log_no_update before update or delete on forge.audit_log
    for each row execute function forge.audit_log_is_append_only();
create trigger audit_log_no_truncate before truncate on forge.audit_log
    for each statement execute function forge.audit_log_is_append_only();
