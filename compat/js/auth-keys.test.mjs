// supabase-js (pinned in compat/package.json) against forge-server's /auth/v1 (GoTrue API): the
// settings GoTrue keeps off or narrow by default. Manual identity linking is off
// (GOTRUE_SECURITY_MANUAL_LINKING_ENABLED).
// Run through compat/run.sh, which starts the server and exports the FORGE_* variables.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe } from 'node:test'
import { wireTest as test } from './helpers.mjs'
import { PASSWORD, authFails, authOk, fresh, wire } from './auth-helpers.mjs'

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
