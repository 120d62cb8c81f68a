//! `POST`, `PATCH`, `PUT` and `DELETE` on `/{relation}`: inserts, upserts, updates and
//! deletes.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use forge_core::rls::{self};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value};

use super::{Rest, csv, finish, internal, negotiate, parse_request, relation_of, roll_back, search_path, with_schema};
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{
    Conflict, Output, ReadRequest, Source, Write, merges, plan_upsert_counts, plan_write, plan_write_returning,
};
use crate::query::{
    ApiQuery, Operation, Operator, PreferHandling, PreferMissing, PreferResolution, PreferReturn, PreferTx, Preferences,
};
use crate::schema::Relation;

pub(super) async fn handle(req: Rest, body: Bytes) -> Response {
    let authenticated = req.authenticated();
    finish(authenticated, write(req, &body).await)
}

/// The body's rows: a JSON object or an array of objects.
fn rows(body: &[u8], headers: &HeaderMap) -> Result<Vec<Map<String, Value>>> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !media.is_empty() && media != "application/json" && !media.ends_with("+json") {
            return Err(Error::invalid_body(format!("Content-Type not acceptable: {media}")));
        }
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| Error::invalid_body("Empty or invalid json"))?;
    match value {
        Value::Object(o) => Ok(vec![o]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(o) => Ok(o),
                _ => Err(Error::invalid_body("Empty or invalid json")),
            })
            .collect(),
        _ => Err(Error::invalid_body("Empty or invalid json")),
    }
}

/// The columns written: `columns=` when given, else the keys of the first row, which every
/// row must share.
fn columns(rows: &[Map<String, Value>], query: &ApiQuery) -> Result<Vec<String>> {
    if let Some(cols) = &query.columns {
        return Ok(cols.clone());
    }
    let first: Vec<String> = rows.first().map(|r| r.keys().cloned().collect()).unwrap_or_default();
    if rows.iter().any(|r| r.len() != first.len() || first.iter().any(|k| !r.contains_key(k))) {
        return Err(Error::invalid_body("All object keys must match"));
    }
    Ok(first)
}

async fn write(req: Rest, body: &[u8]) -> Result<Response> {
    let Rest { data, project, ctx, method, name, raw, headers } = req;
    let (data, project, method, name, raw, headers) = (&data, &project, &method, name.as_str(), raw.as_str(), &headers);
    let schema = data.schema(project).await?;
    let (schema_name, relation) = relation_of(&schema, method, headers, name)?;
    let (query, mut prefs) = parse_request(raw, headers)?;
    let output = negotiate(headers)?;
    if matches!(output, Output::Plan(_) | Output::GeoJson) {
        let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        return Err(Error::not_acceptable(accept));
    }
    let write = build_write(method, relation, &query, &mut prefs, body, headers)?;
    // An update of nothing writes nothing.
    if let Write::Update { columns, .. } = &write
        && columns.is_empty()
    {
        return Ok(respond(method, &prefs, output, 0, String::new(), &[], None));
    }
    let ctx = with_schema(ctx, schema_name, &data.config().extra_search_path);
    let search_path = search_path(schema_name, &data.config().extra_search_path);
    let target = Target { project, ctx: &ctx, relation, query: &query, write: &write, search_path: &search_path };
    if in_one_flight(&prefs) {
        return write_at_once(&target, method, &prefs, output).await;
    }
    write_in_transaction(&target, &schema, method, &prefs, output).await
}

/// What a write changes, and as whom.
struct Target<'a> {
    project: &'a forge_core::Project,
    ctx: &'a forge_core::rls::RequestContext,
    relation: &'a Relation,
    query: &'a ApiQuery,
    write: &'a Write,
    search_path: &'a [String],
}

/// The write a request asks for: the body's rows for POST (with the upsert's conflict
/// target), PUT and PATCH, none for DELETE.
fn build_write(
    method: &Method,
    relation: &Relation,
    query: &ApiQuery,
    prefs: &mut Preferences,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<Write> {
    Ok(match *method {
        Method::POST => {
            let rows = rows(body, headers)?;
            let columns = columns(&rows, query)?;
            let conflict = conflict(relation, query, prefs);
            Write::Insert {
                rows: Value::Array(rows.into_iter().map(Value::Object).collect()).to_string(),
                columns,
                missing_default: prefs.missing == Some(PreferMissing::Default),
                conflict,
            }
        }
        Method::PUT => put_write(relation, query, body, headers)?,
        Method::PATCH => {
            let mut rows = rows(body, headers)?;
            if rows.len() != 1 {
                return Err(Error::invalid_body("PATCH takes a single JSON object"));
            }
            let row = rows.remove(0);
            let columns = match &query.columns {
                Some(c) => c.clone(),
                None => row.keys().cloned().collect(),
            };
            Write::Update { row: Value::Object(row).to_string(), columns }
        }
        _ => Write::Delete,
    })
}

/// The common case, a write whose rows are not wanted and that needs no check before it
/// commits, goes out in one flight: BEGIN, settings, statement, COMMIT.
fn in_one_flight(prefs: &Preferences) -> bool {
    let wants_rows = matches!(prefs.return_, Some(PreferReturn::Representation | PreferReturn::HeadersOnly));
    let strict_limit = prefs.max_affected.filter(|_| prefs.handling == Some(PreferHandling::Strict));
    !wants_rows && strict_limit.is_none() && prefs.tx != Some(PreferTx::Rollback)
}

async fn write_at_once(t: &Target<'_>, method: &Method, prefs: &Preferences, output: Output) -> Result<Response> {
    // A merging upsert also reports whether it inserted anything (201) or only updated (200).
    if merges(t.write) {
        let statement = plan_upsert_counts(t.relation, t.query, t.write, t.search_path)?;
        let rows = rls::query_once(t.project.db(), t.ctx, &statement.sql, &statement.bind()).await?;
        let row = rows.first().ok_or_else(|| internal("an upsert returned no row"))?;
        let affected: i64 = row.try_get(0).map_err(internal)?;
        let inserted: i64 = row.try_get(1).map_err(internal)?;
        let mut res = respond(method, prefs, output, u64::try_from(affected).unwrap_or(0), String::new(), &[], None);
        if inserted == 0 && affected > 0 && *method == Method::POST {
            *res.status_mut() = StatusCode::OK;
        }
        return Ok(res);
    }
    let statement = plan_write(t.relation, t.query, t.write, t.search_path)?;
    let affected = rls::execute_once(t.project.db(), t.ctx, &statement.sql, &statement.bind()).await?;
    Ok(respond(method, prefs, output, affected, String::new(), &[], None))
}

/// A write whose rows are wanted, or that is checked (`max-affected`, a singular answer) or
/// rolled back before it ends: in a transaction of its own.
async fn write_in_transaction(
    t: &Target<'_>,
    schema: &crate::schema::Schema,
    method: &Method,
    prefs: &Preferences,
    output: Output,
) -> Result<Response> {
    let wants_rows = matches!(prefs.return_, Some(PreferReturn::Representation | PreferReturn::HeadersOnly));
    let tx = rls::begin(t.project.db(), t.ctx).await?;
    let mut only_updated = false;
    let (affected, body_text, columns) = if wants_rows {
        let mut shaped = t.query.clone();
        if prefs.return_ == Some(PreferReturn::HeadersOnly) {
            shaped.select = t
                .relation
                .primary_key
                .iter()
                .map(|c| crate::query::SelectItem::Field(crate::query::SelectField::column(c.clone())))
                .collect();
        }
        let out = if prefs.return_ == Some(PreferReturn::HeadersOnly) { Output::Json } else { output };
        let read = ReadRequest {
            source: Source::Written,
            schema,
            relation: t.relation,
            query: &shaped,
            offset: 0,
            limit: None,
            exact_count: false,
            output: out,
            search_path: t.search_path,
        };
        let plan = plan_write_returning(&read, t.write)?;
        let rows = tx.query(&plan.statement.sql, &plan.statement.bind()).await?;
        let row = rows.first().ok_or_else(|| internal("a write returned no row"))?;
        let page: i64 = row.try_get(1).map_err(internal)?;
        let body: String = row.try_get(2).map_err(internal)?;
        if merges(t.write) {
            let inserted: i64 = row.try_get(3).map_err(internal)?;
            only_updated = inserted == 0 && page > 0;
        }
        (u64::try_from(page).unwrap_or(0), body, plan.columns)
    } else {
        let statement = plan_write(t.relation, t.query, t.write, t.search_path)?;
        (tx.execute(&statement.sql, &statement.bind()).await?, String::new(), Vec::new())
    };

    if prefs.handling == Some(PreferHandling::Strict)
        && let Some(max) = prefs.max_affected
        && affected > max
    {
        return Err(Error::max_affected_exceeded(affected));
    }
    if output.singular() && prefs.return_ == Some(PreferReturn::Representation) && affected != 1 {
        return Err(Error::not_singular(affected));
    }
    let location = if prefs.return_ == Some(PreferReturn::HeadersOnly) && *method == Method::POST && affected == 1 {
        location(t.relation, &body_text)
    } else {
        None
    };
    if prefs.tx == Some(PreferTx::Rollback) {
        roll_back(tx).await?;
    } else {
        tx.commit().await?;
    }
    let body_text = if prefs.return_ == Some(PreferReturn::Representation) { body_text } else { String::new() };
    let mut res = respond(method, prefs, output, affected, body_text, &columns, location);
    if only_updated && *method == Method::POST {
        *res.status_mut() = StatusCode::OK;
    }
    Ok(res)
}

/// The conflict target of an upsert: `on_conflict` or the primary key. A resolution on a
/// relation with neither is ignored (and not reported as applied).
fn conflict(relation: &Relation, query: &ApiQuery, prefs: &mut Preferences) -> Option<Conflict> {
    let resolution = prefs.resolution?;
    let on = query.on_conflict.clone().unwrap_or_else(|| relation.primary_key.clone());
    if on.is_empty() {
        prefs.resolution = None;
        return None;
    }
    Some(match resolution {
        PreferResolution::MergeDuplicates => Conflict::Merge(on),
        PreferResolution::IgnoreDuplicates => Conflict::Ignore(on),
    })
}

/// PUT: an upsert of exactly the row the primary-key filters name.
fn put_write(relation: &Relation, query: &ApiQuery, body: &[u8], headers: &HeaderMap) -> Result<Write> {
    if query.ranges.iter().any(|r| r.path.is_empty()) {
        return Err(Error::refused(
            ErrorKind::PutLimitNotAllowed,
            "limit/offset querystring parameters are not allowed for PUT",
        ));
    }
    let pk = &relation.primary_key;
    let pk_filters: Vec<(&str, &str)> = query
        .filters
        .iter()
        .filter_map(|f| match &f.expr.operation {
            Operation::Op { op: Operator::Eq, quantifier: None, value }
                if f.path.is_empty() && !f.expr.negated && f.field.json_path.is_empty() =>
            {
                Some((f.field.name.as_str(), value.as_str()))
            }
            _ => None,
        })
        .collect();
    let exact = !pk.is_empty()
        && pk_filters.len() == query.filters.len()
        && query.logic.is_empty()
        && pk_filters.len() == pk.len()
        && pk.iter().all(|c| pk_filters.iter().any(|(n, _)| n == c));
    if !exact {
        return Err(Error::refused(
            ErrorKind::PutFiltersNotPrimaryKey,
            "Filters must include all and only primary key columns with 'eq' operators",
        ));
    }
    let mut rows = rows(body, headers)?;
    if rows.len() != 1 {
        return Err(Error::invalid_body("PUT takes a single JSON object"));
    }
    let row = rows.remove(0);
    for (column, value) in &pk_filters {
        let matches = match row.get(*column) {
            Some(Value::String(s)) => s == value,
            Some(Value::Number(n)) => n.to_string() == *value,
            Some(Value::Bool(b)) => b.to_string() == *value,
            _ => false,
        };
        if !matches {
            return Err(Error::refused(
                ErrorKind::PutPrimaryKeyMismatch,
                "Payload values do not match URL in primary key column(s)",
            ));
        }
    }
    let columns: Vec<String> = row.keys().cloned().collect();
    Ok(Write::Insert {
        rows: Value::Array(vec![Value::Object(row)]).to_string(),
        columns,
        missing_default: false,
        conflict: Some(Conflict::Merge(pk.clone())),
    })
}

/// `Location: /table?pk=eq.value` for `return=headers-only`, from the returned key.
fn location(relation: &Relation, body: &str) -> Option<String> {
    let rows: Value = serde_json::from_str(body).ok()?;
    let row = rows.get(0)?.as_object()?;
    let parts: Vec<String> = relation
        .primary_key
        .iter()
        .map(|c| {
            let v = match row.get(c)? {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{c}=eq.{}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        })
        .collect::<Option<_>>()?;
    Some(format!("/{}?{}", relation.name.name, parts.join("&")))
}

fn respond(
    method: &Method,
    prefs: &Preferences,
    output: Output,
    affected: u64,
    body: String,
    columns: &[String],
    location: Option<String>,
) -> Response {
    let representation = prefs.return_ == Some(PreferReturn::Representation);
    let status = match *method {
        Method::POST => StatusCode::CREATED,
        _ if representation => StatusCode::OK,
        _ => StatusCode::NO_CONTENT,
    };
    let content_type = output.content_type();
    let body = if output == Output::Csv && representation { csv(columns, body) } else { body };
    let mut res = if representation { (status, body).into_response() } else { status.into_response() };
    let h = res.headers_mut();
    if representation {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if prefs.count.is_some() {
        let range = if *method == Method::PATCH && affected > 0 {
            format!("0-{}/{affected}", affected - 1)
        } else {
            format!("*/{affected}")
        };
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, loc);
    }
    if let Some(applied) = prefs.applied_header().and_then(|a| HeaderValue::from_str(&a).ok()) {
        h.insert("preference-applied", applied);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{decode_query, parse_prefer, parse_query};

    fn json_headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("header"));
        headers
    }

    #[test]
    fn a_body_is_one_object_or_an_array_of_objects() {
        let headers = json_headers("application/json; charset=utf-8");
        assert_eq!(rows(br#"{"a":1}"#, &headers).expect("one").len(), 1);
        assert_eq!(rows(br#"[{"a":1},{"a":2}]"#, &headers).expect("two").len(), 2);
        for bad in [&b"[1]"[..], b"3", b"", b"{"] {
            let e = rows(bad, &headers).expect_err("refused");
            assert_eq!(e.kind(), Some(ErrorKind::InvalidBody), "{bad:?}");
        }
        let e = rows(br#"{"a":1}"#, &json_headers("text/plain")).expect_err("not JSON");
        assert!(e.to_string().contains("Content-Type not acceptable"), "{e}");
        assert!(rows(br#"{"a":1}"#, &json_headers("application/vnd.api+json")).is_ok());
    }

    #[test]
    fn written_columns_are_columns_or_the_keys_every_row_shares() {
        let query = parse_query(&decode_query("")).expect("query");
        let same: Vec<Map<String, Value>> = serde_json::from_str(r#"[{"a":1,"b":2},{"b":3,"a":4}]"#).expect("rows");
        assert_eq!(columns(&same, &query).expect("columns"), ["a", "b"]);
        let differ: Vec<Map<String, Value>> = serde_json::from_str(r#"[{"a":1},{"b":2}]"#).expect("rows");
        assert_eq!(columns(&differ, &query).expect_err("keys differ").kind(), Some(ErrorKind::InvalidBody));
        let named = parse_query(&decode_query("columns=b")).expect("query");
        assert_eq!(columns(&differ, &named).expect("columns="), ["b"]);
    }

    #[test]
    fn only_unchecked_writes_whose_rows_are_not_wanted_go_in_one_flight() {
        assert!(in_one_flight(&parse_prefer(["return=minimal"])));
        assert!(!in_one_flight(&parse_prefer(["return=representation"])));
        assert!(!in_one_flight(&parse_prefer(["return=headers-only"])));
        assert!(!in_one_flight(&parse_prefer(["tx=rollback"])));
        assert!(!in_one_flight(&parse_prefer(["handling=strict, max-affected=1"])));
        assert!(in_one_flight(&parse_prefer(["max-affected=1"])), "lenient handling checks nothing");
    }
}
