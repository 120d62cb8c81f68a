//! `limit` / `offset` parameters (also embed-scoped) and the `Range` request header.

use super::cursor::Cursor;
use super::error::{ParseError, SyntaxError};

/// `limit` and `offset` for one level of the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RangeSpec {
    /// The embed path (`rel.limit=…` → `["rel"]`); empty at top level.
    pub path: Vec<String>,
    /// `limit=N`.
    pub limit: Option<u64>,
    /// `offset=N` (a negative offset is read as 0).
    pub offset: Option<u64>,
}

/// Which of the two range parameters a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeParam {
    Limit,
    Offset,
}

impl RangeParam {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::Offset => "offset",
        }
    }
}

/// Parse a `limit`/`offset` value: an optionally negative decimal integer (surrounding
/// whitespace is ignored). A negative limit is a `PGRST103`; a negative offset reads as 0.
pub(super) fn parse_range_value(param: RangeParam, value: &str) -> Result<u64, ParseError> {
    let syntax = |e: SyntaxError| ParseError::syntax(&format!("{} parameter", param.as_str()), value, e);
    let mut c = Cursor::new(value);
    c.skip_ws();
    let negative = c.eat('-');
    let mut digits = String::new();
    while let Some(d) = c.peek().filter(char::is_ascii_digit) {
        digits.push(d);
        c.bump();
    }
    if digits.is_empty() {
        return Err(syntax(c.error("digit")));
    }
    c.skip_ws();
    c.expect_end("digit or end of input").map_err(syntax)?;
    if negative && digits.bytes().any(|b| b != b'0') {
        return match param {
            RangeParam::Limit => Err(ParseError::range("Limit should be greater than or equal to zero.")),
            RangeParam::Offset => Ok(0),
        };
    }
    digits.parse::<u64>().map_err(|_| syntax(SyntaxError::custom(1, "number too large")))
}

/// Parse a `Range: <from>-[<to>]` request header.
///
/// Values that do not match `^\d+-\d*$` (or whose numbers overflow) are ignored: `Ok(None)`.
/// `5-2` is a `PGRST103` error ("The lower boundary must be lower than or equal to the upper
/// boundary in the Range header.").
pub fn parse_range_header(value: &str) -> Result<Option<(u64, Option<u64>)>, ParseError> {
    let Some((from, to)) = value.split_once('-') else {
        return Ok(None);
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if from.is_empty() || !all_digits(from) || !all_digits(to) {
        return Ok(None);
    }
    let Ok(from) = from.parse::<u64>() else {
        return Ok(None);
    };
    let to = if to.is_empty() {
        None
    } else {
        match to.parse::<u64>() {
            Ok(to) => Some(to),
            Err(_) => return Ok(None),
        }
    };
    if let Some(to) = to
        && from > to
    {
        return Err(ParseError::range(
            "The lower boundary must be lower than or equal to the upper boundary in the Range header.",
        ));
    }
    Ok(Some((from, to)))
}
