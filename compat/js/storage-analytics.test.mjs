// supabase-js (storage-js as pinned in compat/package.json, with iceberg-js) against forge-server's
// /storage/v1/iceberg: every method of `supabase.storage.analytics` (createBucket, listBuckets with
// its options, deleteBucket) and of the Iceberg catalog `analytics.from(bucket)` returns
// (namespaces: create, createIfNotExists, list, load, exists, drop; tables: create,
// createIfNotExists, list, load, exists, update, drop), with their errors through the
// `{ data, error }` pattern, and the service-role check. Every test creates its own analytics
// buckets (random names, removed at the end); what the client got is compared with the rows read
// back in SQL. Run through compat/run.sh, which starts the server and exports FORGE_*.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, describe } from 'node:test'
import { IcebergError } from 'iceberg-js'
import { StorageError } from '@supabase/storage-js'
import {
  ANON_KEY,
  SERVICE_KEY,
  USER_A,
  client,
  closeDb,
  lastRequest,
  requests,
  sqlExec,
  sqlRows,
  userClient,
  userToken,
  wireTest as test,
} from './helpers.mjs'
import { STORAGE_TIME_RE, storageTime } from './storage-helpers.mjs'

/** The service role's analytics client (only the service role may use analytics buckets). */
const analytics = client(SERVICE_KEY).storage.analytics

// ------------------------------------------------------------------------ buckets made here
const created = new Set()

/** A fresh analytics bucket name: lower-case letters, digits and hyphens. */
function bucketName(label) {
  return `js-${label}-${crypto.randomUUID().slice(0, 8)}`
}

/** Creates an analytics bucket (service role), dropped with its catalog after the file's tests. */
async function newBucket(label) {
  const name = bucketName(label)
  const { data, error } = await analytics.createBucket(name)
  assert.equal(error, null, `createBucket: ${error?.message}`)
  assert.equal(data.name, name)
  created.add(name)
  return name
}

after(async () => {
  try {
    const names = [...created]
    // Tables, then every namespace of the bucket in one statement (children with their parents).
    await sqlExec(
      `delete from storage.iceberg_tables t using storage.iceberg_namespaces n, storage.buckets_analytics b
        where t.namespace_id = n.id and n.catalog_id = b.id and b.name = any($1)`,
      [names],
    )
    await sqlExec(
      `delete from storage.iceberg_namespaces n using storage.buckets_analytics b
        where n.catalog_id = b.id and b.name = any($1)`,
      [names],
    )
    await sqlExec('delete from storage.buckets_analytics where name = any($1)', [names])
  } finally {
    await closeDb()
  }
})

// ------------------------------------------------------------------------ helpers
/** Method, raw path (as sent, percent-encoded), query and status of the last request. */
function wire() {
  const r = lastRequest()
  const u = new URL(r.url)
  return { method: r.method, path: u.pathname, query: u.search, status: r.status }
}

/** The catalog path of analytics bucket `bucket` followed by `rest`. */
function catalogPath(bucket, rest) {
  return `/storage/v1/iceberg/v1/${bucket}${rest}`
}

/** The rows of a bucket's namespaces, by levels. */
function namespaceRows(bucket) {
  return sqlRows(
    `select n.levels, n.properties from storage.iceberg_namespaces n
       join storage.buckets_analytics b on b.id = n.catalog_id
      where b.name = $1 order by n.levels`,
    [bucket],
  )
}

/** The stored row of a table (null when absent). */
async function tableRow(bucket, table) {
  const rows = await sqlRows(
    `select t.metadata, t.metadata_location, t.version from storage.iceberg_tables t
       join storage.iceberg_namespaces n on n.id = t.namespace_id
       join storage.buckets_analytics b on b.id = n.catalog_id
      where b.name = $1 and t.name = $2`,
    [bucket, table],
  )
  return rows[0] ?? null
}

/** Asserts an analytics bucket call failed with a StorageApiError (real HTTP status). */
function bucketFails(res, status, message) {
  const e = res.error
  assert.ok(e, `expected an error, got data ${JSON.stringify(res.data)}`)
  assert.equal(e.name, 'StorageApiError', `${e.name}: ${e.message}`)
  assert.equal(e.status, status, `status of ${JSON.stringify(e)}`)
  assert.equal(e.statusCode, String(status), `statusCode of ${JSON.stringify(e)}`)
  if (message instanceof RegExp) assert.match(e.message, message)
  else if (message !== undefined) assert.equal(e.message, message)
  assert.equal(res.data, null)
  return e
}

/** Asserts a catalog call succeeded and returns its data. */
function catalogOk(res) {
  const e = res.error
  assert.equal(e, null, `unexpected catalog error: ${e?.name} status=${e?.status} type=${e?.icebergType} ${e?.message}`)
  return res.data
}

/** Asserts a catalog call failed with an IcebergError of `status` and Iceberg `type`. */
function catalogFails(res, status, type, message) {
  const e = res.error
  assert.ok(e instanceof IcebergError, `expected an IcebergError, got ${e} and data ${JSON.stringify(res.data)}`)
  assert.equal(e.status, status, `status of ${e.message}`)
  assert.equal(e.icebergType, type, `type of ${e.message}`)
  assert.equal(e.icebergCode, status)
  assert.deepEqual(e.details, { error: { message: e.message, type, code: status } })
  if (message !== undefined) assert.equal(e.message, message)
  assert.equal(res.data, null)
  return e
}

/** The analytics buckets whose names contain `part`, as stored, in the API's shape. */
function bucketRows(part, order = 'name') {
  return sqlRows(
    `select name as id, name, type, format, ${storageTime('created_at')} as created_at,
            ${storageTime('updated_at')} as updated_at from storage.buckets_analytics
      where name like '%' || $1 || '%' order by ${order}`,
    [part],
  )
}

const EVENTS = {
  name: 'events',
  schema: {
    type: 'struct',
    fields: [
      { id: 1, name: 'id', type: 'long', required: true },
      { id: 2, name: 'ts', type: 'timestamptz', required: true },
      { id: 3, name: 'user_id', type: 'string', required: false },
    ],
    'schema-id': 0,
    'identifier-field-ids': [1],
  },
  'partition-spec': { 'spec-id': 0, fields: [{ source_id: 2, field_id: 1000, name: 'ts_day', transform: 'day' }] },
  'write-order': { 'order-id': 0, fields: [] },
  properties: { 'write.format.default': 'parquet' },
}

// ------------------------------------------------------------------------ buckets
describe('analytics buckets', () => {
  test('createBucket answers the stored bucket; listBuckets with its options; deleteBucket', async () => {
    const tag = crypto.randomUUID().slice(0, 8)
    const names = ['b', 'c', 'a'].map((l) => `js-list-${tag}-${l}`)
    for (const name of names) {
      const { data, error } = await analytics.createBucket(name)
      assert.equal(error, null)
      created.add(name)
      assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/iceberg/bucket', query: '', status: 200 })
      const [row] = await bucketRows(name)
      assert.deepEqual(data, row)
      assert.equal(data.type, 'ANALYTICS')
      assert.equal(data.format, 'iceberg')
      assert.match(data.created_at, STORAGE_TIME_RE, 'UTC, milliseconds, Z')
    }
    const sorted = [...names].sort()

    let res = await analytics.listBuckets({ search: tag })
    assert.equal(res.error, null)
    assert.deepEqual(wire(), { method: 'GET', path: '/storage/v1/iceberg/bucket', query: `?search=${tag}`, status: 200 })
    assert.deepEqual(res.data, await bucketRows(tag))
    assert.deepEqual(res.data.map((b) => b.name), sorted)

    res = await analytics.listBuckets({ search: tag, sortColumn: 'created_at', sortOrder: 'desc' })
    assert.deepEqual(res.data.map((b) => b.name), [...names].reverse())
    assert.equal(wire().query, `?sortColumn=created_at&sortOrder=desc&search=${tag}`)
    res = await analytics.listBuckets({ search: tag, sortColumn: 'name', sortOrder: 'asc', limit: 2, offset: 1 })
    assert.deepEqual(res.data.map((b) => b.name), sorted.slice(1))
    assert.equal(wire().query, `?limit=2&offset=1&sortColumn=name&sortOrder=asc&search=${tag}`)
    res = await analytics.listBuckets({ search: tag.toUpperCase(), limit: 1 })
    assert.deepEqual(res.data.map((b) => b.name), [sorted[0]], 'search ignores case')
    res = await analytics.listBuckets()
    assert.equal(wire().query, '')
    for (const name of names) assert.ok(res.data.some((b) => b.name === name), name)

    res = await analytics.deleteBucket(names[0])
    assert.deepEqual(res, { data: { message: 'Successfully deleted' }, error: null })
    assert.deepEqual(wire(), { method: 'DELETE', path: `/storage/v1/iceberg/bucket/${names[0]}`, query: '', status: 200 })
    assert.deepEqual((await bucketRows(tag)).map((b) => b.name), sorted.filter((n) => n !== names[0]))
  })

  test('refused bucket calls: duplicate, invalid name, missing bucket, non-empty bucket, bad options', async () => {
    const name = await newBucket('errors')
    bucketFails(await analytics.createBucket(name), 409, 'The resource already exists')
    for (const bad of ['ab', 'Upper', 'has_underscore', 'trailing-', 'x'.repeat(64)]) {
      bucketFails(await analytics.createBucket(bad), 400, 'Bucket name invalid')
    }
    bucketFails(await analytics.deleteBucket(bucketName('missing')), 404, 'Bucket not found')
    bucketFails(await analytics.listBuckets({ limit: 0 }), 400, /limit/)
    bucketFails(await analytics.listBuckets({ sortColumn: 'owner' }), 400, /sortColumn/)

    catalogOk(await analytics.from(name).createNamespace({ namespace: ['keep'] }))
    bucketFails(await analytics.deleteBucket(name), 409, /not empty/)
    catalogOk(await analytics.from(name).dropNamespace({ namespace: ['keep'] }))
    assert.deepEqual((await analytics.deleteBucket(name)).data, { message: 'Successfully deleted' })
  })

  test('only the service role: anon and signed-in users get 403 on buckets and the catalog', async () => {
    const name = await newBucket('roles')
    const others = [client(ANON_KEY).storage.analytics, userClient(userToken(USER_A)).storage.analytics]
    for (const other of others) {
      bucketFails(await other.listBuckets(), 403, 'Access denied: Invalid role')
      bucketFails(await other.createBucket(bucketName('nope')), 403, 'Access denied: Invalid role')
      bucketFails(await other.deleteBucket(name), 403, 'Access denied: Invalid role')
      const catalog = other.from(name)
      catalogFails(await catalog.listNamespaces(), 403, 'AccessDenied', 'Access denied: Invalid role')
      catalogFails(await catalog.createNamespace({ namespace: ['x'] }), 403, 'AccessDenied')
      // exists() only treats 404 as false: a refusal is an error
      const exists = await catalog.namespaceExists({ namespace: ['x'] })
      assert.equal(exists.error.status, 403)
    }
    assert.deepEqual((await bucketRows(name)).map((b) => b.name), [name], 'nothing changed')
    assert.deepEqual(await namespaceRows(name), [])
  })
})

// ------------------------------------------------------------------------ catalog
describe('the Iceberg catalog of an analytics bucket (from)', () => {
  test('from() refuses a name storage-js considers invalid before any request', async () => {
    const before = requests().length
    assert.throws(() => analytics.from('bad/name'), StorageError)
    assert.throws(() => analytics.from(' padded'), /Invalid bucket name/)
    assert.equal(requests().length, before)
    // a well-formed name that is not an analytics bucket: 404 from the catalog
    const res = await analytics.from(bucketName('absent')).listNamespaces()
    catalogFails(res, 404, 'NoSuchWarehouseException')
    assert.equal(res.error.isNotFound(), true)
  })

  test('namespaces: create (properties, nested), createIfNotExists, list (a parent), load, exists, drop', async () => {
    const name = await newBucket('ns')
    const catalog = analytics.from(name)

    const sales = catalogOk(await catalog.createNamespace({ namespace: ['sales'] }, { properties: { owner: 'data-team' } }))
    assert.deepEqual(sales, { namespace: ['sales'], properties: { owner: 'data-team' } })
    assert.equal(lastRequest().method, 'POST')
    assert.equal(new URL(lastRequest().url).pathname, catalogPath(name, '/namespaces'))
    const eu = catalogOk(await catalog.createNamespace({ namespace: ['sales', 'eu'] }))
    assert.deepEqual(eu, { namespace: ['sales', 'eu'], properties: {} })
    catalogOk(await catalog.createNamespace({ namespace: ['marketing'] }))

    const dup = catalogFails(
      await catalog.createNamespace({ namespace: ['sales'] }),
      409,
      'AlreadyExistsException',
      'Namespace already exists: sales',
    )
    assert.equal(dup.isConflict(), true)
    const orphan = await catalog.createNamespace({ namespace: ['hr', 'eu'] })
    catalogFails(orphan, 404, 'NoSuchNamespaceException', 'Namespace does not exist: hr')
    catalogFails(await catalog.createNamespace({ namespace: ['Bad Name'] }), 400, 'BadRequestException')

    // createNamespaceIfNotExists: undefined when it exists (after a 409), the response when created
    assert.deepEqual(await catalog.createNamespaceIfNotExists({ namespace: ['sales'] }), { data: undefined, error: null })
    assert.equal(lastRequest().status, 409)
    const finance = await catalog.createNamespaceIfNotExists({ namespace: ['finance'] }, { properties: { k: 'v' } })
    assert.deepEqual(catalogOk(finance), { namespace: ['finance'], properties: { k: 'v' } })

    assert.deepEqual(catalogOk(await catalog.listNamespaces()), [
      { namespace: ['finance'] },
      { namespace: ['marketing'] },
      { namespace: ['sales'] },
    ])
    assert.deepEqual(catalogOk(await catalog.listNamespaces({ namespace: ['sales'] })), [{ namespace: ['sales', 'eu'] }])
    assert.equal(wire().query, '?parent=sales')
    catalogFails(await catalog.listNamespaces({ namespace: ['nope'] }), 404, 'NoSuchNamespaceException')
    assert.deepEqual(await namespaceRows(name), [
      { levels: ['finance'], properties: { k: 'v' } },
      { levels: ['marketing'], properties: {} },
      { levels: ['sales'], properties: { owner: 'data-team' } },
      { levels: ['sales', 'eu'], properties: {} },
    ])

    const loaded = catalogOk(await catalog.loadNamespaceMetadata({ namespace: ['sales'] }))
    assert.deepEqual(loaded, { properties: { owner: 'data-team' } })
    // a nested namespace travels as its levels joined by the unit separator
    assert.deepEqual(catalogOk(await catalog.loadNamespaceMetadata({ namespace: ['sales', 'eu'] })), { properties: {} })
    assert.equal(wire().path, catalogPath(name, '/namespaces/sales%1Feu'))
    const missing = catalogFails(
      await catalog.loadNamespaceMetadata({ namespace: ['nope'] }),
      404,
      'NoSuchNamespaceException',
      'Namespace does not exist: nope',
    )
    assert.equal(missing.isNotFound(), true)

    assert.deepEqual(await catalog.namespaceExists({ namespace: ['sales', 'eu'] }), { data: true, error: null })
    assert.deepEqual(wire(), { method: 'HEAD', path: catalogPath(name, '/namespaces/sales%1Feu'), query: '', status: 204 })
    assert.deepEqual(await catalog.namespaceExists({ namespace: ['sales', 'us'] }), { data: false, error: null })
    assert.equal(wire().status, 404)

    // a namespace with children (or tables) cannot be dropped
    const notEmpty = catalogFails(
      await catalog.dropNamespace({ namespace: ['sales'] }),
      409,
      'NamespaceNotEmptyException',
      'Namespace sales is not empty: it still has tables or namespaces',
    )
    assert.equal(notEmpty.isConflict(), true)
    assert.deepEqual(await catalog.dropNamespace({ namespace: ['sales', 'eu'] }), { data: undefined, error: null })
    assert.deepEqual(wire(), { method: 'DELETE', path: catalogPath(name, '/namespaces/sales%1Feu'), query: '', status: 204 })
    catalogOk(await catalog.dropNamespace({ namespace: ['sales'] }))
    catalogFails(await catalog.dropNamespace({ namespace: ['sales'] }), 404, 'NoSuchNamespaceException')
    assert.deepEqual(catalogOk(await catalog.listNamespaces()), [{ namespace: ['finance'] }, { namespace: ['marketing'] }])
  })

  test('tables: create, createIfNotExists, list, load, exists, update (commit), drop', async () => {
    const name = await newBucket('tables')
    const catalog = analytics.from(name)
    catalogOk(await catalog.createNamespace({ namespace: ['analytics'] }))
    const ns = { namespace: ['analytics'] }
    const id = { namespace: ['analytics'], name: 'events' }

    // createTable answers the metadata, with ids assigned as the Iceberg spec does
    const meta = catalogOk(await catalog.createTable(ns, EVENTS))
    const tables = catalogPath(name, '/namespaces/analytics/tables')
    assert.deepEqual(wire(), { method: 'POST', path: tables, query: '', status: 200 })
    assert.equal(meta['format-version'], 2)
    assert.match(meta['table-uuid'], /^[0-9a-f-]{36}$/)
    assert.equal(meta.location, `s3://${name}/analytics/events`)
    assert.equal(meta['current-schema-id'], 0)
    assert.equal(meta['last-column-id'], 3)
    assert.deepEqual(meta.schemas, [{ ...EVENTS.schema }])
    assert.deepEqual(meta['partition-specs'], [
      { 'spec-id': 0, fields: [{ name: 'ts_day', transform: 'day', 'source-id': 2, 'field-id': 1000 }] },
    ])
    assert.equal(meta['last-partition-id'], 1000)
    assert.deepEqual(meta['sort-orders'], [{ 'order-id': 0, fields: [] }])
    assert.deepEqual(meta.properties, { 'write.format.default': 'parquet' })
    assert.equal(meta['current-snapshot-id'], -1)
    assert.deepEqual([meta.snapshots, meta['snapshot-log'], meta['metadata-log'], meta.refs], [[], [], [], {}])
    const row = await tableRow(name, 'events')
    assert.deepEqual(row.metadata, meta)
    assert.equal(row.version, 0)
    const first = new RegExp(`^s3://${name}/analytics/events/metadata/00000-[0-9a-f-]{36}\\.metadata\\.json$`)
    assert.match(row.metadata_location, first)

    const dup = catalogFails(
      await catalog.createTable(ns, EVENTS),
      409,
      'AlreadyExistsException',
      'Table already exists: analytics.events',
    )
    assert.equal(dup.isConflict(), true)
    catalogFails(await catalog.createTable({ namespace: ['nope'] }, EVENTS), 404, 'NoSuchNamespaceException')
    const varchar = { type: 'struct', fields: [{ id: 1, name: 'a', type: 'varchar', required: true }] }
    const badType = await catalog.createTable(ns, { ...EVENTS, name: 'bad', schema: varchar })
    catalogFails(badType, 400, 'BadRequestException', 'Unsupported type: varchar')

    // createTableIfNotExists: the existing table's metadata (a 409, then a load), or a new table
    assert.deepEqual(catalogOk(await catalog.createTableIfNotExists(ns, EVENTS)), meta)
    assert.deepEqual(requests().slice(-2).map((r) => [r.method, r.status]), [['POST', 409], ['GET', 200]])
    const logs = catalogOk(await catalog.createTableIfNotExists(ns, { ...EVENTS, name: 'logs' }))
    assert.equal(logs.location, `s3://${name}/analytics/logs`)

    assert.deepEqual(catalogOk(await catalog.listTables(ns)), [
      { namespace: ['analytics'], name: 'events' },
      { namespace: ['analytics'], name: 'logs' },
    ])
    catalogFails(await catalog.listTables({ namespace: ['nope'] }), 404, 'NoSuchNamespaceException')
    assert.deepEqual(catalogOk(await catalog.loadTable(id)), meta)
    const events = `${tables}/events`
    assert.deepEqual(wire(), { method: 'GET', path: events, query: '', status: 200 })
    const noTable = catalogFails(
      await catalog.loadTable({ ...id, name: 'nope' }),
      404,
      'NoSuchTableException',
      'Table does not exist: analytics.nope',
    )
    assert.equal(noTable.isNotFound(), true)
    assert.deepEqual(await catalog.tableExists(id), { data: true, error: null })
    assert.equal(wire().method, 'HEAD')
    assert.deepEqual(await catalog.tableExists({ ...id, name: 'nope' }), { data: false, error: null })

    // updateTable sends its request as the commit body: requirements checked, updates applied
    const commit = catalogOk(
      await catalog.updateTable(id, {
        requirements: [
          { type: 'assert-table-uuid', uuid: meta['table-uuid'] },
          { type: 'assert-current-schema-id', 'current-schema-id': 0 },
          { type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': null },
        ],
        updates: [
          {
            action: 'add-schema',
            schema: {
              type: 'struct',
              fields: [...EVENTS.schema.fields, { id: 4, name: 'country', type: 'string', required: false }],
            },
          },
          { action: 'set-current-schema', 'schema-id': -1 },
          { action: 'set-properties', updates: { owner: 'data-team' } },
          {
            action: 'add-snapshot',
            snapshot: {
              'snapshot-id': 7001,
              'sequence-number': 1,
              'timestamp-ms': Date.now(),
              'manifest-list': `s3://${name}/analytics/events/metadata/snap-7001.avro`,
              summary: { operation: 'append', 'added-records': '3' },
              'schema-id': 1,
            },
          },
          { action: 'set-snapshot-ref', 'ref-name': 'main', 'snapshot-id': 7001, type: 'branch' },
        ],
      }),
    )
    assert.deepEqual(wire(), { method: 'POST', path: events, query: '', status: 200 })
    assert.deepEqual(Object.keys(commit).sort(), ['metadata', 'metadata-location'])
    assert.match(commit['metadata-location'], new RegExp(`^s3://${name}/analytics/events/metadata/00001-`))
    const updated = commit.metadata
    assert.equal(updated['current-schema-id'], 1)
    assert.equal(updated['last-column-id'], 4)
    assert.equal(updated['current-snapshot-id'], 7001)
    assert.deepEqual(updated.refs, { main: { 'snapshot-id': 7001, type: 'branch' } })
    assert.deepEqual(updated.properties, { 'write.format.default': 'parquet', owner: 'data-team' })
    assert.deepEqual(updated['metadata-log'], [
      { 'metadata-file': row.metadata_location, 'timestamp-ms': meta['last-updated-ms'] },
    ])
    assert.deepEqual(catalogOk(await catalog.loadTable(id)), updated)

    // a requirement that no longer holds: 409 CommitFailedException, nothing written
    const stale = catalogFails(
      await catalog.updateTable(id, {
        requirements: [{ type: 'assert-current-schema-id', 'current-schema-id': 0 }],
        updates: [{ action: 'set-properties', updates: { stale: 'yes' } }],
      }),
      409,
      'CommitFailedException',
      'Requirement failed: current schema changed: expected id 0 != 1',
    )
    assert.equal(stale.isConflict(), true)
    catalogFails(
      await catalog.updateTable(id, { requirements: [], updates: [{ action: 'set-current-schema', 'schema-id': 42 }] }),
      400,
      'BadRequestException',
      'Cannot set current schema to unknown schema: 42',
    )
    // iceberg-js's own UpdateTableRequest shape ({ properties }) is read as set-properties
    const short = catalogOk(await catalog.updateTable(id, { properties: { 'read.split.target-size': '134217728' } }))
    assert.equal(short.metadata.properties['read.split.target-size'], '134217728')
    assert.equal(short.metadata.properties.stale, undefined)
    const noCommit = await catalog.updateTable({ ...id, name: 'nope' }, { requirements: [], updates: [] })
    catalogFails(noCommit, 404, 'NoSuchTableException')
    assert.equal((await tableRow(name, 'events')).version, 2, 'two commits wrote, the refused ones did not')

    // drops: purge is sent as purgeRequested; a namespace with tables cannot be dropped
    catalogFails(await catalog.dropNamespace(ns), 409, 'NamespaceNotEmptyException')
    assert.deepEqual(await catalog.dropTable(id, { purge: true }), { data: undefined, error: null })
    assert.deepEqual(wire(), {
      method: 'DELETE',
      path: events,
      query: '?purgeRequested=true',
      status: 204,
    })
    catalogOk(await catalog.dropTable({ ...id, name: 'logs' }))
    assert.equal(wire().query, '?purgeRequested=false')
    const gone = catalogFails(await catalog.dropTable(id), 404, 'NoSuchTableException')
    assert.equal(gone.isNotFound(), true)
    assert.deepEqual(await catalog.tableExists(id), { data: false, error: null })
    assert.deepEqual(catalogOk(await catalog.listTables(ns)), [])
    catalogOk(await catalog.dropNamespace(ns))
    assert.deepEqual((await analytics.deleteBucket(name)).data, { message: 'Successfully deleted' })
  })
})
