//! Logging: human-readable on a terminal, JSON lines with `FORGE_LOG_FORMAT=json`. The level
//! comes from `FORGE_LOG` (or `RUST_LOG`), default `info`.
//!
//! No credential reaches a log at any level: the edge marks `Authorization`, `apikey` and
//! cookies sensitive, and tokio-postgres, which logs every statement's parameters at debug
//! (among them the gateway's `request.headers` and `request.jwt.claims`), is held at `info`
//! whatever the filter asks.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = std::env::var("FORGE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tokio_postgres=warn"));
    let filter = hold_back_parameters(filter);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

/// The filter, with the crates that log bound parameters (credentials among them) held at
/// `info` or quieter.
fn hold_back_parameters(filter: EnvFilter) -> EnvFilter {
    use tracing::level_filters::LevelFilter;
    // Never louder than the filter asks for anything else.
    let level = filter.max_level_hint().filter(|max| *max < LevelFilter::INFO).unwrap_or(LevelFilter::INFO);
    filter.add_directive(format!("tokio_postgres={level}").parse().expect("a valid directive"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_lets_statement_parameters_through() {
        for asked in ["trace", "debug", "trace,tokio_postgres=trace", "tokio_postgres=debug", "info", "off"] {
            let filter = hold_back_parameters(EnvFilter::new(asked));
            let shown = filter.to_string();
            let held = ["tokio_postgres=info", "tokio_postgres=off"].iter().any(|d| shown.to_lowercase().contains(d));
            assert!(held, "{asked}: {shown}");
            let shown = shown.to_lowercase();
            assert!(
                !shown.contains("tokio_postgres=debug") && !shown.contains("tokio_postgres=trace"),
                "{asked}: {shown}"
            );
        }
    }
}
