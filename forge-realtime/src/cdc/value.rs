//! Column values: from Postgres's text output to the JSON Supabase Realtime sends.
//!
//! Supabase turns every value into JSON with `realtime.cast(text, type)`, which is
//! `to_jsonb(text::type)` (upstream: `priv/repo/tenant_schema/realtime/functions/cast.sql`).
//! `to_jsonb` looks through domains and renders by the base type's category
//! (Postgres `json_categorize_type`): `bool` as true/false, `int2`/`int4`/`int8`/`float4`/
//! `float8`/`numeric` as numbers (NaN and infinities as strings), `json`/`jsonb` as the
//! document, `timestamp`/`timestamptz` in ISO 8601 with a `T`, arrays as JSON arrays of their
//! converted elements, composite types as objects, and everything else (`oid`, `uuid`, `date`,
//! `text`, enums, ...) as the text output in a string. [`TypeCache::to_json`] does the same
//! from the text pgoutput sends, given the session renders with `DateStyle = ISO` and
//! `TimeZone = UTC` (the capture sets both).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};

/// `pg_type` oids of the built-in types whose JSON rendering differs from a string.
mod oid {
    pub(super) const BOOL: u32 = 16;
    pub(super) const INT8: u32 = 20;
    pub(super) const INT2: u32 = 21;
    pub(super) const INT4: u32 = 23;
    pub(super) const JSON: u32 = 114;
    pub(super) const FLOAT4: u32 = 700;
    pub(super) const FLOAT8: u32 = 701;
    pub(super) const TIMESTAMP: u32 = 1114;
    pub(super) const TIMESTAMPTZ: u32 = 1184;
    pub(super) const NUMERIC: u32 = 1700;
    pub(super) const JSONB: u32 = 3802;
}

/// One `pg_type` row, as much of it as the conversion needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeRow {
    /// `typname`: what Supabase's `columns[].type` shows.
    pub(crate) name: String,
    /// `typtype`: `b` base, `c` composite, `d` domain, `e` enum, `r` range, `m` multirange.
    pub(crate) typtype: u8,
    /// `typcategory`: `A` for arrays.
    pub(crate) category: u8,
    /// `typelem`: the element type of an array.
    pub(crate) elem: u32,
    /// `typbasetype`: the base type of a domain.
    pub(crate) base: u32,
    /// `typdelim`: the array element delimiter (`,` except for `box`).
    pub(crate) delim: u8,
    /// The attributes of a composite type, in order: name and type oid.
    pub(crate) attrs: Vec<(String, u32)>,
}

type TypeQueryRow = (i64, String, String, String, i64, i64, String, Vec<String>, Vec<i64>);

/// An oid read as `int8` (oids are unsigned 32-bit).
pub(crate) fn oid_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// A cache of `pg_type` rows by oid, loaded on demand and kept for the life of the capture
/// (type oids are stable; a `Type` message from pgoutput invalidates one).
#[derive(Debug, Default)]
pub(crate) struct TypeCache {
    rows: HashMap<u32, TypeRow>,
}

impl TypeCache {
    /// The type's `typname`, or its oid as text while it is unknown.
    pub(crate) fn name(&self, type_oid: u32) -> String {
        self.rows.get(&type_oid).map_or_else(|| type_oid.to_string(), |r| r.name.clone())
    }

    /// Forgets a type (its name or shape may have changed).
    pub(crate) fn invalidate(&mut self, type_oid: u32) {
        self.rows.remove(&type_oid);
    }

    /// The oids among `wanted` and everything they refer to (elements, bases, attributes)
    /// that are not loaded yet.
    pub(crate) fn missing(&self, wanted: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<u32> = wanted.into_iter().collect();
        while let Some(o) = stack.pop() {
            if o == 0 || !seen.insert(o) {
                continue;
            }
            match self.rows.get(&o) {
                None => out.push(o),
                Some(row) => {
                    stack.push(row.elem);
                    stack.push(row.base);
                    stack.extend(row.attrs.iter().map(|(_, t)| *t));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Loads the given types and, transitively, the types they refer to.
    pub(crate) async fn load(&mut self, conn: &mut sqlx::PgConnection, oids: Vec<u32>) -> Result<(), sqlx::Error> {
        let mut pending = self.missing(oids);
        // Each round loads one level (array -> element, domain -> base, composite -> attrs).
        for _ in 0..16 {
            if pending.is_empty() {
                break;
            }
            let ids: Vec<i64> = pending.iter().map(|&o| i64::from(o)).collect();
            let rows: Vec<TypeQueryRow> = sqlx::query_as(
                "select t.oid::int8, t.typname::text, t.typtype::text, t.typcategory::text, \
                        t.typelem::int8, t.typbasetype::int8, t.typdelim::text, \
                        coalesce(array_agg(a.attname::text order by a.attnum) \
                                 filter (where a.attnum is not null), '{}'), \
                        coalesce(array_agg(a.atttypid::int8 order by a.attnum) \
                                 filter (where a.attnum is not null), '{}') \
                 from pg_type t \
                 left join pg_attribute a \
                   on a.attrelid = t.typrelid and t.typtype = 'c' and a.attnum > 0 and not a.attisdropped \
                 where t.oid = any($1::int8[]::oid[]) \
                 group by t.oid",
            )
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
            for (type_oid, name, typtype, category, elem, base, delim, attr_names, attr_types) in rows {
                let byte = |s: &str| s.as_bytes().first().copied().unwrap_or(0);
                let row = TypeRow {
                    name,
                    typtype: byte(&typtype),
                    category: byte(&category),
                    elem: oid_of(elem),
                    base: oid_of(base),
                    delim: byte(&delim),
                    attrs: attr_names.into_iter().zip(attr_types.into_iter().map(oid_of)).collect(),
                };
                self.rows.insert(oid_of(type_oid), row);
            }
            // Oids that matched no row (a dropped type) would be asked for forever; stop here.
            let asked: HashSet<u32> = pending.iter().copied().collect();
            pending = self.missing(asked.iter().copied()).into_iter().filter(|o| !asked.contains(o)).collect();
        }
        Ok(())
    }

    /// Converts a value's text output into the JSON `to_jsonb` gives for its type.
    pub(crate) fn to_json(&self, type_oid: u32, text: &str) -> Value {
        self.convert(type_oid, text, 0)
    }

    fn convert(&self, type_oid: u32, text: &str, depth: u32) -> Value {
        let base = self.base(type_oid);
        match base {
            oid::BOOL => match text {
                "t" | "true" => Value::Bool(true),
                "f" | "false" => Value::Bool(false),
                _ => Value::String(text.to_owned()),
            },
            oid::INT2 | oid::INT4 | oid::INT8 | oid::FLOAT4 | oid::FLOAT8 | oid::NUMERIC => number(text),
            oid::JSON | oid::JSONB => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
            oid::TIMESTAMP | oid::TIMESTAMPTZ => Value::String(iso_timestamp(text)),
            _ => match self.rows.get(&base) {
                Some(row) if row.category == b'A' && row.elem != 0 && depth < 8 => {
                    match parse_array(text, self.delim(row.elem)) {
                        Some(items) => self.array_json(row.elem, &items, depth),
                        None => Value::String(text.to_owned()),
                    }
                }
                Some(row) if row.typtype == b'c' && depth < 8 => match parse_record(text) {
                    Some(fields) if fields.len() == row.attrs.len() => {
                        let mut map = Map::new();
                        for ((name, attr_type), field) in row.attrs.iter().zip(fields) {
                            let v = field.map_or(Value::Null, |f| self.convert(*attr_type, &f, depth + 1));
                            map.insert(name.clone(), v);
                        }
                        Value::Object(map)
                    }
                    _ => Value::String(text.to_owned()),
                },
                _ => Value::String(text.to_owned()),
            },
        }
    }

    fn array_json(&self, elem: u32, items: &[ArrayItem], depth: u32) -> Value {
        Value::Array(
            items
                .iter()
                .map(|item| match item {
                    ArrayItem::Null => Value::Null,
                    ArrayItem::Value(s) => self.convert(elem, s, depth + 1),
                    ArrayItem::Nested(inner) => self.array_json(elem, inner, depth),
                })
                .collect(),
        )
    }

    /// Follows domains down to their base type.
    fn base(&self, mut type_oid: u32) -> u32 {
        for _ in 0..16 {
            match self.rows.get(&type_oid) {
                Some(row) if row.typtype == b'd' && row.base != 0 => type_oid = row.base,
                _ => break,
            }
        }
        type_oid
    }

    fn delim(&self, elem: u32) -> u8 {
        self.rows.get(&self.base(elem)).map_or(b',', |r| r.delim)
    }
}

/// A JSON number when the text is a finite number that JSON can carry exactly, else a string.
///
/// Integers up to 64 bits are exact; other numbers go through `f64` and stay numbers only when
/// that keeps their decimal value (serde_json here has no arbitrary precision), so a
/// `numeric` with more digits than `f64` holds arrives as a string. `NaN` and the infinities
/// are strings, as `to_jsonb` renders them.
pub(crate) fn number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    if let Some(d) = Decimal::parse(text)
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
        && Decimal::parse(&format!("{f}")).is_some_and(|back| back == d)
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// Renders `timestamp`/`timestamptz` text output (ISO DateStyle) as `to_jsonb` does: a `T`
/// between date and time and the offset with minutes (`+00` becomes `+00:00`).
pub(crate) fn iso_timestamp(text: &str) -> String {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, " BC"),
        None => (text, ""),
    };
    let Some(space) = body.find(' ') else {
        return text.to_owned(); // infinity, -infinity
    };
    let (date, time) = (&body[..space], &body[space + 1..]);
    let mut out = String::with_capacity(text.len() + 3);
    out.push_str(date);
    out.push('T');
    match time.find(['+', '-']) {
        Some(at) => {
            out.push_str(&time[..at]);
            let offset = &time[at..];
            out.push_str(offset);
            if offset.len() == 3 {
                out.push_str(":00");
            }
        }
        None => out.push_str(time),
    }
    out.push_str(bc);
    out
}

/// A decimal number, normalised so that equal values compare equal: the value is
/// `0.d1d2d3... * 10^exp` with no leading or trailing zero digits (zero has no digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Decimal {
    /// Parses `[-+]digits[.digits][e[-+]digits]`; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exp_part) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let exp10: i64 = match exp_part {
            Some(e) => e.parse().ok()?,
            None => 0,
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let mut exp = int.len() as i64 + exp10;
        let lead = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..lead);
        exp -= lead as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Some(Decimal { negative: false, digits, exp: 0 });
        }
        Some(Decimal { negative, digits, exp })
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |d: &Decimal| {
            if d.digits.is_empty() {
                0
            } else if d.negative {
                -1
            } else {
                1
            }
        };
        let (a, b) = (sign(self), sign(other));
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let magnitude = self.exp.cmp(&other.exp).then_with(|| self.digits.cmp(&other.digits));
        if a < 0 { magnitude.reverse() } else { magnitude }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One element of a parsed array literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArrayItem {
    /// An unquoted `NULL`.
    Null,
    /// A value, unquoted and unescaped.
    Value(String),
    /// A sub-array of a multidimensional array.
    Nested(Vec<ArrayItem>),
}

/// Parses a Postgres array literal (`{1,2,"a b",NULL}`, nested `{{1,2},{3,4}}`, with an
/// optional `[1:2]=` bounds prefix) as `array_in` does: double quotes, backslash escapes,
/// unquoted `NULL` (any case), whitespace around unquoted elements ignored.
pub(crate) fn parse_array(text: &str, delim: u8) -> Option<Vec<ArrayItem>> {
    let mut s = text.trim_start();
    if s.starts_with('[') {
        s = s[s.find('=')? + 1..].trim_start();
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    let items = parse_array_level(bytes, &mut pos, delim)?;
    if !s[pos..].trim().is_empty() {
        return None;
    }
    Some(items)
}

fn parse_array_level(b: &[u8], pos: &mut usize, delim: u8) -> Option<Vec<ArrayItem>> {
    if b.get(*pos) != Some(&b'{') {
        return None;
    }
    *pos += 1;
    let mut items = Vec::new();
    skip_ws(b, pos);
    if b.get(*pos) == Some(&b'}') {
        *pos += 1;
        return Some(items);
    }
    loop {
        skip_ws(b, pos);
        match *b.get(*pos)? {
            b'{' => items.push(ArrayItem::Nested(parse_array_level(b, pos, delim)?)),
            b'"' => {
                *pos += 1;
                let mut out = Vec::new();
                loop {
                    match *b.get(*pos)? {
                        b'\\' => {
                            out.push(*b.get(*pos + 1)?);
                            *pos += 2;
                        }
                        b'"' => {
                            *pos += 1;
                            break;
                        }
                        c => {
                            out.push(c);
                            *pos += 1;
                        }
                    }
                }
                items.push(ArrayItem::Value(String::from_utf8(out).ok()?));
            }
            _ => {
                let mut out = Vec::new();
                // Trailing whitespace of an unquoted element is dropped unless escaped.
                let mut keep = 0;
                let mut escaped = false;
                loop {
                    let c = *b.get(*pos)?;
                    if c == delim || c == b'}' {
                        break;
                    }
                    match c {
                        b'\\' => {
                            out.push(*b.get(*pos + 1)?);
                            *pos += 2;
                            keep = out.len();
                            escaped = true;
                        }
                        b'{' | b'"' => return None,
                        _ => {
                            out.push(c);
                            *pos += 1;
                            if !c.is_ascii_whitespace() {
                                keep = out.len();
                            }
                        }
                    }
                }
                out.truncate(keep);
                let s = String::from_utf8(out).ok()?;
                if !escaped && s.eq_ignore_ascii_case("NULL") {
                    items.push(ArrayItem::Null);
                } else {
                    items.push(ArrayItem::Value(s));
                }
            }
        }
        skip_ws(b, pos);
        match *b.get(*pos)? {
            c if c == delim => *pos += 1,
            b'}' => {
                *pos += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], pos: &mut usize) {
    while b.get(*pos).is_some_and(|c| c.is_ascii_whitespace()) {
        *pos += 1;
    }
}

/// Parses a composite literal `(1,"a b",)` as `record_in` does: fields separated by commas,
/// an empty unquoted field is NULL, quotes (with `""` for a quote) and backslash escapes.
pub(crate) fn parse_record(text: &str) -> Option<Vec<Option<String>>> {
    let b = text.trim().as_bytes();
    if b.first() != Some(&b'(') || b.last() != Some(&b')') {
        return None;
    }
    let inner = &b[1..b.len() - 1];
    let mut fields = Vec::new();
    let mut pos = 0;
    loop {
        let mut out = Vec::new();
        let mut any = false;
        let mut quoted = false;
        while pos < inner.len() {
            let c = inner[pos];
            if quoted {
                if c == b'"' && inner.get(pos + 1) == Some(&b'"') {
                    out.push(b'"');
                    pos += 2;
                } else if c == b'"' {
                    quoted = false;
                    pos += 1;
                } else if c == b'\\' {
                    out.push(*inner.get(pos + 1)?);
                    pos += 2;
                } else {
                    out.push(c);
                    pos += 1;
                }
                continue;
            }
            match c {
                b',' => break,
                b'"' => {
                    quoted = true;
                    any = true;
                    pos += 1;
                }
                b'\\' => {
                    out.push(*inner.get(pos + 1)?);
                    any = true;
                    pos += 2;
                }
                _ => {
                    out.push(c);
                    any = true;
                    pos += 1;
                }
            }
        }
        fields.push(if any { Some(String::from_utf8(out).ok()?) } else { None });
        if pos >= inner.len() {
            return Some(fields);
        }
        pos += 1; // the comma
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v(s: &str) -> ArrayItem {
        ArrayItem::Value(s.into())
    }

    #[test]
    fn array_literals() {
        assert_eq!(parse_array("{}", b','), Some(vec![]));
        assert_eq!(parse_array("{1,2,NULL}", b','), Some(vec![v("1"), v("2"), ArrayItem::Null]));
        assert_eq!(
            parse_array(r#"{"a b","c,d","q\"u","b\\s","NULL",null,"", sp ,\NULL}"#, b','),
            Some(vec![v("a b"), v("c,d"), v("q\"u"), v("b\\s"), v("NULL"), ArrayItem::Null, v(""), v("sp"), v("NULL")])
        );
        assert_eq!(
            parse_array("[0:1]={{1,2},{3,4}}", b','),
            Some(vec![ArrayItem::Nested(vec![v("1"), v("2")]), ArrayItem::Nested(vec![v("3"), v("4")])])
        );
        assert_eq!(parse_array("{(1,2),(3,4);(0,0),(1,1)}", b';'), Some(vec![v("(1,2),(3,4)"), v("(0,0),(1,1)")]));
        assert_eq!(parse_array("{日本,\"ü\"}", b','), Some(vec![v("日本"), v("ü")]));
        for bad in ["", "{", "{1", "{1,}x", "1,2", "{\"a}", "{a\"b}"] {
            assert_eq!(parse_array(bad, b','), None, "{bad}");
        }
    }

    #[test]
    fn record_literals() {
        assert_eq!(parse_record("(1,x)"), Some(vec![Some("1".into()), Some("x".into())]));
        assert_eq!(parse_record("(,\"\")"), Some(vec![None, Some(String::new())]));
        assert_eq!(parse_record(r#"(" a ""b"" ",c\,d)"#), Some(vec![Some(" a \"b\" ".into()), Some("c,d".into())]));
        assert_eq!(parse_record("()"), Some(vec![None]));
        assert_eq!(parse_record("1,2"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(number("42"), json!(42));
        assert_eq!(number("-9223372036854775808"), json!(i64::MIN));
        assert_eq!(number("18446744073709551615"), json!(u64::MAX));
        assert_eq!(number("12.50"), json!(12.5));
        assert_eq!(number("1e+30"), json!(1e30));
        assert_eq!(number("0.1"), json!(0.1));
        assert_eq!(number("NaN"), json!("NaN"));
        assert_eq!(number("-Infinity"), json!("-Infinity"));
        assert_eq!(number("123456789012345678901234567890.1"), json!("123456789012345678901234567890.1"));
        assert_eq!(number("0.30000000000000004"), json!(0.30000000000000004));
    }

    #[test]
    fn decimals_order() {
        let d = |s: &str| Decimal::parse(s).unwrap();
        assert_eq!(d("1.50"), d("1.5"));
        assert_eq!(d("0"), d("-0.000"));
        assert_eq!(d("1e2"), d("100"));
        assert!(d("-2") < d("-1.5"));
        assert!(d("0.001") < d("0.01"));
        assert!(d("99") < d("100"));
        assert!(d("-100") < d("-99"));
        assert_eq!(Decimal::parse("1.2.3"), None);
        assert_eq!(Decimal::parse("abc"), None);
        assert_eq!(Decimal::parse("."), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso_timestamp("2024-01-01 10:00:00"), "2024-01-01T10:00:00");
        assert_eq!(iso_timestamp("2024-01-01 10:00:00.5+00"), "2024-01-01T10:00:00.5+00:00");
        assert_eq!(iso_timestamp("2024-01-01 10:00:00-03:30"), "2024-01-01T10:00:00-03:30");
        assert_eq!(iso_timestamp("0044-03-15 00:00:00+00 BC"), "0044-03-15T00:00:00+00:00 BC");
        assert_eq!(iso_timestamp("infinity"), "infinity");
    }

    #[test]
    fn domains_arrays_and_composites() {
        let mut types = TypeCache::default();
        let row = |name: &str, typtype: u8, category: u8, elem: u32, base: u32| TypeRow {
            name: name.into(),
            typtype,
            category,
            elem,
            base,
            delim: b',',
            attrs: vec![],
        };
        types.rows.insert(23, row("int4", b'b', b'N', 0, 0));
        types.rows.insert(1007, row("_int4", b'b', b'A', 23, 0));
        types.rows.insert(50_000, row("posint", b'd', b'N', 0, 23));
        types.rows.insert(50_001, row("_posint", b'b', b'A', 50_000, 0));
        let mut pair = row("pair", b'c', b'C', 0, 0);
        pair.attrs = vec![("a".into(), 50_000), ("b".into(), 1007)];
        types.rows.insert(50_002, pair);
        assert_eq!(types.missing([50_002, 25]), vec![25]);
        assert_eq!(types.to_json(50_000, "7"), json!(7));
        assert_eq!(types.to_json(50_001, "{{1,NULL},{3,4}}"), json!([[1, null], [3, 4]]));
        assert_eq!(types.to_json(50_002, r#"(5,"{1,2}")"#), json!({"a": 5, "b": [1, 2]}));
        assert_eq!(types.to_json(50_002, "(,)"), json!({"a": null, "b": null}));
        assert_eq!(types.to_json(25, "x"), json!("x"));
        assert_eq!(types.name(50_001), "_posint");
        assert_eq!(types.name(25), "25");
    }
}
