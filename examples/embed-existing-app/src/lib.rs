//! An existing axum app that takes Forge in piece by piece: it keeps its own state, its own
//! routes and its own sqlx pool, and mounts forge-auth at `/api/auth` and forge-data at
//! `/api/db` over that same pool. Its own handlers read the caller with forge-core's
//! [`Principal`] extractor, so a session from forge-auth is recognised everywhere.
//!
//! | route | served by |
//! |---|---|
//! | `GET /health` | the app (its own state) |
//! | `GET /me/notes` | the app: the caller's notes, read on the app's own pool |
//! | `/api/auth/*` | forge-auth (supabase-js `auth`, with `auth: { url }` pointed here) |
//! | `/api/db/*` | forge-data (PostgREST), row-level security as the caller |

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use forge_core::{
    Database, DatabaseConfig, Principal, Project, ProjectKeys, ProjectLayer, ProjectRef, ProjectSettings,
};
use serde_json::{Value, json};
use sqlx::PgPool;

/// The app's own schema: notes that belong to a user, guarded by row-level security so that
/// forge-data's `/api/db/notes` shows each caller only their own.
pub const SCHEMA: &str = "
create table if not exists public.notes (
  id bigint generated always as identity primary key,
  owner uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body text not null check (length(body) between 1 and 1000)
);
alter table public.notes enable row level security;
drop policy if exists own_notes on public.notes;
create policy own_notes on public.notes for all to authenticated
  using (owner = auth.uid()) with check (owner = auth.uid());
grant select, insert, update, delete on public.notes to authenticated;
";

/// The app's state: what it had before Forge, and nothing of Forge's.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The app's own pool, which Forge shares.
    pub pool: PgPool,
    /// Shown by `/health`.
    pub name: &'static str,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database URL or a setting is not valid.
    #[error("configuration: {0}")]
    Config(String),
    /// The schema could not be applied.
    #[error("schema: {0}")]
    Schema(String),
}

/// The app's routes with Forge mounted, over `pool` (the app's own). `url` is the database's
/// URL, which Forge's RLS gateway connects with (a `PgPool` does not reveal its password);
/// `gateway_url`, when set, is the `authenticator` role's. `secret` signs the project's keys
/// and sessions (at least 32 bytes).
pub async fn app(
    pool: PgPool,
    url: &str,
    gateway_url: Option<&str>,
    secret: &[u8],
    public_url: &str,
) -> Result<(Router, Project), StartError> {
    let mut config = DatabaseConfig::new(url);
    if let Some(gateway) = gateway_url {
        config = config.with_gateway_url(gateway);
    }
    let db = Database::from_pool(pool.clone(), &config).map_err(|e| StartError::Config(e.to_string()))?;
    forge_core::bootstrap::apply(&pool).await.map_err(|e| StartError::Schema(e.to_string()))?;
    forge_core::migrate::run(&pool, &[forge_auth::MIGRATIONS]).await.map_err(|e| StartError::Schema(e.to_string()))?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await.map_err(|e| StartError::Schema(e.to_string()))?;

    let reference = ProjectRef::new("app").map_err(|e| StartError::Config(e.to_string()))?;
    let keys = ProjectKeys::builder(reference.clone(), secret.to_vec())
        .build()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let settings = ProjectSettings::new(public_url);
    let project = Project::new(reference, db, keys, settings);

    let auth = forge_auth::Auth::builder().build().map_err(|e| StartError::Config(e.to_string()))?;
    let data = forge_data::Data::builder().build().map_err(|e| StartError::Config(e.to_string()))?;
    let state = AppState { pool, name: "notes" };
    let router = Router::new()
        .route("/health", get(health))
        .route("/me/notes", get(my_notes))
        .nest("/api/auth", auth.router())
        .nest("/api/db", data.router())
        .layer(ProjectLayer::single(project.clone()))
        .with_state(state);
    Ok((router, project))
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "app": state.name, "ok": true }))
}

/// The caller's notes, read on the app's own pool with its own SQL: the app decides access
/// here (a signed-in user), not row-level security.
async fn my_notes(State(state): State<AppState>, principal: Principal) -> Response {
    let Some(user) = principal.user_id() else {
        return (axum::http::StatusCode::UNAUTHORIZED, Json(json!({ "error": "sign in first" }))).into_response();
    };
    let rows: Result<Vec<(i64, String)>, _> =
        sqlx::query_as("select id, body from public.notes where owner = $1 order by id")
            .bind(user)
            .fetch_all(&state.pool)
            .await;
    match rows {
        Ok(rows) => {
            let notes: Vec<Value> = rows.into_iter().map(|(id, body)| json!({ "id": id, "body": body })).collect();
            Json(json!({ "user": user, "notes": notes })).into_response()
        }
        Err(e) => forge_core::ForgeError::from(e).into_response(),
    }
}
