// @ts-check
// The platform, as a customer drives it from TypeScript: the Management API through a client
// generated from the live OpenAPI document (openapi-typescript's types for openapi-fetch; see
// compat/management-clients.sh, which also type-checks this file against those types), and the
// new project's data through supabase-js. Lists the organizations, creates a project in
// `default`, reads its keys, makes a table with RLS, a policy and grants through
// database/query, inserts and reads rows with supabase-js and compares them with SQL, then
// deletes the project. Run through compat/run.sh, which exports FORGE_URL,
// FORGE_ACCESS_TOKEN (a personal access token) and FORGE_MANAGEMENT_DIR.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, test } from 'node:test'
import { createClient } from '@supabase/supabase-js'
import createManagementClient from 'openapi-fetch'

/** @typedef {import('forge-management-api').paths} paths */
/** @typedef {import('forge-management-api').components['schemas']['Project']} Project */
/** @typedef {import('forge-management-api').components['schemas']['ApiKey']} ApiKey */

/** @param {string} name */
function env(name) {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set: run the suite through compat/run.sh`)
  return v
}

const SERVER = env('FORGE_URL')

/** @type {import('openapi-fetch').Client<paths>} */
const api = createManagementClient({
  baseUrl: SERVER,
  headers: { Authorization: `Bearer ${env('FORGE_ACCESS_TOKEN')}` },
})

// Node 20 has no global WebSocket and supabase-js builds its realtime client eagerly; this
// suite never opens a socket.
class NoWebSocket {
  constructor() {
    throw new Error('realtime is not used by the platform suite')
  }
}

/**
 * `database/query` through the generated client: the rows of the last statement.
 * @param {string} ref
 * @param {string} query
 */
async function sql(ref, query) {
  const { data, error, response } = await api.POST('/v1/projects/{ref}/database/query', {
    params: { path: { ref } },
    body: { query },
  })
  assert.equal(response.status, 200, `database/query failed: ${JSON.stringify(error)}`)
  assert.ok(data)
  return data
}

/** @type {Project | undefined} */
let project
after(async () => {
  // A failed step leaves no project behind.
  if (project) await api.DELETE('/v1/projects/{ref}', { params: { path: { ref: project.ref } } })
})

test('a project from the generated Management API client, its data through supabase-js', async (t) => {
  await t.test('the caller belongs to the default organization', async () => {
    const { data, error, response } = await api.GET('/v1/organizations')
    assert.equal(response.status, 200, JSON.stringify(error))
    assert.ok(data?.some((o) => o.slug === 'default' && o.id === 'default'), JSON.stringify(data))
    const org = await api.GET('/v1/organizations/{slug}', { params: { path: { slug: 'default' } } })
    assert.equal(org.data?.role_name, 'Owner')
  })

  await t.test('creates a project in default', async () => {
    const name = `compat js ${crypto.randomUUID().slice(0, 8)}`
    const { data, error, response } = await api.POST('/v1/projects', {
      body: { name, organization_id: 'default', region: 'local' },
    })
    assert.equal(response.status, 201, JSON.stringify(error))
    assert.ok(data)
    project = data
    assert.equal(data.name, name)
    assert.equal(data.organization_slug, 'default')
    assert.equal(data.status, 'ACTIVE_HEALTHY')
    assert.equal(data.url, `${SERVER}/p/${data.ref}`)
    const got = await api.GET('/v1/projects/{ref}', { params: { path: { ref: data.ref } } })
    assert.deepEqual(got.data, data)
    const listed = await api.GET('/v1/projects')
    assert.ok(listed.data?.some((p) => p.ref === data.ref))
  })

  /** @type {ApiKey[]} */
  let keys = []
  await t.test('reads its API keys, revealed', async () => {
    assert.ok(project)
    const { data, error, response } = await api.GET('/v1/projects/{ref}/api-keys', {
      params: { path: { ref: project.ref }, query: { reveal: true } },
    })
    assert.equal(response.status, 200, JSON.stringify(error))
    keys = data ?? []
    const kinds = keys.map((k) => k.kind).sort()
    assert.deepEqual(kinds, ['legacy_anon', 'legacy_service_role', 'publishable', 'secret'])
    for (const k of keys) assert.ok(k.api_key, `${k.kind} is revealed`)
    const anon = keys.find((k) => k.kind === 'legacy_anon')
    assert.equal(anon?.role, 'anon')
    const one = await api.GET('/v1/projects/{ref}/api-keys/{id}', {
      params: { path: { ref: project.ref, id: anon?.id ?? '' } },
    })
    assert.equal(one.data?.api_key, anon?.api_key)
  })

  await t.test('makes a table with RLS, policies and grants through database/query', async () => {
    assert.ok(project)
    const rows = await sql(
      project.ref,
      `create table public.notes (
         id bigint generated always as identity primary key,
         body text not null,
         visible boolean not null default true
       );
       alter table public.notes enable row level security;
       create policy "anon reads visible notes" on public.notes for select to anon using (visible);
       create policy "anon adds visible notes" on public.notes for insert to anon with check (visible);
       grant select, insert on public.notes to anon;
       insert into public.notes (body, visible) values ('hidden from anon', false);
       select count(*) as n from public.notes`,
    )
    assert.deepEqual(rows, [{ n: 1 }])
  })

  await t.test('inserts and reads rows with supabase-js, as SQL sees them', async () => {
    assert.ok(project)
    const anonKey = keys.find((k) => k.kind === 'legacy_anon')?.api_key
    assert.ok(anonKey)
    const supabase = createClient(project.url, anonKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      realtime: { transport: /** @type {any} */ (NoWebSocket) },
    })
    const inserted = await supabase
      .from('notes')
      .insert([{ body: 'from supabase-js' }, { body: 'and another' }])
      .select('id, body, visible')
    assert.equal(inserted.error, null, JSON.stringify(inserted.error))
    assert.equal(inserted.status, 201)
    assert.deepEqual(
      inserted.data?.map((r) => [r.body, r.visible]),
      [
        ['from supabase-js', true],
        ['and another', true],
      ],
    )

    // The policy refuses a row anon could not see.
    const refused = await supabase.from('notes').insert({ body: 'sneaky', visible: false })
    assert.equal(refused.error?.code, '42501', JSON.stringify(refused.error))

    const read = await supabase.from('notes').select('id, body').order('id')
    assert.equal(read.error, null, JSON.stringify(read.error))
    const all = await sql(project.ref, 'select id, body, visible from public.notes order by id')
    assert.equal(all.length, 3, JSON.stringify(all))
    const visible = all.filter((r) => r.visible).map((r) => ({ id: r.id, body: r.body }))
    assert.deepEqual(read.data, visible)
    assert.deepEqual(
      inserted.data?.map((r) => r.id),
      visible.map((r) => r.id),
    )

    // The publishable key opens the same project.
    const publishable = keys.find((k) => k.kind === 'publishable')?.api_key
    assert.ok(publishable)
    const again = await createClient(project.url, publishable, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      realtime: { transport: /** @type {any} */ (NoWebSocket) },
    })
      .from('notes')
      .select('id, body')
      .order('id')
    assert.deepEqual(again.data, visible)
  })

  await t.test('deletes the project; it is gone', async () => {
    assert.ok(project)
    const ref = project.ref
    const { data, error, response } = await api.DELETE('/v1/projects/{ref}', { params: { path: { ref } } })
    assert.equal(response.status, 200, JSON.stringify(error))
    assert.equal(data?.ref, ref)
    project = undefined
    const gone = await api.GET('/v1/projects/{ref}', { params: { path: { ref } } })
    assert.equal(gone.response.status, 404)
    assert.equal(gone.error?.code, 'not_found')
    const listed = await api.GET('/v1/projects')
    assert.ok(!listed.data?.some((p) => p.ref === ref))
  })
})
