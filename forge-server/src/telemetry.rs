//! Logging: human-readable on a terminal, JSON lines with `FORGE_LOG_FORMAT=json`. The level
//! comes from `FORGE_LOG` (or `RUST_LOG`), default `info`.
//!
//! No credential reaches a log at any level: the edge marks `Authorization`, `apikey` and
//! cookies sensitive, and a filter of its own, which no `FORGE_LOG` directive can widen, drops
//! tokio-postgres's debug and trace events: they carry every statement's parameters (among
//! them the gateway's `request.headers` and `request.jwt.claims`).

use std::io::IsTerminal as _;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = std::env::var("FORGE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tokio_postgres=warn"));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Json => layer.json().flatten_event(true).with_current_span(true).boxed(),
        LogFormat::Text => layer.with_ansi(std::io::stderr().is_terminal()).boxed(),
    };
    let layer = layer.with_filter(filter).with_filter(filter_fn(without_parameters));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Whether an event may be logged at all: not tokio-postgres's debug and trace ones, which
/// carry statement parameters (credentials among them).
fn without_parameters(meta: &Metadata<'_>) -> bool {
    !(meta.target().starts_with("tokio_postgres") && *meta.level() > Level::INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::DefaultCallsite;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        static CALLSITE: DefaultCallsite = DefaultCallsite::new(&META);
        static META: Metadata<'static> = tracing::metadata!(
            name: "probe",
            target: "probe",
            level: Level::INFO,
            fields: &[],
            callsite: &CALLSITE,
            kind: Kind::EVENT,
        );
        Metadata::new(
            "probe",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn statement_parameters_never_pass_whatever_the_level() {
        for level in [Level::TRACE, Level::DEBUG] {
            assert!(!without_parameters(&meta("tokio_postgres::query", level)));
            assert!(!without_parameters(&meta("tokio_postgres", level)));
        }
        assert!(without_parameters(&meta("tokio_postgres::connection", Level::INFO)));
        assert!(without_parameters(&meta("tokio_postgres::query", Level::WARN)));
        assert!(without_parameters(&meta("forge_server", Level::TRACE)));
    }
}
