//! Vector buckets (`/vector/*`, the S3 Vectors API) against real Postgres.

mod common;

use common::{Api, Backend, Reply, api};
use serde_json::{Value, json};

async fn call(api: &Api, op: &str, body: Value) -> Reply {
    api.service("POST", &format!("/vector/{op}"), body).await
}

#[track_caller]
fn ok(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// A vector-route error: the real HTTP status, and Storage's body.
#[track_caller]
fn refused(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["statusCode"], status.to_string(), "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

async fn index(api: &Api, bucket: &str, name: &str, dimension: u32, metric: &str, extra: Value) {
    call(api, "CreateVectorBucket", json!({ "vectorBucketName": bucket })).await;
    let mut body = json!({
        "vectorBucketName": bucket, "indexName": name, "dataType": "float32",
        "dimension": dimension, "distanceMetric": metric,
    });
    if !extra.is_null() {
        body["metadataConfiguration"] = extra;
    }
    ok(&call(api, "CreateIndex", body).await);
}

#[tokio::test]
async fn only_the_service_role_reaches_vector_buckets() {
    let api = api(Backend::Memory).await;
    let anon = api.send("POST", "/vector/ListVectorBuckets", None, json!({})).await;
    refused(&anon, 403, "AccessDenied");
    let user = api.user_token(uuid::Uuid::new_v4());
    let r = api.send("POST", "/vector/CreateVectorBucket", Some(&user), json!({ "vectorBucketName": "docs" })).await;
    refused(&r, 403, "AccessDenied");
    let n: i64 = sqlx::query_scalar("select count(*) from storage.buckets_vectors")
        .fetch_one(api.db.pool())
        .await
        .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn buckets_and_indexes_are_created_listed_and_deleted() {
    let api = api(Backend::Memory).await;
    for name in ["docs", "docs-2", "images"] {
        ok(&call(&api, "CreateVectorBucket", json!({ "vectorBucketName": name })).await);
    }
    refused(
        &call(&api, "CreateVectorBucket", json!({ "vectorBucketName": "docs" })).await,
        409,
        "S3VectorConflictException",
    );
    refused(
        &call(&api, "CreateVectorBucket", json!({ "vectorBucketName": "Bad_Name" })).await,
        400,
        "InvalidParameter",
    );
    refused(&call(&api, "CreateVectorBucket", json!({})).await, 400, "MissingParameter");

    let got = ok(&call(&api, "GetVectorBucket", json!({ "vectorBucketName": "docs" })).await);
    assert_eq!(got["vectorBucket"]["vectorBucketName"], "docs");
    let created = got["vectorBucket"]["creationTime"].as_i64().expect("seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - created).abs() < 60, "{created} vs {now}");
    refused(
        &call(&api, "GetVectorBucket", json!({ "vectorBucketName": "nope" })).await,
        404,
        "S3VectorNotFoundException",
    );

    // Pages of one, by name, with a prefix.
    let names = |v: &Value| -> Vec<String> {
        v["vectorBuckets"]
            .as_array()
            .expect("list")
            .iter()
            .map(|b| b["vectorBucketName"].as_str().expect("name").to_owned())
            .collect()
    };
    let first = ok(&call(&api, "ListVectorBuckets", json!({ "prefix": "docs", "maxResults": 1 })).await);
    assert_eq!(names(&first), ["docs"]);
    let token = first["nextToken"].as_str().expect("more pages");
    let second =
        ok(&call(&api, "ListVectorBuckets", json!({ "prefix": "docs", "maxResults": 1, "nextToken": token })).await);
    assert_eq!(names(&second), ["docs-2"]);
    assert!(second.get("nextToken").is_none(), "{second}");
    assert_eq!(names(&ok(&call(&api, "ListVectorBuckets", json!({})).await)), ["docs", "docs-2", "images"]);
    refused(&call(&api, "ListVectorBuckets", json!({ "maxResults": 0 })).await, 400, "InvalidParameter");

    index(&api, "docs", "by-title", 3, "cosine", json!({ "nonFilterableMetadataKeys": ["body"] })).await;
    index(&api, "docs", "by-body.v2", 8, "euclidean", Value::Null).await;
    let dup = json!({ "vectorBucketName": "docs", "indexName": "by-title", "dataType": "float32", "dimension": 3, "distanceMetric": "cosine" });
    refused(&call(&api, "CreateIndex", dup.clone()).await, 409, "S3VectorConflictException");
    let mut missing_bucket = dup.clone();
    missing_bucket["vectorBucketName"] = json!("nope");
    refused(&call(&api, "CreateIndex", missing_bucket).await, 404, "S3VectorNotFoundException");
    for (field, value) in [
        ("dimension", json!(0)),
        ("dimension", json!(4097)),
        ("distanceMetric", json!("dot")),
        ("distanceMetric", json!("Cosine")),
        ("dataType", json!("float16")),
        ("indexName", json!("x")),
    ] {
        let mut body = dup.clone();
        body["indexName"] = json!("fresh");
        body[field] = value;
        refused(&call(&api, "CreateIndex", body).await, 400, "InvalidParameter");
    }

    let got = ok(&call(&api, "GetIndex", json!({ "vectorBucketName": "docs", "indexName": "by-title" })).await);
    let index = &got["index"];
    assert_eq!(index["indexName"], "by-title");
    assert_eq!(index["vectorBucketName"], "docs");
    assert_eq!(index["dataType"], "float32");
    assert_eq!(index["dimension"], 3);
    assert_eq!(index["distanceMetric"], "cosine");
    assert_eq!(index["metadataConfiguration"], json!({ "nonFilterableMetadataKeys": ["body"] }));
    assert!(index["creationTime"].is_i64(), "{index}");
    let plain = ok(&call(&api, "GetIndex", json!({ "vectorBucketName": "docs", "indexName": "by-body.v2" })).await);
    assert!(plain["index"].get("metadataConfiguration").is_none(), "{plain}");
    refused(
        &call(&api, "GetIndex", json!({ "vectorBucketName": "docs", "indexName": "nope" })).await,
        404,
        "S3VectorNotFoundException",
    );

    let listed = ok(&call(&api, "ListIndexes", json!({ "vectorBucketName": "docs" })).await);
    let index_names: Vec<&str> =
        listed["indexes"].as_array().expect("list").iter().map(|i| i["indexName"].as_str().expect("name")).collect();
    assert_eq!(index_names, ["by-body.v2", "by-title"]);
    let page =
        ok(&call(&api, "ListIndexes", json!({ "vectorBucketName": "docs", "maxResults": 1, "prefix": "by-" })).await);
    assert_eq!(page["indexes"][0]["indexName"], "by-body.v2");
    assert_eq!(page["nextToken"], "by-body.v2");
    assert_eq!(ok(&call(&api, "ListIndexes", json!({ "vectorBucketName": "images" })).await)["indexes"], json!([]));
    refused(&call(&api, "ListIndexes", json!({ "vectorBucketName": "nope" })).await, 404, "S3VectorNotFoundException");

    // A bucket with indexes is refused until they are gone; deleting an index drops its vectors.
    refused(
        &call(&api, "DeleteVectorBucket", json!({ "vectorBucketName": "docs" })).await,
        400,
        "S3VectorBucketNotEmpty",
    );
    let v = json!({ "vectorBucketName": "docs", "indexName": "by-title", "vectors": [{ "key": "a", "data": { "float32": [1, 0, 0] } }] });
    ok(&call(&api, "PutVectors", v).await);
    for name in ["by-title", "by-body.v2"] {
        ok(&call(&api, "DeleteIndex", json!({ "vectorBucketName": "docs", "indexName": name })).await);
    }
    refused(
        &call(&api, "DeleteIndex", json!({ "vectorBucketName": "docs", "indexName": "by-title" })).await,
        404,
        "S3VectorNotFoundException",
    );
    let left: i64 =
        sqlx::query_scalar("select count(*) from storage.vectors").fetch_one(api.db.pool()).await.expect("count");
    assert_eq!(left, 0);
    ok(&call(&api, "DeleteVectorBucket", json!({ "vectorBucketName": "docs" })).await);
    refused(
        &call(&api, "DeleteVectorBucket", json!({ "vectorBucketName": "docs" })).await,
        404,
        "S3VectorNotFoundException",
    );
}

/// A deterministic pseudo-random sequence in [-1, 1).
fn noise(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    1.0 - dot / (norm(a) * norm(b))
}

const GENRES: [&str; 3] = ["drama", "comedy", "horror"];

#[tokio::test]
async fn queries_find_the_nearest_vectors_under_a_filter() {
    let api = api(Backend::Memory).await;
    index(&api, "films", "plots", 16, "cosine", json!({ "nonFilterableMetadataKeys": ["synopsis"] })).await;
    let mut seed = 7;
    let vectors: Vec<(String, Vec<f32>, Value)> = (0..300)
        .map(|i| {
            let data: Vec<f32> = (0..16).map(|_| noise(&mut seed)).collect();
            let meta = json!({ "year": 1950 + i % 70, "genre": GENRES[i % 3], "tags": [format!("t{}", i % 5)], "synopsis": "..." });
            (format!("film-{i:03}"), data, meta)
        })
        .collect();
    for chunk in vectors.chunks(120) {
        let batch: Vec<Value> =
            chunk.iter().map(|(k, d, m)| json!({ "key": k, "data": { "float32": d }, "metadata": m })).collect();
        ok(&call(&api, "PutVectors", json!({ "vectorBucketName": "films", "indexName": "plots", "vectors": batch }))
            .await);
    }
    let query: Vec<f32> = (0..16).map(|_| noise(&mut seed)).collect();

    // Unfiltered: the 5 nearest by cosine distance, in order, with their distances.
    let found = ok(&call(
        &api,
        "QueryVectors",
        json!({
            "vectorBucketName": "films", "indexName": "plots", "queryVector": { "float32": query },
            "topK": 5, "returnDistance": true,
        }),
    )
    .await);
    let mut expected: Vec<(f64, &str)> = vectors.iter().map(|(k, d, _)| (cosine(&query, d), k.as_str())).collect();
    expected.sort_by(|a, b| a.0.total_cmp(&b.0));
    let got = found["vectors"].as_array().expect("vectors");
    assert_eq!(found["distanceMetric"], "cosine");
    assert_eq!(got.len(), 5);
    for (g, (distance, key)) in got.iter().zip(&expected) {
        assert_eq!(g["key"], *key);
        let d = g["distance"].as_f64().expect("distance");
        assert!((d - distance).abs() < 1e-5, "{d} vs {distance}");
        assert!(g.get("metadata").is_none() && g.get("data").is_none(), "{g}");
    }

    // Filtered: dramas from the 1990s, or anything tagged t4.
    let filter = json!({ "$or": [
        { "genre": "drama", "year": { "$gte": 1990, "$lt": 2000 } },
        { "tags": { "$in": ["t4"] } },
    ] });
    let found = ok(&call(
        &api,
        "QueryVectors",
        json!({
            "vectorBucketName": "films", "indexName": "plots", "queryVector": { "float32": query },
            "topK": 100, "filter": filter, "returnMetadata": true,
        }),
    )
    .await);
    let wanted: Vec<&str> = expected
        .iter()
        .filter(|(_, k)| {
            let m = &vectors.iter().find(|(key, _, _)| key == k).expect("known").2;
            let year = m["year"].as_i64().expect("year");
            (m["genre"] == "drama" && (1990..2000).contains(&year)) || m["tags"][0] == "t4"
        })
        .map(|(_, k)| *k)
        .collect();
    let got: Vec<&str> =
        found["vectors"].as_array().expect("vectors").iter().map(|v| v["key"].as_str().expect("key")).collect();
    assert!(wanted.len() > 60 && wanted.len() < 100, "{}", wanted.len());
    assert_eq!(got, wanted);
    assert_eq!(found["vectors"][0]["metadata"]["synopsis"], "...");

    // Bad queries.
    let q = |extra: Value| {
        let mut body =
            json!({ "vectorBucketName": "films", "indexName": "plots", "queryVector": { "float32": query } });
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        body
    };
    refused(&call(&api, "QueryVectors", q(json!({ "filter": { "synopsis": "..." } }))).await, 400, "InvalidParameter");
    refused(
        &call(&api, "QueryVectors", q(json!({ "filter": { "year": { "$gt": "x" } } }))).await,
        400,
        "InvalidParameter",
    );
    refused(&call(&api, "QueryVectors", q(json!({ "topK": 101 }))).await, 400, "InvalidParameter");
    refused(
        &call(&api, "QueryVectors", q(json!({ "queryVector": { "float32": [1.0, 2.0] } }))).await,
        400,
        "InvalidParameter",
    );
    refused(
        &call(&api, "QueryVectors", q(json!({ "queryVector": { "float32": vec![0.0; 16] } }))).await,
        400,
        "InvalidParameter",
    );
    refused(&call(&api, "QueryVectors", q(json!({ "indexName": "nope" }))).await, 404, "S3VectorNotFoundException");
}

#[tokio::test]
async fn ties_go_to_the_smaller_key_and_misses_name_what_is_missing() {
    let api = api(Backend::Memory).await;
    index(&api, "ties", "flat", 2, "euclidean", Value::Null).await;
    // Four vectors at the same distance from the query, stored in an order unlike their keys'.
    let batch: Vec<Value> = ["d", "b", "c", "a"]
        .iter()
        .zip([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
        .map(|(k, v)| json!({ "key": k, "data": { "float32": v } }))
        .collect();
    ok(&call(&api, "PutVectors", json!({ "vectorBucketName": "ties", "indexName": "flat", "vectors": batch })).await);
    let found = ok(&call(
        &api,
        "QueryVectors",
        json!({ "vectorBucketName": "ties", "indexName": "flat", "queryVector": { "float32": [0.0, 0.0] }, "topK": 3 }),
    )
    .await);
    assert_eq!(found["vectors"], json!([{ "key": "a" }, { "key": "b" }, { "key": "c" }]));

    // A missing bucket is named as such, and a missing index as such.
    for op in ["GetIndex", "DeleteIndex", "GetVectors"] {
        let body = json!({ "vectorBucketName": "nope", "indexName": "flat", "keys": ["a"] });
        let r = call(&api, op, body).await;
        refused(&r, 404, "S3VectorNotFoundException");
        assert!(r.json()["message"].as_str().is_some_and(|m| m.starts_with("Vector bucket")), "{op}: {}", r.text());
        let body = json!({ "vectorBucketName": "ties", "indexName": "nope", "keys": ["a"] });
        let r = call(&api, op, body).await;
        refused(&r, 404, "S3VectorNotFoundException");
        assert!(r.json()["message"].as_str().is_some_and(|m| m.starts_with("Vector index")), "{op}: {}", r.text());
    }
}

#[tokio::test]
async fn vectors_are_put_read_listed_and_deleted() {
    let api = api(Backend::Memory).await;
    index(&api, "shop", "items", 2, "euclidean", Value::Null).await;
    let put = |vectors: Value| json!({ "vectorBucketName": "shop", "indexName": "items", "vectors": vectors });
    let keys: Vec<String> = (0..25).map(|i| format!("item-{i:02}")).collect();
    let batch: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({ "key": k, "data": { "float32": [i as f32, 0.5] }, "metadata": { "n": i } }))
        .collect();
    ok(&call(&api, "PutVectors", put(json!(batch))).await);

    // Upsert replaces data and metadata; metadata may be absent.
    ok(&call(&api, "PutVectors", put(json!([{ "key": "item-03", "data": { "float32": [-1.5, 0.25] } }]))).await);
    let got = ok(&call(
        &api,
        "GetVectors",
        json!({
            "vectorBucketName": "shop", "indexName": "items", "keys": ["item-03", "missing", "item-01"],
            "returnData": true, "returnMetadata": true,
        }),
    )
    .await);
    assert_eq!(
        got["vectors"],
        json!([
            { "key": "item-03", "data": { "float32": [-1.5, 0.25] }, "metadata": {} },
            { "key": "item-01", "data": { "float32": [1.0, 0.5] }, "metadata": { "n": 1 } },
        ])
    );
    let bare =
        ok(&call(&api, "GetVectors", json!({ "vectorBucketName": "shop", "indexName": "items", "keys": ["item-01"] }))
            .await);
    assert_eq!(bare["vectors"], json!([{ "key": "item-01" }]));

    // Euclidean distance of the nearest.
    let near = ok(&call(&api, "QueryVectors", json!({
        "vectorBucketName": "shop", "indexName": "items", "queryVector": { "float32": [7.2, 0.5] }, "topK": 2, "returnDistance": true,
    })).await);
    assert_eq!(near["vectors"][0]["key"], "item-07");
    assert!((near["vectors"][0]["distance"].as_f64().expect("d") - 0.2).abs() < 1e-5, "{near}");
    assert_eq!(near["vectors"][1]["key"], "item-08");

    // Pages cover every key once, in order; segments split the keys without overlap.
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({ "vectorBucketName": "shop", "indexName": "items", "maxResults": 10 });
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let page = ok(&call(&api, "ListVectors", body).await);
        listed.extend(
            page["vectors"].as_array().expect("page").iter().map(|v| v["key"].as_str().expect("key").to_owned()),
        );
        match page.get("nextToken") {
            Some(t) => token = Some(t.as_str().expect("token").to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, keys);
    let mut segmented = Vec::new();
    for i in 0..3 {
        let page = ok(&call(&api, "ListVectors", json!({
            "vectorBucketName": "shop", "indexName": "items", "segmentCount": 3, "segmentIndex": i, "returnMetadata": true,
        })).await);
        let part: Vec<String> = page["vectors"]
            .as_array()
            .expect("page")
            .iter()
            .map(|v| v["key"].as_str().expect("key").to_owned())
            .collect();
        assert!(!part.is_empty() && part.len() < 25, "segment {i}: {part:?}");
        segmented.extend(part);
    }
    segmented.sort();
    assert_eq!(segmented, keys);
    refused(
        &call(&api, "ListVectors", json!({ "vectorBucketName": "shop", "indexName": "items", "segmentCount": 3 }))
            .await,
        400,
        "InvalidParameter",
    );
    refused(
        &call(
            &api,
            "ListVectors",
            json!({ "vectorBucketName": "shop", "indexName": "items", "segmentCount": 3, "segmentIndex": 3 }),
        )
        .await,
        400,
        "InvalidParameter",
    );

    ok(&call(
        &api,
        "DeleteVectors",
        json!({ "vectorBucketName": "shop", "indexName": "items", "keys": ["item-00", "item-01", "never"] }),
    )
    .await);
    let got = ok(&call(
        &api,
        "GetVectors",
        json!({ "vectorBucketName": "shop", "indexName": "items", "keys": ["item-00", "item-01", "item-02"] }),
    )
    .await);
    assert_eq!(got["vectors"], json!([{ "key": "item-02" }]));

    // Bad puts change nothing.
    let before = ok(&call(
        &api,
        "ListVectors",
        json!({ "vectorBucketName": "shop", "indexName": "items", "returnData": true, "returnMetadata": true }),
    )
    .await);
    for bad in [
        json!([]),
        json!([{ "key": "a", "data": { "float32": [1.0] } }]),
        json!([{ "key": "a", "data": { "float32": [1.0, 2.0] } }, { "key": "a", "data": { "float32": [1.0, 2.0] } }]),
        json!([{ "key": "", "data": { "float32": [1.0, 2.0] } }]),
        json!([{ "key": "item-05", "data": { "float32": [9.0, 9.0] } }, { "key": "b", "data": { "float32": [1.0, 2.0] }, "metadata": { "x": { "nested": true } } }]),
        json!([{ "key": "b", "data": { "float32": [1.0, 2.0] }, "metadata": { "big": "x".repeat(41 << 10) } }]),
        json!(
            (0..501).map(|i| json!({ "key": format!("k{i}"), "data": { "float32": [1.0, 2.0] } })).collect::<Vec<_>>()
        ),
    ] {
        refused(&call(&api, "PutVectors", put(bad)).await, 400, "InvalidParameter");
    }
    refused(&call(&api, "PutVectors", put(json!([{ "key": "b" }]))).await, 400, "MissingParameter");
    // A value beyond float32 is not a vector.
    let r = api
        .service("POST", "/vector/PutVectors", put(json!([{ "key": "b", "data": { "float32": [1e39, 2.0] } }])))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let after = ok(&call(
        &api,
        "ListVectors",
        json!({ "vectorBucketName": "shop", "indexName": "items", "returnData": true, "returnMetadata": true }),
    )
    .await);
    assert_eq!(before, after);
    refused(
        &call(&api, "GetVectors", json!({ "vectorBucketName": "shop", "indexName": "items", "keys": [] })).await,
        400,
        "InvalidParameter",
    );
    refused(
        &call(&api, "DeleteVectors", json!({ "vectorBucketName": "shop", "indexName": "gone", "keys": ["a"] })).await,
        404,
        "S3VectorNotFoundException",
    );
    let r = api.service("POST", "/vector/PutVectors", json!("not an object")).await;
    refused(&r, 400, "InvalidRequest");
}

#[tokio::test]
async fn concurrent_batches_over_the_same_keys_all_land() {
    let api = api(Backend::Memory).await;
    index(&api, "race", "keys", 2, "euclidean", Value::Null).await;
    let keys: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
    let batch = |reverse: bool, round: usize| {
        let mut order = keys.clone();
        if reverse {
            order.reverse();
        }
        let vectors: Vec<Value> =
            order.iter().map(|k| json!({ "key": k, "data": { "float32": [round as f32, 1.0] } })).collect();
        json!({ "vectorBucketName": "race", "indexName": "keys", "vectors": vectors })
    };
    // Batches sharing keys in opposite orders would lock rows in a cycle if taken as sent.
    let calls = (0..16).map(|i| {
        let api = &api;
        let body = batch(i % 2 == 1, i);
        async move { call(api, "PutVectors", body).await }
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let n: i64 =
        sqlx::query_scalar("select count(*) from storage.vectors").fetch_one(api.db.pool()).await.expect("count");
    assert_eq!(n, 200);
}

#[tokio::test]
async fn keys_nuls_and_self_distances_are_handled() {
    let api = api(Backend::Memory).await;
    index(&api, "edge", "cos", 3, "cosine", Value::Null).await;
    let put = |vectors: Value| json!({ "vectorBucketName": "edge", "indexName": "cos", "vectors": vectors });
    // 1000 characters of three bytes each: within S3 Vectors' character count, past the bytes
    // an index entry holds.
    let wide = "界".repeat(1000);
    let r = call(&api, "PutVectors", put(json!([{ "key": wide, "data": { "float32": [1, 2, 3] } }]))).await;
    refused(&r, 400, "InvalidParameter");
    let fits = "界".repeat(600);
    ok(&call(&api, "PutVectors", put(json!([{ "key": fits, "data": { "float32": [1, 2, 3] } }]))).await);
    // Postgres keeps no NUL character: a clean 400, not a 500.
    let r = call(
        &api,
        "PutVectors",
        put(json!([{ "key": "n", "data": { "float32": [1, 2, 3] }, "metadata": { "a": "x\u{0}y" } }])),
    )
    .await;
    refused(&r, 400, "InvalidParameter");
    let r = call(&api, "GetVectorBucket", json!({ "vectorBucketName": "ed\u{0}ge" })).await;
    refused(&r, 400, "InvalidParameter");
    // A vector is at distance 0 from itself, never a hair below.
    let v = [0.1f32, 0.7, 0.3];
    ok(&call(&api, "PutVectors", put(json!([{ "key": "self", "data": { "float32": v } }]))).await);
    let found = ok(&call(
        &api,
        "QueryVectors",
        json!({ "vectorBucketName": "edge", "indexName": "cos", "queryVector": { "float32": v }, "topK": 1, "returnDistance": true }),
    )
    .await);
    assert_eq!(found["vectors"][0]["key"], "self");
    assert_eq!(found["vectors"][0]["distance"], json!(0.0));
    // The API roles have no rights on the tables themselves.
    for role in ["anon", "authenticated"] {
        let denied = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("set role {role}; select * from storage.vectors")))
            .execute(api.db.pool())
            .await;
        let code = denied.expect_err("refused").as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{role}");
    }
}

#[tokio::test]
async fn components_and_distances_are_written_as_float32s() {
    let api = api(Backend::Memory).await;
    index(&api, "docs", "small", 3, "euclidean", Value::Null).await;
    let put = json!({ "vectorBucketName": "docs", "indexName": "small",
        "vectors": [{ "key": "a", "data": { "float32": [0.1, -0.2, 0.3] } }] });
    ok(&call(&api, "PutVectors", put).await);
    let at = json!({ "vectorBucketName": "docs", "indexName": "small" });
    let mut get = at.clone();
    get["keys"] = json!(["a"]);
    get["returnData"] = json!(true);
    let r = call(&api, "GetVectors", get).await;
    assert!(r.text().contains(r#""float32":[0.1,-0.2,0.3]"#), "the shortest float32 forms: {}", r.text());
    let mut list = at.clone();
    list["returnData"] = json!(true);
    let r = call(&api, "ListVectors", list).await;
    assert!(r.text().contains(r#"[0.1,-0.2,0.3]"#), "{}", r.text());
    let mut query = at.clone();
    query["queryVector"] = json!({ "float32": [0.0, 0.0, 0.0] });
    query["returnDistance"] = json!(true);
    let r = call(&api, "QueryVectors", query).await;
    // |(0.1, -0.2, 0.3)| in float32 is 0.37416574.
    assert!(r.text().contains(r#""distance":0.37416574"#), "{}", r.text());
}

#[tokio::test]
async fn dot_product_indexes_rank_by_the_largest_inner_product() {
    let api = api(Backend::Memory).await;
    index(&api, "docs", "dots", 2, "dotproduct", Value::Null).await;
    let got = ok(&call(&api, "GetIndex", json!({ "vectorBucketName": "docs", "indexName": "dots" })).await);
    assert_eq!(got["index"]["distanceMetric"], "dotproduct");
    let vectors = json!([
        { "key": "big", "data": { "float32": [3.0, 4.0] } },
        { "key": "small", "data": { "float32": [1.0, 0.5] } },
        { "key": "opposite", "data": { "float32": [-2.0, -1.0] } },
        { "key": "zero", "data": { "float32": [0.0, 0.0] } },
    ]);
    let put = json!({ "vectorBucketName": "docs", "indexName": "dots", "vectors": vectors });
    ok(&call(&api, "PutVectors", put).await);
    let query = json!({ "vectorBucketName": "docs", "indexName": "dots", "queryVector": { "float32": [1.0, 2.0] },
        "topK": 4, "returnDistance": true });
    let r = ok(&call(&api, "QueryVectors", query).await);
    assert_eq!(r["distanceMetric"], "dotproduct");
    let got: Vec<(String, f64)> = r["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| (v["key"].as_str().expect("key").to_owned(), v["distance"].as_f64().expect("distance")))
        .collect();
    // The distance is the negative inner product: nearest first.
    let want = [("big", -11.0), ("small", -2.0), ("zero", 0.0), ("opposite", 4.0)];
    assert_eq!(got, want.map(|(k, d)| (k.to_owned(), d)).to_vec());
}
