//! `/rpc/{function}`: calling functions (SERVER-BEHAVIOUR.md §1f).

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use forge_core::Project;
use forge_core::rls::{self, RequestContext};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use sea_query::{Alias, Expr, Query};
use serde_json::{Map, Value};

use super::{
    Page, Rest, content_range, finish, header_value, internal, negotiate, parse_error, read_row, roll_back,
    search_path, with_schema,
};
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{Args, Output, Payload, ReadRequest, Source, Statement, call, plan_read, resolve, result_relation};
use crate::query::{PreferHandling, PreferTx, Preferences, decode_query, parse_prefer, parse_query};
use crate::schema::ReturnType;

pub(super) async fn handle(req: Rest, body: Bytes) -> Response {
    let authenticated = req.authenticated();
    finish(authenticated, rpc(req, &body).await)
}

async fn rpc(req: Rest, body: &[u8]) -> Result<Response> {
    let Rest { data, project, ctx, method, name, raw, headers } = req;
    let (data, project, method, name, raw, headers) = (&data, &project, &method, name.as_str(), raw.as_str(), &headers);
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
        return Err(Error::refused(ErrorKind::RpcMethodNotAllowed, format!("Cannot use the {method} method on RPC")));
    }
    let schema = data.schema(project).await?;
    let schema_name = super::request_schema(&schema, method, headers)?;
    let query = parse_query(&decode_query(raw)).map_err(parse_error)?;
    let prefs = parse_prefer(headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()));
    prefs.check_strict().map_err(parse_error)?;
    let output = negotiate(headers)?;
    if matches!(output, Output::Plan(_) | Output::GeoJson) {
        let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        return Err(Error::not_acceptable(accept));
    }
    let args = call_args(method, body, headers, &query)?;
    let (function, args) = resolve_call(&schema, schema_name, name, args)?;
    // `maxAffected(n)`: only for functions returning a set, whose rows are counted.
    let strict_limit = prefs.max_affected.filter(|_| prefs.handling == Some(PreferHandling::Strict));
    if strict_limit.is_some() && !function.returns_set {
        return Err(Error::refused(
            ErrorKind::MaxAffectedNeedsSet,
            "Function must return SETOF or TABLE when max-affected preference is used with handling=strict",
        ));
    }
    let call = call(function, &args)?;
    let ctx = with_schema(ctx, schema_name, &data.config().extra_search_path);
    let head = *method == Method::HEAD;
    // `tx=rollback` is honoured as on table writes: the call runs, then is rolled back.
    let rollback = prefs.tx == Some(PreferTx::Rollback);
    let applied = applied_preferences(&prefs);

    // Table-like results read like a relation: select, embeds, filters, order, limit,
    // counts. One composite row is read the same way, and answered as an object, or `null`
    // when the filters leave nothing (PostgREST's single composite).
    if let Some(relation) = result_relation(&schema, function) {
        let source = if function.returns_set { Source::Call(call) } else { Source::CallOne(call) };
        let top = query.ranges.iter().find(|r| r.path.is_empty());
        let offset = top.and_then(|r| r.offset).unwrap_or(0);
        let limit = top.and_then(|r| r.limit);
        let limit = match data.config().max_rows {
            Some(max) => Some(limit.map_or(max, |l| l.min(max))),
            None => limit,
        };
        let plan = plan_read(&ReadRequest {
            source,
            schema: &schema,
            relation: &relation,
            query: &query,
            offset,
            limit,
            exact_count: prefs.count.is_some(),
            output,
            search_path: &search_path(schema_name, &data.config().extra_search_path),
        })?;
        let rows = run(project, &ctx, &plan.statement, strict_limit, rollback, |rows| Ok(read_row(rows)?.1)).await?;
        let (total, page, body) = read_row(&rows)?;
        let total = total.and_then(|t| u64::try_from(t).ok());
        let count = prefs.count;
        let mut res =
            Page { output, offset, total, rows: page, body, columns: &plan.columns, head, count }.respond()?;
        set_applied(&mut res, applied.as_deref());
        return Ok(res);
    }

    // Everything else is one value: a scalar, a set of scalars, a record, or nothing.
    let mut select = Query::select();
    let (value, rows_expr) = value_exprs(&function.returns, function.returns_set);
    select.expr(Expr::cust(value)).expr(Expr::cust(rows_expr)).from_function(call, Alias::new("t0"));
    let statement = Statement::from_select(&select);
    let counted = |rows: &[tokio_postgres::Row]| -> Result<u64> {
        let n: i64 = rows.first().map(|r| r.try_get(1)).transpose().map_err(internal)?.unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let rows = run(project, &ctx, &statement, strict_limit, rollback, counted).await?;
    // As PostgREST reads it: one row for a scalar, a composite or void, each element for a
    // set of scalars; the total is the same rows, when a count was asked for.
    let n = counted(&rows)?;
    let range = header_value(&content_range(0, n, prefs.count.map(|_| n)));
    if function.returns == ReturnType::Void {
        let mut res = StatusCode::NO_CONTENT.into_response();
        res.headers_mut().insert(header::CONTENT_RANGE, range);
        set_applied(&mut res, applied.as_deref());
        return Ok(res);
    }
    let body: Option<String> = rows.first().map(|r| r.try_get(0)).transpose().map_err(internal)?.flatten();
    let body = body.unwrap_or_else(|| "null".into());
    let output = if output == Output::Csv { Output::Json } else { output };
    let mut res = if head { StatusCode::OK.into_response() } else { (StatusCode::OK, body).into_response() };
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(output.content_type()));
    res.headers_mut().insert(header::CONTENT_RANGE, range);
    set_applied(&mut res, applied.as_deref());
    Ok(res)
}

/// The preferences a call applies, for `Preference-Applied`: those PostgREST reports on RPC
/// (count, tx, handling, max-affected under strict handling). Resolution, missing and return
/// concern table writes only; timezone is not applied by forge-data.
fn applied_preferences(prefs: &Preferences) -> Option<String> {
    let mut applied = prefs.clone();
    applied.resolution = None;
    applied.missing = None;
    applied.return_ = None;
    applied.timezone = None;
    applied.applied_header()
}

fn set_applied(res: &mut Response, applied: Option<&str>) {
    match applied.and_then(|a| HeaderValue::from_str(a).ok()) {
        Some(v) => res.headers_mut().insert("preference-applied", v),
        None => res.headers_mut().remove("preference-applied"),
    };
}

/// A call's arguments as the request gives them.
struct CallArgs {
    /// Named arguments: a POST's JSON object or form fields, a GET's query parameters.
    named: Map<String, Value>,
    /// The names given, for overload resolution (none for a body that is not a JSON object).
    names: Vec<String>,
    /// A POST body's kind; `None` for GET and HEAD.
    post: Option<Payload>,
    /// A POST body as a function taking a single unnamed argument receives it.
    body: Option<Args>,
}

/// The arguments of a call: a GET's query parameters, or a POST body by its Content-Type
/// (JSON, the default, or form fields name the arguments; a text, xml or binary body is one
/// unnamed argument).
fn call_args(method: &Method, body: &[u8], headers: &HeaderMap, query: &crate::query::ApiQuery) -> Result<CallArgs> {
    if *method != Method::POST {
        let named: Map<String, Value> =
            query.params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let names = named.keys().cloned().collect();
        return Ok(CallArgs { named, names, post: None, body: None });
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = |body: &[u8]| {
        std::str::from_utf8(body).map(str::to_owned).map_err(|_| Error::invalid_body("Empty or invalid body"))
    };
    let raw = |post: Payload, body: Args| {
        Ok(CallArgs { named: Map::new(), names: Vec::new(), post: Some(post), body: Some(body) })
    };
    match media.as_str() {
        "text/plain" => raw(Payload::Text, Args::Body(text(body)?)),
        "text/xml" => raw(Payload::Xml, Args::Body(text(body)?)),
        "application/octet-stream" => raw(Payload::Binary, Args::Bytes(body.to_vec())),
        "application/x-www-form-urlencoded" => {
            let named: Map<String, Value> =
                form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
            let names = named.keys().cloned().collect();
            Ok(CallArgs { named, names, post: Some(Payload::Form), body: None })
        }
        "" | "application/json" => {
            let text = std::str::from_utf8(body).map_err(|_| Error::invalid_body("Empty or invalid json"))?.trim();
            let text = if text.is_empty() { "{}" } else { text };
            let value: Value = serde_json::from_str(text).map_err(|_| Error::invalid_body("Empty or invalid json"))?;
            let body = Some(Args::Body(text.to_owned()));
            Ok(match value {
                Value::Object(named) => {
                    let names = named.keys().cloned().collect();
                    CallArgs { named, names, post: Some(Payload::Json), body }
                }
                _ => CallArgs { named: Map::new(), names: Vec::new(), post: Some(Payload::Json), body },
            })
        }
        other => Err(Error::invalid_body(format!("Content-Type not acceptable: {other}"))),
    }
}

/// The overload the arguments call (with a "Perhaps you meant" hint when there is none), and
/// the arguments as it takes them: a function with a single unnamed argument receives the
/// whole body (a GET's parameters as a JSON object), as PostgREST's one positional parameter.
fn resolve_call<'s>(
    schema: &'s crate::schema::Schema,
    schema_name: &str,
    name: &str,
    given: CallArgs,
) -> Result<(&'s crate::schema::Function, Args)> {
    let overloads = schema.function(schema_name, name);
    let raw_only = given.post.and_then(Payload::raw_only).is_some();
    let function = resolve(schema_name, name, overloads, &given.names, given.post).map_err(|e| {
        if raw_only {
            return e;
        }
        let known =
            schema.functions.keys().filter(|f| f.schema == schema_name && f.name != name).map(|f| f.name.as_str());
        e.with_function_hint(schema_name, crate::error::suggest(name, known))
    })?;
    let args = match (function.single_unnamed(), given.body) {
        (Some(_), Some(body)) => body,
        (Some(_), None) => Args::Body(Value::Object(given.named).to_string()),
        (None, _) => Args::Named(given.named),
    };
    Ok((function, args))
}

/// The select list of a call answered as one value: the value as JSON text, and how many
/// rows a set yielded (for `max-affected`) or 1.
fn value_exprs(returns: &ReturnType, returns_set: bool) -> (&'static str, &'static str) {
    let value = match (returns, returns_set) {
        (ReturnType::Void, _) => "NULL::text",
        (_, true) => "coalesce(json_agg(\"t0\"), '[]'::json)::text",
        (ReturnType::Composite(_) | ReturnType::Columns(_) | ReturnType::Record, false) => "to_json(\"t0\")::text",
        (ReturnType::Scalar(_), false) => "to_json(\"t0\")::text",
    };
    let rows = if returns_set { "pg_catalog.count(*)" } else { "1::int8" };
    (value, rows)
}

/// Runs a call's statement. Under `handling=strict` with `max-affected`, or with
/// `tx=rollback`, in a transaction of its own: rolled back, with PGRST124, when the call
/// returned more rows than allowed, and rolled back after the call for `tx=rollback`.
async fn run(
    project: &Project,
    ctx: &RequestContext,
    statement: &Statement,
    limit: Option<u64>,
    rollback: bool,
    count: impl Fn(&[tokio_postgres::Row]) -> Result<u64>,
) -> Result<Vec<tokio_postgres::Row>> {
    if limit.is_none() && !rollback {
        return Ok(rls::query_once(project.db(), ctx, &statement.sql, &statement.bind()).await?);
    }
    let tx = rls::begin(project.db(), ctx).await?;
    let rows = tx.query(&statement.sql, &statement.bind()).await?;
    if let Some(max) = limit {
        let n = count(&rows)?;
        if n > max {
            tx.rollback().await?;
            return Err(Error::max_affected_exceeded(n));
        }
    }
    if rollback {
        roll_back(tx).await?;
    } else {
        tx.commit().await?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{decode_query, parse_query};

    fn content_type(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).expect("header"));
        h
    }

    #[test]
    fn post_arguments_are_named_by_an_object_else_they_are_the_body() {
        let query = parse_query(&decode_query("")).expect("query");
        let json = content_type("application/json");
        let named = call_args(&Method::POST, br#"{"a":1,"b":"x"}"#, &json, &query).expect("object");
        assert_eq!((named.names, named.post), (vec!["a".to_owned(), "b".to_owned()], Some(Payload::Json)));
        let empty = call_args(&Method::POST, b"  ", &HeaderMap::new(), &query).expect("an empty body is {}");
        assert!(empty.named.is_empty() && matches!(empty.body, Some(Args::Body(ref b)) if b == "{}"));
        let body = call_args(&Method::POST, b"[1,2]", &json, &query).expect("array");
        assert!(body.names.is_empty() && matches!(body.body, Some(Args::Body(ref b)) if b == "[1,2]"));
        let e = call_args(&Method::POST, b"{", &json, &query).err().expect("not JSON");
        assert_eq!(e.kind(), Some(ErrorKind::InvalidBody));
    }

    #[test]
    fn text_xml_and_binary_bodies_are_one_unnamed_argument_and_forms_name_them() {
        let query = parse_query(&decode_query("")).expect("query");
        let text = call_args(&Method::POST, b" raw {text} ", &content_type("text/plain; charset=utf-8"), &query)
            .expect("text");
        assert!(text.names.is_empty() && matches!(text.body, Some(Args::Body(ref b)) if b == " raw {text} "));
        assert_eq!(text.post, Some(Payload::Text));
        let bytes =
            call_args(&Method::POST, &[0, 255], &content_type("application/octet-stream"), &query).expect("bytes");
        assert!(matches!(bytes.body, Some(Args::Bytes(ref b)) if b == &[0, 255]));
        let form =
            call_args(&Method::POST, b"a=1&b=two+words", &content_type("application/x-www-form-urlencoded"), &query)
                .expect("form");
        assert_eq!((form.names, form.named["b"].as_str()), (vec!["a".to_owned(), "b".to_owned()], Some("two words")));
        let e = call_args(&Method::POST, b"a,b", &content_type("text/csv"), &query).err().expect("csv");
        assert_eq!(e.kind(), Some(ErrorKind::InvalidBody));
    }

    #[test]
    fn get_arguments_are_the_query_parameters_as_text() {
        let query = parse_query(&decode_query("a=1&b=two")).expect("query");
        let given = call_args(&Method::GET, b"ignored", &HeaderMap::new(), &query).expect("query");
        assert_eq!((given.names.clone(), given.post), (vec!["a".to_owned(), "b".to_owned()], None));
        assert!(given.named["a"] == "1" && given.named["b"] == "two");
    }

    #[test]
    fn one_value_is_json_text_and_a_set_also_counts_its_rows() {
        assert_eq!(value_exprs(&ReturnType::Void, false).0, "NULL::text");
        assert_eq!(
            value_exprs(&ReturnType::Record, true),
            ("coalesce(json_agg(\"t0\"), '[]'::json)::text", "pg_catalog.count(*)")
        );
        assert_eq!(value_exprs(&ReturnType::Record, false), ("to_json(\"t0\")::text", "1::int8"));
    }
}
