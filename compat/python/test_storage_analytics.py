"""supabase-py (storage3 as pinned in requirements.txt) against forge-server's /storage/v1/iceberg.

`storage.analytics()`: create(), list() with its options and delete() of analytics buckets, their
errors (storage3 reads the Iceberg error model these routes answer in: the `type` becomes the
error's `code`, the HTTP status its `status`), and the service-role check. The last test sends
the Iceberg REST requests pyiceberg's RestCatalog makes (config, then namespaces and tables under
the returned prefix, a nested namespace joined by %1F) with httpx, to check the raw wire; the
real pyiceberg behind storage3's catalog() is driven in test_storage_analytics_catalog.py.
Every test creates its own analytics buckets (random names, removed at the end of the module);
what the client got is compared with the rows read back in SQL. Run through compat/run.sh, which
starts the servers and exports the FORGE_* variables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import unquote

import httpx
import pytest
from storage3.exceptions import StorageApiError
from storage3.types import AnalyticsBucket, AnalyticsBucketDeleteResponse

from forge_compat import (
    ANON_KEY,
    SERVICE_KEY,
    URL,
    USER_A,
    client,
    last_request,
    last_response,
    sql_rows,
    user_client,
    user_token,
)
from storage_helpers import drop_analytics_buckets, storage_time

# The service role's analytics client: only the service role may use analytics buckets.
analytics = client(SERVICE_KEY).storage.analytics()

ICEBERG_URL = f"{URL}/storage/v1/iceberg"

CREATED: list[str] = []


def bucket_name(label: str) -> str:
    """A fresh analytics bucket name: lower-case letters, digits and hyphens."""
    return f"py-{label}-{uuid.uuid4().hex[:8]}"


def new_bucket(label: str) -> str:
    name = bucket_name(label)
    assert analytics.create(name).name == name
    CREATED.append(name)
    return name


# Analytics buckets made by this module, with their namespaces and tables: removed at the end.
@pytest.fixture(scope="module", autouse=True)
def _drop_buckets() -> Iterator[None]:
    yield
    drop_analytics_buckets(CREATED)


def bucket_rows(part: str) -> list[dict]:
    """The analytics buckets whose names contain `part`, as stored, by name."""
    return sql_rows(
        f"""select name, type, format, {storage_time("created_at")} as created_at,
                   {storage_time("updated_at")} as updated_at from storage.buckets_analytics
             where name like '%%' || %s || '%%' order by name""",
        (part,),
    )


def as_model(row: dict) -> AnalyticsBucket:
    return AnalyticsBucket(
        name=row["name"],
        type=row["type"],
        format=row["format"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


def wire() -> tuple[str, str, str, int]:
    """Method, decoded path, query and status of the last exchange."""
    req = last_request()
    return req.method, unquote(req.url.path), req.url.query.decode(), last_response().status_code


def analytics_fails(call, status: int, code: str, message: str | None = None) -> StorageApiError:
    """Runs `call`, expects a StorageApiError parsed from the Iceberg error model: `code` is the
    error's type, `status` the real HTTP status."""
    with pytest.raises(StorageApiError) as info:
        call()
    err = info.value
    assert (err.status, err.code) == (status, code), err.to_dict()
    assert last_response().status_code == status
    body = last_response().json()
    assert body == {"error": {"message": err.message, "type": code, "code": status}}
    if message is not None:
        assert err.message == message
    return err


def catalog(method: str, path: str, key: str = SERVICE_KEY, **kwargs) -> httpx.Response:
    """An Iceberg REST request as pyiceberg's RestCatalog sends it (Bearer token, no apikey)."""
    with httpx.Client() as http:
        return http.request(method, f"{ICEBERG_URL}{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs)


# ------------------------------------------------------------------ buckets
def test_create_list_and_delete_analytics_buckets():
    tag = uuid.uuid4().hex[:8]
    names = [f"py-list-{tag}-{label}" for label in ("b", "c", "a")]
    for name in names:
        bucket = analytics.create(name)
        CREATED.append(name)
        assert wire() == ("POST", "/storage/v1/iceberg/bucket", "", 200)
        assert isinstance(bucket, AnalyticsBucket)
        assert bucket == as_model(bucket_rows(name)[0])
        assert (bucket.type, bucket.format) == ("ANALYTICS", "iceberg")
        assert last_response().json()["id"] == name, "the name is the id"

    listed = analytics.list(search=tag)
    assert wire() == ("GET", "/storage/v1/iceberg/bucket", f"search={tag}", 200)
    assert listed == [as_model(r) for r in bucket_rows(tag)]
    assert [b.name for b in listed] == sorted(names)

    listed = analytics.list(sort_column="created_at", sort_order="desc", search=tag)
    assert [b.name for b in listed] == list(reversed(names))
    assert wire()[2] == f"sortColumn=created_at&sortOrder=desc&search={tag}"
    listed = analytics.list(limit=2, offset=1, sort_column="id", sort_order="asc", search=tag)
    assert [b.name for b in listed] == sorted(names)[1:]
    assert wire()[2] == f"limit=2&offset=1&sortColumn=id&sortOrder=asc&search={tag}"
    assert [b.name for b in analytics.list(limit=1, search=tag.upper())] == [sorted(names)[0]]
    everything = [b.name for b in analytics.list()]
    assert wire()[2] == ""
    assert set(names) <= set(everything)

    deleted = analytics.delete(names[0])
    assert deleted == AnalyticsBucketDeleteResponse(message="Successfully deleted")
    assert wire() == ("DELETE", f"/storage/v1/iceberg/bucket/{names[0]}", "", 200)
    assert [r["name"] for r in bucket_rows(tag)] == sorted(n for n in names if n != names[0])


def test_refused_bucket_calls():
    name = new_bucket("errors")
    analytics_fails(lambda: analytics.create(name), 409, "BucketAlreadyExists", "The resource already exists")
    for bad in ("ab", "Upper", "has_underscore", "-leading", "x" * 64):
        analytics_fails(lambda: analytics.create(bad), 400, "InvalidBucketName", "Bucket name invalid")
    analytics_fails(lambda: analytics.delete(bucket_name("missing")), 404, "NoSuchBucket", "Bucket not found")
    analytics_fails(lambda: analytics.list(limit=0), 400, "InvalidRequest")
    analytics_fails(lambda: analytics.list(sort_order="sideways"), 400, "InvalidRequest")  # type: ignore[arg-type]

    # a bucket whose catalog has a namespace cannot be deleted
    assert catalog("POST", f"/v1/{name}/namespaces", json={"namespace": ["keep"]}).status_code == 200
    analytics_fails(lambda: analytics.delete(name), 409, "ResourceNotEmpty")
    assert catalog("DELETE", f"/v1/{name}/namespaces/keep").status_code == 204
    assert analytics.delete(name).message == "Successfully deleted"
    assert bucket_rows(name) == []


def test_only_the_service_role_may_use_analytics():
    name = new_bucket("roles")
    for other in (client(ANON_KEY).storage.analytics(), user_client(user_token(USER_A)).storage.analytics()):
        analytics_fails(other.list, 403, "AccessDenied", "Access denied: Invalid role")
        analytics_fails(lambda: other.create(bucket_name("nope")), 403, "AccessDenied")
        analytics_fails(lambda: other.delete(name), 403, "AccessDenied")
    r = catalog("GET", f"/v1/config?warehouse={name}", key=ANON_KEY)
    assert (r.status_code, r.json()["error"]["type"]) == (403, "AccessDenied")
    assert [r["name"] for r in bucket_rows(name)] == [name], "nothing changed"


# ------------------------------------------------------------------ the REST catalog as pyiceberg calls it
def test_the_rest_catalog_as_pyiceberg_calls_it():
    name = new_bucket("catalog")
    config = catalog("GET", "/v1/config", params={"warehouse": name})
    assert config.status_code == 200
    assert config.json()["overrides"] == {"prefix": name}
    assert config.json()["defaults"] == {}
    assert "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}" in config.json()["endpoints"]
    prefix = config.json()["overrides"]["prefix"]
    assert catalog("GET", "/v1/config", params={"warehouse": bucket_name("absent")}).status_code == 404

    for levels in (["sales"], ["sales", "eu"]):
        r = catalog("POST", f"/v1/{prefix}/namespaces", json={"namespace": levels, "properties": {"by": "py"}})
        assert (r.status_code, r.json()) == (200, {"namespace": levels, "properties": {"by": "py"}})
    r = catalog("GET", f"/v1/{prefix}/namespaces", params={"parent": "sales"})
    assert r.json() == {"namespaces": [["sales", "eu"]]}
    r = catalog("GET", f"/v1/{prefix}/namespaces", params={"parent": "sales\x1feu"})
    assert r.json() == {"namespaces": []}
    assert last_request().url.query.decode() == "parent=sales%1Feu"
    r = catalog("GET", f"/v1/{prefix}/namespaces/sales%1Feu")
    assert (r.status_code, r.json()) == (200, {"namespace": ["sales", "eu"], "properties": {"by": "py"}})
    changes = {"removals": ["by"], "updates": {"env": "prod"}}
    r = catalog("POST", f"/v1/{prefix}/namespaces/sales%1Feu/properties", json=changes)
    assert r.json() == {"updated": ["env"], "removed": ["by"], "missing": []}

    schema = {
        "type": "struct",
        "schema-id": 0,
        "fields": [
            {"id": 1, "name": "id", "type": "long", "required": True},
            {"id": 2, "name": "amount", "type": "decimal(10, 2)", "required": False},
        ],
    }
    r = catalog("POST", f"/v1/{prefix}/namespaces/sales%1Feu/tables", json={"name": "orders", "schema": schema})
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["metadata"]["location"] == f"s3://{name}/sales/eu/orders"
    assert created["metadata-location"].startswith(f"s3://{name}/sales/eu/orders/metadata/00000-")
    stored = sql_rows(
        """select t.metadata_location, t.metadata from storage.iceberg_tables t
             join storage.iceberg_namespaces n on n.id = t.namespace_id
             join storage.buckets_analytics b on b.id = n.catalog_id
            where b.name = %s and t.name = 'orders'""",
        (name,),
    )
    assert stored == [{"metadata_location": created["metadata-location"], "metadata": created["metadata"]}]

    # a commit as pyiceberg sends it after an append; then the same commit again is stale
    snapshot_id = 3_051_729_675_574_597_004  # pyiceberg's ids are random 63-bit integers
    body = {
        "identifier": {"namespace": ["sales", "eu"], "name": "orders"},
        "requirements": [
            {"type": "assert-table-uuid", "uuid": created["metadata"]["table-uuid"]},
            {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": None},
        ],
        "updates": [
            {
                "action": "add-snapshot",
                "snapshot": {
                    "snapshot-id": snapshot_id,
                    "sequence-number": 1,
                    "timestamp-ms": 1_760_000_000_000,
                    "manifest-list": f"s3://{name}/sales/eu/orders/metadata/snap-{snapshot_id}.avro",
                    "summary": {"operation": "append"},
                    "schema-id": 0,
                },
            },
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id},
        ],
    }
    r = catalog("POST", f"/v1/{prefix}/namespaces/sales%1Feu/tables/orders", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["current-snapshot-id"] == snapshot_id, "64-bit ids survive"
    assert r.json()["metadata-location"].startswith(f"s3://{name}/sales/eu/orders/metadata/00001-")
    r = catalog("POST", f"/v1/{prefix}/namespaces/sales%1Feu/tables/orders", json=body)
    assert r.status_code == 409
    assert r.json()["error"] == {
        "message": "Requirement failed: branch or tag main was created concurrently",
        "type": "CommitFailedException",
        "code": 409,
    }
    r = catalog("GET", f"/v1/{prefix}/namespaces/sales%1Feu/tables/orders", params={"snapshots": "refs"})
    assert [s["snapshot-id"] for s in r.json()["metadata"]["snapshots"]] == [snapshot_id]

    orders = f"/v1/{prefix}/namespaces/sales%1Feu/tables/orders"
    assert catalog("HEAD", orders).status_code == 204
    assert catalog("DELETE", f"/v1/{prefix}/namespaces/sales%1Feu").status_code == 409, "it has a table"
    assert catalog("DELETE", orders, params={"purgeRequested": "true"}).status_code == 204
    assert catalog("HEAD", orders).status_code == 404
    r = catalog("GET", orders)
    assert (r.status_code, r.json()["error"]["type"]) == (404, "NoSuchTableException")
    for levels in ("sales%1Feu", "sales"):
        assert catalog("DELETE", f"/v1/{prefix}/namespaces/{levels}").status_code == 204
    assert analytics.delete(name).message == "Successfully deleted"
