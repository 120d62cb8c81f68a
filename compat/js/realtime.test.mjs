// supabase-js (pinned in compat/package.json; realtime-js speaks vsn 2.0.0 by default) against
// forge-server's Realtime at /realtime/v1: channels, broadcast over the socket and over REST
// (httpSend, and send() before joining), presence, postgres_changes with row-level security and
// filters (each change compared with the row selected back in SQL), private channels with
// policies on realtime.messages, realtime.send and realtime.broadcast_changes from SQL, setAuth,
// binary payloads, and non-ASCII topics and payloads.
//
// Node 20 has no global WebSocket: the clients get the `ws` package as their transport, wrapped
// so that a failing test prints every frame each socket sent and received.
// Tables and policies: the `-- realtime` section of compat/schema.sql.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after } from 'node:test'
import pg from 'pg'
import WebSocket from 'ws'
import { createClient } from '@supabase/supabase-js'
import { ANON_KEY, DB_SOCKET_DIR, SERVICE_KEY, URL_, signJwt, wireTest } from './helpers.mjs'

const PASSWORD = 'correct-horse-42'
const WAIT = 5000 // how long an expected event may take
const QUIET = 700 // how long to wait to be sure an event does not come

// ---------------------------------------------------------------- frame and request recording
let frames = []
let httpLog = []

/** A token as `<jwt role=... sub=... expired>` (never the token itself). */
function describeToken(token) {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'))
    const expired = claims.exp && claims.exp < Date.now() / 1000 ? ' expired' : ''
    return `<jwt role=${claims.role}${claims.sub ? ' sub=' + claims.sub : ''}${expired}>`
  } catch {
    return token.startsWith('sb_') ? '<api key>' : '<opaque token>'
  }
}

function renderFrame(data, isBinary) {
  if (!isBinary && typeof data === 'string') {
    return data.replace(/"access_token":"([^"]+)"/g, (_, t) => `"access_token":"${describeToken(t)}"`)
  }
  const bytes = Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data)
  const printable = bytes.toString('latin1').replace(/[^\x20-\x7e]/g, '.')
  return `<binary kind=${bytes[0]} ${bytes.length} bytes: ${bytes.toString('hex').slice(0, 160)} | ${printable.slice(0, 80)}>`
}

/** A `ws` WebSocket class that records the frames of the socket it opens under `label`. */
function recordingTransport(label) {
  return class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols)
      const u = new globalThis.URL(url)
      frames.push({ label, dir: '**', text: `open ${u.pathname}?vsn=${u.searchParams.get('vsn')}`, raw: null })
      this.on('message', (data, isBinary) => {
        frames.push({ label, dir: '<-', text: renderFrame(isBinary ? data : data.toString('utf8'), isBinary), raw: data, binary: isBinary })
      })
      this.on('close', (code, reason) => frames.push({ label, dir: '**', text: `closed ${code} ${reason}`, raw: null }))
    }

    send(data, ...rest) {
      const binary = typeof data !== 'string'
      frames.push({ label, dir: '->', text: renderFrame(data, binary), raw: data, binary })
      return super.send(data, ...rest)
    }
  }
}

async function recordingFetch(input, init = {}) {
  const url = String(input instanceof Request ? input.url : input)
  const entry = { method: init.method || 'GET', url, contentType: null, body: null, status: null, response: null }
  const h = new Headers(init.headers || {})
  entry.contentType = h.get('content-type')
  if (typeof init.body === 'string') entry.body = init.body
  else if (init.body) entry.body = `<${init.body.byteLength ?? '?'} bytes>`
  httpLog.push(entry)
  const res = await fetch(input, init)
  entry.status = res.status
  try {
    entry.response = await res.clone().text()
  } catch {}
  return res
}

function describeWire() {
  const f = frames.map((x) => `  [${x.label}] ${x.dir} ${x.text}`).join('\n')
  const h = httpLog
    .map((r) => {
      const u = new globalThis.URL(r.url)
      return `  ${r.method} ${u.pathname}${u.search} (${r.contentType}) ${r.body ?? ''}\n    -> ${r.status} ${r.response ?? ''}`
    })
    .join('\n')
  return `--- frames ---\n${f || '  (none)'}\n--- realtime HTTP requests ---\n${h || '  (none)'}`
}

// ---------------------------------------------------------------- clients
let openClients = []

/** A supabase-js client whose realtime socket is recorded as `label`. */
function rtClient(label, { key = ANON_KEY, vsn, accessToken } = {}) {
  const realtime = { transport: recordingTransport(label), timeout: WAIT }
  if (vsn) realtime.vsn = vsn
  const options = {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime,
    global: { fetch: recordingFetch },
  }
  if (accessToken) options.accessToken = async () => accessToken
  const c = createClient(URL_, key, options)
  openClients.push(c)
  return c
}

/** Signs up a fresh user on a client of its own; returns {client, id, token}. */
async function signedInUser(label, opts = {}) {
  const c = rtClient(label, opts)
  const email = `rt-js-${label.toLowerCase()}-${crypto.randomUUID().slice(0, 8)}@example.com`
  const { data, error } = await c.auth.signUp({ email, password: PASSWORD })
  assert.equal(error, null, `sign-up of ${email}: ${JSON.stringify(error)}`)
  assert.ok(data.session, `sign-up of ${email} returned no session (auto-confirm is expected on the main server)`)
  return { client: c, id: data.user.id, token: data.session.access_token }
}

/** wireTest plus frames: a failure prints each socket's frames; every client is closed after. */
function rtTest(name, fn) {
  return wireTest(name, async (t) => {
    frames = []
    httpLog = []
    openClients = []
    try {
      await fn(t)
    } catch (err) {
      err.message = `${err.message}\n${describeWire()}`
      throw err
    } finally {
      for (const c of openClients) {
        try {
          await c.removeAllChannels()
          await c.realtime.disconnect()
        } catch {}
      }
    }
  })
}

// ---------------------------------------------------------------- waiting
function timeout(ms, what) {
  let timer
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return { p, clear: () => clearTimeout(timer) }
}

/** Collects a callback's arguments; `next` waits for one that matches. */
class Inbox {
  constructor(name) {
    this.name = name
    this.items = []
    this.waiters = []
    this.push = this.push.bind(this)
  }

  push(item) {
    this.items.push(item)
    for (const w of [...this.waiters]) {
      if (w.pred(item)) {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        w.resolve(item)
      }
    }
  }

  async next(pred = () => true, what = 'an event', ms = WAIT) {
    const seen = this.items.find(pred)
    if (seen) {
      this.items.splice(this.items.indexOf(seen), 1)
      return seen
    }
    const t = timeout(ms, `${what} on ${this.name} (got: ${JSON.stringify(this.items).slice(0, 600)})`)
    let waiter
    const p = new Promise((resolve) => {
      waiter = { pred, resolve }
      this.waiters.push(waiter)
    })
    try {
      const item = await Promise.race([p, t.p])
      this.items.splice(this.items.indexOf(item), 1)
      return item
    } finally {
      t.clear()
      const i = this.waiters.indexOf(waiter)
      if (i >= 0) this.waiters.splice(i, 1)
    }
  }

  /** Asserts that nothing matching arrives within `ms`. */
  async none(pred = () => true, what = 'no event', ms = QUIET) {
    await new Promise((r) => setTimeout(r, ms))
    const bad = this.items.filter(pred)
    assert.deepEqual(bad, [], `${what} on ${this.name}`)
  }
}

/** Subscribes and returns {status, err} of the first terminal status (SUBSCRIBED or an error). */
function subscribeStatus(channel, ms = WAIT) {
  const statuses = new Inbox(`status of ${channel.topic}`)
  channel.subscribe((status, err) => statuses.push({ status, err }))
  channel.statuses = statuses
  return statuses.next((s) => s.status !== 'CLOSED', `a subscribe status for ${channel.topic}`, ms)
}

async function subscribed(channel) {
  const { status, err } = await subscribeStatus(channel)
  assert.equal(status, 'SUBSCRIBED', `subscribe ${channel.topic}: ${status} ${err?.message ?? ''}`)
  return channel
}

/** Subscribes a channel with postgres_changes bindings and waits for "Subscribed to PostgreSQL". */
async function subscribedToChanges(channel) {
  const system = new Inbox(`system of ${channel.topic}`)
  channel.on('system', {}, system.push)
  await subscribed(channel)
  const msg = await system.next((m) => m.extension === 'postgres_changes', 'the postgres_changes system message')
  assert.equal(msg.status, 'ok', `postgres_changes subscription: ${JSON.stringify(msg)}`)
  assert.equal(msg.message, 'Subscribed to PostgreSQL')
  return channel
}

/**
 * After a join, realtime-js calls setAuth() with its session callback (and pushes `access_token`
 * if that token differs). Waits for that call to settle, so that a later manual setAuth(token)
 * is not overtaken by it (the client has no public hook for this: `_authPromise` is internal).
 */
async function authSettled(client) {
  await new Promise((r) => setTimeout(r, 50))
  if (client.realtime._authPromise) await client.realtime._authPromise.catch(() => {})
  await new Promise((r) => setTimeout(r, 50))
}

const uniq = (prefix) => `${prefix}-${crypto.randomUUID().slice(0, 8)}`

// ---------------------------------------------------------------- SQL (in UTC, as Supabase runs)
let sqlClient = null
async function sql(query, params = []) {
  if (!sqlClient) {
    sqlClient = new pg.Client({ host: DB_SOCKET_DIR, port: 5432, user: 'postgres', database: 'postgres', options: '-c TimeZone=UTC' })
    await sqlClient.connect()
  }
  return (await sqlClient.query(query, params)).rows
}
after(async () => {
  if (sqlClient) await sqlClient.end()
})

/** The row as Supabase Realtime renders it (to_jsonb in UTC). */
async function rowJson(table, id) {
  const rows = await sql(`select to_jsonb(t) as j from public.${table} t where id = $1`, [id])
  assert.equal(rows.length, 1, `${table} row ${id}`)
  return rows[0].j
}

async function columnsOf(table) {
  return sql(
    `select a.attname::text as name, t.typname::text as type from pg_attribute a join pg_type t on t.oid = a.atttypid
      where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum`,
    [`public.${table}`],
  )
}

async function insertNote(owner, fields = {}) {
  const f = { title: 'note', score: 0, done: false, tags: [], meta: null, ratio: null, ...fields }
  const rows = await sql(
    `insert into public.rt_notes (owner, title, score, done, tags, meta, ratio) values ($1, $2, $3, $4, $5, $6, $7) returning id`,
    [owner, f.title, f.score, f.done, f.tags, f.meta === null ? null : JSON.stringify(f.meta), f.ratio],
  )
  return Number(rows[0].id)
}

function frameTexts(label, dir) {
  return frames.filter((f) => f.label === label && f.dir === dir && !f.binary).map((f) => JSON.parse(f.text))
}

// ================================================================ connection
rtTest('realtime: the socket opens with vsn=2.0.0 and the server answers heartbeats on topic phoenix', async () => {
  const c = rtClient('A')
  const beats = new Inbox('heartbeats')
  c.realtime.onHeartbeat((status) => beats.push(status))
  const ch = await subscribed(c.channel(uniq('hb')))
  const open = frames.find((f) => f.label === 'A' && f.text.startsWith('open'))
  assert.equal(open.text, 'open /realtime/v1/websocket?vsn=2.0.0')
  await c.realtime.sendHeartbeat()
  await beats.next((s) => s === 'ok', 'a heartbeat reply')
  const hb = frameTexts('A', '->').find((f) => f[3] === 'heartbeat')
  const reply = frameTexts('A', '<-').find((f) => f[2] === 'phoenix' && f[1] === hb[1])
  assert.deepEqual(reply, [null, hb[1], 'phoenix', 'phx_reply', { status: 'ok', response: {} }])
  assert.equal(c.realtime.isConnected(), true)
  assert.equal(ch.state, 'joined')
})

rtTest('realtime: a socket without a valid apikey is refused', async () => {
  // A plain ws handshake: the refusal is an HTTP answer, not a WebSocket.
  const base = URL_.replace(/^http/, 'ws') + '/realtime/v1/websocket?vsn=2.0.0'
  for (const [url, what] of [
    [base, 'no apikey'],
    [`${base}&apikey=not-a-jwt`, 'a malformed apikey'],
  ]) {
    const status = await new Promise((resolve) => {
      const ws = new WebSocket(url)
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode))
      ws.on('open', () => {
        ws.close()
        resolve('open')
      })
      ws.on('error', () => resolve('error'))
    })
    assert.equal(status, 401, `handshake with ${what}`)
  }
})

rtTest('realtime: the server completes the closing handshake (a client close frame is answered, code 1000)', async () => {
  // RFC 6455 5.5.1: the endpoint that receives a Close frame answers with a Close frame.
  // Without the answer the client sees 1006 (abnormal closure) on every disconnect().
  const url = `${URL_.replace(/^http/, 'ws')}/realtime/v1/websocket?apikey=${ANON_KEY}&vsn=2.0.0`
  const Recording = recordingTransport('raw')
  const ws = new Recording(url)
  await new Promise((resolve, reject) => {
    ws.on('open', resolve)
    ws.on('error', reject)
  })
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  ws.close(1000, 'bye')
  const t = timeout(WAIT, 'the close')
  try {
    const { code } = await Promise.race([closed, t.p])
    assert.equal(code, 1000, `close code seen by the client after it sent Close(1000): ${code} (1006 = the server dropped the connection without a Close frame)`)
  } finally {
    t.clear()
  }
})

// ================================================================ broadcast
rtTest('broadcast: send over the socket with self and ack, on() by event and "*", self:false not echoed', async () => {
  const topic = uniq('bc')
  const a = rtClient('A')
  const b = rtClient('B')
  const aGot = new Inbox('A broadcasts')
  const bGot = new Inbox('B broadcasts')
  const bAll = new Inbox('B broadcasts (*)')
  const chA = a.channel(topic, { config: { broadcast: { self: true, ack: true } } }).on('broadcast', { event: 'greet' }, aGot.push)
  const chB = b.channel(topic).on('broadcast', { event: 'greet' }, bGot.push).on('broadcast', { event: '*' }, bAll.push)
  await subscribed(chA)
  await subscribed(chB)
  assert.equal(chA.topic, `realtime:${topic}`)

  // ack: true waits for the server's reply to the push
  const payload = { text: 'hello', n: 1, nested: { ok: true, list: [1, 'two', null] } }
  const res = await chA.send({ type: 'broadcast', event: 'greet', payload }, { timeout: WAIT })
  assert.equal(res, 'ok', 'send() with ack resolves ok once the server replies')
  const got = await bGot.next(() => true, 'the greet broadcast')
  assert.deepEqual(got, { type: 'broadcast', event: 'greet', payload })
  const echo = await aGot.next(() => true, 'the self echo (broadcast.self = true)')
  assert.deepEqual(echo, { type: 'broadcast', event: 'greet', payload })
  assert.deepEqual((await bAll.next()).payload, payload)

  // the push went out as a binary user-broadcast frame (kind 3), JSON-encoded
  const pushed = frames.find((f) => f.label === 'A' && f.dir === '->' && f.binary)
  assert.ok(pushed, 'realtime-js sends a broadcast as a binary frame on vsn 2.0.0')
  assert.equal(Buffer.from(pushed.raw)[0], 3)

  // B (self: false, ack: false) sends another event: A gets it, B does not get its own
  const aOther = new Inbox('A other2')
  // (on() for broadcast may be added after subscribe)
  chA.on('broadcast', { event: 'other2' }, aOther.push)
  assert.equal(await chB.send({ type: 'broadcast', event: 'other', payload: { from: 'B' } }), 'ok')
  await chB.send({ type: 'broadcast', event: 'other2', payload: { from: 'B', i: 2 } })
  assert.deepEqual(await aOther.next(() => true, 'the other2 broadcast'), { type: 'broadcast', event: 'other2', payload: { from: 'B', i: 2 } })
  await bAll.none((m) => m.event === 'other' || m.event === 'other2', 'B must not receive its own broadcasts (self: false)')
  // A's "greet" listener did not fire for other events
  await aGot.none(() => true, 'A greet listener got a non-greet event')
})

rtTest('broadcast: httpSend answers exactly 202 and reaches subscribers; binary httpSend arrives as an ArrayBuffer', async () => {
  const topic = uniq('http')
  const a = rtClient('A')
  const b = rtClient('B')
  const got = new Inbox('B broadcasts')
  const chB = b.channel(topic).on('broadcast', { event: '*' }, got.push)
  await subscribed(chB)

  const chA = a.channel(topic) // never subscribed: httpSend needs no socket
  const res = await chA.httpSend('news', { headline: 'Grüße', n: 3 })
  assert.deepEqual(res, { success: true })
  const req = httpLog.at(-1)
  assert.equal(req.status, 202)
  assert.equal(new globalThis.URL(req.url).pathname, `/realtime/v1/api/broadcast/${topic}/events/news`)
  assert.deepEqual(await got.next((m) => m.event === 'news', 'the httpSend broadcast'), {
    type: 'broadcast',
    event: 'news',
    payload: { headline: 'Grüße', n: 3 },
  })

  const bytes = new Uint8Array([0, 1, 2, 250, 255, 10, 13])
  assert.deepEqual(await chA.httpSend('blob', bytes), { success: true })
  assert.equal(httpLog.at(-1).status, 202)
  assert.equal(httpLog.at(-1).contentType, 'application/octet-stream')
  const blob = await got.next((m) => m.event === 'blob', 'the binary httpSend broadcast')
  assert.ok(blob.payload instanceof ArrayBuffer, `binary payload arrives as an ArrayBuffer, got ${Object.prototype.toString.call(blob.payload)}`)
  assert.deepEqual([...new Uint8Array(blob.payload)], [...bytes])
  const kind4 = frames.find((f) => f.label === 'B' && f.dir === '<-' && f.binary)
  assert.ok(kind4, 'the binary broadcast reaches vsn 2.0.0 as a binary frame')
  assert.equal(Buffer.from(kind4.raw)[0], 4)
})

rtTest('broadcast: send() on a channel that is not joined falls back to POST /realtime/v1/api/broadcast', async () => {
  const topic = uniq('rest')
  const a = rtClient('A')
  const b = rtClient('B')
  const got = new Inbox('B broadcasts')
  await subscribed(b.channel(topic).on('broadcast', { event: 'fallback' }, got.push))
  const chA = a.channel(topic)
  const warn = console.warn
  console.warn = () => {}
  let res
  try {
    res = await chA.send({ type: 'broadcast', event: 'fallback', payload: { via: 'rest', ü: 'ß' } })
  } finally {
    console.warn = warn
  }
  assert.equal(res, 'ok')
  const req = httpLog.at(-1)
  assert.equal(req.method, 'POST')
  assert.equal(new globalThis.URL(req.url).pathname, '/realtime/v1/api/broadcast')
  assert.deepEqual(JSON.parse(req.body), { messages: [{ topic, event: 'fallback', payload: { via: 'rest', ü: 'ß' }, private: false }] })
  assert.equal(req.status, 202)
  assert.deepEqual(await got.next(() => true, 'the REST broadcast'), {
    type: 'broadcast',
    event: 'fallback',
    payload: { via: 'rest', ü: 'ß' },
  })
})

rtTest('broadcast: binary (ArrayBuffer) payloads round-trip between two clients over the socket, with ack', async () => {
  const topic = uniq('bin')
  const a = rtClient('A')
  const b = rtClient('B')
  const got = new Inbox('B broadcasts')
  const chA = a.channel(topic, { config: { broadcast: { ack: true } } })
  await subscribed(chA)
  await subscribed(b.channel(topic).on('broadcast', { event: 'bytes' }, got.push))
  const bytes = new Uint8Array(300)
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256
  const res = await chA.send({ type: 'broadcast', event: 'bytes', payload: bytes.buffer }, { timeout: WAIT })
  assert.equal(res, 'ok', 'ack for a binary push')
  const sent = frames.find((f) => f.label === 'A' && f.dir === '->' && f.binary)
  const head = Buffer.from(sent.raw)
  assert.equal(head[0], 3)
  assert.equal(head[6], 0, 'encoding byte 0 = raw bytes')
  const m = await got.next(() => true, 'the binary broadcast')
  assert.equal(m.type, 'broadcast')
  assert.equal(m.event, 'bytes')
  assert.ok(m.payload instanceof ArrayBuffer, `payload is ${Object.prototype.toString.call(m.payload)}`)
  assert.deepEqual([...new Uint8Array(m.payload)], [...bytes])
})

rtTest('broadcast: non-ASCII topics and payloads (vsn 2.0.0 and 1.0.0 sockets, REST)', async () => {
  const topic = `raum-grüße-日本-${crypto.randomUUID().slice(0, 6)}`
  const v2 = rtClient('V2')
  const v1 = rtClient('V1', { vsn: '1.0.0' })
  const sender = rtClient('S1', { vsn: '1.0.0' })
  const got2 = new Inbox('v2 broadcasts')
  const got1 = new Inbox('v1 broadcasts')
  await subscribed(v2.channel(topic).on('broadcast', { event: '*' }, got2.push))
  await subscribed(v1.channel(topic).on('broadcast', { event: '*' }, got1.push))
  const chS = sender.channel(topic, { config: { broadcast: { ack: true } } })
  await subscribed(chS)
  assert.ok(frames.some((f) => f.label === 'V1' && f.text === 'open /realtime/v1/websocket?vsn=1.0.0'))

  // over a 1.0.0 socket (text frames, so the topic's UTF-8 survives)
  const payload = { text: 'Grüße aus 東京 🌍', emoji: '🎉', quote: '"\\' }
  assert.equal(await chS.send({ type: 'broadcast', event: 'msg', payload }, { timeout: WAIT }), 'ok')
  assert.deepEqual(await got2.next((m) => m.event === 'msg', 'the broadcast on the vsn 2.0.0 socket'), { type: 'broadcast', event: 'msg', payload })
  assert.deepEqual(await got1.next((m) => m.event === 'msg', 'the broadcast on the vsn 1.0.0 socket'), { type: 'broadcast', event: 'msg', payload })
  const v1Frame = frameTexts('V1', '<-').find((f) => f.event === 'broadcast')
  assert.equal(v1Frame.topic, `realtime:${topic}`)
  assert.equal(v1Frame.ref, null)

  // over REST, with a non-ASCII event name too
  assert.deepEqual(await chS.httpSend('événement', { ok: 'ü' }), { success: true })
  assert.equal(httpLog.at(-1).status, 202)
  assert.deepEqual(await got2.next((m) => m.event === 'événement', 'the REST broadcast on v2'), { type: 'broadcast', event: 'événement', payload: { ok: 'ü' } })
  assert.deepEqual(await got1.next((m) => m.event === 'événement', 'the REST broadcast on v1'), { type: 'broadcast', event: 'événement', payload: { ok: 'ü' } })

  // a binary payload on a non-ASCII topic: a kind-4 frame whose topic is UTF-8 (v2 only)
  assert.deepEqual(await chS.httpSend('raw', new Uint8Array([1, 2, 3])), { success: true })
  const raw = await got2.next((m) => m.event === 'raw', 'the binary broadcast on v2')
  assert.deepEqual([...new Uint8Array(raw.payload)], [1, 2, 3])
  await got1.none((m) => m.event === 'raw', 'a binary payload cannot reach a 1.0.0 socket')
  // the 1.0.0 socket still works afterwards
  assert.equal(await chS.send({ type: 'broadcast', event: 'after', payload: { i: 1 } }, { timeout: WAIT }), 'ok')
  await got1.next((m) => m.event === 'after', 'a broadcast after the binary one on v1')
})

// ================================================================ channels
rtTest('channels: getChannels, unsubscribe (CLOSED), removeChannel and removeAllChannels', async () => {
  const a = rtClient('A')
  const b = rtClient('B')
  const names = [uniq('one'), uniq('two'), uniq('three')]
  const got = new Inbox('A broadcasts')
  const chans = names.map((n) => a.channel(n).on('broadcast', { event: 'e' }, (m) => got.push({ ...m, topic: n })))
  for (const ch of chans) await subscribed(ch)
  assert.deepEqual(
    a.getChannels().map((c) => c.topic).sort(),
    names.map((n) => `realtime:${n}`).sort(),
  )
  const senders = names.map((n) => b.channel(n))
  for (const s of senders) await subscribed(s)

  // unsubscribe: the leave is acknowledged, the status callback gets CLOSED, no more messages
  assert.equal(await chans[0].unsubscribe(), 'ok')
  await chans[0].statuses.next((s) => s.status === 'CLOSED', 'the CLOSED status after unsubscribe')
  const leave = frameTexts('A', '->').find((f) => f[3] === 'phx_leave' && f[2] === `realtime:${names[0]}`)
  assert.ok(leave, 'a phx_leave was sent')
  // (phoenix resolves the leave at once; the server's reply and phx_close follow)
  await waitUntil(
    () => frameTexts('A', '<-').some((f) => f[3] === 'phx_reply' && f[1] === leave[1] && f[4].status === 'ok'),
    'the leave is answered ok',
  )
  await waitUntil(() => frameTexts('A', '<-').some((f) => f[3] === 'phx_close' && f[2] === `realtime:${names[0]}` && f[0] === leave[0]), 'phx_close follows the leave')
  await senders[0].send({ type: 'broadcast', event: 'e', payload: { after: 'unsubscribe' } })

  // removeChannel
  assert.equal(await a.removeChannel(chans[1]), 'ok')
  assert.deepEqual(a.getChannels().map((c) => c.topic), [`realtime:${names[2]}`])
  await senders[1].send({ type: 'broadcast', event: 'e', payload: { after: 'remove' } })

  // the third still gets messages
  await senders[2].send({ type: 'broadcast', event: 'e', payload: { still: 'here' } })
  const m = await got.next(() => true, 'the broadcast on the remaining channel')
  assert.equal(m.topic, names[2])
  await got.none(() => true, 'no broadcast reaches an unsubscribed or removed channel')

  // removeAllChannels
  const results = await a.removeAllChannels()
  assert.deepEqual(results, ['ok'])
  assert.deepEqual(a.getChannels(), [])
  await senders[2].send({ type: 'broadcast', event: 'e', payload: { after: 'removeAll' } })
  await got.none(() => true, 'no broadcast after removeAllChannels')
})

rtTest('channels: a topic with nothing after realtime: is refused with TopicNameRequired', async () => {
  const a = rtClient('A')
  const ch = a.channel('')
  const { status, err } = await subscribeStatus(ch)
  assert.equal(status, 'CHANNEL_ERROR')
  assert.equal(err.message, 'TopicNameRequired: You must provide a topic name')
  await a.removeChannel(ch)
})

// ================================================================ presence
rtTest('presence: track, sync/join/leave events, presenceState, untrack, and leave on unsubscribe', async () => {
  const topic = uniq('presence')
  const a = rtClient('A')
  const b = rtClient('B')
  const bEvents = new Inbox('B presence')
  const aEvents = new Inbox('A presence')
  const chA = a
    .channel(topic, { config: { presence: { key: 'alice' } } })
    .on('presence', { event: 'sync' }, () => aEvents.push({ event: 'sync' }))
  const chB = b
    .channel(topic, { config: { presence: { key: 'bob' } } })
    .on('presence', { event: 'sync' }, () => bEvents.push({ event: 'sync' }))
    .on('presence', { event: 'join' }, bEvents.push)
    .on('presence', { event: 'leave' }, bEvents.push)
  await subscribed(chA)
  await subscribed(chB)
  // presence_state arrives right after the join reply, so sync fires even with nobody present
  await bEvents.next((e) => e.event === 'sync', 'the first sync (presence_state after the join)')
  const join = frameTexts('B', '->').find((f) => f[3] === 'phx_join')
  assert.equal(join[4].config.presence.enabled, true)
  assert.equal(join[4].config.presence.key, 'bob')
  const state = frameTexts('B', '<-').find((f) => f[3] === 'presence_state')
  assert.ok(state, 'presence_state is pushed')
  const replyAt = frames.findIndex((f) => f.label === 'B' && f.dir === '<-' && f.text.includes('"phx_reply"') && f.text.startsWith(`["${join[0]}"`))
  const stateAt = frames.findIndex((f) => f.label === 'B' && f.dir === '<-' && f.text.includes('"presence_state"'))
  assert.ok(replyAt >= 0 && stateAt > replyAt, 'presence_state comes after the join reply')

  const meta = { name: 'Ada Ü', online_at: '2024-01-01T00:00:00Z', n: 1 }
  assert.equal(await chA.track(meta), 'ok')
  const joined = await bEvents.next((e) => e.event === 'join' && e.key === 'alice', 'the join of alice')
  assert.equal(joined.newPresences.length, 1)
  const { presence_ref, ...rest } = joined.newPresences[0]
  assert.deepEqual(rest, meta)
  assert.equal(typeof presence_ref, 'string')
  await bEvents.next((e) => e.event === 'sync', 'a sync after the join')
  assert.deepEqual(Object.keys(chB.presenceState()), ['alice'])
  assert.deepEqual(chB.presenceState().alice.map(({ presence_ref: _, ...m }) => m), [meta])
  await aEvents.next((e) => e.event === 'sync', 'the tracker gets its own presence too')
  assert.deepEqual(Object.keys(chA.presenceState()), ['alice'])

  // untrack: leave
  assert.equal(await chA.untrack(), 'ok')
  const left = await bEvents.next((e) => e.event === 'leave' && e.key === 'alice', 'the leave of alice after untrack')
  assert.deepEqual(left.leftPresences.map(({ presence_ref: _, ...m }) => m), [meta])
  await waitUntil(() => !chB.presenceState().alice, 'alice gone from B state', () => JSON.stringify(chB.presenceState()))

  // track, then unsubscribe: leave too
  assert.equal(await chA.track({ name: 'again' }), 'ok')
  await bEvents.next((e) => e.event === 'join' && e.key === 'alice' && e.newPresences[0].name === 'again', 'the join of alice again')
  assert.equal(await chA.unsubscribe(), 'ok')
  await bEvents.next((e) => e.event === 'leave' && e.key === 'alice', 'the leave of alice after unsubscribe')
  assert.deepEqual(chB.presenceState(), {})
})

async function waitUntil(cond, what, show = () => '', ms = WAIT) {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}: ${show()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

rtTest('presence: a joiner gets the existing presences in presence_state (sync)', async () => {
  const topic = uniq('presence-state')
  const a = rtClient('A')
  const b = rtClient('B')
  const chA = a.channel(topic, { config: { presence: { key: 'first' } } })
  await subscribed(chA)
  assert.equal(await chA.track({ who: 'first' }), 'ok')
  const synced = new Inbox('B sync')
  const events = new Inbox('B join/leave')
  const chB = b
    .channel(topic, { config: { presence: { key: 'second' } } })
    .on('presence', { event: 'sync' }, () => synced.push(1))
    .on('presence', { event: 'join' }, events.push)
    .on('presence', { event: 'leave' }, events.push)
  await subscribed(chB)
  await synced.next(() => true, 'the sync from presence_state')
  assert.deepEqual(Object.keys(chB.presenceState()), ['first'])
  assert.equal(chB.presenceState().first[0].who, 'first')
  const state = frameTexts('B', '<-').find((f) => f[3] === 'presence_state')
  assert.equal(state[4].first.metas.length, 1)
  assert.equal(typeof state[4].first.metas[0].phx_ref, 'string')

  // tracking again replaces the presence: one presence_diff with the new meta in joins and the
  // old one in leaves (as Phoenix.Presence does), which B sees as a join and a leave event.
  // (presenceState() is not checked here: realtime-js 2.109.0's join callback strips phx_ref
  // from the metas it keeps, so the leave half of such a diff cannot remove the old meta.)
  await events.next((e) => e.event === 'join' && e.key === 'first', 'the join event from presence_state')
  assert.equal(await chA.track({ who: 'first', v: 2 }), 'ok')
  const joined = await events.next((e) => e.event === 'join' && e.newPresences[0].v === 2, 'the join of the re-tracked presence')
  assert.deepEqual(joined.newPresences.map(({ presence_ref: _, ...m }) => m), [{ who: 'first', v: 2 }])
  const left = await events.next((e) => e.event === 'leave', 'the leave of the replaced presence')
  assert.deepEqual(left.leftPresences.map(({ presence_ref: _, ...m }) => m), [{ who: 'first' }])
  const diff = frameTexts('B', '<-').find((f) => f[3] === 'presence_diff')
  assert.deepEqual(Object.keys(diff[4].joins), ['first'])
  assert.deepEqual(Object.keys(diff[4].leaves), ['first'])
  assert.equal(diff[4].leaves.first.metas[0].phx_ref, state[4].first.metas[0].phx_ref)
  assert.notEqual(diff[4].joins.first.metas[0].phx_ref, state[4].first.metas[0].phx_ref)
})

// ================================================================ postgres_changes
rtTest('postgres_changes: INSERT/UPDATE/DELETE/* under RLS; each user gets only their rows, equal to SQL', async () => {
  const A = await signedInUser('A')
  const B = await signedInUser('B')
  const mk = (u, label) => {
    const inbox = { ins: new Inbox(`${label} INSERT`), upd: new Inbox(`${label} UPDATE`), del: new Inbox(`${label} DELETE`), all: new Inbox(`${label} *`) }
    const ch = u.client
      .channel(uniq(`changes-${label}`))
      .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'rt_notes' }, inbox.ins.push)
      .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'rt_notes' }, inbox.upd.push)
      .on('postgres_changes', { event: 'DELETE', schema: 'public', table: 'rt_notes' }, inbox.del.push)
      .on('postgres_changes', { event: '*', schema: 'public', table: 'rt_notes' }, inbox.all.push)
    return { ch, inbox }
  }
  const a = mk(A, 'A')
  const b = mk(B, 'B')
  await subscribedToChanges(a.ch)
  await subscribedToChanges(b.ch)
  // the join carried the user's token and the reply echoed the bindings with integer ids
  const joinA = frameTexts('A', '->').find((f) => f[3] === 'phx_join')
  assert.equal(joinA[4].access_token, `<jwt role=authenticated sub=${A.id}>`)
  const replyA = frameTexts('A', '<-').find((f) => f[3] === 'phx_reply' && f[1] === joinA[1])
  assert.deepEqual(
    replyA[4].response.postgres_changes.map(({ id, ...rest }) => (assert.ok(Number.isInteger(id), `binding id ${id}`), rest)),
    joinA[4].config.postgres_changes,
  )

  const columns = await columnsOf('rt_notes')
  const idA = await insertNote(A.id, { title: 'for A', score: 5, done: true, tags: ['x', 'y z'], meta: { k: [1, 2], s: 'ü' }, ratio: '1.25' })
  const idB = await insertNote(B.id, { title: 'for B', score: 6 })

  const ins = await a.inbox.ins.next(() => true, "A's INSERT")
  assert.equal(ins.eventType, 'INSERT')
  assert.equal(ins.schema, 'public')
  assert.equal(ins.table, 'rt_notes')
  assert.deepEqual(ins.new, await rowJson('rt_notes', idA))
  assert.deepEqual(ins.old, {})
  assert.equal(ins.errors, null)
  assert.ok(!Number.isNaN(Date.parse(ins.commit_timestamp)), `commit_timestamp ${ins.commit_timestamp}`)
  assert.ok(Math.abs(Date.parse(ins.commit_timestamp) - Date.now()) < 60000, `commit_timestamp ${ins.commit_timestamp} is now`)
  const raw = frameTexts('A', '<-').find((f) => f[3] === 'postgres_changes')
  assert.deepEqual(raw.slice(0, 2), [null, null])
  assert.deepEqual(raw[4].data.columns, columns)
  assert.equal('old_record' in raw[4].data, false, 'an INSERT has no old_record')
  assert.deepEqual((await a.inbox.all.next(() => true, "A's * INSERT")).new, ins.new)

  const insB = await b.inbox.ins.next(() => true, "B's INSERT")
  assert.deepEqual(insB.new, await rowJson('rt_notes', idB))

  await sql(`update public.rt_notes set title = 'A updated', score = score + 10, tags = array['q'] where id = $1`, [idA])
  await sql(`update public.rt_notes set title = 'B updated' where id = $1`, [idB])
  const upd = await a.inbox.upd.next(() => true, "A's UPDATE")
  assert.equal(upd.eventType, 'UPDATE')
  assert.deepEqual(upd.new, await rowJson('rt_notes', idA))
  assert.deepEqual(upd.old, { id: idA }, 'UPDATE old (default replica identity) holds the primary key')
  assert.equal((await a.inbox.all.next((e) => e.eventType === 'UPDATE', "A's * UPDATE")).new.title, 'A updated')
  assert.equal((await b.inbox.upd.next(() => true, "B's UPDATE")).new.title, 'B updated')

  await sql('delete from public.rt_notes where id = $1', [idA])
  const del = await a.inbox.del.next(() => true, "A's DELETE")
  assert.equal(del.eventType, 'DELETE')
  assert.deepEqual(del.old, { id: idA })
  assert.deepEqual(del.new, {})
  const rawDel = frameTexts('A', '<-').find((f) => f[3] === 'postgres_changes' && f[4].data.type === 'DELETE')
  assert.equal('record' in rawDel[4].data, false, 'a DELETE has no record')
  await a.inbox.all.next((e) => e.eventType === 'DELETE', "A's * DELETE")

  // A never saw B's rows (INSERT/UPDATE are checked against RLS); each binding got only its kind
  await a.inbox.ins.none(() => true, 'A got a second INSERT (B\'s row?)')
  await a.inbox.upd.none(() => true, 'A got a second UPDATE (B\'s row?)', 10)
  await b.inbox.ins.none(() => true, 'B got a second INSERT (A\'s row?)', 10)
  await b.inbox.upd.none(() => true, 'B got a second UPDATE (A\'s row?)', 10)
  await a.inbox.all.none((e) => e.eventType !== 'DELETE' && e.new.id === idB, 'A\'s * binding saw B\'s row', 10)
  await sql('delete from public.rt_notes where id = $1', [idB])
})

rtTest('postgres_changes: filters eq, neq, in, gt, lte select the right rows', async () => {
  const A = await signedInUser('A')
  const tag = crypto.randomUUID().slice(0, 8)
  const inboxes = {}
  let ch = A.client.channel(uniq('filters'))
  const filters = {
    eq: `title=eq.${tag}-b`,
    neq: `score=neq.2`,
    in: `title=in.(${tag}-a,${tag}-c)`,
    gt: 'score=gt.2',
    lte: 'score=lte.1',
  }
  for (const [name, filter] of Object.entries(filters)) {
    inboxes[name] = new Inbox(`filter ${filter}`)
    ch = ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'rt_notes', filter }, inboxes[name].push)
  }
  await subscribedToChanges(ch)
  const ids = {}
  for (const [name, score] of [['a', 1], ['b', 2], ['c', 3], ['d', 4]]) {
    ids[name] = await insertNote(A.id, { title: `${tag}-${name}`, score })
  }
  const expected = { eq: ['b'], neq: ['a', 'c', 'd'], in: ['a', 'c'], gt: ['c', 'd'], lte: ['a'] }
  for (const [name, want] of Object.entries(expected)) {
    const got = []
    for (const _ of want) got.push((await inboxes[name].next(() => true, `row ${got.length + 1} of ${want.length} for ${filters[name]}`)).new)
    assert.deepEqual(got.map((r) => r.id).sort(), want.map((w) => ids[w]).sort(), `rows for ${filters[name]}`)
    for (const r of got) assert.deepEqual(r, await rowJson('rt_notes', r.id))
  }
  for (const [name] of Object.entries(expected)) await inboxes[name].none(() => true, `an extra row for ${filters[name]}`, name === 'eq' ? QUIET : 10)
  await sql('delete from public.rt_notes where owner = $1', [A.id])
})

rtTest('postgres_changes: REPLICA IDENTITY FULL gives the whole old row on UPDATE, only the key on DELETE under RLS', async () => {
  const A = await signedInUser('A')
  const got = new Inbox('rt_full changes')
  await subscribedToChanges(A.client.channel(uniq('full')).on('postgres_changes', { event: '*', schema: 'public', table: 'rt_full' }, got.push))
  const [{ id }] = await sql(`insert into public.rt_full (owner, body, n) values ($1, 'before', 1) returning id`, [A.id])
  const before = await rowJson('rt_full', id)
  assert.deepEqual((await got.next((e) => e.eventType === 'INSERT', 'the INSERT')).new, before)
  await sql(`update public.rt_full set body = 'after', n = 2 where id = $1`, [id])
  const upd = await got.next((e) => e.eventType === 'UPDATE', 'the UPDATE')
  assert.deepEqual(upd.new, await rowJson('rt_full', id))
  assert.deepEqual(upd.old, before)
  await sql('delete from public.rt_full where id = $1', [id])
  const del = await got.next((e) => e.eventType === 'DELETE', 'the DELETE')
  assert.deepEqual(del.old, { id: Number(id) }, 'RLS: a DELETE carries only the primary key')
})

rtTest('postgres_changes: a table outside the publication gets a system error; on("system") sees it', async () => {
  const a = rtClient('A')
  const system = new Inbox('system')
  const ch = a
    .channel(uniq('unpublished'))
    .on('postgres_changes', { event: '*', schema: 'public', table: 'rt_unpublished' }, () => {})
    .on('system', {}, system.push)
  await subscribed(ch)
  const msg = await system.next((m) => m.extension === 'postgres_changes', 'the postgres_changes system message')
  assert.equal(msg.status, 'error')
  assert.match(msg.message, /^Unable to subscribe to changes with given parameters\. Please check Realtime is enabled for the given connect parameters: \[schema: public, table: rt_unpublished, filters: \[\]\]$/)
  assert.equal(msg.channel, ch.topic.replace(/^realtime:/, ''))
})

// ================================================================ private channels
rtTest('private channels: RLS on realtime.messages lets A join room:<A> and refuses B and anon', async () => {
  const A = await signedInUser('A')
  const B = await signedInUser('B')
  const room = `room:${A.id}`
  const got = new Inbox('A private broadcasts')
  const chA = A.client.channel(room, { config: { private: true, broadcast: { self: true, ack: true } } }).on('broadcast', { event: '*' }, got.push)
  await subscribed(chA)
  const joinA = frameTexts('A', '->').find((f) => f[3] === 'phx_join')
  assert.equal(joinA[4].config.private, true)

  const chB = B.client.channel(room, { config: { private: true } })
  const refused = await subscribeStatus(chB)
  assert.equal(refused.status, 'CHANNEL_ERROR')
  assert.equal(refused.err.message, `Unauthorized: You do not have permissions to read from this Channel topic: ${room}`)
  await B.client.removeChannel(chB)

  const anon = rtClient('anon')
  const chAnon = anon.channel(room, { config: { private: true } })
  const anonRefused = await subscribeStatus(chAnon)
  assert.equal(anonRefused.status, 'CHANNEL_ERROR')
  assert.equal(anonRefused.err.message, `Unauthorized: You do not have permissions to read from this Channel topic: ${room}`)
  await anon.removeChannel(chAnon)

  // B joins its own room fine
  await subscribed(B.client.channel(`room:${B.id}`, { config: { private: true } }))

  // A may write (insert policy): ack ok and the self echo arrives
  assert.equal(await chA.send({ type: 'broadcast', event: 'mine', payload: { ok: 1 } }, { timeout: WAIT }), 'ok')
  assert.deepEqual(await got.next((m) => m.event === 'mine', 'the echo of A\'s own private broadcast'), { type: 'broadcast', event: 'mine', payload: { ok: 1 } })

  // B's REST broadcast to A's private room is accepted (202) but dropped by the insert policy
  const chBrest = B.client.channel(room, { config: { private: true } })
  assert.deepEqual(await chBrest.httpSend('intrude', { from: 'B' }), { success: true })
  assert.equal(httpLog.at(-1).status, 202)
  assert.equal(new globalThis.URL(httpLog.at(-1).url).searchParams.get('private'), 'true')
  // A's own REST broadcast (with its token) is delivered
  assert.deepEqual(await A.client.channel(room, { config: { private: true } }).httpSend('own-rest', { from: 'A' }), { success: true })
  await got.next((m) => m.event === 'own-rest', "A's REST broadcast to its private room")
  await got.none((m) => m.event === 'intrude', 'a broadcast the write policy refuses must not be delivered')
})

rtTest('private channels: realtime.send and a realtime.broadcast_changes trigger in SQL reach the subscribed room', async () => {
  const A = await signedInUser('A')
  const room = `room:${A.id}`
  const got = new Inbox('A private broadcasts')
  await subscribed(A.client.channel(room, { config: { private: true } }).on('broadcast', { event: '*' }, got.push))

  await sql(`select realtime.send($1::jsonb, 'note', $2, true)`, [JSON.stringify({ text: 'from SQL ü', n: 7 }), room])
  const sent = await got.next((m) => m.event === 'note', 'the realtime.send broadcast')
  assert.equal(sent.type, 'broadcast')
  const { id: sentId, ...sentRest } = sent.payload
  assert.deepEqual(sentRest, { text: 'from SQL ü', n: 7 })
  const [stored] = await sql(`select id::text, payload from realtime.messages where topic = $1 and event = 'note'`, [room])
  assert.equal(sentId, stored.id, 'realtime.send adds the message id to the payload')

  // a public send (private = false) to the same topic does not reach the private channel
  await sql(`select realtime.send('{"pub":1}'::jsonb, 'public-note', $1, false)`, [room])

  const [{ id }] = await sql(`insert into public.rt_private_notes (owner, body) values ($1, 'hello') returning id`, [A.id])
  const ins = await got.next((m) => m.event === 'INSERT', 'the broadcast_changes INSERT')
  assert.equal(ins.payload.operation, 'INSERT')
  assert.equal(ins.payload.table, 'rt_private_notes')
  assert.equal(ins.payload.schema, 'public')
  assert.deepEqual(ins.payload.record, await rowJson('rt_private_notes', id))
  assert.equal(ins.payload.old_record, null)
  const before = await rowJson('rt_private_notes', id)
  await sql(`update public.rt_private_notes set body = 'changed' where id = $1`, [id])
  const upd = await got.next((m) => m.event === 'UPDATE', 'the broadcast_changes UPDATE')
  assert.deepEqual(upd.payload.record, await rowJson('rt_private_notes', id))
  assert.deepEqual(upd.payload.old_record, before)
  await sql('delete from public.rt_private_notes where id = $1', [id])
  const del = await got.next((m) => m.event === 'DELETE', 'the broadcast_changes DELETE')
  assert.equal(del.payload.record, null)
  assert.equal(del.payload.old_record.body, 'changed')
  await got.none((m) => m.event === 'public-note', 'a public realtime.send must not reach a private channel')
})

// ================================================================ setAuth
rtTest('setAuth: realtime.setAuth(token) joins private rooms as that user and refreshes joined channels', async () => {
  const A = await signedInUser('A')
  const c = rtClient('C') // anon key, no session
  // 1. anon subscribes to rt_notes changes: RLS shows it nothing
  const got = new Inbox('C changes')
  const ch = c.channel(uniq('setauth')).on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'rt_notes', filter: `owner=eq.${A.id}` }, got.push)
  await subscribedToChanges(ch)
  await authSettled(c)
  const first = await insertNote(A.id, { title: 'before setAuth' })
  await got.none(() => true, 'anon must not see an RLS-protected row')

  // 2. setAuth pushes access_token on the joined channel; from then on the channel is A's
  await c.realtime.setAuth(A.token)
  const isA = (f) => f[3] === 'access_token' && f[4].access_token === `<jwt role=authenticated sub=${A.id}>`
  await waitUntil(() => frameTexts('C', '->').some(isA), "the access_token push of A's token")
  const tokenFrame = frameTexts('C', '->').find(isA)
  assert.equal(tokenFrame[2], ch.topic)
  const second = await insertNote(A.id, { title: 'after setAuth' })
  const ev = await got.next(() => true, 'the row A may see, after setAuth')
  assert.equal(ev.new.id, second)
  assert.ok(first < second)
  assert.equal(ch.state, 'joined')

  // 3. a new private join carries the token set with setAuth
  await subscribed(c.channel(`room:${A.id}`, { config: { private: true } }))
  await sql('delete from public.rt_notes where owner = $1', [A.id])
})

rtTest('setAuth: an expired token is refused at join (InvalidJWTToken) and closes a joined channel', async () => {
  const c = rtClient('C')
  const now = Math.floor(Date.now() / 1000)
  const expired = signJwt({ sub: crypto.randomUUID(), role: 'authenticated', aud: 'authenticated', iat: now - 7200, exp: now - 3600 })

  // a joined channel: the refresh with an expired token ends it with a system error and phx_close
  const system = new Inbox('system')
  const ch = c.channel(uniq('expire')).on('system', {}, system.push)
  await subscribed(ch)
  await authSettled(c)
  await c.realtime.setAuth(expired)
  const msg = await system.next((m) => m.status === 'error', 'the system error for the expired token')
  assert.equal(msg.extension, 'system')
  assert.match(msg.message, /^Token has expired \d+ seconds ago$/)
  await ch.statuses.next((s) => s.status === 'CLOSED', 'CLOSED after the server closed the channel')

  // a new join with the expired token is refused
  const ch2 = c.channel(uniq('expired-join'))
  const refused = await subscribeStatus(ch2)
  assert.equal(refused.status, 'CHANNEL_ERROR')
  assert.match(refused.err.message, /^InvalidJWTToken: Token has expired \d+ seconds ago$/)
  await c.removeChannel(ch2)
})

rtTest('service role: a service-key client gets every row of an RLS table and the full old row of a DELETE', async () => {
  const s = rtClient('S', { key: SERVICE_KEY })
  const got = new Inbox('service changes')
  await subscribedToChanges(s.channel(uniq('service')).on('postgres_changes', { event: '*', schema: 'public', table: 'rt_full' }, got.push))
  const owner = crypto.randomUUID()
  const [{ id }] = await sql(`insert into public.rt_full (owner, body) values ($1, 'svc') returning id`, [owner])
  const row = await rowJson('rt_full', id)
  assert.deepEqual((await got.next((e) => e.eventType === 'INSERT' && e.new.id === Number(id), 'the INSERT')).new, row)
  await sql('delete from public.rt_full where id = $1', [id])
  assert.deepEqual((await got.next((e) => e.eventType === 'DELETE' && e.old.id === Number(id), 'the DELETE')).old, row)
})
