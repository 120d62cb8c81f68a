//! Horizontal filters: `col=[not.]op[(any|all)][(config)].value`, and the operator expressions
//! shared with logic trees.

use std::fmt::{self, Write};

use super::cursor::{Cursor, Name};
use super::error::{ParseError, SyntaxError};
use super::field::Field;
use super::render::{write_name, write_quoted};

/// The names a filter key's last segment may not have unquoted (they would read as reserved keys).
pub(super) const RESERVED_FIELD_NAMES: &[&str] =
    &["select", "columns", "on_conflict", "order", "limit", "offset", "and", "or", "not"];

/// A filter from a `key=value` query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Filter {
    /// The embed path before the column (`rel.sub.col=…` → `["rel", "sub"]`); empty at top level.
    pub path: Vec<String>,
    /// The filtered column (or, for `rel=not.is.null`, the embed name).
    pub field: Field,
    /// The operator and its value.
    pub expr: OpExpr,
}

impl Filter {
    /// The query-string key (`rel.col->a`).
    pub fn key(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write_path(&mut out, &self.path).and_then(|()| self.field.write_with(&mut out, RESERVED_FIELD_NAMES));
        out
    }

    /// The query-string value (`not.eq.5`).
    pub fn value(&self) -> String {
        self.expr.to_string()
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.expr)
    }
}

/// Write embed path segments each followed by `.`.
pub(super) fn write_path<W: Write>(w: &mut W, path: &[String]) -> fmt::Result {
    for segment in path {
        // `not` would be read as a negation in `rel.not.or` keys.
        write_name(w, segment, &["not"])?;
        w.write_char('.')?;
    }
    Ok(())
}

/// An optionally negated operation (`not.eq.5`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OpExpr {
    /// `not.` prefix.
    pub negated: bool,
    /// The operation.
    pub operation: Operation,
}

/// What a filter tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// A binary operator with a raw value, e.g. `eq.5`, `like(any).{a*,b%}`, `cs.{1,2}`.
    Op {
        /// The operator.
        op: Operator,
        /// `(any)` / `(all)`; only for operators where [`Operator::supports_quantifier`] holds.
        quantifier: Option<Quantifier>,
        /// The value, exactly as sent (it becomes a bound parameter).
        value: String,
    },
    /// `in.(a,"b,c")`: the list items, unquoted.
    In(Vec<String>),
    /// `is.null`, `is.not_null`, `is.true`, `is.false`, `is.unknown`.
    Is(IsValue),
    /// Full-text search: `fts(english).query`.
    Fts {
        /// Which `to_tsquery` flavour.
        op: FtsOperator,
        /// The text-search configuration in parentheses.
        config: Option<String>,
        /// The query text, exactly as sent.
        value: String,
    },
}

/// The binary operators (everything but `in`, `is` and full-text search).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operator {
    /// `eq`: `=`.
    Eq,
    /// `neq`: `<>`.
    Neq,
    /// `gt`: `>`.
    Gt,
    /// `gte`: `>=`.
    Gte,
    /// `lt`: `<`.
    Lt,
    /// `lte`: `<=`.
    Lte,
    /// `like` (`*` also stands for `%`).
    Like,
    /// `ilike`.
    Ilike,
    /// `match`: `~`.
    Match,
    /// `imatch`: `~*`.
    Imatch,
    /// `isdistinct`: `IS DISTINCT FROM`.
    IsDistinct,
    /// `cs`: `@>`.
    Cs,
    /// `cd`: `<@`.
    Cd,
    /// `ov`: `&&`.
    Ov,
    /// `sl`: `<<`.
    Sl,
    /// `sr`: `>>`.
    Sr,
    /// `nxl`: `&>`.
    Nxl,
    /// `nxr`: `&<`.
    Nxr,
    /// `adj`: `-|-`.
    Adj,
}

impl Operator {
    /// Every binary operator, in a fixed order.
    pub const ALL: [Self; 19] = [
        Self::Eq,
        Self::Neq,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::Like,
        Self::Ilike,
        Self::Match,
        Self::Imatch,
        Self::IsDistinct,
        Self::Cs,
        Self::Cd,
        Self::Ov,
        Self::Sl,
        Self::Sr,
        Self::Nxl,
        Self::Nxr,
        Self::Adj,
    ];

    /// The operator as written in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Neq => "neq",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Like => "like",
            Self::Ilike => "ilike",
            Self::Match => "match",
            Self::Imatch => "imatch",
            Self::IsDistinct => "isdistinct",
            Self::Cs => "cs",
            Self::Cd => "cd",
            Self::Ov => "ov",
            Self::Sl => "sl",
            Self::Sr => "sr",
            Self::Nxl => "nxl",
            Self::Nxr => "nxr",
            Self::Adj => "adj",
        }
    }

    /// The operator named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether `(any)` / `(all)` may follow the operator.
    pub fn supports_quantifier(self) -> bool {
        matches!(
            self,
            Self::Eq
                | Self::Neq
                | Self::Gt
                | Self::Gte
                | Self::Lt
                | Self::Lte
                | Self::Like
                | Self::Ilike
                | Self::Match
                | Self::Imatch
        )
    }
}

/// `(any)` or `(all)` after an operator: compare against every element of a `{a,b}` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Quantifier {
    /// `(any)`: `= ANY(...)`.
    Any,
    /// `(all)`: `= ALL(...)`.
    All,
}

impl Quantifier {
    /// `any` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::All => "all",
        }
    }
}

/// The full-text search operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FtsOperator {
    /// `fts`: `to_tsquery`.
    Fts,
    /// `plfts`: `plainto_tsquery`.
    Plfts,
    /// `phfts`: `phraseto_tsquery`.
    Phfts,
    /// `wfts`: `websearch_to_tsquery`.
    Wfts,
}

impl FtsOperator {
    /// Every full-text operator, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Fts, Self::Plfts, Self::Phfts, Self::Wfts];

    /// The operator as written in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fts => "fts",
            Self::Plfts => "plfts",
            Self::Phfts => "phfts",
            Self::Wfts => "wfts",
        }
    }

    /// The operator named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

/// The right-hand side of `is`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IsValue {
    /// `is.null`.
    Null,
    /// `is.not_null`.
    NotNull,
    /// `is.true`.
    True,
    /// `is.false`.
    False,
    /// `is.unknown`.
    Unknown,
}

impl IsValue {
    /// Every `is` value, in a fixed order.
    pub const ALL: [Self; 5] = [Self::Null, Self::NotNull, Self::True, Self::False, Self::Unknown];

    /// The value as rendered (lower case; parsing is case-insensitive).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::NotNull => "not_null",
            Self::True => "true",
            Self::False => "false",
            Self::Unknown => "unknown",
        }
    }
}

/// How an operator's value is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueMode {
    /// A query parameter: the value is the rest of the input, taken verbatim.
    Rest,
    /// Inside a logic tree: the value ends at `,` or `)` outside quotes and `{...}`.
    Logic,
}

/// Parse a filter from its key and value.
pub(super) fn parse_filter(key: &str, value: &str) -> Result<Filter, ParseError> {
    let (path, field) = parse_tree_path(key)?;
    let mut c = Cursor::new(value);
    let expr = op_expr(&mut c, ValueMode::Rest).map_err(|e| ParseError::syntax("filter", value, e))?;
    Ok(Filter { path, field, expr })
}

/// `rel.sub.col->json` → (`["rel", "sub"]`, `col->json`).
fn parse_tree_path(key: &str) -> Result<(Vec<String>, Field), ParseError> {
    let mut c = Cursor::new(key);
    let result = (|| {
        let mut names = c.dotted_names()?;
        let json_path = c.json_path()?;
        c.expect_end("\".\", \"->\", \"->>\" or end of input")?;
        let last = names.pop().map(|n| n.text).unwrap_or_default();
        Ok((names.into_iter().map(|n| n.text).collect(), Field { name: last, json_path }))
    })();
    result.map_err(|e| ParseError::syntax("tree path", key, e))
}

/// Parse the embed path of a key such as `rel.sub.order` (`path` is the part before the last
/// `.`, `None` when the key has no `.`).
pub(super) fn parse_embed_path(path: Option<&str>, key: &str) -> Result<Vec<String>, ParseError> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let mut c = Cursor::new(path);
    let result = c.dotted_names().and_then(|names| {
        c.expect_end("\".\" or end of input")?;
        Ok(names.into_iter().map(|n: Name| n.text).collect())
    });
    result.map_err(|e| ParseError::syntax("tree path", key, e))
}

/// Whether a value of a dot-free key looks like a filter (`[not.]op...`) rather than an RPC
/// argument, as PostgREST decides it.
pub(super) fn looks_like_filter(value: &str) -> bool {
    if value.starts_with("not.") {
        return true;
    }
    let head = value.split(['.', '(']).next().unwrap_or_default();
    matches!(head, "in" | "is") || Operator::from_name(head).is_some() || FtsOperator::from_name(head).is_some()
}

/// `[not.]operation`, with values delimited per `mode`.
pub(super) fn op_expr(c: &mut Cursor, mode: ValueMode) -> Result<OpExpr, SyntaxError> {
    let negated = c.eat_str("not.");
    let op_col = c.column();
    let name = c.word();
    let operation = match name.as_str() {
        "in" => {
            c.expect('.', "delimiter (.)")?;
            c.skip_ws();
            let items = in_list(c)?;
            if mode == ValueMode::Rest {
                c.skip_ws();
                c.expect_end("end of input")?;
            }
            Operation::In(items)
        }
        "is" => {
            c.expect('.', "delimiter (.)")?;
            let col = c.column();
            let word = c.word().to_ascii_lowercase();
            let value = IsValue::ALL.into_iter().find(|v| v.as_str() == word).ok_or_else(|| {
                SyntaxError::custom(col, "expecting null or trilean value (null, not_null, unknown, true, false)")
            })?;
            if mode == ValueMode::Rest {
                c.expect_end("end of input")?;
            }
            Operation::Is(value)
        }
        "" => return Err(c.error("operator (eq, gt, ...)")),
        other => {
            if let Some(op) = FtsOperator::from_name(other) {
                let config = if c.eat('(') {
                    let config = c.word();
                    if config.is_empty() {
                        return Err(c.error("text search configuration name"));
                    }
                    c.expect(')', "\")\"")?;
                    Some(config)
                } else {
                    None
                };
                c.expect('.', "delimiter (.)")?;
                Operation::Fts { op, config, value: value(c, mode)? }
            } else if let Some(op) = Operator::from_name(other) {
                let quantifier = if c.peek() == Some('(') && op.supports_quantifier() {
                    c.bump();
                    let col = c.column();
                    let q = match c.word().as_str() {
                        "any" => Quantifier::Any,
                        "all" => Quantifier::All,
                        _ => return Err(SyntaxError::custom(col, "expecting quantifier (any, all)")),
                    };
                    c.expect(')', "\")\"")?;
                    Some(q)
                } else {
                    None
                };
                c.expect('.', "delimiter (.)")?;
                Operation::Op { op, quantifier, value: value(c, mode)? }
            } else {
                return Err(SyntaxError::custom(op_col, format!("unknown single value operator {}", short(other))));
            }
        }
    };
    Ok(OpExpr { negated, operation })
}

/// At most 50 characters of `s`, for error details.
fn short(s: &str) -> String {
    let t: String = s.chars().take(50).collect();
    if t.len() < s.len() { format!("{t}...") } else { t }
}

fn value(c: &mut Cursor, mode: ValueMode) -> Result<String, SyntaxError> {
    match mode {
        ValueMode::Rest => Ok(c.rest()),
        ValueMode::Logic => Ok(logic_value(c)),
    }
}

/// `(a,"b,c",d)`: items are raw up to `,`/`)`, or double-quoted (backslash escapes) when the
/// closing quote is followed by `,` or `)`. `()` is the empty list.
fn in_list(c: &mut Cursor) -> Result<Vec<String>, SyntaxError> {
    c.expect('(', "\"(\"")?;
    c.skip_ws();
    let mut items = Vec::new();
    if c.eat(')') {
        return Ok(items);
    }
    loop {
        items.push(quoted_or_raw(c, false));
        if c.eat(',') {
            continue;
        }
        c.expect(')', "\",\" or \")\"")?;
        return Ok(items);
    }
}

/// A value ending at `,` or `)` (or the end of input): double-quoted when the closing quote is
/// followed by one of those, raw otherwise. With `braces`, a raw value may contain `,` and `)`
/// inside balanced `{...}` (with JSON strings in them), as in `cs.{a,b}`.
fn quoted_or_raw(c: &mut Cursor, braces: bool) -> String {
    let start = c.pos();
    if c.peek() == Some('"') {
        if let Ok(s) = c.quoted()
            && matches!(c.peek(), None | Some(',' | ')'))
        {
            return s;
        }
        c.reset(start);
    }
    if braces && let Some(s) = braced_raw(c) {
        return s;
    }
    c.reset(start);
    let mut out = String::new();
    while let Some(ch) = c.peek().filter(|ch| !matches!(ch, ',' | ')')) {
        out.push(ch);
        c.bump();
    }
    out
}

/// A raw value that may hold `,`/`)` inside balanced braces; `None` when braces or JSON
/// strings are left open at the end of input, or when the cursor's scan budget runs out
/// (pathological input such as thousands of unclosed `{` would otherwise take quadratic time).
fn braced_raw(c: &mut Cursor) -> Option<String> {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut in_string = false;
    while let Some(ch) = c.peek() {
        if depth == 0 && matches!(ch, ',' | ')') {
            break;
        }
        if !c.spend() {
            return None;
        }
        c.bump();
        out.push(ch);
        if in_string {
            match ch {
                '\\' => out.push(c.bump()?),
                '"' => in_string = false,
                _ => {}
            }
        } else {
            match ch {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                '"' if depth > 0 => in_string = true,
                _ => {}
            }
        }
    }
    (depth == 0 && !in_string).then_some(out)
}

/// A value inside a logic tree (see [`quoted_or_raw`]).
pub(super) fn logic_value(c: &mut Cursor) -> String {
    quoted_or_raw(c, true)
}

/// Whether `value` is read back verbatim when written raw in a logic tree, whatever follows it:
/// it must not start with `"` (it could pair with a later quote) and must scan to its end as a
/// raw value with balanced braces and JSON strings (so the scan cannot run into what follows).
fn logic_value_is_raw(value: &str) -> bool {
    if value.starts_with('"') {
        return false;
    }
    let mut c = Cursor::new(value);
    braced_raw(&mut c).is_some_and(|s| s == value) && c.at_end()
}

/// Whether an `in` list item would be read back verbatim if written raw.
fn list_item_is_raw(item: &str) -> bool {
    !item.is_empty() && !item.starts_with([' ', '\t']) && !item.contains([',', '(', ')', '"', '\\'])
}

impl OpExpr {
    /// Write the expression; values are quoted as needed for `mode`.
    pub(super) fn write_with<W: Write>(&self, w: &mut W, mode: ValueMode) -> fmt::Result {
        if self.negated {
            w.write_str("not.")?;
        }
        let write_value = |w: &mut W, value: &str| match mode {
            ValueMode::Logic if !logic_value_is_raw(value) => write_quoted(w, value),
            _ => w.write_str(value),
        };
        match &self.operation {
            Operation::Op { op, quantifier, value } => {
                w.write_str(op.as_str())?;
                if let Some(q) = quantifier {
                    write!(w, "({})", q.as_str())?;
                }
                w.write_char('.')?;
                write_value(w, value)
            }
            Operation::In(items) => {
                w.write_str("in.(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        w.write_char(',')?;
                    }
                    if list_item_is_raw(item) {
                        w.write_str(item)?;
                    } else {
                        write_quoted(w, item)?;
                    }
                }
                w.write_char(')')
            }
            Operation::Is(v) => write!(w, "is.{}", v.as_str()),
            Operation::Fts { op, config, value } => {
                w.write_str(op.as_str())?;
                if let Some(config) = config {
                    write!(w, "({config})")?;
                }
                w.write_char('.')?;
                write_value(w, value)
            }
        }
    }
}

impl fmt::Display for OpExpr {
    /// The query-parameter form (values verbatim).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, ValueMode::Rest)
    }
}
