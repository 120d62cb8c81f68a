//! Aggregates beside and inside embeds: the parent is grouped by its embeds, as PostgREST
//! groups by them (`groupF`), and an embed's own aggregates are per parent row.

mod common;

use common::api;
use serde_json::{Value, json};

const SCHEMA: &str = r#"
create table channels (id int primary key, slug text not null);
create table users (id int primary key, username text not null);
create table messages (id int primary key, channel_id int references channels (id), user_id int references users (id), body text, score int);
insert into channels values (1, 'general'), (2, 'random');
insert into users values (1, 'ada'), (2, 'bob');
insert into messages values (1, 1, 1, 'a', 3), (2, 1, 2, 'b', 4), (3, 2, 1, 'c', 5), (4, 1, 1, 'd', 6);
grant select on all tables in schema public to anon;
"#;

/// The rows of a successful answer, sorted by their JSON text (groups come in no order).
async fn rows(api: &common::Api, uri: &str) -> Vec<Value> {
    let res = api.get(uri).await;
    assert!(res.status.is_success(), "{uri}: {} {}", res.status, res.body);
    let mut rows = res.json().as_array().expect("an array").clone();
    rows.sort_by_key(|r| r.to_string());
    rows
}

/// `rows`' order, for expected rows written in any order.
fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|r| r.to_string());
    rows
}

#[tokio::test]
async fn aggregates_beside_embeds_group_by_them() {
    let api = api(SCHEMA).await;
    // Grouped by the channel: 3 + 4 + 6 in general, 5 in random.
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=score.sum(),channels(slug)").await,
        vec![
            json!({ "sum": 13, "channels": { "slug": "general" } }),
            json!({ "sum": 5, "channels": { "slug": "random" } })
        ]
    );
    // By two embeds and a count.
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=channels(slug),users(username),count()").await,
        vec![
            json!({ "channels": { "slug": "general" }, "users": { "username": "bob" }, "count": 1 }),
            json!({ "channels": { "slug": "general" }, "users": { "username": "ada" }, "count": 2 }),
            json!({ "channels": { "slug": "random" }, "users": { "username": "ada" }, "count": 1 }),
        ]
    );
    // A spread's columns group too.
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=score.max(),...channels(slug)").await,
        vec![json!({ "max": 5, "slug": "random" }), json!({ "max": 6, "slug": "general" })]
    );
    // Filters apply before grouping.
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=score.sum(),users(username)&score=gt.3").await,
        vec![json!({ "sum": 11, "users": { "username": "ada" } }), json!({ "sum": 4, "users": { "username": "bob" } })]
    );
}

#[tokio::test]
async fn aggregates_inside_embeds_count_per_parent_row() {
    let api = api(SCHEMA).await;
    // Inside an embed that has an embed of its own: grouped by that one.
    let got = rows(&api, "/rest/v1/channels?select=slug,messages(count(),users(username))&order=id").await;
    let general = got.iter().find(|r| r["slug"] == "general").expect("general");
    let mut inner = general["messages"].as_array().expect("messages").clone();
    inner.sort_by_key(|r| r.to_string());
    assert_eq!(
        inner,
        vec![
            json!({ "count": 1, "users": { "username": "bob" } }),
            json!({ "count": 2, "users": { "username": "ada" } })
        ]
    );
    // And plain aggregates inside an embed.
    assert_eq!(
        rows(&api, "/rest/v1/users?select=username,messages(score.sum())").await,
        vec![
            json!({ "username": "ada", "messages": [{ "sum": 14 }] }),
            json!({ "username": "bob", "messages": [{ "sum": 4 }] })
        ]
    );
}

#[tokio::test]
async fn aggregates_inside_a_spread_are_the_parents() {
    let api = api(SCHEMA).await;
    // PostgREST aggregates a spread's columns in the parent, grouped by the rest.
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=...channels(slug,id.count())").await,
        vec![json!({ "slug": "random", "count": 1 }), json!({ "slug": "general", "count": 3 })]
    );
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=user_id,...channels(id.count())").await,
        vec![json!({ "user_id": 2, "count": 1 }), json!({ "user_id": 1, "count": 3 })]
    );
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=...users(username),score.sum(),...channels(id.max())").await,
        vec![json!({ "username": "bob", "sum": 4, "max": 1 }), json!({ "username": "ada", "sum": 14, "max": 2 })]
    );
}

#[tokio::test]
async fn embeds_are_grouped_by_their_values_not_their_keys() {
    // Two customers in one city: grouping by the embed merges them, as PostgREST's GROUP BY
    // on the embed's JSON does.
    let api = api(r#"
        create table customers (id int primary key, city text not null);
        create table orders (id int primary key, customer_id int references customers (id), amount int not null);
        insert into customers values (1, 'Lyon'), (2, 'Lyon'), (3, 'Nice');
        insert into orders values (1, 1, 10), (2, 2, 20), (3, 3, 5), (4, null, 7);
        grant select on all tables in schema public to anon;
        "#)
    .await;
    assert_eq!(
        rows(&api, "/rest/v1/orders?select=amount.sum(),customers(city)").await,
        sorted(vec![
            json!({ "sum": 30, "customers": { "city": "Lyon" } }),
            json!({ "sum": 5, "customers": { "city": "Nice" } }),
            json!({ "sum": 7, "customers": null }),
        ])
    );
    assert_eq!(
        rows(&api, "/rest/v1/orders?select=amount.sum(),...customers(city)").await,
        sorted(vec![
            json!({ "sum": 30, "city": "Lyon" }),
            json!({ "sum": 5, "city": "Nice" }),
            json!({ "sum": 7, "city": null })
        ])
    );
    // To-many embeds group by their whole array.
    assert_eq!(
        rows(&api, "/rest/v1/customers?select=id.count(),orders(amount)").await,
        sorted(vec![
            json!({ "count": 1, "orders": [{ "amount": 10 }] }),
            json!({ "count": 1, "orders": [{ "amount": 20 }] }),
            json!({ "count": 1, "orders": [{ "amount": 5 }] }),
        ])
    );
}

#[tokio::test]
async fn aggregates_in_a_to_many_spread_are_not_implemented_as_in_postgrest() {
    let api = api(SCHEMA).await;
    let res = api.get("/rest/v1/channels?select=slug,...messages(score.sum())").await;
    assert_eq!(res.status.as_u16(), 400, "{}", res.body);
    assert_eq!(
        res.json(),
        json!({
            "code": "PGRST127",
            "message": "Feature not implemented",
            "details": "Aggregates are not implemented for one-to-many or many-to-many spreads.",
            "hint": null
        })
    );
}

#[tokio::test]
async fn a_spread_carrying_an_embed_groups_beside_aggregates() {
    let api = api(SCHEMA).await;
    // The spread carries `messages`, JSON: grouped as jsonb.
    assert_eq!(
        rows(&api, "/rest/v1/messages?select=score.sum(),...channels(slug,messages(id))&channel_id=eq.2").await,
        vec![json!({ "sum": 5, "slug": "random", "messages": [{ "id": 3 }] })]
    );
}
