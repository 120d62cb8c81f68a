//! The HTTP face of forge-data: one file per endpoint; this module wires them.

pub(crate) mod openapi;
mod read;
mod root;
mod rpc;
mod write;

use axum::Router;
use axum::routing::get;
use forge_core::WireFormat;
use forge_core::rls::RequestContext;
use http::{HeaderMap, Method, header};

use crate::data::Data;
use crate::error::{Error, Result, suggest};
use crate::plan::{Output, ident};
use crate::query::{ApiQuery, ParseError, Preferences, decode_query, parse_prefer, parse_query};
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
            .layer(axum::Extension(self.clone()))
            .layer(axum::Extension(WireFormat::PostgRest))
    }
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
    let status = e.status();
    Error::parse(e.code, status, e.message, e.details, e.hint)
}

/// The query string and the `Prefer` header of a request on a table or view, parsed; strict
/// handling is enforced here. Every parameter that is not reserved must be a filter.
pub(crate) fn parse_request(raw: &str, headers: &HeaderMap) -> Result<(ApiQuery, Preferences)> {
    let query = parse_query(&decode_query(raw)).map_err(parse_error)?;
    if let Some((key, value)) = query.params.first() {
        let shown: String = value.chars().take(200).collect();
        return Err(Error::parse(
            "PGRST100",
            400,
            format!("\"failed to parse filter ({shown})\" (line 1, column 1)"),
            Some(format!(
                "unexpected \"{}\" expecting an operator (eq, gt, ...) for '{key}'",
                shown.chars().next().map(String::from).unwrap_or_default()
            )),
            None,
        ));
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
            _ => {}
        }
    }
    Err(Error::not_acceptable(accept))
}

/// The request context with `search_path` set to the request's schema, as PostgREST does.
pub(crate) fn with_schema(ctx: RequestContext, schema: &str) -> RequestContext {
    let path = if schema == "public" { ident(schema) } else { format!("{}, public", ident(schema)) };
    ctx.with_setting("search_path", path)
}
