//! Run with `DATABASE_URL=postgres://... JWT_SECRET=<32+ bytes> cargo run -p example-rls-gateway`.
//!
//! forge-core on its own inside a plain axum app: the project layer, the `Principal` from the
//! `apikey` and `Authorization` headers, and one query through the RLS gateway. Try:
//!
//! ```text
//! curl -H "apikey: <anon key printed at start>" http://127.0.0.1:3000/whoami
//! ```

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use forge_core::rls::{self, RequestContext};
use forge_core::{
    Database, DatabaseConfig, Project, ProjectKeys, ProjectLayer, ProjectRef, ProjectSettings, WireFormat,
};

/// Who the database thinks is calling, as JSON.
async fn whoami(project: Project, ctx: RequestContext) -> Response {
    let sql = "select json_build_object('role', current_user, 'uid', auth.uid(), 'claims', auth.jwt())::text";
    match rls::query_once(project.db(), &ctx, sql, &[]).await {
        Ok(rows) => ([("content-type", "application/json")], rows[0].get::<_, String>(0)).into_response(),
        Err(e) => e.render(WireFormat::PostgRest, ctx.principal().is_authenticated()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    let secret = std::env::var("JWT_SECRET").map_err(|_| "set JWT_SECRET (at least 32 bytes)")?;
    let db = Database::connect_lazy(&DatabaseConfig::new(url))?;
    forge_core::bootstrap::apply(db.pool()).await?;
    let reference = ProjectRef::new("example")?;
    let keys = ProjectKeys::builder(reference.clone(), secret.into_bytes()).build()?;
    println!("anon key: {}", keys.anon_key());
    let project = Project::new(reference, db, keys, ProjectSettings::new("http://127.0.0.1:3000"));
    let app = Router::new().route("/whoami", get(whoami)).layer(ProjectLayer::single(project));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
