//! The metering layer's own cost, measured in this process without a network or a database:
//! the same small JSON answer served through the project layer, with and without the meter
//! (rounds alternated, many requests each, its body read to the end as a client would), the
//! difference being what metering adds to every request.

use std::time::Instant;

use axum::Router;
use axum::routing::get;
use forge_core::{Database, DatabaseConfig, Project, ProjectKeys, ProjectLayer, ProjectRef, ProjectSettings};
use forge_server::platform::usage::Meter;
use http_body_util::BodyExt as _;
use tower::{Layer as _, ServiceExt as _};

/// Requests per round.
const REQUESTS: usize = 200_000;
/// Rounds of each (alternated: off, on, on, off, ...).
const ROUNDS: usize = 6;

/// Nanoseconds per request without and with the meter.
pub(crate) async fn cost() -> Result<(f64, f64), crate::Error> {
    let reference = ProjectRef::new("benchproject")?;
    // A pool that never connects: the handler does not touch the database.
    let db = Database::connect_lazy(&DatabaseConfig::new("postgres://bench@localhost/bench"))?;
    let keys = ProjectKeys::builder(reference.clone(), vec![7u8; 32]).build()?;
    let project = Project::new(reference, db, keys, ProjectSettings::new("http://bench"));
    let answer =
        || async { ([(http::header::CONTENT_TYPE, "application/json")], r#"[{"id":4711,"v":"a row of the table"}]"#) };
    let router = Router::new().route("/rest/v1/t", get(answer));
    let meter = Meter::new();
    let plain = ProjectLayer::single(project.clone()).layer(router.clone());
    let metered = ProjectLayer::single(project).layer(router.layer(meter.layer()));
    let mut totals = [0f64; 2];
    for round in 0..ROUNDS {
        let on = matches!(round % 4, 1 | 2);
        let started = Instant::now();
        for _ in 0..REQUESTS {
            let req = http::Request::get("/rest/v1/t").body(axum::body::Body::empty())?;
            let res = if on { metered.clone().oneshot(req).await? } else { plain.clone().oneshot(req).await? };
            let body = res.into_body().collect().await?.to_bytes();
            std::hint::black_box(body);
        }
        totals[usize::from(on)] += started.elapsed().as_nanos() as f64;
    }
    let per = |t: f64| t / (REQUESTS * ROUNDS / 2) as f64;
    Ok((per(totals[0]), per(totals[1])))
}
