// supabase-js (pinned in compat/package.json) against forge-server's /auth/v1 (GoTrue API): the
// settings GoTrue keeps off or narrow by default. Manual identity linking is off
// (GOTRUE_SECURITY_MANUAL_LINKING_ENABLED), and a token may only name the API roles (anon,
// authenticated, service_role): one forged with the project's JWT secret naming `postgres` is
// refused by REST, auth and storage alike.
// Run through compat/run.sh, which starts the server and exports the FORGE_* variables.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe } from 'node:test'
import { signJwt, userClient, wireTest as test } from './helpers.mjs'
import { PASSWORD, authFails, authOk, fresh, wire } from './auth-helpers.mjs'
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
