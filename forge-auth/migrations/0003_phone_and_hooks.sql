-- Lookups by a pending phone change and its code, and the role auth hooks run as
-- (Supabase's supabase_auth_admin, so hook grants written for Supabase work unchanged).

create index if not exists users_phone_change_token_idx on auth.users (phone_change_token)
  where phone_change_token <> '';
create index if not exists users_phone_change_idx on auth.users (phone_change) where phone_change <> '';

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then
    begin
      create role supabase_auth_admin nologin noinherit;
    exception when duplicate_object or unique_violation then
      null; -- created concurrently by another database's migration
    end;
  end if;
  if not (select rolsuper from pg_roles where rolname = current_user) then
    execute format('grant supabase_auth_admin to %I', current_user);
  end if;
end
$$;
