//! The plain handler: the baseline that counts. The shared anchors' refserver
//! (`bench/refserver`) adapted to this benchmark's tables: one sqlx query per request, the JSON
//! body built by Postgres and sent as-is, no RLS and no JWT check. For the user's tables the
//! owner is a query parameter, where an application without RLS would take it from its session.
//!
//! Two changes from the refserver make it a stricter floor:
//! - sqlx's per-acquire ping (`test_before_acquire`) is off, as in the RLS baseline, so each
//!   request is exactly one round trip to Postgres;
//! - its connections run with `plan_cache_mode = force_generic_plan`. With the default (`auto`),
//!   Postgres keeps planning `owner = $1 and price > $2 order by id limit 100` afresh on every
//!   execution (its generic estimate looks worse than the custom one), which cost that query a
//!   quarter to a third of its throughput in pgbench; forge-data's `owner = auth.uid()`
//!   has no parameter there and gets a cached plan. Forced generic plans are the same plans
//!   here, without the planning.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub(crate) async fn router(url: &str, pool_size: u32) -> Result<Router, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let options = options.options([("plan_cache_mode", "force_generic_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .min_connections(pool_size)
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    Ok(Router::new()
        .route("/public_items/{id}", get(public_one))
        .route("/public_items", get(public_many).post(public_create))
        .route("/items/{id}", get(one))
        .route("/items", get(many).post(create))
        .route("/categories", get(categories))
        .with_state(pool))
}

/// A JSON text produced by Postgres, sent as-is with the given status.
fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn internal(e: sqlx::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

fn one_row(row: Result<Option<String>, sqlx::Error>) -> Response {
    match row {
        Ok(Some(body)) => json_text(StatusCode::OK, body),
        Ok(None) => json_text(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.to_owned()),
        Err(e) => internal(e),
    }
}

fn body(body: Result<String, sqlx::Error>, status: StatusCode) -> Response {
    match body {
        Ok(body) => json_text(status, body),
        Err(e) => internal(e),
    }
}

// ---- public_items: the anon cases (the anchors' three) ----

#[derive(Deserialize)]
struct MinPrice {
    min: Option<i32>,
}

#[derive(Deserialize)]
struct NewPublicItem {
    name: String,
    price: i32,
}

async fn public_one(State(pool): State<PgPool>, Path(id): Path<i64>) -> Response {
    one_row(
        sqlx::query_scalar("select row_to_json(t)::text from public_items t where id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await,
    )
}

async fn public_many(State(pool): State<PgPool>, Query(q): Query<MinPrice>) -> Response {
    let rows = sqlx::query_scalar(
        "select coalesce(json_agg(t), '[]')::text
         from (select * from public_items where price >= $1 order by id limit 100) t",
    )
    .bind(q.min.unwrap_or(i32::MIN))
    .fetch_one(&pool)
    .await;
    body(rows, StatusCode::OK)
}

async fn public_create(State(pool): State<PgPool>, Json(item): Json<NewPublicItem>) -> Response {
    let row = sqlx::query_scalar(
        "insert into public_items (name, price) values ($1, $2) returning row_to_json(public_items.*)::text",
    )
    .bind(item.name)
    .bind(item.price)
    .fetch_one(&pool)
    .await;
    body(row, StatusCode::CREATED)
}

// ---- items and categories: the user's cases, without RLS ----

#[derive(Deserialize)]
struct OwnedFilter {
    owner: uuid::Uuid,
    min_price: i32,
}

#[derive(Deserialize)]
struct Owner {
    owner: uuid::Uuid,
}

#[derive(Deserialize)]
struct NewItem {
    owner: uuid::Uuid,
    category_id: i32,
    name: String,
    price: i32,
}

async fn one(State(pool): State<PgPool>, Path(id): Path<i64>) -> Response {
    one_row(
        sqlx::query_scalar("select row_to_json(t)::text from items t where id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await,
    )
}

async fn many(State(pool): State<PgPool>, Query(f): Query<OwnedFilter>) -> Response {
    let rows = sqlx::query_scalar(
        "select coalesce(json_agg(t), '[]')::text
         from (select * from items where owner = $1 and price > $2 order by id limit 100) t",
    )
    .bind(f.owner)
    .bind(f.min_price)
    .fetch_one(&pool)
    .await;
    body(rows, StatusCode::OK)
}

async fn create(State(pool): State<PgPool>, Json(item): Json<NewItem>) -> Response {
    let inserted = sqlx::query("insert into items (owner, category_id, name, price) values ($1, $2, $3, $4)")
        .bind(item.owner)
        .bind(item.category_id)
        .bind(item.name)
        .bind(item.price)
        .execute(&pool)
        .await;
    match inserted {
        Ok(_) => StatusCode::CREATED.into_response(),
        Err(e) => internal(e),
    }
}

async fn categories(State(pool): State<PgPool>, Query(o): Query<Owner>) -> Response {
    let rows = sqlx::query_scalar(
        "select coalesce(json_agg(c), '[]')::text from (
           select c.id, c.name, coalesce((select json_agg(i) from (select id, name, price from items
                    where category_id = c.id and owner = $1 order by id limit 20) i), '[]'::json) as items
           from categories c where c.id = any($2) order by c.id) c",
    )
    .bind(o.owner)
    .bind(vec![1i32, 2, 3])
    .fetch_one(&pool)
    .await;
    body(rows, StatusCode::OK)
}
