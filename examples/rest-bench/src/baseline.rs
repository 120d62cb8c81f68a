//! The hand-written side: axum handlers with sqlx, as a careful engineer would write them,
//! with the same authentication and the same RLS as forge-data.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    key: DecodingKey,
    validation: Validation,
}

#[derive(Serialize, sqlx::FromRow)]
struct Item {
    id: i64,
    owner: uuid::Uuid,
    category_id: i32,
    name: String,
    price: i32,
    created_at: String,
}

#[derive(Deserialize)]
struct NewItem {
    owner: uuid::Uuid,
    category_id: i32,
    name: String,
    price: i32,
}

#[derive(Deserialize)]
struct Filter {
    min_price: i32,
}

pub(crate) async fn router(url: &str, pool_size: u32, secret: &str) -> Result<Router, sqlx::Error> {
    let pool = PgPoolOptions::new().max_connections(pool_size).test_before_acquire(false).connect(url).await?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["authenticated"]);
    let state = AppState { pool, key: DecodingKey::from_secret(secret.as_bytes()), validation };
    Ok(Router::new()
        .route("/items/{id}", get(one))
        .route("/items", get(many).post(create))
        .route("/categories", get(categories))
        .with_state(state))
}

/// Verifies the bearer token and opens a transaction as that user.
async fn begin(state: &AppState, headers: &HeaderMap) -> Result<Transaction<'static, Postgres>, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| StatusCode::UNAUTHORIZED.into_response())?;
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &state.key, &state.validation)
        .map_err(|_| StatusCode::UNAUTHORIZED.into_response())?
        .claims;
    let mut tx = state.pool.begin().await.map_err(internal)?;
    sqlx::query("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)")
        .bind(claims.to_string())
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    Ok(tx)
}

fn internal(e: sqlx::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

const ONE: &str = "select id, owner, category_id, name, price, to_json(created_at)#>>'{}' as created_at
                   from items where id = $1";
const MANY: &str = "select id, owner, category_id, name, price, to_json(created_at)#>>'{}' as created_at
                    from items where price > $1 order by id limit 100";

async fn one(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let mut tx = match begin(&state, &headers).await {
        Ok(tx) => tx,
        Err(r) => return r,
    };
    let items: Result<Vec<Item>, _> = sqlx::query_as(ONE).bind(id).fetch_all(&mut *tx).await;
    match (items, tx.commit().await) {
        (Ok(items), Ok(())) => Json(items).into_response(),
        (Err(e), _) | (_, Err(e)) => internal(e),
    }
}

async fn many(State(state): State<AppState>, headers: HeaderMap, Query(f): Query<Filter>) -> Response {
    let mut tx = match begin(&state, &headers).await {
        Ok(tx) => tx,
        Err(r) => return r,
    };
    let items: Result<Vec<Item>, _> = sqlx::query_as(MANY).bind(f.min_price).fetch_all(&mut *tx).await;
    match (items, tx.commit().await) {
        (Ok(items), Ok(())) => Json(items).into_response(),
        (Err(e), _) | (_, Err(e)) => internal(e),
    }
}

async fn create(State(state): State<AppState>, headers: HeaderMap, Json(item): Json<NewItem>) -> Response {
    let mut tx = match begin(&state, &headers).await {
        Ok(tx) => tx,
        Err(r) => return r,
    };
    let inserted = sqlx::query("insert into items (owner, category_id, name, price) values ($1, $2, $3, $4)")
        .bind(item.owner)
        .bind(item.category_id)
        .bind(item.name)
        .bind(item.price)
        .execute(&mut *tx)
        .await;
    match (inserted, tx.commit().await) {
        (Ok(_), Ok(())) => StatusCode::CREATED.into_response(),
        (Err(e), _) | (_, Err(e)) => internal(e),
    }
}

#[derive(Serialize)]
struct Category {
    id: i32,
    name: String,
    items: serde_json::Value,
}

async fn categories(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut tx = match begin(&state, &headers).await {
        Ok(tx) => tx,
        Err(r) => return r,
    };
    let rows: Result<Vec<(i32, String, serde_json::Value)>, _> = sqlx::query_as(
        "select c.id, c.name, coalesce((select json_agg(i) from (select id, name, price from items
                 where category_id = c.id order by id limit 20) i), '[]'::json)
         from categories c where c.id = any($1) order by c.id",
    )
    .bind(vec![1i32, 2, 3])
    .fetch_all(&mut *tx)
    .await;
    match (rows, tx.commit().await) {
        (Ok(rows), Ok(())) => {
            Json(rows.into_iter().map(|(id, name, items)| Category { id, name, items }).collect::<Vec<_>>())
                .into_response()
        }
        (Err(e), _) | (_, Err(e)) => internal(e),
    }
}
