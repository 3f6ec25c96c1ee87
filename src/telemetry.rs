//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`). Spans carry
//! `conversation_id`, `user_id` and `socket_id` so one conversation's story can be followed.
//!
//! Tokens are never logged, at any level: requests name how they authenticated
//! (`auth="cookie"`), never with what, and no log line holds a URL's query string. A dependency
//! that would log a frame's payload is capped below that level whatever `RUST_LOG` asks
//! ([`cap`]).

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

/// The most each target may log, on top of `RUST_LOG` (an event must pass both). tungstenite at
/// `trace` writes every WebSocket frame it reads or writes in full: the token of an `auth` frame,
/// and every message's text.
fn cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("tungstenite", LevelFilter::DEBUG)
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
        LogFormat::Text => tracing_subscriber::registry()
            .with(
                base
                    // Colour codes only for a person at a terminal: a log file or collector
                    // gets plain text that grep and parsers read as written.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_filter(filter)
                    .with_filter(cap()),
            )
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                base.json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_filter(filter)
                    .with_filter(cap()),
            )
            .try_init(),
    };
}
