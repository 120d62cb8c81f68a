//! The PostgREST query-string grammar: `select`, filters, logic trees, `order`, `limit` and
//! `offset`, plus the `Prefer` and `Range` headers. HTTP-free and database-free: it turns
//! strings into a syntax tree and back, and knows nothing of the schema.
//!
//! ```
//! use forge_data::query::{decode_query, parse_query};
//!
//! let pairs = decode_query("select=id%2Cname%2Ccities%21inner%28name%29&id=gt.5&order=name.desc");
//! let query = parse_query(&pairs).unwrap();
//! assert_eq!(query.select.len(), 3);
//! assert_eq!(query.filters[0].value(), "gt.5");
//! // Every parsed query renders back to an equivalent query string.
//! assert_eq!(parse_query(&query.to_pairs()), Ok(query));
//! ```
//!
//! Key classification follows PostgREST:
//! - `select`, `columns` and `on_conflict` are reserved;
//! - a key whose last `.`-separated word is `order`, `limit`, `offset`, `and` or `or` is an
//!   (embed-scoped) `order`, range or logic parameter (`rel.order`, `not.or`, `rel.not.and`);
//! - any other key containing a `.`, or whose value starts with an operator (`eq.`, `not.`,
//!   `in.`, `fts(`, ...), is a filter;
//! - everything else is an RPC argument ([`ApiQuery::params`]), e.g. `GET /rpc/f?a=1`.

mod cursor;
mod error;
mod field;
mod filter;
mod logic;
mod order;
mod prefer;
mod range;
mod render;
mod select;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use error::ParseError;
pub use field::{Field, JsonArrow, JsonOperand, JsonStep};
pub use filter::{Filter, FtsOperator, IsValue, OpExpr, Operation, Operator, Quantifier};
pub use logic::{LogicFilter, LogicOp, LogicTree};
pub use order::{NullsOrder, OrderDirection, OrderSpec, OrderTerm};
pub use prefer::{
    PreferCount, PreferHandling, PreferMissing, PreferResolution, PreferReturn, PreferTx, Preferences, parse_prefer,
};
pub use range::{RangeSpec, parse_range_header};
pub use select::{Aggregate, AggregateFunction, Embed, JoinType, SelectField, SelectItem, render_select};

use cursor::Cursor;
use range::RangeParam;

/// The deepest nesting of embeds (in `select`) and of logic trees that the parsers accept.
pub const MAX_DEPTH: usize = 32;

/// The most `->`/`->>` steps a JSON path may take (in `select`, filters and `order`): far more
/// than any document needs, far fewer than would exhaust Postgres' stack.
pub const MAX_JSON_PATH: usize = 100;

/// A parsed query string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiQuery {
    /// `select=`; `[SelectItem::Star]` when absent (only the first `select` counts).
    pub select: Vec<SelectItem>,
    /// Filters, in query-string order (repeated keys mean AND).
    pub filters: Vec<Filter>,
    /// `or=`, `and=`, `not.or=`, `not.and=` and their embed-scoped forms.
    pub logic: Vec<LogicFilter>,
    /// `order=` and `rel.order=`, one entry per parameter.
    pub order: Vec<OrderSpec>,
    /// `limit=`/`offset=` per embed path, in order of first appearance (a later value for the
    /// same path and parameter replaces an earlier one).
    pub ranges: Vec<RangeSpec>,
    /// `columns=` (only the first counts).
    pub columns: Option<Vec<String>>,
    /// `on_conflict=` (only the first counts).
    pub on_conflict: Option<Vec<String>>,
    /// Parameters that are neither reserved nor filters: RPC arguments for `GET /rpc/f?a=1`
    /// (the planner ignores or rejects them on tables).
    pub params: Vec<(String, String)>,
}

impl Default for ApiQuery {
    fn default() -> Self {
        Self {
            select: vec![SelectItem::Star],
            filters: Vec::new(),
            logic: Vec::new(),
            order: Vec::new(),
            ranges: Vec::new(),
            columns: None,
            on_conflict: None,
            params: Vec::new(),
        }
    }
}

/// Decode a raw query string (an optional leading `?` is skipped) with form-urlencoding rules:
/// `+` is a space and `%XX` is percent-decoded (invalid UTF-8 is replaced). Order and repeated
/// keys are preserved.
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    let raw = raw.strip_prefix('?').unwrap_or(raw);
    form_urlencoded::parse(raw.as_bytes()).into_owned().collect()
}

/// Parse decoded query parameters (see [`decode_query`]) into an [`ApiQuery`].
///
/// Fails with `PGRST100` on any syntax error, and with `PGRST103` on a negative `limit`.
pub fn parse_query(pairs: &[(String, String)]) -> Result<ApiQuery, ParseError> {
    let mut q = ApiQuery::default();
    let (mut seen_select, mut seen_columns, mut seen_on_conflict) = (false, false, false);
    for (key, value) in pairs {
        match key.as_str() {
            "select" => {
                if !std::mem::replace(&mut seen_select, true) {
                    q.select = select::parse_select(value)?;
                }
                continue;
            }
            "columns" => {
                if !std::mem::replace(&mut seen_columns, true) {
                    q.columns = Some(parse_columns("columns parameter", value)?);
                }
                continue;
            }
            "on_conflict" => {
                if !std::mem::replace(&mut seen_on_conflict, true) {
                    q.on_conflict = Some(parse_columns("on_conflict parameter", value)?);
                }
                continue;
            }
            _ => {}
        }
        let (prefix, last) = match key.rsplit_once('.') {
            Some((prefix, last)) => (Some(prefix), last),
            None => (None, key.as_str()),
        };
        match last {
            "order" => {
                let path = filter::parse_embed_path(prefix, key)?;
                q.order.push(order::parse_order(path, value)?);
            }
            "limit" | "offset" => {
                let path = filter::parse_embed_path(prefix, key)?;
                let param = if last == "limit" { RangeParam::Limit } else { RangeParam::Offset };
                let n = range::parse_range_value(param, value)?;
                let set = |spec: &mut RangeSpec| match param {
                    RangeParam::Limit => spec.limit = Some(n),
                    RangeParam::Offset => spec.offset = Some(n),
                };
                if let Some(spec) = q.ranges.iter_mut().find(|r| r.path == path) {
                    set(spec);
                } else {
                    let mut spec = RangeSpec { path, limit: None, offset: None };
                    set(&mut spec);
                    q.ranges.push(spec);
                }
            }
            "and" | "or" => {
                let op = if last == "and" { LogicOp::And } else { LogicOp::Or };
                let (prefix, negated) = match prefix {
                    Some("not") => (None, true),
                    Some(p) => match p.strip_suffix(".not") {
                        Some(p) => (Some(p), true),
                        None => (Some(p), false),
                    },
                    None => (None, false),
                };
                let path = filter::parse_embed_path(prefix, key)?;
                q.logic.push(logic::parse_logic(path, negated, op, value)?);
            }
            _ if prefix.is_some() || filter::looks_like_filter(value) => {
                q.filters.push(filter::parse_filter(key, value)?);
            }
            _ => q.params.push((key.clone(), value.clone())),
        }
    }
    Ok(q)
}

/// `a,"b c"` → `["a", "b c"]` (at least one name).
fn parse_columns(what: &str, value: &str) -> Result<Vec<String>, ParseError> {
    let mut c = Cursor::new(value);
    let result = (|| {
        let mut names = Vec::new();
        loop {
            c.skip_ws();
            names.push(c.name()?.text);
            c.skip_ws();
            if !c.eat(',') {
                c.expect_end("\",\" or end of input")?;
                return Ok(names);
            }
        }
    })();
    result.map_err(|e| ParseError::syntax(what, value, e))
}

fn render_names(names: &[String]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = render::write_names(&mut out, names, ',', &[]);
    out
}

impl ApiQuery {
    /// Render the query back to decoded `(key, value)` pairs in canonical syntax, such that
    /// `parse_query(&q.to_pairs()) == Ok(q)` for every `q` that `parse_query` produced.
    ///
    /// Order: `select` (omitted when it is the default `*`), `columns`, `on_conflict`, filters,
    /// RPC arguments, logic trees, `order`, then `limit`/`offset`.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.select != [SelectItem::Star] {
            out.push(("select".to_owned(), render_select(&self.select)));
        }
        if let Some(columns) = &self.columns {
            out.push(("columns".to_owned(), render_names(columns)));
        }
        if let Some(on_conflict) = &self.on_conflict {
            out.push(("on_conflict".to_owned(), render_names(on_conflict)));
        }
        out.extend(self.filters.iter().map(|f| (f.key(), f.value())));
        out.extend(self.params.iter().cloned());
        out.extend(self.logic.iter().map(|l| (l.key(), l.value())));
        out.extend(self.order.iter().map(|o| (o.key(), o.value())));
        for range in &self.ranges {
            let mut prefix = String::new();
            // Writing to a String cannot fail.
            let _ = filter::write_path(&mut prefix, &range.path);
            if let Some(limit) = range.limit {
                out.push((format!("{prefix}limit"), limit.to_string()));
            }
            if let Some(offset) = range.offset {
                out.push((format!("{prefix}offset"), offset.to_string()));
            }
        }
        out
    }

    /// [`ApiQuery::to_pairs`], form-urlencoded into a query string (without the leading `?`).
    pub fn to_query_string(&self) -> String {
        form_urlencoded::Serializer::new(String::new()).extend_pairs(self.to_pairs()).finish()
    }

    /// The `limit`/`offset` given for an embed path (`&[]` for the top level).
    pub fn range_for(&self, path: &[String]) -> Option<&RangeSpec> {
        self.ranges.iter().find(|r| r.path == path)
    }
}
