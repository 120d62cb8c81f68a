// supabase-js (pinned in compat/package.json) against forge-server's /rest/v1/rpc: scalar, set,
// table, composite and void functions, GET/HEAD calls, argument shapes and RPC errors.
// Each result is compared with the same function called in SQL on the same database.
import assert from 'node:assert/strict'
import { after, before, describe } from 'node:test'
import {
  ANON_KEY,
  client,
  closeDb,
  fails,
  lastRequest,
  ok,
  sqlError,
  sqlExec,
  sqlOne,
  sqlRows,
  sqlValue,
  wireTest as test,
} from './helpers.mjs'

const anon = client(ANON_KEY)

after(closeDb)

/** The fields of a PostgREST error body (the JS client returns the parsed body as `error`). */
function errorFields(err) {
  return { code: err.code, message: err.message, details: err.details ?? null, hint: err.hint ?? null }
}

const searchParams = () => Object.fromEntries(new URL(lastRequest().url).searchParams)
const path = () => new URL(lastRequest().url).pathname

// ------------------------------------------------------------------------ scalar results
describe('rpc: scalar results and arguments', () => {
  test('a scalar result is bare JSON (POST with named arguments)', async () => {
    const res = await anon.rpc('add_ints', { a: 2, b: 3 })
    assert.equal(ok(res), 5)
    assert.equal(res.status, 200)
    assert.equal(ok(res), await sqlValue('select add_ints(2, 3)'))
    assert.equal(lastRequest().method, 'POST')
    assert.equal(path(), '/rest/v1/rpc/add_ints')
    assert.equal(lastRequest().headers['content-profile'], 'public')
  })

  test('an argument with a default can be omitted', async () => {
    assert.equal(ok(await anon.rpc('add_ints', { a: 2 })), await sqlValue('select add_ints(2)'))
    assert.equal(ok(await anon.rpc('add_ints', { a: 2 })), 12)
    assert.equal(ok(await anon.rpc('greet')), 'Hello, world!')
    assert.equal(ok(await anon.rpc('greet', { name: 'Forge' })), await sqlValue(`select greet('Forge')`))
  })

  test('array arguments in a POST body', async () => {
    assert.equal(ok(await anon.rpc('sum_ints', { nums: [10, 20, 30] })), Number(await sqlValue('select sum_ints(array[10, 20, 30])')))
    assert.equal(ok(await anon.rpc('sum_ints', { nums: [] })), 0)
    const words = ['hello, world', 'with "quotes"', 'x']
    const joined = ok(await anon.rpc('join_words', { words, sep: ' | ' }))
    assert.equal(joined, await sqlValue('select join_words($1, $2)', [words, ' | ']))
    assert.equal(joined, 'hello, world | with "quotes" | x')
  })

  test('a single unnamed jsonb argument receives the whole body', async () => {
    const payload = { b: [1, 2, { c: null }], a: { nested: true }, s: 'text' }
    const data = ok(await anon.rpc('echo_payload', payload))
    assert.deepEqual(data, await sqlValue('select echo_payload($1::jsonb)', [JSON.stringify(payload)]))
    assert.deepEqual(data, { keys: ['a', 'b', 's'], payload })
  })

  test('{ get: true } sends a GET with the arguments in the query string', async () => {
    const res = await anon.rpc('add_ints', { a: 4, b: 5 }, { get: true })
    assert.equal(ok(res), 9)
    assert.equal(lastRequest().method, 'GET')
    assert.deepEqual(searchParams(), { a: '4', b: '5' })
    assert.equal(lastRequest().headers['accept-profile'], 'public')
  })

  test('{ get: true } with an array argument (sent as a Postgres array literal)', async () => {
    const res = await anon.rpc('sum_ints', { nums: [1, 2, 3, 4] }, { get: true })
    assert.equal(ok(res), 10)
    assert.deepEqual(searchParams(), { nums: '{1,2,3,4}' })
    const words = await anon.rpc('join_words', { words: ['a', 'b', 'c'], sep: '-' }, { get: true })
    assert.equal(ok(words), await sqlValue(`select join_words('{a,b,c}', '-')`))
    assert.equal(ok(words), 'a-b-c')
  })
})

// ------------------------------------------------------------------------ set-returning
describe('rpc: set-returning functions', () => {
  test('setof table returns every row', async () => {
    const data = ok(await anon.rpc('cities_in', { country_code: 'FR' }))
    assert.deepEqual(data, await sqlRows(`select * from cities_in('FR')`))
    assert.equal(data.length, 3)
  })

  test('setof table with select, filter, order and limit', async () => {
    const data = ok(
      await anon
        .rpc('cities_in', { country_code: 'FR' })
        .select('name, population')
        .eq('is_capital', false)
        .order('population', { ascending: false })
        .limit(1),
    )
    assert.deepEqual(
      data,
      await sqlRows(`select name, population from cities_in('FR') where not is_capital order by population desc limit 1`),
    )
    assert.deepEqual(data, [{ name: 'Marseille', population: 870000 }])
    assert.deepEqual(searchParams(), { select: 'name,population', is_capital: 'eq.false', order: 'population.desc', limit: '1' })
  })

  test('setof table with an embed of a related table', async () => {
    const data = ok(await anon.rpc('cities_in', { country_code: 'JP' }).select('name, countries(code, name)').order('id'))
    assert.deepEqual(
      data,
      await sqlRows(
        `select c.name, json_build_object('code', co.code, 'name', co.name) as countries
           from cities_in('JP') c join countries co on co.id = c.country_id order by c.id`,
      ),
    )
  })

  test("setof table with count: 'exact' and a range (206, Content-Range)", async () => {
    const res = await anon.rpc('cities_in', { country_code: 'FR' }, { count: 'exact' }).select('id').order('id').range(0, 1)
    assert.deepEqual(ok(res), await sqlRows(`select id from cities_in('FR') order by id limit 2`))
    assert.equal(res.count, await sqlValue(`select count(*)::int from cities_in('FR')`))
    assert.equal(res.count, 3)
    assert.equal(res.status, 206)
    // supabase-js adds return=representation when .select() is chained; the count is what matters.
    assert.match(lastRequest().headers.prefer, /(^|, *)count=exact(,|$)/)
    assert.equal(lastRequest().responseHeaders['content-range'], '0-1/3')
  })

  test('setof table with .single()', async () => {
    const res = await anon.rpc('cities_in', { country_code: 'JP' }).eq('name', 'Osaka').single()
    assert.deepEqual(ok(res), await sqlOne(`select * from cities_in('JP') where name = 'Osaka'`))
    assert.equal(lastRequest().headers.accept, 'application/vnd.pgrst.object+json')
  })

  test('setof table with .single() on several rows is 406 PGRST116', async () => {
    const err = fails(await anon.rpc('cities_in', { country_code: 'FR' }).single(), 406, 'PGRST116')
    assert.equal(err.details, 'The result contains 3 rows')
  })

  test('{ head: true, count: "exact" } sends HEAD and returns only the count', async () => {
    const res = await anon.rpc('cities_in', { country_code: 'FR' }, { head: true, count: 'exact' })
    assert.equal(res.error, null)
    assert.equal(res.data, null)
    assert.equal(res.count, 3)
    assert.equal(lastRequest().method, 'HEAD')
    assert.deepEqual(searchParams(), { country_code: 'FR' })
  })

  test('{ get: true } on a set-returning function with filters', async () => {
    const data = ok(await anon.rpc('cities_in', { country_code: 'DE' }, { get: true }).select('name').order('name', { ascending: false }))
    assert.deepEqual(data, await sqlRows(`select name from cities_in('DE') order by name desc`))
    assert.equal(lastRequest().method, 'GET')
  })

  test('RETURNS TABLE (...) with filters on its columns', async () => {
    const all = ok(await anon.rpc('country_stats'))
    assert.deepEqual(all, await sqlRows('select * from country_stats()'))
    assert.equal(all.length, 7)
    const data = ok(await anon.rpc('country_stats', { min_cities: 2 }).select('code, city_count').gt('city_population', 3000000).order('code'))
    assert.deepEqual(data, await sqlRows('select code, city_count from country_stats(2) where city_population > 3000000 order by code'))
    assert.ok(data.length > 0)
  })

  test('setof int returns a JSON array of numbers', async () => {
    assert.deepEqual(ok(await anon.rpc('int_series', { n: 5 })), [1, 2, 3, 4, 5])
    const stepped = ok(await anon.rpc('int_series', { n: 10, step: 3 }))
    assert.deepEqual(stepped, (await sqlRows('select x from int_series(10, 3) x')).map((r) => r.x))
    assert.deepEqual(stepped, [1, 4, 7, 10])
  })

  test('a single composite is returned as one object', async () => {
    const data = ok(await anon.rpc('country_by_code', { country_code: 'FR' }))
    assert.deepEqual(data, await sqlOne(`select * from country_by_code('FR')`))
    assert.equal(data.name, 'France')
    assert.ok(!Array.isArray(data))
  })
})

// ------------------------------------------------------------------------ void / volatile
describe('rpc: void and volatile functions', () => {
  test('a void function: status 204, data null, and its write is kept', async () => {
    const label = 'js-void-call'
    await sqlExec('delete from rpc_events where label = $1', [label])
    try {
      const res = await anon.rpc('log_event', { label })
      assert.equal(res.error, null)
      assert.equal(res.status, 204)
      assert.equal(res.data, null)
      assert.equal(await sqlValue('select count(*)::int from rpc_events where label = $1', [label]), 1)
    } finally {
      await sqlExec('delete from rpc_events where label = $1', [label])
    }
  })

  test('a volatile function called with { get: true } is 405 25006 and writes nothing', async () => {
    const label = 'js-get-call'
    await sqlExec('delete from rpc_events where label = $1', [label])
    try {
      const err = fails(await anon.rpc('log_event', { label }, { get: true }), 405, '25006')
      assert.equal(lastRequest().method, 'GET')
      assert.deepEqual(errorFields(err), await sqlError('select log_event($1)', [label], { readOnly: true }))
      assert.equal(err.message, 'cannot execute INSERT in a read-only transaction')
      assert.equal(await sqlValue('select count(*)::int from rpc_events where label = $1', [label]), 0)
    } finally {
      await sqlExec('delete from rpc_events where label = $1', [label])
    }
  })
})

// ------------------------------------------------------------------------ errors
describe('rpc: errors', () => {
  test('an unknown function is 404 PGRST202', async () => {
    const err = fails(await anon.rpc('no_such_fn', { a: 1 }), 404, 'PGRST202')
    assert.equal(err.message, 'Could not find the function public.no_such_fn(a) in the schema cache')
    assert.equal(
      err.details,
      'Searched for the function public.no_such_fn with parameter a or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.',
    )
  })

  test('an unknown function without arguments is 404 PGRST202 "without parameters"', async () => {
    const err = fails(await anon.rpc('no_such_fn'), 404, 'PGRST202')
    assert.equal(err.message, 'Could not find the function public.no_such_fn without parameters in the schema cache')
    assert.equal(
      err.details,
      'Searched for the function public.no_such_fn without parameters or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.',
    )
  })

  test('an existing function with unknown argument names is 404 PGRST202', async () => {
    const err = fails(await anon.rpc('add_ints', { x: 1, y: 2 }), 404, 'PGRST202')
    assert.equal(err.message, 'Could not find the function public.add_ints(x, y) in the schema cache')
  })

  test('raise exception is 400 P0001 with its message, detail and hint (as in SQL)', async () => {
    const err = fails(await anon.rpc('fail_loudly', { reason: 'no thanks' }), 400, 'P0001')
    assert.deepEqual(errorFields(err), await sqlError('select fail_loudly($1)', ['no thanks']))
    assert.deepEqual(errorFields(err), {
      code: 'P0001',
      message: 'refused: no thanks',
      details: 'the reason was no thanks',
      hint: 'call it with a nicer reason',
    })
  })

  test('invalid input for an argument is 400 22P02', async () => {
    const err = fails(await anon.rpc('add_ints', { a: 'two' }), 400, '22P02')
    assert.equal(err.message, 'invalid input syntax for type integer: "two"')
  })
})

describe('rpc: maxAffected()', () => {
  test('a set-returning call over the limit is 400 PGRST124; within it, the rows come back', async () => {
    const err = fails(await anon.rpc('cities_in', { country_code: 'FR' }).maxAffected(1), 400, 'PGRST124')
    assert.equal(err.details, `The query affects ${await sqlValue(`select count(*) from cities_in('FR')`)} rows`)
    const data = ok(await anon.rpc('cities_in', { country_code: 'FR' }).maxAffected(10))
    assert.equal(data.length, Number(await sqlValue(`select count(*) from cities_in('FR')`)))
  })

  test('a function that does not return a set cannot use it: 400 PGRST128', async () => {
    fails(await anon.rpc('add_ints', { a: 1 }).maxAffected(1), 400, 'PGRST128')
  })
})

// ------------------------------------------------------------------------ REST gaps (issue 13)
// gap_* functions (compat/schema.sql, "REST gaps"). JS names start with js-.
describe('rpc: REST gaps (rollback, counts of one value, ambiguous overloads)', () => {
  before(async () => {
    // the seed's last section may reach the schema cache after the first suites started
    for (let i = 0; i < 150; i++) {
      if ((await anon.rpc('gap_member_count')).status === 200) return
      await new Promise((r) => setTimeout(r, 100))
    }
  })

  const kept = async (name) =>
    sqlValue(
      `select (select count(*) from gap_members where username = $1)::int
            + (select count(*) from gap_private.journal where entry in ($1, 'joined ' || $1))::int`,
      [name],
    )

  test('rollback(): the function runs, answers, and its writes are undone (Preference-Applied: tx=rollback)', async () => {
    const name = 'js-rpc-rollback'
    const res = await anon.rpc('gap_join', { name }).rollback()
    const id = ok(res)
    assert.equal(typeof id, 'number')
    assert.match(lastRequest().headers.prefer, /tx=rollback/)
    assert.equal(lastRequest().responseHeaders['preference-applied'], 'tx=rollback')
    assert.equal(await kept(name), 0, 'nothing the function wrote was kept')

    const note = await anon.rpc('gap_note', { entry: name }).rollback()
    assert.equal(note.status, 204)
    assert.equal(lastRequest().responseHeaders['preference-applied'], 'tx=rollback')
    assert.equal(await kept(name), 0)
  })

  test('count: exact on a scalar, a set of scalars and void: Content-Range 0-0/1, 0-(n-1)/n', async () => {
    const scalar = await anon.rpc('gap_member_count', {}, { count: 'exact' })
    assert.equal(ok(scalar), Number(await sqlValue('select gap_member_count()')))
    assert.equal(scalar.count, 1)
    assert.equal(lastRequest().responseHeaders['content-range'], '0-0/1')
    assert.equal(lastRequest().responseHeaders['preference-applied'], 'count=exact')

    const set = await anon.rpc('gap_usernames', {}, { count: 'exact' })
    const names = ok(set)
    assert.deepEqual(names, await sqlValue('select coalesce(json_agg(u), \'[]\') from gap_usernames() u'))
    assert.equal(set.count, names.length)
    assert.equal(lastRequest().responseHeaders['content-range'], `0-${names.length - 1}/${names.length}`)

    const none = await anon.rpc('gap_usernames', { prefix: 'js-nobody-' }, { count: 'exact' })
    assert.deepEqual(ok(none), [])
    assert.equal(none.count, 0)
    assert.equal(lastRequest().responseHeaders['content-range'], '*/0')

    const head = await anon.rpc('gap_member_count', {}, { head: true, count: 'exact' })
    assert.equal(head.count, 1)
    assert.equal(lastRequest().method, 'HEAD')

    const name = 'js-rpc-void-count'
    const v = await anon.rpc('gap_note', { entry: name }, { count: 'exact' }).rollback()
    assert.equal(v.status, 204)
    assert.equal(v.count, 1)
    assert.equal(lastRequest().responseHeaders['content-range'], '0-0/1')
    assert.equal(lastRequest().responseHeaders['preference-applied'], 'count=exact, tx=rollback')
    assert.equal(await kept(name), 0)
  })

  test('one unnamed parameter: json takes the body, text the "" key\'s raw body, other types are not callable (PGRST202)', async () => {
    const payload = { b: [1, { c: null }], a: 'x' }
    assert.deepEqual(ok(await anon.rpc('gap_raw_json', payload)), await sqlValue('select gap_raw_json($1::json)', [JSON.stringify(payload)]))
    const text = ok(await anon.rpc('gap_raw_text', { '': 'x' }))
    assert.equal(text, await sqlValue('select gap_raw_text($1)', ['{"":"x"}']))
    assert.equal(text, '{"":"x"}')
    const int = fails(await anon.rpc('gap_raw_int', { '': 1 }), 404, 'PGRST202')
    assert.deepEqual([int.message, int.details], [
      'Could not find the function public.gap_raw_int() in the schema cache',
      'Searched for the function public.gap_raw_int with parameter  or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.',
    ])
    const pair = fails(await anon.rpc('gap_raw_pair', {}), 404, 'PGRST202')
    assert.equal(pair.message, 'Could not find the function public.gap_raw_pair without parameters in the schema cache')
    assert.equal(await sqlValue('select gap_raw_pair(1, 2)'), 3, 'the function exists; PostgREST does not expose it')
    // overloads: named arguments first, the unnamed json one takes any other object
    assert.equal(ok(await anon.rpc('gap_raw_over', { x: 1, y: 2 })), 'x, y')
    assert.equal(ok(await anon.rpc('gap_raw_over', {})), 'none')
    assert.equal(ok(await anon.rpc('gap_raw_over', { A: 1 })), 'json')
    assert.equal(ok(await anon.rpc('gap_raw_over', {}, { get: true })), 'none')
    const both = fails(await anon.rpc('gap_raw_both', { A: 1 }), 300, 'PGRST203')
    assert.equal(
      both.message,
      'Could not choose the best candidate function between: public.gap_raw_both( => json), public.gap_raw_both( => jsonb)',
    )
  })

  test('overloads with the same names and different types: 300 PGRST203 listing them, with PostgREST\'s hint', async () => {
    const res = await anon.rpc('gap_pick', { arg: 'value' }, { get: true })
    const err = fails(res, 300, 'PGRST203')
    assert.deepEqual(errorFields(err), {
      code: 'PGRST203',
      message:
        'Could not choose the best candidate function between: public.gap_pick(arg => integer), public.gap_pick(arg => xml), public.gap_pick(arg => text, num => integer)',
      details: null,
      hint: 'Try renaming the parameters or the function itself in the database so function overloading can be resolved',
    })
    // the candidates, in the catalog's order, are the overloads Postgres knows under that name
    const known = await sqlValue(
      `select string_agg('public.gap_pick(' || pg_get_function_arguments(oid) || ')', ', ' order by oid)
         from pg_proc where proname = 'gap_pick'`,
    )
    assert.equal(known, 'public.gap_pick(arg integer), public.gap_pick(arg xml), public.gap_pick(arg text, num integer DEFAULT 0)')
  })
})
