"""supabase-py (storage3 as pinned in requirements.txt) against forge-server's /storage/v1/vector
(the S3 Vectors API): every method of `client.storage.vectors()`.

SyncStorageVectorsClient: create_bucket, get_bucket, list_buckets (prefix, max_results,
next_token), delete_bucket and from_(); SyncVectorBucketScope: create_index, get_index,
list_indexes, delete_index and index(); SyncVectorIndexScope: put (upserts), get, list (pages and
segments), query (exact nearest neighbours, checked against distances computed here, and metadata
filters) and delete; and the same methods of the async client (acreate_client). Errors reach the
client as StorageApiError (status: Storage's statusCode, the real HTTP status; code: the S3
Vectors code), except in get_bucket and get_index, which storage3 turns into None. Only the
service role may call these routes.
storage3 always sends returnData / returnMetadata / returnDistance (true unless told otherwise)
and checks nothing but the size of a delete() batch, so the server's own limits show here.
A refused (403) call is answered only after its body is read, so the keep-alive connection stays
usable for httpx's next request (test_a_refused_call_leaves_the_keep_alive_connection_usable).
Every test creates its own vector buckets (random names, removed at the end of the module); what
the client got is compared with the rows read back in SQL. Run through compat/run.sh, which starts
the servers and exports the FORGE_* variables.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import math
import re
import socket
import struct
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from storage3.exceptions import StorageApiError, VectorBucketException
from storage3.types import (
    GetVectorBucketResponse,
    GetVectorIndexResponse,
    ListVectorBucketsResponse,
    ListVectorIndexesResponse,
    ListVectorsResponse,
    MetadataConfiguration,
    QueryVectorsResponse,
    VectorData,
    VectorMatch,
    VectorObject,
)
from supabase import AsyncClientOptions, acreate_client

import forge_compat
from forge_compat import ANON_KEY, SERVICE_KEY, URL, USER_A, client, last_request, last_response, sql_rows, user_client, user_token
from storage_helpers import storage, storage_fails, suffix, wire

# The service role's vectors client.
vectors = storage.vectors()

# ------------------------------------------------------------------ cleanup
# Vector buckets made by this module: their indexes (and so their vectors), then the buckets, are
# deleted once every test ran.
VECTOR_BUCKETS: list[str] = []


def drop_vector_buckets() -> None:
    while VECTOR_BUCKETS:
        bucket = VECTOR_BUCKETS.pop(0)
        try:
            scope = vectors.from_(bucket)
            for index in scope.list_indexes().indexes:
                scope.delete_index(index.indexName)
            vectors.delete_bucket(bucket)
        except (StorageApiError, httpx.HTTPError):
            pass


@pytest.fixture(scope="module", autouse=True)
def _drop_vector_buckets() -> Iterator[None]:
    yield
    drop_vector_buckets()


def new_vector_bucket(label: str) -> str:
    """Creates a vector bucket `py-vec-<label>-<random>` (service role) and returns its name."""
    name = f"py-vec-{label}-{suffix()}"
    assert vectors.create_bucket(name) is None
    VECTOR_BUCKETS.append(name)
    return name


def new_index(bucket: str, name: str, dimension: int, metric: str, non_filterable: list[str] | None = None):
    """Creates a float32 index in `bucket` and returns its SyncVectorIndexScope."""
    metadata = MetadataConfiguration(non_filterable_metadata_keys=non_filterable) if non_filterable else None
    assert vectors.from_(bucket).create_index(name, dimension, metric, "float32", metadata) is None  # type: ignore[arg-type]
    return vectors.from_(bucket).index(name)


# ------------------------------------------------------------------ the wire
def sent() -> Any:
    """The JSON body of the last request."""
    return json.loads(last_request().content)


def vectors_fails(call, status: int, code: str, message: str | re.Pattern | None = None) -> StorageApiError:
    """Runs `call`, expects a StorageApiError whose status is the real HTTP `status` (Storage's
    statusCode) and whose code is the S3 Vectors `code`; the body is Storage's error."""
    err = storage_fails(call, str(status), status, message)
    assert err.code == code, f"code of {err.to_dict()}"
    assert last_response().json() == {"statusCode": str(status), "code": code, "error": code, "message": err.message}
    return err


def error_body(status: int, code: str, message: str) -> None:
    """Asserts the last response was Storage's error with this status, code and message (for the
    calls storage3 answers with None)."""
    assert last_response().status_code == status
    assert last_response().json() == {"statusCode": str(status), "code": code, "error": code, "message": message}


def operation() -> str:
    """The S3 Vectors operation of the last request (`POST /storage/v1/vector/<Operation>`)."""
    method, path, _ = wire()
    assert method == "POST"
    assert path.startswith("/storage/v1/vector/"), path
    return path.removeprefix("/storage/v1/vector/")


# ------------------------------------------------------------------ SQL
def bucket_created(name: str) -> int | None:
    """A vector bucket's creation time in epoch seconds (None when it does not exist)."""
    rows = sql_rows("select extract(epoch from created_at)::bigint as t from storage.buckets_vectors where id = %s", (name,))
    return rows[0]["t"] if rows else None


def as_datetime(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def index_row(bucket: str, name: str) -> dict | None:
    rows = sql_rows(
        """select name, data_type, dimension, distance_metric, metadata_configuration,
                  extract(epoch from created_at)::bigint as created
             from storage.vector_indexes where bucket_id = %s and name = %s""",
        (bucket, name),
    )
    return rows[0] if rows else None


def stored_vectors(bucket: str, index: str) -> list[dict]:
    """An index's stored vectors ({key, float32, metadata}, by key), the data decoded from the bytea."""
    rows = sql_rows(
        """select v.key, v.data, v.metadata from storage.vectors v join storage.vector_indexes i on i.id = v.index_id
            where i.bucket_id = %s and i.name = %s order by v.key collate "C" """,
        (bucket, index),
    )
    out = []
    for r in rows:
        raw = bytes.fromhex(r["data"][2:])
        out.append({"key": r["key"], "float32": list(struct.unpack(f"<{len(raw) // 4}f", raw)), "metadata": r["metadata"]})
    return out


# ------------------------------------------------------------------ data and distances
def lcg(seed: int) -> Callable[[], int]:
    """A deterministic generator (MINSTD), so every run stores the same vectors."""
    state = [seed]

    def step() -> int:
        state[0] = state[0] * 48271 % 2147483647
        return state[0]

    return step


def make_vectors(n: int, dim: int, seed: int) -> list[list[float]]:
    """`n` vectors of `dim` components, multiples of 1/512 in (-4, 4): exact in float32."""
    step = lcg(seed)
    return [[(step() % 4001 - 2000) / 512 for _ in range(dim)] for _ in range(n)]


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def shortest_f32(x: float) -> float:
    """The float32 of `x` as S3 Vectors writes it in JSON: the shortest decimal that reads back as
    the same float32 (0.1, not 0.10000000149011612)."""
    f = f32(x)
    for digits in range(1, 10):
        # Rounded half up, as JavaScript's toPrecision and Rust's shortest form break exact ties.
        d = float(decimal.Context(prec=digits, rounding=decimal.ROUND_HALF_UP).create_decimal(decimal.Decimal(f)))
        if f32(d) == f:
            return d
    return f


def distance(metric: str, a: list[float], b: list[float]) -> float:
    """The distance of S3 Vectors: cosine (1 - cos) or euclidean, in float64 on float32 inputs."""
    a, b = [f32(x) for x in a], [f32(x) for x in b]
    if metric == "euclidean":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    dot = sum(x * y for x, y in zip(a, b))
    return 1 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def nearest(metric: str, docs: list[dict], query: list[float], k: int) -> list[tuple[str, float]]:
    """The `k` nearest of `docs` to `query` as (key, distance), nearest first; asserts the ranking
    has no near-ties up to the k-th and the next one, so the expected order is unambiguous."""
    ranked = sorted(((d["key"], distance(metric, d["data"], query)) for d in docs), key=lambda kd: kd[1])
    for i in range(1, min(len(ranked), k + 1)):
        assert ranked[i][1] - ranked[i - 1][1] > 1e-4, f"fixture: near-tie at rank {i} of the {metric} ranking"
    return ranked[:k]


def assert_neighbours(got: list[VectorMatch], expected: list[tuple[str, float]]) -> None:
    """Asserts query results are exactly `expected`: keys in order, distances to float32 precision."""
    assert [v.key for v in got] == [k for k, _ in expected]
    for v, (key, want) in zip(got, expected):
        assert v.distance is not None, f"distance of {key}"
        assert abs(v.distance - want) <= 1e-5 * max(1.0, want), f"distance of {key}: {v.distance}, expected {want}"


GENRES = ["drama", "comedy", "horror"]


def doc_metadata(i: int) -> dict:
    m: dict[str, Any] = {"genre": GENRES[i % 3], "year": 1990 + i, "tags": ["even" if i % 2 == 0 else "odd"], "featured": i % 5 == 0}
    if math.isqrt(i) ** 2 == i:
        m["tags"].append("square")
    if i % 4 != 0:
        m["rating"] = i % 5 + 0.5
    m["body"] = f"the text of document {i}"
    return m


# 30 documents of 6 dimensions with metadata of every kind (strings, numbers, booleans, arrays, a
# field only some have, and `body`, declared non-filterable); the same data as the JS suite's.
DOCS = [{"key": f"doc-{i:02d}", "data": v, "metadata": doc_metadata(i)} for i, v in enumerate(make_vectors(30, 6, 20240611))]
QUERIES = make_vectors(4, 6, 777)
META = {d["key"]: d["metadata"] for d in DOCS}


def as_objects(docs: list[dict]) -> list[VectorObject]:
    return [VectorObject(key=d["key"], data=VectorData(float32=d["data"]), metadata=d.get("metadata")) for d in docs]


@pytest.fixture(scope="module")
def docs_indexes() -> dict:
    """One bucket holding DOCS in a cosine and a euclidean index."""
    bucket = new_vector_bucket("docs")
    cosine = new_index(bucket, "docs-cosine", 6, "cosine", ["body"])
    euclidean = new_index(bucket, "docs-euclidean", 6, "euclidean", ["body"])
    cosine.put(as_objects(DOCS))
    euclidean.put(as_objects(DOCS))
    return {"bucket": bucket, "cosine": cosine, "euclidean": euclidean}


# ------------------------------------------------------------------ buckets
def test_create_get_list_and_delete_buckets():
    prefix = f"py-vec-list-{suffix()}-"
    names = [prefix + x for x in ("b", "c", "a")]
    for name in names:
        assert vectors.create_bucket(name) is None
        VECTOR_BUCKETS.append(name)
        assert wire() == ("POST", "/storage/v1/vector/CreateVectorBucket", 200)
        assert sent() == {"vectorBucketName": name}
    ordered = [r["id"] for r in sql_rows("select id from storage.buckets_vectors where starts_with(id, %s) order by id", (prefix,))]
    assert ordered == sorted(names)
    created = {name: bucket_created(name) for name in names}
    for t in created.values():
        assert abs(t - time.time()) < 300

    got = vectors.get_bucket(names[0])
    assert isinstance(got, GetVectorBucketResponse)
    assert operation() == "GetVectorBucket"
    assert got.vectorBucket.vectorBucketName == names[0]
    assert got.vectorBucket.creationTime == as_datetime(created[names[0]])
    assert last_response().json() == {"vectorBucket": {"vectorBucketName": names[0], "creationTime": created[names[0]]}}

    listed = vectors.list_buckets(prefix=prefix)
    assert isinstance(listed, ListVectorBucketsResponse)
    assert operation() == "ListVectorBuckets"
    assert sent() == {"prefix": prefix}
    assert [b.vectorBucketName for b in listed.vectorBuckets] == ordered
    assert listed.nextToken is None
    assert last_response().json() == {"vectorBuckets": [{"vectorBucketName": n, "creationTime": created[n]} for n in ordered]}

    first = vectors.list_buckets(prefix=prefix, max_results=2)
    assert sent() == {"prefix": prefix, "maxResults": 2}
    assert [b.vectorBucketName for b in first.vectorBuckets] == ordered[:2]
    assert isinstance(first.nextToken, str)
    second = vectors.list_buckets(prefix=prefix, max_results=2, next_token=first.nextToken)
    assert [b.vectorBucketName for b in second.vectorBuckets] == ordered[2:]
    assert second.nextToken is None
    assert vectors.list_buckets(prefix=prefix, max_results=3).nextToken is None
    assert vectors.list_buckets(prefix=prefix + "z").vectorBuckets == []
    vectors_fails(lambda: vectors.list_buckets(prefix=prefix, max_results=0), 400, "InvalidParameter", "maxResults must be at least 1")

    # without options: every bucket, in pages of at most 100
    every: list[str] = []
    token = None
    while True:
        page = vectors.list_buckets(next_token=token)
        assert len(page.vectorBuckets) <= 100
        every += [b.vectorBucketName for b in page.vectorBuckets]
        token = page.nextToken
        if token is None:
            break
    assert every == [r["id"] for r in sql_rows("select id from storage.buckets_vectors order by id")]

    assert vectors.delete_bucket(names[0]) is None
    assert wire() == ("POST", "/storage/v1/vector/DeleteVectorBucket", 200)
    assert sent() == {"vectorBucketName": names[0]}
    VECTOR_BUCKETS.remove(names[0])
    assert bucket_created(names[0]) is None
    # storage3's get_bucket answers None for an error
    assert vectors.get_bucket(names[0]) is None
    error_body(404, "S3VectorNotFoundException", f"Vector bucket not found: {names[0]}")
    vectors_fails(lambda: vectors.delete_bucket(names[0]), 404, "S3VectorNotFoundException", f"Vector bucket not found: {names[0]}")
    assert [b.vectorBucketName for b in vectors.list_buckets(prefix=prefix).vectorBuckets] == [n for n in ordered if n != names[0]]


def test_create_bucket_refuses_an_existing_name_and_bad_names():
    name = new_vector_bucket("dup")
    created = bucket_created(name)
    vectors_fails(lambda: vectors.create_bucket(name), 409, "S3VectorConflictException", f"Vector bucket already exists: {name}")
    assert bucket_created(name) == created

    rule = "use 3 to 63 lower-case letters, digits and hyphens, beginning and ending with a letter or digit"
    vectors_fails(lambda: vectors.create_bucket("ab"), 400, "InvalidParameter", f'Invalid vector bucket name "ab": {rule}')
    tag = suffix()
    for bad in [f"Py-{tag}", f"py_{tag}", f"-py-{tag}", f"py-{tag}-", f"py.{tag}", f"py {tag}", f"py-{tag}-{'x' * 64}", ""]:
        vectors_fails(lambda: vectors.create_bucket(bad), 400, "InvalidParameter", re.compile(r"^Invalid vector bucket name "))
        assert bucket_created(bad) is None, bad
    for ok in [suffix()[:3], f"{tag}-{'9' * 54}"]:
        assert len(ok) in (3, 63)
        assert vectors.create_bucket(ok) is None
        VECTOR_BUCKETS.append(ok)
        got = vectors.get_bucket(ok)
        assert got is not None and got.vectorBucket.vectorBucketName == ok
        assert vectors.delete_bucket(ok) is None
        VECTOR_BUCKETS.remove(ok)
    # a missing parameter (the raw route: storage3 always names the bucket)
    res = httpx.post(
        f"{URL}/storage/v1/vector/CreateVectorBucket",
        json={},
        headers={"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"},
    )
    assert res.status_code == 400
    assert res.json() == {
        "statusCode": "400",
        "code": "MissingParameter",
        "error": "MissingParameter",
        "message": "Missing required parameter: vectorBucketName",
    }


def test_delete_bucket_refuses_a_bucket_with_indexes():
    bucket = new_vector_bucket("notempty")
    new_index(bucket, "only", 2, "euclidean")
    vectors_fails(
        lambda: vectors.delete_bucket(bucket),
        400,
        "S3VectorBucketNotEmpty",
        f"The vector bucket {bucket} still has indexes: delete them first",
    )
    assert bucket_created(bucket) is not None
    assert vectors.from_(bucket).delete_index("only") is None
    assert vectors.delete_bucket(bucket) is None
    VECTOR_BUCKETS.remove(bucket)
    assert bucket_created(bucket) is None


# ------------------------------------------------------------------ indexes
def test_create_index_and_get_index():
    bucket = new_vector_bucket("idx")
    scope = vectors.from_(bucket)
    config = MetadataConfiguration(non_filterable_metadata_keys=["body", "raw-html"])
    assert scope.create_index("docs.v1", 384, "cosine", "float32", config) is None
    assert wire() == ("POST", "/storage/v1/vector/CreateIndex", 200)
    assert sent() == {
        "vectorBucketName": bucket,
        "indexName": "docs.v1",
        "dimension": 384,
        "distanceMetric": "cosine",
        "dataType": "float32",
        "metadataConfiguration": {"nonFilterableMetadataKeys": ["body", "raw-html"]},
    }
    row = index_row(bucket, "docs.v1")
    assert row is not None
    assert {k: v for k, v in row.items() if k != "created"} == {
        "name": "docs.v1",
        "data_type": "float32",
        "dimension": 384,
        "distance_metric": "cosine",
        "metadata_configuration": {"nonFilterableMetadataKeys": ["body", "raw-html"]},
    }

    got = scope.get_index("docs.v1")
    assert isinstance(got, GetVectorIndexResponse)
    assert operation() == "GetIndex"
    assert sent() == {"vectorBucketName": bucket, "indexName": "docs.v1"}
    index = got.index
    assert (index.index_name, index.bucket_name, index.data_type, index.dimension, index.distance_metric) == (
        "docs.v1",
        bucket,
        "float32",
        384,
        "cosine",
    )
    assert index.metadata is not None and index.metadata.non_filterable_metadata_keys == ["body", "raw-html"]
    assert index.creation_time == as_datetime(row["created"])
    assert last_response().json() == {
        "index": {
            "indexName": "docs.v1",
            "vectorBucketName": bucket,
            "dataType": "float32",
            "dimension": 384,
            "distanceMetric": "cosine",
            "metadataConfiguration": {"nonFilterableMetadataKeys": ["body", "raw-html"]},
            "creationTime": row["created"],
        }
    }

    # without a metadata configuration (storage3 sends none), and the dimension's bounds
    for name, dimension, metric in [("plain", 3, "euclidean"), ("one-dim", 1, "cosine"), ("widest", 4096, "euclidean")]:
        assert scope.create_index(name, dimension, metric, "float32") is None  # type: ignore[arg-type]
        assert "metadataConfiguration" not in sent()
        got = scope.get_index(name)
        assert got is not None
        assert (got.index.dimension, got.index.distance_metric, got.index.metadata) == (dimension, metric, None)
        assert "metadataConfiguration" not in last_response().json()["index"]

    # storage3's get_index answers None for an error
    assert scope.get_index("missing") is None
    error_body(404, "S3VectorNotFoundException", "Vector index not found: missing")
    no_bucket = f"py-vec-none-{suffix()}"
    assert vectors.from_(no_bucket).get_index("docs.v1") is None
    error_body(404, "S3VectorNotFoundException", f"Vector bucket not found: {no_bucket}")


def test_list_indexes_by_name_with_prefix_and_pages():
    bucket = new_vector_bucket("list")
    other = new_vector_bucket("list-other")
    names = ["gamma", "alpha-2", "beta-1", "alpha.3", "alpha-1"]
    for name in names:
        new_index(bucket, name, 2, "euclidean")
    new_index(other, "alpha-1", 3, "cosine")
    rows = sql_rows(
        "select name, extract(epoch from created_at)::bigint as t from storage.vector_indexes where bucket_id = %s order by name",
        (bucket,),
    )
    ordered = [r["name"] for r in rows]
    assert sorted(ordered) == sorted(names)
    scope = vectors.from_(bucket)

    listed = scope.list_indexes()
    assert isinstance(listed, ListVectorIndexesResponse)
    assert operation() == "ListIndexes"
    assert sent() == {"vectorBucketName": bucket}
    assert [i.indexName for i in listed.indexes] == ordered
    assert listed.nextToken is None
    assert last_response().json() == {
        "indexes": [{"indexName": r["name"], "vectorBucketName": bucket, "creationTime": r["t"]} for r in rows]
    }
    alphas = [n for n in ordered if n.startswith("alpha")]
    assert len(alphas) == 3
    assert [i.indexName for i in scope.list_indexes(prefix="alpha").indexes] == alphas
    page1 = scope.list_indexes(prefix="alpha", max_results=2)
    assert sent() == {"vectorBucketName": bucket, "prefix": "alpha", "maxResults": 2}
    assert [i.indexName for i in page1.indexes] == alphas[:2]
    assert isinstance(page1.nextToken, str)
    page2 = scope.list_indexes(prefix="alpha", max_results=2, next_token=page1.nextToken)
    assert ([i.indexName for i in page2.indexes], page2.nextToken) == (alphas[2:], None)
    assert scope.list_indexes(prefix="delta").indexes == []

    seen: list[str] = []
    token = None
    while True:
        page = scope.list_indexes(max_results=1, next_token=token)
        assert len(page.indexes) <= 1
        seen += [i.indexName for i in page.indexes]
        token = page.nextToken
        if token is None:
            break
    assert seen == ordered

    assert [i.indexName for i in vectors.from_(other).list_indexes().indexes] == ["alpha-1"]
    other_index = vectors.from_(other).get_index("alpha-1")
    assert other_index is not None and other_index.index.distance_metric == "cosine"
    none = f"py-vec-none-{suffix()}"
    vectors_fails(lambda: vectors.from_(none).list_indexes(), 404, "S3VectorNotFoundException", f"Vector bucket not found: {none}")
    vectors_fails(lambda: scope.list_indexes(max_results=0), 400, "InvalidParameter", "maxResults must be at least 1")


def test_create_index_refusals():
    bucket = new_vector_bucket("idxbad")
    scope = vectors.from_(bucket)
    new_index(bucket, "docs", 8, "cosine")
    before = index_row(bucket, "docs")
    vectors_fails(
        lambda: scope.create_index("docs", 16, "euclidean", "float32"),
        409,
        "S3VectorConflictException",
        "Vector index already exists: docs",
    )
    assert index_row(bucket, "docs") == before
    none = f"py-vec-none-{suffix()}"
    vectors_fails(
        lambda: vectors.from_(none).create_index("docs", 8, "cosine", "float32"),
        404,
        "S3VectorNotFoundException",
        f"Vector bucket not found: {none}",
    )
    rule = "use 3 to 63 lower-case letters, digits, hyphens and dots, beginning and ending with a letter or digit"
    vectors_fails(lambda: scope.create_index("ab", 8, "cosine", "float32"), 400, "InvalidParameter", f'Invalid index name "ab": {rule}')
    for name in ["Docs", "docs_1", ".docs", "docs.", "-docs", "x" * 64]:
        vectors_fails(lambda: scope.create_index(name, 8, "cosine", "float32"), 400, "InvalidParameter", re.compile(r"^Invalid index name "))
    for dimension in (0, -1, 4097):
        vectors_fails(
            lambda: scope.create_index("bad-config", dimension, "cosine", "float32"),
            400,
            "InvalidParameter",
            "dimension must be between 1 and 4096",
        )
    vectors_fails(
        lambda: scope.create_index("bad-config", 8, "dot", "float32"),  # type: ignore[arg-type]
        400,
        "InvalidParameter",
        'Unsupported distanceMetric "dot": use "cosine", "euclidean" or "dotproduct"',
    )
    vectors_fails(
        lambda: scope.create_index("bad-config", 8, "cosine", "float16"),
        400,
        "InvalidParameter",
        'Unsupported dataType "float16": only "float32" is supported',
    )
    eleven = [f"key{i}" for i in range(11)]
    vectors_fails(
        lambda: scope.create_index("bad-config", 8, "cosine", "float32", MetadataConfiguration(non_filterable_metadata_keys=eleven)),
        400,
        "InvalidParameter",
        "At most 10 non-filterable metadata keys are allowed",
    )
    vectors_fails(
        lambda: scope.create_index("bad-config", 8, "cosine", "float32", MetadataConfiguration(non_filterable_metadata_keys=["x" * 64])),
        400,
        "InvalidParameter",
        "Non-filterable metadata keys must have 1 to 63 characters",
    )
    assert [r["name"] for r in sql_rows("select name from storage.vector_indexes where bucket_id = %s", (bucket,))] == ["docs"]
    new_index(bucket, "ten-keys", 2, "euclidean", eleven[:10])
    got = scope.get_index("ten-keys")
    assert got is not None and got.index.metadata is not None
    assert got.index.metadata.non_filterable_metadata_keys == eleven[:10]


def test_delete_index_drops_its_vectors_and_frees_the_name():
    bucket = new_vector_bucket("idxdel")
    scope = vectors.from_(bucket)
    index = new_index(bucket, "short-lived", 2, "euclidean")
    kept = new_index(bucket, "kept", 2, "euclidean")
    three = [VectorObject(key=k, data=VectorData(float32=[i, i + 1])) for i, k in enumerate("abc")]
    index.put(three)
    kept.put(three)
    assert len(stored_vectors(bucket, "short-lived")) == 3

    assert scope.delete_index("short-lived") is None
    assert wire() == ("POST", "/storage/v1/vector/DeleteIndex", 200)
    assert sent() == {"vectorBucketName": bucket, "indexName": "short-lived"}
    assert index_row(bucket, "short-lived") is None
    assert stored_vectors(bucket, "short-lived") == []
    assert sql_rows("select 1 from storage.vectors v left join storage.vector_indexes i on i.id = v.index_id where i.id is null") == []
    assert [v["key"] for v in stored_vectors(bucket, "kept")] == ["a", "b", "c"]
    assert [i.indexName for i in scope.list_indexes().indexes] == ["kept"]
    assert scope.get_index("short-lived") is None
    error_body(404, "S3VectorNotFoundException", "Vector index not found: short-lived")
    vectors_fails(lambda: scope.delete_index("short-lived"), 404, "S3VectorNotFoundException", "Vector index not found: short-lived")
    vectors_fails(lambda: index.put(three), 404, "S3VectorNotFoundException", "Vector index not found: short-lived")
    vectors_fails(lambda: index.list(), 404, "S3VectorNotFoundException", "Vector index not found: short-lived")

    new_index(bucket, "short-lived", 3, "cosine")
    assert index.list().vectors == []
    got = scope.get_index("short-lived")
    assert got is not None and got.index.dimension == 3


# ------------------------------------------------------------------ vectors
def test_put_and_get_round_trip_data_and_metadata():
    bucket = new_vector_bucket("put")
    index = new_index(bucket, "items", 4, "euclidean")
    items = [
        {
            "key": "exact",
            "data": [0.5, -1.25, 3.0, 1024.0],
            "metadata": {"genre": "drama", "year": 2004, "tags": ["a", "b"], "new": False, "score": 0.75, "empty": []},
        },
        # not exact in float32: stored and returned rounded to float32
        {"key": "rounded", "data": [0.1, 1 / 3, -2.7, 1e-7]},
        {"key": "ünïcode key / with spaces ✓", "data": [1.0, 2.0, 3.0, 4.0], "metadata": {"note": "naïve — “quoted”", "n": -1e-3}},
    ]
    assert index.put(as_objects(items)) is None
    assert wire() == ("POST", "/storage/v1/vector/PutVectors", 200)
    assert sent() == {
        "vectorBucketName": bucket,
        "indexName": "items",
        "vectors": [{k: v if k != "data" else {"float32": v} for k, v in item.items()} for item in items],
    }
    expected_rows = sorted(
        ({"key": i["key"], "float32": [f32(x) for x in i["data"]], "metadata": i.get("metadata")} for i in items),
        key=lambda r: r["key"].encode(),
    )
    assert stored_vectors(bucket, "items") == expected_rows

    keys = [i["key"] for i in items]
    # storage3 asks for data and metadata unless told otherwise
    got = index.get(*keys)
    assert sent() == {"vectorBucketName": bucket, "indexName": "items", "keys": keys, "returnData": True, "returnMetadata": True}
    assert [(v.key, v.data.float32 if v.data else None, v.metadata) for v in got.vectors] == [
        (i["key"], [shortest_f32(x) for x in i["data"]], i.get("metadata", {})) for i in items
    ]
    # written as float32s in their shortest form: 0.1 is 0.1, 1/3 is 0.33333334
    assert got.vectors[1].data is not None and got.vectors[1].data.float32 == [0.1, 0.33333334, -2.7, 1e-7]
    assert '"float32":[0.1,0.33333334,-2.7,1e-7]' in last_response().text
    assert last_response().json()["vectors"][1] == {"key": "rounded", "data": {"float32": [0.1, 0.33333334, -2.7, 1e-7]}, "metadata": {}}
    keys_only = index.get(*keys, return_data=False, return_metadata=False)
    assert last_response().json() == {"vectors": [{"key": k} for k in keys]}
    assert [(v.key, v.data, v.metadata) for v in keys_only.vectors] == [(k, None, None) for k in keys]
    index.get(*reversed(keys), return_data=True, return_metadata=False)
    assert last_response().json() == {
        "vectors": [{"key": i["key"], "data": {"float32": [shortest_f32(x) for x in i["data"]]}} for i in reversed(items)]
    }
    index.get(*keys, return_data=False, return_metadata=True)
    assert last_response().json() == {"vectors": [{"key": i["key"], "metadata": i.get("metadata", {})} for i in items]}

    # unknown keys are left out; a key asked twice comes once
    assert [v.key for v in index.get("rounded", "missing", "exact", "rounded").vectors] == ["rounded", "exact"]
    assert index.get("missing").vectors == []

    vectors_fails(lambda: index.get(), 400, "InvalidParameter", "keys must have 1 to 100 entries")
    many = [f"k{i}" for i in range(101)]
    vectors_fails(lambda: index.get(*many), 400, "InvalidParameter", "keys must have 1 to 100 entries")
    assert [v.key for v in index.get(*many[:99], "exact").vectors] == ["exact"]
    vectors_fails(lambda: index.get(""), 400, "InvalidParameter", "Vector keys must have 1 to 1024 characters and at most 2048 bytes")
    vectors_fails(lambda: vectors.from_(bucket).index("nope").get(*keys), 404, "S3VectorNotFoundException", "Vector index not found: nope")
    none = f"py-vec-none-{suffix()}"
    vectors_fails(lambda: vectors.from_(none).index("items").get(*keys), 404, "S3VectorNotFoundException", f"Vector bucket not found: {none}")


def test_put_upserts_data_and_whole_metadata():
    bucket = new_vector_bucket("upsert")
    index = new_index(bucket, "items", 3, "euclidean")
    index.put(
        [
            VectorObject(key="a", data=VectorData(float32=[1, 0, 0]), metadata={"genre": "drama", "year": 1999}),
            VectorObject(key="b", data=VectorData(float32=[0, 1, 0]), metadata={"genre": "comedy"}),
        ]
    )
    index.put(
        [
            VectorObject(key="a", data=VectorData(float32=[0, 0, 5]), metadata={"year": 2024}),
            VectorObject(key="c", data=VectorData(float32=[2, 2, 2]), metadata={"genre": "horror"}),
        ]
    )
    got = index.get("a", "b", "c")
    assert [(v.key, v.data.float32 if v.data else None, v.metadata) for v in got.vectors] == [
        ("a", [0, 0, 5], {"year": 2024}),
        ("b", [0, 1, 0], {"genre": "comedy"}),
        ("c", [2, 2, 2], {"genre": "horror"}),
    ]
    assert [v["key"] for v in stored_vectors(bucket, "items")] == ["a", "b", "c"]
    near = index.query(VectorData(float32=[0, 0, 4]), 1)
    assert last_response().json() == {"vectors": [{"key": "a", "distance": 1.0, "metadata": {"year": 2024}}], "distanceMetric": "euclidean"}
    assert [(v.key, v.distance) for v in near.vectors] == [("a", 1.0)]
    assert index.query(VectorData(float32=[1, 0, 0]), 10, filter={"genre": "drama"}).vectors == []

    # a put without metadata clears it
    index.put([VectorObject(key="a", data=VectorData(float32=[0, 0, 6]))])
    assert sent()["vectors"] == [{"key": "a", "data": {"float32": [0, 0, 6]}}]
    again = index.get("a").vectors[0]
    assert (again.data.float32 if again.data else None, again.metadata) == ([0, 0, 6], {})
    assert stored_vectors(bucket, "items")[0] == {"key": "a", "float32": [0, 0, 6], "metadata": None}


def test_put_refuses_an_invalid_batch_as_a_whole():
    bucket = new_vector_bucket("putbad")
    index = new_index(bucket, "items", 4, "euclidean")
    cosine = new_index(bucket, "angles", 2, "cosine")
    good = VectorObject(key="good", data=VectorData(float32=[1, 2, 3, 4]))

    def obj(key: str, data: list[float], metadata: Any = None) -> VectorObject:
        return VectorObject.model_construct(key=key, data=VectorData(float32=data), metadata=metadata)

    cases = [
        (obj("bad", [1, 2, 3]), 'Vector "bad" has 3 components; the index takes 4'),
        (obj("good", [4, 3, 2, 1]), 'Vector key "good" appears twice in the request'),
        (obj("", [1, 2, 3, 4]), "Vector keys must have 1 to 1024 characters and at most 2048 bytes"),
        (obj("k" * 1025, [1, 2, 3, 4]), "Vector keys must have 1 to 1024 characters and at most 2048 bytes"),
        (obj("bad", [1, 2, 1e39, 4]), 'Vector "bad" has a component that is not a finite number'),
        (obj("bad", [1, 2, 3, 4], {"nested": {"a": 1}}), 'Metadata "nested" of vector "bad" must be a string, number, boolean or an array of them'),
        (obj("bad", [1, 2, 3, 4], {"list": ["a", {"b": 1}]}), 'Metadata "list" of vector "bad" must be a string, number, boolean or an array of them'),
        (obj("bad", [1, 2, 3, 4], {"text": "x" * (41 * 1024)}), 'The metadata of vector "bad" is over 40 KiB'),
    ]
    for bad, message in cases:
        vectors_fails(lambda: index.put([good, bad]), 400, "InvalidParameter", message)
        assert stored_vectors(bucket, "items") == [], f"nothing of the batch refused for {message}"
    # NaN and infinity are not JSON: httpx refuses to encode them, sending nothing
    sent_before = len(forge_compat.EXCHANGES)
    for odd in (math.nan, math.inf):
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            index.put([obj("odd", [1, odd, 3, 4])])
    assert len(forge_compat.EXCHANGES) == sent_before
    # storage3 checks no batch size: the server refuses an empty batch and one over 500
    vectors_fails(lambda: index.put([]), 400, "InvalidParameter", "vectors must have 1 to 500 entries")
    too_many = [VectorObject(key=f"k{i}", data=VectorData(float32=[i, 1, 1, 1])) for i in range(501)]
    vectors_fails(lambda: index.put(too_many), 400, "InvalidParameter", "vectors must have 1 to 500 entries")
    vectors_fails(
        lambda: cosine.put([obj("zero", [0, 0])]),
        400,
        "InvalidParameter",
        'Vector "zero" is all zeros, which has no cosine distance',
    )
    vectors_fails(lambda: vectors.from_(bucket).index("nope").put([good]), 404, "S3VectorNotFoundException", "Vector index not found: nope")
    none = f"py-vec-none-{suffix()}"
    vectors_fails(lambda: vectors.from_(none).index("items").put([good]), 404, "S3VectorNotFoundException", f"Vector bucket not found: {none}")
    assert stored_vectors(bucket, "items") == []

    # the limits themselves: 500 vectors, a key of 1024 characters, metadata under 40 KiB, a zero
    # vector in a euclidean index
    assert index.put(too_many[:500]) is None
    long = VectorObject(key="k" * 1024, data=VectorData(float32=[0, 0, 0, 0]), metadata={"text": "x" * (39 * 1024)})
    index.put([long])
    got = index.get(long.key).vectors
    assert [(v.key, v.data.float32 if v.data else None, v.metadata) for v in got] == [(long.key, [0, 0, 0, 0], long.metadata)]
    assert len(stored_vectors(bucket, "items")) == 501


def test_delete_removes_the_given_keys_and_ignores_unknown_ones():
    bucket = new_vector_bucket("del")
    index = new_index(bucket, "items", 2, "euclidean")
    index.put([VectorObject(key=f"k{i}", data=VectorData(float32=[i, 0]), metadata={"i": i}) for i in range(6)])

    assert index.delete(["k1", "k3", "missing"]) is None
    assert wire() == ("POST", "/storage/v1/vector/DeleteVectors", 200)
    assert sent() == {"vectorBucketName": bucket, "indexName": "items", "keys": ["k1", "k3", "missing"]}
    left = ["k0", "k2", "k4", "k5"]
    assert [v["key"] for v in stored_vectors(bucket, "items")] == left
    assert [v.key for v in index.get(*[f"k{i}" for i in range(6)]).vectors] == left
    assert sorted(v.key for v in index.list().vectors) == left
    res = index.query(VectorData(float32=[0.5, 0]), 10, return_metadata=False)
    assert [(v.key, v.distance) for v in res.vectors] == [("k0", 0.5), ("k2", 1.5), ("k4", 3.5), ("k5", 4.5)]
    assert index.delete(["k1", "k3"]) is None
    assert len(stored_vectors(bucket, "items")) == 4

    vectors_fails(lambda: index.delete([""]), 400, "InvalidParameter", "Vector keys must have 1 to 1024 characters and at most 2048 bytes")
    vectors_fails(lambda: vectors.from_(bucket).index("nope").delete(["k0"]), 404, "S3VectorNotFoundException", "Vector index not found: nope")
    # storage3 refuses an empty batch and one over 500 itself, sending nothing
    sent_before = len(forge_compat.EXCHANGES)
    for keys in ([], [f"k{i}" for i in range(501)]):
        with pytest.raises(VectorBucketException) as info:
            index.delete(keys)
        assert info.value.msg == "Keys batch size must be between 1 and 500."
    assert len(forge_compat.EXCHANGES) == sent_before
    assert index.delete([f"k{i}" for i in range(500)]) is None
    assert stored_vectors(bucket, "items") == []


# ------------------------------------------------------------------ list
ITEMS = [{"key": f"item-{i * 7919 % 1001:04d}", "data": [float(i), (i % 17) / 4 - 2], "metadata": {"n": i}} for i in range(1001)]
ALL_KEYS = sorted(i["key"] for i in ITEMS)
BY_KEY = {i["key"]: i for i in ITEMS}


@pytest.fixture(scope="module")
def items_index():
    """1001 vectors with metadata, put as 500 + 500 + 1."""
    bucket = new_vector_bucket("listv")
    index = new_index(bucket, "items", 2, "euclidean")
    for batch in (ITEMS[:500], ITEMS[500:1000], ITEMS[1000:]):
        index.put(as_objects(batch))
    assert len(stored_vectors(bucket, "items")) == 1001
    return index


def pages(index, **options) -> list[list[VectorMatch]]:
    """Every page of a listing, following nextToken to the end."""
    out: list[list[VectorMatch]] = []
    token = None
    while True:
        page = index.list(next_token=token, **options)
        assert isinstance(page, ListVectorsResponse)
        out.append(page.vectors)
        token = page.nextToken
        assert len(out) <= 2000, "paging ends"
        if token is None:
            return out


def test_list_pages_cover_every_key_once(items_index):
    index = items_index
    by_default = pages(index, return_data=False, return_metadata=False)
    assert operation() == "ListVectors"
    first_request = forge_compat.EXCHANGES[-len(by_default)][0]
    assert json.loads(first_request.content) == {
        "vectorBucketName": index._bucket_name,
        "indexName": "items",
        "returnData": False,
        "returnMetadata": False,
    }
    assert isinstance(sent()["nextToken"], str)
    assert [len(p) for p in by_default] == [500, 500, 1]
    assert all(v.data is None and v.metadata is None for p in by_default for v in p)
    assert sorted(v.key for p in by_default for v in p) == ALL_KEYS

    small = pages(index, max_results=64, return_data=False, return_metadata=False)
    assert len(small) == math.ceil(1001 / 64)
    assert all(len(p) == 64 for p in small[:-1])
    keys = [v.key for p in small for v in p]
    assert len(set(keys)) == len(keys)
    assert sorted(keys) == ALL_KEYS

    capped = index.list(max_results=5000, return_data=False, return_metadata=False)
    assert len(capped.vectors) == 1000 and isinstance(capped.nextToken, str)
    rest = index.list(max_results=5000, next_token=capped.nextToken, return_data=False, return_metadata=False)
    assert rest.nextToken is None
    assert sorted(v.key for v in capped.vectors + rest.vectors) == ALL_KEYS

    # storage3's defaults: data and metadata, each vector as it was put
    full = pages(index, max_results=300)
    assert sum(len(p) for p in full) == 1001
    for v in (v for p in full for v in p):
        assert (v.data.float32 if v.data else None, v.metadata) == (BY_KEY[v.key]["data"], BY_KEY[v.key]["metadata"])
    index.list(max_results=3, return_data=False)
    for v in last_response().json()["vectors"]:
        assert v == {"key": v["key"], "metadata": BY_KEY[v["key"]]["metadata"]}
    index.list(max_results=3, return_metadata=False)
    for v in last_response().json()["vectors"]:
        assert v == {"key": v["key"], "data": {"float32": BY_KEY[v["key"]]["data"]}}


def test_list_segments_partition_the_keys(items_index):
    index = items_index
    for count in (1, 3, 16):
        seen: list[str] = []
        for segment in range(count):
            keys = [v.key for p in pages(index, segment_count=count, segment_index=segment, max_results=100, return_data=False) for v in p]
            assert (sent()["segmentCount"], sent()["segmentIndex"]) == (count, segment)
            assert keys, f"segment {segment} of {count} is not empty"
            if count > 1:
                assert len(keys) < 1001
            seen += keys
        assert len(set(seen)) == len(seen), f"a key in two of {count} segments"
        assert sorted(seen) == ALL_KEYS
    whole = index.list(segment_count=3, segment_index=1, max_results=1000)
    assert whole.nextToken is None
    paged = [v.key for p in pages(index, segment_count=3, segment_index=1, max_results=7) for v in p]
    assert paged == [v.key for v in whole.vectors]


def test_list_errors(items_index):
    index = items_index
    vectors_fails(lambda: index.list(max_results=0), 400, "InvalidParameter", "maxResults must be at least 1")
    vectors_fails(lambda: index.list(segment_index=1), 400, "InvalidParameter", "segmentCount and segmentIndex go together")
    vectors_fails(lambda: index.list(segment_count=2), 400, "InvalidParameter", "segmentCount and segmentIndex go together")
    bounds = "segmentCount must be 1 to 16 and segmentIndex 0 to segmentCount - 1"
    for count, segment in ((17, 0), (0, 0), (3, 3), (3, -1)):
        vectors_fails(lambda: index.list(segment_count=count, segment_index=segment), 400, "InvalidParameter", bounds)
    bucket = new_vector_bucket("listbad")
    vectors_fails(lambda: vectors.from_(bucket).index("nope").list(), 404, "S3VectorNotFoundException", "Vector index not found: nope")
    new_index(bucket, "empty", 2, "cosine")
    empty = vectors.from_(bucket).index("empty").list()
    assert (empty.vectors, empty.nextToken) == ([], None)


# ------------------------------------------------------------------ query
def test_query_euclidean_nearest_neighbours(docs_indexes):
    euclidean = docs_indexes["euclidean"]
    for q in QUERIES:
        res = euclidean.query(VectorData(float32=q), 5, return_metadata=False)
        assert isinstance(res, QueryVectorsResponse)
        assert wire() == ("POST", "/storage/v1/vector/QueryVectors", 200)
        assert sent() == {
            "vectorBucketName": docs_indexes["bucket"],
            "indexName": "docs-euclidean",
            "queryVector": {"float32": q},
            "topK": 5,
            "returnDistance": True,
            "returnMetadata": False,
        }
        body = last_response().json()
        assert body["distanceMetric"] == "euclidean"
        assert all(sorted(v) == ["distance", "key"] for v in body["vectors"])
        assert_neighbours(res.vectors, nearest("euclidean", DOCS, q, 5))
    own = DOCS[7]["data"]
    res = euclidean.query(VectorData(float32=own), 3)
    assert (res.vectors[0].key, res.vectors[0].distance) == ("doc-07", 0.0)
    assert_neighbours(res.vectors, nearest("euclidean", DOCS, own, 3))
    origin = [0.0] * 6
    assert_neighbours(euclidean.query(VectorData(float32=origin), 30).vectors, nearest("euclidean", DOCS, origin, 30))


def test_query_cosine_nearest_neighbours(docs_indexes):
    cosine = docs_indexes["cosine"]
    for q in QUERIES:
        expected = nearest("cosine", DOCS, q, 6)
        res = cosine.query(VectorData(float32=q), 6)
        assert last_response().json()["distanceMetric"] == "cosine"
        assert_neighbours(res.vectors, expected)
        assert_neighbours(cosine.query(VectorData(float32=[x * 8 for x in q]), 6).vectors, expected)
    doc = DOCS[12]
    opposite = [-x for x in doc["data"]]
    everything = cosine.query(VectorData(float32=opposite), 30).vectors
    assert_neighbours(everything, nearest("cosine", DOCS, opposite, 30))
    assert everything[-1].key == doc["key"]
    assert everything[-1].distance is not None and abs(everything[-1].distance - 2) < 1e-6
    same = cosine.query(VectorData(float32=doc["data"]), 1).vectors
    assert same[0].key == doc["key"] and same[0].distance is not None and abs(same[0].distance) < 1e-6


def test_query_dotproduct_ranks_by_the_largest_inner_product():
    """A dotproduct index: the distance is the negative inner product (nearest first), a float32."""
    bucket = new_vector_bucket("dot")
    scope = vectors.from_(bucket)
    scope.create_index("dots", 6, "dotproduct", "float32")  # type: ignore[arg-type]
    assert index_row(bucket, "dots")["distance_metric"] == "dotproduct"
    # storage3's models name only cosine and euclidean: read GetIndex's body as sent
    with pytest.raises(Exception):
        scope.get_index("dots")
    assert last_response().json()["index"]["distanceMetric"] == "dotproduct"
    index = scope.index("dots")
    index.put(as_objects([{"key": d["key"], "data": d["data"]} for d in DOCS]))
    for q in QUERIES:
        res = index.query(VectorData(float32=q), 5, return_metadata=False)
        assert last_response().json()["distanceMetric"] == "dotproduct"
        want = sorted(
            ({"key": d["key"], "distance": -sum(x * y for x, y in zip(d["data"], q))} for d in DOCS),
            key=lambda w: w["distance"],
        )[:5]
        assert [(v.key, v.distance) for v in res.vectors] == [(w["key"], shortest_f32(w["distance"])) for w in want]

    tenths = scope.index("tenths")
    scope.create_index("tenths", 3, "euclidean", "float32")
    tenths.put(as_objects([{"key": "a", "data": [0.1, -0.2, 0.3]}]))
    near = tenths.query(VectorData(float32=[0.0, 0.0, 0.0]), 1)
    assert '"distance":0.37416574' in last_response().text
    assert near.vectors[0].distance == shortest_f32(math.sqrt(f32(0.1) ** 2 + f32(-0.2) ** 2 + f32(0.3) ** 2))


def test_query_options_top_k_and_errors(docs_indexes):
    bucket, cosine, euclidean = docs_indexes["bucket"], docs_indexes["cosine"], docs_indexes["euclidean"]
    q = QUERIES[1]
    # without distance and metadata: keys only
    res = euclidean.query(VectorData(float32=q), 10, return_distance=False, return_metadata=False)
    assert last_response().json() == {"vectors": [{"key": k} for k, _ in nearest("euclidean", DOCS, q, 10)], "distanceMetric": "euclidean"}
    assert all(v.distance is None and v.metadata is None and v.data is None for v in res.vectors)
    # storage3's defaults: distance and metadata
    res = euclidean.query(VectorData(float32=q), 4)
    assert_neighbours(res.vectors, nearest("euclidean", DOCS, q, 4))
    assert [v.metadata for v in res.vectors] == [META[v.key] for v in res.vectors]
    assert all(sorted(v) == ["distance", "key", "metadata"] for v in last_response().json()["vectors"])
    res = euclidean.query(VectorData(float32=q), 4, return_distance=False)
    assert [(v.key, v.distance, v.metadata) for v in res.vectors] == [(k, None, META[k]) for k, _ in nearest("euclidean", DOCS, q, 4)]

    assert [v.key for v in euclidean.query(VectorData(float32=q), 100).vectors] == [k for k, _ in nearest("euclidean", DOCS, q, 30)]
    for top_k in (0, -1, 101):
        vectors_fails(lambda: euclidean.query(VectorData(float32=q), top_k), 400, "InvalidParameter", "topK must be between 1 and 100")

    vectors_fails(
        lambda: euclidean.query(VectorData(float32=[1, 2, 3, 4, 5]), 3),
        400,
        "InvalidParameter",
        "The query vector has 5 components; the index takes 6",
    )
    vectors_fails(
        lambda: cosine.query(VectorData(float32=[0] * 6), 3),
        400,
        "InvalidParameter",
        "The query vector is all zeros, which has no cosine distance",
    )
    vectors_fails(
        lambda: cosine.query(VectorData(float32=[1, 2, 3, 4, 5, 1e39]), 3),
        400,
        "InvalidParameter",
        "The query vector has a component that is not a finite number",
    )
    vectors_fails(
        lambda: vectors.from_(bucket).index("nope").query(VectorData(float32=q), 3),
        404,
        "S3VectorNotFoundException",
        "Vector index not found: nope",
    )
    none = f"py-vec-none-{suffix()}"
    vectors_fails(
        lambda: vectors.from_(none).index("docs-cosine").query(VectorData(float32=q), 3),
        404,
        "S3VectorNotFoundException",
        f"Vector bucket not found: {none}",
    )


# Each filter with the predicate it stands for, computed here on DOCS' metadata.
FILTERS: list[tuple[dict, Callable[[dict], bool]]] = [
    ({"genre": "drama"}, lambda m: m["genre"] == "drama"),
    ({"genre": {"$eq": "comedy"}}, lambda m: m["genre"] == "comedy"),
    ({"genre": {"$ne": "comedy"}}, lambda m: m["genre"] != "comedy"),
    ({"year": {"$gt": 2010}}, lambda m: m["year"] > 2010),
    ({"year": {"$gte": 2010}}, lambda m: m["year"] >= 2010),
    ({"year": {"$lt": 1995}}, lambda m: m["year"] < 1995),
    ({"year": {"$lte": 1995}}, lambda m: m["year"] <= 1995),
    ({"year": {"$gte": 1996, "$lt": 2004}}, lambda m: 1996 <= m["year"] < 2004),
    # numbers compare by value: 2001.0 is 2001
    ({"year": 2001.0}, lambda m: m["year"] == 2001),
    ({"year": {"$in": [1991.0, 2019]}}, lambda m: m["year"] in (1991, 2019)),
    ({"rating": {"$gt": 2.5}}, lambda m: m.get("rating", -1) > 2.5),
    ({"genre": {"$in": ["comedy", "horror"]}}, lambda m: m["genre"] in ("comedy", "horror")),
    ({"genre": {"$nin": ["comedy", "horror"]}}, lambda m: m["genre"] not in ("comedy", "horror")),
    ({"rating": {"$exists": True}}, lambda m: "rating" in m),
    ({"rating": {"$exists": False}}, lambda m: "rating" not in m),
    # a missing field matches $ne and $nin
    ({"rating": {"$ne": 2.5}}, lambda m: m.get("rating") != 2.5),
    ({"rating": {"$nin": [1.5, 2.5]}}, lambda m: m.get("rating") not in (1.5, 2.5)),
    # an array matches when any element does, and $ne / $nin when none does
    ({"tags": "square"}, lambda m: "square" in m["tags"]),
    ({"tags": {"$in": ["square", "nothing"]}}, lambda m: "square" in m["tags"]),
    ({"tags": {"$nin": ["square"]}}, lambda m: "square" not in m["tags"]),
    ({"tags": {"$ne": "even"}}, lambda m: "even" not in m["tags"]),
    ({"featured": True}, lambda m: m["featured"] is True),
    ({"featured": {"$ne": True}}, lambda m: m["featured"] is not True),
    ({"genre": "drama", "year": {"$lt": 2005}}, lambda m: m["genre"] == "drama" and m["year"] < 2005),
    ({"$and": [{"genre": {"$ne": "horror"}}, {"rating": {"$gte": 2.5}}]}, lambda m: m["genre"] != "horror" and m.get("rating", -1) >= 2.5),
    ({"$or": [{"genre": "horror"}, {"featured": True}]}, lambda m: m["genre"] == "horror" or m["featured"]),
    (
        {"$or": [{"$and": [{"genre": "drama"}, {"year": {"$gte": 2005}}]}, {"tags": "square"}]},
        lambda m: (m["genre"] == "drama" and m["year"] >= 2005) or "square" in m["tags"],
    ),
    ({"genre": {"$in": ["western"]}}, lambda m: False),
    # a string is never a number
    ({"genre": {"$gt": 0}}, lambda m: False),
]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("case", range(len(FILTERS)), ids=[json.dumps(f) for f, _ in FILTERS])
def test_query_filters_select_exactly_the_matching_vectors(docs_indexes, metric, case):
    flt, keep = FILTERS[case]
    matching = [d for d in DOCS if keep(d["metadata"])]
    if matching:
        assert len(matching) < len(DOCS), "fixture: the filter selects a part"
    else:
        assert "genre" in flt, "fixture: only the designated filters match nothing"
    q = QUERIES[2]
    res = docs_indexes[metric].query(VectorData(float32=q), 100, filter=flt)
    assert sent()["filter"] == flt
    assert_neighbours(res.vectors, nearest(metric, matching, q, 100))
    # the metadata as stored, the non-filterable `body` included
    assert [v.metadata for v in res.vectors] == [META[v.key] for v in res.vectors]


def test_query_filter_applies_before_top_k(docs_indexes):
    euclidean = docs_indexes["euclidean"]
    q = QUERIES[0]
    dramas = [d for d in DOCS if d["metadata"]["genre"] == "drama"]
    expected = nearest("euclidean", dramas, q, 3)
    three = [k for k, _ in nearest("euclidean", DOCS, q, 3)]
    assert [k for k, _ in expected] != [k for k in three if META[k]["genre"] == "drama"], "fixture"
    assert_neighbours(euclidean.query(VectorData(float32=q), 3, filter={"genre": "drama"}).vectors, expected)


INVALID_FILTERS = [
    ({"body": "the text of document 3"}, 'metadata key "body" is not filterable in this index'),
    ({"$or": [{"genre": "drama"}, {"body": {"$exists": True}}]}, 'metadata key "body" is not filterable in this index'),
    ({}, "a filter must have at least one clause"),
    ({"genre": {"$regex": "dr"}}, 'unknown operator "$regex"'),
    ({"$not": {"genre": "drama"}}, 'unknown operator "$not" where a metadata key belongs'),
    ({"year": {"$gt": "2000"}}, '$gt on "year" takes a number'),
    ({"genre": {"$in": []}}, '$in on "genre" takes a non-empty array'),
    ({"genre": {"$nin": "drama"}}, '$nin on "genre" takes a non-empty array'),
    ({"genre": {"$in": [{"a": 1}]}}, '$in on "genre" takes a string, number or boolean'),
    ({"tags": ["even", "square"]}, '$eq on "tags" takes a string, number or boolean'),
    ({"genre": {}}, 'empty operator object for "genre"'),
    ({"rating": {"$exists": 1}}, '$exists on "rating" takes true or false'),
    ({"$and": []}, "$and takes a non-empty array"),
    ({"$and": {"genre": "drama"}}, "$and takes an array of filters"),
    ({"$or": [{"genre": "drama"}], "year": 2000}, "$and and $or must be the only key of their object"),
]


@pytest.mark.parametrize("case", range(len(INVALID_FILTERS)), ids=[json.dumps(f) for f, _ in INVALID_FILTERS])
def test_invalid_filters_are_refused(docs_indexes, case):
    flt, reason = INVALID_FILTERS[case]
    vectors_fails(
        lambda: docs_indexes["cosine"].query(VectorData(float32=QUERIES[0]), 5, filter=flt),
        400,
        "InvalidParameter",
        f"Invalid filter: {reason}",
    )


# ------------------------------------------------------------------ access
@pytest.mark.parametrize("who", ["anon", "authenticated"])
def test_non_service_clients_are_refused_everywhere(who):
    bucket = new_vector_bucket("access")
    index = new_index(bucket, "items", 2, "euclidean")
    index.put([VectorObject(key="a", data=VectorData(float32=[1, 2]), metadata={"m": 1})])

    def snapshot() -> dict:
        return {
            "buckets": sql_rows(
                "select id, created_at from storage.buckets_vectors where id = %s or starts_with(id, 'py-vec-denied-') order by id",
                (bucket,),
            ),
            "indexes": sql_rows("select id, name, dimension from storage.vector_indexes where bucket_id = %s order by name", (bucket,)),
            "vectors": stored_vectors(bucket, "items"),
        }

    before = snapshot()
    assert len(before["buckets"]) == 1
    token = ANON_KEY if who == "anon" else user_token(USER_A)

    def refused_client():
        """A new client per refused call, each as the caller the test is about."""
        c = client(ANON_KEY) if who == "anon" else user_client(token)
        return c.storage.vectors()

    calls = [
        ("CreateVectorBucket", lambda v: v.create_bucket(f"py-vec-denied-{suffix()}")),
        ("ListVectorBuckets", lambda v: v.list_buckets()),
        ("DeleteVectorBucket", lambda v: v.delete_bucket(bucket)),
        ("CreateIndex", lambda v: v.from_(bucket).create_index("denied", 2, "cosine", "float32")),
        ("ListIndexes", lambda v: v.from_(bucket).list_indexes()),
        ("DeleteIndex", lambda v: v.from_(bucket).delete_index("items")),
        ("PutVectors", lambda v: v.from_(bucket).index("items").put([VectorObject(key="b", data=VectorData(float32=[3, 4]))])),
        ("GetVectors", lambda v: v.from_(bucket).index("items").get("a")),
        ("ListVectors", lambda v: v.from_(bucket).index("items").list()),
        ("QueryVectors", lambda v: v.from_(bucket).index("items").query(VectorData(float32=[1, 2]), 3)),
        ("DeleteVectors", lambda v: v.from_(bucket).index("items").delete(["a"])),
    ]
    for name, call in calls:
        v = refused_client()
        vectors_fails(lambda: call(v), 403, "AccessDenied", "Access denied: Invalid role")
        assert operation() == name
        assert last_request().headers["authorization"] == f"Bearer {token}"
    # get_bucket and get_index turn the refusal into None
    assert refused_client().get_bucket(bucket) is None
    assert operation() == "GetVectorBucket"
    error_body(403, "AccessDenied", "Access denied: Invalid role")
    assert refused_client().from_(bucket).get_index("items") is None
    assert operation() == "GetIndex"
    error_body(403, "AccessDenied", "Access denied: Invalid role")
    assert snapshot() == before


def test_a_refused_call_leaves_the_keep_alive_connection_usable():
    """What storage3's httpx client does (headers and body in two writes), made deterministic on
    a raw socket: the headers of a refused call go out first, its body 0.3 s after the server
    answered (or after a second without an answer), then a second request on the same connection
    must be answered."""
    url = httpx.URL(URL)
    body = json.dumps({"vectorBucketName": f"py-vec-denied-{suffix()}"}).encode()
    head = (
        f"POST /storage/v1/vector/CreateVectorBucket HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"apikey: {ANON_KEY}\r\nAuthorization: Bearer {ANON_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    second = (
        f"POST /storage/v1/vector/ListVectorBuckets HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"apikey: {SERVICE_KEY}\r\nAuthorization: Bearer {SERVICE_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()

    def read_response(sock: socket.socket, buffered: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
        data = buffered
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection without answering"
            data += chunk
        raw_head, rest = data.split(b"\r\n\r\n", 1)
        lines = raw_head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection in the middle of a response"
            rest += chunk
        return int(lines[0].split()[1]), headers, rest[:length], rest[length:]

    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head)
        sock.settimeout(1)
        try:
            early = sock.recv(65536)  # answered before the body was sent?
        except socket.timeout:
            early = b""
        if early:
            time.sleep(0.3)  # the body comes late: after the server is done with its answer
        sock.settimeout(10)
        sock.sendall(body)
        status, headers, content, leftover = read_response(sock, early)
        assert status == 403 and json.loads(content)["code"] == "AccessDenied"
        if headers.get("connection", "").lower() == "close":
            return  # a server may close, as long as it says so
        try:
            sock.sendall(second)
            status, _, content, _ = read_response(sock, leftover)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise AssertionError(f"the connection was dropped after the 403: {e!r}") from e
        assert status == 200 and "vectorBuckets" in json.loads(content)


# ------------------------------------------------------------------ the async client
def test_the_async_client_calls_every_method(monkeypatch):
    """storage3's _async/vectors.py through acreate_client: the same routes and answers."""
    original = httpx.AsyncClient.send

    async def recording_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await original(self, request, **kwargs)
        forge_compat.EXCHANGES.append((request, response))
        return response

    monkeypatch.setattr(httpx.AsyncClient, "send", recording_send)
    bucket = f"py-vec-async-{suffix()}"
    docs = DOCS[:12]

    async def scenario() -> None:
        options = AsyncClientOptions(auto_refresh_token=False, persist_session=False)
        service = await acreate_client(URL, SERVICE_KEY, options=options)
        anon = await acreate_client(URL, ANON_KEY, options=AsyncClientOptions(auto_refresh_token=False, persist_session=False))
        try:
            v = service.storage.vectors()
            assert await v.create_bucket(bucket) is None
            VECTOR_BUCKETS.append(bucket)
            got = await v.get_bucket(bucket)
            assert got is not None and got.vectorBucket.creationTime == as_datetime(bucket_created(bucket))
            assert [b.vectorBucketName for b in (await v.list_buckets(prefix=bucket)).vectorBuckets] == [bucket]
            assert await v.get_bucket(f"{bucket}-none") is None
            error_body(404, "S3VectorNotFoundException", f"Vector bucket not found: {bucket}-none")

            scope = v.from_(bucket)
            config = MetadataConfiguration(non_filterable_metadata_keys=["body"])
            assert await scope.create_index("docs", 6, "euclidean", "float32", config) is None
            idx = await scope.get_index("docs")
            assert idx is not None
            assert (idx.index.dimension, idx.index.distance_metric, idx.index.metadata) == (6, "euclidean", config)
            assert [i.indexName for i in (await scope.list_indexes()).indexes] == ["docs"]
            assert await scope.get_index("none") is None

            index = scope.index("docs")
            assert await index.put(as_objects(docs)) is None
            got_vectors = (await index.get("doc-03", "doc-01")).vectors
            assert [(g.key, g.data.float32 if g.data else None, g.metadata) for g in got_vectors] == [
                (d["key"], [shortest_f32(x) for x in d["data"]], d["metadata"]) for d in (docs[3], docs[1])
            ]
            listed = (await index.list(max_results=5, return_data=False, return_metadata=False))
            assert len(listed.vectors) == 5 and listed.nextToken is not None
            rest = await index.list(next_token=listed.nextToken, return_data=False, return_metadata=False)
            assert sorted(x.key for x in listed.vectors + rest.vectors) == sorted(d["key"] for d in docs)
            q = QUERIES[3]
            res = await index.query(VectorData(float32=q), 4, filter={"genre": {"$ne": "comedy"}})
            keep = [d for d in docs if d["metadata"]["genre"] != "comedy"]
            assert_neighbours(res.vectors, nearest("euclidean", keep, q, 4))
            assert await index.delete(["doc-00", "doc-01"]) is None
            assert [g.key for g in (await index.get("doc-00", "doc-01", "doc-02")).vectors] == ["doc-02"]

            with pytest.raises(StorageApiError) as info:
                await v.delete_bucket(bucket)
            assert (info.value.status, info.value.code) == ("400", "S3VectorBucketNotEmpty")
            with pytest.raises(StorageApiError) as info:
                await anon.storage.vectors().from_(bucket).index("docs").query(VectorData(float32=q), 3)
            assert (info.value.status, info.value.code, info.value.message) == ("403", "AccessDenied", "Access denied: Invalid role")
            assert last_response().status_code == 403

            assert await scope.delete_index("docs") is None
            assert await v.delete_bucket(bucket) is None
            VECTOR_BUCKETS.remove(bucket)
        finally:
            await service.storage.session.aclose()
            await anon.storage.session.aclose()

    asyncio.run(scenario())
    assert bucket_created(bucket) is None
    assert sql_rows("select 1 from storage.vector_indexes where bucket_id = %s", (bucket,)) == []
