// supabase-js (pinned in compat/package.json) against forge-server's phone sign-in (GoTrue API):
// phone sign-up and its SMS confirmation, password sign-in with a phone, OTP sign-in by text,
// single-use codes, phone changes, resending codes, reauthentication by text and admin-created
// phone users. The main server runs with phone sign-in on, sms_autoconfirm off and no SMS
// provider: texts are read from its local SMS outbox (GET /auth/v1/admin/outbox?phone=,
// service role). Every test uses its own random numbers (+1555 and 7 random digits), so the
// tests are independent of each other and of the other suites.
// Run through compat/run.sh, which starts the server and exports the FORGE_* variables.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, describe } from 'node:test'
import {
  SERVICE_KEY,
  client,
  closeDb,
  lastRequest,
  sqlOne,
  sqlValue,
  wireTest as test,
} from './helpers.mjs'
import {
  ISO_RE,
  PASSWORD,
  UUID_RE,
  adminOutbox,
  amrOf,
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

/** A fresh number in E.164 form: +1555 and 7 random digits (never 0000000). */
function newPhone() {
  return `+1555${String(crypto.randomInt(1, 10_000_000)).padStart(7, '0')}`
}

/** How the server stores a number: E.164 digits without `+`. */
function stored(phone) {
  return phone.replace(/^\+/, '')
}

/** The texts the server kept for `phone` in its local SMS outbox, oldest first. */
async function texts(phone) {
  return (await adminOutbox({ phone })).texts
}

/** The code of a text (6 digits on this server). */
function codeOf(text) {
  const m = /\b(\d{6})\b/.exec(text.body)
  assert.ok(m, `no code in ${JSON.stringify(text)}`)
  return m[1]
}

/** Asserts the outbox holds exactly `kinds` for `phone` (oldest first) and returns the texts. */
async function textsOf(phone, kinds) {
  const sent = await texts(phone)
  assert.deepEqual(sent.map((t) => t.kind), kinds, `texts to ${phone}: ${JSON.stringify(sent)}`)
  for (const t of sent) {
    assert.equal(t.to, phone)
    assert.match(t.sent_at, ISO_RE)
  }
  return sent
}

/** A code that is not `code`. */
function otherCode(code) {
  return code === '000000' ? '111111' : '000000'
}

/** Signs a new number up with a password (not confirmed yet: sms_autoconfirm is off). */
async function phoneSignUp(data = {}) {
  const c = fresh()
  const phone = newPhone()
  const { user, session } = authOk(await c.auth.signUp({ phone, password: PASSWORD, options: { data } }))
  assert.equal(session, null, 'without sms_autoconfirm signUp returns no session')
  return { c, phone, user }
}

/** A phone user confirmed through the texted code, signed in on its own client. */
async function confirmedPhoneUser() {
  const { phone, user } = await phoneSignUp()
  const [text] = await textsOf(phone, ['otp'])
  const c = fresh()
  const { session } = authOk(await c.auth.verifyOtp({ phone, token: codeOf(text), type: 'sms' }))
  assert.equal(session.user.id, user.id)
  return { c, phone, user: session.user, session }
}

// ------------------------------------------------------------------------ sign-up by phone
describe('phone sign-up, SMS confirmation and password sign-in', () => {
  test('signUp({phone, password}) returns an unconfirmed phone user, no session, and texts a code', async () => {
    const c = fresh()
    const phone = newPhone()
    const res = await c.auth.signUp({ phone, password: PASSWORD, options: { data: { nickname: 'ada' } } })
    const { user, session } = authOk(res)
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/signup', status: 200, code: undefined })
    assert.equal(session, null)
    assert.match(user.id, UUID_RE)
    assert.equal(user.phone, stored(phone))
    assert.equal(user.phone_confirmed_at ?? null, null)
    assert.ok(!user.email, `no email: ${JSON.stringify(user.email)}`)
    assert.match(user.confirmation_sent_at, ISO_RE)
    assert.deepEqual(user.user_metadata, { nickname: 'ada' })
    assert.deepEqual(user.app_metadata, { provider: 'phone', providers: ['phone'] })
    assert.deepEqual(user.identities.map((i) => [i.provider, i.user_id, i.identity_data.phone]), [['phone', user.id, stored(phone)]])
    assert.equal(authOk(await c.auth.getSession()).session, null, 'the client keeps no session')

    const [text] = await textsOf(phone, ['otp'])
    assert.equal(text.channel, 'sms')
    assert.match(codeOf(text), /^\d{6}$/)

    assert.deepEqual(
      await sqlOne('select phone, phone_confirmed_at is not null as confirmed, email from auth.users where id = $1', [user.id]),
      { phone: stored(phone), confirmed: false, email: null },
    )
  })

  test('signInWithPassword with the phone before verification is 400 phone_not_confirmed', async () => {
    const { phone } = await phoneSignUp()
    const res = await fresh().auth.signInWithPassword({ phone, password: PASSWORD })
    authFails(res, 400, 'phone_not_confirmed')
    assert.deepEqual(res.data, { user: null, session: null })
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/token', status: 400, code: 'phone_not_confirmed' })
    assert.equal(new URL(lastRequest().url).searchParams.get('grant_type'), 'password')
  })

  test("verifyOtp({type:'sms'}) confirms the number and signs in (amr otp); then signInWithPassword works", async () => {
    const { phone, user } = await phoneSignUp({ nickname: 'bob' })
    const [text] = await textsOf(phone, ['otp'])

    const c = fresh()
    const verified = authOk(await c.auth.verifyOtp({ phone, token: codeOf(text), type: 'sms' }))
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/verify', status: 200, code: undefined })
    assert.equal(verified.user.id, user.id)
    assert.equal(verified.user.phone, stored(phone))
    assert.match(verified.user.phone_confirmed_at, ISO_RE)
    assert.deepEqual(verified.user.identities.map((i) => i.provider), ['phone'])
    assert.equal(verified.user.identities[0].identity_data.phone_verified, true)
    const claims = assertSession(verified.session, user.id)
    assert.equal(claims.phone, stored(phone))
    assert.deepEqual(amrOf(verified.session.access_token), ['otp'])
    assert.deepEqual(claims.user_metadata, { nickname: 'bob' })
    assert.equal(authOk(await c.auth.getSession()).session.access_token, verified.session.access_token)
    assert.equal(await sqlValue('select phone_confirmed_at is not null from auth.users where id = $1', [user.id]), true)

    const signedIn = authOk(await fresh().auth.signInWithPassword({ phone, password: PASSWORD }))
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/token', status: 200, code: undefined })
    assertSession(signedIn.session, user.id)
    assert.deepEqual(amrOf(signedIn.session.access_token), ['password'])
    assert.notEqual(claimsOf(signedIn.session.access_token).session_id, claims.session_id, 'a new session')
    assert.equal(signedIn.user.phone, stored(phone))

    authFails(await fresh().auth.signInWithPassword({ phone, password: 'not-the-password' }), 400, 'invalid_credentials')
  })

  test('a texted code is single-use, and a wrong code is 403 otp_expired', async () => {
    const { phone, user } = await phoneSignUp()
    const code = codeOf((await textsOf(phone, ['otp']))[0])

    const wrong = await fresh().auth.verifyOtp({ phone, token: otherCode(code), type: 'sms' })
    assert.equal(authFails(wrong, 403, 'otp_expired').message, 'Token has expired or is invalid')
    assert.deepEqual(wrong.data, { user: null, session: null })
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/verify', status: 403, code: 'otp_expired' })

    // the wrong attempt did not spend the right code
    const { session } = authOk(await fresh().auth.verifyOtp({ phone, token: code, type: 'sms' }))
    assertSession(session, user.id)

    const again = await fresh().auth.verifyOtp({ phone, token: code, type: 'sms' })
    authFails(again, 403, 'otp_expired')
    assert.deepEqual(again.data, { user: null, session: null })
  })

  test("resend({type:'sms'}) texts a new code to an unconfirmed number; unknown numbers get the same answer", async () => {
    const { phone, user } = await phoneSignUp()
    const res = await fresh().auth.resend({ type: 'sms', phone })
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/resend', status: 200, code: undefined })
    assert.deepEqual(res, { data: { user: null, session: null, messageId: undefined }, error: null })
    const sent = await textsOf(phone, ['otp', 'otp'])

    const unknown = newPhone()
    const other = await fresh().auth.resend({ type: 'sms', phone: unknown })
    assert.deepEqual(other, res)
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/resend', status: 200, code: undefined })
    await textsOf(unknown, [])

    // the new code replaces the first one (one pending code per user, as in GoTrue)
    if (codeOf(sent[0]) !== codeOf(sent[1])) {
      authFails(await fresh().auth.verifyOtp({ phone, token: codeOf(sent[0]), type: 'sms' }), 403, 'otp_expired')
    }
    const { session } = authOk(await fresh().auth.verifyOtp({ phone, token: codeOf(sent[1]), type: 'sms' }))
    assertSession(session, user.id)
    assert.match(session.user.phone_confirmed_at, ISO_RE)
  })
})

// ------------------------------------------------------------------------ OTP sign-in by text
describe('OTP sign-in by text', () => {
  test('signInWithOtp({phone}) creates the user and answers a messageId; verifyOtp signs in', async () => {
    const c = fresh()
    const phone = newPhone()
    const sent = await c.auth.signInWithOtp({ phone, options: { data: { source: 'otp' } } })
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/otp', status: 200, code: undefined })
    assert.equal(sent.error, null)
    assert.deepEqual(Object.keys(sent.data).sort(), ['messageId', 'session', 'user'])
    assert.equal(sent.data.user, null)
    assert.equal(sent.data.session, null)
    assert.equal(typeof sent.data.messageId, 'string')
    assert.ok(sent.data.messageId.length > 0, 'a message id')

    const created = await sqlOne(
      'select id, phone, phone_confirmed_at is not null as confirmed, raw_user_meta_data as meta from auth.users where phone = $1',
      [stored(phone)],
    )
    const { id: createdId, ...createdRow } = created
    assert.match(createdId, UUID_RE)
    assert.deepEqual(createdRow, { phone: stored(phone), confirmed: false, meta: { source: 'otp' } })

    const [text] = await textsOf(phone, ['otp'])
    assert.equal(text.channel, 'sms')
    const { user, session } = authOk(await c.auth.verifyOtp({ phone, token: codeOf(text), type: 'sms' }))
    assert.equal(user.id, created.id)
    assert.equal(user.phone, stored(phone))
    assert.match(user.phone_confirmed_at, ISO_RE)
    assert.deepEqual(user.user_metadata, { source: 'otp' })
    assert.deepEqual(user.app_metadata, { provider: 'phone', providers: ['phone'] })
    assertSession(session, created.id)
    assert.deepEqual(amrOf(session.access_token), ['otp'])
    assert.equal(authOk(await c.auth.getSession()).session.access_token, session.access_token)

    // a known (now confirmed) number gets a new code, which signs in the same user
    authOk(await fresh().auth.signInWithOtp({ phone }))
    const again = await textsOf(phone, ['otp', 'otp'])
    const second = authOk(await fresh().auth.verifyOtp({ phone, token: codeOf(again[1]), type: 'sms' }))
    assertSession(second.session, created.id)
    assert.equal(await sqlValue('select count(*)::int from auth.users where phone = $1', [stored(phone)]), 1)
  })

  test('signInWithOtp({shouldCreateUser:false}) for an unknown number is 422 otp_disabled and texts nothing', async () => {
    const phone = newPhone()
    const res = await fresh().auth.signInWithOtp({ phone, options: { shouldCreateUser: false } })
    authFails(res, 422, 'otp_disabled')
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/otp', status: 422, code: 'otp_disabled' })
    assert.equal(res.data.user, null)
    assert.equal(res.data.session, null)
    await textsOf(phone, [])
    assert.equal(await sqlValue('select count(*)::int from auth.users where phone = $1', [stored(phone)]), 0)

    // for a known number the same call sends a code
    const { phone: known } = await confirmedPhoneUser()
    authOk(await fresh().auth.signInWithOtp({ phone: known, options: { shouldCreateUser: false } }))
    await textsOf(known, ['otp', 'otp'])
  })

  test("signInWithOtp with channel 'whatsapp' is accepted and the code goes out on that channel", async () => {
    const phone = newPhone()
    const sent = await fresh().auth.signInWithOtp({ phone, options: { channel: 'whatsapp' } })
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/otp', status: 200, code: undefined })
    assert.equal(authOk(sent).user, null)
    assert.equal(typeof sent.data.messageId, 'string')
    const [text] = await textsOf(phone, ['otp'])
    assert.equal(text.channel, 'whatsapp')
    const { session, user } = authOk(await fresh().auth.verifyOtp({ phone, token: codeOf(text), type: 'sms' }))
    assertSession(session, user.id)
    assert.equal(user.phone, stored(phone))
  })
})

// ------------------------------------------------------------------------ the signed-in phone user
describe('phone change and reauthentication', () => {
  test("updateUser({phone}) texts the new number; verifyOtp({type:'phone_change'}) switches to it", async () => {
    const { c, phone, user } = await confirmedPhoneUser()
    const next = newPhone()
    const updated = authOk(await c.auth.updateUser({ phone: next })).user
    assert.deepEqual(wire(), { method: 'PUT', path: '/auth/v1/user', status: 200, code: undefined })
    assert.equal(updated.id, user.id)
    assert.equal(updated.phone, stored(phone), 'the number changes only once the new one is verified')
    assert.equal(updated.new_phone, stored(next))
    assert.match(updated.phone_change_sent_at, ISO_RE)
    assert.deepEqual(
      await sqlOne('select phone, phone_change from auth.users where id = $1', [user.id]),
      { phone: stored(phone), phone_change: stored(next) },
    )

    const [text] = await textsOf(next, ['phone_change'])
    assert.equal(text.channel, 'sms')
    await textsOf(phone, ['otp']) // nothing more to the old number

    // the code is bound to the new number
    authFails(await c.auth.verifyOtp({ phone, token: codeOf(text), type: 'phone_change' }), 403, 'otp_expired')

    const verified = authOk(await c.auth.verifyOtp({ phone: next, token: codeOf(text), type: 'phone_change' }))
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/verify', status: 200, code: undefined })
    assert.equal(verified.user.id, user.id)
    assert.equal(verified.user.phone, stored(next))
    assert.ok(!verified.user.new_phone, `new_phone cleared: ${JSON.stringify(verified.user.new_phone)}`)
    assert.match(verified.user.phone_confirmed_at, ISO_RE)
    assert.equal(verified.user.identities.find((i) => i.provider === 'phone').identity_data.phone, stored(next))
    const claims = assertSession(verified.session, user.id)
    assert.equal(claims.phone, stored(next))
    assert.equal(authOk(await c.auth.getSession()).session.user.phone, stored(next))
    assert.deepEqual(
      await sqlOne('select phone, coalesce(phone_change, \'\') as phone_change from auth.users where id = $1', [user.id]),
      { phone: stored(next), phone_change: '' },
    )

    // the new number signs in with the password, the old one no longer does
    assertSession(authOk(await fresh().auth.signInWithPassword({ phone: next, password: PASSWORD })).session, user.id)
    authFails(await fresh().auth.signInWithPassword({ phone, password: PASSWORD }), 400, 'invalid_credentials')
  })

  test('updateUser({phone}) with a number another user has is 422 phone_exists', async () => {
    const { phone: taken } = await confirmedPhoneUser()
    const { c, phone, user } = await confirmedPhoneUser()
    const res = await c.auth.updateUser({ phone: taken })
    authFails(res, 422, 'phone_exists')
    assert.deepEqual(wire(), { method: 'PUT', path: '/auth/v1/user', status: 422, code: 'phone_exists' })
    assert.equal(res.data.user, null)
    await textsOf(taken, ['otp'])
    assert.deepEqual(
      await sqlOne('select phone, coalesce(phone_change, \'\') as phone_change from auth.users where id = $1', [user.id]),
      { phone: stored(phone), phone_change: '' },
    )
  })

  test('reauthenticate() texts a phone-only user a nonce that updateUser accepts with a new password', async () => {
    const { c, phone } = await confirmedPhoneUser()
    assert.deepEqual(await c.auth.reauthenticate(), { data: { user: null, session: null }, error: null })
    assert.deepEqual(wire(), { method: 'GET', path: '/auth/v1/reauthenticate', status: 200, code: undefined })
    const sent = await textsOf(phone, ['otp', 'reauthentication'])
    assert.equal(sent[1].channel, 'sms')
    const nonce = codeOf(sent[1])
    assert.match(nonce, /^\d{6}$/)
    authOk(await c.auth.updateUser({ password: 'nonce-changed-1', nonce }))
    authOk(await fresh().auth.signInWithPassword({ phone, password: 'nonce-changed-1' }))
    authFails(await fresh().auth.signInWithPassword({ phone, password: PASSWORD }), 400, 'invalid_credentials')
  })
})

// ------------------------------------------------------------------------ admin
describe('admin API with phones (service role)', () => {
  test('createUser({phone, phone_confirm, password}) makes a confirmed phone user who signs in with the password', async () => {
    const phone = newPhone()
    const user = authOk(await admin.createUser({ phone, phone_confirm: true, password: PASSWORD, user_metadata: { name: 'Grace' } })).user
    assert.deepEqual(wire(), { method: 'POST', path: '/auth/v1/admin/users', status: 200, code: undefined })
    assert.match(user.id, UUID_RE)
    assert.equal(user.phone, stored(phone))
    assert.match(user.phone_confirmed_at, ISO_RE)
    assert.ok(!user.email, `no email: ${JSON.stringify(user.email)}`)
    assert.deepEqual(user.user_metadata, { name: 'Grace' })
    assert.deepEqual(user.app_metadata, { provider: 'phone', providers: ['phone'] })
    assert.deepEqual(user.identities.map((i) => [i.provider, i.identity_data.phone]), [['phone', stored(phone)]])
    await textsOf(phone, []) // a confirmed admin-created user gets no text

    const c = fresh()
    const { session } = authOk(await c.auth.signInWithPassword({ phone, password: PASSWORD }))
    const claims = assertSession(session, user.id)
    assert.equal(claims.phone, stored(phone))
    assert.deepEqual(amrOf(session.access_token), ['password'])
    assert.equal(authOk(await c.auth.getUser()).user.phone, stored(phone))

    authFails(await admin.createUser({ phone, phone_confirm: true, password: PASSWORD }), 422, 'phone_exists')
  })
})
