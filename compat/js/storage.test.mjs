// supabase-js (storage-js as pinned in compat/package.json) against forge-server's /storage/v1
// (Supabase Storage API): every bucket method; uploads of a Blob/File (multipart), a string and
// an ArrayBuffer with their options, info(), upsert and update(), download(), exists(), list()
// with its options, move() and copy() (also across buckets), remove(), signed and public URLs,
// bucket size and MIME limits, and a per-user folder policy on storage.objects.
// Every test creates its own buckets (random names, removed at the end), so the tests are
// independent of each other and of the Python suite; what the client got is compared with the
// rows read back in SQL. Run through compat/run.sh, which starts the server and exports FORGE_*.
import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { ANON_KEY, SERVICE_KEY, client, lastRequest, requests, sqlExec, sqlOne, sqlRows, sqlValue, wireTest as test } from './helpers.mjs'
import { UUID_RE } from './auth-helpers.mjs'
import {
  STORAGE_TIME_RE,
  STORAGE_URL,
  attachmentName,
  blobBytes,
  cleanUpAfter,
  dropLater,
  fetchUrl,
  folderPolicies,
  newBucket,
  objectNames,
  objectRow,
  put,
  signedUp,
  storage,
  storageFails,
  storageOk,
  storageTime,
  suffix,
  unverifiedClaims,
  wire,
} from './storage-helpers.mjs'

const anon = client(ANON_KEY)

// Buckets made here are emptied and deleted once every test ran.
cleanUpAfter()

// ------------------------------------------------------------------------ helpers
/** The bucket as storage.buckets holds it, in the shape the API returns. */
function bucketRow(id) {
  return sqlOne(
    `select id, name, coalesce(owner::text, '') as owner, public, type, file_size_limit, allowed_mime_types,
            ${storageTime('created_at')} as created_at, ${storageTime('updated_at')} as updated_at
       from storage.buckets where id = $1`,
    [id],
  )
}

/** Every byte value, so a download that mangled binary data shows. */
const BINARY = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 3) % 256)

// ------------------------------------------------------------------------ buckets
describe('buckets', () => {
  test('createBucket with a "1MB" size limit and MIME types; getBucket returns the stored bucket', async () => {
    const id = `js-bucket-${suffix()}`
    const data = storageOk(
      await storage.createBucket(id, { public: false, fileSizeLimit: '1MB', allowedMimeTypes: ['image/*', 'text/plain'] }),
    )
    dropLater(id)
    assert.deepEqual(data, { name: id })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/bucket', status: 200 })

    const bucket = storageOk(await storage.getBucket(id))
    assert.deepEqual(wire(), { method: 'GET', path: `/storage/v1/bucket/${id}`, status: 200 })
    const row = await bucketRow(id)
    assert.deepEqual(bucket, row)
    assert.equal(bucket.id, id)
    assert.equal(bucket.name, id)
    assert.equal(bucket.owner, '', 'created with the service role: no owner')
    assert.equal(bucket.public, false)
    assert.equal(bucket.type, 'STANDARD')
    assert.equal(bucket.file_size_limit, 1_000_000, "'1MB' is decimal: 1 000 000 bytes")
    assert.deepEqual(bucket.allowed_mime_types, ['image/*', 'text/plain'])
    assert.match(bucket.created_at, STORAGE_TIME_RE)
    assert.match(bucket.updated_at, STORAGE_TIME_RE)

    // a public bucket with a numeric limit and no MIME list
    const pub = await newBucket('bucketpub', { public: true, fileSizeLimit: 2048 })
    const p = storageOk(await storage.getBucket(pub))
    assert.deepEqual([p.public, p.file_size_limit, p.allowed_mime_types], [true, 2048, null])
    assert.deepEqual(p, await bucketRow(pub))
  })

  test('createBucket of an existing id is 409 Duplicate; getBucket of a missing bucket is 404', async () => {
    const id = await newBucket('dup')
    const res = await storage.createBucket(id, { public: true })
    storageFails(res, '409', 400, 'The resource already exists')
    assert.equal(res.data, null)
    assert.equal((await bucketRow(id)).public, false, 'the existing bucket is unchanged')

    const missing = await storage.getBucket(`js-missing-${suffix()}`)
    storageFails(missing, '404', 400, 'Bucket not found')
    assert.equal(missing.data, null)

    // an invalid size limit is refused before anything is stored
    const bad = `js-badlimit-${suffix()}`
    storageFails(await storage.createBucket(bad, { fileSizeLimit: 'lots' }), '400')
    assert.equal(await sqlValue('select count(*)::int from storage.buckets where id = $1', [bad]), 0)
  })

  test('size limits given as strings use Storage\'s decimal units (b, kb, mb, gb, any case, decimals)', async () => {
    const id = `js-units-${suffix()}`
    storageOk(await storage.createBucket(id, { public: false, fileSizeLimit: '20mb' }))
    dropLater(id)
    assert.equal(storageOk(await storage.getBucket(id)).file_size_limit, 20_000_000, '20mb is 20 000 000 bytes')
    assert.equal((await bucketRow(id)).file_size_limit, 20_000_000)
    for (const [given, bytes] of [
      ['1GB', 1_000_000_000],
      ['2.5Mb', 2_500_000],
      ['1.5kb', 1_500],
      ['1.2345MB', 1_230_000],
      ['3B', 3],
    ]) {
      storageOk(await storage.updateBucket(id, { public: false, fileSizeLimit: given }))
      assert.equal(storageOk(await storage.getBucket(id)).file_size_limit, bytes, given)
    }
    // the limit is held in those bytes
    storageOk(await storage.updateBucket(id, { public: false, fileSizeLimit: '1.5kb' }))
    await put(id, 'fits.bin', new Uint8Array(1500), { contentType: 'application/octet-stream' })
    storageFails(await storage.from(id).upload('over.bin', new Uint8Array(1501), { contentType: 'application/octet-stream' }), '413')
    // spaces, a bare number or another unit: InvalidFileSizeLimit, nothing stored or changed
    const hint = 'Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B'
    for (const bad of ['20 MB', '20', '1TB', 'mb', '-1mb']) {
      const other = `js-units-bad-${suffix()}`
      const e = storageFails(await storage.createBucket(other, { fileSizeLimit: bad }), '400', 400, hint)
      assert.equal(e.statusCode, '400', bad)
      assert.equal(await sqlValue('select count(*)::int from storage.buckets where id = $1', [other]), 0)
      storageFails(await storage.updateBucket(id, { public: false, fileSizeLimit: bad }), '400', 400, hint)
    }
    assert.equal((await bucketRow(id)).file_size_limit, 1_500)
  })

  test('listBuckets with search, sortColumn, sortOrder, limit and offset', async () => {
    const tag = `lb${suffix()}`
    const ids = []
    for (const letter of ['b', 'a', 'c']) {
      const id = `js-${tag}-${letter}`
      storageOk(await storage.createBucket(id, { public: letter === 'c' }))
      dropLater(id)
      ids.push(id)
    }
    const sorted = [...ids].sort()

    const all = storageOk(await storage.listBuckets())
    assert.deepEqual(wire(), { method: 'GET', path: '/storage/v1/bucket', status: 200 })
    for (const id of ids) assert.ok(all.some((b) => b.id === id), `listBuckets() lists ${id}`)

    const found = storageOk(await storage.listBuckets({ search: tag }))
    assert.match(lastRequest().url, new RegExp(`\\?search=${tag}$`))
    assert.deepEqual(
      found.map((b) => b.name),
      sorted,
      'search matches the name; default order is by name',
    )
    for (const b of found) assert.deepEqual(b, await bucketRow(b.id))

    const page = storageOk(await storage.listBuckets({ search: tag, sortColumn: 'name', sortOrder: 'desc', limit: 2, offset: 1 }))
    const q = new URL(lastRequest().url).searchParams
    assert.deepEqual(Object.fromEntries(q), { limit: '2', offset: '1', search: tag, sortColumn: 'name', sortOrder: 'desc' })
    assert.deepEqual(
      page.map((b) => b.name),
      [sorted[1], sorted[0]],
    )

    const byCreation = storageOk(await storage.listBuckets({ search: tag, sortColumn: 'created_at', sortOrder: 'asc' }))
    assert.deepEqual(
      byCreation.map((b) => b.name),
      ids,
      'created_at order is the creation order (b, a, c)',
    )

    // without storage.buckets policies the anon role sees none of them
    const seenByAnon = storageOk(await anon.storage.listBuckets({ search: tag }))
    assert.deepEqual(seenByAnon, [])
  })

  test('updateBucket changes only the fields it is given', async () => {
    const id = await newBucket('update', { public: false, fileSizeLimit: 1000, allowedMimeTypes: ['text/plain'] })
    const before = await bucketRow(id)

    const data = storageOk(await storage.updateBucket(id, { public: true }))
    assert.deepEqual(data, { message: 'Successfully updated' })
    assert.deepEqual(wire(), { method: 'PUT', path: `/storage/v1/bucket/${id}`, status: 200 })
    let b = storageOk(await storage.getBucket(id))
    assert.deepEqual([b.public, b.file_size_limit, b.allowed_mime_types], [true, 1000, ['text/plain']])
    assert.ok(b.updated_at >= before.updated_at, 'updated_at moves forward')

    storageOk(await storage.updateBucket(id, { public: false, fileSizeLimit: '2KB', allowedMimeTypes: ['image/png', 'image/jpeg'] }))
    b = storageOk(await storage.getBucket(id))
    assert.deepEqual([b.public, b.file_size_limit, b.allowed_mime_types], [false, 2000, ['image/png', 'image/jpeg']])

    // null clears a limit
    storageOk(await storage.updateBucket(id, { public: false, fileSizeLimit: null, allowedMimeTypes: null }))
    b = storageOk(await storage.getBucket(id))
    assert.deepEqual([b.file_size_limit, b.allowed_mime_types], [null, null])
    assert.deepEqual(b, await bucketRow(id))

    storageFails(await storage.updateBucket(`js-missing-${suffix()}`, { public: true }), '404')
  })

  test('deleteBucket refuses a bucket with objects until emptyBucket removed them', async () => {
    const id = `js-delete-${suffix()}`
    storageOk(await storage.createBucket(id))
    await put(id, 'one.txt', 'one', { contentType: 'text/plain' })
    await put(id, 'dir/two.txt', 'two', { contentType: 'text/plain' })

    storageFails(await storage.deleteBucket(id), '409', 400, 'The bucket you tried to delete is not empty')
    assert.deepEqual(await objectNames(id), ['dir/two.txt', 'one.txt'])

    const emptied = storageOk(await storage.emptyBucket(id))
    assert.deepEqual(emptied, { message: 'Successfully emptied' })
    assert.deepEqual(wire(), { method: 'POST', path: `/storage/v1/bucket/${id}/empty`, status: 200 })
    assert.deepEqual(await objectNames(id), [])
    assert.equal(storageOk(await storage.getBucket(id)).id, id, 'emptying keeps the bucket')

    const deleted = storageOk(await storage.deleteBucket(id))
    assert.deepEqual(deleted, { message: 'Successfully deleted' })
    assert.deepEqual(wire(), { method: 'DELETE', path: `/storage/v1/bucket/${id}`, status: 200 })
    assert.equal(await sqlValue('select count(*)::int from storage.buckets where id = $1', [id]), 0)
    storageFails(await storage.getBucket(id), '404')
    storageFails(await storage.deleteBucket(id), '404')
    storageFails(await storage.emptyBucket(id), '404')
  })
})

// ------------------------------------------------------------------------ upload, info, download
describe('upload, info and download', () => {
  test('upload of a Blob is multipart with cacheControl and metadata; info() returns them', async () => {
    const bucket = await newBucket('blob')
    const blob = new Blob([BINARY], { type: 'image/png' })
    const data = await put(bucket, 'pics/cat.png', blob, { cacheControl: '120', metadata: { owner: 'ada', rev: 2 } })
    const sent = lastRequest()
    assert.deepEqual(wire(), { method: 'POST', path: `/storage/v1/object/${bucket}/pics/cat.png`, status: 200 })
    // a FormData body: fetch itself writes the multipart content-type with its boundary
    assert.equal(sent.headers['content-type'], undefined)
    assert.equal(sent.headers['x-upsert'], 'false')

    const row = await objectRow(bucket, 'pics/cat.png')
    assert.deepEqual(data, { path: 'pics/cat.png', id: row.id, fullPath: `${bucket}/pics/cat.png` })
    assert.match(data.id, UUID_RE)
    assert.equal(row.metadata.size, BINARY.length)
    assert.equal(row.metadata.mimetype, 'image/png')
    assert.equal(row.metadata.cacheControl, 'max-age=120')
    assert.deepEqual(row.user_metadata, { owner: 'ada', rev: 2 })
    assert.equal(row.owner, null, 'uploaded with the service role: no owner')

    const info = storageOk(await storage.from(bucket).info('pics/cat.png'))
    assert.deepEqual(wire(), { method: 'GET', path: `/storage/v1/object/info/${bucket}/pics/cat.png`, status: 200 })
    assert.deepEqual(info, {
      id: row.id,
      name: 'pics/cat.png',
      version: row.version,
      bucketId: bucket,
      size: BINARY.length,
      contentType: 'image/png',
      cacheControl: 'max-age=120',
      etag: row.metadata.eTag,
      metadata: { owner: 'ada', rev: 2 },
      lastModified: row.updated_at,
      createdAt: row.created_at,
    })

    // a File is a Blob too: its own type is what is stored
    const file = new File(['<svg xmlns="http://www.w3.org/2000/svg"/>'], 'logo.svg', { type: 'image/svg+xml' })
    await put(bucket, 'logo.svg', file, { contentType: 'text/plain' })
    const svg = storageOk(await storage.from(bucket).info('logo.svg'))
    assert.equal(svg.contentType, 'image/svg+xml')
    assert.equal(svg.size, 41)
    assert.equal(svg.cacheControl, 'max-age=3600', 'storage-js default cacheControl')
    // no user metadata: Supabase Storage answers null (user_metadata), an empty object is as good
    assert.ok(svg.metadata === null || Object.keys(svg.metadata).length === 0, `metadata ${JSON.stringify(svg.metadata)}`)

    const down = storageOk(await storage.from(bucket).download('pics/cat.png'))
    assert.deepEqual(await blobBytes(down), Buffer.from(BINARY))
    assert.equal(down.type, 'image/png')
  })

  test('upload of a string with contentType, cacheControl and metadata sends them as headers', async () => {
    const bucket = await newBucket('string')
    const csv = 'id,name\n1,ada\n2,grace\n'
    const data = await put(bucket, 'data/people.csv', csv, {
      contentType: 'text/csv',
      cacheControl: '60',
      metadata: { source: 'hr', rows: 2 },
    })
    const sent = lastRequest()
    assert.equal(sent.headers['content-type'], 'text/csv')
    assert.equal(sent.headers['cache-control'], 'max-age=60')
    assert.deepEqual(JSON.parse(Buffer.from(sent.headers['x-metadata'], 'base64').toString('utf8')), { source: 'hr', rows: 2 })
    assert.deepEqual(data.path, 'data/people.csv')
    assert.equal(data.fullPath, `${bucket}/data/people.csv`)

    const info = storageOk(await storage.from(bucket).info('data/people.csv'))
    assert.equal(info.id, data.id)
    assert.equal(info.size, Buffer.byteLength(csv))
    assert.equal(info.contentType, 'text/csv')
    assert.equal(info.cacheControl, 'max-age=60')
    assert.deepEqual(info.metadata, { source: 'hr', rows: 2 })

    const down = storageOk(await storage.from(bucket).download('data/people.csv'))
    assert.equal(await down.text(), csv)
    assert.equal(down.type, 'text/csv')
    const res = lastRequest()
    assert.equal(res.responseHeaders['cache-control'], 'max-age=60')
    assert.equal(res.responseHeaders.etag, info.etag)
    assert.equal(res.responseHeaders['content-length'], String(Buffer.byteLength(csv)))

    // without options: storage-js's defaults (text/plain;charset=UTF-8, max-age=3600)
    await put(bucket, 'plain.txt', 'héllo')
    const plain = storageOk(await storage.from(bucket).info('plain.txt'))
    assert.deepEqual([plain.contentType, plain.cacheControl, plain.size], ['text/plain;charset=UTF-8', 'max-age=3600', 6])
  })

  test('upload of an ArrayBuffer and of a Uint8Array with contentType keeps every byte', async () => {
    const bucket = await newBucket('binary')
    const buffer = BINARY.buffer.slice(0)
    await put(bucket, 'raw.bin', buffer, { contentType: 'application/octet-stream', metadata: { kind: 'raw' } })
    assert.equal(lastRequest().headers['content-type'], 'application/octet-stream')
    await put(bucket, 'typed.bin', BINARY.subarray(10, 110), { contentType: 'application/x-custom', cacheControl: '5' })

    const raw = storageOk(await storage.from(bucket).info('raw.bin'))
    assert.deepEqual([raw.size, raw.contentType, raw.metadata], [BINARY.length, 'application/octet-stream', { kind: 'raw' }])
    const typed = storageOk(await storage.from(bucket).info('typed.bin'))
    assert.deepEqual([typed.size, typed.contentType, typed.cacheControl], [100, 'application/x-custom', 'max-age=5'])

    assert.deepEqual(await blobBytes(storageOk(await storage.from(bucket).download('raw.bin'))), Buffer.from(BINARY))
    assert.deepEqual(
      await blobBytes(storageOk(await storage.from(bucket).download('typed.bin'))),
      Buffer.from(BINARY.subarray(10, 110)),
    )
  })

  test('upload to an existing path is 409 Duplicate; upsert: true replaces the object', async () => {
    const bucket = await newBucket('upsert')
    const first = await put(bucket, 'note.txt', 'first', { contentType: 'text/plain' })
    const before = await objectRow(bucket, 'note.txt')

    const res = await storage.from(bucket).upload('note.txt', 'second', { contentType: 'text/plain' })
    storageFails(res, '409', 400, 'The resource already exists')
    assert.equal(res.data, null)
    assert.deepEqual(await objectRow(bucket, 'note.txt'), before, 'the refused upload changed nothing')
    assert.equal(await (storageOk(await storage.from(bucket).download('note.txt'))).text(), 'first')

    const data = await put(bucket, 'note.txt', 'second, longer', { contentType: 'text/markdown', upsert: true })
    const sent = requests().find((r) => r.method === 'POST' && r.headers['x-upsert'] === 'true')
    assert.ok(sent, 'upsert: true sends x-upsert: true')
    assert.deepEqual([data.path, data.fullPath], ['note.txt', `${bucket}/note.txt`])
    assert.equal(data.id, first.id, 'the row is updated in place')
    const after_ = await objectRow(bucket, 'note.txt')
    assert.notEqual(after_.version, before.version, 'new bytes, new version')
    assert.deepEqual(await objectNames(bucket), ['note.txt'])
    const down = storageOk(await storage.from(bucket).download('note.txt'))
    assert.equal(await down.text(), 'second, longer')
    assert.equal(down.type, 'text/markdown')

    // upsert of a path that does not exist yet simply creates it
    await put(bucket, 'fresh.txt', 'new', { upsert: true })
    assert.deepEqual(await objectNames(bucket), ['fresh.txt', 'note.txt'])
  })

  test('update() replaces an existing object (PUT) and is 404 for a missing one', async () => {
    const bucket = await newBucket('update')
    const first = await put(bucket, 'doc/page.html', '<p>v1</p>', { contentType: 'text/html', cacheControl: '10' })
    const before = await objectRow(bucket, 'doc/page.html')

    const data = storageOk(
      await storage.from(bucket).update('doc/page.html', new Blob(['{"v":2}'], { type: 'application/json' }), { cacheControl: '20' }),
    )
    assert.deepEqual(wire(), { method: 'PUT', path: `/storage/v1/object/${bucket}/doc/page.html`, status: 200 })
    assert.equal(lastRequest().headers['x-upsert'], undefined, 'update() sends no x-upsert')
    assert.deepEqual(data, { path: 'doc/page.html', id: first.id, fullPath: `${bucket}/doc/page.html` })
    const info = storageOk(await storage.from(bucket).info('doc/page.html'))
    assert.deepEqual([info.size, info.contentType, info.cacheControl], [7, 'application/json', 'max-age=20'])
    assert.notEqual(info.version, before.version)
    assert.equal(await (storageOk(await storage.from(bucket).download('doc/page.html'))).text(), '{"v":2}')

    storageOk(await storage.from(bucket).update('doc/page.html', 'v3 text', { contentType: 'text/plain' }))
    assert.equal(await (storageOk(await storage.from(bucket).download('doc/page.html'))).text(), 'v3 text')

    const missing = await storage.from(bucket).update('doc/missing.html', 'x', { contentType: 'text/html' })
    storageFails(missing, '404', 400, 'Object not found')
    assert.deepEqual(await objectNames(bucket), ['doc/page.html'], 'update() never creates an object')
  })

  test('download returns the bytes with their type; a missing object or bucket is 404', async () => {
    const bucket = await newBucket('download')
    await put(bucket, 'a/b/c.json', '{"deep":true}', { contentType: 'application/json' })
    const blob = storageOk(await storage.from(bucket).download('a/b/c.json'))
    assert.deepEqual(wire(), { method: 'GET', path: `/storage/v1/object/${bucket}/a/b/c.json`, status: 200 })
    assert.equal(blob.type, 'application/json')
    assert.deepEqual(JSON.parse(await blob.text()), { deep: true })

    // as a stream
    const stream = storageOk(await storage.from(bucket).download('a/b/c.json').asStream())
    const chunks = []
    for await (const chunk of stream) chunks.push(Buffer.from(chunk))
    assert.equal(Buffer.concat(chunks).toString('utf8'), '{"deep":true}')

    const missing = await storage.from(bucket).download('a/b/nope.json')
    storageFails(missing, '404', 400, 'Object not found')
    assert.equal(missing.data, null)
    storageFails(await storage.from(`js-nobucket-${suffix()}`).download('a.txt'), '404')
    storageFails(await storage.from(bucket).info('a/b/nope.json'), '404', 400, 'Object not found')
  })

  test('exists() is true for an object and false for a missing one', async () => {
    const bucket = await newBucket('exists')
    await put(bucket, 'here.txt', 'x', { contentType: 'text/plain' })

    const yes = await storage.from(bucket).exists('here.txt')
    assert.deepEqual(yes, { data: true, error: null })
    assert.deepEqual(wire(), { method: 'HEAD', path: `/storage/v1/object/${bucket}/here.txt`, status: 200 })

    const no = await storage.from(bucket).exists('gone.txt')
    assert.equal(no.data, false)
    assert.equal(no.error?.name, 'StorageApiError')
    assert.equal(no.error.status, 400)
    assert.deepEqual(wire(), { method: 'HEAD', path: `/storage/v1/object/${bucket}/gone.txt`, status: 400 })

    // a folder is not an object
    await put(bucket, 'dir/inner.txt', 'y', { contentType: 'text/plain' })
    assert.equal((await storage.from(bucket).exists('dir')).data, false)
    assert.equal((await storage.from(bucket).exists('dir/inner.txt')).data, true)
  })
})

// ------------------------------------------------------------------------ list
describe('list', () => {
  /** A bucket with a.txt, b.txt, c.json, docs/{x.txt,y.txt,deep/z.txt} and logs/{3,1,2}.txt. */
  async function listBucket() {
    const bucket = await newBucket('list')
    for (const [name, body] of [
      ['a.txt', 'a'],
      ['b.txt', 'bb'],
      ['c.json', '{}'],
      ['docs/x.txt', 'xxx'],
      ['docs/y.txt', 'yyyy'],
      ['docs/deep/z.txt', 'z'],
      ['logs/3.txt', 'three'],
      ['logs/1.txt', 'one'],
      ['logs/2.txt', 'two'],
    ]) {
      await put(bucket, name, body, { contentType: name.endsWith('.json') ? 'application/json' : 'text/plain' })
    }
    return bucket
  }

  const names = (entries) => entries.map((e) => e.name)

  test('list() at the root and in a folder: files with their metadata, folders with id null', async () => {
    const bucket = await listBucket()
    const root = storageOk(await storage.from(bucket).list())
    assert.deepEqual(wire(), { method: 'POST', path: `/storage/v1/object/list/${bucket}`, status: 200 })
    assert.deepEqual(names(root), ['a.txt', 'b.txt', 'c.json', 'docs', 'logs'])

    const a = root[0]
    const row = await objectRow(bucket, 'a.txt')
    assert.deepEqual(a, {
      name: 'a.txt',
      id: row.id,
      updated_at: row.updated_at,
      created_at: row.created_at,
      last_accessed_at: row.last_accessed_at,
      metadata: row.metadata,
    })
    assert.match(a.last_accessed_at, STORAGE_TIME_RE)
    assert.equal(a.metadata.size, 1)
    assert.equal(a.metadata.mimetype, 'text/plain')
    assert.equal(root[2].metadata.mimetype, 'application/json')
    for (const folder of root.slice(3)) {
      assert.deepEqual(folder, {
        name: folder.name,
        id: null,
        updated_at: null,
        created_at: null,
        last_accessed_at: null,
        metadata: null,
      })
    }

    const docs = storageOk(await storage.from(bucket).list('docs'))
    assert.deepEqual(names(docs), ['deep', 'x.txt', 'y.txt'])
    assert.equal(docs[0].id, null)
    assert.equal(docs[1].id, (await objectRow(bucket, 'docs/x.txt')).id)
    assert.equal(docs[2].metadata.size, 4)
    // a trailing slash names the same folder
    assert.deepEqual(names(storageOk(await storage.from(bucket).list('docs/'))), ['deep', 'x.txt', 'y.txt'])
    assert.deepEqual(names(storageOk(await storage.from(bucket).list('docs/deep'))), ['z.txt'])
    assert.deepEqual(storageOk(await storage.from(bucket).list('nothing-here')), [])
  })

  test('list() with limit, offset, sortBy and search', async () => {
    const bucket = await listBucket()
    const from = storage.from(bucket)

    const page = storageOk(await from.list('', { limit: 2, offset: 1 }))
    assert.deepEqual(names(page), ['b.txt', 'c.json'])
    assert.deepEqual(names(storageOk(await from.list('', { limit: 2, offset: 4 }))), ['logs'])
    assert.deepEqual(storageOk(await from.list('', { limit: 2, offset: 5 })), [])

    const desc = storageOk(await from.list('', { sortBy: { column: 'name', order: 'desc' } }))
    assert.deepEqual(names(desc), ['logs', 'docs', 'c.json', 'b.txt', 'a.txt'])

    // the logs were uploaded 3, 1, 2: created_at and updated_at follow that, not the names
    const oldestFirst = storageOk(await from.list('logs', { sortBy: { column: 'created_at', order: 'asc' } }))
    assert.deepEqual(names(oldestFirst), ['3.txt', '1.txt', '2.txt'])
    const newestFirst = storageOk(await from.list('logs', { sortBy: { column: 'updated_at', order: 'desc' } }))
    assert.deepEqual(names(newestFirst), ['2.txt', '1.txt', '3.txt'])
    const expected = await sqlRows(
      `select name from storage.objects where bucket_id = $1 and name like 'logs/%' order by created_at desc`,
      [bucket],
    )
    assert.deepEqual(
      names(storageOk(await from.list('logs', { sortBy: { column: 'created_at', order: 'desc' } }))),
      expected.map((r) => r.name.slice('logs/'.length)),
    )

    assert.deepEqual(names(storageOk(await from.list('', { search: 'b' }))), ['b.txt'])
    assert.deepEqual(names(storageOk(await from.list('', { search: 'do' }))), ['docs'], 'search matches folders too')
    assert.deepEqual(names(storageOk(await from.list('docs', { search: 'y' }))), ['y.txt'])
    assert.deepEqual(names(storageOk(await from.list('', { search: 'zzz' }))), [])
    assert.deepEqual(
      names(storageOk(await from.list('logs', { search: '', limit: 1, offset: 1, sortBy: { column: 'name', order: 'desc' } }))),
      ['2.txt'],
    )
  })
})

// ------------------------------------------------------------------------ move, copy, remove
describe('move, copy and remove', () => {
  test('move() renames within a bucket and across buckets (destinationBucket)', async () => {
    const bucket = await newBucket('move')
    const other = await newBucket('moveto')
    await put(bucket, 'a.txt', 'alpha', { contentType: 'text/plain', metadata: { tag: 'a' } })
    await put(bucket, 'b.txt', 'bravo', { contentType: 'text/plain' })
    const before = await objectRow(bucket, 'a.txt')

    const data = storageOk(await storage.from(bucket).move('a.txt', 'archive/2026/a.txt'))
    assert.deepEqual(data, { message: 'Successfully moved' })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/object/move', status: 200 })
    assert.deepEqual(await objectNames(bucket), ['archive/2026/a.txt', 'b.txt'])
    const moved = await objectRow(bucket, 'archive/2026/a.txt')
    assert.equal(moved.id, before.id, 'a move keeps the object')
    assert.deepEqual(moved.user_metadata, { tag: 'a' })
    assert.equal((await storage.from(bucket).exists('a.txt')).data, false)
    assert.equal(await (storageOk(await storage.from(bucket).download('archive/2026/a.txt'))).text(), 'alpha')

    storageFails(await storage.from(bucket).move('b.txt', 'archive/2026/a.txt'), '409', 400, 'The resource already exists')
    storageFails(await storage.from(bucket).move('missing.txt', 'x.txt'), '404', 400, 'Object not found')
    assert.deepEqual(await objectNames(bucket), ['archive/2026/a.txt', 'b.txt'])

    storageOk(await storage.from(bucket).move('b.txt', 'in/b.txt', { destinationBucket: other }))
    assert.deepEqual(await objectNames(bucket), ['archive/2026/a.txt'])
    assert.deepEqual(await objectNames(other), ['in/b.txt'])
    assert.equal(await (storageOk(await storage.from(other).download('in/b.txt'))).text(), 'bravo')
    storageFails(
      await storage.from(bucket).move('archive/2026/a.txt', 'a.txt', { destinationBucket: `js-nobucket-${suffix()}` }),
      '404',
    )
  })

  test('copy() duplicates within a bucket and across buckets (destinationBucket)', async () => {
    const bucket = await newBucket('copy')
    const other = await newBucket('copyto')
    await put(bucket, 'src/orig.txt', 'original', { contentType: 'text/plain', cacheControl: '30', metadata: { v: 1 } })
    const source = await objectRow(bucket, 'src/orig.txt')

    const data = storageOk(await storage.from(bucket).copy('src/orig.txt', 'dst/copy.txt'))
    assert.deepEqual(data, { path: `${bucket}/dst/copy.txt` })
    assert.deepEqual(wire(), { method: 'POST', path: '/storage/v1/object/copy', status: 200 })
    assert.deepEqual(await objectNames(bucket), ['dst/copy.txt', 'src/orig.txt'])
    const copy = await objectRow(bucket, 'dst/copy.txt')
    assert.notEqual(copy.id, source.id)
    assert.notEqual(copy.version, source.version)
    const info = storageOk(await storage.from(bucket).info('dst/copy.txt'))
    assert.deepEqual([info.size, info.contentType, info.cacheControl, info.metadata], [8, 'text/plain', 'max-age=30', { v: 1 }])

    // the copy has its own bytes
    storageOk(await storage.from(bucket).update('src/orig.txt', 'changed', { contentType: 'text/plain' }))
    assert.equal(await (storageOk(await storage.from(bucket).download('dst/copy.txt'))).text(), 'original')
    assert.equal(await (storageOk(await storage.from(bucket).download('src/orig.txt'))).text(), 'changed')

    storageFails(await storage.from(bucket).copy('src/orig.txt', 'dst/copy.txt'), '409', 400, 'The resource already exists')
    storageFails(await storage.from(bucket).copy('src/missing.txt', 'dst/m.txt'), '404', 400, 'Object not found')

    const across = storageOk(await storage.from(bucket).copy('dst/copy.txt', 'elsewhere.txt', { destinationBucket: other }))
    assert.deepEqual(across, { path: `${other}/elsewhere.txt` })
    assert.equal(await (storageOk(await storage.from(other).download('elsewhere.txt'))).text(), 'original')
    assert.deepEqual(await objectNames(bucket), ['dst/copy.txt', 'src/orig.txt'], 'the source stays')
  })

  test('remove() deletes several objects at once and returns those it deleted', async () => {
    const bucket = await newBucket('remove')
    for (const name of ['keep.txt', 'one.txt', 'dir/two.txt', 'dir/three.txt']) {
      await put(bucket, name, name, { contentType: 'text/plain' })
    }
    const rows = await sqlRows('select id, name from storage.objects where bucket_id = $1', [bucket])

    const data = storageOk(await storage.from(bucket).remove(['one.txt', 'dir/two.txt', 'dir/three.txt', 'missing.txt']))
    assert.deepEqual(wire(), { method: 'DELETE', path: `/storage/v1/object/${bucket}`, status: 200 })
    assert.deepEqual(data.map((o) => o.name).sort(), ['dir/three.txt', 'dir/two.txt', 'one.txt'])
    for (const o of data) {
      assert.equal(o.bucket_id, bucket)
      assert.equal(o.id, rows.find((r) => r.name === o.name).id)
      assert.equal(o.metadata.size, o.name.length)
    }
    assert.deepEqual(await objectNames(bucket), ['keep.txt'])
    assert.equal((await storage.from(bucket).exists('one.txt')).data, false)
    storageFails(await storage.from(bucket).download('dir/two.txt'), '404')

    assert.deepEqual(storageOk(await storage.from(bucket).remove(['missing.txt'])), [], 'nothing to delete')
    assert.deepEqual(await objectNames(bucket), ['keep.txt'])
  })
})

// ------------------------------------------------------------------------ signed and public URLs
describe('signed and public URLs', () => {
  test('createSignedUrl gives a URL anyone can fetch; download sets Content-Disposition', async () => {
    const bucket = await newBucket('sign')
    await put(bucket, 'dir/report 1.txt', 'signed bytes', { contentType: 'text/plain' })
    await put(bucket, 'other.txt', 'other', { contentType: 'text/plain' })

    const { signedUrl } = storageOk(await storage.from(bucket).createSignedUrl('dir/report 1.txt', 60))
    assert.deepEqual(wire(), { method: 'POST', path: `/storage/v1/object/sign/${bucket}/dir/report 1.txt`, status: 200 })
    const prefix = `${STORAGE_URL}/object/sign/${bucket}/dir/report%201.txt?token=`
    assert.ok(signedUrl.startsWith(prefix), `signedUrl ${signedUrl}`)
    const token = new URL(signedUrl).searchParams.get('token')
    const claims = unverifiedClaims(token)
    assert.equal(claims.url, `${bucket}/dir/report 1.txt`)
    assert.equal(claims.exp - claims.iat, 60)

    const got = await fetchUrl(signedUrl)
    assert.equal(got.status, 200)
    assert.equal(got.text, 'signed bytes')
    assert.equal(got.headers.get('content-type'), 'text/plain')
    assert.equal(got.headers.get('content-disposition'), null)

    const asFile = storageOk(await storage.from(bucket).createSignedUrl('dir/report 1.txt', 60, { download: true }))
    assert.match(asFile.signedUrl, /&download=$/)
    const attached = await fetchUrl(asFile.signedUrl)
    assert.equal(attached.status, 200)
    assert.equal(attached.text, 'signed bytes')
    assert.match(attached.headers.get('content-disposition'), /^attachment\b/)

    const renamed = storageOk(await storage.from(bucket).createSignedUrl('dir/report 1.txt', 60, { download: 'renamed.txt' }))
    assert.match(renamed.signedUrl, /&download=renamed\.txt$/)
    assert.equal(attachmentName((await fetchUrl(renamed.signedUrl)).headers.get('content-disposition')), 'renamed.txt')

    // a token is bound to its object and cannot be altered
    const misused = await fetchUrl(`${STORAGE_URL}/object/sign/${bucket}/other.txt?token=${token}`)
    assert.equal(misused.status, 400)
    assert.equal(JSON.parse(misused.text).statusCode, '400')
    const forged = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA')
    assert.equal((await fetchUrl(signedUrl.replace(token, forged))).status, 400)
    assert.equal((await fetchUrl(signedUrl.split('?')[0])).status, 400, 'no token')

    storageFails(await storage.from(bucket).createSignedUrl('dir/missing.txt', 60), '404', 400, 'Object not found')
    storageFails(await storage.from(bucket).createSignedUrl('other.txt', 0), '400')
  })

  test('createSignedUrls signs each path; a missing path gets signedUrl null and an error', async () => {
    const bucket = await newBucket('signs')
    await put(bucket, 'one.txt', 'first file', { contentType: 'text/plain' })
    await put(bucket, 'sub/two.csv', 'a,b', { contentType: 'text/csv' })

    const data = storageOk(await storage.from(bucket).createSignedUrls(['one.txt', 'missing.txt', 'sub/two.csv'], 120))
    assert.deepEqual(wire(), { method: 'POST', path: `/storage/v1/object/sign/${bucket}`, status: 200 })
    assert.deepEqual(
      data.map((d) => d.path),
      ['one.txt', 'missing.txt', 'sub/two.csv'],
    )
    const [one, missing, two] = data
    assert.equal(one.error, null)
    assert.ok(one.signedUrl.startsWith(`${STORAGE_URL}/object/sign/${bucket}/one.txt?token=`), one.signedUrl)
    assert.equal(one.signedURL, one.signedUrl.slice(STORAGE_URL.length), 'signedURL is the server path')
    assert.equal(missing.signedUrl, null)
    assert.equal(missing.signedURL, null)
    assert.equal(typeof missing.error, 'string')
    assert.ok(missing.error.length > 0)
    assert.equal(two.error, null)

    assert.deepEqual([(await fetchUrl(one.signedUrl)).text, (await fetchUrl(two.signedUrl)).text], ['first file', 'a,b'])
    const got = await fetchUrl(two.signedUrl)
    assert.equal(got.headers.get('content-type'), 'text/csv')

    const downloads = storageOk(await storage.from(bucket).createSignedUrls(['one.txt'], 60, { download: true }))
    assert.match(downloads[0].signedUrl, /&download=$/)
    assert.match((await fetchUrl(downloads[0].signedUrl)).headers.get('content-disposition'), /^attachment\b/)
  })

  test("getPublicUrl of a public bucket is served without auth; a private bucket's is refused", async () => {
    const pub = await newBucket('public', { public: true })
    const priv = await newBucket('private', { public: false })
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"/>'
    await put(pub, 'img/logo 1.svg', svg, { contentType: 'image/svg+xml' })
    await put(priv, 'img/logo 1.svg', svg, { contentType: 'image/svg+xml' })

    const { data } = storage.from(pub).getPublicUrl('img/logo 1.svg')
    assert.equal(data.publicUrl, `${STORAGE_URL}/object/public/${pub}/img/logo%201.svg`)
    const got = await fetchUrl(data.publicUrl)
    assert.equal(got.status, 200)
    assert.equal(got.text, svg)
    assert.equal(got.headers.get('content-type'), 'image/svg+xml')
    assert.equal(got.headers.get('etag'), (await objectRow(pub, 'img/logo 1.svg')).metadata.eTag)

    const named = storage.from(pub).getPublicUrl('img/logo 1.svg', { download: 'brand.svg' }).data.publicUrl
    assert.equal(named, `${STORAGE_URL}/object/public/${pub}/img/logo%201.svg?download=brand.svg`)
    assert.equal(attachmentName((await fetchUrl(named)).headers.get('content-disposition')), 'brand.svg')

    // the anon client's public URL is the same and needs no key either
    assert.equal(anon.storage.from(pub).getPublicUrl('img/logo 1.svg').data.publicUrl, data.publicUrl)

    const missing = await fetchUrl(storage.from(pub).getPublicUrl('img/none.svg').data.publicUrl)
    assert.equal(missing.status, 400)
    assert.equal(JSON.parse(missing.text).statusCode, '404')

    const privateUrl = storage.from(priv).getPublicUrl('img/logo 1.svg').data.publicUrl
    assert.equal(privateUrl, `${STORAGE_URL}/object/public/${priv}/img/logo%201.svg`)
    const refused = await fetchUrl(privateUrl)
    assert.equal(refused.status, 400)
    const body = JSON.parse(refused.text)
    assert.equal(body.statusCode, '404')
    assert.equal(refused.body.includes('<svg'), false)
    // even with the service key: a private object is never served on its public URL
    const withKey = await fetchUrl(privateUrl, { apikey: SERVICE_KEY, Authorization: `Bearer ${SERVICE_KEY}` })
    assert.equal(withKey.status, 400)
  })
})

// ------------------------------------------------------------------------ limits
const LIMITED = { public: false, fileSizeLimit: 16, allowedMimeTypes: ['image/*', 'text/plain'] }

describe('bucket limits', () => {
  test('a raw body over the size limit is 413; a Content-Type outside allowed_mime_types is 415', async () => {
    const bucket = await newBucket('limits', LIMITED)
    const from = storage.from(bucket)

    const big = await from.upload('big.png', new Uint8Array(17), { contentType: 'image/png' })
    storageFails(big, '413', 400, 'The object exceeded the maximum allowed size')
    storageFails(await from.upload('big.txt', 'x'.repeat(17), { contentType: 'text/plain', upsert: true }), '413')
    storageFails(await from.upload('huge.png', new Uint8Array(1 << 20), { contentType: 'image/png' }), '413')

    const json = await from.upload('data.json', '{}', { contentType: 'application/json' })
    storageFails(json, '415', 400, 'mime type application/json is not supported')
    storageFails(await from.upload('img.png', 'x', { contentType: 'imagex/png' }), '415')
    storageFails(await from.upload('doc.pdf', new Uint8Array(1 << 20), { contentType: 'application/pdf' }), '415')
    assert.deepEqual(await objectNames(bucket), [], 'refused uploads leave no rows')

    await put(bucket, 'ok.png', new Uint8Array(16), { contentType: 'image/png' })
    await put(bucket, 'ok.txt', 'exactly 16 bytes', { contentType: 'text/plain;charset=UTF-8' })
    assert.deepEqual(await objectNames(bucket), ['ok.png', 'ok.txt'])

    // update() is held to the same limits
    storageFails(await from.update('ok.png', new Uint8Array(17), { contentType: 'image/png' }), '413')
    storageFails(await from.update('ok.png', 'text', { contentType: 'application/xml' }), '415')
    assert.equal(storageOk(await from.info('ok.png')).size, 16)

    // a limit given as a string, changed on the bucket
    storageOk(await storage.updateBucket(bucket, { public: false, fileSizeLimit: '1KB' }))
    await put(bucket, 'kb.png', new Uint8Array(1000), { contentType: 'image/png' })
    storageFails(await from.upload('kb2.png', new Uint8Array(1001), { contentType: 'image/png' }), '413')
    assert.deepEqual(await objectNames(bucket), ['kb.png', 'ok.png', 'ok.txt'])
  })
})

// ------------------------------------------------------------------------ policies
describe('storage policies', () => {
  test('per-user folder policy: each user reads and writes only their own folder; anon gets nothing', async () => {
    const bucket = await newBucket('folders')
    const dropPolicies = await folderPolicies('js', bucket)
    try {
      const ann = await signedUp('js-storage', 'ann')
      const bob = await signedUp('js-storage', 'bob')
      const annFiles = ann.c.storage.from(bucket)
      const bobFiles = bob.c.storage.from(bucket)
      const anonFiles = anon.storage.from(bucket)

      // each user uploads into their own folder; the row's owner is the user
      const up = storageOk(await annFiles.upload(`${ann.id}/notes.txt`, "ann's notes", { contentType: 'text/plain' }))
      assert.equal(up.fullPath, `${bucket}/${ann.id}/notes.txt`)
      assert.match(lastRequest().headers.authorization, new RegExp(`role=authenticated sub=${ann.id}`))
      storageOk(await bobFiles.upload(`${bob.id}/notes.txt`, "bob's notes", { contentType: 'text/plain' }))
      const annRow = await objectRow(bucket, `${ann.id}/notes.txt`)
      assert.deepEqual([annRow.owner, annRow.owner_id], [ann.id, ann.id])

      // ... and nowhere else
      const intrude = await annFiles.upload(`${bob.id}/evil.txt`, 'x', { contentType: 'text/plain' })
      storageFails(intrude, '403', 400)
      storageFails(await annFiles.upload('top-level.txt', 'x', { contentType: 'text/plain' }), '403', 400)
      storageFails(await anonFiles.upload(`${ann.id}/anon.txt`, 'x', { contentType: 'text/plain' }), '403', 400)
      assert.deepEqual(await objectNames(bucket), [`${ann.id}/notes.txt`, `${bob.id}/notes.txt`].sort())

      // downloads, info, exists, list and signed URLs see only the caller's folder
      assert.equal(await (storageOk(await annFiles.download(`${ann.id}/notes.txt`))).text(), "ann's notes")
      assert.equal(await (storageOk(await bobFiles.download(`${bob.id}/notes.txt`))).text(), "bob's notes")
      storageFails(await bobFiles.download(`${ann.id}/notes.txt`), '404', 400, 'Object not found')
      storageFails(await annFiles.download(`${bob.id}/notes.txt`), '404')
      storageFails(await anonFiles.download(`${ann.id}/notes.txt`), '404')
      storageFails(await bobFiles.info(`${ann.id}/notes.txt`), '404')
      assert.equal((await bobFiles.exists(`${ann.id}/notes.txt`)).data, false)
      assert.equal((await annFiles.exists(`${ann.id}/notes.txt`)).data, true)
      assert.deepEqual(
        storageOk(await annFiles.list(ann.id)).map((e) => e.name),
        ['notes.txt'],
      )
      assert.deepEqual(storageOk(await bobFiles.list(ann.id)), [])
      assert.deepEqual(
        storageOk(await annFiles.list()).map((e) => e.name),
        [ann.id],
        "at the root Ann sees only her folder",
      )
      assert.deepEqual(storageOk(await anonFiles.list()), [])
      assert.deepEqual(storageOk(await anon.storage.listBuckets()).filter((b) => b.id === bucket), [])
      storageFails(await bobFiles.createSignedUrl(`${ann.id}/notes.txt`, 60), '404')
      const signed = storageOk(await annFiles.createSignedUrl(`${ann.id}/notes.txt`, 60))
      assert.equal((await fetchUrl(signed.signedUrl)).text, "ann's notes", 'a signed URL works for anyone')
      const many = storageOk(await bobFiles.createSignedUrls([`${ann.id}/notes.txt`, `${bob.id}/notes.txt`], 60))
      assert.deepEqual(
        many.map((m) => m.signedUrl === null),
        [true, false],
      )

      // upsert and update need select + update on the row: own folder only
      storageOk(await annFiles.upload(`${ann.id}/notes.txt`, 'v2', { contentType: 'text/plain', upsert: true }))
      storageOk(await annFiles.update(`${ann.id}/notes.txt`, 'v3', { contentType: 'text/plain' }))
      assert.equal(await (storageOk(await annFiles.download(`${ann.id}/notes.txt`))).text(), 'v3')
      storageFails(await bobFiles.update(`${ann.id}/notes.txt`, 'bob was here', { contentType: 'text/plain' }), '404')
      const bobUpsert = await bobFiles.upload(`${ann.id}/notes.txt`, 'bob was here', { contentType: 'text/plain', upsert: true })
      assert.ok(bobUpsert.error, 'an upsert into another folder fails')
      assert.equal(bobUpsert.error.statusCode, '403')
      assert.equal(await (storageOk(await storage.from(bucket).download(`${ann.id}/notes.txt`))).text(), 'v3')

      // move and copy out of or into another folder are refused
      storageFails(await bobFiles.move(`${ann.id}/notes.txt`, `${bob.id}/stolen.txt`), '404')
      storageFails(await annFiles.move(`${ann.id}/notes.txt`, `${bob.id}/gift.txt`), '403', 400)
      storageFails(await bobFiles.copy(`${ann.id}/notes.txt`, `${bob.id}/stolen.txt`), '404')
      storageOk(await annFiles.copy(`${ann.id}/notes.txt`, `${ann.id}/copy.txt`))
      assert.equal((await objectRow(bucket, `${ann.id}/copy.txt`)).owner, ann.id)

      // remove: another user's objects are silently not removed
      assert.deepEqual(storageOk(await bobFiles.remove([`${ann.id}/notes.txt`, `${ann.id}/copy.txt`])), [])
      assert.deepEqual(storageOk(await anonFiles.remove([`${ann.id}/notes.txt`])), [])
      assert.deepEqual(await objectNames(bucket), [`${ann.id}/copy.txt`, `${ann.id}/notes.txt`, `${bob.id}/notes.txt`].sort())
      const removed = storageOk(await annFiles.remove([`${ann.id}/notes.txt`, `${ann.id}/copy.txt`, `${bob.id}/notes.txt`]))
      assert.deepEqual(removed.map((o) => o.name).sort(), [`${ann.id}/copy.txt`, `${ann.id}/notes.txt`])
      assert.deepEqual(await objectNames(bucket), [`${bob.id}/notes.txt`])

      // the service role bypasses the policies
      assert.equal(await (storageOk(await storage.from(bucket).download(`${bob.id}/notes.txt`))).text(), "bob's notes")
    } finally {
      await dropPolicies()
    }
  })
})

// ------------------------------------------------------------------------ timestamps
describe('timestamps', () => {
  test('bucket and object JSON timestamps are UTC with milliseconds and Z, as Storage renders them', async () => {
    const bucket = await newBucket('times')
    await put(bucket, 'a.txt', 'a', { contentType: 'text/plain' })
    await put(bucket, 'dir/b.txt', 'b', { contentType: 'text/plain' })
    // Microseconds and a non-UTC offset, which to_jsonb would show as 04:43:32.770999+00:00.
    await sqlExec(
      `update storage.buckets set created_at = '2021-02-17 04:43:32.770999+00', updated_at = '2021-02-17 06:43:32.5+02' where id = $1`,
      [bucket],
    )
    await sqlExec(
      `update storage.objects set created_at = '2021-02-17 04:43:32.770999+00', updated_at = '2022-03-04 05:06:07.0891+00',
              last_accessed_at = '2023-01-01 00:00:00+00' where bucket_id = $1`,
      [bucket],
    )
    const [created, updated, accessed] = ['2021-02-17T04:43:32.770Z', '2022-03-04T05:06:07.089Z', '2023-01-01T00:00:00.000Z']

    const b = storageOk(await storage.getBucket(bucket))
    assert.deepEqual([b.created_at, b.updated_at], [created, '2021-02-17T04:43:32.500Z'])
    const listed = storageOk(await storage.listBuckets({ search: bucket })).find((x) => x.id === bucket)
    assert.deepEqual([listed.created_at, listed.updated_at], [created, '2021-02-17T04:43:32.500Z'])

    const files = storage.from(bucket)
    const a = storageOk(await files.list()).find((e) => e.name === 'a.txt')
    assert.deepEqual([a.created_at, a.updated_at, a.last_accessed_at], [created, updated, accessed])
    assert.match(a.metadata.lastModified, STORAGE_TIME_RE)
    const info = storageOk(await files.info('a.txt'))
    assert.deepEqual([info.createdAt, info.lastModified], [created, updated])
    const v2 = storageOk(await files.listV2({ prefix: 'a' }))
    assert.deepEqual([v2.objects[0].created_at, v2.objects[0].updated_at, v2.objects[0].last_accessed_at], [created, updated, accessed])
    const removed = storageOk(await files.remove(['dir/b.txt']))
    assert.deepEqual([removed[0].created_at, removed[0].updated_at, removed[0].last_accessed_at], [created, updated, accessed])
    // a new upload's timestamps too
    const c = (await put(bucket, 'c.txt', 'c', { contentType: 'text/plain' })) && storageOk(await files.info('c.txt'))
    assert.match(c.createdAt, STORAGE_TIME_RE)
    assert.equal(c.createdAt, (await objectRow(bucket, 'c.txt')).created_at)
  })
})

// ------------------------------------------------------------------------ chunked uploads
/** A ReadableStream of `total` bytes in pieces of at most 1 MiB: fetch sends it chunked, with no Content-Length. */
function byteStream(total) {
  let sent = 0
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close()
      const n = Math.min(1 << 20, total - sent)
      controller.enqueue(new Uint8Array(n).fill(7))
      sent += n
    },
  })
}

describe('chunked uploads', () => {
  test('a streamed (chunked) upload over the size limit is 413, as with a Content-Length', async () => {
    const bucket = await newBucket('chunked')
    const from = storage.from(bucket)
    // within the limit, a stream lands
    const ok = storageOk(await from.upload('small.bin', byteStream(3000), { contentType: 'application/octet-stream' }))
    assert.equal(ok.fullPath, `${bucket}/small.bin`)
    assert.equal(lastRequest().headers['content-length'], undefined, 'sent without a Content-Length')
    assert.equal(storageOk(await from.info('small.bin')).size, 3000)

    // over the server's 50 MiB limit, which cuts the stream off: Storage's EntityTooLarge, not an interrupted upload
    const over = 51 * 1024 * 1024
    const big = await from.upload('big.bin', byteStream(over), { contentType: 'application/octet-stream' })
    storageFails(big, '413', 400, 'The object exceeded the maximum allowed size')
    // the same size with a Content-Length is refused the same way
    storageFails(await from.upload('big2.bin', new Uint8Array(over), { contentType: 'application/octet-stream' }), '413')
    // and to a signed upload URL
    const { token } = storageOk(await from.createSignedUploadUrl('signed.bin'))
    const signed = await from.uploadToSignedUrl('signed.bin', token, byteStream(over), { contentType: 'application/octet-stream' })
    storageFails(signed, '413', 400, 'The object exceeded the maximum allowed size')

    // a bucket's own limit holds a stream too
    storageOk(await storage.updateBucket(bucket, { public: false, fileSizeLimit: 1000 }))
    storageFails(await from.upload('over.bin', byteStream(1001), { contentType: 'application/octet-stream' }), '413')
    assert.deepEqual(await objectNames(bucket), ['small.bin'], 'refused uploads leave no rows')
  })
})

// ------------------------------------------------------------------------ multipart refusals
// Last in the file: while this fails, the server also breaks the connection the client reuses.
describe('bucket limits on multipart uploads', () => {
  test('a Blob (multipart) over the size limit is 413; a Blob of a disallowed type is 415', async () => {
    const bucket = await newBucket('mplimits', LIMITED)
    const from = storage.from(bucket)

    await put(bucket, 'ok.webp', new Blob([new Uint8Array(16)], { type: 'image/webp' }))
    assert.deepEqual(await objectNames(bucket), ['ok.webp'])

    // The refusals must reach the client as Storage errors: the server answers before it has
    // read the whole form and must not cut the connection while the client is still sending.
    // Each is tried a few times, since whether the client notices depends on timing.
    for (let attempt = 0; attempt < 5; attempt++) {
      const big = await from.upload('big.png', new Blob([new Uint8Array(1 << 20)], { type: 'image/png' }))
      storageFails(big, '413', 400, 'The object exceeded the maximum allowed size')
      const pdf = await from.upload('doc.pdf', new Blob([new Uint8Array(1 << 20)], { type: 'application/pdf' }))
      storageFails(pdf, '415', 400, 'mime type application/pdf is not supported')
      storageFails(await from.upload('small.png', new Blob([new Uint8Array(17)], { type: 'image/png' })), '413')
      storageFails(await from.upload('small.pdf', new Blob(['%PDF'], { type: 'application/pdf' })), '415')
      storageFails(await from.update('ok.webp', new Blob([new Uint8Array(1 << 20)], { type: 'image/webp' })), '413')
    }
    assert.deepEqual(await objectNames(bucket), ['ok.webp'], 'refused uploads leave no rows')
    assert.equal(storageOk(await from.info('ok.webp')).size, 16)
  })
})
