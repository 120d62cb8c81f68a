// supabase-js (pinned in compat/package.json) against forge-server's /auth/v1 (GoTrue API):
// sign-up, password sign-in, the user endpoints, refresh and sign-out, anonymous and OTP sign-in,
// password recovery, the admin API, TOTP MFA, and RLS through /rest/v1 with the users' sessions.
// Every test signs up its own users (random addresses), so the tests are independent of each
// other and of the seeded fake users. Mail is read from the server's local outbox
// (GET /auth/v1/admin/outbox, service role), since no SMTP server is configured for this server.
// Run through compat/run.sh, which starts the server and exports the FORGE_* variables.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, describe } from 'node:test'
import {
  ANON_KEY,
  SERVICE_KEY,
  URL_,
  client,
  closeDb,
  lastRequest,
  requests,
  sqlExec,
  sqlOne,
  sqlRows,
  sqlValue,
  wireTest as test,
} from './helpers.mjs'
import {
  ISO_RE,
  PASSWORD,
  UUID_RE,
  adminOutbox,
  assertSession,
  authFails,
  authOk,
  claimsOf,
  fresh,
  wire,
} from './auth-helpers.mjs'

const service = client(SERVICE_KEY)
const admin = service.auth.admin

after(closeDb)

// ------------------------------------------------------------------------ helpers

/** A fresh, unique address (GoTrue lower-cases addresses; these are lower-case already). */
function newEmail(label) {
  return `js-${label}-${crypto.randomUUID().slice(0, 8)}@example.com`
}

/** The mails the server kept for `email` in its local outbox, oldest first. */
async function outbox(email) {
  return (await adminOutbox({ email })).messages
}

function otpOf(mail) {
  const m = /code: (\d{6,10})/.exec(mail.html)
  assert.ok(m, `no OTP in ${mail.html}`)
  return m[1]
}

function linkOf(mail) {
  const m = /href="([^"]+)"/.exec(mail.html)
  assert.ok(m, `no link in ${mail.html}`)
  return m[1].replaceAll('&amp;', '&')
}

/** Signs up a new confirmed user (autoconfirm is on) on a fresh client. */
async function signedUp(label, data = {}) {
  const c = fresh()
  const email = newEmail(label)
  const { user, session } = authOk(await c.auth.signUp({ email, password: PASSWORD, options: { data } }))
  assert.ok(session, 'autoconfirm: signUp returns a session')
  return { c, email, user, session }
}

// RFC 6238 TOTP (HMAC-SHA1, 30 s steps), for the authenticator-app side of MFA.
function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = 0
  let value = 0
  const out = []
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(ch)
    assert.ok(i >= 0, `not base32: ${s}`)
    value = ((value << 5) | i) & 0xffff
    bits += 5
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff)
      bits -= 8
    }
  }
  return Buffer.from(out)
}

function hotp(key, counter, digits = 6) {
  const msg = Buffer.alloc(8)
  msg.writeBigUInt64BE(BigInt(counter))
  const h = crypto.createHmac('sha1', key).update(msg).digest()
  const off = h[h.length - 1] & 0x0f
  return String((h.readUInt32BE(off) & 0x7fffffff) % 10 ** digits).padStart(digits, '0')
}

function totp(secretBase32, ms = Date.now()) {
  return hotp(base32Decode(secretBase32), Math.floor(ms / 1000 / 30))
}

// ------------------------------------------------------------------------ sign-up and sign-in
describe('sign-up and password sign-in', () => {
  test('signUp (autoconfirm) returns a session and a GoTrue-shaped user', async () => {
    const c = fresh()
    const email = newEmail('signup')
    const { user, session } = authOk(await c.auth.signUp({ email, password: PASSWORD, options: { data: { nickname: 'ada' } } }))
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/signup', status: 200, code: undefined })

    assert.match(user.id, UUID_RE)
    assert.equal(user.aud, 'authenticated')
    assert.equal(user.role, 'authenticated')
    assert.equal(user.email, email)
    assert.equal(user.phone, '')
    assert.match(user.email_confirmed_at, ISO_RE)
    assert.match(user.created_at, ISO_RE)
    assert.match(user.updated_at, ISO_RE)
    assert.match(user.last_sign_in_at, ISO_RE)
    assert.equal(user.is_anonymous, false)
    assert.deepEqual(user.app_metadata, { provider: 'email', providers: ['email'] })
    assert.deepEqual(user.user_metadata, { nickname: 'ada' })
    assert.equal(user.identities.length, 1)
    const identity = user.identities[0]
    assert.equal(identity.provider, 'email')
    assert.equal(identity.user_id, user.id)
    assert.equal(identity.id, user.id)
    assert.match(identity.identity_id, UUID_RE)
    assert.equal(identity.identity_data.sub, user.id)
    assert.equal(identity.identity_data.email, email)
    assert.match(identity.created_at, ISO_RE)

    const claims = assertSession(session, user.id)
    assert.equal(claims.email, email)
    assert.equal(claims.phone, '')
    assert.equal(claims.aal, 'aal1')
    assert.equal(claims.amr[0].method, 'password')
    assert.equal(claims.is_anonymous, false)
    assert.ok(claims.iss.endsWith('/auth/v1'), `iss ${claims.iss}`)
    assert.deepEqual(claims.user_metadata, { nickname: 'ada' })
    assert.deepEqual(claims.app_metadata, { provider: 'email', providers: ['email'] })

    // the client keeps the session, and the server stored the user (confirmed) and the session
    assert.equal(authOk(await c.auth.getSession()).session.access_token, session.access_token)
    const row = await sqlOne(
      'select email, email_confirmed_at is not null as confirmed, raw_user_meta_data as meta from auth.users where id = $1',
      [user.id],
    )
    assert.deepEqual(row, { email, confirmed: true, meta: { nickname: 'ada' } })
    assert.equal(await sqlValue('select count(*)::int from auth.sessions where id = $1 and user_id = $2', [claims.session_id, user.id]), 1)
  })

  test('signUp with an address already confirmed is 422 user_already_exists', async () => {
    const { email } = await signedUp('dup')
    const res = await fresh().auth.signUp({ email, password: PASSWORD })
    authFails(res, 422, 'user_already_exists')
    assert.equal(res.data.session, null)
  })

  test('signUp with a short password is AuthWeakPasswordError 422 weak_password (reasons: length)', async () => {
    const res = await fresh().auth.signUp({ email: newEmail('weak'), password: 'short' })
    const err = authFails(res, 422, 'weak_password', 'AuthWeakPasswordError')
    assert.deepEqual(err.reasons, ['length'])
    // GoTrue's message names the configured minimum (internal/api/password.go).
    assert.equal(err.message, 'Password should be at least 8 characters.')
  })

  test('signInWithPassword opens a new session; a wrong password or unknown address is 400 invalid_credentials', async () => {
    const { email, user, session: first } = await signedUp('signin')
    const c = fresh()
    const { user: u2, session } = authOk(await c.auth.signInWithPassword({ email, password: PASSWORD }))
    assert.equal(u2.id, user.id)
    assert.equal(u2.email, email)
    const claims = assertSession(session, user.id)
    assert.equal(claims.amr[0].method, 'password')
    assert.notEqual(claims.session_id, claimsOf(first.access_token).session_id, 'each sign-in is a new session')
    assert.ok(u2.last_sign_in_at >= user.last_sign_in_at)

    const wrong = await fresh().auth.signInWithPassword({ email, password: 'not-the-password' })
    const err = authFails(wrong, 400, 'invalid_credentials')
    assert.equal(err.message, 'Invalid login credentials')
    assert.deepEqual(wrong.data, { user: null, session: null })
    assert.equal(wire().code, 'invalid_credentials', 'x-sb-error-code header')

    const unknown = await fresh().auth.signInWithPassword({ email: newEmail('nobody'), password: PASSWORD })
    assert.equal(authFails(unknown, 400, 'invalid_credentials').message, 'Invalid login credentials')
  })
})

// ------------------------------------------------------------------------ the signed-in user
describe('user, refresh and sign-out', () => {
  test('getUser fetches the user with the session token (GET /user)', async () => {
    const { c, user, email } = await signedUp('getuser', { nickname: 'bob' })
    const got = authOk(await c.auth.getUser()).user
    assert.deepEqual(wire(), { method: 'GET', path: '/auth/v1/user', status: 200, code: undefined })
    assert.equal(lastRequest().headers.authorization, `Bearer <jwt role=authenticated sub=${user.id}>`)
    assert.equal(got.id, user.id)
    assert.equal(got.email, email)
    assert.deepEqual(got.user_metadata, { nickname: 'bob' })
    assert.deepEqual(got.identities.map((i) => i.provider), ['email'])

    // getClaims: ES256 tokens are verified locally with the published keys (no GET /user)
    const { claims, header } = authOk(await c.auth.getClaims())
    assert.equal(header.alg, 'ES256')
    assert.equal(claims.sub, user.id)
    assert.equal(claims.email, email)
    assert.deepEqual(wire(), { method: 'GET', path: '/auth/v1/.well-known/jwks.json', status: 200, code: undefined })

    // no session: getUser reports AuthSessionMissingError without a request
    authFails(await fresh().auth.getUser(), 400, undefined, 'AuthSessionMissingError')
  })

  test('updateUser merges user_metadata (null removes a key) and returns the user', async () => {
    const { c, user } = await signedUp('meta', { nickname: 'ada', lang: 'en' })
    const updated = authOk(await c.auth.updateUser({ data: { theme: 'dark', lang: null } })).user
    assert.deepEqual(wire(), { method: 'PUT', path: '/auth/v1/user', status: 200, code: undefined })
    assert.equal(updated.id, user.id)
    assert.deepEqual(updated.user_metadata, { nickname: 'ada', theme: 'dark' })
    assert.deepEqual(await sqlValue('select raw_user_meta_data from auth.users where id = $1', [user.id]), {
      nickname: 'ada',
      theme: 'dark',
    })
    // the client updates the user of its stored session
    assert.deepEqual(authOk(await c.auth.getSession()).session.user.user_metadata, { nickname: 'ada', theme: 'dark' })
  })

  test('updateUser password: the new one signs in, the old one no longer does; the same one is 422 same_password', async () => {
    const { c, email } = await signedUp('passwd')
    const newPassword = 'battery-staple-77'
    authOk(await c.auth.updateUser({ password: newPassword }))
    authOk(await fresh().auth.signInWithPassword({ email, password: newPassword }))
    authFails(await fresh().auth.signInWithPassword({ email, password: PASSWORD }), 400, 'invalid_credentials')
    authFails(await c.auth.updateUser({ password: newPassword }), 422, 'same_password')
    authFails(await c.auth.updateUser({ password: 'short' }), 422, 'weak_password', 'AuthWeakPasswordError')
  })

  test('updateUser({email}) with autoconfirm changes the address at once', async () => {
    const { c, user } = await signedUp('email-old')
    const next = newEmail('email-new')
    const updated = authOk(await c.auth.updateUser({ email: next })).user
    assert.equal(updated.id, user.id)
    assert.equal(updated.email, next)
    assert.equal(updated.identities.find((i) => i.provider === 'email').identity_data.email, next)
    authOk(await fresh().auth.signInWithPassword({ email: next, password: PASSWORD }))
    const { email: taken } = await signedUp('email-taken')
    authFails(await c.auth.updateUser({ email: taken }), 422, 'email_exists')
  })

  test('reauthenticate mails a nonce that updateUser accepts with a new password', async () => {
    const { c, email } = await signedUp('reauth')
    assert.deepEqual(await c.auth.reauthenticate(), { data: { user: null, session: null }, error: null })
    assert.deepEqual(wire(), { method: 'GET', path: '/auth/v1/reauthenticate', status: 200, code: undefined })
    const mails = await outbox(email)
    assert.equal(mails.length, 1)
    assert.equal(mails[0].subject, 'Confirm reauthentication')
    const nonce = otpOf(mails[0])
    assert.match(nonce, /^\d{6}$/)
    // (GoTrue checks the nonce only when password changes require reauthentication, off by default)
    authOk(await c.auth.updateUser({ password: 'nonce-changed-1', nonce }))
    authOk(await fresh().auth.signInWithPassword({ email, password: 'nonce-changed-1' }))
  })

  test('refreshSession rotates the refresh token within the same session', async () => {
    const { c, user, session } = await signedUp('refresh')
    const before = claimsOf(session.access_token)
    const { session: next, user: u2 } = authOk(await c.auth.refreshSession())
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/token', status: 200, code: undefined })
    assert.equal(new URL(lastRequest().url).searchParams.get('grant_type'), 'refresh_token')
    assert.equal(u2.id, user.id)
    assert.notEqual(next.refresh_token, session.refresh_token, 'a new refresh token')
    const after = assertSession(next, user.id)
    assert.equal(after.session_id, before.session_id, 'same session')
    assert.deepEqual(after.amr.map((a) => a.method), before.amr.map((a) => a.method))
    assert.equal(authOk(await c.auth.getSession()).session.refresh_token, next.refresh_token)

    // the rotated token is still accepted inside the reuse interval (10 s), in the same session
    const again = authOk(await fresh().auth.refreshSession({ refresh_token: session.refresh_token })).session
    assert.equal(claimsOf(again.access_token).session_id, before.session_id)

    // a token the server never issued
    const bogus = await fresh().auth.refreshSession({ refresh_token: 'not-a-refresh-token' })
    authFails(bogus, 400, 'refresh_token_not_found')
    assert.deepEqual(bogus.data, { user: null, session: null })
  })

  test('signOut (global) ends the session: its access token gets 403 session_not_found, its refresh token 400', async () => {
    const { c, session } = await signedUp('signout')
    assert.deepEqual(await c.auth.signOut(), { error: null })
    const out = requests().find((r) => new URL(r.url).pathname === '/auth/v1/logout')
    assert.ok(out, 'POST /logout was sent')
    assert.equal(out.method, 'POST')
    assert.equal(new URL(out.url).searchParams.get('scope'), 'global')
    assert.equal(out.status, 204)
    assert.equal(authOk(await c.auth.getSession()).session, null, 'the client dropped its session')

    // the old access token still has a valid signature but its session is gone
    const res = await fresh().auth.getUser(session.access_token)
    authFails(res, 400, undefined, 'AuthSessionMissingError') // how auth-js reports session_not_found
    assert.deepEqual(wire(), { method: 'GET', path: '/auth/v1/user', status: 403, code: 'session_not_found' })

    const refreshed = await fresh().auth.refreshSession({ refresh_token: session.refresh_token })
    authFails(refreshed, 400, 'refresh_token_not_found')
  })

  test("signOut({scope:'others'}) keeps this session and ends the others; 'local' ends only this one", async () => {
    const { c: c1, email } = await signedUp('scopes')
    const c2 = fresh()
    const c3 = fresh()
    authOk(await c2.auth.signInWithPassword({ email, password: PASSWORD }))
    authOk(await c3.auth.signInWithPassword({ email, password: PASSWORD }))

    authOk(await c1.auth.signOut({ scope: 'others' }))
    assert.equal(lastRequest().status, 204)
    assert.equal(new URL(lastRequest().url).searchParams.get('scope'), 'others')
    assert.ok(authOk(await c1.auth.getSession()).session, "'others' keeps the local session")
    authOk(await c1.auth.getUser())
    authFails(await c2.auth.getUser(), 400, undefined, 'AuthSessionMissingError')
    assert.equal(wire().status, 403)
    assert.equal(wire().code, 'session_not_found')

    const c4 = fresh()
    const { session: s4 } = authOk(await c4.auth.signInWithPassword({ email, password: PASSWORD }))
    authOk(await c4.auth.signOut({ scope: 'local' }))
    assert.equal(new URL(lastRequest().url).searchParams.get('scope'), 'local')
    assert.equal(authOk(await c4.auth.getSession()).session, null)
    authFails(await fresh().auth.getUser(s4.access_token), 400, undefined, 'AuthSessionMissingError')
    assert.equal(wire().status, 403)
    authOk(await c1.auth.getUser()) // 'local' left the other session alone
  })
})

// ------------------------------------------------------------------------ anonymous and passwordless
describe('anonymous and passwordless sign-in', () => {
  test('signInAnonymously returns a session for an anonymous user', async () => {
    const c = fresh()
    const { user, session } = authOk(await c.auth.signInAnonymously({ options: { data: { guest: true } } }))
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/signup', status: 200, code: undefined })
    assert.equal(user.is_anonymous, true)
    assert.equal(user.role, 'authenticated')
    assert.equal(user.aud, 'authenticated')
    assert.ok(!user.email, `no email: ${JSON.stringify(user.email)}`)
    assert.deepEqual(user.user_metadata, { guest: true })
    assert.deepEqual(user.app_metadata, { provider: 'anonymous', providers: ['anonymous'] })
    assert.deepEqual(user.identities, [])
    const claims = assertSession(session, user.id)
    assert.equal(claims.is_anonymous, true)
    assert.equal(claims.role, 'authenticated')
    assert.equal(claims.aal, 'aal1')
    assert.equal(claims.amr[0].method, 'anonymous')
    assert.equal(await sqlValue('select is_anonymous from auth.users where id = $1', [user.id]), true)
    assert.equal(authOk(await c.auth.getUser()).user.is_anonymous, true)

    // adding an email (confirmed at once with autoconfirm) makes the user permanent
    const email = newEmail('anon-upgrade')
    const upgraded = authOk(await c.auth.updateUser({ email })).user
    assert.equal(upgraded.id, user.id)
    assert.equal(upgraded.email, email)
    assert.equal(upgraded.is_anonymous, false)
    assert.equal(await sqlValue('select is_anonymous from auth.users where id = $1', [user.id]), false)
  })

  test("signInWithOtp mails a code; verifyOtp({type:'email'}) signs in once; a wrong code is 403 otp_expired", async () => {
    const c = fresh()
    const email = newEmail('otp')
    const sent = await c.auth.signInWithOtp({ email })
    assert.deepEqual(sent, { data: { user: null, session: null }, error: null })
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/otp', status: 200, code: undefined })

    const mails = await outbox(email)
    assert.equal(mails.length, 1, JSON.stringify(mails))
    assert.equal(mails[0].to, email)
    const code = otpOf(mails[0])
    assert.match(code, /^\d{6}$/)
    const link = new URL(linkOf(mails[0]))
    assert.equal(link.pathname, '/auth/v1/verify')
    assert.match(link.searchParams.get('token'), /^(pkce_)?[0-9a-f]{56}$/)

    const wrongCode = code === '000000' ? '111111' : '000000'
    const wrong = await c.auth.verifyOtp({ email, token: wrongCode, type: 'email' })
    assert.equal(authFails(wrong, 403, 'otp_expired').message, 'Token has expired or is invalid')

    const { user, session } = authOk(await c.auth.verifyOtp({ email, token: code, type: 'email' }))
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/verify', status: 200, code: undefined })
    assert.equal(user.email, email)
    assert.match(user.email_confirmed_at, ISO_RE)
    assertSession(session, user.id)
    assert.equal(authOk(await c.auth.getSession()).session.access_token, session.access_token)

    authFails(await fresh().auth.verifyOtp({ email, token: code, type: 'email' }), 403, 'otp_expired')
  })

  test("sessions issued by /verify carry amr 'otp' whatever the verification type", async () => {
    // GoTrue's verifyPost and verifyGet (implicit flow) both issue the session with models.OTP
    const methods = {}
    const amrOf = (jwt) => claimsOf(jwt).amr.map((a) => a.method).join(',')

    const otpEmail = newEmail('amr-otp')
    authOk(await fresh().auth.signInWithOtp({ email: otpEmail }))
    const [otpMail] = await outbox(otpEmail)
    methods.email = amrOf(authOk(await fresh().auth.verifyOtp({ email: otpEmail, token: otpOf(otpMail), type: 'email' })).session.access_token)

    const { email } = await signedUp('amr')
    const hashed = authOk(await admin.generateLink({ type: 'magiclink', email })).properties.hashed_token
    methods.magiclink_token_hash = amrOf(
      authOk(await fresh().auth.verifyOtp({ token_hash: hashed, type: 'magiclink' })).session.access_token,
    )

    const link = authOk(await admin.generateLink({ type: 'magiclink', email })).properties.action_link
    const res = await fetch(link, { redirect: 'manual' })
    assert.equal(res.status, 303)
    methods.magiclink_get = amrOf(new URLSearchParams(new URL(res.headers.get('location')).hash.slice(1)).get('access_token'))

    authOk(await fresh().auth.resetPasswordForEmail(email))
    const recoveryMail = (await outbox(email)).find((m) => m.subject === 'Reset Your Password')
    methods.recovery = amrOf(authOk(await fresh().auth.verifyOtp({ email, token: otpOf(recoveryMail), type: 'recovery' })).session.access_token)

    assert.deepEqual(methods, { email: 'otp', magiclink_token_hash: 'otp', magiclink_get: 'otp', recovery: 'otp' })
  })

  test('signInWithOtp({shouldCreateUser:false}) for an unknown address is 422 otp_disabled', async () => {
    const res = await fresh().auth.signInWithOtp({ email: newEmail('nootp'), options: { shouldCreateUser: false } })
    authFails(res, 422, 'otp_disabled')
  })

  test('resetPasswordForEmail answers known and unknown addresses alike; the recovery code resets the password', async () => {
    const { email } = await signedUp('recover')
    const unknown = newEmail('unknown')
    const known = await fresh().auth.resetPasswordForEmail(email)
    const knownWire = wire()
    const other = await fresh().auth.resetPasswordForEmail(unknown)
    assert.deepEqual(known, { data: {}, error: null })
    assert.deepEqual(other, known)
    assert.deepEqual(wire(), knownWire)
    assert.deepEqual(knownWire, { method: 'POST', path: '/auth/v1/recover', status: 200, code: undefined })

    assert.deepEqual(await outbox(unknown), [])
    const mails = await outbox(email)
    assert.equal(mails.length, 1)
    assert.equal(mails[0].subject, 'Reset Your Password')
    const link = new URL(linkOf(mails[0]))
    assert.equal(link.searchParams.get('type'), 'recovery')

    const c = fresh()
    const { session, user } = authOk(await c.auth.verifyOtp({ email, token: otpOf(mails[0]), type: 'recovery' }))
    assertSession(session, user.id)
    assert.match(user.recovery_sent_at, ISO_RE)
    authOk(await c.auth.updateUser({ password: 'recovered-pass-9' }))
    authOk(await fresh().auth.signInWithPassword({ email, password: 'recovered-pass-9' }))
  })
})

// ------------------------------------------------------------------------ admin
describe('admin API (service role)', () => {
  test('createUser makes a confirmed user who can sign in; a taken address is 422 email_exists', async () => {
    const email = newEmail('admin-create')
    const user = authOk(
      await admin.createUser({
        email,
        password: PASSWORD,
        email_confirm: true,
        user_metadata: { name: 'Grace' },
        app_metadata: { plan: 'pro' },
      }),
    ).user
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/admin/users', status: 200, code: undefined })
    assert.match(user.id, UUID_RE)
    assert.equal(user.email, email)
    assert.match(user.email_confirmed_at, ISO_RE)
    assert.equal(user.last_sign_in_at ?? null, null)
    assert.deepEqual(user.user_metadata, { name: 'Grace' })
    assert.deepEqual(user.app_metadata, { provider: 'email', providers: ['email'], plan: 'pro' })
    assert.deepEqual(user.identities.map((i) => i.provider), ['email'])

    const { session } = authOk(await fresh().auth.signInWithPassword({ email, password: PASSWORD }))
    assert.equal(claimsOf(session.access_token).app_metadata.plan, 'pro')

    authFails(await admin.createUser({ email, password: PASSWORD }), 422, 'email_exists')
  })

  test('listUsers pages: the client parses nextPage, lastPage and total from Link and X-Total-Count', async () => {
    for (let i = 0; i < 3; i++) authOk(await admin.createUser({ email: newEmail(`list${i}`), email_confirm: true }))
    const total = await sqlValue('select count(*)::int from auth.users where deleted_at is null')
    const perPage = Math.ceil(total / 3) // at most 3 pages: the client keeps one digit of the page number
    const last = Math.ceil(total / perPage)
    const expectedIds = async (page) =>
      (
        await sqlRows(
          'select id from auth.users where deleted_at is null order by created_at desc, id desc limit $1 offset $2',
          [perPage, (page - 1) * perPage],
        )
      ).map((r) => r.id)

    const first = authOk(await admin.listUsers({ page: 1, perPage }))
    assert.equal(first.aud, 'authenticated')
    assert.equal(first.total, total)
    assert.equal(first.nextPage, 2)
    assert.equal(first.lastPage, last)
    assert.deepEqual(first.users.map((u) => u.id), await expectedIds(1))
    const headers = lastRequest().responseHeaders
    assert.equal(headers['x-total-count'], String(total))
    assert.equal(
      headers.link,
      `</auth/v1/admin/users?page=2&per_page=${perPage}>; rel="next", </auth/v1/admin/users?page=${last}&per_page=${perPage}>; rel="last"`,
    )
    for (const u of first.users) {
      assert.equal(u.aud, 'authenticated')
      assert.match(u.created_at, ISO_RE)
      assert.ok(u.app_metadata && u.user_metadata, 'user shape')
    }

    const lastPage = authOk(await admin.listUsers({ page: last, perPage }))
    assert.equal(lastPage.nextPage, null)
    assert.equal(lastPage.lastPage, last)
    assert.equal(lastPage.total, total)
    assert.deepEqual(lastPage.users.map((u) => u.id), await expectedIds(last))

    // past the end: no users, still a total
    const beyond = authOk(await admin.listUsers({ page: last + 1, perPage }))
    assert.deepEqual(beyond.users, [])
    assert.equal(beyond.total, total)
  })

  test('admin calls with the anon key are 403 not_admin', async () => {
    const res = await fresh().auth.admin.listUsers()
    authFails(res, 403, 'not_admin')
    assert.deepEqual(res.data, { users: [] })
    const { session } = await signedUp('notadmin')
    const asUser = client(ANON_KEY, { global: { headers: { Authorization: `Bearer ${session.access_token}` } } })
    authFails(await asUser.auth.admin.getUserById(session.user.id), 403, 'not_admin')
  })

  test('getUserById, updateUserById (metadata, ban) and deleteUser', async () => {
    const email = newEmail('admin-crud')
    const created = authOk(await admin.createUser({ email, password: PASSWORD, email_confirm: true, user_metadata: { a: 1 } })).user

    const got = authOk(await admin.getUserById(created.id)).user
    assert.equal(got.id, created.id)
    assert.equal(got.email, email)
    assert.deepEqual(wire(), { method: 'GET', path: `/auth/v1/admin/users/${created.id}`, status: 200, code: undefined })

    const updated = authOk(
      await admin.updateUserById(created.id, { user_metadata: { b: 2 }, app_metadata: { role_hint: 'editor' } }),
    ).user
    assert.deepEqual(updated.user_metadata, { a: 1, b: 2 })
    assert.equal(updated.app_metadata.role_hint, 'editor')
    assert.equal(updated.app_metadata.provider, 'email')

    const banned = authOk(await admin.updateUserById(created.id, { ban_duration: '24h' })).user
    const until = Date.parse(banned.banned_until)
    assert.ok(Math.abs(until - (Date.now() + 24 * 3600 * 1000)) < 120_000, `banned_until ${banned.banned_until}`)
    authFails(await fresh().auth.signInWithPassword({ email, password: PASSWORD }), 400, 'user_banned')
    const unbanned = authOk(await admin.updateUserById(created.id, { ban_duration: 'none' })).user
    assert.ok(!unbanned.banned_until, `banned_until ${unbanned.banned_until}`)

    const { session } = authOk(await fresh().auth.signInWithPassword({ email, password: PASSWORD }))
    authOk(await admin.deleteUser(created.id))
    assert.deepEqual(wire(), { method: 'DELETE', path: `/auth/v1/admin/users/${created.id}`, status: 200, code: undefined })
    authFails(await admin.getUserById(created.id), 404, 'user_not_found')
    // the deleted user's access token is still well signed, but its subject is gone
    authFails(await fresh().auth.getUser(session.access_token), 403, 'user_not_found')
    assert.equal(await sqlValue('select count(*)::int from auth.users where id = $1', [created.id]), 0)
  })

  test('generateLink(magiclink): the action link redirects (303) with tokens; the hashed token verifies once', async () => {
    const { email, user } = await signedUp('genlink')
    const redirectTo = `${URL_}/welcome`
    const { properties, user: linkUser } = authOk(
      await admin.generateLink({ type: 'magiclink', email, options: { redirectTo } }),
    )
    assert.equal(linkUser.id, user.id)
    assert.equal(properties.verification_type, 'magiclink')
    assert.equal(properties.redirect_to, redirectTo)
    assert.match(properties.email_otp, /^\d{6}$/)
    assert.match(properties.hashed_token, /^[0-9a-f]{56}$/)
    const action = new URL(properties.action_link)
    assert.equal(action.pathname, '/auth/v1/verify')
    assert.equal(action.searchParams.get('token'), properties.hashed_token)
    assert.equal(action.searchParams.get('type'), 'magiclink')
    assert.equal(action.searchParams.get('redirect_to'), redirectTo)
    assert.deepEqual(await outbox(email), [], 'generate_link sends no mail')

    // following the link: 303 to redirect_to with the session in the fragment
    const res = await fetch(properties.action_link, { redirect: 'manual' })
    assert.equal(res.status, 303)
    const location = new URL(res.headers.get('location'))
    assert.equal(`${location.origin}${location.pathname}`, redirectTo)
    const fragment = new URLSearchParams(location.hash.slice(1))
    assert.equal(fragment.get('token_type'), 'bearer')
    assert.equal(fragment.get('type'), 'magiclink')
    assert.equal(fragment.get('expires_in'), '3600')
    assert.ok(fragment.get('refresh_token'))
    const claims = claimsOf(fragment.get('access_token'))
    assert.equal(claims.sub, user.id)
    assert.equal(Number(fragment.get('expires_at')), claims.exp)
    authOk(await fresh().auth.getUser(fragment.get('access_token')))

    // the same link again: 303 with the error in the fragment
    const reused = await fetch(properties.action_link, { redirect: 'manual' })
    assert.equal(reused.status, 303)
    const errFragment = new URLSearchParams(new URL(reused.headers.get('location')).hash.slice(1))
    assert.equal(errFragment.get('error'), 'access_denied')
    assert.equal(errFragment.get('error_code'), 'otp_expired')
    assert.ok(errFragment.get('error_description'))

    // a new link, verified through the client with its token hash
    const second = authOk(await admin.generateLink({ type: 'magiclink', email })).properties
    const c = fresh()
    const { session } = authOk(await c.auth.verifyOtp({ token_hash: second.hashed_token, type: 'magiclink' }))
    assertSession(session, user.id)
    authFails(await fresh().auth.verifyOtp({ token_hash: second.hashed_token, type: 'magiclink' }), 403, 'otp_expired')
  })
})

// ------------------------------------------------------------------------ MFA
describe('MFA (TOTP)', () => {
  test('the RFC 6238 implementation used by these tests matches the RFC test vector', () => {
    // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits)
    assert.equal(hotp(Buffer.from('12345678901234567890'), 1, 8), '94287082')
  })

  test('enroll → challenge → verify raises the session to aal2; listFactors; unenroll needs aal2', async () => {
    const { c, email, user } = await signedUp('mfa')
    const enrolled = authOk(await c.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'phone app' }))
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/factors', status: 200, code: undefined })
    assert.match(enrolled.id, UUID_RE)
    assert.equal(enrolled.type, 'totp')
    assert.equal(enrolled.friendly_name, 'phone app')
    // raw SVG markup (an XML prologue is allowed, GoTrue's svgo writes one) behind the client's prefix
    assert.ok(enrolled.totp.qr_code.startsWith('data:image/svg+xml;utf-8,<'), enrolled.totp.qr_code.slice(0, 60))
    assert.match(enrolled.totp.qr_code, /<svg[\s>][\s\S]*<\/svg>\s*$/)
    const secret = enrolled.totp.secret
    assert.match(secret, /^[A-Z2-7]{16,}$/)
    const uri = new URL(enrolled.totp.uri)
    assert.equal(uri.protocol, 'otpauth:')
    assert.equal(uri.host, 'totp')
    assert.equal(uri.searchParams.get('secret'), secret)
    assert.ok(decodeURIComponent(uri.pathname).includes(email), `uri ${enrolled.totp.uri}`)

    // unverified: listed in `all` only, and the assurance level stays aal1
    const pending = authOk(await c.auth.mfa.listFactors())
    assert.deepEqual(pending.all.map((f) => [f.id, f.factor_type, f.status]), [[enrolled.id, 'totp', 'unverified']])
    assert.deepEqual(pending.totp, [])
    const aal1 = authOk(await c.auth.mfa.getAuthenticatorAssuranceLevel())
    assert.equal(aal1.currentLevel, 'aal1')
    assert.equal(aal1.nextLevel, 'aal1')

    // a wrong code is refused
    const code = totp(secret)
    const wrongCode = String((Number(code) + 500000) % 1000000).padStart(6, '0')
    authFails(await c.auth.mfa.challengeAndVerify({ factorId: enrolled.id, code: wrongCode }), 422, 'mfa_verification_failed')

    const challenge = authOk(await c.auth.mfa.challenge({ factorId: enrolled.id }))
    assert.deepEqual(wire(), { method: 'POST', path: `/auth/v1/factors/${enrolled.id}/challenge`, status: 200, code: undefined })
    assert.match(challenge.id, UUID_RE)
    assert.equal(challenge.type, 'totp')
    const now = Math.floor(Date.now() / 1000)
    assert.ok(challenge.expires_at > now && challenge.expires_at <= now + 310, `expires_at ${challenge.expires_at}`)

    const verified = authOk(await c.auth.mfa.verify({ factorId: enrolled.id, challengeId: challenge.id, code: totp(secret) }))
    const claims = assertSession(verified, user.id)
    assert.equal(claims.aal, 'aal2')
    assert.deepEqual(claims.amr.map((a) => a.method), ['totp', 'password'])
    assert.equal(authOk(await c.auth.getSession()).session.access_token, verified.access_token)

    const level = authOk(await c.auth.mfa.getAuthenticatorAssuranceLevel())
    assert.equal(level.currentLevel, 'aal2')
    assert.equal(level.nextLevel, 'aal2')
    assert.equal(level.currentAuthenticationMethods[0].method, 'totp')

    const factors = authOk(await c.auth.mfa.listFactors())
    assert.deepEqual(factors.totp.map((f) => [f.id, f.status, f.friendly_name]), [[enrolled.id, 'verified', 'phone app']])
    assert.equal(factors.all.length, 1)
    const adminFactors = authOk(await admin.mfa.listFactors({ userId: user.id })).factors
    assert.deepEqual(adminFactors.map((f) => [f.id, f.status]), [[enrolled.id, 'verified']])

    // a password-only (aal1) session may not remove a verified factor
    const c2 = fresh()
    authOk(await c2.auth.signInWithPassword({ email, password: PASSWORD }))
    const aal1Again = authOk(await c2.auth.mfa.getAuthenticatorAssuranceLevel())
    assert.deepEqual([aal1Again.currentLevel, aal1Again.nextLevel], ['aal1', 'aal2'])
    authFails(await c2.auth.mfa.unenroll({ factorId: enrolled.id }), 422, 'insufficient_aal')

    const removed = authOk(await c.auth.mfa.unenroll({ factorId: enrolled.id }))
    assert.deepEqual(removed, { id: enrolled.id })
    assert.deepEqual(authOk(await c.auth.mfa.listFactors()).all, [])
    assert.equal(await sqlValue('select count(*)::int from auth.mfa_factors where user_id = $1', [user.id]), 0)
  })
})

// ------------------------------------------------------------------------ RLS with real sessions
describe('RLS through /rest/v1 with user sessions', () => {
  test('each signed-in user inserts and reads only its own auth_notes rows', async () => {
    const a = await signedUp('rls-a')
    const b = await signedUp('rls-b')
    try {
      const rowA = await a.c.from('auth_notes').insert({ body: 'note of a' }).select().single()
      assert.equal(rowA.error, null, JSON.stringify(rowA.error))
      assert.equal(rowA.status, 201)
      assert.equal(rowA.data.owner, a.user.id, 'owner defaults to auth.uid()')
      assert.equal(lastRequest().headers.authorization, `Bearer <jwt role=authenticated sub=${a.user.id}>`)
      const rowB = await b.c.from('auth_notes').insert({ body: 'note of b' }).select().single()
      assert.equal(rowB.error, null, JSON.stringify(rowB.error))
      assert.equal(rowB.data.owner, b.user.id)

      const seenA = await a.c.from('auth_notes').select('owner, body')
      assert.deepEqual(seenA.data, [{ owner: a.user.id, body: 'note of a' }])
      const seenB = await b.c.from('auth_notes').select('owner, body')
      assert.deepEqual(seenB.data, [{ owner: b.user.id, body: 'note of b' }])
      assert.deepEqual(
        await sqlRows('select owner, body from auth_notes where owner = any($1) order by id', [[a.user.id, b.user.id]]),
        [
          { owner: a.user.id, body: 'note of a' },
          { owner: b.user.id, body: 'note of b' },
        ],
      )

      // writing a row for someone else violates the policy; anon sees nothing
      const forged = await a.c.from('auth_notes').insert({ owner: b.user.id, body: 'forged' })
      assert.equal(forged.status, 403)
      assert.equal(forged.error.code, '42501')
      assert.deepEqual((await fresh().from('auth_notes').select('*')).data, [])

      // after sign-out the client falls back to the anon key
      authOk(await a.c.auth.signOut())
      assert.deepEqual((await a.c.from('auth_notes').select('*')).data, [])
      assert.equal(lastRequest().headers.authorization, 'Bearer <jwt role=anon>')
    } finally {
      await sqlExec('delete from auth_notes where owner = any($1)', [[a.user.id, b.user.id]])
    }
  })

  test('deleting the user cascades to its auth_notes rows', async () => {
    const a = await signedUp('rls-del')
    const ins = await a.c.from('auth_notes').insert({ body: 'gone soon' })
    assert.equal(ins.status, 201, JSON.stringify(ins.error))
    assert.equal(await sqlValue('select count(*)::int from auth_notes where owner = $1', [a.user.id]), 1)
    authOk(await admin.deleteUser(a.user.id))
    assert.equal(await sqlValue('select count(*)::int from auth_notes where owner = $1', [a.user.id]), 0)
  })
})
