// Helpers the supabase-js storage suites share (storage.test.mjs, storage-more.test.mjs,
// tus.test.mjs): the service role's storage client, buckets with random names that are emptied
// and deleted once the file's tests ran, storage result assertions, the last request on the
// wire, storage.objects rows read in SQL, plain fetches of signed and public URLs, signed-up
// users and a per-user folder policy on storage.objects.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after } from 'node:test'
import { ANON_KEY, SERVICE_KEY, URL_, client, closeDb, lastRequest, sqlExec, sqlRows } from './helpers.mjs'
import { PASSWORD } from './auth-helpers.mjs'

/** The service role's storage client: it bypasses the policies on storage.objects. */
export const storage = client(SERVICE_KEY).storage

export const STORAGE_URL = `${URL_}/storage/v1`

export function suffix() {
  return crypto.randomUUID().slice(0, 8)
}

// ------------------------------------------------------------------------ buckets
// Buckets made by the test file: emptied and deleted by the after() hook of cleanUpAfter().
const created = new Set()

/** Has the hook of cleanUpAfter() empty and delete the bucket `id`. */
export function dropLater(id) {
  created.add(id)
}

/**
 * Registers the test file's after() hook: `first()` when given (e.g. dropping policies), then
 * every bucket of newBucket() or dropLater() is emptied and deleted; the SQL pool is closed
 * whatever failed.
 */
export function cleanUpAfter(first = null) {
  after(async () => {
    try {
      if (first) await first()
      for (const id of created) {
        await storage.emptyBucket(id)
        await storage.deleteBucket(id)
      }
    } finally {
      await closeDb()
    }
  })
}

/** Creates a bucket `js-<label>-<random>` (service role) and returns its id. */
export async function newBucket(label, options = { public: false }) {
  const id = `js-${label}-${suffix()}`
  assert.deepEqual(storageOk(await storage.createBucket(id, options)), { name: id })
  dropLater(id)
  return id
}

/** Uploads `body` (service role) and returns the upload's data. */
export async function put(bucket, path, body, options = {}) {
  return storageOk(await storage.from(bucket).upload(path, body, options))
}

// ------------------------------------------------------------------------ results and the wire
/** Asserts a storage call succeeded and returns its data. */
export function storageOk(res) {
  const e = res.error
  assert.equal(e, null, `unexpected storage error: ${e?.name} status=${e?.status} statusCode=${e?.statusCode} ${e?.message}`)
  return res.data
}

/**
 * Asserts a storage call failed with a StorageApiError carrying Storage's `statusCode` (the real
 * status, in the body) and the HTTP `status` (400 for most 4xx, as Supabase Storage answers),
 * with the `message` (a string, or a RegExp it matches) when given, and no data.
 */
export function storageFails(res, statusCode, status = 400, message = undefined) {
  const e = res.error
  assert.ok(e, `expected StorageApiError ${statusCode}, got data ${JSON.stringify(res.data)}`)
  assert.equal(e.name, 'StorageApiError', `error ${e.name}: ${e.message}`)
  assert.equal(e.statusCode, statusCode, `statusCode of ${JSON.stringify(e)} (${e.message})`)
  assert.equal(e.status, status, `HTTP status of ${JSON.stringify(e)} (${e.message})`)
  if (message instanceof RegExp) assert.match(e.message, message)
  else if (message !== undefined) assert.equal(e.message, message)
  assert.equal(res.data, null)
  return e
}

/** Method, path (decoded) and status of the last request on the wire. */
export function wire() {
  const r = lastRequest()
  return { method: r.method, path: decodeURIComponent(new URL(r.url).pathname), status: r.status }
}

/** Like wire(), with the query string (`search`, '' when there is none) as well. */
export function wireWithQuery() {
  return { ...wire(), query: new URL(lastRequest().url).search }
}

// ------------------------------------------------------------------------ SQL
/**
 * SQL rendering the timestamptz `column` as Supabase Storage answers timestamps: UTC,
 * milliseconds, `Z` (`2021-02-17T04:43:32.770Z`, a node-postgres Date through JSON.stringify).
 */
export function storageTime(column) {
  return `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
}

/** A timestamp as Supabase Storage renders it. */
export const STORAGE_TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

/** The storage.objects row of an object, as Postgres renders it to JSON, its timestamps as Storage does (null when absent). */
export async function objectRow(bucket, name) {
  const rows = await sqlRows(
    `select id, name, bucket_id, owner, owner_id, version, metadata, user_metadata,
            ${storageTime('created_at')} as created_at, ${storageTime('updated_at')} as updated_at,
            ${storageTime('last_accessed_at')} as last_accessed_at
       from storage.objects where bucket_id = $1 and name = $2`,
    [bucket, name],
  )
  return rows[0] ?? null
}

/** The names of a bucket's objects, in byte order. */
export async function objectNames(bucket) {
  const rows = await sqlRows('select name from storage.objects where bucket_id = $1 order by name collate "C"', [bucket])
  return rows.map((r) => r.name)
}

// ------------------------------------------------------------------------ URLs and bytes
/** A plain GET (no apikey, no Authorization unless given), as a browser following a URL would send it. */
export async function fetchUrl(url, headers = {}) {
  const res = await fetch(url, { headers })
  const body = Buffer.from(await res.arrayBuffer())
  return { status: res.status, headers: res.headers, body, text: body.toString('utf8') }
}

export async function blobBytes(blob) {
  assert.ok(blob instanceof Blob, `expected a Blob, got ${blob}`)
  return Buffer.from(await blob.arrayBuffer())
}

/**
 * The file name a browser saves an attachment under: `filename*` (RFC 5987) first, else
 * `filename` (quoted or not; Supabase Storage sends it percent-encoded and unquoted).
 */
export function attachmentName(disposition) {
  assert.match(disposition ?? '', /^attachment\b/, `Content-Disposition ${disposition}`)
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition)
  if (star) return decodeURIComponent(star[1].trim())
  const plain = /filename=("([^"]*)"|[^;]+)/i.exec(disposition)
  assert.ok(plain, `no file name in ${disposition}`)
  return decodeURIComponent(plain[2] ?? plain[1].trim())
}

/** The claims of a signed-URL token (not verified: the server signs them with its own key). */
export function unverifiedClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'))
}

// ------------------------------------------------------------------------ users and policies
/**
 * Signs up `<prefix>-<label>-<random>@example.com` on a new anon-key client; returns the client
 * (`c`), the user's `id` and their access `token`.
 */
export async function signedUp(prefix, label) {
  const c = client(ANON_KEY)
  const email = `${prefix}-${label}-${suffix()}@example.com`
  const { data, error } = await c.auth.signUp({ email, password: PASSWORD })
  assert.equal(error, null, `signUp: ${error?.message}`)
  assert.ok(data.session, 'autoconfirm: signUp returns a session')
  return { c, id: data.user.id, token: data.session.access_token }
}

/**
 * Creates select/insert/update/delete policies (named `<tagPrefix>_<random>_<op>`) letting
 * users use only `<uid>/...` in `buckets` (one id or several); returns a function that drops
 * them.
 */
export async function folderPolicies(tagPrefix, buckets) {
  const tag = `${tagPrefix}_${suffix()}`
  const ids = [buckets].flat()
  const inBuckets = ids.length === 1 ? `bucket_id = '${ids[0]}'` : `bucket_id in (${ids.map((id) => `'${id}'`).join(', ')})`
  const own = `${inBuckets} and (storage.foldername(name))[1] = auth.uid()::text`
  await sqlExec(
    `create policy ${tag}_select on storage.objects for select to authenticated using (${own});
     create policy ${tag}_insert on storage.objects for insert to authenticated with check (${own});
     create policy ${tag}_update on storage.objects for update to authenticated using (${own}) with check (${own});
     create policy ${tag}_delete on storage.objects for delete to authenticated using (${own});`,
  )
  return async () => {
    for (const op of ['select', 'insert', 'update', 'delete']) {
      await sqlExec(`drop policy if exists ${tag}_${op} on storage.objects`)
    }
  }
}
