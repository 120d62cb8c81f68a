//! Reads through the router against a real Postgres: select, filters, embeds, order,
//! pagination, counts, singular and CSV responses, errors, and RLS.

mod common;

use common::{Api, api, api_with};
use serde_json::{Value, json};

const SCHEMA: &str = r#"
create table countries (id int primary key, name text not null, code text unique, iso char(2), flags bit(3));
create table cities (id int primary key, name text not null, country_id int references countries(id),
                     population int, tags text[], meta jsonb, doc tsvector);
create table users (id uuid primary key, name text);
create table teams (id int primary key, name text);
create table members (user_id uuid references users(id), team_id int references teams(id), primary key (user_id, team_id));
create table messages (id int primary key, sender uuid references users(id), receiver uuid references users(id), body text);
create table employees (id int primary key, name text, manager_id int references employees(id));
create table notes (id serial primary key, owner uuid not null, body text not null);
alter table notes enable row level security;
create policy own_notes on notes for all to authenticated using (owner = auth.uid()) with check (owner = auth.uid());

insert into countries values (1, 'France', 'FR', 'FR', B'101'), (2, 'Japan', 'JP', 'JP', B'011'), (3, 'Nowhere', null, null, null);
insert into cities values
  (1, 'Paris', 1, 2100000, '{capital,big}', '{"mayor": {"name": "Anne"}, "zip": "75"}', to_tsvector('english', 'city of light')),
  (2, 'Lyon', 1, 500000, '{big}', '{"zip": "69"}', to_tsvector('english', 'city of food')),
  (3, 'Tokyo', 2, 14000000, '{capital,huge}', null, to_tsvector('english', 'huge city')),
  (4, 'Osaka', 2, null, null, null, null),
  (5, 'Lonely, "quoted"', null, 10, '{}', null, null);
insert into users values ('11111111-1111-4111-8111-111111111111', 'alice'), ('22222222-2222-4222-8222-222222222222', 'bob');
insert into teams values (1, 'red'), (2, 'blue'), (3, 'green');
insert into members values ('11111111-1111-4111-8111-111111111111', 1), ('11111111-1111-4111-8111-111111111111', 2), ('22222222-2222-4222-8222-222222222222', 2);
insert into messages values (1, '11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222', 'hi bob'),
                            (2, '22222222-2222-4222-8222-222222222222', '11111111-1111-4111-8111-111111111111', 'hi alice');
insert into employees values (1, 'boss', null), (2, 'mid', 1), (3, 'junior', 2), (4, 'other junior', 2);
insert into notes (owner, body) values ('11111111-1111-4111-8111-111111111111', 'alice note'), ('22222222-2222-4222-8222-222222222222', 'bob note');
"#;

const ALICE: &str = "11111111-1111-4111-8111-111111111111";

async fn ok(api: &Api, uri: &str) -> Value {
    let res = api.get(uri).await;
    assert!(res.status.is_success(), "{uri} -> {} {}", res.status, res.body);
    res.json()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|r| r["name"].as_str().unwrap_or("<null>").to_owned()).collect()
}

#[tokio::test]
async fn columns_aliases_casts_and_json_paths() {
    let api = api(SCHEMA).await;
    let v = ok(&api, "/rest/v1/cities?select=id,name&order=id&limit=2").await;
    assert_eq!(v, json!([{"id": 1, "name": "Paris"}, {"id": 2, "name": "Lyon"}]));
    let v = ok(&api, "/rest/v1/cities?select=city:name,pop:population::text&id=eq.1").await;
    assert_eq!(v, json!([{"city": "Paris", "pop": "2100000"}]));
    let v = ok(&api, "/rest/v1/cities?select=id,meta->mayor->>name,zip:meta->>zip&id=eq.1").await;
    assert_eq!(v, json!([{"id": 1, "name": "Anne", "zip": "75"}]));
    let v = ok(&api, "/rest/v1/cities?id=eq.4").await;
    assert_eq!(v[0]["population"], Value::Null);
    assert_eq!(v[0].as_object().expect("row").len(), 7, "select defaults to *");
    // A value with quotes and commas survives the round trip.
    let v = ok(&api, "/rest/v1/cities?select=name&id=eq.5").await;
    assert_eq!(v, json!([{"name": "Lonely, \"quoted\""}]));
}

#[tokio::test]
async fn every_filter_operator() {
    let api = api(SCHEMA).await;
    // Fixed-length types compare at their full length (not as char(1) or bit(1)).
    let v = ok(&api, "/rest/v1/countries?select=name&iso=eq.FR").await;
    assert_eq!(v, json!([{"name": "France"}]));
    let v = ok(&api, "/rest/v1/countries?select=name&iso=in.(FR,JP)&order=id").await;
    assert_eq!(v, json!([{"name": "France"}, {"name": "Japan"}]));
    let v = ok(&api, "/rest/v1/countries?select=name&flags=eq.011").await;
    assert_eq!(v, json!([{"name": "Japan"}]));
    let q = |f: &'static str| format!("/rest/v1/cities?select=name&order=id&{f}");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("id=eq.2", vec!["Lyon"]),
        ("id=neq.2", vec!["Paris", "Tokyo", "Osaka", "Lonely, \"quoted\""]),
        ("id=gt.3", vec!["Osaka", "Lonely, \"quoted\""]),
        ("id=gte.3&id=lte.4", vec!["Tokyo", "Osaka"]),
        ("id=lt.2", vec!["Paris"]),
        ("name=like.*yo*", vec!["Lyon", "Tokyo"]),
        ("name=like.L%25", vec!["Lyon", "Lonely, \"quoted\""]),
        ("name=ilike.*OSAKA*", vec!["Osaka"]),
        ("name=match.^[PT]", vec!["Paris", "Tokyo"]),
        ("name=imatch.^p", vec!["Paris"]),
        ("population=is.null", vec!["Osaka"]),
        ("population=not.is.null&id=lt.3", vec!["Paris", "Lyon"]),
        ("country_id=isdistinct.1", vec!["Tokyo", "Osaka", "Lonely, \"quoted\""]),
        ("id=in.(1,3)", vec!["Paris", "Tokyo"]),
        // Quoted items may hold commas, and `\"` stands for a quote.
        ("name=in.(Lyon,%22Lonely,%20%5C%22quoted%5C%22%22)", vec!["Lyon", "Lonely, \"quoted\""]),
        ("id=not.in.(1,2,3,4)", vec!["Lonely, \"quoted\""]),
        ("tags=cs.{capital}", vec!["Paris", "Tokyo"]),
        ("tags=cd.{big,capital}", vec!["Paris", "Lyon", "Lonely, \"quoted\""]),
        ("tags=ov.{huge,nothing}", vec!["Tokyo"]),
        ("meta=cs.{\"zip\":\"69\"}", vec!["Lyon"]),
        ("meta->>zip=eq.75", vec!["Paris"]),
        ("meta->mayor->>name=eq.Anne", vec!["Paris"]),
        ("doc=fts(english).light", vec!["Paris"]),
        ("doc=plfts(english).huge city", vec!["Tokyo"]),
        ("doc=wfts(english).city -food", vec!["Paris", "Tokyo"]),
        ("name=like(any).{P*,T*}", vec!["Paris", "Tokyo"]),
        ("id=gt(all).{1,2}&id=lt.4", vec!["Tokyo"]),
        ("id=eq(any).{2,4}", vec!["Lyon", "Osaka"]),
        ("or=(id.eq.1,name.eq.Osaka)", vec!["Paris", "Osaka"]),
        ("or=(id.eq.1,and(country_id.eq.2,population.gt.1000))", vec!["Paris", "Tokyo"]),
        ("not.or=(id.gt.1,population.is.null)", vec!["Paris"]),
        ("and=(country_id.eq.1,or(name.eq.Lyon,name.eq.Nice))", vec!["Lyon"]),
        ("or=(tags.cs.{huge},name.in.(Lyon,Osaka))", vec!["Lyon", "Tokyo", "Osaka"]),
    ];
    for (filter, want) in cases {
        let got = names(&ok(&api, &q(filter)).await);
        assert_eq!(got, want, "{filter}");
    }
}

#[tokio::test]
async fn embeds_of_every_kind() {
    let api = api(SCHEMA).await;
    // Many-to-one: an object (or null).
    let v = ok(&api, "/rest/v1/cities?select=name,countries(name)&id=in.(1,5)&order=id").await;
    assert_eq!(
        v,
        json!([{"name": "Paris", "countries": {"name": "France"}}, {"name": "Lonely, \"quoted\"", "countries": null}])
    );
    // One-to-many: an array, with its own filter, order and limit.
    let v =
        ok(&api, "/rest/v1/countries?select=name,cities(name)&cities.order=name.desc&cities.limit=1&order=id").await;
    assert_eq!(
        v,
        json!([{"name": "France", "cities": [{"name": "Paris"}]}, {"name": "Japan", "cities": [{"name": "Tokyo"}]}, {"name": "Nowhere", "cities": []}])
    );
    let v = ok(&api, "/rest/v1/countries?select=name,cities(name)&cities.population=gt.1000000&order=id").await;
    assert_eq!(v[0]["cities"], json!([{"name": "Paris"}]));
    // !inner drops parents without a match.
    let v = ok(&api, "/rest/v1/countries?select=name,cities!inner(name)&cities.name=eq.Lyon").await;
    assert_eq!(v, json!([{"name": "France", "cities": [{"name": "Lyon"}]}]));
    // A filter on the embed name.
    let v = ok(&api, "/rest/v1/cities?select=name,countries()&countries=not.is.null&country_id=eq.2&order=id").await;
    assert_eq!(v, json!([{"name": "Tokyo"}, {"name": "Osaka"}]), "an empty embed selects nothing");
    let v = ok(&api, "/rest/v1/countries?select=name,cities()&cities=is.null").await;
    assert_eq!(v, json!([{"name": "Nowhere"}]));
    // Many-to-many through the junction.
    let v = ok(&api, "/rest/v1/users?select=name,teams(name)&teams.order=id&order=name").await;
    assert_eq!(
        v,
        json!([{"name": "alice", "teams": [{"name": "red"}, {"name": "blue"}]}, {"name": "bob", "teams": [{"name": "blue"}]}])
    );
    // Two FKs to the same table: ambiguous without a hint, resolved by FK name or column.
    let res = api.get("/rest/v1/messages?select=body,users(name)").await;
    assert_eq!(res.status, 300, "{}", res.body);
    let err = res.json();
    assert_eq!(err["code"], "PGRST201");
    assert_eq!(err["details"].as_array().expect("details").len(), 2);
    let v = ok(
        &api,
        "/rest/v1/messages?select=body,from:users!sender(name),to:users!messages_receiver_fkey(name)&order=id",
    )
    .await;
    assert_eq!(v[0], json!({"body": "hi bob", "from": {"name": "alice"}, "to": {"name": "bob"}}));
    let v = ok(&api, "/rest/v1/messages?select=body,sender(name)&id=eq.2").await;
    assert_eq!(v, json!([{"body": "hi alice", "sender": {"name": "bob"}}]), "an FK column names the relationship");
    // Self reference: the table name is the one-to-many side, the FK column the many-to-one.
    let v = ok(&api, "/rest/v1/employees?select=name,employees(name),manager:manager_id(name)&id=eq.2").await;
    assert_eq!(
        v,
        json!([{"name": "mid", "employees": [{"name": "junior"}, {"name": "other junior"}], "manager": {"name": "boss"}}])
    );
    // Spread lifts a to-one embed's columns into the parent.
    let v = ok(&api, "/rest/v1/cities?select=name,...countries(country:name,code)&id=eq.3").await;
    assert_eq!(v, json!([{"name": "Tokyo", "country": "Japan", "code": "JP"}]));
    // Spread over a to-many relationship: one array per column.
    let v = ok(&api, "/rest/v1/countries?select=name,...cities(town:name)&id=eq.1&cities.order=id").await;
    assert_eq!(v, json!([{"name": "France", "town": ["Paris", "Lyon"]}]));
    // `!left` is the default join, written out.
    let v = ok(&api, "/rest/v1/countries?select=name,cities!left(name)&id=eq.3").await;
    assert_eq!(v, json!([{"name": "Nowhere", "cities": []}]));
    // `rel(count)` counts related rows.
    let v = ok(&api, "/rest/v1/countries?select=name,cities(count)&order=id").await;
    assert_eq!(
        v,
        json!([{"name": "France", "cities": [{"count": 2}]}, {"name": "Japan", "cities": [{"count": 2}]}, {"name": "Nowhere", "cities": [{"count": 0}]}])
    );
    // Nested embeds.
    let v = ok(&api, "/rest/v1/countries?select=name,cities(name,countries(code))&id=eq.2&cities.order=id").await;
    assert_eq!(v[0]["cities"][0], json!({"name": "Tokyo", "countries": {"code": "JP"}}));
}

#[tokio::test]
async fn order_pagination_and_counts() {
    let api = api(SCHEMA).await;
    assert_eq!(
        names(&ok(&api, "/rest/v1/cities?select=name&order=population.desc.nullslast").await)[..2],
        ["Tokyo", "Paris"]
    );
    assert_eq!(
        names(&ok(&api, "/rest/v1/cities?select=name&order=population.desc.nullsfirst&limit=1").await),
        ["Osaka"]
    );
    assert_eq!(
        names(&ok(&api, "/rest/v1/cities?select=name&order=country_id.asc,name.desc").await)[..2],
        ["Paris", "Lyon"]
    );
    // Ordering by a to-one embed's column.
    let v =
        ok(&api, "/rest/v1/cities?select=name,countries(name)&country_id=not.is.null&order=countries(name).desc,id")
            .await;
    assert_eq!(names(&v), ["Tokyo", "Osaka", "Paris", "Lyon"]);
    let res = api.get("/rest/v1/countries?select=name,cities(name)&order=cities(name)").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST118")));

    let res =
        api.send("GET", "/rest/v1/cities?select=id&order=id&offset=1&limit=2", &[("prefer", "count=exact")], "").await;
    assert_eq!(res.status, 206);
    assert_eq!(res.header("content-range"), Some("1-2/5"));
    assert_eq!(res.header("preference-applied"), Some("count=exact"));
    assert_eq!(res.json(), json!([{"id": 2}, {"id": 3}]));
    let res = api.get("/rest/v1/cities?select=id&order=id&limit=2").await;
    assert_eq!((res.status.as_u16(), res.header("content-range")), (200, Some("0-1/*")));
    let res = api.send("GET", "/rest/v1/cities?select=id&order=id", &[("range", "3-10")], "").await;
    assert_eq!(res.json(), json!([{"id": 4}, {"id": 5}]));
    assert_eq!(res.header("content-range"), Some("3-4/*"));
    let res = api.send("GET", "/rest/v1/cities?select=id&offset=9", &[("prefer", "count=exact")], "").await;
    assert_eq!(res.status, 416);
    assert_eq!(res.json()["code"], "PGRST103");
    assert_eq!(res.header("content-range"), Some("*/5"));
    let res = api.send("GET", "/rest/v1/cities?select=id&id=gt.100", &[("prefer", "count=exact")], "").await;
    assert_eq!((res.status.as_u16(), res.header("content-range")), (200, Some("*/0")));
    assert_eq!(res.json(), json!([]));
    let res = api.get("/rest/v1/cities?limit=-1").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (416, Some("PGRST103")));
    // HEAD: headers only.
    let res = api.send("HEAD", "/rest/v1/cities?country_id=eq.1", &[("prefer", "count=exact")], "").await;
    assert_eq!((res.status.as_u16(), res.body.as_str(), res.header("content-range")), (200, "", Some("0-1/2")));
    // Planned and estimated counts come from the planner (and never below the page).
    sqlx::raw_sql("analyze cities").execute(api.db.pool()).await.expect("analyze");
    for pref in ["count=planned", "count=estimated"] {
        let res = api.send("GET", "/rest/v1/cities?select=id&limit=1", &[("prefer", pref)], "").await;
        assert!(res.status.is_success(), "{pref}: {}", res.body);
        let total: u64 = res
            .header("content-range")
            .and_then(|r| r.split('/').nth(1))
            .and_then(|t| t.parse().ok())
            .expect("a total");
        assert!(total >= 1, "{pref}: {total}");
    }
    // Aggregates group by the plain columns.
    let v = ok(
        &api,
        "/rest/v1/cities?select=country_id,total:population.sum(),count()&country_id=not.is.null&order=country_id",
    )
    .await;
    assert_eq!(
        v,
        json!([{"country_id": 1, "total": 2600000, "count": 2}, {"country_id": 2, "total": 14000000, "count": 2}])
    );
}

#[tokio::test]
async fn singular_csv_and_media_types() {
    let api = api(SCHEMA).await;
    let one = [("accept", "application/vnd.pgrst.object+json")];
    let res = api.send("GET", "/rest/v1/cities?select=id,name&id=eq.1", &one, "").await;
    assert_eq!(res.status, 200);
    assert!(res.header("content-type").expect("type").starts_with("application/vnd.pgrst.object+json"));
    assert_eq!(res.json(), json!({"id": 1, "name": "Paris"}));
    for (filter, rows) in [("id=gt.100", 0), ("country_id=eq.1", 2)] {
        let res = api.send("GET", &format!("/rest/v1/cities?{filter}"), &one, "").await;
        assert_eq!(res.status, 406);
        let err = res.json();
        assert_eq!(err["code"], "PGRST116");
        assert_eq!(err["message"], "Cannot coerce the result to a single JSON object");
        assert_eq!(err["details"], format!("The result contains {rows} rows"));
        assert_eq!(res.header("proxy-status"), Some("PostgREST; error=PGRST116"));
    }
    let res = api
        .send("GET", "/rest/v1/cities?select=id,name,tags&id=in.(1,5)&order=id", &[("accept", "text/csv")], "")
        .await;
    assert_eq!(res.status, 200);
    assert!(res.header("content-type").expect("type").starts_with("text/csv"));
    assert_eq!(res.body, "id,name,tags\n1,Paris,\"{capital,big}\"\n5,\"Lonely, \"\"quoted\"\"\",{}");
    // stripNulls: keys whose value is null are left out.
    let stripped = [("accept", "application/vnd.pgrst.array+json;nulls=stripped")];
    let res = api.send("GET", "/rest/v1/cities?select=id,population,meta&id=in.(3,4)&order=id", &stripped, "").await;
    assert_eq!(res.json(), json!([{"id": 3, "population": 14000000}, {"id": 4}]));
    assert!(res.header("content-type").expect("type").starts_with("application/vnd.pgrst.array+json;nulls=stripped"));
    let one = [("accept", "application/vnd.pgrst.object+json;nulls=stripped")];
    let res = api.send("GET", "/rest/v1/cities?select=id,population&id=eq.4", &one, "").await;
    assert_eq!(res.json(), json!({"id": 4}));
    let res = api.send("GET", "/rest/v1/cities", &[("accept", "application/xml")], "").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (406, Some("PGRST107")));
}

#[tokio::test]
async fn clear_errors_for_bad_requests() {
    let api = api(SCHEMA).await;
    let res = api.get("/rest/v1/citis").await;
    assert_eq!(res.status, 404);
    let err = res.json();
    assert_eq!(err["code"], "PGRST205");
    assert_eq!(err["message"], "Could not find the table 'public.citis' in the schema cache");
    assert_eq!(err["hint"], "Perhaps you meant the table 'public.cities'");
    let cases = [
        ("/rest/v1/cities?select=nme", 400, "42703"),
        ("/rest/v1/cities?nme=eq.1", 400, "42703"),
        ("/rest/v1/cities?select=name,nothing(id)", 400, "PGRST200"),
        ("/rest/v1/cities?select=name&countries.name=eq.x", 400, "PGRST108"),
        ("/rest/v1/cities?select=name,countries(name)&countries=eq.1", 400, "PGRST120"),
        ("/rest/v1/cities?select=id(", 400, "PGRST100"),
        ("/rest/v1/cities?id=zz.1", 400, "PGRST100"),
        ("/rest/v1/cities?select=id::text;drop", 400, "PGRST100"),
        ("/rest/v1/cities?id=eq.notanumber", 400, "22P02"),
    ];
    for (uri, status, code) in cases {
        let res = api.get(uri).await;
        assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (status, Some(code)), "{uri}: {}", res.body);
    }
    let res = api.send("GET", "/rest/v1/cities", &[("prefer", "handling=strict, bogus=1")], "").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST122")));
}

#[tokio::test]
async fn rls_decides_what_each_caller_reads() {
    let api = api(SCHEMA).await;
    let claims = json!({"sub": ALICE, "role": "authenticated", "aud": "authenticated", "exp": 4_102_444_800u64});
    let token = api.project.keys().sign_hs256(claims.as_object().expect("claims")).expect("sign");
    let auth = format!("Bearer {token}");
    let res = api.send("GET", "/rest/v1/notes?select=body", &[("authorization", &auth)], "").await;
    assert_eq!(res.json(), json!([{"body": "alice note"}]));
    // anon has no policy: nothing, not an error.
    assert_eq!(ok(&api, "/rest/v1/notes").await, json!([]));
    // The service role bypasses RLS.
    let key = api.service_key();
    let res = api
        .send(
            "GET",
            "/rest/v1/notes?select=body&order=id",
            &[("apikey", &key), ("authorization", &format!("Bearer {key}"))],
            "",
        )
        .await;
    assert_eq!(res.json(), json!([{"body": "alice note"}, {"body": "bob note"}]));
    // Without table privileges, anon gets 401 and a user 403.
    sqlx::raw_sql("revoke all on cities from anon, authenticated").execute(api.db.pool()).await.expect("revoke");
    let res = api.get("/rest/v1/cities").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (401, Some("42501")));
    let res = api.send("GET", "/rest/v1/cities", &[("authorization", &auth)], "").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (403, Some("42501")));
}

#[tokio::test]
async fn embeds_through_views_inherit_the_base_tables_foreign_keys() {
    let api = api(
        r#"
        create schema private;
        create table private.authors (id int primary key, name text not null);
        create table private.books (id int primary key, title text not null, author_id int references private.authors(id));
        insert into private.authors values (1, 'Le Guin'), (2, 'Herbert');
        insert into private.books values (1, 'Earthsea', 1), (2, 'Dune', 2), (3, 'The Dispossessed', 1);
        -- Views in the exposed schema over private tables, with a renamed FK column.
        create view authors as select id, name from private.authors;
        create view books as select id, title, author_id as writer, upper(title) as shout from private.books;
        create table shelves (id int primary key, book_id int references private.books(id));
        insert into shelves values (10, 2);
        "#,
    )
    .await;
    // View to view, many-to-one and one-to-many.
    let v = ok(&api, "/rest/v1/books?select=title,authors(name)&order=id").await;
    assert_eq!(v[0], json!({"title": "Earthsea", "authors": {"name": "Le Guin"}}));
    let v = ok(&api, "/rest/v1/authors?select=name,books(title)&books.order=id&order=id").await;
    assert_eq!(
        v,
        json!([{"name": "Le Guin", "books": [{"title": "Earthsea"}, {"title": "The Dispossessed"}]}, {"name": "Herbert", "books": [{"title": "Dune"}]}])
    );
    // The renamed column names the relationship too; a computed column carries no FK.
    let v = ok(&api, "/rest/v1/books?select=title,writer(name)&id=eq.2").await;
    assert_eq!(v, json!([{"title": "Dune", "writer": {"name": "Herbert"}}]));
    // A table in the exposed schema pointing at a private table reaches it through its view.
    let v = ok(&api, "/rest/v1/shelves?select=id,books(title)").await;
    assert_eq!(v, json!([{"id": 10, "books": {"title": "Dune"}}]));
}

#[tokio::test]
async fn explain_shows_plans_only_when_enabled() {
    let off = api(SCHEMA).await;
    let plan_json = [("accept", "application/vnd.pgrst.plan+json; for=\"application/json\"; options=analyze|verbose;")];
    let res = off.send("GET", "/rest/v1/cities?id=eq.1", &plan_json, "").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (406, Some("PGRST107")), "off by default");

    let on = api_with(
        SCHEMA,
        forge_data::Data::builder()
            .config(forge_data::DataConfig::default().with_plan_enabled(true))
            .build()
            .expect("data"),
    )
    .await;
    let res = on.send("GET", "/rest/v1/cities?select=name&id=eq.1", &plan_json, "").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.header("content-type").expect("type").starts_with("application/vnd.pgrst.plan+json"));
    let plan = res.json();
    assert!(plan[0]["Plan"]["Node Type"].is_string(), "{plan}");
    assert!(plan[0]["Execution Time"].is_number(), "ANALYZE ran: {plan}");
    let res = on.send("GET", "/rest/v1/cities?id=eq.1", &[("accept", "application/vnd.pgrst.plan+text")], "").await;
    assert!(res.header("content-type").expect("type").starts_with("application/vnd.pgrst.plan+text"));
    assert!(res.body.contains("cities"), "{}", res.body);
    // Plans are for reads only: a write never runs under EXPLAIN.
    let res = on.send("DELETE", "/rest/v1/cities", &plan_json, "").await;
    assert_eq!(res.status, 406);
    let left: i64 = sqlx::query_scalar("select count(*) from cities").fetch_one(on.db.pool()).await.expect("count");
    assert_eq!(left, 5);
}

#[tokio::test]
async fn geojson_with_postgis_and_406_without() {
    let without = api(SCHEMA).await;
    let geo = [("accept", "application/geo+json")];
    let res = without.send("GET", "/rest/v1/cities", &geo, "").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (406, Some("PGRST107")));

    let with = api(
        "create extension postgis;
         create table places (id int primary key, name text, geom geometry(Point, 4326));
         insert into places values (1, 'origin', ST_SetSRID(ST_MakePoint(0, 0), 4326)), (2, 'paris', ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326));",
    )
    .await;
    let res = with.send("GET", "/rest/v1/places?select=id,name,geom&order=id", &geo, "").await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.header("content-type").expect("type").starts_with("application/geo+json"));
    let v = res.json();
    assert_eq!(v["type"], "FeatureCollection");
    assert_eq!(v["features"][1]["geometry"], json!({"type": "Point", "coordinates": [2.35, 48.85]}));
    assert_eq!(v["features"][1]["properties"], json!({"id": 2, "name": "paris"}));
}

#[tokio::test]
async fn json_paths_deeper_than_the_bound_are_refused_before_postgres() {
    let api = api(SCHEMA).await;
    let path = |steps: usize| format!("meta{}", "->a".repeat(steps));
    let res = api.get(&format!("/rest/v1/cities?select=id,{}&id=eq.1", path(100))).await;
    assert_eq!((res.status.as_u16(), res.json()), (200, json!([{"id": 1, "a": null}])));
    let deep = path(10_000);
    for uri in [
        format!("/rest/v1/cities?select=id,{deep}"),
        format!("/rest/v1/cities?{deep}=eq.1"),
        format!("/rest/v1/cities?order={deep}.desc"),
        format!("/rest/v1/cities?select=id,{}", path(101)),
    ] {
        let res = api.get(&uri).await;
        assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST100")), "{}", &uri[..60]);
        assert_eq!(res.json()["details"], "JSON path is longer than 100 steps");
    }
}

#[tokio::test]
async fn an_embed_twice_under_one_name_is_postgres_duplicate_alias() {
    let api = api(SCHEMA).await;
    for (uri, alias) in [
        ("/rest/v1/countries?select=id,cities(id),cities(name)", "countries_cities_1"),
        ("/rest/v1/countries?select=id,c:cities(id),c:cities(name)", "countries_c_1"),
        ("/rest/v1/countries?select=id,cities(id,countries(id),countries(name))", "cities_countries_2"),
        ("/rest/v1/employees?select=id,employees(id),employees(name)", "employees_employees_1"),
    ] {
        let res = api.get(uri).await;
        assert_eq!(res.status, 400, "{uri}: {}", res.body);
        assert_eq!(
            res.json(),
            json!({"code": "42712", "message": format!("table name \"{alias}\" specified more than once"), "details": null, "hint": null}),
            "{uri}"
        );
    }
    // Under two names it is two embeds; an unknown relationship is still PGRST200 first.
    let v = ok(&api, "/rest/v1/countries?select=id,a:cities(id),b:cities(name)&id=eq.2&a.order=id&b.order=id").await;
    assert_eq!(v, json!([{"id": 2, "a": [{"id": 3}, {"id": 4}], "b": [{"name": "Tokyo"}, {"name": "Osaka"}]}]));
    let res = api.get("/rest/v1/countries?select=id,cities(id),cities(name),nope(id)").await;
    assert_eq!(res.json()["code"], "PGRST200");
}

#[tokio::test]
async fn a_constraint_or_column_name_embeds_the_table_not_a_view_carrying_the_same_key() {
    let api = api(&format!("{SCHEMA}create view employee_names as select id, name, manager_id from employees;")).await;
    let v = ok(&api, "/rest/v1/employees?select=name,manager:manager_id(name)&id=eq.2").await;
    assert_eq!(v, json!([{"name": "mid", "manager": {"name": "boss"}}]));
}
