// supabase-js (pinned in compat/package.json) against forge-server's /rest/v1, reads only.
// Each test runs the client call and the equivalent SQL on the same database and compares.
// Run through compat/run.sh, which starts the server and exports the FORGE_* variables.
import assert from 'node:assert/strict'
import { after, before, describe } from 'node:test'
import {
  ANON_KEY,
  SERVICE_KEY,
  USER_A,
  USER_B,
  accessTokenClient,
  client,
  closeDb,
  lastRequest,
  plannedRows,
  sqlCsv,
  sqlError,
  sqlOne,
  sqlRows,
  sqlValue,
  userClient,
  userToken,
  wireTest as test,
} from './helpers.mjs'

const anon = client(ANON_KEY)
const service = client(SERVICE_KEY)

after(closeDb)

/** Asserts a successful response and returns its data. */
function ok(res) {
  assert.equal(res.error, null, `unexpected error: ${JSON.stringify(res.error)}`)
  assert.ok(res.status >= 200 && res.status < 300, `status ${res.status}`)
  return res.data
}

/** Asserts an error response with the given HTTP status and code; returns the error. */
function fails(res, status, code) {
  assert.ok(res.error, `expected error ${code}, got data ${JSON.stringify(res.data)}`)
  assert.equal(res.status, status, `status for ${JSON.stringify(res.error)}`)
  assert.equal(res.error.code, code, `code for ${JSON.stringify(res.error)}`)
  assert.equal(res.data, null)
  return res.error
}

// ------------------------------------------------------------------------ select
describe('select', () => {
  test('select * returns every column with native JSON types (enum, bigint, numeric, array, jsonb, NULL)', async () => {
    const data = ok(await anon.from('countries').select('*').order('id'))
    assert.deepEqual(data, await sqlRows('select * from countries order by id'))
    assert.equal(data.length, 7)
    assert.deepEqual(data[0].tags, ['wine', 'cheese', 'eu'])
    assert.equal(data[0].meta.currency.code, 'EUR')
    assert.equal(data[5].continent, null)
  })

  test('select() without columns defaults to *', async () => {
    const data = ok(await anon.from('languages').select().order('id'))
    assert.deepEqual(data, await sqlRows('select * from languages order by id'))
  })

  test('aliases and casts', async () => {
    const data = ok(await anon.from('countries').select('id, country:name, pop:population::text, code').order('id'))
    const expected = await sqlRows('select id, name as country, population::text as pop, code from countries order by id')
    assert.deepEqual(data, expected)
    assert.equal(data[0].pop, '68000000')
  })

  test('JSON paths -> and ->> with and without aliases', async () => {
    const data = ok(
      await anon.from('countries').select('id, capital:meta->>capital, meta->currency->code, rank:meta->rank, meta->g7').order('id'),
    )
    const expected = await sqlRows(
      `select id, meta->>'capital' as capital, meta->'currency'->'code' as code, meta->'rank' as rank, meta->'g7' as g7
         from countries order by id`,
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[2], { id: 3, capital: 'Tokyo', code: 'JPY', rank: 4, g7: true })
  })

  test('quoted column name with a space', async () => {
    const data = ok(await anon.from('countries').select('id, "local name"').order('id'))
    assert.deepEqual(data, await sqlRows('select id, "local name" from countries order by id'))
    assert.equal(data[1]['local name'], 'Deutschland')
  })
})

// ------------------------------------------------------------------------ filters
// [name, table, apply(builder), SQL where clause]
const filterCases = [
  ['eq', 'cities', (q) => q.eq('country_id', 1), 'country_id = 1'],
  ['eq on enum', 'countries', (q) => q.eq('continent', 'Asia'), "continent = 'Asia'"],
  ['neq (NULLs excluded)', 'countries', (q) => q.neq('continent', 'Europe'), "continent <> 'Europe'"],
  ['gt', 'cities', (q) => q.gt('population', 2800000), 'population > 2800000'],
  ['gte', 'cities', (q) => q.gte('population', 2800000), 'population >= 2800000'],
  ['lt', 'cities', (q) => q.lt('population', 870000), 'population < 870000'],
  ['lte', 'cities', (q) => q.lte('population', 870000), 'population <= 870000'],
  ['gte and lte on the same column', 'cities', (q) => q.gte('population', 1000000).lte('population', 3000000), 'population between 1000000 and 3000000'],
  ['like', 'cities', (q) => q.like('name', '%on%'), "name like '%on%'"],
  ['ilike', 'cities', (q) => q.ilike('name', '%PAR%'), "name ilike '%PAR%'"],
  ['likeAllOf', 'cities', (q) => q.likeAllOf('name', ['%a%', '%i%']), "name like all (array['%a%', '%i%'])"],
  ['likeAnyOf', 'cities', (q) => q.likeAnyOf('name', ['B%', '%ka']), "name like any (array['B%', '%ka'])"],
  ['ilikeAllOf', 'cities', (q) => q.ilikeAllOf('name', ['m%', '%E%']), "name ilike all (array['m%', '%E%'])"],
  ['ilikeAnyOf', 'cities', (q) => q.ilikeAnyOf('name', ['t%', 'z%']), "name ilike any (array['t%', 'z%'])"],
  ['regexMatch', 'cities', (q) => q.regexMatch('name', '^[MB]'), "name ~ '^[MB]'"],
  ['regexIMatch', 'cities', (q) => q.regexIMatch('name', '^o'), "name ~* '^o'"],
  ['is null', 'cities', (q) => q.is('population', null), 'population is null'],
  ['is true', 'cities', (q) => q.is('is_capital', true), 'is_capital is true'],
  ['is false', 'cities', (q) => q.is('is_capital', false), 'is_capital is false'],
  ['isDistinct (NULL is distinct)', 'cities', (q) => q.isDistinct('country_id', 1), 'country_id is distinct from 1'],
  ['in (strings, one with a space)', 'cities', (q) => q.in('name', ['Paris', 'Tokyo', 'São Paulo']), "name in ('Paris', 'Tokyo', 'São Paulo')"],
  ['in (a value with a comma is quoted)', 'cities', (q) => q.in('name', ['Paris, France', 'Lyon']), "name in ('Paris, France', 'Lyon')"],
  ['in (numbers)', 'cities', (q) => q.in('id', [1, 3, 5, 99]), 'id in (1, 3, 5, 99)'],
  ['notIn', 'cities', (q) => q.notIn('country_id', [1, 2]), 'not (country_id = any (array[1, 2]))'],
  ['contains (array)', 'countries', (q) => q.contains('tags', ['cheese']), "tags @> '{cheese}'"],
  ['contains (jsonb object)', 'countries', (q) => q.contains('meta', { g7: true, currency: { code: 'EUR' } }), `meta @> '{"g7": true, "currency": {"code": "EUR"}}'`],
  ['contains (range)', 'reservations', (q) => q.contains('during', '[2,4)'), "during @> '[2,4)'::int4range"],
  ['containedBy (array, empty array included)', 'countries', (q) => q.containedBy('tags', ['wine', 'cheese', 'eu', 'beer', 'chocolate']), "tags <@ '{wine,cheese,eu,beer,chocolate}'"],
  ['containedBy (range)', 'reservations', (q) => q.containedBy('during', '[0,11)'), "during <@ '[0,11)'::int4range"],
  ['containedBy (int array)', 'reservations', (q) => q.containedBy('guests', [1, 2, 3]), "guests <@ '{1,2,3}'"],
  ['overlaps (array)', 'countries', (q) => q.overlaps('tags', ['g7', 'coffee']), "tags && '{g7,coffee}'"],
  ['overlaps (range)', 'reservations', (q) => q.overlaps('during', '[4,9)'), "during && '[4,9)'::int4range"],
  ['rangeGt (sr)', 'reservations', (q) => q.rangeGt('during', '[5,10)'), "during >> '[5,10)'::int4range"],
  ['rangeGte (nxl)', 'reservations', (q) => q.rangeGte('during', '[5,10)'), "during &> '[5,10)'::int4range"],
  ['rangeLt (sl)', 'reservations', (q) => q.rangeLt('during', '[5,10)'), "during << '[5,10)'::int4range"],
  ['rangeLte (nxr)', 'reservations', (q) => q.rangeLte('during', '[5,10)'), "during &< '[5,10)'::int4range"],
  ['rangeAdjacent (adj)', 'reservations', (q) => q.rangeAdjacent('during', '[5,10)'), "during -|- '[5,10)'::int4range"],
  ['textSearch (fts, default config)', 'articles', (q) => q.textSearch('fts', "'cat' & 'dog'"), "fts @@ to_tsquery('''cat'' & ''dog''')"],
  ['textSearch (fts, english)', 'articles', (q) => q.textSearch('fts', 'cats & dogs', { config: 'english' }), "fts @@ to_tsquery('english', 'cats & dogs')"],
  ['textSearch plain (plfts)', 'articles', (q) => q.textSearch('fts', 'fat cats', { type: 'plain', config: 'english' }), "fts @@ plainto_tsquery('english', 'fat cats')"],
  ['textSearch phrase (phfts)', 'articles', (q) => q.textSearch('fts', 'lazy dog', { type: 'phrase', config: 'english' }), "fts @@ phraseto_tsquery('english', 'lazy dog')"],
  ['textSearch websearch (wfts)', 'articles', (q) => q.textSearch('fts', 'dog -training', { type: 'websearch', config: 'english' }), "fts @@ websearch_to_tsquery('english', 'dog -training')"],
  ['textSearch on a text column', 'articles', (q) => q.textSearch('body', 'rice', { config: 'english' }), "to_tsvector('english', body) @@ to_tsquery('english', 'rice')"],
  ['match', 'countries', (q) => q.match({ continent: 'Europe', name: 'France' }), "continent = 'Europe' and name = 'France'"],
  ['eq on a char(n) column', 'countries', (q) => q.eq('code', 'FR'), "code = 'FR'"],
  ['in on a char(n) column', 'countries', (q) => q.in('code', ['FR', 'JP']), "code in ('FR', 'JP')"],
  ['not eq', 'countries', (q) => q.not('continent', 'eq', 'Europe'), "not (continent = 'Europe')"],
  ['not is null', 'cities', (q) => q.not('population', 'is', null), 'population is not null'],
  ['not in', 'cities', (q) => q.not('name', 'in', '(Paris,Lyon)'), "not (name in ('Paris', 'Lyon'))"],
  ['not like', 'cities', (q) => q.not('name', 'like', '%o%'), "not (name like '%o%')"],
  ['not cs', 'countries', (q) => q.not('tags', 'cs', '{eu}'), "not (tags @> '{eu}')"],
  ['or', 'cities', (q) => q.or('population.lt.500000,name.eq.Tokyo'), "population < 500000 or name = 'Tokyo'"],
  [
    'or with nested and',
    'cities',
    (q) => q.or('and(country_id.eq.1,population.gt.1000000),and(country_id.eq.3,is_capital.is.false)'),
    '(country_id = 1 and population > 1000000) or (country_id = 3 and is_capital is false)',
  ],
  [
    'or with not.and and in',
    'cities',
    (q) => q.or('not.and(population.gt.1000000,is_capital.is.false),name.in.(Toronto,Nowhere)'),
    "not (population > 1000000 and is_capital is false) or name in ('Toronto', 'Nowhere')",
  ],
  ['or with a quoted value containing a comma', 'cities', (q) => q.or('name.eq."Paris, France",name.eq.Osaka'), "name = 'Paris, France' or name = 'Osaka'"],
  ['or with not. and is.null', 'cities', (q) => q.or('population.not.is.null,country_id.is.null').lt('id', 12), '(population is not null or country_id is null) and id < 12'],
  ['or AND-ed with another filter', 'cities', (q) => q.eq('country_id', 1).or('name.eq.Paris,name.eq.Lyon'), "country_id = 1 and (name = 'Paris' or name = 'Lyon')"],
  ['or on array and range operators', 'countries', (q) => q.or('tags.cs.{g7},tags.ov.{coffee,beer}'), "tags @> '{g7}' or tags && '{coffee,beer}'"],
  ['filter() eq', 'cities', (q) => q.filter('name', 'eq', 'Osaka'), "name = 'Osaka'"],
  ['filter() ilike', 'cities', (q) => q.filter('name', 'ilike', '%o%'), "name ilike '%o%'"],
  ['filter() in', 'cities', (q) => q.filter('id', 'in', '(2,4,6)'), 'id in (2, 4, 6)'],
  ['filter() not.in', 'cities', (q) => q.filter('id', 'not.in', '(2,4,6)'), 'id not in (2, 4, 6)'],
  ['filter() like(any)', 'cities', (q) => q.filter('name', 'like(any)', '{B%,%ka}'), "name like any (array['B%', '%ka'])"],
  ['filter() eq(any)', 'cities', (q) => q.filter('id', 'eq(any)', '{1,2,3}'), 'id = any (array[1, 2, 3])'],
  ['filter() gt(all)', 'cities', (q) => q.filter('population', 'gt(all)', '{500000,1000000}'), 'population > all (array[500000, 1000000])'],
  ['JSON path ->> filter', 'countries', (q) => q.eq('meta->>capital', 'Paris'), "meta->>'capital' = 'Paris'"],
  ['JSON path -> filter (jsonb comparison)', 'countries', (q) => q.gt('meta->rank', 5), "meta->'rank' > '5'::jsonb"],
  ['nested JSON path filter', 'countries', (q) => q.eq('meta->currency->>code', 'EUR'), "meta->'currency'->>'code' = 'EUR'"],
]

describe('filters', () => {
  for (const [name, table, apply, where] of filterCases) {
    test(name, async () => {
      const data = ok(await apply(anon.from(table).select('*')).order('id'))
      const expected = await sqlRows(`select * from ${table} where ${where} order by id`)
      const total = await sqlValue(`select count(*)::int from ${table}`)
      // guard the fixture: each case must select a proper, non-empty subset
      assert.ok(expected.length > 0 && expected.length < total, `fixture: ${where} selects ${expected.length}/${total}`)
      assert.deepEqual(data, expected)
    })
  }
})

// ------------------------------------------------------------------------ embeds
describe('embeds', () => {
  test('to-one (many-to-one) embed is an object or null', async () => {
    const data = ok(await anon.from('cities').select('id, name, countries(name, code)').order('id'))
    const expected = await sqlRows(
      `select c.id, c.name,
              (select json_build_object('name', co.name, 'code', co.code) from countries co where co.id = c.country_id) as countries
         from cities c order by c.id`,
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[0].countries, { name: 'France', code: 'FR' })
    assert.equal(data[11].countries, null)
  })

  test('to-many (one-to-many) embed is an array, [] when empty', async () => {
    const data = ok(
      await anon.from('countries').select('id, name, cities(name)').order('id').order('name', { referencedTable: 'cities' }),
    )
    const expected = await sqlRows(
      `select co.id, co.name,
              coalesce((select json_agg(json_build_object('name', c.name) order by c.name) from cities c where c.country_id = co.id), '[]') as cities
         from countries co order by co.id`,
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[5].cities, [])
  })

  test('many-to-many through a junction table', async () => {
    const data = ok(
      await anon.from('countries').select('id, name, languages(name)').order('id').order('name', { referencedTable: 'languages' }),
    )
    const expected = await sqlRows(
      `select co.id, co.name,
              coalesce((select json_agg(json_build_object('name', l.name) order by l.name)
                          from country_languages cl join languages l on l.id = cl.language_id
                         where cl.country_id = co.id), '[]') as languages
         from countries co order by co.id`,
    )
    assert.deepEqual(data, expected)
    assert.equal(data[6].languages.length, 4)
  })

  test('many-to-many from the other side, with the junction embedded too', async () => {
    const data = ok(
      await anon
        .from('languages')
        .select('name, countries(code), country_languages(official)')
        .eq('name', 'English')
        .order('code', { referencedTable: 'countries' })
        .order('official', { referencedTable: 'country_languages' }),
    )
    assert.deepEqual(data, [
      { name: 'English', countries: [{ code: 'CA' }, { code: 'CH' }], country_languages: [{ official: false }, { official: true }] },
    ])
  })

  test('!inner with a filter on the embed filters the parents', async () => {
    const data = ok(await anon.from('cities').select('name, countries!inner(name)').eq('countries.continent', 'Asia').order('id'))
    const expected = await sqlRows(
      `select c.name, json_build_object('name', co.name) as countries
         from cities c join countries co on co.id = c.country_id where co.continent = 'Asia' order by c.id`,
    )
    assert.deepEqual(data, expected)
    assert.equal(data.length, 2)
  })

  test('!inner without a filter drops parents whose to-one embed is null', async () => {
    const data = ok(await anon.from('cities').select('id, countries!inner(code)').order('id'))
    const expected = await sqlRows(
      `select c.id, json_build_object('code', co.code) as countries from cities c join countries co on co.id = c.country_id order by c.id`,
    )
    assert.deepEqual(data, expected)
    assert.ok(!data.some((r) => r.id === 12))
  })

  test('to-many !inner with a filter keeps only parents with a matching child', async () => {
    const data = ok(
      await anon.from('countries').select('name, cities!inner(name)').gt('cities.population', 2500000).order('id').order('name', { referencedTable: 'cities' }),
    )
    const expected = await sqlRows(
      `select co.name, json_agg(json_build_object('name', c.name) order by c.name) as cities
         from countries co join cities c on c.country_id = co.id
        where c.population > 2500000 group by co.id, co.name order by co.id`,
    )
    assert.deepEqual(data, expected)
  })

  test('filter on a to-many embed (no !inner) shapes only the embed', async () => {
    const data = ok(await anon.from('countries').select('id, cities(name)').eq('cities.is_capital', true).order('id'))
    const expected = await sqlRows(
      `select co.id,
              coalesce((select json_agg(json_build_object('name', c.name)) from cities c where c.country_id = co.id and c.is_capital), '[]') as cities
         from countries co order by co.id`,
    )
    assert.deepEqual(data, expected)
    assert.equal(data.length, 7)
  })

  test('hint disambiguation by FK constraint name and by column name', async () => {
    const data = ok(
      await anon.from('flights').select('code, origin:cities!flights_origin_fkey(name), destination:cities!destination_id(name)').order('id'),
    )
    const expected = await sqlRows(
      `select f.code, json_build_object('name', o.name) as origin, json_build_object('name', d.name) as destination
         from flights f join cities o on o.id = f.origin_id join cities d on d.id = f.destination_id order by f.id`,
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[0], { code: 'AF100', origin: { name: 'Paris' }, destination: { name: 'Tokyo' } })
  })

  test('embedding through the FK column name (origin_id(...))', async () => {
    const data = ok(await anon.from('flights').select('code, origin_id(name)').order('id'))
    const expected = await sqlRows(
      `select f.code, json_build_object('name', o.name) as origin_id from flights f join cities o on o.id = f.origin_id order by f.id`,
    )
    assert.deepEqual(data, expected)
  })

  test('reverse (one-to-many) embed with an FK hint', async () => {
    const data = ok(
      await anon.from('cities').select('name, departures:flights!flights_origin_fkey(code)').in('id', [1, 4, 5]).order('id'),
    )
    const expected = await sqlRows(
      `select c.name, coalesce((select json_agg(json_build_object('code', f.code)) from flights f where f.origin_id = c.id), '[]') as departures
         from cities c where c.id in (1, 4, 5) order by c.id`,
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[2].departures, [])
  })

  test('spread ...rel() lifts to-one columns into the parent', async () => {
    const data = ok(await anon.from('cities').select('name, ...countries(country:name, code)').order('id'))
    const expected = await sqlRows(
      'select c.name, co.name as country, co.code from cities c left join countries co on co.id = c.country_id order by c.id',
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[11], { name: 'Nowhere', country: null, code: null })
  })

  test('nested embeds (to-many inside to-many)', async () => {
    const data = ok(
      await anon
        .from('countries')
        .select('name, cities(name, departures:flights!flights_origin_fkey(code))')
        .eq('id', 1)
        .order('id', { referencedTable: 'cities' }),
    )
    assert.deepEqual(data, [
      {
        name: 'France',
        cities: [
          { name: 'Paris', departures: [{ code: 'AF100' }] },
          { name: 'Lyon', departures: [] },
          { name: 'Marseille', departures: [] },
        ],
      },
    ])
  })

  test('order + limit on a referenced table (largest city per country)', async () => {
    const data = ok(
      await anon
        .from('countries')
        .select('name, cities(name, population)')
        .order('id')
        .order('population', { referencedTable: 'cities', ascending: false, nullsFirst: false })
        .limit(1, { referencedTable: 'cities' }),
    )
    const expected = await sqlRows(
      `select co.name,
              coalesce((select json_agg(x) from (select c.name, c.population from cities c where c.country_id = co.id
                                                  order by c.population desc nulls last limit 1) x), '[]') as cities
         from countries co order by co.id`,
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[2].cities, [{ name: 'Tokyo', population: 14000000 }])
  })

  test('order with nullsFirst on a referenced table', async () => {
    const data = ok(
      await anon
        .from('countries')
        .select('code, cities(name)')
        .eq('id', 5)
        .order('population', { referencedTable: 'cities', ascending: true, nullsFirst: true }),
    )
    assert.deepEqual(data, [{ code: 'CA', cities: [{ name: 'Toronto' }, { name: 'Ottawa' }] }])
  })

  test('or on a referenced table', async () => {
    const data = ok(
      await anon
        .from('countries')
        .select('id, cities(name)')
        .or('is_capital.eq.true,population.lt.600000', { referencedTable: 'cities' })
        .order('id')
        .order('id', { referencedTable: 'cities' }),
    )
    const expected = await sqlRows(
      `select co.id,
              coalesce((select json_agg(json_build_object('name', c.name) order by c.id) from cities c
                         where c.country_id = co.id and (c.is_capital or c.population < 600000)), '[]') as cities
         from countries co order by co.id`,
    )
    assert.deepEqual(data, expected)
  })

  test('order by a to-one related column (order=countries(name))', async () => {
    const data = ok(await anon.from('cities').select('name, countries(name)').order('countries(name)', { ascending: false }).order('name'))
    const expected = await sqlRows(
      `select c.name, case when co.id is null then null else json_build_object('name', co.name) end as countries
         from cities c left join countries co on co.id = c.country_id order by co.name desc nulls first, c.name`,
    )
    assert.deepEqual(data, expected)
  })

  test('top-level not.is.null on an embed filters parents', async () => {
    const data = ok(await anon.from('cities').select('id, countries(code)').eq('countries.name', 'Japan').not('countries', 'is', null).order('id'))
    assert.deepEqual(data, await sqlRows(`select id, json_build_object('code', 'JP') as countries from cities where country_id = 3 order by id`))
  })

  test('aggregates: count() and col.sum() grouped by the other columns', async () => {
    const count = ok(await anon.from('cities').select('count()'))
    assert.deepEqual(count, await sqlRows('select count(*) as count from cities'))
    const sums = ok(await anon.from('cities').select('country_id, total:population.sum()').order('country_id'))
    assert.deepEqual(sums, await sqlRows('select country_id, sum(population) as total from cities group by country_id order by country_id'))
  })
})

// ------------------------------------------------------------------------ order / pagination
describe('order and pagination', () => {
  const cases = [
    ['desc nullsFirst', (q) => q.order('population', { ascending: false, nullsFirst: true }), 'population desc nulls first'],
    ['desc nullsLast', (q) => q.order('population', { ascending: false, nullsFirst: false }), 'population desc nulls last'],
    ['asc nullsFirst', (q) => q.order('population', { ascending: true, nullsFirst: true }), 'population asc nulls first'],
    ['asc default (nulls last)', (q) => q.order('population'), 'population asc'],
    ['desc default (nulls first)', (q) => q.order('population', { ascending: false }), 'population desc'],
    ['several columns', (q) => q.order('country_id', { ascending: false }).order('name'), 'country_id desc, name asc'],
  ]
  for (const [name, apply, orderBy] of cases) {
    test(`order: ${name}`, async () => {
      const data = ok(await apply(anon.from('cities').select('id, name, population')).order('id'))
      assert.deepEqual(data, await sqlRows(`select id, name, population from cities order by ${orderBy}, id`))
    })
  }

  test('limit', async () => {
    const data = ok(await anon.from('cities').select('id, name').order('id').limit(3))
    assert.deepEqual(data, await sqlRows('select id, name from cities order by id limit 3'))
  })

  test('range(from, to) is inclusive', async () => {
    const data = ok(await anon.from('cities').select('id, name').order('name').range(2, 5))
    assert.deepEqual(data, await sqlRows('select id, name from cities order by name offset 2 limit 4'))
    const u = new URL(lastRequest().url)
    assert.equal(u.searchParams.get('offset'), '2')
    assert.equal(u.searchParams.get('limit'), '4')
  })

  test('range past the end without count is an empty 200', async () => {
    const res = await anon.from('cities').select('id').order('id').range(20, 25)
    assert.deepEqual(ok(res), [])
    assert.equal(res.status, 200)
  })

  test('limit combined with a filter and order', async () => {
    const data = ok(await anon.from('cities').select('name').eq('is_capital', true).order('population', { ascending: false }).limit(2))
    assert.deepEqual(data, [{ name: 'Tokyo' }, { name: 'Berlin' }])
  })
})

// ------------------------------------------------------------------------ count
describe('count', () => {
  test("count: 'exact' with head: true", async () => {
    const res = await anon.from('cities').select('*', { count: 'exact', head: true })
    assert.equal(res.error, null)
    assert.equal(res.data, null)
    assert.equal(res.count, await sqlValue('select count(*)::int from cities'))
    assert.equal(lastRequest().method, 'HEAD')
  })

  test("count: 'exact' with head and a filter", async () => {
    const res = await anon.from('cities').select('id', { count: 'exact', head: true }).eq('country_id', 1)
    assert.equal(res.error, null)
    assert.equal(res.count, await sqlValue('select count(*)::int from cities where country_id = 1'))
    assert.equal(res.count, 3)
  })

  test("count: 'exact' with data and a range gives 206 and Content-Range", async () => {
    const res = await anon.from('cities').select('id', { count: 'exact' }).order('id').range(0, 4)
    assert.deepEqual(ok(res), await sqlRows('select id from cities order by id limit 5'))
    assert.equal(res.count, 14)
    assert.equal(res.status, 206)
    assert.equal(lastRequest().responseHeaders['content-range'], '0-4/14')
  })

  test("count: 'exact' with all rows gives 200", async () => {
    const res = await anon.from('cities').select('id', { count: 'exact' }).order('id')
    assert.deepEqual(ok(res), await sqlRows('select id from cities order by id'))
    assert.equal(res.count, 14)
    assert.equal(res.status, 200)
    assert.equal(lastRequest().responseHeaders['content-range'], '0-13/14')
  })

  test("count: 'exact' with no matching row gives */0", async () => {
    const res = await anon.from('cities').select('id', { count: 'exact' }).eq('name', 'Atlantis City')
    assert.deepEqual(ok(res), [])
    assert.equal(res.count, 0)
    assert.equal(lastRequest().responseHeaders['content-range'], '*/0')
  })

  test("count: 'exact' with an offset past the end gives 416 PGRST103", async () => {
    const res = await anon.from('cities').select('id', { count: 'exact' }).order('id').range(20, 25)
    const err = fails(res, 416, 'PGRST103')
    assert.equal(err.details, 'An offset of 20 was requested, but there are only 14 rows.')
    assert.equal(lastRequest().responseHeaders['content-range'], '*/14')
  })

  test("count: 'planned' uses the planner's estimate", async () => {
    const res = await anon.from('cities').select('*', { count: 'planned', head: true })
    assert.equal(res.error, null)
    assert.equal(res.count, await plannedRows('select * from cities'))
    assert.equal(res.count, 14)
  })

  test("count: 'planned' with data", async () => {
    const res = await anon.from('countries').select('code', { count: 'planned' }).order('id').limit(2)
    assert.deepEqual(ok(res), await sqlRows('select code from countries order by id limit 2'))
    assert.equal(res.count, await plannedRows('select * from countries'))
    assert.equal(res.status, 206)
  })

  test("count: 'estimated' (no db-max-rows: max(exact, planned))", async () => {
    const res = await anon.from('cities').select('*', { count: 'estimated', head: true })
    assert.equal(res.error, null)
    const exact = await sqlValue('select count(*)::int from cities')
    assert.equal(res.count, Math.max(exact, await plannedRows('select * from cities')))
  })

  test("count: 'estimated' with data", async () => {
    const res = await anon.from('languages').select('name', { count: 'estimated' }).order('id').range(0, 1)
    assert.deepEqual(ok(res), await sqlRows('select name from languages order by id limit 2'))
    assert.equal(res.count, 7)
  })
})

// ------------------------------------------------------------------------ single / maybeSingle / csv
describe('single, maybeSingle, csv', () => {
  test('.single() returns one object', async () => {
    const res = await anon.from('countries').select('*').eq('name', 'Japan').single()
    assert.deepEqual(ok(res), await sqlOne("select * from countries where name = 'Japan'"))
    assert.equal(lastRequest().headers.accept, 'application/vnd.pgrst.object+json')
  })

  test('.single() with 0 rows is 406 PGRST116', async () => {
    const res = await anon.from('countries').select('*').eq('name', 'Nowhereland').single()
    const err = fails(res, 406, 'PGRST116')
    assert.equal(err.details, 'The result contains 0 rows')
    assert.equal(err.message, 'Cannot coerce the result to a single JSON object')
    assert.equal(lastRequest().responseHeaders['proxy-status'], 'PostgREST; error=PGRST116')
  })

  test('.single() with many rows is 406 PGRST116', async () => {
    const res = await anon.from('cities').select('id').single()
    const err = fails(res, 406, 'PGRST116')
    assert.equal(err.details, `The result contains ${await sqlValue('select count(*)::int from cities')} rows`)
    assert.equal(err.message, 'Cannot coerce the result to a single JSON object')
  })

  test('.maybeSingle() with 0 rows is null, no error', async () => {
    const res = await anon.from('countries').select('*').eq('name', 'Nowhereland').maybeSingle()
    assert.equal(res.error, null)
    assert.equal(res.data, null)
  })

  test('.maybeSingle() with 1 row is the object', async () => {
    const res = await anon.from('cities').select('id, name, countries(code)').eq('name', 'Osaka').maybeSingle()
    assert.deepEqual(ok(res), { id: 7, name: 'Osaka', countries: { code: 'JP' } })
  })

  test('.maybeSingle() with 2 rows is PGRST116', async () => {
    const res = await anon.from('cities').select('id').eq('country_id', 2).maybeSingle()
    fails(res, 406, 'PGRST116')
  })

  test('.csv() returns the CSV text', async () => {
    const res = await anon.from('cities').select('id, name, population, is_capital').order('id').csv()
    const data = ok(res)
    assert.equal(typeof data, 'string')
    const { header, body } = await sqlCsv('select id, name, population, is_capital from cities order by id')
    assert.equal(data, `${header}\n${body}`)
    assert.match(lastRequest().responseHeaders['content-type'], /^text\/csv/)
    assert.equal(data.split('\n')[8], '8,"São Paulo",12300000,f')
  })

  test('.csv() with a filter and arrays/json', async () => {
    const res = await anon.from('countries').select('code, tags, meta').in('name', ['France', 'Atlantis']).order('id').csv()
    const { header, body } = await sqlCsv("select code, tags, meta from countries where name in ('France', 'Atlantis') order by id")
    assert.equal(ok(res), `${header}\n${body}`)
  })
})

// ------------------------------------------------------------------------ errors
describe('errors', () => {
  test('unknown table is 404 PGRST205 with a hint', async () => {
    const err = fails(await anon.from('countrys').select('*'), 404, 'PGRST205')
    assert.equal(err.message, "Could not find the table 'public.countrys' in the schema cache")
    assert.match(err.hint, /public\.countries/)
  })

  test('unknown column in select is 400 42703', async () => {
    const err = fails(await anon.from('countries').select('id, nope'), 400, '42703')
    assert.match(err.message, /nope/)
    assert.equal(err.message, 'column countries.nope does not exist')
  })

  test('unknown column in a filter is 400 42703', async () => {
    const err = fails(await anon.from('countries').select('id').eq('nope', 1), 400, '42703')
    assert.match(err.message, /nope/)
  })

  test('ambiguous embed is 300 PGRST201 listing both relationships', async () => {
    const err = fails(await anon.from('flights').select('code, cities(name)'), 300, 'PGRST201')
    assert.equal(err.message, "Could not embed because more than one relationship was found for 'flights' and 'cities'")
    assert.ok(Array.isArray(err.details))
    assert.deepEqual(err.details.map((d) => d.relationship).sort(), [
      'flights_destination_fkey using flights(destination_id) and cities(id)',
      'flights_origin_fkey using flights(origin_id) and cities(id)',
    ])
    for (const d of err.details) {
      assert.equal(d.cardinality, 'many-to-one')
      assert.equal(d.embedding, 'flights with cities')
    }
    assert.match(err.hint, /cities!flights_origin_fkey/)
    assert.match(err.hint, /cities!flights_destination_fkey/)
  })

  test('no relationship is 400 PGRST200', async () => {
    const err = fails(await anon.from('countries').select('name, articles(title)'), 400, 'PGRST200')
    assert.equal(err.message, "Could not find a relationship between 'countries' and 'articles' in the schema cache")
  })

  test('unknown schema via .schema() is 406 PGRST106', async () => {
    const res = await anon.schema('nope').from('countries').select('*')
    const err = fails(res, 406, 'PGRST106')
    assert.equal(err.message, 'Invalid schema: nope')
    assert.match(err.hint, /public/)
    assert.equal(lastRequest().headers['accept-profile'], 'nope')
  })

  test('explicit public schema via .schema() works', async () => {
    const data = ok(await anon.schema('public').from('languages').select('name').eq('id', 3))
    assert.deepEqual(data, [{ name: 'Japanese' }])
  })

  test('malformed select is 400 PGRST100', async () => {
    fails(await anon.from('countries').select('id, cities(name'), 400, 'PGRST100')
  })

  test('malformed filter operator is 400 PGRST100', async () => {
    fails(await anon.from('countries').select('id').filter('id', 'notanop', '1'), 400, 'PGRST100')
  })

  test('error bodies carry code, message, details and hint', async () => {
    await anon.from('countrys').select('*')
    const res = await fetch(lastRequest().url, { headers: { apikey: ANON_KEY, Authorization: `Bearer ${ANON_KEY}` } })
    assert.equal(res.status, 404)
    assert.match(res.headers.get('content-type'), /^application\/json/)
    assert.equal(res.headers.get('proxy-status'), 'PostgREST; error=PGRST205')
    const body = await res.json()
    assert.deepEqual(Object.keys(body).sort(), ['code', 'details', 'hint', 'message'])
  })
})

// ------------------------------------------------------------------------ RLS and roles
describe('RLS and roles', () => {
  test('anon sees no rows of the RLS-protected table', async () => {
    const res = await anon.from('notes').select('*')
    assert.deepEqual(ok(res), [])
    assert.equal(res.status, 200)
    assert.ok((await sqlValue('select count(*)::int from notes')) > 0)
  })

  test('user A sees only its rows (Authorization header)', async () => {
    const data = ok(await userClient(userToken(USER_A)).from('notes').select('*').order('id'))
    assert.deepEqual(data, await sqlRows('select * from notes where owner_id = $1 order by id', [USER_A]))
    assert.deepEqual(data.map((r) => r.id), [1, 2, 3])
  })

  test('user B sees only its rows (accessToken option)', async () => {
    const data = ok(await accessTokenClient(userToken(USER_B)).from('notes').select('*').order('id'))
    assert.deepEqual(data, await sqlRows('select * from notes where owner_id = $1 order by id', [USER_B]))
    assert.deepEqual(data.map((r) => r.id), [4, 5])
  })

  test("a user cannot read another user's row even by id", async () => {
    const res = await userClient(userToken(USER_A)).from('notes').select('*').eq('id', 4)
    assert.deepEqual(ok(res), [])
  })

  test('RLS applies to counts', async () => {
    const res = await userClient(userToken(USER_A)).from('notes').select('*', { count: 'exact', head: true })
    assert.equal(res.error, null)
    assert.equal(res.count, 3)
  })

  test('the service key sees every row', async () => {
    const data = ok(await service.from('notes').select('*').order('id'))
    assert.deepEqual(data, await sqlRows('select * from notes order by id'))
    assert.equal(data.length, 5)
  })

  test('no privilege: anon gets 401 42501', async () => {
    fails(await anon.from('secrets').select('*'), 401, '42501')
  })

  test('no privilege: an authenticated user gets 403 42501', async () => {
    fails(await userClient(userToken(USER_A)).from('secrets').select('*'), 403, '42501')
  })

  test('no privilege: the service key can read', async () => {
    const data = ok(await service.from('secrets').select('*').order('id'))
    assert.deepEqual(data, await sqlRows('select * from secrets order by id'))
  })

  test('a JWT signed with the wrong secret is 401 PGRST301', async () => {
    const res = await userClient(userToken(USER_A, 'not-the-project-secret-not-the-project-secret')).from('notes').select('*')
    fails(res, 401, 'PGRST301')
  })
})

// ------------------------------------------------------------------------ REST gaps (issue 13)
// gap_members, gap_teams and the view gap_member_names (compat/schema.sql, "REST gaps").
describe('REST gaps: duplicate embeds and deep JSON paths', () => {
  before(async () => {
    // the seed's last section may reach the schema cache after the first suites started
    for (let i = 0; i < 150; i++) {
      if ((await anon.from('gap_member_names').select('id').limit(1)).status === 200) return
      await new Promise((r) => setTimeout(r, 100))
    }
  })

  const fields = (err) => ({ code: err.code, message: err.message, details: err.details ?? null, hint: err.hint ?? null })
  /** What Postgres says of PostgREST's statement joining two embeds as `alias`. */
  const duplicate = (alias) => sqlError(`select 1 from gap_teams as "${alias}", gap_teams as "${alias}"`)

  test('the same table embedded twice under one name is 400 42712, as Postgres refuses PostgREST\'s join', async () => {
    const cases = [
      ['gap_members', 'id, gap_teams(id), gap_teams(name)', 'gap_members_gap_teams_1'],
      ['gap_members', 'id, mentor:mentor_id(username), mentor:mentor_id(bio)', 'gap_members_mentor_1'],
      ['gap_member_names', 'id, gap_teams(name), gap_teams(id)', 'gap_member_names_gap_teams_1'],
      ['gap_teams', 'id, gap_members(id, gap_teams(id), gap_teams(name))', 'gap_members_gap_teams_2'],
    ]
    for (const [table, columns, alias] of cases) {
      const err = fails(await anon.from(table).select(columns), 400, '42712')
      assert.deepEqual(fields(err), await duplicate(alias), `${table}?select=${columns}`)
    }
  })

  test('the same table embedded under two names is two embeds (self reference and view included)', async () => {
    const data = ok(
      await anon
        .from('gap_members')
        .select('username, mentor:mentor_id(username), mentees:gap_members(username), a:gap_teams(name), b:gap_teams(id)')
        .eq('username', 'ada')
        .order('id', { referencedTable: 'mentees' }),
    )
    assert.deepEqual(
      data,
      await sqlRows(`select m.username,
                            (select json_build_object('username', x.username) from gap_members x where x.id = m.mentor_id) as mentor,
                            (select coalesce(json_agg(json_build_object('username', x.username) order by x.id), '[]') from gap_members x where x.mentor_id = m.id) as mentees,
                            (select json_build_object('name', t.name) from gap_teams t where t.id = m.team_id) as a,
                            (select json_build_object('id', t.id) from gap_teams t where t.id = m.team_id) as b
                       from gap_members m where m.username = 'ada'`),
    )
    const view = ok(await anon.from('gap_member_names').select('username, a:gap_teams(name), b:gap_teams(id)').eq('username', 'cy'))
    assert.deepEqual(view, [{ username: 'cy', a: { name: 'blue' }, b: { id: 2 } }])
  })

  test('JSON paths deeper than 100 steps are 400 PGRST100 in select, filters and order (not Postgres\' 54001)', async () => {
    const path = (n) => 'meta' + '->a'.repeat(n)
    const sqlPath = (n) => 'meta' + "->'a'".repeat(n)
    const data = ok(await anon.from('countries').select(`id, ${path(100)}`).eq('id', 1))
    assert.deepEqual(data, await sqlRows(`select id, ${sqlPath(100)} as a from countries where id = 1`))
    const deep = path(10000)
    for (const res of [
      await anon.from('countries').select(`id, ${deep}`),
      await anon.from('countries').select('id').eq(deep, 1),
      await anon.from('countries').select('id').order(deep),
      await anon.from('countries').select(`id, ${path(101)}`),
    ]) {
      const err = fails(res, 400, 'PGRST100')
      assert.equal(err.details, 'JSON path is longer than 100 steps')
    }
  })
})
