"""Helpers the supabase-py storage suites share (test_storage.py, test_storage_more.py): the
service role's storage client, buckets with random names that are emptied and deleted at the end
of the module, storage error assertions, the last exchange on the wire, storage.objects rows read
in SQL, signed-URL claims, attachment names, signed-up users and a per-user folder policy on
storage.objects."""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote

import httpx
import jwt
import pytest
from storage3.exceptions import StorageApiError

from auth_helpers import PASSWORD
from forge_compat import ANON_KEY, SERVICE_KEY, URL, client, last_request, last_response, sql_exec, sql_rows

# The service role's storage client: it bypasses the policies on storage.objects.
storage = client(SERVICE_KEY).storage

STORAGE_URL = f"{URL}/storage/v1"


def suffix() -> str:
    return uuid.uuid4().hex[:8]


# ------------------------------------------------------------------ buckets
# Buckets made by the test module: emptied and deleted by drop_buckets().
CREATED: list[str] = []


def drop_buckets() -> None:
    """Empties and deletes every bucket in CREATED (service role), ignoring errors; for the test
    module's teardown."""
    while CREATED:
        bucket = CREATED.pop(0)
        try:
            storage.empty_bucket(bucket)
            storage.delete_bucket(bucket)
        except (StorageApiError, httpx.HTTPError):
            pass


def drop_analytics_buckets(names: list[str]) -> None:
    """Removes these analytics buckets with their tables and namespaces (children before their
    parents: a namespace has at most 8 levels)."""
    sql_exec(
        """delete from storage.iceberg_tables t using storage.iceberg_namespaces n, storage.buckets_analytics b
            where t.namespace_id = n.id and n.catalog_id = b.id and b.name = any(%s)""",
        (names,),
    )
    for depth in range(8, 0, -1):
        sql_exec(
            """delete from storage.iceberg_namespaces n using storage.buckets_analytics b
                where n.catalog_id = b.id and b.name = any(%s) and cardinality(n.levels) = %s""",
            (names, depth),
        )
    sql_exec("delete from storage.buckets_analytics where name = any(%s)", (names,))


def new_bucket(label: str, options: dict | None = None) -> str:
    """Creates a bucket `py-<label>-<random>` (service role) and returns its id."""
    bucket = f"py-{label}-{suffix()}"
    assert storage.create_bucket(bucket, options=options or {"public": False}) == {"name": bucket}
    CREATED.append(bucket)
    return bucket


# ------------------------------------------------------------------ errors and the wire
def storage_fails(call, status_code: str, http_status: int = 400, message: str | re.Pattern | None = None) -> StorageApiError:
    """Runs `call`, expects a StorageApiError whose status is Storage's `statusCode` (the real
    status, in the body), answered with `http_status` on the wire (400 for most 4xx), with the
    `message` (a string, or a pattern it contains) when given."""
    with pytest.raises(StorageApiError) as info:
        call()
    err = info.value
    assert str(err.status) == status_code, f"statusCode of {err.to_dict()}"
    assert last_response().status_code == http_status, f"HTTP status for {err.to_dict()}"
    if isinstance(message, re.Pattern):
        assert message.search(err.message), err.message
    elif message is not None:
        assert err.message == message
    return err


def wire() -> tuple[str, str, int]:
    """Method, decoded path and status of the last exchange."""
    return last_request().method, unquote(last_request().url.path), last_response().status_code


def wire_as_sent() -> tuple[str, str, int]:
    """Method, path (as sent, percent-encoded) and status of the last exchange."""
    return last_request().method, last_request().url.path, last_response().status_code


# ------------------------------------------------------------------ SQL
def storage_time(column: str) -> str:
    """SQL rendering the timestamptz `column` as Supabase Storage answers timestamps: UTC,
    milliseconds, `Z` (`2021-02-17T04:43:32.770Z`)."""
    return f"""to_char({column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


# A timestamp as Supabase Storage renders it.
STORAGE_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def object_row(bucket: str, name: str) -> dict | None:
    """The storage.objects row of an object, as Postgres renders it to JSON, its timestamps as
    Storage does (None when absent)."""
    rows = sql_rows(
        f"""select id, name, bucket_id, owner, owner_id, version, metadata, user_metadata,
                   {storage_time("created_at")} as created_at, {storage_time("updated_at")} as updated_at,
                   {storage_time("last_accessed_at")} as last_accessed_at
              from storage.objects where bucket_id = %s and name = %s""",
        (bucket, name),
    )
    return rows[0] if rows else None


def object_names(bucket: str) -> list[str]:
    """The names of a bucket's objects, in byte order."""
    rows = sql_rows('select name from storage.objects where bucket_id = %s order by name collate "C"', (bucket,))
    return [r["name"] for r in rows]


# ------------------------------------------------------------------ URLs
def unverified_claims(token: str) -> dict:
    """The claims of a signed-URL token (not verified: the server signs them with its own key)."""
    return jwt.decode(token, options={"verify_signature": False})


def attachment_name(disposition: str) -> str:
    """The file name a browser saves an attachment under: `filename*` (RFC 5987) first, else
    `filename` (quoted or not; Supabase Storage sends it percent-encoded and unquoted)."""
    assert disposition.startswith("attachment"), disposition
    star = re.search(r"filename\*=UTF-8''([^;]+)", disposition, re.I)
    if star:
        return unquote(star.group(1).strip())
    plain = re.search(r'filename=("([^"]*)"|[^;]+)', disposition, re.I)
    assert plain, f"no file name in {disposition}"
    return unquote(plain.group(2) if plain.group(2) is not None else plain.group(1).strip())


# ------------------------------------------------------------------ users and policies
def signed_up(prefix: str, label: str):
    """Signs up `<prefix>-<label>-<random>@example.com` on a new anon-key client; returns the
    client and the user's id."""
    c = client(ANON_KEY)
    res = c.auth.sign_up({"email": f"{prefix}-{label}-{suffix()}@example.com", "password": PASSWORD})
    assert res.session is not None, "autoconfirm: sign_up returns a session"
    return c, res.user.id


def folder_policies(tag_prefix: str, bucket: str) -> str:
    """Creates select/insert/update/delete policies (named `<tag_prefix>_<random>_<op>`) letting
    users use only `<uid>/...` in `bucket`; returns their tag, for drop_policies()."""
    tag = f"{tag_prefix}_{suffix()}"
    own = f"bucket_id = '{bucket}' and (storage.foldername(name))[1] = auth.uid()::text"
    sql_exec(
        f"""create policy {tag}_select on storage.objects for select to authenticated using ({own});
            create policy {tag}_insert on storage.objects for insert to authenticated with check ({own});
            create policy {tag}_update on storage.objects for update to authenticated using ({own}) with check ({own});
            create policy {tag}_delete on storage.objects for delete to authenticated using ({own});"""
    )
    return tag


def drop_policies(tag: str) -> None:
    for op in ("select", "insert", "update", "delete"):
        sql_exec(f"drop policy if exists {tag}_{op} on storage.objects")
