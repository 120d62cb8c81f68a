// supabase-js (storage-js as pinned in compat/package.json) against forge-server's
// /storage/v1/vector (the S3 Vectors API): every method of `supabase.storage.vectors`.
// StorageVectorsClient: createBucket, getBucket, listBuckets (prefix, maxResults, nextToken),
// deleteBucket and from(); VectorBucketScope: createIndex, getIndex, listIndexes, deleteIndex and
// index(); VectorIndexScope: putVectors (upserts), getVectors, listVectors (pages and segments),
// queryVectors (exact nearest neighbours, checked against distances computed here, and metadata
// filters) and deleteVectors. Errors reach the client as StorageVectorsApiError with the real
// HTTP status; only the service role may call these routes.
// Every test creates its own vector buckets (random names, removed at the end); what the client
// got is compared with the rows read back in SQL. Run through compat/run.sh, which starts the
// server and exports FORGE_*.
import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { ANON_KEY, USER_A, client, lastRequest, requests, sqlRows, userClient, userToken, wireTest as test } from './helpers.mjs'
import { cleanUpAfter, storage, storageOk, suffix, wire } from './storage-helpers.mjs'

/** The service role's vectors client (`supabase.storage.vectors`). */
const vectors = storage.vectors

// ------------------------------------------------------------------------ cleanup
// Vector buckets made here: their indexes (and so their vectors) and then the buckets are deleted
// once every test ran.
const vectorBuckets = new Set()

async function dropVectorBuckets() {
  for (const bucket of vectorBuckets) {
    const scope = vectors.from(bucket)
    const { data } = await scope.listIndexes()
    for (const { indexName } of data?.indexes ?? []) await scope.deleteIndex(indexName)
    await vectors.deleteBucket(bucket)
  }
}

cleanUpAfter(dropVectorBuckets)

/** Creates a vector bucket `js-vec-<label>-<random>` (service role) and returns its name. */
async function newVectorBucket(label) {
  const name = `js-vec-${label}-${suffix()}`
  assert.deepEqual(storageOk(await vectors.createBucket(name)), {})
  vectorBuckets.add(name)
  return name
}

/** Creates an index (float32) in `bucket` and returns its VectorIndexScope. */
async function newIndex(bucket, indexName, dimension, distanceMetric, nonFilterable = null) {
  const options = { indexName, dataType: 'float32', dimension, distanceMetric }
  if (nonFilterable) options.metadataConfiguration = { nonFilterableMetadataKeys: nonFilterable }
  assert.deepEqual(storageOk(await vectors.from(bucket).createIndex(options)), {})
  return vectors.from(bucket).index(indexName)
}

// ------------------------------------------------------------------------ bodies on the wire
// The request log of helpers.mjs keeps no bodies, and storage-js keeps the S3 Vectors error code
// nowhere in its error (its statusCode is the body's statusCode): the global fetch, which the
// recording fetch of helpers.mjs calls, is wrapped to keep the last request and response bodies.
let bodies = { sent: null, received: null, text: null }
const globalFetch = globalThis.fetch
globalThis.fetch = async (input, init = {}) => {
  const res = await globalFetch(input, init)
  const text = await res.clone().text()
  const parse = (s) => {
    try {
      return JSON.parse(s)
    } catch {
      return s
    }
  }
  bodies = { sent: typeof init.body === 'string' ? parse(init.body) : null, received: text ? parse(text) : null, text }
  return res
}

/** The JSON body of the last request sent. */
function sent() {
  return bodies.sent
}

/**
 * Asserts a vectors call failed with a StorageVectorsApiError carrying the real HTTP `status`
 * (also as its statusCode), the `message` (a string, or a RegExp it matches) when given, and no
 * data; the response body is Storage's error with the S3 Vectors `code`.
 */
function vectorsFails(res, status, code, message = undefined) {
  const e = res.error
  assert.ok(e, `expected StorageVectorsApiError ${status} ${code}, got data ${JSON.stringify(res.data)}`)
  assert.equal(e.name, 'StorageVectorsApiError', `error ${e.name}: ${e.message}`)
  assert.equal(e.status, status, `HTTP status of ${JSON.stringify(e)}`)
  assert.equal(e.statusCode, String(status), `statusCode of ${JSON.stringify(e)}`)
  if (message instanceof RegExp) assert.match(e.message, message)
  else if (message !== undefined) assert.equal(e.message, message)
  assert.equal(res.data, null)
  assert.equal(lastRequest().status, status)
  assert.deepEqual(bodies.received, { statusCode: String(status), code, error: code, message: e.message })
  return e
}

/** Asserts storage-js itself refuses the call (it throws) without sending anything. */
async function refusedByClient(call, message) {
  const before = requests().length
  await assert.rejects(call, { message })
  assert.equal(requests().length, before, 'nothing was sent')
}

// ------------------------------------------------------------------------ SQL
/** A vector bucket's creation time as GetVectorBucket reports it (epoch seconds); null if absent. */
async function bucketCreated(name) {
  const rows = await sqlRows('select extract(epoch from created_at)::bigint as t from storage.buckets_vectors where id = $1', [name])
  return rows[0]?.t ?? null
}

/** The storage.vector_indexes row of an index (null when absent). */
async function indexRow(bucket, name) {
  const rows = await sqlRows(
    `select name, data_type, dimension, distance_metric, metadata_configuration,
            extract(epoch from created_at)::bigint as created
       from storage.vector_indexes where bucket_id = $1 and name = $2`,
    [bucket, name],
  )
  return rows[0] ?? null
}

/** An index's stored vectors ({key, float32, metadata}, by key), the data decoded from the bytea. */
async function storedVectors(bucket, index) {
  const rows = await sqlRows(
    `select v.key, v.data, v.metadata from storage.vectors v join storage.vector_indexes i on i.id = v.index_id
      where i.bucket_id = $1 and i.name = $2 order by v.key collate "C"`,
    [bucket, index],
  )
  return rows.map((r) => {
    const bytes = Buffer.from(r.data.slice(2), 'hex')
    const float32 = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4))
    return { key: r.key, float32, metadata: r.metadata }
  })
}

// ------------------------------------------------------------------------ data and distances
/** A deterministic generator (MINSTD), so every run stores the same vectors. */
function lcg(seed) {
  let x = seed
  return () => (x = (x * 48271) % 2147483647)
}

/** `n` vectors of `dim` components, multiples of 1/512 in (-4, 4): exact in float32. */
function makeVectors(n, dim, seed) {
  const next = lcg(seed)
  return Array.from({ length: n }, () => Array.from({ length: dim }, () => ((next() % 4001) - 2000) / 512))
}

const f32 = (v) => v.map(Math.fround)

/**
 * The float32 of `x` as S3 Vectors writes it in JSON: the shortest decimal that reads back as
 * the same float32 (0.1 for Math.fround(0.1), not 0.10000000149011612).
 */
function shortestF32(x) {
  const f = Math.fround(x)
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(f.toPrecision(digits))
    if (Math.fround(d) === f) return d
  }
  return f
}

/** The distance of S3 Vectors: cosine (1 - cos) or euclidean, in float64 on float32 inputs. */
function distance(metric, a, b) {
  ;[a, b] = [f32(a), f32(b)]
  if (metric === 'euclidean') return Math.sqrt(a.reduce((s, x, i) => s + (x - b[i]) ** 2, 0))
  let [dot, na, nb] = [0, 0, 0]
  a.forEach((x, i) => {
    dot += x * b[i]
    na += x * x
    nb += b[i] * b[i]
  })
  return 1 - dot / (Math.sqrt(na) * Math.sqrt(nb))
}

/**
 * The `k` nearest of `docs` to `query` ({key, distance}, nearest first). Asserts the ranking has
 * no near-ties up to the k-th and the next one, so the expected order is unambiguous.
 */
function nearest(metric, docs, query, k) {
  const ranked = docs
    .map((d) => ({ key: d.key, distance: distance(metric, d.data.float32, query) }))
    .sort((x, y) => x.distance - y.distance)
  for (let i = 1; i < Math.min(ranked.length, k + 1); i++) {
    assert.ok(ranked[i].distance - ranked[i - 1].distance > 1e-4, `fixture: near-tie at rank ${i} of the ${metric} ranking`)
  }
  return ranked.slice(0, k)
}

/** Asserts query results are exactly `expected` (keys in order, distances to float32 precision). */
function assertNeighbours(got, expected) {
  assert.deepEqual(
    got.map((v) => v.key),
    expected.map((e) => e.key),
  )
  got.forEach((v, i) => {
    const want = expected[i].distance
    assert.equal(typeof v.distance, 'number', `distance of ${v.key}`)
    assert.ok(Math.abs(v.distance - want) <= 1e-5 * Math.max(1, want), `distance of ${v.key}: ${v.distance}, expected ${want}`)
  })
}

// 30 documents of 6 dimensions with metadata of every kind (strings, numbers, booleans, arrays,
// a field only some have, and `body`, declared non-filterable).
const GENRES = ['drama', 'comedy', 'horror']

function docMetadata(i) {
  const m = { genre: GENRES[i % 3], year: 1990 + i, tags: [i % 2 === 0 ? 'even' : 'odd'], featured: i % 5 === 0 }
  if (Number.isInteger(Math.sqrt(i))) m.tags.push('square')
  if (i % 4 !== 0) m.rating = (i % 5) + 0.5
  m.body = `the text of document ${i}`
  return m
}

const DOCS = makeVectors(30, 6, 20240611).map((v, i) => ({
  key: `doc-${String(i).padStart(2, '0')}`,
  data: { float32: v },
  metadata: docMetadata(i),
}))
const QUERIES = makeVectors(4, 6, 777)
const META = Object.fromEntries(DOCS.map((d) => [d.key, d.metadata]))

/** One bucket holding DOCS in a cosine and a euclidean index (made once, for the query tests). */
let docsFixture = null
function docsIndexes() {
  docsFixture ??= (async () => {
    const bucket = await newVectorBucket('docs')
    const cosine = await newIndex(bucket, 'docs-cosine', 6, 'cosine', ['body'])
    const euclidean = await newIndex(bucket, 'docs-euclidean', 6, 'euclidean', ['body'])
    storageOk(await cosine.putVectors({ vectors: DOCS }))
    storageOk(await euclidean.putVectors({ vectors: DOCS }))
    return { bucket, cosine, euclidean }
  })()
  return docsFixture
}

// ------------------------------------------------------------------------ buckets
describe('vector buckets', () => {
  test('createBucket, getBucket, listBuckets (prefix, maxResults, nextToken) and deleteBucket', async () => {
    const prefix = `js-vec-list-${suffix()}-`
    const names = ['b', 'c', 'a'].map((x) => prefix + x)
    for (const name of names) {
      assert.deepEqual(storageOk(await vectors.createBucket(name)), {})
      vectorBuckets.add(name)
      assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/CreateVectorBucket', status: 200 })
      assert.deepEqual(sent(), { vectorBucketName: name })
    }
    assert.match(lastRequest().headers.authorization, /role=service_role/)
    const sorted = (await sqlRows('select id from storage.buckets_vectors where starts_with(id, $1) order by id', [prefix])).map((r) => r.id)
    assert.deepEqual(sorted, [...names].sort())
    const created = {}
    for (const name of names) {
      created[name] = await bucketCreated(name)
      assert.ok(Math.abs(created[name] - Date.now() / 1000) < 300, `creationTime ${created[name]}`)
    }
    const summary = (name) => ({ vectorBucketName: name, creationTime: created[name] })

    assert.deepEqual(storageOk(await vectors.getBucket(names[0])), { vectorBucket: summary(names[0]) })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/GetVectorBucket', status: 200 })
    assert.deepEqual(sent(), { vectorBucketName: names[0] })

    assert.deepEqual(storageOk(await vectors.listBuckets({ prefix })), { vectorBuckets: sorted.map(summary) })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/ListVectorBuckets', status: 200 })
    assert.deepEqual(sent(), { prefix })
    // pages of two: a nextToken while more follow, none on the last page
    const first = storageOk(await vectors.listBuckets({ prefix, maxResults: 2 }))
    assert.deepEqual(first.vectorBuckets, sorted.slice(0, 2).map(summary))
    assert.equal(typeof first.nextToken, 'string')
    const second = storageOk(await vectors.listBuckets({ prefix, maxResults: 2, nextToken: first.nextToken }))
    assert.deepEqual(second, { vectorBuckets: [summary(sorted[2])] })
    assert.deepEqual(storageOk(await vectors.listBuckets({ prefix, maxResults: 3 })), { vectorBuckets: sorted.map(summary) })
    assert.deepEqual(storageOk(await vectors.listBuckets({ prefix: `${prefix}z` })), { vectorBuckets: [] })
    vectorsFails(await vectors.listBuckets({ prefix, maxResults: 0 }), 400, 'InvalidParameter', 'maxResults must be at least 1')

    // without options: every bucket, in pages of at most 100, ours among them
    const everyBucket = []
    let nextToken
    do {
      const page = storageOk(await vectors.listBuckets(nextToken ? { nextToken } : undefined))
      assert.ok(page.vectorBuckets.length <= 100)
      everyBucket.push(...page.vectorBuckets.map((b) => b.vectorBucketName))
      nextToken = page.nextToken
    } while (nextToken)
    const inSql = (await sqlRows('select id from storage.buckets_vectors order by id')).map((r) => r.id)
    assert.deepEqual(everyBucket, inSql)

    assert.deepEqual(storageOk(await vectors.deleteBucket(names[0])), {})
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/DeleteVectorBucket', status: 200 })
    assert.deepEqual(sent(), { vectorBucketName: names[0] })
    vectorBuckets.delete(names[0])
    assert.equal(await bucketCreated(names[0]), null)
    vectorsFails(await vectors.getBucket(names[0]), 404, 'S3VectorNotFoundException', `Vector bucket not found: ${names[0]}`)
    vectorsFails(await vectors.deleteBucket(names[0]), 404, 'S3VectorNotFoundException', `Vector bucket not found: ${names[0]}`)
    assert.deepEqual(storageOk(await vectors.listBuckets({ prefix })), { vectorBuckets: sorted.filter((n) => n !== names[0]).map(summary) })
  })

  test('createBucket refuses an existing name and names outside the S3 Vectors rule', async () => {
    const name = await newVectorBucket('dup')
    const created = await bucketCreated(name)
    vectorsFails(await vectors.createBucket(name), 409, 'S3VectorConflictException', `Vector bucket already exists: ${name}`)
    assert.equal(await bucketCreated(name), created, 'the bucket is untouched')

    const rule = 'use 3 to 63 lower-case letters, digits and hyphens, beginning and ending with a letter or digit'
    vectorsFails(await vectors.createBucket('ab'), 400, 'InvalidParameter', `Invalid vector bucket name "ab": ${rule}`)
    const tag = suffix()
    const bad = [`Js-${tag}`, `js_${tag}`, `-js-${tag}`, `js-${tag}-`, `js.${tag}`, `js ${tag}`, `js-${tag}-${'x'.repeat(64)}`, '']
    for (const name of bad) {
      vectorsFails(await vectors.createBucket(name), 400, 'InvalidParameter', /^Invalid vector bucket name /)
      assert.equal(await bucketCreated(name), null, name)
    }
    // the edges of the rule: 3 and 63 characters, digits first and last
    for (const ok of [suffix().slice(0, 3), `${tag}-${'9'.repeat(54)}`]) {
      assert.ok(ok.length === 3 || ok.length === 63)
      assert.deepEqual(storageOk(await vectors.createBucket(ok)), {})
      vectorBuckets.add(ok)
      assert.equal(storageOk(await vectors.getBucket(ok)).vectorBucket.vectorBucketName, ok)
      assert.deepEqual(storageOk(await vectors.deleteBucket(ok)), {})
      vectorBuckets.delete(ok)
    }
    vectorsFails(await vectors.getBucket(`js-vec-none-${tag}`), 404, 'S3VectorNotFoundException', `Vector bucket not found: js-vec-none-${tag}`)
  })

  test('deleteBucket refuses a bucket that still has indexes', async () => {
    const bucket = await newVectorBucket('notempty')
    await newIndex(bucket, 'only', 2, 'euclidean')
    vectorsFails(
      await vectors.deleteBucket(bucket),
      400,
      'S3VectorBucketNotEmpty',
      `The vector bucket ${bucket} still has indexes: delete them first`,
    )
    assert.notEqual(await bucketCreated(bucket), null)
    assert.equal(storageOk(await vectors.getBucket(bucket)).vectorBucket.vectorBucketName, bucket)
    assert.deepEqual(storageOk(await vectors.from(bucket).deleteIndex('only')), {})
    assert.deepEqual(storageOk(await vectors.deleteBucket(bucket)), {})
    vectorBuckets.delete(bucket)
    assert.equal(await bucketCreated(bucket), null)
  })
})

// ------------------------------------------------------------------------ indexes
describe('vector indexes', () => {
  test('createIndex and getIndex through from(bucket): the configuration as given', async () => {
    const bucket = await newVectorBucket('idx')
    const scope = vectors.from(bucket)
    const options = {
      indexName: 'docs.v1',
      dataType: 'float32',
      dimension: 384,
      distanceMetric: 'cosine',
      metadataConfiguration: { nonFilterableMetadataKeys: ['body', 'raw-html'] },
    }
    assert.deepEqual(storageOk(await scope.createIndex(options)), {})
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/CreateIndex', status: 200 })
    assert.deepEqual(sent(), { ...options, vectorBucketName: bucket })
    const row = await indexRow(bucket, 'docs.v1')
    assert.deepEqual(
      { ...row, created: undefined },
      {
        name: 'docs.v1',
        data_type: 'float32',
        dimension: 384,
        distance_metric: 'cosine',
        metadata_configuration: { nonFilterableMetadataKeys: ['body', 'raw-html'] },
        created: undefined,
      },
    )
    assert.ok(Math.abs(row.created - Date.now() / 1000) < 300)

    assert.deepEqual(storageOk(await scope.getIndex('docs.v1')), {
      index: {
        indexName: 'docs.v1',
        vectorBucketName: bucket,
        dataType: 'float32',
        dimension: 384,
        distanceMetric: 'cosine',
        metadataConfiguration: { nonFilterableMetadataKeys: ['body', 'raw-html'] },
        creationTime: row.created,
      },
    })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/GetIndex', status: 200 })
    assert.deepEqual(sent(), { vectorBucketName: bucket, indexName: 'docs.v1' })

    // without a metadata configuration, and the dimension's bounds
    for (const [indexName, dimension, distanceMetric] of [
      ['plain', 3, 'euclidean'],
      ['one-dim', 1, 'cosine'],
      ['widest', 4096, 'euclidean'],
    ]) {
      assert.deepEqual(storageOk(await scope.createIndex({ indexName, dataType: 'float32', dimension, distanceMetric })), {})
      const created = (await indexRow(bucket, indexName)).created
      assert.deepEqual(storageOk(await scope.getIndex(indexName)), {
        index: { indexName, vectorBucketName: bucket, dataType: 'float32', dimension, distanceMetric, creationTime: created },
      })
    }
    vectorsFails(await scope.getIndex('missing'), 404, 'S3VectorNotFoundException', 'Vector index not found: missing')
    const noBucket = `js-vec-none-${suffix()}`
    vectorsFails(
      await vectors.from(noBucket).getIndex('docs.v1'),
      404,
      'S3VectorNotFoundException',
      `Vector bucket not found: ${noBucket}`,
    )
  })

  test('listIndexes lists a bucket\'s indexes by name, with prefix, maxResults and nextToken', async () => {
    const bucket = await newVectorBucket('list')
    const other = await newVectorBucket('list-other')
    const names = ['gamma', 'alpha-2', 'beta-1', 'alpha.3', 'alpha-1']
    for (const name of names) await newIndex(bucket, name, 2, 'euclidean')
    // the same name in another bucket is another index
    await newIndex(other, 'alpha-1', 3, 'cosine')

    const rows = await sqlRows(
      'select name, extract(epoch from created_at)::bigint as t from storage.vector_indexes where bucket_id = $1 order by name',
      [bucket],
    )
    const sorted = rows.map((r) => r.name)
    assert.deepEqual([...sorted].sort(), [...names].sort())
    const summary = (name) => ({ indexName: name, vectorBucketName: bucket, creationTime: rows.find((r) => r.name === name).t })
    const scope = vectors.from(bucket)

    assert.deepEqual(storageOk(await scope.listIndexes()), { indexes: sorted.map(summary) })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/ListIndexes', status: 200 })
    assert.deepEqual(sent(), { vectorBucketName: bucket })
    const alphas = sorted.filter((n) => n.startsWith('alpha'))
    assert.equal(alphas.length, 3)
    assert.deepEqual(storageOk(await scope.listIndexes({ prefix: 'alpha' })), { indexes: alphas.map(summary) })
    const page1 = storageOk(await scope.listIndexes({ prefix: 'alpha', maxResults: 2 }))
    assert.deepEqual(page1.indexes, alphas.slice(0, 2).map(summary))
    assert.equal(typeof page1.nextToken, 'string')
    assert.deepEqual(storageOk(await scope.listIndexes({ prefix: 'alpha', maxResults: 2, nextToken: page1.nextToken })), {
      indexes: [summary(alphas[2])],
    })
    assert.deepEqual(storageOk(await scope.listIndexes({ prefix: 'delta' })), { indexes: [] })

    // one at a time: every index exactly once, in order
    const seen = []
    let nextToken
    do {
      const page = storageOk(await scope.listIndexes({ maxResults: 1, ...(nextToken ? { nextToken } : {}) }))
      assert.ok(page.indexes.length <= 1)
      seen.push(...page.indexes.map((i) => i.indexName))
      nextToken = page.nextToken
    } while (nextToken)
    assert.deepEqual(seen, sorted)

    const otherCreated = (await indexRow(other, 'alpha-1')).created
    assert.deepEqual(storageOk(await vectors.from(other).listIndexes()), {
      indexes: [{ indexName: 'alpha-1', vectorBucketName: other, creationTime: otherCreated }],
    })
    assert.equal(storageOk(await vectors.from(other).getIndex('alpha-1')).index.distanceMetric, 'cosine')
    const none = `js-vec-none-${suffix()}`
    vectorsFails(await vectors.from(none).listIndexes(), 404, 'S3VectorNotFoundException', `Vector bucket not found: ${none}`)
    vectorsFails(await scope.listIndexes({ maxResults: 0 }), 400, 'InvalidParameter', 'maxResults must be at least 1')
  })

  test('createIndex refuses an existing name, a missing bucket and invalid configurations', async () => {
    const bucket = await newVectorBucket('idxbad')
    const scope = vectors.from(bucket)
    const good = { indexName: 'docs', dataType: 'float32', dimension: 8, distanceMetric: 'cosine' }
    await newIndex(bucket, 'docs', 8, 'cosine')
    const before = await indexRow(bucket, 'docs')
    vectorsFails(
      await scope.createIndex({ ...good, dimension: 16, distanceMetric: 'euclidean' }),
      409,
      'S3VectorConflictException',
      'Vector index already exists: docs',
    )
    assert.deepEqual(await indexRow(bucket, 'docs'), before, 'the index is untouched')
    const none = `js-vec-none-${suffix()}`
    vectorsFails(await vectors.from(none).createIndex(good), 404, 'S3VectorNotFoundException', `Vector bucket not found: ${none}`)

    const rule = 'use 3 to 63 lower-case letters, digits, hyphens and dots, beginning and ending with a letter or digit'
    vectorsFails(await scope.createIndex({ ...good, indexName: 'ab' }), 400, 'InvalidParameter', `Invalid index name "ab": ${rule}`)
    for (const indexName of ['Docs', 'docs_1', '.docs', 'docs.', '-docs', 'x'.repeat(64)]) {
      vectorsFails(await scope.createIndex({ ...good, indexName }), 400, 'InvalidParameter', /^Invalid index name /)
    }
    const bad = 'bad-config'
    for (const dimension of [0, -1, 4097]) {
      vectorsFails(
        await scope.createIndex({ ...good, indexName: bad, dimension }),
        400,
        'InvalidParameter',
        'dimension must be between 1 and 4096',
      )
    }
    vectorsFails(
      await scope.createIndex({ ...good, indexName: bad, distanceMetric: 'dot' }),
      400,
      'InvalidParameter',
      'Unsupported distanceMetric "dot": use "cosine", "euclidean" or "dotproduct"',
    )
    vectorsFails(
      await scope.createIndex({ ...good, indexName: bad, dataType: 'float16' }),
      400,
      'InvalidParameter',
      'Unsupported dataType "float16": only "float32" is supported',
    )
    for (const missing of ['dimension', 'distanceMetric', 'dataType', 'indexName']) {
      const options = { ...good, indexName: bad }
      delete options[missing]
      vectorsFails(await scope.createIndex(options), 400, 'MissingParameter', `Missing required parameter: ${missing}`)
    }
    const eleven = Array.from({ length: 11 }, (_, i) => `key${i}`)
    vectorsFails(
      await scope.createIndex({ ...good, indexName: bad, metadataConfiguration: { nonFilterableMetadataKeys: eleven } }),
      400,
      'InvalidParameter',
      'At most 10 non-filterable metadata keys are allowed',
    )
    vectorsFails(
      await scope.createIndex({ ...good, indexName: bad, metadataConfiguration: { nonFilterableMetadataKeys: [''] } }),
      400,
      'InvalidParameter',
      'Non-filterable metadata keys must have 1 to 63 characters',
    )
    assert.deepEqual(
      (await sqlRows('select name from storage.vector_indexes where bucket_id = $1', [bucket])).map((r) => r.name),
      ['docs'],
    )
    // ten keys are fine
    const ten = await newIndex(bucket, 'ten-keys', 2, 'euclidean', eleven.slice(0, 10))
    assert.ok(ten)
    assert.deepEqual(storageOk(await scope.getIndex('ten-keys')).index.metadataConfiguration, { nonFilterableMetadataKeys: eleven.slice(0, 10) })
  })

  test('deleteIndex removes the index with its vectors; the name can be reused', async () => {
    const bucket = await newVectorBucket('idxdel')
    const scope = vectors.from(bucket)
    const index = await newIndex(bucket, 'short-lived', 2, 'euclidean')
    const keep = await newIndex(bucket, 'kept', 2, 'euclidean')
    const three = ['a', 'b', 'c'].map((key, i) => ({ key, data: { float32: [i, i + 1] } }))
    storageOk(await index.putVectors({ vectors: three }))
    storageOk(await keep.putVectors({ vectors: three }))
    assert.equal((await storedVectors(bucket, 'short-lived')).length, 3)

    assert.deepEqual(storageOk(await scope.deleteIndex('short-lived')), {})
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/DeleteIndex', status: 200 })
    assert.deepEqual(sent(), { vectorBucketName: bucket, indexName: 'short-lived' })
    assert.equal(await indexRow(bucket, 'short-lived'), null)
    assert.deepEqual(await storedVectors(bucket, 'short-lived'), [])
    assert.equal(
      (await sqlRows('select 1 from storage.vectors v left join storage.vector_indexes i on i.id = v.index_id where i.id is null')).length,
      0,
      'no orphaned vectors',
    )
    assert.deepEqual((await storedVectors(bucket, 'kept')).map((v) => v.key), ['a', 'b', 'c'], 'the other index keeps its vectors')
    assert.deepEqual(storageOk(await scope.listIndexes()).indexes.map((i) => i.indexName), ['kept'])
    vectorsFails(await scope.getIndex('short-lived'), 404, 'S3VectorNotFoundException', 'Vector index not found: short-lived')
    vectorsFails(await scope.deleteIndex('short-lived'), 404, 'S3VectorNotFoundException', 'Vector index not found: short-lived')
    vectorsFails(
      await index.putVectors({ vectors: three }),
      404,
      'S3VectorNotFoundException',
      'Vector index not found: short-lived',
    )
    vectorsFails(await index.listVectors(), 404, 'S3VectorNotFoundException', 'Vector index not found: short-lived')

    // a new index of the same name starts empty, with its own configuration
    await newIndex(bucket, 'short-lived', 3, 'cosine')
    assert.deepEqual(storageOk(await index.listVectors()), { vectors: [] })
    assert.equal(storageOk(await scope.getIndex('short-lived')).index.dimension, 3)
  })
})

// ------------------------------------------------------------------------ vectors
describe('putVectors, getVectors and deleteVectors', () => {
  test('putVectors then getVectors: float32 data and metadata round-trip; the defaults return only keys', async () => {
    const bucket = await newVectorBucket('put')
    const index = await newIndex(bucket, 'items', 4, 'euclidean')
    const items = [
      {
        key: 'exact',
        data: { float32: [0.5, -1.25, 3, 1024] },
        metadata: { genre: 'drama', year: 2004, tags: ['a', 'b'], new: false, score: 0.75, empty: [] },
      },
      // not exact in float32: stored and returned rounded to float32
      { key: 'rounded', data: { float32: [0.1, 1 / 3, -2.7, 1e-7] } },
      { key: 'ünïcode key / with spaces ✓', data: { float32: [1, 2, 3, 4] }, metadata: { note: 'naïve — “quoted”', n: -1e-3 } },
    ]
    assert.deepEqual(storageOk(await index.putVectors({ vectors: items })), {})
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/PutVectors', status: 200 })
    assert.deepEqual(sent(), { vectors: items, vectorBucketName: bucket, indexName: 'items' })

    const stored = await storedVectors(bucket, 'items')
    assert.deepEqual(
      stored,
      [...items]
        .sort((a, b) => (Buffer.from(a.key) < Buffer.from(b.key) ? -1 : 1))
        .map((v) => ({ key: v.key, float32: f32(v.data.float32), metadata: v.metadata ?? null })),
    )

    const keys = items.map((v) => v.key)
    // returnData and returnMetadata default to false: keys only, in the order asked
    assert.deepEqual(storageOk(await index.getVectors({ keys })), { vectors: keys.map((key) => ({ key })) })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/GetVectors', status: 200 })
    assert.deepEqual(sent(), { keys, vectorBucketName: bucket, indexName: 'items' })
    assert.deepEqual(storageOk(await index.getVectors({ keys, returnData: true })), {
      vectors: items.map((v) => ({ key: v.key, data: { float32: v.data.float32.map(shortestF32) } })),
    })
    assert.deepEqual(storageOk(await index.getVectors({ keys, returnMetadata: true })), {
      vectors: items.map((v) => ({ key: v.key, metadata: v.metadata ?? {} })),
    })
    const full = storageOk(await index.getVectors({ keys: [...keys].reverse(), returnData: true, returnMetadata: true }))
    assert.deepEqual(full, {
      vectors: [...items].reverse().map((v) => ({ key: v.key, data: { float32: v.data.float32.map(shortestF32) }, metadata: v.metadata ?? {} })),
    })
    // written as float32s in their shortest form: 0.1 is 0.1, 1/3 is 0.33333334
    assert.deepEqual(full.vectors[1].data.float32, [0.1, 0.33333334, -2.7, 1e-7])
    assert.match(bodies.text, /"float32":\[0\.1,0\.33333334,-2\.7,1e-7\]/)

    // unknown keys are left out; a key asked twice comes once
    assert.deepEqual(storageOk(await index.getVectors({ keys: ['rounded', 'missing', 'exact', 'rounded'] })), {
      vectors: [{ key: 'rounded' }, { key: 'exact' }],
    })
    assert.deepEqual(storageOk(await index.getVectors({ keys: ['missing'] })), { vectors: [] })

    vectorsFails(await index.getVectors({ keys: [] }), 400, 'InvalidParameter', 'keys must have 1 to 100 entries')
    const many = Array.from({ length: 101 }, (_, i) => `k${i}`)
    vectorsFails(await index.getVectors({ keys: many }), 400, 'InvalidParameter', 'keys must have 1 to 100 entries')
    assert.deepEqual(storageOk(await index.getVectors({ keys: [...many.slice(0, 99), 'exact'] })), { vectors: [{ key: 'exact' }] })
    vectorsFails(await index.getVectors({ keys: [''] }), 400, 'InvalidParameter', 'Vector keys must have 1 to 1024 characters and at most 2048 bytes')
    vectorsFails(
      await vectors.from(bucket).index('nope').getVectors({ keys }),
      404,
      'S3VectorNotFoundException',
      'Vector index not found: nope',
    )
    const none = `js-vec-none-${suffix()}`
    vectorsFails(await vectors.from(none).index('items').getVectors({ keys }), 404, 'S3VectorNotFoundException', `Vector bucket not found: ${none}`)
  })

  test('putVectors upserts: a second put replaces the data and the whole metadata', async () => {
    const bucket = await newVectorBucket('upsert')
    const index = await newIndex(bucket, 'items', 3, 'euclidean')
    storageOk(
      await index.putVectors({
        vectors: [
          { key: 'a', data: { float32: [1, 0, 0] }, metadata: { genre: 'drama', year: 1999 } },
          { key: 'b', data: { float32: [0, 1, 0] }, metadata: { genre: 'comedy' } },
        ],
      }),
    )
    storageOk(
      await index.putVectors({
        vectors: [
          { key: 'a', data: { float32: [0, 0, 5] }, metadata: { year: 2024 } },
          { key: 'c', data: { float32: [2, 2, 2] }, metadata: { genre: 'horror' } },
        ],
      }),
    )
    const got = storageOk(await index.getVectors({ keys: ['a', 'b', 'c'], returnData: true, returnMetadata: true }))
    assert.deepEqual(got, {
      vectors: [
        { key: 'a', data: { float32: [0, 0, 5] }, metadata: { year: 2024 } },
        { key: 'b', data: { float32: [0, 1, 0] }, metadata: { genre: 'comedy' } },
        { key: 'c', data: { float32: [2, 2, 2] }, metadata: { genre: 'horror' } },
      ],
    })
    assert.deepEqual((await storedVectors(bucket, 'items')).map((v) => v.key), ['a', 'b', 'c'])
    // the query sees the new data and filters on the new metadata
    const near = storageOk(await index.queryVectors({ queryVector: { float32: [0, 0, 4] }, topK: 1, returnDistance: true }))
    assert.deepEqual(near, { vectors: [{ key: 'a', distance: 1 }], distanceMetric: 'euclidean' })
    const drama = storageOk(await index.queryVectors({ queryVector: { float32: [1, 0, 0] }, filter: { genre: 'drama' } }))
    assert.deepEqual(drama, { vectors: [], distanceMetric: 'euclidean' })

    // a put without metadata clears it
    storageOk(await index.putVectors({ vectors: [{ key: 'a', data: { float32: [0, 0, 6] } }] }))
    assert.deepEqual(storageOk(await index.getVectors({ keys: ['a'], returnData: true, returnMetadata: true })), {
      vectors: [{ key: 'a', data: { float32: [0, 0, 6] }, metadata: {} }],
    })
    assert.deepEqual(await storedVectors(bucket, 'items').then((v) => v[0]), { key: 'a', float32: [0, 0, 6], metadata: null })
  })

  test('putVectors refuses an invalid batch as a whole', async () => {
    const bucket = await newVectorBucket('putbad')
    const index = await newIndex(bucket, 'items', 4, 'euclidean')
    const cosine = await newIndex(bucket, 'angles', 2, 'cosine')
    const good = { key: 'good', data: { float32: [1, 2, 3, 4] } }
    const cases = [
      [{ key: 'bad', data: { float32: [1, 2, 3] } }, 'Vector "bad" has 3 components; the index takes 4'],
      [{ key: 'good', data: { float32: [4, 3, 2, 1] } }, 'Vector key "good" appears twice in the request'],
      [{ key: '', data: { float32: [1, 2, 3, 4] } }, 'Vector keys must have 1 to 1024 characters and at most 2048 bytes'],
      [{ key: 'k'.repeat(1025), data: { float32: [1, 2, 3, 4] } }, 'Vector keys must have 1 to 1024 characters and at most 2048 bytes'],
      [{ key: 'bad', data: { float32: [1, 2, 1e39, 4] } }, 'Vector "bad" has a component that is not a finite number'],
      [
        { key: 'bad', data: { float32: [1, 2, 3, 4] }, metadata: { nested: { a: 1 } } },
        'Metadata "nested" of vector "bad" must be a string, number, boolean or an array of them',
      ],
      [
        { key: 'bad', data: { float32: [1, 2, 3, 4] }, metadata: { list: ['a', { b: 1 }] } },
        'Metadata "list" of vector "bad" must be a string, number, boolean or an array of them',
      ],
      [
        { key: 'bad', data: { float32: [1, 2, 3, 4] }, metadata: { gone: null } },
        'Metadata "gone" of vector "bad" must be a string, number, boolean or an array of them',
      ],
      [{ key: 'bad', data: { float32: [1, 2, 3, 4] }, metadata: ['a'] }, 'The metadata of vector "bad" must be an object'],
      [{ key: 'bad', data: { float32: [1, 2, 3, 4] }, metadata: { text: 'x'.repeat(41 * 1024) } }, 'The metadata of vector "bad" is over 40 KiB'],
    ]
    for (const [bad, message] of cases) {
      vectorsFails(await index.putVectors({ vectors: [good, bad] }), 400, 'InvalidParameter', message)
      assert.deepEqual(await storedVectors(bucket, 'items'), [], `nothing of the batch refused for ${message}`)
    }
    // a missing component (NaN is sent as null): not a float
    vectorsFails(await index.putVectors({ vectors: [{ key: 'nan', data: { float32: [1, NaN, 3, 4] } }] }), 400, 'InvalidRequest', /^Invalid JSON body/)
    vectorsFails(await index.putVectors({ vectors: [{ key: 'nodata' }] }), 400, 'MissingParameter', 'Missing required parameter: vectors.data.float32')
    vectorsFails(
      await cosine.putVectors({ vectors: [{ key: 'zero', data: { float32: [0, 0] } }] }),
      400,
      'InvalidParameter',
      'Vector "zero" is all zeros, which has no cosine distance',
    )
    vectorsFails(await vectors.from(bucket).index('nope').putVectors({ vectors: [good] }), 404, 'S3VectorNotFoundException', 'Vector index not found: nope')
    const none = `js-vec-none-${suffix()}`
    vectorsFails(await vectors.from(none).index('items').putVectors({ vectors: [good] }), 404, 'S3VectorNotFoundException', `Vector bucket not found: ${none}`)
    assert.deepEqual(await storedVectors(bucket, 'items'), [])

    // storage-js itself refuses an empty batch and one over 500
    await refusedByClient(() => index.putVectors({ vectors: [] }), 'Vector batch size must be between 1 and 500 items')
    const tooMany = Array.from({ length: 501 }, (_, i) => ({ key: `k${i}`, data: { float32: [i, 1, 1, 1] } }))
    await refusedByClient(() => index.putVectors({ vectors: tooMany }), 'Vector batch size must be between 1 and 500 items')

    // the limits themselves: 500 vectors in one call, a key of 1024 characters, metadata under 40 KiB,
    // a zero vector in a euclidean index
    assert.deepEqual(storageOk(await index.putVectors({ vectors: tooMany.slice(0, 500) })), {})
    const long = { key: 'k'.repeat(1024), data: { float32: [0, 0, 0, 0] }, metadata: { text: 'x'.repeat(39 * 1024) } }
    storageOk(await index.putVectors({ vectors: [long] }))
    assert.deepEqual(storageOk(await index.getVectors({ keys: [long.key], returnData: true, returnMetadata: true })), { vectors: [long] })
    assert.equal((await storedVectors(bucket, 'items')).length, 501)
  })

  test('deleteVectors removes the given keys and ignores unknown ones', async () => {
    const bucket = await newVectorBucket('del')
    const index = await newIndex(bucket, 'items', 2, 'euclidean')
    const items = Array.from({ length: 6 }, (_, i) => ({ key: `k${i}`, data: { float32: [i, 0] }, metadata: { i } }))
    storageOk(await index.putVectors({ vectors: items }))

    assert.deepEqual(storageOk(await index.deleteVectors({ keys: ['k1', 'k3', 'missing'] })), {})
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/DeleteVectors', status: 200 })
    assert.deepEqual(sent(), { keys: ['k1', 'k3', 'missing'], vectorBucketName: bucket, indexName: 'items' })
    const left = ['k0', 'k2', 'k4', 'k5']
    assert.deepEqual((await storedVectors(bucket, 'items')).map((v) => v.key), left)
    assert.deepEqual(storageOk(await index.getVectors({ keys: items.map((v) => v.key) })), { vectors: left.map((key) => ({ key })) })
    assert.deepEqual(storageOk(await index.listVectors()).vectors.map((v) => v.key).sort(), left)
    const all = storageOk(await index.queryVectors({ queryVector: { float32: [0.5, 0] }, topK: 10, returnDistance: true }))
    assert.deepEqual(all.vectors, [
      { key: 'k0', distance: 0.5 },
      { key: 'k2', distance: 1.5 },
      { key: 'k4', distance: 3.5 },
      { key: 'k5', distance: 4.5 },
    ])
    // deleting again changes nothing
    assert.deepEqual(storageOk(await index.deleteVectors({ keys: ['k1', 'k3'] })), {})
    assert.equal((await storedVectors(bucket, 'items')).length, 4)

    vectorsFails(await index.deleteVectors({ keys: [''] }), 400, 'InvalidParameter', 'Vector keys must have 1 to 1024 characters and at most 2048 bytes')
    vectorsFails(await vectors.from(bucket).index('nope').deleteVectors({ keys: ['k0'] }), 404, 'S3VectorNotFoundException', 'Vector index not found: nope')
    await refusedByClient(() => index.deleteVectors({ keys: [] }), 'Keys batch size must be between 1 and 500 items')
    const tooMany = Array.from({ length: 501 }, (_, i) => `k${i}`)
    await refusedByClient(() => index.deleteVectors({ keys: tooMany }), 'Keys batch size must be between 1 and 500 items')
    // 500 keys at once
    assert.deepEqual(storageOk(await index.deleteVectors({ keys: tooMany.slice(0, 500) })), {})
    assert.deepEqual(await storedVectors(bucket, 'items'), [])
  })
})

// ------------------------------------------------------------------------ listVectors
describe('listVectors', () => {
  /** Every page of a listing, following nextToken to the end. */
  async function pages(index, options = {}) {
    const all = []
    let nextToken
    do {
      const page = storageOk(await index.listVectors({ ...options, ...(nextToken ? { nextToken } : {}) }))
      all.push(page.vectors)
      nextToken = page.nextToken
      assert.ok(nextToken === undefined || typeof nextToken === 'string')
      assert.ok(all.length <= 2000, 'paging ends')
    } while (nextToken)
    return all
  }

  /** 1001 vectors with metadata (put as 500 + 500 + 1). */
  const ITEMS = Array.from({ length: 1001 }, (_, i) => ({
    key: `item-${String((i * 7919) % 1001).padStart(4, '0')}`,
    data: { float32: [i, (i % 17) / 4 - 2] },
    metadata: { n: i },
  }))
  const ALL_KEYS = ITEMS.map((v) => v.key).sort()

  let fixture = null
  function itemsIndex() {
    fixture ??= (async () => {
      const bucket = await newVectorBucket('listv')
      const index = await newIndex(bucket, 'items', 2, 'euclidean')
      for (const batch of [ITEMS.slice(0, 500), ITEMS.slice(500, 1000), ITEMS.slice(1000)]) {
        storageOk(await index.putVectors({ vectors: batch }))
      }
      assert.equal((await storedVectors(bucket, 'items')).length, 1001)
      return index
    })()
    return fixture
  }

  test('pages cover every key exactly once: the default page of 500, maxResults, a cap of 1000', async () => {
    const index = await itemsIndex()
    const byDefault = await pages(index)
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/ListVectors', status: 200 })
    assert.deepEqual(
      byDefault.map((p) => p.length),
      [500, 500, 1],
    )
    // returnData and returnMetadata default to false: keys only
    for (const v of byDefault.flat()) assert.deepEqual(Object.keys(v), ['key'])
    assert.deepEqual(byDefault.flat().map((v) => v.key).sort(), ALL_KEYS)

    const small = await pages(index, { maxResults: 64 })
    assert.equal(small.length, Math.ceil(1001 / 64))
    assert.ok(small.slice(0, -1).every((p) => p.length === 64))
    const keys = small.flat().map((v) => v.key)
    assert.equal(new Set(keys).size, keys.length, 'no key twice')
    assert.deepEqual([...keys].sort(), ALL_KEYS)

    const capped = storageOk(await index.listVectors({ maxResults: 5000 }))
    assert.equal(capped.vectors.length, 1000)
    assert.equal(typeof capped.nextToken, 'string')
    const rest = storageOk(await index.listVectors({ maxResults: 5000, nextToken: capped.nextToken }))
    assert.equal(rest.nextToken, undefined)
    assert.deepEqual([...capped.vectors, ...rest.vectors].map((v) => v.key).sort(), ALL_KEYS)

    // with data and metadata: each vector as it was put
    const byKey = Object.fromEntries(ITEMS.map((v) => [v.key, v]))
    const full = await pages(index, { maxResults: 300, returnData: true, returnMetadata: true })
    assert.equal(full.flat().length, 1001)
    for (const v of full.flat()) assert.deepEqual(v, byKey[v.key])
    const onlyMeta = storageOk(await index.listVectors({ maxResults: 3, returnMetadata: true }))
    for (const v of onlyMeta.vectors) assert.deepEqual(v, { key: v.key, metadata: byKey[v.key].metadata })
    const onlyData = storageOk(await index.listVectors({ maxResults: 3, returnData: true }))
    for (const v of onlyData.vectors) assert.deepEqual(v, { key: v.key, data: byKey[v.key].data })
  })

  test('segments split the keys: each pages to its end, together they hold every key once', async () => {
    const index = await itemsIndex()
    for (const segmentCount of [1, 3, 16]) {
      const seen = []
      for (let segmentIndex = 0; segmentIndex < segmentCount; segmentIndex++) {
        const segment = await pages(index, { segmentCount, segmentIndex, maxResults: 100 })
        assert.deepEqual(sent().segmentCount, segmentCount)
        assert.deepEqual(sent().segmentIndex, segmentIndex)
        const keys = segment.flat().map((v) => v.key)
        assert.ok(keys.length > 0, `segment ${segmentIndex} of ${segmentCount} is not empty`)
        if (segmentCount > 1) assert.ok(keys.length < 1001, `segment ${segmentIndex} of ${segmentCount} is a part`)
        seen.push(...keys)
      }
      assert.equal(new Set(seen).size, seen.length, `a key in two of ${segmentCount} segments`)
      assert.deepEqual([...seen].sort(), ALL_KEYS, `the ${segmentCount} segments together`)
    }
    // a segment lists the same keys whatever the page size
    const whole = storageOk(await index.listVectors({ segmentCount: 3, segmentIndex: 1, maxResults: 1000 }))
    assert.equal(whole.nextToken, undefined)
    const paged = (await pages(index, { segmentCount: 3, segmentIndex: 1, maxResults: 7 })).flat()
    assert.deepEqual(paged.map((v) => v.key), whole.vectors.map((v) => v.key))
  })

  test('listVectors errors: maxResults, a segment half given, unknown index', async () => {
    const index = await itemsIndex()
    vectorsFails(await index.listVectors({ maxResults: 0 }), 400, 'InvalidParameter', 'maxResults must be at least 1')
    vectorsFails(await index.listVectors({ segmentIndex: 1 }), 400, 'InvalidParameter', 'segmentCount and segmentIndex go together')
    vectorsFails(await index.listVectors({ segmentCount: 2 }), 400, 'InvalidParameter', 'segmentCount and segmentIndex go together')
    await refusedByClient(() => index.listVectors({ segmentCount: 17, segmentIndex: 0 }), 'segmentCount must be between 1 and 16')
    await refusedByClient(() => index.listVectors({ segmentCount: 3, segmentIndex: 3 }), 'segmentIndex must be between 0 and 2')
    const bucket = await newVectorBucket('listbad')
    vectorsFails(await vectors.from(bucket).index('nope').listVectors(), 404, 'S3VectorNotFoundException', 'Vector index not found: nope')
    // an empty index
    await newIndex(bucket, 'empty', 2, 'cosine')
    assert.deepEqual(storageOk(await vectors.from(bucket).index('empty').listVectors()), { vectors: [] })
  })
})

// ------------------------------------------------------------------------ queryVectors
describe('queryVectors', () => {
  test('euclidean: the exact nearest neighbours in order, with their distances', async () => {
    const { bucket, euclidean } = await docsIndexes()
    for (const q of QUERIES) {
      const res = storageOk(await euclidean.queryVectors({ queryVector: { float32: q }, topK: 5, returnDistance: true }))
      assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/vector/QueryVectors', status: 200 })
      assert.deepEqual(sent(), { queryVector: { float32: q }, topK: 5, returnDistance: true, vectorBucketName: bucket, indexName: 'docs-euclidean' })
      assert.deepEqual(Object.keys(res).sort(), ['distanceMetric', 'vectors'])
      assert.equal(res.distanceMetric, 'euclidean')
      for (const v of res.vectors) assert.deepEqual(Object.keys(v).sort(), ['distance', 'key'])
      assertNeighbours(res.vectors, nearest('euclidean', DOCS, q, 5))
    }
    // a stored vector finds itself at distance 0
    const self = storageOk(await euclidean.queryVectors({ queryVector: DOCS[7].data, topK: 3, returnDistance: true }))
    assert.deepEqual(self.vectors[0], { key: 'doc-07', distance: 0 })
    assertNeighbours(self.vectors, nearest('euclidean', DOCS, DOCS[7].data.float32, 3))
    // the origin (no direction, fine for euclidean): ranked by length
    const origin = storageOk(await euclidean.queryVectors({ queryVector: { float32: [0, 0, 0, 0, 0, 0] }, topK: 30, returnDistance: true }))
    assertNeighbours(origin.vectors, nearest('euclidean', DOCS, [0, 0, 0, 0, 0, 0], 30))
  })

  test('cosine: the exact nearest neighbours in order, the same for a scaled query, 2 for the opposite', async () => {
    const { cosine } = await docsIndexes()
    for (const q of QUERIES) {
      const expected = nearest('cosine', DOCS, q, 6)
      const res = storageOk(await cosine.queryVectors({ queryVector: { float32: q }, topK: 6, returnDistance: true }))
      assert.equal(res.distanceMetric, 'cosine')
      assertNeighbours(res.vectors, expected)
      const scaled = storageOk(await cosine.queryVectors({ queryVector: { float32: q.map((x) => x * 8) }, topK: 6, returnDistance: true }))
      assertNeighbours(scaled.vectors, expected)
    }
    const doc = DOCS[12]
    const opposite = doc.data.float32.map((x) => -x)
    const all = storageOk(await cosine.queryVectors({ queryVector: { float32: opposite }, topK: 30, returnDistance: true }))
    assertNeighbours(all.vectors, nearest('cosine', DOCS, opposite, 30))
    assert.equal(all.vectors[29].key, doc.key)
    assert.ok(Math.abs(all.vectors[29].distance - 2) < 1e-6, `opposite direction: ${all.vectors[29].distance}`)
    const same = storageOk(await cosine.queryVectors({ queryVector: doc.data, topK: 1, returnDistance: true }))
    assert.equal(same.vectors[0].key, doc.key)
    assert.ok(Math.abs(same.vectors[0].distance) < 1e-6)
  })

  test('dotproduct: an index of that metric ranks by the largest inner product; distances are float32s in shortest form', async () => {
    const bucket = await newVectorBucket('dot')
    const index = await newIndex(bucket, 'dots', 6, 'dotproduct')
    assert.equal(storageOk(await vectors.from(bucket).getIndex('dots')).index.distanceMetric, 'dotproduct')
    assert.equal((await sqlRows('select distance_metric from storage.vector_indexes where bucket_id = $1', [bucket]))[0].distance_metric, 'dotproduct')
    storageOk(await index.putVectors({ vectors: DOCS }))
    for (const q of QUERIES) {
      const res = storageOk(await index.queryVectors({ queryVector: { float32: q }, topK: 5, returnDistance: true }))
      assert.equal(res.distanceMetric, 'dotproduct')
      // the distance is the negative inner product (nearest first), as a float32
      const want = DOCS.map((d) => ({ key: d.key, distance: -d.data.float32.reduce((s, x, i) => s + x * q[i], 0) }))
        .sort((a, b) => a.distance - b.distance)
        .slice(0, 5)
      assert.deepEqual(
        res.vectors.map((v) => v.key),
        want.map((w) => w.key),
      )
      res.vectors.forEach((v, i) => assert.equal(v.distance, shortestF32(want[i].distance), v.key))
    }
    // the zero vector has an inner product of 0 with everything (no cosine check applies)
    const zero = storageOk(await index.queryVectors({ queryVector: { float32: [0, 0, 0, 0, 0, 0] }, topK: 1, returnDistance: true }))
    assert.equal(Math.abs(zero.vectors[0].distance), 0)

    // a euclidean distance that is not exact in float32 is written in its shortest form too
    const euclid = await newIndex(bucket, 'tenths', 3, 'euclidean')
    storageOk(await euclid.putVectors({ vectors: [{ key: 'a', data: { float32: [0.1, -0.2, 0.3] } }] }))
    const near = storageOk(await euclid.queryVectors({ queryVector: { float32: [0, 0, 0] }, topK: 1, returnDistance: true }))
    assert.match(bodies.text, /"distance":0\.37416574[,}]/)
    assert.equal(near.vectors[0].distance, shortestF32(Math.hypot(Math.fround(0.1), Math.fround(-0.2), Math.fround(0.3))))
    const back = storageOk(await euclid.getVectors({ keys: ['a'], returnData: true }))
    assert.deepEqual(back.vectors[0].data.float32, [0.1, -0.2, 0.3])
  })

  test('topK defaults to 10; returnDistance and returnMetadata default to false', async () => {
    const { euclidean, bucket } = await docsIndexes()
    const q = QUERIES[1]
    const res = storageOk(await euclidean.queryVectors({ queryVector: { float32: q } }))
    assert.deepEqual(sent(), { queryVector: { float32: q }, vectorBucketName: bucket, indexName: 'docs-euclidean' })
    assert.deepEqual(res, { vectors: nearest('euclidean', DOCS, q, 10).map(({ key }) => ({ key })), distanceMetric: 'euclidean' })

    const withMeta = storageOk(await euclidean.queryVectors({ queryVector: { float32: q }, topK: 4, returnMetadata: true }))
    assert.deepEqual(withMeta.vectors, nearest('euclidean', DOCS, q, 4).map(({ key }) => ({ key, metadata: META[key] })))
    const both = storageOk(await euclidean.queryVectors({ queryVector: { float32: q }, topK: 4, returnMetadata: true, returnDistance: true }))
    for (const v of both.vectors) assert.deepEqual(Object.keys(v).sort(), ['distance', 'key', 'metadata'])
    assertNeighbours(both.vectors, nearest('euclidean', DOCS, q, 4))

    // more than the index holds: all of it; the bounds of topK
    const hundred = storageOk(await euclidean.queryVectors({ queryVector: { float32: q }, topK: 100 }))
    assert.deepEqual(hundred.vectors.map((v) => v.key), nearest('euclidean', DOCS, q, 30).map((v) => v.key))
    const one = storageOk(await euclidean.queryVectors({ queryVector: { float32: q }, topK: 1 }))
    assert.deepEqual(one.vectors, [{ key: nearest('euclidean', DOCS, q, 1)[0].key }])
    for (const topK of [0, -1, 101]) {
      vectorsFails(await euclidean.queryVectors({ queryVector: { float32: q }, topK }), 400, 'InvalidParameter', 'topK must be between 1 and 100')
    }
  })

  test('query errors: the query vector\'s dimension, a zero vector for cosine, a missing vector or index', async () => {
    const { bucket, cosine, euclidean } = await docsIndexes()
    vectorsFails(
      await euclidean.queryVectors({ queryVector: { float32: [1, 2, 3, 4, 5] } }),
      400,
      'InvalidParameter',
      'The query vector has 5 components; the index takes 6',
    )
    vectorsFails(
      await cosine.queryVectors({ queryVector: { float32: [0, 0, 0, 0, 0, 0] } }),
      400,
      'InvalidParameter',
      'The query vector is all zeros, which has no cosine distance',
    )
    vectorsFails(
      await cosine.queryVectors({ queryVector: { float32: [1, 2, 3, 4, 5, 1e39] } }),
      400,
      'InvalidParameter',
      'The query vector has a component that is not a finite number',
    )
    vectorsFails(await cosine.queryVectors({}), 400, 'MissingParameter', 'Missing required parameter: queryVector.float32')
    vectorsFails(
      await vectors.from(bucket).index('nope').queryVectors({ queryVector: { float32: QUERIES[0] } }),
      404,
      'S3VectorNotFoundException',
      'Vector index not found: nope',
    )
    const none = `js-vec-none-${suffix()}`
    vectorsFails(
      await vectors.from(none).index('docs-cosine').queryVectors({ queryVector: { float32: QUERIES[0] } }),
      404,
      'S3VectorNotFoundException',
      `Vector bucket not found: ${none}`,
    )
  })

  // Each filter with the predicate it stands for, computed here on DOCS' metadata.
  const FILTERS = [
    [{ genre: 'drama' }, (m) => m.genre === 'drama'],
    [{ genre: { $eq: 'comedy' } }, (m) => m.genre === 'comedy'],
    [{ genre: { $ne: 'comedy' } }, (m) => m.genre !== 'comedy'],
    [{ year: { $gt: 2010 } }, (m) => m.year > 2010],
    [{ year: { $gte: 2010 } }, (m) => m.year >= 2010],
    [{ year: { $lt: 1995 } }, (m) => m.year < 1995],
    [{ year: { $lte: 1995 } }, (m) => m.year <= 1995],
    [{ year: { $gte: 1996, $lt: 2004 } }, (m) => m.year >= 1996 && m.year < 2004],
    [{ year: 2001 }, (m) => m.year === 2001],
    [{ rating: { $gt: 2.5 } }, (m) => m.rating !== undefined && m.rating > 2.5],
    [{ genre: { $in: ['comedy', 'horror'] } }, (m) => ['comedy', 'horror'].includes(m.genre)],
    [{ genre: { $nin: ['comedy', 'horror'] } }, (m) => !['comedy', 'horror'].includes(m.genre)],
    [{ rating: { $exists: true } }, (m) => 'rating' in m],
    [{ rating: { $exists: false } }, (m) => !('rating' in m)],
    // a missing field matches $ne and $nin
    [{ rating: { $ne: 2.5 } }, (m) => m.rating !== 2.5],
    [{ rating: { $nin: [1.5, 2.5] } }, (m) => ![1.5, 2.5].includes(m.rating)],
    // an array matches when any element does, and $ne / $nin when none does
    [{ tags: 'square' }, (m) => m.tags.includes('square')],
    [{ tags: { $in: ['square', 'nothing'] } }, (m) => m.tags.includes('square')],
    [{ tags: { $nin: ['square'] } }, (m) => !m.tags.includes('square')],
    [{ tags: { $ne: 'even' } }, (m) => !m.tags.includes('even')],
    [{ featured: true }, (m) => m.featured === true],
    [{ featured: { $ne: true } }, (m) => m.featured !== true],
    // several keys: all must match
    [{ genre: 'drama', year: { $lt: 2005 } }, (m) => m.genre === 'drama' && m.year < 2005],
    [{ $and: [{ genre: { $ne: 'horror' } }, { rating: { $gte: 2.5 } }] }, (m) => m.genre !== 'horror' && m.rating >= 2.5],
    [{ $or: [{ genre: 'horror' }, { featured: true }] }, (m) => m.genre === 'horror' || m.featured],
    [
      { $or: [{ $and: [{ genre: 'drama' }, { year: { $gte: 2005 } }] }, { tags: 'square' }] },
      (m) => (m.genre === 'drama' && m.year >= 2005) || m.tags.includes('square'),
    ],
    [{ genre: { $in: ['western'] } }, () => false],
    // a string is never a number
    [{ genre: { $gt: 0 } }, () => false],
  ]

  test('metadata filters select exactly the matching vectors, before topK applies', async () => {
    const { cosine, euclidean } = await docsIndexes()
    for (const [filter, keep] of FILTERS) {
      const matching = DOCS.filter((d) => keep(d.metadata))
      if (matching.length === 0) assert.ok(filter.genre, `fixture: only the designated filters match nothing (${JSON.stringify(filter)})`)
      else assert.ok(matching.length < DOCS.length, `fixture: ${JSON.stringify(filter)} selects a part`)
      for (const [metric, index] of [
        ['euclidean', euclidean],
        ['cosine', cosine],
      ]) {
        const q = QUERIES[2]
        const res = storageOk(await index.queryVectors({ queryVector: { float32: q }, topK: 100, filter, returnDistance: true, returnMetadata: true }))
        assert.deepEqual(sent().filter, filter)
        const expected = nearest(metric, matching, q, 100)
        assertNeighbours(res.vectors, expected)
        // the metadata as stored, the non-filterable `body` included
        for (const v of res.vectors) assert.deepEqual(v.metadata, META[v.key], `metadata of ${v.key} for ${JSON.stringify(filter)}`)
      }
    }
    // the filter applies before topK: the 3 nearest dramas, not the dramas among the 3 nearest
    const q = QUERIES[0]
    const dramas = DOCS.filter((d) => d.metadata.genre === 'drama')
    const expected = nearest('euclidean', dramas, q, 3)
    const nearestThree = nearest('euclidean', DOCS, q, 3).map((v) => v.key)
    assert.notDeepEqual(expected.map((v) => v.key), nearestThree.filter((k) => META[k].genre === 'drama'), 'fixture')
    const res = storageOk(await euclidean.queryVectors({ queryVector: { float32: q }, topK: 3, filter: { genre: 'drama' }, returnDistance: true }))
    assertNeighbours(res.vectors, expected)
    // a null filter is no filter
    const unfiltered = storageOk(await euclidean.queryVectors({ queryVector: { float32: q }, topK: 5, filter: null }))
    assert.deepEqual(unfiltered.vectors.map((v) => v.key), nearest('euclidean', DOCS, q, 5).map((v) => v.key))
  })

  test('invalid filters and filters on non-filterable keys are refused', async () => {
    const { cosine } = await docsIndexes()
    const cases = [
      [{ body: 'the text of document 3' }, 'metadata key "body" is not filterable in this index'],
      [{ $or: [{ genre: 'drama' }, { body: { $exists: true } }] }, 'metadata key "body" is not filterable in this index'],
      [[], 'a filter must be an object'],
      [{}, 'a filter must have at least one clause'],
      [{ genre: { $regex: 'dr' } }, 'unknown operator "$regex"'],
      [{ $not: { genre: 'drama' } }, 'unknown operator "$not" where a metadata key belongs'],
      [{ year: { $gt: '2000' } }, '$gt on "year" takes a number'],
      [{ genre: { $in: [] } }, '$in on "genre" takes a non-empty array'],
      [{ genre: { $nin: 'drama' } }, '$nin on "genre" takes a non-empty array'],
      [{ genre: { $in: [{ a: 1 }] } }, '$in on "genre" takes a string, number or boolean'],
      [{ tags: ['even', 'square'] }, '$eq on "tags" takes a string, number or boolean'],
      [{ genre: {} }, 'empty operator object for "genre"'],
      [{ rating: { $exists: 1 } }, '$exists on "rating" takes true or false'],
      [{ $and: [] }, '$and takes a non-empty array'],
      [{ $and: { genre: 'drama' } }, '$and takes an array of filters'],
      [{ $or: [{ genre: 'drama' }], year: 2000 }, '$and and $or must be the only key of their object'],
    ]
    for (const [filter, reason] of cases) {
      vectorsFails(
        await cosine.queryVectors({ queryVector: { float32: QUERIES[0] }, filter }),
        400,
        'InvalidParameter',
        `Invalid filter: ${reason}`,
      )
    }
    // `body` is stored and returned all the same
    const got = storageOk(await cosine.getVectors({ keys: ['doc-03'], returnMetadata: true }))
    assert.equal(got.vectors[0].metadata.body, 'the text of document 3')
  })
})

// ------------------------------------------------------------------------ access
test('clients without the service role get 403 AccessDenied from every method and change nothing', async () => {
  const bucket = await newVectorBucket('access')
  const index = await newIndex(bucket, 'items', 2, 'euclidean')
  storageOk(await index.putVectors({ vectors: [{ key: 'a', data: { float32: [1, 2] }, metadata: { m: 1 } }] }))
  const snapshot = async () => ({
    buckets: await sqlRows(
      "select id, created_at from storage.buckets_vectors where id = $1 or starts_with(id, 'js-vec-denied-') order by id",
      [bucket],
    ),
    indexes: await sqlRows('select id, name, dimension, distance_metric from storage.vector_indexes where bucket_id = $1 order by name', [bucket]),
    vectors: await storedVectors(bucket, 'items'),
  })
  const before = await snapshot()
  assert.equal(before.buckets.length, 1)
  const anon = client(ANON_KEY).storage.vectors
  const user = userClient(userToken(USER_A)).storage.vectors
  for (const [who, v] of [
    ['anon', anon],
    ['authenticated', user],
  ]) {
    const scope = v.from(bucket)
    const idx = scope.index('items')
    const calls = [
      ['CreateVectorBucket', () => v.createBucket(`js-vec-denied-${suffix()}`)],
      ['GetVectorBucket', () => v.getBucket(bucket)],
      ['ListVectorBuckets', () => v.listBuckets()],
      ['DeleteVectorBucket', () => v.deleteBucket(bucket)],
      ['CreateIndex', () => scope.createIndex({ indexName: 'denied', dataType: 'float32', dimension: 2, distanceMetric: 'cosine' })],
      ['GetIndex', () => scope.getIndex('items')],
      ['ListIndexes', () => scope.listIndexes()],
      ['DeleteIndex', () => scope.deleteIndex('items')],
      ['PutVectors', () => idx.putVectors({ vectors: [{ key: 'b', data: { float32: [3, 4] } }] })],
      ['GetVectors', () => idx.getVectors({ keys: ['a'], returnData: true })],
      ['ListVectors', () => idx.listVectors()],
      ['QueryVectors', () => idx.queryVectors({ queryVector: { float32: [1, 2] } })],
      ['DeleteVectors', () => idx.deleteVectors({ keys: ['a'] })],
    ]
    for (const [operation, call] of calls) {
      vectorsFails(await call(), 403, 'AccessDenied', 'Access denied: Invalid role')
      assert.equal(wire().path, `/storage/v1/vector/${operation}`)
      assert.match(lastRequest().headers.authorization, new RegExp(`role=${who}`))
    }
  }
  assert.deepEqual(await snapshot(), before)
})
