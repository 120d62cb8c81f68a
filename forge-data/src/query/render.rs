//! Shared rendering helpers: when a name can be written bare and how to double-quote it so
//! that the parsers read back exactly the same text.

use std::fmt::{self, Write};

use super::cursor::is_ident_char;

/// Whether `name` can be written without quotes in any position (letters, digits, `_`, `$`).
pub(super) fn is_bare(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_ident_char)
}

/// Write `s` double-quoted, escaping `\` and `"` with a backslash.
pub(super) fn write_quoted<W: Write>(w: &mut W, s: &str) -> fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            w.write_char('\\')?;
        }
        w.write_char(c)?;
    }
    w.write_char('"')
}

/// Write a name bare when that is unambiguous (it is [`is_bare`] and not one of `reserved`),
/// quoted otherwise.
pub(super) fn write_name<W: Write>(w: &mut W, name: &str, reserved: &[&str]) -> fmt::Result {
    if is_bare(name) && !reserved.contains(&name) { w.write_str(name) } else { write_quoted(w, name) }
}

/// Write names separated by `sep`.
pub(super) fn write_names<W: Write>(w: &mut W, names: &[String], sep: char, reserved: &[&str]) -> fmt::Result {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            w.write_char(sep)?;
        }
        write_name(w, name, reserved)?;
    }
    Ok(())
}

/// Write items separated by `,` using their `Display`.
pub(super) fn write_comma_list<W: Write, T: fmt::Display>(w: &mut W, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            w.write_char(',')?;
        }
        write!(w, "{item}")?;
    }
    Ok(())
}
