//! Snapshots of the SQL the planner generates for each construct. A change here is a change
//! to every query Forge sends: review the new SQL, then update the snapshot.

use super::*;
use crate::query::{decode_query, parse_query};
use crate::schema::{Column, ForeignKey, QualifiedName, Relation, RelationKind, Schema};

pub(super) fn column(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        position: 1,
        data_type: ty.into(),
        type_name: ty.into(),
        nullable: true,
        default: None,
        generated: false,
        element_type: None,
        enum_values: Vec::new(),
        comment: None,
    }
}

/// A table fixture: `columns` as (name, type), with `pk` as its primary (and only unique) key.
pub(super) fn relation(name: &str, columns: &[(&str, &str)], pk: &[&str]) -> Relation {
    Relation {
        name: QualifiedName::new("public", name),
        kind: RelationKind::Table,
        columns: columns.iter().map(|(n, t)| column(n, t)).collect(),
        primary_key: pk.iter().map(|s| (*s).to_owned()).collect(),
        unique_keys: vec![pk.iter().map(|s| (*s).to_owned()).collect()],
        insertable: true,
        updatable: true,
        deletable: true,
        comment: None,
        computed_fields: Vec::new(),
        computed_relationships: Vec::new(),
    }
}

fn fk(name: &str, table: &str, columns: &[&str], foreign: &str, foreign_columns: &[&str]) -> ForeignKey {
    ForeignKey {
        name: name.into(),
        table: QualifiedName::new("public", table),
        columns: columns.iter().map(|s| (*s).to_owned()).collect(),
        foreign_table: QualifiedName::new("public", foreign),
        foreign_columns: foreign_columns.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn schema() -> Schema {
    let mut s = Schema { schemas: vec!["public".into()], ..Schema::default() };
    for r in [
        relation("countries", &[("id", "integer"), ("name", "text")], &["id"]),
        relation("cities", &[("id", "integer"), ("name", "text"), ("country_id", "integer")], &["id"]),
        relation("users", &[("id", "uuid"), ("name", "text")], &["id"]),
        relation("teams", &[("id", "integer"), ("name", "text")], &["id"]),
        relation("members", &[("user_id", "uuid"), ("team_id", "integer")], &["user_id", "team_id"]),
    ] {
        s.relations.insert(r.name.clone(), r);
    }
    s.foreign_keys = vec![
        fk("cities_country_id_fkey", "cities", &["country_id"], "countries", &["id"]),
        fk("members_user_id_fkey", "members", &["user_id"], "users", &["id"]),
        fk("members_team_id_fkey", "members", &["team_id"], "teams", &["id"]),
    ];
    s.link();
    s
}

fn read_sql(relation: &str, query: &str, output: Output, exact_count: bool) -> String {
    let s = schema();
    let q = parse_query(&decode_query(query)).expect("parses");
    let rel = s.relation("public", relation).expect("relation");
    let req = ReadRequest {
        source: Source::Relation,
        schema: &s,
        relation: rel,
        query: &q,
        offset: 0,
        limit: None,
        exact_count,
        output,
        search_path: &[],
    };
    plan_read(&req).expect("plans").statement.sql
}

#[test]
fn read_columns_filter_order() {
    assert_eq!(
        read_sql("cities", "select=id,town:name&name=eq.Paris&order=id.desc.nullslast", Output::Json, false),
        r#"SELECT NULL::int8 AS "total", pg_catalog.count(_postgrest_t) AS "page", coalesce(json_agg(_postgrest_t), '[]')::text AS "body" FROM (SELECT "t0"."id" AS "id", "t0"."name" AS "town" FROM "public"."cities" AS "t0" WHERE "t0"."name" = CAST($1::text AS text) ORDER BY "t0"."id" DESC NULLS LAST) AS "_postgrest_t""#
    );
}

#[test]
fn read_with_exact_count_singular_and_csv() {
    let sql = read_sql("countries", "select=name&id=gt.1", Output::Singular, true);
    assert_eq!(
        sql,
        r#"SELECT (SELECT pg_catalog.count(*) FROM (SELECT 1 FROM "public"."countries" AS "t0" WHERE "t0"."id" > CAST($1::text AS integer)) AS "_postgrest_c") AS "total", pg_catalog.count(_postgrest_t) AS "page", coalesce((json_agg(_postgrest_t) -> 0)::text, '') AS "body" FROM (SELECT "t0"."name" AS "name" FROM "public"."countries" AS "t0" WHERE "t0"."id" > CAST($2::text AS integer)) AS "_postgrest_t""#
    );
    let sql = read_sql("countries", "select=name", Output::Csv, false);
    assert!(
        sql.contains(
            "coalesce(string_agg(substring(_postgrest_t::text, 2, length(_postgrest_t::text) - 2), chr(10)), '')"
        ),
        "{sql}"
    );
}

#[test]
fn embeds_to_one_to_many_inner_and_many_to_many() {
    assert_eq!(
        read_sql("cities", "select=name,countries(name)", Output::Json, false),
        r#"SELECT NULL::int8 AS "total", pg_catalog.count(_postgrest_t) AS "page", coalesce(json_agg(_postgrest_t), '[]')::text AS "body" FROM (SELECT "t0"."name" AS "name", (SELECT row_to_json("_e2") FROM (SELECT "t1"."name" AS "name" FROM "public"."countries" AS "t1" WHERE "t1"."id" = "t0"."country_id" LIMIT $1) AS "_e2") AS "countries" FROM "public"."cities" AS "t0") AS "_postgrest_t""#
    );
    assert_eq!(
        read_sql(
            "countries",
            "select=name,cities!inner(name)&cities.name=like.P*&cities.order=name&cities.limit=2",
            Output::Json,
            false
        ),
        r#"SELECT NULL::int8 AS "total", pg_catalog.count(_postgrest_t) AS "page", coalesce(json_agg(_postgrest_t), '[]')::text AS "body" FROM (SELECT "t0"."name" AS "name", (SELECT coalesce(json_agg("_e2"), '[]'::json) FROM (SELECT "t1"."name" AS "name" FROM "public"."cities" AS "t1" WHERE ("t1"."country_id" = "t0"."id") AND ("t1"."name"::text LIKE $1::text) ORDER BY "t1"."name" ASC LIMIT $2) AS "_e2") AS "cities" FROM "public"."countries" AS "t0" WHERE EXISTS(SELECT 1 FROM "public"."cities" AS "t1" WHERE ("t1"."country_id" = "t0"."id") AND ("t1"."name"::text LIKE $3::text))) AS "_postgrest_t""#
    );
    let sql = read_sql("users", "select=name,teams(name)", Output::Json, false);
    assert!(
        sql.contains(r#"FROM "public"."teams" AS "t1" INNER JOIN "public"."members" AS "j2" ON "j2"."team_id" = "t1"."id" WHERE "j2"."user_id" = "t0"."id""#),
        "{sql}"
    );
}

#[test]
fn writes_minimal_and_returning() {
    let s = schema();
    let rel = s.relation("public", "cities").expect("cities");
    let q = parse_query(&decode_query("id=eq.1")).expect("parses");
    let insert = Write::Insert {
        rows: r#"[{"name":"x"}]"#.into(),
        columns: vec!["name".into()],
        missing_default: false,
        conflict: Some(Conflict::Merge(vec!["id".into()])),
    };
    let empty = parse_query(&[]).expect("parses");
    assert_eq!(
        plan_write(rel, &empty, &insert, &[]).expect("plans").sql,
        r#"INSERT INTO "public"."cities" ("name") SELECT ("_x"."_r")."name" FROM (SELECT jsonb_populate_record(NULL::"public"."cities", "_j") AS "_r", "_j" AS "_v" FROM jsonb_array_elements($1::text::jsonb) AS "_j") AS "_x" ON CONFLICT ("id") DO UPDATE SET "name" = "excluded"."name""#
    );
    let update = Write::Update { row: r#"{"name":"y"}"#.into(), columns: vec!["name".into()] };
    assert_eq!(
        plan_write(rel, &q, &update, &[]).expect("plans").sql,
        r#"UPDATE "public"."cities" SET "name" = (jsonb_populate_record(NULL::"public"."cities", $1::text::jsonb))."name" WHERE "cities"."id" = CAST($2::text AS integer)"#
    );
    assert_eq!(
        plan_write(rel, &q, &Write::Delete, &[]).expect("plans").sql,
        r#"DELETE FROM "public"."cities" WHERE "cities"."id" = CAST($1::text AS integer)"#
    );
    let shaped = parse_query(&decode_query("select=name,countries(name)")).expect("parses");
    let read = ReadRequest {
        source: Source::Written,
        schema: &s,
        relation: rel,
        query: &shaped,
        offset: 0,
        limit: None,
        exact_count: false,
        output: Output::Json,
        search_path: &[],
    };
    let sql = plan_write_returning(&read, &Write::Delete).expect("plans").statement.sql;
    assert!(sql.starts_with(r#"WITH "pgrst_source" AS (DELETE FROM "public"."cities" RETURNING *) SELECT"#), "{sql}");
    assert!(sql.contains(r#"FROM "pgrst_source" AS "t0""#), "{sql}");
}

#[test]
fn computed_fields_are_schema_qualified_calls_on_the_row() {
    let mut s = schema();
    let key = QualifiedName::new("public", "countries");
    let countries = s.relations.get_mut(&key).expect("countries");
    countries.computed_fields = vec![
        crate::schema::ComputedField { function: QualifiedName::new("hidden", "label"), type_name: "text".into() },
        crate::schema::ComputedField { function: QualifiedName::new("public", "label"), type_name: "text".into() },
    ];
    let q = parse_query(&decode_query("select=id,label&label=eq.x")).expect("parses");
    let rel = s.relation("public", "countries").expect("countries");
    let path = ["public".to_owned()];
    let read = ReadRequest {
        source: Source::Relation,
        schema: &s,
        relation: rel,
        query: &q,
        offset: 0,
        limit: None,
        exact_count: false,
        output: Output::Json,
        search_path: &path,
    };
    let sql = plan_read(&read).expect("plans").statement.sql;
    assert!(
        sql.contains(r#"SELECT "t0"."id" AS "id", "public"."label"("t0".*) AS "label" FROM "public"."countries" AS "t0" WHERE "public"."label"("t0".*) = CAST($1::text AS text)"#),
        "the first schema of the search path that has one: {sql}"
    );
    let written = ReadRequest { source: Source::Written, ..read };
    let sql = plan_write_returning(&written, &Write::Delete).expect("plans").statement.sql;
    assert!(
        sql.contains(r#""public"."label"(ROW("t0"."id", "t0"."name")::"public"."countries") AS "label""#),
        "a write's returned rows are records, made into the row type: {sql}"
    );
    let err = plan_read(&ReadRequest { search_path: &[], ..read }).expect_err("not on the path");
    assert_eq!(err.kind(), Some(crate::error::ErrorKind::UndefinedColumn));
}

#[test]
fn computed_relationships_embed_the_function_called_on_the_row() {
    let mut s = schema();
    let key = QualifiedName::new("public", "countries");
    s.relations.get_mut(&key).expect("countries").computed_relationships = vec![crate::schema::ComputedRelationship {
        function: QualifiedName::new("public", "big_cities"),
        target: QualifiedName::new("public", "cities"),
        to_one: false,
    }];
    let q = parse_query(&decode_query("select=name,big_cities(name)")).expect("parses");
    let rel = s.relation("public", "countries").expect("countries");
    let path = ["public".to_owned()];
    let read = ReadRequest {
        source: Source::Relation,
        schema: &s,
        relation: rel,
        query: &q,
        offset: 0,
        limit: None,
        exact_count: false,
        output: Output::Json,
        search_path: &path,
    };
    let sql = plan_read(&read).expect("plans").statement.sql;
    assert!(
        sql.contains(r#"(SELECT coalesce(json_agg("_e2"), '[]'::json) FROM (SELECT "t1"."name" AS "name" FROM "public"."big_cities"("t0".*) AS "t1") AS "_e2") AS "big_cities""#),
        "{sql}"
    );
}
