//! `/rpc/{function}`: calling functions (SERVER-BEHAVIOUR.md §1f).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use forge_core::rls::{self, RequestContext};
use forge_core::{ForgeError, Project};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use sea_query::{Alias, Expr, Query};
use serde_json::{Map, Value};

use super::{negotiate, parse_error, with_schema};
use crate::data::Data;
use crate::error::{Error, Result};
use crate::plan::{Args, Output, ReadRequest, Source, Statement, call, plan_read, resolve, result_relation};
use crate::query::{PreferCount, decode_query, parse_prefer, parse_query};
use crate::schema::ReturnType;

#[allow(clippy::too_many_arguments)]
pub(super) async fn handle(
    Extension(data): Extension<Data>,
    project: Project,
    ctx: RequestContext,
    method: Method,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authenticated = ctx.principal().is_authenticated();
    match rpc(&data, &project, ctx, &method, &name, raw.as_deref().unwrap_or(""), &headers, &body).await {
        Ok(res) => res,
        Err(e) => e.render(authenticated),
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Core(ForgeError::internal(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn rpc(
    data: &Data,
    project: &Project,
    ctx: RequestContext,
    method: &Method,
    name: &str,
    raw: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response> {
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
        return Err(Error::method_not_allowed("PGRST101", format!("Cannot use the {method} method on RPC")));
    }
    let schema = data.schema(project).await?;
    let schema_name = super::request_schema(&schema, method, headers)?;
    let query = parse_query(&decode_query(raw)).map_err(parse_error)?;
    let prefs = parse_prefer(headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()));
    prefs.check_strict().map_err(parse_error)?;
    let output = negotiate(headers)?;

    // Arguments: the JSON body of a POST, or the query parameters of a GET.
    let (args, names, body_fallback) = if *method == Method::POST {
        let text = std::str::from_utf8(body).map_err(|_| Error::invalid_body("Empty or invalid json"))?.trim();
        let text = if text.is_empty() { "{}" } else { text };
        let value: Value = serde_json::from_str(text).map_err(|_| Error::invalid_body("Empty or invalid json"))?;
        match value {
            Value::Object(map) => {
                let names: Vec<String> = map.keys().cloned().collect();
                (Args::Named(map), names, true)
            }
            _ => (Args::Body(text.to_owned()), Vec::new(), true),
        }
    } else {
        let map: Map<String, Value> = query.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let names = map.keys().cloned().collect();
        (Args::Named(map), names, false)
    };
    let overloads = schema.function(schema_name, name);
    let mut function = resolve(schema_name, name, overloads, &names, body_fallback).map_err(|e| {
        let known =
            schema.functions.keys().filter(|f| f.schema == schema_name && f.name != name).map(|f| f.name.as_str());
        e.with_function_hint(schema_name, crate::error::suggest(name, known))
    })?;
    // A JSON object may also be the single json argument's value.
    let args = match args {
        Args::Named(map) if function.takes_single_json() => Args::Body(Value::Object(map).to_string()),
        Args::Body(b) if !function.takes_single_json() => {
            function = resolve(schema_name, name, overloads, &[], false)?;
            Args::Body(b)
        }
        other => other,
    };
    let call = call(function, &args)?;
    let ctx = with_schema(ctx, schema_name);
    let head = *method == Method::HEAD;

    // Table-like results read like a relation: select, filters, order, limit, counts.
    if function.returns_set
        && let Some(relation) = result_relation(&schema, function)
    {
        let top = query.ranges.iter().find(|r| r.path.is_empty());
        let offset = top.and_then(|r| r.offset).unwrap_or(0);
        let limit = top.and_then(|r| r.limit);
        let limit = match data.config().max_rows {
            Some(max) => Some(limit.map_or(max, |l| l.min(max))),
            None => limit,
        };
        let plan = plan_read(&ReadRequest {
            source: Source::Call(call),
            schema: &schema,
            relation: &relation,
            query: &query,
            offset,
            limit,
            exact_count: prefs.count.is_some(),
            output,
        })?;
        let rows = rls::query_once(project.db(), &ctx, &plan.statement.sql, &plan.statement.bind()).await?;
        let row = rows.first().ok_or_else(|| internal("a call returned no row"))?;
        let total: Option<i64> = row.try_get(0).map_err(internal)?;
        let page: i64 = row.try_get(1).map_err(internal)?;
        let body: String = row.try_get(2).map_err(internal)?;
        let page = u64::try_from(page).unwrap_or(0);
        if output.singular() && page != 1 {
            return Err(Error::not_singular(page));
        }
        let total_text = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        let range =
            if page == 0 { format!("*/{total_text}") } else { format!("{offset}-{}/{total_text}", offset + page - 1) };
        let body = if output == Output::Csv {
            let mut text = plan.columns.join(",");
            if !body.is_empty() {
                text.push('\n');
                text.push_str(&body);
            }
            text
        } else {
            body
        };
        let total = total.and_then(|t| u64::try_from(t).ok());
        let status = match total {
            Some(t) if offset > t => {
                let err = Error::range_not_satisfiable(format!(
                    "An offset of {offset} was requested, but there are only {t} rows."
                ));
                return Err(err);
            }
            Some(t) if page < t => StatusCode::PARTIAL_CONTENT,
            _ => StatusCode::OK,
        };
        return Ok(reply(status, output, body, head, Some(range), prefs.count));
    }

    // Everything else is one value: a scalar, a set of scalars, one composite, or nothing.
    let mut select = Query::select();
    let value = match (&function.returns, function.returns_set) {
        (ReturnType::Void, _) => "NULL::text",
        (_, true) => "coalesce(json_agg(\"t0\"), '[]'::json)::text",
        (ReturnType::Composite(_) | ReturnType::Columns(_) | ReturnType::Record, false) => "to_json(\"t0\")::text",
        (ReturnType::Scalar(_), false) => "to_json(\"t0\")::text",
    };
    select.expr(Expr::cust(value)).from_function(call, Alias::new("t0"));
    let statement = Statement::from_select(&select);
    let rows = rls::query_once(project.db(), &ctx, &statement.sql, &statement.bind()).await?;
    if function.returns == ReturnType::Void {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body: Option<String> = rows.first().map(|r| r.try_get(0)).transpose().map_err(internal)?.flatten();
    let body = body.unwrap_or_else(|| "null".into());
    let count = prefs.count.filter(|_| function.returns_set);
    Ok(reply(StatusCode::OK, if output == Output::Csv { Output::Json } else { output }, body, head, None, count))
}

fn reply(
    status: StatusCode,
    output: Output,
    body: String,
    head: bool,
    range: Option<String>,
    count: Option<PreferCount>,
) -> Response {
    let content_type = output.content_type();
    let mut res = if head { status.into_response() } else { (status, body).into_response() };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(r) = range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        h.insert(header::CONTENT_RANGE, r);
    }
    if let Some(c) = count {
        h.insert("preference-applied", HeaderValue::from_static(c.as_str()));
    }
    res
}
