//! Computed fields (issue 13, item 1): functions of a table's row, selected, filtered and
//! ordered like columns, as PostgREST's docs/references/api/computed_fields.rst describes.

mod common;

use common::{Api, api};
use serde_json::{Value, json};

const SCHEMA: &str = r#"
create table teams (id int primary key, name text not null);
create table people (id int primary key, first_name text not null, last_name text not null,
                     team_id int references teams(id), born int);
create table pets (id int primary key, name text not null, shout text);
insert into teams values (1, 'red'), (2, 'blue');
insert into people values (1, 'Ada', 'Lovelace', 1, 1815), (2, 'Alan', 'Turing', 1, 1912),
                          (3, 'Grace', 'Hopper', 2, 1906);
insert into pets values (1, 'rex', 'the column');

-- one unnamed parameter of the row type: not callable through /rpc, selectable as a field
create function full_name(people) returns text language sql stable
  as $$ select $1.first_name || ' ' || $1.last_name $$;
create function initials(p people) returns jsonb language sql stable
  as $$ select jsonb_build_object('first', left(p.first_name, 1), 'last', left(p.last_name, 1)) $$;
create function age_in(people) returns int language sql stable as $$ select 2000 - $1.born $$;
create function team_size(teams) returns bigint language sql stable
  as $$ select count(*) from people where team_id = $1.id $$;
-- overloads by table
create function label(people) returns text language sql stable as $$ select 'person ' || $1.id $$;
create function label(teams) returns text language sql stable as $$ select 'team ' || $1.name $$;
-- a column of that name wins, as Postgres reads pets.shout
create function shout(pets) returns text language sql stable as $$ select upper($1.name) $$;
-- not computed fields: two parameters, a set, a schema outside the search path
create function greeting(people, text) returns text language sql stable as $$ select $2 || $1.first_name $$;
create function nicknames(people) returns setof text language sql stable as $$ select $1.first_name $$;
create schema hidden;
grant usage on schema hidden to anon;
create function hidden.secret(people) returns text language sql stable as $$ select 'secret' $$;
grant execute on function hidden.secret(people) to anon;

create function everyone() returns setof people language sql stable as $$ select * from people $$;
"#;

async fn ok(api: &Api, uri: &str) -> Value {
    let res = api.get(uri).await;
    assert!(res.status.is_success(), "{uri} -> {} {}", res.status, res.body);
    res.json()
}

async fn refused(api: &Api, uri: &str) -> (u16, Value) {
    let res = api.get(uri).await;
    (res.status.as_u16(), res.json())
}

#[tokio::test]
async fn computed_fields_are_selected_renamed_and_cast_but_not_in_star() {
    let api = api(SCHEMA).await;
    let v = ok(&api, "/rest/v1/people?select=id,full_name&order=id").await;
    assert_eq!(
        v,
        json!([
            {"id": 1, "full_name": "Ada Lovelace"},
            {"id": 2, "full_name": "Alan Turing"},
            {"id": 3, "full_name": "Grace Hopper"}
        ])
    );
    let v = ok(&api, "/rest/v1/people?select=name:full_name,age:age_in::text&id=eq.1").await;
    assert_eq!(v, json!([{"name": "Ada Lovelace", "age": "185"}]));
    let v = ok(&api, "/rest/v1/people?select=initials,first:initials->>first&id=eq.3").await;
    assert_eq!(v, json!([{"initials": {"first": "G", "last": "H"}, "first": "G"}]));
    let v = ok(&api, "/rest/v1/people?id=eq.1").await;
    assert_eq!(
        v,
        json!([{"id": 1, "first_name": "Ada", "last_name": "Lovelace", "team_id": 1, "born": 1815}]),
        "`*` is the columns only"
    );
    let v = ok(&api, "/rest/v1/people?select=team_id,n:id.count(),oldest:age_in.max()&order=team_id").await;
    assert_eq!(v, json!([{"team_id": 1, "n": 2, "oldest": 185}, {"team_id": 2, "n": 1, "oldest": 94}]));
}

#[tokio::test]
async fn computed_fields_filter_and_order() {
    let api = api(SCHEMA).await;
    let v = ok(&api, "/rest/v1/people?select=id&full_name=eq.Alan Turing").await;
    assert_eq!(v, json!([{"id": 2}]));
    let v = ok(&api, "/rest/v1/people?select=id&age_in=gt.90&order=full_name.desc").await;
    assert_eq!(v, json!([{"id": 3}, {"id": 1}]));
    let v = ok(&api, "/rest/v1/people?select=id&or=(full_name.like.*Hopper,age_in.gte.180)&order=id").await;
    assert_eq!(v, json!([{"id": 1}, {"id": 3}]));
    let v = ok(&api, "/rest/v1/people?select=id&initials->>last=eq.T").await;
    assert_eq!(v, json!([{"id": 2}]));
    let v = ok(&api, "/rest/v1/people?select=id&full_name=in.(Ada Lovelace,Grace Hopper)&order=age_in").await;
    assert_eq!(v, json!([{"id": 3}, {"id": 1}]));
    let v = ok(&api, "/rest/v1/teams?select=name&team_size=eq.2").await;
    assert_eq!(v, json!([{"name": "red"}]));
}

#[tokio::test]
async fn computed_fields_inside_embeds_and_related_order() {
    let api = api(SCHEMA).await;
    let v = ok(
        &api,
        "/rest/v1/teams?select=name,team_size,people(full_name)&people.full_name=like.A*&people.order=full_name.desc&order=id",
    )
    .await;
    assert_eq!(
        v,
        json!([
            {"name": "red", "team_size": 2, "people": [{"full_name": "Alan Turing"}, {"full_name": "Ada Lovelace"}]},
            {"name": "blue", "team_size": 1, "people": []}
        ])
    );
    let v = ok(&api, "/rest/v1/people?select=id,teams(label)&order=teams(label).desc,id").await;
    assert_eq!(
        v,
        json!([
            {"id": 1, "teams": {"label": "team red"}},
            {"id": 2, "teams": {"label": "team red"}},
            {"id": 3, "teams": {"label": "team blue"}}
        ])
    );
    let v = ok(&api, "/rest/v1/teams?select=id,people!inner(id)&people.label=eq.person 3").await;
    assert_eq!(v, json!([{"id": 2, "people": [{"id": 3}]}]));
}

#[tokio::test]
async fn overloads_go_by_table_and_columns_shadow_functions() {
    let api = api(SCHEMA).await;
    let v = ok(&api, "/rest/v1/people?select=label&id=eq.2").await;
    assert_eq!(v, json!([{"label": "person 2"}]));
    let v = ok(&api, "/rest/v1/teams?select=label&id=eq.2").await;
    assert_eq!(v, json!([{"label": "team blue"}]));
    let v = ok(&api, "/rest/v1/pets?select=shout").await;
    assert_eq!(v, json!([{"shout": "the column"}]), "the column, as Postgres resolves pets.shout");
}

#[tokio::test]
async fn functions_that_are_not_computed_fields_are_unknown_columns() {
    let api = api(SCHEMA).await;
    for field in ["greeting", "nicknames", "secret", "team_size"] {
        let (status, body) = refused(&api, &format!("/rest/v1/people?select=id,{field}")).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["code"], "42703", "{field}: {body}");
        assert_eq!(body["message"], format!("column people.{field} does not exist"), "{field}");
    }
    let (status, body) = refused(&api, "/rest/v1/people?secret=eq.secret").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("42703")), "outside the search path: {body}");
}

#[tokio::test]
async fn computed_fields_on_rpc_results_and_written_rows() {
    let api = api(SCHEMA).await;
    let v = ok(&api, "/rest/v1/rpc/everyone?select=id,full_name&full_name=like.A*&order=full_name").await;
    assert_eq!(v, json!([{"id": 1, "full_name": "Ada Lovelace"}, {"id": 2, "full_name": "Alan Turing"}]));

    let rep = [("prefer", "return=representation"), ("content-type", "application/json")];
    let res = api
        .send(
            "POST",
            "/rest/v1/people?select=id,full_name,label",
            &rep,
            r#"{"id": 4, "first_name": "Edsger", "last_name": "Dijkstra", "team_id": 2}"#,
        )
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.body);
    assert_eq!(res.json(), json!([{"id": 4, "full_name": "Edsger Dijkstra", "label": "person 4"}]));

    let upsert =
        [("prefer", "return=representation,resolution=merge-duplicates"), ("content-type", "application/json")];
    let res = api
        .send(
            "POST",
            "/rest/v1/people?select=full_name",
            &upsert,
            r#"{"id": 4, "first_name": "E. W.", "last_name": "Dijkstra", "team_id": 2}"#,
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    assert_eq!(res.json(), json!([{"full_name": "E. W. Dijkstra"}]));

    let res = api
        .send(
            "PATCH",
            "/rest/v1/people?full_name=eq.Grace Hopper&select=id,full_name",
            &rep,
            r#"{"last_name": "Murray"}"#,
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    assert_eq!(res.json(), json!([{"id": 3, "full_name": "Grace Murray"}]));
    let res = api.send("DELETE", "/rest/v1/people?full_name=eq.E. W. Dijkstra", &[], "").await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.body);
    assert_eq!(ok(&api, "/rest/v1/people?select=id&order=id").await, json!([{"id": 1}, {"id": 2}, {"id": 3}]));
}
