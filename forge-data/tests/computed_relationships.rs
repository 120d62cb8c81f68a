//! Computed relationships (issue 13, item 2): a function taking a row and returning rows of a
//! table is embedded like a relationship, as PostgREST's resource_embedding.rst "Computed
//! Relationships" and test/spec/Feature/Query/ComputedRelsSpec.hs describe: to-one when it
//! returns one row or `SETOF ... ROWS 1`, to-many otherwise.

mod common;

use common::{Api, api};
use serde_json::{Value, json};

const SCHEMA: &str = r#"
create table designers (id int primary key, name text not null);
create table videogames (id int primary key, name text not null, designer_id int references designers(id));
insert into designers values (1, 'Sid Meier'), (2, 'Hironobu Sakaguchi'), (3, 'Nobody');
insert into videogames values (1, 'Civilization I', 1), (2, 'Civilization II', 1), (3, 'Final Fantasy I', 2),
                              (4, 'Final Fantasy II', 2), (5, 'Tetris', null);
create function computed_designers(videogames) returns setof designers language sql stable rows 1
  as $$ select * from designers where id = $1.designer_id $$;
create function computed_designers_noset(videogames) returns designers language sql stable
  as $$ select * from designers where id = $1.designer_id $$;
create function computed_videogames(designers) returns setof videogames language sql stable
  as $$ select * from videogames where designer_id = $1.id $$;
create function getallvideogames() returns setof videogames language sql stable as $$ select * from videogames $$;
-- named like the table: overrides the relationship the foreign key gives
create function designers(videogames) returns setof designers language sql stable rows 1
  as $$ select * from designers where id = 3 $$;
"#;

async fn ok(api: &Api, uri: &str) -> Value {
    let res = api.get(uri).await;
    assert!(res.status.is_success(), "{uri} -> {} {}", res.status, res.body);
    res.json()
}

#[tokio::test]
async fn to_one_and_to_many_computed_relationships_embed() {
    let api = api(SCHEMA).await;
    let v = ok(&api, "/rest/v1/videogames?select=name,designer:computed_designers(name)&order=id").await;
    assert_eq!(
        v,
        json!([
            {"name": "Civilization I", "designer": {"name": "Sid Meier"}},
            {"name": "Civilization II", "designer": {"name": "Sid Meier"}},
            {"name": "Final Fantasy I", "designer": {"name": "Hironobu Sakaguchi"}},
            {"name": "Final Fantasy II", "designer": {"name": "Hironobu Sakaguchi"}},
            {"name": "Tetris", "designer": null}
        ])
    );
    let v =
        ok(&api, "/rest/v1/videogames?select=name,designer:computed_designers_noset(name)&id=in.(1,3)&order=id").await;
    assert_eq!(
        v,
        json!([
            {"name": "Civilization I", "designer": {"name": "Sid Meier"}},
            {"name": "Final Fantasy I", "designer": {"name": "Hironobu Sakaguchi"}}
        ])
    );
    let v = ok(
        &api,
        "/rest/v1/designers?select=name,videogames:computed_videogames(name)&videogames.order=name.desc&order=id",
    )
    .await;
    assert_eq!(
        v,
        json!([
            {"name": "Sid Meier", "videogames": [{"name": "Civilization II"}, {"name": "Civilization I"}]},
            {"name": "Hironobu Sakaguchi", "videogames": [{"name": "Final Fantasy II"}, {"name": "Final Fantasy I"}]},
            {"name": "Nobody", "videogames": []}
        ])
    );
    let v =
        ok(&api, "/rest/v1/designers?select=name,computed_videogames(id)&computed_videogames.limit=1&id=eq.2").await;
    assert_eq!(v, json!([{"name": "Hironobu Sakaguchi", "computed_videogames": [{"id": 3}]}]));
    let v = ok(&api, "/rest/v1/designers?select=id,...computed_videogames(game:name)&id=eq.1").await;
    assert_eq!(v, json!([{"id": 1, "game": ["Civilization I", "Civilization II"]}]), "a to-many spread");
}

#[tokio::test]
async fn inner_joins_null_filters_counts_and_related_order() {
    let api = api(SCHEMA).await;
    let res = api
        .send(
            "GET",
            "/rest/v1/designers?select=name,videogames:computed_videogames!inner(name)&videogames.name=eq.Civilization I",
            &[("prefer", "count=exact")],
            "",
        )
        .await;
    assert_eq!(res.json(), json!([{"name": "Sid Meier", "videogames": [{"name": "Civilization I"}]}]));
    assert_eq!(res.header("content-range"), Some("0-0/1"));
    let res = api
        .send(
            "GET",
            "/rest/v1/videogames?select=name,designer:computed_designers!inner(name)&designer.name=like.*Hironobu*",
            &[("prefer", "count=exact")],
            "",
        )
        .await;
    assert_eq!(
        res.json(),
        json!([
            {"name": "Final Fantasy I", "designer": {"name": "Hironobu Sakaguchi"}},
            {"name": "Final Fantasy II", "designer": {"name": "Hironobu Sakaguchi"}}
        ])
    );
    assert_eq!(res.header("content-range"), Some("0-1/2"));
    let v = ok(&api, "/rest/v1/videogames?select=name,designer:computed_designers()&designer=is.null").await;
    assert_eq!(v, json!([{"name": "Tetris"}]));
    let v = ok(
        &api,
        "/rest/v1/videogames?select=id,designer:computed_designers(name)&order=designer(name).desc.nullslast,id.desc&limit=3",
    )
    .await;
    assert_eq!(
        v,
        json!([
            {"id": 2, "designer": {"name": "Sid Meier"}},
            {"id": 1, "designer": {"name": "Sid Meier"}},
            {"id": 4, "designer": {"name": "Hironobu Sakaguchi"}}
        ])
    );
    let res = api.get("/rest/v1/designers?select=id,computed_videogames(name)&order=computed_videogames(name)").await;
    assert_eq!((res.status.as_u16(), res.json()["code"].as_str()), (400, Some("PGRST118")), "to-many: {}", res.body);
}

#[tokio::test]
async fn on_rpc_results_and_written_rows_and_overriding_detected_relationships() {
    let api = api(SCHEMA).await;
    let v = ok(&api, "/rest/v1/rpc/getallvideogames?select=name,designer:computed_designers(name)&id=lt.3").await;
    assert_eq!(
        v,
        json!([
            {"name": "Civilization I", "designer": {"name": "Sid Meier"}},
            {"name": "Civilization II", "designer": {"name": "Sid Meier"}}
        ])
    );
    let rep = [("prefer", "return=representation"), ("content-type", "application/json")];
    let res = api
        .send(
            "POST",
            "/rest/v1/videogames?select=name,designer:computed_designers(name)",
            &rep,
            r#"{"id": 6, "name": "Chrono Trigger", "designer_id": 2}"#,
        )
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.body);
    assert_eq!(res.json(), json!([{"name": "Chrono Trigger", "designer": {"name": "Hironobu Sakaguchi"}}]));
    let res = api
        .send(
            "PATCH",
            "/rest/v1/designers?select=name,videogames:computed_videogames(name)&id=eq.1",
            &rep,
            r#"{"name": "Sidney K. Meier"}"#,
        )
        .await;
    assert_eq!(
        res.json(),
        json!([{"name": "Sidney K. Meier", "videogames": [{"name": "Civilization I"}, {"name": "Civilization II"}]}])
    );
    let upsert =
        [("prefer", "return=representation,resolution=merge-duplicates"), ("content-type", "application/json")];
    let res = api
        .send(
            "POST",
            "/rest/v1/videogames?select=name,designer:computed_designers(name)",
            &upsert,
            r#"{"id": 6, "name": "Chrono Trigger DS", "designer_id": 2}"#,
        )
        .await;
    assert_eq!(res.json(), json!([{"name": "Chrono Trigger DS", "designer": {"name": "Hironobu Sakaguchi"}}]));

    let v = ok(&api, "/rest/v1/videogames?select=name,designers(name)&id=eq.1").await;
    assert_eq!(v, json!([{"name": "Civilization I", "designers": {"name": "Nobody"}}]), "the function wins");
    let v = ok(&api, "/rest/v1/videogames?select=name,designers!videogames_designer_id_fkey(name)&id=eq.1").await;
    assert_eq!(v, json!([{"name": "Civilization I", "designers": {"name": "Nobody"}}]), "even with a hint");
}
