//! Functions returning one composite row (issue 13, item 3): `select`, embeds and filters
//! shape the row as PostgREST's single composite (test/spec/Feature/Query/RpcSpec.hs,
//! "returns single row from table"); the answer is one object, or `null` when filtered out.

mod common;

use common::{Api, api};
use serde_json::{Value, json};

const SCHEMA: &str = r#"
create table teams (id int primary key, name text not null);
create table people (id int primary key, name text not null, team_id int references teams(id), nick text);
insert into teams values (1, 'red'), (2, 'blue');
insert into people values (1, 'Ada', 1, null), (2, 'Alan', 1, 'al'), (3, 'Grace', 2, null);
create function person(pid int) returns people language sql stable as $$ select * from people where id = pid $$;
create function team(tid int) returns teams language sql stable as $$ select * from teams where id = tid $$;
create function shout(people) returns text language sql stable as $$ select upper($1.name) $$;
create type point2d as (x int, y int);
create function point(a int, b int) returns point2d language sql immutable as $$ select a, b $$;
create function stats(out n bigint, out top text) language sql stable as $$ select count(*), max(name) from people $$;
"#;

async fn call(api: &Api, uri: &str, accept: &str) -> (u16, Option<String>, Option<String>, Value) {
    let headers: Vec<(&str, &str)> = if accept.is_empty() { vec![] } else { vec![("accept", accept)] };
    let res = api.send("GET", uri, &headers, "").await;
    let ct = res.header("content-type").map(str::to_owned);
    let range = res.header("content-range").map(str::to_owned);
    (res.status.as_u16(), ct, range, res.json())
}

#[tokio::test]
async fn select_and_embeds_shape_the_one_row() {
    let api = api(SCHEMA).await;
    let (status, _, range, v) = call(&api, "/rest/v1/rpc/person?pid=2&select=id,name", "").await;
    assert_eq!((status, range.as_deref(), v), (200, Some("0-0/*"), json!({"id": 2, "name": "Alan"})));
    let (_, _, _, v) = call(&api, "/rest/v1/rpc/person?pid=1&select=name,team:teams(name),shout", "").await;
    assert_eq!(v, json!({"name": "Ada", "team": {"name": "red"}, "shout": "ADA"}));
    let (_, _, _, v) =
        call(&api, "/rest/v1/rpc/team?tid=1&select=name,people(name)&people.order=name.desc&people.limit=1", "").await;
    assert_eq!(v, json!({"name": "red", "people": [{"name": "Alan"}]}));
    let res = api
        .send("POST", "/rest/v1/rpc/person?select=name,nick", &[("content-type", "application/json")], r#"{"pid":3}"#)
        .await;
    assert_eq!(res.json(), json!({"name": "Grace", "nick": null}));
    let (_, _, _, v) = call(&api, "/rest/v1/rpc/person?pid=3", "").await;
    assert_eq!(v, json!({"id": 3, "name": "Grace", "team_id": 2, "nick": null}), "no select: the whole row");
}

#[tokio::test]
async fn filtered_out_is_null_also_as_a_singular_object() {
    let api = api(SCHEMA).await;
    let (status, _, _, v) = call(&api, "/rest/v1/rpc/person?pid=1&name=eq.Ada&select=id", "").await;
    assert_eq!((status, v), (200, json!({"id": 1})));
    let (status, ct, range, v) = call(&api, "/rest/v1/rpc/person?pid=1&name=eq.Alan", "").await;
    assert_eq!((status, v), (200, Value::Null));
    assert_eq!(ct.as_deref(), Some("application/json; charset=utf-8"));
    assert_eq!(range.as_deref(), Some("0-0/*"), "one row, whatever the filters leave");
    let (status, _, _, v) = call(&api, "/rest/v1/rpc/person?pid=1&or=(id.eq.5,name.like.B*)", "").await;
    assert_eq!((status, v), (200, Value::Null));

    let object = "application/vnd.pgrst.object+json";
    let (status, ct, _, v) = call(&api, "/rest/v1/rpc/person?pid=1&name=eq.Alan", object).await;
    assert_eq!((status, v), (200, Value::Null), "never PGRST116: the page is the one row");
    assert_eq!(ct.as_deref(), Some("application/vnd.pgrst.object+json; charset=utf-8"));
    let (status, _, _, v) = call(&api, "/rest/v1/rpc/person?pid=1&select=name,nick", object).await;
    assert_eq!((status, v), (200, json!({"name": "Ada", "nick": null})));
    let stripped = "application/vnd.pgrst.object+json;nulls=stripped";
    let (_, _, _, v) = call(&api, "/rest/v1/rpc/person?pid=1&select=name,nick", stripped).await;
    assert_eq!(v, json!({"name": "Ada"}));

    let res = api.send("GET", "/rest/v1/rpc/person?pid=2&select=id", &[("prefer", "count=exact")], "").await;
    assert_eq!((res.status.as_u16(), res.header("content-range")), (200, Some("0-0/1")));
    let res = api.send("GET", "/rest/v1/rpc/person?pid=2&select=id,name", &[("accept", "text/csv")], "").await;
    assert_eq!(res.body, "id,name\n2,Alan");
}

#[tokio::test]
async fn composite_types_and_out_parameters_read_alike() {
    let api = api(SCHEMA).await;
    let (_, _, _, v) = call(&api, "/rest/v1/rpc/point?a=1&b=2", "").await;
    assert_eq!(v, json!({"x": 1, "y": 2}));
    let (_, _, _, v) = call(&api, "/rest/v1/rpc/point?a=1&b=2&select=y", "").await;
    assert_eq!(v, json!({"y": 2}));
    let (_, _, _, v) = call(&api, "/rest/v1/rpc/point?a=1&b=2&x=gt.5", "").await;
    assert_eq!(v, Value::Null, "a filter on the composite's attribute");
    let (_, _, _, v) = call(&api, "/rest/v1/rpc/stats?select=top", "").await;
    assert_eq!(v, json!({"top": "Grace"}));
}
