-- Seed schema for the client-compatibility suite (compat/run.sh applies it as `postgres`).
-- Supabase's default privileges grant every table created here to anon/authenticated/
-- service_role, so only RLS decides access (see `notes`).
\set ON_ERROR_STOP on
set client_min_messages = warning;

-- One transaction: the server's schema cache reloads on DDL, and a reload in the middle of
-- this script would otherwise expose a half-built schema to the suites.
begin;

drop table if exists public.notes, public.flights, public.country_languages, public.languages,
  public.cities, public.countries, public.reservations, public.articles, public.secrets,
  public.w_books, public.w_authors, public.w_feedback, public.w_todos, public.rpc_events,
  public.auth_notes cascade;
drop type if exists public.continent cascade;
drop function if exists public.add_ints(int, int), public.greet(text), public.cities_in(text),
  public.country_stats(int), public.int_series(int, int), public.country_by_code(text),
  public.log_event(text), public.sum_ints(int[]), public.join_words(text[], text),
  public.echo_payload(jsonb), public.fail_loudly(text) cascade;

create type public.continent as enum ('Africa', 'Asia', 'Europe', 'North America', 'Oceania', 'South America');

-- countries: one-to-many to cities, many-to-many to languages, arrays, jsonb, enum, NULLs
create table public.countries (
  id          int primary key,
  name        text not null,
  code        char(2) not null unique,
  continent   public.continent,
  population  bigint,
  area_km2    numeric(12, 1),
  tags        text[] not null default '{}',
  meta        jsonb,
  "local name" text
);

-- cities: many-to-one to countries
create table public.cities (
  id          int primary key,
  name        text not null,
  country_id  int references public.countries (id),
  population  int,
  is_capital  boolean not null default false
);

create table public.languages (
  id    int primary key,
  name  text not null
);

-- junction table: both FKs are part of the composite PK, so it is a many-to-many
create table public.country_languages (
  country_id   int not null references public.countries (id),
  language_id  int not null references public.languages (id),
  official     boolean not null default true,
  primary key (country_id, language_id)
);

-- two FKs to the same table: embedding `cities` from `flights` is ambiguous
create table public.flights (
  id              int primary key,
  code            text not null,
  origin_id       int not null constraint flights_origin_fkey references public.cities (id),
  destination_id  int not null constraint flights_destination_fkey references public.cities (id),
  minutes         int not null
);

-- ranges for the range operators
create table public.reservations (
  id      int primary key,
  room    text not null,
  during  int4range not null,
  guests  int[] not null default '{}'
);

-- full-text search: a plain text column and a stored tsvector
create table public.articles (
  id     int primary key,
  title  text not null,
  body   text not null,
  fts    tsvector generated always as (to_tsvector('english', title || ' ' || body)) stored
);

-- RLS-protected table: each authenticated user sees only its own rows
create table public.notes (
  id        int primary key,
  owner_id  uuid not null,
  body      text not null
);
alter table public.notes enable row level security;
create policy notes_owner_select on public.notes
  for select to authenticated
  using (owner_id = auth.uid());

-- no privileges for anon/authenticated at all: reads fail with 42501 (401 anon, 403 user)
create table public.secrets (
  id     int primary key,
  value  text not null
);
revoke all on public.secrets from anon, authenticated;

insert into public.countries (id, name, code, continent, population, area_km2, tags, meta, "local name") values
  (1, 'France',        'FR', 'Europe',        68000000,  551695.0, '{wine,cheese,eu}', '{"capital":"Paris","currency":{"code":"EUR"},"g7":true,"rank":7}', 'République française'),
  (2, 'Germany',       'DE', 'Europe',        84000000,  357588.0, '{beer,eu}',        '{"capital":"Berlin","currency":{"code":"EUR"},"g7":true,"rank":3}', 'Deutschland'),
  (3, 'Japan',         'JP', 'Asia',         125000000,  377975.0, '{sushi,g7}',       '{"capital":"Tokyo","currency":{"code":"JPY"},"g7":true,"rank":4}', '日本'),
  (4, 'Brazil',        'BR', 'South America', 203000000, 8515767.0, '{coffee}',        '{"capital":"Brasília","currency":{"code":"BRL"},"g7":false,"rank":9}', null),
  (5, 'Canada',        'CA', 'North America', 40000000,  9984670.0, '{maple,g7}',      '{"capital":"Ottawa","currency":{"code":"CAD"},"g7":true,"rank":10}', null),
  (6, 'Atlantis',      'AT', null,            null,      null,      '{}',              null, null),
  (7, 'Switzerland',   'CH', 'Europe',        8800000,   41285.0,   '{cheese,chocolate}', '{"capital":"Bern","currency":{"code":"CHF"},"g7":false,"rank":20}', 'Schweiz');

insert into public.cities (id, name, country_id, population, is_capital) values
  (1,  'Paris',     1, 2100000,  true),
  (2,  'Lyon',      1, 520000,   false),
  (3,  'Marseille', 1, 870000,   false),
  (4,  'Berlin',    2, 3700000,  true),
  (5,  'Munich',    2, 1500000,  false),
  (6,  'Tokyo',     3, 14000000, true),
  (7,  'Osaka',     3, 2700000,  false),
  (8,  'São Paulo', 4, 12300000, false),
  (9,  'Brasília',  4, 2800000,  true),
  (10, 'Ottawa',    5, 1000000,  true),
  (11, 'Toronto',   5, null,     false),
  (12, 'Nowhere',   null, null,  false),
  (13, 'Bern',      7, 134000,   true),
  (14, 'Zürich',    7, 420000,   false);

insert into public.languages (id, name) values
  (1, 'French'), (2, 'German'), (3, 'Japanese'), (4, 'Portuguese'), (5, 'English'), (6, 'Italian'), (7, 'Klingon');

insert into public.country_languages (country_id, language_id, official) values
  (1, 1, true),
  (2, 2, true),
  (3, 3, true),
  (4, 4, true),
  (5, 5, true), (5, 1, true),
  (7, 2, true), (7, 1, true), (7, 6, true), (7, 5, false);

insert into public.flights (id, code, origin_id, destination_id, minutes) values
  (1, 'AF100', 1, 6, 850),
  (2, 'LH200', 4, 1, 105),
  (3, 'JL300', 6, 10, 760),
  (4, 'AC400', 10, 1, 430),
  (5, 'LX500', 13, 4, 80);

insert into public.reservations (id, room, during, guests) values
  (1, 'Blue',   '[1,5)',   '{1,2}'),
  (2, 'Blue',   '[5,10)',  '{3}'),
  (3, 'Red',    '[8,12)',  '{1,4,5}'),
  (4, 'Green',  '[20,30)', '{}'),
  (5, 'Red',    '[12,15)', '{2,3}');

insert into public.articles (id, title, body) values
  (1, 'Cats and dogs',       'The quick brown fox jumps over the lazy dog.'),
  (2, 'Fat cats',            'A fat cat sat on the mat, purring.'),
  (3, 'Gardening',           'Plant tomatoes in spring; water them daily.'),
  (4, 'Dog training basics', 'Dogs learn quickly with treats and patience.'),
  (5, 'Cooking rice',        'Rinse the rice, then simmer it for twenty minutes.');

-- two fixed users (see FORGE tests: USER_A / USER_B)
insert into public.notes (id, owner_id, body) values
  (1, '11111111-1111-4111-8111-111111111111', 'alice: buy milk'),
  (2, '11111111-1111-4111-8111-111111111111', 'alice: call bob'),
  (3, '11111111-1111-4111-8111-111111111111', 'alice: water plants'),
  (4, '22222222-2222-4222-8222-222222222222', 'bob: renew passport'),
  (5, '22222222-2222-4222-8222-222222222222', 'bob: fix bike');

insert into public.secrets (id, value) values (1, 'launch code'), (2, 'wifi password');

-- ------------------------------------------------------------------ writes (write.test.mjs, test_write.py)
-- Each write test owns a range of ten ids (JS 1000-1999, Python 2000-2999), deletes them
-- before and after it runs, and compares what the client got with these tables in SQL.
create table public.w_authors (
  id    int primary key,
  name  text not null
);

create table public.w_books (
  id         int primary key,
  title      text not null,
  isbn       text unique,
  author_id  int references public.w_authors (id),
  pages      int not null default 100,
  genre      text default 'fiction',
  tags       text[] not null default '{}',
  info       jsonb,
  price      numeric(8, 2)
);

-- insert-only for anon: no SELECT policy, so INSERT ... RETURNING <columns> is refused
create table public.w_feedback (
  id    int primary key,
  body  text not null
);
alter table public.w_feedback enable row level security;
create policy w_feedback_anon_insert on public.w_feedback
  for insert to anon
  with check (true);

-- each authenticated user reads and writes only its own todos
create table public.w_todos (
  id        int primary key,
  owner_id  uuid not null default auth.uid(),
  task      text not null,
  done      boolean not null default false
);
alter table public.w_todos enable row level security;
create policy w_todos_own on public.w_todos
  for all to authenticated
  using (owner_id = auth.uid())
  with check (owner_id = auth.uid());

-- ------------------------------------------------------------------ auth (auth.test.mjs, test_auth.py)
-- rows owned by real users of /auth/v1 (auth.users is created by the server's migrations before
-- this script runs); each signed-in user inserts and reads only its own rows
create table public.auth_notes (
  id     bigserial primary key,
  owner  uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body   text not null
);
alter table public.auth_notes enable row level security;
create policy auth_notes_own_select on public.auth_notes
  for select to authenticated
  using (owner = auth.uid());
create policy auth_notes_own_insert on public.auth_notes
  for insert to authenticated
  with check (owner = auth.uid());

insert into public.w_authors (id, name) values (1, 'Ursula K. Le Guin'), (2, 'Frank Herbert'), (3, 'Octavia E. Butler');

-- ------------------------------------------------------------------ RPC (rpc.test.mjs, test_rpc.py)
-- written by the volatile log_event(); tests use their own labels and delete them
create table public.rpc_events (
  label  text not null
);

create function public.add_ints(a int, b int default 10) returns int
  language sql immutable
  as $$ select a + b $$;

create function public.greet(name text default 'world') returns text
  language sql immutable
  as $$ select 'Hello, ' || name || '!' $$;

create function public.cities_in(country_code text) returns setof public.cities
  language sql stable
  as $$ select c.* from public.cities c join public.countries co on co.id = c.country_id
         where co.code = country_code order by c.id $$;

create function public.country_stats(min_cities int default 0)
  returns table (code text, name text, city_count bigint, city_population bigint)
  language sql stable
  as $$ select co.code::text, co.name, count(c.id), sum(c.population)
          from public.countries co left join public.cities c on c.country_id = co.id
         group by co.id having count(c.id) >= min_cities order by co.id $$;

create function public.int_series(n int, step int default 1) returns setof int
  language sql immutable
  as $$ select generate_series(1, n, step) $$;

create function public.country_by_code(country_code text) returns public.countries
  language sql stable
  as $$ select * from public.countries where code = country_code $$;

create function public.log_event(label text) returns void
  language sql volatile
  as $$ insert into public.rpc_events (label) values ($1) $$;

create function public.sum_ints(nums int[]) returns bigint
  language sql immutable
  as $$ select coalesce(sum(x), 0) from unnest(nums) x $$;

create function public.join_words(words text[], sep text default ' ') returns text
  language sql immutable
  as $$ select array_to_string(words, sep) $$;

-- a single unnamed jsonb argument receives the whole request body
create function public.echo_payload(jsonb) returns jsonb
  language sql immutable
  as $$ select jsonb_build_object('keys', (select coalesce(jsonb_agg(k order by k), '[]') from jsonb_object_keys($1) k),
                                  'payload', $1) $$;

create function public.fail_loudly(reason text) returns int
  language plpgsql
  as $$
  begin
    raise exception 'refused: %', reason
      using detail = 'the reason was ' || reason, hint = 'call it with a nicer reason';
  end
  $$;

analyze;

-- tell the server to reload its schema cache (PostgREST's channel; DDL also notifies it)
notify pgrst, 'reload schema';


-- PostGIS in its own schema, as Supabase installs it, for .geojson().
create schema if not exists extensions;
create extension if not exists postgis schema extensions;
create table public.places (id int primary key, name text not null, geom extensions.geometry(Point, 4326));
insert into public.places values
  (1, 'origin', extensions.st_setsrid(extensions.st_makepoint(0, 0), 4326)),
  (2, 'paris', extensions.st_setsrid(extensions.st_makepoint(2.35, 48.85), 4326));

commit;

-- ====================================================================================
-- REST gaps (issue 13). Owned by the REST suites (js/rest|rpc|write.test.mjs and
-- python/test_rest|rpc|write.py): identity keys as the Supabase dashboard creates them, a
-- GENERATED ALWAYS identity and a stored generated column, a self reference, a view over a
-- table, functions over a row type and over a second (unexposed) schema, scalar, set and void
-- results for counts, and overloads PostgREST cannot tell apart.
-- ====================================================================================
begin;

drop schema if exists gap_private cascade;
drop view if exists public.gap_member_names cascade;
drop table if exists public.gap_members, public.gap_teams, public.gap_stamped, public.gap_slots cascade;
drop function if exists public.gap_label(public.gap_members), public.gap_join(text), public.gap_note(text),
  public.gap_member_count(), public.gap_usernames(text), public.gap_pick(integer), public.gap_pick(xml),
  public.gap_pick(text, integer), public.gap_raw_json(json), public.gap_raw_text(text), public.gap_raw_int(integer),
  public.gap_raw_pair(integer, integer), public.gap_raw_over(json), public.gap_raw_over(text), public.gap_raw_over(),
  public.gap_raw_over(integer, integer), public.gap_raw_both(json), public.gap_raw_both(jsonb) cascade;

create schema gap_private;

create table public.gap_teams (
  id    bigint generated by default as identity primary key,
  name  text not null unique
);

create table public.gap_members (
  id         bigint generated by default as identity primary key,
  username   text not null unique,
  bio        text not null default 'new here',
  team_id    bigint references public.gap_teams (id),
  mentor_id  bigint references public.gap_members (id)
);

create table public.gap_stamped (
  id     bigint generated always as identity primary key,
  label  text not null,
  shout  text generated always as (upper(label)) stored
);

-- a deferred unique key: tx=rollback still checks it (SET CONSTRAINTS ALL IMMEDIATE)
create table public.gap_slots (
  id    int primary key,
  code  text not null,
  constraint gap_slots_code_key unique (code) deferrable initially deferred
);

-- a view over a table: it inherits gap_members' foreign keys for embedding
create view public.gap_member_names as
  select id, username, team_id, mentor_id from public.gap_members;

-- a function over the row type (a computed column: select=username,gap_label)
create function public.gap_label(m public.gap_members) returns text
  language sql stable
  as $$ select m.username || ' (' || m.bio || ')' $$;

-- a second schema, not exposed, written by functions
create table gap_private.journal (
  id     bigint generated by default as identity primary key,
  entry  text not null
);

create function public.gap_join(name text) returns bigint
  language sql volatile security definer set search_path = ''
  as $$
    insert into gap_private.journal (entry) values ('joined ' || name);
    insert into public.gap_members (username) values (name) returning id;
  $$;

create function public.gap_note(entry text) returns void
  language sql volatile security definer set search_path = ''
  as $$ insert into gap_private.journal (entry) values (entry) $$;

create function public.gap_member_count() returns bigint
  language sql stable
  as $$ select count(*) from public.gap_members $$;

create function public.gap_usernames(prefix text default '') returns setof text
  language sql stable
  as $$ select username from public.gap_members where username like prefix || '%' order by id $$;

-- the same argument names with different types: PGRST203
create function public.gap_pick(arg integer) returns text language sql immutable as $$ select 'integer' $$;
create function public.gap_pick(arg xml) returns text language sql immutable as $$ select 'xml' $$;
create function public.gap_pick(arg text, num integer default 0) returns text language sql immutable as $$ select 'text' $$;

-- one unnamed parameter: only json, jsonb, text, xml or bytea take the body; the others
-- are not callable through /rpc (PostgREST leaves them out of its schema cache)
create function public.gap_raw_json(json) returns json language sql immutable as $$ select $1 $$;
create function public.gap_raw_text(text) returns text language sql immutable as $$ select $1 $$;
create function public.gap_raw_int(integer) returns integer language sql immutable as $$ select $1 $$;
create function public.gap_raw_pair(integer, integer) returns integer language sql immutable as $$ select $1 + $2 $$;
create function public.gap_raw_over(json) returns text language sql immutable as $$ select 'json' $$;
create function public.gap_raw_over(text) returns text language sql immutable as $$ select 'text' $$;
create function public.gap_raw_over() returns text language sql immutable as $$ select 'none' $$;
create function public.gap_raw_over(x integer, y integer) returns text language sql immutable as $$ select 'x, y' $$;
create function public.gap_raw_both(json) returns text language sql immutable as $$ select 'json' $$;
create function public.gap_raw_both(jsonb) returns text language sql immutable as $$ select 'jsonb' $$;

insert into public.gap_teams (name) values ('red'), ('blue');
insert into public.gap_members (username, bio, team_id) values ('ada', 'mentor', 1);
insert into public.gap_members (username, team_id, mentor_id) values ('bob', 1, 1), ('cy', 2, 1);

notify pgrst, 'reload schema';

commit;

-- ---------------------------------------------------------------- exposed schemas (issue 13, item 12)
-- compat/run.sh exposes public and compat_api (FORGE_DB_SCHEMAS): supabase.schema('compat_api').
create schema compat_api;
create table compat_api.memos (id bigint generated by default as identity primary key, body text not null);
insert into compat_api.memos (body) values ('first in compat_api'), ('second in compat_api');
create function compat_api.shout(msg text) returns text language sql immutable as $$ select upper(msg) || '!' $$;
create schema compat_hidden;
create table compat_hidden.secrets (id int primary key);
grant usage on schema compat_api, compat_hidden to anon, authenticated, service_role;
grant all on all tables in schema compat_api, compat_hidden to anon, authenticated, service_role;
grant all on all sequences in schema compat_api to anon, authenticated, service_role;
grant execute on all functions in schema compat_api to anon, authenticated, service_role;

-- ---------------------------------------------------------------- computed fields (issue 13, items 1 and 3)
-- (and computed relationships, item 2: cf_members and cf_team_of)
-- Owned by js/computed.test.mjs and python/test_computed.py. Functions taking one row of a
-- table are selected, filtered and ordered like its columns (PostgREST's computed fields);
-- cf_label is overloaded by table; public.cf_memo_words reaches compat_api.memos through the
-- extra search path (public); cf_secret sits outside the search path. cf_person and cf_team
-- return one row of a table.
begin;

drop schema if exists cf_hidden cascade;
drop table if exists public.cf_people, public.cf_teams cascade;

create table public.cf_teams (id int primary key, name text not null);
create table public.cf_people (
  id int primary key,
  first_name text not null,
  last_name text not null,
  team_id int references public.cf_teams (id),
  born int not null
);

create function public.cf_full_name(public.cf_people) returns text language sql stable
  as $$ select $1.first_name || ' ' || $1.last_name $$;
create function public.cf_age(public.cf_people) returns int language sql stable
  as $$ select 2000 - $1.born $$;
create function public.cf_initials(p public.cf_people) returns jsonb language sql stable
  as $$ select jsonb_build_object('first', left(p.first_name, 1), 'last', left(p.last_name, 1)) $$;
create function public.cf_size(public.cf_teams) returns bigint language sql stable
  as $$ select count(*) from public.cf_people p where p.team_id = $1.id $$;
create function public.cf_label(public.cf_people) returns text language sql stable
  as $$ select 'person ' || $1.id $$;
create function public.cf_label(public.cf_teams) returns text language sql stable
  as $$ select 'team ' || $1.name $$;
create function public.cf_everyone() returns setof public.cf_people language sql stable
  as $$ select * from public.cf_people $$;
create function public.cf_memo_words(compat_api.memos) returns int language sql stable
  as $$ select array_length(regexp_split_to_array($1.body, ' '), 1) $$;

-- one composite row (not a set): select, embeds and filters shape it (item 3)
create function public.cf_person(pid int) returns public.cf_people language sql stable
  as $$ select * from public.cf_people where id = pid $$;
create function public.cf_team(tid int) returns public.cf_teams language sql stable
  as $$ select * from public.cf_teams where id = tid $$;

-- functions of a row returning rows of a table: embedded like relationships (item 2)
create function public.cf_members(public.cf_teams) returns setof public.cf_people language sql stable
  as $$ select * from public.cf_people where team_id = $1.id $$;
create function public.cf_team_of(public.cf_people) returns setof public.cf_teams language sql stable rows 1
  as $$ select * from public.cf_teams where id = $1.team_id $$;

create schema cf_hidden;
grant usage on schema cf_hidden to anon, authenticated, service_role;
create function cf_hidden.cf_secret(public.cf_people) returns text language sql stable as $$ select 'secret' $$;

insert into public.cf_teams values (1, 'red'), (2, 'blue');
insert into public.cf_people values
  (1, 'Ada', 'Lovelace', 1, 1815), (2, 'Alan', 'Turing', 1, 1912), (3, 'Grace', 'Hopper', 2, 1906);

notify pgrst, 'reload schema';

commit;

-- ---------------------------------------------------------------- embedding rules (issue 13, item 9)
create table public.folders (
  id bigint generated by default as identity primary key,
  name text not null,
  parent_id bigint references public.folders (id)
);
insert into public.folders (id, name, parent_id) values (1, 'root', null), (2, 'docs', 1), (3, 'pics', 1), (4, 'drafts', 2);
create view public.folder_names as select id, name, parent_id from public.folders;
create table public.handles (id bigint primary key, username text not null unique);
create table public.remarks (id bigint primary key, username text references public.handles (username), body text not null);
insert into public.handles values (1, 'ada'), (2, 'bob');
insert into public.remarks values (10, 'ada', 'hello'), (11, 'bob', 'hi');
create view public.handle_names as select id, username from public.handles;
grant select on public.folders, public.folder_names, public.handles, public.remarks, public.handle_names to anon, authenticated, service_role;

-- ---------------------------------------------------------------- aggregates with embeds (issue 13, item 10)
create table public.agg_channels (id int primary key, slug text not null);
create table public.agg_users (id int primary key, username text not null);
create table public.agg_messages (
  id int primary key,
  channel_id int references public.agg_channels (id),
  user_id int references public.agg_users (id),
  score int not null
);
-- Two channels named alike: grouping by an embed groups by its value, not its key.
insert into public.agg_channels values (1, 'general'), (2, 'random'), (3, 'random');
insert into public.agg_users values (1, 'ada'), (2, 'bob');
insert into public.agg_messages values (1, 1, 1, 3), (2, 1, 2, 4), (3, 2, 1, 5), (4, 1, 1, 6), (5, 3, 2, 7);
grant select on public.agg_channels, public.agg_users, public.agg_messages to anon, authenticated, service_role;

-- ---------------------------------------------------------------- realtime
-- Tables and policies of compat/js/realtime.test.mjs and compat/python/test_realtime.py
-- (Supabase Realtime at /realtime/v1). Every test signs up its own users, so rows never clash.
--
-- rt_notes: postgres_changes with RLS (each user sees only their own rows), default replica
-- identity (UPDATE and DELETE carry the primary key as `old`).
create table public.rt_notes (
  id bigint generated by default as identity primary key,
  owner uuid not null,
  title text not null,
  score int not null default 0,
  done boolean not null default false,
  tags text[] not null default '{}',
  meta jsonb,
  ratio numeric,
  created_at timestamptz not null default now()
);
alter table public.rt_notes enable row level security;
create policy rt_notes_own on public.rt_notes for select to authenticated using (owner = auth.uid());
grant select on public.rt_notes to authenticated;

-- rt_full: the same with REPLICA IDENTITY FULL (UPDATE's `old` is the whole old row).
create table public.rt_full (
  id bigint generated by default as identity primary key,
  owner uuid not null,
  body text not null,
  n int not null default 0
);
alter table public.rt_full replica identity full;
alter table public.rt_full enable row level security;
create policy rt_full_own on public.rt_full for select to authenticated using (owner = auth.uid());
grant select on public.rt_full to authenticated;

-- rt_unpublished: exists, but is not in the publication.
create table public.rt_unpublished (id bigint primary key, body text);
grant select on public.rt_unpublished to anon, authenticated;

alter publication supabase_realtime add table public.rt_notes, public.rt_full;

-- Private channels as Supabase documents them: `room:<user id>` is readable and writable by
-- that user only (realtime.topic() is the channel name without `realtime:`).
create policy rt_room_read on realtime.messages for select to authenticated
  using (realtime.topic() = 'room:' || auth.uid()::text);
create policy rt_room_write on realtime.messages for insert to authenticated
  with check (realtime.topic() = 'room:' || auth.uid()::text);

-- rt_private_notes: a trigger broadcasts every change to its owner's private room with
-- realtime.broadcast_changes (event = the operation).
create table public.rt_private_notes (
  id bigint generated by default as identity primary key,
  owner uuid not null,
  body text not null
);
create function public.rt_private_notes_broadcast() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform realtime.broadcast_changes(
    'room:' || coalesce(new.owner, old.owner)::text, tg_op, tg_op, tg_table_name, tg_table_schema, new, old
  );
  return null;
end
$$;
create trigger rt_private_notes_broadcast after insert or update or delete on public.rt_private_notes
  for each row execute function public.rt_private_notes_broadcast();
