//! `GET /{relation}` and `HEAD /{relation}`: reads.

use axum::response::Response;
use forge_core::rls;
use http::{Method, header};

use super::{Page, Rest, finish, negotiate, parse_request, read_row, relation_of, search_path, with_schema};
use crate::error::{Error, Result};
use crate::plan::{Output, ReadRequest, Source, plan_read};
use crate::query::{PreferCount, parse_range_header};

pub(super) async fn get(req: Rest) -> Response {
    let authenticated = req.authenticated();
    finish(authenticated, read(req).await)
}

async fn read(req: Rest) -> Result<Response> {
    let Rest { data, project, ctx, method, name, raw, headers } = req;
    let schema = data.schema(&project).await?;
    let (schema_name, relation) = relation_of(&schema, &method, &headers, &name)?;
    let (query, prefs) = parse_request(&raw, &headers)?;
    let output = negotiate(&headers)?;
    let accept = || headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    match output {
        Output::GeoJson if !schema.postgis => return Err(Error::not_acceptable(&accept())),
        Output::Plan(_) if !data.config().plan_enabled => return Err(Error::not_acceptable(&accept())),
        _ => {}
    }

    // The page: limit/offset intersected with a Range header (GET only), capped by max_rows.
    let top = query.ranges.iter().find(|r| r.path.is_empty());
    let mut offset = top.and_then(|r| r.offset).unwrap_or(0);
    let mut limit = top.and_then(|r| r.limit);
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| method == Method::GET);
    if let Some(value) = range_header
        && let Some((start, end)) = parse_range_header(value).map_err(super::parse_error)?
    {
        let query_end = limit.map(|l| offset.saturating_add(l));
        offset = offset.max(start);
        let header_end = end.map(|e| e.saturating_add(1));
        let stop = match (query_end, header_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        limit = stop.map(|s| s.saturating_sub(offset));
    }
    if let Some(max) = data.config().max_rows {
        limit = Some(limit.map_or(max, |l| l.min(max)));
    }

    let count = prefs.count;
    let search_path = search_path(schema_name, &data.config().extra_search_path);
    let plan = plan_read(&ReadRequest {
        source: Source::Relation,
        schema: &schema,
        relation,
        query: &query,
        offset,
        limit,
        exact_count: matches!(count, Some(PreferCount::Exact | PreferCount::Estimated)),
        output,
        search_path: &search_path,
    })?;

    let ctx = with_schema(ctx, schema_name, &data.config().extra_search_path);
    if let Output::Plan(options) = output {
        return explain(&project, &ctx, options, &plan.statement).await;
    }
    let (rows, planned) = match count {
        Some(PreferCount::Planned | PreferCount::Estimated) => {
            let tx = rls::begin(project.db(), &ctx).await?;
            let explain = format!("EXPLAIN (FORMAT JSON) {}", plan.count_statement.sql);
            let explained = tx.query(&explain, &plan.count_statement.bind()).await?;
            let planned = explained
                .first()
                .and_then(|r| r.try_get::<_, serde_json::Value>(0).ok())
                .and_then(|v| v.pointer("/0/Plan/Plan Rows").and_then(serde_json::Value::as_f64))
                .map(|f| f as i64);
            (tx.query_and_commit(&plan.statement.sql, &plan.statement.bind()).await?, planned)
        }
        _ => (rls::query_once(project.db(), &ctx, &plan.statement.sql, &plan.statement.bind()).await?, None),
    };
    let (exact, page, body) = read_row(&rows)?;
    let total = match count {
        None => None,
        Some(PreferCount::Exact) => exact,
        Some(PreferCount::Planned) => planned,
        // Without a row cap, PostgREST's estimate is the larger of the exact and planned counts.
        Some(PreferCount::Estimated) => exact.max(planned),
    };
    let total =
        total.map(|t| u64::try_from(t).map_err(|_| Error::range_not_satisfiable("negative count"))).transpose()?;
    Page { output, offset, total, rows: page, body, columns: &plan.columns, head: method == Method::HEAD, count }
        .respond()
}

/// `.explain()`: the plan of the read, in a read-only RLS transaction (so even ANALYZE, which
/// runs the query, changes nothing).
async fn explain(
    project: &forge_core::Project,
    ctx: &forge_core::rls::RequestContext,
    options: crate::plan::PlanOptions,
    statement: &crate::plan::Statement,
) -> Result<Response> {
    let tx = rls::begin(project.db(), ctx).await?;
    let sql = format!("{} {}", options.explain(), statement.sql);
    let rows = tx.query(&sql, &statement.bind()).await?;
    tx.rollback().await?;
    let body = if options.text {
        rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect::<Vec<_>>().join("\n")
    } else {
        rows.first().and_then(|r| r.try_get::<_, serde_json::Value>(0).ok()).map(|v| v.to_string()).unwrap_or_default()
    };
    let mut res = axum::response::IntoResponse::into_response(body);
    res.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(Output::Plan(options).content_type()));
    Ok(res)
}
