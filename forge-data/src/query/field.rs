//! Column references with optional JSON paths: `col`, `"weird col"`, `data->a->>b`, `arr->0`.

use std::fmt::{self, Write};

use super::render::{is_bare, write_name, write_quoted};

/// A column, possibly followed by JSON operators (`data->a->>b`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Field {
    /// The column name, unquoted.
    pub name: String,
    /// The JSON steps applied to the column, in order; `->>` only ever comes last.
    pub json_path: Vec<JsonStep>,
}

impl Field {
    /// A plain column reference without a JSON path.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), json_path: Vec::new() }
    }

    /// Write the field, quoting the column name when it is one of `reserved` or not bare.
    pub(super) fn write_with<W: Write>(&self, w: &mut W, reserved: &[&str]) -> fmt::Result {
        write_name(w, &self.name, reserved)?;
        for step in &self.json_path {
            write!(w, "{step}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, &[])
    }
}

/// One JSON operator and its operand.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct JsonStep {
    /// `->` or `->>`.
    pub arrow: JsonArrow,
    /// The key or array index.
    pub operand: JsonOperand,
}

impl fmt::Display for JsonStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.arrow {
            JsonArrow::Json => "->",
            JsonArrow::Text => "->>",
        })?;
        match &self.operand {
            JsonOperand::Index(i) => write!(f, "{i}"),
            JsonOperand::Key(k) if is_bare(k) && !k.bytes().all(|b| b.is_ascii_digit()) => f.write_str(k),
            JsonOperand::Key(k) => write_quoted(f, k),
        }
    }
}

/// A JSON operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonArrow {
    /// `->`: the result stays `json`/`jsonb`.
    Json,
    /// `->>`: the result is `text`; only allowed as the last step.
    Text,
}

/// The right-hand side of a JSON operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonOperand {
    /// An object key (`->name`, or `->"0"` for a key that looks like a number).
    Key(String),
    /// An array index (`->0`, `->-1`).
    Index(i64),
}
