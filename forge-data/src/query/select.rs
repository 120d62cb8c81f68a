//! The `select` parameter: columns, aliases, casts, JSON paths, aggregates and embedded resources.
//!
//! ```text
//! items     := ε | item ("," item)*
//! item      := "*"
//!            | "..." relation params "(" items ")"
//!            | [name ":"] "count()" ["::" type]
//!            | [name ":"] relation params "(" items ")"
//!            | [name ":"] field ["::" type] ["." agg "()" ["::" type]]
//! params    := ("!" hint | "!inner" | "!left"){0,2}
//! ```
//!
//! Whitespace outside double quotes is ignored, as the clients strip it anyway.

use std::fmt::{self, Write};

use super::MAX_DEPTH;
use super::cursor::Cursor;
use super::error::{ParseError, SyntaxError};
use super::field::Field;
use super::render::{write_comma_list, write_name};

/// One node of a `select` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SelectItem {
    /// `*`: every column.
    Star,
    /// A column, possibly aliased, cast, JSON-navigated or aggregated.
    Field(SelectField),
    /// The bare `count()` aggregate (`[alias:]count()[::type]`), counting rows.
    ///
    /// The legacy spelling without parentheses (`rel(count)`) parses as a column named `count`;
    /// whether that means PostgREST's legacy row count is for the planner to decide.
    Count {
        /// `alias:` before `count()`.
        alias: Option<String>,
        /// `::type` after `count()`.
        cast: Option<String>,
    },
    /// An embedded resource (`rel(...)`) or a spread (`...rel(...)`).
    Embed(Embed),
}

/// A selected column: `[alias:]field[::cast][.agg()[::cast]]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SelectField {
    /// `alias:` before the column.
    pub alias: Option<String>,
    /// The column and its JSON path.
    pub field: Field,
    /// `::type` applied to the column (before any aggregate).
    pub cast: Option<String>,
    /// `.sum()` and friends, with an optional cast of the aggregate's result.
    pub aggregate: Option<Aggregate>,
}

impl SelectField {
    /// A plain column with no alias, cast or aggregate.
    pub fn column(name: impl Into<String>) -> Self {
        Self { alias: None, field: Field::new(name), cast: None, aggregate: None }
    }
}

/// An aggregate applied to a selected column: `.avg()::int`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Aggregate {
    /// Which aggregate.
    pub function: AggregateFunction,
    /// `::type` applied to the aggregate's result.
    pub cast: Option<String>,
}

/// The aggregate functions PostgREST accepts in `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AggregateFunction {
    /// `sum()`.
    Sum,
    /// `avg()`.
    Avg,
    /// `min()`.
    Min,
    /// `max()`.
    Max,
    /// `count()`.
    Count,
}

impl AggregateFunction {
    /// Every aggregate, in a fixed order.
    pub const ALL: [Self; 5] = [Self::Sum, Self::Avg, Self::Min, Self::Max, Self::Count];

    /// The function name as written in the query string (and in SQL).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// An embedded resource: `[...][alias:]relation[!hint][!inner|!left](items)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Embed {
    /// `...rel(...)`: lift the embedded columns into the parent (never has an alias).
    pub spread: bool,
    /// `alias:` before the relation.
    pub alias: Option<String>,
    /// The relation (table, view, FK column or constraint) to embed.
    pub relation: String,
    /// `!hint`: an FK constraint or column name disambiguating the relationship.
    pub hint: Option<String>,
    /// `!inner` or `!left`.
    pub join: Option<JoinType>,
    /// The items selected from the embedded resource (empty for `rel()`).
    pub items: Vec<SelectItem>,
}

/// The join an embed asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JoinType {
    /// `!inner`: parents without a matching embedded row are dropped.
    Inner,
    /// `!left`: the default, spelled out.
    Left,
}

impl JoinType {
    /// `inner` or `left`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inner => "inner",
            Self::Left => "left",
        }
    }
}

/// Parse a `select` value (an empty value selects nothing).
pub(super) fn parse_select(input: &str) -> Result<Vec<SelectItem>, ParseError> {
    let mut c = Cursor::stripped(input);
    let result = items(&mut c, 0, true).and_then(|items| {
        c.expect_end("\",\" or end of input")?;
        Ok(items)
    });
    result.map_err(|e| ParseError::syntax("select parameter", input, e))
}

/// A comma-separated list of items, possibly empty (at the end of input for the top level,
/// before `)` inside an embed).
fn items(c: &mut Cursor, depth: usize, top: bool) -> Result<Vec<SelectItem>, SyntaxError> {
    let mut out = Vec::new();
    let empty = if top { c.at_end() } else { c.peek() == Some(')') };
    if empty {
        return Ok(out);
    }
    loop {
        out.push(item(c, depth)?);
        if !c.eat(',') {
            return Ok(out);
        }
    }
}

fn item(c: &mut Cursor, depth: usize) -> Result<SelectItem, SyntaxError> {
    if c.eat('*') {
        return Ok(SelectItem::Star);
    }
    if c.eat_str("...") {
        let relation = c.name()?.text;
        return embed(c, depth, true, None, relation);
    }
    let first = c.name()?;
    let (alias, target) = if c.peek() == Some(':') && c.peek_at(1) != Some(':') {
        c.bump();
        (Some(first.text), c.name()?)
    } else {
        (None, first)
    };
    if target.is_keyword("count") && c.eat_str("()") {
        let cast = parse_cast(c)?;
        return Ok(SelectItem::Count { alias, cast });
    }
    if matches!(c.peek(), Some('!' | '(')) {
        return embed(c, depth, false, alias, target.text);
    }
    let json_path = c.json_path()?;
    let field = Field { name: target.text, json_path };
    let cast = parse_cast(c)?;
    let aggregate = if c.eat('.') {
        let col = c.column();
        let function = AggregateFunction::from_name(&c.word())
            .filter(|_| c.eat_str("()"))
            .ok_or_else(|| SyntaxError::custom(col, "expecting aggregate function (sum, avg, min, max, count)"))?;
        Some(Aggregate { function, cast: parse_cast(c)? })
    } else {
        None
    };
    Ok(SelectItem::Field(SelectField { alias, field, cast, aggregate }))
}

/// The rest of an embed after its relation name: `!params`, then `(items)`.
fn embed(
    c: &mut Cursor,
    depth: usize,
    spread: bool,
    alias: Option<String>,
    relation: String,
) -> Result<SelectItem, SyntaxError> {
    let mut hint = None;
    let mut join = None;
    while c.peek() == Some('!') {
        let col = c.column();
        c.bump();
        let param = c.name()?;
        let (slot_taken, what) = if param.is_keyword("inner") || param.is_keyword("left") {
            let taken = join.is_some();
            join = Some(if param.text == "inner" { JoinType::Inner } else { JoinType::Left });
            (taken, "join type")
        } else {
            let taken = hint.is_some();
            hint = Some(param.text);
            (taken, "hint")
        };
        if slot_taken {
            return Err(SyntaxError::custom(col, format!("only one embed {what} is allowed")));
        }
    }
    if depth + 1 > MAX_DEPTH {
        return Err(SyntaxError::custom(c.column(), format!("embedding is nested deeper than {MAX_DEPTH} levels")));
    }
    c.expect('(', "\"!\" or \"(\"")?;
    let items = items(c, depth + 1, false)?;
    c.expect(')', "\",\" or \")\"")?;
    Ok(SelectItem::Embed(Embed { spread, alias, relation, hint, join, items }))
}

/// An optional `::type`; type names are ASCII letters, digits and `_`.
fn parse_cast(c: &mut Cursor) -> Result<Option<String>, SyntaxError> {
    if !c.eat_str("::") {
        return Ok(None);
    }
    let ty = c.word();
    if ty.is_empty() {
        return Err(c.error("type name (letters, digits or _)"));
    }
    Ok(Some(ty))
}

fn write_cast<W: Write>(w: &mut W, cast: Option<&String>) -> fmt::Result {
    match cast {
        Some(ty) => write!(w, "::{ty}"),
        None => Ok(()),
    }
}

fn write_alias<W: Write>(w: &mut W, alias: Option<&String>) -> fmt::Result {
    if let Some(alias) = alias {
        write_name(w, alias, &[])?;
        w.write_char(':')?;
    }
    Ok(())
}

impl fmt::Display for SelectItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Star => f.write_char('*'),
            Self::Field(field) => field.fmt(f),
            Self::Count { alias, cast } => {
                write_alias(f, alias.as_ref())?;
                f.write_str("count()")?;
                write_cast(f, cast.as_ref())
            }
            Self::Embed(embed) => embed.fmt(f),
        }
    }
}

impl fmt::Display for SelectField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_alias(f, self.alias.as_ref())?;
        self.field.fmt(f)?;
        write_cast(f, self.cast.as_ref())?;
        if let Some(agg) = &self.aggregate {
            write!(f, ".{}()", agg.function.as_str())?;
            write_cast(f, agg.cast.as_ref())?;
        }
        Ok(())
    }
}

impl fmt::Display for Embed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.spread {
            f.write_str("...")?;
        }
        write_alias(f, self.alias.as_ref())?;
        // A bare `count` followed by `(` would read as the `count()` aggregate.
        write_name(f, &self.relation, &["count"])?;
        if let Some(hint) = &self.hint {
            f.write_char('!')?;
            write_name(f, hint, &["inner", "left"])?;
        }
        if let Some(join) = self.join {
            write!(f, "!{}", join.as_str())?;
        }
        f.write_char('(')?;
        write_comma_list(f, &self.items)?;
        f.write_char(')')
    }
}

/// Render a `select` list as the parameter value (`id,name,rel(*)`).
pub fn render_select(items: &[SelectItem]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_comma_list(&mut out, items);
    out
}
