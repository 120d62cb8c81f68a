//! Run with `DATABASE_URL=postgres://... JWT_SECRET=<32+ bytes> cargo run -p example-embed-existing-app`.
//!
//! An existing axum app with Forge's auth and REST mounted under its own paths; see the crate
//! doc of `lib.rs`. Try:
//!
//! ```text
//! curl -X POST -H "apikey: <anon key>" -H 'content-type: application/json' \
//!   -d '{"email":"ann@example.com","password":"a long password"}' http://127.0.0.1:3000/api/auth/signup
//! curl -H "apikey: <anon key>" -H "authorization: Bearer <access_token>" http://127.0.0.1:3000/me/notes
//! ```

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    let secret = std::env::var("JWT_SECRET").map_err(|_| "set JWT_SECRET (at least 32 bytes)")?;
    // The app's own pool, made before Forge came along.
    let pool = sqlx::PgPool::connect(&url).await?;
    let (app, project) =
        example_embed_existing_app::app(pool, &url, None, secret.as_bytes(), "http://127.0.0.1:3000").await?;
    println!("anon key: {}", project.keys().anon_key());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    // ConnectInfo gives forge-auth each client's address for its rate limits.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
