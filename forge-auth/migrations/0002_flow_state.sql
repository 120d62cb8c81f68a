-- PKCE and OAuth flow state (GoTrue's auth.flow_state), plus columns Forge needs for OAuth
-- redirects. The auth code is stored as a SHA-256 digest, never in the clear.

create table if not exists auth.flow_state (
  id uuid primary key,
  user_id uuid references auth.users (id) on delete cascade,
  auth_code text,
  code_challenge_method text,
  code_challenge text,
  provider_type text not null,
  provider_access_token text,
  provider_refresh_token text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  authentication_method text not null,
  auth_code_issued_at timestamptz,
  redirect_to text,
  provider_verifier text,
  provider_nonce text,
  link_user_id uuid
);
create index if not exists flow_state_auth_code_idx on auth.flow_state (auth_code);
create index if not exists flow_state_created_at_idx on auth.flow_state (created_at desc);
create index if not exists flow_state_user_method_idx on auth.flow_state (user_id, authentication_method);

-- Lookups of one-time tokens by their digest (verify with token_hash).
create index if not exists users_confirmation_token_idx on auth.users (confirmation_token) where confirmation_token <> '';
create index if not exists users_recovery_token_idx on auth.users (recovery_token) where recovery_token <> '';
create index if not exists users_email_change_token_new_idx on auth.users (email_change_token_new) where email_change_token_new <> '';
create index if not exists users_email_change_token_current_idx on auth.users (email_change_token_current) where email_change_token_current <> '';

revoke all on auth.flow_state from anon, authenticated;
grant all on auth.flow_state to service_role;

-- The time step of the last TOTP code accepted for a factor: a code is accepted once.
alter table auth.mfa_factors add column if not exists last_totp_step bigint;
