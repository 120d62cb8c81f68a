// supabase-js against forge-server's /rest/v1: computed fields (functions of a table's row,
// selected, filtered and ordered like columns; issue 13, item 1) and functions returning one
// row of a table, shaped by select, embeds and filters (issue 13, item 3), and functions of a
// row returning rows of a table, embedded like relationships (issue 13, item 2).
// Each answer is compared with the same query in SQL, where `row.fn` is `fn(row)`.
// Run through compat/run.sh, which applies the "computed fields" section of compat/schema.sql.
import assert from 'node:assert/strict'
import { after, describe } from 'node:test'
import { ANON_KEY, client, closeDb, fails, lastRequest, ok, sqlExec, sqlOne, sqlRows, wireTest as test } from './helpers.mjs'

const anon = client(ANON_KEY)

after(closeDb)

describe('computed fields', () => {
  test('selected by name, renamed, cast and navigated; not part of *', async () => {
    const data = ok(await anon.from('cf_people').select('id, cf_full_name, age:cf_age::text, first:cf_initials->>first').order('id'))
    assert.deepEqual(
      data,
      await sqlRows(
        `select id, cf_full_name(p), cf_age(p)::text as age, cf_initials(p)->>'first' as first from cf_people p order by id`,
      ),
    )
    assert.deepEqual(data[0], { id: 1, cf_full_name: 'Ada Lovelace', age: '185', first: 'A' })
    const star = ok(await anon.from('cf_people').select('*').order('id'))
    assert.deepEqual(star, await sqlRows('select * from cf_people order by id'))
    assert.equal('cf_full_name' in star[0], false)
  })

  test('filtered and ordered, also inside or=()', async () => {
    const data = ok(await anon.from('cf_people').select('id, cf_full_name').gt('cf_age', 90).order('cf_full_name', { ascending: false }))
    assert.deepEqual(
      data,
      await sqlRows('select id, cf_full_name(p) from cf_people p where cf_age(p) > 90 order by cf_full_name(p) desc'),
    )
    assert.deepEqual(data.map((r) => r.id), [3, 1])
    const either = ok(await anon.from('cf_people').select('id').or('cf_full_name.eq.Alan Turing,cf_age.gte.180').order('id'))
    assert.deepEqual(
      either,
      await sqlRows(`select id from cf_people p where cf_full_name(p) = 'Alan Turing' or cf_age(p) >= 180 order by id`),
    )
    const like = ok(await anon.from('cf_people').select('id').like('cf_full_name', '%Hopper'))
    assert.deepEqual(like, [{ id: 3 }])
  })

  test('inside embeds, with embedded filters and order', async () => {
    const data = ok(
      await anon
        .from('cf_teams')
        .select('name, cf_size, cf_people(cf_full_name, cf_label)')
        .like('cf_people.cf_full_name', 'A%')
        .order('cf_full_name', { referencedTable: 'cf_people', ascending: false })
        .order('id'),
    )
    const expected = await sqlRows(
      `select t.name, cf_size(t),
              coalesce((select json_agg(x) from (select cf_full_name(p), cf_label(p) from cf_people p
                          where p.team_id = t.id and cf_full_name(p) like 'A%' order by cf_full_name(p) desc) x), '[]') as cf_people
         from cf_teams t order by t.id`,
    )
    assert.deepEqual(data, expected)
    assert.deepEqual(data[0].cf_people.map((p) => p.cf_label), ['person 2', 'person 1'])
  })

  test('overloads are per table', async () => {
    const teams = ok(await anon.from('cf_teams').select('id, cf_label').order('id'))
    assert.deepEqual(teams, await sqlRows('select id, cf_label(t) from cf_teams t order by id'))
    assert.deepEqual(teams[0], { id: 1, cf_label: 'team red' })
    const people = ok(await anon.from('cf_people').select('cf_label').eq('id', 3))
    assert.deepEqual(people, [{ cf_label: 'person 3' }])
  })

  test('on the rows of a function returning the table, and on written rows', async () => {
    const called = ok(await anon.rpc('cf_everyone').select('id, cf_full_name').like('cf_full_name', 'A%').order('cf_age'))
    assert.deepEqual(
      called,
      await sqlRows(`select id, cf_full_name(p) from cf_everyone() p where cf_full_name(p) like 'A%' order by cf_age(p)`),
    )
    try {
      const inserted = ok(
        await anon
          .from('cf_people')
          .insert({ id: 4, first_name: 'Edsger', last_name: 'Dijkstra', team_id: 2, born: 1930 })
          .select('id, cf_full_name, cf_label'),
      )
      assert.deepEqual(inserted, [{ id: 4, cf_full_name: 'Edsger Dijkstra', cf_label: 'person 4' }])
      const updated = ok(
        await anon.from('cf_people').update({ first_name: 'E. W.' }).eq('cf_full_name', 'Edsger Dijkstra').select('cf_full_name'),
      )
      assert.deepEqual(updated, await sqlRows('select cf_full_name(p) from cf_people p where id = 4'))
    } finally {
      await sqlExec('delete from cf_people where id = 4')
    }
  })

  test('through the extra search path, and not beyond it', async () => {
    const memos = ok(await anon.schema('compat_api').from('memos').select('id, cf_memo_words').order('id'))
    assert.deepEqual(memos, await sqlRows('select id, public.cf_memo_words(m) from compat_api.memos m order by id'))
    const err = fails(await anon.from('cf_people').select('id, cf_secret'), 400, '42703')
    assert.equal(err.message, 'column cf_people.cf_secret does not exist')
  })
})

describe('functions returning one row', () => {
  test('select, embeds and computed fields shape the row, answered as one object', async () => {
    const res = await anon.rpc('cf_person', { pid: 1 }).select('id, cf_full_name, team:cf_teams(name, cf_size)')
    assert.equal(res.status, 200)
    assert.deepEqual(
      ok(res),
      await sqlOne(
        `select p.id, cf_full_name(p), (select row_to_json(x) from (select t.name, cf_size(t) from cf_teams t where t.id = p.team_id) x) as team
           from cf_person(1) p`,
      ),
    )
    assert.deepEqual(res.data, { id: 1, cf_full_name: 'Ada Lovelace', team: { name: 'red', cf_size: 2 } })
    const team = ok(
      await anon
        .rpc('cf_team', { tid: 1 }, { get: true })
        .select('name, cf_people(first_name)')
        .order('first_name', { referencedTable: 'cf_people', ascending: false }),
    )
    assert.deepEqual(team, { name: 'red', cf_people: [{ first_name: 'Alan' }, { first_name: 'Ada' }] })
    assert.equal(lastRequest().method, 'GET')
    const whole = ok(await anon.rpc('cf_person', { pid: 3 }))
    assert.deepEqual(whole, await sqlOne('select * from cf_person(3)'))
  })

  test('filters keep the row or answer null, also with single() and maybeSingle()', async () => {
    const kept = ok(await anon.rpc('cf_person', { pid: 2 }).select('id').eq('first_name', 'Alan'))
    assert.deepEqual(kept, { id: 2 })
    const gone = await anon.rpc('cf_person', { pid: 2 }).select('id').eq('first_name', 'Ada')
    assert.equal(gone.status, 200)
    assert.equal(ok(gone), null)
    const single = await anon.rpc('cf_person', { pid: 2 }).select('id').eq('cf_full_name', 'Nobody').single()
    assert.equal(single.status, 200)
    assert.equal(ok(single), null)
    assert.equal(lastRequest().headers.accept, 'application/vnd.pgrst.object+json')
    const one = ok(await anon.rpc('cf_person', { pid: 2 }).select('cf_label').single())
    assert.deepEqual(one, { cf_label: 'person 2' })
    assert.equal(ok(await anon.rpc('cf_person', { pid: 3 }).select('id').gt('cf_age', 100).maybeSingle()), null)
  })
})

describe('computed relationships', () => {
  test('a SETOF ... ROWS 1 function is a to-one embed, a SETOF one a to-many embed', async () => {
    const people = ok(await anon.from('cf_people').select('id, team:cf_team_of(name, cf_size)').order('id'))
    assert.deepEqual(
      people,
      await sqlRows(
        `select p.id, (select row_to_json(x) from (select t.name, cf_size(t) from cf_team_of(p) t) x) as team
           from cf_people p order by p.id`,
      ),
    )
    assert.deepEqual(people[2], { id: 3, team: { name: 'blue', cf_size: 1 } })
    const teams = ok(
      await anon
        .from('cf_teams')
        .select('name, members:cf_members(first_name, cf_full_name)')
        .order('first_name', { referencedTable: 'members' })
        .order('id'),
    )
    assert.deepEqual(
      teams,
      await sqlRows(
        `select t.name, coalesce((select json_agg(x) from (select m.first_name, cf_full_name(m) from cf_members(t) m
                                                          order by m.first_name) x), '[]') as members
           from cf_teams t order by t.id`,
      ),
    )
  })

  test('inner joins, embedded filters, and on the rows of a function', async () => {
    const teams = ok(await anon.from('cf_teams').select('id, members:cf_members!inner(id)').eq('members.first_name', 'Grace'))
    assert.deepEqual(teams, [{ id: 2, members: [{ id: 3 }] }])
    const called = ok(await anon.rpc('cf_everyone').select('id, team:cf_team_of(name)').lt('id', 3).order('id'))
    assert.deepEqual(
      called,
      await sqlRows(
        `select p.id, (select row_to_json(x) from (select t.name from cf_team_of(p) t) x) as team
           from cf_everyone() p where p.id < 3 order by p.id`,
      ),
    )
    const one = ok(await anon.rpc('cf_team', { tid: 2 }).select('name, cf_members(id)'))
    assert.deepEqual(one, { name: 'blue', cf_members: [{ id: 3 }] })
  })
})
