// supabase-js against forge-server's /rest/v1: aggregates beside and inside embeds, compared
// with the same grouping in SQL. Run through compat/run.sh (aggregates must be enabled in
// PostgREST, as Forge always has them).
import assert from 'node:assert/strict'
import { after, before, describe } from 'node:test'
import { ANON_KEY, client, closeDb, ok, sqlRows, wireTest as test } from './helpers.mjs'

const anon = client(ANON_KEY)
const sorted = (rows) => [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))

after(closeDb)

before(async () => {
  // schema.sql's sections land after the server's first schema load: wait for this one.
  const deadline = Date.now() + 15000
  while ((await anon.from('agg_messages').select('id').limit(1)).error) {
    if (Date.now() > deadline) throw new Error('agg_messages never appeared')
    await new Promise((r) => setTimeout(r, 100))
  }
})

describe('aggregates with embeds', () => {
  test('score.sum() beside an embed groups by the embed', async () => {
    const data = ok(await anon.from('agg_messages').select('score.sum(), agg_channels(slug)'))
    const expected = await sqlRows(`select sum(m.score)::int as sum, json_build_object('slug', c.slug) as agg_channels
      from agg_messages m join agg_channels c on c.id = m.channel_id group by c.slug`)
    assert.deepEqual(sorted(data), sorted(expected))
  })

  test('count() beside two embeds, and a spread, group by them', async () => {
    const data = ok(await anon.from('agg_messages').select('agg_channels(slug), agg_users(username), count()'))
    const expected = await sqlRows(`select json_build_object('slug', c.slug) as agg_channels,
        json_build_object('username', u.username) as agg_users, count(*)::int as count
      from agg_messages m join agg_channels c on c.id = m.channel_id join agg_users u on u.id = m.user_id
      group by c.slug, u.username`)
    assert.deepEqual(sorted(data), sorted(expected))
    const spread = ok(await anon.from('agg_messages').select('score.max(), ...agg_channels(slug)'))
    const spreadExpected = await sqlRows(`select max(m.score) as max, c.slug
      from agg_messages m join agg_channels c on c.id = m.channel_id group by c.slug`)
    assert.deepEqual(sorted(spread), sorted(spreadExpected))
  })

  test("a spread's aggregates are the parent's, grouped by the rest", async () => {
    const data = ok(await anon.from('agg_messages').select('user_id, ...agg_channels(id.count())'))
    const expected = await sqlRows(`select m.user_id, count(c.id)::int as count
      from agg_messages m left join agg_channels c on c.id = m.channel_id group by m.user_id`)
    assert.deepEqual(sorted(data), sorted(expected))
    const bySlug = ok(await anon.from('agg_messages').select('...agg_channels(slug, id.count())'))
    const bySlugExpected = await sqlRows(`select c.slug, count(c.id)::int as count
      from agg_messages m join agg_channels c on c.id = m.channel_id group by c.slug`)
    assert.deepEqual(sorted(bySlug), sorted(bySlugExpected))
  })

  test('count() inside an embed that embeds again counts per parent row', async () => {
    const data = ok(
      await anon.from('agg_channels').select('slug, agg_messages(count(), agg_users(username))').eq('slug', 'general'),
    )
    const expected = await sqlRows(`select json_build_object('username', u.username) as agg_users, count(*)::int as count
      from agg_messages m join agg_users u on u.id = m.user_id where m.channel_id = 1 group by u.username`)
    assert.equal(data.length, 1)
    assert.deepEqual(
      sorted(data[0].agg_messages),
      sorted(expected.map((r) => ({ count: r.count, agg_users: r.agg_users }))),
    )
  })
})
