//! Project databases on two Postgres clusters: the server's own (embedded) and a second one
//! from its configuration. New projects go to the least-loaded cluster, are served the same
//! way wherever they live, and leave nothing behind on their cluster when deleted.

mod common;

use common::{Server, command};
use serde_json::json;
use sqlx::Connection as _;

#[tokio::test]
async fn new_projects_go_to_the_least_loaded_cluster() {
    // The second cluster: test support's private one (a database on it is the admin's).
    let second = forge_core::testing::test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("forge.toml"),
        format!(
            "[[clusters]]\nid = \"second\"\nurl = \"{}\"\ngateway_url = \"{}\"\n",
            second.url(),
            second.gateway_url()
        ),
    )
    .expect("write forge.toml");
    let server = Server::start(dir.path(), &[]);
    let out = command(dir.path()).args(["tokens", "create", "--email", "ops@example.com"]).output().expect("cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bearer = format!("Bearer {}", String::from_utf8(out.stdout).expect("utf-8").trim());

    let mut refs = Vec::new();
    for i in 0..4 {
        let body = json!({ "name": format!("p{i}"), "organization_id": "default" }).to_string();
        let res = server.request(
            "POST",
            "/v1/projects",
            &[("authorization", &bearer), ("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(res.status, 201, "{}", res.body);
        refs.push(res.json()["ref"].as_str().expect("ref").to_owned());
    }

    // Where each went, from the control plane; each cluster has two.
    let admin = common::embedded_url(&dir.path().join("data"));
    let platform = format!("{}/forge_platform", admin.strip_suffix("/postgres").expect("postgres"));
    let mut conn = sqlx::PgConnection::connect(&platform).await.expect("platform database");
    let placed: Vec<(String, String, String)> = sqlx::query_as(
        "select ref, cluster_id, database from forge.projects where cluster_id is not null order by created_at",
    )
    .fetch_all(&mut conn)
    .await
    .expect("placements");
    let on_second: Vec<_> = placed.iter().filter(|(_, c, _)| c == "second").collect();
    assert_eq!((placed.len(), on_second.len()), (4, 2), "{placed:?}");

    // The databases are where the control plane says, and each project is served.
    let mut second_conn = sqlx::PgConnection::connect(second.url()).await.expect("second cluster");
    for (reference, cluster, database) in &placed {
        let on: bool = sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
            .bind(database)
            .fetch_one(&mut second_conn)
            .await
            .expect("lookup");
        assert_eq!(on, cluster == "second", "{reference} on {cluster}");
        let keys =
            server.request("GET", &format!("/v1/projects/{reference}/api-keys"), &[("authorization", &bearer)], b"");
        let anon =
            keys.json().as_array().expect("keys").iter().find(|k| k["kind"] == "legacy_anon").expect("anon")["api_key"]
                .as_str()
                .expect("key")
                .to_owned();
        let sql = json!({ "query": "create table t (id int primary key); grant select on t to anon; insert into t values (7)" });
        let res = server.request(
            "POST",
            &format!("/v1/projects/{reference}/database/query"),
            &[("authorization", &bearer), ("content-type", "application/json")],
            sql.to_string().as_bytes(),
        );
        assert_eq!(res.status, 200, "{}", res.body);
        let rows = server.request("GET", &format!("/p/{reference}/rest/v1/t"), &[("apikey", &anon)], b"");
        assert_eq!(rows.json(), json!([{ "id": 7 }]), "{reference} on {cluster}");
    }

    // Deleting a project on the second cluster removes its database there.
    let (reference, _, database) = on_second[0];
    let res = server.request("DELETE", &format!("/v1/projects/{reference}"), &[("authorization", &bearer)], b"");
    assert_eq!(res.status, 200, "{}", res.body);
    let left: i64 = sqlx::query_scalar("select count(*) from pg_database where datname = $1")
        .bind(database)
        .fetch_one(&mut second_conn)
        .await
        .expect("count");
    assert_eq!(left, 0);
    // The next project goes to the second cluster again: it now has fewer.
    let body = json!({ "name": "p4", "organization_id": "default" }).to_string();
    let res = server.request(
        "POST",
        "/v1/projects",
        &[("authorization", &bearer), ("content-type", "application/json")],
        body.as_bytes(),
    );
    let reference = res.json()["ref"].as_str().expect("ref").to_owned();
    let cluster: String = sqlx::query_scalar("select cluster_id from forge.projects where ref = $1")
        .bind(&reference)
        .fetch_one(&mut conn)
        .await
        .expect("cluster");
    assert_eq!(cluster, "second");
}
