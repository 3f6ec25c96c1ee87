//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`). Spans carry
//! `conversation_id`, `user_id` and `socket_id` so one conversation's story can be followed.
//!
//! Tokens are never logged, at any level: requests name how they authenticated
//! (`auth="cookie"`), never with what, and no log line holds a URL's query string. A dependency
//! that would log a frame's payload is capped below that level whatever `RUST_LOG` asks
//! ([`cap`]).

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{fmt, EnvFilter};

/// The most each target may log, on top of `RUST_LOG` (an event must pass both). tungstenite at
/// `trace` writes every WebSocket frame it reads or writes in full: the token of an `auth` frame,
/// and every message's text.
///
/// Its default is `RUST_LOG`'s own ceiling, never more: the subscriber's maximum level is the
/// larger of the two filters' ceilings, and that maximum is what turns a disabled `debug_span!`
/// (one per actor message) or a dependency's `log::trace!` away at its callsite. A cap that
/// defaulted to `TRACE` made every one of them reach the filters at run time: ~0.04 cores at
/// 5,000 msg/s (perf, 2026-12-07).
fn cap(ceiling: LevelFilter) -> Targets {
    Targets::new()
        .with_default(ceiling)
        .with_target("tungstenite", ceiling.min(LevelFilter::DEBUG))
}

/// Without `RUST_LOG`. The ScyllaDB driver is quiet by default: the store reports every failed
/// request itself (503 `store_unavailable`, `/readyz` down, one line and exit 69 at startup), and
/// the driver's own account of the same event (several WARN/ERROR lines per reconnect attempt)
/// would bury it; `RUST_LOG=info,scylla=warn` shows it.
const DEFAULT_FILTER: &str = "info,fjall=warn,lsm_tree=warn,scylla=off";

/// How log lines are written (`log.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, spans' fields in front.
    #[default]
    Text,
    /// For collectors: one JSON object per line, with the current span's fields
    /// (`conversation_id`, `user_id`, ...) and the list of spans it is in.
    Json,
}

/// `[log]` in the configuration.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let base = fmt::layer().with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Text => filtered(filter)
            .with(
                // Colour codes only for a person at a terminal: a log file or collector gets
                // plain text that grep and parsers read as written.
                base.with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
        LogFormat::Json => filtered(filter)
            .with(base.json().with_current_span(true).with_span_list(true))
            .try_init(),
    };
}

/// The registry behind `RUST_LOG` and the cap, as global filters rather than per-layer ones:
/// with a single output there is nothing to filter per layer, and per-layer filters make the
/// registry track and look up every span's filter state on each enter and exit.
fn filtered(filter: EnvFilter) -> impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync {
    let ceiling = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    tracing_subscriber::registry()
        .with(filter)
        .with(cap(ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_subscribers_ceiling_is_rust_logs() {
        let sub = filtered(EnvFilter::new(DEFAULT_FILTER));
        assert_eq!(sub.max_level_hint(), Some(LevelFilter::INFO));
        let sub = filtered(EnvFilter::new("warn,switchboard=debug"));
        assert_eq!(sub.max_level_hint(), Some(LevelFilter::DEBUG));
    }

    #[test]
    fn tungstenite_is_capped_at_debug_even_when_everything_traces() {
        let trace = cap(LevelFilter::TRACE);
        assert!(!trace.would_enable("tungstenite::protocol", &Level::TRACE));
        assert!(trace.would_enable("tungstenite::protocol", &Level::DEBUG));
        assert!(trace.would_enable("switchboard", &Level::TRACE));
    }
}
