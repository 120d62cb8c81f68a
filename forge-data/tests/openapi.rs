//! The OpenAPI root document.

mod common;

use common::api;

const SCHEMA: &str = r#"
create table authors (id int primary key, name text not null, bio text);
comment on table authors is 'People who write';
create table books (id int generated always as identity primary key, title text not null,
                    author_id int references authors(id), tags text[], price numeric default 0);
create view titles as select id, title from books;
create function book_count(author int) returns int language sql stable as $$ select count(*)::int from books where author_id = author $$;
create function touch() returns void language sql as $$ select 1 $$;
create schema extra;
create table extra.notes (id int);
"#;

#[tokio::test]
async fn the_root_describes_tables_views_and_functions() {
    let api = api(SCHEMA).await;
    let res = api.get("/rest/v1/").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.header("content-type").expect("content type").starts_with("application/openapi+json"));
    let doc = res.json();
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["basePath"], "/rest/v1");
    let paths = doc["paths"].as_object().expect("paths");
    for p in ["/", "/authors", "/books", "/titles", "/rpc/book_count", "/rpc/touch"] {
        assert!(paths.contains_key(p), "missing {p}: {:?}", paths.keys().collect::<Vec<_>>());
    }
    assert!(!paths.contains_key("/notes"), "other schemas are not in the default document");
    // Writable tables get write operations; a stable function can be called with GET, a
    // volatile one only with POST.
    assert!(doc["paths"]["/books"]["post"].is_object() && doc["paths"]["/books"]["delete"].is_object());
    assert!(doc["paths"]["/rpc/book_count"]["get"].is_object());
    assert!(doc["paths"]["/rpc/touch"]["get"].is_null());

    let books = &doc["definitions"]["books"];
    assert_eq!(books["properties"]["id"]["type"], "integer");
    assert!(books["properties"]["id"]["description"].as_str().expect("pk note").contains("Primary Key"));
    assert!(books["properties"]["author_id"]["description"].as_str().expect("fk note").contains("authors.id"));
    assert_eq!(books["properties"]["tags"]["type"], "array");
    assert_eq!(books["properties"]["price"]["type"], "number");
    assert_eq!(books["required"], serde_json::json!(["title"]), "identity and defaulted columns are optional");
    assert_eq!(doc["definitions"]["authors"]["description"], "People who write");
}

#[tokio::test]
async fn profiles_switch_schema_and_unknown_ones_are_refused() {
    let api = api(SCHEMA).await;
    let res = api.send("GET", "/rest/v1/", &[("accept-profile", "nope")], "").await;
    assert_eq!(res.status, 406);
    let body = res.json();
    assert_eq!(body["code"], "PGRST106");
    assert_eq!(body["message"], "Invalid schema: nope");
    assert_eq!(body["hint"], "Only the following schemas are exposed: public");
    assert_eq!(res.header("proxy-status"), Some("PostgREST; error=PGRST106"));
    // The explicit default works like no header.
    let res = api.send("GET", "/rest/v1/", &[("accept-profile", "public")], "").await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn the_root_needs_an_api_key() {
    let api = api(SCHEMA).await;
    let res = api.send("GET", "/rest/v1/", &[("apikey", "sb_publishable_wrong")], "").await;
    assert_eq!(res.status, 401);
    assert_eq!(res.json()["code"], "PGRST301");
}
