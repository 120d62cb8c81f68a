//! A character cursor shared by the sub-parsers, with the lexical pieces they all use: field
//! names (bare or double-quoted), JSON paths and whitespace.
//!
//! It works on a `Vec<char>`, so positions are always character boundaries and every access is a
//! bounds-checked `get`.

use super::MAX_JSON_PATH;
use super::error::SyntaxError;
use super::field::{Field, JsonArrow, JsonOperand, JsonStep};

/// What the parser expects where a field name is missing.
pub(super) const EXPECT_NAME: &str = "field name (* or [a..z0..9_$])";

/// Whether `c` may appear in a bare (unquoted) identifier.
pub(super) fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// A field name as written: its text and whether it was double-quoted (quoted names are never
/// keywords such as `count`, `inner` or `and`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Name {
    pub(super) text: String,
    pub(super) quoted: bool,
}

impl Name {
    /// Whether this is the bare keyword `kw`.
    pub(super) fn is_keyword(&self, kw: &str) -> bool {
        !self.quoted && self.text == kw
    }
}

/// A position-tracking cursor over the characters of one parameter value.
#[derive(Debug)]
pub(super) struct Cursor {
    chars: Vec<char>,
    /// 1-based column of each character in the original input.
    cols: Vec<usize>,
    end_col: usize,
    pos: usize,
    /// Characters that speculative look-ahead scans may still examine (see [`Cursor::spend`]).
    budget: usize,
}

/// Speculative scans may examine this many characters per input character (plus a constant),
/// which keeps every parse linear in the input length.
const BUDGET_PER_CHAR: usize = 4;
const BUDGET_BASE: usize = 1024;

impl Cursor {
    /// A cursor over `input` as is.
    pub(super) fn new(input: &str) -> Self {
        let chars: Vec<char> = input.chars().collect();
        let cols = (1..=chars.len()).collect();
        let end_col = chars.len() + 1;
        let budget = chars.len().saturating_mul(BUDGET_PER_CHAR).saturating_add(BUDGET_BASE);
        Self { chars, cols, end_col, pos: 0, budget }
    }

    /// A cursor over `input` with all whitespace outside double quotes removed (what the Supabase
    /// clients do to `select`). Columns still refer to the original input.
    pub(super) fn stripped(input: &str) -> Self {
        let mut chars = Vec::with_capacity(input.len());
        let mut cols = Vec::with_capacity(input.len());
        let mut in_quotes = false;
        let mut escaped = false;
        let mut count = 0;
        for (i, c) in input.chars().enumerate() {
            count = i + 1;
            if in_quotes {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_quotes = false;
                }
            } else if c.is_whitespace() {
                continue;
            } else if c == '"' {
                in_quotes = true;
            }
            chars.push(c);
            cols.push(i + 1);
        }
        let budget = chars.len().saturating_mul(BUDGET_PER_CHAR).saturating_add(BUDGET_BASE);
        Self { chars, cols, end_col: count + 1, pos: 0, budget }
    }

    /// The current character.
    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// The character `n` places ahead.
    pub(super) fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos.saturating_add(n)).copied()
    }

    /// Consume and return the current character.
    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Consume `c` if it is next.
    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Whether the input continues with `s`.
    pub(super) fn looking_at(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.peek_at(i) == Some(c))
    }

    /// Consume `s` if the input continues with it.
    pub(super) fn eat_str(&mut self, s: &str) -> bool {
        if self.looking_at(s) {
            self.pos += s.chars().count();
            true
        } else {
            false
        }
    }

    /// Consume `c` or fail with "expecting `expecting`".
    pub(super) fn expect(&mut self, c: char, expecting: &str) -> Result<(), SyntaxError> {
        if self.eat(c) { Ok(()) } else { Err(self.error(expecting)) }
    }

    /// Whether everything has been consumed.
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    /// Fail unless everything has been consumed.
    pub(super) fn expect_end(&self, expecting: &str) -> Result<(), SyntaxError> {
        if self.at_end() { Ok(()) } else { Err(self.error(expecting)) }
    }

    /// Skip spaces and tabs.
    pub(super) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    /// Account for one character examined by a speculative scan that may be abandoned and
    /// retried differently; `false` once the budget is exhausted (the scan must then give up).
    pub(super) fn spend(&mut self) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        true
    }

    /// The current position, for [`Cursor::reset`].
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Go back to a position returned by [`Cursor::pos`].
    pub(super) fn reset(&mut self, pos: usize) {
        self.pos = pos.min(self.chars.len());
    }

    /// The rest of the input, consumed.
    pub(super) fn rest(&mut self) -> String {
        let rest: String = self.chars.get(self.pos..).unwrap_or_default().iter().collect();
        self.pos = self.chars.len();
        rest
    }

    /// The 1-based column of the current position in the original input.
    pub(super) fn column(&self) -> usize {
        self.column_at(self.pos)
    }

    /// The 1-based column of position `pos` in the original input.
    pub(super) fn column_at(&self, pos: usize) -> usize {
        self.cols.get(pos).copied().unwrap_or(self.end_col)
    }

    /// "unexpected <current> expecting `expecting`" at the current position.
    pub(super) fn error(&self, expecting: &str) -> SyntaxError {
        SyntaxError::unexpected(self.column(), self.peek(), expecting)
    }

    /// A double-quoted string starting at the current `"`; a backslash escapes any character.
    pub(super) fn quoted(&mut self) -> Result<String, SyntaxError> {
        self.expect('"', "\"\\\"\"")?;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error("closing quote \"\\\"\"")),
                Some('\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err(self.error("escaped character")),
                },
                Some('"') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    /// A field name: `"quoted"` or a bare identifier (letters, digits, `_`, `$`, inner spaces,
    /// and `-` when not the start of `->`). Surrounding spaces of bare names are trimmed.
    pub(super) fn name(&mut self) -> Result<Name, SyntaxError> {
        if self.peek() == Some('"') {
            return self.quoted().map(|text| Name { text, quoted: true });
        }
        let start = self.pos;
        let mut text = String::new();
        loop {
            while let Some(c) = self.peek().filter(|&c| is_ident_char(c) || c == ' ') {
                text.push(c);
                self.pos += 1;
            }
            let dash_continues =
                self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| is_ident_char(c) || c == ' ');
            if dash_continues && text.chars().any(|c| c != ' ') {
                text.push('-');
                self.pos += 1;
            } else {
                break;
            }
        }
        let trimmed = text.trim_matches(' ');
        if trimmed.is_empty() {
            self.pos = start;
            return Err(self.error(EXPECT_NAME));
        }
        Ok(Name { text: trimmed.to_owned(), quoted: false })
    }

    /// Zero or more JSON steps (`->key`, `->0`, `->>key`); `->>` may only be the last one.
    pub(super) fn json_path(&mut self) -> Result<Vec<JsonStep>, SyntaxError> {
        let mut steps: Vec<JsonStep> = Vec::new();
        loop {
            let (arrow, len) = if self.looking_at("->>") {
                (JsonArrow::Text, 3)
            } else if self.looking_at("->") {
                (JsonArrow::Json, 2)
            } else {
                return Ok(steps);
            };
            if steps.last().is_some_and(|s| s.arrow == JsonArrow::Text) {
                return Err(SyntaxError::custom(self.column(), "the ->> operator must be the last one in a JSON path"));
            }
            // Postgres would run out of stack on a path thousands of steps long (54001, a 500).
            if steps.len() == MAX_JSON_PATH {
                return Err(SyntaxError::custom(
                    self.column(),
                    format!("JSON path is longer than {MAX_JSON_PATH} steps"),
                ));
            }
            self.pos += len;
            let operand = self.json_operand()?;
            steps.push(JsonStep { arrow, operand });
        }
    }

    /// A JSON key (a field name) or an array index (an optionally negative integer).
    fn json_operand(&mut self) -> Result<JsonOperand, SyntaxError> {
        let start_col = self.column();
        if self.peek() == Some('-') {
            self.pos += 1;
            let mut digits = String::from("-");
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                digits.push(c);
                self.pos += 1;
            }
            if digits.len() == 1 || self.peek().is_some_and(is_ident_char) {
                return Err(self.error("digit"));
            }
            return parse_index(&digits, start_col);
        }
        let name = self.name()?;
        if !name.quoted && name.text.bytes().all(|b| b.is_ascii_digit()) {
            parse_index(&name.text, start_col)
        } else {
            Ok(JsonOperand::Key(name.text))
        }
    }

    /// A field name followed by an optional JSON path.
    pub(super) fn field(&mut self) -> Result<Field, SyntaxError> {
        let name = self.name()?;
        let json_path = self.json_path()?;
        Ok(Field { name: name.text, json_path })
    }

    /// One or more field names separated by `.` (an embed path such as `rel.sub`).
    pub(super) fn dotted_names(&mut self) -> Result<Vec<Name>, SyntaxError> {
        let mut names = vec![self.name()?];
        while self.eat('.') {
            names.push(self.name()?);
        }
        Ok(names)
    }

    /// A run of ASCII letters, digits and `_` (operator names, type names, keywords).
    pub(super) fn word(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
            out.push(c);
            self.pos += 1;
        }
        out
    }
}

fn parse_index(digits: &str, column: usize) -> Result<JsonOperand, SyntaxError> {
    digits
        .parse::<i64>()
        .map(JsonOperand::Index)
        .map_err(|_| SyntaxError::custom(column, "JSON array index out of range"))
}
