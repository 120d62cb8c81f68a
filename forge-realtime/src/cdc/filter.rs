//! `postgres_changes` filters, as clients send them in a join's `filter` string:
//! `col=op.value`, optionally `col=not.op.value`, several joined by top-level commas.
//!
//! Parsing follows upstream `parse_subscription_params` (supabase/realtime
//! `lib/extensions/postgres_cdc_rls/subscriptions.ex`), including its error texts. Upstream
//! then evaluates filters in SQL (`realtime.is_visible_through_filters` and the five-argument
//! `realtime.check_equality_op` in `priv/repo/tenant_schema/realtime/functions/`): the row's
//! value and the filter's value are both cast to the column's type and compared with the
//! operator, a NULL result (a NULL value) fails the filter, and a filter on a column the row
//! does not carry fails too. [`Filters::matches`] does the same on the decoded [`Change`],
//! comparing by the column's type: numbers numerically, booleans as booleans, timestamps and
//! dates as instants, uuids case-insensitively, everything else by its text (bytewise, as the
//! `C` collation would). [`Filters::validate`] mirrors the checks of upstream's
//! `realtime.subscription_check_filters` trigger, which run when a subscription is made.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::value::{ArrayItem, Decimal, number, parse_array};
use super::{Change, ChangeKind, Column};

/// The most memory a `match`/`imatch` pattern may compile to (a larger one is refused).
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `= any(array)`
    In,
    /// `LIKE`
    Like,
    /// `ILIKE`
    Ilike,
    /// `IS NULL | TRUE | FALSE | UNKNOWN`
    Is,
    /// `~`
    Match,
    /// `~*`
    Imatch,
    /// `IS DISTINCT FROM`
    IsDistinct,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            "like" => Op::Like,
            "ilike" => Op::Ilike,
            "is" => Op::Is,
            "match" => Op::Match,
            "imatch" => Op::Imatch,
            "isdistinct" => Op::IsDistinct,
            _ => return None,
        })
    }

    /// The operator's name in the filter syntax.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::In => "in",
            Op::Like => "like",
            Op::Ilike => "ilike",
            Op::Is => "is",
            Op::Match => "match",
            Op::Imatch => "imatch",
            Op::IsDistinct => "isdistinct",
        }
    }
}

/// One `column=[not.]op.value` condition.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// The column.
    pub(crate) column: String,
    /// The operator.
    pub(crate) op: Op,
    /// The value as upstream stores it: unquoted, and for `in` the array literal `{a,b}`.
    pub(crate) value: String,
    /// The `not.` prefix.
    pub(crate) negate: bool,
    /// For `in`: the parsed list (`None` for a NULL element); `None` if it is malformed.
    items: Option<Vec<Option<String>>>,
    /// For `match`/`imatch`: the compiled pattern, or the compile error.
    regex: Option<Result<Regex, String>>,
}

/// All the conditions of one subscription (all must hold).
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters(pub(crate) Vec<Filter>);

const OPS: [&str; 13] =
    ["eq", "neq", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "match", "imatch", "isdistinct"];

/// Parses a join's `filter` string. An empty or blank string is no filter. Errors carry
/// upstream's text, e.g. ``Error parsing `filter` params: ["foo", "hey"]``.
pub(crate) fn parse(filter: &str) -> Result<Filters, String> {
    let trimmed = filter.trim();
    if trimmed.is_empty() {
        return Ok(Filters::default());
    }
    split_top_level(trimmed)
        .iter()
        .map(|segment| parse_segment(segment))
        .collect::<Result<Vec<_>, _>>()
        .map(Filters)
        .map_err(|reason| format!("Error parsing `filter` params: {reason}"))
}

/// Splits on commas outside parentheses and quotes. A quote opens a quoted part only after
/// `.`, `(` or `,`; inside one, a backslash escapes the next character.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quoted, mut prev) = (0usize, false, '\0');
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if quoted {
            current.push(c);
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        current.push(next);
                        prev = next;
                    }
                    continue;
                }
                '"' => quoted = false,
                _ => {}
            }
            prev = c;
            continue;
        }
        match c {
            '"' if matches!(prev, '.' | '(' | ',') => quoted = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                prev = '\0';
                continue;
            }
            _ => {}
        }
        current.push(c);
        prev = c;
    }
    parts.push(current);
    parts
}

fn parse_segment(segment: &str) -> Result<Filter, String> {
    let trimmed = segment.trim();
    if trimmed.is_empty() {
        return Err("filter must not contain empty segments (check for extra commas)".into());
    }
    let Some((column, rest)) = trimmed.split_once('=') else {
        return Err(inspect_list(&[trimmed]));
    };
    let (negate, op_value) = match rest.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let Some((op_name, value)) = op_value.split_once('.') else {
        return Err(inspect_list(&[op_value]));
    };
    let Some(op) = Op::parse(op_name).filter(|_| OPS.contains(&op_name)) else {
        return Err(inspect_list(&[op_name, value]));
    };
    let value = if op == Op::In {
        let inner = value
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| "`in` filter value must be wrapped by parentheses".to_owned())?;
        format!("{{{inner}}}")
    } else {
        unquote(value)
    };
    let items = (op == Op::In).then(|| {
        parse_array(&value, b',').and_then(|items| {
            items
                .into_iter()
                .map(|i| match i {
                    ArrayItem::Null => Some(None),
                    ArrayItem::Value(v) => Some(Some(v)),
                    ArrayItem::Nested(_) => None,
                })
                .collect()
        })
    });
    let regex = matches!(op, Op::Match | Op::Imatch).then(|| {
        // Bounded: a client's pattern must not cost the server much memory or time.
        RegexBuilder::new(&value)
            .case_insensitive(op == Op::Imatch)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| e.to_string())
    });
    Ok(Filter { column: column.to_owned(), op, value, negate, items: items.flatten(), regex })
}

/// Upstream's `unquote_value`: `"..."` with backslash escapes becomes its content; a value
/// with a stray quote inside, or no closing quote, stays as it was.
fn unquote(value: &str) -> String {
    let Some(rest) = value.strip_prefix('"') else {
        return value.to_owned();
    };
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return if chars.as_str().is_empty() { out } else { value.to_owned() },
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => return value.to_owned(),
            },
            c => out.push(c),
        }
    }
    value.to_owned()
}

/// Elixir's `inspect` of a list of strings, as upstream formats parse errors.
fn inspect_list(items: &[&str]) -> String {
    let inner: Vec<String> = items.iter().map(|s| inspect_str(s)).collect();
    format!("[{}]", inner.join(", "))
}

fn inspect_str(s: &str) -> String {
    let printable = s
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r' | '\x0b' | '\x08' | '\x0c' | '\x1b' | '\x07'));
    if !printable {
        let bytes: Vec<String> = s.bytes().map(|b| b.to_string()).collect();
        return format!("<<{}>>", bytes.join(", "));
    }
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x0b' => out.push_str("\\v"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x1b' => out.push_str("\\e"),
            '\x07' => out.push_str("\\a"),
            '#' if chars.peek() == Some(&'{') => out.push_str("\\#"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Filters {
    /// The columns the filters name, in order, each once: check them against the table's
    /// columns at join time.
    pub(crate) fn columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for f in &self.0 {
            if !out.contains(&f.column.as_str()) {
                out.push(&f.column);
            }
        }
        out
    }

    /// The checks upstream's `realtime.subscription_check_filters` trigger makes when a
    /// subscription is inserted, given the table's columns (those the role may select).
    /// The error is that trigger's exception message.
    pub(crate) fn validate(&self, columns: &[Column]) -> Result<(), String> {
        for f in &self.0 {
            let Some(column) = columns.iter().find(|c| c.name == f.column) else {
                return Err(format!("invalid column for filter {}", f.column));
            };
            let ty = column.type_name.as_str();
            match f.op {
                Op::In => {
                    let items = f.items.as_ref().ok_or_else(|| format!("malformed array literal: \"{}\"", f.value))?;
                    if items.len() > 100 {
                        return Err("too many values for `in` filter. Maximum 100".into());
                    }
                    for item in items.iter().flatten() {
                        check_input(ty, item)?;
                    }
                }
                Op::Is => {
                    if !matches!(f.value.as_str(), "null" | "true" | "false" | "unknown") {
                        return Err("invalid value for is filter: must be null, true, false, or unknown".into());
                    }
                    if f.value != "null" && ty != "bool" {
                        return Err(format!("is {} filter requires a boolean column, got {}", f.value, regtype(ty)));
                    }
                }
                Op::Like | Op::Ilike => {
                    // Types with their own `~~` operator; varchar has none (it coerces to
                    // text implicitly, but the trigger looks for an exact `oprleft`).
                    if !matches!(ty, "text" | "bpchar" | "name" | "bytea") {
                        return Err(format!(
                            "operator {} requires a text-compatible column type, got {}",
                            f.op.as_str(),
                            regtype(ty)
                        ));
                    }
                }
                Op::Match | Op::Imatch => {
                    if ty != "text" {
                        return Err(format!(
                            "operator {} requires a text-compatible column type, got {}",
                            f.op.as_str(),
                            regtype(ty)
                        ));
                    }
                    if let Some(Err(e)) = &f.regex {
                        return Err(format!("invalid regular expression for {} filter: {e}", f.op.as_str()));
                    }
                }
                _ => check_input(ty, &f.value)?,
            }
        }
        Ok(())
    }

    /// Whether the change passes every filter: INSERT and UPDATE are judged on `record`,
    /// DELETE on `old_record`.
    pub(crate) fn matches(&self, change: &Change) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let row = match change.kind {
            ChangeKind::Insert | ChangeKind::Update => change.record.as_ref(),
            ChangeKind::Delete => change.old_record.as_ref(),
        };
        let Some(row) = row else { return false };
        self.0.iter().all(|f| {
            let Some(value) = row.get(&f.column) else { return false };
            let ty = change.columns.iter().find(|c| c.name == f.column).map_or("text", |c| c.type_name.as_str());
            f.eval(ty, value) == Some(true)
        })
    }
}

impl Filter {
    /// SQL's three-valued result of the condition on one value.
    fn eval(&self, ty: &str, value: &Value) -> Option<bool> {
        let negate = |r: Option<bool>| if self.negate { r.map(|b| !b) } else { r };
        match self.op {
            Op::Is => {
                let result = match self.value.as_str() {
                    "null" => value.is_null(),
                    "true" => value == &Value::Bool(true),
                    "false" => value == &Value::Bool(false),
                    "unknown" => value.is_null(),
                    _ => return None,
                };
                if !value.is_null() && !value.is_boolean() && self.value != "null" {
                    return None; // `IS TRUE` on a non-boolean is an error upstream
                }
                Some(result != self.negate)
            }
            Op::IsDistinct => {
                let distinct = match value {
                    Value::Null => true,
                    v => compare(ty, v, &self.value)? != Ordering::Equal,
                };
                Some(distinct != self.negate)
            }
            _ if value.is_null() => None,
            Op::Eq => negate(compare(ty, value, &self.value).map(|o| o == Ordering::Equal)),
            Op::Neq => negate(compare(ty, value, &self.value).map(|o| o != Ordering::Equal)),
            Op::Lt => negate(compare(ty, value, &self.value).map(|o| o == Ordering::Less)),
            Op::Lte => negate(compare(ty, value, &self.value).map(|o| o != Ordering::Greater)),
            Op::Gt => negate(compare(ty, value, &self.value).map(|o| o == Ordering::Greater)),
            Op::Gte => negate(compare(ty, value, &self.value).map(|o| o != Ordering::Less)),
            Op::In => {
                // `x = any(array)`: true if any element equals, else NULL if any element is
                // NULL (or incomparable), else false.
                let items = self.items.as_ref()?;
                let mut unknown = false;
                for item in items {
                    match item.as_deref().and_then(|i| compare(ty, value, i)) {
                        Some(Ordering::Equal) => return negate(Some(true)),
                        Some(_) => {}
                        None => unknown = true,
                    }
                }
                negate(if unknown { None } else { Some(false) })
            }
            Op::Like | Op::Ilike => {
                let text = text_of(value);
                negate(Some(like(&text, &self.value, self.op == Op::Ilike)))
            }
            Op::Match | Op::Imatch => match &self.regex {
                Some(Ok(re)) => negate(Some(re.is_match(&text_of(value)))),
                _ => None,
            },
        }
    }
}

/// A value's text, as its cast to text would print it.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        v => v.to_string(),
    }
}

/// Compares a row's value with a filter's text, both taken as the column's type. `None`
/// when the filter's text is not a value of that type (upstream would fail the cast).
fn compare(ty: &str, value: &Value, text: &str) -> Option<Ordering> {
    match value {
        Value::Null => None,
        Value::Bool(b) => parse_bool(text).map(|t| b.cmp(&t)),
        Value::Number(n) => numeric(ty, &n.to_string(), text),
        Value::String(s) => match ty {
            "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" => numeric(ty, s, text),
            "timestamptz" | "timestamp" | "date" => {
                let (a, b) = (Instant::parse(s, ty)?, Instant::parse(text, ty)?);
                Some(a.cmp(&b))
            }
            "uuid" => {
                let norm = |s: &str| -> String {
                    s.chars().filter(|c| c.is_ascii_hexdigit()).map(|c| c.to_ascii_lowercase()).collect()
                };
                Some(norm(s).cmp(&norm(text)))
            }
            "bpchar" => Some(s.trim_end_matches(' ').cmp(text.trim_end_matches(' '))),
            _ => Some(s.as_str().cmp(text)),
        },
        Value::Array(_) | Value::Object(_) => {
            let other = if ty == "json" || ty == "jsonb" {
                serde_json::from_str::<Value>(text).ok()?
            } else if let Some(elem) = ty.strip_prefix('_') {
                array_json(elem, &parse_array(text, b',')?)
            } else {
                return None;
            };
            if &other == value { Some(Ordering::Equal) } else { Some(value.to_string().cmp(&other.to_string())) }
        }
    }
}

/// An array literal's JSON, converting elements by the element type's name.
fn array_json(elem: &str, items: &[ArrayItem]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| match i {
                ArrayItem::Null => Value::Null,
                ArrayItem::Nested(inner) => array_json(elem, inner),
                ArrayItem::Value(v) => match elem {
                    "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" => number(v),
                    "bool" => parse_bool(v).map_or_else(|| Value::String(v.clone()), Value::Bool),
                    "json" | "jsonb" => serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone())),
                    _ => Value::String(v.clone()),
                },
            })
            .collect(),
    )
}

/// Postgres's boolean input: `t`, `true`, `yes`, `on`, `1` and their opposites, any case,
/// or any unique prefix of the words.
fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    let prefix_of = |word: &str| word.starts_with(t.as_str());
    if prefix_of("true") || prefix_of("yes") || t == "on" || t == "1" {
        Some(true)
    } else if prefix_of("false") || t == "no" || t == "n" || t == "off" || t == "of" || t == "0" {
        Some(false)
    } else {
        None
    }
}

/// A number for ordering, as Postgres orders `numeric` and floats: NaN above infinity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NumKey {
    NegInf,
    Finite(Decimal),
    PosInf,
    NaN,
}

impl NumKey {
    fn parse(ty: &str, text: &str) -> Option<NumKey> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "nan" => return Some(NumKey::NaN),
            "infinity" | "+infinity" | "inf" | "+inf" => return Some(NumKey::PosInf),
            "-infinity" | "-inf" => return Some(NumKey::NegInf),
            _ => {}
        }
        match ty {
            // Floats compare as the values they hold: round the text to the type first.
            "float4" => Decimal::parse(&format!("{}", t.parse::<f32>().ok()?)).map(NumKey::Finite),
            "float8" => Decimal::parse(&format!("{}", t.parse::<f64>().ok()?)).map(NumKey::Finite),
            _ => Decimal::parse(t).map(NumKey::Finite),
        }
    }
}

fn numeric(ty: &str, a: &str, b: &str) -> Option<Ordering> {
    Some(NumKey::parse(ty, a)?.cmp(&NumKey::parse(ty, b)?))
}

/// A point in time for ordering `timestamp`, `timestamptz` and `date` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Instant {
    NegInf,
    At(i128),
    PosInf,
}

impl Instant {
    /// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][Z|±HH[:MM[:SS]]]`; timestamptz values
    /// without an offset are UTC (the session time zone), timestamp values ignore one.
    fn parse(text: &str, ty: &str) -> Option<Instant> {
        let t = text.trim();
        match t.to_ascii_lowercase().as_str() {
            "infinity" | "+infinity" => return Some(Instant::PosInf),
            "-infinity" => return Some(Instant::NegInf),
            _ => {}
        }
        let b = t.as_bytes();
        let mut pos = 0;
        let year = digits(b, &mut pos, 4, 9)?;
        expect(b, &mut pos, b'-')?;
        let month = digits(b, &mut pos, 1, 2)?;
        expect(b, &mut pos, b'-')?;
        let day = digits(b, &mut pos, 1, 2)?;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let mut micros: i128 = 0;
        let mut offset: i128 = 0;
        if pos < b.len() && (b[pos] == b' ' || b[pos] == b'T' || b[pos] == b't') {
            pos += 1;
            let h = digits(b, &mut pos, 1, 2)?;
            expect(b, &mut pos, b':')?;
            let m = digits(b, &mut pos, 2, 2)?;
            let mut s = 0;
            let mut frac: i128 = 0;
            if b.get(pos) == Some(&b':') {
                pos += 1;
                s = digits(b, &mut pos, 2, 2)?;
                if b.get(pos) == Some(&b'.') {
                    pos += 1;
                    let start = pos;
                    while b.get(pos).is_some_and(u8::is_ascii_digit) {
                        pos += 1;
                    }
                    let f = std::str::from_utf8(&b[start..pos]).ok()?;
                    let f6: String = f.chars().chain(std::iter::repeat('0')).take(6).collect();
                    frac = f6.parse().ok()?;
                }
            }
            micros = ((h * 60 + m) * 60 + s) as i128 * 1_000_000 + frac;
            match b.get(pos) {
                Some(b'Z' | b'z') => pos += 1,
                Some(&sign @ (b'+' | b'-')) => {
                    pos += 1;
                    let oh = digits(b, &mut pos, 1, 2)?;
                    let mut om = 0;
                    let mut os = 0;
                    if b.get(pos) == Some(&b':') {
                        pos += 1;
                        om = digits(b, &mut pos, 2, 2)?;
                        if b.get(pos) == Some(&b':') {
                            pos += 1;
                            os = digits(b, &mut pos, 2, 2)?;
                        }
                    } else if b.get(pos).is_some_and(u8::is_ascii_digit) {
                        om = digits(b, &mut pos, 2, 2)?;
                    }
                    let o = ((oh * 60 + om) * 60 + os) as i128 * 1_000_000;
                    offset = if sign == b'-' { -o } else { o };
                }
                _ => {}
            }
        }
        if pos != b.len() {
            return None;
        }
        Some(Instant::At(match ty {
            "date" => i128::from(days),
            "timestamptz" => i128::from(days) * 86_400_000_000 + micros - offset,
            _ => i128::from(days) * 86_400_000_000 + micros,
        }))
    }
}

fn digits(b: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<i64> {
    let start = *pos;
    while *pos < b.len() && *pos - start < max && b[*pos].is_ascii_digit() {
        *pos += 1;
    }
    if *pos - start < min {
        return None;
    }
    std::str::from_utf8(&b[start..*pos]).ok()?.parse().ok()
}

fn expect(b: &[u8], pos: &mut usize, c: u8) -> Option<()> {
    (b.get(*pos) == Some(&c)).then(|| *pos += 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// SQL `LIKE` (`ILIKE` when `insensitive`): `%` any run, `_` any one character, `\` makes
/// the next character literal.
fn like(text: &str, pattern: &str, insensitive: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if insensitive { s.chars().flat_map(char::to_lowercase).collect() } else { s.chars().collect() }
    };
    let (t, p) = (fold(text), fold(pattern));
    // Tokens: Some(c) literal, None for `_`, and `%` as a separate marker.
    enum Tok {
        Lit(char),
        One,
        Any,
    }
    let mut toks = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 < p.len() => {
                toks.push(Tok::Lit(p[i + 1]));
                i += 2;
                continue;
            }
            '%' => toks.push(Tok::Any),
            '_' => toks.push(Tok::One),
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    // Greedy matching with backtracking to the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match toks.get(pi) {
            Some(Tok::Lit(c)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            Some(Tok::One) => {
                ti += 1;
                pi += 1;
            }
            Some(Tok::Any) => {
                star = Some((pi, ti));
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[pi..].iter().all(|t| matches!(t, Tok::Any))
}

/// Whether `text` is accepted by the input function of the type (the built-in types whose
/// input we know; others are accepted), with Postgres's error text.
fn check_input(ty: &str, text: &str) -> Result<(), String> {
    let ok = match ty {
        "int2" => text.trim().parse::<i16>().is_ok(),
        "int4" => text.trim().parse::<i32>().is_ok(),
        "int8" => text.trim().parse::<i64>().is_ok(),
        "numeric" | "float4" | "float8" => NumKey::parse(ty, text).is_some(),
        "bool" => parse_bool(text).is_some(),
        "uuid" => text.chars().filter(|c| c.is_ascii_hexdigit()).count() == 32,
        "timestamptz" | "timestamp" | "date" => Instant::parse(text, ty).is_some(),
        "json" | "jsonb" => serde_json::from_str::<Value>(text).is_ok(),
        _ => true,
    };
    if ok { Ok(()) } else { Err(format!("invalid input syntax for type {}: \"{text}\"", regtype(ty))) }
}

/// A type's name as `regtype` prints it (upstream's messages use that), from its `typname`.
fn regtype(typname: &str) -> String {
    if let Some(elem) = typname.strip_prefix('_') {
        return format!("{}[]", regtype(elem));
    }
    match typname {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "timetz" => "time with time zone",
        "time" => "time without time zone",
        "varbit" => "bit varying",
        other => other,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Map, json};

    use super::*;

    fn change(kind: ChangeKind, cols: &[(&str, &str)], row: Value) -> Change {
        let row: Map<String, Value> = row.as_object().unwrap().clone();
        Change {
            schema: "public".into(),
            table: "t".into(),
            kind,
            commit_timestamp: "2024-01-01T00:00:00.000Z".into(),
            columns: Arc::new(cols.iter().map(|(n, t)| Column { name: (*n).into(), type_name: (*t).into() }).collect()),
            record: (kind != ChangeKind::Delete).then(|| row.clone()),
            old_record: (kind == ChangeKind::Delete).then_some(row),
            primary_key: Arc::new(vec!["id".into()]),
            errors: None,
            position: (0, 0),
        }
    }

    fn parsed(f: &str) -> Vec<(String, &'static str, String, bool)> {
        parse(f).unwrap().0.into_iter().map(|f| (f.column, f.op.as_str(), f.value, f.negate)).collect()
    }

    #[test]
    fn parses_like_upstream() {
        assert_eq!(parsed("subject=eq.hey"), vec![("subject".into(), "eq", "hey".into(), false)]);
        assert_eq!(parsed("subject=in.(hidee,ho)"), vec![("subject".into(), "in", "{hidee,ho}".into(), false)]);
        assert_eq!(parsed("subject=not.like.hey%"), vec![("subject".into(), "like", "hey%".into(), true)]);
        assert_eq!(
            parsed("id=gt.0,id=lt.100"),
            vec![("id".into(), "gt", "0".into(), false), ("id".into(), "lt", "100".into(), false)]
        );
        assert!(parse("").unwrap().0.is_empty());
        assert!(parse("   ").unwrap().0.is_empty());
        // Commas inside parentheses and quotes do not split; quotes are removed.
        assert_eq!(
            parsed(r#"name=in.(a,b,"c,d"),title=eq."x,y",n=eq."say \"hi\"""#),
            vec![
                ("name".into(), "in", r#"{a,b,"c,d"}"#.into(), false),
                ("title".into(), "eq", "x,y".into(), false),
                ("n".into(), "eq", r#"say "hi""#.into(), false),
            ]
        );
        // A value with a dot keeps everything after the operator.
        assert_eq!(parsed("v=eq.1.5"), vec![("v".into(), "eq", "1.5".into(), false)]);
        // A stray quote keeps the raw value.
        assert_eq!(parsed(r#"v=eq."a"b""#), vec![("v".into(), "eq", r#""a"b""#.into(), false)]);
        for op in OPS {
            assert_eq!(parse(&format!("c={op}.(1)")).unwrap().0[0].op.as_str(), op);
            assert!(parse(&format!("c=not.{op}.(1)")).unwrap().0[0].negate);
        }
    }

    #[test]
    fn parse_errors_have_upstream_text() {
        let err = |f: &str| parse(f).unwrap_err();
        assert_eq!(err("subject=foo.hey"), r#"Error parsing `filter` params: ["foo", "hey"]"#);
        assert_eq!(err("undefined"), r#"Error parsing `filter` params: ["undefined"]"#);
        assert_eq!(err("id=eq"), r#"Error parsing `filter` params: ["eq"]"#);
        assert_eq!(err("id=not.eq"), r#"Error parsing `filter` params: ["eq"]"#);
        assert_eq!(err("id=in.1,2"), "Error parsing `filter` params: `in` filter value must be wrapped by parentheses");
        assert_eq!(
            err("id=eq.1,,id=eq.2"),
            "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"
        );
        assert_eq!(err(r#"a"b=x.y"#), r#"Error parsing `filter` params: ["x", "y"]"#);
        assert_eq!(err(r#"c=q"\.v"#), r#"Error parsing `filter` params: ["q\"\\", "v"]"#);
        assert_eq!(err("c=#{x}.v"), r#"Error parsing `filter` params: ["\#{x}", "v"]"#);
    }

    #[test]
    fn operators_on_numbers_text_and_booleans() {
        let c = change(
            ChangeKind::Insert,
            &[("id", "int4"), ("name", "text"), ("ok", "bool"), ("price", "numeric"), ("f", "float4"), ("n", "int4")],
            json!({"id": 5, "name": "Zoë Ünïcode", "ok": true, "price": 12.5, "f": 1.1, "n": null}),
        );
        let m = |f: &str| parse(f).unwrap().matches(&c);
        for (f, want) in [
            ("id=eq.5", true),
            ("id=eq.05", true),
            ("id=eq.6", false),
            ("id=neq.6", true),
            ("id=lt.10", true),
            ("id=lt.5", false),
            ("id=lte.5", true),
            ("id=gt.4", true),
            ("id=gt.40", false),
            ("id=gte.5", true),
            ("id=in.(1,5,9)", true),
            ("id=in.(1,9)", false),
            ("id=in.(1,NULL)", false),
            ("id=not.in.(1,NULL)", false),
            ("id=not.in.(1,9)", true),
            ("id=not.eq.5", false),
            ("id=not.eq.6", true),
            ("id=isdistinct.6", true),
            ("id=isdistinct.5", false),
            ("id=not.isdistinct.5", true),
            ("price=eq.12.50", true),
            ("price=gt.12.49", true),
            ("price=lt.1e2", true),
            ("f=eq.1.1", true),
            ("f=eq.1.10000001", true),
            ("name=eq.Zoë Ünïcode", true),
            ("name=like.Zo%", true),
            ("name=like.zo%", false),
            ("name=ilike.zoË%", true),
            ("name=like.Zo_ %", true),
            ("name=not.like.Zo%", false),
            ("name=match.^Zo. Ü", true),
            ("name=match.^zo", false),
            ("name=imatch.^zo", true),
            ("name=not.imatch.^zo", false),
            ("name=gt.Z", true),
            ("name=lt.A", false),
            ("name=in.(\"Zoë Ünïcode\",x)", true),
            ("ok=eq.true", true),
            ("ok=eq.t", true),
            ("ok=eq.false", false),
            ("ok=is.true", true),
            ("ok=is.false", false),
            ("ok=not.is.false", true),
            ("ok=is.null", false),
            ("ok=not.is.null", true),
            ("n=is.null", true),
            ("n=not.is.null", false),
            ("n=eq.1", false),
            ("n=not.eq.1", false),
            ("n=neq.1", false),
            ("n=isdistinct.1", true),
            ("n=not.isdistinct.1", false),
            ("n=is.unknown", true),
            ("missing=eq.1", false),
            ("missing=is.null", false),
            ("id=eq.5,name=like.Zo%", true),
            ("id=eq.5,name=like.X%", false),
            ("id=gt.0,id=lt.100,ok=is.true", true),
        ] {
            assert_eq!(m(f), want, "{f}");
        }
    }

    #[test]
    fn delete_uses_old_record_and_typed_comparisons() {
        let c = change(
            ChangeKind::Delete,
            &[("id", "int8"), ("at", "timestamptz"), ("d", "date"), ("u", "uuid"), ("tags", "_text"), ("doc", "jsonb")],
            json!({
                "id": 9_007_199_254_740_993_i64,
                "at": "2024-05-01T12:00:00+00:00",
                "d": "2024-05-01",
                "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "tags": ["a", "b c"],
                "doc": {"k": [1, 2]}
            }),
        );
        let m = |f: &str| parse(f).unwrap().matches(&c);
        assert!(m("id=eq.9007199254740993"));
        assert!(!m("id=eq.9007199254740992"));
        assert!(m("at=eq.2024-05-01 14:00:00+02"));
        assert!(m("at=gt.2024-05-01"));
        assert!(m("at=lt.2024-05-01T12:00:00.000001Z"));
        assert!(m("d=eq.2024-05-01"));
        assert!(m("d=lt.2024-12-01"));
        assert!(m("u=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"));
        // An unquoted comma splits filters (upstream too), so an array value is quoted.
        assert!(m(r#"tags=eq."{a,\"b c\"}""#));
        assert!(parse(r#"tags=eq.{a,"b c"}"#).is_err());
        assert!(!m("tags=eq.{a}"));
        assert!(m(r#"doc=eq."{\"k\": [1, 2]}""#));
        let insert = Change { kind: ChangeKind::Insert, record: None, ..c };
        assert!(!parse("id=gt.0").unwrap().matches(&insert));
        assert!(Filters::default().matches(&insert));
    }

    #[test]
    fn like_patterns() {
        assert!(like("100%", r"100\%", false));
        assert!(!like("1000", r"100\%", false));
        assert!(like("a_b", r"a\_b", false));
        assert!(!like("axb", r"a\_b", false));
        assert!(like("abc", "%", false));
        assert!(like("", "%", false));
        assert!(!like("", "_", false));
        assert!(like("abcabc", "%abc", false));
        assert!(like("xaxbx", "%a%b%", false));
        assert!(!like("ab", "a", false));
        assert!(like("ÄB", "äb", true));
    }

    #[test]
    fn columns_and_validation() {
        let f = parse("id=eq.1,name=like.a%,id=lt.5").unwrap();
        assert_eq!(f.columns(), vec!["id", "name"]);
        let cols = vec![
            Column { name: "id".into(), type_name: "int4".into() },
            Column { name: "name".into(), type_name: "text".into() },
            Column { name: "v".into(), type_name: "varchar".into() },
            Column { name: "ok".into(), type_name: "bool".into() },
        ];
        assert_eq!(f.validate(&cols), Ok(()));
        let v = |s: &str| parse(s).unwrap().validate(&cols);
        assert_eq!(v("nope=eq.1"), Err("invalid column for filter nope".into()));
        assert_eq!(v("id=eq.abc"), Err("invalid input syntax for type integer: \"abc\"".into()));
        assert_eq!(v("id=in.(1,x)"), Err("invalid input syntax for type integer: \"x\"".into()));
        assert_eq!(v("id=is.maybe"), Err("invalid value for is filter: must be null, true, false, or unknown".into()));
        assert_eq!(v("id=is.true"), Err("is true filter requires a boolean column, got integer".into()));
        assert_eq!(v("ok=is.true"), Ok(()));
        assert_eq!(v("id=is.null"), Ok(()));
        assert_eq!(
            v("v=like.a%"),
            Err("operator like requires a text-compatible column type, got character varying".into())
        );
        assert_eq!(v("id=imatch.a"), Err("operator imatch requires a text-compatible column type, got integer".into()));
        assert!(v("name=match.(").unwrap_err().starts_with("invalid regular expression for match filter: "));
        let many = format!("id=in.({})", (0..101).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert_eq!(v(&many), Err("too many values for `in` filter. Maximum 100".into()));
    }
}
