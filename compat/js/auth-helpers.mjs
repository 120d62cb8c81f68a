// Helpers the supabase-js auth suites share (auth.test.mjs, phone.test.mjs): session and JWT
// checks, error assertions, and the server's local outboxes (mail and texts).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { ANON_KEY, JWT_SECRET, SERVICE_KEY, URL_, client, lastRequest } from './helpers.mjs'

export const PASSWORD = 'correct-horse-42'
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
export const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/

/** The server's published signing keys (GET /auth/v1/.well-known/jwks.json), read once. */
export const JWKS = await (async () => {
  const res = await fetch(`${URL_}/auth/v1/.well-known/jwks.json`)
  assert.equal(res.status, 200, 'GET /auth/v1/.well-known/jwks.json')
  return res.json()
})()

/**
 * The claims of a JWT, after checking its signature: an ES256 or RS256 access token with the
 * published key its `kid` names, a legacy HS256 one with the project's JWT secret.
 */
export function claimsOf(jwt) {
  const parts = jwt.split('.')
  assert.equal(parts.length, 3, 'a JWT has three segments')
  assert.ok(!/[=+/]/.test(jwt), 'unpadded base64url')
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'))
  const input = `${parts[0]}.${parts[1]}`
  if (header.alg === 'HS256') {
    const sig = crypto.createHmac('sha256', JWT_SECRET).update(input).digest('base64url')
    assert.equal(parts[2], sig, 'the token is signed with the project JWT secret')
  } else {
    assert.ok(['ES256', 'RS256'].includes(header.alg), `JWT header ${JSON.stringify(header)}`)
    const jwk = JWKS.keys.find((k) => k.kid === header.kid)
    assert.ok(jwk, `kid ${header.kid} is published in ${JSON.stringify(JWKS)}`)
    assert.equal(jwk.alg, header.alg)
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' })
    const signature = Buffer.from(parts[2], 'base64url')
    const options = header.alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key
    assert.ok(crypto.verify('sha256', Buffer.from(input), options, signature), 'the signature verifies with the published key')
  }
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
}

/** The methods in a JWT's `amr`, newest first. */
export function amrOf(jwt) {
  return claimsOf(jwt).amr.map((a) => a.method)
}

/** Asserts an auth call succeeded and returns its data. */
export function authOk(res) {
  assert.equal(res.error, null, `unexpected auth error: ${JSON.stringify(res.error)} ${res.error?.message ?? ''}`)
  return res.data
}

/** Asserts an auth call failed with an AuthApiError (or `name`) of this HTTP status and code. */
export function authFails(res, status, code, name = 'AuthApiError') {
  assert.ok(res.error, `expected ${name} ${status} ${code}, got data ${JSON.stringify(res.data)}`)
  assert.equal(res.error.name, name, `error ${JSON.stringify(res.error)} (${res.error.message})`)
  assert.equal(res.error.status, status, `status of ${JSON.stringify(res.error)} (${res.error.message})`)
  assert.equal(res.error.code, code, `code of ${JSON.stringify(res.error)} (${res.error.message})`)
  return res.error
}

/** The last response on the wire: status and GoTrue's x-sb-error-code header. */
export function wire() {
  const r = lastRequest()
  return { method: r.method, path: new URL(r.url).pathname, status: r.status, code: r.responseHeaders['x-sb-error-code'] }
}

/** A fresh anonymous-key client whose session lives only in memory. */
export function fresh() {
  return client(ANON_KEY)
}

/** Asserts a session's shape and its access token's claims; returns the claims. */
export function assertSession(session, userId) {
  assert.equal(session.token_type, 'bearer')
  assert.equal(session.expires_in, 3600)
  assert.ok(Number.isInteger(session.expires_at), `expires_at ${session.expires_at}`)
  const now = Math.floor(Date.now() / 1000)
  assert.ok(Math.abs(session.expires_at - (now + 3600)) <= 30, `expires_at ${session.expires_at} vs now ${now}`)
  assert.equal(typeof session.refresh_token, 'string')
  assert.ok(session.refresh_token.length >= 12, `refresh token ${session.refresh_token}`)
  assert.equal(session.user.id, userId)
  const claims = claimsOf(session.access_token)
  assert.equal(claims.sub, userId)
  assert.equal(claims.aud, 'authenticated')
  assert.equal(claims.role, 'authenticated')
  assert.equal(claims.exp, session.expires_at)
  assert.equal(claims.exp - claims.iat, 3600)
  assert.match(claims.session_id, UUID_RE)
  assert.ok(Array.isArray(claims.amr) && claims.amr.length >= 1, `amr ${JSON.stringify(claims.amr)}`)
  for (const entry of claims.amr) assert.ok(typeof entry.method === 'string' && Number.isInteger(entry.timestamp))
  return claims
}

/** The server's local outbox for one recipient (`{ email }` or `{ phone }`), as the service role. */
export async function adminOutbox(recipient) {
  const res = await fetch(`${URL_}/auth/v1/admin/outbox?${new URLSearchParams(recipient)}`, {
    headers: { apikey: SERVICE_KEY, Authorization: `Bearer ${SERVICE_KEY}` },
  })
  assert.equal(res.status, 200, 'GET /auth/v1/admin/outbox')
  return res.json()
}
