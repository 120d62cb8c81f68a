//! `GET /{relation}` and `HEAD /{relation}`: reads.

use axum::Extension;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use forge_core::Project;
use forge_core::rls::{self, RequestContext};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::{negotiate, parse_request, relation_of, with_schema};
use crate::data::Data;
use crate::error::{Error, Result};
use crate::plan::{Output, ReadRequest, Source, plan_read};
use crate::query::{PreferCount, parse_range_header};

pub(super) async fn get(
    Extension(data): Extension<Data>,
    project: Project,
    ctx: RequestContext,
    method: Method,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let authenticated = ctx.principal().is_authenticated();
    match read(&data, &project, ctx, &method, &name, raw.as_deref().unwrap_or(""), &headers).await {
        Ok(res) => res,
        Err(e) => e.render(authenticated),
    }
}

async fn read(
    data: &Data,
    project: &Project,
    ctx: RequestContext,
    method: &Method,
    name: &str,
    raw: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let schema = data.schema(project).await?;
    let (schema_name, relation) = relation_of(&schema, method, headers, name)?;
    let (query, prefs) = parse_request(raw, headers)?;
    let output = negotiate(headers)?;

    // The page: limit/offset intersected with a Range header (GET only), capped by max_rows.
    let top = query.ranges.iter().find(|r| r.path.is_empty());
    let mut offset = top.and_then(|r| r.offset).unwrap_or(0);
    let mut limit = top.and_then(|r| r.limit);
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| *method == Method::GET);
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
    let plan = plan_read(&ReadRequest {
        source: Source::Relation,
        schema: &schema,
        relation,
        query: &query,
        offset,
        limit,
        exact_count: matches!(count, Some(PreferCount::Exact | PreferCount::Estimated)),
        output,
    })?;

    let ctx = with_schema(ctx, schema_name);
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
    let row = rows.first().ok_or_else(|| Error::Core(forge_core::ForgeError::internal("a read returned no row")))?;
    let exact: Option<i64> = row.try_get(0).map_err(|e| Error::Core(forge_core::ForgeError::internal(e)))?;
    let page: i64 = row.try_get(1).map_err(|e| Error::Core(forge_core::ForgeError::internal(e)))?;
    let body: String = row.try_get(2).map_err(|e| Error::Core(forge_core::ForgeError::internal(e)))?;
    let page = u64::try_from(page).unwrap_or(0);
    let total: Option<u64> = match count {
        None => None,
        Some(PreferCount::Exact) => exact.and_then(|t| u64::try_from(t).ok()),
        Some(PreferCount::Planned) => planned.and_then(|t| u64::try_from(t).ok()),
        // Without a row cap, PostgREST's estimate is the larger of the exact and planned counts.
        Some(PreferCount::Estimated) => exact.max(planned).and_then(|t| u64::try_from(t).ok()),
    };

    if output.singular() && page != 1 {
        return Err(Error::not_singular(page));
    }
    let total_text = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
    let content_range =
        if page == 0 { format!("*/{total_text}") } else { format!("{offset}-{}/{total_text}", offset + page - 1) };
    let status = match total {
        Some(t) if offset > t && count.is_some() => {
            let err = Error::range_not_satisfiable(format!(
                "An offset of {offset} was requested, but there are only {t} rows."
            ));
            let mut res = err.render(true);
            res.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("*/{t}")));
            return Ok(res);
        }
        Some(t) if page < t => StatusCode::PARTIAL_CONTENT,
        _ => StatusCode::OK,
    };

    let content_type = output.content_type();
    let body = if output == Output::Csv {
        let header_line: Vec<String> = plan.columns.iter().map(|c| csv_field(c)).collect();
        let mut text = header_line.join(",");
        if !body.is_empty() {
            text.push('\n');
            text.push_str(&body);
        }
        text
    } else {
        body
    };
    let mut res = if *method == Method::HEAD { status.into_response() } else { (status, body).into_response() };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_RANGE, header_value(&content_range));
    // Of the preferences, only the count applies to a read.
    if let Some(count) = prefs.count {
        h.insert("preference-applied", HeaderValue::from_static(count.as_str()));
    }
    Ok(res)
}

fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) { format!("\"{}\"", name.replace('"', "\"\"")) } else { name.to_owned() }
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("*/*"))
}
