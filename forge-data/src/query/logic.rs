//! Logic trees: `or=(a.eq.1,and(b.gt.2,c.lt.3))`, `not.and=(...)`, `rel.or=(...)`.
//!
//! ```text
//! tree := "not." ("and" | "or") "(" tree ("," tree)* ")"
//!       | ("and" | "or") "(" tree ("," tree)* ")"
//!       | field "." [not.] operation
//! ```
//!
//! Inside a tree a value ends at `,` or `)`; it may be double-quoted (backslash escapes) and may
//! hold commas inside `{...}` (arrays, JSON) or an `in.(...)` list.

use std::fmt::{self, Write};

use super::MAX_DEPTH;
use super::cursor::Cursor;
use super::error::{ParseError, SyntaxError};
use super::field::Field;
use super::filter::{OpExpr, ValueMode, op_expr, write_path};

/// A logic-tree parameter: `[path.][not.]and|or=(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LogicFilter {
    /// The embed path the tree applies to (`rel.or=…` → `["rel"]`); empty at top level.
    pub path: Vec<String>,
    /// `not.or` / `not.and`.
    pub negated: bool,
    /// How the children combine.
    pub op: LogicOp,
    /// The conditions and nested trees (never empty).
    pub children: Vec<LogicTree>,
}

/// `and` or `or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogicOp {
    /// All children must hold.
    And,
    /// At least one child must hold.
    Or,
}

impl LogicOp {
    /// `and` or `or`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::And => "and",
            Self::Or => "or",
        }
    }
}

/// A node of a logic tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogicTree {
    /// A nested `[not.]and(...)` / `[not.]or(...)`.
    Expr {
        /// `not.` prefix.
        negated: bool,
        /// How the children combine.
        op: LogicOp,
        /// The children (never empty).
        children: Vec<LogicTree>,
    },
    /// A condition `field.[not.]op.value`.
    Cond {
        /// The column (with JSON path); an embed name for `rel.not.is.null`.
        field: Field,
        /// The operator and value.
        expr: OpExpr,
    },
}

/// Names that would read as tree keywords when written bare at the start of a condition.
const RESERVED_COND_NAMES: &[&str] = &["and", "or", "not"];

/// Parse the value of a logic parameter whose key has been split into path, negation and op.
pub(super) fn parse_logic(
    path: Vec<String>,
    negated: bool,
    op: LogicOp,
    value: &str,
) -> Result<LogicFilter, ParseError> {
    let mut c = Cursor::new(value);
    let result = (|| -> Result<Vec<LogicTree>, SyntaxError> {
        c.skip_ws();
        let children = children(&mut c, 1)?;
        c.skip_ws();
        c.expect_end("end of input")?;
        Ok(children)
    })();
    match result {
        Ok(children) => Ok(LogicFilter { path, negated, op, children }),
        Err(mut e) => {
            // PostgREST parses `<op><value>`, so its columns count the operator too.
            e.column += op.as_str().len() + if negated { 4 } else { 0 };
            Err(ParseError::syntax("logic tree", value, e))
        }
    }
}

/// `(tree, tree, ...)`.
fn children(c: &mut Cursor, depth: usize) -> Result<Vec<LogicTree>, SyntaxError> {
    if depth > MAX_DEPTH {
        return Err(SyntaxError::custom(c.column(), format!("logic tree is nested deeper than {MAX_DEPTH} levels")));
    }
    c.expect('(', "\"(\"")?;
    let mut out = Vec::new();
    loop {
        c.skip_ws();
        out.push(tree(c, depth)?);
        c.skip_ws();
        if c.eat(',') {
            continue;
        }
        c.expect(')', "\",\" or \")\"")?;
        return Ok(out);
    }
}

fn tree(c: &mut Cursor, depth: usize) -> Result<LogicTree, SyntaxError> {
    for (prefix, negated, op) in [
        ("not.and(", true, LogicOp::And),
        ("not.or(", true, LogicOp::Or),
        ("and(", false, LogicOp::And),
        ("or(", false, LogicOp::Or),
    ] {
        if c.looking_at(prefix) {
            // Leave the `(` for `children`.
            c.eat_str(prefix.trim_end_matches('('));
            let children = children(c, depth + 1)?;
            return Ok(LogicTree::Expr { negated, op, children });
        }
    }
    let field = c.field()?;
    c.expect('.', "delimiter (.)")?;
    let expr = op_expr(c, ValueMode::Logic)?;
    Ok(LogicTree::Cond { field, expr })
}

fn write_children<W: Write>(w: &mut W, children: &[LogicTree]) -> fmt::Result {
    w.write_char('(')?;
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            w.write_char(',')?;
        }
        write!(w, "{child}")?;
    }
    w.write_char(')')
}

impl fmt::Display for LogicTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expr { negated, op, children } => {
                if *negated {
                    f.write_str("not.")?;
                }
                f.write_str(op.as_str())?;
                write_children(f, children)
            }
            Self::Cond { field, expr } => {
                field.write_with(f, RESERVED_COND_NAMES)?;
                f.write_char('.')?;
                expr.write_with(f, ValueMode::Logic)
            }
        }
    }
}

impl LogicFilter {
    /// The query-string key (`rel.not.or`).
    pub fn key(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write_path(&mut out, &self.path);
        if self.negated {
            out.push_str("not.");
        }
        out.push_str(self.op.as_str());
        out
    }

    /// The query-string value (`(a.eq.1,b.eq.2)`).
    pub fn value(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = write_children(&mut out, &self.children);
        out
    }
}

impl fmt::Display for LogicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.value())
    }
}
