// tus-js-client (as pinned in compat/package.json) against forge-server's TUS 1.0.0 resumable
// uploads at /storage/v1/upload/resumable, used the way Supabase's docs tell users to (a
// signed-in user's Bearer token, x-upsert, uploadDataDuringCreation, 6 MiB chunks, the
// bucketName/objectName/contentType/cacheControl/metadata Upload-Metadata), together with
// supabase-js to read back what arrived: a multi-chunk upload, resuming an aborted upload and
// one whose PATCH broke off mid-body, termination, the errors onError gets (with the real HTTP
// status), the signed variant at /upload/resumable/sign with a createSignedUploadUrl token in
// x-signature, and x-upsert. The buckets are made here (random names, removed at the end) and
// a per-user folder policy on storage.objects covers them. Run through compat/run.sh, which
// starts the server and exports FORGE_*.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { before, describe } from 'node:test'
import * as tus from 'tus-js-client'
import { ANON_KEY, URL_, sqlRows, sqlValue, wireTest } from './helpers.mjs'
import { UUID_RE } from './auth-helpers.mjs'
import { cleanUpAfter, folderPolicies, newBucket, signedUp, suffix } from './storage-helpers.mjs'

const TUS_URL = `${URL_}/storage/v1/upload/resumable`
const TUS_SIGN_URL = `${URL_}/storage/v1/upload/resumable/sign`
const MiB = 1024 * 1024
/** The chunk size Supabase's docs require. */
const CHUNK = 6 * MiB
/** The size limit of the `limited` bucket. */
const LIMIT = 1024

function sha256(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex')
}

// ------------------------------------------------------------------------ fixtures
// Two buckets (the main one, and a small one with a size limit and one MIME type), a per-user
// folder policy on both, and two signed-up users.
let bucket = null
let limited = null
let dropPolicies = null
let ann = null
let bob = null

/** A signed-up user (see signedUp) with `files`, the user's storage client for the main bucket. */
async function tusUser(label) {
  const user = await signedUp('js-tus', label)
  return { ...user, files: user.c.storage.from(bucket) }
}

before(async () => {
  bucket = await newBucket('tus', { public: false })
  limited = await newBucket('tus-limit', { public: false, fileSizeLimit: LIMIT, allowedMimeTypes: ['image/png'] })
  dropPolicies = await folderPolicies('js_tus', [bucket, limited])
  ann = await tusUser('ann')
  bob = await tusUser('bob')
})

// The policies are dropped, then the buckets emptied and deleted, once every test ran.
cleanUpAfter(async () => {
  if (dropPolicies) await dropPolicies()
})

// ------------------------------------------------------------------------ tus helpers
// Every tus request of the current test, as the client sent it and the server answered.
let tusLog = []

function describeTus() {
  return tusLog
    .map((r) => {
      const offset = r.offset !== null ? ` Upload-Offset: ${r.offset}` : ''
      return `  ${r.method} ${r.url}${offset} (${r.bodyLength} bytes) -> ${r.status} ${r.body}`
    })
    .join('\n')
}

/** Like wireTest, but a failure also lists the tus requests the test sent. */
function test(name, fn) {
  return wireTest(name, async (t) => {
    tusLog = []
    try {
      await fn(t)
    } catch (err) {
      if (tusLog.length) err.message = `${err.message}\n--- tus requests ---\n${describeTus()}`
      throw err
    }
  })
}

/** The headers of Supabase's docs: the user's token and x-upsert (no apikey). */
function userHeaders(user, upsert = false) {
  return { authorization: `Bearer ${user.token}`, 'x-upsert': String(upsert) }
}

/** The options of Supabase's docs, for `objectName` in `bucketName`. */
function docsOptions(bucketName, objectName, extra = {}) {
  const { metadata, ...rest } = extra
  return {
    endpoint: TUS_URL,
    retryDelays: [0, 3000, 5000, 10000, 20000],
    uploadDataDuringCreation: true,
    removeFingerprintOnSuccess: true,
    metadata: { bucketName, objectName, contentType: 'image/png', cacheControl: 3600, ...metadata },
    chunkSize: CHUNK,
    ...rest,
  }
}

/**
 * Runs a tus upload of `data`. Resolves with `{ upload, requests, progress, chunks }` on
 * onSuccess, or, when `stop(upload, bytesAccepted)` (called from onChunkComplete) returns true,
 * once that upload is aborted (`aborted: true`); rejects with onError's DetailedError.
 */
function runTus(data, options, { stop = null, terminate = false } = {}) {
  const requests = []
  const progress = []
  const chunks = []
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      ...options,
      onAfterResponse(req, res) {
        const entry = {
          method: req.getMethod(),
          url: req.getURL(),
          offset: req.getHeader('Upload-Offset') ?? null,
          bodyLength: Number(req.getUnderlyingObject()?.getHeader('content-length') ?? 0),
          status: res.getStatus(),
          body: res.getBody(),
        }
        requests.push(entry)
        tusLog.push(entry)
      },
      onProgress(sent, total) {
        progress.push([sent, total])
      },
      onChunkComplete(size, accepted, total) {
        chunks.push([size, accepted, total])
        if (stop && stop(upload, accepted)) {
          upload.abort(terminate).then(() => resolve({ upload, requests, progress, chunks, aborted: true }), reject)
        }
      },
      onSuccess({ lastResponse }) {
        resolve({ upload, requests, progress, chunks, lastResponse, aborted: false })
      },
      onError(err) {
        reject(err)
      },
    })
    upload.start()
  })
}

/** Runs a tus upload that must fail; returns onError's error, its HTTP status and body. */
async function tusFails(data, options) {
  try {
    await runTus(data, { ...options, retryDelays: null })
  } catch (err) {
    assert.ok(err instanceof tus.DetailedError, `expected a DetailedError, got ${err}`)
    assert.ok(err.originalResponse, `no response reached the client: ${err.message}`)
    return { err, status: err.originalResponse.getStatus(), body: err.originalResponse.getBody() }
  }
  assert.fail('the upload succeeded')
}

/** `<bucket>/<object>/<version>`, the id an upload URL carries (base64url). */
function uploadIdOf(url, prefix = TUS_URL) {
  assert.ok(url.startsWith(`${prefix}/`), `upload URL ${url} is not under ${prefix}/`)
  const raw = url.slice(prefix.length + 1)
  assert.match(raw, /^[A-Za-z0-9_-]+$/, `upload id ${raw}`)
  const text = Buffer.from(raw, 'base64url').toString('utf8')
  const m = /^(.+?)\/(.+)\/([^/]+)$/.exec(text)
  assert.ok(m, `upload id ${text}`)
  assert.match(m[3], UUID_RE)
  return { bucket: m[1], name: m[2], version: m[3] }
}

async function downloaded(files, path) {
  const { data, error } = await files.download(path)
  assert.equal(error, null, `download ${path}: ${error?.message}`)
  return Buffer.from(await data.arrayBuffer())
}

function assertSameBytes(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: length`)
  assert.equal(sha256(actual), sha256(expected), `${what}: content`)
}

async function objectCount(bucketId, name) {
  return sqlValue('select count(*)::int from storage.objects where bucket_id = $1 and name = $2', [bucketId, name])
}

async function openUploads(bucketId, name) {
  return sqlRows(
    `select upload_offset, upload_length from storage.resumable_uploads
      where bucket_id = $1 and name = $2 and finished_at is null`,
    [bucketId, name],
  )
}

/** A raw TUS request (fetch), for what tus-js-client does not expose. */
async function tusFetch(url, method, headers = {}, body = undefined) {
  const init = { method, headers: { 'tus-resumable': '1.0.0', ...headers } }
  if (body !== undefined) Object.assign(init, { body, duplex: 'half' })
  const res = await fetch(url, init)
  return { status: res.status, headers: res.headers, text: await res.text() }
}

// ------------------------------------------------------------------------ tests
describe('tus-js-client resumable uploads', () => {
  test("a signed-in user's 13 MiB upload in 6 MiB chunks, as Supabase's docs do it; supabase-js reads it back", async () => {
    const data = crypto.randomBytes(13 * MiB + 12345)
    const path = `${ann.id}/big photo.png`
    const userMeta = { album: 'holidays', n: 3 }
    const res = await runTus(
      data,
      docsOptions(bucket, path, { headers: userHeaders(ann, true), metadata: { metadata: JSON.stringify(userMeta) } }),
    )

    // the creation carries the first chunk, then one PATCH per chunk
    assert.deepEqual(
      res.requests.map((r) => [r.method, r.offset, r.bodyLength, r.status]),
      [
        ['POST', null, CHUNK, 201],
        ['PATCH', String(CHUNK), CHUNK, 204],
        ['PATCH', String(2 * CHUNK), data.length - 2 * CHUNK, 204],
      ],
    )
    assert.equal(res.requests[0].url, TUS_URL)
    const id = uploadIdOf(res.upload.url)
    assert.deepEqual([id.bucket, id.name], [bucket, path])
    assert.ok(res.requests.slice(1).every((r) => r.url === res.upload.url), 'PATCHes go to the Location')
    assert.deepEqual(res.chunks, [
      [CHUNK, CHUNK, data.length],
      [CHUNK, 2 * CHUNK, data.length],
      [data.length - 2 * CHUNK, data.length, data.length],
    ])
    assert.deepEqual(res.progress.at(-1), [data.length, data.length])
    assert.equal(res.lastResponse.getHeader('Tus-Resumable'), '1.0.0')
    assert.equal(res.lastResponse.getHeader('Upload-Offset'), String(data.length))

    // the bytes, the object info and the row, as supabase-js and SQL see them
    assertSameBytes(await downloaded(ann.files, path), data, 'download')
    const { data: info, error } = await ann.files.info(path)
    assert.equal(error, null, `info: ${error?.message}`)
    assert.equal(info.name, path)
    assert.equal(info.bucketId, bucket)
    assert.equal(info.size, data.length)
    assert.equal(info.contentType, 'image/png')
    assert.equal(info.cacheControl, 'max-age=3600')
    assert.deepEqual(info.metadata, userMeta)
    assert.equal(info.version, id.version, 'the object version is the upload id')
    const [row] = await sqlRows('select owner_id, metadata from storage.objects where bucket_id = $1 and name = $2', [bucket, path])
    assert.equal(row.owner_id, ann.id)
    assert.equal(row.metadata.size, data.length)
    assert.equal(row.metadata.mimetype, 'image/png')
    assert.deepEqual(await openUploads(bucket, path), [])

    // a finished upload: HEAD tells it is complete, and it cannot be terminated
    const auth = { authorization: `Bearer ${ann.token}` }
    const head = await tusFetch(res.upload.url, 'HEAD', auth)
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('upload-offset'), String(data.length))
    assert.equal(head.headers.get('upload-length'), String(data.length))
    assert.equal((await tusFetch(res.upload.url, 'DELETE', auth)).status, 400)
    // another user does not even see it
    assert.equal((await tusFetch(res.upload.url, 'HEAD', { authorization: `Bearer ${bob.token}` })).status, 404)
  })

  test('an upload aborted after its first chunk resumes from the uploadUrl without resending it', async () => {
    const data = crypto.randomBytes(13 * MiB)
    const path = `${ann.id}/resumed.bin`
    const options = docsOptions(bucket, path, {
      headers: userHeaders(ann),
      metadata: { contentType: 'application/octet-stream' },
    })
    const first = await runTus(data, options, { stop: (_, accepted) => accepted >= CHUNK })
    assert.equal(first.aborted, true)
    assert.deepEqual(
      first.requests.map((r) => [r.method, r.bodyLength, r.status]),
      [['POST', CHUNK, 201]],
    )
    const url = first.upload.url
    uploadIdOf(url)
    // nothing is visible until the last byte is in
    assert.equal(await objectCount(bucket, path), 0)
    assert.deepEqual(
      (await openUploads(bucket, path)).map((u) => [u.upload_offset, u.upload_length]),
      [[CHUNK, data.length]],
    )
    assert.equal((await ann.files.download(path)).error?.statusCode, '404')

    const second = await runTus(data, { ...options, uploadUrl: url })
    assert.deepEqual(
      second.requests.map((r) => [r.method, r.offset, r.bodyLength, r.status]),
      [
        ['HEAD', null, 0, 200],
        ['PATCH', String(CHUNK), CHUNK, 204],
        ['PATCH', String(2 * CHUNK), data.length - 2 * CHUNK, 204],
      ],
    )
    assert.ok(second.requests.every((r) => r.url === url))
    assert.ok(second.progress[0][0] >= CHUNK, `first progress ${second.progress[0]}: the first chunk was not resent`)
    assertSameBytes(await downloaded(ann.files, path), data, 'download')
    assert.equal((await ann.files.info(path)).data.contentType, 'application/octet-stream')
    assert.deepEqual(await openUploads(bucket, path), [])
  })

  test('a PATCH whose body breaks off keeps what arrived; tus-js-client goes on from the offset HEAD reports', async () => {
    const data = crypto.randomBytes(3 * MiB)
    const path = `${ann.id}/cut.bin`
    const options = docsOptions(bucket, path, {
      headers: userHeaders(ann),
      chunkSize: MiB,
      uploadDataDuringCreation: false,
      retryDelays: [100, 200, 400, 800],
    })
    const first = await runTus(data, options, { stop: (_, accepted) => accepted >= MiB })
    const url = first.upload.url
    assert.deepEqual(
      first.requests.map((r) => [r.method, r.offset, r.status]),
      [
        ['POST', null, 201],
        ['PATCH', '0', 204],
      ],
    )

    // a PATCH that sends 256 KiB of its 1 MiB and then loses its connection
    const cut = 256 * 1024
    const body = new ReadableStream({
      async start(controller) {
        controller.enqueue(data.subarray(MiB, MiB + cut))
        await new Promise((r) => setTimeout(r, 300))
        controller.error(new Error('connection lost'))
      },
    })
    const patch = tusFetch(
      url,
      'PATCH',
      { authorization: `Bearer ${ann.token}`, 'upload-offset': String(MiB), 'content-type': 'application/offset+octet-stream' },
      body,
    )
    await assert.rejects(patch)

    // the server records what it got (it may still be finishing the broken request)
    let offset = null
    for (let i = 0; i < 50; i++) {
      const head = await tusFetch(url, 'HEAD', { authorization: `Bearer ${ann.token}` })
      assert.equal(head.status, 200, `HEAD ${head.status} ${head.text}`)
      offset = Number(head.headers.get('upload-offset'))
      if (offset > MiB) break
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal(offset, MiB + cut, 'the bytes that arrived before the break are kept')

    const second = await runTus(data, { ...options, uploadUrl: url })
    assert.deepEqual(second.requests[0].method, 'HEAD')
    assert.deepEqual(
      second.requests.filter((r) => r.method === 'PATCH').map((r) => [r.offset, r.bodyLength, r.status]),
      [
        [String(MiB + cut), MiB, 204],
        [String(2 * MiB + cut), MiB - cut, 204],
      ],
    )
    assertSameBytes(await downloaded(ann.files, path), data, 'download')
  })

  test('abort(true) terminates an unfinished upload: DELETE 204, then the URL is gone and no object appears', async () => {
    const data = crypto.randomBytes(2 * MiB)
    const path = `${ann.id}/terminated.bin`
    const options = docsOptions(bucket, path, { headers: userHeaders(ann), chunkSize: MiB })
    const first = await runTus(data, options, { stop: (_, accepted) => accepted >= MiB, terminate: true })
    assert.equal(first.aborted, true)
    assert.deepEqual(
      first.requests.map((r) => [r.method, r.status]),
      [
        ['POST', 201],
        ['DELETE', 204],
      ],
    )
    assert.equal(first.requests[1].url, first.upload.url)
    assert.deepEqual(await openUploads(bucket, path), [])
    const head = await tusFetch(first.upload.url, 'HEAD', { authorization: `Bearer ${ann.token}` })
    assert.equal(head.status, 404)
    assert.equal(await objectCount(bucket, path), 0)

    // resuming the terminated URL without an endpoint fails with the 404
    const gone = await tusFails(data, { ...options, endpoint: null, uploadUrl: first.upload.url })
    assert.equal(gone.status, 404)
  })

  describe('errors reach onError with the real HTTP status', () => {
    test('a missing bucket is 404', async () => {
      const path = `${ann.id}/a.png`
      const { status, body } = await tusFails(
        crypto.randomBytes(1000),
        docsOptions(`js-tus-missing-${suffix()}`, path, { headers: userHeaders(ann) }),
      )
      assert.equal(status, 404)
      assert.equal(body, 'Bucket not found')
    })

    test('an existing object without x-upsert is 409, and is left as it was', async () => {
      const path = `${ann.id}/taken.png`
      const original = crypto.randomBytes(2000)
      await runTus(original, docsOptions(bucket, path, { headers: userHeaders(ann) }))
      for (const headers of [{ authorization: `Bearer ${ann.token}` }, userHeaders(ann, false)]) {
        const { status, body } = await tusFails(crypto.randomBytes(1000), docsOptions(bucket, path, { headers }))
        assert.equal(status, 409)
        assert.equal(body, 'The resource already exists')
      }
      assertSameBytes(await downloaded(ann.files, path), original, 'download')
      assert.deepEqual(await openUploads(bucket, path), [])
    })

    test("a file over the bucket's size limit is 413", async () => {
      // exactly the limit is fine
      const fits = crypto.randomBytes(LIMIT)
      await runTus(fits, docsOptions(limited, `${ann.id}/fits.png`, { headers: userHeaders(ann) }))
      assertSameBytes(await downloaded(ann.c.storage.from(limited), `${ann.id}/fits.png`), fits, 'download')

      const { status, body } = await tusFails(
        crypto.randomBytes(LIMIT + 1),
        docsOptions(limited, `${ann.id}/over.png`, { headers: userHeaders(ann) }),
      )
      assert.equal(status, 413)
      assert.equal(body, 'The object exceeded the maximum allowed size')
      assert.equal(await objectCount(limited, `${ann.id}/over.png`), 0)
    })

    test('a content type the bucket does not allow is 415', async () => {
      const { status, body } = await tusFails(
        crypto.randomBytes(100),
        docsOptions(limited, `${ann.id}/doc.pdf`, { headers: userHeaders(ann), metadata: { contentType: 'application/pdf' } }),
      )
      assert.equal(status, 415)
      assert.equal(body, 'mime type application/pdf is not supported')
    })

    test("a path outside the user's folder is 403 under the folder policy", async () => {
      for (const path of [`${bob.id}/intruder.png`, 'top-level.png']) {
        const options = docsOptions(bucket, path, { headers: userHeaders(ann, true) })
        const { status, body } = await tusFails(crypto.randomBytes(1000), options)
        assert.equal(status, 403, path)
        assert.equal(body, 'new row violates row-level security policy', path)
        assert.equal(await objectCount(bucket, path), 0)
      }
      // the anon key alone gets no further
      const anonOptions = docsOptions(bucket, `${ann.id}/anon.png`, { headers: { apikey: ANON_KEY } })
      const anonymous = await tusFails(crypto.randomBytes(1000), anonOptions)
      assert.equal(anonymous.status, 403)
    })
    // With uploadDataDuringCreation the creation carries a whole first chunk, which the server
    // refuses before reading: the answer must still reach the client, not a broken connection
    // (tus-js-client would then retry and end with no status at all).
    test('the refusals reach the client when the creation carries a full 6 MiB chunk', async () => {
      const data = crypto.randomBytes(CHUNK + 1)
      await runTus(data.subarray(0, 10), docsOptions(bucket, `${ann.id}/exists.png`, { headers: userHeaders(ann) }))
      const cases = [
        [404, `js-tus-missing-${suffix()}`, `${ann.id}/a.png`],
        [409, bucket, `${ann.id}/exists.png`],
        [403, bucket, `${bob.id}/intruder.png`],
        [413, limited, `${ann.id}/big.png`],
      ]
      for (const [expected, bucketName, path] of cases) {
        const { status } = await tusFails(data, docsOptions(bucketName, path, { headers: userHeaders(ann) }))
        assert.equal(status, expected, `${bucketName}/${path}`)
      }
      assert.equal(await objectCount(bucket, `${bob.id}/intruder.png`), 0)
      assert.equal(await objectCount(limited, `${ann.id}/big.png`), 0)
    })
  })

  test('the signed variant: a createSignedUploadUrl token in x-signature, with only the anon apikey', async () => {
    const path = `${ann.id}/signed.png`
    const { data: signed, error } = await ann.files.createSignedUploadUrl(path)
    assert.equal(error, null, `createSignedUploadUrl: ${error?.message}`)
    assert.equal(typeof signed.token, 'string')

    const data = crypto.randomBytes(CHUNK + 54321)
    const headers = { apikey: ANON_KEY, 'x-signature': signed.token }
    const res = await runTus(data, docsOptions(bucket, path, { endpoint: TUS_SIGN_URL, headers }))
    assert.deepEqual(
      res.requests.map((r) => [r.method, r.bodyLength, r.status]),
      [
        ['POST', CHUNK, 201],
        ['PATCH', data.length - CHUNK, 204],
      ],
    )
    const id = uploadIdOf(res.upload.url, TUS_SIGN_URL)
    assert.deepEqual([id.bucket, id.name], [bucket, path])

    assertSameBytes(await downloaded(ann.files, path), data, 'download')
    const info = (await ann.files.info(path)).data
    assert.equal(info.contentType, 'image/png')
    assert.equal(info.cacheControl, 'max-age=3600')
    const [row] = await sqlRows('select owner_id from storage.objects where bucket_id = $1 and name = $2', [bucket, path])
    assert.equal(row.owner_id, ann.id, 'the owner comes from the token')

    // the token is for that object only; without it, or with a bad one, the request is refused
    const other = await tusFails(data.subarray(0, 100), docsOptions(bucket, `${ann.id}/other.png`, { endpoint: TUS_SIGN_URL, headers }))
    assert.equal(other.status, 400)
    const noToken = { endpoint: TUS_SIGN_URL, headers: { apikey: ANON_KEY } }
    const none = await tusFails(data.subarray(0, 100), docsOptions(bucket, path, noToken))
    assert.equal(none.status, 400)
    const bad = await tusFails(
      data.subarray(0, 100),
      docsOptions(bucket, path, { endpoint: TUS_SIGN_URL, headers: { apikey: ANON_KEY, 'x-signature': `${signed.token}x` } }),
    )
    assert.equal(bad.status, 400)
    // ... and the object exists, so the same token (not made with upsert) cannot overwrite it
    const again = await tusFails(data.subarray(0, 100), docsOptions(bucket, path, { endpoint: TUS_SIGN_URL, headers }))
    assert.equal(again.status, 409)
    assertSameBytes(await downloaded(ann.files, path), data, 'download after the refusals')
  })

  test('x-upsert: true replaces an existing object (and a signed token made with upsert does too)', async () => {
    const path = `${ann.id}/replace.png`
    const v1 = crypto.randomBytes(3000)
    await runTus(v1, docsOptions(bucket, path, { headers: userHeaders(ann), metadata: { metadata: '{"v":1}' } }))
    const before = (await ann.files.info(path)).data
    assert.deepEqual(before.metadata, { v: 1 })

    const v2 = crypto.randomBytes(CHUNK + 100)
    const res = await runTus(
      v2,
      docsOptions(bucket, path, {
        headers: userHeaders(ann, true),
        metadata: { contentType: 'image/webp', cacheControl: 60, metadata: '{"v":2}' },
      }),
    )
    assertSameBytes(await downloaded(ann.files, path), v2, 'download after the upsert')
    const info = (await ann.files.info(path)).data
    assert.equal(info.id, before.id, 'the same object')
    assert.notEqual(info.version, before.version)
    assert.equal(info.version, uploadIdOf(res.upload.url).version)
    assert.equal(info.size, v2.length)
    assert.equal(info.contentType, 'image/webp')
    assert.equal(info.cacheControl, 'max-age=60')
    assert.deepEqual(info.metadata, { v: 2 })
    assert.equal(await objectCount(bucket, path), 1)

    const { data: signed, error } = await ann.files.createSignedUploadUrl(path, { upsert: true })
    assert.equal(error, null, `createSignedUploadUrl: ${error?.message}`)
    const v3 = crypto.randomBytes(500)
    await runTus(v3, docsOptions(bucket, path, { endpoint: TUS_SIGN_URL, headers: { apikey: ANON_KEY, 'x-signature': signed.token } }))
    assertSameBytes(await downloaded(ann.files, path), v3, 'download after the signed upsert')
    assert.equal(await objectCount(bucket, path), 1)
  })
})
