// supabase-js against forge-server's /rest/v1: which relationship an embed names, by
// PostgREST's rules (self references, hints, keys shared with views).
// Run through compat/run.sh, which applies compat/schema.sql.
import assert from 'node:assert/strict'
import { after, before, describe } from 'node:test'
import { ANON_KEY, client, closeDb, fails, ok, sqlRows, wireTest as test } from './helpers.mjs'

const anon = client(ANON_KEY)

after(closeDb)

before(async () => {
  // schema.sql's sections land after the server's first schema load: wait for this one.
  const deadline = Date.now() + 15000
  while ((await anon.from('folders').select('id').limit(1)).error) {
    if (Date.now() > deadline) throw new Error('folders never appeared')
    await new Promise((r) => setTimeout(r, 100))
  }
})

describe('embedding rules', () => {
  test("a self reference: the table's name embeds the children, the key column the parent", async () => {
    const children = ok(await anon.from('folders').select('name, folders(name)').eq('id', 1).order('name', { referencedTable: 'folders' }))
    const expected = await sqlRows('select name from folders where parent_id = 1 order by name')
    assert.deepEqual(children, [{ name: 'root', folders: expected }])
    const parent = ok(await anon.from('folders').select('name, parent_id(name)').eq('id', 4))
    assert.deepEqual(parent, [{ name: 'drafts', parent_id: { name: 'docs' } }])
  })

  test('a column hint on a self reference picks the children through that column', async () => {
    const data = ok(await anon.from('folders').select('name, children:folders!parent_id(name)').eq('id', 2))
    assert.deepEqual(data, [{ name: 'docs', children: [{ name: 'drafts' }] }])
  })

  test('a constraint hint names no self relationship: PGRST200, not an ambiguity', async () => {
    fails(await anon.from('folders').select('name, folders!folders_parent_id_fkey(name)'), 400, 'PGRST200')
  })

  test('a key column embeds the table even when views over it carry the same key', async () => {
    const data = ok(await anon.from('remarks').select('body, username(id)').order('id'))
    assert.deepEqual(data, [
      { body: 'hello', username: { id: 1 } },
      { body: 'hi', username: { id: 2 } },
    ])
  })
})
