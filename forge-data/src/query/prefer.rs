//! The `Prefer` request header (RFC 7240) as PostgREST reads it.

use super::error::{ParseError, truncate};

/// The preferences PostgREST recognises, from every `Prefer` header of a request.
///
/// For each preference the first valid occurrence wins; tokens that are not recognised are
/// collected in [`Preferences::invalid`] (they only matter under `handling=strict`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Preferences {
    /// `resolution=merge-duplicates|ignore-duplicates` (upserts).
    pub resolution: Option<PreferResolution>,
    /// `missing=default|null` (absent keys on insert).
    pub missing: Option<PreferMissing>,
    /// `return=minimal|headers-only|representation` (write responses).
    pub return_: Option<PreferReturn>,
    /// `count=exact|planned|estimated`.
    pub count: Option<PreferCount>,
    /// `tx=commit|rollback`.
    pub tx: Option<PreferTx>,
    /// `handling=lenient|strict`.
    pub handling: Option<PreferHandling>,
    /// `timezone=<name or offset>` (validated later by PostgreSQL).
    pub timezone: Option<String>,
    /// `max-affected=<n>` (enforced only with `handling=strict`).
    pub max_affected: Option<u64>,
    /// Every unrecognised token, trimmed, in order (including `params=single-object`).
    pub invalid: Vec<String>,
}

/// `resolution=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreferResolution {
    /// `resolution=merge-duplicates`: `ON CONFLICT DO UPDATE`.
    MergeDuplicates,
    /// `resolution=ignore-duplicates`: `ON CONFLICT DO NOTHING`.
    IgnoreDuplicates,
}

/// `missing=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreferMissing {
    /// `missing=default`: absent keys take the column default.
    Default,
    /// `missing=null`: absent keys are NULL.
    Null,
}

/// `return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreferReturn {
    /// `return=minimal`: no body.
    Minimal,
    /// `return=headers-only`: no body, but a `Location` header.
    HeadersOnly,
    /// `return=representation`: the affected rows as the body.
    Representation,
}

/// `count=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreferCount {
    /// `count=exact`.
    Exact,
    /// `count=planned`.
    Planned,
    /// `count=estimated`.
    Estimated,
}

/// `tx=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreferTx {
    /// `tx=commit`.
    Commit,
    /// `tx=rollback`.
    Rollback,
}

/// `handling=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreferHandling {
    /// `handling=lenient`: ignore invalid preferences (the default).
    Lenient,
    /// `handling=strict`: reject invalid preferences with `PGRST122`.
    Strict,
}

impl PreferResolution {
    /// The header token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MergeDuplicates => "resolution=merge-duplicates",
            Self::IgnoreDuplicates => "resolution=ignore-duplicates",
        }
    }
}

impl PreferMissing {
    /// The header token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "missing=default",
            Self::Null => "missing=null",
        }
    }
}

impl PreferReturn {
    /// The header token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "return=minimal",
            Self::HeadersOnly => "return=headers-only",
            Self::Representation => "return=representation",
        }
    }
}

impl PreferCount {
    /// The header token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "count=exact",
            Self::Planned => "count=planned",
            Self::Estimated => "count=estimated",
        }
    }
}

impl PreferTx {
    /// The header token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commit => "tx=commit",
            Self::Rollback => "tx=rollback",
        }
    }
}

impl PreferHandling {
    /// The header token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lenient => "handling=lenient",
            Self::Strict => "handling=strict",
        }
    }
}

/// Keep the first value of a preference.
fn first<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Parse the values of every `Prefer` header of a request (in order).
///
/// Each value is split on `,` and trimmed; empty tokens are skipped. The first valid occurrence
/// of each preference wins, later valid duplicates are ignored, and anything unrecognised
/// (unknown names, unknown values, a non-numeric `max-affected`, `params=single-object`) goes
/// to [`Preferences::invalid`].
pub fn parse_prefer<'a>(headers: impl IntoIterator<Item = &'a str>) -> Preferences {
    let mut p = Preferences::default();
    for token in headers.into_iter().flat_map(|h| h.split(',')).map(str::trim) {
        match token {
            "" => {}
            "resolution=merge-duplicates" => first(&mut p.resolution, PreferResolution::MergeDuplicates),
            "resolution=ignore-duplicates" => first(&mut p.resolution, PreferResolution::IgnoreDuplicates),
            "missing=default" => first(&mut p.missing, PreferMissing::Default),
            "missing=null" => first(&mut p.missing, PreferMissing::Null),
            "return=minimal" => first(&mut p.return_, PreferReturn::Minimal),
            "return=headers-only" => first(&mut p.return_, PreferReturn::HeadersOnly),
            "return=representation" => first(&mut p.return_, PreferReturn::Representation),
            "count=exact" => first(&mut p.count, PreferCount::Exact),
            "count=planned" => first(&mut p.count, PreferCount::Planned),
            "count=estimated" => first(&mut p.count, PreferCount::Estimated),
            "tx=commit" => first(&mut p.tx, PreferTx::Commit),
            "tx=rollback" => first(&mut p.tx, PreferTx::Rollback),
            "handling=lenient" => first(&mut p.handling, PreferHandling::Lenient),
            "handling=strict" => first(&mut p.handling, PreferHandling::Strict),
            other => {
                if let Some(tz) = other.strip_prefix("timezone=").filter(|tz| !tz.is_empty()) {
                    first(&mut p.timezone, tz.to_owned());
                } else if let Some(n) = other.strip_prefix("max-affected=").and_then(|n| n.parse::<u64>().ok()) {
                    first(&mut p.max_affected, n);
                } else {
                    p.invalid.push(other.to_owned());
                }
            }
        }
    }
    p
}

impl Preferences {
    /// Under `handling=strict`, fail with `PGRST122` when any preference was invalid.
    pub fn check_strict(&self) -> Result<(), ParseError> {
        if self.handling != Some(PreferHandling::Strict) || self.invalid.is_empty() {
            return Ok(());
        }
        Err(ParseError {
            code: "PGRST122",
            message: "Invalid preferences given with handling=strict".to_owned(),
            details: Some(format!("Invalid preferences: {}", truncate(&self.invalid.join(", ")))),
            hint: None,
        })
    }

    /// The applied preferences in PostgREST's fixed order (resolution, missing, return, count,
    /// tx, handling, timezone, then max-affected only under `handling=strict`).
    ///
    /// Callers clear the preferences that did not apply to the request (e.g. `resolution` on a
    /// table without a primary key) before calling this.
    pub fn applied(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            self.resolution.map(PreferResolution::as_str),
            self.missing.map(PreferMissing::as_str),
            self.return_.map(PreferReturn::as_str),
            self.count.map(PreferCount::as_str),
            self.tx.map(PreferTx::as_str),
            self.handling.map(PreferHandling::as_str),
        ]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
        if let Some(tz) = &self.timezone {
            out.push(format!("timezone={tz}"));
        }
        if let (Some(n), Some(PreferHandling::Strict)) = (self.max_affected, self.handling) {
            out.push(format!("max-affected={n}"));
        }
        out
    }

    /// The `Preference-Applied` header value (`", "`-joined [`Preferences::applied`]), or `None`
    /// when nothing applied.
    pub fn applied_header(&self) -> Option<String> {
        let applied = self.applied();
        (!applied.is_empty()).then(|| applied.join(", "))
    }
}
