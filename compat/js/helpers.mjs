// Shared helpers for the supabase-js compatibility tests: environment, clients, a recording
// fetch (so a failing test prints the exact HTTP requests it sent), HS256 JWTs signed with
// node:crypto, and SQL access to the same database over the Unix socket.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { test } from 'node:test'
import pg from 'pg'
import { createClient } from '@supabase/supabase-js'

function env(name) {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set: run the suite through compat/run.sh`)
  return v
}

export const URL_ = env('FORGE_URL')
export const ANON_KEY = env('FORGE_ANON_KEY')
export const SERVICE_KEY = env('FORGE_SERVICE_KEY')
export const JWT_SECRET = fs.readFileSync(env('FORGE_JWT_SECRET_FILE'), 'utf8').trim()
export const DB_SOCKET_DIR = env('FORGE_DB_SOCKET_DIR')

export const USER_A = '11111111-1111-4111-8111-111111111111'
export const USER_B = '22222222-2222-4222-8222-222222222222'

// ---------------------------------------------------------------- request recording
// Every client built here uses this fetch, so each test can show what went over the wire.
let requestLog = []

function roleOf(auth) {
  const m = /^Bearer (.+)$/.exec(auth || '')
  if (!m) return auth || '(none)'
  try {
    const claims = JSON.parse(Buffer.from(m[1].split('.')[1], 'base64url').toString('utf8'))
    return `Bearer <jwt role=${claims.role}${claims.sub ? ' sub=' + claims.sub : ''}>`
  } catch {
    return 'Bearer <opaque>'
  }
}

async function recordingFetch(input, init = {}) {
  const req = input instanceof Request ? input : null
  const method = init.method || req?.method || 'GET'
  const url = String(req ? req.url : input)
  const headers = new Headers(init.headers || req?.headers || {})
  const entry = { method, url, headers: {}, status: null, responseHeaders: {} }
  for (const [k, v] of headers) {
    if (k === 'apikey' || k === 'x-client-info') continue
    entry.headers[k] = k === 'authorization' ? roleOf(v) : v
  }
  requestLog.push(entry)
  const res = await fetch(input, init)
  entry.status = res.status
  for (const [k, v] of res.headers) entry.responseHeaders[k] = v
  return res
}

/** The requests the current test has sent so far (most recent last). */
export function requests() {
  return requestLog
}
export function lastRequest() {
  return requestLog[requestLog.length - 1]
}

function describeRequests() {
  return requestLog
    .map((r) => {
      const u = new URL(r.url)
      const q = decodeURIComponent(u.search.replace(/\+/g, ' '))
      const hs = Object.entries(r.headers)
        .map(([k, v]) => `    ${k}: ${v}`)
        .join('\n')
      const rh = ['content-type', 'content-range', 'proxy-status']
        .filter((k) => r.responseHeaders[k])
        .map((k) => `${k}=${r.responseHeaders[k]}`)
        .join(' ')
      return `  ${r.method} ${u.pathname}${u.search}\n    (decoded: ${u.pathname}${q})\n${hs}\n    -> ${r.status} ${rh}`
    })
    .join('\n')
}

/** Like node:test's `test`, but a failure also reports every HTTP request the test sent. */
export function wireTest(name, fn) {
  return test(name, async (t) => {
    requestLog = []
    try {
      await fn(t)
    } catch (err) {
      const sent = describeRequests()
      if (sent) {
        err.message = `${err.message}\n--- requests sent ---\n${sent}`
      }
      throw err
    }
  })
}

// ---------------------------------------------------------------- clients
// Node 20 has no global WebSocket and supabase-js builds its realtime client eagerly; these
// tests never open a socket, so a transport that refuses to connect keeps the deps minimal.
class NoWebSocket {
  constructor() {
    throw new Error('realtime is not used by the REST compatibility tests')
  }
}

const baseOptions = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: NoWebSocket },
}

export function client(key = ANON_KEY, extra = {}) {
  return createClient(URL_, key, {
    ...baseOptions,
    ...extra,
    global: { ...(extra.global || {}), fetch: recordingFetch },
  })
}

export function userClient(token) {
  return client(ANON_KEY, { global: { headers: { Authorization: `Bearer ${token}` } } })
}

export function accessTokenClient(token) {
  return createClient(URL_, ANON_KEY, {
    realtime: { transport: NoWebSocket },
    accessToken: async () => token,
    global: { fetch: recordingFetch },
  })
}

// ---------------------------------------------------------------- JWT
export function signJwt(claims, secret = JWT_SECRET) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const head = enc({ alg: 'HS256', typ: 'JWT' })
  const body = enc(claims)
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

export function userToken(sub, secret = JWT_SECRET) {
  const now = Math.floor(Date.now() / 1000)
  return signJwt({ sub, role: 'authenticated', aud: 'authenticated', iat: now, exp: now + 3600 }, secret)
}

// ---------------------------------------------------------------- SQL
let pool = null
export function db() {
  if (!pool) pool = new pg.Pool({ host: DB_SOCKET_DIR, port: 5432, user: 'postgres', database: 'postgres', max: 2 })
  return pool
}
export async function closeDb() {
  if (pool) await pool.end()
  pool = null
}

/** Rows of `query` as the JSON Postgres itself produces (same encoding as the REST API). */
export async function sqlRows(query, params = []) {
  const { rows } = await db().query(`select coalesce(json_agg(q), '[]'::json) as j from (${query}) q`, params)
  return rows[0].j
}

export async function sqlOne(query, params = []) {
  const rows = await sqlRows(query, params)
  assert.equal(rows.length, 1, `SQL reference query returned ${rows.length} rows: ${query}`)
  return rows[0]
}

export async function sqlValue(query, params = []) {
  const { rows } = await db().query(query, params)
  return Object.values(rows[0])[0]
}

/** The CSV body PostgREST produces: a header line, then each row's record text without parens. */
export async function sqlCsv(query) {
  const { rows } = await db().query(
    `select (select string_agg(k, ',') from (select json_object_keys(row_to_json(h)) as k from (select * from (${query}) h0 limit 1) h) a) as header,
            (select coalesce(string_agg(substring(q::text, 2, length(q::text) - 2), E'\\n'), '') from (${query}) q) as body`,
  )
  return { header: rows[0].header, body: rows[0].body }
}

export async function plannedRows(query) {
  const { rows } = await db().query(`explain (format json) ${query}`)
  return rows[0]['QUERY PLAN'][0].Plan['Plan Rows']
}

/** Runs SQL statements (no result), e.g. to seed or clean up the rows a write test owns. */
export async function sqlExec(query, params = []) {
  await db().query(query, params)
}

/**
 * Runs `query` in a transaction that is always rolled back and returns the error Postgres raised,
 * shaped like a PostgREST error body ({code, message, details, hint}). Options: `role` (set local
 * role), `claims` (request.jwt.claims, read by auth.uid()) and `readOnly` (begin read only).
 */
export async function sqlError(query, params = [], { role, claims, readOnly = false } = {}) {
  const c = await db().connect()
  try {
    await c.query(readOnly ? 'begin read only' : 'begin')
    if (claims) await c.query("select set_config('request.jwt.claims', $1, true)", [JSON.stringify(claims)])
    if (role) await c.query(`set local role ${role}`)
    try {
      await c.query(query, params)
    } catch (e) {
      return { code: e.code, message: e.message, details: e.detail ?? null, hint: e.hint ?? null }
    }
    throw new Error(`the SQL reference statement did not fail: ${query}`)
  } finally {
    await c.query('rollback').catch(() => {})
    c.release()
  }
}

// ---------------------------------------------------------------- response assertions
/** Asserts a successful response and returns its data. */
export function ok(res) {
  assert.equal(res.error, null, `unexpected error: ${JSON.stringify(res.error)}`)
  assert.ok(res.status >= 200 && res.status < 300, `status ${res.status}`)
  return res.data
}

/** Asserts an error response with the given HTTP status and code; returns the error. */
export function fails(res, status, code) {
  assert.ok(res.error, `expected error ${code}, got status ${res.status} and data ${JSON.stringify(res.data)}`)
  assert.equal(res.status, status, `status for ${JSON.stringify(res.error)}`)
  assert.equal(res.error.code, code, `code for ${JSON.stringify(res.error)}`)
  assert.equal(res.data, null)
  return res.error
}
