"""supabase-py (storage3 as pinned in requirements.txt) driving the real pyiceberg through
`storage.analytics().catalog()` against forge-server's Iceberg REST catalog (/storage/v1/iceberg).

storage3's catalog(bucket, access_key_id, secret_access_key) builds a pyiceberg RestCatalog whose
warehouse is the analytics bucket, with the client's key as its Bearer token; pyiceberg reads
/v1/config first and then sends every call under the prefix the catalog returns (the bucket's
name). The catalog's FileIO is pyarrow's (storage3 sets `py-io-impl`), which pyiceberg loads for
every table it returns, so pyarrow is installed too. Forge keeps table metadata in Postgres and
has no S3 endpoint: only catalog operations are driven here (namespaces, tables, metadata-only
commits made through pyiceberg's transaction, schema, spec and sort order APIs, renames, drops),
never data files.

Each test works in its own analytics bucket (random name; what is left is removed at the end of
the module), asserts the exact answers pyiceberg turned the server's replies into (its exception
classes and messages, `<type>: <message>` of the Iceberg error model) and the requests it sent,
and compares them with the catalog rows read back in SQL (storage.iceberg_namespaces and
storage.iceberg_tables; the stored metadata parses to the same pyiceberg TableMetadata).
pyiceberg talks HTTP with requests, not httpx: its exchanges are recorded into forge_compat's
recorder too, so a failing test shows them. Run through compat/run.sh, which starts the servers
and exports the FORGE_* variables.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import (
    BadRequestError,
    CommitFailedException,
    ForbiddenError,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    RESTError,
    TableAlreadyExistsError,
)
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata, TableMetadataUtil
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)
from supabase import AsyncClientOptions, acreate_client

import forge_compat
from forge_compat import ANON_KEY, SERVICE_KEY, URL, client, last_request, last_response, sql_rows
from storage_helpers import drop_analytics_buckets

# The service role's analytics client: only the service role may use analytics buckets.
analytics = client(SERVICE_KEY).storage.analytics()

ICEBERG_PATH = "/storage/v1/iceberg"
ICEBERG_URL = f"{URL}{ICEBERG_PATH}"
# storage3 passes these to pyarrow's S3 FileIO; nothing here reaches S3.
ACCESS_KEY_ID = "forge-compat-access-key"
SECRET_ACCESS_KEY = "forge-compat-secret-key"

CREATED: list[str] = []


# ------------------------------------------------------------------ pyiceberg's requests on the recorder
_requests_send = requests.Session.send


def _as_httpx(request: requests.PreparedRequest, response: requests.Response) -> tuple[httpx.Request, httpx.Response]:
    body = request.body or b""
    req = httpx.Request(
        request.method or "GET",
        request.url or "",
        headers=dict(request.headers),
        content=body.encode() if isinstance(body, str) else body,
    )
    # requests has already decoded the body: drop the headers that describe the raw one
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    }
    return req, httpx.Response(response.status_code, headers=headers, content=response.content, request=req)


@pytest.fixture(autouse=True)
def _record_pyiceberg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adds each request pyiceberg sends (with requests) to forge_compat.EXCHANGES."""

    def recording_send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = _requests_send(self, request, **kwargs)
        forge_compat.EXCHANGES.append(_as_httpx(request, response))
        return response

    monkeypatch.setattr(requests.Session, "send", recording_send)


def mark() -> int:
    """Where the next exchange will be recorded, for sent()."""
    return len(forge_compat.EXCHANGES)


def sent(since: int) -> list[tuple[str, str, int]]:
    """Method, path and query as sent (percent-encoded, after /storage/v1/iceberg) and status of
    every exchange recorded from `since` on."""
    out = []
    for req, res in forge_compat.EXCHANGES[since:]:
        path = req.url.raw_path.decode()
        assert path.startswith(ICEBERG_PATH + "/"), path
        out.append((req.method, path[len(ICEBERG_PATH) :], res.status_code))
    return out


def sent_json(since: int) -> list[Any]:
    """The JSON bodies of the requests recorded from `since` on (None for no body)."""
    return [json.loads(req.content) if req.content else None for req, _ in forge_compat.EXCHANGES[since:]]


def fails(call, exception: type[Exception], status: int, kind: str, message: str) -> Exception:
    """Runs `call`, expects exactly `exception` raised from the server's Iceberg error `kind`
    with `message` answered with `status` (pyiceberg's text is `<type>: <message>`)."""
    with pytest.raises(exception) as info:
        call()
    err = info.value
    assert type(err) is exception, repr(err)
    assert str(err) == f"{kind}: {message}"
    assert last_response().status_code == status
    assert last_response().json() == {"error": {"message": message, "type": kind, "code": status}}
    return err


# ------------------------------------------------------------------ buckets, catalogs and SQL
def bucket_name(label: str) -> str:
    return f"py-ice-{label}-{uuid.uuid4().hex[:8]}"


def new_catalog(label: str) -> tuple[str, RestCatalog]:
    """A new analytics bucket and storage3's catalog() for it."""
    name = bucket_name(label)
    assert analytics.create(name).name == name
    CREATED.append(name)
    return name, analytics.catalog(name, ACCESS_KEY_ID, SECRET_ACCESS_KEY)


def delete_bucket(name: str) -> None:
    assert analytics.delete(name).message == "Successfully deleted"
    CREATED.remove(name)
    assert sql_rows("select 1 from storage.buckets_analytics where name = %s", (name,)) == []


# Analytics buckets made by this module, with their namespaces and tables: removed at the end.
@pytest.fixture(scope="module", autouse=True)
def _drop_buckets() -> Iterator[None]:
    yield
    drop_analytics_buckets(CREATED)


def namespace_rows(bucket: str) -> list[dict]:
    """A bucket's namespaces as stored: levels, properties and the parent's levels, by levels."""
    return sql_rows(
        """select n.levels, n.properties, p.levels as parent from storage.iceberg_namespaces n
             join storage.buckets_analytics b on b.id = n.catalog_id
             left join storage.iceberg_namespaces p on p.id = n.parent_id
            where b.name = %s order by n.levels""",
        (bucket,),
    )


def table_rows(bucket: str) -> list[dict]:
    """A bucket's tables as stored, by namespace and name."""
    return sql_rows(
        """select n.levels as namespace, t.name, t.location, t.metadata_location, t.metadata, t.version
             from storage.iceberg_tables t
             join storage.iceberg_namespaces n on n.id = t.namespace_id
             join storage.buckets_analytics b on b.id = n.catalog_id
            where b.name = %s order by n.levels, t.name""",
        (bucket,),
    )


def table_row(bucket: str, namespace: tuple[str, ...], name: str) -> dict:
    rows = [r for r in table_rows(bucket) if tuple(r["namespace"]) == namespace and r["name"] == name]
    assert len(rows) == 1, f"{namespace}.{name} in {bucket}: {rows}"
    return rows[0]


def stored_metadata(row: dict) -> TableMetadata:
    """The stored metadata, parsed by pyiceberg."""
    return TableMetadataUtil.parse_raw(json.dumps(row["metadata"]))


def metadata_file(location: str, version: int) -> re.Pattern:
    return re.compile(rf"{re.escape(location)}/metadata/{version:05d}-[0-9a-f-]{{36}}\.metadata\.json")


# ------------------------------------------------------------------ the schema of the tests' tables
# Ids as a caller writes them: pyiceberg assigns fresh ones (1.., partition fields from 1000).
SCHEMA = Schema(
    NestedField(10, "id", LongType(), required=True),
    NestedField(11, "ts", TimestamptzType(), required=False),
    NestedField(12, "region", StringType(), required=False),
    NestedField(13, "amount", DecimalType(10, 2), required=False),
    NestedField(14, "tags", ListType(20, StringType(), element_required=True), required=False),
    NestedField(15, "attrs", MapType(21, StringType(), 22, LongType(), value_required=False), required=False),
    NestedField(
        16,
        "loc",
        StructType(NestedField(23, "lat", DoubleType(), required=False), NestedField(24, "lon", DoubleType(), required=False)),
        required=False,
    ),
    identifier_field_ids=[10],
)
SPEC = PartitionSpec(
    PartitionField(source_id=11, field_id=1000, transform=DayTransform(), name="ts_day"),
    PartitionField(source_id=12, field_id=1001, transform=BucketTransform(8), name="region_bucket"),
)
ORDER = SortOrder(SortField(source_id=10, transform=IdentityTransform(), direction=SortDirection.DESC, null_order=NullOrder.NULLS_LAST))

FRESH_SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "ts", TimestamptzType(), required=False),
    NestedField(3, "region", StringType(), required=False),
    NestedField(4, "amount", DecimalType(10, 2), required=False),
    NestedField(5, "tags", ListType(8, StringType(), element_required=True), required=False),
    NestedField(6, "attrs", MapType(9, StringType(), 10, LongType(), value_required=False), required=False),
    NestedField(
        7,
        "loc",
        StructType(NestedField(11, "lat", DoubleType(), required=False), NestedField(12, "lon", DoubleType(), required=False)),
        required=False,
    ),
    identifier_field_ids=[1],
)
FRESH_SPEC = PartitionSpec(
    PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="ts_day"),
    PartitionField(source_id=3, field_id=1001, transform=BucketTransform(8), name="region_bucket"),
    spec_id=0,
)
FRESH_ORDER = SortOrder(
    SortField(source_id=1, transform=IdentityTransform(), direction=SortDirection.DESC, null_order=NullOrder.NULLS_LAST),
    order_id=1,
)

SIMPLE = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "name", StringType(), required=False))


# ------------------------------------------------------------------ the catalog
def test_catalog_is_a_rest_catalog_on_the_bucket():
    name = bucket_name("config")
    assert analytics.create(name).name == name
    CREATED.append(name)
    start = mark()
    catalog = analytics.catalog(name, ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    assert isinstance(catalog, RestCatalog)
    # pyiceberg read the configuration once, with the service key as its Bearer token
    assert sent(start) == [("GET", f"/v1/config?warehouse={name}", 200)]
    assert last_request().headers["authorization"] == f"Bearer {SERVICE_KEY}"
    assert "apikey" not in last_request().headers
    assert catalog.name == name
    assert catalog.uri == ICEBERG_URL
    props = catalog.properties
    assert (props["warehouse"], props["prefix"], props["uri"], props["token"]) == (name, name, ICEBERG_URL, SERVICE_KEY)
    assert props["py-io-impl"] == "pyiceberg.io.pyarrow.PyArrowFileIO"
    assert props["s3.endpoint"] == f"{URL}/storage/v1/s3"
    assert (props["s3.access-key-id"], props["s3.secret-access-key"]) == (ACCESS_KEY_ID, SECRET_ACCESS_KEY)

    # a bucket with nothing in it
    start = mark()
    assert catalog.list_namespaces() == []
    assert catalog.namespace_exists("sales") is False
    assert sent(start) == [("GET", f"/v1/{name}/namespaces", 200), ("HEAD", f"/v1/{name}/namespaces/sales", 404)]

    # a warehouse that is no analytics bucket: the configuration is refused (404, no handler in pyiceberg)
    missing = bucket_name("absent")
    fails(
        lambda: analytics.catalog(missing, ACCESS_KEY_ID, SECRET_ACCESS_KEY),
        RESTError,
        404,
        "NoSuchWarehouseException",
        f"Analytics bucket does not exist: {missing}",
    )
    assert last_request().url.query.decode() == f"warehouse={missing}"
    delete_bucket(name)


def test_only_the_service_role_gets_a_catalog():
    name, _ = new_catalog("roles")
    # storage3 hands pyiceberg the client's apikey: the anon key is refused on /v1/config
    anon = client(ANON_KEY).storage.analytics()
    fails(lambda: anon.catalog(name, ACCESS_KEY_ID, SECRET_ACCESS_KEY), ForbiddenError, 403, "AccessDenied", "Access denied: Invalid role")
    assert last_request().headers["authorization"] == f"Bearer {ANON_KEY}"
    assert namespace_rows(name) == []
    delete_bucket(name)


# ------------------------------------------------------------------ namespaces
def test_namespaces():
    name, catalog = new_catalog("ns")
    start = mark()
    catalog.create_namespace("sales", {"owner": "py", "n": "1"})
    catalog.create_namespace(("sales", "eu"))
    catalog.create_namespace("sales.us", {"region": "us"})  # a dotted string is a nested namespace
    catalog.create_namespace("hr")
    assert sent(start) == [("POST", f"/v1/{name}/namespaces", 200)] * 4
    assert sent_json(start) == [
        {"namespace": ["sales"], "properties": {"owner": "py", "n": "1"}},
        {"namespace": ["sales", "eu"], "properties": {}},
        {"namespace": ["sales", "us"], "properties": {"region": "us"}},
        {"namespace": ["hr"], "properties": {}},
    ]
    assert namespace_rows(name) == [
        {"levels": ["hr"], "properties": {}, "parent": None},
        {"levels": ["sales"], "properties": {"n": "1", "owner": "py"}, "parent": None},
        {"levels": ["sales", "eu"], "properties": {}, "parent": ["sales"]},
        {"levels": ["sales", "us"], "properties": {"region": "us"}, "parent": ["sales"]},
    ]

    # listing: top level, then a parent's children (full identifiers), sent as parent=<levels joined by %1F>
    start = mark()
    assert catalog.list_namespaces() == [("hr",), ("sales",)]
    assert catalog.list_namespaces("sales") == [("sales", "eu"), ("sales", "us")]
    assert catalog.list_namespaces(("sales", "eu")) == []
    assert sent(start) == [
        ("GET", f"/v1/{name}/namespaces", 200),
        ("GET", f"/v1/{name}/namespaces?parent=sales", 200),
        ("GET", f"/v1/{name}/namespaces?parent=sales%1Feu", 200),
    ]

    # properties
    assert catalog.load_namespace_properties("sales") == {"owner": "py", "n": "1"}
    assert catalog.load_namespace_properties(("sales", "us")) == {"region": "us"}
    assert sent(start)[-1] == ("GET", f"/v1/{name}/namespaces/sales%1Fus", 200)
    summary = catalog.update_namespace_properties("sales", removals={"n", "absent"}, updates={"env": "prod", "owner": "ops"})
    assert (sorted(summary.updated), summary.removed, summary.missing) == (["env", "owner"], ["n"], ["absent"])
    assert sent(start)[-1] == ("POST", f"/v1/{name}/namespaces/sales/properties", 200)
    assert catalog.load_namespace_properties("sales") == {"owner": "ops", "env": "prod"}
    assert namespace_rows(name)[1]["properties"] == {"env": "prod", "owner": "ops"}
    summary = catalog.update_namespace_properties(("sales", "eu"), updates={"tier": "gold"})
    assert (summary.updated, summary.removed, summary.missing) == (["tier"], [], [])
    assert namespace_rows(name)[2]["properties"] == {"tier": "gold"}

    # existence: HEAD, 204 or 404
    start = mark()
    assert catalog.namespace_exists(("sales", "eu")) is True
    assert catalog.namespace_exists("sales.eu.x") is False
    assert catalog.namespace_exists("nowhere") is False
    assert sent(start) == [
        ("HEAD", f"/v1/{name}/namespaces/sales%1Feu", 204),
        ("HEAD", f"/v1/{name}/namespaces/sales%1Feu%1Fx", 404),
        ("HEAD", f"/v1/{name}/namespaces/nowhere", 404),
    ]

    # dropping: a namespace with children is not empty; children first, then the parent
    fails(
        lambda: catalog.drop_namespace("sales"),
        NamespaceNotEmptyError,
        409,
        "NamespaceNotEmptyException",
        "Namespace sales is not empty: it still has tables or namespaces",
    )
    start = mark()
    catalog.drop_namespace(("sales", "eu"))
    catalog.drop_namespace("sales.us")
    catalog.drop_namespace("sales")
    assert sent(start) == [
        ("DELETE", f"/v1/{name}/namespaces/sales%1Feu", 204),
        ("DELETE", f"/v1/{name}/namespaces/sales%1Fus", 204),
        ("DELETE", f"/v1/{name}/namespaces/sales", 204),
    ]
    assert catalog.list_namespaces() == [("hr",)]
    assert [r["levels"] for r in namespace_rows(name)] == [["hr"]]
    catalog.drop_namespace("hr")
    assert namespace_rows(name) == []
    delete_bucket(name)


def test_refused_namespace_calls():
    name, catalog = new_catalog("ns-errors")
    catalog.create_namespace("sales", {"owner": "py"})
    fails(
        lambda: catalog.create_namespace("sales", {"owner": "other"}),
        NamespaceAlreadyExistsError,
        409,
        "AlreadyExistsException",
        "Namespace already exists: sales",
    )
    # a nested namespace needs its parent: 404, which pyiceberg's create_namespace has no class for
    fails(
        lambda: catalog.create_namespace(("missing", "child")),
        RESTError,
        404,
        "NoSuchNamespaceException",
        "Namespace does not exist: missing",
    )
    fails(
        lambda: catalog.create_namespace("Sales-EU"),
        BadRequestError,
        400,
        "BadRequestException",
        'Invalid namespace name "Sales-EU": use 1 to 255 lower-case letters, digits and underscores, '
        "starting and ending with a letter or digit",
    )
    for call in (
        lambda: catalog.load_namespace_properties("missing"),
        lambda: catalog.update_namespace_properties("missing", updates={"a": "b"}),
        lambda: catalog.list_namespaces("missing"),
        lambda: catalog.drop_namespace("missing"),
        lambda: catalog.list_tables("missing"),
    ):
        fails(call, NoSuchNamespaceError, 404, "NoSuchNamespaceException", "Namespace does not exist: missing")
    fails(
        lambda: catalog.load_namespace_properties(("sales", "eu")),
        NoSuchNamespaceError,
        404,
        "NoSuchNamespaceException",
        "Namespace does not exist: sales.eu",
    )
    # a key both updated and removed: 422, a plain RESTError in pyiceberg
    fails(
        lambda: catalog.update_namespace_properties("sales", removals={"owner"}, updates={"owner": "x"}),
        RESTError,
        422,
        "UnprocessableEntityException",
        'Property "owner" is both updated and removed',
    )
    assert namespace_rows(name) == [{"levels": ["sales"], "properties": {"owner": "py"}, "parent": None}], "nothing changed"
    catalog.drop_namespace("sales")
    delete_bucket(name)


def test_pages_of_namespaces_and_tables():
    name, catalog = new_catalog("pages")
    levels = ["n_a", "n_b", "n_c", "n_d", "n_e"]
    for level in reversed(levels):
        catalog.create_namespace(level)
    for table in ("t_c", "t_a", "t_b"):
        catalog.create_table(("n_a", table), SIMPLE)
    # pyiceberg's rest-page-size: it follows next-page-token until there is none
    catalog.properties["rest-page-size"] = "2"
    start = mark()
    assert catalog.list_namespaces() == [(level,) for level in levels]
    assert sent(start) == [
        ("GET", f"/v1/{name}/namespaces?pageSize=2", 200),
        ("GET", f"/v1/{name}/namespaces?pageSize=2&pageToken=n_b", 200),
        ("GET", f"/v1/{name}/namespaces?pageSize=2&pageToken=n_d", 200),
    ]
    start = mark()
    assert catalog.list_tables("n_a") == [("n_a", "t_a"), ("n_a", "t_b"), ("n_a", "t_c")]
    assert sent(start) == [
        ("GET", f"/v1/{name}/namespaces/n_a/tables?pageSize=2", 200),
        ("GET", f"/v1/{name}/namespaces/n_a/tables?pageSize=2&pageToken=t_b", 200),
    ]
    for table in ("t_a", "t_b", "t_c"):
        catalog.purge_table(("n_a", table))
    for level in levels:
        catalog.drop_namespace(level)
    assert namespace_rows(name) == [] and table_rows(name) == []
    delete_bucket(name)


# ------------------------------------------------------------------ tables
def test_create_and_load_a_table():
    name, catalog = new_catalog("tables")
    catalog.create_namespace("sales")
    catalog.create_namespace(("sales", "eu"))
    start = mark()
    created = catalog.create_table(("sales", "eu", "orders"), SCHEMA, partition_spec=SPEC, sort_order=ORDER, properties={"owner": "py"})
    assert sent(start) == [("POST", f"/v1/{name}/namespaces/sales%1Feu/tables", 200)]
    request = sent_json(start)[0]
    assert (request["name"], request["stage-create"], request["properties"]) == ("orders", False, {"owner": "py"})
    assert isinstance(created, Table)
    assert isinstance(created.io, PyArrowFileIO), "storage3's py-io-impl"
    assert created.io.properties["s3.endpoint"] == f"{URL}/storage/v1/s3"

    location = f"s3://{name}/sales/eu/orders"
    row = table_row(name, ("sales", "eu"), "orders")
    assert (row["location"], row["version"], row["metadata_location"]) == (location, 0, created.metadata_location)
    assert metadata_file(location, 0).fullmatch(created.metadata_location), created.metadata_location
    assert stored_metadata(row) == created.metadata

    start = mark()
    loaded = catalog.load_table("sales.eu.orders")
    assert sent(start) == [("GET", f"/v1/{name}/namespaces/sales%1Feu/tables/orders", 200)]
    assert loaded.name() == ("sales", "eu", "orders")
    assert loaded.metadata == created.metadata
    assert loaded.metadata_location == row["metadata_location"]
    assert loaded.format_version == 2
    assert loaded.location() == location
    assert str(loaded.metadata.table_uuid) == row["metadata"]["table-uuid"]
    # fresh ids: columns from 1 (nested ones after their parents' level), partition fields from 1000
    assert loaded.schema() == FRESH_SCHEMA
    assert loaded.schema().schema_id == 0
    assert loaded.schema().identifier_field_names() == {"id"}
    assert [(f.field_id, f.name) for f in loaded.schema().fields] == [
        (1, "id"), (2, "ts"), (3, "region"), (4, "amount"), (5, "tags"), (6, "attrs"), (7, "loc"),
    ]
    assert loaded.metadata.last_column_id == 12
    assert loaded.spec() == FRESH_SPEC
    assert loaded.metadata.last_partition_id == 1001
    assert loaded.sort_order() == FRESH_ORDER
    assert loaded.properties == {"owner": "py"}
    assert loaded.current_snapshot() is None and loaded.snapshots() == [] and loaded.metadata.refs == {}
    assert loaded.metadata.last_sequence_number == 0
    assert isinstance(loaded.io, PyArrowFileIO)

    # snapshot-loading-mode=refs is sent as snapshots=refs
    catalog.properties["snapshot-loading-mode"] = "refs"
    start = mark()
    assert catalog.load_table(("sales", "eu", "orders")).metadata == created.metadata
    assert sent(start) == [("GET", f"/v1/{name}/namespaces/sales%1Feu/tables/orders?snapshots=refs", 200)]
    del catalog.properties["snapshot-loading-mode"]

    # a table with a location of its own, no partitions and no order
    plain = catalog.create_table("sales.plain", SIMPLE, location="s3://elsewhere/plain/")
    assert plain.location() == "s3://elsewhere/plain", "the trailing slash is dropped"
    assert metadata_file("s3://elsewhere/plain", 0).fullmatch(plain.metadata_location)
    assert plain.spec() == PartitionSpec(spec_id=0) and plain.spec().is_unpartitioned()
    assert plain.sort_order() == SortOrder(order_id=0) and plain.sort_order().is_unsorted
    assert plain.schema() == SIMPLE
    assert table_row(name, ("sales",), "plain")["location"] == "s3://elsewhere/plain"

    start = mark()
    assert catalog.table_exists("sales.eu.orders") is True
    assert catalog.table_exists(("sales", "eu", "missing")) is False
    assert catalog.table_exists("nowhere.orders") is False
    assert sent(start) == [
        ("HEAD", f"/v1/{name}/namespaces/sales%1Feu/tables/orders", 204),
        ("HEAD", f"/v1/{name}/namespaces/sales%1Feu/tables/missing", 404),
        ("HEAD", f"/v1/{name}/namespaces/nowhere/tables/orders", 404),
    ]
    assert catalog.list_tables("sales.eu") == [("sales", "eu", "orders")]
    assert catalog.list_tables("sales") == [("sales", "plain")]
    assert [(r["namespace"], r["name"]) for r in table_rows(name)] == [(["sales"], "plain"), (["sales", "eu"], "orders")]

    for table in ("sales.eu.orders", "sales.plain"):
        catalog.drop_table(table)
    for ns in ("sales.eu", "sales"):
        catalog.drop_namespace(ns)
    delete_bucket(name)


def test_refused_table_calls():
    name, catalog = new_catalog("table-errors")
    catalog.create_namespace("sales")
    table = catalog.create_table("sales.orders", SIMPLE)
    fails(
        lambda: catalog.create_table("sales.orders", SCHEMA),
        TableAlreadyExistsError,
        409,
        "AlreadyExistsException",
        "Table already exists: sales.orders",
    )
    fails(
        lambda: catalog.create_table("missing.orders", SIMPLE),
        NoSuchNamespaceError,
        404,
        "NoSuchNamespaceException",
        "Namespace does not exist: missing",
    )
    fails(
        lambda: catalog.create_table("sales.Orders", SIMPLE),
        BadRequestError,
        400,
        "BadRequestException",
        'Invalid table name "Orders": use 1 to 255 lower-case letters, digits and underscores, '
        "starting and ending with a letter or digit",
    )
    fails(
        lambda: catalog.load_table("sales.missing"),
        NoSuchTableError,
        404,
        "NoSuchTableException",
        "Table does not exist: sales.missing",
    )
    # in a namespace that does not exist: the server names the namespace, pyiceberg's class is NoSuchTableError
    fails(
        lambda: catalog.load_table("missing.orders"),
        NoSuchTableError,
        404,
        "NoSuchNamespaceException",
        "Namespace does not exist: missing",
    )
    fails(
        lambda: catalog.drop_table("sales.missing"),
        NoSuchTableError,
        404,
        "NoSuchTableException",
        "Table does not exist: sales.missing",
    )
    fails(
        lambda: catalog.drop_namespace("sales"),
        NamespaceNotEmptyError,
        409,
        "NamespaceNotEmptyException",
        "Namespace sales is not empty: it still has tables or namespaces",
    )
    # the table is untouched
    row = table_row(name, ("sales",), "orders")
    assert (row["version"], row["metadata_location"]) == (0, table.metadata_location)
    assert stored_metadata(row) == table.metadata
    catalog.drop_table("sales.orders")
    catalog.drop_namespace("sales")
    delete_bucket(name)


# ------------------------------------------------------------------ commits
def test_metadata_only_commits():
    name, catalog = new_catalog("commits")
    catalog.create_namespace("sales")
    table = catalog.create_table("sales.orders", SCHEMA, partition_spec=SPEC, sort_order=ORDER, properties={"owner": "py"})
    uuid_ = str(table.metadata.table_uuid)
    location = f"s3://{name}/sales/orders"
    first_file = table.metadata_location
    path = f"/v1/{name}/namespaces/sales/tables/orders"

    # properties through a transaction
    start = mark()
    with table.transaction() as tx:
        tx.set_properties(env="prod", tier="gold")
    assert sent(start) == [("POST", path, 200)]
    body = sent_json(start)[0]
    assert body["identifier"] == {"namespace": ["sales"], "name": "orders"}
    assert body["requirements"] == [{"type": "assert-table-uuid", "uuid": uuid_}]
    assert body["updates"] == [{"action": "set-properties", "updates": {"env": "prod", "tier": "gold"}}]
    assert table.properties == {"owner": "py", "env": "prod", "tier": "gold"}
    assert metadata_file(location, 1).fullmatch(table.metadata_location)
    assert [e.metadata_file for e in table.metadata.metadata_log] == [first_file]
    row = table_row(name, ("sales",), "orders")
    assert (row["version"], row["metadata_location"]) == (1, table.metadata_location)
    assert stored_metadata(row) == table.metadata
    reloaded = catalog.load_table("sales.orders")
    assert reloaded.properties == {"owner": "py", "env": "prod", "tier": "gold"}
    assert reloaded.metadata == table.metadata

    # removing a property (pyiceberg applies the removal locally first: a key the table does not
    # have fails there with a KeyError, before anything is sent)
    start = mark()
    table.transaction().remove_properties("tier").commit_transaction()
    assert sent_json(start)[0]["updates"] == [{"action": "remove-properties", "removals": ["tier"]}]
    assert table.properties == {"owner": "py", "env": "prod"}
    assert table_row(name, ("sales",), "orders")["version"] == 2

    # a commit that changes nothing writes no new version
    before = table.metadata_location
    start = mark()
    table.transaction().set_properties(env="prod").commit_transaction()
    assert sent(start) == [("POST", path, 200)]
    assert table.metadata_location == before
    assert table_row(name, ("sales",), "orders")["version"] == 2

    # schema evolution: a new schema (id 1) with the next column id (13), made current
    stale = catalog.load_table("sales.orders")  # for the stale commit below
    start = mark()
    with table.update_schema() as update:
        update.add_column("note", StringType(), doc="free text")
        update.rename_column("amount", "total")
    body = sent_json(start)[0]
    assert body["requirements"] == [
        {"type": "assert-current-schema-id", "current-schema-id": 0},
        {"type": "assert-table-uuid", "uuid": uuid_},
    ]
    assert [u["action"] for u in body["updates"]] == ["add-schema", "set-current-schema"]
    expected_columns = [
        (1, "id"), (2, "ts"), (3, "region"), (4, "total"), (5, "tags"), (6, "attrs"), (7, "loc"), (13, "note"),
    ]
    for t in (table, catalog.load_table("sales.orders")):
        assert t.schema().schema_id == 1
        assert [(f.field_id, f.name) for f in t.schema().fields] == expected_columns
        assert t.schema().find_field("note") == NestedField(13, "note", StringType(), required=False, doc="free text")
        assert t.schema().identifier_field_ids == [1]
        assert [s.schema_id for s in t.schemas().values()] == [0, 1]
        assert t.metadata.current_schema_id == 1 and t.metadata.last_column_id == 13
        assert t.schemas()[0] == FRESH_SCHEMA, "the first schema is kept"
    row = table_row(name, ("sales",), "orders")
    assert row["version"] == 3 and stored_metadata(row) == table.metadata

    # a stale schema change: its assert-current-schema-id no longer holds
    fails(
        lambda: stale.update_schema().add_column("other", StringType()).commit(),
        CommitFailedException,
        409,
        "CommitFailedException",
        "Requirement failed: current schema changed: expected id 0 != 1",
    )
    assert table_row(name, ("sales",), "orders")["version"] == 3, "nothing was written"
    # a stale properties change has no requirement but the table's uuid: it applies to the
    # current metadata, and the answer brings the stale object up to date
    stale.transaction().set_properties(stale="no").commit_transaction()
    assert stale.schema().schema_id == 1 and stale.properties == {"owner": "py", "env": "prod", "stale": "no"}
    assert table_row(name, ("sales",), "orders")["version"] == 4
    # refreshed, the schema change goes through on top of the current schema
    table.refresh()
    with table.update_schema() as update:
        update.add_column("other", StringType())
    assert [(f.field_id, f.name) for f in table.schema().fields][-2:] == [(13, "note"), (14, "other")]
    assert table.schema().schema_id == 2

    # partition evolution: a new spec (id 1) keeping the old fields, with the next field id
    with table.update_spec() as update:
        update.add_identity("region")
    for t in (table, catalog.load_table("sales.orders")):
        assert t.spec() == PartitionSpec(
            PartitionField(source_id=2, field_id=1000, transform=DayTransform(), name="ts_day"),
            PartitionField(source_id=3, field_id=1001, transform=BucketTransform(8), name="region_bucket"),
            PartitionField(source_id=3, field_id=1002, transform=IdentityTransform(), name="region"),
            spec_id=1,
        )
        assert t.metadata.last_partition_id == 1002 and t.metadata.default_spec_id == 1
        assert [s.spec_id for s in t.metadata.partition_specs] == [0, 1]

    # a new sort order (id 2) made the default
    with table.update_sort_order() as update:
        update.asc("region", IdentityTransform(), NullOrder.NULLS_FIRST)
    for t in (table, catalog.load_table("sales.orders")):
        assert t.sort_order() == SortOrder(
            SortField(source_id=3, transform=IdentityTransform(), direction=SortDirection.ASC, null_order=NullOrder.NULLS_FIRST),
            order_id=2,
        )
        assert [o.order_id for o in t.metadata.sort_orders] == [1, 2]

    # (pyiceberg 0.12's Transaction.update_location raises NotImplementedError: no location change)

    # seven versions written (the no-op and the stale schema change wrote none), each earlier one
    # in the metadata log, in order
    row = table_row(name, ("sales",), "orders")
    assert row["version"] == 7
    assert metadata_file(location, 7).fullmatch(row["metadata_location"])
    assert len(table.metadata.metadata_log) == 7
    assert table.metadata.metadata_log[0].metadata_file == first_file
    stamps = [e.timestamp_ms for e in table.metadata.metadata_log]
    assert stamps == sorted(stamps)
    assert stored_metadata(row) == table.metadata == catalog.load_table("sales.orders").metadata
    assert table.current_snapshot() is None, "no data was written"

    catalog.drop_table("sales.orders")
    catalog.drop_namespace("sales")
    delete_bucket(name)


def test_create_table_transactions():
    name, catalog = new_catalog("create-tx")
    catalog.create_namespace("sales")
    path = f"/v1/{name}/namespaces/sales/tables"

    # stage-create stores nothing; the commit (assert-create) creates the table with its updates
    start = mark()
    tx = catalog.create_table_transaction("sales.staged", SCHEMA, partition_spec=SPEC, properties={"a": "1"})
    assert sent(start) == [("POST", path, 200)]
    assert sent_json(start)[0]["stage-create"] is True
    assert json.loads(last_response().content)["metadata-location"] is None
    assert table_rows(name) == []
    assert catalog.table_exists("sales.staged") is False
    tx.set_properties(b="2")
    start = mark()
    table = tx.commit_transaction()
    assert sent(start) == [("POST", f"{path}/staged", 200)]
    body = sent_json(start)[0]
    assert body["requirements"] == [{"type": "assert-create"}]
    assert body["updates"][0]["action"] == "assign-uuid"

    row = table_row(name, ("sales",), "staged")
    assert row["version"] == 0 and row["location"] == f"s3://{name}/sales/staged"
    assert metadata_file(f"s3://{name}/sales/staged", 0).fullmatch(row["metadata_location"])
    loaded = catalog.load_table("sales.staged")
    assert loaded.metadata == stored_metadata(row)
    assert str(loaded.metadata.table_uuid) == body["updates"][0]["uuid"], "the client's uuid"
    assert loaded.schema() == FRESH_SCHEMA
    assert loaded.spec() == FRESH_SPEC
    assert loaded.sort_order().is_unsorted
    assert loaded.properties == {"a": "1", "b": "2"}
    assert table.metadata == loaded.metadata

    # two create transactions staged for one name: the second commit finds the table there
    first = catalog.create_table_transaction("sales.twice", SIMPLE)
    second = catalog.create_table_transaction("sales.twice", SIMPLE, properties={"second": "yes"})
    first.commit_transaction()
    fails(
        second.commit_transaction,
        CommitFailedException,
        409,
        "CommitFailedException",
        "Requirement failed: table already exists",
    )
    assert catalog.load_table("sales.twice").properties == {}
    # staging a name that is taken is refused at once
    fails(
        lambda: catalog.create_table_transaction("sales.twice", SIMPLE),
        TableAlreadyExistsError,
        409,
        "AlreadyExistsException",
        "Table already exists: sales.twice",
    )
    assert [r["name"] for r in table_rows(name)] == ["staged", "twice"]

    for t in ("sales.staged", "sales.twice"):
        catalog.drop_table(t)
    catalog.drop_namespace("sales")
    delete_bucket(name)


# ------------------------------------------------------------------ renames and drops
def test_rename_and_drop_tables():
    name, catalog = new_catalog("rename")
    for ns in ("sales", "sales.eu", "archive"):
        catalog.create_namespace(ns)
    table = catalog.create_table("sales.eu.orders", SIMPLE, properties={"owner": "py"})
    catalog.create_table("archive.taken", SIMPLE)
    row = table_row(name, ("sales", "eu"), "orders")

    # pyiceberg checks both namespaces, renames, then loads the table under its new name
    start = mark()
    moved = catalog.rename_table("sales.eu.orders", "archive.orders_2024")
    assert sent(start) == [
        ("HEAD", f"/v1/{name}/namespaces/sales%1Feu", 204),
        ("HEAD", f"/v1/{name}/namespaces/archive", 204),
        ("POST", f"/v1/{name}/tables/rename", 204),
        ("GET", f"/v1/{name}/namespaces/archive/tables/orders_2024", 200),
    ]
    assert sent_json(start)[2] == {
        "source": {"namespace": ["sales", "eu"], "name": "orders"},
        "destination": {"namespace": ["archive"], "name": "orders_2024"},
    }
    assert moved.name() == ("archive", "orders_2024")
    # the same table: uuid, metadata and its location are unchanged (nothing is moved)
    assert moved.metadata == table.metadata and moved.metadata_location == table.metadata_location
    assert moved.location() == f"s3://{name}/sales/eu/orders"
    renamed = table_row(name, ("archive",), "orders_2024")
    assert {k: renamed[k] for k in ("location", "metadata_location", "metadata", "version")} == {
        k: row[k] for k in ("location", "metadata_location", "metadata", "version")
    }
    assert catalog.table_exists("sales.eu.orders") is False
    assert catalog.list_tables("sales.eu") == []
    assert catalog.list_tables("archive") == [("archive", "orders_2024"), ("archive", "taken")]
    # a rename within the namespace; the table still takes commits under its new name
    catalog.rename_table("archive.orders_2024", "archive.orders")
    latest = catalog.load_table("archive.orders")
    latest.transaction().set_properties(renamed="yes").commit_transaction()
    assert catalog.load_table("archive.orders").properties == {"owner": "py", "renamed": "yes"}
    assert table_row(name, ("archive",), "orders")["version"] == 1

    fails(
        lambda: catalog.rename_table("archive.missing", "archive.other"),
        NoSuchTableError,
        404,
        "NoSuchTableException",
        "Table does not exist: archive.missing",
    )
    fails(
        lambda: catalog.rename_table("archive.orders", "archive.taken"),
        TableAlreadyExistsError,
        409,
        "AlreadyExistsException",
        "Table already exists: archive.taken",
    )
    # pyiceberg refuses a rename into a namespace that does not exist itself, after a HEAD
    start = mark()
    with pytest.raises(NoSuchNamespaceError) as info:
        catalog.rename_table("archive.orders", "missing.orders")
    assert str(info.value) == "Destination namespace does not exist: ('missing',)"
    assert sent(start) == [
        ("HEAD", f"/v1/{name}/namespaces/archive", 204),
        ("HEAD", f"/v1/{name}/namespaces/missing", 404),
    ]
    assert [(r["namespace"], r["name"]) for r in table_rows(name)] == [(["archive"], "orders"), (["archive"], "taken")]

    # drop_table sends purgeRequested=False, purge_table purgeRequested=True: both drop the row
    start = mark()
    catalog.drop_table("archive.orders")
    catalog.purge_table(("archive", "taken"))
    assert sent(start) == [
        ("DELETE", f"/v1/{name}/namespaces/archive/tables/orders?purgeRequested=False", 204),
        ("DELETE", f"/v1/{name}/namespaces/archive/tables/taken?purgeRequested=True", 204),
    ]
    assert table_rows(name) == []
    fails(
        lambda: catalog.drop_table("archive.orders"),
        NoSuchTableError,
        404,
        "NoSuchTableException",
        "Table does not exist: archive.orders",
    )
    fails(
        lambda: catalog.load_table("archive.orders"),
        NoSuchTableError,
        404,
        "NoSuchTableException",
        "Table does not exist: archive.orders",
    )
    # an empty namespace can go; the bucket goes once it has none
    for ns in ("archive", "sales.eu", "sales"):
        catalog.drop_namespace(ns)
    assert namespace_rows(name) == []
    delete_bucket(name)


# ------------------------------------------------------------------ the async client
def test_the_async_client_gives_the_same_catalog():
    """storage3's _async/analytics.py: the buckets are awaited, catalog() is the same RestCatalog."""
    name = bucket_name("async")

    async def scenario() -> None:
        service = await acreate_client(URL, SERVICE_KEY, options=AsyncClientOptions(auto_refresh_token=False, persist_session=False))
        a = service.storage.analytics()
        assert (await a.create(name)).name == name
        CREATED.append(name)
        start = mark()
        catalog = a.catalog(name, ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        assert isinstance(catalog, RestCatalog)
        assert sent(start) == [("GET", f"/v1/config?warehouse={name}", 200)]
        assert (catalog.properties["prefix"], catalog.properties["token"], catalog.uri) == (name, SERVICE_KEY, ICEBERG_URL)
        catalog.create_namespace("sales", {"by": "async"})
        table = catalog.create_table("sales.orders", SIMPLE)
        assert catalog.load_table("sales.orders").metadata == table.metadata
        assert catalog.list_tables("sales") == [("sales", "orders")]
        assert stored_metadata(table_row(name, ("sales",), "orders")) == table.metadata
        catalog.drop_table("sales.orders")
        catalog.drop_namespace("sales")
        assert (await a.delete(name)).message == "Successfully deleted"
        CREATED.remove(name)

    asyncio.run(scenario())
    assert sql_rows("select 1 from storage.buckets_analytics where name = %s", (name,)) == []
