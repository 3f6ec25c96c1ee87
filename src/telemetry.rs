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

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or collector gets plain text
        // that grep and parsers read as written.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter)
        .with_filter(cap());
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
