// supabase-js against forge-server's /rest/v1: the .geojson() and .explain() media types.
import assert from 'node:assert/strict'
import { after, describe } from 'node:test'
import { ANON_KEY, client, closeDb, lastRequest, ok, sqlValue, wireTest as test } from './helpers.mjs'

const anon = client(ANON_KEY)

after(closeDb)

describe('media types', () => {
  test('.geojson() returns the FeatureCollection PostGIS builds', async () => {
    const data = ok(await anon.from('places').select('id, name, geom').order('id').geojson())
    assert.match(lastRequest().responseHeaders['content-type'], /^application\/geo\+json/)
    const expected = await sqlValue(
      `select json_build_object('type', 'FeatureCollection', 'features',
              json_agg(extensions.st_asgeojson(p)::json order by p.id))
         from (select id, name, geom from places) p`,
    )
    assert.equal(data.type, 'FeatureCollection')
    assert.equal(data.features.length, 2)
    assert.deepEqual(data, expected)
  })

  test(".explain({ format: 'json', analyze: true }) returns the executed plan", async () => {
    const data = ok(await anon.from('places').select('id').eq('id', 1).explain({ format: 'json', analyze: true }))
    assert.ok(Array.isArray(data) && data[0].Plan, JSON.stringify(data))
    assert.equal(typeof data[0]['Execution Time'], 'number')
  })

  test('.explain() in text format', async () => {
    const data = ok(await anon.from('places').select('id').explain())
    assert.equal(typeof data, 'string')
    assert.match(data, /places/)
  })
})
