//! `/rpc/{function}` against a real Postgres: argument passing, each return shape,
//! overloads, and errors.

mod common;

use common::api;
use serde_json::json;

const SCHEMA: &str = r#"
create table items (id int primary key, name text not null, price numeric not null, tags text[]);
insert into items values (1, 'pen', 2.5, '{office}'), (2, 'book', 12, '{office,paper}'), (3, 'mug', 8, '{kitchen}');
create function add(a int, b int default 10) returns int language sql immutable as $$ select a + b $$;
create function cheaper_than(max_price numeric) returns setof items language sql stable as $$ select * from items where price < max_price $$;
create function totals() returns table (tag text, n bigint) language sql stable as $$ select unnest(tags), count(*) from items group by 1 $$;
create function squares(n int) returns setof int language sql immutable as $$ select g * g from generate_series(1, n) g $$;
create function cheapest() returns items language sql stable as $$ select * from items order by price limit 1 $$;
create function echo(jsonb) returns jsonb language sql immutable as $$ select $1 $$;
create function total_of(ids int[]) returns numeric language sql stable as $$ select sum(price) from items where id = any(ids) $$;
create function tally(variadic xs int[]) returns int language sql immutable as $$ select coalesce(sum(x), 0)::int from unnest(xs) x $$;
create table hits (n int);
create function bump() returns void language sql as $$ insert into hits values (1) $$;
create function fail() returns int language plpgsql as $$ begin raise exception 'nope' using hint = 'try again'; end $$;
create function same(x int) returns int language sql as $$ select x $$;
create function same(x text) returns text language sql as $$ select x $$;
"#;

fn json_post() -> [(&'static str, &'static str); 1] {
    [("content-type", "application/json")]
}

#[tokio::test]
async fn scalars_defaults_and_get() {
    let api = api(SCHEMA).await;
    let res = api.send("POST", "/rest/v1/rpc/add", &json_post(), r#"{"a":1,"b":2}"#).await;
    assert_eq!((res.status.as_u16(), res.body.as_str()), (200, "3"));
    let res = api.send("POST", "/rest/v1/rpc/add", &json_post(), r#"{"a":1}"#).await;
    assert_eq!(res.body, "11", "an argument with a default may be omitted");
    let res = api.get("/rest/v1/rpc/add?a=5&b=6").await;
    assert_eq!((res.status.as_u16(), res.body.as_str()), (200, "11"));
    let res = api.send("POST", "/rest/v1/rpc/total_of", &json_post(), r#"{"ids":[1,3]}"#).await;
    assert_eq!(res.json(), json!(10.5));
    let res = api.get("/rest/v1/rpc/total_of?ids=%7B1,2%7D").await;
    assert_eq!(res.json(), json!(14.5));
    let res = api.send("POST", "/rest/v1/rpc/tally", &json_post(), r#"{"xs":[1,2,3]}"#).await;
    assert_eq!(res.body, "6");
    let res = api.send("POST", "/rest/v1/rpc/echo", &json_post(), r#"{"any":["json",1]}"#).await;
    assert_eq!(res.json(), json!({"any": ["json", 1]}), "a single unnamed jsonb argument takes the whole body");
}

#[tokio::test]
async fn sets_tables_and_composites() {
    let api = api(SCHEMA).await;
    // setof a table: select, filters, order and limit apply to the result.
    let res = api
        .send("POST", "/rest/v1/rpc/cheaper_than?select=name&order=price.desc", &json_post(), r#"{"max_price":10}"#)
        .await;
    assert_eq!(res.json(), json!([{"name": "mug"}, {"name": "pen"}]));
    let res = api.get("/rest/v1/rpc/cheaper_than?max_price=100&select=id&tags=cs.%7Boffice%7D&order=id&limit=1").await;
    assert_eq!(res.json(), json!([{"id": 1}]));
    let res =
        api.send("GET", "/rest/v1/rpc/cheaper_than?max_price=100&select=id", &[("prefer", "count=exact")], "").await;
    assert_eq!(res.header("content-range"), Some("0-2/3"));
    let res = api
        .send(
            "GET",
            "/rest/v1/rpc/cheaper_than?max_price=9&select=name",
            &[("accept", "application/vnd.pgrst.object+json")],
            "",
        )
        .await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (406, Some("PGRST116")));
    // RETURNS TABLE columns.
    let res = api.get("/rest/v1/rpc/totals?select=tag,n&order=tag&tag=neq.paper").await;
    assert_eq!(res.json(), json!([{"tag": "kitchen", "n": 1}, {"tag": "office", "n": 2}]));
    // setof a scalar, and one composite.
    let res = api.get("/rest/v1/rpc/squares?n=3").await;
    assert_eq!(res.json(), json!([1, 4, 9]));
    let res = api.send("POST", "/rest/v1/rpc/cheapest", &json_post(), "").await;
    assert_eq!(res.json(), json!({"id": 1, "name": "pen", "price": 2.5, "tags": ["office"]}));
}

#[tokio::test]
async fn void_volatility_and_errors() {
    let api = api(SCHEMA).await;
    let res = api.send("POST", "/rest/v1/rpc/bump", &json_post(), "{}").await;
    assert_eq!((res.status.as_u16(), res.body.as_str()), (204, ""));
    let n: i64 = sqlx::query_scalar("select count(*) from hits").fetch_one(api.db.pool()).await.expect("count");
    assert_eq!(n, 1);
    // A writing function called with GET runs read-only: Postgres refuses, 405.
    let res = api.get("/rest/v1/rpc/bump").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (405, Some("25006")));
    let res = api.send("POST", "/rest/v1/rpc/fail", &json_post(), "{}").await;
    let err = res.json();
    assert_eq!(
        (res.status.as_u16(), err["code"].as_str(), err["hint"].as_str()),
        (400, Some("P0001"), Some("try again"))
    );
    assert_eq!(err["message"], "nope");
    let res = api.send("POST", "/rest/v1/rpc/nothing", &json_post(), r#"{"a":1}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (404, Some("PGRST202")));
    assert_eq!(res.json()["message"], "Could not find the function public.nothing(a) in the schema cache");
    assert_eq!(
        res.json()["details"],
        "Searched for the function public.nothing with parameter a or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache."
    );
    let res = api.send("POST", "/rest/v1/rpc/ad", &json_post(), "{}").await;
    assert_eq!(res.json()["hint"], "Perhaps you meant to call the function public.add");
    let res = api.send("POST", "/rest/v1/rpc/add", &json_post(), r#"{"zzz":1}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (404, Some("PGRST202")));
    let res = api.send("POST", "/rest/v1/rpc/same", &json_post(), r#"{"x":1}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (300, Some("PGRST203")));
    let res = api.send("POST", "/rest/v1/rpc/add", &json_post(), "not json").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST102")));
    let res = api.send("POST", "/rest/v1/rpc/add", &json_post(), r#"{"a":"x"}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("22P02")));
    // maxAffected(n): a set-returning call over the limit is refused and rolled back; a call
    // that does not return a set cannot use it at all.
    let strict = [("content-type", "application/json"), ("prefer", "handling=strict, max-affected=1")];
    let res = api.send("POST", "/rest/v1/rpc/cheaper_than", &strict, r#"{"max_price":100}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST124")));
    assert_eq!(res.json()["details"], "The query affects 3 rows");
    let res = api.send("POST", "/rest/v1/rpc/cheaper_than", &strict, r#"{"max_price":3}"#).await;
    assert_eq!((res.status.as_u16(), res.json().as_array().map(Vec::len)), (200, Some(1)));
    let res = api.send("POST", "/rest/v1/rpc/squares", &strict, r#"{"n":2}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST124")));
    let res = api.send("POST", "/rest/v1/rpc/add", &strict, r#"{"a":1}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST128")));
    let res = api.send("DELETE", "/rest/v1/rpc/add", &[], "").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (405, Some("PGRST101")));
}

#[tokio::test]
async fn tx_rollback_undoes_a_calls_writes_and_is_reported() {
    let extra = "create function add_hits(k int) returns setof hits language sql as $$ insert into hits select g from generate_series(1, k) g returning * $$;";
    let api = api(&format!("{SCHEMA}{extra}")).await;
    let hits = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from hits").fetch_one(api.db.pool()).await.expect("count")
    };
    let rollback = [("content-type", "application/json"), ("prefer", "tx=rollback")];
    let res = api.send("POST", "/rest/v1/rpc/bump", &rollback, "{}").await;
    assert_eq!((res.status.as_u16(), res.header("preference-applied")), (204, Some("tx=rollback")));
    assert_eq!(hits().await, 0, "the void call's insert was rolled back");
    let res = api.send("POST", "/rest/v1/rpc/add_hits?select=n", &rollback, r#"{"k":3}"#).await;
    assert_eq!((res.status.as_u16(), res.json()), (200, json!([{"n": 1}, {"n": 2}, {"n": 3}])));
    assert_eq!(res.header("preference-applied"), Some("tx=rollback"));
    assert_eq!(hits().await, 0, "the set-returning call's inserts were rolled back");
    let prefer =
        [("content-type", "application/json"), ("prefer", "tx=rollback, count=exact, handling=strict, max-affected=5")];
    let res = api.send("POST", "/rest/v1/rpc/add_hits", &prefer, r#"{"k":2}"#).await;
    assert_eq!(res.header("preference-applied"), Some("count=exact, tx=rollback, handling=strict, max-affected=5"));
    assert_eq!(hits().await, 0);
    let commit = [("content-type", "application/json"), ("prefer", "tx=commit")];
    let res = api.send("POST", "/rest/v1/rpc/bump", &commit, "{}").await;
    assert_eq!((res.status.as_u16(), res.header("preference-applied")), (204, Some("tx=commit")));
    assert_eq!(hits().await, 1);
}

#[tokio::test]
async fn counts_of_scalar_set_and_void_results() {
    let api = api(SCHEMA).await;
    let count = [("content-type", "application/json"), ("prefer", "count=exact")];
    let res = api.send("POST", "/rest/v1/rpc/add", &count, r#"{"a":1}"#).await;
    assert_eq!((res.status.as_u16(), res.body.as_str(), res.header("content-range")), (200, "11", Some("0-0/1")));
    assert_eq!(res.header("preference-applied"), Some("count=exact"));
    let res = api.send("GET", "/rest/v1/rpc/add?a=1", &[], "").await;
    assert_eq!((res.header("content-range"), res.header("preference-applied")), (Some("0-0/*"), None));
    let res = api.send("POST", "/rest/v1/rpc/cheapest", &count, "{}").await;
    assert_eq!(res.header("content-range"), Some("0-0/1"));
    let res = api.send("GET", "/rest/v1/rpc/squares?n=3", &[("prefer", "count=exact")], "").await;
    assert_eq!((res.json(), res.header("content-range")), (json!([1, 4, 9]), Some("0-2/3")));
    let res = api.send("GET", "/rest/v1/rpc/squares?n=0", &[("prefer", "count=exact")], "").await;
    assert_eq!((res.json(), res.header("content-range")), (json!([]), Some("*/0")));
    let res = api.send("HEAD", "/rest/v1/rpc/squares?n=2", &[("prefer", "count=exact")], "").await;
    assert_eq!((res.status.as_u16(), res.header("content-range")), (200, Some("0-1/2")));
    let res = api.send("POST", "/rest/v1/rpc/bump", &count, "{}").await;
    assert_eq!((res.status.as_u16(), res.header("content-range")), (204, Some("0-0/1")));
}

#[tokio::test]
async fn ambiguous_overloads_are_listed_with_postgrests_hint() {
    let extra = r#"
create function overloaded_same_args(arg integer) returns json language sql as $$ select json_build_object('type', 'integer') $$;
create function overloaded_same_args(arg xml) returns json language sql as $$ select json_build_object('type', 'xml') $$;
create function overloaded_same_args(arg text, num integer default 0) returns json language sql as $$ select json_build_object('type', 'text') $$;
"#;
    let api = api(&format!("{SCHEMA}{extra}")).await;
    let res = api.get("/rest/v1/rpc/overloaded_same_args?arg=value").await;
    assert_eq!(res.status, 300);
    assert_eq!(
        res.json(),
        json!({
            "code": "PGRST203",
            "message": "Could not choose the best candidate function between: public.overloaded_same_args(arg => integer), public.overloaded_same_args(arg => xml), public.overloaded_same_args(arg => text, num => integer)",
            "details": null,
            "hint": "Try renaming the parameters or the function itself in the database so function overloading can be resolved",
        })
    );
}

const UNNAMED: &str = r#"
create function unnamed_json(json) returns json language sql as $$ select $1 $$;
create function unnamed_text(text) returns text language sql as $$ select $1 $$;
create function unnamed_bytea(bytea) returns bytea language sql as $$ select $1 $$;
create function unnamed_int(int) returns int language sql as $$ select $1 $$;
create function unnamed_two(int, int) returns int language sql as $$ select $1 + $2 $$;
create function overloaded_unnamed(json) returns text language sql as $$ select 'json' $$;
create function overloaded_unnamed(bytea) returns text language sql as $$ select 'bytea' $$;
create function overloaded_unnamed(text) returns text language sql as $$ select 'text' $$;
create function overloaded_unnamed() returns text language sql as $$ select 'none' $$;
create function overloaded_unnamed(x int, y int) returns text language sql as $$ select 'x, y' $$;
create function unnamed_json_jsonb(json) returns text language sql as $$ select 'json' $$;
create function unnamed_json_jsonb(jsonb) returns text language sql as $$ select 'jsonb' $$;
"#;

#[tokio::test]
async fn only_a_single_unnamed_json_text_xml_or_bytea_argument_takes_the_body() {
    let api = api(&format!("{SCHEMA}{UNNAMED}")).await;
    let post = |ct: &'static str| [("content-type", ct)];
    let res = api.send("POST", "/rest/v1/rpc/unnamed_json", &post("application/json"), r#"{"A":1,"B":[2]}"#).await;
    assert_eq!((res.status.as_u16(), res.json()), (200, json!({"A": 1, "B": [2]})));
    let res = api.send("POST", "/rest/v1/rpc/unnamed_text", &post("text/plain"), "unnamed text arg").await;
    assert_eq!((res.status.as_u16(), res.json()), (200, json!("unnamed text arg")));
    // The "" key names the unnamed argument, which still receives the raw body (PostgREST).
    let res = api.send("POST", "/rest/v1/rpc/unnamed_text", &post("application/json"), r#"{"":"x"}"#).await;
    assert_eq!((res.status.as_u16(), res.json()), (200, json!(r#"{"":"x"}"#)));
    let res = api.send("POST", "/rest/v1/rpc/unnamed_bytea", &post("application/octet-stream"), "\u{1}ab").await;
    assert_eq!((res.status.as_u16(), res.json()), (200, json!("\\x016162")));

    // Other unnamed functions are not in the schema cache: PGRST202, never broken SQL.
    for (uri, ct, body) in [
        ("/rest/v1/rpc/unnamed_int", "application/json", r#"{"":1}"#),
        ("/rest/v1/rpc/unnamed_int", "application/json", "5"),
        ("/rest/v1/rpc/unnamed_two", "application/json", "{}"),
        ("/rest/v1/rpc/unnamed_json", "text/plain", "x"),
    ] {
        let res = api.send("POST", uri, &post(ct), body).await;
        assert_eq!(
            (res.status.as_u16(), res.json()["code"].as_str()),
            (404, Some("PGRST202")),
            "{uri} {body}: {}",
            res.body
        );
    }
    let res = api.send("POST", "/rest/v1/rpc/unnamed_int", &post("text/plain"), "5").await;
    assert_eq!(
        res.json(),
        json!({
            "code": "PGRST202",
            "message": "Could not find the function public.unnamed_int in the schema cache",
            "details": "Searched for the function public.unnamed_int with a single unnamed text parameter, but no matches were found in the schema cache.",
            "hint": null,
        })
    );
    let res = api.get("/rest/v1/rpc/unnamed_two?b=1&a=2").await;
    assert_eq!(
        res.json()["details"],
        "Searched for the function public.unnamed_two with parameters a, b, but no matches were found in the schema cache."
    );

    // Overloads: named arguments first, then the body's own type.
    for (ct, body, picked) in [
        ("application/json", r#"{"x":1,"y":2}"#, "x, y"),
        ("application/json", "{}", "none"),
        ("application/json", r#"{"A":1}"#, "json"),
        ("text/plain", "some text", "text"),
        ("application/octet-stream", "bytes", "bytea"),
    ] {
        let res = api.send("POST", "/rest/v1/rpc/overloaded_unnamed", &post(ct), body).await;
        assert_eq!((res.status.as_u16(), res.json()), (200, json!(picked)), "{ct} {body}");
    }
    let res = api.send("GET", "/rest/v1/rpc/overloaded_unnamed", &post("text/plain"), "").await;
    assert_eq!(res.json(), json!("none"), "a GET takes no body");
    let res = api.send("POST", "/rest/v1/rpc/unnamed_json_jsonb", &post("application/json"), r#"{"A":1}"#).await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (300, Some("PGRST203")));
    assert_eq!(
        res.json()["message"],
        "Could not choose the best candidate function between: public.unnamed_json_jsonb( => json), public.unnamed_json_jsonb( => jsonb)"
    );
}
