//! The HTTP face of forge-data: one file per endpoint; this module wires them.

pub(crate) mod openapi;
mod read;
mod root;
mod rpc;
mod write;

use axum::extract::{FromRequestParts, Path, RawQuery};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use forge_core::error::RefusalLayer;
use forge_core::rls::RequestContext;
use forge_core::{ForgeError, Project, WireFormat};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::data::Data;
use crate::error::{Error, Result, suggest};
use crate::plan::{Output, PlanOptions, ident};
use crate::query::{ApiQuery, ParseError, PreferCount, Preferences, decode_query, parse_prefer, parse_query};
use crate::schema::{Relation, Schema};

impl Data {
    /// The REST routes, to nest under `/rest/v1`. Requests need a [`forge_core::Project`] in
    /// their extensions (see [`forge_core::ProjectLayer`]).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        Router::new()
            .route("/", get(root::get))
            .route("/rpc/{function}", get(rpc::handle).post(rpc::handle).fallback(rpc::handle))
            .route(
                "/{relation}",
                get(read::get).post(write::handle).patch(write::handle).put(write::handle).delete(write::handle),
            )
            .layer(axum::middleware::from_fn(content_profile))
            .layer(axum::Extension(self.clone()))
            .layer(axum::Extension(WireFormat::PostgRest))
            .layer(RefusalLayer::new(WireFormat::PostgRest))
    }
}

/// Answers `Content-Profile` with the schema a successful request addressed, as PostgREST
/// does whenever the schema was negotiated: a profile header named it, or several schemas
/// are exposed (the default was then chosen).
async fn content_profile(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let name =
        if req.method() == Method::GET || req.method() == Method::HEAD { "accept-profile" } else { "content-profile" };
    let asked = req.headers().get(name).cloned();
    let default = req
        .extensions()
        .get::<Project>()
        .map(|p| &p.settings().exposed_schemas)
        .filter(|exposed| exposed.len() > 1)
        .and_then(|exposed| http::HeaderValue::from_str(&exposed[0]).ok());
    let mut res = next.run(req).await;
    if res.status().is_success()
        && !res.headers().contains_key("content-profile")
        && let Some(schema) = asked.or(default)
    {
        res.headers_mut().insert(http::HeaderName::from_static("content-profile"), schema);
    }
    res
}

/// The schema a request addresses: `Accept-Profile` for GET and HEAD, `Content-Profile`
/// otherwise, else the first exposed schema. Unexposed schemas are PGRST106.
pub(crate) fn request_schema<'a>(schema: &'a Schema, method: &Method, headers: &HeaderMap) -> Result<&'a str> {
    let name = if method == Method::GET || method == Method::HEAD { "accept-profile" } else { "content-profile" };
    let default = schema.schemas.first().map(String::as_str).unwrap_or("public");
    match headers.get(name) {
        None => Ok(default),
        Some(value) => {
            let wanted = value.to_str().unwrap_or("").trim();
            schema
                .schemas
                .iter()
                .find(|s| s.as_str() == wanted)
                .map(String::as_str)
                .ok_or_else(|| Error::schema_not_exposed(wanted, &schema.schemas))
        }
    }
}

/// The relation a request addresses, in the schema its profile header picks. Unknown
/// relations are PGRST205, with a hint when the name looks like a typo.
pub(crate) fn relation_of<'s>(
    schema: &'s Schema,
    method: &Method,
    headers: &HeaderMap,
    name: &str,
) -> Result<(&'s str, &'s Relation)> {
    let schema_name = request_schema(schema, method, headers)?;
    match schema.relation(schema_name, name) {
        Some(r) => Ok((schema_name, r)),
        None => {
            let names = schema.relations.keys().filter(|q| q.schema == schema_name).map(|q| q.name.as_str());
            Err(Error::relation_not_found(schema_name, name, suggest(name, names)))
        }
    }
}

pub(crate) fn parse_error(e: ParseError) -> Error {
    Error::parse(e)
}

/// The query string and the `Prefer` header of a request on a table or view, parsed; strict
/// handling is enforced here. Every parameter that is not reserved must be a filter.
pub(crate) fn parse_request(raw: &str, headers: &HeaderMap) -> Result<(ApiQuery, Preferences)> {
    let query = parse_query(&decode_query(raw)).map_err(parse_error)?;
    if let Some((key, value)) = query.params.first() {
        let shown: String = value.chars().take(200).collect();
        return Err(Error::parse(ParseError {
            code: "PGRST100",
            message: format!("\"failed to parse filter ({shown})\" (line 1, column 1)"),
            details: Some(format!(
                "unexpected \"{}\" expecting an operator (eq, gt, ...) for '{key}'",
                shown.chars().next().map(String::from).unwrap_or_default()
            )),
            hint: None,
        }));
    }
    let prefs = parse_prefer(headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()));
    prefs.check_strict().map_err(parse_error)?;
    Ok((query, prefs))
}

/// The response body's media type, from `Accept` (SUPABASE-WIRE.md §B.9).
pub(crate) fn negotiate(headers: &HeaderMap) -> Result<Output> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(Output::Json) };
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let stripped = parts.any(|p| p.eq_ignore_ascii_case("nulls=stripped"));
        match media.as_str() {
            "" | "*/*" | "application/*" | "application/json" => return Ok(Output::Json),
            "application/vnd.pgrst.array+json" if stripped => return Ok(Output::JsonStripped),
            "application/vnd.pgrst.array+json" => return Ok(Output::Json),
            "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" if stripped => {
                return Ok(Output::SingularStripped);
            }
            "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => return Ok(Output::Singular),
            "text/csv" | "text/*" => return Ok(Output::Csv),
            "application/geo+json" => return Ok(Output::GeoJson),
            "application/vnd.pgrst.plan" | "application/vnd.pgrst.plan+json" | "application/vnd.pgrst.plan+text" => {
                let mut plan = PlanOptions { text: media.ends_with("+text"), ..PlanOptions::default() };
                for param in item.split(';').skip(1).map(str::trim) {
                    if let Some(options) = param.strip_prefix("options=") {
                        for option in options.split('|') {
                            match option.trim() {
                                "analyze" => plan.analyze = true,
                                "verbose" => plan.verbose = true,
                                "settings" => plan.settings = true,
                                "buffers" => plan.buffers = true,
                                "wal" => plan.wal = true,
                                _ => {}
                            }
                        }
                    }
                }
                return Ok(Output::Plan(plan));
            }
            _ => {}
        }
    }
    Err(Error::not_acceptable(accept))
}

/// The request context with `search_path` set to the request's schema, then the extra search
/// path (PostgREST's `db-extra-search-path`; Supabase's is `public, extensions`, where it
/// installs extensions such as PostGIS), each schema once.
pub(crate) fn with_schema(ctx: RequestContext, schema: &str, extra: &[String]) -> RequestContext {
    let path: Vec<String> = search_path(schema, extra).iter().map(|s| ident(s)).collect();
    ctx.with_setting("search_path", path.join(", "))
}

/// The request's search path: its schema, then the extra ones (each once).
pub(crate) fn search_path(schema: &str, extra: &[String]) -> Vec<String> {
    let mut path = vec![schema.to_owned()];
    for name in extra {
        if !path.contains(name) {
            path.push(name.clone());
        }
    }
    path
}

/// Everything a REST handler takes from its request: the service, the project, the caller's
/// RLS context, and the method, path name, query string and headers.
pub(crate) struct Rest {
    pub(crate) data: Data,
    pub(crate) project: Project,
    pub(crate) ctx: RequestContext,
    pub(crate) method: Method,
    pub(crate) name: String,
    pub(crate) raw: String,
    pub(crate) headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Rest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Extension(data) =
            Extension::<Data>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let project = Project::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let ctx = RequestContext::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let Path(name) = Path::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        Ok(Rest {
            data,
            project,
            ctx,
            method: parts.method.clone(),
            name,
            raw: raw.unwrap_or_default(),
            headers: parts.headers.clone(),
        })
    }
}

impl Rest {
    /// Whether the caller is anything but anon (401 versus 403 for permission errors).
    pub(crate) fn authenticated(&self) -> bool {
        self.ctx.principal().is_authenticated()
    }
}

/// A handler's outcome, errors rendered in PostgREST's shape.
pub(crate) fn finish(authenticated: bool, result: Result<Response>) -> Response {
    result.unwrap_or_else(|e| e.render(authenticated))
}

/// Ends a transaction `Prefer: tx=rollback` throws away. Deferred constraints are checked
/// first (`SET CONSTRAINTS ALL IMMEDIATE`, as PostgREST does), so a write that could never
/// commit still fails as it would have.
pub(crate) async fn roll_back(tx: forge_core::rls::RlsTx) -> Result<()> {
    tx.execute("SET CONSTRAINTS ALL IMMEDIATE", &[]).await?;
    tx.rollback().await?;
    Ok(())
}

/// An unexpected failure: logged, answered with a generic 500.
pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
    Error::Core(ForgeError::internal(e.to_string()))
}

/// The one row a planned read returns: `(total, rows in the page, body)`.
pub(crate) fn read_row(rows: &[tokio_postgres::Row]) -> Result<(Option<i64>, u64, String)> {
    let row = rows.first().ok_or_else(|| internal("a read returned no row"))?;
    let total: Option<i64> = row.try_get(0).map_err(internal)?;
    let page: i64 = row.try_get(1).map_err(internal)?;
    let body: String = row.try_get(2).map_err(internal)?;
    Ok((total, u64::try_from(page).unwrap_or(0), body))
}

/// A page of rows, as PostgREST answers it (SERVER-BEHAVIOUR.md §1c).
pub(crate) struct Page<'a> {
    pub(crate) output: Output,
    pub(crate) offset: u64,
    /// The total, when a count was asked for.
    pub(crate) total: Option<u64>,
    pub(crate) rows: u64,
    pub(crate) body: String,
    /// The column names, for a CSV header.
    pub(crate) columns: &'a [String],
    pub(crate) head: bool,
    pub(crate) count: Option<PreferCount>,
}

impl Page<'_> {
    /// Checks a singular answer has one row, then answers with `Content-Range`, and 206 for
    /// a partial page or 416 for an offset past the end.
    pub(crate) fn respond(self) -> Result<Response> {
        if self.output.singular() && self.rows != 1 {
            return Err(Error::not_singular(self.rows));
        }
        let range = content_range(self.offset, self.rows, self.total);
        let status = match self.total {
            Some(t) if self.offset > t => {
                let err = Error::range_not_satisfiable(format!(
                    "An offset of {} was requested, but there are only {t} rows.",
                    self.offset
                ));
                let mut res = err.render(true);
                res.headers_mut().insert(header::CONTENT_RANGE, header_value(&format!("*/{t}")));
                return Ok(res);
            }
            Some(t) if self.rows < t => StatusCode::PARTIAL_CONTENT,
            _ => StatusCode::OK,
        };
        let body = if self.output == Output::Csv { csv(self.columns, self.body) } else { self.body };
        let mut res = if self.head { status.into_response() } else { (status, body).into_response() };
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.output.content_type()));
        h.insert(header::CONTENT_RANGE, header_value(&range));
        // Of the preferences, only the count applies to a read.
        if let Some(count) = self.count {
            h.insert("preference-applied", HeaderValue::from_static(count.as_str()));
        }
        Ok(res)
    }
}

/// `Content-Range` for `rows` rows from `offset`: `<first>-<last>/<total or *>`, or
/// `*/<total or *>` when there are none.
pub(crate) fn content_range(offset: u64, rows: u64, total: Option<u64>) -> String {
    let total_text = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
    if rows == 0 { format!("*/{total_text}") } else { format!("{offset}-{}/{total_text}", offset + rows - 1) }
}

/// A CSV body: the header line, then the rows Postgres rendered.
pub(crate) fn csv(columns: &[String], rows: String) -> String {
    let header: Vec<String> = columns
        .iter()
        .map(|c| if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.clone() })
        .collect();
    let mut text = header.join(",");
    if !rows.is_empty() {
        text.push('\n');
        text.push_str(&rows);
    }
    text
}

pub(crate) fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("*/*"))
}
