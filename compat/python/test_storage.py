"""supabase-py (storage3 as pinned in requirements.txt) against forge-server's /storage/v1.

Every bucket method; uploads of bytes, of a file on disk (by path and as an open file) with their
options, info(), upsert and update(), download(), exists(), list() with its options, move() and
copy(), remove(), signed and public URLs, bucket size and MIME limits, the `error` names storage3
reads from Storage's errors, and a per-user folder policy on storage.objects.
Every test creates its own buckets (random names, removed at the end of the module), so the tests
are independent of each other and of the JavaScript suite; what the client got is compared with
the rows read back in SQL. storage3 always uploads multipart/form-data (a part named `file`), and
its move() and copy() have no destination bucket.
Run through compat/run.sh, which starts the servers and exports the FORGE_* variables.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from storage3.exceptions import StorageApiError

from auth_helpers import UUID_RE, claims_of
from forge_compat import ANON_KEY, SERVICE_KEY, client, last_request, last_response, sql_exec, sql_rows, sql_value
from storage_helpers import (
    CREATED,
    STORAGE_TIME_RE,
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
    storage_time,
    suffix,
    unverified_claims,
    wire,
)

anon = client(ANON_KEY)
BINARY = bytes((i * 7 + 3) % 256 for i in range(300))


# Buckets made by this module: emptied and deleted once every test ran.
@pytest.fixture(scope="module", autouse=True)
def _drop_buckets() -> Iterator[None]:
    yield
    drop_buckets()


# ------------------------------------------------------------------ helpers
def bucket_row(bucket: str) -> dict:
    rows = sql_rows(
        """select id, name, coalesce(owner::text, '') as owner, public, type, file_size_limit, allowed_mime_types
             from storage.buckets where id = %s""",
        (bucket,),
    )
    assert len(rows) == 1, f"bucket {bucket}: {rows}"
    return rows[0]


def bucket_fields(b) -> dict:
    """The fields of a storage3 bucket model that the SQL row also has."""
    return {
        "id": b.id,
        "name": b.name,
        "owner": b.owner,
        "public": b.public,
        "type": b.type,
        "file_size_limit": b.file_size_limit,
        "allowed_mime_types": b.allowed_mime_types,
    }


def multipart_fields(request: httpx.Request) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data request: name -> (part content type, body)."""
    m = re.match(r"multipart/form-data; boundary=(.+)$", request.headers["content-type"])
    assert m, request.headers["content-type"]
    boundary = m.group(1).encode()
    parts = {}
    request.read()
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head).group(1).decode()
        ctype = re.search(rb"Content-Type: (.+)", head)
        parts[name] = (ctype.group(1).decode().strip() if ctype else None, body)
    return parts


# ------------------------------------------------------------------ buckets
def test_create_bucket_with_size_string_and_mime_types_then_get_bucket():
    bucket = f"py-bucket-{suffix()}"
    res = storage.create_bucket(
        bucket, options={"public": False, "file_size_limit": "1MB", "allowed_mime_types": ["image/*", "text/plain"]}
    )
    CREATED.append(bucket)
    assert res == {"name": bucket}
    assert wire() == ("POST", "/storage/v1/bucket", 200)
    assert json.loads(last_request().content) == {
        "id": bucket,
        "name": bucket,
        "public": False,
        "file_size_limit": "1MB",
        "allowed_mime_types": ["image/*", "text/plain"],
    }

    b = storage.get_bucket(bucket)
    assert wire() == ("GET", f"/storage/v1/bucket/{bucket}", 200)
    assert bucket_fields(b) == bucket_row(bucket)
    assert (b.id, b.name, b.owner, b.public, b.type) == (bucket, bucket, "", False, "STANDARD")
    assert b.file_size_limit == 1_000_000, "'1MB' is decimal: 1 000 000 bytes"
    assert b.allowed_mime_types == ["image/*", "text/plain"]
    created_at = sql_value(f"select {storage_time('created_at')} from storage.buckets where id = %s", (bucket,))
    assert STORAGE_TIME_RE.match(last_response().json()["created_at"]), "UTC, milliseconds, Z"
    assert b.created_at == datetime.fromisoformat(created_at)
    assert b.updated_at >= b.created_at

    pub = new_bucket("bucketpub", {"public": True, "file_size_limit": 2048})
    p = storage.get_bucket(pub)
    assert (p.public, p.file_size_limit, p.allowed_mime_types) == (True, 2048, None)
    assert bucket_fields(p) == bucket_row(pub)


def test_create_existing_bucket_is_duplicate_and_missing_bucket_is_404():
    bucket = new_bucket("dup")
    err = storage_fails(lambda: storage.create_bucket(bucket, options={"public": True}), "409")
    assert err.message == "The resource already exists"
    assert err.code == "Duplicate"
    assert bucket_row(bucket)["public"] is False, "the existing bucket is unchanged"

    err = storage_fails(lambda: storage.get_bucket(f"py-missing-{suffix()}"), "404")
    assert err.message == "Bucket not found"

    bad = f"py-badlimit-{suffix()}"
    storage_fails(lambda: storage.create_bucket(bad, options={"file_size_limit": "lots"}), "400")
    assert sql_value("select count(*)::int from storage.buckets where id = %s", (bad,)) == 0


def test_size_limit_strings_use_decimal_units():
    """Storage's parseFileSizeToBytes: digits (with decimals) and b/kb/mb/gb in any case, decimal units."""
    bucket = new_bucket("units", {"public": False, "file_size_limit": "20mb"})
    assert storage.get_bucket(bucket).file_size_limit == 20_000_000, "20mb is 20 000 000 bytes"
    for given, size in [("1GB", 1_000_000_000), ("2.5Mb", 2_500_000), ("1.5kb", 1_500), ("3B", 3)]:
        storage.update_bucket(bucket, {"public": False, "file_size_limit": given})
        assert storage.get_bucket(bucket).file_size_limit == size, given
        assert bucket_row(bucket)["file_size_limit"] == size

    storage.update_bucket(bucket, {"public": False, "file_size_limit": "1.5kb"})
    files = storage.from_(bucket)
    files.upload("fits.bin", bytes(1500), {"content-type": "application/octet-stream"})
    storage_fails(lambda: files.upload("over.bin", bytes(1501), {"content-type": "application/octet-stream"}), "413")

    hint = "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B"
    for bad in ["20 MB", "20", "1TB", "mb", "-1mb"]:
        other = f"py-units-bad-{suffix()}"
        err = storage_fails(lambda: storage.create_bucket(other, options={"file_size_limit": bad}), "400")
        assert err.message == hint, bad
        assert sql_value("select count(*)::int from storage.buckets where id = %s", (other,)) == 0
        err = storage_fails(lambda: storage.update_bucket(bucket, {"public": False, "file_size_limit": bad}), "400")
        assert err.message == hint, bad
    assert bucket_row(bucket)["file_size_limit"] == 1_500


def test_timestamps_render_as_storage_renders_them():
    """Bucket and object JSON timestamps: UTC, milliseconds, Z (2021-02-17T04:43:32.770Z)."""
    bucket = new_bucket("times")
    files = storage.from_(bucket)
    files.upload("a.txt", b"a", {"content-type": "text/plain"})
    files.upload("dir/b.txt", b"b", {"content-type": "text/plain"})
    sql_exec(
        """update storage.buckets set created_at = '2021-02-17 04:43:32.770999+00',
                  updated_at = '2021-02-17 06:43:32.5+02' where id = %s""",
        (bucket,),
    )
    sql_exec(
        """update storage.objects set created_at = '2021-02-17 04:43:32.770999+00',
                  updated_at = '2022-03-04 05:06:07.0891+00', last_accessed_at = '2023-01-01 00:00:00+00'
            where bucket_id = %s""",
        (bucket,),
    )
    created, updated, accessed = "2021-02-17T04:43:32.770Z", "2022-03-04T05:06:07.089Z", "2023-01-01T00:00:00.000Z"

    storage.get_bucket(bucket)
    raw = last_response().json()
    assert (raw["created_at"], raw["updated_at"]) == (created, "2021-02-17T04:43:32.500Z")
    storage.list_buckets()
    raw = next(b for b in last_response().json() if b["id"] == bucket)
    assert (raw["created_at"], raw["updated_at"]) == (created, "2021-02-17T04:43:32.500Z")

    a = next(e for e in files.list() if e["name"] == "a.txt")
    assert (a["created_at"], a["updated_at"], a["last_accessed_at"]) == (created, updated, accessed)
    assert STORAGE_TIME_RE.match(a["metadata"]["lastModified"])
    files.info("a.txt")
    raw = last_response().json()
    assert (raw["created_at"], raw["last_modified"]) == (created, updated)
    files.list_v2({"prefix": "a"})
    raw = last_response().json()["objects"][0]
    assert (raw["created_at"], raw["updated_at"], raw["last_accessed_at"]) == (created, updated, accessed)
    removed = files.remove(["dir/b.txt"])
    assert (removed[0]["created_at"], removed[0]["updated_at"], removed[0]["last_accessed_at"]) == (
        created,
        updated,
        accessed,
    )


def test_list_buckets():
    tag = f"lb{suffix()}"
    ids = []
    for letter in ("b", "a", "c"):
        bucket = f"py-{tag}-{letter}"
        storage.create_bucket(bucket, options={"public": letter == "c"})
        CREATED.append(bucket)
        ids.append(bucket)

    listed = storage.list_buckets()
    assert wire() == ("GET", "/storage/v1/bucket", 200)
    mine = sorted((b for b in listed if tag in b.id), key=lambda b: b.id)
    assert [b.id for b in mine] == sorted(ids)
    for b in mine:
        assert bucket_fields(b) == bucket_row(b.id)
    assert [b.public for b in mine] == [False, False, True]
    expected = sql_value("select count(*)::int from storage.buckets")
    assert len(listed) == expected, "the service role sees every bucket"

    # without storage.buckets policies the anon role sees none
    assert anon.storage.list_buckets() == []


def test_update_bucket_changes_only_given_fields():
    bucket = new_bucket("update", {"public": False, "file_size_limit": 1000, "allowed_mime_types": ["text/plain"]})

    res = storage.update_bucket(bucket, {"public": True})
    assert res == {"message": "Successfully updated"}
    assert wire() == ("PUT", f"/storage/v1/bucket/{bucket}", 200)
    b = storage.get_bucket(bucket)
    assert (b.public, b.file_size_limit, b.allowed_mime_types) == (True, 1000, ["text/plain"])

    storage.update_bucket(bucket, {"public": False, "file_size_limit": "2KB", "allowed_mime_types": ["image/png"]})
    b = storage.get_bucket(bucket)
    assert (b.public, b.file_size_limit, b.allowed_mime_types) == (False, 2000, ["image/png"])

    storage.update_bucket(bucket, {"public": False, "file_size_limit": None, "allowed_mime_types": None})
    b = storage.get_bucket(bucket)
    assert (b.file_size_limit, b.allowed_mime_types) == (None, None)
    assert bucket_fields(b) == bucket_row(bucket)

    storage_fails(lambda: storage.update_bucket(f"py-missing-{suffix()}", {"public": True}), "404")


def test_delete_bucket_refused_until_emptied():
    bucket = f"py-delete-{suffix()}"
    storage.create_bucket(bucket)
    storage.from_(bucket).upload("one.txt", b"one", {"content-type": "text/plain"})
    storage.from_(bucket).upload("dir/two.txt", b"two", {"content-type": "text/plain"})

    err = storage_fails(lambda: storage.delete_bucket(bucket), "409")
    assert err.message == "The bucket you tried to delete is not empty"
    assert object_names(bucket) == ["dir/two.txt", "one.txt"]

    assert storage.empty_bucket(bucket) == {"message": "Successfully emptied"}
    assert wire() == ("POST", f"/storage/v1/bucket/{bucket}/empty", 200)
    assert object_names(bucket) == []
    assert storage.get_bucket(bucket).id == bucket

    assert storage.delete_bucket(bucket) == {"message": "Successfully deleted"}
    assert wire() == ("DELETE", f"/storage/v1/bucket/{bucket}", 200)
    assert sql_value("select count(*)::int from storage.buckets where id = %s", (bucket,)) == 0
    storage_fails(lambda: storage.get_bucket(bucket), "404")
    storage_fails(lambda: storage.delete_bucket(bucket), "404")
    storage_fails(lambda: storage.empty_bucket(bucket), "404")


# ------------------------------------------------------------------ upload, info, download
def test_upload_bytes_with_content_type_cache_control_and_metadata_then_info():
    bucket = new_bucket("bytes")
    res = storage.from_(bucket).upload(
        "pics/cat.png",
        BINARY,
        {"content-type": "image/png", "cache-control": "120", "metadata": {"owner": "ada", "rev": 2}},
    )
    assert wire() == ("POST", f"/storage/v1/object/{bucket}/pics/cat.png", 200)
    sent = last_request()
    assert sent.headers["x-upsert"] == "false"
    parts = multipart_fields(sent)
    assert parts["file"] == ("image/png", BINARY)
    assert parts["cacheControl"] == (None, b"120")
    assert json.loads(parts["metadata"][1]) == {"owner": "ada", "rev": 2}
    assert (res.path, res.full_path, res.fullPath) == ("pics/cat.png", f"{bucket}/pics/cat.png", f"{bucket}/pics/cat.png")

    row = object_row(bucket, "pics/cat.png")
    assert UUID_RE.match(row["id"])
    assert row["owner"] is None, "uploaded with the service role: no owner"
    assert (row["metadata"]["size"], row["metadata"]["mimetype"]) == (len(BINARY), "image/png")
    assert row["user_metadata"] == {"owner": "ada", "rev": 2}

    info = storage.from_(bucket).info("pics/cat.png")
    assert wire() == ("GET", f"/storage/v1/object/info/{bucket}/pics/cat.png", 200)
    assert info == {
        "id": row["id"],
        "name": "pics/cat.png",
        "version": row["version"],
        "bucket_id": bucket,
        "size": len(BINARY),
        "content_type": "image/png",
        "cache_control": "max-age=120",
        "etag": row["metadata"]["eTag"],
        "metadata": {"owner": "ada", "rev": 2},
        "last_modified": row["updated_at"],
        "created_at": row["created_at"],
    }

    assert storage.from_(bucket).download("pics/cat.png") == BINARY
    assert wire() == ("GET", f"/storage/v1/object/{bucket}/pics/cat.png", 200)
    assert last_response().headers["content-type"] == "image/png"
    assert last_response().headers["cache-control"] == "max-age=120"
    assert last_response().headers["etag"] == info["etag"]


def test_upload_from_a_path_and_from_an_open_file(tmp_path: Path):
    bucket = new_bucket("files")
    csv = "id,name\n1,ada\n2,grace\n"
    src = tmp_path / "people.csv"
    src.write_text(csv, encoding="utf-8")

    res = storage.from_(bucket).upload("data/people.csv", str(src), {"content-type": "text/csv", "cache-control": "60"})
    assert res.full_path == f"{bucket}/data/people.csv"
    info = storage.from_(bucket).info("data/people.csv")
    assert (info["size"], info["content_type"], info["cache_control"]) == (len(csv), "text/csv", "max-age=60")
    # no user metadata: Supabase Storage answers null (user_metadata), an empty object is as good
    assert info["metadata"] in (None, {})
    assert storage.from_(bucket).download("data/people.csv") == csv.encode()

    binary = tmp_path / "blob.bin"
    binary.write_bytes(BINARY)
    with binary.open("rb") as f:
        storage.from_(bucket).upload(
            "raw/blob.bin", f, {"content-type": "application/octet-stream", "metadata": {"kind": "raw"}}
        )
    info = storage.from_(bucket).info("raw/blob.bin")
    assert (info["size"], info["content_type"], info["metadata"]) == (len(BINARY), "application/octet-stream", {"kind": "raw"})
    assert storage.from_(bucket).download("raw/blob.bin") == BINARY

    # no options: storage3's defaults (a text/plain;charset=UTF-8 part, cacheControl 3600)
    storage.from_(bucket).upload("plain.txt", "héllo".encode())
    assert multipart_fields(last_request())["file"][0] == "text/plain;charset=UTF-8"
    info = storage.from_(bucket).info("plain.txt")
    assert info["content_type"].split(";")[0] == "text/plain"
    assert (info["cache_control"], info["size"]) == ("max-age=3600", 6)


def test_upload_conflict_is_duplicate_and_upsert_replaces():
    bucket = new_bucket("upsert")
    files = storage.from_(bucket)
    files.upload("note.txt", b"first", {"content-type": "text/plain"})
    before = object_row(bucket, "note.txt")

    err = storage_fails(lambda: files.upload("note.txt", b"second", {"content-type": "text/plain"}), "409")
    assert err.message == "The resource already exists"
    assert err.code == "Duplicate"
    assert object_row(bucket, "note.txt") == before, "the refused upload changed nothing"
    assert files.download("note.txt") == b"first"

    res = files.upload("note.txt", b"second, longer", {"content-type": "text/markdown", "upsert": "true"})
    assert last_request().headers["x-upsert"] == "true"
    assert res.full_path == f"{bucket}/note.txt"
    after = object_row(bucket, "note.txt")
    assert after["id"] == before["id"], "the row is updated in place"
    assert after["version"] != before["version"]
    assert object_names(bucket) == ["note.txt"]
    assert files.download("note.txt") == b"second, longer"
    assert last_response().headers["content-type"] == "text/markdown"

    files.upload("fresh.txt", b"new", {"upsert": "true"})
    assert object_names(bucket) == ["fresh.txt", "note.txt"]


def test_update_replaces_existing_object_and_404s_for_missing():
    bucket = new_bucket("update")
    files = storage.from_(bucket)
    files.upload("doc/page.html", b"<p>v1</p>", {"content-type": "text/html", "cache-control": "10"})
    before = object_row(bucket, "doc/page.html")

    res = files.update("doc/page.html", b'{"v":2}', {"content-type": "application/json", "cache-control": "20"})
    assert wire() == ("PUT", f"/storage/v1/object/{bucket}/doc/page.html", 200)
    assert "x-upsert" not in last_request().headers, "update() sends no x-upsert"
    assert (res.path, res.full_path) == ("doc/page.html", f"{bucket}/doc/page.html")
    info = files.info("doc/page.html")
    assert (info["size"], info["content_type"], info["cache_control"]) == (7, "application/json", "max-age=20")
    assert info["id"] == before["id"]
    assert info["version"] != before["version"]
    assert files.download("doc/page.html") == b'{"v":2}'

    err = storage_fails(lambda: files.update("doc/missing.html", b"x", {"content-type": "text/html"}), "404")
    assert err.message == "Object not found"
    assert object_names(bucket) == ["doc/page.html"], "update() never creates an object"


def test_download_missing_object_or_bucket_is_404():
    bucket = new_bucket("download")
    storage.from_(bucket).upload("a/b/c.json", b'{"deep":true}', {"content-type": "application/json"})
    assert json.loads(storage.from_(bucket).download("a/b/c.json")) == {"deep": True}
    assert last_response().headers["content-type"] == "application/json"

    err = storage_fails(lambda: storage.from_(bucket).download("a/b/nope.json"), "404")
    assert err.message == "Object not found"
    storage_fails(lambda: storage.from_(f"py-nobucket-{suffix()}").download("a.txt"), "404")
    storage_fails(lambda: storage.from_(bucket).info("a/b/nope.json"), "404", message="Object not found")


def test_exists_true_and_false():
    bucket = new_bucket("exists")
    storage.from_(bucket).upload("here.txt", b"x", {"content-type": "text/plain"})
    storage.from_(bucket).upload("dir/inner.txt", b"y", {"content-type": "text/plain"})

    assert storage.from_(bucket).exists("here.txt") is True
    assert wire() == ("GET", f"/storage/v1/object/info/{bucket}/here.txt", 200)
    assert storage.from_(bucket).exists("dir/inner.txt") is True
    # storage3 reads the info of the object: False only for Storage's "not_found" error
    assert storage.from_(bucket).exists("gone.txt") is False
    assert storage.from_(bucket).exists("dir") is False


def test_error_names_are_supabase_storages():
    """storage3 exposes the body's `error` as StorageApiError.code. Supabase Storage sends its
    legacy error names there (src/internal/errors/codes.ts: `error: 'not_found'` for NoSuchKey,
    'Bucket not found', 'Duplicate', 'Payload too large', 'invalid_mime_type'), and `code` beside
    it; exists() depends on 'not_found'."""
    bucket = new_bucket("errors", {"public": False, "file_size_limit": 4, "allowed_mime_types": ["text/plain"]})
    files = storage.from_(bucket)
    files.upload("a.txt", b"abc", {"content-type": "text/plain"})

    missing = storage_fails(lambda: files.info("nope.txt"), "404")
    body = last_response().json()
    assert (body["code"], body["error"]) == ("NoSuchKey", "not_found")
    assert missing.code == "not_found"
    assert storage_fails(lambda: files.download("nope.txt"), "404").code == "not_found"
    assert storage_fails(lambda: storage.get_bucket(f"py-missing-{suffix()}"), "404").code == "Bucket not found"
    assert storage_fails(lambda: files.upload("a.txt", b"x", {"content-type": "text/plain"}), "409").code == "Duplicate"
    assert storage_fails(lambda: files.upload("big.txt", b"12345", {"content-type": "text/plain"}), "413").code == (
        "Payload too large"
    )
    assert storage_fails(lambda: files.upload("a.json", b"{}", {"content-type": "application/json"}), "415").code == (
        "invalid_mime_type"
    )


# ------------------------------------------------------------------ list
LIST_FILES = [
    ("a.txt", b"a"),
    ("b.txt", b"bb"),
    ("c.json", b"{}"),
    ("docs/x.txt", b"xxx"),
    ("docs/y.txt", b"yyyy"),
    ("docs/deep/z.txt", b"z"),
    ("logs/3.txt", b"three"),
    ("logs/1.txt", b"one"),
    ("logs/2.txt", b"two"),
]


def list_bucket() -> str:
    bucket = new_bucket("list")
    for name, body in LIST_FILES:
        ctype = "application/json" if name.endswith(".json") else "text/plain"
        storage.from_(bucket).upload(name, body, {"content-type": ctype})
    return bucket


def names(entries: list[dict]) -> list[str]:
    return [e["name"] for e in entries]


def test_list_root_and_folder():
    bucket = list_bucket()
    files = storage.from_(bucket)
    root = files.list()
    assert wire() == ("POST", f"/storage/v1/object/list/{bucket}", 200)
    assert json.loads(last_request().content) == {
        "limit": 100,
        "offset": 0,
        "sortBy": {"column": "name", "order": "asc"},
        "prefix": "",
    }
    assert names(root) == ["a.txt", "b.txt", "c.json", "docs", "logs"]
    row = object_row(bucket, "a.txt")
    a = root[0]
    assert {k: a[k] for k in ("name", "id", "updated_at", "created_at", "metadata")} == {
        "name": "a.txt",
        "id": row["id"],
        "updated_at": row["updated_at"],
        "created_at": row["created_at"],
        "metadata": row["metadata"],
    }
    assert (a["metadata"]["size"], a["metadata"]["mimetype"]) == (1, "text/plain")
    assert root[2]["metadata"]["mimetype"] == "application/json"
    for folder in root[3:]:
        assert folder == {
            "name": folder["name"],
            "id": None,
            "updated_at": None,
            "created_at": None,
            "last_accessed_at": None,
            "metadata": None,
        }

    docs = files.list("docs")
    assert names(docs) == ["deep", "x.txt", "y.txt"]
    assert docs[0]["id"] is None
    assert docs[1]["id"] == object_row(bucket, "docs/x.txt")["id"]
    assert docs[2]["metadata"]["size"] == 4
    assert names(files.list("docs/")) == ["deep", "x.txt", "y.txt"]
    assert names(files.list("docs/deep")) == ["z.txt"]
    assert files.list("nothing-here") == []


def test_list_with_limit_offset_sort_by_and_search():
    bucket = list_bucket()
    files = storage.from_(bucket)

    assert names(files.list("", {"limit": 2, "offset": 1})) == ["b.txt", "c.json"]
    assert json.loads(last_request().content)["limit"] == 2
    assert names(files.list("", {"limit": 2, "offset": 4})) == ["logs"]
    assert files.list("", {"limit": 2, "offset": 5}) == []

    desc = files.list("", {"sortBy": {"column": "name", "order": "desc"}})
    assert names(desc) == ["logs", "docs", "c.json", "b.txt", "a.txt"]

    # uploaded 3, 1, 2: created_at and updated_at follow that order, not the names
    assert names(files.list("logs", {"sortBy": {"column": "created_at", "order": "asc"}})) == ["3.txt", "1.txt", "2.txt"]
    assert names(files.list("logs", {"sortBy": {"column": "updated_at", "order": "desc"}})) == ["2.txt", "1.txt", "3.txt"]
    expected = sql_rows(
        "select name from storage.objects where bucket_id = %s and name like 'logs/%%' order by created_at desc",
        (bucket,),
    )
    assert names(files.list("logs", {"sortBy": {"column": "created_at", "order": "desc"}})) == [
        r["name"].removeprefix("logs/") for r in expected
    ]

    assert names(files.list("", {"search": "b"})) == ["b.txt"]
    assert names(files.list("", {"search": "do"})) == ["docs"]
    assert names(files.list("docs", {"search": "y"})) == ["y.txt"]
    assert files.list("", {"search": "zzz"}) == []
    assert names(files.list("logs", {"limit": 1, "offset": 1, "sortBy": {"column": "name", "order": "desc"}})) == [
        "2.txt"
    ]


# ------------------------------------------------------------------ move, copy, remove
def test_move_renames_an_object():
    bucket = new_bucket("move")
    files = storage.from_(bucket)
    files.upload("a.txt", b"alpha", {"content-type": "text/plain", "metadata": {"tag": "a"}})
    files.upload("b.txt", b"bravo", {"content-type": "text/plain"})
    before = object_row(bucket, "a.txt")

    assert files.move("a.txt", "archive/2026/a.txt") == {"message": "Successfully moved"}
    assert wire() == ("POST", "/storage/v1/object/move", 200)
    assert json.loads(last_request().content) == {
        "bucketId": bucket,
        "sourceKey": "a.txt",
        "destinationKey": "archive/2026/a.txt",
    }
    assert object_names(bucket) == ["archive/2026/a.txt", "b.txt"]
    moved = object_row(bucket, "archive/2026/a.txt")
    assert moved["id"] == before["id"], "a move keeps the object"
    assert moved["user_metadata"] == {"tag": "a"}
    assert files.download("archive/2026/a.txt") == b"alpha"
    storage_fails(lambda: files.download("a.txt"), "404")

    err = storage_fails(lambda: files.move("b.txt", "archive/2026/a.txt"), "409")
    assert err.message == "The resource already exists"
    storage_fails(lambda: files.move("missing.txt", "x.txt"), "404", message="Object not found")
    assert object_names(bucket) == ["archive/2026/a.txt", "b.txt"]


def test_copy_duplicates_an_object():
    bucket = new_bucket("copy")
    files = storage.from_(bucket)
    files.upload("src/orig.txt", b"original", {"content-type": "text/plain", "cache-control": "30", "metadata": {"v": 1}})
    source = object_row(bucket, "src/orig.txt")

    res = files.copy("src/orig.txt", "dst/copy.txt")
    assert wire() == ("POST", "/storage/v1/object/copy", 200)
    assert res["Key"] == f"{bucket}/dst/copy.txt"
    copy = object_row(bucket, "dst/copy.txt")
    assert res["Id"] == copy["id"]
    assert copy["id"] != source["id"]
    assert copy["version"] != source["version"]
    info = files.info("dst/copy.txt")
    assert (info["size"], info["content_type"], info["cache_control"], info["metadata"]) == (
        8,
        "text/plain",
        "max-age=30",
        {"v": 1},
    )

    files.update("src/orig.txt", b"changed", {"content-type": "text/plain"})
    assert files.download("dst/copy.txt") == b"original", "the copy has its own bytes"
    assert files.download("src/orig.txt") == b"changed"

    storage_fails(lambda: files.copy("src/orig.txt", "dst/copy.txt"), "409")
    storage_fails(lambda: files.copy("src/missing.txt", "dst/m.txt"), "404", message="Object not found")
    assert object_names(bucket) == ["dst/copy.txt", "src/orig.txt"]


def test_remove_several_paths():
    bucket = new_bucket("remove")
    files = storage.from_(bucket)
    for name in ("keep.txt", "one.txt", "dir/two.txt", "dir/three.txt"):
        files.upload(name, name.encode(), {"content-type": "text/plain"})
    ids = {r["name"]: r["id"] for r in sql_rows("select id, name from storage.objects where bucket_id = %s", (bucket,))}

    removed = files.remove(["one.txt", "dir/two.txt", "dir/three.txt", "missing.txt"])
    assert wire() == ("DELETE", f"/storage/v1/object/{bucket}", 200)
    assert json.loads(last_request().content) == {"prefixes": ["one.txt", "dir/two.txt", "dir/three.txt", "missing.txt"]}
    assert sorted(o["name"] for o in removed) == ["dir/three.txt", "dir/two.txt", "one.txt"]
    for o in removed:
        assert o["bucket_id"] == bucket
        assert o["id"] == ids[o["name"]]
        assert o["metadata"]["size"] == len(o["name"])
    assert object_names(bucket) == ["keep.txt"]
    storage_fails(lambda: files.download("dir/two.txt"), "404")

    assert files.remove(["missing.txt"]) == []
    assert object_names(bucket) == ["keep.txt"]


# ------------------------------------------------------------------ signed and public URLs
def test_create_signed_url_and_fetch_it():
    bucket = new_bucket("sign")
    files = storage.from_(bucket)
    files.upload("dir/report 1.txt", b"signed bytes", {"content-type": "text/plain"})
    files.upload("other.txt", b"other", {"content-type": "text/plain"})

    res = files.create_signed_url("dir/report 1.txt", 60)
    assert wire() == ("POST", f"/storage/v1/object/sign/{bucket}/dir/report 1.txt", 200)
    url = res["signedURL"]
    assert res["signedUrl"] == url
    assert url.startswith(f"{STORAGE_URL}/object/sign/{bucket}/dir/report%201.txt?token="), url
    token = parse_qs(urlsplit(url).query)["token"][0]
    claims = unverified_claims(token)
    assert claims["url"] == f"{bucket}/dir/report 1.txt"
    assert claims["exp"] - claims["iat"] == 60

    got = httpx.get(url)
    assert (got.status_code, got.content) == (200, b"signed bytes")
    assert got.headers["content-type"] == "text/plain"
    assert "content-disposition" not in got.headers

    as_file = files.create_signed_url("dir/report 1.txt", 60, {"download": True})["signedURL"]
    got = httpx.get(as_file)
    assert got.content == b"signed bytes"
    assert got.headers["content-disposition"].startswith("attachment")
    renamed = files.create_signed_url("dir/report 1.txt", 60, {"download": "renamed.txt"})["signedURL"]
    assert attachment_name(httpx.get(renamed).headers["content-disposition"]) == "renamed.txt"

    misused = httpx.get(f"{STORAGE_URL}/object/sign/{bucket}/other.txt?token={token}")
    assert misused.status_code == 400
    assert misused.json()["statusCode"] == "400"
    forged = token[:-2] + ("BB" if token.endswith("AA") else "AA")
    assert httpx.get(url.replace(token, forged)).status_code == 400
    assert httpx.get(url.split("?")[0]).status_code == 400, "no token"

    storage_fails(lambda: files.create_signed_url("dir/missing.txt", 60), "404", message="Object not found")


def test_create_signed_urls_with_a_missing_path():
    bucket = new_bucket("signs")
    files = storage.from_(bucket)
    files.upload("one.txt", b"first file", {"content-type": "text/plain"})
    files.upload("sub/two.csv", b"a,b", {"content-type": "text/csv"})

    res = files.create_signed_urls(["one.txt", "missing.txt", "sub/two.csv"], 120)
    assert wire() == ("POST", f"/storage/v1/object/sign/{bucket}", 200)
    assert [r["path"] for r in res] == ["one.txt", "missing.txt", "sub/two.csv"]
    one, missing, two = res
    assert one["error"] is None
    assert one["signedURL"].startswith(f"{STORAGE_URL}/object/sign/{bucket}/one.txt?token="), one["signedURL"]
    assert one["signedUrl"] == one["signedURL"]
    assert (missing["signedURL"], missing["signedUrl"]) == (None, None)
    assert isinstance(missing["error"], str) and missing["error"]
    assert two["error"] is None
    assert httpx.get(one["signedURL"]).content == b"first file"
    got = httpx.get(two["signedURL"])
    assert (got.content, got.headers["content-type"]) == (b"a,b", "text/csv")

    downloads = files.create_signed_urls(["one.txt"], 60, {"download": True})
    got = httpx.get(downloads[0]["signedURL"])
    assert got.headers["content-disposition"].startswith("attachment")


def test_get_public_url_of_public_and_private_buckets():
    pub = new_bucket("public", {"public": True})
    priv = new_bucket("private", {"public": False})
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    storage.from_(pub).upload("img/logo 1.svg", svg, {"content-type": "image/svg+xml"})
    storage.from_(priv).upload("img/logo 1.svg", svg, {"content-type": "image/svg+xml"})

    url = storage.from_(pub).get_public_url("img/logo 1.svg")
    assert url == f"{STORAGE_URL}/object/public/{pub}/img/logo%201.svg"
    got = httpx.get(url)  # no apikey, no Authorization
    assert (got.status_code, got.content) == (200, svg)
    assert got.headers["content-type"] == "image/svg+xml"
    assert got.headers["etag"] == object_row(pub, "img/logo 1.svg")["metadata"]["eTag"]

    named = storage.from_(pub).get_public_url("img/logo 1.svg", {"download": "brand.svg"})
    assert named == f"{STORAGE_URL}/object/public/{pub}/img/logo%201.svg?download=brand.svg"
    assert attachment_name(httpx.get(named).headers["content-disposition"]) == "brand.svg"
    assert anon.storage.from_(pub).get_public_url("img/logo 1.svg") == url

    missing = httpx.get(storage.from_(pub).get_public_url("img/none.svg"))
    assert (missing.status_code, missing.json()["statusCode"]) == (400, "404")

    private_url = storage.from_(priv).get_public_url("img/logo 1.svg")
    assert private_url == f"{STORAGE_URL}/object/public/{priv}/img/logo%201.svg"
    refused = httpx.get(private_url)
    assert refused.status_code == 400
    assert refused.json()["statusCode"] == "404"
    assert b"<svg" not in refused.content
    with_key = httpx.get(private_url, headers={"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"})
    assert with_key.status_code == 400


# ------------------------------------------------------------------ limits
def test_size_limit_413_and_mime_type_415():
    bucket = new_bucket(
        "limits", {"public": False, "file_size_limit": 16, "allowed_mime_types": ["image/*", "text/plain"]}
    )
    files = storage.from_(bucket)

    err = storage_fails(lambda: files.upload("big.png", bytes(17), {"content-type": "image/png"}), "413")
    assert err.message == "The object exceeded the maximum allowed size"
    storage_fails(lambda: files.upload("huge.png", bytes(1 << 20), {"content-type": "image/png"}), "413")
    storage_fails(lambda: files.upload("big.txt", b"x" * 17, {"content-type": "text/plain", "upsert": "true"}), "413")

    err = storage_fails(lambda: files.upload("data.json", b"{}", {"content-type": "application/json"}), "415")
    assert err.message == "mime type application/json is not supported"
    storage_fails(lambda: files.upload("doc.pdf", bytes(1 << 20), {"content-type": "application/pdf"}), "415")
    storage_fails(lambda: files.upload("img.png", b"x", {"content-type": "imagex/png"}), "415")
    assert object_names(bucket) == [], "refused uploads leave no rows"

    files.upload("ok.png", bytes(16), {"content-type": "image/png"})
    files.upload("ok.webp", bytes(3), {"content-type": "image/webp"})
    files.upload("ok.txt", b"exactly 16 bytes", {"content-type": "text/plain;charset=UTF-8"})
    assert object_names(bucket) == ["ok.png", "ok.txt", "ok.webp"]

    storage_fails(lambda: files.update("ok.png", bytes(17), {"content-type": "image/png"}), "413")
    storage_fails(lambda: files.update("ok.png", b"text", {"content-type": "application/xml"}), "415")
    assert files.info("ok.png")["size"] == 16

    storage.update_bucket(bucket, {"public": False, "file_size_limit": "1KB"})
    files.upload("kb.png", bytes(1000), {"content-type": "image/png"})
    storage_fails(lambda: files.upload("kb2.png", bytes(1001), {"content-type": "image/png"}), "413")
    assert object_names(bucket) == ["kb.png", "ok.png", "ok.txt", "ok.webp"]


# ------------------------------------------------------------------ policies
def test_per_user_folder_policy():
    bucket = new_bucket("folders")
    tag = folder_policies("py", bucket)
    try:
        ann, ann_id = signed_up("py-storage", "ann")
        bob, bob_id = signed_up("py-storage", "bob")
        ann_files = ann.storage.from_(bucket)
        bob_files = bob.storage.from_(bucket)
        anon_files = anon.storage.from_(bucket)

        res = ann_files.upload(f"{ann_id}/notes.txt", b"ann's notes", {"content-type": "text/plain"})
        assert res.full_path == f"{bucket}/{ann_id}/notes.txt"
        claims = claims_of(last_request().headers["authorization"][7:])
        assert (claims["role"], claims["sub"]) == ("authenticated", ann_id)
        bob_files.upload(f"{bob_id}/notes.txt", b"bob's notes", {"content-type": "text/plain"})
        row = object_row(bucket, f"{ann_id}/notes.txt")
        assert (row["owner"], row["owner_id"]) == (ann_id, ann_id)

        # uploads into another folder, outside any folder, or without a user are refused
        storage_fails(lambda: ann_files.upload(f"{bob_id}/evil.txt", b"x", {"content-type": "text/plain"}), "403", 400)
        storage_fails(lambda: ann_files.upload("top-level.txt", b"x", {"content-type": "text/plain"}), "403", 400)
        storage_fails(lambda: anon_files.upload(f"{ann_id}/anon.txt", b"x", {"content-type": "text/plain"}), "403", 400)
        assert object_names(bucket) == sorted([f"{ann_id}/notes.txt", f"{bob_id}/notes.txt"])

        # reads see only the caller's folder
        assert ann_files.download(f"{ann_id}/notes.txt") == b"ann's notes"
        assert bob_files.download(f"{bob_id}/notes.txt") == b"bob's notes"
        storage_fails(lambda: bob_files.download(f"{ann_id}/notes.txt"), "404", message="Object not found")
        storage_fails(lambda: ann_files.download(f"{bob_id}/notes.txt"), "404")
        storage_fails(lambda: anon_files.download(f"{ann_id}/notes.txt"), "404")
        storage_fails(lambda: bob_files.info(f"{ann_id}/notes.txt"), "404")
        assert ann_files.info(f"{ann_id}/notes.txt")["size"] == 11
        assert names(ann_files.list(ann_id)) == ["notes.txt"]
        assert bob_files.list(ann_id) == []
        assert names(ann_files.list()) == [ann_id], "at the root Ann sees only her folder"
        assert anon_files.list() == []
        assert [b for b in anon.storage.list_buckets() if b.id == bucket] == []

        # upsert and update: own folder only
        ann_files.upload(f"{ann_id}/notes.txt", b"v2", {"content-type": "text/plain", "upsert": "true"})
        ann_files.update(f"{ann_id}/notes.txt", b"v3", {"content-type": "text/plain"})
        assert ann_files.download(f"{ann_id}/notes.txt") == b"v3"
        storage_fails(lambda: bob_files.update(f"{ann_id}/notes.txt", b"bob was here", {"content-type": "text/plain"}), "404")
        with pytest.raises(StorageApiError) as info:
            bob_files.upload(f"{ann_id}/notes.txt", b"bob was here", {"content-type": "text/plain", "upsert": "true"})
        assert str(info.value.status) == "403"
        assert storage.from_(bucket).download(f"{ann_id}/notes.txt") == b"v3"

        # move and copy across folders are refused
        storage_fails(lambda: bob_files.move(f"{ann_id}/notes.txt", f"{bob_id}/stolen.txt"), "404")
        storage_fails(lambda: ann_files.move(f"{ann_id}/notes.txt", f"{bob_id}/gift.txt"), "403", 400)
        storage_fails(lambda: bob_files.copy(f"{ann_id}/notes.txt", f"{bob_id}/stolen.txt"), "404")
        ann_files.copy(f"{ann_id}/notes.txt", f"{ann_id}/copy.txt")
        assert object_row(bucket, f"{ann_id}/copy.txt")["owner"] == ann_id

        # remove: another user's objects are silently not removed
        assert bob_files.remove([f"{ann_id}/notes.txt", f"{ann_id}/copy.txt"]) == []
        assert anon_files.remove([f"{ann_id}/notes.txt"]) == []
        assert object_names(bucket) == sorted([f"{ann_id}/copy.txt", f"{ann_id}/notes.txt", f"{bob_id}/notes.txt"])
        removed = ann_files.remove([f"{ann_id}/notes.txt", f"{ann_id}/copy.txt", f"{bob_id}/notes.txt"])
        assert sorted(o["name"] for o in removed) == [f"{ann_id}/copy.txt", f"{ann_id}/notes.txt"]
        assert object_names(bucket) == [f"{bob_id}/notes.txt"]

        assert storage.from_(bucket).download(f"{bob_id}/notes.txt") == b"bob's notes", "the service role bypasses RLS"
    finally:
        drop_policies(tag)
