//! `order=name.desc.nullsfirst,id`, `rel.order=...` and related ordering `rel(col).desc`.
//!
//! ```text
//! order := term ("," term)*
//! term  := [relation "(" field ")" | field] ["." ("asc" | "desc")] ["." ("nullsfirst" | "nullslast")]
//! ```

use std::fmt::{self, Write};

use super::cursor::Cursor;
use super::error::{ParseError, SyntaxError};
use super::field::Field;
use super::filter::write_path;
use super::render::write_name;

/// One `order` parameter: the embed it applies to and its terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OrderSpec {
    /// The embed path (`rel.order=…` → `["rel"]`); empty at top level.
    pub path: Vec<String>,
    /// The terms, most significant first (never empty).
    pub terms: Vec<OrderTerm>,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OrderTerm {
    /// `rel(col)`: order by a column of a to-one embedded resource.
    pub relation: Option<String>,
    /// The column (with JSON path).
    pub field: Field,
    /// `.asc` / `.desc` (PostgreSQL's default, ascending, when absent).
    pub direction: Option<OrderDirection>,
    /// `.nullsfirst` / `.nullslast`.
    pub nulls: Option<NullsOrder>,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderDirection {
    /// `asc`.
    Asc,
    /// `desc`.
    Desc,
}

/// Where NULLs sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NullsOrder {
    /// `nullsfirst`.
    First,
    /// `nullslast`.
    Last,
}

/// Parse an `order` value.
pub(super) fn parse_order(path: Vec<String>, value: &str) -> Result<OrderSpec, ParseError> {
    let mut c = Cursor::new(value);
    let result = (|| {
        let mut terms = Vec::new();
        loop {
            c.skip_ws();
            terms.push(term(&mut c)?);
            c.skip_ws();
            if !c.eat(',') {
                c.expect_end("\",\" or end of input")?;
                return Ok(terms);
            }
        }
    })();
    result.map(|terms| OrderSpec { path, terms }).map_err(|e| ParseError::syntax("order", value, e))
}

fn term(c: &mut Cursor) -> Result<OrderTerm, SyntaxError> {
    let name = c.name()?;
    let (relation, field) = if c.eat('(') {
        c.skip_ws();
        let field = c.field()?;
        c.skip_ws();
        c.expect(')', "\")\"")?;
        (Some(name.text), field)
    } else {
        (None, Field { name: name.text, json_path: c.json_path()? })
    };
    let mut direction = None;
    let mut nulls = None;
    while c.peek() == Some('.') && nulls.is_none() {
        c.bump();
        let col = c.column();
        match c.word().as_str() {
            "asc" if direction.is_none() => direction = Some(OrderDirection::Asc),
            "desc" if direction.is_none() => direction = Some(OrderDirection::Desc),
            "nullsfirst" => nulls = Some(NullsOrder::First),
            "nullslast" => nulls = Some(NullsOrder::Last),
            _ if direction.is_none() => {
                return Err(SyntaxError::custom(col, "expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\""));
            }
            _ => return Err(SyntaxError::custom(col, "expecting \"nullsfirst\" or \"nullslast\"")),
        }
    }
    Ok(OrderTerm { relation, field, direction, nulls })
}

impl fmt::Display for OrderTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relation {
            Some(relation) => {
                write_name(f, relation, &[])?;
                write!(f, "({})", self.field)?;
            }
            None => self.field.fmt(f)?,
        }
        match self.direction {
            Some(OrderDirection::Asc) => f.write_str(".asc")?,
            Some(OrderDirection::Desc) => f.write_str(".desc")?,
            None => {}
        }
        match self.nulls {
            Some(NullsOrder::First) => f.write_str(".nullsfirst"),
            Some(NullsOrder::Last) => f.write_str(".nullslast"),
            None => Ok(()),
        }
    }
}

impl OrderSpec {
    /// The query-string key (`order` or `rel.order`).
    pub fn key(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write_path(&mut out, &self.path);
        out.push_str("order");
        out
    }

    /// The query-string value (`name.desc.nullsfirst,id`).
    pub fn value(&self) -> String {
        let mut out = String::new();
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{term}");
        }
        out
    }
}

impl fmt::Display for OrderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.value())
    }
}
