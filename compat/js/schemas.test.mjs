// supabase-js against forge-server's /rest/v1 beyond `public`: the exposed schemas
// (FORGE_DB_SCHEMAS, PostgREST's db-schemas) reached with supabase.schema(...).
// Run through compat/run.sh, which exposes public and compat_api.
import assert from 'node:assert/strict'
import { after, describe } from 'node:test'
import { ANON_KEY, client, closeDb, fails, lastRequest, ok, sqlRows, wireTest as test } from './helpers.mjs'

const anon = client(ANON_KEY)

after(closeDb)

describe('exposed schemas', () => {
  test("schema('compat_api') reads that schema's table with Accept-Profile", async () => {
    const data = ok(await anon.schema('compat_api').from('memos').select('id, body').order('id'))
    assert.deepEqual(data, await sqlRows('select id, body from compat_api.memos order by id'))
    assert.equal(lastRequest().headers['accept-profile'], 'compat_api')
    assert.equal(lastRequest().responseHeaders['content-profile'], 'compat_api')
  })

  test("schema('compat_api') writes with Content-Profile and calls its functions", async () => {
    const api = anon.schema('compat_api')
    const inserted = ok(await api.from('memos').insert({ body: 'from supabase-js' }).select('body'))
    assert.deepEqual(inserted, [{ body: 'from supabase-js' }])
    assert.equal(lastRequest().headers['content-profile'], 'compat_api')
    const rows = await sqlRows("select body from compat_api.memos where body = 'from supabase-js'")
    assert.equal(rows.length, 1)
    ok(await api.from('memos').delete().eq('body', 'from supabase-js'))
    assert.equal(ok(await api.rpc('shout', { msg: 'hi' })), 'HI!')
  })

  test('the default schema stays public, and a schema not exposed is PGRST106', async () => {
    fails(await anon.from('memos').select('*'), 404, 'PGRST205')
    const err = fails(await anon.schema('compat_hidden').from('secrets').select('*'), 406, 'PGRST106')
    assert.equal(err.message, 'Invalid schema: compat_hidden')
    assert.match(err.hint ?? '', /public, compat_api/)
  })
})
