"""supabase-py (storage3 as pinned in requirements.txt) against forge-server's /storage/v1: the
methods test_storage.py leaves out.

Signed upload URLs (create_signed_upload_url with and without upsert, upload_to_signed_url from a
client without a session, the signer as the owner, a per-user folder policy checked at signing
time, refused tokens), image transformations (download, create_signed_url and get_public_url
with a `transform`, on a PNG made here with zlib and read back pixel by pixel) and list_v2
(cursor paging with and without the delimiter, raw prefixes, sort columns and orders; storage3
returns a pydantic SearchV2Result).
Every test creates its own buckets (random names, removed at the end of the module); what the
client got is compared with the rows read back in SQL. Run through compat/run.sh, which starts
the servers and exports the FORGE_* variables.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
import zlib
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from storage3.types import CreateSignedUploadUrlOptions, SearchV2Result

from auth_helpers import UUID_RE
from forge_compat import ANON_KEY, client, last_request, last_response, sql_rows
from storage_helpers import (
    STORAGE_URL,
    attachment_name,
    drop_buckets,
    drop_policies,
    folder_policies,
    new_bucket,
    object_names,
    object_row,
    signed_up,
    storage,
    storage_fails,
    suffix,
    unverified_claims,
    wire_as_sent,
)

BINARY = bytes((i * 11 + 5) % 256 for i in range(300))


# Buckets made by this module: emptied and deleted once every test ran.
@pytest.fixture(scope="module", autouse=True)
def _drop_buckets() -> Iterator[None]:
    yield
    drop_buckets()


# ------------------------------------------------------------------ helpers
def forge(token: str) -> str:
    """A token with its signature altered."""
    return token[:-3] + ("BBB" if token.endswith("AAA") else "AAA")


# ------------------------------------------------------------------ PNG and WebP
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rgba) -> bytes:
    """An 8-bit RGBA PNG whose pixel (x, y) is rgba(x, y)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    raw = b"".join(b"\x00" + b"".join(bytes(rgba(x, y)) for x in range(width)) for y in range(height))
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")


class Png:
    """An 8-bit, non-interlaced grey/RGB(A) PNG, decoded."""

    def __init__(self, data: bytes) -> None:
        assert data[:8] == PNG_SIGNATURE, "a PNG signature"
        pos, idat, header = 8, [], None
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind = data[pos + 4 : pos + 8]
            body = data[pos + 8 : pos + 8 + length]
            assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
            pos += 12 + length
        assert header is not None, "an IHDR chunk"
        self.width, self.height, depth, colour, _, _, interlace = header
        assert (depth, interlace) == (8, 0), header
        self.channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        raw = zlib.decompress(b"".join(idat))
        stride = self.width * self.channels
        px = bytearray(self.height * stride)
        ch = self.channels
        for y in range(self.height):
            kind = raw[y * (stride + 1)]
            line = raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
            for i in range(stride):
                a = px[y * stride + i - ch] if i >= ch else 0
                b = px[(y - 1) * stride + i] if y > 0 else 0
                c = px[(y - 1) * stride + i - ch] if y > 0 and i >= ch else 0
                v = line[i]
                if kind == 1:
                    v += a
                elif kind == 2:
                    v += b
                elif kind == 3:
                    v += (a + b) // 2
                elif kind == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    v += a if pa <= pb and pa <= pc else b if pb <= pc else c
                else:
                    assert kind == 0, f"row filter {kind}"
                px[y * stride + i] = v & 0xFF
        self.px, self.stride = bytes(px), stride

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        start = y * self.stride + x * self.channels
        p = self.px[start : start + self.channels]
        return (p[0], p[0], p[0]) if self.channels <= 2 else (p[0], p[1], p[2])


def image_size(data: bytes) -> tuple[str, int, int]:
    """Format, width and height of a PNG (IHDR) or a WebP (VP8, VP8L or VP8X header)."""
    if data[:8] == PNG_SIGNATURE:
        assert data[12:16] == b"IHDR"
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", f"neither PNG nor WebP: {data[:16].hex()}"
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return "webp", w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        assert data[20] == 0x2F, "VP8L signature"
        (bits,) = struct.unpack("<I", data[21:25])
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    assert chunk == b"VP8X"
    return "webp", int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1


# Four vertical bands of 16 px: green, red, blue, yellow. A centred "cover" crop of the 64x32
# image keeps only red and blue; "fill" and "contain" keep all four.
BANDS = {"green": (0, 200, 0), "red": (220, 0, 0), "blue": (0, 0, 220), "yellow": (230, 230, 0)}
BAND_ORDER = ["green", "red", "blue", "yellow"]
PNG = encode_png(64, 32, lambda x, y: (*BANDS[BAND_ORDER[x // 16]], 255))


def band_at(img: Png, x: int, y: int) -> str:
    p = img.pixel(x, y)
    dist, name = min((sum((p[i] - c[i]) ** 2 for i in range(3)), n) for n, c in BANDS.items())
    assert dist < 60**2, f"pixel ({x},{y}) = {p} is near no band colour"
    return name


def assert_bands(data: bytes, width: int, height: int, left: str, right: str) -> None:
    """Asserts a transformed PNG's size and the bands at its left and right edges."""
    assert image_size(data) == ("png", width, height)
    img = Png(data)
    y = height // 2
    assert (band_at(img, 2, y), band_at(img, width - 3, y)) == (left, right), f"bands of the {width}x{height} image"


# ------------------------------------------------------------------ signed upload URLs
def test_signed_upload_url_owner_is_signer_and_rls_applies_at_signing():
    bucket = new_bucket("signup")
    tag = folder_policies("pym", bucket)
    try:
        ann, ann_id = signed_up("py-storage-more", "ann")
        bob, bob_id = signed_up("py-storage-more", "bob")
        path = f"{ann_id}/data/upload.bin"

        signed = ann.storage.from_(bucket).create_signed_upload_url(path)
        assert wire_as_sent() == ("POST", f"/storage/v1/object/upload/sign/{bucket}/{path}", 200)
        assert "x-upsert" not in last_request().headers
        assert signed["path"] == path
        assert signed["signed_url"] == signed["signedUrl"]
        assert signed["signedUrl"] == f"{STORAGE_URL}/object/upload/sign/{bucket}/{path}?token={signed['token']}"
        claims = unverified_claims(signed["token"])
        assert (claims["url"], claims["owner"], claims["upsert"]) == (f"{bucket}/{path}", ann_id, False)
        assert claims["exp"] > time.time() + 30
        assert object_names(bucket) == [], "signing stores nothing"

        # a client with only the anon key and no session uploads with the token
        nobody = client(ANON_KEY).storage.from_(bucket)
        res = nobody.upload_to_signed_url(
            path,
            signed["token"],
            BINARY,
            {"content-type": "application/x-custom", "cache-control": "120", "metadata": {"via": "signed-url"}},
        )
        assert wire_as_sent() == ("PUT", f"/storage/v1/object/upload/sign/{bucket}/{path}", 200)
        sent = last_request()
        assert parse_qs(sent.url.query.decode())["token"] == [signed["token"]]
        assert sent.headers["authorization"] == f"Bearer {ANON_KEY}"
        assert (res.path, res.full_path) == (path, f"{bucket}/{path}")

        row = object_row(bucket, path)
        assert (row["owner"], row["owner_id"]) == (ann_id, ann_id), "the signer owns the object"
        assert row["metadata"]["size"] == len(BINARY)
        assert row["metadata"]["mimetype"] == "application/x-custom"
        assert row["metadata"]["cacheControl"] == "max-age=120"
        assert row["user_metadata"] == {"via": "signed-url"}
        assert ann.storage.from_(bucket).download(path) == BINARY
        storage_fails(lambda: bob.storage.from_(bucket).download(path), "404", message="Object not found")

        # the token is for one creation: a second upload with it is a duplicate
        err = storage_fails(
            lambda: nobody.upload_to_signed_url(path, signed["token"], b"\x01\x02", {"content-type": "application/x-custom"}),
            "409",
            message="The resource already exists",
        )
        assert err.code == "Duplicate"
        assert object_row(bucket, path) == row, "the refused upload changed nothing"

        # signing is checked against the policies
        storage_fails(
            lambda: bob.storage.from_(bucket).create_signed_upload_url(f"{ann_id}/evil.bin"),
            "403",
            400,
            re.compile("row-level security"),
        )
        storage_fails(lambda: nobody.create_signed_upload_url(f"{ann_id}/anon.bin"), "403", 400)
        storage_fails(lambda: bob.storage.from_(bucket).create_signed_upload_url("top-level.bin"), "403", 400)
        bobs = bob.storage.from_(bucket).create_signed_upload_url(f"{bob_id}/ok.bin")
        assert unverified_claims(bobs["token"])["owner"] == bob_id
        storage_fails(lambda: ann.storage.from_(bucket).create_signed_upload_url(path), "409")
        storage_fails(lambda: storage.from_(f"py-nobucket-{suffix()}").create_signed_upload_url("x.bin"), "404")
        assert object_names(bucket) == [path]
    finally:
        drop_policies(tag)


def test_signed_upload_url_with_upsert_replaces():
    bucket = new_bucket("signupsert")
    nobody = client(ANON_KEY).storage.from_(bucket)

    signed = storage.from_(bucket).create_signed_upload_url("notes/today.txt", CreateSignedUploadUrlOptions(upsert="true"))
    assert last_request().headers["x-upsert"] == "true"
    assert unverified_claims(signed["token"])["upsert"] is True

    nobody.upload_to_signed_url("notes/today.txt", signed["token"], b"first draft", {"content-type": "text/plain"})
    first = object_row(bucket, "notes/today.txt")
    assert first["owner"] is None, "signed by the service role: no owner"
    res = nobody.upload_to_signed_url("notes/today.txt", signed["token"], b"# final version", {"content-type": "text/markdown"})
    assert res.full_path == f"{bucket}/notes/today.txt"
    second = object_row(bucket, "notes/today.txt")
    assert second["id"] == first["id"], "the row is replaced in place"
    assert second["version"] != first["version"]
    assert storage.from_(bucket).download("notes/today.txt") == b"# final version"
    assert last_response().headers["content-type"] == "text/markdown"

    # an object that exists before signing: only an upsert URL can be made for it
    storage.from_(bucket).upload("existing.txt", b"old", {"content-type": "text/plain"})
    storage_fails(lambda: storage.from_(bucket).create_signed_upload_url("existing.txt"), "409")
    replace = storage.from_(bucket).create_signed_upload_url("existing.txt", CreateSignedUploadUrlOptions(upsert="true"))
    nobody.upload_to_signed_url("existing.txt", replace["token"], b"new", {"content-type": "text/plain"})
    assert storage.from_(bucket).download("existing.txt") == b"new"
    assert object_names(bucket) == ["existing.txt", "notes/today.txt"]


def test_upload_to_signed_url_refuses_bad_tokens():
    bucket = new_bucket("signbad")
    token = storage.from_(bucket).create_signed_upload_url("dir/a.txt")["token"]
    opts = {"content-type": "text/plain"}

    # Each refusal on a new client (a new connection): whether a refused upload leaves the
    # connection usable is the next test's subject.
    def nobody():
        return client(ANON_KEY).storage.from_(bucket)

    storage_fails(lambda: nobody().upload_to_signed_url("dir/a.txt", forge(token), b"x", opts), "400")
    head, _, sig = token.split(".")
    claims = {**unverified_claims(token), "url": f"{bucket}/dir/b.txt"}
    altered = f"{head}.{base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip('=')}.{sig}"
    storage_fails(lambda: nobody().upload_to_signed_url("dir/b.txt", altered, b"x", opts), "400")
    storage_fails(lambda: nobody().upload_to_signed_url("dir/b.txt", token, b"x", opts), "400")
    # a download URL's token does not allow an upload
    storage.from_(bucket).upload("dir/c.txt", b"c", opts)
    download_url = storage.from_(bucket).create_signed_url("dir/c.txt", 60)["signedURL"]
    download_token = parse_qs(urlsplit(download_url).query)["token"][0]
    storage_fails(lambda: nobody().upload_to_signed_url("dir/c.txt", download_token, b"overwritten", opts), "400")
    assert storage.from_(bucket).download("dir/c.txt") == b"c"
    assert object_names(bucket) == ["dir/c.txt"]

    nobody().upload_to_signed_url("dir/a.txt", token, b"a", opts)
    assert object_names(bucket) == ["dir/a.txt", "dir/c.txt"]


def test_refused_upload_to_signed_url_keeps_the_connection_usable():
    bucket = new_bucket("signcut")
    nobody = client(ANON_KEY).storage.from_(bucket)
    token = storage.from_(bucket).create_signed_upload_url("a.png")["token"]
    # The server refuses the token before it read the body; it must still answer on a
    # connection the client can go on using (httpx keeps it alive). Tried repeatedly, since
    # whether the client notices a cut connection depends on timing.
    body = bytes(64 * 1024)
    for _ in range(120):
        storage_fails(lambda: nobody.upload_to_signed_url("a.png", forge(token), body, {"content-type": "image/png"}), "400")
    assert object_names(bucket) == []
    nobody.upload_to_signed_url("a.png", token, PNG, {"content-type": "image/png"})
    assert object_names(bucket) == ["a.png"]


# ------------------------------------------------------------------ image transformations
def test_download_with_transform():
    bucket = new_bucket("render")
    files = storage.from_(bucket)
    files.upload("img/bands.png", PNG, {"content-type": "image/png"})
    assert files.download("img/bands.png") == PNG
    assert_bands(PNG, 64, 32, "green", "yellow")

    cover = files.download("img/bands.png", {"transform": {"width": 16, "height": 16, "resize": "cover"}})
    assert wire_as_sent() == ("GET", f"/storage/v1/render/image/authenticated/{bucket}/img/bands.png", 200)
    assert parse_qs(last_request().url.query.decode()) == {"width": ["16"], "height": ["16"], "resize": ["cover"]}
    # httpx asks for any type (no image/webp), so the original format comes back
    assert last_request().headers["accept"] == "*/*"
    assert last_response().headers["content-type"] == "image/png"
    assert_bands(cover, 16, 16, "red", "blue")

    fill = files.download("img/bands.png", {"transform": {"width": 16, "height": 16, "resize": "fill"}})
    assert_bands(fill, 16, 16, "green", "yellow")
    assert_bands(
        files.download("img/bands.png", {"transform": {"width": 16, "height": 16, "resize": "contain"}}), 16, 8, "green", "yellow"
    )
    assert_bands(files.download("img/bands.png", {"transform": {"width": 32}}), 32, 16, "green", "yellow")
    origin = files.download(
        "img/bands.png", {"transform": {"width": 16, "height": 16, "resize": "cover", "format": "origin", "quality": 50}}
    )
    assert parse_qs(last_request().url.query.decode())["quality"] == ["50"]
    assert last_response().headers["content-type"] == "image/png"
    assert_bands(origin, 16, 16, "red", "blue")
    webp = files.download("img/bands.png", {"transform": {"width": 16, "format": "webp"}})  # type: ignore[typeddict-item]
    assert last_response().headers["content-type"] == "image/webp"
    assert image_size(webp) == ("webp", 16, 8)

    storage_fails(lambda: files.download("img/bands.png", {"transform": {"width": 16, "quality": 5}}), "400")
    stretch = {"width": 16, "resize": "stretch"}
    storage_fails(lambda: files.download("img/bands.png", {"transform": stretch}), "400")  # type: ignore[typeddict-item]
    storage_fails(lambda: files.download("img/none.png", {"transform": {"width": 16}}), "404", message="Object not found")
    storage_fails(lambda: client(ANON_KEY).storage.from_(bucket).download("img/bands.png", {"transform": {"width": 16}}), "404")


def test_create_signed_url_with_transform():
    bucket = new_bucket("rendersign")
    files = storage.from_(bucket)
    files.upload("pics/bands.png", PNG, {"content-type": "image/png"})

    url = files.create_signed_url("pics/bands.png", 60, {"transform": {"width": 16, "height": 16, "resize": "contain"}})[
        "signedURL"
    ]
    assert wire_as_sent() == ("POST", f"/storage/v1/object/sign/{bucket}/pics/bands.png", 200)
    assert json.loads(last_request().content)["transform"] == {"width": 16, "height": 16, "resize": "contain"}
    assert url.startswith(f"{STORAGE_URL}/render/image/sign/{bucket}/pics/bands.png?token="), url
    token = parse_qs(urlsplit(url).query)["token"][0]
    claims = unverified_claims(token)
    assert claims["url"] == f"{bucket}/pics/bands.png"
    assert claims["exp"] - claims["iat"] == 60
    assert claims.get("transformations"), "the token carries the transformation"

    got = httpx.get(url)  # no apikey, no Authorization
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/png"
    assert_bands(got.content, 16, 8, "green", "yellow")
    widened = httpx.get(f"{url}&width=40&resize=cover")
    assert widened.status_code == 200
    assert_bands(widened.content, 16, 8, "green", "yellow")
    assert httpx.get(url.replace(token, forge(token))).status_code == 400

    plain = files.create_signed_url("pics/bands.png", 60, {"transform": {"width": 16, "height": 16}})["signedURL"]
    assert_bands(httpx.get(plain).content, 16, 16, "red", "blue")


def test_get_public_url_with_transform():
    pub = new_bucket("renderpub", {"public": True})
    priv = new_bucket("renderpriv", {"public": False})
    storage.from_(pub).upload("a b/bands.png", PNG, {"content-type": "image/png"})
    storage.from_(priv).upload("a b/bands.png", PNG, {"content-type": "image/png"})

    url = storage.from_(pub).get_public_url(
        "a b/bands.png", {"transform": {"width": 16, "height": 16, "resize": "cover", "quality": 60}}
    )
    assert url == f"{STORAGE_URL}/render/image/public/{pub}/a%20b/bands.png?width=16&height=16&resize=cover&quality=60"
    got = httpx.get(url)
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/png"
    assert_bands(got.content, 16, 16, "red", "blue")

    fill = storage.from_(pub).get_public_url("a b/bands.png", {"transform": {"width": 20, "height": 10, "resize": "fill"}})
    assert_bands(httpx.get(fill).content, 20, 10, "green", "yellow")
    assert httpx.get(storage.from_(pub).get_public_url("a b/bands.png")).content == PNG

    private_url = storage.from_(priv).get_public_url("a b/bands.png", {"transform": {"width": 16}})
    assert private_url == f"{STORAGE_URL}/render/image/public/{priv}/a%20b/bands.png?width=16"
    refused = httpx.get(private_url)
    assert (refused.status_code, refused.json()["statusCode"]) == (400, "404")
    assert PNG_SIGNATURE not in refused.content
    missing = httpx.get(storage.from_(pub).get_public_url("a b/none.png", {"transform": {"width": 16}}))
    assert (missing.status_code, missing.json()["statusCode"]) == (400, "404")


def test_renders_answer_x_transformations():
    """X-Transformations names what was asked (Storage's ImageRenderer.applyTransformation)."""
    bucket = new_bucket("renderhdr", {"public": True})
    files = storage.from_(bucket)
    files.upload("bands.png", PNG, {"content-type": "image/png"})

    files.download("bands.png", {"transform": {"width": 200, "height": 200, "resize": "cover", "quality": 60}})
    assert last_response().headers["x-transformations"] == "height:200,width:200,resizing_type:fill,quality:60"
    files.download("bands.png", {"transform": {"width": 16, "resize": "contain", "format": "webp"}})  # type: ignore[typeddict-item]
    assert last_response().headers["x-transformations"] == "width:16,resizing_type:fit,format:webp"
    files.download("bands.png", {"transform": {"height": 5000, "resize": "fill"}})
    assert last_response().headers["x-transformations"] == "height:2000,resizing_type:force"
    files.download("bands.png")
    assert "x-transformations" not in last_response().headers

    url = files.get_public_url("bands.png", {"transform": {"width": 16, "height": 8, "resize": "fill"}})
    got = httpx.get(url)
    assert (got.status_code, got.headers["x-transformations"]) == (200, "height:8,width:16,resizing_type:force")
    signed = files.create_signed_url("bands.png", 60, {"transform": {"width": 16, "height": 16, "resize": "contain"}})
    got = httpx.get(signed["signedURL"])
    assert (got.status_code, got.headers["x-transformations"]) == (200, "height:16,width:16,resizing_type:fit")


def test_transformed_image_download_is_an_attachment():
    pub = new_bucket("renderdl", {"public": True})
    files = storage.from_(pub)
    files.upload("img/bands.png", PNG, {"content-type": "image/png"})
    transform = {"width": 16, "height": 16, "resize": "fill"}

    url = files.create_signed_url("img/bands.png", 60, {"transform": transform, "download": True})["signedURL"]
    assert re.match(r"^[^?]+/render/image/sign/[^?]+\?token=[^&]+&download=$", url), url
    got = httpx.get(url)
    assert got.status_code == 200
    assert_bands(got.content, 16, 16, "green", "yellow")
    assert got.headers.get("content-disposition", "(none)").startswith("attachment")

    renamed = files.create_signed_url("img/bands.png", 60, {"transform": transform, "download": "small.png"})["signedURL"]
    got = httpx.get(renamed)
    assert_bands(got.content, 16, 16, "green", "yellow")
    assert attachment_name(got.headers.get("content-disposition", "(none)")) == "small.png"

    public_url = files.get_public_url("img/bands.png", {"transform": transform, "download": "thumb.png"})
    assert public_url == (
        f"{STORAGE_URL}/render/image/public/{pub}/img/bands.png?download=thumb.png&width=16&height=16&resize=fill"
    )
    got = httpx.get(public_url)
    assert got.status_code == 200
    assert_bands(got.content, 16, 16, "green", "yellow")
    assert attachment_name(got.headers.get("content-disposition", "(none)")) == "thumb.png"


# ------------------------------------------------------------------ list_v2
# Uploaded in this order, so created_at and the names disagree.
UPLOAD_ORDER = ["f.txt", "c/2.txt", "a.txt", "e/4.txt", "c/deep/3.txt", "b.txt", "d.txt", "c/1.txt"]
KEYS = sorted(UPLOAD_ORDER)


def list_bucket() -> str:
    bucket = new_bucket("listv2")
    for name in UPLOAD_ORDER:
        storage.from_(bucket).upload(name, f"body of {name}".encode(), {"content-type": "text/plain"})
    return bucket


def object_keys(page: SearchV2Result) -> list[str]:
    return [o.name for o in page.objects]


def entries(page: SearchV2Result, desc: bool = False) -> list[str]:
    return sorted([f.name for f in page.folders] + object_keys(page), reverse=desc)


def pages(files, options: dict, most: int = 10) -> list[SearchV2Result]:
    """Pages through list_v2 with `options`, following nextCursor."""
    out: list[SearchV2Result] = []
    cursor = None
    while True:
        page = files.list_v2({**options, "cursor": cursor} if cursor else options)
        assert isinstance(page, SearchV2Result)
        out.append(page)
        if not page.hasNext:
            assert page.nextCursor is None, "no cursor after the last page"
            return out
        assert isinstance(page.nextCursor, str) and page.nextCursor
        cursor = page.nextCursor
        assert len(out) < most, "too many pages"


def assert_objects_match_rows(bucket: str, page: SearchV2Result) -> None:
    for o in page.objects:
        row = object_row(bucket, o.name)
        assert row is not None, f"{o.name} is a stored key"
        assert UUID_RE.match(o.id)
        assert o.id == row["id"]
        assert o.metadata == row["metadata"]
        assert o.created_at == datetime.fromisoformat(row["created_at"])
        assert o.updated_at == datetime.fromisoformat(row["updated_at"])


def test_list_v2_without_delimiter_pages_full_keys():
    bucket = list_bucket()
    files = storage.from_(bucket)

    everything = files.list_v2()
    assert wire_as_sent() == ("POST", f"/storage/v1/object/list-v2/{bucket}", 200)
    assert everything.folders == []
    assert object_keys(everything) == KEYS
    assert all("key" not in o for o in last_response().json()["objects"]), "no key without the delimiter"
    assert (everything.hasNext, everything.nextCursor) == (False, None)
    assert_objects_match_rows(bucket, everything)
    assert everything.objects[0].metadata["size"] == len("body of a.txt")

    paged = pages(files, {"limit": 3})
    assert json.loads(last_request().content)["limit"] == 3
    assert [object_keys(p) for p in paged] == [KEYS[:3], KEYS[3:6], KEYS[6:]]
    assert [(p.hasNext, len(p.folders)) for p in paged] == [(True, 0), (True, 0), (False, 0)]
    exact = files.list_v2({"limit": len(KEYS)})
    assert (len(exact.objects), exact.hasNext) == (len(KEYS), False)
    short = files.list_v2({"limit": len(KEYS) - 1})
    assert (len(short.objects), short.hasNext) == (len(KEYS) - 1, True)

    hidden = client(ANON_KEY).storage.from_(bucket).list_v2()
    assert (hidden.objects, hidden.folders, hidden.hasNext) == ([], [], False)


def test_list_v2_with_delimiter_folds_folders():
    bucket = list_bucket()
    files = storage.from_(bucket)

    root = files.list_v2({"with_delimiter": True})
    assert json.loads(last_request().content) == {"with_delimiter": True}
    assert [f.name for f in root.folders] == ["c/", "e/"]
    # a folder's key is its name without the trailing slash (Storage's split_part of the name)
    assert [(f.key, f.name) for f in root.folders] == [("c", "c/"), ("e", "e/")]
    assert [o.key for o in root.objects] == ["a.txt", "b.txt", "d.txt", "f.txt"]
    raw = last_response().json()["folders"][0]
    assert raw == {
        "key": "c",
        "name": "c/",
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }
    assert object_keys(root) == ["a.txt", "b.txt", "d.txt", "f.txt"]
    assert_objects_match_rows(bucket, root)
    assert root.hasNext is False

    assert [entries(p) for p in pages(files, {"with_delimiter": True, "limit": 2})] == [
        ["a.txt", "b.txt"],
        ["c/", "d.txt"],
        ["e/", "f.txt"],
    ]
    c = files.list_v2({"prefix": "c/", "with_delimiter": True})
    assert [f.name for f in c.folders] == ["c/deep/"]
    assert [e.key for e in [*c.folders, *c.objects]] == ["deep", "1.txt", "2.txt"], "the segment at the prefix's depth"
    assert object_keys(c) == ["c/1.txt", "c/2.txt"]
    assert [entries(p) for p in pages(files, {"prefix": "c/", "with_delimiter": True, "limit": 1})] == [
        ["c/1.txt"],
        ["c/2.txt"],
        ["c/deep/"],
    ]
    desc = pages(files, {"with_delimiter": True, "limit": 4, "sortBy": {"column": "name", "order": "desc"}})
    assert [entries(p, desc=True) for p in desc] == [["f.txt", "e/", "d.txt", "c/"], ["b.txt", "a.txt"]]


def test_list_v2_with_delimiter_sorts_by_timestamps():
    """Folded and sorted by created_at or updated_at: a folder sorts (and is dated) by its oldest object."""
    bucket = list_bucket()
    files = storage.from_(bucket)
    by_creation = ["f.txt", "c/", "a.txt", "e/", "b.txt", "d.txt"]

    def walk(column: str, order: str) -> list[str]:
        out: list[str] = []
        for p in pages(files, {"with_delimiter": True, "limit": 2, "sortBy": {"column": column, "order": order}}):
            page = sorted([*p.folders, *p.objects], key=lambda e: (getattr(e, column), e.name), reverse=order == "desc")
            out.extend(e.name for e in page)
        return out

    assert walk("created_at", "asc") == by_creation
    assert walk("created_at", "desc") == by_creation[::-1]
    assert walk("updated_at", "asc") == by_creation

    page = files.list_v2({"with_delimiter": True, "limit": 2, "sortBy": {"column": "created_at", "order": "asc"}})
    first = object_row(bucket, "c/2.txt")["created_at"]
    assert last_response().json()["folders"] == [
        {
            "key": "c",
            "name": "c/",
            "id": None,
            "updated_at": first,
            "created_at": first,
            "last_accessed_at": None,
            "metadata": None,
        }
    ]
    assert [(o.key, o.name) for o in page.objects] == [("f.txt", "f.txt")]
    assert last_response().json()["nextCursorKey"] == "c"

    files.upload("a.txt", b"rewritten", {"content-type": "text/plain", "upsert": "true"})
    assert walk("updated_at", "asc") == ["f.txt", "c/", "e/", "b.txt", "d.txt", "a.txt"]
    assert walk("updated_at", "desc") == ["a.txt", "d.txt", "b.txt", "e/", "c/", "f.txt"]


def test_list_v2_prefix_and_sort_orders():
    bucket = list_bucket()
    files = storage.from_(bucket)

    assert object_keys(files.list_v2({"prefix": "c/"})) == ["c/1.txt", "c/2.txt", "c/deep/3.txt"]
    assert object_keys(files.list_v2({"prefix": "c"})) == ["c/1.txt", "c/2.txt", "c/deep/3.txt"]
    assert object_keys(files.list_v2({"prefix": "c/d"})) == ["c/deep/3.txt"]
    none = files.list_v2({"prefix": "zzz"})
    assert (none.objects, none.folders, none.hasNext) == ([], [], False)

    by_name_desc = pages(files, {"limit": 3, "sortBy": {"column": "name", "order": "desc"}})
    rev = KEYS[::-1]
    assert [object_keys(p) for p in by_name_desc] == [rev[:3], rev[3:6], rev[6:]]
    c_desc = pages(files, {"prefix": "c/", "limit": 2, "sortBy": {"column": "name", "order": "desc"}})
    assert [object_keys(p) for p in c_desc] == [
        ["c/deep/3.txt", "c/2.txt"],
        ["c/1.txt"],
    ]

    created = sql_rows('select name from storage.objects where bucket_id = %s order by created_at, name collate "C"', (bucket,))
    assert [r["name"] for r in created] == UPLOAD_ORDER
    oldest_first = pages(files, {"limit": 3, "sortBy": {"column": "created_at", "order": "asc"}})
    assert [k for p in oldest_first for k in object_keys(p)] == UPLOAD_ORDER
    newest_first = files.list_v2({"limit": 5, "sortBy": {"column": "created_at", "order": "desc"}})
    assert object_keys(newest_first) == UPLOAD_ORDER[::-1][:5]
    assert newest_first.hasNext is True
    rest = files.list_v2({"limit": 5, "cursor": newest_first.nextCursor})
    assert (object_keys(rest), rest.hasNext) == (UPLOAD_ORDER[::-1][5:], False)

    storage.from_(bucket).upload("b.txt", b"rewritten", {"content-type": "text/plain", "upsert": "true"})
    latest = files.list_v2({"limit": 1, "sortBy": {"column": "updated_at", "order": "desc"}})
    assert (object_keys(latest), latest.hasNext) == (["b.txt"], True)
    assert latest.objects[0].metadata["size"] == len(b"rewritten")
    updated = sql_rows('select name from storage.objects where bucket_id = %s order by updated_at, name collate "C"', (bucket,))
    by_update = pages(files, {"limit": 3, "sortBy": {"column": "updated_at", "order": "asc"}})
    assert [k for p in by_update for k in object_keys(p)] == [r["name"] for r in updated]
    assert object_keys(by_update[-1])[-1] == "b.txt"
