//! Analytics buckets and their Iceberg REST catalog (`/storage/v1/iceberg`), driven in-process
//! against a fresh database: bucket CRUD and its errors, the service-role check, the catalog's
//! config, namespaces (nested, paged, non-empty drops), tables (create with fresh ids, load,
//! list, rename, drop) and commits (requirements, updates, create transactions, and races where
//! exactly one of several commits against the same metadata wins).

mod common;

use common::{Api, Backend, Reply, api};
use futures_util::future::join_all;
use serde_json::{Value, json};

/// A namespace in a path: levels joined by the unit separator, percent-encoded.
fn ns(levels: &[&str]) -> String {
    levels.join("%1F")
}

async fn iceberg(api: &Api, method: &str, path: &str, body: Value) -> Reply {
    api.service(method, &format!("/iceberg{path}"), body).await
}

/// Asserts an error in the Iceberg REST error model, with the real HTTP status.
#[track_caller]
fn assert_iceberg_error(reply: &Reply, status: u16, kind: &str, message: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["error"]["code"], status, "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    if let Some(message) = message {
        assert_eq!(body["error"]["message"], message, "{body}");
    }
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only `error`: {body}");
}

#[track_caller]
fn assert_ok(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    if reply.bytes.is_empty() { Value::Null } else { reply.json() }
}

async fn new_bucket(api: &Api, name: &str) {
    let r = iceberg(api, "POST", "/bucket", json!({ "name": name })).await;
    assert_ok(&r, 200);
}

async fn new_namespace(api: &Api, bucket: &str, levels: &[&str]) {
    let r = iceberg(api, "POST", &format!("/v1/{bucket}/namespaces"), json!({ "namespace": levels })).await;
    assert_ok(&r, 200);
}

fn events_table() -> Value {
    json!({
        "name": "events",
        "schema": { "type": "struct", "schema-id": 0, "identifier-field-ids": [10], "fields": [
            { "id": 10, "name": "id", "type": "long", "required": true },
            { "id": 20, "name": "ts", "type": "timestamptz", "required": true },
            { "id": 30, "name": "user_id", "type": "string", "required": false },
        ]},
        "partition-spec": { "spec-id": 0, "fields": [
            { "source-id": 20, "field-id": 1000, "name": "ts_day", "transform": "day" },
        ]},
        "write-order": { "order-id": 0, "fields": [] },
        "properties": { "write.format.default": "parquet" },
    })
}

/// A bucket `lake` with namespace `ns` and table `ns.events`; returns the created table's answer.
async fn table_fixture(api: &Api) -> Value {
    new_bucket(api, "lake").await;
    new_namespace(api, "lake", &["ns"]).await;
    let r = iceberg(api, "POST", "/v1/lake/namespaces/ns/tables", events_table()).await;
    assert_ok(&r, 200)
}

async fn stored_version(api: &Api) -> (i64, String) {
    sqlx::query_as("select version, metadata_location from storage.iceberg_tables where name = 'events'")
        .fetch_one(api.db.pool())
        .await
        .expect("the table's row")
}

// ------------------------------------------------------------------------------ buckets

#[tokio::test]
async fn analytics_buckets_are_created_listed_and_deleted() {
    let api = api(Backend::Memory).await;
    let r = iceberg(&api, "POST", "/bucket", json!({ "name": "analytics-data" })).await;
    let created = assert_ok(&r, 200);
    assert_eq!(created["id"], "analytics-data", "the name is the id, as Supabase answers");
    assert_eq!(created["name"], "analytics-data");
    assert_eq!(created["type"], "ANALYTICS");
    assert_eq!(created["format"], "iceberg");
    let row: (String, String, String) = sqlx::query_as(
        "select name, to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
         to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') from storage.buckets_analytics",
    )
    .fetch_one(api.db.pool())
    .await
    .expect("row");
    // Storage's timestamps: UTC, milliseconds, Z.
    assert_eq!((created["created_at"].as_str(), created["updated_at"].as_str()), (Some(&*row.1), Some(&*row.2)));
    assert!(row.1.ends_with('Z') && row.1.len() == 24, "{}", row.1);
    assert_eq!(created.as_object().map(|o| o.len()), Some(6), "{created}");

    // Duplicates, bad names and bad bodies.
    let r = iceberg(&api, "POST", "/bucket", json!({ "name": "analytics-data" })).await;
    assert_iceberg_error(&r, 409, "BucketAlreadyExists", Some("The resource already exists"));
    for bad in ["ab", "Upper-Case", "under_score", "-dash", "dash-", "a.b.c", &"x".repeat(64)] {
        let r = iceberg(&api, "POST", "/bucket", json!({ "name": bad })).await;
        assert_iceberg_error(&r, 400, "InvalidBucketName", Some("Bucket name invalid"));
    }
    let r = iceberg(&api, "POST", "/bucket", json!({})).await;
    assert_iceberg_error(&r, 400, "InvalidRequest", None);
    let r = iceberg(&api, "POST", "/bucket", json!({ "name": 7 })).await;
    assert_iceberg_error(&r, 400, "InvalidRequest", None);

    // Listing: by name by default, or by a column in either order; limit, offset and search.
    for name in ["zeta-bucket", "beta-bucket", "gamma-logs"] {
        new_bucket(&api, name).await;
    }
    let names = |r: &Reply| -> Vec<String> {
        assert_ok(r, 200).as_array().expect("array").iter().map(|b| b["name"].as_str().unwrap().to_owned()).collect()
    };
    let all = iceberg(&api, "GET", "/bucket", Value::Null).await;
    assert_eq!(names(&all), ["analytics-data", "beta-bucket", "gamma-logs", "zeta-bucket"]);
    let sql: Value = sqlx::query_scalar(
        "select jsonb_agg(jsonb_build_object('id', name, 'name', name, 'type', type, 'format', format, \
         'created_at', to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
         'updated_at', to_char(updated_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) order by name) \
         from storage.buckets_analytics",
    )
    .fetch_one(api.db.pool())
    .await
    .expect("rows");
    assert_eq!(all.json(), sql, "the list is the rows");
    let r = iceberg(&api, "GET", "/bucket?sortColumn=created_at&sortOrder=desc", Value::Null).await;
    assert_eq!(names(&r), ["gamma-logs", "beta-bucket", "zeta-bucket", "analytics-data"]);
    let r = iceberg(&api, "GET", "/bucket?sortColumn=id&sortOrder=desc&limit=2&offset=1", Value::Null).await;
    assert_eq!(names(&r), ["gamma-logs", "beta-bucket"]);
    let r = iceberg(&api, "GET", "/bucket?search=BUCKET", Value::Null).await;
    assert_eq!(names(&r), ["beta-bucket", "zeta-bucket"], "case-insensitive substring");
    let r = iceberg(&api, "GET", "/bucket?search=_", Value::Null).await;
    assert_eq!(names(&r), Vec::<String>::new(), "`_` is literal");
    for bad in ["limit=0", "limit=x", "offset=-1", "sortColumn=owner", "sortOrder=up"] {
        let r = iceberg(&api, "GET", &format!("/bucket?{bad}"), Value::Null).await;
        assert_iceberg_error(&r, 400, "InvalidRequest", None);
    }

    // Deleting.
    let r = iceberg(&api, "DELETE", "/bucket/beta-bucket", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "message": "Successfully deleted" }));
    let r = iceberg(&api, "DELETE", "/bucket/beta-bucket", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchBucket", Some("Bucket not found"));
    let r = iceberg(&api, "GET", "/bucket", Value::Null).await;
    assert_eq!(names(&r), ["analytics-data", "gamma-logs", "zeta-bucket"]);
    // Standard buckets are another list.
    let r = api.service("GET", "/bucket", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!([]));
}

#[tokio::test]
async fn a_bucket_with_namespaces_cannot_be_deleted() {
    let api = api(Backend::Memory).await;
    table_fixture(&api).await;
    let r = iceberg(&api, "DELETE", "/bucket/lake", Value::Null).await;
    assert_iceberg_error(&r, 409, "ResourceNotEmpty", None);
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/ns/tables/events", Value::Null).await;
    assert_ok(&r, 204);
    let r = iceberg(&api, "DELETE", "/bucket/lake", Value::Null).await;
    assert_iceberg_error(&r, 409, "ResourceNotEmpty", None);
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/ns", Value::Null).await;
    assert_ok(&r, 204);
    let r = iceberg(&api, "DELETE", "/bucket/lake", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "message": "Successfully deleted" }));
}

#[tokio::test]
async fn only_the_service_role_may_use_analytics() {
    let api = api(Backend::Memory).await;
    table_fixture(&api).await;
    let user = api.user_token(uuid::Uuid::new_v4());
    let anon = api.anon_key();
    let routes: [(&str, &str, Value); 8] = [
        ("GET", "/bucket", Value::Null),
        ("POST", "/bucket", json!({ "name": "mine" })),
        ("DELETE", "/bucket/lake", Value::Null),
        ("GET", "/v1/config?warehouse=lake", Value::Null),
        ("GET", "/v1/lake/namespaces", Value::Null),
        ("POST", "/v1/lake/namespaces", json!({ "namespace": ["other"] })),
        ("GET", "/v1/lake/namespaces/ns/tables/events", Value::Null),
        ("POST", "/v1/lake/namespaces/ns/tables/events", json!({ "requirements": [], "updates": [] })),
    ];
    for token in [&user, &anon] {
        for (method, path, body) in &routes {
            let r = api.send(method, &format!("/iceberg{path}"), Some(token), body.clone()).await;
            assert_iceberg_error(&r, 403, "AccessDenied", Some("Access denied: Invalid role"));
        }
        let r = api.send("HEAD", "/iceberg/v1/lake/namespaces/ns", Some(token), Value::Null).await;
        assert_eq!((r.status.as_u16(), r.bytes.len()), (403, 0), "HEAD has no body");
    }
    let r = api.send("GET", "/iceberg/bucket", Some("not-a-jwt"), Value::Null).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string());
    // Nothing was changed, and the API roles cannot reach the tables in SQL either.
    let buckets: Vec<String> =
        sqlx::query_scalar("select name from storage.buckets_analytics").fetch_all(api.db.pool()).await.unwrap();
    assert_eq!(buckets, ["lake"]);
    for role in ["anon", "authenticated"] {
        for table in ["buckets_analytics", "iceberg_namespaces", "iceberg_tables"] {
            let mut tx = api.db.pool().begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("set local role {role}"))).execute(&mut *tx).await.unwrap();
            let e = sqlx::query(sqlx::AssertSqlSafe(format!("select 1 from storage.{table}")))
                .execute(&mut *tx)
                .await
                .expect_err("no grant");
            assert_eq!(e.as_database_error().and_then(|d| d.code()).as_deref(), Some("42501"), "{role} {table}");
        }
    }
}

// ------------------------------------------------------------------------------ catalog

#[tokio::test]
async fn the_config_names_the_warehouse_as_prefix() {
    let api = api(Backend::Memory).await;
    new_bucket(&api, "lake").await;
    let r = iceberg(&api, "GET", "/v1/config?warehouse=lake", Value::Null).await;
    let config = assert_ok(&r, 200);
    assert_eq!(config["defaults"], json!({}));
    assert_eq!(config["overrides"], json!({ "prefix": "lake" }));
    let endpoints = config["endpoints"].as_array().expect("endpoints");
    assert!(endpoints.contains(&json!("POST /v1/{prefix}/namespaces/{namespace}/tables/{table}")));
    assert!(endpoints.contains(&json!("HEAD /v1/{prefix}/namespaces/{namespace}")));
    let r = iceberg(&api, "GET", "/v1/config", Value::Null).await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);
    let r = iceberg(&api, "GET", "/v1/config?warehouse=nope", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchWarehouseException", Some("Analytics bucket does not exist: nope"));
    let r = iceberg(&api, "GET", "/v1/nope/namespaces", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchWarehouseException", None);
}

#[tokio::test]
async fn namespaces_nest_page_and_refuse_to_drop_while_not_empty() {
    let api = api(Backend::Memory).await;
    new_bucket(&api, "lake").await;
    new_bucket(&api, "other").await;

    let r = iceberg(
        &api,
        "POST",
        "/v1/lake/namespaces",
        json!({ "namespace": ["sales"], "properties": { "owner": "data-team" } }),
    )
    .await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespace": ["sales"], "properties": { "owner": "data-team" } }));
    let r = iceberg(&api, "POST", "/v1/lake/namespaces", json!({ "namespace": ["sales"] })).await;
    assert_iceberg_error(&r, 409, "AlreadyExistsException", Some("Namespace already exists: sales"));
    // Same name in another warehouse is another namespace.
    new_namespace(&api, "other", &["sales"]).await;
    // Nested: the parent must exist.
    let r = iceberg(&api, "POST", "/v1/lake/namespaces", json!({ "namespace": ["sales", "eu"] })).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespace": ["sales", "eu"], "properties": {} }));
    let r = iceberg(&api, "POST", "/v1/lake/namespaces", json!({ "namespace": ["hr", "eu"] })).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", Some("Namespace does not exist: hr"));
    for bad in
        [json!({ "namespace": [] }), json!({ "namespace": ["Sales"] }), json!({ "namespace": ["a b"] }), json!({})]
    {
        let r = iceberg(&api, "POST", "/v1/lake/namespaces", bad.clone()).await;
        assert_iceberg_error(&r, 400, "BadRequestException", None);
    }
    let r = iceberg(&api, "POST", "/v1/lake/namespaces", json!({ "namespace": ["x"], "properties": { "n": 1 } })).await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);
    for name in ["marketing", "analytics", "zz"] {
        new_namespace(&api, "lake", &[name]).await;
    }
    new_namespace(&api, "lake", &["sales", "us"]).await;
    new_namespace(&api, "lake", &["sales", "eu", "de"]).await;

    // Listing: top level, children of a parent, pages.
    let r = iceberg(&api, "GET", "/v1/lake/namespaces", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespaces": [["analytics"], ["marketing"], ["sales"], ["zz"]] }));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces?parent=sales", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespaces": [["sales", "eu"], ["sales", "us"]] }));
    let r = iceberg(&api, "GET", &format!("/v1/lake/namespaces?parent={}", ns(&["sales", "eu"])), Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespaces": [["sales", "eu", "de"]] }));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces?parent=nope", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", None);
    let r = iceberg(&api, "GET", "/v1/lake/namespaces?pageSize=3", Value::Null).await;
    let first = assert_ok(&r, 200);
    assert_eq!(first, json!({ "namespaces": [["analytics"], ["marketing"], ["sales"]], "next-page-token": "sales" }));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces?pageSize=3&pageToken=sales", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespaces": [["zz"]] }));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces?pageSize=0", Value::Null).await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);

    // Load, exists, properties.
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/sales", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespace": ["sales"], "properties": { "owner": "data-team" } }));
    let r = iceberg(&api, "GET", &format!("/v1/lake/namespaces/{}", ns(&["sales", "eu", "de"])), Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespace": ["sales", "eu", "de"], "properties": {} }));
    let r = iceberg(&api, "HEAD", &format!("/v1/lake/namespaces/{}", ns(&["sales", "us"])), Value::Null).await;
    assert_eq!((r.status.as_u16(), r.bytes.len()), (204, 0));
    let r = iceberg(&api, "HEAD", &format!("/v1/lake/namespaces/{}", ns(&["sales", "fr"])), Value::Null).await;
    assert_eq!((r.status.as_u16(), r.bytes.len()), (404, 0));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/nope", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", Some("Namespace does not exist: nope"));
    let r = iceberg(
        &api,
        "POST",
        "/v1/lake/namespaces/sales/properties",
        json!({ "removals": ["owner", "absent"], "updates": { "env": "prod" } }),
    )
    .await;
    assert_eq!(assert_ok(&r, 200), json!({ "updated": ["env"], "removed": ["owner"], "missing": ["absent"] }));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/sales", Value::Null).await;
    assert_eq!(assert_ok(&r, 200)["properties"], json!({ "env": "prod" }));
    let r = iceberg(
        &api,
        "POST",
        "/v1/lake/namespaces/sales/properties",
        json!({ "removals": ["env"], "updates": { "env": "dev" } }),
    )
    .await;
    assert_iceberg_error(&r, 422, "UnprocessableEntityException", None);

    // Drops: not while it has child namespaces or tables.
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/sales", Value::Null).await;
    assert_iceberg_error(
        &r,
        409,
        "NamespaceNotEmptyException",
        Some("Namespace sales is not empty: it still has tables or namespaces"),
    );
    let r = iceberg(
        &api,
        "POST",
        "/v1/lake/namespaces/marketing/tables",
        json!({ "name": "t", "schema": {
        "type": "struct", "fields": [{ "id": 1, "name": "a", "type": "int", "required": false }] } }),
    )
    .await;
    assert_ok(&r, 200);
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/marketing", Value::Null).await;
    assert_iceberg_error(&r, 409, "NamespaceNotEmptyException", None);
    for levels in [&["sales", "eu", "de"][..], &["sales", "eu"], &["sales", "us"], &["sales"]] {
        let r = iceberg(&api, "DELETE", &format!("/v1/lake/namespaces/{}", ns(levels)), Value::Null).await;
        assert_eq!((r.status.as_u16(), r.bytes.len()), (204, 0), "{levels:?}");
    }
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/sales", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", None);
    let left: Vec<Vec<String>> = sqlx::query_scalar(
        "select n.levels from storage.iceberg_namespaces n join storage.buckets_analytics b on b.id = n.catalog_id \
         where b.name = 'lake' order by n.levels",
    )
    .fetch_all(api.db.pool())
    .await
    .unwrap();
    assert_eq!(left, [vec!["analytics"], vec!["marketing"], vec!["zz"]]);
    let r = iceberg(&api, "GET", "/v1/other/namespaces", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "namespaces": [["sales"]] }));
}

#[tokio::test]
async fn tables_are_created_with_fresh_ids_listed_loaded_renamed_and_dropped() {
    let api = api(Backend::Memory).await;
    let created = table_fixture(&api).await;
    let location = created["metadata-location"].as_str().expect("metadata-location");
    assert!(location.starts_with("s3://lake/ns/events/metadata/00000-"), "{location}");
    assert!(location.ends_with(".metadata.json"), "{location}");
    assert_eq!(created["config"], json!({}));
    let meta = &created["metadata"];
    assert_eq!(meta["format-version"], 2);
    assert!(uuid::Uuid::parse_str(meta["table-uuid"].as_str().unwrap()).is_ok());
    assert_eq!(meta["location"], "s3://lake/ns/events");
    assert_eq!(meta["last-sequence-number"], 0);
    assert!(meta["last-updated-ms"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(meta["last-column-id"], 3);
    assert_eq!(meta["current-schema-id"], 0);
    assert_eq!(
        meta["schemas"],
        json!([{ "type": "struct", "schema-id": 0, "identifier-field-ids": [1], "fields": [
            { "id": 1, "name": "id", "type": "long", "required": true },
            { "id": 2, "name": "ts", "type": "timestamptz", "required": true },
            { "id": 3, "name": "user_id", "type": "string", "required": false },
        ]}])
    );
    assert_eq!(
        meta["partition-specs"],
        json!([{ "spec-id": 0, "fields": [{ "name": "ts_day", "transform": "day", "source-id": 2, "field-id": 1000 }] }])
    );
    assert_eq!((meta["default-spec-id"].clone(), meta["last-partition-id"].clone()), (json!(0), json!(1000)));
    assert_eq!(meta["sort-orders"], json!([{ "order-id": 0, "fields": [] }]));
    assert_eq!(meta["default-sort-order-id"], 0);
    assert_eq!(meta["properties"], json!({ "write.format.default": "parquet" }));
    assert_eq!(meta["current-snapshot-id"], -1);
    for empty in ["snapshots", "snapshot-log", "metadata-log"] {
        assert_eq!(meta[empty], json!([]), "{empty}");
    }
    assert_eq!(meta["refs"], json!({}));
    let (version, stored_location) = stored_version(&api).await;
    assert_eq!((version, stored_location.as_str()), (0, location));

    // Load and exists answer what was stored.
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/ns/tables/events", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), created);
    let r = iceberg(&api, "HEAD", "/v1/lake/namespaces/ns/tables/events", Value::Null).await;
    assert_eq!((r.status.as_u16(), r.bytes.len()), (204, 0));
    let r = iceberg(&api, "HEAD", "/v1/lake/namespaces/ns/tables/nope", Value::Null).await;
    assert_eq!((r.status.as_u16(), r.bytes.len()), (404, 0));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/ns/tables/nope", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchTableException", Some("Table does not exist: ns.nope"));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/gone/tables/events", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", None);

    // Errors on create.
    let r = iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables", events_table()).await;
    assert_iceberg_error(&r, 409, "AlreadyExistsException", Some("Table already exists: ns.events"));
    let r = iceberg(&api, "POST", "/v1/lake/namespaces/gone/tables", events_table()).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", None);
    let mut bad_name = events_table();
    bad_name["name"] = json!("Events!");
    let r = iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables", bad_name).await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);
    let r = iceberg(
        &api,
        "POST",
        "/v1/lake/namespaces/ns/tables",
        json!({ "name": "x", "schema": {
        "type": "struct", "fields": [{ "id": 1, "name": "a", "type": "varchar", "required": true }] } }),
    )
    .await;
    assert_iceberg_error(&r, 400, "BadRequestException", Some("Unsupported type: varchar"));
    let r = iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables", json!({ "name": "x" })).await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);

    // A staged create is answered and not stored; an explicit location is kept.
    let mut staged = events_table();
    staged["name"] = json!("staged");
    staged["stage-create"] = json!(true);
    staged["location"] = json!("s3://elsewhere/staged/");
    let r = iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables", staged).await;
    let body = assert_ok(&r, 200);
    assert_eq!(
        (body["metadata-location"].clone(), body["metadata"]["location"].clone()),
        (Value::Null, json!("s3://elsewhere/staged"))
    );

    // Listing, with pages.
    for name in ["alpha", "zulu"] {
        let mut t = events_table();
        t["name"] = json!(name);
        assert_ok(&iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables", t).await, 200);
    }
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/ns/tables", Value::Null).await;
    assert_eq!(
        assert_ok(&r, 200),
        json!({ "identifiers": [
            { "namespace": ["ns"], "name": "alpha" },
            { "namespace": ["ns"], "name": "events" },
            { "namespace": ["ns"], "name": "zulu" },
        ]})
    );
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/ns/tables?pageSize=2", Value::Null).await;
    assert_eq!(assert_ok(&r, 200)["next-page-token"], "events");
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/ns/tables?pageSize=2&pageToken=events", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "identifiers": [{ "namespace": ["ns"], "name": "zulu" }] }));

    // Rename into another namespace.
    new_namespace(&api, "lake", &["archive"]).await;
    let rename = |from: &str, to_ns: &str, to: &str| json!({ "source": { "namespace": ["ns"], "name": from }, "destination": { "namespace": [to_ns], "name": to } });
    let r = iceberg(&api, "POST", "/v1/lake/tables/rename", rename("alpha", "archive", "alpha_2024")).await;
    assert_eq!((r.status.as_u16(), r.bytes.len()), (204, 0));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/archive/tables", Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "identifiers": [{ "namespace": ["archive"], "name": "alpha_2024" }] }));
    let r = iceberg(&api, "POST", "/v1/lake/tables/rename", rename("alpha", "archive", "x")).await;
    assert_iceberg_error(&r, 404, "NoSuchTableException", None);
    let r = iceberg(&api, "POST", "/v1/lake/tables/rename", rename("zulu", "nope", "x")).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", None);
    let r = iceberg(&api, "POST", "/v1/lake/tables/rename", rename("zulu", "ns", "events")).await;
    assert_iceberg_error(&r, 409, "AlreadyExistsException", None);

    // Drops.
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/ns/tables/zulu?purgeRequested=true", Value::Null).await;
    assert_eq!((r.status.as_u16(), r.bytes.len()), (204, 0));
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/ns/tables/zulu", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchTableException", None);
    let names: Vec<String> = sqlx::query_scalar("select name from storage.iceberg_tables order by name")
        .fetch_all(api.db.pool())
        .await
        .unwrap();
    assert_eq!(names, ["alpha_2024", "events"]);
    let r =
        iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables/events/metrics", json!({ "report-type": "scan-report" }))
            .await;
    assert_eq!(r.status, 204);
}

// ------------------------------------------------------------------------------ commits

fn snapshot(id: i64, parent: Option<i64>, sequence: i64) -> Value {
    json!({
        "snapshot-id": id, "parent-snapshot-id": parent, "sequence-number": sequence,
        "timestamp-ms": 1_700_000_000_000i64 + id, "manifest-list": format!("s3://lake/ns/events/metadata/snap-{id}.avro"),
        "summary": { "operation": "append", "added-records": "10" }, "schema-id": 0,
    })
}

#[tokio::test]
async fn commits_check_requirements_and_apply_updates() {
    let api = api(Backend::Memory).await;
    let created = table_fixture(&api).await;
    let uuid = created["metadata"]["table-uuid"].clone();
    let first_location = created["metadata-location"].clone();
    let path = "/v1/lake/namespaces/ns/tables/events";

    let r = iceberg(
        &api,
        "POST",
        path,
        json!({
            "identifier": { "namespace": ["ns"], "name": "events" },
            "requirements": [
                { "type": "assert-table-uuid", "uuid": uuid },
                { "type": "assert-current-schema-id", "current-schema-id": 0 },
                { "type": "assert-last-assigned-field-id", "last-assigned-field-id": 3 },
                { "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null },
                { "type": "assert-default-spec-id", "default-spec-id": 0 },
                { "type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 1000 },
                { "type": "assert-default-sort-order-id", "default-sort-order-id": 0 },
            ],
            "updates": [
                { "action": "add-schema", "schema": { "type": "struct", "schema-id": 1, "fields": [
                    { "id": 1, "name": "id", "type": "long", "required": true },
                    { "id": 2, "name": "ts", "type": "timestamptz", "required": true },
                    { "id": 3, "name": "user_id", "type": "string", "required": false },
                    { "id": 4, "name": "country", "type": "string", "required": false },
                ]}},
                { "action": "set-current-schema", "schema-id": -1 },
                { "action": "set-properties", "updates": { "owner": "data-team" } },
                { "action": "add-snapshot", "snapshot": snapshot(101, None, 1) },
                { "action": "set-snapshot-ref", "ref-name": "main", "snapshot-id": 101, "type": "branch" },
            ],
        }),
    )
    .await;
    let committed = assert_ok(&r, 200);
    assert_eq!(committed.as_object().map(|o| o.len()), Some(2), "metadata-location and metadata");
    let location = committed["metadata-location"].as_str().unwrap().to_owned();
    assert!(location.starts_with("s3://lake/ns/events/metadata/00001-"), "{location}");
    let meta = &committed["metadata"];
    assert_eq!((meta["current-schema-id"].clone(), meta["last-column-id"].clone()), (json!(1), json!(4)));
    assert_eq!(meta["schemas"].as_array().unwrap().len(), 2);
    assert_eq!(meta["properties"], json!({ "write.format.default": "parquet", "owner": "data-team" }));
    assert_eq!(meta["current-snapshot-id"], 101);
    assert_eq!(meta["refs"], json!({ "main": { "snapshot-id": 101, "type": "branch" } }));
    assert_eq!(meta["snapshots"], json!([snapshot(101, None, 1)]));
    assert_eq!(meta["last-sequence-number"], 1);
    assert_eq!(meta["snapshot-log"], json!([{ "snapshot-id": 101, "timestamp-ms": 1_700_000_000_101i64 }]));
    assert_eq!(
        meta["metadata-log"],
        json!([{ "metadata-file": first_location, "timestamp-ms": created["metadata"]["last-updated-ms"] }])
    );
    assert_eq!(stored_version(&api).await, (1, location.clone()));
    let r = iceberg(&api, "GET", path, Value::Null).await;
    assert_eq!(assert_ok(&r, 200), json!({ "metadata-location": location, "metadata": meta, "config": {} }));

    // Failing requirements: 409, nothing written.
    for (requirement, message) in [
        (
            json!({ "type": "assert-current-schema-id", "current-schema-id": 0 }),
            "Requirement failed: current schema changed: expected id 0 != 1",
        ),
        (
            json!({ "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null }),
            "Requirement failed: branch or tag main was created concurrently",
        ),
        (
            json!({ "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 7 }),
            "Requirement failed: branch or tag main has changed: expected id 7 != 101",
        ),
        (json!({ "type": "assert-table-uuid", "uuid": "00000000-0000-4000-8000-000000000000" }), ""),
        (json!({ "type": "assert-last-assigned-field-id", "last-assigned-field-id": 3 }), ""),
        (json!({ "type": "assert-create" }), "Requirement failed: table already exists"),
    ] {
        let body = json!({ "requirements": [requirement], "updates": [{ "action": "set-properties", "updates": { "x": "y" } }] });
        let r = iceberg(&api, "POST", path, body).await;
        assert_iceberg_error(&r, 409, "CommitFailedException", (!message.is_empty()).then_some(message));
    }
    // Updates that cannot apply: 400, nothing written.
    for update in [
        json!({ "action": "set-current-schema", "schema-id": 9 }),
        json!({ "action": "set-snapshot-ref", "ref-name": "main", "snapshot-id": 999, "type": "branch" }),
        json!({ "action": "add-snapshot", "snapshot": snapshot(101, None, 2) }),
        json!({ "action": "add-view-version" }),
    ] {
        let r = iceberg(&api, "POST", path, json!({ "requirements": [], "updates": [update] })).await;
        assert_iceberg_error(&r, 400, "BadRequestException", None);
    }
    let r = iceberg(&api, "POST", path, json!({ "requirements": [{ "type": "assert-bogus" }], "updates": [] })).await;
    assert_iceberg_error(&r, 400, "BadRequestException", Some("Unknown requirement type: assert-bogus"));
    let r = iceberg(&api, "POST", path, json!({ "requirements": {}, "updates": [] })).await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);
    assert_eq!(stored_version(&api).await, (1, location.clone()), "no refused commit wrote");

    // A commit that changes nothing writes no new version.
    let r = iceberg(
        &api,
        "POST",
        path,
        json!({ "requirements": [], "updates": [
            { "action": "set-properties", "updates": { "owner": "data-team" } },
        ]}),
    )
    .await;
    assert_eq!(assert_ok(&r, 200)["metadata-location"], location.as_str());
    // iceberg-js's updateTable shorthand.
    let r = iceberg(&api, "POST", path, json!({ "properties": { "retention": "30d" } })).await;
    let body = assert_ok(&r, 200);
    assert_eq!(body["metadata"]["properties"]["retention"], "30d");
    assert_eq!(stored_version(&api).await.0, 2);
    // Removing the branch.
    let r = iceberg(
        &api,
        "POST",
        path,
        json!({ "requirements": [], "updates": [
            { "action": "remove-snapshot-ref", "ref-name": "main" },
            { "action": "remove-snapshots", "snapshot-ids": [101] },
            { "action": "remove-properties", "removals": ["retention"] },
        ]}),
    )
    .await;
    let meta = assert_ok(&r, 200)["metadata"].clone();
    assert_eq!(
        (meta["current-snapshot-id"].clone(), meta["snapshots"].clone(), meta["refs"].clone()),
        (json!(-1), json!([]), json!({}))
    );
    assert_eq!(meta["metadata-log"].as_array().unwrap().len(), 3);

    // Commits to missing tables, and a create transaction.
    let r =
        iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables/nope", json!({ "requirements": [], "updates": [] })).await;
    assert_iceberg_error(&r, 404, "NoSuchTableException", None);
    let create = json!({
        "requirements": [{ "type": "assert-create" }],
        "updates": [
            { "action": "assign-uuid", "uuid": "9f0c8a52-7c3b-4b8e-9d8f-2f0a6e1c3b5d" },
            { "action": "upgrade-format-version", "format-version": 2 },
            { "action": "add-schema", "schema": { "type": "struct", "schema-id": 0, "fields": [
                { "id": 1, "name": "a", "type": "int", "required": false },
            ]}},
            { "action": "set-current-schema", "schema-id": -1 },
            { "action": "add-spec", "spec": { "spec-id": 0, "fields": [] } },
            { "action": "set-default-spec", "spec-id": -1 },
            { "action": "add-sort-order", "sort-order": { "order-id": 0, "fields": [] } },
            { "action": "set-default-sort-order", "sort-order-id": -1 },
            { "action": "set-properties", "updates": { "created-by": "pyiceberg" } },
        ],
    });
    let r = iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables/fresh", create.clone()).await;
    let body = assert_ok(&r, 200);
    assert_eq!(body["metadata"]["table-uuid"], "9f0c8a52-7c3b-4b8e-9d8f-2f0a6e1c3b5d");
    assert!(body["metadata-location"].as_str().unwrap().starts_with("s3://lake/ns/fresh/metadata/00000-"));
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/ns/tables/fresh", Value::Null).await;
    assert_eq!(assert_ok(&r, 200)["metadata"], body["metadata"]);
    let r = iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables/fresh", create).await;
    assert_iceberg_error(&r, 409, "CommitFailedException", Some("Requirement failed: table already exists"));
    let r = iceberg(
        &api,
        "POST",
        "/v1/lake/namespaces/ns/tables/incomplete",
        json!({
        "requirements": [{ "type": "assert-create" }], "updates": [] }),
    )
    .await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);
}

#[tokio::test]
async fn of_concurrent_commits_against_the_same_metadata_exactly_one_wins() {
    let api = api(Backend::Memory).await;
    table_fixture(&api).await;
    let path = "/v1/lake/namespaces/ns/tables/events";
    let commit = |i: i64| {
        json!({
            "requirements": [{ "type": "assert-current-schema-id", "current-schema-id": 0 }],
            "updates": [
                { "action": "add-schema", "schema": { "type": "struct", "fields": [
                    { "id": 1, "name": "id", "type": "long", "required": true },
                    { "id": 100 + i, "name": format!("extra_{i}"), "type": "string", "required": false },
                ]}},
                { "action": "set-current-schema", "schema-id": -1 },
            ],
        })
    };
    let replies = join_all((0..8).map(|i| iceberg(&api, "POST", path, commit(i)))).await;
    let winners: Vec<usize> = (0..8).filter(|i| replies[*i].status == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    for (i, r) in replies.iter().enumerate() {
        if i != winners[0] {
            assert_iceberg_error(
                r,
                409,
                "CommitFailedException",
                Some("Requirement failed: current schema changed: expected id 0 != 1"),
            );
        }
    }
    let winner = winners[0] as i64;
    let r = iceberg(&api, "GET", path, Value::Null).await;
    let meta = assert_ok(&r, 200)["metadata"].clone();
    assert_eq!(meta["schemas"].as_array().unwrap().len(), 2, "one schema was added");
    assert_eq!(meta["schemas"][1]["fields"][1]["name"], format!("extra_{winner}"));
    assert_eq!(stored_version(&api).await.0, 1);
}

#[tokio::test]
async fn a_commit_waits_for_the_row_lock_and_then_sees_the_winner() {
    let api = api(Backend::Memory).await;
    table_fixture(&api).await;
    let path = "/v1/lake/namespaces/ns/tables/events";
    let append = |id: i64| {
        json!({
            "requirements": [{ "type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null }],
            "updates": [
                { "action": "add-snapshot", "snapshot": snapshot(id, None, 1) },
                { "action": "set-snapshot-ref", "ref-name": "main", "snapshot-id": id, "type": "branch" },
            ],
        })
    };
    // Hold the table's row so that both commits are waiting for it when it is released.
    let mut holder = api.db.pool().begin().await.unwrap();
    sqlx::query("select 1 from storage.iceberg_tables where name = 'events' for update")
        .execute(&mut *holder)
        .await
        .unwrap();
    let release = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
            )
            .fetch_one(api.db.pool())
            .await
            .unwrap();
            if waiting == 2 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the commits never waited for the lock ({waiting})");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        holder.commit().await.unwrap();
    };
    let (a, b, ()) =
        tokio::join!(iceberg(&api, "POST", path, append(1)), iceberg(&api, "POST", path, append(2)), release);
    let (winner, loser, id) = match (a.status.as_u16(), b.status.as_u16()) {
        (200, 409) => (a, b, 1),
        (409, 200) => (b, a, 2),
        other => panic!("expected exactly one winner, got {other:?}: {} / {}", a.text(), b.text()),
    };
    assert_eq!(winner.json()["metadata"]["current-snapshot-id"], id);
    assert_iceberg_error(
        &loser,
        409,
        "CommitFailedException",
        Some("Requirement failed: branch or tag main was created concurrently"),
    );
    let r = iceberg(&api, "GET", path, Value::Null).await;
    let meta = assert_ok(&r, 200)["metadata"].clone();
    assert_eq!((meta["current-snapshot-id"].clone(), meta["snapshots"].as_array().unwrap().len()), (json!(id), 1));
    assert_eq!(stored_version(&api).await.0, 1);
}

#[tokio::test]
async fn hostile_ids_depths_nuls_and_refusals_are_clean_400s() {
    let api = api(Backend::Memory).await;
    table_fixture(&api).await;
    // Ids are positive 32-bit ints: one past them, or an id that would wrap, is refused.
    for field in [
        json!({ "source-id": 10, "field-id": 9_223_372_036_854_775_807_i64, "name": "big", "transform": "identity" }),
        json!({ "source-id": 2_147_483_648_i64, "name": "wide", "transform": "identity" }),
    ] {
        let commit =
            json!({ "requirements": [], "updates": [{ "action": "add-spec", "spec": { "fields": [field] } }] });
        let r = iceberg(&api, "POST", "/v1/lake/namespaces/ns/tables/events", commit).await;
        assert_iceberg_error(&r, 400, "BadRequestException", None);
    }
    let (version, _) = stored_version(&api).await;
    assert_eq!(version, 0, "nothing was committed");

    // At most eight levels.
    let deep: Vec<String> = (0..9).map(|i| format!("l{i}")).collect();
    let r = iceberg(&api, "POST", "/v1/lake/namespaces", json!({ "namespace": deep })).await;
    assert_iceberg_error(&r, 400, "BadRequestException", Some("A namespace has 1 to 8 levels"));

    // Postgres keeps no NUL character: a clean 400, not a 500.
    let r =
        iceberg(&api, "POST", "/v1/lake/namespaces", json!({ "namespace": ["p"], "properties": { "k": "a\u{0}b" } }))
            .await;
    assert_iceberg_error(&r, 400, "InvalidParameter", None);

    // axum's own refusals come in the Iceberg model too.
    let r = iceberg(&api, "GET", "/v1/lake/namespaces/%FF/tables", Value::Null).await;
    assert_iceberg_error(&r, 400, "BadRequestException", None);
    let big = "x".repeat(9 << 20);
    let r =
        iceberg(&api, "POST", "/v1/lake/namespaces", json!({ "namespace": ["q"], "properties": { "k": big } })).await;
    assert_iceberg_error(&r, 413, "RequestTooLargeException", None);

    // A namespace dropped once is gone the second time.
    new_namespace(&api, "lake", &["gone"]).await;
    assert_ok(&iceberg(&api, "DELETE", "/v1/lake/namespaces/gone", Value::Null).await, 204);
    let r = iceberg(&api, "DELETE", "/v1/lake/namespaces/gone", Value::Null).await;
    assert_iceberg_error(&r, 404, "NoSuchNamespaceException", None);
}
