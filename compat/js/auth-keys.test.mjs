// supabase-js (pinned in compat/package.json) against forge-server's /auth/v1 (GoTrue API): the
// settings GoTrue keeps off or narrow by default. Manual identity linking is off
// (GOTRUE_SECURITY_MANUAL_LINKING_ENABLED), and a token may only name the API roles (anon,
// authenticated, service_role): one forged with the project's JWT secret naming `postgres` is
// refused by REST, auth and storage alike.
// Sessions are signed with an asymmetric key (ES256) published at /auth/v1/.well-known/jwks.json,
// so getClaims() verifies them locally, while HS256 tokens of the JWT secret still work.
// Run through compat/run.sh, which starts the server and exports the FORGE_* variables.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe } from 'node:test'
import { URL_, requests, signJwt, userClient, userToken, wireTest as test } from './helpers.mjs'
import { JWKS, PASSWORD, authFails, authOk, claimsOf, fresh, wire } from './auth-helpers.mjs'
import { storageFails, storageOk } from './storage-helpers.mjs'

/** Signs up a new confirmed user (autoconfirm is on) on a fresh client. */
async function signedUp(label) {
  const c = fresh()
  const email = `js-${label}-${crypto.randomUUID().slice(0, 8)}@example.com`
  const { user, session } = authOk(await c.auth.signUp({ email, password: PASSWORD }))
  assert.ok(session, 'autoconfirm: signUp returns a session')
  return { c, email, user, session }
}

describe('manual identity linking is off by default, as in GoTrue', () => {
  test('linkIdentity and unlinkIdentity are 404 manual_linking_disabled', async () => {
    const { c } = await signedUp('link')
    const linked = await c.auth.linkIdentity({ provider: 'github', options: { skipBrowserRedirect: true } })
    const err = authFails(linked, 404, 'manual_linking_disabled')
    assert.equal(err.message, 'Manual linking is disabled')
    assert.deepEqual(wire(), { method: 'GET', path: '/auth/v1/user/identities/authorize', status: 404, code: 'manual_linking_disabled' })
    assert.equal(linked.data.url, null)

    const { identities } = authOk(await c.auth.getUserIdentities())
    assert.equal(identities.length, 1)
    const unlinked = await c.auth.unlinkIdentity(identities[0])
    authFails(unlinked, 404, 'manual_linking_disabled')
    assert.equal(wire().method, 'DELETE')
    const after = authOk(await c.auth.getUserIdentities())
    assert.equal(after.identities.length, 1, 'nothing was unlinked')
  })
})

describe('a token may only name the API roles', () => {
  /** A token signed with the project's JWT secret for `user`, naming `role`. */
  function forged(user, role) {
    const now = Math.floor(Date.now() / 1000)
    return signJwt({ sub: user.id, role, aud: 'authenticated', email: user.email, iat: now, exp: now + 3600 })
  }

  for (const role of ['postgres', 'pg_read_all_data']) {
    test(`role ${role} signed with the JWT secret is refused by REST (42501), auth (bad_jwt) and storage (AccessDenied)`, async () => {
      const { user } = await signedUp(`role-${role}`)
      const c = userClient(forged(user, role))

      const rest = await c.from('countries').select('id').limit(1)
      assert.equal(rest.status, 403, `REST answered ${rest.status} ${JSON.stringify(rest.error ?? rest.data)}`)
      assert.equal(rest.error.code, '42501')
      assert.equal(rest.error.message, `permission denied to set role "${role}"`)
      assert.equal(rest.data, null)

      const got = await c.auth.getUser(forged(user, role))
      authFails(got, 403, 'bad_jwt')
      assert.match(got.error.message, /permission denied to set role/)

      storageFails(await c.storage.listBuckets(), '403', 403, `permission denied to set role "${role}"`)
      assert.equal(wire().path, '/storage/v1/bucket')
    })
  }

  test('the same user with role authenticated is served everywhere', async () => {
    const { user } = await signedUp('role-ok')
    const c = userClient(forged(user, 'authenticated'))
    const rest = await c.from('countries').select('id').limit(1)
    assert.equal(rest.status, 200, JSON.stringify(rest.error))
    authOk(await c.auth.getUser(forged(user, 'authenticated')))
    storageOk(await c.storage.listBuckets())
  })
})

describe('asymmetric signing keys, published at /auth/v1/.well-known/jwks.json', () => {
  const headerOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString('utf8'))

  test('sessions are signed ES256 with a published kid; getClaims() verifies them with no GET /user', async () => {
    const { c, user, session } = await signedUp('claims')
    const header = headerOf(session.access_token)
    assert.equal(header.alg, 'ES256')
    const res = await fetch(`${URL_}/auth/v1/.well-known/jwks.json`)
    assert.equal(res.headers.get('cache-control'), 'public, max-age=600')
    const jwks = await res.json()
    const jwk = jwks.keys.find((k) => k.kid === header.kid)
    assert.ok(jwk, `kid ${header.kid} in ${JSON.stringify(jwks)}`)
    assert.deepEqual([jwk.kty, jwk.crv, jwk.alg, jwk.use, jwk.key_ops], ['EC', 'P-256', 'ES256', 'sig', ['verify']])
    assert.equal(jwk.d, undefined, 'no private part is published')
    assert.ok(jwks.keys.length >= 2, 'a standby key is published ahead of its turn')
    assert.equal(jwks.keys[0].kid, header.kid, 'the current key comes first')

    requests().length = 0
    const first = await c.auth.getClaims()
    assert.equal(first.error, null, JSON.stringify(first.error))
    assert.equal(first.data.claims.sub, user.id)
    assert.equal(first.data.claims.role, 'authenticated')
    assert.equal(first.data.header.kid, header.kid)
    const again = await c.auth.getClaims()
    assert.equal(again.error, null)
    const paths = requests().map((r) => new URL(r.url).pathname)
    assert.ok(!paths.includes('/auth/v1/user'), `getClaims went to the server: ${paths}`)
    assert.deepEqual(paths, ['/auth/v1/.well-known/jwks.json'], 'the key set is fetched once, then cached')
  })

  test('a tampered ES256 token fails getClaims() and is refused by the server', async () => {
    const { c, session } = await signedUp('tamper')
    const [h, p, sig] = session.access_token.split('.')
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'))
    claims.sub = crypto.randomUUID()
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`
    const local = await c.auth.getClaims(tampered)
    assert.ok(local.error, 'getClaims refuses a bad signature')
    assert.equal(local.error.name, 'AuthInvalidJwtError')
    authFails(await fresh().auth.getUser(tampered), 403, 'bad_jwt')
    const rest = await userClient(tampered).from('countries').select('id').limit(1)
    assert.equal(rest.status, 401)
    assert.equal(rest.error.code, 'PGRST301')
  })

  test('HS256 tokens signed with the JWT secret (the legacy keys) are still served', async () => {
    const { user } = await signedUp('legacy')
    const legacy = userToken(user.id)
    assert.equal(headerOf(legacy).alg, 'HS256')
    assert.equal(claimsOf(legacy).sub, user.id)
    const rest = await userClient(legacy).from('countries').select('id').limit(1)
    assert.equal(rest.status, 200, JSON.stringify(rest.error))
    assert.equal(authOk(await fresh().auth.getUser(legacy)).user.id, user.id)
    assert.ok(JWKS.keys.every((k) => k.kty !== 'oct'), 'the secret is never published')
  })
})
