// supabase-js (storage-js as pinned in compat/package.json) against forge-server's /storage/v1:
// the methods storage.test.mjs leaves out. Signed upload URLs (createSignedUploadUrl with and
// without upsert, uploadToSignedUrl from a client without a session, the signer as the owner,
// a per-user folder policy checked at signing time, refused tokens), image transformations
// (download, createSignedUrl and getPublicUrl with `transform`, on a PNG made here with
// node:zlib and read back pixel by pixel) and listV2 (cursor paging with and without the
// delimiter, raw prefixes, sort columns and orders), and purgeCache / purgeBucketCache.
// Every test creates its own buckets (random names, removed at the end); what the client got is
// compared with the rows read back in SQL. Run through compat/run.sh, which starts the server
// and exports FORGE_*.
import assert from 'node:assert/strict'
import zlib from 'node:zlib'
import { describe } from 'node:test'
import { ANON_KEY, client, lastRequest, sqlRows, wireTest as test } from './helpers.mjs'
import { UUID_RE } from './auth-helpers.mjs'
import {
  STORAGE_TIME_RE,
  STORAGE_URL,
  attachmentName,
  blobBytes,
  cleanUpAfter,
  fetchUrl,
  folderPolicies,
  newBucket,
  objectNames,
  objectRow,
  put,
  signedUp,
  storage,
  storageFails,
  storageOk,
  suffix,
  unverifiedClaims,
  wireWithQuery,
} from './storage-helpers.mjs'

// Buckets made here are emptied and deleted once every test ran.
cleanUpAfter()

// ------------------------------------------------------------------------ helpers
/** A token with its signature altered. */
function forge(token) {
  return token.slice(0, -3) + (token.endsWith('AAA') ? 'BBB' : 'AAA')
}

/** Every byte value, so an upload that mangled binary data shows. */
const BINARY = Uint8Array.from({ length: 300 }, (_, i) => (i * 11 + 5) % 256)

// ------------------------------------------------------------------------ PNG and WebP
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32(buf) {
  let c = 0xffffffff
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function pngChunk(type, data) {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** An 8-bit RGBA PNG of `width` x `height` whose pixel (x, y) is `rgba(x, y)`. */
function encodePng(width, height, rgba) {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.set([8, 6, 0, 0, 0], 8) // bit depth 8, colour type 6 (RGBA), deflate, filter 0, no interlace
  const raw = Buffer.alloc(height * (1 + width * 4))
  for (let y = 0; y < height; y++) {
    const row = y * (1 + width * 4)
    raw[row] = 0 // filter: none
    for (let x = 0; x < width; x++) raw.set(rgba(x, y), row + 1 + x * 4)
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

/** Decodes an 8-bit, non-interlaced RGB(A) or grey(+alpha) PNG: size and a pixel reader. */
function decodePng(buf) {
  assert.ok(buf.subarray(0, 8).equals(PNG_SIGNATURE), 'a PNG signature')
  let pos = 8
  let header = null
  const idat = []
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos)
    const type = buf.toString('ascii', pos + 4, pos + 8)
    const data = buf.subarray(pos + 8, pos + 8 + len)
    assert.equal(buf.readUInt32BE(pos + 8 + len), crc32(buf.subarray(pos + 4, pos + 8 + len)), `CRC of ${type}`)
    if (type === 'IHDR') {
      header = { width: data.readUInt32BE(0), height: data.readUInt32BE(4), depth: data[8], colour: data[9], interlace: data[12] }
    } else if (type === 'IDAT') idat.push(data)
    else if (type === 'IEND') break
    pos += 12 + len
  }
  assert.ok(header, 'an IHDR chunk')
  const { width, height, depth, colour, interlace } = header
  assert.equal(depth, 8, 'bit depth')
  assert.equal(interlace, 0, 'not interlaced')
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colour]
  assert.ok(channels, `colour type ${colour}`)
  const raw = zlib.inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const px = Buffer.alloc(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1))
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[y * stride + i - channels] : 0
      const b = y > 0 ? px[(y - 1) * stride + i] : 0
      const c = y > 0 && i >= channels ? px[(y - 1) * stride + i - channels] : 0
      let v = line[i]
      if (filter === 1) v += a
      else if (filter === 2) v += b
      else if (filter === 3) v += (a + b) >> 1
      else if (filter === 4) {
        const p = a + b - c
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)]
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c
      } else assert.equal(filter, 0, `row filter ${filter}`)
      px[y * stride + i] = v & 0xff
    }
  }
  const pixel = (x, y) => {
    const p = [...px.subarray(y * stride + x * channels, y * stride + (x + 1) * channels)]
    return channels <= 2 ? [p[0], p[0], p[0]] : p.slice(0, 3)
  }
  return { width, height, pixel }
}

/** Width and height of a PNG (IHDR) or WebP (VP8, VP8L or VP8X header). */
function imageSize(buf) {
  if (buf.subarray(0, 8).equals(PNG_SIGNATURE)) {
    assert.equal(buf.toString('ascii', 12, 16), 'IHDR')
    return { format: 'png', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) }
  }
  assert.equal(buf.toString('ascii', 0, 4), 'RIFF', `neither PNG nor WebP: ${buf.subarray(0, 16).toString('hex')}`)
  assert.equal(buf.toString('ascii', 8, 12), 'WEBP')
  const chunk = buf.toString('ascii', 12, 16)
  if (chunk === 'VP8 ') {
    return { format: 'webp', width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff }
  }
  if (chunk === 'VP8L') {
    assert.equal(buf[20], 0x2f, 'VP8L signature')
    const bits = buf.readUInt32LE(21)
    return { format: 'webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 }
  }
  assert.equal(chunk, 'VP8X')
  return { format: 'webp', width: buf.readUIntLE(24, 3) + 1, height: buf.readUIntLE(27, 3) + 1 }
}

// Four vertical bands of 16 px: green, red, blue, yellow. A centred "cover" crop of the 64x32
// image keeps only red and blue; "fill" and "contain" keep all four.
const BANDS = { green: [0, 200, 0], red: [220, 0, 0], blue: [0, 0, 220], yellow: [230, 230, 0] }
const BAND_ORDER = ['green', 'red', 'blue', 'yellow']
const PNG = encodePng(64, 32, (x) => [...BANDS[BAND_ORDER[Math.floor(x / 16)]], 255])

/** The band colour nearest to a pixel. */
function bandAt(img, x, y) {
  const p = img.pixel(x, y)
  let best = null
  let dist = Infinity
  for (const [name, c] of Object.entries(BANDS)) {
    const d = (p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2 + (p[2] - c[2]) ** 2
    if (d < dist) [best, dist] = [name, d]
  }
  assert.ok(dist < 60 ** 2, `pixel (${x},${y}) = ${p} is near no band colour`)
  return best
}

/** Asserts a transformed PNG's size and the bands at its left and right edges. */
function assertBands(bytes, width, height, left, right) {
  assert.deepEqual(imageSize(bytes), { format: 'png', width, height })
  const img = decodePng(bytes)
  const y = Math.floor(height / 2)
  assert.deepEqual([bandAt(img, 2, y), bandAt(img, width - 3, y)], [left, right], `bands of the ${width}x${height} image`)
}

// ------------------------------------------------------------------------ signed upload URLs
describe('signed upload URLs', () => {
  test('createSignedUploadUrl: a client without a session uploads once, the signer owns it, RLS applies at signing', async () => {
    const bucket = await newBucket('signup')
    const dropPolicies = await folderPolicies('jsm', bucket)
    try {
      const ann = await signedUp('js-storage-more', 'ann')
      const bob = await signedUp('js-storage-more', 'bob')
      const path = `${ann.id}/data/upload.bin`

      const signed = storageOk(await ann.c.storage.from(bucket).createSignedUploadUrl(path))
      assert.deepEqual(wireWithQuery(), {
        method: 'POST',
        path: `/storage/v1/object/upload/sign/${bucket}/${path}`,
        query: '',
        status: 200,
      })
      assert.equal(lastRequest().headers['x-upsert'], undefined, 'no x-upsert without upsert: true')
      assert.match(lastRequest().headers.authorization, new RegExp(`sub=${ann.id}`))
      assert.deepEqual(Object.keys(signed).sort(), ['path', 'signedUrl', 'token'])
      assert.equal(signed.path, path)
      assert.equal(signed.signedUrl, `${STORAGE_URL}/object/upload/sign/${bucket}/${path}?token=${signed.token}`)
      const claims = unverifiedClaims(signed.token)
      assert.equal(claims.url, `${bucket}/${path}`)
      assert.equal(claims.owner, ann.id)
      assert.equal(claims.upsert, false)
      assert.ok(claims.exp > Math.floor(Date.now() / 1000) + 30, `exp ${claims.exp}`)
      assert.deepEqual(await objectNames(bucket), [], 'signing stores nothing')

      // a client with only the anon key and no session uploads with the token
      const nobody = client(ANON_KEY)
      const up = storageOk(
        await nobody.storage.from(bucket).uploadToSignedUrl(path, signed.token, BINARY, {
          contentType: 'application/x-custom',
          cacheControl: '120',
          metadata: { via: 'signed-url' },
        }),
      )
      const sent = lastRequest()
      assert.deepEqual(wireWithQuery(), {
        method: 'PUT',
        path: `/storage/v1/object/upload/sign/${bucket}/${path}`,
        query: `?token=${signed.token}`,
        status: 200,
      })
      assert.match(sent.headers.authorization, /role=anon/)
      assert.equal(sent.headers['content-type'], 'application/x-custom')
      assert.deepEqual(up, { path, fullPath: `${bucket}/${path}` })

      const row = await objectRow(bucket, path)
      assert.deepEqual([row.owner, row.owner_id], [ann.id, ann.id], 'the signer owns the object')
      assert.equal(row.metadata.size, BINARY.length)
      assert.equal(row.metadata.mimetype, 'application/x-custom')
      assert.equal(row.metadata.cacheControl, 'max-age=120')
      assert.deepEqual(row.user_metadata, { via: 'signed-url' })
      assert.deepEqual(await blobBytes(storageOk(await ann.c.storage.from(bucket).download(path))), Buffer.from(BINARY))
      storageFails(await bob.c.storage.from(bucket).download(path), '404', 400, 'Object not found')

      // the token is for one creation: a second upload with it is a duplicate
      const again = await nobody.storage.from(bucket).uploadToSignedUrl(path, signed.token, new Uint8Array([1, 2, 3]), {
        contentType: 'application/x-custom',
      })
      storageFails(again, '409', 400, 'The resource already exists')
      assert.deepEqual(await objectRow(bucket, path), row, 'the refused upload changed nothing')

      // a Blob (multipart) upload through a second signed URL
      const png = `${ann.id}/photo.png`
      const second = storageOk(await ann.c.storage.from(bucket).createSignedUploadUrl(png))
      storageOk(await nobody.storage.from(bucket).uploadToSignedUrl(png, second.token, new Blob([PNG], { type: 'image/png' })))
      assert.equal(lastRequest().headers['content-type'], undefined, 'a FormData body')
      const info = storageOk(await ann.c.storage.from(bucket).info(png))
      assert.deepEqual([info.size, info.contentType, info.cacheControl], [PNG.length, 'image/png', 'max-age=3600'])
      assert.equal((await objectRow(bucket, png)).owner, ann.id)

      // signing is checked against the policies: no URL for another user's folder, nor for anon
      storageFails(
        await bob.c.storage.from(bucket).createSignedUploadUrl(`${ann.id}/evil.bin`),
        '403',
        400,
        /row-level security/,
      )
      storageFails(await nobody.storage.from(bucket).createSignedUploadUrl(`${ann.id}/anon.bin`), '403', 400)
      storageFails(await bob.c.storage.from(bucket).createSignedUploadUrl('top-level.bin'), '403', 400)
      const bobs = storageOk(await bob.c.storage.from(bucket).createSignedUploadUrl(`${bob.id}/ok.bin`))
      assert.equal(unverifiedClaims(bobs.token).owner, bob.id)
      // ... and an existing object cannot be signed for creation again
      storageFails(await ann.c.storage.from(bucket).createSignedUploadUrl(path), '409', 400, 'The resource already exists')
      storageFails(await storage.from(`js-nobucket-${suffix()}`).createSignedUploadUrl('x.bin'), '404')
      assert.deepEqual(await objectNames(bucket), [path, png].sort())
    } finally {
      await dropPolicies()
    }
  })

  test('createSignedUploadUrl with upsert: true signs a token that may replace the object', async () => {
    const bucket = await newBucket('signupsert')
    const nobody = client(ANON_KEY).storage.from(bucket)

    const signed = storageOk(await storage.from(bucket).createSignedUploadUrl('notes/today.txt', { upsert: true }))
    assert.equal(lastRequest().headers['x-upsert'], 'true')
    assert.equal(unverifiedClaims(signed.token).upsert, true)
    assert.equal(unverifiedClaims(signed.token).owner ?? null, null, 'signed by the service role: no owner')

    storageOk(await nobody.uploadToSignedUrl('notes/today.txt', signed.token, 'first draft', { contentType: 'text/plain' }))
    const first = await objectRow(bucket, 'notes/today.txt')
    assert.equal(first.owner, null)
    const up = storageOk(
      await nobody.uploadToSignedUrl('notes/today.txt', signed.token, '# final version', { contentType: 'text/markdown' }),
    )
    assert.deepEqual(up, { path: 'notes/today.txt', fullPath: `${bucket}/notes/today.txt` })
    const second = await objectRow(bucket, 'notes/today.txt')
    assert.equal(second.id, first.id, 'the row is replaced in place')
    assert.notEqual(second.version, first.version)
    const down = storageOk(await storage.from(bucket).download('notes/today.txt'))
    assert.equal(await down.text(), '# final version')
    assert.equal(down.type, 'text/markdown')

    // an object that exists before signing: only an upsert URL can be made for it
    await put(bucket, 'existing.txt', 'old', { contentType: 'text/plain' })
    storageFails(await storage.from(bucket).createSignedUploadUrl('existing.txt'), '409', 400, 'The resource already exists')
    const replace = storageOk(await storage.from(bucket).createSignedUploadUrl('existing.txt', { upsert: true }))
    storageOk(await nobody.uploadToSignedUrl('existing.txt', replace.token, 'new', { contentType: 'text/plain' }))
    assert.equal(await (storageOk(await storage.from(bucket).download('existing.txt'))).text(), 'new')
    assert.deepEqual(await objectNames(bucket), ['existing.txt', 'notes/today.txt'])
  })

  test('uploadToSignedUrl refuses a tampered token, a token for another path and a download token', async () => {
    const bucket = await newBucket('signbad')
    const nobody = client(ANON_KEY).storage.from(bucket)
    const { token } = storageOk(await storage.from(bucket).createSignedUploadUrl('dir/a.txt'))

    storageFails(await nobody.uploadToSignedUrl('dir/a.txt', forge(token), 'x', { contentType: 'text/plain' }), '400')
    // claims changed, signature kept
    const [head, , sig] = token.split('.')
    const claims = { ...unverifiedClaims(token), url: `${bucket}/dir/b.txt` }
    const altered = `${head}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`
    storageFails(await nobody.uploadToSignedUrl('dir/b.txt', altered, 'x', { contentType: 'text/plain' }), '400')
    // a genuine token names one object
    storageFails(await nobody.uploadToSignedUrl('dir/b.txt', token, 'x', { contentType: 'text/plain' }), '400')
    storageFails(await nobody.uploadToSignedUrl('dir/a.txt', '', 'x', { contentType: 'text/plain' }), '400')
    // a download URL's token does not allow an upload
    await put(bucket, 'dir/c.txt', 'c', { contentType: 'text/plain' })
    const { signedUrl } = storageOk(await storage.from(bucket).createSignedUrl('dir/c.txt', 60))
    const downloadToken = new URL(signedUrl).searchParams.get('token')
    storageFails(await nobody.uploadToSignedUrl('dir/c.txt', downloadToken, 'overwritten', { contentType: 'text/plain' }), '400')
    assert.equal(await (storageOk(await storage.from(bucket).download('dir/c.txt'))).text(), 'c')
    assert.deepEqual(await objectNames(bucket), ['dir/c.txt'])

    // the untampered token still works
    storageOk(await nobody.uploadToSignedUrl('dir/a.txt', token, 'a', { contentType: 'text/plain' }))
    assert.deepEqual(await objectNames(bucket), ['dir/a.txt', 'dir/c.txt'])
  })
  test('refused uploadToSignedUrl calls with a multipart body reach the client as Storage errors', async () => {
    const bucket = await newBucket('signcut')
    const nobody = client(ANON_KEY).storage.from(bucket)
    const { token } = storageOk(await storage.from(bucket).createSignedUploadUrl('a.png'))
    // The server refuses the token before it read the body; it must still answer on a
    // connection the client can go on using. Tried repeatedly (on the connections fetch keeps
    // alive), since whether the client notices a cut connection depends on timing.
    for (let attempt = 0; attempt < 20; attempt++) {
      storageFails(await nobody.uploadToSignedUrl('a.png', forge(token), new Blob([PNG], { type: 'image/png' })), '400')
    }
    assert.deepEqual(await objectNames(bucket), [])
    storageOk(await nobody.uploadToSignedUrl('a.png', token, new Blob([PNG], { type: 'image/png' })))
    assert.deepEqual(await objectNames(bucket), ['a.png'])
  })
})

// ------------------------------------------------------------------------ image transformations
describe('image transformations', () => {
  test('download with transform resizes (cover, contain, fill, one side) and keeps the PNG format', async () => {
    const bucket = await newBucket('render')
    await put(bucket, 'img/bands.png', PNG, { contentType: 'image/png' })
    const files = storage.from(bucket)

    // the stored original is untouched
    assert.deepEqual(await blobBytes(storageOk(await files.download('img/bands.png'))), PNG)
    assertBands(PNG, 64, 32, 'green', 'yellow')

    const cover = storageOk(await files.download('img/bands.png', { transform: { width: 16, height: 16, resize: 'cover' } }))
    assert.deepEqual(wireWithQuery(), {
      method: 'GET',
      path: `/storage/v1/render/image/authenticated/${bucket}/img/bands.png`,
      query: '?width=16&height=16&resize=cover',
      status: 200,
    })
    // storage-js asks for no particular type (fetch then sends Accept: */*), so no WebP
    assert.equal(lastRequest().headers.accept, undefined)
    assert.equal(cover.type, 'image/png')
    assertBands(await blobBytes(cover), 16, 16, 'red', 'blue')

    const fill = storageOk(await files.download('img/bands.png', { transform: { width: 16, height: 16, resize: 'fill' } }))
    assertBands(await blobBytes(fill), 16, 16, 'green', 'yellow')
    const contain = storageOk(await files.download('img/bands.png', { transform: { width: 16, height: 16, resize: 'contain' } }))
    assertBands(await blobBytes(contain), 16, 8, 'green', 'yellow')
    const wide = storageOk(await files.download('img/bands.png', { transform: { width: 32 } }))
    assertBands(await blobBytes(wide), 32, 16, 'green', 'yellow')
    const tall = storageOk(await files.download('img/bands.png', { transform: { height: 8 } }))
    assertBands(await blobBytes(tall), 16, 8, 'green', 'yellow')

    const originTransform = { width: 16, height: 16, resize: 'cover', format: 'origin', quality: 50 }
    const origin = storageOk(await files.download('img/bands.png', { transform: originTransform }))
    assert.equal(wireWithQuery().query, '?width=16&height=16&resize=cover&format=origin&quality=50')
    assert.equal(origin.type, 'image/png')
    assertBands(await blobBytes(origin), 16, 16, 'red', 'blue')

    // an explicit WebP (storage-js passes the format through)
    const webp = storageOk(await files.download('img/bands.png', { transform: { width: 16, format: 'webp' } }))
    assert.equal(webp.type, 'image/webp')
    assert.deepEqual(imageSize(await blobBytes(webp)), { format: 'webp', width: 16, height: 8 })

    storageFails(await files.download('img/bands.png', { transform: { width: 16, quality: 5 } }), '400')
    storageFails(await files.download('img/bands.png', { transform: { width: 16, resize: 'stretch' } }), '400')
    storageFails(await files.download('img/none.png', { transform: { width: 16 } }), '404', 400, 'Object not found')
    // without a policy the anon role sees no object to transform
    storageFails(await client(ANON_KEY).storage.from(bucket).download('img/bands.png', { transform: { width: 16 } }), '404')
  })

  test('createSignedUrl with transform gives a /render/image/sign/ URL that serves the signed transformation', async () => {
    const bucket = await newBucket('rendersign')
    await put(bucket, 'pics/bands.png', PNG, { contentType: 'image/png' })
    const files = storage.from(bucket)

    const { signedUrl } = storageOk(
      await files.createSignedUrl('pics/bands.png', 60, { transform: { width: 16, height: 16, resize: 'contain' } }),
    )
    assert.deepEqual(wireWithQuery(), {
      method: 'POST',
      path: `/storage/v1/object/sign/${bucket}/pics/bands.png`,
      query: '',
      status: 200,
    })
    const prefix = `${STORAGE_URL}/render/image/sign/${bucket}/pics/bands.png?token=`
    assert.ok(signedUrl.startsWith(prefix), signedUrl)
    const token = new URL(signedUrl).searchParams.get('token')
    const claims = unverifiedClaims(token)
    assert.equal(claims.url, `${bucket}/pics/bands.png`)
    assert.equal(claims.exp - claims.iat, 60)
    assert.ok(claims.transformations, 'the token carries the transformation')

    const got = await fetchUrl(signedUrl)
    assert.equal(got.status, 200)
    assert.equal(got.headers.get('content-type'), 'image/png')
    assertBands(got.body, 16, 8, 'green', 'yellow')
    // the transformation is the signed one, whatever the query says
    const widened = await fetchUrl(`${signedUrl}&width=40&resize=cover`)
    assert.equal(widened.status, 200)
    assertBands(widened.body, 16, 8, 'green', 'yellow')
    assert.equal((await fetchUrl(signedUrl.replace(token, forge(token)))).status, 400)

    const plain = storageOk(await files.createSignedUrl('pics/bands.png', 60, { transform: { width: 16, height: 16 } }))
    assertBands((await fetchUrl(plain.signedUrl)).body, 16, 16, 'red', 'blue')
  })

  test('getPublicUrl with transform gives a /render/image/public/ URL for public buckets only', async () => {
    const pub = await newBucket('renderpub', { public: true })
    const priv = await newBucket('renderpriv', { public: false })
    await put(pub, 'a b/bands.png', PNG, { contentType: 'image/png' })
    await put(priv, 'a b/bands.png', PNG, { contentType: 'image/png' })

    const transform = { width: 16, height: 16, resize: 'cover', quality: 60 }
    const { data } = storage.from(pub).getPublicUrl('a b/bands.png', { transform })
    assert.equal(
      data.publicUrl,
      `${STORAGE_URL}/render/image/public/${pub}/a%20b/bands.png?width=16&height=16&resize=cover&quality=60`,
    )
    const got = await fetchUrl(data.publicUrl)
    assert.equal(got.status, 200)
    assert.equal(got.headers.get('content-type'), 'image/png')
    assertBands(got.body, 16, 16, 'red', 'blue')

    const fill = storage.from(pub).getPublicUrl('a b/bands.png', { transform: { width: 20, height: 10, resize: 'fill' } })
      .data.publicUrl
    assertBands((await fetchUrl(fill)).body, 20, 10, 'green', 'yellow')
    // without transform: the original bytes
    assert.deepEqual((await fetchUrl(storage.from(pub).getPublicUrl('a b/bands.png').data.publicUrl)).body, PNG)

    const privateUrl = storage.from(priv).getPublicUrl('a b/bands.png', { transform: { width: 16 } }).data.publicUrl
    assert.equal(privateUrl, `${STORAGE_URL}/render/image/public/${priv}/a%20b/bands.png?width=16`)
    const refused = await fetchUrl(privateUrl)
    assert.equal(refused.status, 400)
    assert.equal(JSON.parse(refused.text).statusCode, '404')
    const missing = await fetchUrl(storage.from(pub).getPublicUrl('a b/none.png', { transform: { width: 16 } }).data.publicUrl)
    assert.equal(missing.status, 400)
    assert.equal(JSON.parse(missing.text).statusCode, '404')
  })
  test('renders answer X-Transformations naming what was asked, in Storage\'s order and names', async () => {
    const bucket = await newBucket('renderhdr', { public: true })
    await put(bucket, 'bands.png', PNG, { contentType: 'image/png' })
    const files = storage.from(bucket)
    const sent = () => lastRequest().responseHeaders['x-transformations']

    // download(path, { transform }): /render/image/authenticated/...
    storageOk(await files.download('bands.png', { transform: { width: 200, height: 200, resize: 'cover', quality: 60 } }))
    assert.equal(sent(), 'height:200,width:200,resizing_type:fill,quality:60')
    storageOk(await files.download('bands.png', { transform: { width: 16, resize: 'contain', format: 'webp' } }))
    assert.equal(sent(), 'width:16,resizing_type:fit,format:webp')
    storageOk(await files.download('bands.png', { transform: { height: 5000, resize: 'fill' } }))
    assert.equal(sent(), 'height:2000,resizing_type:force', 'sizes are named as clamped')
    storageOk(await files.download('bands.png', { transform: { quality: 80, format: 'origin' } }))
    assert.equal(sent(), 'quality:80', 'format origin is not named')
    // a plain download has none
    storageOk(await files.download('bands.png'))
    assert.equal(sent(), undefined)

    // getPublicUrl(path, { transform }) and createSignedUrl(path, n, { transform })
    const pub = files.getPublicUrl('bands.png', { transform: { width: 16, height: 8, resize: 'fill' } }).data.publicUrl
    const got = await fetchUrl(pub)
    assert.equal(got.status, 200)
    assert.equal(got.headers.get('x-transformations'), 'height:8,width:16,resizing_type:force')
    const { signedUrl } = storageOk(await files.createSignedUrl('bands.png', 60, { transform: { width: 16, height: 16, resize: 'contain' } }))
    const signed = await fetchUrl(signedUrl)
    assert.equal(signed.status, 200)
    assert.equal(signed.headers.get('x-transformations'), 'height:16,width:16,resizing_type:fit')
    // Accept's WebP is the server's choice, not a transformation that was asked
    const browser = await fetchUrl(pub, { accept: 'image/avif,image/webp,*/*' })
    assert.equal(browser.headers.get('content-type'), 'image/webp')
    assert.equal(browser.headers.get('x-transformations'), 'height:8,width:16,resizing_type:force')
  })

  test('a transformed image is served as an attachment when createSignedUrl or getPublicUrl asks for a download', async () => {
    const pub = await newBucket('renderdl', { public: true })
    await put(pub, 'img/bands.png', PNG, { contentType: 'image/png' })
    const files = storage.from(pub)
    const transform = { width: 16, height: 16, resize: 'fill' }

    const signed = storageOk(await files.createSignedUrl('img/bands.png', 60, { transform, download: true }))
    assert.match(signed.signedUrl, /^[^?]+\/render\/image\/sign\/[^?]+\?token=[^&]+&download=$/)
    const attached = await fetchUrl(signed.signedUrl)
    assert.equal(attached.status, 200)
    assertBands(attached.body, 16, 16, 'green', 'yellow')
    assert.match(attached.headers.get('content-disposition') ?? '(none)', /^attachment\b/)

    const renamed = storageOk(await files.createSignedUrl('img/bands.png', 60, { transform, download: 'small.png' }))
    assert.match(renamed.signedUrl, /&download=small\.png$/)
    const got = await fetchUrl(renamed.signedUrl)
    assertBands(got.body, 16, 16, 'green', 'yellow')
    assert.equal(attachmentName(got.headers.get('content-disposition')), 'small.png')

    const publicUrl = files.getPublicUrl('img/bands.png', { transform, download: 'thumb.png' }).data.publicUrl
    assert.equal(
      publicUrl,
      `${STORAGE_URL}/render/image/public/${pub}/img/bands.png?download=thumb.png&width=16&height=16&resize=fill`,
    )
    const pubGot = await fetchUrl(publicUrl)
    assert.equal(pubGot.status, 200)
    assertBands(pubGot.body, 16, 16, 'green', 'yellow')
    assert.equal(attachmentName(pubGot.headers.get('content-disposition')), 'thumb.png')
  })
})

// ------------------------------------------------------------------------ listV2
describe('listV2', () => {
  // Uploaded in this order, so created_at and the names disagree.
  const UPLOAD_ORDER = ['f.txt', 'c/2.txt', 'a.txt', 'e/4.txt', 'c/deep/3.txt', 'b.txt', 'd.txt', 'c/1.txt']
  const KEYS = [...UPLOAD_ORDER].sort()

  async function listBucket() {
    const bucket = await newBucket('listv2')
    for (const name of UPLOAD_ORDER) await put(bucket, name, `body of ${name}`, { contentType: 'text/plain' })
    return bucket
  }

  /** Every entry of a page (folders and objects) in the page's order (`order` of names). */
  function entries(page, order = 'asc') {
    const all = [...page.folders.map((f) => f.name), ...page.objects.map((o) => o.name)]
    return all.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0) * (order === 'asc' ? 1 : -1))
  }

  /** Pages through listV2 with `options`, following nextCursor; returns the pages. */
  async function pages(files, options, max = 10) {
    const out = []
    let cursor
    for (;;) {
      const page = storageOk(await files.listV2(cursor ? { ...options, cursor } : options))
      out.push(page)
      if (!page.hasNext) {
        assert.equal(page.nextCursor ?? null, null, 'no cursor after the last page')
        return out
      }
      assert.equal(typeof page.nextCursor, 'string')
      assert.ok(page.nextCursor.length > 0)
      cursor = page.nextCursor
      assert.ok(out.length < max, 'too many pages')
    }
  }

  async function assertObjectsMatchRows(bucket, objects) {
    for (const o of objects) {
      const row = await objectRow(bucket, o.name)
      assert.ok(row, `${o.name} is a stored key`)
      assert.equal(o.id, row.id)
      assert.match(o.id, UUID_RE)
      assert.deepEqual(o.metadata, row.metadata)
      assert.equal(o.created_at, row.created_at, `created_at of ${o.name}`)
      assert.equal(o.updated_at, row.updated_at, `updated_at of ${o.name}`)
      assert.match(o.created_at, STORAGE_TIME_RE)
    }
  }

  test('listV2 without the delimiter lists full keys by name, paged with nextCursor', async () => {
    const bucket = await listBucket()
    const files = storage.from(bucket)

    const all = storageOk(await files.listV2())
    for (const o of all.objects) assert.ok(!('key' in o), `no key without the delimiter: ${JSON.stringify(o)}`)
    assert.deepEqual(wireWithQuery(), {
      method: 'POST',
      path: `/storage/v1/object/list-v2/${bucket}`,
      query: '',
      status: 200,
    })
    assert.deepEqual(all.folders, [])
    assert.deepEqual(
      all.objects.map((o) => o.name),
      KEYS,
    )
    assert.equal(all.hasNext, false)
    assert.equal(all.nextCursor ?? null, null)
    await assertObjectsMatchRows(bucket, all.objects)
    assert.equal(all.objects[0].metadata.size, 'body of a.txt'.length)
    assert.equal(all.objects[0].metadata.mimetype, 'text/plain')

    const paged = await pages(files, { limit: 3 })
    assert.deepEqual(
      paged.map((p) => p.objects.map((o) => o.name)),
      [KEYS.slice(0, 3), KEYS.slice(3, 6), KEYS.slice(6)],
    )
    assert.deepEqual(
      paged.map((p) => [p.hasNext, p.folders.length]),
      [
        [true, 0],
        [true, 0],
        [false, 0],
      ],
    )
    // exactly one page's worth: no next page
    const exact = storageOk(await files.listV2({ limit: KEYS.length }))
    assert.deepEqual([exact.objects.length, exact.hasNext], [KEYS.length, false])
    const oneShort = storageOk(await files.listV2({ limit: KEYS.length - 1 }))
    assert.deepEqual([oneShort.objects.length, oneShort.hasNext], [KEYS.length - 1, true])

    // the anon role, without policies, sees nothing
    const hidden = storageOk(await client(ANON_KEY).storage.from(bucket).listV2())
    assert.deepEqual([hidden.objects, hidden.folders, hidden.hasNext], [[], [], false])
  })

  test('listV2 with with_delimiter folds keys into folders ending in /, one entry per folder across pages', async () => {
    const bucket = await listBucket()
    const files = storage.from(bucket)

    const root = storageOk(await files.listV2({ with_delimiter: true }))
    assert.deepEqual(
      root.folders.map((f) => f.name),
      ['c/', 'e/'],
    )
    // a folder's key is its name without the trailing slash; by name, every other field is null
    assert.deepEqual(root.folders[0], {
      key: 'c',
      name: 'c/',
      id: null,
      updated_at: null,
      created_at: null,
      last_accessed_at: null,
      metadata: null,
    })
    assert.deepEqual(
      root.objects.map((o) => o.key),
      ['a.txt', 'b.txt', 'd.txt', 'f.txt'],
    )
    assert.deepEqual(
      root.objects.map((o) => o.name),
      ['a.txt', 'b.txt', 'd.txt', 'f.txt'],
    )
    await assertObjectsMatchRows(bucket, root.objects)
    assert.equal(root.hasNext, false)

    const paged = await pages(files, { with_delimiter: true, limit: 2 })
    assert.deepEqual(
      paged.map((p) => entries(p)),
      [
        ['a.txt', 'b.txt'],
        ['c/', 'd.txt'],
        ['e/', 'f.txt'],
      ],
    )

    // a prefix ending in / lists that folder: full keys, sub-folders folded
    const c = storageOk(await files.listV2({ prefix: 'c/', with_delimiter: true }))
    assert.deepEqual(
      c.folders.map((f) => f.name),
      ['c/deep/'],
    )
    // under a prefix, keys are the segment at the prefix's depth
    assert.deepEqual(
      [...c.folders, ...c.objects].map((e) => e.key),
      ['deep', '1.txt', '2.txt'],
    )
    assert.deepEqual(
      c.objects.map((o) => o.name),
      ['c/1.txt', 'c/2.txt'],
    )
    const cPaged = await pages(files, { prefix: 'c/', with_delimiter: true, limit: 1 })
    assert.deepEqual(
      cPaged.map((p) => entries(p)),
      [['c/1.txt'], ['c/2.txt'], ['c/deep/']],
    )

    // name order descending, across pages
    const desc = await pages(files, { with_delimiter: true, limit: 4, sortBy: { column: 'name', order: 'desc' } })
    assert.deepEqual(
      desc.map((p) => entries(p, 'desc')),
      [
        ['f.txt', 'e/', 'd.txt', 'c/'],
        ['b.txt', 'a.txt'],
      ],
    )
  })

  test('listV2 with with_delimiter honours sortBy created_at and updated_at; folders sort by their first object', async () => {
    const bucket = await listBucket()
    const files = storage.from(bucket)
    // Root entries in creation order: a folder counts from its oldest object (c/2.txt, e/4.txt).
    const BY_CREATION = ['f.txt', 'c/', 'a.txt', 'e/', 'b.txt', 'd.txt']

    /** Every entry of every page (limit 2), in the order the pages and the sort give them. */
    async function walk(sortBy) {
      const out = []
      for (const p of await pages(files, { with_delimiter: true, limit: 2, sortBy })) {
        const all = [...p.folders, ...p.objects]
        const at = (e) => Date.parse(e[sortBy.column])
        all.sort((x, y) => (at(x) - at(y) || (x.name < y.name ? -1 : 1)) * (sortBy.order === 'desc' ? -1 : 1))
        out.push(...all.map((e) => e.name))
      }
      return out
    }
    assert.deepEqual(await walk({ column: 'created_at', order: 'asc' }), BY_CREATION)
    assert.deepEqual(await walk({ column: 'created_at', order: 'desc' }), [...BY_CREATION].reverse())
    assert.deepEqual(await walk({ column: 'updated_at', order: 'asc' }), BY_CREATION)

    // a folder entry sorted by a timestamp carries its first object's creation as both times
    const page = storageOk(await files.listV2({ with_delimiter: true, limit: 2, sortBy: { column: 'created_at', order: 'asc' } }))
    const first = (await objectRow(bucket, 'c/2.txt')).created_at
    assert.deepEqual(page.folders, [
      { key: 'c', name: 'c/', id: null, updated_at: first, created_at: first, last_accessed_at: null, metadata: null },
    ])
    assert.deepEqual(
      page.objects.map((o) => [o.key, o.name]),
      [['f.txt', 'f.txt']],
    )
    assert.equal(page.hasNext, true)
    assert.equal(page.nextCursorKey, 'c', 'the last entry, a folder named without its slash')

    // rewriting a.txt moves it last by updated_at; the folders keep their creation time
    await put(bucket, 'a.txt', 'rewritten', { contentType: 'text/plain', upsert: true })
    assert.deepEqual(await walk({ column: 'updated_at', order: 'asc' }), ['f.txt', 'c/', 'e/', 'b.txt', 'd.txt', 'a.txt'])
    assert.deepEqual(await walk({ column: 'updated_at', order: 'desc' }), ['a.txt', 'd.txt', 'b.txt', 'e/', 'c/', 'f.txt'])
    // under a prefix
    const inC = await pages(files, { prefix: 'c/', with_delimiter: true, limit: 1, sortBy: { column: 'created_at', order: 'desc' } })
    assert.deepEqual(
      inC.flatMap((p) => [...p.folders, ...p.objects].map((e) => [e.key, e.name])),
      [
        ['1.txt', 'c/1.txt'],
        ['deep', 'c/deep/'],
        ['2.txt', 'c/2.txt'],
      ],
    )
  })

  test('listV2 prefix is a raw string prefix; sortBy name, created_at and updated_at in both orders', async () => {
    const bucket = await listBucket()
    const files = storage.from(bucket)
    const names = (page) => page.objects.map((o) => o.name)

    assert.deepEqual(names(storageOk(await files.listV2({ prefix: 'c/' }))), ['c/1.txt', 'c/2.txt', 'c/deep/3.txt'])
    assert.deepEqual(names(storageOk(await files.listV2({ prefix: 'c' }))), ['c/1.txt', 'c/2.txt', 'c/deep/3.txt'])
    assert.deepEqual(names(storageOk(await files.listV2({ prefix: 'c/d' }))), ['c/deep/3.txt'])
    assert.deepEqual(names(storageOk(await files.listV2({ prefix: 'b' }))), ['b.txt'])
    const none = storageOk(await files.listV2({ prefix: 'zzz' }))
    assert.deepEqual([none.objects, none.folders, none.hasNext], [[], [], false])

    // name, descending, 3 to a page
    const byNameDesc = await pages(files, { limit: 3, sortBy: { column: 'name', order: 'desc' } })
    const reversed = [...KEYS].reverse()
    assert.deepEqual(
      byNameDesc.map(names),
      [reversed.slice(0, 3), reversed.slice(3, 6), reversed.slice(6)],
    )
    // a prefix and a descending order together
    assert.deepEqual(
      (await pages(files, { prefix: 'c/', limit: 2, sortBy: { column: 'name', order: 'desc' } })).map(names),
      [['c/deep/3.txt', 'c/2.txt'], ['c/1.txt']],
    )

    // created_at follows the upload order
    const created = await sqlRows(
      'select name from storage.objects where bucket_id = $1 order by created_at, name collate "C"',
      [bucket],
    )
    assert.deepEqual(
      created.map((r) => r.name),
      UPLOAD_ORDER,
    )
    const oldestFirst = await pages(files, { limit: 3, sortBy: { column: 'created_at', order: 'asc' } })
    assert.deepEqual(oldestFirst.map(names).flat(), UPLOAD_ORDER)
    assert.equal(oldestFirst.length, 3)
    const newestFirst = storageOk(await files.listV2({ limit: 5, sortBy: { column: 'created_at', order: 'desc' } }))
    assert.deepEqual(names(newestFirst), [...UPLOAD_ORDER].reverse().slice(0, 5))
    assert.equal(newestFirst.hasNext, true)
    // the cursor carries the sort: the next page continues it without repeating sortBy
    const rest = storageOk(await files.listV2({ limit: 5, cursor: newestFirst.nextCursor }))
    assert.deepEqual(names(rest), [...UPLOAD_ORDER].reverse().slice(5))
    assert.equal(rest.hasNext, false)

    // rewriting a.txt makes it the most recently updated
    await put(bucket, 'a.txt', 'rewritten', { contentType: 'text/plain', upsert: true })
    const latest = storageOk(await files.listV2({ limit: 1, sortBy: { column: 'updated_at', order: 'desc' } }))
    assert.deepEqual([names(latest), latest.hasNext], [['a.txt'], true])
    assert.equal(latest.objects[0].metadata.size, 'rewritten'.length)
    const updated = await sqlRows(
      'select name from storage.objects where bucket_id = $1 order by updated_at, name collate "C"',
      [bucket],
    )
    const byUpdate = await pages(files, { limit: 3, sortBy: { column: 'updated_at', order: 'asc' } })
    assert.deepEqual(
      byUpdate.map(names).flat(),
      updated.map((r) => r.name),
    )
    assert.equal(byUpdate.map(names).flat().at(-1), 'a.txt')
  })
})

// ------------------------------------------------------------------------ purgeCache
describe('purgeCache', () => {
  test('purgeCache and purgeBucketCache succeed for what the caller can see and delete nothing', async () => {
    const bucket = await newBucket('purge')
    await put(bucket, 'a/b.txt', 'keep me', { contentType: 'text/plain' })
    const files = storage.from(bucket)
    assert.deepEqual(storageOk(await files.purgeCache('a/b.txt')), { message: 'success' })
    assert.equal(new URL(lastRequest().url).pathname, `/storage/v1/cdn/${bucket}/a/b.txt`)
    assert.deepEqual(storageOk(await files.purgeCache('a/b.txt', { transformations: true })), { message: 'success' })
    assert.deepEqual(storageOk(await storage.purgeBucketCache(bucket)), { message: 'success' })
    // The object is still there, byte for byte.
    const kept = storageOk(await files.download('a/b.txt'))
    assert.equal(await kept.text(), 'keep me')

    const missing = await files.purgeCache('a/none.txt')
    assert.equal(missing.error?.statusCode, '404')
    const nobucket = await storage.purgeBucketCache(`${bucket}-none`)
    assert.equal(nobucket.error?.statusCode, '404')
    // Without a policy, anon sees neither.
    const anon = client(ANON_KEY).storage
    assert.equal((await anon.from(bucket).purgeCache('a/b.txt')).error?.statusCode, '404')
    assert.equal((await anon.purgeBucketCache(bucket)).error?.statusCode, '404')
  })
})
